// imagepanel.js — one image up close: the same panel for any image, a test
// image of the analysed split (opened from the scatter, a gallery, the
// mistakes) or the reader's upload. It shows
//
//   - the photo, its true class (when known) and the model's answer with
//     its probability (bars for every class);
//   - the doubt;
//   - its path, layer by layer, as a small table: the cluster it falls in at
//     each layer of the graph of paths (and the class most of that
//     cluster's test images have), and, on the layers the doubt probes, the
//     class of its nearest training images and how much that layer agrees
//     with the answer; a cluster opens its gallery. The page highlights the
//     same path in the graph. At a layer the reader clustered with another
//     k, the cluster is the one of that k (an upload's from its reply's
//     `clusters_at`, uploadk.js), and the table is drawn again when a k
//     changes (refreshPanelPaths) or the upload's reply learns more
//     (updatePanelReply);
//   - its LIME explanation (overlay or heat-map), and a button that opens
//     the explanation methods side by side (compare.js);
//   - what a layer sees (featuremaps.js).
//
// Where the numbers come from. An upload: its predict reply. A test image:
// GET …/paths (classes, clusters), GET …/images/{image}/explanation (LIME)
// and, for the probabilities and the doubt, POST …/predict?image=<id>
// without LIME (the server answers for its own copy of the photo as for
// its upload; nothing is sent).
//
// pathRows() is pure (tested under Node); renderImagePanel() draws into a
// container, replacing its earlier panel; a reply that comes back after a
// newer panel was asked for is dropped.

import { api, imageUrl, predict } from './api.js';
import { el, fill, pct, progress, errorBox, draw, doubtPanel, imageLoaded, lowDoubtNote } from './ui.js';
import { classColor } from './palette.js';
import { layerDimensions, clusterMajorities, UPLOAD_LABEL } from './parcats.js';
import { probabilityFigure } from './probabilities.js';
import { describeMistake, describePrediction, quoted } from './describe.js';
import { smallImageText } from './uploadcheck.js';
import { renderCompare, clearCompare } from './compare.js';
import { renderFeatures, clearFeatures } from './featuremaps.js';
import { clusterAt, failedAt } from './uploadk.js';

/** How many test images of each cluster, for each layer dimension of a
 *  paths document: sizes[j][c]. */
export function clusterSizes(paths) {
  return layerDimensions(paths).map((d, j) => {
    const n = [];
    for (const row of paths.images.clusters) {
      const c = row[j];
      if (Number.isInteger(c) && c >= 0) n[c] = (n[c] || 0) + 1;
    }
    return Array.from({ length: n.length }, (_, c) => n[c] || 0);
  });
}

/**
 * The rows of an image's path table, one per layer dimension `dims` of
 * GET …/paths ({label, layer, k, reclustered}):
 * {layer, label, k, reclustered, cluster, mostly (a class name), size,
 * failed, probed, nearest (a class name), agreement (0…1), agrees}, null
 * where not known. The cluster comes from `clusters` (the image's row of the
 * paths document, with `majorities` of clusterMajorities and `sizes` of
 * clusterSizes) when given, else from a predict reply: its `layers` (the
 * analysis's own clusters) or, at a layer the reader clustered with another
 * k, its `clusters_at` for that k, named with `majorities` and `sizes` when
 * given (`failed`: why it is not known there, when the ask failed).
 * Nearest class and agreement come from the reply's `doubt.layers`.
 */
export function pathRows({ dims, classes = [], clusters = null, majorities = null, sizes = null, reply = null }) {
  const byLayer = new Map((reply?.layers || []).map((l) => [l.index, l]));
  const doubtBy = new Map((reply?.doubt?.layers || []).map((l) => [l.index, l]));
  const list = dims && dims.length ? dims
    : (reply?.layers || []).map((l) => ({ label: l.name, layer: l.index, k: null }));
  return list.map((d, j) => {
    const r = {
      layer: d.layer, label: d.label, k: d.k ?? null, reclustered: !!d.reclustered,
      cluster: null, mostly: null, size: null, failed: null, probed: false, nearest: null, agreement: null, agrees: null,
    };
    const name = (c) => {
      r.cluster = c;
      const m = majorities?.[j]?.[c];
      r.mostly = Number.isInteger(m) && m >= 0 ? classes[m] ?? null : null;
      r.size = sizes?.[j]?.[c] ?? null;
    };
    if (clusters) {
      const c = clusters[j];
      if (Number.isInteger(c) && c >= 0) name(c);
    } else if (d.reclustered) {
      const c = clusterAt(reply, d.layer, d.k);
      if (c !== null && c >= 0) name(c);
      else r.failed = failedAt(reply, d.layer, d.k);
    } else if (byLayer.has(d.layer)) {
      const l = byLayer.get(d.layer);
      r.cluster = Number.isInteger(l.cluster) ? l.cluster : null;
      r.mostly = l.cluster_majority ?? null;
      r.size = Number.isInteger(l.cluster_size) ? l.cluster_size : null;
    }
    const dl = doubtBy.get(d.layer);
    if (dl) {
      r.probed = true;
      r.nearest = dl.neighbour_class ?? null;
      r.agreement = typeof dl.agreement === 'number' && Number.isFinite(dl.agreement) ? dl.agreement : null;
      r.agrees = typeof dl.agrees === 'boolean' ? dl.agrees : null;
    }
    return r;
  });
}

/**
 * The doubt with its explanation's sentence about the layers' votes ("4 of
 * 12 probed layers agree with leopard; conv1–pool1 lie nearest the tiger
 * class, ...") replaced by their count: the path table lists them layer by
 * layer. Sentences are told apart by a full stop before a capital or a
 * digit; an explanation without such a sentence is kept as it is.
 */
export function doubtWithoutLayers(doubt) {
  if (!doubt || typeof doubt.explanation !== 'string') return doubt;
  const parts = doubt.explanation.split(/(?<=\.)\s+(?=[A-Z0-9])/);
  const kept = parts.filter((s) => !/\b(agrees?|lies? nearest)\b/.test(s));
  if (!kept.length || kept.length === parts.length) return doubt;
  const layers = Array.isArray(doubt.layers) ? doubt.layers : [];
  const votes = layers.length
    ? `${layers.filter((l) => l.agrees === true).length} of ${layers.length} probed layers vote for the answer (each one in the table below).`
    : '';
  return { ...doubt, explanation: [kept[0], votes, ...kept.slice(1)].filter(Boolean).join(' ') };
}

// --- the page's context ----------------------------------------------------------

// Set once by the page (linked.js): the model, the graph of paths as drawn
// (a function: it changes with the reader's k), and what a cluster of the
// table opens.
const context = { model: null, paths: () => null, openCluster: null, showPaths: null };

/** `model` (GET /api/models/{id}), `paths()` the paths document as the graph
 *  draws it (null before it has come), `openCluster(layer, cluster, k)`
 *  what a cluster in a path table opens (k: the reader's, or null for the
 *  analysis's), `showPaths()` brings the graph into view. */
export function setPanelContext(patch) {
  Object.assign(context, patch);
}

// --- drawing -----------------------------------------------------------------------

// Per container: {token, compare, features, reply (the latest for its path
// table), showPath() (draws that table again)}.
const panels = new Map();

function classDot(name, classes) {
  const i = classes.indexOf(name);
  return i >= 0 ? el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }) : null;
}

/** The path table, or a line saying why there is none. */
function pathTable(rows, { classes, predicted, upload }) {
  if (!rows.length) return el('p', { class: 'small muted' }, 'The graph of paths has not come yet.');
  const probed = rows.some((r) => r.probed);
  const clusterCell = (r) => {
    if (r.cluster === null) {
      if (!r.reclustered) return el('td', { 'data-col': 'cluster', 'data-value': '' }, '–');
      return el('td', { 'data-col': 'cluster', 'data-value': '', 'data-state': r.failed ? 'failed' : 'asking' }, r.failed
        ? el('span', { class: 'muted', title: `strata could not place it among ${r.k} clusters: ${r.failed}` }, `? at k = ${r.k}`)
        : el('span', { class: 'muted', title: `asking the model where it falls among ${r.k} clusters` }, `… at k = ${r.k}`));
    }
    const open = context.openCluster
      ? el('button', { type: 'button', class: 'link-button cluster-link', 'data-layer': r.layer, 'data-cluster': r.cluster,
        'data-k': r.reclustered ? r.k : null,
        title: `see the test images of cluster ${r.cluster} of ${r.label}` }, String(r.cluster))
      : el('span', {}, String(r.cluster));
    return el('td', { 'data-col': 'cluster', 'data-value': r.cluster,
      title: `cluster ${r.cluster} of ${r.label}${r.reclustered ? ` at k = ${r.k}, the k you chose` : ''}` +
        `${r.size !== null ? `: ${r.size} test images` : ''}${r.mostly ? `, mostly ${r.mostly}` : ''}` }, open,
    r.mostly ? el('span', { class: 'cluster-mostly' }, ' ', classDot(r.mostly, classes), r.mostly,
      r.size !== null ? el('span', { class: 'muted cluster-size' }, ` (${r.size})`) : null) : null,
    r.reclustered ? el('span', { class: 'muted cluster-k' }, ` · k = ${r.k}`) : null);
  };
  const table = el('table', { class: 'data-table path-table' },
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, 'layer'),
      el('th', { scope: 'col', title: 'the group k-means puts it in at this layer, the class most of that group\'s test images ' +
        'have, and how many they are' }, 'cluster · mostly'),
      probed ? el('th', { scope: 'col', title: 'the class whose training images lie nearest at this layer: the layer\'s own vote' },
        'nearest class') : null,
      probed ? el('th', { scope: 'col', title: `how strongly this layer backs the answer “${predicted}” (its vote's probability for it)` },
        'agreement') : null)),
    el('tbody', {}, rows.map((r) => el('tr', { 'data-layer': r.layer },
      el('th', { scope: 'row' }, r.label),
      clusterCell(r),
      probed ? el('td', { 'data-col': 'nearest', 'data-value': r.nearest ?? '' },
        r.nearest ? [classDot(r.nearest, classes), r.nearest] : el('span', { class: 'muted', title: 'not probed by the doubt' }, '–')) : null,
      probed ? el('td', { 'data-col': 'agreement', 'data-value': r.agreement ?? '',
        class: r.agrees === null ? null : r.agrees ? 'ok' : 'bad' },
      r.agreement === null ? '–' : `${pct(r.agreement)} ${r.agrees ? '✓' : '✗'}`) : null))));
  table.addEventListener('click', (e) => {
    const b = e.target.closest('button.cluster-link');
    if (b && context.openCluster) {
      context.openCluster(Number(b.dataset.layer), Number(b.dataset.cluster), b.dataset.k ? Number(b.dataset.k) : null);
    }
  });
  const note = probed
    ? `Nearest class and agreement are the doubt's own reading of the layers it probes: ✓ where the layer's vote is the answer, “${predicted}”.`
    : (upload ? 'The doubt reads no layer of this answer.' : '');
  const failed = rows.filter((r) => r.cluster === null && r.failed);
  const failNote = failed.length ? el('p', { class: 'small muted path-failed' },
    `strata could not place your image among the clusters you chose at ${failed.map((r) => `${r.label} (k = ${r.k})`).join(', ')}: ` +
    `${failed[0].failed}. “?” stands for its cluster there, in this table and in the graphs.`) : null;
  return [el('div', { class: 'path-table-wrap' }, table), failNote, note ? el('p', { class: 'small muted' }, note) : null];
}

/** The rows for an image: from the graph's document for a test image
 *  (index `index`), from the reply for an upload; `reply` adds the doubt's layers. */
function rowsFor(index, reply) {
  const doc = context.paths();
  const classes = context.model?.classes || doc?.classes || [];
  const dims = doc ? layerDimensions(doc) : [];
  const majorities = doc ? clusterMajorities(doc) : null;
  const sizes = doc ? clusterSizes(doc) : null;
  if (doc && Number.isInteger(index) && doc.images.clusters[index]) {
    return pathRows({ dims, classes, clusters: doc.images.clusters[index], majorities, sizes, reply });
  }
  return pathRows({ dims, classes, majorities, sizes, reply });
}

/** LIME, overlay or heat-map, into `box` (a figure while loading). */
async function showLime(box, ex, predicted, size, isCurrent) {
  if (!ex || !ex.overlay) {
    fill(box, el('p', { class: 'small muted' }, 'No LIME explanation came with this answer.'));
    return;
  }
  const overlay = el('img', { class: 'lime-overlay', src: ex.overlay, width: size, height: size,
    alt: `LIME overlay: the outlined regions made the model say “${ex.class || predicted}”` });
  const heat = ex.heatmap ? el('img', { class: 'lime-heatmap', src: ex.heatmap, alt: 'LIME heat-map of region weights',
    width: size, height: size, hidden: true }) : null;
  try {
    await imageLoaded(overlay);
  } catch (err) {
    if (isCurrent()) fill(box, errorBox(err, 'The explanation image did not load'));
    return;
  }
  if (!isCurrent()) return;
  const OVERLAY_CAPTION = 'LIME overlay: the outlined regions pushed the model most towards its answer';
  const caption = el('figcaption', {}, OVERLAY_CAPTION);
  const toggle = heat ? el('div', { class: 'segmented', role: 'group', 'aria-label': 'Explanation view' },
    el('button', { type: 'button', 'aria-pressed': 'true', 'data-view': 'overlay' }, 'overlay'),
    el('button', { type: 'button', 'aria-pressed': 'false', 'data-view': 'heatmap' }, 'heat-map')) : null;
  if (toggle) {
    toggle.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-view]');
      if (!b) return;
      const heatOn = b.dataset.view === 'heatmap';
      for (const x of toggle.querySelectorAll('button')) x.setAttribute('aria-pressed', String(x === b));
      overlay.hidden = heatOn;
      heat.hidden = !heatOn;
      caption.textContent = heatOn ? 'heat-map: warm regions pushed towards the answer, cool ones against it'
        : OVERLAY_CAPTION;
    });
  }
  fill(box, el('figure', { class: 'lime-figure' }, overlay, heat, caption), toggle);
}

/** A test image's answer in a sentence (a mistake's comes from describe.js). */
function describeRight(cls, probability, ex) {
  const out = [`${cls.charAt(0).toUpperCase()}${cls.slice(1)} photo, answered right` +
    `${typeof probability === 'number' ? ` (${pct(probability)})` : ''}.`];
  if (ex && typeof ex.score === 'number') {
    out.push(ex.score >= 0.5
      ? `LIME's explanation fits the model well here (R² ${ex.score.toFixed(2)}).`
      : `Read the LIME map with care: it only roughly fits the model here (R² ${ex.score.toFixed(2)}).`);
  }
  return out.join(' ');
}

/**
 * Shows one image in `container`. `source` is
 *   {kind: 'dataset', id, index, true, pred, item} — a test image (`index`
 *     its index in the analysis, `true`/`pred` class names, `item` its entry
 *     of GET …/misclassified when it is a mistake), or
 *   {kind: 'upload', reply, file, url} — the reader's upload (`url` an
 *     object URL of the file owned by the caller, or null).
 * Options: `model` (default: the page's, setPanelContext); `close()` adds a
 * close button that calls it; `compareId` and `barsId` name the compare
 * view and the probability bars (unique on the page); `lowShares` a promise
 * of the model's lowDoubtShares() for the note beside a low doubt. Resolves
 * once the answer's numbers and its LIME explanation are drawn (or said to
 * be missing); what a layer sees comes on its own.
 */
export async function renderImagePanel(container, source,
  { model: m = null, close = null, compareId = null, barsId = null, lowShares = null } = {}) {
  clearImagePanel(container);
  const model = m || context.model;
  const classes = model?.classes || [];
  const state = { token: 0, compare: null, features: null, reply: null, showPath: null };
  panels.set(container, state);
  const my = ++state.token;
  const isCurrent = () => panels.get(container) === state && state.token === my;
  const upload = source.kind === 'upload';
  const reply0 = upload ? source.reply : null;
  const id = upload ? null : source.id;
  const truth = upload ? null : source.true;
  const predicted = upload ? reply0.predicted : source.pred;
  const item = upload ? null : source.item || null;
  const size = upload ? 192 : 160;

  // The photo and its caption.
  const photoSrc = upload ? source.url : imageUrl(model.id, id);
  const photo = photoSrc
    ? el('img', { class: 'upload-photo', src: photoSrc, alt: upload ? `your image ${source.file?.name || ''}` : `the ${truth} photo ${id}`,
      width: size, height: size })
    : el('div', { class: 'lime-placeholder' });
  const caption = upload ? (source.file?.name || 'your image') : id;

  // The answer: a sentence for an upload, the two classes for a test image.
  const probability0 = upload ? reply0.probability : item ? item.probability : null;
  const facts = upload ? null : el('dl', { class: 'panel-facts' });
  const setFacts = (probability) => facts && fill(facts,
    el('div', { 'data-fact': 'true' }, el('dt', {}, 'true class'), el('dd', {}, classDot(truth, classes), truth)),
    el('div', { 'data-fact': 'predicted' }, el('dt', {}, 'the model says'),
      el('dd', { class: truth !== predicted ? 'bad' : 'ok' }, classDot(predicted, classes), predicted,
        typeof probability === 'number' ? el('span', { class: 'muted', 'data-probability': probability }, ` · ${pct(probability)}`) : null)));
  setFacts(probability0);
  const answer = upload ? el('p', { class: 'answer big', 'data-predicted': predicted }, describePrediction({ ...reply0, doubt: null }))
    : null;
  // A test image's bars wait for its probabilities.
  const bars = el('div', { class: 'plot plot-bars', id: barsId, hidden: !upload });
  const doubtBox = el('div', { class: 'panel-doubt' });
  const limeBox = el('div', { class: 'lime-box' });
  const description = upload ? null
    : el('p', { class: 'description' }, item ? describeMistake(item) : describeRight(truth, probability0, null));
  const pathBox = el('div', { class: 'panel-path' });
  const compareBox = el('div', { class: 'compare', id: compareId, hidden: true });
  state.compare = compareBox;
  const featuresBox = el('div', { class: 'panel-features' });
  state.features = featuresBox;

  const compare = el('button', { type: 'button', class: 'action-button compare-button', 'aria-expanded': 'false',
    'aria-controls': compareId }, 'Compare explanation methods');
  compare.addEventListener('click', () => {
    if (compareBox.hidden) {
      compareBox.hidden = false;
      compare.setAttribute('aria-expanded', 'true');
      renderCompare(compareBox, model, upload ? { file: source.file } : { image: source.index ?? id });
    }
    compareBox.scrollIntoView({ block: 'start', behavior: 'smooth' });
  });
  const seePath = el('button', { type: 'button', class: 'link-button see-path' }, upload ? 'see your path in the graph' : 'see its path in the graph');
  seePath.addEventListener('click', () => { if (context.showPaths) context.showPaths(); });
  let closeButton = null;
  if (close) {
    closeButton = el('button', { type: 'button', class: 'close-button', 'aria-label': 'Close' }, '×');
    closeButton.addEventListener('click', () => close());
  }
  const small = upload ? smallImageText(reply0.image, model.input) : null;
  const heading = upload
    ? el('h3', {}, 'Your image', el('span', { class: 'muted' }, ` · ${quoted(predicted)}`))
    : el('h3', {}, `${truth} → ${predicted}`);

  // (An upload's answer carries its class on its sentence, data-predicted.)
  const root = el('article', { class: 'image-panel', 'data-kind': source.kind, 'data-image': upload ? UPLOAD_LABEL : id,
    'data-true': truth ?? '', 'data-predicted': upload ? null : predicted },
  el('div', { class: 'detail-head' }, heading, el('div', { class: 'panel-head-actions' }, seePath, closeButton)),
  el('div', { class: 'panel-grid' },
    el('figure', { class: 'lime-figure panel-photo' }, photo, el('figcaption', {}, caption)),
    el('div', { class: 'panel-answer' },
      small ? el('p', { class: 'banner small-image', role: 'note' }, small) : null,
      answer, facts, bars, doubtBox,
      upload ? el('p', { class: 'small muted path-note' }, 'Your image\'s path is the black line in the graph of paths above, ' +
        'and its position is a black star on the layer scatter below. The table gives the same path layer by layer.') : null),
    limeBox),
  pathBox,
  description,
  el('div', { class: 'detail-actions panel-actions' }, compare,
    el('p', { class: 'small muted' }, 'LIME is one way to explain an answer. See Grad-CAM, Integrated Gradients and ' +
      'occlusion beside it on this photo, each scored by how the model reacts when the pixels it points at are hidden.')),
  compareBox,
  featuresBox);
  fill(container, root);
  container.hidden = false;

  // The path table, drawn again when the page's clusterings change or the reply learns more.
  state.showPath = () => fill(pathBox,
    el('h4', { class: 'panel-sub' }, upload ? 'Your path, layer by layer' : 'Its path, layer by layer'),
    pathTable(rowsFor(upload ? null : source.index, state.reply), { classes, predicted, upload }));
  const showPath = (reply) => {
    state.reply = reply;
    state.showPath();
  };
  const showDoubt = (reply) => {
    if (reply && reply.doubt) {
      fill(doubtBox, doubtPanel(doubtWithoutLayers(reply.doubt), { note: lowDoubtNote(reply.doubt, lowShares) }));
    } else if (reply) {
      fill(doubtBox, el('p', { class: 'small muted doubt-none' }, reply.doubt_error || 'No doubt for this answer.'));
    }
  };

  // What a layer sees: its own requests.
  renderFeatures(featuresBox, model, upload ? { file: source.file } : { image: id }, { photoUrl: photoSrc });

  if (upload) {
    showPath(reply0);
    showDoubt(reply0);
    const drawn = draw(bars, probabilityFigure(reply0, classes), { displayModeBar: false });
    fill(limeBox, el('figure', { class: 'lime-figure' }, progress('loading the explanation…'), el('figcaption', {}, 'LIME')));
    await drawn;
    await showLime(limeBox, reply0.explanation, predicted, size, isCurrent);
    return;
  }

  // A test image: its path at once; LIME and the answer's numbers as they come.
  showPath(null);
  fill(doubtBox, progress('Asking the model how sure it is…'));
  fill(limeBox, el('figure', { class: 'lime-figure' }, progress('LIME is probing the model…'), el('figcaption', {}, 'LIME')));
  const lime = api.explanation(model.id, id).then(async (ex) => {
    if (!isCurrent()) return;
    if (description) description.textContent = item ? describeMistake(item, ex) : describeRight(truth, ex.probability, ex);
    await showLime(limeBox, ex, predicted, size, isCurrent);
  }).catch((err) => {
    if (isCurrent()) fill(limeBox, errorBox(err, 'No explanation'));
  });
  const numbers = predict(model.id, null, { image: id, explain: false })
    .then(async (reply) => {
      if (!isCurrent()) return;
      if (reply.predicted !== predicted) {
        fill(doubtBox, el('p', { class: 'small muted' }, `Asked again, the model answers ${quoted(reply.predicted)} ` +
          'for this photo, not as in the analysis: its doubt is left out.'));
        return;
      }
      setFacts(reply.probability);
      showDoubt(reply);
      showPath(reply);
      bars.hidden = false;
      await draw(bars, probabilityFigure(reply, classes), { displayModeBar: false });
    })
    .catch((err) => {
      if (isCurrent()) fill(doubtBox, errorBox(err, 'Could not ask the model about this photo'));
    });
  await Promise.all([lime, numbers]);
}

/** Draws the path table of every open panel again, from the paths document
 *  as the graph now draws it (after the reader chose another k for a layer). */
export function refreshPanelPaths() {
  for (const state of panels.values()) if (state.showPath) state.showPath();
}

/** The upload shown in `container` has a fuller reply (its clusters at the
 *  reader's k, uploadk.js): its path table is drawn again from it. */
export function updatePanelReply(container, reply) {
  const state = panels.get(container);
  if (!state || !state.showPath) return;
  state.reply = reply;
  state.showPath();
}

/** Stops what `container`'s panel waits for and empties it. */
export function clearImagePanel(container) {
  const state = container && panels.get(container);
  if (!state) return;
  state.token += 1;
  clearCompare(state.compare);
  clearFeatures(state.features);
  panels.delete(container);
  container.replaceChildren();
}
