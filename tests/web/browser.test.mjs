// browser.test.mjs — the dashboard in a real browser (Chromium through
// playwright-core) against a real `strata serve` started here on a free port
// (binary: $STRATA_BIN, default build/server/strata). When the binary is
// missing or has no `serve` command, every test is reported SKIPPED, not
// passed. $STRATA_URL points the tests at a server already running instead;
// $STRATA_WEB_MODELS serves another models folder than models/.
//
// Checks: the home cards and models menu; on every model page the parallel
// graph, each layer's scatter (as many points as analysed images), the elbow
// and k selector, the doubt histogram and AUROC table, a mistake's LIME
// overlay, the out-of-model images, an
// upload (answer, doubt, LIME, highlighted path, star) and a text upload's
// error; the help page's plots; no console errors anywhere. Screenshots of
// every page at 1280×800 and 390×844 go to tests/artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO, DATA, skipReason, startServer } from './strata-server.mjs';

const ARTIFACTS = path.join(REPO, 'tests', 'artifacts');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const READY_TIMEOUT_S = Number(process.env.STRATA_READY_TIMEOUT_S || 180);
const STEP_MS = 60000;

let skip = null;
let server = null;
let base = null;
let browser = null;
let models = [];

before(async () => {
  if (process.env.STRATA_URL) {
    base = process.env.STRATA_URL.replace(/\/$/, '');
  } else {
    skip = skipReason();
    if (skip) return;
    server = await startServer({ timeoutS: READY_TIMEOUT_S });
    base = server.base;
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    skip = `playwright-core is not installed (npm ci): ${e.message}`;
    return;
  }
  if (!fs.existsSync('/usr/bin/chromium')) {
    skip = 'no Chromium at /usr/bin/chromium';
    return;
  }
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  models = (await (await fetch(`${base}/api/models`)).json()).models;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

async function getJSON(p) {
  const r = await fetch(base + p);
  assert.ok(r.ok, `GET ${p} answered ${r.status}`);
  return r.json();
}

/**
 * A page that records console errors and uncaught exceptions. A 503 "busy"
 * resource error is not counted: api.js retries it after Retry-After, as
 * the API asks. `allow` lists further expected messages (a regexp).
 */
async function open(ctx, url, allow = null) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/status of 503/.test(text)) return;
    if (allow && allow.test(text)) return;
    errors.push(`console: ${text}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(base + url);
  return { page, errors };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Waits until the model page has drawn its parallel graph and first scatter. */
async function modelPageReady(page) {
  await page.waitForFunction(() => {
    const gd = document.getElementById('parcats');
    return gd && gd.data && gd.data[0] && gd.data[0].type === 'parcats' && gd.querySelector('.main-svg');
  });
  await page.waitForFunction(() => {
    const gd = document.getElementById('scatter');
    return gd && gd.data && gd.data.length > 0 && !document.querySelector('#layer-stats .progress');
  });
}

/** Scrolls through the page (lazy work starts on view) and waits for the out-of-model answers. */
async function finishLazyWork(page) {
  await page.locator('#outside').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const cards = document.querySelectorAll('.outside-card');
    return cards.length > 0 && [...cards].every((c) => c.dataset.predicted || c.querySelector('.error'));
  }, null, { timeout: 4 * STEP_MS });
  await page.waitForFunction(() => [...document.querySelectorAll('.outside-card')]
    .every((c) => !c.querySelector('.progress')), null, { timeout: STEP_MS });
}

const imagePoints = () => {
  const gd = document.getElementById('scatter');
  return gd.data.filter((t) => t.name !== 'cluster centres' && t.name !== 'your image').reduce((s, t) => s + t.x.length, 0);
};
const centreCount = () => document.getElementById('scatter').data.find((t) => t.name === 'cluster centres').x.length;

// --- home ---------------------------------------------------------------------

test('home: three dataset cards and a menu listing every model', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext({ viewport: DESKTOP });
  const { page, errors } = await open(ctx, '/');
  await page.waitForSelector('.dataset-card');
  const cards = page.locator('.dataset-card');
  assert.equal(await cards.count(), 3);
  const datasets = await cards.evaluateAll((cs) => cs.map((c) => c.dataset.dataset));
  assert.deepEqual(datasets.slice().sort(), ['felines', 'paysages', 'transports']);
  // Each card: a cover photo from the data that loaded, its classes, an accuracy.
  await page.waitForFunction(() => [...document.querySelectorAll('.dataset-card .cover img')]
    .every((i) => i.complete && i.naturalWidth > 0 && i.alt));
  for (const ds of datasets) {
    const card = page.locator(`.dataset-card[data-dataset="${ds}"]`);
    const classes = models.find((m) => m.dataset === ds).classes;
    assert.equal(await card.locator('.chip').count(), classes.length);
    assert.match(await card.locator('.metric').innerText(), /\d+ %/);
  }
  // The "?" opens the help page.
  assert.equal(await page.locator('.help-button').getAttribute('href'), '/help.html');
  // Menu: closed, then every model with its layer count, the seed ones marked.
  assert.equal(await page.locator('#menu-panel').isVisible(), false);
  await page.click('#menu-button');
  await page.waitForSelector('#menu-panel .menu-item');
  assert.equal(models.length, 6, `the server lists ${models.length} models: ${models.map((m) => m.id).join(', ')}`);
  const items = await page.locator('.menu-item').evaluateAll((as) => as.map((a) => ({ id: a.dataset.model, text: a.innerText })));
  assert.deepEqual(items.map((i) => i.id).sort(), models.map((m) => m.id).sort());
  for (const m of models) {
    const item = items.find((i) => i.id === m.id);
    assert.match(item.text, new RegExp(`${m.layers} layers`));
    if (m.seed_architecture) assert.match(item.text, /seed architecture/);
  }
  await shot(page, 'home-desktop-menu');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#menu-panel').isVisible(), false);
  await shot(page, 'home-desktop');
  const phone = await browser.newContext({ viewport: PHONE });
  const p2 = await open(phone, '/');
  await p2.page.waitForSelector('.dataset-card .cover img');
  await p2.page.waitForFunction(() => [...document.querySelectorAll('.cover img')].every((i) => i.complete && i.naturalWidth > 0));
  await shot(p2.page, 'home-phone');
  assert.deepEqual(errors, []);
  assert.deepEqual(p2.errors, []);
  await ctx.close();
  await phone.close();
});

// --- help ---------------------------------------------------------------------

test('help: live plots and no console errors', async (t) => {
  if (skip) { t.skip(skip); return; }
  for (const [vp, name] of [[DESKTOP, 'help-desktop'], [PHONE, 'help-phone']]) {
    const ctx = await browser.newContext({ viewport: vp });
    const { page, errors } = await open(ctx, '/help.html');
    await page.waitForFunction(() => document.querySelectorAll('.js-plotly-plot').length >= 9);
    // A slider redraws its plot: k-means with k = 5 has 5 cluster traces + centres.
    await page.locator('#kmeans-k').fill('5');
    await page.waitForFunction(() => document.getElementById('plot-kmeans').data.length === 6);
    const ids = await page.$$eval('.js-plotly-plot', (ps) => ps.map((p) => p.id));
    for (const id of ['plot-neuron', 'plot-activations', 'plot-softmax', 'plot-conv', 'plot-kmeans', 'plot-toy-elbow',
      'plot-pca', 'plot-parcats', 'plot-lime']) assert.ok(ids.includes(id), `${id} drawn`);
    await shot(page, name);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

// --- model pages ----------------------------------------------------------------

test('model pages: parallel graph, every layer, elbow and k, a mistake\'s LIME, out-of-model images', async (t) => {
  if (skip) { t.skip(skip); return; }
  for (const m of models) {
    await t.test(m.id, async () => {
      const detail = await getJSON(`/api/models/${encodeURIComponent(m.id)}`);
      const paths = await getJSON(`/api/models/${encodeURIComponent(m.id)}/paths`);
      const n = detail.analysis.n_images;
      const ctx = await browser.newContext({ viewport: DESKTOP });
      const { page, errors } = await open(ctx, `/model.html?id=${encodeURIComponent(m.id)}`);
      await modelPageReady(page);

      // Header: name, layers, accuracy, the architecture strip.
      assert.equal(await page.locator('#fact-layers').innerText(), String(detail.layers.length));
      assert.equal(await page.locator('.arch-layer').count(), detail.layers.length + 1);

      // Parallel graph: one dimension per /paths dimension, one line per analysed image.
      const pc = await page.evaluate(() => {
        const tr = document.getElementById('parcats').data[0];
        return { dims: tr.dimensions.length, lines: tr.dimensions[0].values.length };
      });
      assert.equal(pc.dims, paths.dimensions.length);
      assert.equal(pc.lines, n);
      // A class chip highlights its paths: other lines turn grey (colour index C).
      const C = paths.classes.length;
      await page.click(`#class-filter button[data-class="${paths.classes[0]}"]`);
      const colours = await page.evaluate(() => document.getElementById('parcats').data[0].line.color);
      paths.images.true.forEach((tc, i) => assert.equal(colours[i], tc === 0 ? 0 : C));
      await page.click(`#class-filter button[data-class="${paths.classes[0]}"]`);

      // Every layer button: a scatter with one point per analysed image.
      const buttons = page.locator('#layer-buttons button');
      const nButtons = await buttons.count();
      assert.equal(nButtons, paths.dimensions.filter((d) => d.kind === 'layer').length);
      for (let i = 0; i < nButtons; i++) {
        const b = buttons.nth(i);
        const layer = await b.getAttribute('data-layer');
        await b.click();
        await page.waitForFunction((want) => {
          const gd = document.getElementById('scatter');
          return gd.dataset.layer === want && !document.querySelector('#layer-stats .progress') &&
            document.getElementById('elbow').data;
        }, layer);
        assert.equal(await page.evaluate(imagePoints), n, `layer ${layer}: points`);
        // The elbow curve covers k = 1…10 (or fewer on tiny data) and marks the chosen k.
        const elbow = await page.evaluate(() => {
          const gd = document.getElementById('elbow');
          return { ks: gd.data[0].x.length, mark: gd.data[1] && gd.data[1].x[0], k: Number(gd.dataset.k) };
        });
        assert.ok(elbow.ks >= 2);
        assert.equal(elbow.mark, elbow.k);
      }

      // The k selector re-clusters: the number of centres follows k.
      for (const k of [3, 6]) {
        await page.click(`#k-selector button[data-k="${k}"]`);
        await page.waitForFunction((kk) => document.getElementById('scatter').dataset.k === String(kk) &&
          !document.querySelector('#layer-stats .progress'), k);
        assert.equal(await page.evaluate(centreCount), k);
        assert.equal(await page.evaluate(imagePoints), n);
        assert.equal(await page.evaluate(() => document.getElementById('elbow').data[1].x[0]), k);
      }

      // A mistake opens its LIME overlay and highlights its class's paths.
      await page.waitForSelector('#gallery .gallery-item, #gallery .empty');
      if (await page.locator('#gallery .gallery-item').count()) {
        await page.locator('#gallery .gallery-item').first().click();
        await page.waitForFunction(() => {
          const img = document.querySelector('#mistake-detail img.lime-overlay');
          return img && img.complete && img.naturalWidth > 0;
        }, null, { timeout: 2 * STEP_MS });
        assert.match(await page.locator('#mistake-detail .description').innerText(), /\w/);
        assert.match(await page.locator('#highlight-note').innerText(), /Highlighting \d+ of/);
      }

      // The doubt evaluation: a histogram of both groups and the AUROC table,
      // as GET …/doubt gives them (computed after every analysis).
      await page.locator('#doubt-section').scrollIntoViewIfNeeded();
      await page.waitForSelector('#doubt-auroc, #doubt-histogram .empty, #doubt-histogram .error', { timeout: 4 * STEP_MS });
      const report = await getJSON(`/api/models/${encodeURIComponent(m.id)}/doubt`);
      const shown = await page.evaluate(() => ({
        auroc: [...document.querySelectorAll('#doubt-auroc tbody tr')].map((tr) => [tr.dataset.method, tr.querySelector('td').dataset.value]),
        groups: document.getElementById('doubt-histogram').data.map((t) => t.y.reduce((a, b) => a + b, 0)),
      }));
      for (const [method, value] of shown.auroc) assert.ok(Math.abs(Number(value) - report.auroc[method]) < 1e-9, `${method} AUROC`);
      assert.equal(shown.auroc.length, 3);
      for (const total of shown.groups) assert.ok(Math.abs(total - 1) < 1e-9, 'each group sums to 100 %');

      await finishLazyWork(page);
      const outside = await page.$$eval('.outside-card', (cs) => cs.map((c) => ({
        predicted: c.dataset.predicted, error: c.querySelector('.error')?.innerText,
        lime: !!c.querySelector('img.lime-overlay'),
      })));
      for (const o of outside) {
        assert.ok(o.predicted, `out-of-model image answered: ${o.error || ''}`);
        assert.ok(detail.classes.includes(o.predicted));
      }
      await shot(page, `model-${m.id}-desktop`);
      assert.deepEqual(errors, []);
      await ctx.close();

      const phone = await browser.newContext({ viewport: PHONE });
      const p2 = await open(phone, `/model.html?id=${encodeURIComponent(m.id)}`);
      await modelPageReady(p2.page);
      await finishLazyWork(p2.page);
      await shot(p2.page, `model-${m.id}-phone`);
      assert.deepEqual(p2.errors, []);
      await phone.close();
    });
  }
});

// --- uploads --------------------------------------------------------------------

/** The first test image of the model's dataset, read from the shared datasets at test time. */
function testImage(m) {
  const dir = path.join(DATA, m.dataset, 'test', m.classes[0]);
  const f = fs.readdirSync(dir).filter((x) => /\.(jpe?g|png)$/i.test(x)).sort()[0];
  return path.join(dir, f);
}

test('upload: a test photo gets an answer, doubt, LIME and its own highlighted path', async (t) => {
  if (skip) { t.skip(skip); return; }
  for (const m of models.filter((x) => !x.seed_architecture)) {
    await t.test(m.id, async () => {
      const ctx = await browser.newContext({ viewport: DESKTOP });
      const { page, errors } = await open(ctx, `/model.html?id=${encodeURIComponent(m.id)}`);
      await modelPageReady(page);
      const replyP = page.waitForResponse((r) => r.url().includes('/predict') && r.request().method() === 'POST',
        { timeout: 2 * STEP_MS });
      await page.setInputFiles('#file-input', testImage(m));
      const reply = await (await replyP).json();
      await page.waitForSelector('#upload-result [data-predicted]');
      assert.equal(await page.locator('#upload-result [data-predicted]').getAttribute('data-predicted'), reply.predicted);
      assert.ok(m.classes.includes(reply.predicted));
      // Probability bars: one per class.
      assert.equal(await page.evaluate(() => document.getElementById('upload-bars').data[0].x.length), m.classes.length);
      if (reply.doubt) {
        const shown = await page.locator('.doubt-score').getAttribute('data-doubt');
        assert.ok(Math.abs(Number(shown) - reply.doubt.score) < 1e-9, `doubt shown ${shown} vs ${reply.doubt.score}`);
      } else {
        t.diagnostic(`${m.id}: the predict reply has no doubt field; nothing to show`);
      }
      // The LIME overlay loads, and the heat-map toggle swaps it.
      await page.waitForFunction(() => {
        const img = document.querySelector('#upload-result img.lime-overlay');
        return img && img.complete && img.naturalWidth > 0;
      }, null, { timeout: 2 * STEP_MS });
      if (await page.locator('#upload-result button[data-view="heatmap"]').count()) {
        await page.click('#upload-result button[data-view="heatmap"]');
        await page.waitForFunction(() => {
          const img = document.querySelector('#upload-result img.lime-heatmap');
          return img && !img.hidden && img.complete && img.naturalWidth > 0;
        });
      }
      // Its path: one more line in the parallel graph, in the upload colour (index C + 1).
      const pc = await page.evaluate(() => {
        const tr = document.getElementById('parcats').data[0];
        const last = tr.line.color.length - 1;
        return { n: tr.dimensions[0].values.length, first: tr.dimensions[0].values[last], colour: tr.line.color[last] };
      });
      const n = (await getJSON(`/api/models/${encodeURIComponent(m.id)}`)).analysis.n_images;
      assert.equal(pc.n, n + 1);
      assert.equal(pc.first, 'your image');
      assert.equal(pc.colour, m.classes.length + 1);
      // Its point: a star on the scatter at the reply's coordinates for that layer.
      const star = await page.evaluate(() => {
        const gd = document.getElementById('scatter');
        const s = gd.data.find((tr) => tr.name === 'your image');
        return s ? { x: s.x[0], y: s.y[0], layer: Number(gd.dataset.layer) } : null;
      });
      assert.ok(star, 'a star marks the upload on the scatter');
      const l = reply.layers.find((x) => x.index === star.layer);
      assert.ok(Math.abs(star.x - l.x) < 1e-6 && Math.abs(star.y - l.y) < 1e-6);
      await page.locator('#upload-section').scrollIntoViewIfNeeded();
      await shot(page, `upload-${m.id}-desktop`);
      assert.deepEqual(errors, []);
      await ctx.close();
    });
  }
});

test('upload: a text file shows the server\'s error message', async (t) => {
  if (skip) { t.skip(skip); return; }
  const m = models[0];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-web-'));
  const file = path.join(tmp, 'notes.txt');
  fs.writeFileSync(file, 'This is not an image.\n');
  const ctx = await browser.newContext({ viewport: PHONE });
  // The refused upload itself is logged by Chromium as a failed resource: expected here.
  const { page, errors } = await open(ctx, `/model.html?id=${encodeURIComponent(m.id)}`, /status of 4(00|15)/);
  await modelPageReady(page);
  const replyP = page.waitForResponse((r) => r.url().includes('/predict'));
  await page.setInputFiles('#file-input', file);
  const reply = await replyP;
  assert.ok([400, 415].includes(reply.status()), `status ${reply.status()}`);
  const envelope = await reply.json();
  await page.waitForSelector('#upload-result .error');
  const shown = await page.locator('#upload-result .error').innerText();
  assert.ok(shown.includes(envelope.error.message), `"${shown}" shows "${envelope.error.message}"`);
  await page.locator('#upload-section').scrollIntoViewIfNeeded();
  await shot(page, 'upload-error-phone');
  assert.deepEqual(errors, []);
  await ctx.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
