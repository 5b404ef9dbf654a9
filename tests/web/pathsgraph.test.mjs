// pathsgraph.test.mjs — the graph of paths' pure geometry and words
// (web/pathsgraph.js) under Node, on a hand-written paths document of six
// images. Run: node --test tests/web/pathsgraph.test.mjs
// Every expected number is worked out by hand below, not produced by the
// code under test.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  pathsFigure, pathsLayout, pathsMargins, pathsMinWidth, linesThrough, describeTarget, graphName,
  PATHS_TOP, PATHS_BOTTOM, PATHS_BAR,
} from '../../web/pathsgraph.js';
import { uploadPath } from '../../web/parcats.js';

// GET /api/models/{id}/paths: 3 classes, 6 images, two analysed layers.
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
};

// A plot area 100 px tall: PATHS_TOP + 100 + PATHS_BOTTOM.
const H = PATHS_TOP + 100 + PATHS_BOTTOM;
const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} is not within ${eps} of ${b}`);
const ys = (list) => list.map((x) => [x.y0, x.y1].map((v) => Math.round(v * 1000) / 1000));

test('paths graph: margins hold the end bars\' labels; the narrowest width keeps 64 px between bars', () => {
  const fig = pathsFigure(PATHS);
  // "cheetah" (7 characters) at 6.5 px + 8 px off the bar = 53.5 -> 54 on
  // each side; half of "true class" (10 × 7 = 70 px) over its 14 px bar needs only 32.
  assert.deepEqual(pathsMargins(fig), { l: 54, r: 54 });
  // Names side by side need 7 px a character + 10: "true class"/"conv1"
  // 7.5 on average -> 62.5, below the 64 px floor. 54 + 54 + 14 + 3 × 64.
  assert.equal(pathsMinWidth(fig), 314);
  // With an upload, "your image" (10 characters) on the left: 65 + 8 = 73.
  const up = pathsFigure(PATHS, { upload: { clusters: [0, 0], pred: 0 } });
  assert.deepEqual(pathsMargins(up), { l: 73, r: 54 });
  // The long names of an imported model's layers get room: 15 characters
  // beside 15, 7 × 15 + 10 = 115 px between those bars (and so between all).
  const long = { ...PATHS, dimensions: PATHS.dimensions.map((d, i) => (i === 1 ? { ...d, label: 'blocks.0/Relu_1' }
    : i === 2 ? { ...d, label: 'blocks.1/Relu_1' } : d)) };
  assert.equal(pathsMinWidth(pathsFigure(long)), 54 + 54 + 14 + 3 * 115);
});

test('paths graph: one bar per dimension, evenly spaced; names over and notes under their own bar', () => {
  const fig = pathsFigure(PATHS);
  // 54 + 54 + 14 + 3 × 100 = 422 px wide: bars 100 px apart.
  const L = pathsLayout(fig, 422, H);
  assert.deepEqual(L.axes.map((a) => a.x), [54, 154, 254, 354]);
  assert.deepEqual(L.axes.map((a) => a.cx), [61, 161, 261, 361]);
  for (const a of L.axes) {
    assert.equal(a.title.x, a.cx);
    assert.equal(a.note.x, a.cx);
    assert.ok(a.title.y < PATHS_TOP && a.note.y > PATHS_TOP + 100, 'names above, notes below the bars');
  }
  assert.deepEqual(L.axes.map((a) => a.title.text), ['true class', 'conv1', 'dense1', 'predicted']);
  assert.deepEqual(L.axes[1].note.lines, ['k 2', 'purity 0.50', 'ARI 0.05']);
  // At another width the notes are still centred on the bars.
  const wide = pathsLayout(fig, 1022, H);
  assert.deepEqual(wide.axes.map((a) => a.cx), [61, 361, 661, 961]);
  assert.deepEqual(wide.axes.map((a) => a.note.x), [61, 361, 661, 961]);
  // Labels: left of the bars, right of the last one.
  assert.deepEqual(L.axes.map((a) => a.side), ['left', 'left', 'left', 'right']);
  assert.equal(L.axes[0].segments[0].label.x, 49);
  assert.equal(L.axes[3].segments[0].label.x, 354 + PATHS_BAR + 5);
});

test('paths graph: segments as tall as their lines, every bar as tall as the others', () => {
  // 6 lines, at most 3 segments a bar: (100 − 2 × 8) / 6 = 14 px a line.
  const L = pathsLayout(pathsFigure(PATHS), 422, H);
  assert.equal(L.unit, 14);
  // true class: 2, 2, 2 lines, 8 px apart, from y = 34.
  assert.deepEqual(ys(L.axes[0].segments), [[34, 62], [70, 98], [106, 134]]);
  // conv1: two segments of 3, the spare 16 px between them.
  assert.deepEqual(ys(L.axes[1].segments), [[34, 76], [92, 134]]);
  // predicted: cheetah 2, jaguar 3, tiger 1.
  assert.deepEqual(ys(L.axes[3].segments), [[34, 62], [70, 112], [120, 134]]);
  assert.deepEqual(L.axes[3].segments.map((s) => [s.value, s.count]), [['cheetah', 2], ['jaguar', 3], ['tiger', 1]]);
  // conv1's first cluster is striped: 2 cheetahs (colour 0) above 1 jaguar (colour 1).
  assert.deepEqual(L.axes[1].segments[0].bands.map((b) => [b.color, b.count, b.y0, b.y1]), [[0, 2, 34, 62], [1, 1, 62, 76]]);
});

test('paths graph: ribbons meet their colour\'s stripe on both sides', () => {
  const L = pathsLayout(pathsFigure(PATHS), 422, H);
  const gap0 = L.ribbons.filter((r) => r.gap === 0);
  // true -> conv1: (cheetah, 0) ×2, (jaguar, 1), (jaguar, 0), (tiger, 1) ×2.
  assert.equal(gap0.length, 4);
  assert.equal(gap0.reduce((s, r) => s + r.count, 0), 6);
  const jag0 = gap0.find((r) => r.from === 'jaguar' && r.to === 0);
  // Left: jaguar's segment [70, 98], its ribbon to cluster 0 first (0 is above 1).
  // Right: cluster 0's [34, 76], the cheetahs' 28 px stripe first, then it.
  assert.deepEqual([jag0.a0, jag0.a1, jag0.b0, jag0.b1], [70, 84, 62, 76]);
  const jag1 = gap0.find((r) => r.from === 'jaguar' && r.to === 1);
  assert.deepEqual([jag1.a0, jag1.a1, jag1.b0, jag1.b1], [84, 98, 92, 106]);
  const tig = gap0.find((r) => r.from === 'tiger');
  assert.deepEqual([tig.a0, tig.a1, tig.b0, tig.b1, tig.count], [106, 134, 106, 134, 2]);
  // A ribbon's path runs from the left bar's right edge to the right bar's left edge.
  assert.match(jag0.d, /^M68 70C111 70 111 62 154 62L154 76C111 76 111 84 68 84Z$/);
  // Every gap carries every line.
  for (let g = 0; g < 3; g++) assert.equal(L.ribbons.filter((r) => r.gap === g).reduce((s, r) => s + r.count, 0), 6);
});

test('paths graph: grey ribbons under coloured ones; the upload\'s black line through its stripe', () => {
  const up = uploadPath(PATHS, { predicted: 'jaguar', layers: [{ index: 0, cluster: 1 }, { index: 3, cluster: 2 }] });
  const fig = pathsFigure(PATHS, { upload: up, highlight: new Set([2, 3]) });
  // 7 lines, 4 segments on the true-class bar: (100 − 3 × 8) / 7 = 76/7 px each.
  const L = pathsLayout(fig, 441, H);
  near(L.unit, 76 / 7);
  const ranks = L.ribbons.map((r) => (r.color === fig.grey ? 0 : r.color === fig.mine ? 2 : 1));
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), 'grey first, the upload last');
  // "your image": one line's segment at the foot of the true-class bar, its
  // line through its middle, 134 − 38/7 = 128.57 (to 0.1 px in the path).
  const mine = L.axes[0].segments.at(-1);
  assert.deepEqual([mine.value, mine.count, mine.upload], ['your image', 1, true]);
  near(mine.y0, 134 - 76 / 7, 1e-9);
  near(mine.y1, 134, 1e-9);
  assert.match(L.upload, /^M73 128\.6h14C/);
  assert.equal((L.upload.match(/C/g) || []).length, 3, 'one curve a gap');
  // The segments it passes say so, one a bar.
  assert.deepEqual(L.axes.map((a) => a.segments.filter((s) => s.upload).map((s) => s.value)), [['your image'], [1], [2], ['jaguar']]);
  assert.equal(pathsLayout(pathsFigure(PATHS), 422, H).upload, null);
});

test('paths graph: a layer\'s clusters stacked by majority class; numbers and dots where names do not fit', () => {
  // conv1 renumbered: cluster 1 gathers the cheetahs, cluster 0 the tigers.
  const swapped = { ...PATHS, images: { ...PATHS.images, clusters: PATHS.images.clusters.map(([a, b]) => [1 - a, b]) } };
  const fig = pathsFigure(swapped);
  assert.deepEqual(fig.dimensions[1].categoryarray, [1, 0]);
  assert.deepEqual(fig.dimensions[1].ticktext, ['1 · cheetah', '0 · tiger']);
  // 100 px between bars: "1 · cheetah" (11 × 6.5 + 10 = 81.5 px) fits in 86.
  const roomy = pathsLayout(fig, 422, H);
  assert.deepEqual(roomy.axes[1].segments.map((s) => [s.label.text, s.label.dot]), [['1 · cheetah', null], ['0 · tiger', null]]);
  // 80 px between bars (54 + 54 + 14 + 240 = 362): 66 px left, so the numbers, with a dot of the majority's colour.
  const tight = pathsLayout(fig, 362, H);
  const labels = tight.axes[1].segments.map((s) => s.label);
  assert.deepEqual(labels.map((l) => [l.text, l.dot.color, l.anchor]), [['1', 0, 'end'], ['0', 2, 'end']]);
  // The end bars keep their names.
  assert.deepEqual(tight.axes[0].segments.map((s) => s.label.text), ['cheetah', 'jaguar', 'tiger']);
});

test('paths graph: labels of thin segments are spread 12 px apart, no lower than the bars\' foot', () => {
  // 30 images: 28 jaguars, a cheetah and a tiger, one layer of one cluster.
  const n = 30;
  const doc = {
    classes: ['cheetah', 'jaguar', 'tiger'],
    dimensions: [{ label: 'true class', kind: 'true' }, { label: 'c', kind: 'layer', layer: 0, k: 1, purity: 1, ari: 0 },
      { label: 'predicted', kind: 'pred' }],
    images: { true: Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i === n - 1 ? 2 : 1)), pred: new Array(n).fill(1),
      clusters: Array.from({ length: n }, () => [0]) },
  };
  const L = pathsLayout(pathsFigure(doc), 400, H);
  const y = L.axes[0].segments.map((s) => s.label.y);
  for (let i = 1; i < y.length; i++) assert.ok(y[i] - y[i - 1] >= 12 - 1e-9, `labels ${y.join(', ')}`);
  assert.ok(y.at(-1) <= PATHS_TOP + 100 + 4 + 1e-9);
  // A bar of one segment is centred: the predicted class, all 30 lines at
  // (100 − 16) / 30 px each as on the other bars, 8 px from the top and the foot.
  near(L.axes[2].segments[0].y0, PATHS_TOP + 8);
  near(L.axes[2].segments[0].y1, PATHS_TOP + 92);
});

test('linesThrough: the lines through a segment, a ribbon, of a colour', () => {
  const fig = pathsFigure(PATHS);
  assert.deepEqual([...linesThrough(fig, { 1: 0 })], [0, 1, 3]);
  assert.deepEqual([...linesThrough(fig, { 0: 'jaguar' })], [2, 3]);
  assert.deepEqual([...linesThrough(fig, { 1: 0, 2: 1 })], [3]);
  assert.deepEqual([...linesThrough(fig, { 1: 0 }, 0)], [0, 1]);
  assert.deepEqual([...linesThrough(fig, { 3: 'tiger' })], [4]);
});

test('tooltips: counts in words, never raw "Count" or "P(...)"; a class\'s ribbon as a share of that class', () => {
  const fig = pathsFigure(PATHS);
  assert.deepEqual(describeTarget(fig, { dim: 1, value: 0 }),
    { title: 'conv1 cluster 0 · cheetah', lines: ['3 images · 50\u00a0% of all 6', 'cheetah 2 · jaguar 1'] });
  assert.deepEqual(describeTarget(fig, { dim: 0, value: 'tiger' }),
    { title: 'true class tiger', lines: ['2 images · 33\u00a0% of all 6', 'answered right: 1 (50\u00a0%)'] });
  // Answered jaguar: images 1, 2, 3, of which 2 and 3 are jaguars.
  assert.deepEqual(describeTarget(fig, { dim: 3, value: 'jaguar' }),
    { title: 'predicted jaguar', lines: ['3 images · 50\u00a0% of all 6', 'right: 2 of them (67\u00a0%)'] });
  // One jaguar of two goes from its class to conv1's cluster 0: "1 image", not "1 images".
  assert.deepEqual(describeTarget(fig, { gap: 0, from: 'jaguar', to: 0, color: 1 }),
    { title: '1 image · 50\u00a0% of jaguar', lines: ['true class jaguar → conv1 cluster 0 · cheetah'] });
  // A grey ribbon says which classes it holds.
  const grey = pathsFigure(PATHS, { highlight: new Set([2, 3]) });
  assert.deepEqual(describeTarget(grey, { gap: 0, from: 'cheetah', to: 0, color: 3 }),
    { title: '2 images · 33\u00a0% of all 6', lines: ['true class cheetah → conv1 cluster 0 · cheetah', 'cheetah 2'] });
  // The upload: its own segment, and "?" where its cluster is not known.
  const up = pathsFigure(PATHS, { upload: { clusters: [1, null], pred: 1 } });
  assert.deepEqual(describeTarget(up, { dim: 2, value: -1 }),
    { title: 'dense1 cluster ?', lines: ['your image: its cluster at this k is not known'] });
  assert.equal(describeTarget(up, { dim: 0, value: 'your image' }).title, 'your image');
  assert.deepEqual(describeTarget(up, { dim: 1, value: 1 }).lines.at(-1), 'and your image');
  assert.deepEqual(describeTarget(up, { gap: 2, from: -1, to: 'jaguar', color: up.mine }),
    { title: 'your image', lines: ['dense1 cluster ? → predicted jaguar'] });
  const every = [];
  for (const f of [fig, grey, up]) {
    f.dimensions.forEach((d, i) => d.categoryarray.forEach((v) => every.push(describeTarget(f, { dim: i, value: v }))));
  }
  const text = every.map((t) => [t.title, ...t.lines].join(' ')).join(' | ');
  assert.doesNotMatch(text, /Count|P\(|\b1 images\b|%\{/);
});

test('graphName: what the graph holds, and how to move in it with a keyboard', () => {
  assert.match(graphName(pathsFigure(PATHS)), /^Graph of the paths of 6 images: from the true class, through the clusters of 2 layers, to the predicted class\. .*arrow keys/);
  assert.match(graphName(pathsFigure(PATHS, { upload: { clusters: [0, 0], pred: 0 } })), /of 6 images and of your image/);
});
