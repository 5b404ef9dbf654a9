// `strata export`: a demo model written as ONNX is a file strata's own
// import takes back (same classes, same input size) and the graph executor
// runs; bad requests get a message and exit 1 or 2, and write nothing.
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
  const imp = strata(['import', file, '--id', 'back', '--models', models, '--classes', classes]);
  assert.equal(imp.code, 0, imp.err);
  assert.match(imp.out, /4 classes, input 64x64/);
  const bench = strata(['bench', 'back', '--models', models, '--batch', '2', '--seconds', '0.1', '--json']);
  assert.equal(bench.code, 0, bench.err);
  assert.equal(JSON.parse(bench.out).batch, 2);
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
