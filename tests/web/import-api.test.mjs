// import-api.test.mjs — models made through the API (POST /api/models,
// DELETE /api/models/{id}, GET /api/datasets), end to end against a real
// `strata serve` with a temporary workspace.
//
// The ONNX file is one of strata's own demo models written by `strata
// export` (so the test needs no PyTorch); the photos are a .zip and a
// .tar.gz built here from ../shared/datasets/felines with Python's zipfile
// and tarfile (hostile entries included: "..", absolute paths, links). What
// each import gives is checked against what the test knows: the class
// counts it packed, the split it asked for or let strata make, the files
// under the workspace (and nothing outside it), and every view's answer on
// the imported model. The metadata strata export writes (strata.title,
// .classes, .mean, .std) is read, stripped and rewritten here with a small
// protobuf walk of the file's top level, independent of the server's.

import { test as nodeTest, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ROOT, BIN, WAIT_MS, sleep, startServer, stopServer, call, assertError, raw } from './http-helpers.mjs';

const DATA = path.resolve(ROOT, '../shared/datasets');
const FELINES = path.join(DATA, 'felines');
const NO_DATA = !fs.existsSync(FELINES) && `no dataset at ${FELINES}`;
const test = (name, fn) => nodeTest(name, { skip: NO_DATA }, fn);
const CLASSES = ['cheetah', 'jaguar', 'leopard', 'tiger'];
const PER_CLASS = 15; // photos per class in the archives

let tmp, ws, onnx, seedOnnx, bareOnnx, srv;

// --- the metadata_props of an ONNX file (ModelProto field 14: entries of
// StringStringEntryProto {1: key, 2: value}), read and written here ---------

function readVarint(buf, pos) {
  let v = 0, mul = 1, b;
  do { b = buf[pos++]; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
  return [v, pos];
}

function varintBytes(n) {
  const out = [];
  do { let b = n % 128; n = Math.floor(n / 128); if (n) b |= 0x80; out.push(b); } while (n);
  return Buffer.from(out);
}

/** The top-level fields of a protobuf message: [{field, start, end, body}]. */
function pbFields(buf) {
  const out = [];
  for (let pos = 0; pos < buf.length;) {
    const start = pos;
    const [tag, p] = readVarint(buf, pos);
    const wire = tag & 7;
    let body = null;
    if (wire === 0) pos = readVarint(buf, p)[1];
    else if (wire === 1) pos = p + 8;
    else if (wire === 5) pos = p + 4;
    else if (wire === 2) { const [len, q] = readVarint(buf, p); body = buf.subarray(q, q + len); pos = q + len; }
    else throw new Error(`wire type ${wire} at ${start}`);
    out.push({ field: Math.floor(tag / 8), start, end: pos, body });
  }
  return out;
}

/** The metadata of an ONNX file's bytes: {key: value} (the first of a key). */
function metadataOf(buf) {
  const props = {};
  for (const f of pbFields(buf).filter((x) => x.field === 14)) {
    const e = Object.fromEntries(pbFields(f.body).map((x) => [x.field, x.body.toString('utf8')]));
    if (!(e[1] in props)) props[e[1]] = e[2];
  }
  return props;
}

/** The ONNX file's bytes with its metadata replaced by `props` (none: stripped). */
function withMetadata(buf, props = {}) {
  const lenField = (field, bytes) => Buffer.concat([varintBytes(field * 8 + 2), varintBytes(bytes.length), bytes]);
  const parts = pbFields(buf).filter((f) => f.field !== 14).map((f) => buf.subarray(f.start, f.end));
  for (const [k, v] of Object.entries(props)) {
    parts.push(lenField(14, Buffer.concat([lenField(1, Buffer.from(k)), lenField(2, Buffer.from(v))])));
  }
  return Buffer.concat(parts);
}

/** Runs python3 with a script; throws with its stderr on failure. */
function python(script, ...args) {
  const r = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return r.stdout;
}

/** The first n photos of each class of felines/train, as [class, path]. */
function photos(n) {
  return CLASSES.flatMap((c) => fs.readdirSync(path.join(FELINES, 'train', c)).sort().slice(0, n)
    .map((f) => [c, path.join(FELINES, 'train', c, f)]));
}

/** A .zip (or .tar.gz) whose entries are [name, path-of-content | {link} | {text}]. */
function archive(file, entries) {
  python(`
import json, sys, tarfile, zipfile, io
out, entries = sys.argv[1], json.loads(sys.argv[2])
def data(e):
    if isinstance(e, str): return open(e, 'rb').read()
    return e.get('text', '').encode()
if out.endswith('.zip'):
    with zipfile.ZipFile(out, 'w') as z:
        for name, e in entries:
            if isinstance(e, dict) and 'link' in e:
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o120777 << 16)
                z.writestr(info, e['link'])
            else:
                z.writestr(name, data(e))
else:
    with tarfile.open(out, 'w:gz') as t:
        for name, e in entries:
            info = tarfile.TarInfo(name)
            if isinstance(e, dict) and 'link' in e:
                info.type = tarfile.SYMTYPE
                info.linkname = e['link']
                t.addfile(info)
            else:
                b = data(e)
                info.size = len(b)
                t.addfile(info, io.BytesIO(b))
`, file, JSON.stringify(entries));
  return file;
}

/** multipart/form-data for POST /api/models. */
function form({ meta, model = onnx, images = null }) {
  const fd = new FormData();
  fd.append('meta', new Blob([typeof meta === 'string' ? meta : JSON.stringify(meta)], { type: 'application/json' }));
  if (model) fd.append('model', new Blob([fs.readFileSync(model)]), path.basename(model));
  if (images) fd.append('images', new Blob([fs.readFileSync(images)]), path.basename(images));
  return { method: 'POST', body: fd };
}

async function waitReady(id) {
  const t0 = Date.now();
  let last;
  for (;;) {
    last = (await call(srv, `/api/models/${id}`)).json();
    if (last.analysis.state === 'ready' && last.doubt.state !== 'pending' && last.doubt.evaluation !== 'pending') return last;
    if (last.analysis.state === 'failed') throw new Error(`analysis of ${id} failed: ${last.analysis.error}`);
    if (Date.now() - t0 > WAIT_MS) throw new Error(`${id} not ready: ${JSON.stringify(last)}\n${srv.stderr}`);
    await sleep(100);
  }
}

/** Every file under dir, relative, sorted. */
function tree(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

before(async () => {
  if (NO_DATA) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-import-api-'));
  ws = path.join(tmp, 'ws');
  onnx = path.join(tmp, 'felines.onnx');
  const r = spawnSync(BIN, ['export', 'felines', '--out', onnx], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // one demo model beside the imports (it must not be deletable), so that
  // the server's background work is the imports' own
  fs.cpSync(path.join(ROOT, 'models', 'felines-seed'), path.join(tmp, 'models', 'felines-seed'), { recursive: true });
  // that model exported (its metadata says its title, classes, mean and
  // std), and the same file without metadata, as other exporters write it
  seedOnnx = path.join(tmp, 'felines-seed.onnx');
  const e = spawnSync(BIN, ['export', 'felines-seed', '--out', seedOnnx, '--models', path.join(tmp, 'models')], { encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  bareOnnx = path.join(tmp, 'bare.onnx');
  fs.writeFileSync(bareOnnx, withMetadata(fs.readFileSync(seedOnnx)));
  srv = await startServer(serveArgs());
});

function serveArgs() {
  return ['--models', path.join(tmp, 'models'), '--data', DATA, '--cache', path.join(tmp, 'cache'),
    '--workspace', ws, '--max-model-mb', '5', '--max-archive-mb', '8', '--quiet'];
}

after(async () => {
  if (srv) {
    const st = await stopServer(srv);
    assert.deepEqual(st, { code: 0, signal: null }, srv.stderr);
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('GET /api/datasets lists the server datasets with their classes and counts', async () => {
  const r = await call(srv, '/api/datasets');
  assert.equal(r.status, 200);
  const f = r.json().datasets.find((d) => d.name === 'felines');
  assert.deepEqual(f.classes, CLASSES);
  const count = (split) => CLASSES.reduce((n, c) => n + fs.readdirSync(path.join(FELINES, split, c)).length, 0);
  assert.equal(f.train, count('train'));
  assert.equal(f.test, count('test'));
  const h = (await call(srv, '/api/health')).json();
  assert.equal(h.imports, true);
  assert.equal(h.max_model_mb, 5);
  assert.equal(h.max_archive_mb, 8);
});

test('an ONNX model with a .zip of class folders: imported, analysed, every view answers, then deleted', async () => {
  const entries = photos(PER_CLASS).map(([c, p], i) => [`my photos/${c}/${i}.jpg`, p]);
  entries.push(['my photos/notes.txt', { text: 'not an image' }]);
  entries.push(['../outside.jpg', entries[0][1]]);
  entries.push(['/tmp/strata-absolute.jpg', entries[0][1]]);
  entries.push(['my photos/cheetah/link.jpg', { link: '/etc/passwd' }]);
  const zip = archive(path.join(tmp, 'photos.zip'), entries);
  const r = await call(srv, '/api/models', form({
    meta: { title: 'My felines net', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, images: zip }));
  assert.equal(r.status, 201, r.text());
  const j = r.json();
  assert.equal(j.id, 'my-felines-net');
  assert.equal(r.headers.get('location'), '/api/models/my-felines-net');
  assert.equal(j.model.uploaded, true);
  assert.deepEqual(j.model.classes, CLASSES);
  const rep = j.report;
  assert.equal(rep.split, 'made');
  assert.match(rep.split_note, /20 %/);
  assert.equal(rep.images, 4 * PER_CLASS);
  for (const c of rep.classes) {
    assert.equal(c.train + c.test, PER_CLASS);
    assert.equal(c.test, Math.floor(PER_CLASS * 0.2));
  }
  const reasons = rep.skipped.map((s) => s.reason).join(' | ');
  assert.equal(rep.n_skipped, 4, reasons);
  assert.match(reasons, /escapes the folder/);
  assert.match(reasons, /absolute/);
  assert.match(reasons, /link/);
  assert.match(reasons, /not a \.jpg/);
  assert.ok(!fs.existsSync(path.join(ws, 'data', 'outside.jpg')) && !fs.existsSync('/tmp/strata-absolute.jpg'));
  // exactly the photos, under the workspace, as train/test/<class>/
  const files = tree(path.join(ws, 'data', j.id));
  assert.equal(files.length, 4 * PER_CLASS);
  assert.ok(files.every((f) => /^(train|test)\/(cheetah|jaguar|leopard|tiger)\/[^/]+\.jpg$/.test(f)), files.join(' '));
  assert.deepEqual(tree(path.join(ws, 'models', j.id)), ['import.json', 'model.json', 'model.onnx']);
  assert.ok(fs.readFileSync(path.join(ws, 'models', j.id, 'model.onnx')).equals(fs.readFileSync(onnx)));

  const d = await waitReady(j.id);
  assert.equal(d.uploaded, true);
  assert.equal(d.progress, null);
  assert.deepEqual(d.normalization, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  const nTest = rep.classes.reduce((n, c) => n + c.test, 0);
  assert.equal(d.analysis.n_images, nTest);
  // every view: paths, each layer's scatter and elbow, mistakes, a photo
  const paths = (await call(srv, `/api/models/${j.id}/paths`)).json();
  assert.equal(paths.images.id.length, nTest);
  assert.equal(paths.dimensions.filter((x) => x.kind !== 'true' && x.kind !== 'pred').length, d.layers.length);
  for (let l = 0; l < d.layers.length; l++) {
    const s = await call(srv, `/api/models/${j.id}/layers/${l}/scatter`);
    assert.equal(s.status, 200);
    assert.equal(s.json().points.id.length, nTest);
    assert.equal((await call(srv, `/api/models/${j.id}/layers/${l}/elbow`)).status, 200);
  }
  assert.equal((await call(srv, `/api/models/${j.id}/misclassified`)).status, 200);
  const photo = fs.readFileSync(path.join(FELINES, 'test', 'jaguar', fs.readdirSync(path.join(FELINES, 'test', 'jaguar')).sort()[0]));
  const fd = new FormData();
  fd.append('image', new Blob([photo], { type: 'image/jpeg' }), 'jaguar.jpg');
  const p = await call(srv, `/api/models/${j.id}/predict`, { method: 'POST', body: fd });
  assert.equal(p.status, 200, p.text());
  const pj = p.json();
  assert.equal(pj.probabilities.length, 4);
  assert.ok(CLASSES.includes(pj.predicted));
  assert.equal(pj.path.clusters.length, paths.dimensions.length - 2, JSON.stringify(pj.path));
  assert.ok(pj.doubt && typeof pj.doubt.score === 'number', JSON.stringify(pj.doubt));
  assert.ok(pj.explanation && pj.explanation.overlay, 'LIME explains the upload');

  // deleted: gone from the list, its files gone, the demo models untouched
  const del = await call(srv, `/api/models/${j.id}`, { method: 'DELETE' });
  assert.equal(del.status, 204);
  assertError(await call(srv, `/api/models/${j.id}`), 404, 'not_found');
  assert.ok(!(await call(srv, '/api/models')).json().models.some((m) => m.id === j.id));
  assert.ok(!fs.existsSync(path.join(ws, 'models', j.id)) && !fs.existsSync(path.join(ws, 'data', j.id)));
  assert.ok(fs.existsSync(path.join(tmp, 'models', 'felines-seed', 'model.json')));
  assertError(await call(srv, `/api/models/${j.id}`, { method: 'DELETE' }), 404, 'not_found');
});

test('a server dataset instead of an archive; the model persists across a restart', async () => {
  const r = await call(srv, '/api/models', form({ meta: { title: 'On felines', id: 'on-felines', dataset: 'felines' } }));
  assert.equal(r.status, 201, r.text());
  assert.equal(r.json().report.split, 'dataset');
  assert.ok(!fs.existsSync(path.join(ws, 'data', 'on-felines')));
  await waitReady('on-felines');
  // the same id again: 409, nothing changed
  assertError(await call(srv, '/api/models', form({ meta: { title: 'x', id: 'on-felines', dataset: 'felines' } })), 409, 'exists');

  const st = await stopServer(srv);
  assert.deepEqual(st, { code: 0, signal: null }, srv.stderr);
  srv = await startServer(serveArgs());
  const m = (await call(srv, '/api/models')).json().models.find((x) => x.id === 'on-felines');
  assert.ok(m && m.uploaded, 'the imported model is back after a restart');
  assert.equal((await call(srv, '/api/models/on-felines', { method: 'DELETE' })).status, 204);
  // the server's dataset is not touched by the delete
  assert.deepEqual(fs.readdirSync(path.join(FELINES, 'train')).sort(), CLASSES);
});

test('the layers shown: listed from the graph, chosen by name, analysed again; joins in the detail', async () => {
  const r = await call(srv, '/api/models', form({ meta: { title: 'layers', id: 'layers', dataset: 'felines' } }));
  assert.equal(r.status, 201, r.text());
  const before = await waitReady('layers');
  // a chain: each layer reads the one before, the first the image
  before.layers.forEach((l, i) => assert.deepEqual(l.inputs, [i - 1], l.name));
  const g = (await call(srv, '/api/models/layers/graph')).json();
  assert.ok(g.values.length >= before.layers.length - 2);
  assert.equal(g.chosen, null);
  const shownNow = g.values.filter((v) => v.shown !== null);
  assert.equal(shownNow.length, before.layers.length - 2);
  assert.ok(shownNow.every((v) => v.default));
  // two values by their ONNX names: the model shows those (and logits, probabilities)
  const pick = [g.values[g.values.length - 1], g.values[0]];
  const put = await call(srv, '/api/models/layers/layers', {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ shown: pick.map((v) => v.value) }) });
  assert.equal(put.status, 200, put.text());
  assert.deepEqual(put.json().layers.slice(0, 2).map((l) => l.name), [pick[1].name, pick[0].name]);
  const after = await waitReady('layers');
  assert.equal(after.layers.length, 4);
  assert.equal(after.analysis.layers, 4);
  assert.deepEqual(after.layers.map((l) => l.op || null).slice(0, 2), [pick[1].op, pick[0].op]);
  const s = await call(srv, '/api/models/layers/layers/1/scatter');
  assert.equal(s.status, 200);
  assert.equal(s.json().layer.name, pick[0].name);
  // a name that is not in the graph: 400, nothing changed
  const bad = await call(srv, '/api/models/layers/layers', {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"shown": ["nope"]}' });
  assert.match(assertError(bad, 400).message, /"nope" is not a value/);
  assert.equal((await call(srv, '/api/models/layers')).json().layers.length, 4);
  assertError(await call(srv, '/api/models/layers/layers', { method: 'PUT', body: '[1]' }), 400);
  const empty = await call(srv, '/api/models/layers/layers', { method: 'PUT', body: '{"shown": []}' });
  assert.match(assertError(empty, 400).message, /one or more/);
  assert.ok(!empty.text().includes(ws), 'no server path in the message');
  // back to strata's choice
  const back = await call(srv, '/api/models/layers/layers', {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"shown": null}' });
  assert.equal(back.json().layers.length, before.layers.length);
  // strata's own models show every layer
  assertError(await call(srv, '/api/models/felines-seed/graph'), 400, 'not_imported');
  assertError(await call(srv, '/api/models/felines-seed/layers', { method: 'PUT', body: '{"shown": null}' }), 400, 'not_imported');
  assert.equal((await call(srv, '/api/models/layers', { method: 'DELETE' })).status, 204);
});

test('an archive with train/ and test/ keeps its split; files beside them are left out', async () => {
  const entries = [];
  for (const [i, [c, p]] of photos(6).entries()) entries.push([`${i % 3 === 0 ? 'test' : 'train'}/${c}/${i}.jpg`, p]);
  entries.push(['cheetah/stray.jpg', entries[0][1]]);
  const tgz = archive(path.join(tmp, 'split.tar.gz'), entries);
  const r = await call(srv, '/api/models', form({ meta: { title: 'split', classes: CLASSES }, images: tgz }));
  assert.equal(r.status, 201, r.text());
  const rep = r.json().report;
  assert.equal(rep.split, 'archive');
  assert.match(rep.format, /tar/i);
  assert.equal(rep.images, 24);
  assert.equal(rep.classes.reduce((n, c) => n + c.test, 0), 8);
  assert.match(rep.skipped.map((s) => s.reason).join(), /beside them/);
  assert.equal((await call(srv, '/api/models/split', { method: 'DELETE' })).status, 204);
});

/** The probabilities `model` gives a photo through the API. */
async function probabilities(model, photo) {
  const fd = new FormData();
  fd.append('image', new Blob([fs.readFileSync(photo)], { type: 'image/jpeg' }), path.basename(photo));
  const r = await call(srv, `/api/models/${model}/predict?explain=0`, { method: 'POST', body: fd });
  assert.equal(r.status, 200, r.text());
  const probs = r.json().probabilities;
  assert.deepEqual(probs.map((x) => x.class), CLASSES);
  return probs.map((x) => x.probability);
}

test('a file strata exported, sent with only the photos: title, classes, mean and std from its metadata; its answers are the original\'s', async (t) => {
  const md = metadataOf(fs.readFileSync(seedOnnx));
  const original = JSON.parse(fs.readFileSync(path.join(tmp, 'models', 'felines-seed', 'model.json'), 'utf8'));
  // what strata export wrote is the original model's
  assert.equal(md['strata.title'], original.title);
  assert.deepEqual(JSON.parse(md['strata.classes']), original.classes);
  assert.deepEqual(JSON.parse(md['strata.mean']), original.normalization.mean);
  assert.deepEqual(JSON.parse(md['strata.std']), original.normalization.std);

  const zip = archive(path.join(tmp, 'seed-photos.zip'), photos(4).map(([c, p], i) => [`${c}/${i}.jpg`, p]));
  const r = await call(srv, '/api/models', form({ meta: {}, model: seedOnnx, images: zip }));
  assert.equal(r.status, 201, r.text());
  const j = r.json();
  assert.deepEqual(j.from_metadata, ['title', 'classes', 'mean', 'std']);
  assert.deepEqual(j.metadata_notes, []);
  assert.equal(j.id, 'felines-seed-architecture', 'the id comes from the file\'s title');
  const written = JSON.parse(fs.readFileSync(path.join(ws, 'models', j.id, 'model.json'), 'utf8'));
  assert.equal(written.title, md['strata.title']);
  assert.deepEqual(written.classes, JSON.parse(md['strata.classes']));
  assert.deepEqual(written.normalization, { mean: JSON.parse(md['strata.mean']), std: JSON.parse(md['strata.std']) });
  const record = JSON.parse(fs.readFileSync(path.join(ws, 'models', j.id, 'import.json'), 'utf8'));
  assert.deepEqual(record.from_metadata, j.from_metadata);
  const d = await waitReady(j.id);
  assert.equal(d.title, original.title);
  assert.deepEqual(d.classes, original.classes);
  assert.deepEqual(d.normalization, original.normalization);

  // the same photos get the same answers as from the model it was exported from
  await waitReady('felines-seed');
  for (const c of ['cheetah', 'tiger']) {
    const photo = path.join(FELINES, 'test', c, fs.readdirSync(path.join(FELINES, 'test', c)).sort()[0]);
    const [want, got] = [await probabilities('felines-seed', photo), await probabilities(j.id, photo)];
    assert.equal(got.length, want.length);
    const diff = Math.max(...got.map((p, i) => Math.abs(p - want[i])));
    assert.ok(diff < 1e-5, `${c}: max difference ${diff}\n${want}\n${got}`);
    t.diagnostic(`${c}: largest difference from felines-seed's probabilities ${diff.toExponential(2)}`);
  }
  assert.equal((await call(srv, `/api/models/${j.id}`, { method: 'DELETE' })).status, 204);
});

test('the form\'s values win over the file\'s metadata; unusable metadata is noted, not fatal', async () => {
  // title and std given: classes and mean still come from the file
  let r = await call(srv, '/api/models', form({ meta: { title: 'Mine', std: [0.3, 0.3, 0.3], dataset: 'felines' }, model: seedOnnx }));
  assert.equal(r.status, 201, r.text());
  let j = r.json();
  assert.equal(j.id, 'mine');
  assert.deepEqual(j.from_metadata, ['classes', 'mean']);
  let written = JSON.parse(fs.readFileSync(path.join(ws, 'models', 'mine', 'model.json'), 'utf8'));
  assert.equal(written.title, 'Mine');
  assert.deepEqual(written.classes, CLASSES);
  assert.deepEqual(written.normalization, { mean: [0.5, 0.5, 0.5], std: [0.3, 0.3, 0.3] });
  assert.equal((await call(srv, '/api/models/mine', { method: 'DELETE' })).status, 204);
  // everything given: nothing from the file; null counts as left out
  r = await call(srv, '/api/models', form({ meta: { title: 'All mine', mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6],
    classes: CLASSES, input: null, dataset: 'felines' }, model: seedOnnx }));
  assert.equal(r.status, 201, r.text());
  assert.deepEqual(r.json().from_metadata, []);
  written = JSON.parse(fs.readFileSync(path.join(ws, 'models', 'all-mine', 'model.json'), 'utf8'));
  assert.deepEqual(written.normalization, { mean: [0.1, 0.2, 0.3], std: [0.4, 0.5, 0.6] });
  assert.equal((await call(srv, '/api/models/all-mine', { method: 'DELETE' })).status, 204);

  // malformed entries: each left out with a note, the defaults used, the title still the file's
  const bad = path.join(tmp, 'bad-meta.onnx');
  fs.writeFileSync(bad, withMetadata(fs.readFileSync(seedOnnx), { 'strata.title': 'Bad metadata',
    'strata.classes': '["cheetah", "jaguar"', 'strata.mean': '[0.5, 0.5]', 'strata.std': '[0.25, 0, 0.25]' }));
  r = await call(srv, '/api/models', form({ meta: { dataset: 'felines', std: null }, model: bad }));
  assert.equal(r.status, 201, r.text());
  j = r.json();
  assert.equal(j.id, 'bad-metadata');
  assert.deepEqual(j.from_metadata, ['title']);
  assert.equal(j.metadata_notes.length, 3, j.metadata_notes.join(' | '));
  assert.match(j.metadata_notes[0], /strata\.classes is not a JSON array of class names; it was not used/);
  assert.match(j.metadata_notes[1], /strata\.mean is not a JSON array of three finite numbers; it was not used/);
  assert.match(j.metadata_notes[2], /strata\.std is not a JSON array of three finite positive numbers; it was not used/);
  written = JSON.parse(fs.readFileSync(path.join(ws, 'models', j.id, 'model.json'), 'utf8'));
  assert.deepEqual(written.classes, CLASSES, 'the classes are the folders\'');
  assert.deepEqual(written.normalization, { mean: [0, 0, 0], std: [1, 1, 1] });
  const record = JSON.parse(fs.readFileSync(path.join(ws, 'models', j.id, 'import.json'), 'utf8'));
  assert.deepEqual(record.metadata_notes, j.metadata_notes);
  assert.equal((await call(srv, `/api/models/${j.id}`, { method: 'DELETE' })).status, 204);
  // class names that are not usable (one name twice): noted with the reason
  fs.writeFileSync(bad, withMetadata(fs.readFileSync(seedOnnx), { 'strata.classes': '["a","a","b","c"]', 'strata.std': '[1e999, 1, 1]' }));
  r = await call(srv, '/api/models', form({ meta: { title: 'twice', dataset: 'felines' }, model: bad }));
  assert.equal(r.status, 201, r.text());
  assert.deepEqual(r.json().from_metadata, []);
  assert.match(r.json().metadata_notes.join(' | '), /strata\.classes is not a usable list of class names \(class name "a" is given twice\)/);
  assert.match(r.json().metadata_notes.join(' | '), /strata\.std/);
  assert.equal((await call(srv, '/api/models/twice', { method: 'DELETE' })).status, 204);
});

test('refused imports: each a clear 4xx, nothing left in the workspace, the server alive', async () => {
  const good = archive(path.join(tmp, 'good.zip'), photos(3).map(([c, p], i) => [`${c}/${i}.jpg`, p]));
  const junk = path.join(tmp, 'junk.onnx');
  fs.writeFileSync(junk, Buffer.from('this is not a protobuf at all'.repeat(10)));
  const truncated = path.join(tmp, 'truncated.onnx');
  fs.writeFileSync(truncated, fs.readFileSync(onnx).subarray(0, 5000));
  const only = archive(path.join(tmp, 'one-class.zip'), photos(3).filter(([c]) => c === 'tiger').map(([c, p], i) => [`${c}/${i}.jpg`, p]));
  const noImages = archive(path.join(tmp, 'no-images.zip'), [['a/readme.txt', { text: 'x' }], ['b/x.gif', { text: 'GIF89a' }]]);
  const notArchive = path.join(tmp, 'not.zip');
  fs.writeFileSync(notArchive, 'plain text, not an archive');
  // metadata with an unusable title; with four class names that are not the folders'
  const badMeta = path.join(tmp, 'bad-title.onnx');
  fs.writeFileSync(badMeta, withMetadata(fs.readFileSync(seedOnnx), { 'strata.title': '' }));
  const otherClasses = path.join(tmp, 'other-classes.onnx');
  fs.writeFileSync(otherClasses, withMetadata(fs.readFileSync(seedOnnx),
    { 'strata.title': 'Other classes', 'strata.classes': '["a","b","c","d"]' }));
  const cases = [
    [form({ meta: { title: 'junk' }, model: junk, images: good }), 400, /protobuf|ONNX|ModelProto/i],
    [form({ meta: { title: 'cut' }, model: truncated, images: good }), 400, /truncated|corrupt|ModelProto/i],
    [form({ meta: { title: 'one' }, images: only }), 400, /at least 2/],
    [form({ meta: { title: 'none' }, images: noImages }), 400, /no JPEG or PNG/],
    [form({ meta: { title: 'notzip' }, images: notArchive }), 400, /archive/],
    [form({ meta: { title: 'six', dataset: 'paysages' } }), 400, /4 class scores.*6 class names|class/],
    [form({ meta: { title: 'order', classes: ['tiger', 'leopard', 'jaguar', 'cheetah'] }, images: good }), 400, /sorted by name/],
    [form({ meta: { title: 'both', dataset: 'felines' }, images: good }), 400, /not both/],
    [form({ meta: { title: 'neither' } }), 400, /needs images/],
    [form({ meta: '{"title": ' }), 400, /JSON/],
    [form({ meta: { title: 'x', colour: 'red', dataset: 'felines' } }), 400, /unknown key "colour"/],
    [form({ meta: { dataset: 'felines' }, model: bareOnnx }), 400, /give the model a title \(meta\.title\).*carries none in its metadata/],
    [form({ meta: { title: '', dataset: 'felines' }, model: bareOnnx }), 400, /carries none/],
    [form({ meta: { dataset: 'felines' }, model: badMeta }), 400, /carries no usable one in its metadata/],
    [form({ meta: { title: 17, dataset: 'felines' } }), 400, /meta\.title is a name of 1 to 200/],
    [form({ meta: { dataset: 'felines' }, model: junk }), 400, /title.*the file is not an ONNX model whose metadata strata can read/],
    [form({ meta: { dataset: 'felines' }, model: otherClasses }), 400,
      /the class names \["a","b","c","d"\] are not the image folders \["cheetah","jaguar","leopard","tiger"\]: strata labels images by their class folders sorted by name.*the file's own, from its metadata/],
    [form({ meta: { title: 'x', id: '../evil', dataset: 'felines' } }), 400, /meta\.id/],
    [form({ meta: { title: 'x', dataset: '../felines' } }), 400, /not a dataset/],
    [form({ meta: { title: 'x', dataset: 'felines', std: [1, 0, 1] } }), 400, /std/],
    [form({ meta: { title: 'nomodel', dataset: 'felines' }, model: null }), 400, /no field "model"/],
  ];
  for (const [init, status, message] of cases) {
    const r = await call(srv, '/api/models', init);
    const e = assertError(r, status);
    assert.match(e.message, message);
  }
  assertError(await call(srv, '/api/models', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 415);
  // the demo models cannot be deleted
  assertError(await call(srv, '/api/models/felines-seed', { method: 'DELETE' }), 403, 'not_deletable');
  // nothing written: no model, no data, no upload left over
  assert.deepEqual(fs.readdirSync(path.join(ws, 'models')), []);
  assert.deepEqual(fs.readdirSync(path.join(ws, 'data')), []);
  assert.deepEqual(fs.readdirSync(path.join(ws, '.incoming')), []);
  assert.equal((await call(srv, '/api/health')).status, 200);
});

test('an upload over the limits: refused from its Content-Length, or when a field passes its own', async () => {
  // 5 MB model + 8 MB archive + 1 MB: the declared body is refused before any byte is read
  const head = 'POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n' +
    `Content-Length: ${15 << 20}\r\n\r\n`;
  const t0 = Date.now();
  const r = await raw(srv, head);
  assert.equal(r.status, 413, r.data);
  assert.match(r.data, /the limit is/);
  assert.ok(Date.now() - t0 < 5000);
  // a model field over 5 MB inside a body under the total limit
  const big = path.join(tmp, 'big.onnx');
  fs.writeFileSync(big, Buffer.alloc(6 << 20, 1));
  const e = assertError(await call(srv, '/api/models', form({ meta: { title: 'big', dataset: 'felines' }, model: big })), 413);
  assert.match(e.message, /"model" is over its limit/);
  assert.deepEqual(fs.readdirSync(path.join(ws, '.incoming')), []);
});
