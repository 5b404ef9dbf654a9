// parcats.js — the parallel-categories figure: every analysed image is one
// line running from its true class, through the cluster it falls in at each
// layer, to the class the model predicted (data: GET /api/models/{id}/paths).
//
// Pure functions from server JSON to Plotly {data, layout}; drawing happens
// in model.js. Lines are coloured by true class; a highlight (a set of image
// indices) keeps those lines' colours and greys the rest; an uploaded image
// is one more line, in its own ink colour, with its own "your image" true
// category, so the reader sees where their photo goes.

import { baseLayout, classColor, MUTED, UPLOAD, INK } from './palette.js';

export const UPLOAD_LABEL = 'your image';

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
 * An uploaded image's path through the analysed layers, from a predict reply
 * (POST /api/models/{id}/predict). Each layer dimension takes the cluster of
 * the reply's layer with the same index; if the reply's layers carry no
 * index matching a dimension, `path.clusters` is used by position when it has
 * one entry per layer dimension. Returns {clusters: [int|null per layer
 * dimension], pred: class index (-1 when unknown)}.
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
 * The Plotly figure. Options:
 *   highlight: a Set of image indices to keep in colour (others grey), or null;
 *   upload: {clusters, pred} from uploadPath(), drawn as one more line, or null.
 * The line colour is a number per line (class index; C for grey; C + 1 for
 * the upload) mapped through a stepped colour scale, so one trace holds all.
 */
export function parcatsFigure(paths, { highlight = null, upload = null } = {}) {
  const { classes, dimensions, images } = paths;
  const C = classes.length;
  const n = images.true.length;
  const GREY = C, MINE = C + 1;
  const majorities = clusterMajorities(paths);

  const colorIndex = images.true.map((t, i) => (highlight && !highlight.has(i) ? GREY : t));
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
    hoverinfo: 'count+probability',
    arrangement: 'freeform',
    bundlecolors: true,
    sortpaths: 'forward',
    labelfont: { size: 13, color: INK },
    tickfont: { size: 11, color: INK },
  };

  // Statistics under each dimension: how well the clusters follow the classes.
  const D = dimensions.length;
  const correct = images.true.filter((t, i) => t === images.pred[i]).length;
  const annotations = dimensions.map((d, i) => {
    let text;
    if (d.kind === 'true') text = `${n} images`;
    else if (d.kind === 'pred') text = `accuracy ${n ? Math.round((100 * correct) / n) : 0} %`;
    else text = `k ${d.k ?? '–'}<br>purity ${fmt(d.purity)}<br>ARI ${fmt(d.ari)}`;
    return {
      x: D > 1 ? i / (D - 1) : 0.5,
      y: 0,
      xref: 'paper',
      yref: 'paper',
      yanchor: 'top',
      yshift: -6,
      // The end dimensions' bars hug the plot's edges with their labels in
      // the margins, so their notes go under those labels.
      xanchor: i === 0 ? 'right' : i === D - 1 ? 'left' : 'center',
      xshift: i === 0 ? 20 : i === D - 1 ? -20 : 0,
      align: i === 0 ? 'right' : i === D - 1 ? 'left' : 'center',
      showarrow: false,
      text,
      font: { size: 11, color: '#5f6b7a' },
    };
  });

  // The first dimension's labels sit left of its bars, the last one's right
  // of them: leave room for the longest (about 7 px a character).
  const longest = Math.max(...classes.map((c) => c.length), upload ? UPLOAD_LABEL.length : 0);
  const layout = baseLayout({
    margin: { l: Math.min(120, 12 + 7 * longest), r: Math.min(120, Math.max(84, 12 + 7 * longest)), t: 36, b: 64 },
    height: 520,
    annotations,
  });
  return { data: [trace], layout };
}
