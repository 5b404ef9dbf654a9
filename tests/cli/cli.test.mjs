// End-to-end tests of the `strata` command line: usage and exit codes, a
// small training run on real photos copied to a temporary folder, eval
// reproducing the card, predict, explain, Ctrl-C during training, and the
// committed demo models matching their cards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');
const bin = path.resolve(root, process.env.STRATA_BIN || 'build/server/strata');
const data = path.resolve(root, process.env.STRATA_DATA || '../shared/datasets');
const haveBin = fs.existsSync(bin);
const haveData = fs.existsSync(path.join(data, 'felines', 'train'));

function strata(args, opts = {}) {
  const r = spawnSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 300000, ...opts });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('help, usage errors and exit codes', { skip: !haveBin && 'strata is not built' }, () => {
  const help = strata(['--help']);
  assert.equal(help.code, 0);
  for (const cmd of ['train', 'eval', 'predict', 'explain', 'analyze'])
    assert.match(help.out, new RegExp(`\\b${cmd}\\b`));
  for (const cmd of ['train', 'eval', 'predict', 'explain', 'analyze']) {
    const h = strata([cmd, '--help']);
    assert.equal(h.code, 0, `${cmd} --help`);
    assert.match(h.out, /^Usage: strata /);
  }
  assert.equal(strata([]).code, 2);
  assert.equal(strata(['frobnicate']).code, 2);
  const noModel = strata(['eval']);
  assert.equal(noModel.code, 2);
  assert.match(noModel.err, /expected one model/);
  const bogus = strata(['eval', 'felines', '--bogus']);
  assert.equal(bogus.code, 2);
  assert.match(bogus.err, /unknown option '--bogus'/);
  // an option given without its value says so, for every command
  for (const [cmd, opt] of [['eval', '--models'], ['train', '--data'], ['explain', '--method'], ['serve', '--port'],
    ['predict', '--top'], ['analyze', '--cache'], ['doubt-eval', '--data'], ['import', '--id'], ['export', '--out'],
    ['bench', '--batch'], ['onnx-test', '--threads']]) {
    const r = strata([cmd, opt]);
    assert.equal(r.code, 2, `${cmd} ${opt}`);
    assert.match(r.err, new RegExp(`option '${opt}' needs a value`), `${cmd} ${opt}: ${r.err}`);
  }
  assert.equal(strata(['predict', 'felines', 'x.jpg', '--top', 'many']).code, 2);
  // a one-class model is refused before any photo is read
  const oneDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-one-class-'));
  fs.writeFileSync(path.join(oneDir, 'model.json'), JSON.stringify({
    id: 'one', dataset: 'none', input: { height: 8, width: 8, channels: 3 }, classes: ['a'],
    layers: [{ type: 'flatten' }, { type: 'dense', units: 1, activation: 'softmax' }] }));
  const one = strata(['train', oneDir]);
  assert.equal(one.code, 1);
  assert.match(one.err, /1 class; a classifier needs at least two/);
  assert.ok(!fs.existsSync(path.join(oneDir, 'weights.safetensors')));
  fs.rmSync(oneDir, { recursive: true, force: true });
  const missing = strata(['eval', 'no-such-model']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /no-such-model/);
});

// A small dataset of real photos: 12 training and 6 test images per class.
function makeTinyDataset() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-cli-'));
  for (const split of ['train', 'test']) {
    const take = split === 'train' ? 12 : 6;
    for (const cls of ['cheetah', 'tiger']) {
      const src = path.join(data, 'felines', split, cls);
      const dst = path.join(dir, 'data', 'tiny', split, cls);
      fs.mkdirSync(dst, { recursive: true });
      for (const f of fs.readdirSync(src).sort().slice(0, take))
        fs.copyFileSync(path.join(src, f), path.join(dst, f));
    }
  }
  const model = {
    id: 'tiny', dataset: 'tiny', input: { height: 32, width: 32, channels: 3 },
    classes: ['cheetah', 'tiger'],
    layers: [
      { type: 'conv2d', filters: 8, kernel_size: 3, activation: 'relu' },
      { type: 'maxpool2d', pool_size: 2 },
      { type: 'global_avg_pool' },
      { type: 'dense', units: 2, activation: 'softmax' },
    ],
    training: { epochs: 3, batch_size: 8, seed: 4, validation_split: 0.25 },
  };
  fs.mkdirSync(path.join(dir, 'models', 'tiny'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'models', 'tiny', 'model.json'), JSON.stringify(model, null, 2));
  return dir;
}

test('train, then eval, predict and explain the trained model', { skip: (!haveBin && 'strata is not built') || (!haveData && 'no datasets') }, () => {
  const dir = makeTinyDataset();
  const mdir = path.join(dir, 'models', 'tiny');
  const env = { ...process.env, STRATA_DATA: path.join(dir, 'data') };
  const tr = strata(['train', mdir, '--log-json'], { env });
  assert.equal(tr.code, 0, tr.err);
  const lines = tr.out.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines.map((l) => l.epoch), [1, 2, 3]);
  for (const l of lines) {
    assert.ok(l.train_loss > 0 && Number.isFinite(l.train_loss));
    assert.ok(l.images_per_s > 0);
  }

  const card = JSON.parse(fs.readFileSync(path.join(mdir, 'card.json'), 'utf8'));
  assert.equal(card.training.curve.length, 3);
  assert.equal(card.training.n_train + card.training.n_val, 24);
  assert.equal(card.training.n_val, 6);
  assert.equal(card.test.n, 12);
  assert.deepEqual(card.test.classes, ['cheetah', 'tiger']);
  const cm = card.test.confusion;
  assert.equal(cm[0][0] + cm[0][1] + cm[1][0] + cm[1][1], 12);
  assert.equal(card.test.accuracy, (cm[0][0] + cm[1][1]) / 12);

  // eval reproduces the card exactly.
  const ev = strata(['eval', mdir, '--json'], { env });
  assert.equal(ev.code, 0, ev.err);
  const e = JSON.parse(ev.out);
  assert.equal(e.accuracy, card.test.accuracy);
  assert.deepEqual(e.confusion, card.test.confusion);
  assert.equal(e.n, 12);

  // predict: probabilities in order, summing to one.
  const img = path.join(dir, 'data', 'tiny', 'test', 'tiger', fs.readdirSync(path.join(dir, 'data', 'tiny', 'test', 'tiger'))[0]);
  const pr = strata(['predict', mdir, img, '--json']);
  assert.equal(pr.code, 0, pr.err);
  const p = JSON.parse(pr.out);
  assert.equal(p.probabilities.length, 2);
  assert.ok(p.probabilities[0].probability >= p.probabilities[1].probability);
  assert.ok(Math.abs(p.probabilities[0].probability + p.probabilities[1].probability - 1) < 1e-5);
  assert.equal(p.predicted, p.probabilities[0].class);
  assert.equal(p.doubt, null, 'no dataset to calibrate the doubt on');
  // With the dataset, the doubt: the same object, field for field, as
  // POST /api/models/{id}/predict's (no analysis here: no clusters).
  const pd = strata(['predict', mdir, img, '--json', '--cache', path.join(dir, 'cache')], { env });
  assert.equal(pd.code, 0, pd.err);
  const d = JSON.parse(pd.out).doubt;
  assert.deepEqual(Object.keys(d).sort(), ['credibility', 'energy', 'explanation', 'layers', 'level', 'msp',
    'nonconformity', 'score', 'terms', 'thresholds']);
  assert.ok(d.score >= 0 && d.score <= 1);
  assert.equal(d.level, d.score >= d.thresholds.high ? 'high' : d.score >= d.thresholds.medium ? 'medium' : 'low');
  assert.ok(Math.abs(d.credibility - (1 - d.score)) < 1e-6);
  assert.ok(Math.abs(d.msp - p.probabilities[0].probability) < 1e-6);
  assert.match(d.explanation, /doubt \(\d\.\d\d\)/);
  assert.ok(d.layers.length > 0);
  for (const v of d.layers) {
    assert.deepEqual(Object.keys(v).sort(), ['agreement', 'agrees', 'cluster', 'cluster_class', 'dist_percentile',
      'distance', 'in_distance', 'index', 'name', 'neighbour_class']);
    assert.ok(['cheetah', 'tiger'].includes(v.neighbour_class));
    assert.equal(v.agrees, v.neighbour_class === p.predicted);
    assert.ok(v.agreement >= 0 && v.agreement <= 1 && v.dist_percentile >= 0 && v.dist_percentile <= 1);
    assert.equal(v.cluster, null);
    assert.equal(v.cluster_class, null);
  }
  // The text form says the same doubt.
  const pt = strata(['predict', mdir, img, '--cache', path.join(dir, 'cache')], { env });
  assert.equal(pt.code, 0, pt.err);
  const said = pt.out.match(/^doubt (\d\.\d\d) \((\w+)\): (.*)$/m);
  assert.ok(said, pt.out);
  assert.ok(Math.abs(Number(said[1]) - d.score) <= 0.005 + 1e-6);
  assert.deepEqual([said[2], said[3]], [d.level, d.explanation]);

  // explain: weights, timings, and real PNG files.
  const overlay = path.join(dir, 'overlay.png'), heat = path.join(dir, 'heat.png');
  const ex = strata(['explain', mdir, img, '--json', '--samples', '200', '--out', overlay, '--heatmap', heat]);
  assert.equal(ex.code, 0, ex.err);
  const x = JSON.parse(ex.out);
  assert.equal(x.class, p.predicted);
  assert.ok(x.weights.length > 1);
  assert.ok(Math.abs(x.probability - p.probabilities[0].probability) < 1e-5);
  for (const k of ['segmentation', 'inference', 'regression']) assert.ok(x.timings_ms[k] >= 0);
  for (const f of [overlay, heat])
    assert.deepEqual([...fs.readFileSync(f).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
  // every method side by side, for the other class too: maps as PNGs named per method
  const other = p.probabilities[1].class;
  const heatAll = path.join(dir, 'cmp.png');
  const all = strata(['explain', mdir, img, '--method', 'all,random', '--class', other, '--samples', '200',
    '--steps', '16', '--json', '--heatmap', heatAll]);
  assert.equal(all.code, 0, all.err);
  const a = JSON.parse(all.out);
  assert.equal(a.class, other);
  assert.equal(a.predicted, p.predicted);
  assert.ok(Math.abs(a.probability - p.probabilities[1].probability) < 1e-5);
  assert.deepEqual(a.methods.map((m) => m.method), ['gradcam', 'ig', 'occlusion', 'lime', 'random']);
  for (const m of a.methods) {
    assert.ok(Math.abs(m.deletion[0] - a.probability) < 1e-4, `${m.method}: nothing deleted is the image`);
    assert.ok(Math.abs(m.insertion[20] - a.probability) < 1e-4, `${m.method}: everything revealed is the image`);
    assert.deepEqual([...fs.readFileSync(path.join(dir, `cmp-${m.method}.png`)).subarray(0, 4)], [137, 80, 78, 71]);
  }
  assert.equal(a.methods[1].integrated_gradients.steps, 16);
  assert.ok(['gradcam', 'ig', 'occlusion', 'lime'].includes(a.best));
  const text = strata(['explain', mdir, img, '--method', 'gradcam,occlusion']);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /^gradcam .* layer \S+ \(\d+×\d+\), scale ±/m);
  assert.match(text.out, /supports (gradcam|occlusion) best/);
  for (const [args, re] of [[['--method', 'shap'], /unknown explanation method 'shap'/], [['--method', 'gradcam', '--layer', 'nope'], /spatial layers are/],
    [['--method', 'ig', '--steps', '0'], /--steps expects/], [['--method', 'ig', '--baseline', 'grey'], /black or blur/]]) {
    const r = strata(['explain', mdir, img, ...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, re);
  }
  const badClass = strata(['explain', mdir, img, '--class', 'zebra']);
  assert.equal(badClass.code, 1);
  assert.match(badClass.err, /zebra/);

  // A corrupt image is refused with a message, not a crash.
  const junk = path.join(dir, 'junk.jpg');
  fs.writeFileSync(junk, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(100, 7)]));
  const bad = strata(['predict', mdir, junk]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /junk\.jpg/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a model whose layers name their inputs: train, eval, analyze, explain, export and import back', { skip: (!haveBin && 'strata is not built') || (!haveData && 'no datasets') }, () => {
  const dir = makeTinyDataset();
  const mdir = path.join(dir, 'models', 'tiny');
  const env = { ...process.env, STRATA_DATA: path.join(dir, 'data') };
  // a residual block (the stem added back after two layers) and the image concatenated beside it
  const model = JSON.parse(fs.readFileSync(path.join(mdir, 'model.json'), 'utf8'));
  model.layers = [
    { type: 'conv2d', name: 'stem', filters: 8, kernel_size: 3, padding: 'same', activation: 'relu' },
    { type: 'conv2d', name: 'b1', filters: 8, kernel_size: 3, padding: 'same', use_bias: false },
    { type: 'batch_norm', name: 'b2', activation: 'relu' },
    { type: 'add', name: 'res', inputs: ['stem', 'b2'], activation: 'relu' },
    { type: 'concat', name: 'cat', inputs: ['res', 'input'] },
    { type: 'maxpool2d', name: 'pool', pool_size: 2 },
    { type: 'global_avg_pool', name: 'gap' },
    { type: 'dense', name: 'out', units: 2, activation: 'softmax' },
  ];
  fs.writeFileSync(path.join(mdir, 'model.json'), JSON.stringify(model, null, 2));
  const tr = strata(['train', mdir, '--log-json'], { env });
  assert.equal(tr.code, 0, tr.err);
  const card = JSON.parse(fs.readFileSync(path.join(mdir, 'card.json'), 'utf8'));
  const ev = strata(['eval', mdir, '--json'], { env });
  assert.equal(ev.code, 0, ev.err);
  assert.equal(JSON.parse(ev.out).accuracy, card.test.accuracy);
  const an = strata(['analyze', mdir, '--json'], { env });
  assert.equal(an.code, 0, an.err);
  const img = path.join(dir, 'data', 'tiny', 'test', 'tiger', fs.readdirSync(path.join(dir, 'data', 'tiny', 'test', 'tiger'))[0]);
  const ex = strata(['explain', mdir, img, '--method', 'gradcam,lime', '--samples', '200', '--json']);
  assert.equal(ex.code, 0, ex.err);
  // the export says what each layer reads with Add and Concat, and comes back with the same answers
  const file = path.join(dir, 'tiny.onnx');
  assert.equal(strata(['export', mdir, '--out', file]).code, 0);
  const models = path.join(dir, 'imported');
  const imp = strata(['import', file, '--id', 'back', '--models', models]);
  assert.equal(imp.code, 0, imp.err);
  const own = JSON.parse(strata(['predict', mdir, img, '--json']).out).probabilities;
  const back = JSON.parse(strata(['predict', 'back', '--models', models, img, '--json']).out).probabilities;
  for (const p of own) {
    const q = back.find((x) => x.class === p.class);
    assert.ok(q && Math.abs(q.probability - p.probability) < 1e-5, `${p.class}: ${q && q.probability} against ${p.probability}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('Ctrl-C during training keeps the best weights so far', { skip: (!haveBin && 'strata is not built') || (!haveData && 'no datasets') }, async () => {
  const dir = makeTinyDataset();
  const mdir = path.join(dir, 'models', 'tiny');
  const child = spawn(bin, ['train', mdir, '--epochs', '1000', '--log-json'], {
    cwd: root, env: { ...process.env, STRATA_DATA: path.join(dir, 'data') },
  });
  let out = '', sent = false;
  const code = await new Promise((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      // One Ctrl-C only: a second one ends the process at once, by design.
      if (!sent && out.split('\n').length > 3) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('exit', (c) => resolve(c));
  });
  assert.equal(code, 1);
  const card = JSON.parse(fs.readFileSync(path.join(mdir, 'card.json'), 'utf8'));
  assert.equal(card.training.interrupted, true);
  assert.ok(card.training.epochs_run >= 3 && card.training.epochs_run < 1000);
  assert.ok(fs.statSync(path.join(mdir, 'weights.safetensors')).size > 0);
  fs.rmSync(dir, { recursive: true, force: true });
});

// Each committed demo model loads and reproduces its card's test accuracy.
const demo = ['paysages', 'transports', 'felines', 'paysages-seed', 'transports-seed', 'felines-seed',
  'felines-residual', 'transports-residual'];
for (const id of demo) {
  const weights = path.join(root, 'models', id, 'weights.safetensors');
  test(`demo model ${id} matches its card`, { skip: (!haveBin && 'strata is not built') || (!haveData && 'no datasets') || (!fs.existsSync(weights) && 'no weights') }, () => {
    const card = JSON.parse(fs.readFileSync(path.join(root, 'models', id, 'card.json'), 'utf8'));
    const ev = strata(['eval', id, '--json', '--models', path.join(root, 'models')]);
    assert.equal(ev.code, 0, ev.err);
    const e = JSON.parse(ev.out);
    assert.equal(e.n, card.test.n);
    assert.equal(e.accuracy, card.test.accuracy);
    assert.deepEqual(e.confusion, card.test.confusion);
  });
}
