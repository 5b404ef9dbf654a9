// importlogic.test.mjs — the "Your model" form's logic under Node
// (web/importcheck.js): ids from titles, the normalisation presets, the
// checks made before sending, the meta field of POST /api/models, what a
// model file's ONNX metadata says (read from protobuf bytes built here), the
// report and refusals in words, the progress in words; and the home page
// keeping imported models out of the demo dataset cards.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  idFromTitle, validId, ID_MAX, NORMALISATIONS, presetOf, parseClassNames, checkFile, buildMeta, limitsOf,
  DEFAULT_LIMITS, progressText, progressShare, analysisText, reportText, importErrorText,
  NORM_FROM_FILE, readOnnxMetadata, fileMetaOf, fileFields, fieldsText, fileMetaText,
} from '../../web/importcheck.js';
import { datasetsOf, ownModels } from '../../web/home.js';
import { pathsFigure, pathsMinWidth } from '../../web/pathsgraph.js';

const MB = 1024 * 1024;
const file = (name, size) => ({ name, size });

test('idFromTitle: lower case, [a-z0-9-], no hyphen at either end, at most 63 characters', () => {
  assert.equal(idFromTitle('My ResNet'), 'my-resnet');
  assert.equal(idFromTitle('  My ResNet-18 (v2)!  '), 'my-resnet-18-v2');
  assert.equal(idFromTitle('Écureuils et félins'), 'ecureuils-et-felins');
  assert.equal(idFromTitle('a___b...c'), 'a-b-c');
  assert.equal(idFromTitle('日本語'), '');
  assert.equal(idFromTitle(''), '');
  assert.equal(idFromTitle(null), '');
  const long = idFromTitle('x'.repeat(62) + ' yz');
  assert.equal(long.length, ID_MAX - 1, 'the cut falls on the hyphen, which is dropped');
  assert.equal(long, 'x'.repeat(62));
  assert.equal(idFromTitle('a'.repeat(100)).length, 63);
  for (const t of ['My ResNet', 'a'.repeat(100), '--x--', 'Tigre & Léopard 2']) assert.ok(validId(idFromTitle(t)), t);
});

test('validId: the ids the server takes', () => {
  for (const ok of ['a', 'my-resnet', 'r2', '0', 'a'.repeat(63)]) assert.ok(validId(ok), ok);
  for (const bad of ['', 'My-ResNet', 'my resnet', '-a', 'a-', 'a_b', 'a/b', 'a'.repeat(64), 'é']) assert.ok(!validId(bad), bad);
});

test('normalisation presets: [0, 1], ImageNet, [-1, 1], and custom for anything else', () => {
  const by = Object.fromEntries(NORMALISATIONS.map((n) => [n.key, n]));
  assert.deepEqual(by.unit.mean, [0, 0, 0]); assert.deepEqual(by.unit.std, [1, 1, 1]);
  assert.deepEqual(by.imagenet.mean, [0.485, 0.456, 0.406]); assert.deepEqual(by.imagenet.std, [0.229, 0.224, 0.225]);
  assert.deepEqual(by.symmetric.mean, [0.5, 0.5, 0.5]); assert.deepEqual(by.symmetric.std, [0.5, 0.5, 0.5]);
  assert.equal(by.symmetric.label, '[-1, 1]');
  // The presets do what their labels say: pixel 0 and 255 land on the range's ends.
  const x = (p, n, c) => (p / 255 - n.mean[c]) / n.std[c];
  assert.equal(x(0, by.unit, 0), 0); assert.equal(x(255, by.unit, 0), 1);
  assert.equal(x(0, by.symmetric, 1), -1); assert.equal(x(255, by.symmetric, 1), 1);
  assert.equal(presetOf([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), 'imagenet');
  assert.equal(presetOf([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), 'symmetric');
  assert.equal(presetOf([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]), 'custom');
  assert.equal(presetOf(null, null), 'custom');
});

test('parseClassNames: commas or lines, blanks dropped', () => {
  assert.deepEqual(parseClassNames('cheetah, jaguar,leopard ,tiger'), ['cheetah', 'jaguar', 'leopard', 'tiger']);
  assert.deepEqual(parseClassNames('cheetah\njaguar\r\n\n leopard \n'), ['cheetah', 'jaguar', 'leopard']);
  assert.deepEqual(parseClassNames('a,\nb'), ['a', 'b']);
  assert.deepEqual(parseClassNames(''), []);
});

test('checkFile: the name and the server\'s limit, in words', () => {
  assert.equal(checkFile(file('net.onnx', 1000), 'model', 300 * MB), null);
  assert.equal(checkFile(file('NET.ONNX', 1000), 'model', 300 * MB), null);
  assert.match(checkFile(file('net.pt', 1000), 'model', 300 * MB), /“net\.pt” is not an ONNX file/);
  assert.match(checkFile(file('net.onnx', 0), 'model', 300 * MB), /empty/);
  assert.match(checkFile(file('net.onnx', 301 * MB), 'model', 300 * MB),
    /too big: 301\u00a0MB, and this server takes models up to 300\u00a0MB/);
  assert.match(checkFile(null, 'model', 1), /Choose the model file/);
  for (const ok of ['a.zip', 'a.tar.gz', 'a.TGZ', 'a.tar']) assert.equal(checkFile(file(ok, 5), 'archive', MB), null, ok);
  for (const bad of ['a.rar', 'a.7z', 'a.gz', 'zip']) assert.match(checkFile(file(bad, 5), 'archive', MB), /not an archive strata reads/, bad);
  assert.match(checkFile(file('a.zip', 2 * MB), 'archive', MB), /archives up to 1\u00a0MB/);
});

test('limitsOf: the server\'s MB (2^20 bytes), defaults for what it does not say', () => {
  assert.deepEqual(limitsOf({ max_model_mb: 5, max_archive_mb: 7 }), { model: 5 * MB, archive: 7 * MB });
  assert.deepEqual(limitsOf({}), DEFAULT_LIMITS);
  assert.deepEqual(limitsOf(null), { model: 300 * MB, archive: 1024 * MB });
});

const FORM = {
  modelFile: file('residual.onnx', 2 * MB), title: 'My ResNet', id: '', classesFrom: 'images', classesText: '',
  norm: 'imagenet', mean: ['', '', ''], std: ['', '', ''], height: '', width: '',
  imagesFrom: 'archive', dataset: 'felines', archiveFile: file('felines.zip', 10 * MB),
};

test('buildMeta: the meta field for an archive, classes from the folders, a preset', () => {
  const { meta, errors } = buildMeta(FORM);
  assert.deepEqual(errors, {});
  assert.deepEqual(meta, { title: 'My ResNet', id: 'my-resnet', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  assert.ok(!('dataset' in meta), 'an archive is sent, so no dataset');
  assert.ok(!('classes' in meta), 'classes from the images: the server reads the folders');
});

test('buildMeta: a server dataset, typed classes, custom normalisation, an input size, a typed id', () => {
  const { meta, errors } = buildMeta({ ...FORM, id: 'cats-2', imagesFrom: 'dataset', archiveFile: null,
    classesFrom: 'typed', classesText: 'cheetah\njaguar, leopard\ntiger', norm: 'custom',
    mean: ['0.4', '0,5', '0.6'], std: ['0.2', '0.25', '0.3'], height: '64', width: '80' });
  assert.deepEqual(errors, {});
  assert.deepEqual(meta, { title: 'My ResNet', id: 'cats-2', classes: ['cheetah', 'jaguar', 'leopard', 'tiger'],
    dataset: 'felines', mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3], input: [64, 80] });
});

test('buildMeta: every mistake named on its own field, nothing built', () => {
  const { meta, errors } = buildMeta({ ...FORM, modelFile: file('x.h5', 10), title: '  ', id: 'Bad Id',
    classesFrom: 'typed', classesText: 'cat, cat', norm: 'custom', mean: ['0', '0', ''], std: ['1', '1', '1'],
    height: '64', width: '', archiveFile: file('x.rar', 10), fileMeta: fileMetaOf({}) });
  assert.equal(meta, null);
  assert.deepEqual(Object.keys(errors).sort(), ['classes', 'id', 'images', 'input', 'model', 'norm', 'title']);
  assert.match(errors.title, /This file carries no title of its own: give the model one/);
  assert.match(errors.id, /“Bad Id” cannot be an id/);
  assert.match(errors.classes, /“cat” is typed twice/);
  assert.match(errors.norm, /a number for each/);
  assert.match(errors.input, /both the height and the width/);
  assert.match(buildMeta({ ...FORM, norm: 'custom', mean: ['0', '0', '0'], std: ['1', '0', '1'] }).errors.norm, /above 0/);
  assert.match(buildMeta({ ...FORM, norm: 'custom', mean: ['0', '0', '0'], std: ['1', '-1', '1'] }).errors.norm, /above 0/);
  assert.match(buildMeta({ ...FORM, classesFrom: 'typed', classesText: 'one' }).errors.classes, /at least two/);
  assert.match(buildMeta({ ...FORM, height: '64.5', width: '64' }).errors.input, /whole numbers/);
  assert.match(buildMeta({ ...FORM, title: '日本語' }).errors.id, /type an id/);
  assert.match(buildMeta({ ...FORM, imagesFrom: 'dataset', dataset: '' }).errors.images, /Pick one of the server's datasets/);
  assert.match(buildMeta({ ...FORM, archiveFile: null }).errors.images, /Choose the archive/);
  // Over the server's own limits.
  const small = { model: MB, archive: 5 * MB };
  const over = buildMeta(FORM, small).errors;
  assert.match(over.model, /models up to 1\u00a0MB/);
  assert.match(over.images, /archives up to 5\u00a0MB/);
});

// --- a model file's own metadata -------------------------------------------------

const varintBytes = (n) => {
  const out = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return out;
};
const lenField = (field, bytes) => [...varintBytes(field * 8 + 2), ...varintBytes(bytes.length), ...bytes];
const utf8 = (s) => [...new TextEncoder().encode(s)];
const entry = (k, v) => lenField(14, [...lenField(1, utf8(k)), ...lenField(2, utf8(v))]);

/** A ModelProto's bytes as protobuf-c and PyTorch write them: ir_version
 *  (a varint), producer_name, a graph of `graphBytes` bytes, an opset, then
 *  the metadata entries; a fixed64 and a fixed32 field too, as any
 *  well-formed message may hold. */
function modelBytes(props, graphBytes = 5000) {
  return new Uint8Array([
    ...varintBytes(1 * 8 + 0), ...varintBytes(8),
    ...lenField(2, utf8('strata')),
    ...lenField(7, new Array(graphBytes).fill(0xff)),
    ...lenField(8, [...varintBytes(2 * 8 + 0), 13]),
    ...varintBytes(30 * 8 + 1), 1, 2, 3, 4, 5, 6, 7, 8,
    ...varintBytes(31 * 8 + 5), 1, 2, 3, 4,
    ...Object.entries(props).flatMap(([k, v]) => entry(k, v)),
  ]);
}

test('readOnnxMetadata: the metadata entries of an ONNX file, its graph skipped, junk refused', async () => {
  const props = { 'strata.classes': '["cheetah","jaguar"]', 'strata.title': 'Félins (seed)', other: '' };
  assert.deepEqual(await readOnnxMetadata(new Blob([modelBytes(props)])), props);
  assert.deepEqual(await readOnnxMetadata(new Blob([modelBytes({}, 300000)])), {});
  // Only small pieces are read: never the graph itself.
  const big = new Blob([modelBytes({ 'strata.title': 'x' }, 3 << 20)]);
  let read = 0;
  const spy = { size: big.size, slice: (a, b) => { read += Math.min(b, big.size) - a; return big.slice(a, b); } };
  assert.deepEqual(await readOnnxMetadata(spy), { 'strata.title': 'x' });
  assert.ok(read < 500, `${read} bytes read`);
  // The first entry of a key wins, as on the server.
  const twice = new Uint8Array([...modelBytes({ 'strata.title': 'first' }), ...entry('strata.title', 'second')]);
  assert.deepEqual(await readOnnxMetadata(new Blob([twice])), { 'strata.title': 'first' });
  // Not a protobuf message, cut short, a length past the end: null.
  assert.equal(await readOnnxMetadata(new Blob(['This is a text file, not a model.\n'])), null);
  const whole = modelBytes(props);
  assert.equal(await readOnnxMetadata(new Blob([whole.subarray(0, whole.length - 3)])), null);
  assert.equal(await readOnnxMetadata(new Blob([new Uint8Array(lenField(7, [1, 2, 3]).slice(0, 3))])), null);
  assert.equal(await readOnnxMetadata(new Blob([new Uint8Array([0x0b, 1])])), null, 'wire type 3 (groups)');
  assert.deepEqual(await readOnnxMetadata(new Blob([])), {});
});

test('fileMetaOf: what the server takes from the metadata, checked as it checks it', () => {
  const good = fileMetaOf({ 'strata.title': 'Felines (seed architecture)', 'strata.classes': '["cheetah","jaguar","leopard","tiger"]',
    'strata.mean': '[0.5,0.5,0.5]', 'strata.std': '[0.25,0.25,0.25]', 'onnx.other': 'x' });
  assert.deepEqual(good, { ignored: [], title: 'Felines (seed architecture)', classes: ['cheetah', 'jaguar', 'leopard', 'tiger'],
    mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  assert.deepEqual(fileFields(good), ['title', 'classes', 'mean', 'std']);
  assert.deepEqual(fileMetaOf({}), { ignored: [] });
  assert.deepEqual(fileFields(fileMetaOf({})), []);
  assert.deepEqual(fileFields(null), []);
  const bad = (k, v) => fileMetaOf({ [`strata.${k}`]: v }).ignored;
  for (const [k, v] of [['title', ''], ['title', 'é'.repeat(101)], ['classes', '["a","b"'], ['classes', '["a"]'],
    ['classes', '["a","a"]'], ['classes', '["a",""]'], ['classes', '{"a":1}'], ['classes', `["${'x'.repeat(256)}","b"]`],
    ['mean', '[0.5,0.5]'], ['mean', '[0.5,"0.5",0.5]'], ['mean', '[1e999,0,0]'], ['std', '[1,0,1]'], ['std', '[1,-1,1]'],
    ['std', 'nope']]) {
    assert.deepEqual(bad(k, v), [k], `${k} = ${v}`);
  }
  assert.deepEqual(fileMetaOf({ 'strata.title': 'x'.repeat(200), 'strata.mean': '[-2,0,1e6]' }),
    { ignored: [], title: 'x'.repeat(200), mean: [-2, 0, 1e6] });
});

test('fileMetaText and fieldsText: what the file says, in words', () => {
  assert.equal(fieldsText(['title', 'classes', 'mean', 'std']), 'title, classes, mean and std');
  assert.equal(fieldsText(['mean']), 'mean');
  assert.equal(fieldsText([]), '');
  const fm = fileMetaOf({ 'strata.title': 'Felines', 'strata.classes': '["cheetah","jaguar"]',
    'strata.mean': '[0.5,0.5,0.5]', 'strata.std': '[0,1,1]' });
  assert.equal(fileMetaText(fm), 'This file says the title “Felines”, 2 classes (cheetah, jaguar) and mean 0.5, 0.5, 0.5: ' +
    'each is used unless you fill in its field below. Its std is not usable and will be left out.');
  assert.match(fileMetaText(fileMetaOf({})), /carries no title, classes or normalisation of its own/);
  assert.equal(fileMetaText(null), '');
  const many = fileMetaOf({ 'strata.classes': JSON.stringify(Array.from({ length: 1000 }, (_, i) => `c${i}`)) });
  assert.match(fileMetaText(many), /1000 classes \(c0, c1, c2, c3, c4, c5, …\)/);
});

test('buildMeta: fields left empty are left out, for the server to take from the file', () => {
  const fm = fileMetaOf({ 'strata.title': 'Felines (seed architecture)', 'strata.mean': '[0.5,0.5,0.5]' });
  // The file's title gives the id the page shows; "From the file" sends no normalisation.
  let { meta, errors } = buildMeta({ ...FORM, title: '', norm: NORM_FROM_FILE.key, fileMeta: fm });
  assert.deepEqual(errors, {});
  assert.deepEqual(meta, { id: 'felines-seed-architecture' });
  // What the file says is not known yet (or cannot be read here): the server decides.
  ({ meta, errors } = buildMeta({ ...FORM, title: ' ', norm: 'file' }));
  assert.deepEqual(errors, {});
  assert.deepEqual(meta, {});
  // A typed title and id win.
  ({ meta } = buildMeta({ ...FORM, title: 'Mine', id: 'mine-2', norm: 'file', fileMeta: fm }));
  assert.deepEqual(meta, { title: 'Mine', id: 'mine-2' });
  // A file whose title has no letter a–z for an id: the server makes one.
  ({ meta } = buildMeta({ ...FORM, title: '', fileMeta: fileMetaOf({ 'strata.title': '日本語' }) }));
  assert.deepEqual(meta, { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] });
  // A file known to carry no title: the title is asked for before sending.
  ({ meta, errors } = buildMeta({ ...FORM, title: '', fileMeta: fileMetaOf({ 'strata.title': '' }) }));
  assert.equal(meta, null);
  assert.deepEqual(Object.keys(errors), ['title']);
  assert.equal(NORM_FROM_FILE.key, 'file');
  assert.ok(!NORMALISATIONS.some((n) => n.key === 'file'), 'not a preset: presetOf never answers it');
});

test('progress and analysis state in words', () => {
  assert.equal(progressText({ stage: 'forward', done: 340, total: 1200 }), 'forward 340/1200 images');
  assert.equal(analysisText('analysing', { stage: 'forward', done: 340, total: 1200 }), 'analysing: forward 340/1200 images');
  assert.equal(progressText({ stage: 'clustering', done: 8, total: 16 }), 'clustering 8/16 layers');
  assert.equal(progressText({ stage: 'loading images', done: 20, total: 60 }), 'loading images 20/60');
  assert.equal(progressText({ stage: 'kmeans', done: 3, total: 14 }), 'kmeans 3/14');
  assert.equal(progressText({ stage: 'loading' }), 'loading');
  assert.equal(progressText(null), '');
  assert.equal(analysisText('analysing', null), 'analysing');
  assert.equal(analysisText({ state: 'queued' }), 'queued: waiting for its turn');
  assert.equal(progressShare({ stage: 'forward', done: 300, total: 1200 }), 0.25);
  assert.equal(progressShare({ stage: 'forward', done: 5, total: 0 }), null);
  assert.equal(progressShare(null), null);
});

test('reportText: the import report in words', () => {
  const r = reportText({ format: 'zip', entries: 1234, images: 1200,
    classes: [{ name: 'cheetah', train: 240, test: 60 }, { name: 'tiger', train: 720, test: 180 }],
    split: 'made', split_note: 'no train/test folders: 20 % of each class kept for testing (seed 0)',
    skipped: [{ entry: 'a/../../x', reason: 'escapes the folder' }], n_skipped: 3 });
  assert.equal(r.summary, '1200 images of 2 classes kept from 1234 entries of the archive.');
  assert.equal(r.format, 'Archive format: zip.');
  assert.match(r.split, /no train\/ and test\/ folders: strata kept 20\u00a0% of each class/);
  assert.equal(reportText({ split: 'other', split_note: 'kept as given' }).split, 'Kept as given.');
  assert.deepEqual(r.total, { train: 960, test: 240 });
  assert.equal(r.nSkipped, 3);
  assert.equal(r.more, 2);
  const d = reportText({ images: 10, classes: [{ name: 'a', train: 8, test: 2 }], split: 'dataset', skipped: [], n_skipped: 0 });
  assert.equal(d.summary, '10 images of 1 class kept from the server\'s dataset.');
  assert.equal(d.format, '');
  assert.match(d.split, /dataset's own train and test/);
  assert.equal(reportText({ split: 'archive' }).split, 'The archive\'s own train/ and test/ folders were kept as they are.');
});

test('importErrorText: refusals in plain words, the server\'s sentence kept', () => {
  const e = (status, code, message) => ({ status, code, message });
  const bad = importErrorText(e(400, 'bad_input', 'The file is not an ONNX model.'));
  assert.equal(bad.text, 'The file is not an ONNX model.');
  assert.match(bad.title, /could not import/);
  const taken = importErrorText(e(409, 'exists', 'A model with the id "x" exists.'));
  assert.equal(taken.field, 'id');
  assert.match(taken.text, /exists\. Type another id/);
  assert.match(importErrorText(e(503, 'busy', 'Too many imports.')).text, /Try again in a minute/);
  assert.match(importErrorText(e(0, 'network', 'x')).text, /300\u00a0MB.*1024\u00a0MB/);
  assert.match(importErrorText(e(413, 'too_large', '')).text, /up to 300\u00a0MB/);
  const untitled = importErrorText(e(400, 'bad_input', 'give the model a title (meta.title): the form leaves it empty and the file carries none'));
  assert.equal(untitled.field, 'title');
  assert.match(untitled.text, /carries none/);
});

test('home: imported models get their own cards, never a demo dataset card', () => {
  const models = [
    { id: 'felines', dataset: 'felines', test_accuracy: 0.8, seed_architecture: false },
    { id: 'mine', title: 'Mine', dataset: 'felines', test_accuracy: 0.99, seed_architecture: false, uploaded: true },
    { id: 'abc', title: 'Abc', dataset: 'abc', uploaded: true },
  ];
  const ds = datasetsOf(models);
  assert.deepEqual(ds.map((d) => d.dataset), ['felines']);
  assert.equal(ds[0].best.id, 'felines', 'a more accurate imported model does not take the card');
  assert.deepEqual(ds[0].others, []);
  assert.deepEqual(ownModels(models).map((m) => m.id), ['abc', 'mine']);
});

test('pathsMinWidth: the long layer names of an imported model get room, short ones keep 64 px', () => {
  // One image of class "cat" through two layers named as given.
  const fig = ([a, b]) => pathsFigure({
    classes: ['cat'],
    dimensions: [{ label: 'true class', kind: 'true' }, { label: a, kind: 'layer', layer: 0, k: 1 },
      { label: b, kind: 'layer', layer: 1, k: 1 }, { label: 'predicted', kind: 'pred' }],
    images: { true: [0], pred: [0], clusters: [[0, 0]] },
  });
  // Margins: half of "true class" (70 px) and of "predicted" (63 px) over a
  // 14 px bar, + 4: 32 and 29; the bar, 14 px; then 3 steps.
  assert.equal(pathsMinWidth(fig(['conv1', 'dense1'])), 32 + 29 + 14 + 3 * 64);
  // "blocks.0/Relu_1" beside "blocks.1/Relu_1": 15 characters each, 7 × 15 + 10 = 115 px.
  assert.equal(pathsMinWidth(fig(['blocks.0/Relu_1', 'blocks.1/Relu_1'])), 32 + 29 + 14 + 3 * 115);
});
