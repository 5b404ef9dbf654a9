// ort_bench.mjs — CPU inference throughput of ONNX models, per engine, batch and thread count.
//
// Usage (install once, here only, never in the repo root:
//   cd bench/ort && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund):
//
//   node bench/ort/ort_bench.mjs MODEL.onnx [MODEL.onnx ...] [--engine ort] \
//        [--batch 1,16] [--threads 1,2] [--runs 7] [--warmup 2] [--hw 224] [--min-ms 200] [--seed 1]
//
// For each model × engine × thread count × batch B it feeds one random input of
// shape [B,3,hw,hw] (normal, seeded), makes `warmup` untimed calls, then `runs`
// timed runs. A run repeats the call until at least --min-ms have passed (at
// least once), so a fast batch-1 call is not timed alone at timer resolution;
// its figure is images/s = calls·B / seconds. One JSON line per configuration:
//   {"engine","engine_version","model","batch","threads","hw",
//    "images_per_s_median","images_per_s_min","images_per_s_max","runs":[...]}
//
// Engines are entries of ENGINES: open(model, threads) → handle, run(handle,
// input) awaits one inference, close(handle). ONNX Runtime is the only one
// today; strata's is to be added beside it, and every engine is timed by the
// same loop.

import { createRequire } from 'node:module';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);

/* ------------------------------------------------------------------ engines */

const ENGINES = {
    ort: {
        async load() {
            const ort = await import('onnxruntime-node');
            const version = require('onnxruntime-node/package.json').version;
            return { ort, version };
        },
        // One session per thread count: intra-op threads = `threads`, no
        // inter-op parallelism (a CNN graph is a chain), all graph optimisations.
        async open({ ort }, model, threads) {
            const session = await ort.InferenceSession.create(model, {
                executionProviders: ['cpu'],
                intraOpNumThreads: threads,
                interOpNumThreads: 1,
                executionMode: 'sequential',
                graphOptimizationLevel: 'all',
            });
            return { ort, session, inputName: session.inputNames[0], outputName: session.outputNames[0] };
        },
        // input: {data: Float32Array, dims: [B,3,H,W]}; the tensor is rebuilt per call
        // (it only wraps the buffer), the output is read back so the call is complete.
        async run(h, input) {
            const out = await h.session.run({ [h.inputName]: new h.ort.Tensor('float32', input.data, input.dims) });
            return out[h.outputName].dims;
        },
        async close(h) {
            await h.session.release();
        },
    },
};

/* ------------------------------------------------------------------- input */

// mulberry32: a small seeded PRNG, uniform in [0,1).
function rng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

// N(0,1) values (Box–Muller) in a [B,3,hw,hw] float32 tensor.
function randomInput(batch, hw, seed) {
    const dims = [batch, 3, hw, hw];
    const data = new Float32Array(batch * 3 * hw * hw);
    const u = rng(seed);
    for (let i = 0; i < data.length; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - u()));
        const t = 2 * Math.PI * u();
        data[i] = r * Math.cos(t);
        if (i + 1 < data.length) data[i + 1] = r * Math.sin(t);
    }
    return { data, dims };
}

/* ------------------------------------------------------------------ timing */

function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Times one configuration with the engine's run(); returns images/s per run.
async function measure(engine, handle, input, { runs, warmup, minMs }) {
    const batch = input.dims[0];
    for (let i = 0; i < warmup; i++) await engine.run(handle, input);
    const rates = [];
    for (let r = 0; r < runs; r++) {
        let calls = 0;
        const t0 = performance.now();
        let t = t0;
        do {
            await engine.run(handle, input);
            calls++;
            t = performance.now();
        } while (t - t0 < minMs);
        rates.push((calls * batch) / ((t - t0) / 1000));
    }
    return rates;
}

/* -------------------------------------------------------------------- main */

function intList(s, name) {
    const v = s.split(',').filter(Boolean).map(Number);
    if (!v.length || v.some((x) => !Number.isInteger(x) || x < 1)) {
        throw new Error(`--${name} wants positive integers separated by commas, got "${s}"`);
    }
    return v;
}

async function main() {
    const { values: o, positionals: models } = parseArgs({
        allowPositionals: true,
        options: {
            engine: { type: 'string', default: 'ort' },
            batch: { type: 'string', default: '1,16' },
            threads: { type: 'string', default: '1,2' },
            runs: { type: 'string', default: '7' },
            warmup: { type: 'string', default: '2' },
            hw: { type: 'string', default: '224' },
            'min-ms': { type: 'string', default: '200' },
            seed: { type: 'string', default: '1' },
        },
    });
    if (!models.length) throw new Error('usage: node ort_bench.mjs MODEL.onnx [...] [--batch 1,16] [--threads 1,2] ...');
    const batches = intList(o.batch, 'batch');
    const threads = intList(o.threads, 'threads');
    const [runs] = intList(o.runs, 'runs');
    const warmup = Number(o.warmup);
    const [hw] = intList(o.hw, 'hw');
    const minMs = Number(o['min-ms']);
    const seed = Number(o.seed);
    const engineNames = o.engine.split(',').filter(Boolean);
    for (const name of engineNames) {
        if (!ENGINES[name]) throw new Error(`unknown engine "${name}"; known: ${Object.keys(ENGINES).join(', ')}`);
    }

    const inputs = new Map(batches.map((b) => [b, randomInput(b, hw, seed)]));
    for (const model of models) {
        for (const name of engineNames) {
            const engine = ENGINES[name];
            const lib = await engine.load();
            for (const t of threads) {
                const handle = await engine.open(lib, model, t);
                for (const b of batches) {
                    const rates = await measure(engine, handle, inputs.get(b), { runs, warmup, minMs });
                    const round = (x) => Math.round(x * 100) / 100;
                    console.log(JSON.stringify({
                        engine: name,
                        engine_version: lib.version,
                        model: basename(model),
                        batch: b,
                        threads: t,
                        hw,
                        images_per_s_median: round(median(rates)),
                        images_per_s_min: round(Math.min(...rates)),
                        images_per_s_max: round(Math.max(...rates)),
                        runs: rates.map(round),
                    }));
                }
                await engine.close(handle);
            }
        }
    }
}

main().catch((e) => {
    console.error(`ort_bench: ${e.message}`);
    process.exit(1);
});
