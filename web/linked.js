// linked.js — the model page's linked views. What a reader picks in one view
// opens where they picked it, and its paths light up in the graph of paths:
//
//   - a cell of the confusion matrix: its images, in a gallery under the
//     matrix (clustergallery.js);
//   - a cluster — one of a layer's bars in the graph, a centre on the
//     scatter or one of the cluster buttons under it (a finger cannot
//     always pick a centre out of the points around it), a cluster in an
//     image's path table: its images, nearest its centre first, with its
//     make-up, under the graph (under the scatter from the scatter);
//   - a test image — a point of the scatter, a thumbnail of a gallery: the
//     image panel (imagepanel.js), under the scatter or under the gallery;
//     a mistake of the gallery below opens there (gallery.js), and the page
//     tells this module (mistakeOpened) so that its path lights up too.
//
// One gallery and one test image are open at a time on the whole page. The
// graph highlights the opened image's own path, else the gallery's images,
// else the class the URL names; the layer scatter rings the opened image. The page keeps the gallery (`cell`,
// `cluster`) and the image (`image`) in the URL (viewstate.js): this module
// reports the reader's changes (`changed`) and shows a view again with
// applyLinked (a reload, the back button).

import { api } from './api.js';
import { el, fill, progress, errorBox } from './ui.js';
import { clusterColors } from './palette.js';
import { counted } from './words.js';
import { layerDimensions } from './parcats.js';
import { highlightImages, highlightClass, pathsDocument } from './pathsview.js';
import { scatterPick } from './scatter.js';
import { confusionCell } from './confusion.js';
import { cellSpec, clusterSpec, renderGallery } from './clustergallery.js';
import { renderImagePanel, clearImagePanel, setPanelContext } from './imagepanel.js';

let model = null;
let doc = null; // GET …/paths as served
let onChanged = () => {};
let getView = () => ({});
let mistakes = { open: () => {}, close: () => {} };
let onMarked = () => {};
let probabilities = null; // promise of Map image id -> probability of the answer (the mistakes)
const scatters = new Map(); // "layer:k" -> promise of a scatter reply
const places = {}; // name -> {root, gallery (slot), panel (slot)}
let gallery = null; // {spec, place, ui}
let image = null; // {id, index, place}
let token = 0;

const $ = (id) => document.getElementById(id);

/** A place for galleries and panels after `anchor` (nothing when it is missing). */
function makePlace(name, anchor) {
  if (!anchor) return;
  const g = el('div', { class: 'linked-gallery-slot' });
  const p = el('div', { class: 'linked-panel detail', hidden: true });
  const root = el('div', { class: 'linked', id: `${name}-linked`, 'data-place': name, hidden: true }, g, p);
  anchor.after(root);
  places[name] = { root, gallery: g, panel: p };
}

function placeShown(pl) {
  pl.root.hidden = !pl.gallery.childElementCount && pl.panel.hidden;
}

/** Scrolls `node` to the top of the window unless its top is already well in view. */
function reveal(node) {
  if (!node || !node.isConnected) return;
  const top = node.getBoundingClientRect().top;
  if (top >= 56 && top <= window.innerHeight * 0.6) return;
  node.scrollIntoView({ block: 'start', behavior: 'smooth' });
}

function showPaths() {
  $('paths-section')?.scrollIntoView({ block: 'start', behavior: 'smooth' });
}

const dims = () => layerDimensions(pathsDocument() || doc);
const indexOf = (id) => (doc.images.id || []).indexOf(id);
const isMistake = (i) => i >= 0 && doc.images.true[i] !== doc.images.pred[i];

/** The scatter reply of `layer` at `k` (the analysis's own when k is its k or null). */
function scatterFor(layer, k = null) {
  const own = layerDimensions(doc).find((d) => d.layer === layer)?.k ?? null;
  const kk = k === null || k === own ? null : k;
  const key = `${layer}:${kk ?? ''}`;
  if (!scatters.has(key)) {
    const p = api.scatter(model.id, layer, kk ?? undefined);
    p.catch(() => scatters.delete(key));
    scatters.set(key, p);
  }
  return scatters.get(key);
}

/** The graph's highlight: the opened image's path, else the gallery's
 *  images, else the URL's class; and the opened image ringed on the scatter. */
function restoreHighlight() {
  onMarked(image ? image.id : null);
  if (image && image.index >= 0) {
    highlightImages(new Set([image.index]), `the path of ${image.id}, the image opened`);
  } else if (gallery) {
    highlightImages(gallery.spec.highlight, gallery.spec.label);
  } else {
    highlightClass(getView().cls || null);
  }
}

// --- the image panel ------------------------------------------------------------

function closePanels(except = null) {
  for (const [name, pl] of Object.entries(places)) {
    if (name === except) continue;
    clearImagePanel(pl.panel);
    pl.panel.hidden = true;
    placeShown(pl);
  }
  if (gallery) gallery.ui.press(null);
}

/** Opens test image `id` in place `place` ('scatter', or the gallery's
 *  place); `report` tells the page (a reader's action). */
export function openImage(id, place, { report = true } = {}) {
  const i = indexOf(id);
  const pl = places[place];
  if (i < 0 || !pl) return;
  closePanels(place);
  if (image && image.place === 'mistakes') mistakes.close();
  image = { id, index: i, place };
  if (gallery && gallery.place === place && gallery.spec.items.some((it) => it.id === id)) gallery.ui.press(id);
  const classes = doc.classes;
  pl.panel.hidden = false;
  placeShown(pl);
  probabilities.then((probs) => {
    if (!image || image.id !== id) return;
    const item = probs.items.get(id) || null;
    renderImagePanel(pl.panel, {
      kind: 'dataset', id, index: i, true: classes[doc.images.true[i]], pred: classes[doc.images.pred[i]], item,
    }, { close: () => closeImage(), compareId: `${place}-compare` });
    requestAnimationFrame(() => reveal(pl.panel));
  });
  restoreHighlight();
  if (report) onChanged({ image: id });
}

/** Closes the image opened here (not a mistake's: gallery.js owns that). */
export function closeImage({ report = true } = {}) {
  if (!image || image.place === 'mistakes') return;
  closePanels();
  image = null;
  restoreHighlight();
  if (report) onChanged({ image: null });
}

/** A mistake opened in the gallery below (`item` of GET …/misclassified):
 *  its path lights up, any other opened image closes. */
export function mistakeOpened(item) {
  closePanels();
  image = { id: item.id, index: indexOf(item.id), place: 'mistakes' };
  restoreHighlight();
}

/** The mistake opened below was closed. */
export function mistakeClosed() {
  if (image && image.place === 'mistakes') image = null;
  restoreHighlight();
}

// --- galleries ---------------------------------------------------------------------

/** Outlines, on the confusion matrix, the cell whose gallery is open (null: none). */
function markCell(spec) {
  const gd = $('confusion');
  const names = gd && gd.data && gd.data[0] && gd.data[0].x;
  if (!names || !window.Plotly) return;
  const shapes = [];
  if (spec && spec.kind === 'cell') {
    const x = names.indexOf(doc.classes[spec.p]), y = names.indexOf(doc.classes[spec.t]);
    if (x >= 0 && y >= 0) {
      shapes.push({ type: 'rect', xref: 'x', yref: 'y', x0: x - 0.5, x1: x + 0.5, y0: y - 0.5, y1: y + 0.5,
        line: { color: '#111827', width: 3 }, fillcolor: 'rgba(0,0,0,0)' });
    }
  }
  if (shapes.length || (gd.layout.shapes && gd.layout.shapes.length)) window.Plotly.relayout(gd, { shapes });
}

function showGallery(spec, place, { report }) {
  const pl = places[place];
  if (!pl) return;
  closeGallery({ report: false, keepImage: true });
  // A new gallery: the image opened before, wherever it is, closes.
  if (image && image.place === 'mistakes') {
    mistakes.close();
    image = null;
  } else if (image) {
    closeImage({ report: false });
  }
  const ui = renderGallery(pl.gallery, { ...spec, modelId: model.id }, {
    open: (it) => openImage(it.id, place),
    close: () => closeGallery(),
    paths: showPaths,
  });
  gallery = { spec, place, ui };
  pl.root.dataset.gallery = spec.kind;
  markCell(spec);
  placeShown(pl);
  restoreHighlight();
  requestAnimationFrame(() => reveal(pl.gallery));
  if (report) onChanged(spec.kind === 'cell' ? { cell: spec.key, cluster: null, image: null } : { cluster: spec.key, cell: null, image: null });
}

/** Opens the gallery of the confusion-matrix cell true `t` → answered `p`
 *  (class indices); `expected` is the matrix's count, said when the analysed
 *  split counts otherwise. */
export async function openCell(t, p, { report = true, expected = null } = {}) {
  const probs = await probabilities;
  const spec = cellSpec(doc, t, p, { probabilities: probs.byId });
  if (expected !== null && expected !== spec.count) {
    spec.lead += ` (The matrix counts ${expected}: it comes from the training run's test images, these from the split ` +
      'strata analysed.)';
  }
  showGallery(spec, 'confusion', { report });
}

/** Opens the gallery of cluster `cluster` of layer `layer` (a model layer
 *  index) at `k` (null: the k the graph shows for that layer), in `place`. */
export async function openCluster(layer, cluster, { k = null, place = 'paths', report = true } = {}) {
  const dim = dims().find((d) => d.layer === layer);
  if (!dim) return;
  const kk = k ?? dim.k;
  const my = ++token;
  const pl = places[place];
  if (!pl) return;
  fill(pl.gallery, progress(`Finding the images of cluster ${cluster} of ${dim.label}…`));
  placeShown(pl);
  let scatter;
  try {
    scatter = await scatterFor(layer, kk);
  } catch (err) {
    if (my === token) fill(pl.gallery, errorBox(err, `Could not load the clusters of ${dim.label}`));
    return;
  }
  if (my !== token) return;
  if (!(cluster >= 0 && cluster < scatter.centers.x.length)) {
    fill(pl.gallery);
    placeShown(pl);
    return;
  }
  const own = layerDimensions(doc).find((d) => d.layer === layer)?.k;
  showGallery(clusterSpec(doc, scatter, cluster, { layerName: dim.label, reclustered: scatter.k !== own }), place, { report });
}

/** Closes the open gallery (and the image opened from it). */
export function closeGallery({ report = true, keepImage = false } = {}) {
  ++token;
  if (!gallery) return;
  const { place } = gallery;
  const pl = places[place];
  fill(pl.gallery);
  delete pl.root.dataset.gallery;
  gallery = null;
  markCell(null);
  if (!keepImage && image && image.place === place) {
    clearImagePanel(pl.panel);
    pl.panel.hidden = true;
    image = null;
  }
  placeShown(pl);
  restoreHighlight();
  if (report) onChanged({ cell: null, cluster: null, ...(keepImage ? {} : { image: null }) });
}

// --- clicks on the charts --------------------------------------------------------

/** Calls `wire(gd)` once Plotly has made `node` a graph (its `on` exists). */
function whenPlotted(node, wire) {
  if (!node) return;
  if (typeof node.on === 'function') { wire(node); return; }
  const mo = new MutationObserver(() => {
    if (typeof node.on === 'function') {
      mo.disconnect();
      wire(node);
    }
  });
  mo.observe(node, { childList: true });
}

/** The cluster whose centre marker covers point `p` of a click (drawn over
 *  the points, a centre hides those under it, so a click there means it), or -1. */
function centreOver(gd, p) {
  const tr = (gd.data || []).find((t) => t.name === 'cluster centres');
  if (!tr || !p.xaxis || !p.yaxis || typeof p.xaxis.d2p !== 'function') return -1;
  const px = p.xaxis.d2p(p.x), py = p.yaxis.d2p(p.y);
  let best = -1, bestD = Infinity;
  tr.x.forEach((x, c) => {
    const size = Array.isArray(tr.marker.size) ? tr.marker.size[c] : tr.marker.size;
    const d = Math.hypot(p.xaxis.d2p(x) - px, p.yaxis.d2p(tr.y[c]) - py);
    if (d <= size / 2 + 1 && d < bestD) { best = c; bestD = d; }
  });
  return best;
}

async function onScatterClick(ev) {
  const point = ev.points && ev.points[0];
  let pick = scatterPick(point);
  const gd = $('scatter');
  if (!pick || !gd) return;
  if (pick.kind === 'image') {
    const c = centreOver(gd, point);
    if (c >= 0) pick = { kind: 'centre', cluster: c };
  }
  const layer = Number(gd.dataset.layer), k = Number(gd.dataset.k);
  if (pick.kind === 'centre') {
    openCluster(layer, pick.cluster, { k, place: 'scatter' });
    return;
  }
  try {
    const s = await scatterFor(layer, k);
    const id = s.points.id[pick.index];
    if (id) openImage(id, 'scatter');
  } catch {
    // The layer panel says when its scatter does not load.
  }
}

let chipsKey = null;

/** The buttons under the scatter, one per cluster of the layer and k it
 *  shows, redrawn when the layer panel draws another layer or k. */
async function scatterChips() {
  const gd = $('scatter');
  const bar = $('scatter-clusters');
  if (!gd || !bar || !gd.dataset.layer) return;
  const key = `${gd.dataset.layer}:${gd.dataset.k}`;
  if (key === chipsKey) return;
  chipsKey = key;
  const layer = Number(gd.dataset.layer), k = Number(gd.dataset.k);
  let s;
  try {
    s = await scatterFor(layer, k);
  } catch {
    return; // the layer panel says when its scatter does not load
  }
  if (chipsKey !== key) return;
  const colours = clusterColors(s.classes.length, s.centers.x.length);
  fill(bar, el('span', { class: 'toolbar-label' }, 'See the images of'),
    s.centers.x.map((_, c) => {
      const m = s.centers.majority ? s.centers.majority[c] : -1;
      const n = s.centers.size ? s.centers.size[c] : 0;
      return el('button', { type: 'button', class: 'chip-button', 'data-cluster': c, 'data-layer': layer,
        title: `the ${counted(n, 'test image')} of cluster ${c}` },
      el('span', { class: 'dot', style: `background:${colours[c]}`, 'aria-hidden': 'true' }),
      `cluster ${c}`, m >= 0 ? el('span', { class: 'muted' }, ` · ${s.classes[m]}`) : null);
    }));
  bar.dataset.layer = String(layer);
  bar.dataset.k = String(k);
}

function onConfusionClick(ev) {
  const point = ev.points && ev.points[0];
  const classes = (point && point.data && point.data.y) || doc.classes;
  const cell = confusionCell(classes, point);
  if (!cell) return;
  const t = doc.classes.indexOf(classes[cell.t]), p = doc.classes.indexOf(classes[cell.p]);
  if (t >= 0 && p >= 0) openCell(t, p, { expected: cell.count });
}

// --- the page ----------------------------------------------------------------------

/**
 * Sets the linked views up once the graph of paths has come: `model` the
 * model's detail, `paths` GET …/paths, `view` the view to start from (as
 * applyLinked takes it), `changed(patch)` reports the reader's changes of
 * {cell, cluster, image}, `getView()` the page's current view (for the
 * class highlight), `mistakes` {open(id), close()} the gallery of mistakes,
 * `marked(id)` is told which test image is open (null: none), wherever it
 * opened, for the scatter's ring.
 */
export function initLinked({ model: m, paths, view, changed, getView: gv, mistakes: mk, marked }) {
  model = m;
  doc = paths;
  onChanged = changed || onChanged;
  getView = gv || getView;
  mistakes = mk || mistakes;
  onMarked = marked || onMarked;
  makePlace('paths', $('parcats')?.closest('.card'));
  // Beside the scatter's column in the layer grid (under it on a phone; the
  // stylesheet gives it the grid's whole width on a wide screen).
  makePlace('scatter', $('scatter')?.closest('.layer-main') || $('layer-stats'));
  const conf = $('confusion');
  makePlace('confusion', conf?.closest('.two-col') || conf?.closest('.card'));
  probabilities = api.misclassified(m.id).then((r) => ({
    byId: new Map(r.images.map((it) => [it.id, it.probability])),
    items: new Map(r.images.map((it) => [it.id, it])),
  })).catch(() => ({ byId: new Map(), items: new Map() }));
  setPanelContext({
    model: m,
    paths: pathsDocument,
    openCluster: (layer, cluster, k = null) => openCluster(layer, cluster, { k, place: 'paths' }),
    showPaths,
  });
  const chips = el('div', { class: 'toolbar cluster-chips', id: 'scatter-clusters', role: 'group',
    'aria-label': 'The clusters of the layer shown' });
  $('layer-stats')?.after(chips);
  chips.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-cluster]');
    if (b) openCluster(Number(b.dataset.layer), Number(b.dataset.cluster), { k: Number(chips.dataset.k), place: 'scatter' });
  });
  whenPlotted($('scatter'), (gd) => {
    gd.on('plotly_click', onScatterClick);
    gd.on('plotly_afterplot', scatterChips);
    scatterChips();
  });
  whenPlotted(conf, (gd) => gd.on('plotly_click', onConfusionClick));
  applyLinked(view);
}

/** A cluster of the graph of paths was clicked (pathsview.js). */
export function clusterClicked({ layer, cluster, k, reclustered }) {
  openCluster(layer, cluster, { k: reclustered ? k : null, place: 'paths' });
}

/** Shows `view`'s gallery and image (a reload, back or forward), without
 *  reporting them: a mistake opens in the gallery below, another image
 *  under its gallery when it is one of its images, else under the scatter. */
export async function applyLinked(view) {
  if (!doc) return;
  const pair = (s) => s.split('.').map(Number);
  const want = view.cell ? `cell:${view.cell}` : view.cluster ? `cluster:${view.cluster}` : null;
  const have = gallery ? `${gallery.spec.kind}:${gallery.spec.key}` : null;
  if (want !== have) {
    if (view.cell) {
      const [t, p] = pair(view.cell);
      if (t < doc.classes.length && p < doc.classes.length) await openCell(t, p, { report: false });
    } else if (view.cluster) {
      const [layer, c] = pair(view.cluster);
      await openCluster(layer, c, { k: view.k?.get(layer) ?? null, report: false });
    } else {
      closeGallery({ report: false });
    }
  }
  const id = view.image || null;
  if (!id) {
    if (image && image.place === 'mistakes') {
      mistakes.close();
      image = null;
    } else if (image) {
      closeImage({ report: false });
    }
    restoreHighlight();
    return;
  }
  if (image && image.id === id) { restoreHighlight(); return; }
  const i = indexOf(id);
  if (i < 0) return;
  if (gallery && gallery.spec.items.some((it) => it.id === id)) {
    mistakes.close();
    openImage(id, gallery.place, { report: false });
  } else if (isMistake(i)) {
    mistakes.open(id);
    mistakeOpened({ id });
  } else {
    mistakes.close();
    openImage(id, 'scatter', { report: false });
  }
}
