// linked.test.mjs — the model page's linked views in a real browser
// (Chromium through playwright-core) against a real `strata serve` (the
// helpers of strata-server.mjs: $STRATA_BIN, $STRATA_URL, $STRATA_WEB_MODELS),
// on the felines demo model, at 1280×800 with a mouse and at 390×844 with a
// touch screen (taps, never hover):
//
//   - a confusion-matrix cell opens a gallery of exactly that cell's images,
//     whose paths, and only theirs, are highlighted in the graph of paths;
//   - a scatter point opens the image panel of that image, with its classes,
//     and highlights its own path; its doubt comes from predict?image=<id>
//     with no body (the photo is neither fetched by the script nor sent);
//     its point is ringed on the scatter, on every layer, until the panel
//     closes;
//   - a cluster (a bar of the graph of paths, a centre on the scatter) opens
//     a gallery of as many images as the cluster holds, nearest its centre
//     first (ascending points.distance, in the layer's feature space), with
//     its make-up;
//   - a mistake opens the same panel, highlights its own path only and is
//     ringed on the scatter;
//   - an upload's result sits between the graphs it changes, its path as a
//     table layer by layer (cluster, nearest class, agreement), and on a
//     phone the graph of paths is within one screen of it;
//   - at a k the reader chose for a layer, an upload of a test photo has its
//     star, its line and its table's row in the cluster of predict's
//     clusters_at (asked again without LIME, the file as the body), which is
//     the cluster of the photo's own point at that k; a refused re-ask
//     leaves "?" and says why;
//   - what a layer sees, for a test image and for an upload, at a spatial
//     layer (one tile per mapped channel, labelled as the reply says) and a
//     vector layer (bars);
//   - the opened cell or cluster in the URL, for a reload and the back button.
//
// The pure parts (galleries, path rows, feature views, the URL) are checked
// under Node first. Screenshots go to tests/artifacts/linked-*.png. No
// console errors anywhere.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { DATA, browserSession } from './strata-server.mjs';
import { ARTIFACTS, DESKTOP, PHONE, READY_TIMEOUT_S, STEP_MS, getJSON as getJSONFrom, openPage, screenshot,
  modelPageReady, loneImagePoint, pathsSegmentAt } from './pages.mjs';
import { cellSpec, clusterSpec, cellMembers, clusterMembers, countBy } from '../../web/clustergallery.js';
import { pathRows, clusterSizes, doubtWithoutLayers } from '../../web/imagepanel.js';
import { featureView, featurePixels, featureColor, defaultFeatureLayer, fmt, ALPHA_LOW, ALPHA_HIGH } from '../../web/featuremaps.js';
import { readView, viewSearch } from '../../web/viewstate.js';
import { confusionCell } from '../../web/confusion.js';
import { scatterPick } from '../../web/scatter.js';
import { clusterMajorities } from '../../web/parcats.js';
import { clusterAt, failedAt, missingAt, withClustersAt } from '../../web/uploadk.js';

const VIEWS = [['desktop', DESKTOP], ['phone', PHONE]];

let skip = null;
let server = null;
let base = null;
let browser = null;
let model = null; // GET /api/models/felines (or the first trained model)
let paths = null;
let mistakes = null;

before(async () => {
  const session = await browserSession({ timeoutS: READY_TIMEOUT_S });
  ({ server = null, base, browser = null } = session);
  if (session.skip) {
    skip = session.skip;
    return;
  }
  const models = (await (await fetch(`${base}/api/models`)).json()).models;
  const trained = models.filter((m) => !m.seed_architecture);
  const pick = trained.find((m) => m.id === 'felines') || trained[0] || models[0];
  model = await getJSON(`/api/models/${encodeURIComponent(pick.id)}`);
  paths = await getJSON(api('/paths'));
  mistakes = (await getJSON(api('/misclassified'))).images.slice().sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close();
  if (server) await server.stop();
});

const getJSON = (p) => getJSONFrom(base, p);

function api(p) {
  return `/api/models/${encodeURIComponent(model.id)}${p}`;
}
const modelUrl = (query = '') => `/model.html?id=${encodeURIComponent(model.id)}${query}`;

/** A page of base + url recording console errors (pages.mjs's openPage). */
const open = (ctx, url, allow = null) => openPage(ctx, base, url, { allow });
const shot = (page, name, fullPage = false) => screenshot(page, `linked-${name}`, { fullPage });

/** A screenshot of one element, taken from the page scrolled to the top
 *  (the sticky top bar then does not cover it). */
async function shotOf(page, sel, name) {
  const clip = await page.locator(sel).first().evaluate((e) => {
    const r = e.getBoundingClientRect();
    return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: Math.min(r.height, 4000) };
  });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, `linked-${name}.png`), fullPage: true, clip });
}

/** Puts an element in the middle of the window and lets smooth scrolling end. */
async function centre(page, sel) {
  await page.evaluate((s) => document.querySelector(s).scrollIntoView({ block: 'center', inline: 'nearest' }), sel);
  await page.waitForTimeout(300);
}

/** A click with the mouse, or a tap on the touch screen. */
async function press(page, kind, x, y) {
  if (kind === 'phone') await page.touchscreen.tap(x, y);
  else await page.mouse.click(x, y);
}
async function pressEl(locator, kind) {
  if (kind === 'phone') await locator.tap();
  else await locator.click();
}

/** The test images whose lines the graph of paths draws in colour (the
 *  others are grey, colour index C; the upload, C + 1, is left out): from
 *  the figure it draws (pathsgraph.js), checked against its SVG, whose
 *  first bar has as many test images' lines in colour. */
const colouredLines = async (C) => {
  const { graphFigure } = await import('/pathsgraph.js');
  const gd = document.getElementById('parcats');
  const fig = graphFigure(gd);
  const out = [];
  for (let i = 0; i < fig.n; i++) if (fig.colors[i] !== C) out.push(i);
  const drawn = [...gd.querySelectorAll('.pg-axis[data-dim="0"] .pg-seg:not([data-upload]) .pg-band')]
    .filter((b) => b.dataset.color !== String(C)).reduce((sum, b) => sum + Number(b.dataset.count), 0);
  if (drawn !== out.length) throw new Error(`the graph draws ${drawn} test images' lines in colour, its figure ${out.length}`);
  return out;
};

/** Every thumbnail of a gallery, in order, once "show all" is pressed. */
async function galleryIds(page, sel) {
  const more = page.locator(`${sel} .linked-more button`);
  if (await more.count()) await more.click();
  return page.$$eval(`${sel} .linked-thumbs button[data-image]`, (bs) => bs.map((b) => b.dataset.image));
}

/** The confusion matrix the page draws: the training card's, else the analysis's. */
function confusionOf(detail) {
  return detail.card?.test?.confusion ?? detail.analysis.confusion;
}

const sameSet = (a, b, what) => assert.deepEqual([...a].sort((x, y) => x - y), [...b].sort((x, y) => x - y), what);

// --- pure parts ---------------------------------------------------------------------

const toyPaths = {
  classes: ['a', 'b'],
  dimensions: [{ label: 'true class', kind: 'true' }, { label: 'c1', kind: 'layer', layer: 0, k: 2 },
    { label: 'd1', kind: 'layer', layer: 2, k: 2 }, { label: 'predicted', kind: 'pred' }],
  images: { id: ['a/0', 'a/1', 'b/0', 'b/1'], true: [0, 0, 1, 1], pred: [0, 1, 1, 1],
    clusters: [[0, 1], [0, 0], [1, 1], [1, 1]] },
};

test('galleries: a cell\'s images, a cluster\'s nearest its centre first, with its make-up', () => {
  assert.deepEqual(cellMembers(toyPaths, 0, 1), [1]);
  assert.deepEqual(cellMembers(toyPaths, 1, 1), [2, 3]);
  const cell = cellSpec(toyPaths, 1, 1);
  assert.equal(cell.key, '1.1');
  assert.equal(cell.count, 2);
  assert.deepEqual([...cell.highlight], [2, 3]);
  assert.match(cell.title, /b, answered right/);
  // Probabilities order a cell's mistakes, the most confident first.
  const probs = cellSpec(toyPaths, 1, 1, { probabilities: new Map([['b/0', 0.4], ['b/1', 0.9]]) });
  assert.deepEqual(probs.items.map((it) => it.id), ['b/1', 'b/0']);

  // The scatter lists the images in another order than the paths. On the
  // plane b/0 is nearest the centre (1, 0), then a/0, then b/1; in the
  // layer's features (points.distance) b/1 is, then a/0, then b/0.
  const scatter = {
    layer: { index: 2, name: 'd1' }, k: 2, classes: ['a', 'b'],
    points: { id: ['b/1', 'a/0', 'b/0', 'a/1'], x: [3, 0.5, 1, 9], y: [4, 0, 0, 9], true: [1, 0, 1, 0], pred: [1, 0, 1, 1],
      cluster: [1, 1, 1, 0], distance: [0.5, 2, 3, 0] },
    centers: { x: [9, 1], y: [9, 0], size: [1, 3], majority: [0, 1] },
  };
  assert.deepEqual(clusterMembers(scatter, 1).map((m) => [m.i, m.d]), [[0, 0.5], [1, 2], [2, 3]],
    'nearest the centre in the layer\'s features first');
  // Ties by index; a missing distance last.
  const tied = { ...scatter, points: { ...scatter.points, distance: [2, 2, null, 0] } };
  assert.deepEqual(clusterMembers(tied, 1).map((m) => m.i), [0, 1, 2]);
  const cl = clusterSpec(toyPaths, scatter, 1);
  assert.equal(cl.key, '2.1');
  assert.equal(cl.size, 3);
  assert.deepEqual(cl.items.map((it) => it.id), ['b/1', 'a/0', 'b/0']);
  assert.deepEqual(cl.items.map((it) => it.index), [3, 0, 2], 'indices into the paths document, by id');
  assert.match(cl.lead, /nearest its centre come first, measured in the layer's own features/);
  assert.deepEqual(cl.trueCounts, [1, 2]);
  assert.deepEqual(cl.predCounts, [1, 2]);
  assert.equal(cl.right, 3);
  assert.equal(cl.majority, 'b');
  assert.deepEqual(countBy([0, 2, 2, 5, -1], 3), [1, 0, 2]);
});

test('image panel: the path table\'s rows from the paths document or a predict reply; the doubt\'s layer sentence', () => {
  const dims = toyPaths.dimensions.filter((d) => d.kind === 'layer');
  assert.deepEqual(clusterSizes(toyPaths), [[2, 2], [1, 3]]);
  const reply = {
    layers: [{ index: 0, cluster: 1, cluster_majority: 'b', cluster_size: 2 }, { index: 1, cluster: 0 },
      { index: 2, cluster: 0, cluster_majority: 'a', cluster_size: 1 }],
    doubt: { layers: [{ index: 2, neighbour_class: 'a', agreement: 0.25, agrees: false }] },
  };
  // A test image: its clusters from the document, the doubt's reading from the reply.
  const rows = pathRows({ dims, classes: toyPaths.classes, clusters: toyPaths.images.clusters[1],
    majorities: clusterMajorities(toyPaths), sizes: clusterSizes(toyPaths), reply });
  assert.deepEqual(rows.map((r) => [r.label, r.cluster, r.mostly, r.size]), [['c1', 0, 'a', 2], ['d1', 0, 'a', 1]]);
  assert.deepEqual(rows.map((r) => [r.probed, r.nearest, r.agreement, r.agrees]),
    [[false, null, null, null], [true, 'a', 0.25, false]]);
  // An upload: the reply's clusters, none for a layer clustered with another k ...
  const reDims = [dims[0], { ...dims[1], reclustered: true, k: 3 }];
  const up = pathRows({ dims: reDims, classes: toyPaths.classes, reply });
  assert.deepEqual(up.map((r) => [r.cluster, r.mostly, r.size, r.failed]), [[1, 'b', 2, null], [null, null, null, null]]);
  // ... until the page's re-ask tells it (clusters_at), named from the
  // graph's document at that k; or says why it could not.
  const reMaj = [[0, 1], [1, 0, 0]], reSizes = [[2, 2], [1, 2, 1]];
  const known = pathRows({ dims: reDims, classes: toyPaths.classes, majorities: reMaj, sizes: reSizes,
    reply: withClustersAt(reply, [{ layer: 2, k: 3, cluster: 2 }, { layer: 2, k: 4, cluster: 0 }]) });
  assert.deepEqual(known.map((r) => [r.cluster, r.mostly, r.size]), [[1, 'b', 2], [2, 'a', 1]]);
  const failed = pathRows({ dims: reDims, classes: toyPaths.classes,
    reply: withClustersAt(reply, [], [{ layer: 2, k: 3, message: 'busy' }]) });
  assert.deepEqual([failed[1].cluster, failed[1].failed], [null, 'busy']);
  // No document: every layer of the reply.
  assert.deepEqual(pathRows({ dims: [], reply }).map((r) => r.layer), [0, 1, 2]);

  const doubt = {
    explanation: 'Low doubt (0.47): the image is more typical than 53 % of held-out images of the classes the model ' +
      'knows. 4 of 12 probed layers agree with leopard; conv1–pool1 lie nearest the tiger class. At gap, the deepest ' +
      'probed layer, it lies further from the training images than 54 % of held-out images.',
    layers: [{ agrees: true }, { agrees: false }, { agrees: true }],
  };
  assert.equal(doubtWithoutLayers(doubt).explanation, 'Low doubt (0.47): the image is more typical than 53 % of ' +
    'held-out images of the classes the model knows. 2 of 3 probed layers vote for the answer (each one in the table ' +
    'below). At gap, the deepest probed layer, it lies further from the training images than 54 % of held-out images.');
  const plain = { explanation: 'High doubt (0.99): far out.', layers: [] };
  assert.equal(doubtWithoutLayers(plain), plain);
});

test('the upload at the reader\'s k: what is known, what is missing, what failed', () => {
  const reply = { predicted: 'b', clusters_at: [{ layer: 3, k: 5, cluster: 2 }] };
  assert.equal(clusterAt(reply, 3, 5), 2);
  assert.equal(clusterAt(reply, 3, 4), null);
  assert.equal(clusterAt(null, 3, 5), null);
  const wanted = new Map([[3, 5], [6, 2], [9, 7]]);
  assert.deepEqual(missingAt(reply, wanted), [[6, 2], [9, 7]]);
  const more = withClustersAt(reply, [{ layer: 6, k: 2, cluster: 0 }], [{ layer: 9, k: 7, message: 'busy' }]);
  assert.deepEqual(more.clusters_at, [{ layer: 3, k: 5, cluster: 2 }, { layer: 6, k: 2, cluster: 0 }]);
  assert.equal(failedAt(more, 9, 7), 'busy');
  assert.deepEqual(missingAt(more, wanted), [], 'a failure is not asked again');
  assert.equal(more.predicted, 'b');
  assert.deepEqual(reply.clusters_at, [{ layer: 3, k: 5, cluster: 2 }], 'the reply is left as it was');
  // A later answer for a layer and k replaces the earlier one, and a failure.
  const again = withClustersAt(more, [{ layer: 9, k: 7, cluster: 6 }, { layer: 3, k: 5, cluster: 1 }]);
  assert.deepEqual([clusterAt(again, 9, 7), failedAt(again, 9, 7), clusterAt(again, 3, 5)], [6, null, 1]);
  assert.deepEqual(withClustersAt({ predicted: 'a' }), { predicted: 'a', clusters_at: [], clusters_failed: [] });
});

test('feature maps: tiles from a reply, one colour scale, bars for a vector layer', () => {
  const spatial = {
    layer: { index: 3, name: 'conv2', shape: [4, 4, 3] }, input: [8, 8, 3], image: { width: 8, height: 8 },
    means: [0.1, 0.9, 0.5], map_size: { width: 2, height: 2 },
    channels: [{ index: 1, mean: 0.9, min: 0, max: 4.1, map: [0, 1000, 500, 250] },
      { index: 2, mean: 0.5, min: -1, max: 2, map: [1000, 0, 0, 0] }],
  };
  const v = featureView(spatial);
  assert.equal(v.spatial, true);
  assert.equal(v.channels, 3);
  assert.deepEqual(v.tiles.map((t) => [t.label, t.text, t.maxText]), [['#1', 'mean 0.900', 'max 4.10'], ['#2', 'mean 0.500', 'max 2.00']]);
  assert.deepEqual(v.means.map((m) => m.mapped), [false, true, true]);
  // Low cells nearly see-through and dark, high ones opaque and bright.
  const px = featurePixels(spatial.channels[0].map, 2, 2);
  assert.equal(px.length, 16);
  assert.equal(px[3], Math.round(255 * ALPHA_LOW));
  assert.equal(px[7], Math.round(255 * ALPHA_HIGH));
  assert.ok(px[4] + px[5] + px[6] > px[0] + px[1] + px[2], 'the high cell is brighter');
  assert.deepEqual(featureColor(2), featureColor(1), 'clamped');
  assert.equal(fmt(-1.7), '\u22121.70');
  assert.equal(fmt(0.0264626), '0.0265');

  const vector = {
    layer: { index: 13, name: 'output', shape: [1, 1, 2] }, input: [8, 8, 3], means: [0.3, 0.7],
    map_size: { width: 0, height: 0 },
    channels: [{ index: 1, mean: 0.7, min: 0.7, max: 0.7, map: null }, { index: 0, mean: 0.3, min: 0.3, max: 0.3, map: null }],
  };
  const u = featureView(vector, { classes: ['cat', 'dog'], last: true });
  assert.equal(u.spatial, false);
  assert.deepEqual(u.tiles.map((t) => t.label), ['dog', 'cat'], 'the last layer\'s units are its classes');
  assert.deepEqual(featureView(vector).tiles.map((t) => t.label), ['unit 1', 'unit 0']);

  const layers = [{ index: 0, output_shape: [8, 8, 4] }, { index: 1, output_shape: [4, 4, 4] }, { index: 2, output_shape: [1, 1, 4] }];
  assert.equal(defaultFeatureLayer(layers, { height: 8 }), 1);
  assert.equal(defaultFeatureLayer(layers.slice(2), { height: 8 }), 2);
});

test('URL: the opened cell or cluster; clicks on the charts named', () => {
  const v = readView('?id=felines&image=jaguar%2F0012.jpg&cell=1.2');
  assert.equal(v.cell, '1.2');
  assert.equal(viewSearch('felines', v), '?id=felines&image=jaguar%2F0012.jpg&cell=1.2');
  assert.equal(viewSearch('felines', readView('?id=felines&k6=5&cluster=6.2')), '?id=felines&k6=5&cluster=6.2');
  assert.equal(viewSearch('felines', { ...v, cell: null, cluster: '6.2' }), '?id=felines&image=jaguar%2F0012.jpg&cluster=6.2');
  assert.equal(readView('?cell=x.2&cluster=-1.0').cell, undefined);
  assert.equal(readView('?cell=x.2&cluster=-1.0').cluster, undefined);
  assert.deepEqual(confusionCell(['a', 'b', 'c'], { x: 'c', y: 'b', z: 7 }), { t: 1, p: 2, count: 7 });
  assert.equal(confusionCell(['a'], { x: 'q', y: 'a' }), null);
  assert.deepEqual(scatterPick({ data: { name: 'cluster 0' }, customdata: 17 }), { kind: 'image', index: 17 });
  assert.deepEqual(scatterPick({ data: { name: 'cluster centres' }, customdata: 2 }), { kind: 'centre', cluster: 2 });
  assert.equal(scatterPick({ data: { name: 'your image' } }), null);
});

// --- 1. a confusion-matrix cell ---------------------------------------------------------

test('confusion cell → a gallery of exactly that cell\'s images, their paths highlighted; a thumbnail → its panel', async (t) => {
  if (skip) { t.skip(skip); return; }
  const C = paths.classes.length;
  const conf = confusionOf(model);
  // The largest mistake cell.
  let cell = null;
  conf.forEach((row, ti) => row.forEach((v, pi) => { if (ti !== pi && (!cell || v > cell.v)) cell = { t: ti, p: pi, v }; }));
  const want = paths.images.true.map((tc, i) => (tc === cell.t && paths.images.pred[i] === cell.p ? i : -1)).filter((i) => i >= 0);
  assert.equal(want.length, cell.v, 'the analysed split counts the cell as the matrix does');
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    await centre(page, '#confusion');
    const at = await page.evaluate(([tc, pc]) => {
      const gd = document.getElementById('confusion');
      const fl = gd._fullLayout, box = gd.getBoundingClientRect();
      return { x: box.left + fl.xaxis._offset + fl.xaxis.d2p(pc), y: box.top + fl.yaxis._offset + fl.yaxis.d2p(tc) };
    }, [paths.classes[cell.t], paths.classes[cell.p]]);
    await press(page, kind, at.x, at.y);
    const sel = '#confusion-linked .linked-gallery[data-kind="cell"]';
    await page.waitForSelector(sel);
    assert.equal(await page.getAttribute(sel, 'data-count'), String(cell.v), `${kind}: the gallery's count`);
    assert.equal(await page.getAttribute(sel, 'data-key'), `${cell.t}.${cell.p}`);
    const ids = await galleryIds(page, sel);
    assert.deepEqual(ids.slice().sort(), want.map((i) => paths.images.id[i]).sort(), `${kind}: the cell's images`);
    // Those paths, and only those, in colour; the note says how many.
    sameSet(await page.evaluate(colouredLines, C), want, `${kind}: highlighted paths`);
    assert.match(await page.locator('#highlight-note').innerText(), new RegExp(`Highlighting ${cell.v} of ${paths.images.true.length}`));
    assert.equal(new URL(page.url()).searchParams.get('cell'), `${cell.t}.${cell.p}`);
    // The cell is outlined on the matrix.
    assert.equal(await page.evaluate(() => (document.getElementById('confusion').layout.shapes || []).length), 1);
    await page.locator('#quality-section').scrollIntoViewIfNeeded();
    await page.waitForTimeout(400);
    await shot(page, `cell-${kind}`);
    // A thumbnail opens the panel under the gallery; now its own path alone is in colour.
    const first = page.locator(`${sel} .linked-thumbs button[data-image]`).first();
    const id = await first.getAttribute('data-image');
    await pressEl(first, kind);
    const panel = '#confusion-linked .image-panel';
    await page.waitForSelector(`${panel}[data-image="${id}"]`);
    assert.equal(await page.getAttribute(panel, 'data-true'), paths.classes[cell.t]);
    assert.equal(await page.getAttribute(panel, 'data-predicted'), paths.classes[cell.p]);
    assert.deepEqual(await page.evaluate(colouredLines, C), [paths.images.id.indexOf(id)]);
    await page.waitForFunction((p) => document.querySelector(`${p} img.lime-overlay`)?.complete, panel, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`${panel} .doubt-score, ${panel} .doubt-none`, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`${panel} .features[data-state="ready"]`, { timeout: 2 * STEP_MS });
    await shotOf(page, '#confusion-linked', `cell-panel-${kind}`);
    // Closing the gallery ends the highlight and the URL forgets the cell.
    await pressEl(page.locator(`${sel} .close-button`), kind);
    await page.waitForFunction(() => !document.querySelector('#confusion-linked .linked-gallery'));
    assert.equal(new URL(page.url()).searchParams.get('cell'), null);
    assert.equal((await page.evaluate(colouredLines, C)).length, paths.images.true.length);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 2. a scatter point -------------------------------------------------------------------

/** Records the page's requests to the API: {path, search, params, method,
 *  body (the POST data, null for none), script (made by fetch or XHR)}. */
function watchApi(page) {
  const out = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/api/')) return;
    out.push({ path: decodeURIComponent(u.pathname), search: u.search, params: u.searchParams, method: r.method(),
      body: r.postDataBuffer(), type: r.headers()['content-type'] || null, script: ['fetch', 'xhr'].includes(r.resourceType()) });
  });
  return out;
}

/** The ring around the opened image on the scatter: the image it rings,
 *  the anchors of its shapes, how many shapes are drawn. */
const ringOf = () => {
  const gd = document.getElementById('scatter');
  const shapes = (gd.layout.shapes || []).filter((sh) => sh.name === 'opened image');
  return { marked: gd.dataset.marked ?? null, shapes: shapes.map((sh) => [sh.xanchor, sh.yanchor]),
    drawn: gd.querySelectorAll('.shapelayer path').length };
};

test('scatter point → the image panel with that image\'s classes, its own path highlighted, its point ringed', async (t) => {
  if (skip) { t.skip(skip); return; }
  const C = paths.classes.length;
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    await centre(page, '#scatter');
    const target = await page.evaluate(loneImagePoint);
    const scatter = await getJSON(api(`/layers/${target.layer}/scatter`));
    const id = scatter.points.id[target.index];
    const requests = watchApi(page);
    await press(page, kind, target.x, target.y);
    const panel = '#scatter-linked .image-panel';
    await page.waitForSelector(`${panel}[data-image="${id}"]`);
    const trueCls = scatter.classes[scatter.points.true[target.index]];
    const predCls = scatter.classes[scatter.points.pred[target.index]];
    assert.equal(await page.getAttribute(panel, 'data-true'), trueCls, `${kind}: true class`);
    assert.equal(await page.getAttribute(panel, 'data-predicted'), predCls, `${kind}: predicted class`);
    const facts = await page.locator(`${panel} .panel-facts`).innerText();
    assert.match(facts, new RegExp(`true class\\s+${trueCls}`, 'i'));
    assert.match(facts, new RegExp(`the model says\\s+${predCls}`, 'i'));
    assert.deepEqual(await page.evaluate(colouredLines, C), [paths.images.id.indexOf(id)], `${kind}: only its path`);
    assert.equal(new URL(page.url()).searchParams.get('image'), id);
    // Its probability and doubt come from the model, as for an upload: asked
    // with predict?image=<id>, the photo neither fetched by the script nor sent.
    await page.waitForSelector(`${panel} [data-probability]`, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`${panel} .doubt-score, ${panel} .doubt-none`);
    const predicts = requests.filter((r) => r.path === api('/predict'));
    assert.ok(predicts.length >= 1, `${kind}: the panel asked predict`);
    for (const r of predicts) {
      assert.equal(r.method, 'POST');
      assert.equal(r.params.get('image'), id, `${kind}: predict names the image: ${r.search}`);
      assert.equal(r.params.get('explain'), '0', `${kind}: no LIME asked: ${r.search}`);
      assert.equal(r.body, null, `${kind}: predict carries no body`);
      assert.equal(r.type, null, `${kind}: nor a content type`);
    }
    const photo = api(`/images/${id}`);
    assert.deepEqual(requests.filter((r) => r.path === photo && r.script).map((r) => r.search), [],
      `${kind}: the photo is not fetched by the script`);
    assert.equal(await page.locator(`${panel} .doubt-source`).count(), 0);
    assert.doesNotMatch(await page.locator(panel).innerText(), /sent to it as an upload/);
    // Its path, layer by layer: the clusters of the paths document.
    const row = paths.images.clusters[paths.images.id.indexOf(id)];
    const shown = await page.$$eval(`${panel} .path-table td[data-col="cluster"]`, (tds) => tds.map((td) => Number(td.dataset.value)));
    assert.deepEqual(shown, row);
    await page.waitForFunction((p) => document.querySelector(`${p} img.lime-overlay`)?.complete, panel, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`${panel} .features[data-state="ready"]`, { timeout: 2 * STEP_MS });
    await page.waitForTimeout(500);
    await shot(page, `scatter-${kind}`);
    await shotOf(page, '#scatter-linked', `scatter-panel-${kind}`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, `${kind}: no sideways scroll`);
    // The opened image is ringed on the scatter, at its point, drawn.
    const ring = await page.evaluate(ringOf);
    assert.equal(ring.marked, id, `${kind}: the scatter knows the opened image`);
    assert.ok(ring.shapes.length >= 1 && ring.drawn >= ring.shapes.length, `${kind}: a ring drawn: ${JSON.stringify(ring)}`);
    for (const [x, y] of ring.shapes) assert.deepEqual([x, y], [scatter.points.x[target.index], scatter.points.y[target.index]]);
    await centre(page, '#scatter');
    // (The photo a tap shows over the point is put away for the picture.)
    await page.evaluate(() => { document.getElementById('scatter-tip').hidden = true; });
    await page.waitForTimeout(300);
    await shot(page, `ring-${kind}`);
    // Another layer: the ring follows the image to its point there.
    const dims = paths.dimensions.filter((d) => d.kind === 'layer');
    const other = dims.find((d) => String(d.layer) !== target.layer);
    const otherScatter = await getJSON(api(`/layers/${other.layer}/scatter`));
    const j = otherScatter.points.id.indexOf(id);
    await pressEl(page.locator(`#layer-buttons button[data-layer="${other.layer}"]`), kind);
    await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
      !document.querySelector('#layer-stats .progress'), other.layer);
    await page.waitForFunction(([x, y]) => (document.getElementById('scatter').layout.shapes || [])
      .some((sh) => sh.name === 'opened image' && sh.xanchor === x && sh.yanchor === y), [otherScatter.points.x[j], otherScatter.points.y[j]]);
    // Closing the panel takes the ring away.
    await pressEl(page.locator(`${panel} .close-button`), kind);
    await page.waitForFunction(() => !document.querySelector('#scatter-linked .image-panel'));
    await page.waitForFunction(() => !(document.getElementById('scatter').layout.shapes || []).length);
    assert.equal((await page.evaluate(ringOf)).marked, null, `${kind}: nothing ringed once closed`);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 3. a cluster -----------------------------------------------------------------------------

/** The expected gallery of cluster c of a scatter reply: its ids, nearest
 *  the centre in the layer's feature space first (ascending
 *  points.distance, ties by index). */
function nearestFirst(scatter, c) {
  const { points } = scatter;
  assert.equal(points.distance.length, points.id.length, 'the scatter reply has every point\'s distance');
  return points.id.map((id, i) => ({ id, i, d: points.distance[i] }))
    .filter((p) => points.cluster[p.i] === c).sort((a, b) => a.d - b.d || a.i - b.i);
}

async function checkClusterGallery(page, sel, scatter, c, kind) {
  const C = paths.classes.length;
  await page.waitForSelector(sel);
  const layer = scatter.layer.index;
  assert.equal(await page.getAttribute(sel, 'data-key'), `${layer}.${c}`);
  assert.equal(await page.getAttribute(sel, 'data-count'), String(scatter.centers.size[c]), `${kind}: the cluster's size`);
  const want = nearestFirst(scatter, c);
  const ids = await galleryIds(page, sel);
  assert.deepEqual(ids, want.map((p) => p.id), `${kind}: nearest the centre (points.distance) first`);
  const dists = ids.map((id) => scatter.points.distance[scatter.points.id.indexOf(id)]);
  assert.ok(dists.every((d, i) => i === 0 || dists[i - 1] <= d), `${kind}: ascending distance`);
  assert.match(await page.locator(`${sel} .linked-lead`).innerText(), /nearest its centre come first, measured in the layer's own features/);
  // Its make-up: true classes and the model's answers, counted.
  const made = await page.$$eval(`${sel} .makeup[data-makeup="true"] li`, (lis) => lis.map((li) => [li.dataset.class, Number(li.dataset.count)]));
  const counts = new Map();
  for (const p of want) counts.set(scatter.classes[scatter.points.true[p.i]], (counts.get(scatter.classes[scatter.points.true[p.i]]) || 0) + 1);
  assert.deepEqual(new Map(made), counts);
  sameSet(await page.evaluate(colouredLines, C), want.map((p) => paths.images.id.indexOf(p.id)), `${kind}: the cluster's paths`);
  assert.equal(new URL(page.url()).searchParams.get('cluster'), `${layer}.${c}`);
}

test('cluster → a gallery of its images, nearest its centre first, with its make-up (a bar of the paths, a centre of the scatter)', async (t) => {
  if (skip) { t.skip(skip); return; }
  const dims = paths.dimensions.map((d, i) => ({ ...d, i })).filter((d) => d.kind === 'layer');
  const dim = dims[Math.floor(dims.length / 2)];
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    // A bar of the graph of paths: the middle layer's biggest cluster.
    const scatter = await getJSON(api(`/layers/${dim.layer}/scatter`));
    const c = scatter.centers.size.indexOf(Math.max(...scatter.centers.size));
    await centre(page, '#parcats');
    const at = await page.evaluate(pathsSegmentAt, [dim.i, c]);
    await page.waitForTimeout(300);
    await press(page, kind, at.x, at.y);
    await checkClusterGallery(page, '#paths-linked .linked-gallery[data-kind="cluster"]', scatter, c, kind);
    await page.waitForTimeout(500);
    await shotOf(page, '#paths-linked', `cluster-paths-${kind}`);

    // On the scatter (the layer shown, its k), under it: with the mouse a
    // centre; with a finger, which cannot always pick a centre out of the
    // points around it, the cluster's button under the plot.
    await centre(page, '#scatter');
    const centreAt = await page.evaluate(() => {
      const gd = document.getElementById('scatter');
      const fl = gd._fullLayout, box = gd.getBoundingClientRect();
      const tr = gd.data.find((d) => d.name === 'cluster centres');
      const pts = tr.x.map((x, i) => ({ i, x: box.left + fl.xaxis._offset + fl.xaxis.d2p(x), y: box.top + fl.yaxis._offset + fl.yaxis.d2p(tr.y[i]) }))
        .filter((p) => p.y > 80 && p.y < window.innerHeight - 10);
      return { ...pts[pts.length - 1], layer: gd.dataset.layer };
    });
    const shownScatter = await getJSON(api(`/layers/${centreAt.layer}/scatter`));
    const chips = await page.$$eval('#scatter-clusters button[data-cluster]', (bs) => bs.map((b) => b.textContent));
    assert.equal(chips.length, shownScatter.centers.x.length, 'a button per cluster under the scatter');
    if (kind === 'phone') {
      await page.locator(`#scatter-clusters button[data-cluster="${centreAt.i}"]`).tap();
    } else {
      await press(page, kind, centreAt.x, centreAt.y);
    }
    await checkClusterGallery(page, '#scatter-linked .linked-gallery[data-kind="cluster"]', shownScatter, centreAt.i, kind);
    assert.equal(await page.locator('#paths-linked .linked-gallery').count(), 0, 'one gallery at a time');
    await page.waitForTimeout(500);
    await shot(page, `cluster-scatter-${kind}`);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 4. a mistake ------------------------------------------------------------------------------

test('mistake → the same panel, and its own path only', async (t) => {
  if (skip) { t.skip(skip); return; }
  if (!mistakes.length) { t.skip('the model makes no mistake'); return; }
  const C = paths.classes.length;
  const item = mistakes[0];
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    await page.waitForSelector('#gallery .gallery-item');
    await pressEl(page.locator('#gallery .gallery-item').first(), kind);
    const panel = '#mistake-detail .image-panel';
    await page.waitForSelector(`${panel}[data-image="${item.id}"]`);
    assert.equal(await page.getAttribute(panel, 'data-true'), item.true);
    assert.equal(await page.getAttribute(panel, 'data-predicted'), item.pred);
    assert.deepEqual(await page.evaluate(colouredLines, C), [item.index], `${kind}: its own path, not its class's`);
    assert.match(await page.locator('#highlight-note').innerText(), new RegExp(`Highlighting 1 of ${paths.images.true.length}`));
    await page.waitForFunction((id) => document.getElementById('scatter').dataset.marked === id, item.id);
    assert.equal((await page.evaluate(ringOf)).shapes.length > 0, true, `${kind}: the mistake is ringed on the scatter`);
    const shown = await page.$$eval(`${panel} .path-table td[data-col="cluster"]`, (tds) => tds.map((td) => Number(td.dataset.value)));
    assert.deepEqual(shown, paths.images.clusters[item.index]);
    assert.equal(await page.locator(`${panel} .compare-button`).count(), 1, 'the methods side by side can be opened');
    await page.waitForFunction(() => document.querySelector('#mistake-detail img.lime-overlay')?.complete, null, { timeout: 2 * STEP_MS });
    await page.waitForSelector(`${panel} .features[data-state="ready"]`, { timeout: 2 * STEP_MS });
    await page.waitForTimeout(400);
    await shotOf(page, '#mistake-detail', `mistake-${kind}`);
    // Closing it: every path in colour again.
    await pressEl(page.locator(`${panel} .close-button`), kind);
    await page.waitForSelector('#mistake-detail', { state: 'hidden' });
    assert.equal((await page.evaluate(colouredLines, C)).length, paths.images.true.length);
    await page.waitForFunction(() => document.getElementById('scatter').dataset.marked === undefined);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 5. an upload --------------------------------------------------------------------------------

/** A test image the model answers rightly, from the dataset's folders. */
function testImage(cls = null) {
  const c = cls || model.classes[1 % model.classes.length];
  const dir = path.join(DATA, model.dataset, 'test', c);
  const f = fs.readdirSync(dir).filter((x) => /\.(jpe?g|png)$/i.test(x)).sort()[0];
  return path.join(dir, f);
}

/** Uploads a file and waits for its panel; resolves to its predict reply,
 *  asked again here without LIME (the model is deterministic, so it is the
 *  page's answer). */
async function upload(page, file) {
  await page.setInputFiles('#file-input', file);
  await page.waitForFunction((name) => {
    const cap = document.querySelector('#upload-result .image-panel .lime-figure figcaption');
    return cap && cap.textContent === name && document.querySelector('#upload-result .image-panel .path-table');
  }, path.basename(file), { timeout: 2 * STEP_MS });
  const type = /\.png$/i.test(file) ? 'image/png' : 'image/jpeg';
  const r = await fetch(`${base}${api('/predict?explain=0')}`, { method: 'POST', body: fs.readFileSync(file),
    headers: { 'Content-Type': type } });
  assert.ok(r.ok, `predict answered ${r.status}`);
  return r.json();
}

test('upload → its path as a table layer by layer, between the graphs it changes; on a phone the graph within one screen', async (t) => {
  if (skip) { t.skip(skip); return; }
  const dims = paths.dimensions.filter((d) => d.kind === 'layer');
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    const reply = await upload(page, testImage());
    await page.waitForFunction(() => document.getElementById('parcats').dataset.upload === '1');
    // The section sits between the graph of paths and the layer scatter.
    const order = await page.$$eval('main > section.section', (ss) => ss.map((s) => s.id));
    assert.equal(order.indexOf('upload-section'), order.indexOf('paths-section') + 1, order.join(', '));
    assert.equal(order.indexOf('layer-section'), order.indexOf('upload-section') + 1, order.join(', '));
    // One row per layer of the graph: its cluster, the doubt's nearest class and agreement.
    const rows = await page.$$eval('#upload-result .path-table tbody tr', (trs) => trs.map((tr) => ({
      layer: Number(tr.dataset.layer),
      name: tr.querySelector('th').textContent,
      cluster: tr.querySelector('td[data-col="cluster"]').dataset.value,
      nearest: tr.querySelector('td[data-col="nearest"]')?.dataset.value ?? null,
      agreement: tr.querySelector('td[data-col="agreement"]')?.dataset.value ?? null,
    })));
    assert.deepEqual(rows.map((r) => r.layer), dims.map((d) => d.layer));
    assert.deepEqual(rows.map((r) => r.name), dims.map((d) => d.label));
    for (const r of rows) {
      const l = reply.layers.find((x) => x.index === r.layer);
      assert.equal(r.cluster, String(l.cluster), `${r.name}: cluster`);
      const dl = reply.doubt?.layers?.find((x) => x.index === r.layer);
      if (dl) {
        assert.equal(r.nearest, dl.neighbour_class, `${r.name}: nearest class`);
        assert.ok(Math.abs(Number(r.agreement) - dl.agreement) < 1e-9, `${r.name}: agreement`);
      } else if (reply.doubt) {
        assert.equal(r.nearest, '', `${r.name}: not probed`);
      }
    }
    // The doubt's long sentence about the layers is the table now.
    if (reply.doubt) assert.doesNotMatch(await page.locator('#upload-result .doubt-text').innerText(), /lie nearest|agree with/);
    // The graph of paths, with the upload's black line, is within one screen of the result.
    const gap = await page.evaluate(() => {
      const g = document.getElementById('parcats').getBoundingClientRect();
      const r = document.querySelector('#upload-result .image-panel').getBoundingClientRect();
      return { gap: r.top - g.bottom, graphBottom: g.bottom + window.scrollY };
    });
    assert.ok(gap.gap >= 0 && gap.gap <= opts.viewport.height, `${kind}: the result starts ${gap.gap} px below the graph`);
    t.diagnostic(`${kind}: the upload's result starts ${Math.round(gap.gap)} px below the graph of paths`);
    await page.waitForSelector('#upload-result .features[data-state="ready"]', { timeout: 2 * STEP_MS });
    await page.waitForFunction(() => document.querySelector('#upload-result img.lime-overlay')?.complete, null, { timeout: 2 * STEP_MS });
    // One screen: the foot of the graph (its black line) and the head of the result.
    await page.evaluate((y) => window.scrollTo(0, y - 160), gap.graphBottom);
    await page.waitForTimeout(400);
    await shot(page, `upload-${kind}`);
    await shotOf(page, '#upload-section', `upload-section-${kind}`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, `${kind}: no sideways scroll`);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 5b. an upload at the reader's k ------------------------------------------------------------

/** The star of the upload on the scatter: its tooltip and what it carries ({cluster, k}). */
const starOf = () => {
  const tr = document.getElementById('scatter').data.find((d) => d.name === 'your image');
  return tr ? { text: tr.text[0], meta: tr.meta || null } : null;
};

/** The upload's value at dimension `d` of the graph of paths: the cluster
 *  of the segment its black line goes through (−1: "?"). */
const uploadValueAt = (d) => Number(document.querySelector(`#parcats .pg-axis[data-dim="${d}"] .pg-seg[data-upload]`).dataset.value);

/** Shows layer `layer` at `k` in the layer panel, with a click or a tap. */
async function showLayerAt(page, kind, layer, k) {
  await pressEl(page.locator(`#layer-buttons button[data-layer="${layer}"]`), kind);
  await page.waitForFunction((l) => document.getElementById('scatter').dataset.layer === String(l) &&
    !document.querySelector('#layer-stats .progress'), layer);
  await pressEl(page.locator(`#k-selector button[data-k="${k}"]`), kind);
  await page.waitForFunction((kk) => document.getElementById('scatter').dataset.k === String(kk) &&
    !document.querySelector('#layer-stats .progress'), k);
}

test('upload at the reader\'s k: star, line and table in the cluster predict?k gives, its own test point\'s', async (t) => {
  if (skip) { t.skip(skip); return; }
  const dims = paths.dimensions.filter((d) => d.kind === 'layer');
  const dim = dims[Math.floor(dims.length / 2)];
  const di = paths.dimensions.indexOf(dim);
  const k = dim.k === 5 ? 6 : 5;
  // A test photo of the analysed split, uploaded: its own point is on the scatter.
  const file = testImage(model.classes[2 % model.classes.length]);
  const id = `${path.basename(path.dirname(file))}/${path.basename(file)}`;
  const scatterK = await getJSON(api(`/layers/${dim.layer}/scatter?k=${k}`));
  const i = scatterK.points.id.indexOf(id);
  assert.ok(i >= 0, `${id} is a point of the scatter`);
  const pointCluster = scatterK.points.cluster[i];
  const asked = await (await fetch(`${base}${api(`/predict?explain=0&k${dim.layer}=${k}`)}`, { method: 'POST',
    body: fs.readFileSync(file), headers: { 'Content-Type': 'image/jpeg' } })).json();
  assert.deepEqual(asked.clusters_at, [{ layer: dim.layer, k, cluster: pointCluster }],
    'the reply\'s clusters_at is the cluster of the photo\'s own point at that k');
  const ownCluster = asked.layers.find((l) => l.index === dim.layer).cluster;
  t.diagnostic(`${id} at ${dim.label}: cluster ${pointCluster} of ${k}, ${ownCluster} of the analysis's ${dim.k}`);
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    const { page, errors } = await open(ctx, modelUrl());
    await modelPageReady(page);
    const requests = watchApi(page);
    await showLayerAt(page, kind, dim.layer, k);
    await upload(page, file);
    await page.waitForFunction((kk) => {
      const tr = document.getElementById('scatter').data.find((d) => d.name === 'your image');
      return tr && tr.meta && tr.meta.k === kk && Number.isInteger(tr.meta.cluster);
    }, k, { timeout: 2 * STEP_MS });
    const star = await page.evaluate(starOf);
    assert.equal(star.meta.cluster, pointCluster, `${kind}: the star is in its point's cluster at k = ${k}`);
    assert.equal(star.text, `your image · cluster ${pointCluster} at k = ${k}`);
    // The line in the graph of paths and the table's row say the same.
    await page.waitForFunction(([d, c]) => document.querySelector(`#parcats .pg-axis[data-dim="${d}"] .pg-seg[data-upload]`)
      ?.dataset.value === String(c), [di, pointCluster]);
    const cell = `#upload-result .path-table tr[data-layer="${dim.layer}"] td[data-col="cluster"]`;
    await page.waitForFunction(([sel, c]) => document.querySelector(sel)?.dataset.value === String(c), [cell, pointCluster]);
    assert.match(await page.locator(cell).innerText(), new RegExp(`k = ${k}`));
    // The upload itself, then one re-ask without LIME for the chosen k, with the file as its body.
    const predicts = requests.filter((r) => r.path === api('/predict'));
    assert.ok(predicts.length >= 2, `${kind}: ${predicts.map((r) => r.search).join(' ')}`);
    assert.equal(predicts[0].search, '', `${kind}: the upload asks with LIME and no k`);
    const reasks = predicts.slice(1);
    assert.ok(reasks.every((r) => r.params.get('explain') === '0' && /^multipart\/form-data/.test(r.type) && !r.params.has('image')),
      `${kind}: re-asks send the file, without LIME: ${JSON.stringify(reasks.map((r) => [r.search, r.type, r.body?.length ?? null]))}`);
    assert.ok(reasks.some((r) => r.params.get(`k${dim.layer}`) === String(k)), `${kind}: k${dim.layer}=${k} asked`);
    await centre(page, '#scatter');
    await page.waitForTimeout(400);
    await shot(page, `upload-k-star-${kind}`);
    await shotOf(page, '#upload-result .panel-path', `upload-k-table-${kind}`);
    // Back to the analysis's k: the reply's own cluster, nothing asked.
    const before = requests.length;
    await pressEl(page.locator(`#k-selector button[data-k="${dim.k}"]`), kind);
    await page.waitForFunction((c) => {
      const tr = document.getElementById('scatter').data.find((d) => d.name === 'your image');
      return tr && tr.meta && tr.meta.cluster === c && !/ at k = /.test(tr.text[0]);
    }, ownCluster);
    await page.waitForFunction(([sel, c]) => document.querySelector(sel)?.dataset.value === String(c), [cell, ownCluster]);
    assert.equal(await page.evaluate(uploadValueAt, di), ownCluster);
    assert.equal(requests.slice(before).filter((r) => r.path === api('/predict')).length, 0, `${kind}: nothing asked again`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, `${kind}: no sideways scroll`);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

test('upload at the reader\'s k: a refused re-ask leaves "?" and says why', async (t) => {
  if (skip) { t.skip(skip); return; }
  const dims = paths.dimensions.filter((d) => d.kind === 'layer');
  const dim = dims[dims.length - 2];
  const di = paths.dimensions.indexOf(dim);
  const k = dim.k === 2 ? 3 : 2;
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl(), /status of 400/);
  // The server refuses every ask with a k (a stand-in for any refusal).
  const refusal = `k${dim.layer}=${k}: refused here`;
  await page.route((u) => u.pathname.endsWith('/predict') && [...u.searchParams.keys()].some((key) => /^k\d+$/.test(key)),
    (route) => route.fulfill({ status: 400, contentType: 'application/json',
      body: JSON.stringify({ error: { code: 'bad_parameter', message: refusal } }) }));
  await modelPageReady(page);
  await showLayerAt(page, 'desktop', dim.layer, k);
  const reply = await upload(page, testImage());
  await page.waitForFunction(() => /is not known/.test(document.getElementById('scatter').data
    .find((d) => d.name === 'your image')?.text[0] || ''));
  const star = await page.evaluate(starOf);
  assert.equal(star.meta.cluster, null);
  assert.match(star.text, new RegExp(`its cluster at k = ${k} is not known.*${refusal}`));
  const cell = `#upload-result .path-table tr[data-layer="${dim.layer}"] td[data-col="cluster"]`;
  assert.equal(await page.getAttribute(cell, 'data-state'), 'failed');
  assert.equal(await page.locator(cell).innerText(), `? at k = ${k}`);
  assert.match(await page.locator('#upload-result .path-failed').innerText(), new RegExp(`${dim.label} \\(k = ${k}\\): ${refusal}`));
  assert.equal(await page.evaluate(uploadValueAt, di), -1, 'its line goes through "?" there');
  // The rest of the answer is as it was.
  assert.equal(await page.getAttribute('#upload-result .answer', 'data-predicted'), reply.predicted);
  const other = dims.find((d) => d.layer !== dim.layer);
  const otherCell = `#upload-result .path-table tr[data-layer="${other.layer}"] td[data-col="cluster"]`;
  assert.equal(await page.getAttribute(otherCell, 'data-value'), String(reply.layers.find((l) => l.index === other.layer).cluster));
  await shotOf(page, '#upload-result .panel-path', 'upload-k-refused');
  assert.deepEqual(errors, []);
  await ctx.close();
});

// --- 6. what a layer sees --------------------------------------------------------------------------

/** Picks `top` and then `layer` in a panel's feature view; resolves to the reply the page got. */
async function pickFeatures(page, panel, layer, top) {
  const sel = `${panel} .features`;
  if (await page.locator(`${sel} select.features-top`).inputValue() !== String(top)) {
    const r = page.waitForResponse((x) => x.url().includes('/features?') && new URL(x.url()).searchParams.get('top') === String(top));
    await page.selectOption(`${sel} select.features-top`, String(top));
    await r;
  }
  const replyP = page.waitForResponse((x) => x.url().includes('/features?') &&
    new URL(x.url()).searchParams.get('layer') === String(layer) && new URL(x.url()).searchParams.get('top') === String(top));
  await page.selectOption(`${sel} select.features-layer`, String(layer));
  const reply = await (await replyP).json();
  await page.waitForFunction(([s, l]) => {
    const f = document.querySelector(s);
    return f.dataset.state === 'ready' && f.dataset.layer === String(l);
  }, [sel, layer]);
  return reply;
}

async function checkSpatial(page, panel, reply, top, kind) {
  const sel = `${panel} .features`;
  const channels = reply.layer.shape[2];
  const tiles = await page.$$eval(`${sel} .features-tile`, (ts) => ts.map((t) => ({
    channel: Number(t.dataset.channel),
    label: t.querySelector('figcaption strong').textContent,
    text: [...t.querySelectorAll('figcaption span')].map((s) => s.textContent),
    drawn: t.querySelector('canvas').width > 0,
  })));
  assert.equal(tiles.length, Math.min(top, channels), `${kind}: min(top, channels) tiles at ${reply.layer.name}`);
  assert.deepEqual(tiles.map((x) => x.channel), reply.channels.map((c) => c.index));
  tiles.forEach((x, i) => {
    const c = reply.channels[i];
    assert.equal(x.label, `#${c.index}`);
    assert.deepEqual(x.text, [`mean ${fmt(c.mean)}`, `max ${fmt(c.max)}`]);
    assert.ok(x.drawn);
  });
  // The sizes: the input's and the layer's.
  const sizes = await page.locator(`${sel} .features-sizes`).innerText();
  assert.ok(sizes.includes(reply.input.join('×')), sizes);
  assert.ok(sizes.includes(reply.layer.shape.join('×')), sizes);
  // One colour scale, explained; each map on its own range, said so.
  assert.equal(await page.locator(`${sel} canvas.features-scale`).count(), 1);
  assert.match(await page.locator(`${sel} .features-legend`).innerText(), /own (channel.s )?range/);
  // Every channel's mean, drawn.
  assert.equal(await page.evaluate((s) => document.querySelector(`${s} .features-means`).data[0].y.length, sel), channels);
}

async function checkVector(page, panel, reply, top, { classes = null } = {}) {
  const sel = `${panel} .features`;
  assert.equal(await page.getAttribute(sel, 'data-spatial'), 'false');
  assert.equal(await page.locator(`${sel} .features-tile`).count(), 0);
  const bars = await page.evaluate((s) => document.querySelector(`${s} .features-bars`).data[0], sel);
  assert.equal(bars.y.length, Math.min(top, reply.layer.shape[2]));
  assert.deepEqual(bars.x, reply.channels.map((c) => c.mean));
  if (classes) assert.deepEqual(bars.y, reply.channels.map((c) => classes[c.index]));
}

test('what a layer sees: a test image and an upload, at a spatial layer (tiles) and a vector one (bars)', async (t) => {
  if (skip) { t.skip(skip); return; }
  const layers = model.layers;
  const spatial = (few) => layers.find((l) => l.output_shape[0] > 1 && (few ? l.output_shape[2] < 24 : l.output_shape[2] > 12));
  const few = spatial(true), many = spatial(false);
  const vector = layers.find((l) => l.output_shape[0] === 1 && l.output_shape[1] === 1 && l.output_shape[2] > 24);
  const last = layers[layers.length - 1];
  assert.ok(few && many && vector, 'the model has spatial and vector layers');
  const right = paths.images.id.find((id, i) => paths.images.true[i] === paths.images.pred[i]);
  for (const [kind, opts] of VIEWS) {
    const ctx = await browser.newContext(opts);
    // A test image opened from the URL (the scatter's panel).
    const { page, errors } = await open(ctx, modelUrl(`&image=${encodeURIComponent(right)}`));
    await modelPageReady(page);
    const panel = `#scatter-linked .image-panel[data-image="${right}"]`;
    await page.waitForSelector(`${panel} .features[data-state="ready"]`, { timeout: 2 * STEP_MS });
    // The layer picker lists the model's layers.
    const options = await page.$$eval(`${panel} select.features-layer option`, (os) => os.map((o) => Number(o.value)));
    assert.deepEqual(options, layers.map((l) => l.index));
    const r1 = await pickFeatures(page, panel, few.index, 24);
    await checkSpatial(page, panel, r1, 24, kind);
    await page.waitForTimeout(300);
    await shotOf(page, `${panel} .panel-features`, `features-image-${kind}`);
    const r2 = await pickFeatures(page, panel, vector.index, 24);
    await checkVector(page, panel, r2, 24);

    // An upload: the file is the body.
    const bodies = [];
    page.on('request', (r) => { if (r.url().includes('/features?')) bodies.push(new URL(r.url()).searchParams.has('image')); });
    await upload(page, testImage(model.classes[0]));
    const up = '#upload-result .image-panel';
    await page.waitForSelector(`${up} .features[data-state="ready"]`, { timeout: 2 * STEP_MS });
    const r3 = await pickFeatures(page, up, many.index, 12);
    await checkSpatial(page, up, r3, 12, kind);
    assert.ok(bodies.length && bodies.every((hasImage) => !hasImage), 'the upload\'s own bytes are sent, not an image of the split');
    await page.waitForTimeout(300);
    await shotOf(page, `${up} .panel-features`, `features-upload-${kind}`);
    const r4 = await pickFeatures(page, up, last.index, 12);
    await checkVector(page, up, r4, 12, { classes: last.output_shape[2] === model.classes.length ? model.classes : null });
    await shotOf(page, `${up} .panel-features`, `features-upload-bars-${kind}`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true, `${kind}: no sideways scroll`);
    assert.deepEqual(errors, [], `${kind}: console errors`);
    await ctx.close();
  }
});

// --- 7. the URL -------------------------------------------------------------------------------------

test('URL: an opened cell and cluster survive a reload; back closes them', async (t) => {
  if (skip) { t.skip(skip); return; }
  const dims = paths.dimensions.filter((d) => d.kind === 'layer');
  const dim = dims[dims.length - 2];
  const scatter = await getJSON(api(`/layers/${dim.layer}/scatter`));
  const ctx = await browser.newContext(DESKTOP);
  const { page, errors } = await open(ctx, modelUrl(`&cluster=${dim.layer}.1`));
  await modelPageReady(page);
  await checkClusterGallery(page, '#paths-linked .linked-gallery[data-kind="cluster"]', scatter, 1, 'reload');
  // A thumbnail, then a reload: the gallery and the image come back.
  const thumb = page.locator('#paths-linked .linked-thumbs button[data-image]').nth(2);
  const id = await thumb.getAttribute('data-image');
  await thumb.click();
  await page.waitForSelector(`#paths-linked .image-panel[data-image="${id}"]`);
  await page.reload();
  await modelPageReady(page);
  await page.waitForSelector(`#paths-linked .image-panel[data-image="${id}"]`);
  assert.equal(await page.getAttribute(`#paths-linked .linked-thumbs button[data-image="${id}"]`, 'aria-pressed'), 'true');
  assert.deepEqual(await page.evaluate(colouredLines, paths.classes.length), [paths.images.id.indexOf(id)]);
  // Back: the image closes, the gallery stays, its paths highlighted again.
  await page.goBack();
  await page.waitForFunction(() => !document.querySelector('#paths-linked .image-panel'));
  assert.equal(await page.locator('#paths-linked .linked-gallery').count(), 1);
  assert.equal((await page.evaluate(colouredLines, paths.classes.length)).length, scatter.centers.size[1]);
  // A cell then: the cluster's gallery goes, the cell's comes; back brings the cluster again.
  const conf = confusionOf(model);
  await page.goto(`${base}${modelUrl('&cell=0.0')}`);
  await modelPageReady(page);
  await page.waitForSelector('#confusion-linked .linked-gallery[data-kind="cell"]');
  assert.equal(await page.getAttribute('#confusion-linked .linked-gallery', 'data-count'), String(conf[0][0]));
  await page.goBack();
  await checkClusterGallery(page, '#paths-linked .linked-gallery[data-kind="cluster"]', scatter, 1, 'back');
  assert.deepEqual(errors, []);
  await ctx.close();
});
