// browser.test.mjs — the dashboard in a real browser (Chromium through
// playwright-core) against a real `strata serve` started here on a free port
// (binary: $STRATA_BIN, default build/server/strata). When the binary is
// missing or has no `serve` command, every test is reported SKIPPED, not
// passed. $STRATA_URL points the tests at a server already running instead;
// $STRATA_WEB_MODELS serves another models folder than models/.
//
// Checks: the home cards and models menu; on every model page the graph of
// paths (its SVG drawing what its figure says), each layer's scatter (as many points as analysed images), the elbow
// and k selector, the doubt histogram and AUROC table, a mistake's LIME
// overlay, the out-of-model images, an
// upload (answer, doubt, LIME, highlighted path, star), refused uploads
// (wrong type or too big: refused before sending; not an image: the
// server's refusal in plain words); the notes under the graph of paths'
// bars, centred under them; the doubt table's per-column best; the help
// page's plots and its toy graph of paths; no console errors anywhere. Screenshots of every page at
// 1280×800 and 390×844 go to tests/artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { DATA, browserSession } from './strata-server.mjs';
import { ARTIFACTS, DESKTOP_SIZE as DESKTOP, PHONE_SIZE as PHONE, READY_TIMEOUT_S, STEP_MS, getJSON as getJSONFrom,
  openPage, screenshot, modelPageReady, pathsFigureShown, pathsDrawn, assertDrawsFigure } from './pages.mjs';

let skip = null;
let server = null;
let base = null;
let browser = null;
let models = [];

before(async () => {
  const session = await browserSession({ timeoutS: READY_TIMEOUT_S });
  ({ server = null, base, browser = null } = session);
  if (session.skip) {
    skip = session.skip;
    return;
  }
  models = (await (await fetch(`${base}/api/models`)).json()).models;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const getJSON = (p) => getJSONFrom(base, p);

/** A page of base + url recording console errors (pages.mjs's openPage). */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });
const shot = (page, name) => screenshot(page, name, { fullPage: true });

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

/** For the graph of paths: each note's horizontal centre minus its bar's
 *  (px), in dimension order, as drawn. */
const noteOffsets = () => {
  const gd = document.getElementById('parcats');
  const centre = (r) => r.left + r.width / 2;
  const bars = [...gd.querySelectorAll('.pg-axis')].map((g) => centre(g.querySelector('.pg-outline').getBoundingClientRect()));
  const notes = [...gd.querySelectorAll('.pg-note')].map((a) => centre(a.getBoundingClientRect()));
  return { bars: bars.length, notes: notes.length, offsets: bars.map((b, i) => notes[i] - b) };
};

/** Share of a histogram group below a threshold, from the bins' left edges. */
function shareBelowLevel(edges, counts, level) {
  let below = 0, total = 0;
  counts.forEach((c, i) => { total += c; if (edges[i] < level - 1e-9) below += c; });
  return below / total;
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
    // The number and its % sign kept together by a no-break space.
    assert.match(await card.locator('.metric').innerText(), /\d+\u00a0%/);
  }
  // The "?" opens the help page.
  assert.equal(await page.locator('.help-button').getAttribute('href'), '/help.html');
  // Menu: closed, then every model with its layer count, the seed ones marked.
  assert.equal(await page.locator('#menu-panel').isVisible(), false);
  await page.click('#menu-button');
  await page.waitForSelector('#menu-panel .menu-item');
  assert.equal(models.length, 8, `the server lists ${models.length} models: ${models.map((m) => m.id).join(', ')}`);
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

test('help: live plots, the toy graph of paths, and no console errors', async (t) => {
  if (skip) { t.skip(skip); return; }
  for (const [vp, name] of [[DESKTOP, 'help-desktop'], [PHONE, 'help-phone']]) {
    const ctx = await browser.newContext({ viewport: vp });
    const { page, errors } = await open(ctx, '/help.html');
    await page.waitForFunction(() => document.querySelectorAll('.js-plotly-plot').length >= 8);
    // A slider redraws its plot: k-means with k = 5 has 5 cluster traces + centres.
    await page.locator('#kmeans-k').fill('5');
    await page.waitForFunction(() => document.getElementById('plot-kmeans').data.length === 6);
    const ids = await page.$$eval('.js-plotly-plot', (ps) => ps.map((p) => p.id));
    for (const id of ['plot-neuron', 'plot-activations', 'plot-softmax', 'plot-conv', 'plot-kmeans', 'plot-toy-elbow',
      'plot-pca', 'plot-lime']) assert.ok(ids.includes(id), `${id} drawn`);
    // The toy graph of paths (the model pages' SVG): 90 images through two
    // layers; a click on a bar's segment highlights its lines, a second shows all.
    const toy = () => {
      const svg = document.querySelector('#plot-parcats svg.pathsgraph');
      const bands = [...svg.querySelectorAll('.pg-axis[data-dim="0"] .pg-band')];
      return {
        bars: svg.querySelectorAll('.pg-axis').length,
        lines: bands.reduce((s, b) => s + Number(b.dataset.count), 0),
        grey: bands.filter((b) => b.dataset.color === '3').reduce((s, b) => s + Number(b.dataset.count), 0),
        named: svg.getAttribute('aria-label'),
      };
    };
    const before = await page.evaluate(toy);
    assert.deepEqual([before.bars, before.lines, before.grey], [4, 90, 0]);
    assert.match(before.named, /^Toy graph of the paths of 90 images/);
    const seg = page.locator('#plot-parcats .pg-axis[data-dim="1"] .pg-seg').first();
    await seg.scrollIntoViewIfNeeded();
    const count = Number(await seg.getAttribute('data-count'));
    const box = await seg.locator('.pg-outline').boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForFunction(() => document.querySelector('#plot-parcats .pg-band[data-color="3"]'));
    assert.equal((await page.evaluate(toy)).grey, 90 - count, 'the lines through the clicked cluster stay in colour');
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await page.waitForFunction(() => !document.querySelector('#plot-parcats .pg-band[data-color="3"]'));
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

      // The graph of paths: one bar per /paths dimension, one line per
      // analysed image, each image where /paths puts it; the SVG draws that.
      const fig = await page.evaluate(pathsFigureShown);
      assert.deepEqual(fig.dimensions.map((d) => d.label), paths.dimensions.map((d) => d.label));
      assert.equal(fig.lines, n);
      assert.deepEqual(fig.dimensions[0].values, paths.images.true.map((c) => paths.classes[c]));
      fig.dimensions.filter((d) => d.kind === 'layer').forEach((d, j) => {
        assert.deepEqual(d.values, paths.images.clusters.map((c) => c[j]), `${d.label}: each image in its cluster`);
      });
      assertDrawsFigure(await page.evaluate(pathsDrawn), fig, 'as loaded');
      assert.match(await page.locator('#parcats svg.pathsgraph').getAttribute('aria-label'), new RegExp(`paths of ${n} images`));
      // Each note (n images, k / purity / ARI, accuracy) sits centred under its own bar.
      const under = await page.evaluate(noteOffsets);
      assert.equal(under.bars, paths.dimensions.length);
      assert.equal(under.notes, paths.dimensions.length);
      under.offsets.forEach((d, i) => assert.ok(Math.abs(d) <= 3,
        `${paths.dimensions[i].label}: note ${d.toFixed(1)} px off its bar's centre`));
      // Which layers are left out, and why, is said under the graph.
      const shownLayers = paths.dimensions.filter((d) => d.kind === 'layer').length;
      if (shownLayers < detail.layers.length) {
        assert.match(await page.locator('#paths-layers-note').innerText(),
          new RegExp(`shows ${shownLayers} of the model's ${detail.layers.length} layers`));
      }
      // A class chip highlights its paths: other lines turn grey (colour index C).
      const C = paths.classes.length;
      await page.click(`#class-filter button[data-class="${paths.classes[0]}"]`);
      const lit = await page.evaluate(pathsFigureShown);
      paths.images.true.forEach((tc, i) => assert.equal(lit.colors[i], tc === 0 ? 0 : C));
      assertDrawsFigure(await page.evaluate(pathsDrawn), lit, 'a class highlighted');
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
      // Bold (class "best") goes to each column's best method, from the report's
      // numbers: highest AUROC, lowest FPR, highest AUROC on its errors.
      const bold = await page.evaluate(() => Object.fromEntries(['auroc', 'fpr95', 'auroc_errors'].map((col) => [col,
        [...document.querySelectorAll(`#doubt-auroc td.best[data-col="${col}"]`)].map((td) => td.closest('tr').dataset.method).sort()])));
      for (const [col, way] of [['auroc', 1], ['fpr95', -1], ['auroc_errors', 1]]) {
        const vals = Object.entries(report[col]).filter(([, v]) => typeof v === 'number');
        const top = Math.max(...vals.map(([, v]) => way * v));
        assert.deepEqual(bold[col], vals.filter(([, v]) => way * v === top).map(([k]) => k).sort(), `best of ${col}`);
      }
      // When a baseline spots the model's own mistakes better, the section says so.
      const verdict = await page.locator('#doubt-verdict');
      const beaten = ['msp', 'energy'].some((k) => report.auroc_errors[k] > report.auroc_errors.doubt);
      assert.equal(await verdict.isVisible(), beaten, 'the verdict shows exactly when a baseline beats the doubt on errors');
      if (beaten) assert.match(await verdict.innerText(), /own mistakes.*does better than strata's doubt/);
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
      // A low doubt comes with its caveat and this model's measured share of
      // other datasets' photos rated low, from the histogram.
      const lowShare = Math.round(100 * shareBelowLevel(report.histogram.edges, report.histogram.ood, report.levels.medium));
      const lows = await page.$$eval('.outside-card', (cs) => cs.filter((c) => c.querySelector('.doubt-badge.doubt-low'))
        .map((c) => c.querySelector('.low-doubt-note')?.innerText || ''));
      for (const note of lows) assert.match(note, new RegExp(`weak evidence.* ${lowShare}\u00a0% of ${report.n_ood} photos`));
      if (lows.length) t.diagnostic(`${m.id}: ${lows.length} outside photo(s) rated low, noted (${lowShare} % of others are)`);
      await shot(page, `model-${m.id}-desktop`);
      assert.deepEqual(errors, []);
      await ctx.close();

      const phone = await browser.newContext({ viewport: PHONE });
      const p2 = await open(phone, `/model.html?id=${encodeURIComponent(m.id)}`);
      await modelPageReady(p2.page);
      const phoneUnder = await p2.page.evaluate(noteOffsets);
      phoneUnder.offsets.forEach((d, i) => assert.ok(Math.abs(d) <= 3, `phone, ${paths.dimensions[i].label}: note ${d.toFixed(1)} px off`));
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
        // A low doubt is said to be weak evidence; no other level gets that note.
        assert.equal(await page.locator('#upload-result .low-doubt-note').count(), reply.doubt.level === 'low' ? 1 : 0);
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
      // Its path: one more line in the graph of paths, in the upload colour
      // (index C + 1), drawn as one black line across the graph.
      const fig = await page.evaluate(pathsFigureShown);
      const n = (await getJSON(`/api/models/${encodeURIComponent(m.id)}`)).analysis.n_images;
      assert.equal(fig.lines, n + 1);
      assert.equal(fig.dimensions[0].values[n], 'your image');
      assert.equal(fig.colors[n], m.classes.length + 1);
      const cl = (l) => reply.layers.find((x) => x.index === l)?.cluster;
      assert.deepEqual(fig.dimensions.filter((d) => d.kind === 'layer').map((d) => d.values[n]),
        fig.dimensions.filter((d) => d.kind === 'layer').map((d) => cl(d.layer)), 'through the reply\'s clusters');
      assert.equal(await page.locator('#parcats path.pg-upload').count(), 1);
      // The test images' lines turn grey (index C) so that the one black line
      // can be found, and the note above the graph says so; each counts one image.
      assert.deepEqual([...new Set(fig.colors.slice(0, -1))], [m.classes.length]);
      assertDrawsFigure(await page.evaluate(pathsDrawn), fig, 'with an upload');
      assert.match(await page.locator('#highlight-note').innerText(), /black line.*grey/);
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

test('upload: a wrong type or an oversized file is refused before sending; a non-image in plain words', async (t) => {
  if (skip) { t.skip(skip); return; }
  const m = models[0];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-web-'));
  const text = path.join(tmp, 'notes.txt');
  fs.writeFileSync(text, 'This is not an image.\n');
  const fake = path.join(tmp, 'fake.jpg');
  fs.writeFileSync(fake, 'This is not an image either.\n');
  const big = path.join(tmp, 'big.png');
  fs.writeFileSync(big, Buffer.alloc(11 * 1024 * 1024, 1));
  const ctx = await browser.newContext({ viewport: PHONE });
  // The refused upload itself is logged by Chromium as a failed resource: expected here.
  const { page, errors } = await open(ctx, `/model.html?id=${encodeURIComponent(m.id)}`, /status of 4(00|15)/);
  await modelPageReady(page);
  // The picker offers JPEG and PNG only; the limit is stated beside it.
  assert.doesNotMatch(await page.getAttribute('#file-input', 'accept'), /image\/\*/);
  assert.match(await page.locator('#dropzone').innerText(), /JPEG or PNG, up to 10\u00a0MB/);
  // Uploads of the two files (the out-of-model cards post their own photos).
  let uploads = 0;
  page.on('request', (r) => {
    if (!r.url().includes('/predict') || r.method() !== 'POST') return;
    const body = r.postDataBuffer();
    if (!body || /filename="(notes\.txt|big\.png)"/.test(body.toString('latin1'))) uploads += 1;
  });
  // A text file: refused here, in plain words, nothing sent.
  await page.setInputFiles('#file-input', text);
  await page.waitForSelector('#upload-result[data-refused="type"] .error');
  assert.match(await page.locator('#upload-result .error').innerText(), /JPEG and PNG.*notes\.txt is a text file/s);
  // 11 MB: refused here too, before a byte is sent, saying the limit.
  await page.setInputFiles('#file-input', big);
  await page.waitForSelector('#upload-result[data-refused="size"] .error');
  assert.match(await page.locator('#upload-result .error').innerText(), /too big.*11\u00a0MB; strata takes images up to 10\u00a0MB/s);
  assert.equal(uploads, 0, 'nothing was uploaded');
  // Text named .jpg goes to the server, whose refusal is put in plain words,
  // its own sentence and code kept below in small print.
  const replyP = page.waitForResponse((r) => r.url().includes('/predict') && r.request().method() === 'POST');
  await page.setInputFiles('#file-input', fake);
  const reply = await replyP;
  assert.ok([400, 415].includes(reply.status()), `status ${reply.status()}`);
  const envelope = await reply.json();
  await page.waitForSelector('#upload-result .error .error-detail');
  const plain = await page.locator('#upload-result .error > strong').innerText();
  assert.equal(plain, 'This file could not be read as a photo');
  const detail = await page.locator('#upload-result .error-detail').innerText();
  assert.ok(detail.includes(envelope.error.message), `"${detail}" keeps "${envelope.error.message}"`);
  assert.ok(detail.includes(envelope.error.code));
  await page.locator('#upload-section').scrollIntoViewIfNeeded();
  await shot(page, 'upload-error-phone');
  assert.deepEqual(errors, []);
  await ctx.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('model page without a model: the error alone, no empty sections', async (t) => {
  if (skip) { t.skip(skip); return; }
  const ctx = await browser.newContext({ viewport: DESKTOP });
  for (const url of ['/model.html', '/model.html?id=no-such-model']) {
    const { page, errors } = await open(ctx, url, /status of 404/);
    await page.waitForSelector('#model-header .error');
    const visible = await page.$$eval('main > section.section', (ss) => ss.filter((s) => !s.hidden).map((s) => s.id));
    assert.deepEqual(visible, [], `${url}: sections left showing`);
    assert.deepEqual(errors, []);
    await page.close();
  }
  await ctx.close();
});
