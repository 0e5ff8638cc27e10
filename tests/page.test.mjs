// End-to-end tests of the Pulmoseg page: the release build (www/dist, made by
// `scripts/serve --build-only`) served on a random localhost port and driven in Debian's
// headless Chromium through playwright-core.
//
// Run: cd tests && npm test   (or: node --test --test-concurrency=1)
// Environment: PULMOSEG_DIST (built page folder, default ../www/dist), CHROMIUM (browser
// binary, default /usr/bin/chromium). Screenshots go to tests/out/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serveStatic } from './serve.mjs';
import { BASE_ARGS, WEBGPU_ARGS, builtAssetPaths } from './assets.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const dist = resolve(process.env.PULMOSEG_DIST ?? join(repo, 'www', 'dist'));
const data = resolve(repo, '..', 'shared', 'data');
const P001 = join(data, 'covid-ct-md', 'P001.nii.gz');
const SMALL_P001 = join(data, 'small', 'covidctmd_P001_3mm.nii.gz');
const out = join(here, 'out');
const expectedViews = JSON.parse(readFileSync(join(here, 'fixtures', 'p001_views.json'), 'utf8'));

const CHROMIUM_ARGS = [...BASE_ARGS, ...WEBGPU_ARGS];

let server;
let context;
let page;
let userDataDir;
let scratch;
const requests = [];
const consoleErrors = [];
const pageErrors = [];
const timings = {};


before(async () => {
    assert.ok(
        existsSync(join(dist, 'index.html')),
        `no built page at ${dist}: run scripts/serve --build-only first`,
    );
    assert.ok(existsSync(P001), `missing ${P001} (../shared/data beside the repository)`);
    mkdirSync(out, { recursive: true });
    scratch = mkdtempSync(join(tmpdir(), 'pulmoseg-files-'));
    userDataDir = mkdtempSync(join(tmpdir(), 'pulmoseg-chromium-'));
    server = await serveStatic(dist);
    context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1440, height: 900 },
        deviceScaleFactor: 1,
        acceptDownloads: true,
    });
    context.on('request', (request) => requests.push(request.url()));
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (message) => {
        if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => pageErrors.push(String(error)));
    await page.goto(server.url);
    await page.waitForSelector('#status[data-state="idle"]', { timeout: 30_000 });
});

after(async () => {
    await context?.close();
    await server?.close();
    for (const folder of [userDataDir, scratch]) {
        if (folder) rmSync(folder, { recursive: true, force: true });
    }
    if (Object.keys(timings).length) console.log('timings (ms):', JSON.stringify(timings));
});

/**
 * Runs `action` (which starts opening a file) and waits until the status line reaches
 * `state` ("ready" or "error"). The status element is first marked "pending" by the test, so
 * a "ready" left over from the previous scan cannot be mistaken for the new one.
 */
async function openAndWait(action, state, timeout = 120_000) {
    await page.evaluate(() => {
        document.querySelector('#status').dataset.state = 'pending';
    });
    const start = Date.now();
    await action();
    await page.waitForSelector(`#status[data-state="${state}"]`, { timeout });
    return Date.now() - start;
}

const openFile = (path) => page.setInputFiles('#file-input', path);

/**
 * Pixel statistics of one view's canvas, computed in the page: the bounding box of the drawn
 * image (grey pixels that are not the pure black background), the mean grey of a blocks × blocks grid over
 * it, the share of dark and bright pixels, and a hash of all pixels. Coloured pixels (the
 * crosshair lines) are left out of the statistics.
 */
function viewStats(plane, blocks = expectedViews.blocks) {
    return page.evaluate(
        ({ plane, blocks }) => {
            const canvas = document.querySelector(`[data-plane="${plane}"] canvas`);
            const { data, width, height } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
            let [x0, y0, x1, y1] = [width, height, -1, -1];
            let hash = 2166136261;
            for (let y = 0; y < height; y++) {
                for (let x = 0; x < width; x++) {
                    const i = 4 * (y * width + x);
                    hash = Math.imul(hash ^ (data[i] + 3 * data[i + 1] + 7 * data[i + 2]), 16777619) >>> 0;
                    const grey = data[i] === data[i + 1] && data[i + 1] === data[i + 2];
                    if (grey && data[i] > 0) {
                        x0 = Math.min(x0, x); y0 = Math.min(y0, y);
                        x1 = Math.max(x1, x); y1 = Math.max(y1, y);
                    }
                }
            }
            if (x1 < 0) return { width, height, empty: true, hash };
            const sums = new Float64Array(blocks * blocks);
            const counts = new Float64Array(blocks * blocks);
            let grey = 0, dark = 0, bright = 0;
            const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
            for (let y = y0; y <= y1; y++) {
                for (let x = x0; x <= x1; x++) {
                    const i = 4 * (y * width + x);
                    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
                    if (r !== g || g !== b) continue;
                    const cell = Math.min(blocks - 1, Math.floor(((y - y0) * blocks) / bh)) * blocks
                        + Math.min(blocks - 1, Math.floor(((x - x0) * blocks) / bw));
                    sums[cell] += r; counts[cell] += 1;
                    grey += 1;
                    if (r <= 90) dark += 1;
                    if (r >= 200) bright += 1;
                }
            }
            const means = Array.from(sums, (s, n) => s / Math.max(1, counts[n]));
            return { width, height, empty: false, bbox: [x0, y0, x1, y1], means, dark: dark / grey, bright: bright / grey, hash };
        },
        { plane, blocks },
    );
}

function correlation(a, b) {
    const n = a.length;
    const ma = a.reduce((s, v) => s + v, 0) / n;
    const mb = b.reduce((s, v) => s + v, 0) / n;
    let sab = 0, saa = 0, sbb = 0;
    for (let i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) ** 2;
        sbb += (b[i] - mb) ** 2;
    }
    return sab / Math.sqrt(saa * sbb);
}

const flat = (rows) => rows.flat();
const mirrorX = (rows) => rows.map((row) => [...row].reverse());
const mirrorY = (rows) => [...rows].reverse();

async function edgeLabels(plane) {
    return page.evaluate((plane) => {
        const view = document.querySelector(`[data-plane="${plane}"] .view-body`);
        const box = view.getBoundingClientRect();
        const labels = {};
        for (const edge of ['left', 'right', 'top', 'bottom']) {
            const label = view.querySelector(`[data-edge="${edge}"]`);
            const r = label.getBoundingClientRect();
            labels[edge] = {
                text: label.textContent.trim(),
                x: (r.left + r.right) / 2 - box.left,
                y: (r.top + r.bottom) / 2 - box.top,
            };
        }
        return { labels, width: box.width, height: box.height };
    }, plane);
}

const sliceText = (plane) => page.textContent(`[data-plane="${plane}"] .view-slice`);

/** A NIfTI-1 header (little-endian, int16, vox_offset 352) for `dim` followed by `voxels`. */
function niftiBytes(dim, voxels) {
    const header = Buffer.alloc(352);
    header.writeInt32LE(348, 0);
    dim.forEach((d, n) => header.writeInt16LE(d, 40 + 2 * n));
    header.writeInt16LE(4, 70); // datatype int16
    header.writeInt16LE(16, 72); // bitpix
    [1, 1, 1, 1].forEach((p, n) => header.writeFloatLE(p, 76 + 4 * n));
    header.writeFloatLE(352, 108); // vox_offset
    header.writeFloatLE(1, 112); // scl_slope
    header.write('n+1\0', 344, 'latin1');
    return Buffer.concat([header, Buffer.alloc(2 * voxels)]);
}

test('the empty page states its purpose, its limits and that nothing is uploaded', async () => {
    const note = page.locator('.research-note');
    assert.equal(await note.isVisible(), true);
    assert.match(await note.textContent(), /research use only.*not for diagnosis/i);
    assert.match(await page.textContent('.empty-state'), /Nothing is uploaded/);
    assert.equal(await page.isDisabled('#export-png'), true);
    await page.screenshot({ path: join(out, '01-empty.png') });
});

test('a small scan dropped on the viewer opens (drag and drop)', async () => {
    const base64 = readFileSync(SMALL_P001).toString('base64');
    timings.small_open = await openAndWait(
        () => page.evaluate(({ base64, name }) => {
            const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: 'application/gzip' }));
            const target = document.querySelector('main.viewer');
            for (const type of ['dragenter', 'dragover', 'drop']) {
                target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }
        }, { base64, name: 'covidctmd_P001_3mm.nii.gz' }),
        'ready',
    );
    // The 3 mm copy of P001: 128 × 128 × 74 voxels (shared/data/README.md), already LPS.
    assert.match(await page.textContent('#status'), /128 × 128 × 74/);
    assert.equal((await edgeLabels('axial')).labels.left.text, 'R');
});

test('P001 opens from the file input and reports each stage with times', async () => {
    timings.p001_open_wall = await openAndWait(() => openFile(P001), 'ready');
    const status = await page.textContent('#status');
    // README: 512 × 512 × 148; the stage times are printed as "read N ms · decode N ms".
    assert.match(status, /Ready: 512 × 512 × 148 voxels/);
    const decode = status.match(/decode (\d+) ms/);
    const read = status.match(/read (\d+) ms/);
    assert.ok(decode && read, `stage times missing in "${status}"`);
    timings.p001_read = Number(read[1]);
    timings.p001_decode = Number(decode[1]);
    timings.p001_orient = Number(status.match(/orient (\d+) ms/)?.[1]);
    assert.match(await page.textContent('.statusbar'), /stored LPS/);
    assert.match(await page.textContent('.statusbar'), /0\.748 × 0\.748 × 2\.00 mm/);
    await page.screenshot({ path: join(out, '02-p001-lung.png') });
});

test('each view shows P001 as nibabel sees it, the right way round', async () => {
    for (const plane of ['axial', 'coronal', 'sagittal']) {
        const stats = await viewStats(plane);
        assert.equal(stats.empty, false, `${plane} canvas is blank`);
        const expected = expectedViews.views[plane];
        const same = correlation(stats.means, flat(expected));
        const flippedX = correlation(stats.means, flat(mirrorX(expected)));
        const flippedY = correlation(stats.means, flat(mirrorY(expected)));
        // The fixture's own mirror images correlate with it at 0.80–0.85 (left-right) and
        // 0.47–0.71 (top-bottom), so > 0.95 and a clear margin over both mirrors pins the
        // orientation as well as the content.
        assert.ok(same > 0.95, `${plane}: correlation with nibabel's view ${same.toFixed(3)}`);
        assert.ok(same > flippedX + 0.05, `${plane}: ${same.toFixed(3)} vs left-right mirror ${flippedX.toFixed(3)}`);
        assert.ok(same > flippedY + 0.05, `${plane}: ${same.toFixed(3)} vs top-bottom mirror ${flippedY.toFixed(3)}`);
        // Lung window: dark lungs and air, bright body. nibabel's middle slices have 59/27/37 %
        // of pixels at grey ≤ 90 and 31/61/60 % at ≥ 200 (axial/coronal/sagittal).
        const shares = { axial: [0.594, 0.311], coronal: [0.271, 0.61], sagittal: [0.365, 0.595] }[plane];
        assert.ok(Math.abs(stats.dark - shares[0]) < 0.08, `${plane}: dark share ${stats.dark.toFixed(3)}`);
        assert.ok(Math.abs(stats.bright - shares[1]) < 0.08, `${plane}: bright share ${stats.bright.toFixed(3)}`);
        timings[`${plane}_correlation`] = Number(same.toFixed(4));
    }
});

test('the image keeps its millimetre proportions', async () => {
    // Coronal P001: 512 × 0.748 mm wide, 148 × 2 mm tall → aspect 382.976 / 296 = 1.294.
    const { bbox } = await viewStats('coronal');
    const aspect = (bbox[2] - bbox[0] + 1) / (bbox[3] - bbox[1] + 1);
    assert.ok(Math.abs(aspect - 382.976 / 296) < 0.02, `coronal aspect ${aspect.toFixed(3)}`);
});

test('orientation letters read radiologically for an LPS file', async () => {
    const expected = {
        axial: { left: 'R', right: 'L', top: 'A', bottom: 'P' },
        coronal: { left: 'R', right: 'L', top: 'S', bottom: 'I' },
        sagittal: { left: 'A', right: 'P', top: 'S', bottom: 'I' },
    };
    for (const [plane, letters] of Object.entries(expected)) {
        const { labels, width, height } = await edgeLabels(plane);
        for (const [edge, letter] of Object.entries(letters)) {
            assert.equal(labels[edge].text, letter, `${plane} ${edge}`);
        }
        assert.ok(labels.left.x < width / 4 && labels.right.x > (3 * width) / 4, `${plane} left/right placement`);
        assert.ok(labels.top.y < height / 4 && labels.bottom.y > (3 * height) / 4, `${plane} top/bottom placement`);
    }
});

test('a click in the axial view moves the crosshair: screen left is the patient right', async () => {
    const canvas = page.locator('[data-plane="axial"] canvas');
    const { bbox } = await viewStats('axial');
    const box = await canvas.boundingBox();
    // A quarter of the way across the image from the left and from the top: canonical
    // i = 511 − 128 = 383 (towards the patient's right), j = 511 − 128 = 383 (anterior).
    const x = bbox[0] + (bbox[2] - bbox[0] + 1) * (128.5 / 512);
    const y = bbox[1] + (bbox[3] - bbox[1] + 1) * (128.5 / 512);
    await page.mouse.click(box.x + x, box.y + y);
    // The image edge found from the pixels is good to about one screen pixel, i.e. about
    // one voxel at this size; the side of the grid (383, not 128) is what matters here.
    const readout = (await page.textContent('#cursor-readout')).match(/crosshair \((\d+), (\d+), (\d+)\)/);
    assert.ok(readout, 'no crosshair readout');
    const [i, j, k] = readout.slice(1).map(Number);
    assert.ok(Math.abs(i - 383) <= 1 && Math.abs(j - 383) <= 1, `crosshair at (${i}, ${j})`);
    assert.equal(k, 74, 'a click in the axial view must keep the axial slice');
    assert.equal((await sliceText('sagittal')).trim(), `${i + 1} / 512`);
    assert.equal((await sliceText('coronal')).trim(), `${j + 1} / 512`);
});

test('slider, keys and wheel change the slice and its pixels', async () => {
    const before = await viewStats('axial');
    await page.locator('#slider-axial').fill('30');
    assert.equal((await sliceText('axial')).trim(), '31 / 148');
    const after = await viewStats('axial');
    assert.notEqual(after.hash, before.hash, 'moving the slider did not redraw the axial view');

    // A click in the view takes the focus off the slider (which has keys of its own) and
    // makes the axial view the one the keys scroll; it keeps the axial slice.
    await page.locator('[data-plane="axial"] .view-body').click();
    assert.equal((await sliceText('axial')).trim(), '31 / 148');
    await page.keyboard.press('ArrowUp');
    assert.equal((await sliceText('axial')).trim(), '32 / 148');
    await page.keyboard.press('PageDown');
    assert.equal((await sliceText('axial')).trim(), '22 / 148');
    await page.mouse.wheel(0, -100);
    await page.waitForFunction(() => document.querySelector('[data-plane="axial"] .view-slice').textContent.trim() === '23 / 148');
    await page.locator('#slider-axial').fill('74');
});

test('window presets and a right-drag change window and level', async () => {
    const lung = await viewStats('axial');
    await page.click('#preset-mediastinal');
    assert.equal((await page.textContent('#window-readout')).trim(), 'W 350 / L 40');
    const mediastinal = await viewStats('axial');
    assert.notEqual(mediastinal.hash, lung.hash);
    // Mediastinal window: lung (−1000…−500 HU) is all black, so far more pixels are dark.
    assert.ok(mediastinal.dark > lung.dark + 0.1, `dark share ${lung.dark} → ${mediastinal.dark}`);
    await page.screenshot({ path: join(out, '03-p001-mediastinal.png') });

    const box = await page.locator('[data-plane="axial"] canvas').boundingBox();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down({ button: 'right' });
    await page.mouse.move(box.x + box.width / 2 + 60, box.y + box.height / 2 + 30, { steps: 4 });
    await page.mouse.up({ button: 'right' });
    // 350 HU wide → 350 / 300 HU per pixel: +60 px widens by 70 HU, +30 px lowers by 35 HU.
    assert.equal((await page.textContent('#window-readout')).trim(), 'W 420 / L 5');
    await page.click('#preset-lung');
    assert.equal((await page.textContent('#window-readout')).trim(), 'W 1500 / L -600');
});

test('zoom buttons, ctrl+wheel and Fit change the drawn size', async () => {
    const fitted = (await viewStats('sagittal')).bbox;
    await page.click('#zoom-in');
    const zoomed = (await viewStats('sagittal')).bbox;
    assert.ok(zoomed[2] - zoomed[0] > fitted[2] - fitted[0] || zoomed[0] <= 0, 'zoom-in did not enlarge');
    await page.click('#zoom-reset');
    assert.deepEqual((await viewStats('sagittal')).bbox, fitted);
    await page.locator('[data-plane="coronal"] .view-body').hover();
    const coronal = (await viewStats('coronal')).bbox;
    await page.keyboard.down('Control');
    await page.mouse.wheel(0, 200);
    await page.keyboard.up('Control');
    const smaller = (await viewStats('coronal')).bbox;
    assert.ok(smaller[2] - smaller[0] < coronal[2] - coronal[0], 'ctrl+wheel down did not zoom out');
    await page.click('#zoom-reset');
});

test('Export PNG downloads one valid PNG of the three views', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-png')]);
    assert.equal(download.suggestedFilename(), 'pulmoseg-views.png');
    const path = join(out, 'export.png');
    await download.saveAs(path);
    const png = readFileSync(path);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
    const [axial, coronal, sagittal] = await page.evaluate(() =>
        ['axial', 'coronal', 'sagittal'].map((plane) => {
            const c = document.querySelector(`[data-plane="${plane}"] canvas`);
            return [c.width, c.height];
        }));
    // As on the page: axial on the left, coronal over sagittal on the right, 8 px gaps.
    assert.equal(png.readUInt32BE(16), axial[0] + 8 + Math.max(coronal[0], sagittal[0]));
    assert.equal(png.readUInt32BE(20), Math.max(axial[1], coronal[1] + 8 + sagittal[1]));
    assert.ok(statSync(path).size > 20_000, 'the PNG is too small to hold three CT views');
});

test('bad files give a clear error and the page stays usable', async () => {
    const text = join(scratch, 'notes.nii');
    writeFileSync(text, 'This is a text file, not a CT scan.\n'.repeat(20));
    const truncated = join(scratch, 'P001-truncated.nii.gz');
    writeFileSync(truncated, readFileSync(P001).subarray(0, 4 << 20));
    const flat2d = join(scratch, 'flat-2d.nii');
    writeFileSync(flat2d, niftiBytes([2, 4, 4, 1, 1, 1, 1, 1], 16));
    const huge = join(scratch, 'huge.nii');
    writeFileSync(huge, niftiBytes([3, 1024, 1024, 1024, 1, 1, 1, 1], 16));

    const cases = [
        [text, /notes\.nii could not be opened: not a NIfTI-1 file/],
        [truncated, /P001-truncated\.nii\.gz could not be opened: (file ends after|gzip stream is corrupt)/],
        [flat2d, /flat-2d\.nii could not be opened: 2-D image, need a 3-D volume/],
        // 1024³ = 1 073 741 824 voxels against the page's 2²⁷ = 134 217 728.
        [huge, /huge\.nii could not be opened: volume of 1073741824 voxels exceeds the limit of 134217728 voxels/],
    ];
    for (const [path, message] of cases) {
        await openAndWait(() => openFile(path), 'error');
        const banner = await page.textContent('#error');
        assert.match(banner, message);
        if (path === flat2d) await page.screenshot({ path: join(out, '04-error.png') });
    }
    assert.equal(await page.locator('.empty-state').isVisible(), true);

    await openAndWait(() => openFile(SMALL_P001), 'ready');
    assert.equal(await page.locator('#error').count(), 0, 'the error banner stayed after a good file');
    assert.equal((await viewStats('axial')).empty, false);
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
});

test('privacy: every request is for one of the page’s own built assets', async () => {
    const origin = new URL(server.url).origin;
    const assets = builtAssetPaths(dist);
    assert.ok(requests.length >= 3, `only ${requests.length} requests recorded`);
    for (const url of requests) {
        if (url.startsWith(`blob:${origin}/`)) continue; // the PNG download, made in the page
        const parsed = new URL(url);
        assert.equal(parsed.origin, origin, `request to another origin: ${url}`);
        assert.ok(assets.has(parsed.pathname), `request for something that is not a built asset: ${url}`);
    }
    // The page's own .wasm, and the segmentation worker's, which only "Segment" loads.
    const wasm = [...assets].filter((p) => p.endsWith('.wasm'));
    assert.equal(wasm.length, 2);
    const worker = wasm.find((p) => p.startsWith('/segment-worker'));
    assert.ok(worker, 'no segmentation worker in the build');
    assert.ok(!requests.some((url) => url.includes('segment-worker')), 'the worker loaded before Segment');
    for (const path of wasm) timings[`${path.slice(1)}_bytes`] = statSync(join(dist, path)).size;
});

test('no errors in the console: the CSP blocked nothing and nothing panicked', async () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(pageErrors, []);
    const csp = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
});
