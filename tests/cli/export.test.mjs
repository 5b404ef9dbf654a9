// `strata export`: a demo model written as ONNX is a file strata's own
// import takes back (same classes, same input size) and the graph executor
// runs, giving the model's own probabilities (the file ends in a Softmax
// named through an Identity: applied once, not twice); bad requests get a
// message and exit 1 or 2, and write nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const bin = path.resolve(root, process.env.STRATA_BIN || 'build/server/strata');
const skip = !fs.existsSync(bin) && 'strata is not built';

function strata(args) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('export, import back, run', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-export-'));
  const file = path.join(dir, 'felines-seed.onnx');
  const ex = strata(['export', 'felines-seed', '--out', file]);
  assert.equal(ex.code, 0, ex.err);
  assert.match(ex.out, /felines-seed: 7 layers, 4 classes, input 3x64x64/);
  const card = JSON.parse(fs.readFileSync(path.join(root, 'models', 'felines-seed', 'model.json'), 'utf8'));
  const classes = card.classes.join(',');
  const models = path.join(dir, 'models');
  fs.mkdirSync(models);
  // the file says its classes, normalisation and title (metadata_props): no options needed
  const imp = strata(['import', file, '--id', 'back', '--models', models]);
  assert.equal(imp.code, 0, imp.err);
  assert.match(imp.out, /from the file's metadata: classes normalisation title/);
  assert.match(imp.out, /4 classes, input 64x64/);
  const json = JSON.parse(fs.readFileSync(path.join(models, 'back', 'model.json'), 'utf8'));
  assert.equal(json.classes.join(','), classes);
  assert.deepEqual(json.normalization, card.normalization);
  assert.equal(json.title, card.title);
  // an option still wins over the metadata
  const imp2 = strata(['import', file, '--id', 'back2', '--models', models, '--classes', 'a,b,c,d', '--std', '1,1,1']);
  assert.equal(imp2.code, 0, imp2.err);
  const json2 = JSON.parse(fs.readFileSync(path.join(models, 'back2', 'model.json'), 'utf8'));
  assert.deepEqual(json2.classes, ['a', 'b', 'c', 'd']);
  assert.deepEqual(json2.normalization, { mean: card.normalization.mean, std: [1, 1, 1] });
  const bench = strata(['bench', 'back', '--models', models, '--batch', '2', '--seconds', '0.1', '--json']);
  assert.equal(bench.code, 0, bench.err);
  assert.equal(JSON.parse(bench.out).batch, 2);
  // the same photo, the same probabilities (a PNG the repository holds: no dataset needed)
  const photo = path.join(root, 'static', fs.readdirSync(path.join(root, 'static')).find((f) => f.endsWith('.png')));
  const own = strata(['predict', 'felines-seed', photo, '--json']);
  const back = strata(['predict', 'back', '--models', models, photo, '--json']);
  assert.equal(own.code, 0, own.err);
  assert.equal(back.code, 0, back.err);
  const po = JSON.parse(own.out).probabilities, pb = JSON.parse(back.out).probabilities;
  assert.equal(pb.length, po.length);
  for (const p of po) {
    const q = pb.find((x) => x.class === p.class);
    assert.ok(q && Math.abs(q.probability - p.probability) < 1e-5, `${p.class}: ${q && q.probability} against ${p.probability}`);
  }
});

test('refusals', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-export-'));
  const missingOut = strata(['export', 'felines-seed']);
  assert.equal(missingOut.code, 2);
  assert.match(missingOut.err, /--out FILE.onnx is required/);
  const unknown = strata(['export', 'no-such-model', '--out', path.join(dir, 'x.onnx')]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /no-such-model/);
  assert.equal(fs.existsSync(path.join(dir, 'x.onnx')), false);
  const unwritable = strata(['export', 'felines-seed', '--out', path.join(dir, 'no', 'such', 'x.onnx')]);
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.err, /cannot write/);
});
