// End-to-end tests of ONNX import through the `strata` command line:
//  - a residual CNN trained by PyTorch on the felines photos
//    (scripts/onnx/train_residual.py, made by scripts/test into
//    $STRATA_ONNX_REFS/residual): `strata import`, then `strata eval` gives
//    exactly PyTorch's accuracy and predictions on the same PNG files, and
//    predict, explain, analyze and doubt-eval run on it as on a demo model;
//  - refusals: a truncated file, an unsupported op, a class count that does
//    not match, a bad id, an existing model — each a clear message, exit 1 or
//    2, and nothing left in the models folder;
//  - `strata onnx-test` on a few of ONNX's own test cases;
//  - `strata train ID --from FILE.onnx`: the same residual CNN's architecture
//    trained on a few photos of paysages' six classes (its classifier of four
//    is replaced), from scratch and from the file's weights, then used by
//    eval; and the refusals of --from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const bin = path.resolve(root, process.env.STRATA_BIN || 'build/server/strata');
const haveBin = fs.existsSync(bin);
const refs = process.env.STRATA_ONNX_REFS;
const residual = refs && path.join(refs, 'residual');
const haveResidual = residual && fs.existsSync(path.join(residual, 'residual.reference.json'));
const testdata = '/usr/share/libonnx-testdata/data';
const haveTestdata = fs.existsSync(testdata);
const data = path.resolve(root, process.env.STRATA_DATA || '../shared/datasets');
const haveData = fs.existsSync(path.join(data, 'paysages', 'train'));

function strata(args, opts = {}) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 600000, ...opts });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noResidual = !haveBin ? 'strata is not built'
  : !haveResidual ? 'no PyTorch-trained reference model: scripts/test makes it into $STRATA_ONNX_REFS '
    + 'when python3-torch and ../shared/datasets are present'
  : false;

test('a CNN trained by PyTorch: import, then eval gives PyTorch\'s accuracy exactly', { skip: noResidual }, () => {
  const ref = JSON.parse(fs.readFileSync(path.join(residual, 'residual.reference.json'), 'utf8'));
  const models = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-onnx-'));
  const dataRoot = path.dirname(residual), name = path.basename(residual);
  const imp = strata(['import', path.join(residual, ref.onnx), '--id', 'resnet-felines', '--models', models,
    '--dataset', name, '--data', dataRoot, '--mean', ref.mean.join(','), '--std', ref.std.join(','),
    '--title', 'Residual CNN from PyTorch']);
  assert.equal(imp.code, 0, imp.err);
  assert.match(imp.out, new RegExp(`${ref.classes.length} classes, input 64x64`));
  const json = JSON.parse(fs.readFileSync(path.join(models, 'resnet-felines', 'model.json'), 'utf8'));
  assert.deepEqual(json.classes, ref.classes);
  assert.equal(json.onnx, 'model.onnx');
  // the file is kept as it is: byte for byte
  assert.ok(fs.readFileSync(path.join(models, 'resnet-felines', 'model.onnx'))
    .equals(fs.readFileSync(path.join(residual, ref.onnx))));

  const ev = strata(['eval', 'resnet-felines', '--models', models, '--data', dataRoot, '--json']);
  assert.equal(ev.code, 0, ev.err);
  const e = JSON.parse(ev.out);
  assert.equal(e.n, ref.n_test);
  const correct = Math.round(e.accuracy * e.n);
  assert.equal(correct, ref.correct, `strata ${correct}/${e.n}, PyTorch ${ref.correct}/${ref.n_test}`);
  assert.equal(e.accuracy, ref.accuracy);

  // predict on a few of the same PNG files: PyTorch's class, probabilities within 1e-4
  for (const i of [0, Math.floor(ref.images.length / 2), ref.images.length - 1]) {
    const p = strata(['predict', 'resnet-felines', path.join(residual, ref.images[i]), '--models', models,
      '--no-doubt', '--json']);
    assert.equal(p.code, 0, p.err);
    const out = JSON.parse(p.out);
    assert.equal(out.predicted, ref.classes[ref.predictions[i]]);
    for (const { class: c, probability } of out.probabilities)
      assert.ok(Math.abs(probability - ref.probs[i][ref.classes.indexOf(c)]) <= 1e-4,
        `${ref.images[i]} ${c}: strata ${probability}, PyTorch ${ref.probs[i][ref.classes.indexOf(c)]}`);
  }

  // the other views work on it as on a demo model
  const img = path.join(residual, ref.images[0]);
  const overlay = path.join(models, 'overlay.png');
  const ex = strata(['explain', 'resnet-felines', img, '--models', models, '--out', overlay,
    '--samples', '200']);
  assert.equal(ex.code, 0, ex.err);
  assert.ok(fs.statSync(overlay).size > 1000);
  // gradients through the imported graph: Grad-CAM at its last spatial layer, IG complete
  const gx = strata(['explain', 'resnet-felines', img, '--models', models, '--method', 'gradcam,ig',
    '--steps', '128', '--json']);
  assert.equal(gx.code, 0, gx.err);
  const g = JSON.parse(gx.out);
  assert.equal(g.predicted, ref.classes[ref.predictions[0]]);
  assert.ok(g.methods[0].layer.height > 1 && g.methods[0].layer.width > 1, JSON.stringify(g.methods[0].layer));
  assert.ok(g.methods[0].scale > 0);
  assert.ok(g.methods[1].integrated_gradients.completeness_error < 0.05,
    `IG completeness error ${g.methods[1].integrated_gradients.completeness_error} at 128 steps`);
  const an = strata(['analyze', 'resnet-felines', '--models', models, '--data', dataRoot, '--json',
    '--cache', path.join(models, 'cache')]);
  assert.equal(an.code, 0, an.err);
  const a = JSON.parse(an.out);
  assert.ok(a.layers.length >= 8, `${a.layers.length} layers analysed`);
  assert.equal(a.layers[a.layers.length - 1].name, 'probabilities');
  fs.rmSync(models, { recursive: true, force: true });
});

test('import refuses bad input with a clear message and leaves nothing behind',
  { skip: !haveBin ? 'strata is not built' : !haveTestdata && 'libonnx-testdata is not installed' }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-onnx-bad-'));
    const models = path.join(dir, 'models');
    fs.mkdirSync(models);
    const conv = path.join(testdata, 'node', 'test_basic_conv_with_padding', 'model.onnx');
    const bytes = fs.readFileSync(conv);
    const truncated = path.join(dir, 'truncated.onnx');
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const cases = [
      [[truncated, '--id', 'x', '--classes', 'a,b'], 1, /truncated|corrupt|protobuf/i],
      [[path.join(testdata, 'node', 'test_resize_upsample_scales_nearest', 'model.onnx'), '--id', 'x',
        '--classes', 'a'], 1, /Resize \(1 node: 'Resize_0'\)/],
      [[conv, '--id', 'x', '--classes', 'a'], 1, /input|inputs/],
      [[path.join(dir, 'missing.onnx'), '--id', 'x', '--classes', 'a'], 1, /missing\.onnx/],
      [[conv, '--id', '../escape', '--classes', 'a'], 2, /letters, digits/],
      [[conv, '--classes', 'a'], 2, /--id is required/],
      [[conv, '--id', 'x'], 2, /class names/],
      [[conv, '--id', 'x', '--classes', 'a', '--std', '1,0,1'], 2, /positive/],
    ];
    for (const [args, code, message] of cases) {
      const r = strata(['import', ...args, '--models', models]);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, message);
      assert.deepEqual(fs.readdirSync(models), [], `${args.join(' ')} left files behind`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

test('import refuses a class count that does not match, and an id already taken',
  { skip: noResidual }, () => {
    const ref = JSON.parse(fs.readFileSync(path.join(residual, 'residual.reference.json'), 'utf8'));
    const models = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-onnx-'));
    const file = path.join(residual, ref.onnx);
    const wrong = strata(['import', file, '--id', 'm', '--models', models, '--classes', 'a,b,c']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.err, new RegExp(`gives ${ref.classes.length} class scores, but 3 class names`));
    assert.ok(wrong.err.includes(file), wrong.err); // names the user's file, not a temporary copy
    assert.deepEqual(fs.readdirSync(models), []);
    const labels = path.join(models, 'labels.txt');
    fs.writeFileSync(labels, ref.classes.join('\n') + '\n\n');
    assert.equal(strata(['import', file, '--id', 'm', '--models', models, '--labels', labels]).code, 0);
    const again = strata(['import', file, '--id', 'm', '--models', models, '--labels', labels]);
    assert.equal(again.code, 1);
    assert.match(again.err, /already exists/);
    fs.rmSync(models, { recursive: true, force: true });
  });

test('onnx-test runs ONNX\'s own cases and reports each',
  { skip: !haveBin ? 'strata is not built' : !haveTestdata && 'libonnx-testdata is not installed' }, () => {
    const cases = ['test_basic_conv_with_padding', 'test_relu', 'test_resize_upsample_scales_nearest']
      .map((c) => path.join(testdata, 'node', c));
    const r = strata(['onnx-test', ...cases]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /^PASS .*test_basic_conv_with_padding/m);
    assert.match(r.out, /^PASS .*test_relu/m);
    assert.match(r.out, /^SKIP .*test_resize_upsample_scales_nearest.*Resize/m);
    assert.match(r.out, /^2 passed, 0 failed, 1 skipped$/m);
    const none = strata(['onnx-test', path.join(os.tmpdir(), 'no-such-folder-strata')]);
    assert.equal(none.code, 1);
    assert.equal(strata(['onnx-test']).code, 2);
  });

test('train --from: an ONNX architecture trained on a dataset of another class count',
  { skip: noResidual || (!haveData && 'no datasets') }, () => {
    const ref = JSON.parse(fs.readFileSync(path.join(residual, 'residual.reference.json'), 'utf8'));
    const models = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-from-'));
    const file = path.join(residual, ref.onnx);
    const classes = fs.readdirSync(path.join(data, 'paysages', 'train')).sort();
    // 10 training and 4 test photos of each class, copied to a dataset of our own
    const tiny = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-from-data-'));
    for (const split of ['train', 'test'])
      for (const cls of classes) {
        const src = path.join(data, 'paysages', split, cls), dst = path.join(tiny, 'paysages', split, cls);
        fs.mkdirSync(dst, { recursive: true });
        for (const f of fs.readdirSync(src).sort().slice(0, split === 'train' ? 10 : 4))
          fs.copyFileSync(path.join(src, f), path.join(dst, f));
      }
    const tr = strata(['train', 'pays', '--from', file, '--dataset', 'paysages', '--data', tiny,
      '--models', models, '--epochs', '2', '--init', 'random', '--log-json']);
    assert.equal(tr.code, 0, tr.err);
    assert.match(tr.err, new RegExp(`gave ${ref.classes.length} scores; it now gives ${classes.length}, `
      + 'one per class of paysages'));
    const dir = path.join(models, 'pays');
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.deepEqual(json.classes, classes);
    assert.equal(json.onnx, 'model.onnx');
    assert.equal(json.dataset, 'paysages');
    const card = JSON.parse(fs.readFileSync(path.join(dir, 'card.json'), 'utf8'));
    assert.equal(card.training.epochs_run, 2);
    assert.equal(card.test.n, 4 * classes.length);
    // the file now holds the trained weights, and every command reads it
    const ev = strata(['eval', 'pays', '--models', models, '--data', tiny, '--json']);
    assert.equal(ev.code, 0, ev.err);
    assert.equal(JSON.parse(ev.out).accuracy, card.test.accuracy);
    // again, from the file's weights: the model trains where it stands
    const again = strata(['train', 'pays', '--models', models, '--data', tiny, '--epochs', '1']);
    assert.equal(again.code, 0, again.err);

    const taken = strata(['train', 'pays', '--from', file, '--dataset', 'paysages', '--data', tiny,
      '--models', models]);
    assert.equal(taken.code, 1);
    assert.match(taken.err, /already exists/);
    const bad = strata(['train', 'p2', '--from', file, '--init', 'zeros', '--models', models]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--init expects onnx or random/);
    const out = strata(['train', 'p2', '--from', file, '--out', models, '--models', models]);
    assert.equal(out.code, 2);
    const alone = strata(['train', 'pays', '--dataset', 'paysages', '--models', models]);
    assert.equal(alone.code, 2);
    assert.match(alone.err, /go with --from/);
    const nodata = strata(['train', 'p3', '--from', file, '--dataset', 'no-such-set', '--data', tiny,
      '--models', models]);
    assert.equal(nodata.code, 1);
    assert.deepEqual(fs.readdirSync(models).sort(), ['pays']); // nothing left behind
    fs.rmSync(models, { recursive: true, force: true });
    fs.rmSync(tiny, { recursive: true, force: true });
  });
