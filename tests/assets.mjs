// What the page tests share: the browser's flags and the list of the built page's files.

import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Chromium flags of every test browser: no sandbox (containers), no background traffic. */
export const BASE_ARGS = [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
];

/** WebGPU on SwiftShader, Chromium's CPU implementation of it. */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];

/** Every file of the built page in `dist`, as the URL paths that name it. */
export function builtAssetPaths(dist) {
    const paths = new Set(['/']);
    const walk = (folder) => {
        for (const entry of readdirSync(folder, { withFileTypes: true })) {
            const full = join(folder, entry.name);
            if (entry.isDirectory()) walk(full);
            else paths.add('/' + relative(dist, full).split('\\').join('/'));
        }
    };
    walk(dist);
    return paths;
}
