// pathsview.js — the model page's graph of paths (GET …/paths) and the
// class buttons above it. Owns what the graph shows:
//
//   - the clusterings: a layer the reader clustered with another k (the
//     layer panel) shows that clustering (withClustering);
//   - one highlight at a time: a class (its button), the images that pass
//     where the reader clicked in the graph, or what the page's linked views
//     opened (an image's own path, a gallery's images: highlightImages);
//     the other lines are grey;
//   - the upload's path, one black line; with no highlight every test
//     image's line is grey meanwhile, so that it can be found. A new upload
//     ends the highlight. At a layer the reader clustered with another k,
//     the line goes through the cluster the page asked predict for (its
//     `clusters_at`), "?" until it is known or when it cannot be;
//   - a click (a tap, Enter) on a segment or a ribbon of the graph
//     highlights the images that pass there; on one cluster of a layer it
//     also opens that cluster's gallery.
//
// The graph itself is drawn by pathsgraph.js (SVG, the axes in a fixed
// order). The note above the graph says, in one place, what is highlighted
// and why lines are grey. Changes of the class highlight made by the reader are
// reported (`changed`) so that the page keeps them in the URL; a click on a
// layer's cluster is reported too (`clusterClicked`), for its gallery.

import { el, fill } from './ui.js';
import { classColor } from './palette.js';
import { uploadPath, indicesOfClass, withClustering, UPLOAD_LABEL } from './parcats.js';
import { pathsFigure, pathsMinWidth, drawPathsGraph, graphName } from './pathsgraph.js';

let base = null; // the paths document as served
let paths = null; // the same with the reader's clusterings
const clusterings = new Map(); // layer index -> scatter reply of the reader's k
let highlight = null; // {set: Set of image indices, label, cls: class name | null}
let reply = null; // the latest upload's predict reply
let onChanged = () => {};
let onCluster = () => {};

const $ = (id) => document.getElementById(id);

/** Draws the graph of `doc` (GET …/paths) and its class buttons.
 *  `changed({cls})` is called when the reader highlights a class or ends a
 *  class highlight (cls null); `cls` is the class to start highlighted;
 *  `clusterClicked({layer, cluster, k, reclustered})` when the reader
 *  clicks one cluster of a layer's bar. */
export function initPaths({ doc, changed, cls = null, clusterClicked = null }) {
  base = doc;
  paths = [...clusterings.values()].reduce((d, s) => withClustering(d, s), base);
  onChanged = changed || onChanged;
  onCluster = clusterClicked || onCluster;
  classFilter();
  highlightClass(cls);
}

/** A layer's clustering for the reader's k (a scatter reply), or null to go
 *  back to the analysis's own. A highlight of the images that pass through
 *  clusters the reader clicked ends: it named the clusters of before. */
export function setClustering(layer, scatter) {
  if (scatter) clusterings.set(layer, scatter);
  else clusterings.delete(layer);
  if (!base) return;
  paths = [...clusterings.values()].reduce((doc, s) => withClustering(doc, s), base);
  if (highlight && highlight.cls === null && !highlight.kept) highlight = null;
  redraw();
}

/** The paths document as the graph draws it (with the reader's
 *  clusterings), or null before it has come. */
export function pathsDocument() {
  return paths;
}

/** The latest upload's reply (null: none). A new upload ends the highlight:
 *  its one line is found only among grey ones. Returns whether a class
 *  highlight ended (for the URL). */
export function setUpload(r) {
  const ended = r !== null && highlight !== null && highlight.cls !== null;
  reply = r;
  if (r !== null) highlight = null;
  if (paths) redraw();
  return ended;
}

/** The same upload's reply, knowing more (its clusters at the reader's k,
 *  uploadk.js): its line is drawn again, the highlight kept. */
export function updateUpload(r) {
  if (reply === null || r === null) return;
  reply = r;
  if (paths) drawGraph();
}

/** Highlights the images of class `cls` (a name; null: none), as its button
 *  does, without reporting it. `label` says why, for the note. */
export function highlightClass(cls, label = '') {
  if (!base) return;
  const c = cls === null ? -1 : base.classes.indexOf(cls);
  if (c < 0) setHighlight(null);
  else setHighlight({ set: indicesOfClass(paths, c), label: label || `true class ${cls}`, cls });
}

/** Highlights the images at `indices` (a Set of indices into the paths
 *  document; empty or null: none) for the page's linked views, without
 *  reporting it. `label` says what they are, for the note. The highlight
 *  names images, not clusters, so a new k for a layer keeps it. */
export function highlightImages(indices, label) {
  if (!base) return;
  setHighlight(indices && indices.size ? { set: new Set(indices), label, cls: null, kept: true } : null);
}

function setHighlight(h) {
  highlight = h && h.set.size ? h : null;
  redraw();
}

/** The note above the graph: what is highlighted, where the upload is, why lines are grey. */
function describe() {
  const note = $('highlight-note');
  const n = paths.images.true.length;
  const mine = reply ? `Your image's path is the black line, starting at “${UPLOAD_LABEL}” at the bottom left. ` : '';
  if (highlight) {
    const reset = el('button', { type: 'button', class: 'link-button' }, 'show all paths');
    reset.addEventListener('click', () => {
      const was = highlight && highlight.cls;
      setHighlight(null);
      if (was) onChanged({ cls: null });
    });
    fill(note, `Highlighting ${highlight.set.size} of ${n} images: ${highlight.label}. `, mine, reset);
  } else {
    fill(note, reply ? `${mine}It is one image among ${n}, so its band is thin: the test images' lines are grey ` +
      'while it is shown. Pick a class above to colour that class\'s lines again.' : '');
  }
  for (const b of $('class-filter').querySelectorAll('button[data-class]')) {
    b.setAttribute('aria-pressed', String(highlight !== null && highlight.cls === b.dataset.class));
  }
}

function redraw() {
  describe();
  drawGraph();
}

function drawGraph() {
  const node = $('parcats');
  const upload = reply ? uploadPath(paths, reply) : null;
  const fig = pathsFigure(paths, { highlight: highlight && highlight.set, upload });
  // Wide graphs scroll sideways on small screens rather than squeeze their
  // bars (and the notes under them) together.
  node.style.minWidth = `${Math.max(560, pathsMinWidth(fig))}px`;
  node.dataset.lines = String(fig.lines);
  node.dataset.upload = upload ? '1' : '0';
  drawPathsGraph(node, fig, {
    click: onGraphClick,
    label: `${graphName(fig)} The table under it, "Show as table", lists the same paths.`,
  });
}

/** A click on the graph: {constraints: {dimension index: category value},
 *  lines: Set of the lines through there} (pathsgraph.js). */
function onGraphClick({ constraints, lines }) {
  const n = paths.images.true.length;
  const set = new Set([...lines].filter((i) => i < n));
  if (!set.size) return;
  const picked = Object.entries(constraints);
  const parts = picked.map(([d, v]) => {
    const dim = paths.dimensions[Number(d)];
    if (!dim) return '';
    return dim.kind === 'layer' ? `cluster ${v} of ${dim.label}` : `${dim.label} ${v}`;
  }).filter(Boolean);
  const was = highlight && highlight.cls;
  setHighlight({ set, label: parts.join(', ') || 'the clicked paths', cls: null });
  if (was) onChanged({ cls: null });
  // One cluster of one layer: the page opens its gallery.
  const dim = picked.length === 1 ? paths.dimensions[Number(picked[0][0])] : null;
  const c = dim ? picked[0][1] : null;
  if (dim && dim.kind === 'layer' && Number.isInteger(c) && c >= 0) {
    onCluster({ layer: dim.layer, cluster: c, k: dim.k, reclustered: !!dim.reclustered });
  }
}

function classFilter() {
  const bar = $('class-filter');
  fill(bar, el('span', { class: 'toolbar-label' }, 'Highlight'),
    base.classes.map((c, i) => el('button', { type: 'button', class: 'chip-button', 'data-class': c, 'aria-pressed': 'false' },
      el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }), c)));
  bar.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-class]');
    if (!b) return;
    const cls = b.getAttribute('aria-pressed') === 'true' ? null : b.dataset.class;
    highlightClass(cls);
    onChanged({ cls });
  });
}
