// charts.test.mjs — the dashboard's pure chart functions on small hand-written
// inputs shaped as docs/api.md describes them. Run: node --test tests/web/
// Every expected value below is worked out by hand from the fixture, not
// produced by the code under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { uploadPath, indicesOfClass, clusterMajorities, UPLOAD_LABEL } from '../../web/parcats.js';
import { pathsFigure, colorOf } from '../../web/pathsgraph.js';
import { scatterFigure, imagePointCount, MARK_NAME } from '../../web/scatter.js';
import { elbowFigure } from '../../web/elbow.js';
import { confusionFigure } from '../../web/confusion.js';
import { curvesFigure } from '../../web/curves.js';
import { probabilityFigure } from '../../web/probabilities.js';
import {
  doubtHistogramFigure, aurocRows, shares, shareAtLeast, shareBelow, lowDoubtShares, lowDoubtText, errorsNote,
  IN_COLOR, OUT_COLOR,
} from '../../web/doubtchart.js';
import { CLASS_COLORS, MUTED, UPLOAD, CENTER, clusterColors, hexToLab, colorDistance } from '../../web/palette.js';

// --- fixtures ------------------------------------------------------------------

// GET /api/models/{id}/paths: 3 classes, 6 images, two analysed layers
// (indices 0 and 3; the flatten in between is left out, as the server does).
const PATHS = {
  classes: ['cheetah', 'jaguar', 'tiger'],
  dimensions: [
    { label: 'true class', kind: 'true' },
    { label: 'conv1', kind: 'layer', layer: 0, k: 2, purity: 0.5, ari: 0.051, nmi: 0.1 },
    { label: 'dense1', kind: 'layer', layer: 3, k: 3, purity: 0.8333, ari: 0.6, nmi: 0.7 },
    { label: 'predicted', kind: 'pred' },
  ],
  images: {
    id: ['cheetah/0000.jpg', 'cheetah/0001.jpg', 'jaguar/0000.jpg', 'jaguar/0001.jpg', 'tiger/0000.jpg', 'tiger/0001.jpg'],
    true: [0, 0, 1, 1, 2, 2],
    pred: [0, 1, 1, 1, 2, 0],
    clusters: [[0, 0], [0, 0], [1, 1], [0, 1], [1, 2], [1, 2]],
  },
  distinct_paths: 5,
};

// POST /api/models/{id}/predict (fields this dashboard reads).
const REPLY = {
  model: 'felines',
  predicted: 'jaguar',
  probability: 0.82,
  probabilities: [
    { class: 'cheetah', probability: 0.08 },
    { class: 'jaguar', probability: 0.82 },
    { class: 'tiger', probability: 0.10 },
  ],
  layers: [
    { index: 0, name: 'conv1', cluster: 1, distance: 3.1, x: 0.4, y: -1.2, cluster_majority: 'jaguar' },
    { index: 3, name: 'dense1', cluster: 2, distance: 1.0, x: 2.5, y: 0.5, cluster_majority: 'tiger' },
  ],
  path: { clusters: [1, 2], pred: 1 },
  doubt: { score: 0.12, level: 'low', explanation: 'usual path' },
};

// GET …/layers/{layer}/scatter: 5 points, k = 2.
const SCATTER = {
  layer: { index: 3, name: 'dense1', type: 'dense', output_shape: [128], feature_size: 128, same_as: null },
  k: 2, k_auto: 2, explained_variance_ratio: [0.31, 0.12],
  silhouette: 0.21, purity: 0.8, ari: 0.33, nmi: 0.41,
  classes: ['cheetah', 'jaguar', 'tiger'],
  points: {
    id: ['cheetah/0000.jpg', 'cheetah/0001.jpg', 'jaguar/0000.jpg', 'tiger/0000.jpg', 'tiger/0001.jpg'],
    x: [1, 2, 3, 4, 5], y: [10, 20, 30, 40, 50],
    true: [0, 0, 1, 2, 2], pred: [0, 1, 1, 2, 2], cluster: [1, 1, 0, 0, 1],
  },
  centers: { x: [3.5, 2.667], y: [35, 26.67], size: [2, 3], majority: [1, 0] },
};

// GET …/layers/{layer}/elbow
const ELBOW = {
  layer: { index: 3, name: 'dense1' },
  k_values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  inertia: [100, 60, 40, 35, 31, 28, 26, 25, 24, 23],
  k: 3, k_auto: 3, silhouette: 0.21,
};

// --- the graph of paths (its geometry: pathsgraph.test.mjs) -------------------

test('paths figure: one dimension per document dimension, labels kept, values per image', () => {
  const fig = pathsFigure(PATHS);
  assert.deepEqual(fig.dimensions.map((d) => d.label), ['true class', 'conv1', 'dense1', 'predicted']);
  assert.equal(fig.n, 6);
  assert.equal(fig.lines, 6);
  for (const d of fig.dimensions) assert.equal(d.values.length, 6);
  assert.deepEqual(fig.dimensions[0].values, ['cheetah', 'cheetah', 'jaguar', 'jaguar', 'tiger', 'tiger']);
  assert.deepEqual(fig.dimensions[1].values, [0, 0, 1, 0, 1, 1]);
  assert.deepEqual(fig.dimensions[2].values, [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(fig.dimensions[3].values, ['cheetah', 'jaguar', 'jaguar', 'jaguar', 'tiger', 'cheetah']);
  // Categories: the classes for true/pred, k clusters per layer, with their counts.
  assert.deepEqual(fig.dimensions[0].categoryarray, ['cheetah', 'jaguar', 'tiger']);
  assert.deepEqual(fig.dimensions[1].categoryarray, [0, 1]);
  assert.deepEqual(fig.dimensions[2].categoryarray, [0, 1, 2]);
  assert.deepEqual(fig.dimensions.map((d) => d.counts), [[2, 2, 2], [3, 3], [2, 2, 2], [2, 3, 1]]);
  assert.deepEqual(fig.dimensions.map((d) => d.layer), [undefined, 0, 3, undefined]);
});

test('paths figure: clusters are named after their majority class', () => {
  // conv1: cluster 0 = {cheetah, cheetah, jaguar} -> cheetah; cluster 1 = {jaguar, tiger, tiger} -> tiger.
  // dense1: 0 = {cheetah ×2}, 1 = {jaguar ×2}, 2 = {tiger ×2}.
  assert.deepEqual(clusterMajorities(PATHS), [[0, 2], [0, 1, 2]]);
  const fig = pathsFigure(PATHS);
  assert.deepEqual(fig.dimensions[1].ticktext, ['0 · cheetah', '1 · tiger']);
  assert.deepEqual(fig.dimensions[2].ticktext, ['0 · cheetah', '1 · jaguar', '2 · tiger']);
  assert.deepEqual(fig.dimensions[1].majority, [0, 2]);
});

test('paths figure: lines coloured by true class; C for grey, C + 1 for the upload', () => {
  const fig = pathsFigure(PATHS);
  assert.deepEqual(fig.colors, [0, 0, 1, 1, 2, 2]);
  assert.deepEqual([fig.grey, fig.mine], [3, 4]);
  assert.deepEqual([0, 1, 2, 3, 4].map((c) => colorOf(fig, c)), [...CLASS_COLORS.slice(0, 3), MUTED, UPLOAD]);
});

test('paths figure: purity and ARI under each layer dimension, the count and the accuracy at the ends', () => {
  const notes = pathsFigure(PATHS).dimensions.map((d) => d.note);
  assert.deepEqual(notes[0], ['6', 'images']);
  assert.deepEqual(notes[1], ['k 2', 'purity 0.50', 'ARI 0.05']);
  assert.deepEqual(notes[2], ['k 3', 'purity 0.83', 'ARI 0.60']);
  // 4 of 6 right: images 0, 2, 3, 4.
  assert.deepEqual(notes[3], ['accuracy', '67 %']);
});

test('paths figure: a highlight keeps its lines coloured and greys the others', () => {
  const jaguars = indicesOfClass(PATHS, 1);
  assert.deepEqual([...jaguars], [2, 3]);
  assert.deepEqual(pathsFigure(PATHS, { highlight: jaguars }).colors, [3, 3, 1, 1, 3, 3]);
});

test('paths figure: an upload is one more line in ink, the others grey so that it stands out', () => {
  const up = uploadPath(PATHS, REPLY);
  assert.deepEqual(up, { clusters: [1, 2], pred: 1 });
  const fig = pathsFigure(PATHS, { upload: up });
  assert.equal(fig.lines, 7);
  assert.equal(fig.n, 6);
  assert.equal(fig.upload, true);
  for (const d of fig.dimensions) assert.equal(d.values.length, 7);
  assert.equal(fig.dimensions[0].values[6], UPLOAD_LABEL);
  assert.ok(fig.dimensions[0].categoryarray.includes(UPLOAD_LABEL));
  assert.equal(fig.dimensions[1].values[6], 1);
  assert.equal(fig.dimensions[2].values[6], 2);
  assert.equal(fig.dimensions[3].values[6], 'jaguar');
  // Its colour index is C + 1 = 4: the UPLOAD ink.
  assert.equal(fig.colors[6], 4);
  assert.equal(colorOf(fig, fig.colors[6]), UPLOAD);
  // The dataset lines turn grey (index C = 3); each still counts one image.
  assert.deepEqual(fig.colors.slice(0, 6), [3, 3, 3, 3, 3, 3]);
  assert.deepEqual(fig.dimensions[0].counts, [2, 2, 2, 1]);
  // With a highlight too, the upload stays in its own colour.
  assert.deepEqual(pathsFigure(PATHS, { upload: up, highlight: new Set([0]) }).colors, [0, 3, 3, 3, 3, 3, 4]);
});

test('uploadPath: layers matched by index, else path.clusters by position, pred from the name', () => {
  // Reply whose layers list has the flatten (index 2) too and is out of order.
  const byIndex = uploadPath(PATHS, {
    predicted: 'tiger',
    layers: [{ index: 3, cluster: 0 }, { index: 2, cluster: 9 }, { index: 0, cluster: 1 }],
  });
  assert.deepEqual(byIndex, { clusters: [1, 0], pred: 2 });
  const positional = uploadPath(PATHS, { predicted: 'cheetah', layers: [], path: { clusters: [0, 2] } });
  assert.deepEqual(positional, { clusters: [0, 2], pred: 0 });
  const missing = uploadPath(PATHS, { predicted: 'jaguar', layers: [{ index: 0, cluster: 1 }] });
  assert.deepEqual(missing, { clusters: [1, null], pred: 1 });
  const fig = pathsFigure(PATHS, { upload: missing });
  assert.equal(fig.dimensions[2].values[6], -1);
  assert.ok(fig.dimensions[2].categoryarray.includes(-1));
  assert.equal(fig.dimensions[2].ticktext.at(-1), '?');
  // A layer clustered with the reader's k: the reply's clusters_at for that
  // layer and k, not its own cluster (the analysis's); unknown without it.
  const re = { ...PATHS, dimensions: PATHS.dimensions.map((d) => (d.layer === 3 ? { ...d, k: 5, reclustered: true } : d)) };
  const reply = { predicted: 'tiger', layers: [{ index: 0, cluster: 1 }, { index: 3, cluster: 0 }] };
  assert.deepEqual(uploadPath(re, reply).clusters, [1, null]);
  assert.deepEqual(uploadPath(re, { ...reply, clusters_at: [{ layer: 3, k: 2, cluster: 1 }] }).clusters, [1, null], 'another k');
  assert.deepEqual(uploadPath(re, { ...reply, clusters_at: [{ layer: 3, k: 5, cluster: 4 }] }).clusters, [1, 4]);
});

// --- scatter ---------------------------------------------------------------

test('scatter by cluster: one trace per cluster plus one for the centres', () => {
  const fig = scatterFigure(SCATTER, { colorBy: 'cluster' });
  assert.equal(fig.data.length, SCATTER.k + 1);
  // cluster 0 holds points 2, 3; cluster 1 holds 0, 1, 4.
  assert.deepEqual(fig.data[0].x, [3, 4]);
  assert.deepEqual(fig.data[0].y, [30, 40]);
  assert.deepEqual(fig.data[0].customdata, [2, 3]);
  assert.deepEqual(fig.data[1].x, [1, 2, 5]);
  assert.deepEqual(fig.data[1].customdata, [0, 1, 4]);
  assert.deepEqual([fig.data[0].marker.color, fig.data[1].marker.color], clusterColors(3, 2));
  // No cluster colour is one of the three class colours in use.
  for (const t of fig.data.slice(0, 2)) assert.ok(!CLASS_COLORS.slice(0, 3).includes(t.marker.color));
  assert.match(fig.data[0].name, /cluster 0 · mostly jaguar/);
  assert.equal(imagePointCount(fig), 5);
});

test('scatter by class: one trace per class plus the centres', () => {
  const fig = scatterFigure(SCATTER, { colorBy: 'class' });
  assert.equal(fig.data.length, SCATTER.classes.length + 1);
  assert.deepEqual(fig.data.map((t) => t.name).slice(0, 3), ['cheetah', 'jaguar', 'tiger']);
  assert.deepEqual(fig.data[0].x, [1, 2]);
  assert.deepEqual(fig.data[1].x, [3]);
  assert.deepEqual(fig.data[2].x, [4, 5]);
  assert.equal(fig.data[2].marker.color, CLASS_COLORS[2]);
  assert.equal(imagePointCount(fig), 5);
});

test('scatter: centres drawn black at the given positions', () => {
  const fig = scatterFigure(SCATTER);
  const c = fig.data[fig.data.length - 1];
  assert.equal(c.name, 'cluster centres');
  assert.equal(c.marker.color, CENTER);
  assert.equal(CENTER, '#000000');
  assert.deepEqual(c.x, SCATTER.centers.x);
  assert.deepEqual(c.y, SCATTER.centers.y);
  assert.match(c.text[1], /centre of cluster 1 · 3 images · mostly cheetah/);
  // Axis titles carry the explained variance.
  assert.match(fig.layout.xaxis.title.text, /31 %/);
  assert.match(fig.layout.yaxis.title.text, /12 %/);
});

test('scatter: the upload is a star at its own coordinates, after the centres', () => {
  const fig = scatterFigure(SCATTER, { upload: { x: 2.5, y: 0.5, cluster: 2 } });
  assert.equal(fig.data.length, SCATTER.k + 2);
  const star = fig.data[fig.data.length - 1];
  assert.equal(star.name, 'your image');
  assert.equal(star.marker.symbol, 'star');
  assert.deepEqual(star.x, [2.5]);
  assert.deepEqual(star.y, [0.5]);
  assert.equal(imagePointCount(fig), 5);
  // A reply without coordinates adds nothing.
  assert.equal(scatterFigure(SCATTER, { upload: { x: null, y: null } }).data.length, SCATTER.k + 1);
});

test('scatter: the star at the reader\'s k, outlined in its cluster\'s colour; said when it is asked for or not known', () => {
  const at = (upload, colorBy = 'cluster') => scatterFigure(SCATTER, { upload, colorBy }).data.at(-1);
  // k = 2 chosen, the analysis's 4: the cluster the re-ask found.
  const star = at({ x: 2.5, y: 0.5, cluster: 1, k: 2, analysedK: 4 });
  assert.equal(star.text[0], 'your image · cluster 1 at k = 2');
  assert.deepEqual(star.meta, { cluster: 1, k: 2 });
  assert.equal(star.marker.line.color, clusterColors(3, 2)[1]);
  // Coloured by class, the outline stays white.
  assert.equal(at({ x: 2.5, y: 0.5, cluster: 1, k: 2, analysedK: 4 }, 'class').marker.line.color, '#ffffff');
  assert.equal(at({ x: 0, y: 0, cluster: 0, k: 4, analysedK: 4 }).text[0], 'your image · cluster 0');
  assert.equal(at({ x: 0, y: 0, cluster: null, k: 2, analysedK: 4 }).text[0], 'your image · finding its cluster at k = 2…');
  assert.equal(at({ x: 0, y: 0, cluster: null, k: 2, analysedK: 4, failed: 'busy' }).text[0],
    'your image · its cluster at k = 2 is not known<br>(strata could not place it: busy)');
  assert.deepEqual(at({ x: 0, y: 0, cluster: null, k: 2, analysedK: 4 }).meta, { cluster: null, k: 2 });
});

test('scatter: the opened image ringed by a shape at its point, no trace added', () => {
  const fig = scatterFigure(SCATTER, { marked: 3 });
  assert.equal(fig.data.length, SCATTER.k + 1);
  assert.equal(imagePointCount(fig), 5);
  assert.ok(fig.layout.shapes.length >= 1);
  for (const sh of fig.layout.shapes) {
    assert.equal(sh.name, MARK_NAME);
    assert.equal(sh.type, 'circle');
    assert.deepEqual([sh.xanchor, sh.yanchor, sh.xsizemode, sh.ysizemode], [4, 40, 'pixel', 'pixel']);
  }
  assert.deepEqual(scatterFigure(SCATTER).layout.shapes, []);
  assert.deepEqual(scatterFigure(SCATTER, { marked: 9 }).layout.shapes, [], 'an index out of range rings nothing');
});

test('scatter: k traces even when a cluster is empty', () => {
  const s = { ...SCATTER, k: 3, centers: { x: [0, 1, 2], y: [0, 1, 2], size: [2, 3, 0], majority: [1, 0, -1] } };
  const fig = scatterFigure(s);
  assert.equal(fig.data.length, 4);
  assert.deepEqual(fig.data[2].x, []);
  assert.equal(fig.data[2].name, 'cluster 2');
});

// --- elbow -----------------------------------------------------------------

test('elbow: the inertia curve and the chosen k marked on it', () => {
  const fig = elbowFigure(ELBOW);
  assert.deepEqual(fig.data[0].x, ELBOW.k_values);
  assert.deepEqual(fig.data[0].y, ELBOW.inertia);
  const mark = fig.data[1];
  assert.deepEqual(mark.x, [3]);
  assert.deepEqual(mark.y, [40]);
  assert.equal(fig.layout.shapes[0].x0, 3);
  // The elbow (k_auto) is annotated.
  assert.equal(fig.layout.annotations[0].x, 3);
  assert.equal(fig.layout.annotations[0].y, 40);
});

test('elbow: another k moves the mark, the elbow note stays at k_auto', () => {
  const fig = elbowFigure(ELBOW, { k: 7 });
  assert.deepEqual(fig.data[1].x, [7]);
  assert.deepEqual(fig.data[1].y, [26]);
  assert.equal(fig.layout.shapes[0].x0, 7);
  assert.equal(fig.layout.annotations[0].x, 3);
});

// --- confusion -------------------------------------------------------------

test('confusion: heat-map z equals the matrix, one count label per cell', () => {
  const classes = ['cheetah', 'jaguar', 'tiger'];
  const m = [[40, 7, 3], [5, 38, 7], [0, 2, 48]];
  const fig = confusionFigure(classes, m);
  assert.equal(fig.data[0].type, 'heatmap');
  assert.deepEqual(fig.data[0].z, m);
  assert.notEqual(fig.data[0].z, m, 'z is a copy, not the caller\'s array');
  assert.deepEqual(fig.data[0].x, classes);
  assert.deepEqual(fig.data[0].y, classes);
  assert.equal(fig.data[0].zmax, 48);
  assert.equal(fig.layout.annotations.length, 9);
  const cell = fig.layout.annotations.find((a) => a.x === 'tiger' && a.y === 'jaguar');
  assert.equal(cell.text, '7');
  assert.equal(fig.layout.yaxis.autorange, 'reversed');
});

// --- training curves --------------------------------------------------------

test('curves: loss and accuracy, training and validation, per epoch', () => {
  const curve = [
    { epoch: 1, train_loss: 1.2, train_acc: 0.5, val_loss: 1.3, val_acc: 0.45 },
    { epoch: 2, train_loss: 0.8, train_acc: 0.7, val_loss: 1.0, val_acc: 0.6 },
    { epoch: 3, train_loss: 0.5, train_acc: 0.8, val_loss: 1.1, val_acc: 0.62 },
  ];
  const fig = curvesFigure(curve, { bestEpoch: 3 });
  assert.equal(fig.data.length, 4);
  for (const t of fig.data) assert.deepEqual(t.x, [1, 2, 3]);
  assert.deepEqual(fig.data[0].y, [1.2, 0.8, 0.5]);
  assert.deepEqual(fig.data[1].y, [1.3, 1.0, 1.1]);
  assert.deepEqual(fig.data[2].y, [0.5, 0.7, 0.8]);
  assert.deepEqual(fig.data[3].y, [0.45, 0.6, 0.62]);
  assert.equal(fig.data[2].yaxis, 'y2');
  assert.equal(fig.layout.shapes.length, 2);
  assert.equal(fig.layout.shapes[0].x0, 3);
  // Side by side by default; stacked, the loss panel sits above the accuracy panel.
  assert.deepEqual(fig.layout.xaxis.domain, [0, 0.44]);
  const st = curvesFigure(curve, { stacked: true }).layout;
  assert.deepEqual(st.xaxis.domain, [0, 1]);
  assert.ok(st.yaxis.domain[0] > st.yaxis2.domain[1], 'loss above accuracy, not overlapping');
  // Missing values (null from non-finite floats) stay gaps.
  const gap = curvesFigure([{ epoch: 1, train_loss: null, train_acc: 0.5, val_loss: 1, val_acc: 0.4 }]);
  assert.deepEqual(gap.data[0].y, [null]);
});

// --- doubt evaluation ---------------------------------------------------------

// GET /api/models/{id}/doubt with 4 bins: 4 test images, 8 outside photos.
const DOUBT = {
  model: 'felines', n_id: 4, n_ood: 8, accuracy: 0.75,
  sources: [{ name: 'felines/test', ood: false, n: 4 }, { name: 'paysages/test', ood: true, n: 8 }],
  auroc: { doubt: 0.9, msp: 0.6, energy: null },
  fpr95: { doubt: 0.25, msp: 1, energy: null },
  auroc_errors: { doubt: 0.5, msp: 0.7, energy: null },
  levels: { medium: 0.5, high: 0.75 },
  histogram: { edges: [0, 0.25, 0.5, 0.75, 1], id: [2, 1, 1, 0], ood: [0, 2, 2, 4] },
};

test('doubt histogram: each group as shares of itself, bars at bin centres, level lines', () => {
  assert.deepEqual(shares([2, 1, 1, 0]), [0.5, 0.25, 0.25, 0]);
  assert.deepEqual(shares([0, 0]), [0, 0], 'an empty group is zeros, not NaN');
  const fig = doubtHistogramFigure(DOUBT);
  assert.equal(fig.data.length, 2);
  const [inside, outside] = fig.data;
  assert.deepEqual(inside.x, [0.125, 0.375, 0.625, 0.875]);
  assert.deepEqual(inside.y, [0.5, 0.25, 0.25, 0]);
  assert.deepEqual(outside.y, [0, 0.25, 0.25, 0.5]);
  assert.equal(inside.width, 0.25);
  assert.equal(inside.marker.color, IN_COLOR);
  assert.equal(outside.marker.color, OUT_COLOR);
  assert.match(inside.name, /\(4\)/);
  assert.match(outside.name, /\(8\)/);
  assert.deepEqual(outside.customdata[3], [4, 0.75, 1]);
  assert.equal(fig.layout.barmode, 'overlay');
  assert.deepEqual(fig.layout.shapes.map((s) => s.x0), [0.5, 0.75]);
  assert.deepEqual(fig.layout.annotations.map((a) => a.text), ['medium', 'high']);
});

test('doubt table: one row per method, missing values null, the best of each column marked', () => {
  const rows = aurocRows(DOUBT);
  assert.deepEqual(rows.map((r) => r.method), ['doubt', 'msp', 'energy']);
  assert.deepEqual(rows.map((r) => r.auroc), [0.9, 0.6, null]);
  assert.deepEqual(rows.map((r) => r.fpr95), [0.25, 1, null]);
  // AUROC: doubt 0.9 > msp 0.6. FPR (lower is better): doubt 0.25 < 1.
  // AUROC on its errors: msp 0.7 > doubt 0.5. Energy is missing: never best.
  assert.deepEqual(rows.map((r) => r.best), [
    { auroc: true, fpr95: true, auroc_errors: false },
    { auroc: false, fpr95: false, auroc_errors: true },
    { auroc: false, fpr95: false, auroc_errors: false },
  ]);
  const flipped = aurocRows({ ...DOUBT, auroc: { doubt: 0.7, msp: 0.8, energy: 0.8 } });
  assert.deepEqual(flipped.map((r) => r.best.auroc), [false, true, true], 'ties are all best');
  // The felines numbers of the review: max softmax 0.708 beats the doubt's 0.584 on errors.
  const felines = aurocRows({ auroc: { doubt: 0.939, msp: 0.664, energy: 0.646 }, fpr95: { doubt: 0.27, msp: 0.84, energy: 0.9 },
    auroc_errors: { doubt: 0.584, msp: 0.708, energy: 0.59 } });
  assert.deepEqual(felines.map((r) => [r.best.auroc, r.best.fpr95, r.best.auroc_errors]),
    [[true, true, false], [false, false, true], [false, false, false]]);
});

test('doubt verdict: said when a baseline spots the model\'s own mistakes better', () => {
  assert.equal(errorsNote(aurocRows(DOUBT)), 'For spotting this model\'s own mistakes among its test images, the max. ' +
    'softmax probability does better than strata\'s doubt (AUROC 0.700 against 0.500): the doubt is built to flag ' +
    'images unlike the ones it learned from, not to tell which of its answers are wrong.');
  // Energy beats the doubt too but msp beats energy: the best one is named.
  const both = aurocRows({ ...DOUBT, auroc_errors: { doubt: 0.5, msp: 0.7, energy: 0.6 } });
  assert.match(errorsNote(both), /the max\. softmax probability does better/);
  // The doubt best (or tied) on errors: nothing to say.
  assert.equal(errorsNote(aurocRows({ ...DOUBT, auroc_errors: { doubt: 0.8, msp: 0.7, energy: 0.8 } })), '');
  assert.equal(errorsNote(aurocRows({ ...DOUBT, auroc_errors: { doubt: null, msp: 0.7, energy: null } })), '');
});

test('low doubt shares: bins below the medium level, per group', () => {
  const { edges, id, ood } = DOUBT.histogram;
  // medium 0.5: bins [0, .25) and [.25, .5). Others: 0 + 2 of 8; own: 2 + 1 of 4.
  assert.equal(shareBelow(edges, ood, 0.5), 0.25);
  assert.equal(shareBelow(edges, id, 0.5), 0.75);
  assert.equal(shareBelow(edges, id, 0), 0);
  assert.equal(shareBelow(edges, [0, 0, 0, 0], 0.5), null);
  assert.deepEqual(lowDoubtShares(DOUBT), { ood: 0.25, id: 0.75, nOod: 8 });
  assert.equal(lowDoubtShares({ ...DOUBT, levels: {} }), null);
  assert.equal(lowDoubtText(lowDoubtShares(DOUBT)), 'A low doubt is weak evidence: this model also rates low 25\u00a0% of 8 ' +
    'photos from the other datasets (things it never learned), against 75\u00a0% of its own test images.');
  assert.match(lowDoubtText(null), /^A low doubt is weak evidence: photos of things this model never learned can get a low doubt too\.$/);
  // The felines histogram of the review: 131 of 950 other photos below 0.8.
  const felines = { levels: { medium: 0.8, high: 0.95 }, n_ood: 950, histogram: {
    edges: Array.from({ length: 21 }, (_, i) => i / 20),
    id: [14, 13, 1, 8, 16, 6, 13, 8, 5, 17, 12, 6, 5, 8, 21, 23, 7, 3, 3, 11],
    ood: [0, 0, 0, 0, 0, 0, 5, 1, 2, 8, 5, 2, 2, 13, 28, 65, 34, 18, 45, 722] } };
  const s = lowDoubtShares(felines);
  assert.equal(s.ood, 131 / 950);
  assert.equal(s.id, 176 / 200);
});

test('doubt histogram: the legend sits above the plot area, clear of the level labels', () => {
  const { layout } = doubtHistogramFigure(DOUBT);
  assert.equal(layout.legend.yanchor, 'bottom');
  assert.ok(layout.legend.y >= 1);
  for (const a of layout.annotations) assert.ok(a.y <= 1 && a.yanchor === 'top');
});

test('cluster colours: CIELAB reference values, and kept away from the class colours in use', () => {
  // Reference L*a*b* (D65): white (100, 0, 0), black (0, 0, 0), #ff0000 (53.241, 80.092, 67.203),
  // #808080 (53.59, 0, 0).
  const close = (a, b) => a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) < 0.01, `${a} vs ${b}`));
  close(hexToLab('#ffffff'), [100, 0, 0]);
  close(hexToLab('#000000'), [0, 0, 0]);
  close(hexToLab('#ff0000'), [53.241, 80.092, 67.203]);
  close(hexToLab('#808080'), [53.59, 0, 0]);
  assert.ok(Math.abs(colorDistance('#ffffff', '#000000') - 100) < 1e-3);
  for (const C of [3, 4, 6]) {
    const cols = clusterColors(C, 10);
    assert.equal(new Set(cols).size, 10, 'ten distinct colours');
    // Cluster c keeps its colour whatever k.
    assert.deepEqual(clusterColors(C, 4), cols.slice(0, 4));
    // The first four clusters (the usual k) are far from every class colour in
    // use (ΔE > 30; the old palette put #d95f02, ΔE 19 from jaguar's orange, on cluster 1).
    for (const c of cols.slice(0, 4)) {
      for (const k of CLASS_COLORS.slice(0, C)) assert.ok(colorDistance(c, k) > 30, `${c} vs class ${k} (C = ${C})`);
    }
  }
  assert.ok(colorDistance('#d95f02', CLASS_COLORS[1]) < 20, 'the old clash, for the record');
});

test('doubt shares above a level: bins from the threshold up', () => {
  const { edges, id, ood } = DOUBT.histogram;
  assert.equal(shareAtLeast(edges, ood, 0.75), 0.5);
  assert.equal(shareAtLeast(edges, ood, 0.5), 0.75);
  assert.equal(shareAtLeast(edges, id, 0.5), 0.25);
  assert.equal(shareAtLeast(edges, id, 0), 1);
  assert.equal(shareAtLeast(edges, [0, 0, 0, 0], 0.5), null);
});

// --- probability bars --------------------------------------------------------

test('probabilities: one bar per class, the answer in its class colour', () => {
  const fig = probabilityFigure(REPLY, ['cheetah', 'jaguar', 'tiger']);
  const t = fig.data[0];
  assert.deepEqual(t.y, ['cheetah', 'jaguar', 'tiger']);
  assert.deepEqual(t.x, [0.08, 0.82, 0.10]);
  assert.deepEqual(t.marker.color, [MUTED, CLASS_COLORS[1], MUTED]);
  assert.deepEqual(t.text, ['8.0 %', '82 %', '10 %']);
});
