// A minimal static file server for the built page: GET/HEAD of files under one folder, the
// right MIME types (application/wasm matters for streaming compilation), no caching, no
// live-reload socket, bound to 127.0.0.1 only.
//
// As a module: `const server = await serveStatic(root)` → { url, port, close() }.
// From the command line: `node tests/serve.mjs <folder> [port]` prints the URL and serves.

import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';

const MIME = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.wasm': 'application/wasm',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.ico': 'image/x-icon',
    '.json': 'application/json',
    '.txt': 'text/plain; charset=utf-8',
};

/** The file under `root` that `urlPath` names, or null when it is outside or missing. */
function resolveFile(root, urlPath) {
    let path;
    try {
        path = decodeURIComponent(urlPath.split('?')[0].split('#')[0]);
    } catch {
        return null;
    }
    if (path.endsWith('/')) path += 'index.html';
    const file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) return null;
    try {
        return statSync(file).isFile() ? file : null;
    } catch {
        return null;
    }
}

export function serveStatic(folder, port = 0, host = '127.0.0.1') {
    const root = resolve(folder);
    const server = createServer((request, response) => {
        if (request.method !== 'GET' && request.method !== 'HEAD') {
            response.writeHead(405, { Allow: 'GET, HEAD' }).end();
            return;
        }
        const file = resolveFile(root, request.url ?? '/');
        if (!file) {
            response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
            return;
        }
        response.writeHead(200, {
            'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
            'Cache-Control': 'no-store',
            'X-Content-Type-Options': 'nosniff',
        });
        if (request.method === 'HEAD') {
            response.end();
            return;
        }
        createReadStream(file).pipe(response);
    });
    return new Promise((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
            const { port: bound } = server.address();
            resolvePromise({
                url: `http://${host}:${bound}/`,
                port: bound,
                close: () => new Promise((done) => server.close(() => done())),
            });
        });
    });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
    const [folder, port] = process.argv.slice(2);
    if (!folder) {
        console.error('usage: node tests/serve.mjs <folder> [port]');
        process.exit(2);
    }
    const server = await serveStatic(folder, Number(port ?? 8080));
    console.log(`Pulmoseg page served at ${server.url} (Ctrl-C to stop)`);
}
