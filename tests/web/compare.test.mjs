// compare.test.mjs — the "compare explanation methods" view (web/compare.js).
//
// Without a browser: compareView() on a reply written out here (map values
// to colours, colour-bar ends, the best card and the random one flagged,
// per-score bests, details in plain words, the curves' figure), and api.js's
// explain() against a local HTTP server (query string, optional multipart
// body, error envelope). Every expected value is worked out by hand.
//
// In Chromium (playwright-core) against a real `strata serve` started here
// on a free port (binary: $STRATA_BIN, default build/server/strata; SKIPPED
// with the reason when it is missing, as tests/web/browser.test.mjs is;
// $STRATA_URL points at a running server instead): on the felines model, a
// mistake's "Compare explanation methods" button gives five cards whose
// canvases hold the reply's maps (read back pixel by pixel), whose AUCs are
// the API's, and which follow the class picker (a reply overtaken by a newer
// one never shows); an upload gets the same view for the uploaded file; on a
// 390×844 touch phone the cards stack in one column, the page does not
// scroll sideways, and a vertical swipe that starts on a curve chart
// scrolls the page. No console errors. Screenshots: tests/artifacts/
// compare-desktop.png, compare-upload-desktop.png, compare-phone.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import {
  compareView, mapColor, mapPixels, formatScale, scaleRange, methodDetails, faithfulnessFigure, colorBarGradient,
} from '../../web/compare.js';
import { explain, setBase, ApiError } from '../../web/api.js';
import { DATA, browserSession } from './strata-server.mjs';
import { ARTIFACTS, DESKTOP_SIZE as DESKTOP, PHONE_SIZE as PHONE, READY_TIMEOUT_S, STEP_MS, openPage } from './pages.mjs';

// --- the reply → drawing function ------------------------------------------------

const curve = (f) => Array.from({ length: 21 }, (_, i) => f(i / 20));

// A reply of POST /api/models/felines/explain?image=3&class=leopard, shrunk
// to a 3×2 map; AUCs chosen so that each score has a clear best.
function method(name, title, values, scale, del, ins, details) {
  return {
    method: name, title, map: { width: 3, height: 2, scale, values },
    deletion_auc: del, insertion_auc: ins,
    deletion: curve((x) => 0.6 * (1 - x)), insertion: curve((x) => 0.6 * x),
    ms: 5, ms_faithfulness: 20, ...(details ? { details } : {}),
  };
}
const REPLY = {
  model: 'felines',
  image: { index: 3, id: 'cheetah/0003.jpg' },
  class: 'leopard', label: 2, probability: 0.13, predicted: 'jaguar', true: 'cheetah',
  probabilities: [
    { class: 'cheetah', probability: 0.2 }, { class: 'jaguar', probability: 0.6 },
    { class: 'leopard', probability: 0.13 }, { class: 'tiger', probability: 0.07 },
  ],
  input: [96, 96],
  methods: [
    method('gradcam', 'Grad-CAM', [1000, -1000, 0, 500, -500, 250], 0.0677, 0.20, 0.40,
      { layer: 'bn4/Relu', height: 12, width: 12 }),
    method('ig', 'Integrated Gradients', [0, 0, 0, 0, 0, 1500], 0.199, 0.30, 0.55,
      { steps: 32, baseline: 'black', completeness_error: 0.0216 }),
    method('occlusion', 'Occlusion', [10, 20, 30, 40, 50, 60], 0.5, 0.10, 0.50, { patch: 16, stride: 8 }),
    method('lime', 'LIME', [-1000, -1000, -1000, 0, 0, 0], 1.5e-7, 0.45, 0.35,
      { score: 0.885, segments: 51, samples: 1000 }),
    method('random', 'Random map', [1000, 1000, 1000, 1000, 1000, 1000], 0.98, 0.05, 0.90, null),
  ],
  best: 'occlusion',
  summary: 'The model’s own behaviour supports Occlusion best for “leopard” here.',
  timings_ms: { gradient_setup: 1, total: 900 },
};

const RED = [178, 24, 43];
const BLUE = [33, 102, 172];
const WHITE = [255, 255, 255];
const px = (pixels, i) => Array.from(pixels.slice(4 * i, 4 * i + 4));

test('map colours: +1000 the red end, −1000 the blue end, 0 white, in between interpolated', () => {
  assert.deepEqual(mapColor(1), RED);
  assert.deepEqual(mapColor(-1), BLUE);
  assert.deepEqual(mapColor(0), WHITE);
  assert.deepEqual(mapColor(4), RED, 'clamped above');
  assert.deepEqual(mapColor(-4), BLUE, 'clamped below');
  assert.deepEqual(mapColor(NaN), WHITE);
  const pixels = mapPixels(REPLY.methods[0].map);
  assert.equal(pixels.length, 3 * 2 * 4);
  assert.deepEqual(px(pixels, 0), [...RED, 255]);
  assert.deepEqual(px(pixels, 1), [...BLUE, 255]);
  assert.deepEqual(px(pixels, 2), [...WHITE, 255]);
  assert.deepEqual(px(pixels, 3), [239, 138, 98, 255]); // +0.5: the light red stop
  assert.deepEqual(px(pixels, 4), [103, 169, 207, 255]); // −0.5: the light blue stop
  // +0.25: half-way from white to the light red stop: 255 − 8, 255 − 58.5, 255 − 78.5.
  assert.deepEqual(px(pixels, 5), [247, 197, 177, 255]);
  // Row-major: the second row starts at index width (3).
  const rows = mapPixels({ width: 2, height: 2, values: [0, 0, 1000, 0] });
  assert.deepEqual(px(rows, 2), [...RED, 255]);
  assert.deepEqual(px(rows, 3), [...WHITE, 255]);
  // The colour bar runs the same scale, blue on the left.
  assert.match(colorBarGradient(), /^linear-gradient\(to right, rgb\(33, 102, 172\) 0%, .*rgb\(255, 255, 255\) 50%, .*rgb\(178, 24, 43\) 100%\)$/);
});

test('colour-bar ends: −scale … +scale with two significant digits and a true minus sign', () => {
  assert.equal(formatScale(0.0677), '0.068');
  assert.equal(formatScale(0.199), '0.20');
  assert.equal(formatScale(1.5e-7), '1.5e-7');
  assert.equal(formatScale(1234.5), '1235');
  assert.equal(formatScale(0), '0');
  assert.equal(formatScale(undefined), '–');
  assert.deepEqual(scaleRange(0.0677), { low: '\u22120.068', high: '+0.068' });
  assert.deepEqual(scaleRange(0), { low: '0', high: '0' });
});

test('compareView: one card per method in order, best and random flagged, scores and details', () => {
  const v = compareView(REPLY);
  assert.equal(v.cls, 'leopard');
  assert.equal(v.predicted, 'jaguar');
  assert.equal(v.truth, 'cheetah');
  assert.equal(v.summary, REPLY.summary);
  assert.deepEqual(v.cards.map((c) => c.method), ['gradcam', 'ig', 'occlusion', 'lime', 'random']);
  // The best card is the reply's `best`, and only that one.
  assert.deepEqual(v.cards.filter((c) => c.best).map((c) => c.method), ['occlusion']);
  // The random map is the comparison, never the best.
  assert.deepEqual(v.cards.filter((c) => c.comparison).map((c) => c.method), ['random']);
  assert.equal(compareView({ ...REPLY, best: 'random' }).cards.some((c) => c.best), false);
  assert.equal(compareView({ ...REPLY, best: null }).cards.some((c) => c.best), false);
  // Per-score bests among the real maps (random left out though it scores best on both):
  // deletion lowest 0.10 (occlusion), insertion highest 0.55 (ig).
  assert.deepEqual(v.cards.filter((c) => c.bestDeletion).map((c) => c.method), ['occlusion']);
  assert.deepEqual(v.cards.filter((c) => c.bestInsertion).map((c) => c.method), ['ig']);
  const byMethod = Object.fromEntries(v.cards.map((c) => [c.method, c]));
  assert.equal(byMethod.gradcam.deletion, 0.20);
  assert.equal(byMethod.gradcam.insertion, 0.40);
  // Insertion − deletion: Grad-CAM 0.20, IG 0.25, occlusion 0.40, LIME −0.10;
  // the random map's 0.85 beats them all.
  assert.deepEqual(v.cards.map((c) => c.beatsRandom), [false, false, false, false, null]);
  // A random map at 0.3 − 0.5 = −0.2 is beaten by all four, LIME's −0.10 included.
  const weak = { ...REPLY, methods: REPLY.methods.map((m) => (m.method === 'random'
    ? { ...m, deletion_auc: 0.5, insertion_auc: 0.3 } : m)) };
  assert.deepEqual(compareView(weak).cards.map((c) => c.beatsRandom), [true, true, true, true, null]);
  // Pixels come from each card's own map.
  assert.deepEqual(px(byMethod.lime.pixels, 0), [...BLUE, 255]);
  assert.deepEqual(px(byMethod.random.pixels, 5), [...RED, 255]);
  assert.deepEqual(px(byMethod.ig.pixels, 5), [...RED, 255]);
  assert.deepEqual(byMethod.gradcam.range, { low: '\u22120.068', high: '+0.068' });
  assert.equal(byMethod.gradcam.width, 3);
  assert.equal(byMethod.gradcam.height, 2);
  // The class picker: one entry per class, the explained one selected, the
  // answer and the true class named.
  assert.deepEqual(v.options.map((o) => [o.value, o.selected]),
    [['cheetah', false], ['jaguar', false], ['leopard', true], ['tiger', false]]);
  assert.equal(v.options[0].label, 'cheetah · 20\u00a0% (true class)');
  assert.equal(v.options[1].label, 'jaguar · 60\u00a0% (the answer)');
  assert.equal(v.options[2].label, 'leopard · 13\u00a0%');
});

test('method details in plain words', () => {
  const d = (name) => methodDetails(REPLY.methods.find((m) => m.method === name));
  assert.deepEqual(d('gradcam'), [['layer', 'bn4/Relu (12×12)']]);
  assert.deepEqual(d('ig'), [['steps', 32], ['baseline', 'black'], ['completeness error', '2.2\u00a0%']]);
  assert.deepEqual(d('occlusion'), [['patch', '16 px'], ['stride', '8 px']]);
  assert.deepEqual(d('lime'), [['fit R²', '0.89'], ['regions', 51], ['samples', 1000]]);
  assert.deepEqual(d('random'), []);
  assert.deepEqual(methodDetails({ method: 'ig', details: { steps: 8, baseline: 'blur', completeness_error: 0.5 } }),
    [['steps', 8], ['baseline', 'blurred copy'], ['completeness error', '50.0\u00a0%']]);
});

test('faithfulness curves: probability against the share of pixels, 0…1 in 5 % steps, not draggable', () => {
  const m = REPLY.methods[0];
  const { data, layout } = faithfulnessFigure(m);
  assert.deepEqual(data.map((t) => t.name), ['deletion', 'insertion']);
  assert.equal(data[0].x.length, 21);
  assert.equal(data[0].x[0], 0);
  assert.equal(data[0].x[1], 0.05);
  assert.equal(data[0].x[20], 1);
  assert.deepEqual(data[0].y, m.deletion);
  assert.deepEqual(data[1].y, m.insertion);
  assert.notEqual(data[0].line.color, data[1].line.color);
  assert.deepEqual(layout.xaxis.range, [0, 1]);
  assert.equal(layout.dragmode, false);
  assert.equal(layout.xaxis.fixedrange, true);
  assert.equal(layout.yaxis.fixedrange, true);
});

// --- api.js explain() ------------------------------------------------------------

test('explain(): query string from the parameters, the image as an optional multipart body', async () => {
  const seen = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const chunks = [];
    for await (const c of req) chunks.push(c);
    seen.push({ method: req.method, path: url.pathname, query: url.searchParams, type: req.headers['content-type'] || '',
      body: Buffer.concat(chunks).toString('latin1') });
    res.writeHead(url.searchParams.get('class') === 'zebra' ? 400 : 200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(url.searchParams.get('class') === 'zebra'
      ? { error: { code: 'bad_parameter', message: 'model felines has no class "zebra"' } }
      : { class: url.searchParams.get('class') || 'jaguar', methods: [] }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  setBase(`http://127.0.0.1:${server.address().port}`);
  try {
    // A dataset image by index: no body; empty parameters left out.
    const r1 = await explain('felines', { image: 3, method: 'all', class: 'snow leopard', layer: null, steps: undefined, patch: '' });
    assert.equal(r1.class, 'snow leopard');
    assert.equal(seen[0].method, 'POST');
    assert.equal(seen[0].path, '/api/models/felines/explain');
    assert.deepEqual([...seen[0].query.keys()], ['image', 'method', 'class']);
    assert.equal(seen[0].query.get('image'), '3');
    assert.equal(seen[0].query.get('class'), 'snow leopard');
    assert.equal(seen[0].body, '');
    // By id: the slash travels inside the query value.
    await explain('felines', { image: 'cheetah/0003.jpg' });
    assert.equal(seen[1].query.get('image'), 'cheetah/0003.jpg');
    // An uploaded file: multipart field "image" with its name and type; no parameters, no "?".
    const file = new File([Buffer.from([0x89, 0x50, 0x4e, 0x47])], 'mine.png', { type: 'image/png' });
    await explain('felines', {}, { body: file });
    assert.equal([...seen[2].query.keys()].length, 0);
    assert.match(seen[2].type, /^multipart\/form-data; boundary=/);
    assert.match(seen[2].body, /name="image"; filename="mine\.png"\r\nContent-Type: image\/png/);
    // The error envelope becomes an ApiError with the server's code and sentence.
    await assert.rejects(explain('felines', { image: 3, class: 'zebra' }), (e) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 400);
      assert.equal(e.code, 'bad_parameter');
      assert.equal(e.message, 'model felines has no class "zebra"');
      return true;
    });
  } finally {
    setBase('');
    await new Promise((r) => server.close(r));
  }
});

// --- in a browser -----------------------------------------------------------------

const MODEL = 'felines';

let skip = null;
let server = null;
let base = null;
let browser = null;

before(async () => {
  const session = await browserSession({ timeoutS: READY_TIMEOUT_S });
  ({ server = null, base, browser = null } = session);
  if (session.skip) {
    skip = session.skip;
    return;
  }
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

/** A page of base + url recording console errors (pages.mjs's openPage). */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });

const isExplain = (r) => r.url().includes(`/api/models/${MODEL}/explain`) && r.request().method() === 'POST';

/** Waits for the compare view in `sel` to show the reply for class `cls`. */
async function viewReady(page, sel, cls) {
  await page.waitForFunction(([s, c]) => {
    const box = document.querySelector(s);
    const cards = box ? [...box.querySelectorAll('.compare-card')] : [];
    return box && box.dataset.state === 'ready' && box.dataset.class === c && cards.length > 0 &&
      cards.every((card) => card.querySelector('.plot-faith .main-svg'));
  }, [sel, cls], { timeout: 2 * STEP_MS });
}

/**
 * For each card in `sel`: its method, class names, badge, shown AUCs (text
 * and data-value), canvas size and pixel statistics read back from the
 * canvas: how many pixels are coloured (red or blue, not grey) and how many
 * distinct colours there are, and the colour at the canvas point of `probe`
 * (map coordinates per method, {method: [x, y, w, h]}).
 */
function readCards(page, sel, probe = {}) {
  return page.evaluate(([s, pr]) => [...document.querySelectorAll(`${s} .compare-card`)].map((card) => {
    const canvas = card.querySelector('canvas');
    const ctx = canvas.getContext('2d');
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let coloured = 0;
    const distinct = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 40) coloured += 1;
      if (distinct.size < 5000) distinct.add((r << 16) | (g << 8) | b);
    }
    let at = null;
    const p = pr[card.dataset.method];
    if (p) {
      const [x, y, w, h] = p;
      const cx = Math.floor(((x + 0.5) / w) * canvas.width), cy = Math.floor(((y + 0.5) / h) * canvas.height);
      at = Array.from(ctx.getImageData(cx, cy, 1, 1).data.slice(0, 3));
    }
    const score = (k) => {
      const v = card.querySelector(`[data-score="${k}"] .score-value`);
      return { text: v.textContent, value: v.dataset.value };
    };
    const box = canvas.getBoundingClientRect();
    return {
      method: card.dataset.method, classes: card.className, badge: card.querySelector('.compare-badge').hidden ? ''
        : card.querySelector('.compare-badge').textContent,
      deletion: score('deletion'), insertion: score('insertion'),
      label: canvas.getAttribute('aria-label'),
      width: canvas.width, height: canvas.height, shownWidth: box.width,
      pixels: data.length / 4, coloured, distinct: distinct.size, at,
      details: card.querySelector('.compare-details').innerText,
      low: card.querySelector('.colorbar-low').textContent, high: card.querySelector('.colorbar-high').textContent,
      left: card.getBoundingClientRect().left, top: card.getBoundingClientRect().top,
    };
  }), [sel, probe]);
}

/** Map coordinates of the largest and of the smallest value of a method's map. */
function extremes(m) {
  const v = m.map.values;
  let hi = 0, lo = 0;
  v.forEach((x, i) => { if (x > v[hi]) hi = i; if (x < v[lo]) lo = i; });
  const at = (i) => [i % m.map.width, Math.floor(i / m.map.width), m.map.width, m.map.height];
  return { hi: at(hi), lo: at(lo), hiValue: v[hi], loValue: v[lo] };
}

/** Asserts that the cards of `sel` show `reply`: 5 cards in its order, non-blank
 *  canvases holding its maps, its AUCs, its best and the comparison. */
async function assertShows(page, sel, reply) {
  const gradcam = reply.methods.find((m) => m.method === 'gradcam');
  const ex = extremes(gradcam);
  const cards = await readCards(page, sel, { gradcam: ex.hi });
  assert.equal(cards.length, 5);
  assert.deepEqual(cards.map((c) => c.method), reply.methods.map((m) => m.method));
  assert.deepEqual(cards.map((c) => c.method).sort(), ['gradcam', 'ig', 'lime', 'occlusion', 'random']);
  for (const [i, c] of cards.entries()) {
    const m = reply.methods[i];
    // Drawn at its displayed size (times the pixel ratio), not the map's 96×96.
    assert.ok(c.width >= c.shownWidth - 1 && c.shownWidth > 100, `${c.method}: canvas ${c.width} px for ${c.shownWidth} shown`);
    // Not blank: a photo in grey with a coloured map over it.
    assert.ok(c.distinct > 200, `${c.method}: only ${c.distinct} colours on the canvas`);
    // Where the map is strong (|value| >= 400 of 1000), red or blue shows
    // through the blend: about that share of the canvas is coloured.
    const strong = m.map.values.filter((v) => Math.abs(v) >= 400).length / m.map.values.length;
    const share = c.coloured / c.pixels;
    assert.ok(share >= 0.5 * strong && share > 0, `${c.method}: ${c.coloured} of ${c.pixels} pixels coloured, ` +
      `${(100 * strong).toFixed(1)} % of the map is strong`);
    // The AUCs shown are the API's.
    assert.equal(Number(c.deletion.value), m.deletion_auc, `${c.method}: deletion`);
    assert.equal(Number(c.insertion.value), m.insertion_auc, `${c.method}: insertion`);
    assert.equal(c.deletion.text, m.deletion_auc.toFixed(2));
    assert.equal(c.insertion.text, m.insertion_auc.toFixed(2));
    assert.match(c.label, new RegExp(`“${reply.class}”`));
    assert.equal(c.high, `+${formatScale(m.map.scale)}`);
    assert.equal(c.low, `\u2212${formatScale(m.map.scale)}`);
    assert.equal(/\bis-best\b/.test(c.classes), m.method === reply.best, `${c.method}: best flag`);
  }
  const random = cards.find((c) => c.method === 'random');
  assert.match(random.classes, /is-comparison/);
  assert.equal(random.badge, 'for comparison');
  if (reply.best) assert.equal(cards.find((c) => c.method === reply.best).badge, 'best here');
  // The map over the photo: Grad-CAM's strongest pixel (+1000) is drawn red.
  assert.equal(ex.hiValue, 1000);
  const [r, , b] = cards.find((c) => c.method === 'gradcam').at;
  assert.ok(r > b + 40, `Grad-CAM's peak drawn as rgb ${cards.find((c) => c.method === 'gradcam').at}`);
  // Details in plain words.
  assert.match(cards.find((c) => c.method === 'gradcam').details, new RegExp(gradcam.details.layer.replace('/', '\\/')));
  const ig = reply.methods.find((m) => m.method === 'ig');
  assert.match(cards.find((c) => c.method === 'ig').details,
    new RegExp(`completeness error\\s+${(100 * ig.details.completeness_error).toFixed(1)}\u00a0%`));
  assert.match(cards.find((c) => c.method === 'lime').details, /fit R²\s+\d\.\d\d/);
  assert.match(cards.find((c) => c.method === 'occlusion').details, /patch\s+\d+ px/);
  assert.equal(await page.locator(`${sel} .compare-summary`).innerText(), reply.summary);
  return cards;
}

/** A screenshot of the element `sel` to tests/artifacts/<name>.png, taken
 *  from the whole page scrolled to the top, so that the sticky top bar
 *  stays at the top and does not cover a tall element. */
async function shotOf(page, sel, name) {
  const clip = await page.locator(sel).evaluate((e) => {
    const r = e.getBoundingClientRect();
    return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height };
  });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true, clip });
}

/** Opens the model page and the most confident mistake's detail; resolves to that mistake. */
async function openMistake(page, { tap = false } = {}) {
  await page.waitForSelector('#gallery .gallery-item', { timeout: 2 * STEP_MS });
  const first = page.locator('#gallery .gallery-item').first();
  if (tap) await first.tap(); else await first.click();
  await page.waitForSelector('#mistake-detail .compare-button');
  const list = await (await fetch(`${base}/api/models/${MODEL}/misclassified`)).json();
  return list.images.slice().sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0))[0];
}

test('desktop: a mistake\'s methods side by side, following the class picker', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext({ viewport: DESKTOP });
  // The refusal staged below is logged by Chromium as a failed resource.
  const { page, errors } = await open(ctx, `/model.html?id=${MODEL}`, /status of 400/);
  const mistake = await openMistake(page);
  assert.ok(Number.isInteger(mistake.index), 'the mistakes carry their index');
  const replyP = page.waitForResponse(isExplain, { timeout: 2 * STEP_MS });
  await page.click('#mistake-detail .compare-button');
  const res = await replyP;
  const url = new URL(res.url());
  assert.equal(url.searchParams.get('image'), String(mistake.index));
  assert.equal(url.searchParams.get('method'), 'all');
  assert.equal(url.searchParams.has('class'), false, 'the first request explains the answer');
  const reply = await res.json();
  assert.equal(reply.class, mistake.pred);
  assert.equal(reply.image.index, mistake.index);
  await viewReady(page, '#mistake-compare', reply.class);
  await assertShows(page, '#mistake-compare', reply);
  const select = page.locator('#mistake-compare select.compare-class');
  assert.equal(await select.inputValue(), reply.predicted);
  assert.deepEqual(await select.locator('option').evaluateAll((os) => os.map((o) => o.value)),
    reply.probabilities.map((p) => p.class));
  // Five cards side by side at 1280 px: one row.
  const tops = await page.$$eval('#mistake-compare .compare-card', (cs) => cs.map((c) => Math.round(c.getBoundingClientRect().top)));
  assert.equal(new Set(tops).size, 1, `card tops ${tops}`);
  await shotOf(page, '#mistake-detail', 'compare-desktop');

  // "Why not <true class>?": the cards follow the picker.
  const other = reply.true;
  assert.notEqual(other, reply.class);
  const otherP = page.waitForResponse((r) => isExplain(r) && new URL(r.url()).searchParams.get('class') === other,
    { timeout: 2 * STEP_MS });
  await select.selectOption(other);
  const otherReply = await (await otherP).json();
  assert.equal(otherReply.class, other);
  await viewReady(page, '#mistake-compare', other);
  await assertShows(page, '#mistake-compare', otherReply);
  assert.match(await page.locator('#mistake-compare .compare-question').innerText(), new RegExp(`Why not “${other}”`));

  // A reply overtaken by a newer request never shows: the first class's
  // answer is held back by 1.5 s, the second's is not; the second stays.
  const [slow, fast] = reply.probabilities.map((p) => p.class).filter((c) => c !== other).slice(0, 2);
  await page.route((u) => u.pathname.endsWith('/explain') && u.searchParams.get('class') === slow, async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue().catch(() => {}); // aborted by the page meanwhile
  });
  const fastP = page.waitForResponse((r) => isExplain(r) && new URL(r.url()).searchParams.get('class') === fast,
    { timeout: 2 * STEP_MS });
  await select.selectOption(slow);
  await select.selectOption(fast);
  const fastReply = await (await fastP).json();
  await viewReady(page, '#mistake-compare', fast);
  await page.waitForTimeout(2500); // past the held-back answer
  assert.equal(await page.locator('#mistake-compare').getAttribute('data-class'), fast);
  assert.equal(await select.inputValue(), fast);
  await assertShows(page, '#mistake-compare', fastReply);
  await page.unrouteAll({ behavior: 'ignoreErrors' });

  // A refusal is said in the server's words, and no stale cards stay.
  const refusal = 'model felines has no class "zebra"';
  await page.route((u) => u.pathname.endsWith('/explain'), (route) => route.fulfill({
    status: 400, contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'bad_parameter', message: refusal } }),
  }));
  await select.selectOption(reply.class);
  await page.waitForSelector('#mistake-compare .compare-status .error');
  assert.equal(await page.locator('#mistake-compare').getAttribute('data-state'), 'error');
  const said = await page.locator('#mistake-compare .compare-status .error').innerText();
  assert.ok(said.startsWith('Could not compare the explanations') && said.includes(refusal) && said.includes('400 bad_parameter'), said);
  assert.equal(await page.locator('#mistake-compare .compare-card').count(), 0);
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  // "Try again" asks the same question again.
  await page.click('#mistake-compare .compare-status button');
  await viewReady(page, '#mistake-compare', reply.class);
  assert.equal(await page.locator('#mistake-compare .compare-card').count(), 5);
  assert.equal(await page.locator('#mistake-compare .compare-status .error').count(), 0);

  // Another mistake replaces the view (closed until asked for again).
  await page.locator('#gallery .gallery-item').nth(1).click();
  await page.waitForFunction(() => document.getElementById('mistake-compare').hidden);
  assert.equal(await page.locator('#mistake-compare .compare-card').count(), 0);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('desktop: an uploaded photo gets the same view, the file sent as the body', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const { page, errors } = await open(ctx, `/model.html?id=${MODEL}`);
  const dir = path.join(DATA, MODEL, 'test', 'jaguar');
  const photo = path.join(dir, fs.readdirSync(dir).filter((f) => /\.jpe?g$/i.test(f)).sort()[0]);
  const predictP = page.waitForResponse((r) => r.url().includes('/predict') && r.request().method() === 'POST',
    { timeout: 2 * STEP_MS });
  await page.setInputFiles('#file-input', photo);
  const predicted = await (await predictP).json();
  await page.waitForSelector('#upload-result [data-predicted]', { timeout: 2 * STEP_MS });
  const reqP = page.waitForRequest((r) => r.url().includes(`/api/models/${MODEL}/explain`) && r.method() === 'POST');
  const replyP = page.waitForResponse(isExplain, { timeout: 2 * STEP_MS });
  await page.click('#upload-result .compare-button');
  const req = await reqP;
  assert.equal(new URL(req.url()).searchParams.has('image'), false);
  assert.match(await req.headerValue('content-type'), /^multipart\/form-data; boundary=/);
  const reply = await (await replyP).json();
  // The server explained the uploaded photo itself: its probabilities are the prediction's.
  assert.equal(reply.image, null);
  assert.equal(reply.class, predicted.predicted);
  reply.probabilities.forEach((p, i) => {
    assert.equal(p.class, predicted.probabilities[i].class);
    assert.ok(Math.abs(p.probability - predicted.probabilities[i].probability) < 1e-6, `${p.class}: ${p.probability}`);
  });
  await viewReady(page, '#upload-compare', reply.class);
  await assertShows(page, '#upload-compare', reply);
  await shotOf(page, '#upload-section', 'compare-upload-desktop');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('phone: cards in one column, no sideways scroll, a swipe on a curve scrolls the page', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext({ viewport: PHONE, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
  const { page, errors } = await open(ctx, `/model.html?id=${MODEL}`);
  await openMistake(page, { tap: true });
  const replyP = page.waitForResponse(isExplain, { timeout: 2 * STEP_MS });
  await page.locator('#mistake-detail .compare-button').tap();
  const reply = await (await replyP).json();
  await viewReady(page, '#mistake-compare', reply.class);
  const cards = await assertShows(page, '#mistake-compare', reply);
  // One column: same left edge, each card below the one before.
  assert.equal(new Set(cards.map((c) => Math.round(c.left))).size, 1, `card lefts ${cards.map((c) => c.left)}`);
  for (let i = 1; i < cards.length; i++) assert.ok(cards[i].top > cards[i - 1].top);
  // Drawn sharp on a 2× screen.
  assert.ok(cards[0].width >= 2 * cards[0].shownWidth - 2, `canvas ${cards[0].width} px for ${cards[0].shownWidth} shown at 2×`);
  const overflow = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  assert.ok(overflow.scroll <= overflow.inner, `page ${overflow.scroll} px wide in a ${overflow.inner} px window`);

  // A vertical swipe that starts on a curve chart scrolls the page.
  const chart = page.locator('#mistake-compare .compare-card[data-method="ig"] .plot-faith');
  await chart.scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -200));
  const box = await chart.boundingBox();
  const x = Math.round(box.x + box.width / 2), y = Math.round(box.y + box.height / 2);
  assert.ok(y > 0 && y < PHONE.height, `chart centre at y = ${y}`);
  assert.equal(await page.evaluate(([px, py]) => !!document.elementFromPoint(px, py)?.closest('.plot-faith'), [x, y]), true,
    'the swipe starts on the chart');
  const before = await page.evaluate(() => window.scrollY);
  // A finger put down on the chart's centre and moved 250 px up, in steps.
  const cdp = await ctx.newCDPSession(page);
  const finger = (dy) => [{ x, y: y - dy }];
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: finger(0) });
  for (let i = 1; i <= 10; i++) {
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: finger(25 * i) });
    await page.waitForTimeout(16);
  }
  await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
  await page.waitForTimeout(500);
  const after = await page.evaluate(() => window.scrollY);
  assert.ok(after - before > 100, `the page scrolled ${after - before} px (from ${before})`);
  const overflow2 = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(overflow2);
  await shotOf(page, '#mistake-detail', 'compare-phone');
  assert.deepEqual(errors, []);
  await ctx.close();
});
