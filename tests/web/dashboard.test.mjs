// dashboard.test.mjs — the model page as a reader uses it, in a real browser
// (Chromium through playwright-core) against a real `strata serve` (the
// helpers of strata-server.mjs: $STRATA_BIN, $STRATA_URL, $STRATA_WEB_MODELS).
// On a 1280×800 desktop with a mouse and on a 390×844 touch phone (real touch
// events: taps through page.touchscreen, swipes through the DevTools
// protocol's Input.dispatchTouchEvent, which Chromium scrolls with as it does
// with a finger):
//
//   - a tap on a scatter point shows its photo;
//   - a vertical swipe that starts on any chart scrolls the page;
//   - a mouse drag never zooms a chart that has no visible way back;
//   - the notes under the paths graph's bars sit under their bars at any
//     width and through a redrawing; a tap on a cluster does what a click does;
//   - one highlight state, which the note above the graph describes truly;
//   - one k per layer, shared by the scatter, the elbow, the paths graph and
//     the upload, kept when switching layers;
//   - the view (layer, k, colouring, class, opened image) in the URL, for a
//     reload, a shared link and the back button;
//   - counted nouns ("1 image"), readable tooltips, the best epoch named;
//   - a refused upload keeps the previous result; a tiny image is said to be;
//   - a wrong URL gives a page, not raw JSON: an unknown model, and any
//     path outside /api without a file (status 404, web/404.html).
//
// Screenshots go to tests/artifacts/dashboard-*.png. No console errors anywhere.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { REPO, DATA, browserSession } from './strata-server.mjs';
import { ARTIFACTS, DESKTOP, PHONE, READY_TIMEOUT_S, STEP_MS, getJSON as getJSONFrom, openPage, screenshot,
  modelPageReady, loneImagePoint, pathsFigureShown, pathsDrawn, assertDrawsFigure, uploadSegmentAt, pathsLines,
  pathsSegmentAt } from './pages.mjs';
import { scatterFigure } from '../../web/scatter.js';
import { confusionFigure } from '../../web/confusion.js';
import { doubtHistogramFigure } from '../../web/doubtchart.js';
import { curvesFigure } from '../../web/curves.js';
import { withClustering, uploadPath } from '../../web/parcats.js';
import { pathsFigure, describeTarget } from '../../web/pathsgraph.js';
import { readView, viewSearch } from '../../web/viewstate.js';
import { smallImageText } from '../../web/uploadcheck.js';
import { counted } from '../../web/words.js';

let skip = null;
let server = null;
let base = null;
let browser = null;
let model = null; // the model every test looks at: a trained one, with mistakes
let tmp = null;

before(async () => {
  const session = await browserSession({ timeoutS: READY_TIMEOUT_S });
  ({ server = null, base, browser = null } = session);
  if (session.skip) {
    skip = session.skip;
    return;
  }
  const models = (await (await fetch(`${base}/api/models`)).json()).models;
  const trained = models.filter((m) => !m.seed_architecture);
  model = trained.find((m) => m.id === 'felines') || trained[0] || models[0];
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-dashboard-'));
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const getJSON = (p) => getJSONFrom(base, p);

const modelUrl = (query = '') => `/model.html?id=${encodeURIComponent(model.id)}${query}`;
const api = (p) => `/api/models/${encodeURIComponent(model.id)}${p}`;

/** A page of base + url recording console errors (pages.mjs's openPage). */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });
const shot = (page, name, fullPage = false) => screenshot(page, `dashboard-${name}`, { fullPage });

async function doubtReady(page) {
  await page.waitForSelector('#doubt-histogram .main-svg, #doubt-histogram .empty', { timeout: 4 * STEP_MS });
}

/** Puts an element in the middle of the viewport (below the sticky top bar). */
async function centre(page, sel) {
  await page.evaluate((s) => document.querySelector(s).scrollIntoView({ block: 'center', inline: 'nearest' }), sel);
  await page.waitForTimeout(250);
}

/** Every cartesian axis range of a plot (to tell whether it was zoomed). */
const axisRanges = (sel) => {
  const gd = document.querySelector(sel);
  const fl = gd._fullLayout;
  return Object.keys(fl).filter((k) => /^[xy]axis\d*$/.test(k)).sort()
    .map((k) => `${k}:${fl[k].range.map((v) => Number(v).toFixed(6)).join(',')}`);
};

/** A vertical finger swipe of `dy` px (upwards when positive) starting at
 *  (x, y), as touch events through the DevTools protocol; resolves to how
 *  far the page scrolled. */
async function swipe(page, cdp, x, y, dy = 240) {
  const before = await page.evaluate(() => window.scrollY);
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x, y }] });
  const steps = 12;
  for (let i = 1; i <= steps; i++) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x, y: y - (dy * i) / steps }] });
    await page.waitForTimeout(16);
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await page.waitForTimeout(600);
  return (await page.evaluate(() => window.scrollY)) - before;
}

/** The first test image of the model's dataset. */
function testImage() {
  const dir = path.join(DATA, model.dataset, 'test', model.classes[0]);
  const f = fs.readdirSync(dir).filter((x) => /\.(jpe?g|png)$/i.test(x)).sort()[0];
  return path.join(dir, f);
}

/** A valid PNG of w×h grey pixels, written here byte by byte. */
function pngFile(name, w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc(h * (1 + 3 * w), 128);
  for (let r = 0; r < h; r++) rows[r * (1 + 3 * w)] = 0; // filter: none
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]));
  return file;
}

/** Uploads a file and waits for its answer on the page and in the graphs.
 *  Resolves to the reply, asked again here without LIME (the model is
 *  deterministic, so it is the page's answer). */
async function upload(page, file) {
  await page.setInputFiles('#file-input', file);
  await page.waitForFunction((name) => {
    const cap = document.querySelector('#upload-result .lime-figure figcaption');
    return cap && cap.textContent === name && document.querySelector('#upload-result [data-predicted]') &&
      document.getElementById('parcats').dataset.upload === '1';
  }, path.basename(file), { timeout: 2 * STEP_MS });
  const type = /\.png$/i.test(file) ? 'image/png' : 'image/jpeg';
  const r = await fetch(`${base}${api('/predict?explain=0')}`, { method: 'POST', body: fs.readFileSync(file),
    headers: { 'Content-Type': type } });
  assert.ok(r.ok, `predict answered ${r.status}`);
  return r.json();
}

/** The cluster-count notes under the paths graph: for each bar (by its
 *  name over it), its centre and the centre of every note with its text. */
const barsAndNotes = () => {
  const gd = document.getElementById('parcats');
  const mid = (r) => r.left + r.width / 2;
  return {
    bars: [...gd.querySelectorAll('.pg-axis')].map((g) => ({
      label: gd.querySelector(`.pg-title[data-dim="${g.dataset.dim}"]`).textContent,
      x: mid(g.querySelector('.pg-outline').getBoundingClientRect()),
    })),
    notes: [...gd.querySelectorAll('.pg-note')].map((a) => ({
      text: a.textContent.replace(/\s+/g, ''), x: mid(a.getBoundingClientRect()),
    })),
  };
};

/** The note expected under a dimension of /paths (spaces removed). */
function noteText(d, paths) {
  if (d.kind === 'true') return `${paths.images.true.length}images`;
  if (d.kind === 'pred') return 'accuracy';
  return `k${d.k}purity${d.purity.toFixed(2)}ARI${d.ari.toFixed(2)}`;
}

// --- 1. a tap on a scatter point shows its photo ------------------------------

test('phone: a tap on a scatter point shows its photo', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext(PHONE);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await centre(page, '#scatter');
  // The image point farthest from every other point and centre, so that the
  // tap can only mean it.
  const target = await page.evaluate(loneImagePoint);
  const scatter = await getJSON(api(`/layers/${target.layer}/scatter?k=${target.k}`));
  const id = scatter.points.id[target.index];
  assert.equal(await page.locator('#scatter-tip').isVisible(), false);
  await page.touchscreen.tap(target.x, target.y);
  await page.waitForSelector('#scatter-tip:not([hidden]) img', { timeout: 5000 });
  const tip = await page.evaluate(() => {
    const tip = document.getElementById('scatter-tip');
    return { src: tip.querySelector('img').getAttribute('src'), text: tip.innerText };
  });
  assert.ok(tip.src.includes(`/images/${id.split('/').map(encodeURIComponent).join('/')}/thumb`), `${tip.src} shows ${id}`);
  assert.match(tip.text, new RegExp(`true\\s+${scatter.classes[scatter.points.true[target.index]]}`));
  await page.waitForFunction(() => {
    const img = document.querySelector('#scatter-tip img');
    return img.complete && img.naturalWidth > 0;
  });
  await shot(page, 'tap-phone');
  // The page says so.
  assert.match(await page.locator('#layer-section .section-lead').innerText(), /\btap\b/i);
  // A tap away from the points puts the photo away.
  await page.touchscreen.tap(20, 200);
  await page.waitForSelector('#scatter-tip[hidden]', { state: 'attached', timeout: 5000 });
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 2. a vertical swipe on a chart scrolls the page ----------------------------

test('phone: a vertical swipe that starts on any chart scrolls the page and leaves the chart as it was', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext(PHONE);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  const cdp = await ctx.newCDPSession(page);
  await upload(page, testImage()); // for the probability bars
  await doubtReady(page);
  const charts = ['#parcats', '#scatter', '#elbow', '#confusion', '#curves', '#doubt-histogram', '#upload-bars'];
  const failures = [];
  for (const sel of charts) {
    await centre(page, sel);
    const box = await page.locator(sel).boundingBox();
    const cartesian = await page.evaluate((s) => !!document.querySelector(s)._fullLayout?.xaxis, sel);
    const before = cartesian ? await page.evaluate(axisRanges, sel) : null;
    // From the middle of the plot area (the bars' left half for the bars),
    // within the window (the graph of paths is wider than a phone).
    const x = Math.min(box.x + box.width * (sel === '#upload-bars' ? 0.45 : 0.55), PHONE.viewport.width - 30);
    const y = Math.min(box.y + box.height / 2, 844 - 60);
    const scrolled = await swipe(page, cdp, x, y);
    const afterRanges = cartesian ? await page.evaluate(axisRanges, sel) : null;
    if (scrolled < 120) failures.push(`${sel}: the page scrolled ${scrolled} px for a 240 px swipe`);
    if (cartesian && JSON.stringify(afterRanges) !== JSON.stringify(before)) {
      failures.push(`${sel}: the swipe moved the chart to ${afterRanges} from ${before}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 3. no drag-zoom without a way back ------------------------------------------

test('desktop: a mouse drag does not zoom the confusion matrix, curves, elbow or doubt histogram', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await doubtReady(page);
  for (const sel of ['#confusion', '#curves', '#elbow', '#doubt-histogram']) {
    await centre(page, sel);
    const before = await page.evaluate(axisRanges, sel);
    const area = await page.locator(`${sel} .nsewdrag`).first().boundingBox();
    await page.mouse.move(area.x + area.width * 0.25, area.y + area.height * 0.25);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) {
      await page.mouse.move(area.x + area.width * (0.25 + 0.04 * i), area.y + area.height * (0.25 + 0.04 * i));
    }
    await page.mouse.up();
    await page.waitForTimeout(400);
    const afterRanges = await page.evaluate(axisRanges, sel);
    // Either the drag changed nothing, or a reset button is in sight.
    const reset = await page.locator(`${sel} .modebar-btn[data-attr="zoom"][data-val="reset"], ` +
      `${sel} .modebar-btn[data-val="reset"]`).first();
    const canReset = (await reset.count()) > 0 && await reset.isVisible();
    assert.ok(canReset || JSON.stringify(afterRanges) === JSON.stringify(before),
      `${sel}: the drag zoomed to ${afterRanges} from ${before}, and there is no visible reset`);
  }
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 4. the notes under the bars stay under them; a tap is a click -----------------

/** Asserts that every note of `shown` (barsAndNotes) reads as /paths says
 *  and is centred (±3 px) under its own bar. */
function assertNotesUnderBars(shown, paths, when) {
  assert.deepEqual(shown.bars.map((b) => b.label), paths.dimensions.map((d) => d.label), `${when}: the bars in order`);
  const off = [];
  for (const d of paths.dimensions) {
    const bar = shown.bars.find((b) => b.label === d.label);
    const want = noteText(d, paths);
    const notes = shown.notes.filter((n) => n.text.startsWith(want));
    assert.equal(notes.length, 1, `${when}: one note reads "${want}"`);
    if (Math.abs(notes[0].x - bar.x) > 3) off.push(`${d.label}: its note is ${(notes[0].x - bar.x).toFixed(0)} px off`);
  }
  assert.deepEqual(off, [], when);
}

test('paths graph: every note stays under its bar, at any width and through a redrawing', async (t) => {
  if (skip) { t.skip(skip); return; }
  const paths = await getJSON(api('/paths'));
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await centre(page, '#parcats');
  assertNotesUnderBars(await page.evaluate(barsAndNotes), paths, '1280 px');
  // A narrower window: the graph is drawn again at its new width.
  const wide = await page.evaluate(() => document.querySelector('#parcats svg').getAttribute('width'));
  await page.setViewportSize({ width: 900, height: 800 });
  await page.waitForFunction((w) => document.querySelector('#parcats svg').getAttribute('width') !== w, wide);
  assertNotesUnderBars(await page.evaluate(barsAndNotes), paths, '900 px');
  // A highlight redraws the graph: the notes stay.
  await page.click(`#class-filter button[data-class="${paths.classes[0]}"]`);
  await page.waitForFunction(() => document.querySelector('#parcats .pg-band[data-color]:not([data-color="0"])'));
  assertNotesUnderBars(await page.evaluate(barsAndNotes), paths, 'after a highlight');
  await shot(page, 'paths-notes');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('phone: a tap on a cluster of the graph of paths opens its images, as a click does; the page still scrolls', async (t) => {
  if (skip) { t.skip(skip); return; }
  const paths = await getJSON(api('/paths'));
  const di = paths.dimensions.findIndex((d) => d.kind === 'layer');
  const dim = paths.dimensions[di];
  const ctx = await browser.newContext(PHONE);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await centre(page, '#parcats');
  const fig = await page.evaluate(pathsFigureShown);
  const ci = fig.dimensions[di].counts.findIndex((m) => m > 0);
  const c = fig.dimensions[di].categoryarray[ci];
  const at = await page.evaluate(pathsSegmentAt, [di, c]);
  await page.waitForTimeout(300);
  await page.touchscreen.tap(at.x, at.y);
  // Its tooltip, in words, and its gallery under the graph, in the URL.
  await page.waitForSelector('#parcats .pg-tip:not([hidden])');
  const tip = await page.locator('#parcats .pg-tip').innerText();
  assert.match(tip, new RegExp(`^${dim.label} cluster ${c}`));
  assert.match(tip, /\d+ images? · \d+\s% of all \d+/);
  await page.waitForSelector('#paths-linked .linked-gallery[data-kind="cluster"]');
  assert.equal(new URL(page.url()).searchParams.get('cluster'), `${dim.layer}.${c}`);
  const size = fig.dimensions[di].counts[ci];
  assert.match(await page.locator('#highlight-note').innerText(), new RegExp(`Highlighting ${size} of ${paths.images.true.length} images: .*cluster ${c} of ${dim.label}`));
  await page.waitForTimeout(600); // the page scrolls the gallery into view
  await shot(page, 'paths-tap-phone');
  // A tap elsewhere puts the tooltip away.
  await page.touchscreen.tap(20, 300);
  await page.waitForSelector('#parcats .pg-tip[hidden]', { state: 'attached' });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('paths graph: with a keyboard, one tab stop; arrows go from segment to segment, Enter picks one', async (t) => {
  if (skip) { t.skip(skip); return; }
  const paths = await getJSON(api('/paths'));
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  assert.equal(await page.locator('#parcats [tabindex="0"]').count(), 1, 'one tab stop');
  await page.locator('#class-filter button').last().focus();
  await page.keyboard.press('Tab');
  const focused = () => page.evaluate(() => {
    const a = document.activeElement;
    return a.classList.contains('pg-seg') ? { dim: Number(a.dataset.dim), value: a.dataset.value, label: a.getAttribute('aria-label') } : null;
  });
  const first = await focused();
  assert.ok(first, 'Tab reaches the graph');
  assert.deepEqual([first.dim, first.value], [0, paths.classes[0]]);
  assert.match(first.label, new RegExp(`^true class ${paths.classes[0]}: \\d+ images`));
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  const there = await focused();
  assert.equal(there.dim, 1);
  assert.ok(await page.locator('#parcats .pg-tip').isVisible(), 'the focused segment shows its tooltip');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#paths-linked .linked-gallery[data-kind="cluster"]');
  assert.equal(new URL(page.url()).searchParams.get('cluster'), `${paths.dimensions[1].layer}.${there.value}`);
  assert.deepEqual(await focused(), there, 'the focus stays on its segment through the redrawing');
  // The next Tab leaves the graph.
  await page.keyboard.press('Tab');
  assert.equal(await focused(), null);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 5. one highlight state, said truly ---------------------------------------------

/** What the graph shows and what the page says of it (C: the number of
 *  classes, the grey line's colour index): lines in colour, read from the
 *  test images' stripes on the first bar. */
const highlightState = (C) => {
  const gd = document.getElementById('parcats');
  const upload = gd.dataset.upload === '1';
  const bands = [...gd.querySelectorAll('.pg-axis[data-dim="0"] .pg-seg:not([data-upload]) .pg-band')];
  const sum = (list) => list.reduce((s, b) => s + Number(b.dataset.count), 0);
  return {
    coloured: sum(bands.filter((b) => b.dataset.color !== String(C))),
    n: sum(bands),
    upload,
    note: document.getElementById('highlight-note').innerText,
    uploadNote: document.querySelector('#upload-result .path-note')?.innerText || '',
    pressed: [...document.querySelectorAll('#class-filter button[aria-pressed="true"]')].map((b) => b.dataset.class),
  };
};

function assertTruthful(s, when) {
  const m = /Highlighting (\d+) of (\d+)/.exec(s.note);
  if (m) {
    assert.equal(Number(m[1]), s.coloured, `${when}: the note says ${m[1]} lines in colour, the graph has ${s.coloured}`);
    assert.equal(Number(m[2]), s.n);
  } else if (s.upload) {
    assert.equal(s.coloured, 0, `${when}: nothing highlighted beside an upload, yet ${s.coloured} lines in colour`);
    assert.match(s.note, /grey/, `${when}: the note says why the lines are grey`);
  } else {
    assert.equal(s.coloured, s.n, `${when}: nothing highlighted, yet some lines grey`);
  }
  // Whatever else describes the graph agrees with it.
  if (/grey/.test(s.uploadNote)) assert.equal(s.coloured, 0, `${when}: the upload says the lines are grey, ${s.coloured} are not`);
}

test('paths graph: one highlight state, which the page describes truly, through a mistake and an upload', async (t) => {
  if (skip) { t.skip(skip); return; }
  const C = model.classes.length;
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await page.waitForSelector('#gallery .gallery-item');
  await page.locator('#gallery .gallery-item').first().click();
  await page.waitForFunction(() => /Highlighting/.test(document.getElementById('highlight-note').innerText));
  assertTruthful(await page.evaluate(highlightState, C), 'a mistake opened');
  // The upload arrives after: still one state, and what is said of it is true.
  await upload(page, testImage());
  assertTruthful(await page.evaluate(highlightState, C), 'then an upload');
  // A class picked afterwards: its lines in colour, the upload still drawn, said so.
  await page.click(`#class-filter button[data-class="${model.classes[1]}"]`);
  await page.waitForFunction((c) => /Highlighting/.test(document.getElementById('highlight-note').innerText) &&
    document.querySelector(`#class-filter button[data-class="${c}"]`).getAttribute('aria-pressed') === 'true', model.classes[1]);
  const s2 = await page.evaluate(highlightState, C);
  assertTruthful(s2, 'then a class');
  assert.deepEqual(s2.pressed, [model.classes[1]]);
  assert.match(s2.note, /black line/, 'the note still points at the upload\'s line');
  await page.locator('#paths-section').scrollIntoViewIfNeeded();
  await shot(page, 'highlight-after-upload');
  // "show all paths" ends the highlight, and the class button says so.
  await page.click('#highlight-note button');
  await page.waitForFunction(() => !/Highlighting/.test(document.getElementById('highlight-note').innerText));
  const s3 = await page.evaluate(highlightState, C);
  assertTruthful(s3, 'then show all');
  assert.deepEqual(s3.pressed, []);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 6. one k per layer, everywhere -------------------------------------------------

test('k: one k per layer, shared by the scatter, elbow, paths graph and upload, kept across layers', async (t) => {
  if (skip) { t.skip(skip); return; }
  const paths = await getJSON(api('/paths'));
  const layerDims = paths.dimensions.filter((d) => d.kind === 'layer');
  const j = Math.min(1, layerDims.length - 1);
  const dim = layerDims[j];
  const k = dim.k === 3 ? 5 : 3;
  const reclustered = await getJSON(api(`/layers/${dim.layer}/scatter?k=${k}`));
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await page.click(`#layer-buttons button[data-layer="${dim.layer}"]`);
  await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
    !document.querySelector('#layer-stats .progress'), dim.layer);
  await page.click(`#k-selector button[data-k="${k}"]`);
  await page.waitForFunction((kk) => document.getElementById('scatter').dataset.k === String(kk) &&
    !document.querySelector('#layer-stats .progress'), k);
  // The paths graph follows: that layer's clusters are the scatter's, its note says k.
  const di = paths.dimensions.indexOf(dim);
  await page.waitForFunction(([d, kk]) => document.querySelectorAll(`#parcats .pg-axis[data-dim="${d}"] .pg-seg`).length === kk,
    [di, k]);
  const shownFig = await page.evaluate(pathsFigureShown);
  assert.deepEqual(shownFig.dimensions[di].values.slice(0, paths.images.true.length), reclustered.points.cluster);
  assertDrawsFigure(await page.evaluate(pathsDrawn), shownFig, `${dim.label} at k = ${k}`);
  const notes = await page.evaluate(barsAndNotes);
  const bar = notes.bars.find((b) => b.label === dim.label);
  assert.ok(bar, `a bar labelled ${dim.label} among ${notes.bars.map((b) => b.label).join(', ')}`);
  const note = notes.notes.find((n) => Math.abs(n.x - bar.x) <= 3);
  assert.ok(note.text.startsWith(`k${k}purity${reclustered.purity.toFixed(2)}ARI${reclustered.ari.toFixed(2)}`), note.text);
  // An upload now: the star and the path in its cluster at this k, as
  // predict?k<layer>=<k> gives it (the page asks it again so).
  await upload(page, testImage());
  const atK = await (await fetch(`${base}${api(`/predict?explain=0&k${dim.layer}=${k}`)}`, { method: 'POST',
    body: fs.readFileSync(testImage()), headers: { 'Content-Type': 'image/jpeg' } })).json();
  const want = atK.clusters_at[0].cluster;
  await page.waitForFunction((kk) => {
    const tr = document.getElementById('scatter').data.find((d) => d.name === 'your image');
    return tr && tr.meta && tr.meta.k === kk && Number.isInteger(tr.meta.cluster);
  }, k);
  const star = await page.evaluate(() => document.getElementById('scatter').data.find((tr) => tr.name === 'your image'));
  assert.equal(star.meta.cluster, want, `star: ${star.text[0]}`);
  assert.equal(star.text[0], `your image · cluster ${want} at k = ${k}`);
  await page.waitForFunction(([d, c]) => document.querySelector(`#parcats .pg-axis[data-dim="${d}"] .pg-seg[data-upload]`)
    ?.dataset.value === String(c), [di, want]);
  assert.equal(await page.evaluate(uploadSegmentAt, di), String(want));
  // Another layer and back: the k chosen here is kept, everywhere.
  const other = layerDims[j === 0 ? 1 : 0];
  await page.click(`#layer-buttons button[data-layer="${other.layer}"]`);
  await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
    !document.querySelector('#layer-stats .progress'), other.layer);
  assert.equal(await page.evaluate(() => document.getElementById('scatter').dataset.k), String(other.k));
  await page.click(`#layer-buttons button[data-layer="${dim.layer}"]`);
  await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
    !document.querySelector('#layer-stats .progress'), dim.layer);
  assert.equal(await page.evaluate(() => document.getElementById('scatter').dataset.k), String(k));
  assert.equal(await page.getAttribute(`#k-selector button[data-k="${k}"]`, 'aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => document.getElementById('elbow').data[1].x[0]), k);
  assert.equal(new Set((await page.evaluate(pathsFigureShown)).dimensions[di].values.slice(0, -1)).size, k);
  await page.locator('#layer-section').scrollIntoViewIfNeeded();
  await shot(page, 'k-kept');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('k: withClustering puts another k of a layer into the paths document; an upload\'s cluster there from clusters_at', () => {
  const paths = {
    classes: ['a', 'b'],
    dimensions: [{ label: 'true class', kind: 'true' }, { label: 'c1', kind: 'layer', layer: 0, k: 2, purity: 1, ari: 1 },
      { label: 'd1', kind: 'layer', layer: 2, k: 2, purity: 0.5, ari: 0 }, { label: 'predicted', kind: 'pred' }],
    images: { id: ['a/0', 'a/1', 'b/0'], true: [0, 0, 1], pred: [0, 1, 1], clusters: [[0, 1], [0, 0], [1, 1]], path: [0, 1, 2] },
    distinct_paths: 3,
  };
  // The scatter reply lists the same images in another order.
  const scatter = { layer: { index: 2 }, k: 3, purity: 0.9, ari: 0.4, nmi: 0.5,
    points: { id: ['b/0', 'a/0', 'a/1'], cluster: [2, 0, 0] } };
  const re = withClustering(paths, scatter);
  assert.deepEqual(re.images.clusters, [[0, 0], [0, 0], [1, 2]]);
  assert.deepEqual(re.dimensions[2], { label: 'd1', kind: 'layer', layer: 2, k: 3, purity: 0.9, ari: 0.4, nmi: 0.5, reclustered: true });
  assert.deepEqual(re.images.path, [0, 1, 2]); // (a,0,0,a) (a,0,0,b) (b,1,2,b)
  assert.equal(re.distinct_paths, 3);
  assert.deepEqual(paths.images.clusters, [[0, 1], [0, 0], [1, 1]], 'the served document is left as it was');
  // A layer the graph does not show: nothing changes.
  assert.equal(withClustering(paths, { ...scatter, layer: { index: 1 } }), paths);
  // The upload keeps its cluster where the k is the analysis's; elsewhere
  // it is unknown ("?") until predict's clusters_at for that k tells it.
  const up = uploadPath(re, { predicted: 'b', layers: [{ index: 0, cluster: 1 }, { index: 2, cluster: 0 }] });
  assert.deepEqual(up, { clusters: [1, null], pred: 1 });
  const fig = pathsFigure(re, { upload: up });
  assert.equal(fig.dimensions[2].values[3], -1);
  const known = uploadPath(re, { predicted: 'b', layers: [{ index: 0, cluster: 1 }, { index: 2, cluster: 0 }],
    clusters_at: [{ layer: 2, k: 3, cluster: 2 }] });
  assert.deepEqual(known, { clusters: [1, 2], pred: 1 });
  assert.equal(pathsFigure(re, { upload: known }).dimensions[2].values[3], 2);
  assert.deepEqual(fig.dimensions[2].note, ['k 3', 'purity 0.90', 'ARI 0.40']);
});

test('URL: the view read from a query string and written back', () => {
  const v = readView('?id=felines&layer=3&k3=5&k7=2&colour=class&class=jaguar&image=jaguar%2F0012.jpg');
  assert.equal(v.layer, 3);
  assert.deepEqual([...v.k], [[3, 5], [7, 2]]);
  assert.equal(v.colour, 'class');
  assert.equal(v.cls, 'jaguar');
  assert.equal(v.image, 'jaguar/0012.jpg');
  assert.equal(viewSearch('felines', v), '?id=felines&layer=3&k3=5&k7=2&colour=class&class=jaguar&image=jaguar%2F0012.jpg');
  // Defaults are left out; junk is ignored.
  assert.equal(viewSearch('m 1', readView('?id=x&layer=-1&k2=abc&kx=3&colour=red')), '?id=m+1');
  assert.deepEqual(readView(''), { layer: null, k: new Map(), colour: 'cluster', cls: null, image: null });
});

test('words: counted nouns and the tiny-image sentence', () => {
  assert.equal(counted(0, 'image'), 'no images');
  assert.equal(counted(1, 'image'), '1 image');
  assert.equal(counted(72, 'image'), '72 images');
  assert.equal(counted(3, 'class', 'classes'), '3 classes');
  const input = { width: 96, height: 96 };
  assert.match(smallImageText({ width: 1, height: 1 }, input), /only 1\u00a0×\u00a01 pixel,.*96\u00a0×\u00a096 pixels.*96 times/);
  assert.match(smallImageText({ width: 40, height: 300 }, input), /enlarged 2 times, with little/);
  assert.equal(smallImageText({ width: 48, height: 48 }, input), null, 'half the size: not far smaller');
  assert.equal(smallImageText({ width: 640, height: 480 }, input), null);
  assert.equal(smallImageText(null, input), null);
});

// --- 7. the view in the URL -----------------------------------------------------------

test('URL: layer, k, colouring, class and the opened image survive a reload; back undoes a step', async (t) => {
  if (skip) { t.skip(skip); return; }
  const paths = await getJSON(api('/paths'));
  const layerDims = paths.dimensions.filter((d) => d.kind === 'layer');
  const dim = layerDims[Math.min(2, layerDims.length - 1)];
  const k = dim.k === 4 ? 6 : 4;
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await page.click(`#layer-buttons button[data-layer="${dim.layer}"]`);
  await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
    !document.querySelector('#layer-stats .progress'), dim.layer);
  await page.click(`#k-selector button[data-k="${k}"]`);
  await page.waitForFunction((kk) => document.getElementById('scatter').dataset.k === String(kk) &&
    !document.querySelector('#layer-stats .progress'), k);
  await page.click('#colour-class');
  await page.click(`#class-filter button[data-class="${model.classes[2 % model.classes.length]}"]`);
  await page.waitForSelector('#gallery .gallery-item');
  const item = page.locator('#gallery .gallery-item').nth(1);
  const title = await item.getAttribute('title');
  await item.click();
  await page.waitForSelector('#mistake-detail:not([hidden]) h3');
  const heading = await page.locator('#mistake-detail h3').innerText();
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('id'), model.id);
  assert.equal(url.searchParams.get('layer'), String(dim.layer));
  assert.ok(url.searchParams.get('image'), `the opened image is in ${url}`);
  assert.equal(url.searchParams.get('colour'), 'class');

  // Reload (or open the link elsewhere): the same view.
  await page.reload();
  await modelPageReady(page);
  await page.waitForFunction(([l, kk]) => {
    const gd = document.getElementById('scatter');
    return gd.dataset.layer === String(l) && gd.dataset.k === String(kk) && !document.querySelector('#layer-stats .progress');
  }, [dim.layer, k]);
  assert.equal(await page.getAttribute(`#layer-buttons button[data-layer="${dim.layer}"]`, 'aria-pressed'), 'true');
  assert.equal(await page.getAttribute('#colour-class', 'aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => document.getElementById('scatter').data[0].name), model.classes[0]);
  await page.waitForSelector('#mistake-detail:not([hidden]) h3');
  assert.equal(await page.locator('#mistake-detail h3').innerText(), heading);
  assert.equal(await page.locator(`#gallery .gallery-item[title="${title}"]`).getAttribute('aria-pressed'), 'true');
  const di = paths.dimensions.indexOf(dim);
  assert.equal(await page.evaluate((d) => document.querySelectorAll(`#parcats .pg-axis[data-dim="${d}"] .pg-seg`).length, di), k);
  await shot(page, 'url-restored');

  // Back: the step before (the class picked, no image open), without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.goBack();
  await page.waitForSelector('#mistake-detail', { state: 'hidden' });
  assert.equal(await page.evaluate(() => window.__sameDocument), true);
  assert.equal(new URL(page.url()).searchParams.get('image'), null);
  assert.equal(await page.getAttribute(`#class-filter button[data-class="${model.classes[2 % model.classes.length]}"]`,
    'aria-pressed'), 'true');
  // Back again: the class is no longer highlighted.
  await page.goBack();
  await page.waitForFunction(() => !document.querySelector('#class-filter button[aria-pressed="true"]'));
  // Back again: coloured by cluster.
  await page.goBack();
  await page.waitForFunction(() => document.getElementById('colour-cluster').getAttribute('aria-pressed') === 'true');
  // Back again: the analysed k of that layer.
  await page.goBack();
  await page.waitForFunction((kk) => document.getElementById('scatter').dataset.k === String(kk) &&
    !document.querySelector('#layer-stats .progress'), dim.k);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 8. words ----------------------------------------------------------------------------

test('words: "1 image", not "1 images"; no raw Plotly counts', () => {
  const centres = scatterFigure({
    k: 3, classes: ['a', 'b'], explained_variance_ratio: [0.5, 0.2],
    points: { x: [0], y: [0], true: [0], pred: [0], cluster: [0], id: ['a/0.jpg'] },
    centers: { x: [0, 1, 2], y: [0, 1, 2], size: [1, 0, 12], majority: [0, -1, 1] },
  }).data.find((tr) => tr.name === 'cluster centres').text;
  assert.match(centres[0], /· 1 image\b/);
  assert.doesNotMatch(centres.join(' '), /\b[01] images/);
  assert.match(centres[2], /· 12 images/);

  const confusion = confusionFigure(['a', 'b'], [[1, 0], [2, 7]]).data[0];
  const cells = confusion.customdata.flat().join(' | ');
  assert.doesNotMatch(cells + confusion.hovertemplate, /\b[01] images|%\{z\} images/);
  assert.match(cells, /1 image\b/);

  const hist = doubtHistogramFigure({
    n_id: 1, n_ood: 2, levels: { medium: 0.8, high: 0.95 },
    histogram: { edges: [0, 0.5, 1], id: [1, 0], ood: [0, 2] },
  }).data;
  const bins = hist.flatMap((tr) => tr.customdata.map((c) => c.join(' '))).join(' | ') + hist.map((tr) => tr.hovertemplate).join(' ');
  assert.doesNotMatch(bins, /\b[01] images|\}\s*images/);

  const pc = pathsFigure({
    classes: ['a', 'b'],
    dimensions: [{ label: 'true class', kind: 'true' }, { label: 'c1', kind: 'layer', layer: 0, k: 2, purity: 1, ari: 1 },
      { label: 'predicted', kind: 'pred' }],
    images: { true: [0, 1], pred: [0, 1], clusters: [[0], [1]] },
  });
  const tips = [describeTarget(pc, { dim: 1, value: 0 }), describeTarget(pc, { gap: 0, from: 'a', to: 0, color: 0 })]
    .map((tp) => [tp.title, ...tp.lines].join(' ')).join(' | ');
  assert.match(tips, /1 image · 50\u00a0% of all 2/, 'the paths graph has its own tooltip, in words');
  assert.doesNotMatch(tips, /Count|P\(|\b1 images/);

  const curves = curvesFigure([{ epoch: 1, train_loss: 1, val_loss: 1, train_acc: 0.5, val_acc: 0.5 },
    { epoch: 2, train_loss: 0.5, val_loss: 0.7, train_acc: 0.8, val_acc: 0.7 }], { bestEpoch: 2 });
  assert.ok((curves.layout.annotations || []).some((a) => /best/i.test(a.text) && /2/.test(a.text)),
    'the best-epoch line is labelled');
});

test('words: the paths graph\'s tooltip and the best-epoch label in the browser', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl());
  await modelPageReady(page);
  await centre(page, '#parcats');
  const at = await page.evaluate(() => {
    const r = document.querySelector('#parcats .pg-axis[data-dim="2"] .pg-outline').getBoundingClientRect();
    return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
  });
  await page.mouse.move(at.x, at.y);
  await page.waitForSelector('#parcats .pg-tip:not([hidden])');
  const tip = await page.locator('#parcats .pg-tip').innerText();
  assert.doesNotMatch(tip, /Count:|P\(/, tip);
  assert.match(tip, /\d+ images? · \d+\s% of all \d+/, tip);
  // A ribbon's too: its images as a share of their class.
  const rib = await page.evaluate(() => {
    const r = [...document.querySelectorAll('#parcats .pg-ribbon:not(.is-grey)')]
      .sort((a, b) => b.dataset.count - a.dataset.count)[0].getBoundingClientRect();
    return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
  });
  await page.mouse.move(rib.x, rib.y);
  await page.waitForFunction(() => / → /.test(document.querySelector('#parcats .pg-tip').innerText));
  assert.match(await page.locator('#parcats .pg-tip').innerText(), /\d+ images? · \d+\s% of \w+/);
  await shot(page, 'parcats-tooltip');
  await centre(page, '#curves');
  const labels = await page.$$eval('#curves g.annotation', (as) => as.map((a) => a.textContent));
  assert.ok(labels.some((l) => /best epoch/i.test(l)), `curves' labels: ${labels.join(' | ')}`);
  // The gallery's count agrees with its noun.
  await page.waitForSelector('#gallery .gallery-item');
  const body = await page.locator('main').innerText();
  assert.doesNotMatch(body, /\b1 (test )?images\b/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 9. uploads: a refusal keeps the last answer; a tiny image is said to be --------------

test('upload: a refused file keeps the previous result; a tiny image is said to be tiny', async (t) => {
  if (skip) { t.skip(skip); return; }
  const detail = await getJSON(api(''));
  const text = path.join(tmp, 'notes.txt');
  fs.writeFileSync(text, 'This is not an image.\n');
  const fake = path.join(tmp, 'fake.jpg');
  fs.writeFileSync(fake, 'Not an image either.\n');
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl(), /status of 4(00|15)/);
  await modelPageReady(page);
  const reply = await upload(page, testImage());
  const lines = async () => page.evaluate(pathsLines);
  const n = await lines();
  // A wrong type: refused, and the previous answer stays, on the page and in the graphs.
  await page.setInputFiles('#file-input', text);
  await page.waitForSelector('#upload-result[data-refused="type"] .error');
  const kept = page.locator('#upload-result [data-predicted]');
  assert.equal(await kept.count(), 1, 'the previous answer is still shown');
  assert.equal(await kept.getAttribute('data-predicted'), reply.predicted);
  assert.equal(await lines(), n);
  assert.ok(await page.evaluate(() => document.getElementById('scatter').data.some((tr) => tr.name === 'your image')));
  await centre(page, '#upload-result');
  await shot(page, 'upload-refused-kept');
  // Refused by the server: the same.
  const refused = page.waitForResponse((r) => r.url().includes('/predict') && r.status() >= 400);
  await page.setInputFiles('#file-input', fake);
  await refused;
  await page.waitForSelector('#upload-result .error .error-detail');
  assert.equal(await kept.count(), 1, 'the previous answer is still shown');
  assert.equal(await kept.getAttribute('data-predicted'), reply.predicted);
  assert.equal(await lines(), n);
  // A 1×1 image: answered, and said to be far smaller than what the model sees.
  await upload(page, pngFile('dot.png', 1, 1));
  assert.equal(await page.locator('#upload-result .error').count(), 0, 'the refusal is gone with a new answer');
  const warn = page.locator('#upload-result .small-image');
  assert.equal(await warn.count(), 1, 'a note says the image is tiny');
  const said = await warn.innerText();
  assert.match(said, /1\s*×\s*1 pixel/);
  assert.match(said, new RegExp(`${detail.input.width}\\s*×\\s*${detail.input.height}`));
  await centre(page, '#upload-result .small-image');
  await shot(page, 'upload-tiny');
  // A photo of about the model's size gets no such note.
  await upload(page, testImage());
  assert.equal(await page.locator('#upload-result .small-image').count(), 0);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 10. a wrong URL is a page ----------------------------------------------------------------

test('wrong URLs: an unknown model and an unknown page each give a page with a way home', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext(PHONE);
  const { page, errors } = await open(ctx, '/model.html?id=nope', /status of 404/);
  await page.waitForSelector('#model-header .error');
  assert.doesNotMatch(await page.locator('body').innerText(), /^\s*\{"error"/);
  assert.ok(await page.locator('#model-header a[href="/"]').count(), 'a link home');
  await shot(page, 'unknown-model');
  // The 404 page itself, as the server serves it for unknown paths.
  const p2 = await open(ctx, '/404.html');
  await p2.page.waitForSelector('h1');
  assert.match(await p2.page.locator('h1').innerText(), /not found|no page/i);
  assert.ok(await p2.page.locator('main a[href="/"]').count(), 'a link home');
  assert.ok(await p2.page.evaluate(() => getComputedStyle(document.body).fontFamily.includes('system-ui')), 'strata\'s stylesheet');
  await shot(p2.page, 'not-found');
  assert.deepEqual(errors, []);
  assert.deepEqual(p2.errors, []);
  // An unknown path outside /api: status 404 with web/404.html, whatever the path looks like.
  const notFound = fs.readFileSync(path.join(REPO, 'web', '404.html'), 'utf8');
  for (const p of ['/nope.html', '/nope', '/a/b/c.html', '/static/nope.css']) {
    const r = await fetch(`${base}${p}`, { headers: { Accept: 'text/html' } });
    assert.equal(r.status, 404, `${p}: status`);
    assert.match(r.headers.get('content-type') || '', /^text\/html/, `${p}: content type`);
    assert.equal(await r.text(), notFound, `${p}: the body is web/404.html`);
  }
  // Under /api a wrong URL stays a JSON error for programs.
  const apiMiss = await fetch(`${base}/api/nope`);
  assert.equal(apiMiss.status, 404);
  assert.match(apiMiss.headers.get('content-type') || '', /json/);
  assert.equal((await apiMiss.json()).error.code, 'not_found');
  // In a browser, a wrong page URL shows that page, styled, with its way home.
  const p3 = await open(ctx, '/nope/deeper.html', /status of 404/);
  assert.equal((await p3.page.reload()).status(), 404);
  await p3.page.waitForSelector('h1');
  assert.match(await p3.page.locator('h1').innerText(), /not found|no page/i);
  assert.ok(await p3.page.locator('main a[href="/"]').count(), 'a link home');
  assert.ok(await p3.page.evaluate(() => getComputedStyle(document.body).fontFamily.includes('system-ui')), 'strata\'s stylesheet');
  assert.ok(await p3.page.evaluate(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0)), 'its logo loads');
  await shot(p3.page, 'not-found-url');
  await p3.page.locator('main a[href="/"]').tap();
  await p3.page.waitForSelector('.dataset-card');
  assert.deepEqual(p3.errors, []);
  await ctx.close();
});
