// onnx_vs_ort.mjs — strata's forward pass beside ONNX Runtime's, on the same
// .onnx files, in the same run.
//
//   cd bench/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund   # once, here only
//   node bench/ort/onnx_vs_ort.mjs [MODEL.onnx ...] [--demo] [--batch 1,16] [--threads 2]
//        [--rounds 5] [--seconds 2] [--load N] [--strata build/server/strata]
//        [--write bench/results.json]
//
// Models default to the torchvision exports scripts/test makes in build-refs/
// (ResNet-18, MobileNetV2, EfficientNet-B0, 224x224, random weights with
// estimated BatchNorm statistics); --demo takes strata's eight demo models
// instead, written to ONNX by `strata export` (their trained weights, their
// own input sizes). Each model is first run by both on one seeded batch of 4:
// the largest difference of their outputs is kept (an export's probabilities
// must agree within 1e-4, or the bench stops). For every model and batch size it runs
// `rounds` rounds; a round times ONNX Runtime and `strata bench FILE --json`
// for `seconds` each, after two untimed passes, each in a process of its own
// that ends before the other starts (ORT's idle threads spin, and would
// otherwise take cores from strata), in alternating order so that neither always runs on a
// warmer or cooler machine. Each round gives the ratio strata / ORT in
// images per second; the figure reported is the median of those ratios,
// beside each engine's median throughput.
//
// --load N starts N busy-looping processes for the whole run (the machine is
// shared: this is how the comparison looks when something else wants the
// cores too). Results go to bench/results.json under "onnx_vs_ort", keyed
// "idle" or "load_N" (with --demo: "demo_idle", "demo_load_N").

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const here = import.meta.dirname;
const root = path.resolve(here, '..', '..');
const require = createRequire(import.meta.url);

function die(msg) {
  console.error(`onnx_vs_ort: ${msg}`);
  process.exit(1);
}

function intList(s, name) {
  const v = s.split(',').filter(Boolean).map(Number);
  if (!v.length || v.some((x) => !Number.isInteger(x) || x < 1)) die(`--${name} wants positive integers, got "${s}"`);
  return v;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round3 = (x) => Math.round(x * 1000) / 1000;
const round1 = (x) => Math.round(x * 10) / 10;

// Uniform in [-1, 1), seeded: the range of normalised pixels.
function randomInput(dims) {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let s = 0x9e3779b9;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    data[i] = (s / 4294967296) * 2 - 1;
  }
  return data;
}

// Image size from the file's declared input; 224 where it is left open.
function inputDims(session, batch) {
  const meta = session.inputMetadata?.[0];
  const shape = meta?.shape ?? [];
  const dim = (i, fallback) => (Number.isInteger(shape[i]) && shape[i] > 0 ? shape[i] : fallback);
  return [batch, dim(1, 3), dim(2, 224), dim(3, 224)];
}

// In a child process: `node onnx_vs_ort.mjs --ort-child MODEL BATCH THREADS SECONDS`
// prints {"images_per_s", "input"}.
async function ortChild([model, batch, threads, seconds]) {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: Number(threads), interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  const dims = inputDims(session, Number(batch));
  const ips = await timeOrt(ort, session, dims, Number(seconds));
  await session.release();
  console.log(JSON.stringify({ images_per_s: ips, input: dims.slice(1).join('x') }));
}

// A TensorProto (onnx.proto: dims = 1, data_type = 2, name = 8, raw_data = 9) of
// float32 values, as ONNX's backend test cases store their inputs and outputs.
function tensorProto(name, dims, data) {
  const bytes = [];
  const varint = (v) => {
    let x = BigInt(v);
    do {
      let b = Number(x & 0x7fn);
      x >>= 7n;
      if (x) b |= 0x80;
      bytes.push(b);
    } while (x);
  };
  for (const d of dims) { bytes.push(0x08); varint(d); }
  bytes.push(0x10); varint(1); // FLOAT
  const nameBytes = Buffer.from(name, 'utf8');
  bytes.push(0x42); varint(nameBytes.length); bytes.push(...nameBytes);
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  bytes.push(0x4a); varint(raw.length);
  return Buffer.concat([Buffer.from(bytes), raw]);
}

// In a child process: `node onnx_vs_ort.mjs --ort-case MODEL DIR` runs ONNX Runtime
// once on a seeded batch of 4 and writes DIR as a backend test case (model.onnx,
// test_data_set_0/input_0.pb, output_0.pb) for `strata onnx-test`.
async function ortCase([model, dir]) {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const dims = inputDims(session, 4);
  const input = randomInput(dims);
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', input, dims) });
  const y = out[session.outputNames[0]];
  await session.release();
  fs.mkdirSync(path.join(dir, 'test_data_set_0'), { recursive: true });
  fs.copyFileSync(model, path.join(dir, 'model.onnx'));
  fs.writeFileSync(path.join(dir, 'test_data_set_0', 'input_0.pb'), tensorProto(session.inputNames[0], dims, input));
  fs.writeFileSync(path.join(dir, 'test_data_set_0', 'output_0.pb'),
    tensorProto(session.outputNames[0], y.dims, y.data));
}

// strata's outputs against ONNX Runtime's on the same file and input: the largest
// absolute difference (`strata onnx-test` prints it for a passing case).
function agreement(bin, model) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ort-case-'));
  try {
    const w = spawnSync(process.execPath, [import.meta.filename, '--ort-case', model, dir], { encoding: 'utf8', timeout: 600000 });
    if (w.status !== 0) die(`ONNX Runtime on ${model} failed: ${w.stderr || w.error}`);
    const r = spawnSync(bin, ['onnx-test', dir], { encoding: 'utf8', timeout: 600000 });
    const m = /^PASS .*\(max error ([0-9.eE+-]+)\)/m.exec(r.stdout);
    if (!m) die(`strata onnx-test disagrees with ONNX Runtime on ${model}:\n${r.stdout}${r.stderr}`);
    return Number(m[1]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function runOrtChild(model, batch, threads, seconds) {
  const r = spawnSync(process.execPath, [import.meta.filename, '--ort-child', model, String(batch), String(threads),
    String(seconds)], { encoding: 'utf8', timeout: 600000 });
  if (r.status !== 0) die(`ONNX Runtime on ${model} failed: ${r.stderr || r.error}`);
  return JSON.parse(r.stdout);
}

async function timeOrt(ort, session, dims, seconds) {
  const tensor = new ort.Tensor('float32', randomInput(dims), dims);
  const feeds = { [session.inputNames[0]]: tensor };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  let calls = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < seconds * 1000 || calls < 3) {
    await session.run(feeds);
    calls++;
    t = performance.now();
  }
  return (calls * dims[0]) / ((t - t0) / 1000);
}

function timeStrata(bin, model, batch, threads, seconds) {
  const r = spawnSync(bin, ['bench', model, '--batch', String(batch), '--threads', String(threads),
    '--seconds', String(seconds), '--warmup', '2', '--json'], { encoding: 'utf8', timeout: 600000 });
  if (r.status !== 0) die(`strata bench ${model} failed: ${r.stderr || r.error}`);
  return JSON.parse(r.stdout).images_per_s;
}

async function main() {
  if (process.argv[2] === '--ort-child') return ortChild(process.argv.slice(3));
  if (process.argv[2] === '--ort-case') return ortCase(process.argv.slice(3));
  const { values: o, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      batch: { type: 'string', default: '1,16' },
      threads: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '5' },
      seconds: { type: 'string', default: '2' },
      load: { type: 'string', default: '0' },
      demo: { type: 'boolean', default: false },
      strata: { type: 'string', default: path.join(root, 'build', 'server', 'strata') },
      write: { type: 'string' },
    },
  });
  if (!fs.existsSync(o.strata)) die(`${o.strata} is missing: build strata first (scripts/build)`);
  const refs = process.env.STRATA_ONNX_REFS || path.join(root, 'build-refs');
  let models = positionals.length ? positionals
    : ['resnet18', 'mobilenet_v2', 'efficientnet_b0'].map((m) => path.join(refs, `${m}.onnx`));
  if (o.demo) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-onnx-'));
    models = ['felines', 'paysages', 'transports', 'felines-seed', 'paysages-seed', 'transports-seed', 'felines-residual', 'transports-residual']
      .map((id) => {
        const file = path.join(dir, `${id}.onnx`);
        const r = spawnSync(o.strata, ['export', id, '--out', file], { cwd: root, encoding: 'utf8' });
        if (r.status !== 0) die(`strata export ${id} failed: ${r.stderr}`);
        return file;
      });
  }
  for (const m of models) if (!fs.existsSync(m)) die(`${m} is missing (scripts/test exports the torchvision models into build-refs/)`);
  const batches = intList(o.batch, 'batch');
  const [threads] = intList(o.threads, 'threads');
  const [rounds] = intList(o.rounds, 'rounds');
  const seconds = Number(o.seconds);
  if (!(seconds > 0)) die(`--seconds wants a positive number, got "${o.seconds}"`);
  const load = Number(o.load);
  if (!Number.isInteger(load) || load < 0) die(`--load wants a count of busy processes, got "${o.load}"`);

  try {
    await import('onnxruntime-node');
  } catch {
    die('onnxruntime-node is not installed: cd bench/ort && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund');
  }
  const ortVersion = require('onnxruntime-node/package.json').version;

  const hogs = [];
  for (let i = 0; i < load; i++) hogs.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  const stopHogs = () => hogs.forEach((h) => h.kill('SIGKILL'));
  process.on('exit', stopHogs);

  const label = (o.demo ? 'demo_' : '') + (load ? `load_${load}` : 'idle');
  const result = {
    date: new Date().toISOString().slice(0, 10),
    machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}`,
    onnxruntime: ortVersion,
    threads, rounds, seconds_per_engine_per_round: seconds, competing_busy_processes: load,
    note: 'ratio = strata images/s / ONNX Runtime images/s, median of the per-round ratios; bench/ort/onnx_vs_ort.mjs',
    models: {},
  };
  console.log(`strata vs ONNX Runtime ${ortVersion}, ${threads} threads, ${rounds} rounds of ${seconds} s each, ` +
    `${load} competing busy process${load === 1 ? '' : 'es'}`);
  console.log('model               batch   strata img/s    ORT img/s   ratio (median; rounds)');
  for (const model of models) {
    const name = path.basename(model, '.onnx');
    // the same outputs first: strata's export (probabilities) within 1e-4 of ORT's
    const maxDiff = agreement(o.strata, model);
    if (o.demo && !(maxDiff <= 1e-4)) die(`${name}: strata and ONNX Runtime differ by ${maxDiff} on the same input`);
    result.models[name] = { max_abs_diff_vs_ort: Number(maxDiff.toPrecision(3)) };
    console.log(`${name}: outputs within ${maxDiff.toExponential(2)} of ONNX Runtime's (batch of 4, seeded input)`);
    for (const batch of batches) {
      const s = [], r = [], ratios = [];
      let input;
      for (let k = 0; k < rounds; k++) {
        let a, b;
        if (k % 2 === 0) {
          ({ images_per_s: a, input } = runOrtChild(model, batch, threads, seconds));
          b = timeStrata(o.strata, model, batch, threads, seconds);
        } else {
          b = timeStrata(o.strata, model, batch, threads, seconds);
          ({ images_per_s: a, input } = runOrtChild(model, batch, threads, seconds));
        }
        r.push(a), s.push(b), ratios.push(b / a);
      }
      const entry = {
        input,
        strata_images_per_s: round1(median(s)),
        ort_images_per_s: round1(median(r)),
        ratio_median: round3(median(ratios)),
        ratios: ratios.map(round3),
      };
      result.models[name][`batch_${batch}`] = entry;
      console.log(`${name.padEnd(20)}${String(batch).padStart(5)}${entry.strata_images_per_s.toFixed(1).padStart(15)}` +
        `${entry.ort_images_per_s.toFixed(1).padStart(13)}   ${entry.ratio_median.toFixed(3)}  [${entry.ratios.join(', ')}]`);
    }
  }
  stopHogs();

  if (o.write) {
    const file = path.resolve(o.write);
    const all = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
    all.onnx_vs_ort = { ...(all.onnx_vs_ort || {}), [label]: result };
    fs.writeFileSync(file, JSON.stringify(all, null, 2) + '\n');
    console.log(`written to ${file} under onnx_vs_ort.${label}`);
  }
}

main().catch((e) => die(e.stack || e.message));
