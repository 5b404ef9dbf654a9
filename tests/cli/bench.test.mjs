// `strata bench`: the numbers it prints agree with each other (images/s is
// the images timed over the time taken, the median batch lies between the
// fastest batch and the whole time), the options it is given are the ones it
// used, and bad input is refused with a message and exit code 1 or 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const bin = path.resolve(root, process.env.STRATA_BIN || 'build/server/strata');
const haveBin = fs.existsSync(bin);
const testdata = '/usr/share/libonnx-testdata/data';
const conv2d = path.join(testdata, 'pytorch-converted', 'test_Conv2d', 'model.onnx');
const haveConv2d = fs.existsSync(conv2d);

function strata(args) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 120000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function checkReport(r, batch, threads, seconds) {
  assert.equal(r.batch, batch);
  assert.equal(r.threads, threads);
  assert.ok(Number.isInteger(r.batches) && r.batches >= 3, `batches ${r.batches}`);
  assert.ok(r.seconds >= seconds, `timed ${r.seconds} s, asked for ${seconds} s`);
  // images/s counts every image over the whole timed span
  const expected = r.batches * batch / r.seconds;
  assert.ok(Math.abs(r.images_per_s - expected) <= 1e-4 * expected, `${r.images_per_s} vs ${expected}`);
  // fastest <= median, and the batches cannot have taken longer than the span
  assert.ok(r.ms_per_batch_min > 0 && r.ms_per_batch_min <= r.ms_per_batch);
  assert.ok(r.ms_per_batch_min * r.batches <= r.seconds * 1e3 * 1.0001);
}

test('a demo model by id: JSON with consistent numbers', { skip: !haveBin && 'strata is not built' }, () => {
  const res = strata(['bench', 'felines-seed', '--batch', '4', '--threads', '1', '--seconds', '0.3', '--json']);
  assert.equal(res.code, 0, res.err);
  const r = JSON.parse(res.out);
  assert.equal(r.model, 'felines-seed');
  checkReport(r, 4, 1, 0.3);
});

test('the text report says the same as the JSON', { skip: !haveBin && 'strata is not built' }, () => {
  const res = strata(['bench', 'felines-seed', '--batch', '2', '--threads', '2', '--seconds', '0.2']);
  assert.equal(res.code, 0, res.err);
  const m = res.out.match(/^felines-seed, batch 2, 2 threads: ([\d.]+) images\/s, ([\d.]+) ms per batch \(median of (\d+); fastest ([\d.]+) ms\)$/m);
  assert.ok(m, res.out);
  assert.ok(Number(m[3]) >= 3);
  assert.ok(Number(m[4]) <= Number(m[2]));
});

test('an .onnx file through the graph executor', { skip: (!haveBin && 'strata is not built') || (!haveConv2d && `${conv2d} is missing (Debian libonnx-testdata)`) }, () => {
  // this test case's batch is fixed to 2 in the file
  const res = strata(['bench', conv2d, '--batch', '2', '--threads', '1', '--seconds', '0.1', '--warmup', '0', '--json']);
  assert.equal(res.code, 0, res.err);
  const r = JSON.parse(res.out);
  assert.equal(r.model, 'model.onnx');
  checkReport(r, 2, 1, 0.1);
  // another batch size than the file's is refused, naming the one to use
  const wrong = strata(['bench', conv2d, '--batch', '16']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /batch size is fixed to 2 in the file; use --batch 2/);
});

test('files that are not one image batch are refused', { skip: (!haveBin && 'strata is not built') || (!haveConv2d && 'no libonnx-testdata') }, () => {
  const twoInputs = strata(['bench', path.join(testdata, 'node', 'test_add', 'model.onnx')]);
  assert.equal(twoInputs.code, 1);
  assert.match(twoInputs.err, /has 2 inputs; strata bench feeds one image batch/);
  const notImages = strata(['bench', path.join(testdata, 'node', 'test_relu', 'model.onnx')]);
  assert.equal(notImages.code, 1);
  assert.match(notImages.err, /not a float N x C x H x W batch/);
});

test('bad options and missing models', { skip: !haveBin && 'strata is not built' }, () => {
  for (const [args, re] of [
    [['--batch', '0'], /--batch expects an integer from 1 to 4096, got '0'/],
    [['--threads', 'x'], /--threads expects a positive integer/],
    [['--seconds', '-1'], /--seconds expects a number/],
    [['--input', '224'], /--input expects HxW/],
    [['--frobnicate'], /unknown option '--frobnicate'/],
  ]) {
    const r = strata(['bench', 'felines-seed', ...args]);
    assert.equal(r.code, 2, `${args}: ${r.err}`);
    assert.match(r.err, re);
  }
  assert.equal(strata(['bench']).code, 2);
  const missing = strata(['bench', 'no-such-model']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /no-such-model/);
  const missingFile = strata(['bench', '/nonexistent/model.onnx']);
  assert.equal(missingFile.code, 1);
  assert.match(missingFile.err, /cannot open/);
  assert.match(strata(['bench', '--help']).out, /--batch N/);
});
