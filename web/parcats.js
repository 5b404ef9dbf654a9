// parcats.js — the paths document (GET /api/models/{id}/paths) and what is
// read from it: every analysed image is one line running from its true
// class, through the cluster it falls in at each layer, to the class the
// model predicted. Pure functions, used by the graph of paths
// (pathsgraph.js draws it; pathsview.js keeps its state), the linked views
// and the image panel: the layer dimensions, the images of a class, each
// cluster's majority class, an uploaded image's path from a predict reply,
// and the note on which layers the graph leaves out.
//
// The reader may cluster a layer with another k (the layer panel): that
// layer's bar then shows the clustering of the scatter reply for that k
// (withClustering), whose images are the same as the paths document's.

import { clusterAt } from './uploadk.js';

export const UPLOAD_LABEL = 'your image';

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
