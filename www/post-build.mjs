// trunk post_build hook, run in the staging folder before it becomes www/dist (numbered
// steps below):
//
// 1. moves the inline <script type="module"> loader that trunk writes into index.html into
//    its own content-hashed file, so that the page's CSP can forbid every inline script
//    (script-src 'self');
// 2. names the segmentation worker's content-hashed loader in a <meta> for the page;
// 3. when a wasm-opt is on PATH (npm's binaryen package, for instance), shrinks both .wasm
//    files with -Oz and updates the page's integrity hash in index.html. trunk 0.21 can only
//    run a wasm-opt it downloads itself, which an offline build cannot.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const staging = process.env.TRUNK_STAGING_DIR;
if (!staging) {
    console.error('post-build: TRUNK_STAGING_DIR is not set (run me as a trunk hook)');
    process.exit(1);
}
const indexPath = join(staging, 'index.html');
const html = readFileSync(indexPath, 'utf8');
const inline = /<script type="module"(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g;
let count = 0;
const rewritten = html.replace(inline, (_whole, body) => {
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
    const name = `loader-${hash}.js`;
    writeFileSync(join(staging, name), body.trim() + '\n');
    count += 1;
    return `<script type="module" src="/${name}"></script>`;
});
if (count === 0) {
    console.error('post-build: no inline module script found in index.html');
    process.exit(1);
}
if (/<script(?![^>]*\bsrc=)[^>]*>/.test(rewritten)) {
    console.error('post-build: an inline script is still left in index.html');
    process.exit(1);
}
console.log(`post-build: moved ${count} inline loader(s) out of index.html`);

// 2. The segmentation worker (trunk's loader shim for the `segment-worker` binary) gets a
//    name of its own; the page finds it through a <meta name="pulmoseg-worker">.
const workerLoader = readdirSync(staging).find((name) => /^segment-worker.*_loader\.js$/.test(name));
if (!workerLoader) {
    console.error('post-build: no segment-worker loader in the build');
    process.exit(1);
}
let html2 = rewritten.replace(
    '</head>',
    `<meta name="pulmoseg-worker" content="/${workerLoader}"></head>`,
);
console.log(`post-build: worker ${workerLoader}`);

// 3. wasm-opt, when there is one, on both binaries (the page's and the worker's).
let hasWasmOpt = false;
try {
    execFileSync('wasm-opt', ['--version'], { stdio: 'ignore' });
    hasWasmOpt = true;
} catch {
    console.log('post-build: no wasm-opt on PATH, the .wasm files stay as wasm-bindgen wrote them');
}
if (hasWasmOpt && process.env.TRUNK_PROFILE === 'release') {
    // The features rustc enables by default for wasm32-unknown-unknown, no others: the
    // optimiser may use whatever it is allowed, and the page must run where rustc's output runs.
    const features = ['bulk-memory', 'multivalue', 'mutable-globals', 'nontrapping-float-to-int', 'reference-types', 'sign-ext'];
    for (const wasmName of readdirSync(staging).filter((name) => name.endsWith('.wasm'))) {
        const wasmPath = join(staging, wasmName);
        const before = statSync(wasmPath).size;
        const args = ['-Oz', '--strip-debug', ...features.map((f) => `--enable-${f}`), wasmPath, '-o', wasmPath];
        execFileSync('wasm-opt', args, { stdio: 'inherit' });
        const link = new RegExp(`(<link[^>]*href="/${wasmName}"[^>]*integrity=")[^"]*(")`);
        if (link.test(html2)) {
            const digest = createHash('sha384').update(readFileSync(wasmPath)).digest('base64');
            html2 = html2.replace(link, `$1sha384-${digest}$2`);
        } else if (!wasmName.startsWith('segment-worker')) {
            console.error(`post-build: no integrity attribute for ${wasmName} in index.html`);
            process.exit(1);
        }
        console.log(`post-build: wasm-opt -Oz ${wasmName}: ${before} -> ${statSync(wasmPath).size} bytes`);
    }
}
writeFileSync(indexPath, html2);
