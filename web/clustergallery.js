// clustergallery.js — a gallery of the test images a reader picks as a group
// in one of the model page's views:
//
//   - a cell of the confusion matrix: the images of true class t that the
//     model answered p (GET …/paths has both for every image), its most
//     confident mistakes first when the mistakes list gives probabilities;
//   - a cluster of one layer (a bar of the graph of paths, a centre on the
//     scatter): its images, those nearest its centre first — in the layer's
//     own feature space, where k-means made the clusters (GET
//     …/layers/{layer}/scatter gives every point's cluster and its
//     `distance` to that cluster's centre; the scatter's plane only draws
//     them) — with what the cluster is made of — its images' true classes —
//     and what the model answers for them, so that "cluster 2 of conv3"
//     says what it gathers.
//
// Each thumbnail is a button; the page opens the image panel under the
// gallery for it. cellSpec, clusterSpec and the member functions are pure
// (tested under Node); renderGallery draws a spec into a container.

import { imageUrl } from './api.js';
import { el, fill, pct } from './ui.js';
import { classColor } from './palette.js';
import { counted } from './words.js';

/** Thumbnails shown at first; the rest behind a "show all" button. */
export const GALLERY_FIRST = 24;

/** Indices (into GET …/paths's images) of true class `t` answered `p`. */
export function cellMembers(paths, t, p) {
  const out = [];
  paths.images.true.forEach((tc, i) => { if (tc === t && paths.images.pred[i] === p) out.push(i); });
  return out;
}

/** The points of cluster `c` in a scatter reply, nearest the cluster's
 *  centre first: by `points.distance`, each image's distance to its own
 *  centre in the layer's feature space (ties, and a missing distance, last,
 *  by index): [{i (index into points), d (that distance, or null)}]. */
export function clusterMembers(scatter, c) {
  const { points } = scatter;
  const dist = points.distance || [];
  const out = [];
  points.cluster.forEach((k, i) => {
    if (k === c) out.push({ i, d: Number.isFinite(dist[i]) ? dist[i] : null });
  });
  const far = (d) => (d === null ? Infinity : d);
  return out.sort((a, b) => far(a.d) - far(b.d) || a.i - b.i);
}

/** How many of `labels` (class indices) fall in each of `n` classes. */
export function countBy(labels, n) {
  const out = new Array(n).fill(0);
  for (const l of labels) if (l >= 0 && l < n) out[l] += 1;
  return out;
}

/**
 * The gallery of a confusion-matrix cell: true class `t` answered `p`
 * (class indices). `probabilities` maps image ids to the probability of
 * the model's answer (GET …/misclassified), for the captions and the order
 * (most confident first). Returns {kind: 'cell', key: "t.p", title, lead,
 * items: [{index, id, true, pred, probability}], highlight (a Set of paths
 * indices), label (for the graph's note), count}.
 */
export function cellSpec(paths, t, p, { probabilities = null } = {}) {
  const classes = paths.classes;
  const ids = paths.images.id || [];
  const prob = (id) => (probabilities && probabilities.has(id) ? probabilities.get(id) : null);
  let items = cellMembers(paths, t, p).map((i) => ({
    index: i, id: ids[i], true: classes[t], pred: classes[p], probability: prob(ids[i]),
  }));
  if (items.some((it) => it.probability !== null)) {
    items = items.slice().sort((a, b) => (b.probability ?? -1) - (a.probability ?? -1) || a.index - b.index);
  }
  const right = t === p;
  return {
    kind: 'cell',
    key: `${t}.${p}`,
    t,
    p,
    title: right ? `${classes[t]}, answered right` : `${classes[t]} taken for “${classes[p]}”`,
    lead: right
      ? `${counted(items.length, 'test image')} of ${classes[t]} that the model answers rightly.`
      : `${counted(items.length, 'test image')} of ${classes[t]} that the model answers “${classes[p]}”` +
        `${items.some((it) => it.probability !== null) ? ', the most confident first' : ''}.`,
    items,
    highlight: new Set(items.map((it) => it.index)),
    label: `the images of true class ${classes[t]} answered “${classes[p]}” (a cell of the confusion matrix)`,
    count: items.length,
  };
}

/**
 * The gallery of cluster `c` of a layer, from the layer's scatter reply
 * (for the k the graph shows). `paths` gives each image's index in the
 * graph (by id). Returns {kind: 'cluster', key: "layer.c", layer, cluster,
 * k, title, lead, items (nearest the centre first, each with `d`, its
 * distance to the centre in the layer's feature space), size,
 * majority, trueCounts, predCounts, right, highlight, label, count}.
 */
export function clusterSpec(paths, scatter, c, { layerName = null, reclustered = false } = {}) {
  const classes = scatter.classes || paths.classes;
  const C = classes.length;
  const byId = new Map((paths.images.id || []).map((id, i) => [id, i]));
  const pts = scatter.points;
  const items = clusterMembers(scatter, c).map(({ i, d }) => ({
    index: byId.has(pts.id[i]) ? byId.get(pts.id[i]) : i,
    id: pts.id[i],
    true: classes[pts.true[i]],
    pred: classes[pts.pred[i]],
    t: pts.true[i],
    p: pts.pred[i],
    d,
  }));
  const trueCounts = countBy(items.map((it) => it.t), C);
  const predCounts = countBy(items.map((it) => it.p), C);
  const right = items.filter((it) => it.t === it.p).length;
  const layer = scatter.layer ? scatter.layer.index : null;
  const name = layerName || scatter.layer?.name || `layer ${layer}`;
  const majority = scatter.centers.majority ? scatter.centers.majority[c] : -1;
  const size = scatter.centers.size ? scatter.centers.size[c] : items.length;
  return {
    kind: 'cluster',
    key: `${layer}.${c}`,
    layer,
    cluster: c,
    k: scatter.k,
    title: `Cluster ${c} of ${name}`,
    lead: `${counted(size, 'test image')} fall in this cluster of ${name} (one of ${scatter.k}` +
      `${reclustered ? ', the k you chose' : ''}). The ones nearest its centre come first, measured in the layer's ` +
      'own features, where k-means made the clusters (the scatter\'s two axes only draw them): they show best what ' +
      'the layer groups here.',
    items,
    size,
    majority: majority >= 0 ? classes[majority] : null,
    trueCounts,
    predCounts,
    classes,
    right,
    highlight: new Set(items.map((it) => it.index)),
    label: `the images of cluster ${c} of ${name}`,
    count: items.length,
  };
}

// --- drawing -------------------------------------------------------------------

/** One stacked bar of class counts with its legend (classes with none left out). */
function makeUpBar(title, counts, classes, total, kind) {
  const parts = counts.map((n, c) => ({ n, c })).filter((x) => x.n > 0).sort((a, b) => b.n - a.n);
  return el('div', { class: 'makeup', 'data-makeup': kind },
    el('div', { class: 'makeup-title' }, title),
    el('div', { class: 'makeup-bar', role: 'img', 'aria-label': `${title}: ${parts.map((x) => `${classes[x.c]} ${x.n}`).join(', ')}` },
      parts.map((x) => el('span', { class: 'makeup-part', title: `${classes[x.c]}: ${x.n} (${pct(x.n / total)})`,
        style: `width:${(100 * x.n) / total}%;background:${classColor(x.c)}` }))),
    el('ul', { class: 'makeup-legend' }, parts.map((x) => el('li', { 'data-class': classes[x.c], 'data-count': x.n },
      el('span', { class: 'dot', style: `background:${classColor(x.c)}`, 'aria-hidden': 'true' }),
      `${classes[x.c]} ${x.n}`))));
}

function thumb(it, j, spec) {
  const wrong = it.true !== it.pred;
  return el('button', {
    type: 'button', class: 'gallery-item', 'data-image': it.id, 'data-pos': j, 'aria-pressed': 'false',
    title: `${it.id}: ${it.true} photo, answered “${it.pred}”` +
      `${Number.isFinite(it.d) ? `; ${it.d.toPrecision(3)} from the cluster's centre in the layer's features` : ''}`,
  },
  el('img', { src: imageUrl(spec.modelId, it.id, { thumb: true }), alt: `${it.true} photo ${it.id}`, width: 64, height: 64,
    loading: 'lazy' }),
  el('span', { class: `gallery-caption${wrong ? '' : ' is-right'}` },
    el('span', { class: 'from' }, it.true), ' → ', el('span', { class: 'to' }, it.pred)),
  it.probability !== null && it.probability !== undefined ? el('span', { class: 'gallery-prob' }, pct(it.probability)) : null);
}

/**
 * Draws `spec` (cellSpec or clusterSpec, with `modelId`) into `container`:
 * heading, lead, a cluster's make-up, the thumbnails and, under them, an
 * empty element for the image panel. `open(item)` is called when a
 * thumbnail is pressed, `close()` when the gallery's close button is;
 * `paths()` when the reader asks to see the highlighted paths. Returns
 * {panel (the element for the image panel), press(id) (marks a thumbnail
 * pressed, null: none)}.
 */
export function renderGallery(container, spec, { open, close, paths } = {}) {
  const grid = el('div', { class: 'gallery linked-thumbs', role: 'group', 'aria-label': spec.title });
  const more = el('div', { class: 'linked-more' });
  const panel = el('div', { class: 'linked-panel detail', hidden: true });
  const shown = (n) => {
    fill(grid, spec.items.slice(0, n).map((it, j) => thumb(it, j, spec)));
    if (n < spec.items.length) {
      const b = el('button', { type: 'button', class: 'link-button' }, `Show all ${spec.items.length}`);
      b.addEventListener('click', () => shown(spec.items.length));
      fill(more, b);
    } else {
      fill(more);
    }
  };
  grid.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-pos]');
    if (b && open) open(spec.items[Number(b.dataset.pos)]);
  });
  const closeButton = el('button', { type: 'button', class: 'close-button', 'aria-label': 'Close the gallery' }, '×');
  closeButton.addEventListener('click', () => { if (close) close(); });
  const see = el('button', { type: 'button', class: 'link-button' }, 'see their paths in the graph');
  see.addEventListener('click', () => { if (paths) paths(); });
  const makeUp = spec.kind === 'cluster' && spec.count > 0 ? el('div', { class: 'makeup-box' },
    makeUpBar('Their true classes', spec.trueCounts, spec.classes, spec.count, 'true'),
    makeUpBar('What the model answers', spec.predCounts, spec.classes, spec.count, 'pred'),
    el('p', { class: 'small makeup-right' }, `The model is right for ${spec.right} of them (${pct(spec.right / spec.count)})` +
      `${spec.majority ? `; its largest class is ${spec.majority} (${spec.trueCounts[spec.classes.indexOf(spec.majority)]} ` +
        `of ${spec.count})` : ''}.`)) : null;
  fill(container,
    el('div', { class: 'linked-gallery', 'data-kind': spec.kind, 'data-key': spec.key, 'data-count': spec.count },
      el('div', { class: 'detail-head' }, el('h3', {}, spec.title, el('span', { class: 'muted' }, ` · ${counted(spec.count, 'image')}`)),
        closeButton),
      el('p', { class: 'small muted linked-lead' }, spec.lead, ' Their paths are highlighted: ', see, '.'),
      makeUp,
      spec.count ? grid : el('p', { class: 'empty' }, 'No test image here.'),
      more),
    panel);
  shown(spec.items.length <= GALLERY_FIRST + 6 ? spec.items.length : GALLERY_FIRST);
  return {
    panel,
    press(id) {
      if (id !== null && !grid.querySelector(`button[data-image="${CSS.escape(id)}"]`)) shown(spec.items.length);
      for (const b of grid.querySelectorAll('button[data-image]')) b.setAttribute('aria-pressed', String(b.dataset.image === id));
    },
  };
}
