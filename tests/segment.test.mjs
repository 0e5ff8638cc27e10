// End-to-end segmentation in the page: P001 dropped into the release build, segmented by the
// shipped model in headless Chromium — first on WebGPU (SwiftShader), then with WebGPU
// switched off in the browser, on the CPU fallback (burn-flex in WebAssembly) — and checked
// against `pulmoseg predict` and `pulmoseg slices` on the same file with the same weights.
//
// Environment: PULMOSEG_BIN (the native `pulmoseg`, default $CARGO_TARGET_DIR/debug/pulmoseg),
// PULMOSEG_DIST, CHROMIUM as for page.test.mjs. Results, screenshots and the timing table go
// to tests/out/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { serveStatic } from './serve.mjs';
import { BASE_ARGS, WEBGPU_ARGS, builtAssetPaths } from './assets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const dist = resolve(process.env.PULMOSEG_DIST ?? join(repo, 'www', 'dist'));
const data = resolve(repo, '..', 'shared', 'data');
const P001 = join(data, 'covid-ct-md', 'P001.nii.gz');
const P001_LABELS = join(data, 'covid-ct-md', 'P001.labels.json');
const WEIGHTS = join(repo, 'www', 'model', 'pulmoseg-shipped.pulmoseg');
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache', 'pulmoseg', 'target');
const BIN = process.env.PULMOSEG_BIN ?? join(targetDir, 'debug', 'pulmoseg');
const out = join(here, 'out', 'segment');

// Inference on SwiftShader is slow; the page itself has no time limit.
const SEGMENT_TIMEOUT_MS = 15 * 60_000;

let server;
let scratch;
const native = {};
const runs = {};

function pulmoseg(args) {
    return execFileSync(BIN, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `pulmoseg slices` of `mask` on P001 against the radiologists' slice labels. */
function sliceScores(mask) {
    return JSON.parse(pulmoseg(['slices', '--image', P001, '--mask', mask, '--labels', P001_LABELS, '--json']));
}

/** Header and voxels of a `.nii.gz` label file written by Pulmoseg (352-byte header, uint8). */
function readLabels(path) {
    const bytes = gunzipSync(readFileSync(path));
    const voxOffset = bytes.readFloatLE(108);
    return { header: bytes.subarray(0, voxOffset), voxels: bytes.subarray(voxOffset) };
}


before(async () => {
    assert.ok(existsSync(join(dist, 'index.html')), `no built page at ${dist}: run scripts/serve --build-only`);
    assert.ok(existsSync(WEIGHTS), `missing the shipped model ${WEIGHTS}`);
    assert.ok(existsSync(BIN), `missing the native pulmoseg at ${BIN} (PULMOSEG_BIN)`);
    mkdirSync(out, { recursive: true });
    scratch = mkdtempSync(join(tmpdir(), 'pulmoseg-segment-'));
    server = await serveStatic(dist);

    // The native reference: same file, same weights, the CPU backend.
    const nativeDir = join(out, 'native');
    const started = Date.now();
    const predict = spawnSync(BIN, ['predict', '--model', WEIGHTS, P001, '--output', nativeDir], {
        encoding: 'utf8',
        env: { ...process.env, PULMOSEG_LOG: 'info' },
    });
    assert.equal(predict.status, 0, predict.stderr);
    native.seconds = (Date.now() - started) / 1000;
    // "inference P001 on flex: 2.1 s" from the log: the network alone.
    const inference = /inference P001 on flex: ([0-9.]+) s/.exec(predict.stderr);
    native.inferenceSeconds = inference ? Number(inference[1]) : null;
    native.quantities = JSON.parse(readFileSync(join(nativeDir, 'P001_quantities.json'), 'utf8'));
    native.maskPath = join(nativeDir, 'P001_infiltrate.nii.gz');
    native.mask = readLabels(native.maskPath);
    native.slices = sliceScores(native.maskPath);
});

after(async () => {
    await server?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    const table = {
        native_predict_s: native.seconds,
        native_inference_s: native.inferenceSeconds,
        ...Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, r.summary])),
    };
    writeFileSync(join(out, 'timings.json'), JSON.stringify(table, null, 2) + '\n');
    console.log('segmentation timings:', JSON.stringify(table));
});

/** Opens a browser (with or without WebGPU), drops P001, segments, and collects everything. */
async function segmentInBrowser(name, args) {
    const userDataDir = mkdtempSync(join(tmpdir(), `pulmoseg-chromium-${name}-`));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: [...BASE_ARGS, ...args],
        viewport: { width: 1440, height: 900 },
        deviceScaleFactor: 1,
        acceptDownloads: true,
    });
    const requests = [];
    const pageErrors = [];
    context.on('request', (request) => requests.push(request.url()));
    try {
        const page = context.pages()[0] ?? (await context.newPage());
        page.on('pageerror', (error) => pageErrors.push(String(error)));
        await page.goto(server.url);
        await page.waitForSelector('#status[data-state="idle"]', { timeout: 30_000 });

        const dropped = Date.now();
        await page.setInputFiles('#file-input', P001);
        await page.waitForSelector('#status[data-state="ready"]', { timeout: 120_000 });
        const opened = Date.now();
        await page.click('#segment');
        // The page stays responsive while the worker runs: a slider moves during inference.
        await page.waitForSelector('#seg-progress[data-stage="inference"]', { timeout: SEGMENT_TIMEOUT_MS });
        const before = await page.textContent('[data-plane="axial"] .view-slice');
        await page.keyboard.press('ArrowUp');
        const responsive = (await page.textContent('[data-plane="axial"] .view-slice')) !== before;
        await page.waitForSelector('#status[data-state="segmented"], #status[data-state="error"]', {
            timeout: SEGMENT_TIMEOUT_MS,
        });
        const overlaid = Date.now();
        const state = await page.getAttribute('#status', 'data-state');
        if (state === 'error') assert.fail(`segmentation failed: ${await page.textContent('#error')}`);

        const quantities = JSON.parse(await page.textContent('#quantities-json'));
        const backend = await page.getAttribute('#seg-result', 'data-backend');
        const notice = await page.textContent('#seg-notice');
        const runLine = await page.textContent('#seg-run');

        // Show the axial slice with the most native infiltrate (P001's k runs inferior →
        // superior, as the canonical grid's), then count tinted pixels.
        const perSlice = native.slices.voxels_per_slice;
        const k = perSlice.indexOf(Math.max(...perSlice));
        await page.evaluate((slice) => {
            const slider = document.querySelector('#slider-axial');
            slider.value = String(slice);
            slider.dispatchEvent(new Event('input', { bubbles: true }));
        }, k);
        await page.waitForTimeout(300);
        const tinted = () => page.evaluate(() => {
            const c = document.querySelector('[data-plane="axial"] canvas');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < px.length; i += 4) if (px[i] - px[i + 1] > 60 && px[i] - px[i + 2] > 60) n += 1;
            return n;
        });
        const tintedOn = await tinted();
        await page.screenshot({ path: join(out, `${name}-segmented.png`) });
        await page.uncheck('#show-overlay');
        const tintedOff = await tinted();
        await page.check('#show-overlay');
        // The lung outline (cyan, 34/211/238) is drawn whatever the model finds.
        const outlined = () => page.evaluate(() => {
            const c = document.querySelector('[data-plane="axial"] canvas');
            const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < px.length; i += 4) if (px[i + 1] - px[i] > 100 && px[i + 2] - px[i] > 100) n += 1;
            return n;
        });
        const outlineOff = await outlined();
        await page.check('#show-lung');
        await page.waitForTimeout(300);
        const outlineOn = await outlined();
        await page.uncheck('#show-lung');

        const download = async (button) => {
            const [file] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
            const path = join(out, `${name}-${file.suggestedFilename()}`);
            await file.saveAs(path);
            return path;
        };
        const maskPath = await download('#export-mask');
        const jsonPath = await download('#export-json');
        return {
            quantities, backend, notice, runLine, tintedOn, tintedOff, outlineOn, outlineOff, responsive, maskPath, jsonPath,
            requests, pageErrors,
            summary: {
                drop_to_view_s: (opened - dropped) / 1000,
                segment_to_overlay_s: (overlaid - opened) / 1000,
                drop_to_overlay_s: (overlaid - dropped) / 1000,
                worker: runLine,
            },
        };
    } finally {
        await context.close();
        rmSync(userDataDir, { recursive: true, force: true });
    }
}

/** Everything a run must satisfy, against the native reference. */
function checkRun(run, expectedBackend) {
    assert.equal(run.backend, expectedBackend, `ran on ${run.backend}: ${run.notice}`);
    assert.ok(run.responsive, 'the axial slice did not move while the network ran');
    assert.deepEqual(run.pageErrors, []);

    // Quantities within 0.5 % of `pulmoseg predict`'s (same file, same weights).
    for (const side of ['left', 'right', 'total']) {
        for (const field of ['infiltrate_ml', 'lung_ml']) {
            const page = run.quantities[side][field];
            const cli = native.quantities[side][field];
            const tolerance = Math.max(0.005 * Math.abs(cli), 0.05);
            assert.ok(Math.abs(page - cli) <= tolerance, `${side}.${field}: page ${page}, native ${cli}`);
        }
    }
    assert.equal(run.quantities.model_name, native.quantities.model_name);
    assert.deepEqual(run.quantities.warnings, native.quantities.warnings);
    assert.deepEqual(JSON.parse(readFileSync(run.jsonPath, 'utf8')), run.quantities);

    // The overlay is drawn, and only when switched on. The shipped model finds infiltrate on
    // P001 (its model card records 48 of 80 labelled slices), so the native mask is not empty.
    assert.ok(native.mask.voxels.some((v) => v !== 0), 'the shipped model found no infiltrate on P001');
    assert.ok(run.tintedOn > 20, `only ${run.tintedOn} tinted pixels on the axial view`);
    assert.equal(run.tintedOff, 0, 'tinted pixels with the overlay switched off');
    // The lung outline: P001's lungs span most of the axial view, so their edge is hundreds of
    // pixels; none are cyan before it is switched on (the crosshair lines are drawn translucent).
    assert.ok(run.outlineOn > 200, `only ${run.outlineOn} outline pixels`);
    assert.ok(run.outlineOff < run.outlineOn / 10, `${run.outlineOff} cyan pixels without the outline`);

    // The exported mask: the native mask's geometry byte for byte, ≥ 99.9 % of voxels equal.
    const exported = readLabels(run.maskPath);
    assert.ok(exported.header.equals(native.mask.header), 'the exported header differs from the native mask');
    assert.equal(exported.voxels.length, native.mask.voxels.length);
    let equal = 0;
    for (let i = 0; i < exported.voxels.length; i += 1) equal += exported.voxels[i] === native.mask.voxels[i];
    const agreement = equal / exported.voxels.length;
    assert.ok(agreement >= 0.999, `voxel agreement ${agreement}`);

    // Slice-level numbers of the page's mask equal the native ones (within one slice).
    const slices = sliceScores(run.maskPath);
    for (const field of ['true_positive', 'false_positive', 'true_negative', 'false_negative']) {
        assert.ok(Math.abs(slices[field] - native.slices[field]) <= 1, `${field}: page ${slices[field]}, native ${native.slices[field]}`);
    }

    // Privacy: own origin only, and only the built assets (the model included).
    const origin = new URL(server.url).origin;
    const assets = builtAssetPaths(dist);
    let weightRequests = 0;
    for (const url of run.requests) {
        if (url.startsWith(`blob:${origin}/`)) continue;
        const parsed = new URL(url);
        assert.equal(parsed.origin, origin, `request to another origin: ${url}`);
        assert.ok(assets.has(parsed.pathname), `request for something that is not a built asset: ${url}`);
        if (parsed.pathname.endsWith('.pulmoseg')) weightRequests += 1;
    }
    assert.ok(weightRequests >= 1, 'the shipped model was never requested (requests not recorded?)');
    return { agreement, slices };
}

test('WebGPU: P001 is segmented in the page as pulmoseg predict segments it', async () => {
    const run = await segmentInBrowser('webgpu', WEBGPU_ARGS);
    runs.webgpu = run;
    const { agreement, slices } = checkRun(run, 'WebGPU');
    run.summary.agreement = agreement;
    run.summary.slices = { sensitivity: slices.sensitivity, specificity: slices.specificity };
});

test('WebGPU off: the same model runs on the CPU fallback, with a notice', async () => {
    const run = await segmentInBrowser('cpu', ['--disable-webgpu']);
    runs.cpu = run;
    const { agreement } = checkRun(run, 'the CPU');
    assert.match(run.notice, /WebGPU is not available .*runs on the CPU/);
    run.summary.agreement = agreement;
});

test('a bad weights file is refused with a clear message and the page stays usable', async () => {
    const userDataDir = mkdtempSync(join(tmpdir(), 'pulmoseg-chromium-weights-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: BASE_ARGS,
    });
    try {
        const page = context.pages()[0] ?? (await context.newPage());
        await page.goto(server.url);
        await page.waitForSelector('#status[data-state="idle"]');
        const text = join(scratch, 'notes.pulmoseg');
        writeFileSync(text, 'not a model\n'.repeat(10));
        const truncated = join(scratch, 'truncated.pulmoseg');
        writeFileSync(truncated, readFileSync(WEIGHTS).subarray(0, 5000));
        for (const [path, message] of [
            [text, /notes\.pulmoseg cannot be used: .*(magic|not a Pulmoseg)/i],
            [truncated, /truncated\.pulmoseg cannot be used: /],
        ]) {
            await page.setInputFiles('#weights-input', path);
            await page.waitForSelector('#error');
            assert.match(await page.textContent('#error'), message);
            await page.click('#error button');
        }
        assert.equal(await page.locator('#own-weights').count(), 0, 'a refused file was taken as the model');
        // A good file dropped on the views is taken as the model, with its model card shown.
        const base64 = readFileSync(WEIGHTS).toString('base64');
        await page.evaluate((base64) => {
            const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], 'mine.pulmoseg'));
            const target = document.querySelector('main.viewer');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
        }, base64);
        await page.waitForSelector('#own-weights');
        assert.match(await page.textContent('#own-weights'), /mine\.pulmoseg/);
        assert.match(await page.textContent('#model-card'), /trained on/);
    } finally {
        await context.close();
        rmSync(userDataDir, { recursive: true, force: true });
    }
});
