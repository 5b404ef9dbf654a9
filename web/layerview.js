// layerview.js — the "one layer seen from above" panel of the model page:
// a button per analysed layer; for the chosen layer its PCA scatter (points
// coloured by cluster or by true class, centres in black, a point's
// thumbnail on hover, or on a tap on a touch screen), its elbow curve with
// the chosen k, and a k selector that re-clusters live (GET …/scatter?k=N).
// An uploaded image appears as a star, in its cluster at the k shown (the
// analysis's, or, at the reader's k, where the page's re-ask put it); the
// test image open in the page's image panel is ringed.
//
// One k per layer: the reader's k for a layer is kept while they look at
// others, and every clustering that is not the analysis's own is handed to
// the page (`clustered`), which draws the graph of paths with it. The panel's
// view (layer, the reader's k of each layer, colouring) is reported to the
// page on each of the reader's changes (`changed`), which keeps it in the
// URL, and set back from there by applyView (a reload, the back button).

import { api, imageUrl } from './api.js';
import { el, fill, draw, num, pct, progress, errorBox } from './ui.js';
import { scatterFigure } from './scatter.js';
import { clusterAt, failedAt } from './uploadk.js';
import { elbowFigure } from './elbow.js';

const K_MAX = 10;
// A touch screen (a finger is the main pointer): taps show photos, swipes
// scroll the page, the toolbar's buttons zoom.
const TOUCH = typeof matchMedia === 'function' && matchMedia('(pointer: coarse)').matches;
const SCATTER_CONFIG = TOUCH
  ? { displayModeBar: true, modeBarButtonsToRemove: ['zoom2d', 'pan2d', 'select2d', 'lasso2d', 'autoScale2d', 'toImage'] }
  : {};

// Module state: one layer panel per page.
let modelId = null;
let layers = []; // [{layer, label, k (the analysis's), type, shape}]
let current = null; // index into layers
let k = null; // the k shown
const chosen = new Map(); // layer index -> the reader's k, for layers where it is not the analysis's
let colorBy = 'cluster';
let scatter = null;
let elbow = null;
let upload = null; // predict reply (with the page's clusters_at for the reader's k)
let marked = null; // id of the test image open in the image panel
let token = 0;
const pending = new Map(); // layer index -> token of its latest clustering request
let hoverWired = false;
let onChanged = () => {};
let onClustered = () => {};
const nodes = {};

function byId(id) { return document.getElementById(id); }

/** The k the analysis chose for the layer at `layer` (a model layer index). */
function analysedK(layer) {
  const l = layers.find((x) => x.layer === layer);
  return l ? l.k : null;
}

/** Only the layers shown and the k a scatter can be asked for. */
function validChoices(kMap) {
  const out = new Map();
  for (const [layer, kk] of kMap || []) {
    const own = analysedK(layer);
    if (own !== null && Number.isInteger(kk) && kk >= 1 && kk <= K_MAX && kk !== own) out.set(layer, kk);
  }
  return out;
}

/**
 * Sets up the panel. `dims` are the layer dimensions of /paths; `modelLayers`
 * the model's layer list (for types and shapes); `view` {layer (a model
 * layer index, or null for the first), k (Map layer -> k), colour} the
 * view to start from; `changed(view)` is called with the panel's view after
 * each of the reader's changes; `clustered(layer, scatter | null)` with each
 * layer's clustering when it is not the analysis's own (null when it is
 * again).
 */
export function initLayerView({ id, dims, modelLayers, view = {}, changed, clustered }) {
  modelId = id;
  onChanged = changed || onChanged;
  onClustered = clustered || onClustered;
  Object.assign(nodes, {
    buttons: byId('layer-buttons'), scatter: byId('scatter'), tip: byId('scatter-tip'),
    elbow: byId('elbow'), kSel: byId('k-selector'), stats: byId('layer-stats'),
    byCluster: byId('colour-cluster'), byClass: byId('colour-class'),
  });
  const info = new Map((modelLayers || []).map((l) => [l.index, l]));
  layers = dims.map((d) => ({ layer: d.layer, label: d.label, k: d.k, type: info.get(d.layer)?.type,
    shape: info.get(d.layer)?.output_shape }));
  fill(nodes.buttons, layers.map((l, i) => el('button', {
    type: 'button', class: 'layer-button', 'aria-pressed': 'false', 'data-layer': l.layer, 'data-pos': i,
  }, el('span', { class: 'layer-name' }, l.label), l.type ? el('span', { class: 'layer-type' }, l.type) : null)));
  nodes.buttons.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-pos]');
    if (!b || Number(b.dataset.pos) === current) return;
    selectLayer(Number(b.dataset.pos));
    report();
  });
  fill(nodes.kSel, el('span', { class: 'toolbar-label' }, 'k'),
    Array.from({ length: K_MAX }, (_, i) => el('button', { type: 'button', class: 'k-button', 'data-k': i + 1,
      'aria-pressed': 'false', 'aria-label': `k = ${i + 1}` }, String(i + 1))));
  nodes.kSel.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-k]');
    if (b && setK(Number(b.dataset.k))) report();
  });
  nodes.byCluster.addEventListener('click', () => { if (setColorBy('cluster')) report(); });
  nodes.byClass.addEventListener('click', () => { if (setColorBy('class')) report(); });
  // A tap elsewhere puts a point's photo away (a tap on a point shows it again).
  document.addEventListener('pointerdown', (e) => {
    if (!nodes.tip.hidden && !nodes.tip.contains(e.target)) nodes.tip.hidden = true;
  }, true);
  if (layers.length) applyView(view);
}

/** The panel's view, as initLayerView's `view` takes it. */
function currentView() {
  return { layer: current > 0 ? layers[current].layer : null, k: new Map(chosen), colour: colorBy };
}

function report() {
  onChanged(currentView());
}

/** Shows `view` (as initLayerView takes it) without reporting it: the
 *  layer, each layer's k (the layers not shown are clustered for the page),
 *  the colouring. */
export function applyView(view = {}) {
  if (!layers.length) return;
  setColorBy(view.colour === 'class' ? 'class' : 'cluster');
  const want = validChoices(view.k);
  const pos = Math.max(0, layers.findIndex((l) => l.layer === view.layer));
  const before = new Map(chosen);
  chosen.clear();
  for (const [layer, kk] of want) chosen.set(layer, kk);
  // Layers whose k changed, other than the one about to be shown.
  for (const l of layers) {
    if (l.layer === layers[pos].layer) continue;
    if ((before.get(l.layer) ?? null) !== (chosen.get(l.layer) ?? null)) clusterLayer(l.layer);
  }
  if (pos !== current) selectLayer(pos);
  else setK(chosen.get(layers[pos].layer) ?? layers[pos].k);
}

/** Fetches the reader's clustering of a layer not shown and hands it to the
 *  page (null: back to the analysis's own). */
async function clusterLayer(layer) {
  const kk = chosen.get(layer) ?? null;
  const my = (pending.get(layer) || 0) + 1;
  pending.set(layer, my);
  if (kk === null) { onClustered(layer, null); return; }
  try {
    const s = await api.scatter(modelId, layer, kk);
    if (pending.get(layer) === my) onClustered(layer, s);
  } catch (err) {
    if (pending.get(layer) === my) fill(nodes.stats, errorBox(err, `Could not cluster layer ${layer} into ${kk} groups`));
  }
}

/** Marks (or, with null, unmarks) an uploaded image on every layer's
 *  scatter: `reply` is its predict reply, with `clusters_at` for the k the
 *  reader chose (uploadk.js). */
export function setUpload(reply) {
  upload = reply;
  if (scatter) drawScatter();
}

/** Rings test image `id` (an image id of the analysed split; null: none) on
 *  every layer's scatter: the one open in the image panel. */
export function markImage(id) {
  if (id === marked) return;
  marked = id;
  if (scatter) drawScatter();
}

function uploadPoint() {
  if (!upload || current === null) return null;
  const L = layers[current];
  const l = (upload.layers || []).find((x) => x.index === L.layer);
  if (!l) return null;
  // The reply's own clusters are the analysis's; another k's come from clusters_at.
  const own = L.k;
  return { x: l.x, y: l.y, cluster: k === own ? l.cluster : clusterAt(upload, L.layer, k), k, analysedK: own,
    failed: k === own ? null : failedAt(upload, L.layer, k) };
}

/** Index of the ringed image among the scatter's points, or null. */
function markedPoint() {
  if (marked === null || !scatter) return null;
  const i = scatter.points.id ? scatter.points.id.indexOf(marked) : -1;
  return i >= 0 ? i : null;
}

/** Returns whether the colouring changed. */
function setColorBy(mode) {
  if (mode === colorBy) return false;
  colorBy = mode;
  nodes.byCluster.setAttribute('aria-pressed', String(mode === 'cluster'));
  nodes.byClass.setAttribute('aria-pressed', String(mode === 'class'));
  if (scatter) drawScatter();
  return true;
}

async function selectLayer(pos) {
  current = pos;
  const L = layers[pos];
  k = chosen.get(L.layer) ?? L.k;
  nodes.tip.hidden = true;
  for (const b of nodes.buttons.querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(Number(b.dataset.pos) === pos));
  }
  const my = ++token;
  pending.set(L.layer, (pending.get(L.layer) || 0) + 1);
  const mine = pending.get(L.layer);
  nodes.stats.replaceChildren(progress(`Loading ${L.label}…`));
  try {
    const [s, e] = await Promise.all([api.scatter(modelId, L.layer, k === L.k ? undefined : k), api.elbow(modelId, L.layer)]);
    if (my !== token) return;
    scatter = s; elbow = e; k = s.k;
    if (pending.get(L.layer) === mine) onClustered(L.layer, k === L.k ? null : s);
    await Promise.all([drawScatter(), drawElbow()]);
    showStats();
  } catch (err) {
    if (my === token) fill(nodes.stats, errorBox(err, `Could not load layer ${L.label}`));
  }
}

/** Clusters the layer shown into newK groups; returns whether k changed. */
function setK(newK) {
  if (current === null || newK === k) return false;
  const L = layers[current];
  if (newK === L.k) chosen.delete(L.layer);
  else chosen.set(L.layer, newK);
  k = newK;
  markK();
  recluster(L, newK);
  return true;
}

async function recluster(L, newK) {
  const my = ++token;
  pending.set(L.layer, (pending.get(L.layer) || 0) + 1);
  const mine = pending.get(L.layer);
  nodes.tip.hidden = true;
  nodes.stats.replaceChildren(progress(`Clustering into ${newK} groups…`));
  try {
    const s = await api.scatter(modelId, L.layer, newK === L.k ? undefined : newK);
    if (my !== token) return;
    scatter = s;
    if (pending.get(L.layer) === mine) onClustered(L.layer, newK === L.k ? null : s);
    await Promise.all([drawScatter(), drawElbow()]);
    showStats();
  } catch (err) {
    if (my === token) fill(nodes.stats, errorBox(err, 'Could not re-cluster'));
  }
}

function markK() {
  for (const b of nodes.kSel.querySelectorAll('button')) {
    const bk = Number(b.dataset.k);
    b.setAttribute('aria-pressed', String(bk === k));
    b.classList.toggle('is-auto', elbow !== null && bk === elbow.k_auto);
    b.title = elbow !== null && bk === elbow.k_auto ? 'the elbow: strata\'s choice' : '';
  }
}

async function drawScatter() {
  const ring = markedPoint();
  const fig = scatterFigure(scatter, { colorBy, upload: uploadPoint(), marked: ring, touch: TOUCH });
  nodes.scatter.dataset.points = String(scatter.points.x.length);
  nodes.scatter.dataset.centers = String(scatter.centers.x.length);
  nodes.scatter.dataset.layer = String(scatter.layer?.index ?? layers[current].layer);
  nodes.scatter.dataset.k = String(scatter.k);
  if (ring === null) delete nodes.scatter.dataset.marked;
  else nodes.scatter.dataset.marked = marked;
  await draw(nodes.scatter, fig, SCATTER_CONFIG);
  if (!hoverWired) {
    hoverWired = true;
    nodes.scatter.on('plotly_hover', showTip);
    // A tap on a touch screen is a click to Plotly, not a hover.
    nodes.scatter.on('plotly_click', showTip);
    nodes.scatter.on('plotly_unhover', () => { if (!TOUCH) nodes.tip.hidden = true; });
  }
}

async function drawElbow() {
  await draw(nodes.elbow, elbowFigure(elbow, { k }), { displayModeBar: false });
  nodes.elbow.dataset.k = String(k);
  if (!nodes.elbow.dataset.wired) {
    nodes.elbow.dataset.wired = '1';
    nodes.elbow.on('plotly_click', (ev) => {
      const p = ev.points && ev.points[0];
      if (p && Number.isInteger(p.x) && setK(p.x)) report();
    });
  }
  markK();
}

function showStats() {
  const s = scatter;
  const evr = s.explained_variance_ratio || [];
  const both = evr.length >= 2 ? evr[0] + evr[1] : null;
  const l = layers[current];
  fill(nodes.stats,
    el('span', {}, el('strong', {}, l.label), l.shape ? ` (${l.shape.join('×')})` : ''),
    el('span', {}, `k = ${s.k}${s.k_auto && s.k_auto !== s.k ? ` (elbow: ${s.k_auto})` : ''}`),
    el('span', { title: 'share of each cluster held by its majority class' }, `purity ${num(s.purity)}`),
    el('span', { title: 'adjusted Rand index between clusters and classes (0 = chance, 1 = identical)' }, `ARI ${num(s.ari)}`),
    el('span', { title: 'normalised mutual information between clusters and classes' }, `NMI ${num(s.nmi)}`),
    el('span', { title: 'how well separated the clusters are (−1…1)' }, `silhouette ${num(s.silhouette)}`),
    both !== null ? el('span', {}, `the 2 axes show ${pct(both)} of the variance`) : null);
}

function showTip(ev) {
  const p = ev.points && ev.points[0];
  if (!p || !scatter) return;
  const t = p.data;
  if (t.name === 'cluster centres' || t.name === 'your image' || typeof p.customdata !== 'number') {
    nodes.tip.hidden = true;
    return;
  }
  const i = p.customdata;
  const pts = scatter.points;
  const cls = scatter.classes;
  const right = pts.true[i] === pts.pred[i];
  fill(nodes.tip,
    el('img', { src: imageUrl(modelId, pts.id[i], { thumb: true }), alt: `${cls[pts.true[i]]} photo`, width: 64, height: 64 }),
    el('div', {},
      el('div', {}, el('span', { class: 'muted' }, 'true '), el('strong', {}, cls[pts.true[i]])),
      el('div', { class: right ? 'ok' : 'bad' }, el('span', { class: 'muted' }, 'predicted '), cls[pts.pred[i]]),
      el('div', { class: 'muted' }, `cluster ${pts.cluster[i]}`)));
  const wrap = nodes.scatter.getBoundingClientRect();
  const x = ev.event ? ev.event.clientX - wrap.left : 0;
  const y = ev.event ? ev.event.clientY - wrap.top : 0;
  nodes.tip.hidden = false;
  const w = nodes.tip.offsetWidth, h = nodes.tip.offsetHeight;
  nodes.tip.style.left = `${Math.max(4, Math.min(wrap.width - w - 4, x + 14))}px`;
  nodes.tip.style.top = `${Math.max(4, Math.min(wrap.height - h - 4, y - h - 10))}px`;
}
