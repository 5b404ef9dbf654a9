// graphview.test.mjs — the model page's architecture graph, the layer
// chooser of an imported model, the confusion matrix of a model without a
// training card, and the charts' text alternatives, in a real browser
// (Chromium through playwright-core) against a real `strata serve` started
// here with an empty --workspace, into which the residual CNN trained on
// the felines ($STRATA_ONNX_REFS/residual/residual.onnx, its classes, mean
// and std in residual.reference.json) is imported through POST /api/models
// on the server's felines dataset.
//
//   - a demo model's graph is a chain: one box per layer after the image,
//     an arrow between each two, no bracket; the boxes never overlap, their
//     text stays inside them; the arrow keys go from box to box;
//   - the imported model's graph draws a bracket from each layer a join
//     reads to the join (where `inputs` has two entries), from the right
//     boxes, and says each layer's ONNX op (never "relu · relu");
//   - the same, readable, with 24 layers, on a desktop and on a phone;
//   - the layer chooser lists GET …/graph's values; a refused choice shows
//     the server's sentence and changes nothing; two layers picked are
//     analysed anew and become the layer buttons; strata's choice brings
//     the first ones back;
//   - the imported model's confusion matrix is analysis.confusion, and
//     the page says which split it counts;
//   - "Show as table" under the paths and under the scatter gives the same
//     counts as the charts and the API, and follows the layer and k; the
//     charts have accessible names.
//
// At 1280×800 and on a 390×844 touch phone; screenshots go to
// tests/artifacts/graphview-*.png; no console errors anywhere. Every test
// is SKIPPED, with the reason, when $STRATA_ONNX_REFS or the model is
// missing, when the binary cannot serve or has no --workspace, or when
// Chromium cannot run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { DESKTOP, PHONE, READY_TIMEOUT_S, getJSON as getJSONFrom, openPage, screenshot,
  modelPageReady as pageReady, RESIDUAL_ONNX as ONNX, residualReference, tempWorkspace, workspaceSession,
  pathsLines } from './pages.mjs';
import { graphLayout, layerOp, isImported } from '../../web/graphview.js';
import { pathRows, clusterRows } from '../../web/tables.js';
import { confusionSource } from '../../web/confusion.js';

const ID = 'residual-graph';
const DEMO = 'felines';

let skip = null;
let server = null;
let base = null;
let browser = null;
let tmp = null;
let reference = null;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  ({ skip = null, reference = null } = residualReference('where imported models are kept'));
  if (skip) return;
  let workspace;
  ({ tmp, workspace } = tempWorkspace('graphview'));
  const session = await workspaceSession(workspace);
  ({ server, base, browser = null } = session);
  if (session.skip) { skip = session.skip; return; }
  // The residual model, on the server's felines photos.
  const form = new FormData();
  form.append('meta', JSON.stringify({ title: 'Residual graph', id: ID, dataset: 'felines', classes: reference.classes,
    mean: reference.mean, std: reference.std }));
  form.append('model', new Blob([fs.readFileSync(ONNX)]), 'residual.onnx');
  const r = await fetch(`${base}/api/models`, { method: 'POST', body: form });
  assert.equal(r.status, 201, `import: ${await r.clone().text()}`);
  await analysed(ID);
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const getJSON = (p) => getJSONFrom(base, p);

/** Waits until model `id`'s analysis is ready; resolves to its detail. */
async function analysed(id) {
  const deadline = Date.now() + READY_TIMEOUT_S * 1000;
  for (;;) {
    const m = await getJSON(`/api/models/${id}`);
    if (m.analysis.state === 'ready') return m;
    assert.notEqual(m.analysis.state, 'failed', `the analysis of ${id} failed: ${m.analysis.error}`);
    assert.ok(Date.now() < deadline, `${id} not analysed after ${READY_TIMEOUT_S} s`);
    await sleep(500);
  }
}

/** PUT …/layers through the API (for set-ups; the page's own use is tested through the page). */
async function putLayers(shown) {
  const r = await fetch(`${base}/api/models/${ID}/layers`, {
    method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ shown }),
  });
  assert.equal(r.status, 200, `PUT layers: ${await r.clone().text()}`);
  return analysed(ID);
}

/** A page of base + url recording console errors (pages.mjs's openPage). */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });
const shot = (page, name, { fullPage = false } = {}) => screenshot(page, `graphview-${name}`, { fullPage });

/** Scrolls `sel` to just under the sticky top bar. */
async function toTop(page, sel) {
  await page.evaluate((s) => {
    const r = document.querySelector(s).getBoundingClientRect();
    window.scrollBy(0, r.top - 72);
  }, sel);
  await page.waitForTimeout(200);
}

/** Waits until the model page has drawn its parallel graph (an analysis
 *  may still be running: up to READY_TIMEOUT_S) and first scatter. */
const modelPageReady = (page) => pageReady(page, { parcatsTimeoutMs: READY_TIMEOUT_S * 1000 });

/** The architecture graph as drawn: each box's texts and rectangle, boxes
 *  that overlap the next, text that leaves its box, the page's overflow. */
const graphState = () => {
  const nodes = [...document.querySelectorAll('#arch-graph .graph-node')];
  const rects = nodes.map((n) => n.getBoundingClientRect());
  const overlaps = [];
  for (let i = 1; i < rects.length; i++) {
    if (rects[i - 1].right > rects[i].left + 0.5 || Math.abs(rects[i - 1].top - rects[i].top) > 0.5) overlaps.push(i);
  }
  const outside = [];
  nodes.forEach((n, i) => {
    for (const s of n.querySelectorAll('span:not(.visually-hidden)')) {
      const r = s.getBoundingClientRect();
      if (r.left < rects[i].left - 0.5 || r.right > rects[i].right + 0.5 || s.scrollWidth > s.clientWidth + 1) {
        outside.push(`${n.dataset.pos}: "${s.textContent}"`);
      }
    }
  });
  const scroller = document.getElementById('arch-graph');
  return {
    nodes: nodes.map((n) => ({
      pos: Number(n.dataset.pos), name: n.querySelector('.arch-name').textContent,
      op: n.querySelector('.arch-type').textContent, shape: n.querySelector('.arch-shape').textContent,
      reads: n.dataset.reads, join: n.classList.contains('graph-join'),
    })),
    chains: [...document.querySelectorAll('#arch-graph .graph-chain')].map((p) => [Number(p.dataset.from), Number(p.dataset.to)]),
    skips: [...document.querySelectorAll('#arch-graph .graph-skip')].map((p) => [Number(p.dataset.from), Number(p.dataset.to)])
      .sort((a, b) => a[1] - b[1] || a[0] - b[0]),
    overlaps,
    outside,
    scrolls: scroller.scrollWidth > scroller.clientWidth,
    pageOverflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    legend: document.querySelector('#model-header .graph-legend')?.textContent || '',
  };
};

/** Where each bracket starts and ends against the boxes it joins (px in the
 *  graph): start inside the box read, end inside the join, above both. */
const bracketEnds = () => [...document.querySelectorAll('#arch-graph .graph-skip')].map((p) => {
  const box = (pos) => document.querySelector(`#arch-graph .graph-node[data-pos="${pos}"]`);
  const a = p.getPointAtLength(0);
  const b = p.getPointAtLength(p.getTotalLength());
  const from = box(p.dataset.from);
  const to = box(p.dataset.to);
  const inside = (x, n) => x > n.offsetLeft && x < n.offsetLeft + n.offsetWidth;
  return {
    from: Number(p.dataset.from), to: Number(p.dataset.to),
    startInside: inside(a.x, from), endInside: inside(b.x, to),
    aboveBoxes: a.y <= from.offsetTop + 1 && b.y <= to.offsetTop + 1,
  };
});

/** What the graph should draw for a model detail: every layer's op, the
 *  chain arrows and the brackets, from `inputs`. */
function expectedGraph(m) {
  const imported = isImported(m);
  const chains = [];
  const skips = [];
  m.layers.forEach((l, i) => {
    for (const j of l.inputs) (j === i - 1 ? chains : skips).push([j + 1, i + 1]);
  });
  const byPos = (a, b) => a[1] - b[1] || a[0] - b[0];
  return { ops: m.layers.map((l) => layerOp(l, imported)), chains: chains.sort(byPos), skips: skips.sort(byPos) };
}

function assertReadable(g, where) {
  assert.deepEqual(g.overlaps, [], `${where}: boxes that overlap the one before`);
  assert.deepEqual(g.outside, [], `${where}: text outside its box`);
  assert.equal(g.pageOverflow, 0, `${where}: the page is wider than the screen`);
}

const layerButtons = () => [...document.querySelectorAll('#layer-buttons button[data-layer]')].map((b) => ({
  layer: Number(b.dataset.layer), name: b.querySelector('.layer-name').textContent,
  type: b.querySelector('.layer-type')?.textContent ?? null,
}));

// --- pure parts -----------------------------------------------------------------------

test('graphLayout: a chain has arrows only; a join gets a bracket from the layer it skips from', () => {
  const chain = graphLayout({ input: { height: 8, width: 8, channels: 3 }, layers: [
    { index: 0, name: 'a', type: 'conv2d', activation: 'relu', output_shape: [8, 8, 4], inputs: [-1] },
    { index: 1, name: 'b', type: 'dense', activation: 'softmax', output_shape: [2], inputs: [0] },
  ] });
  assert.deepEqual(chain.nodes.map((n) => [n.name, n.op, n.shape]), [['input', 'image', '8×8×3'], ['a', 'conv2d · relu', '8×8×4'], ['b', 'dense · softmax', '2']]);
  assert.deepEqual(chain.edges.map((e) => [e.kind, e.from, e.to]), [['chain', 0, 1], ['chain', 1, 2]]);
  assert.equal(chain.levels, 0);
  const res = graphLayout({ input: { height: 8, width: 8, channels: 3 }, layers: [
    { index: 0, name: 's', op: 'Relu', output_shape: [8, 8, 4], inputs: [-1] },
    { index: 1, name: 'c', op: 'Relu', output_shape: [8, 8, 4], inputs: [0] },
    { index: 2, name: 'j1', op: 'Relu', output_shape: [8, 8, 4], inputs: [0, 1] },
    { index: 3, name: 'c2', op: 'Relu', output_shape: [8, 8, 4], inputs: [2] },
    { index: 4, name: 'j2', op: 'Relu', output_shape: [8, 8, 4], inputs: [2, 3] },
    { index: 5, name: 'far', op: 'Add', output_shape: [8, 8, 4], inputs: [0, 4] },
    { index: 6, name: 'logits', op: null, type: 'dense', output_shape: [1, 1, 2], inputs: [5] },
  ] });
  const skips = res.edges.filter((e) => e.kind === 'skip');
  assert.deepEqual(skips.map((e) => [e.from, e.to]).sort(), [[1, 3], [1, 6], [3, 5]]);
  // Brackets side by side share a level; the one over them rises above.
  const level = Object.fromEntries(skips.map((e) => [`${e.from}-${e.to}`, e.level]));
  assert.equal(level['1-3'], 0);
  assert.equal(level['3-5'], 0);
  assert.equal(level['1-6'], 1);
  assert.deepEqual(res.nodes.map((n) => n.op), ['image', 'Relu', 'Relu', 'Relu', 'Relu', 'Relu', 'Add', 'dense']);
  // Boxes never overlap: each starts after the one before ends.
  for (let i = 1; i < res.nodes.length; i++) assert.ok(res.nodes[i].x >= res.nodes[i - 1].x + res.nodes[i - 1].width);
});

test('pathRows and clusterRows count as the figures do', () => {
  const trace = { dimensions: [
    { label: 'true class', values: ['a', 'a', 'b', 'a'] },
    { label: 'L', values: [0, 0, 1, 1], categoryarray: [0, 1], ticktext: ['0 · a', '1 · b'] },
    { label: 'predicted', values: ['a', 'a', 'b', 'b'] },
  ] };
  const t = pathRows(trace);
  assert.equal(t.lines, 4);
  assert.deepEqual(t.rows, [{ cells: ['a', '0 · a', 'a'], count: 2 }, { cells: ['b', '1 · b', 'b'], count: 1 },
    { cells: ['a', '1 · b', 'b'], count: 1 }]);
  const rows = clusterRows({ k: 3, classes: ['a', 'b'], centers: { x: [0, 0, 0] },
    points: { x: [0, 0, 0, 0], cluster: [0, 0, 1, 0], true: [0, 1, 1, 0], pred: [0, 0, 1, 0] } });
  assert.deepEqual(rows.map((r) => [r.size, r.byClass, r.majority, r.purity, r.right]),
    [[3, [2, 1], 0, 2 / 3, 2], [1, [0, 1], 1, 1, 1], [0, [0, 0], -1, null, 0]]);
  assert.equal(confusionSource({ classes: ['a'], card: null, analysis: { split: 'test', confusion: [[3]] } }).source, 'analysis');
  assert.equal(confusionSource({ classes: ['a'], card: { test: { confusion: [[2]] } }, analysis: { confusion: [[3]] } }).source, 'card');
  assert.equal(confusionSource({ classes: ['a'], card: null, analysis: { state: 'queued' } }), null);
});

// --- the graph ----------------------------------------------------------------------

test('demo model: the graph is a chain, one box per layer with its type and shape, readable, keyboard reachable', async (t) => {
  if (skip) { t.skip(skip); return; }
  const m = await getJSON(`/api/models/${DEMO}`);
  assert.ok(m.layers.every((l, i) => JSON.stringify(l.inputs) === JSON.stringify([i - 1])), 'the demo model is a chain');
  const want = expectedGraph(m);
  for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, `/model.html?id=${DEMO}`);
    await modelPageReady(page);
    const g = await page.evaluate(graphState);
    assert.equal(g.nodes.length, m.layers.length + 1);
    assert.deepEqual(g.nodes[0], { pos: 0, name: 'input', op: 'image', shape: `${m.input.height}×${m.input.width}×${m.input.channels}`, reads: '', join: false });
    assert.deepEqual(g.nodes.slice(1).map((n) => n.name), m.layers.map((l) => l.name));
    assert.deepEqual(g.nodes.slice(1).map((n) => n.op), want.ops);
    assert.deepEqual(g.nodes.slice(1).map((n) => n.shape), m.layers.map((l) => l.output_shape.join('×')));
    assert.deepEqual(g.chains, want.chains);
    assert.deepEqual(g.skips, [], 'no bracket on a chain');
    assert.equal(g.legend, '', 'no join to explain');
    assert.equal(await page.locator('#choose-layers').count(), 0, 'strata\'s own models show every layer: no chooser');
    assertReadable(g, `${DEMO} ${size}`);
    if (size === 'phone') assert.ok(g.scrolls, 'on a phone the row scrolls sideways');
    // The keyboard: one tab stop, then the arrow keys, Home and End.
    const first = page.locator('#arch-graph .graph-node[data-pos="0"]');
    await first.focus();
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.pos), '3');
    assert.equal(await page.locator('#arch-graph .graph-edge.is-lit[data-to="3"]').count(), 1, 'its arrow is lit');
    await page.keyboard.press('End');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.pos), String(m.layers.length));
    const last = await page.evaluate(() => {
      const s = document.getElementById('arch-graph').getBoundingClientRect();
      const r = document.activeElement.getBoundingClientRect();
      return { inView: r.left >= s.left - 1 && r.right <= s.right + 1, tabbable: document.querySelectorAll('#arch-graph [tabindex="0"]').length };
    });
    assert.ok(last.inView, 'the box in focus is scrolled into view');
    assert.equal(last.tabbable, 1, 'one tab stop');
    await page.keyboard.press('Home');
    await toTop(page, '#model-header .sub-title');
    await shot(page, `demo-${size}`);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

test('imported residual model: brackets where a layer joins two inputs, the ONNX ops, at both sizes', async (t) => {
  if (skip) { t.skip(skip); return; }
  const m = await getJSON(`/api/models/${ID}`);
  const want = expectedGraph(m);
  const joins = m.layers.filter((l) => l.inputs.length === 2);
  assert.ok(joins.length >= 2, `the residual model has joins: ${JSON.stringify(m.layers.map((l) => l.inputs))}`);
  for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, `/model.html?id=${ID}`);
    await modelPageReady(page);
    const g = await page.evaluate(graphState);
    assert.equal(g.nodes.length, m.layers.length + 1);
    assert.equal(g.nodes[0].shape, `${reference.input[0]}×${reference.input[1]}×3`, 'the image\'s size');
    assert.deepEqual(g.nodes.slice(1).map((n) => n.op), m.layers.map((l) => l.op || l.type));
    assert.ok(g.nodes.every((n) => !/relu · relu/i.test(n.op)), 'the op, not "relu · relu"');
    assert.ok(g.nodes.some((n) => n.op === 'GlobalAveragePool'), 'the pooling layer says its op');
    assert.deepEqual(g.chains, want.chains);
    assert.deepEqual(g.skips, want.skips, 'a bracket for each input other than the layer before');
    // Every join box is marked and reads its two inputs.
    for (const l of joins) {
      const node = g.nodes[l.index + 1];
      assert.ok(node.join, `${l.name} is marked as a join`);
      assert.equal(node.reads, l.inputs.map((j) => j + 1).join(','));
    }
    assert.equal(g.nodes.filter((n) => n.join).length, joins.length);
    const ends = await page.evaluate(bracketEnds);
    for (const e of ends) {
      assert.ok(e.startInside && e.endInside && e.aboveBoxes, `bracket ${e.from} → ${e.to} joins its boxes: ${JSON.stringify(e)}`);
    }
    assert.match(g.legend, new RegExp(`${joins.length} layers join two inputs`));
    assertReadable(g, `${ID} ${size}`);
    // The layer buttons say the op too.
    const buttons = await page.evaluate(layerButtons);
    for (const b of buttons) {
      const l = m.layers[b.layer];
      assert.equal(b.type, l.op || l.type, `button ${b.name}`);
    }
    // Focus on a join lights its bracket and its arrow.
    const j = joins[0].index + 1;
    await page.locator(`#arch-graph .graph-node[data-pos="${j}"]`).focus();
    assert.equal(await page.locator(`#arch-graph .graph-edge.is-lit[data-to="${j}"]`).count(), 2);
    await page.locator(`#arch-graph .graph-node[data-pos="${j}"]`).blur();
    await toTop(page, '#model-header .sub-title');
    await shot(page, `residual-${size}`);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

test('24 layers: the graph stays readable on a desktop and on a phone', async (t) => {
  if (skip) { t.skip(skip); return; }
  const graph = await getJSON(`/api/models/${ID}/graph`);
  // 22 values (convolutions, ReLUs and the Adds of the joins) and the two class-score layers.
  const chosen = graph.values.filter((v) => ['Conv', 'Relu', 'Add'].includes(v.op)).slice(0, 22).map((v) => v.value);
  assert.equal(chosen.length, 22);
  const m = await putLayers(chosen);
  try {
    assert.equal(m.layers.length, 24);
    const want = expectedGraph(m);
    assert.ok(want.skips.length >= 3, 'joins among them');
    for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
      const ctx = await browser.newContext(ctxOpts);
      const { page, errors } = await open(ctx, `/model.html?id=${ID}`);
      await modelPageReady(page);
      const g = await page.evaluate(graphState);
      assert.equal(g.nodes.length, 25);
      assert.deepEqual(g.skips, want.skips);
      assert.deepEqual(g.chains, want.chains);
      assert.ok(g.nodes.some((n) => n.op === 'Add'), 'the Adds are shown with their op');
      assertReadable(g, `24 layers, ${size}`);
      const ends = await page.evaluate(bracketEnds);
      assert.ok(ends.every((e) => e.startInside && e.endInside && e.aboveBoxes), JSON.stringify(ends));
      assert.ok(await page.locator('.graph-hint').isVisible(), 'a hint says the row scrolls');
      await toTop(page, '#model-header .sub-title');
      await shot(page, `24-layers-${size}`);
      // Further along the row, scrolled as a finger or a trackpad would.
      await page.evaluate(() => { const s = document.getElementById('arch-graph'); s.scrollLeft = s.scrollWidth; });
      await page.waitForTimeout(150);
      await shot(page, `24-layers-${size}-end`);
      assert.deepEqual(errors, []);
      await ctx.close();
    }
  } finally {
    await putLayers(null);
  }
});

// --- the layer chooser ------------------------------------------------------------------

/** Records, in the page, every progress text the analysis banner shows. */
function watchBanner() {
  window.__bannerSeen = [];
  new MutationObserver(() => {
    const p = document.querySelector('#analysis-banner [data-progress]');
    const text = p ? p.textContent : '';
    if (text && window.__bannerSeen.at(-1) !== text) window.__bannerSeen.push(text);
  }).observe(document, { subtree: true, childList: true, characterData: true });
}

const isPut = (r) => new URL(r.url()).pathname === `/api/models/${ID}/layers` && r.request().method() === 'PUT';

/** What the chooser lists: value, checked, marked as strata's default. */
const chooserState = () => [...document.querySelectorAll('#chooser-form input[type="checkbox"]')].map((b) => ({
  value: b.value, checked: b.checked, marked: !!b.closest('li').querySelector('.chooser-default'),
  text: b.closest('li').querySelector('label').textContent,
}));

async function openChooser(page) {
  await page.locator('#choose-layers').click();
  assert.equal(await page.locator('#choose-layers').getAttribute('aria-expanded'), 'true');
  await page.waitForSelector('#chooser-form');
}

test('layer chooser: the graph\'s values, a refused choice, two layers analysed anew, strata\'s choice back', async (t) => {
  if (skip) { t.skip(skip); return; }
  const before = await getJSON(`/api/models/${ID}`);
  const beforePaths = await getJSON(`/api/models/${ID}/paths`);
  const beforeButtons = beforePaths.dimensions.filter((d) => d.kind === 'layer').map((d) => ({ layer: d.layer, name: d.label }));
  const graph = await getJSON(`/api/models/${ID}/graph`);
  assert.equal(graph.chosen, null, 'strata\'s choice to start with');

  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, `/model.html?id=${ID}`, /status of 400/);
  await page.addInitScript(watchBanner);
  await modelPageReady(page);
  assert.deepEqual((await page.evaluate(layerButtons)).map(({ layer, name }) => ({ layer, name })), beforeButtons);
  await openChooser(page);
  const listed = await page.evaluate(chooserState);
  assert.deepEqual(listed.map((v) => v.value), graph.values.map((v) => v.value), 'every value, in the graph\'s order');
  assert.deepEqual(listed.map((v) => v.checked), graph.values.map((v) => v.shown !== null), 'checked = shown');
  assert.deepEqual(listed.map((v) => v.marked), graph.values.map((v) => v.default), 'strata\'s default marked');
  graph.values.forEach((v, i) => {
    assert.ok(listed[i].text.includes(v.name) && listed[i].text.includes(v.op) && listed[i].text.includes(v.shape.join('×')),
      `${v.value}: name, op and shape in "${listed[i].text}"`);
  });
  assert.ok(await page.locator('#chooser-strata').isDisabled(), 'strata\'s choice is the one shown');
  await toTop(page, '#layer-chooser');
  await shot(page, 'chooser-desktop');

  // Two layers: an Add (the join itself) and a ReLU further on.
  const pick = [graph.values.find((v) => v.op === 'Add').value, graph.values.filter((v) => v.op === 'Relu').at(-1).value];
  const choose = async (values) => {
    for (const v of listed) await page.locator(`#chooser-form input[value="${v.value}"]`).setChecked(values.includes(v.value));
  };
  await choose(pick);
  assert.match(await page.locator('.chooser-count').innerText(), /^2 values checked$/);

  // Refused: the server's sentence, nothing changed, the page stays.
  await page.route(`**/api/models/${ID}/layers`, (route) => route.continue({ postData: JSON.stringify({ shown: ['no-such-value'] }) }));
  const refusedP = page.waitForResponse(isPut);
  await page.locator('#chooser-apply').click();
  const refused = await refusedP;
  assert.equal(refused.status(), 400);
  const envelope = await refused.json();
  await page.waitForSelector('#chooser-status .error');
  assert.ok((await page.locator('#chooser-status .error').innerText()).includes(envelope.error.message), 'the server\'s sentence');
  assert.deepEqual((await getJSON(`/api/models/${ID}`)).layers, before.layers, 'the model is as it was');
  assert.equal((await getJSON(`/api/models/${ID}/graph`)).chosen, null);
  assert.deepEqual((await page.evaluate(chooserState)).filter((v) => v.checked).map((v) => v.value), pick, 'the reader\'s ticks kept');
  assert.ok(await page.locator('#chooser-apply').isEnabled(), 'it can be sent again');
  assert.ok(await page.locator('#chooser-strata').isDisabled(), 'strata\'s choice is still the one shown');
  assert.deepEqual((await page.evaluate(layerButtons)).map(({ layer, name }) => ({ layer, name })), beforeButtons);
  await page.locator('#chooser-status').scrollIntoViewIfNeeded();
  await shot(page, 'chooser-refused-desktop');
  await page.unroute(`**/api/models/${ID}/layers`);

  // Accepted: the page follows the new analysis and draws the new layers.
  const putP = page.waitForResponse(isPut);
  const loaded = page.waitForEvent('load');
  await page.locator('#chooser-apply').click();
  const put = await putP;
  assert.equal(put.status(), 200);
  assert.deepEqual(put.request().postDataJSON(), { shown: pick });
  await loaded;
  await modelPageReady(page);
  const banner = await page.evaluate(() => window.__bannerSeen);
  t.diagnostic(`banner showed: ${banner.join(' | ') || '(nothing: the analysis was done before the page asked)'}`);
  const after = await analysed(ID);
  assert.equal(after.layers.length, 4, 'two layers and the class scores');
  const paths = await getJSON(`/api/models/${ID}/paths`);
  const newButtons = paths.dimensions.filter((d) => d.kind === 'layer').map((d) => ({ layer: d.layer, name: d.label }));
  assert.deepEqual((await page.evaluate(layerButtons)).map(({ layer, name }) => ({ layer, name })), newButtons);
  assert.deepEqual(after.layers.slice(0, 2).map((l) => l.op), pick.map((v) => graph.values.find((x) => x.value === v).op));
  assert.equal((await page.evaluate(graphState)).nodes.length, after.layers.length + 1, 'the graph is the new one');
  assert.equal(await page.evaluate(() => document.querySelectorAll('#parcats .pg-axis').length), paths.dimensions.length);
  assert.deepEqual((await getJSON(`/api/models/${ID}/graph`)).chosen, pick);
  await shot(page, 'chooser-two-layers-desktop');

  // strata's choice again, from a phone.
  const phone = await browser.newContext(PHONE);
  const p2 = await open(phone, `/model.html?id=${ID}`);
  await modelPageReady(p2.page);
  await p2.page.locator('#choose-layers').tap();
  await p2.page.waitForSelector('#chooser-form');
  assert.deepEqual((await p2.page.evaluate(chooserState)).filter((v) => v.checked).map((v) => v.value), pick);
  await toTop(p2.page, '#layer-chooser');
  await shot(p2.page, 'chooser-phone');
  const put2P = p2.page.waitForResponse(isPut);
  const loaded2 = p2.page.waitForEvent('load');
  await p2.page.locator('#chooser-strata').tap();
  assert.equal((await put2P).status(), 200);
  await loaded2;
  await modelPageReady(p2.page);
  await analysed(ID);
  assert.deepEqual((await p2.page.evaluate(layerButtons)).map(({ layer, name }) => ({ layer, name })), beforeButtons,
    'the layers of strata\'s choice are back');
  assert.equal((await getJSON(`/api/models/${ID}/graph`)).chosen, null);
  await shot(p2.page, 'chooser-back-phone');
  assert.deepEqual(errors, []);
  assert.deepEqual(p2.errors, []);
  await phone.close();
  await ctx.close();
});

// --- the confusion matrix of a model without a card -----------------------------------

test('imported model: the confusion matrix is the analysis\'s, and says which split it counts', async (t) => {
  if (skip) { t.skip(skip); return; }
  const m = await analysed(ID);
  assert.equal(m.card, null, 'no training card');
  for (const [ctxOpts, size] of [[DESKTOP, 'desktop'], [PHONE, 'phone']]) {
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, `/model.html?id=${ID}`);
    await modelPageReady(page);
    await page.waitForFunction(() => document.getElementById('confusion').data);
    const drawn = await page.evaluate(() => {
      const tr = document.getElementById('confusion').data[0];
      return { z: tr.z, x: tr.x, y: tr.y, label: document.getElementById('confusion').getAttribute('aria-label') };
    });
    assert.deepEqual(drawn.z, m.analysis.confusion);
    assert.deepEqual(drawn.x, m.classes);
    assert.deepEqual(drawn.y, m.classes);
    const total = m.analysis.confusion.flat().reduce((s, v) => s + v, 0);
    assert.equal(total, m.analysis.n_images);
    const note = await page.locator('#confusion-note').innerText();
    assert.match(note, new RegExp(`${total} images of the ${m.analysis.split} split`));
    const right = m.analysis.confusion.reduce((s, row, i) => s + row[i], 0);
    assert.match(drawn.label, new RegExp(`over ${total} images: ${right} answered right`));
    await toTop(page, '#quality-section');
    await shot(page, `confusion-${size}`);
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});

// --- the charts as tables --------------------------------------------------------------

/** The paths table as shown (after "show all"): {key: count}, a key being
 *  true class | cluster numbers | predicted. */
const pathsTable = () => {
  const out = {};
  for (const tr of document.querySelectorAll('#paths-table-data tbody tr')) {
    const cells = [...tr.querySelectorAll('td')].map((td) => td.textContent);
    const key = [cells[0], ...cells.slice(1, -1).map((c) => String(parseInt(c, 10))), cells.at(-1)].join('|');
    out[key] = Number(tr.querySelector('th').textContent);
  }
  return out;
};

const scatterTable = () => {
  const t = document.getElementById('scatter-table-data');
  return {
    layer: Number(t.dataset.layer), k: Number(t.dataset.k),
    rows: [...t.querySelectorAll('tbody tr')].map((tr) => {
      const td = [...tr.querySelectorAll('td')].map((c) => c.textContent);
      return { cluster: Number(tr.dataset.cluster), size: Number(td[0]), mostly: td[1], purity: td[2],
        byClass: td.slice(3, -1).map(Number), right: Number(td.at(-1)) };
    }),
  };
};

/** Images per cluster in the scatter as drawn (coloured by cluster). */
const scatterCounts = () => Object.fromEntries(document.getElementById('scatter').data
  .filter((tr) => /^cluster \d+/.test(tr.name)).map((tr) => [Number(/^cluster (\d+)/.exec(tr.name)[1]), tr.x.length]));

/** Checks the scatter's table against the chart and the API, once it
 *  shows `layer` clustered into `k` groups (`own`: the analysis's own k). */
async function checkScatterTable(page, modelId, layer, k, own) {
  await page.waitForFunction(([l, kk]) => {
    const t = document.getElementById('scatter-table-data');
    return t && t.dataset.layer === String(l) && t.dataset.k === String(kk);
  }, [layer, k]);
  const reply = await getJSON(`/api/models/${modelId}/layers/${layer}/scatter${own ? '' : `?k=${k}`}`);
  const table = await page.evaluate(scatterTable);
  const drawn = await page.evaluate(scatterCounts);
  assert.equal(table.rows.length, reply.k);
  table.rows.forEach((r, c) => {
    assert.equal(r.size, reply.centers.size[c], `layer ${layer} cluster ${c}: size as the API`);
    assert.equal(r.size, drawn[c] ?? 0, `layer ${layer} cluster ${c}: size as the chart draws it`);
    assert.equal(r.byClass.reduce((s, v) => s + v, 0), r.size);
    if (r.size) {
      assert.equal(r.mostly, reply.classes[reply.centers.majority[c]]);
      assert.equal(r.purity, `${Math.round(100 * reply.centers.purity[c])}\u00a0%`);
    }
  });
  assert.equal(table.rows.reduce((s, r) => s + r.size, 0), reply.points.x.length);
}

test('"Show as table": the paths and the clusters as the charts count them, following the layer and k', async (t) => {
  if (skip) { t.skip(skip); return; }
  for (const [ctxOpts, size, id] of [[DESKTOP, 'desktop', ID], [PHONE, 'phone', DEMO]]) {
    const m = await getJSON(`/api/models/${id}`);
    const paths = await getJSON(`/api/models/${id}/paths`);
    const ctx = await browser.newContext(ctxOpts);
    const { page, errors } = await open(ctx, `/model.html?id=${id}`);
    await modelPageReady(page);
    // Accessible names on the charts (the graph of paths names its SVG, a
    // figure: its segments are reachable with the keyboard).
    const labels = await page.evaluate(() => Object.fromEntries([['parcats', '#parcats svg.pathsgraph'], ['scatter', '#scatter'],
      ['elbow', '#elbow'], ['confusion', '#confusion']]
      .map(([c, sel]) => [c, [document.querySelector(sel).getAttribute('role'), document.querySelector(sel).getAttribute('aria-label')]])));
    for (const [c, [role, label]] of Object.entries(labels)) {
      assert.ok(role === 'img' || ((c === 'scatter' || c === 'parcats') && role === 'figure'), `${c} has role img (${role})`);
      assert.ok(label && label.length > 20, `${c} is named: ${label}`);
    }
    assert.equal(labels.parcats[0], 'figure');
    assert.equal(await page.locator('#parcats [tabindex="0"]').count(), 1, 'the graph of paths is one tab stop');
    assert.match(labels.parcats[1], new RegExp(`paths of ${paths.images.true.length} images`));
    // A chart named as an image holds nothing the keyboard could reach (it would be hidden from a screen
    // reader); the scatter's zoom buttons, where it has them, stay buttons of a named figure.
    assert.equal(await page.locator('[role="img"] :is(a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"]))').count(), 0);
    if (await page.locator('#scatter .modebar-btn').count()) assert.equal(labels.scatter[0], 'figure');
    assert.match(labels.scatter[1], new RegExp(`layer ${m.layers[paths.dimensions[1].layer].name}:`));

    // The paths: opened from the keyboard.
    const toggle = page.locator('#paths-table .table-toggle');
    await toggle.focus();
    await page.keyboard.press('Enter');
    assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
    await page.waitForSelector('#paths-table-data');
    const more = page.locator('#paths-table [data-more]');
    if (await more.count()) await more.click();
    const shown = await page.evaluate(pathsTable);
    const want = {};
    paths.images.true.forEach((tc, i) => {
      const key = [paths.classes[tc], ...paths.images.clusters[i].map(String), paths.classes[paths.images.pred[i]]].join('|');
      want[key] = (want[key] || 0) + 1;
    });
    assert.deepEqual(shown, want, 'one row per distinct path, with its count of images');
    const chartLines = await page.evaluate(pathsLines);
    assert.equal(Object.values(shown).reduce((s, v) => s + v, 0), chartLines, 'as many images as the graph draws');
    assert.equal(Number(await page.locator('#paths-table-data').getAttribute('data-rows')), Object.keys(want).length);
    assert.match(await page.locator('#paths-table .table-caption').innerText(),
      new RegExp(`${chartLines} images follow ${Object.keys(want).length} distinct paths`));
    await toTop(page, '#paths-table');
    await shot(page, `paths-table-${size}`);

    // The clusters of the layer shown, then of another layer, then with another k.
    const st = page.locator('#scatter-table .table-toggle');
    await st.click();
    const dims = paths.dimensions.filter((d) => d.kind === 'layer');
    await checkScatterTable(page, id, dims[0].layer, dims[0].k, true);
    const other = dims[Math.min(3, dims.length - 1)];
    await page.locator(`#layer-buttons button[data-layer="${other.layer}"]`).click();
    await checkScatterTable(page, id, other.layer, other.k, true);
    const k2 = other.k === 3 ? 5 : 3;
    await page.locator(`#k-selector button[data-k="${k2}"]`).click();
    await checkScatterTable(page, id, other.layer, k2, false);
    // The charts' names follow too.
    await page.waitForFunction((kk) => /chosen k = (\d+)/.exec(document.getElementById('elbow').getAttribute('aria-label'))?.[1] === String(kk), k2);
    assert.match(await page.locator('#scatter').getAttribute('aria-label'),
      new RegExp(`layer ${m.layers[other.layer].name.replace(/[.]/g, '\\.')}: .* in ${k2} clusters`));
    // The paths table follows the reader's k too (the graph draws that layer with it).
    await page.waitForFunction(([j, kk]) => document.querySelector(`#parcats .pg-note[data-dim="${j + 1}"]`)
      ?.textContent.startsWith(`k ${kk}`), [dims.indexOf(other), k2]);
    const kReply = await getJSON(`/api/models/${id}/layers/${other.layer}/scatter?k=${k2}`);
    const byId = new Map(kReply.points.id.map((pid, i) => [pid, kReply.points.cluster[i]]));
    const j = dims.indexOf(other);
    const want2 = {};
    paths.images.true.forEach((tc, i) => {
      const cl = paths.images.clusters[i].slice();
      cl[j] = byId.get(paths.images.id[i]);
      const key = [paths.classes[tc], ...cl.map(String), paths.classes[paths.images.pred[i]]].join('|');
      want2[key] = (want2[key] || 0) + 1;
    });
    await page.waitForFunction((n) => document.querySelectorAll('#paths-table-data tbody tr').length === n ||
      document.querySelector('#paths-table [data-more]'), Object.keys(want2).length);
    if (await more.count()) await more.click();
    assert.deepEqual(await page.evaluate(pathsTable), want2, 'the paths table with the reader\'s k');
    await toTop(page, size === 'phone' ? '#scatter-table' : '#scatter');
    await shot(page, `scatter-table-${size}`);
    const g = await page.evaluate(graphState);
    assert.equal(g.pageOverflow, 0, 'the tables scroll inside their boxes, not the page');
    assert.deepEqual(errors, []);
    await ctx.close();
  }
});
