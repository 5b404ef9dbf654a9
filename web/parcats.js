// parcats.js — the parallel-categories figure: every analysed image is one
// line running from its true class, through the cluster it falls in at each
// layer, to the class the model predicted (data: GET /api/models/{id}/paths).
//
// Pure functions from server JSON to Plotly {data, layout}; drawing happens
// in model.js. Lines are coloured by true class; a highlight (a set of image
// indices) keeps those lines' colours and greys the rest; an uploaded image
// is one more line, in its own ink colour, with its own "your image" true
// category, so the reader sees where their photo goes. Being one image among
// hundreds its band is thin, so while it is shown (and nothing is
// highlighted) the test images' lines are grey and only it is in ink.
//
// Plotly insets the bars of a parcats trace: inside the trace's domain (the
// plot area here) the first bar starts PAD px from the left, the last ends PAD
// px from the right, and each is DIM_WIDTH px wide (plotly.js
// src/traces/parcats/parcats.js, createDimensionViewModel: x = PAD +
// i · (width − 2·PAD − DIM_WIDTH) / (D − 1)). The notes under the bars are
// placed with that rule, so they stay under their bars at any width, and in
// the reader's order of the bars when they have dragged one elsewhere.
//
// The reader may cluster a layer with another k (the layer panel): that
// layer's bar then shows the clustering of the scatter reply for that k
// (withClustering), whose images are the same as the paths document's.

import { baseLayout, classColor, MUTED, UPLOAD, INK } from './palette.js';
import { counted } from './words.js';
import { clusterAt } from './uploadk.js';

export const UPLOAD_LABEL = 'your image';

/** Plotly's parcats geometry, in px (see the file header). */
export const PARCATS_PAD = 40;
export const PARCATS_DIM_WIDTH = 16;
/** The narrowest gap between two bars' centres that keeps the notes under
 *  them ("purity 0.37" at 10 px, 58 px wide with its padding) from touching. */
export const PARCATS_MIN_STEP = 64;

/** Centre (px from the plot area's left edge) of each of D bars in a plot
 *  area `width` px wide. */
export function parcatsBarCentres(width, D) {
  const step = D > 1 ? (width - 2 * PARCATS_PAD - PARCATS_DIM_WIDTH) / (D - 1) : 0;
  return Array.from({ length: D }, (_, i) => PARCATS_PAD + PARCATS_DIM_WIDTH / 2 + i * step);
}

/**
 * Where to put a note centred under bar i of D, as a Plotly annotation's
 * paper x and pixel xshift. Bar i's centre is c + i·(w − 2c)/(D − 1) px with
 * c = PAD + DIM_WIDTH/2 and w the plot area's width, which is
 * (i/(D−1))·w + c·(1 − 2i/(D−1)): a paper fraction plus a fixed shift, right
 * for every w, so nothing needs redoing when the plot is resized.
 */
export function noteAnchor(i, D) {
  const c = PARCATS_PAD + PARCATS_DIM_WIDTH / 2;
  if (D <= 1) return { x: 0, xshift: c };
  const f = i / (D - 1);
  return { x: f, xshift: c * (1 - 2 * f) };
}

/** The width (px) below which the figure should scroll sideways rather than
 *  squeeze: the layout's margins, Plotly's insets and, between bars,
 *  PARCATS_MIN_STEP or more when two neighbouring layer names (centred over
 *  their bars, 13 px, about 7 px a character) need more room, as the long
 *  names of an imported model's layers do ("blocks.0/Relu_1").
 *  `fig` is parcatsFigure()'s result. */
export function parcatsMinWidth(fig) {
  const dims = fig.data[0].dimensions;
  const D = dims.length;
  const { l, r } = fig.layout.margin;
  let step = PARCATS_MIN_STEP;
  for (let i = 1; i < D; i++) {
    const chars = (String(dims[i - 1].label).length + String(dims[i].label).length) / 2;
    step = Math.max(step, Math.ceil(7 * chars + 10));
  }
  return Math.ceil(l + r + 2 * PARCATS_PAD + PARCATS_DIM_WIDTH + step * Math.max(0, D - 1));
}

function fmt(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** The layer dimensions of a paths document, in order. */
export function layerDimensions(paths) {
  return paths.dimensions.filter((d) => d.kind === 'layer');
}

/** Indices of the images whose true class is `cls` (a class index): the
 *  highlight that clicking a class asks for. */
export function indicesOfClass(paths, cls) {
  const out = new Set();
  paths.images.true.forEach((t, i) => { if (t === cls) out.add(i); });
  return out;
}

/**
 * The paths document with one layer clustered as a scatter reply (GET
 * …/layers/{layer}/scatter?k=N) has it: that layer's dimension takes the
 * reply's k, purity, ARI and NMI and is marked `reclustered`, each image
 * its cluster in the reply (matched by image id), and the images' path
 * numbers are counted again. A reply for a layer the document does not
 * show changes nothing. Returns a new document; `paths` is left as it was.
 */
export function withClustering(paths, scatter) {
  const layer = scatter.layer && scatter.layer.index;
  const j = layerDimensions(paths).findIndex((d) => d.layer === layer);
  if (j < 0) return paths;
  const ids = paths.images.id || [];
  const byId = new Map((scatter.points.id || []).map((id, i) => [id, scatter.points.cluster[i]]));
  const sameOrder = ids.length === 0 && scatter.points.cluster.length === paths.images.true.length;
  const clusters = paths.images.clusters.map((row, i) => {
    const r = row.slice();
    const c = sameOrder ? scatter.points.cluster[i] : byId.get(ids[i]);
    r[j] = Number.isInteger(c) ? c : null;
    return r;
  });
  let layerJ = -1;
  const dimensions = paths.dimensions.map((d) => {
    if (d.kind !== 'layer' || ++layerJ !== j) return d;
    return { ...d, k: scatter.k, purity: scatter.purity, ari: scatter.ari, nmi: scatter.nmi, reclustered: true };
  });
  // Path numbers by first appearance, as the server numbers them.
  const seen = new Map();
  const path = paths.images.true.map((t, i) => {
    const key = `${t}|${clusters[i].join(',')}|${paths.images.pred[i]}`;
    if (!seen.has(key)) seen.set(key, seen.size);
    return seen.get(key);
  });
  return { ...paths, dimensions, images: { ...paths.images, clusters, path }, distinct_paths: seen.size };
}

/**
 * An uploaded image's path through the analysed layers, from a predict reply
 * (POST /api/models/{id}/predict). Each layer dimension takes the cluster of
 * the reply's layer with the same index; if the reply's layers carry no
 * index matching a dimension, `path.clusters` is used by position when it has
 * one entry per layer dimension. A dimension the reader clustered with
 * another k (`reclustered`, see withClustering) takes the reply's
 * `clusters_at` for that layer and k (uploadk.js), null when it has none
 * (the reply's own clusters are the analysis's). Returns {clusters:
 * [int|null per layer dimension], pred: class index (-1 when unknown)}.
 */
export function uploadPath(paths, reply) {
  const dims = layerDimensions(paths);
  const byIndex = new Map();
  for (const l of reply.layers || []) {
    if (typeof l.index === 'number') byIndex.set(l.index, l.cluster);
  }
  const positional = reply.path && Array.isArray(reply.path.clusters) &&
    reply.path.clusters.length === dims.length ? reply.path.clusters : null;
  const clusters = dims.map((d, j) => {
    if (d.reclustered) return clusterAt(reply, d.layer, d.k);
    if (byIndex.has(d.layer)) return byIndex.get(d.layer);
    return positional ? positional[j] : null;
  });
  let pred = reply.path && typeof reply.path.pred === 'number' ? reply.path.pred : -1;
  if (pred < 0 && typeof reply.predicted === 'string') pred = paths.classes.indexOf(reply.predicted);
  return { clusters, pred };
}

/** For each layer dimension, the majority true class of each cluster (or -1
 *  for an empty cluster): used to name clusters after what they gather. */
export function clusterMajorities(paths) {
  const dims = layerDimensions(paths);
  const C = paths.classes.length;
  return dims.map((d, j) => {
    let k = d.k || 0;
    for (const c of paths.images.clusters) if (c[j] + 1 > k) k = c[j] + 1;
    const counts = Array.from({ length: k }, () => new Array(C).fill(0));
    paths.images.clusters.forEach((c, i) => {
      if (Number.isInteger(c[j]) && c[j] >= 0) counts[c[j]][paths.images.true[i]] += 1;
    });
    return counts.map((row) => {
      let best = -1, bestN = 0;
      row.forEach((n, cls) => { if (n > bestN) { best = cls; bestN = n; } });
      return best;
    });
  });
}

/**
 * A short note on which of the model's layers the graph shows and why the
 * others are left out, and how many the doubt score probes. `modelLayers`:
 * GET /api/models/{id}'s layers ({index, name, type}); `dims`: the layer
 * dimensions of /paths; `doubtLayers`: the detail's doubt.layers (a count)
 * or null. Returns '' when every layer is shown and nothing is probed.
 */
export function layersNote(modelLayers, dims, doubtLayers = null) {
  const shown = new Set(dims.map((d) => d.layer));
  const left = modelLayers.filter((l) => !shown.has(l.index));
  const out = [];
  if (left.length) {
    const names = left.map((l) => l.name);
    const list = names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : names[0];
    const one = left.length === 1;
    // Dropout and flatten hand their input on unchanged (flatten only lays it out as one row).
    const passThrough = left.every((l) => l.type === 'dropout' || l.type === 'flatten');
    out.push(`The graph shows ${dims.length} of the model's ${modelLayers.length} layers: ${list} ${one ? 'is' : 'are'} left out` +
      (passThrough
        ? `, because ${one ? 'it hands its' : 'they hand their'} input on unchanged when the model answers, so ` +
          `${one ? 'its' : 'their'} clusters would repeat those of the layer before.`
        : '.'));
  }
  if (typeof doubtLayers === 'number' && doubtLayers > 0) {
    const last = dims.length ? modelLayers.find((l) => l.index === dims[dims.length - 1].layer) : null;
    out.push(doubtLayers === dims.length - 1 && last
      ? `The doubt score probes ${doubtLayers} of them: all but the last, ${last.name}, whose class scores it reads separately.`
      : `The doubt score probes ${doubtLayers} of them.`);
  }
  return out.join(' ');
}

/**
 * The Plotly figure. Options:
 *   highlight: a Set of image indices to keep in colour (others grey), or null;
 *   order: where each dimension is drawn (Plotly's displayindex, one per
 *     dimension of the document: a permutation of 0 … D − 1), or null for
 *     the document's order; the notes follow their bars;
 *   upload: {clusters, pred} from uploadPath(), drawn as one more line, or null;
 *     without a highlight, every other line is then grey, so the one ink line
 *     stands out (the counts stay the true ones: one per image).
 * The line colour is a number per line (class index; C for grey; C + 1 for
 * the upload) mapped through a stepped colour scale, so one trace holds all.
 */
export function parcatsFigure(paths, { highlight = null, upload = null, order = null } = {}) {
  const { classes, dimensions, images } = paths;
  const C = classes.length;
  const n = images.true.length;
  const GREY = C, MINE = C + 1;
  const majorities = clusterMajorities(paths);

  const grey = (i) => (highlight ? !highlight.has(i) : upload !== null);
  const colorIndex = images.true.map((t, i) => (grey(i) ? GREY : t));
  if (upload) colorIndex.push(MINE);

  let layerJ = 0;
  const dims = dimensions.map((d) => {
    if (d.kind === 'true') {
      const values = images.true.map((t) => classes[t]);
      const categoryarray = classes.slice();
      if (upload) { values.push(UPLOAD_LABEL); categoryarray.push(UPLOAD_LABEL); }
      return { label: d.label, values, categoryarray, categoryorder: 'array' };
    }
    if (d.kind === 'pred') {
      const values = images.pred.map((p) => classes[p]);
      if (upload) values.push(upload.pred >= 0 ? classes[upload.pred] : '?');
      const categoryarray = classes.slice();
      if (upload && upload.pred < 0) categoryarray.push('?');
      return { label: d.label, values, categoryarray, categoryorder: 'array' };
    }
    const j = layerJ++;
    const values = images.clusters.map((c) => c[j]);
    const k = majorities[j].length;
    const categoryarray = Array.from({ length: k }, (_, c) => c);
    // A cluster is named by its number and the class most of its images belong to.
    const ticktext = categoryarray.map((c) => {
      const m = majorities[j][c];
      return m >= 0 ? `${c} · ${classes[m]}` : `${c}`;
    });
    if (upload) {
      const c = upload.clusters[j];
      values.push(c === null || c === undefined ? -1 : c);
      if (c === null || c === undefined) { categoryarray.push(-1); ticktext.push('?'); }
    }
    return { label: d.label, values, categoryarray, categoryorder: 'array', ticktext };
  });

  // Stepped colour scale: value v in [0, C + 1] maps exactly onto its colour.
  const stops = [];
  for (let v = 0; v <= MINE; v++) {
    const col = v < C ? classColor(v) : v === GREY ? MUTED : UPLOAD;
    stops.push([v / MINE, col]);
  }

  const trace = {
    type: 'parcats',
    dimensions: dims,
    counts: colorIndex.map(() => 1),
    line: {
      color: colorIndex,
      colorscale: stops,
      cmin: 0,
      cmax: MINE,
      shape: 'hspline',
      showscale: false,
    },
    hoveron: 'category',
    hovertemplate: `%{category}<br>%{count} of ${counted(colorIndex.length, 'image')} (%{probability:.0%})<extra></extra>`,
    arrangement: 'freeform',
    bundlecolors: true,
    sortpaths: 'forward',
    labelfont: { size: 13, color: INK },
    tickfont: { size: 11, color: INK },
  };

  // Statistics under each dimension: how well the clusters follow the classes.
  const D = dimensions.length;
  const place = Array.isArray(order) && order.length === D &&
    [...order].sort((a, b) => a - b).every((v, i) => v === i) ? order : null;
  if (place) dims.forEach((d, i) => { d.displayindex = place[i]; });
  const correct = images.true.filter((t, i) => t === images.pred[i]).length;
  const annotations = dimensions.map((d, i) => {
    let text;
    // Two short lines at the ends, like the layers' three: no wider than them.
    if (d.kind === 'true') text = counted(n, 'image').replace(' ', '<br>');
    else if (d.kind === 'pred') text = `accuracy<br>${n ? Math.round((100 * correct) / n) : 0} %`;
    else text = `k ${d.k ?? '–'}<br>purity ${fmt(d.purity)}<br>ARI ${fmt(d.ari)}`;
    const { x, xshift } = noteAnchor(place ? place[i] : i, D);
    return {
      x,
      xshift,
      y: 0,
      xref: 'paper',
      yref: 'paper',
      yanchor: 'top',
      yshift: -6,
      xanchor: 'center',
      align: 'center',
      showarrow: false,
      text,
      font: { size: 10, color: '#5f6b7a' },
    };
  });

  // The first dimension's labels sit left of its bars, the last one's right
  // of them, about 6.5 px a character (11 px type) and 5 px off the bar;
  // Plotly's 40 px inset holds most of that, the margin takes the rest.
  const labelRoom = (chars) => Math.min(120, Math.max(12, Math.round(6.5 * chars + 5 + 12 - PARCATS_PAD)));
  const longest = (list) => Math.max(0, ...list.map((c) => String(c).length));
  const layout = baseLayout({
    margin: {
      l: labelRoom(longest(upload ? [...classes, UPLOAD_LABEL] : classes)),
      r: labelRoom(longest(upload && upload.pred < 0 ? [...classes, '?'] : classes)),
      t: 36,
      b: 64,
    },
    height: 520,
    annotations,
  });
  return { data: [trace], layout };
}
