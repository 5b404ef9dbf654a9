// logic.test.mjs — the dashboard's non-chart logic under Node: the help
// page's maths (against closed forms and hand-worked examples), the
// generated descriptions, the home page's dataset grouping and the choice
// of out-of-model images.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  relu, sigmoid, softmax, conv2d, maxpool, kmeans, elbowK, pca2, solve, limeToy, purity, ari, rng,
} from '../../web/helpmath.js';
import { describeMistake, describePrediction, topSegments } from '../../web/describe.js';
import { checkUpload, uploadErrorText, formatBytes, DEFAULT_UPLOAD_LIMIT, UPLOAD_ACCEPT } from '../../web/uploadcheck.js';
import { layersNote } from '../../web/parcats.js';
import { datasetsOf } from '../../web/home.js';
import { pickOutside } from '../../web/outside.js';
import { convFigure, KERNELS, toyImage } from '../../web/helpcharts.js';

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} is not within ${eps} of ${b}`);

// --- help maths ----------------------------------------------------------------

test('activations: relu, sigmoid and softmax closed forms', () => {
  assert.equal(relu(-2), 0);
  assert.equal(relu(3), 3);
  near(sigmoid(0), 0.5);
  near(sigmoid(Math.log(3)), 0.75);
  // softmax([0, ln 3]) = [1/4, 3/4]; shifting every score changes nothing.
  const p = softmax([0, Math.log(3)]);
  near(p[0], 0.25); near(p[1], 0.75);
  const q = softmax([1000, 1000 + Math.log(3)]);
  near(q[0], 0.25); near(q[1], 0.75);
  // Temperature 2 on [0, 2 ln 3] equals temperature 1 on [0, ln 3].
  const r = softmax([0, 2 * Math.log(3)], 2);
  near(r[1], 0.75);
});

test('conv2d and maxpool on a hand-worked example', () => {
  const img = [
    [1, 2, 3, 0],
    [4, 5, 6, 1],
    [7, 8, 9, 2],
  ];
  // Vertical-edge kernel [[1, -1]]: each output = left - right.
  assert.deepEqual(conv2d(img, [[1, -1]]), [[-1, -1, 3], [-1, -1, 5], [-1, -1, 7]]);
  // 2×2 sum kernel, 'valid': 2×3 output.
  assert.deepEqual(conv2d(img, [[1, 1], [1, 1]]), [[12, 16, 10], [24, 28, 18]]);
  // Max-pool 2×2 drops the incomplete last row.
  assert.deepEqual(maxpool(img, 2), [[5, 6]]);
  // The help figure's panels: 12×12 picture -> 10×10 conv -> 5×5 pool.
  const fig = convFigure(toyImage(), KERNELS['vertical edges']);
  assert.equal(fig.data.length, 4);
  assert.equal(fig.data[2].z.length, 10);
  assert.equal(fig.data[3].z.length, 5);
  for (const row of fig.data[2].z) for (const v of row) assert.ok(v >= 0, 'relu output is never negative');
  // Narrow screens: a 2×2 grid — panels 0 and 2 share a column, 0 and 1 a row.
  const grid = convFigure(toyImage(), KERNELS.blur, { columns: 2 }).layout;
  assert.deepEqual(grid.xaxis1.domain, grid.xaxis3.domain);
  assert.deepEqual(grid.yaxis1.domain, grid.yaxis2.domain);
  assert.ok(grid.yaxis3.domain[1] < grid.yaxis1.domain[0], 'second row below the first');
});

test('k-means finds two obvious groups; inertia by hand', () => {
  const pts = [[0, 0], [0, 1], [1, 0], [10, 10], [10, 11], [11, 10]];
  const r = kmeans(pts, 2, 3);
  assert.equal(new Set(r.labels.slice(0, 3)).size, 1);
  assert.equal(new Set(r.labels.slice(3)).size, 1);
  assert.notEqual(r.labels[0], r.labels[3]);
  // Each group's centre is its mean (1/3, 1/3); squared distances sum to 4/3 per group.
  near(r.inertia, 8 / 3, 1e-9);
  // k = 1: the centre is the overall mean: compare with a direct sum.
  const one = kmeans(pts, 1, 3);
  const mx = pts.reduce((s, p) => s + p[0], 0) / 6, my = pts.reduce((s, p) => s + p[1], 0) / 6;
  near(one.inertia, pts.reduce((s, p) => s + (p[0] - mx) ** 2 + (p[1] - my) ** 2, 0), 1e-9);
});

test('elbowK picks the bend of a hand-made curve', () => {
  assert.equal(elbowK([1, 2, 3, 4, 5, 6], [100, 40, 12, 10, 9, 8]), 3);
  assert.equal(elbowK([1, 2, 3, 4], [100, 20, 15, 10]), 2);
});

test('pca2: axes of points on a line and of an axis-aligned cloud', () => {
  const line = [[0, 0], [1, 1], [2, 2], [3, 3]];
  const a = pca2(line);
  near(Math.abs(a.axes[0][0]), Math.SQRT1_2, 1e-12);
  near(Math.abs(a.axes[0][1]), Math.SQRT1_2, 1e-12);
  // Sample variance along the line: distances ±1.5√2, ±0.5√2 -> (4.5+0.5)·2/3 = 10/3.
  near(a.variances[0], 10 / 3, 1e-12);
  near(a.variances[1], 0, 1e-12);
  const box = pca2([[-2, -1], [2, -1], [-2, 1], [2, 1]]);
  near(Math.abs(box.axes[0][0]), 1, 1e-12);
  near(box.variances[0], 16 / 3, 1e-12);
  near(box.variances[1], 4 / 3, 1e-12);
});

test('solve: a 3×3 system with a known answer, and a singular one', () => {
  const x = solve([[2, 1, -1], [-3, -1, 2], [-2, 1, 2]], [8, -11, -3]);
  near(x[0], 2, 1e-12); near(x[1], 3, 1e-12); near(x[2], -1, 1e-12);
  assert.equal(solve([[1, 2], [2, 4]], [1, 2]), null);
});

test('limeToy recovers the weights of a linear black box', () => {
  // score = 0.5 + 0.3·region0 − 0.2·region5: a linear model LIME should fit exactly (up to the tiny ridge).
  const f = (m) => 0.5 + 0.3 * m[0] - 0.2 * m[5];
  const { weights, intercept } = limeToy(f, { side: 3, n: 200, lambda: 1e-6 });
  near(weights[0][0], 0.3, 1e-4);
  near(weights[1][2], -0.2, 1e-4);
  near(intercept, 0.5, 1e-4);
  for (const [r, c] of [[0, 1], [0, 2], [1, 0], [1, 1], [2, 0], [2, 1], [2, 2]]) near(weights[r][c], 0, 1e-4);
});

test('purity and ARI against hand computations', () => {
  // Clusters {a,a,b} and {b,b,b}: majorities 2 + 3 out of 6.
  near(purity([0, 0, 0, 1, 1, 1], ['a', 'a', 'b', 'b', 'b', 'b']), 5 / 6);
  assert.equal(ari([0, 0, 1, 1], [5, 5, 7, 7]), 1);
  // Contingency [[1,1],[1,1]] of 4 items: index 0, sa = sb = 2, expected 4/6, max 2 -> ARI = -0.5.
  near(ari([0, 0, 1, 1], [0, 1, 0, 1]), -0.5, 1e-12);
  // A classic example: a = [0,0,0,1,1,1], b = [0,0,1,1,2,2].
  // Contingency rows (2,1,0), (0,1,2): index = 1+1 = 2; sa = 3+3 = 6; sb = 1+1+1 = 3; C(6,2) = 15;
  // expected = 18/15 = 1.2; max = 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3.
  near(ari([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]), 0.8 / 3.3, 1e-12);
});

test('rng is deterministic and in [0, 1)', () => {
  const a = rng(42), b = rng(42);
  for (let i = 0; i < 100; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

// --- descriptions --------------------------------------------------------------

const MISTAKE = {
  index: 12, id: 'jaguar/0012.jpg', true: 'jaguar', pred: 'leopard',
  probability: 0.71, true_probability: 0.2, left_at: 'conv4', thumb: '/x',
};

test('describeMistake: composed here, never "a buildings" (the server\'s description puts an article before the class)', () => {
  const server = { description: 'Taken for a forest (64 %). It is a buildings.' };
  const s = describeMistake({ ...MISTAKE, true: 'buildings', pred: 'forest', probability: 0.64, true_probability: 0.12 }, server);
  assert.match(s, /^Buildings photo taken for “forest” \(64\u00a0%\); the right answer, “buildings”, got 12\u00a0%\./);
  assert.doesNotMatch(s, /\ban? (buildings|forest)\b/);
});

test('describeMistake: composed from the numbers', () => {
  const plain = describeMistake(MISTAKE);
  assert.match(plain, /^Jaguar photo taken for “leopard” \(71\u00a0%\); the right answer, “jaguar”, got 20\u00a0%\./);
  assert.match(plain, /left the clusters of jaguar images at layer conv4/);
  const ex = { class: 'leopard', segments: 48, score: 0.62,
    weights: [{ segment: 7, weight: 0.3 }, { segment: 2, weight: -0.4 }, { segment: 9, weight: 0.1 },
      { segment: 4, weight: 0.05 }, { segment: 1, weight: 0.05 }] };
  // Positive weights 0.3 + 0.1 + 0.05 + 0.05 = 0.5; the top three carry 0.45 = 90 %.
  const full = describeMistake(MISTAKE, ex);
  assert.match(full, /Of the 48 regions LIME cut the image into, 3 carry 90\u00a0% of the weight pushing towards “leopard” — they are among the regions outlined on the overlay\./);
  assert.match(full, /fits the model well here \(R² 0\.62\)/);
  // One positive region: singular.
  const one = describeMistake(MISTAKE, { ...ex, weights: [{ segment: 3, weight: 0.2 }, { segment: 5, weight: -0.1 }] });
  assert.match(one, /one carries 100\u00a0% of the weight pushing towards “leopard” — it is among/);
  const stays = describeMistake({ ...MISTAKE, left_at: null, pred: 'ocelot' });
  assert.match(stays, /taken for “ocelot”/);
  assert.match(stays, /stayed in clusters of jaguar images through every layer/);
  assert.deepEqual(topSegments(ex.weights, 2).map((w) => w.segment), [7, 9]);
});

test('describePrediction: answer, hesitation, doubt sentence; class names quoted, no article', () => {
  const s = describePrediction({
    predicted: 'airplane', probability: 0.55,
    probabilities: [{ class: 'airplane', probability: 0.55 }, { class: 'boat', probability: 0.4 }, { class: 'car', probability: 0.05 }],
    doubt: { score: 0.7, level: 'high', explanation: 'Far from every cluster.' },
  });
  assert.equal(s, 'The model says “airplane” (55\u00a0%). It hesitates with “boat” (40\u00a0%). Far from every cluster.');
  assert.equal(describePrediction({ predicted: 'buildings', probability: 0.9, probabilities: [] }),
    'The model says “buildings” (90\u00a0%).');
});

// --- which layers the graph and the doubt use -----------------------------------

test('layersNote: the layers left out of the graph, and how many the doubt probes', () => {
  const layers = ['conv1', 'pool1', 'gap', 'dropout', 'output'].map((name, index) => ({
    index, name, type: { conv1: 'conv2d', pool1: 'maxpool2d', gap: 'global_avg_pool', dropout: 'dropout', output: 'dense' }[name],
  }));
  const dims = [0, 1, 2, 4].map((layer) => ({ kind: 'layer', layer, label: layers[layer].name }));
  assert.equal(layersNote(layers, dims, 3),
    'The graph shows 4 of the model\'s 5 layers: dropout is left out, because it hands its input on unchanged when ' +
    'the model answers, so its clusters would repeat those of the layer before. The doubt score probes 3 of them: ' +
    'all but the last, output, whose class scores it reads separately.');
  // Two left out; the doubt count unknown.
  const seed = [...layers.slice(0, 3), { index: 5, name: 'flatten', type: 'flatten' }, layers[3], layers[4]];
  assert.match(layersNote(seed, dims, null), /^The graph shows 4 of the model's 6 layers: flatten and dropout are left out, because they hand their input on unchanged when the model answers, so their clusters would repeat those of the layer before\.$/);
  // Everything shown, any other doubt count: said plainly.
  assert.equal(layersNote(layers.filter((l) => l.type !== 'dropout'), dims, 2), 'The doubt score probes 2 of them.');
  assert.equal(layersNote(layers.filter((l) => l.type !== 'dropout'), dims, null), '');
});

// --- uploads: checked before sending, refusals in plain words -------------------

const MB = 1024 * 1024;

test('formatBytes: MB as the server counts them (2^20 bytes)', () => {
  assert.equal(formatBytes(10485760), '10\u00a0MB');
  assert.equal(formatBytes(30000183), '29\u00a0MB'); // 28.61 -> 29 (10 MB and over: whole numbers)
  assert.equal(formatBytes(1.5 * MB), '1.5\u00a0MB');
  assert.equal(formatBytes(850 * 1024), '850\u00a0kB');
  assert.equal(formatBytes(28), '28\u00a0bytes');
});

test('checkUpload: JPEG and PNG up to the limit pass; the rest is refused before sending', () => {
  assert.equal(DEFAULT_UPLOAD_LIMIT, 10485760, 'strata serve\'s --max-upload-mb default, 10');
  assert.equal(UPLOAD_ACCEPT, 'image/jpeg,image/png,.jpg,.jpeg,.png');
  assert.equal(checkUpload({ name: 'cat.jpg', type: 'image/jpeg', size: 2 * MB }), null);
  assert.equal(checkUpload({ name: 'cat.png', type: 'image/png', size: 10 * MB }), null, 'exactly the limit passes');
  assert.equal(checkUpload({ name: 'cat.JPEG', type: '', size: 1000 }), null, 'no type, but a JPEG name');
  assert.equal(checkUpload({ name: 'mystery', type: '', size: 1000 }), null, 'unknown: the server decides');
  const big = checkUpload({ name: 'huge.jpg', type: 'image/jpeg', size: 45 * MB }, { input: { width: 96, height: 96 } });
  assert.equal(big.code, 'size');
  assert.equal(big.title, 'This file is too big');
  assert.match(big.text, /^huge\.jpg is 45\u00a0MB; strata takes images up to 10\u00a0MB\. Save a smaller copy/);
  assert.match(big.text, /at 96\u00a0×\u00a096 pixels/);
  assert.equal(checkUpload({ name: 'a.png', type: 'image/png', size: 10 * MB + 1 }).code, 'size', 'one byte over');
  assert.equal(checkUpload({ name: 'a.png', type: 'image/png', size: 3 * MB }, { limit: 2 * MB }).code, 'size', 'another limit');
  const webp = checkUpload({ name: 'tiger.webp', type: 'image/webp', size: 50000 });
  assert.deepEqual(webp, { code: 'type', title: 'strata reads JPEG and PNG images only',
    text: 'tiger.webp is a WebP image. Save it as JPEG or PNG (most image viewers can) and try again.' });
  assert.match(checkUpload({ name: 'notes.txt', type: 'text/plain', size: 22 }).text, /^notes\.txt is a text file\./);
  assert.match(checkUpload({ name: 'scan.heic', type: '', size: 22 }).text, /is a HEIC photo/, 'from the extension');
  assert.equal(checkUpload({ name: 'empty.png', type: 'image/png', size: 0 }).code, 'empty');
});

test('uploadErrorText: each API refusal as a sentence for a person', () => {
  const t = (code, status) => uploadErrorText({ code, status, message: 'detail' });
  assert.equal(t('unsupported_media_type', 415).title, 'This file could not be read as a photo');
  assert.equal(t('bad_image', 400).title, 'This file could not be read as a photo');
  assert.match(t('bad_image', 400).text, /JPEG and PNG/);
  assert.match(t('image_too_large', 400).text, /8192 pixels a side and 40 megapixels/);
  assert.match(t('payload_too_large', 413).text, /^strata takes images up to 10\u00a0MB\./);
  assert.equal(t('busy', 503).title, 'The server is busy');
  assert.equal(t('analysing', 409).title, 'This model is still being analysed');
  assert.equal(t('cancelled', 503).title, 'The upload was cut off');
  assert.equal(t('network', 0).title, 'Could not reach the strata server');
  assert.equal(t('something_new', 500).title, 'No answer for this image');
  // No developer words in what a person reads first.
  for (const code of ['unsupported_media_type', 'bad_image', 'image_too_large', 'payload_too_large', 'bad_input', 'busy']) {
    const { title, text } = t(code, 400);
    assert.doesNotMatch(`${title} ${text}`, /multipart|form field|bytes starting|Content-Type|\b4\d\d\b|_/);
  }
});

// --- home and out-of-model choices ----------------------------------------------

const MODELS = [
  { id: 'felines-seed', dataset: 'felines', classes: ['cheetah', 'jaguar', 'leopard', 'tiger'], layers: 7, test_accuracy: 0.61, seed_architecture: true, analysis: 'ready' },
  { id: 'felines', dataset: 'felines', classes: ['cheetah', 'jaguar', 'leopard', 'tiger'], layers: 14, test_accuracy: 0.79, seed_architecture: false, analysis: 'ready' },
  { id: 'paysages', dataset: 'paysages', classes: ['buildings', 'forest', 'glacier', 'mountain', 'sea', 'street'], layers: 14, test_accuracy: 0.8, seed_architecture: false, analysis: 'analysing' },
  { id: 'paysages-seed', dataset: 'paysages', classes: ['buildings', 'forest', 'glacier', 'mountain', 'sea', 'street'], layers: 7, test_accuracy: 0.7, seed_architecture: true, analysis: 'ready' },
  { id: 'transports-seed', dataset: 'transports', classes: ['airplane', 'boat', 'car', 'motorcycle'], layers: 7, test_accuracy: 0.9, seed_architecture: true, analysis: 'ready' },
  { id: 'transports', dataset: 'transports', classes: ['airplane', 'boat', 'car', 'motorcycle'], layers: 14, test_accuracy: 0.85, seed_architecture: false, analysis: 'ready' },
];

test('datasetsOf: one entry per dataset in the issue\'s order, best model by accuracy', () => {
  const ds = datasetsOf(MODELS);
  assert.deepEqual(ds.map((d) => d.dataset), ['paysages', 'transports', 'felines']);
  assert.deepEqual(ds.map((d) => d.best.id), ['paysages', 'transports-seed', 'felines']);
  assert.deepEqual(ds.map((d) => d.others.map((o) => o.id)), [['paysages-seed'], ['transports'], ['felines-seed']]);
  // Unknown accuracy ranks last; ties go to the deep model.
  const tie = datasetsOf([
    { ...MODELS[0], test_accuracy: null }, { ...MODELS[1], test_accuracy: null },
  ]);
  assert.equal(tie[0].best.id, 'felines');
});

test('pickOutside: two classes of every other dataset, served by an analysed model', () => {
  const felines = MODELS[1];
  const picks = pickOutside(felines, MODELS);
  // paysages (6 classes): indices floor(6/3) = 2, floor(12/3) = 4 -> glacier, sea; its deep model is
  // still analysing so the seed one serves. transports (4): floor(4/3) = 1, floor(8/3) = 2 -> boat, car.
  assert.deepEqual(picks.map((p) => `${p.source}:${p.image}`), [
    'paysages-seed:glacier/0000.jpg', 'paysages-seed:sea/0000.jpg',
    'transports:boat/0000.jpg', 'transports:car/0000.jpg',
  ]);
  assert.ok(picks.every((p) => p.dataset !== 'felines'));
  assert.deepEqual(pickOutside(felines, MODELS.filter((m) => m.dataset === 'felines')), []);
});
