// bench_pages.mjs — how fast a model page is ready in a real browser, on the
// loopback: the time from navigation to the paths graph drawn (the page's
// modules loaded, the paths fetched and drawn as SVG by pathsgraph.js;
// Plotly loads after it), and the time from a click on a new k to the
// scatter re-clustered and redrawn. Headless Chromium through
// playwright-core, a fresh browser context per round (no browser cache; the
// server keeps its compressed copies and its analyses), the median of
// several rounds per deep demo model.
//
// Usage: node bench/bench_pages.mjs [--rounds N] [--load N]
// (N busy processes of our own beside it). Needs the built strata
// (build/server/strata, or $STRATA_BIN), the demo models and
// ../shared/datasets; prints a table and merges {"pages": ...}
// (or "pages_load_N") into bench/results.json.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { REPO, startServer, launchChromium, skipReason } from '../tests/web/strata-server.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', 5);
const LOAD = arg('--load', 0);
const MODELS = ['paysages', 'transports', 'felines'];
// The graph of paths drawn: its first segment (pathsgraph.js).
const DRAWN = '#parcats svg.pathsgraph .pg-seg';
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const skip = skipReason();
if (skip) {
  console.log(`bench_pages: skipped: ${skip}`);
  process.exit(0);
}
const busy = Array.from({ length: LOAD }, () => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
const server = await startServer({ timeoutS: 600 });
const { browser, skip: noBrowser } = await launchChromium();
if (noBrowser) {
  console.log(`bench_pages: skipped: ${noBrowser}`);
  await server.stop();
  process.exit(0);
}
const results = {};
try {
  for (const id of MODELS) {
    const paths = [], recluster = [];
    for (let r = 0; r < ROUNDS; r++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      // When the graph is drawn, seen from inside the page: an observer set
      // before any of its scripts runs notes the first animation frame after
      // the graph's first segment is in the document (performance.now()
      // counts from the navigation's start). Watching from here would start
      // only once page.goto has seen the load event, which a script added
      // meanwhile (Plotly's, after the graph) holds back.
      await context.addInitScript((sel) => {
        const seen = new MutationObserver(() => {
          if (!document.querySelector(sel)) return;
          seen.disconnect();
          requestAnimationFrame(() => { window.__pathsDrawnAt = performance.now(); });
        });
        seen.observe(document, { childList: true, subtree: true });
      }, DRAWN);
      const page = await context.newPage();
      await page.goto(`${server.base}/model.html?id=${id}`);
      const drawn = await page.waitForFunction(() => window.__pathsDrawnAt || 0, null, { timeout: 60000 });
      paths.push(await drawn.jsonValue());
      await page.waitForFunction(() => {
        const gd = document.getElementById('scatter');
        return gd && gd.data && gd.data.length > 0 && !document.querySelector('#layer-stats .progress');
      }, null, { timeout: 60000 });
      // a k this layer has not been clustered at in this server yet (each
      // round takes the next one, so the server computes it every time)
      const k = 2 + ((r + 3) % 9);
      const ms = await page.evaluate(async (k) => {
        const centres = () => {
          const gd = document.getElementById('scatter');
          const t = gd && gd.data && gd.data.find((d) => d.name === 'cluster centres');
          return t ? t.x.length : -1;
        };
        const button = document.querySelector(`#k-selector button[data-k="${k}"]`);
        const t0 = performance.now();
        button.click();
        for (;;) {
          await new Promise((res) => requestAnimationFrame(res));
          if (centres() === k) return performance.now() - t0;
          if (performance.now() - t0 > 30000) return NaN;
        }
      }, k);
      recluster.push(ms);
      await context.close();
    }
    results[id] = {
      paths_drawn_ms: Math.round(median(paths)), paths_drawn_range_ms: [Math.round(Math.min(...paths)), Math.round(Math.max(...paths))],
      recluster_ms: Math.round(median(recluster)), recluster_range_ms: [Math.round(Math.min(...recluster)), Math.round(Math.max(...recluster))],
    };
  }
} finally {
  await browser.close();
  await server.stop();
  busy.forEach((p) => p.kill());
}

console.log(`model page in Chromium, loopback, median of ${ROUNDS} rounds (${LOAD} busy processes beside it)`);
console.log('model         paths graph drawn after navigation     re-clustered with a new k');
for (const [id, r] of Object.entries(results))
  console.log(`${id.padEnd(13)} ${String(r.paths_drawn_ms).padStart(6)} ms (${r.paths_drawn_range_ms.join('–')})`.padEnd(52) +
    `${String(r.recluster_ms).padStart(6)} ms (${r.recluster_range_ms.join('–')})`);
const file = path.join(REPO, 'bench', 'results.json');
const all = JSON.parse(fs.readFileSync(file, 'utf8'));
all[LOAD ? `pages_load_${LOAD}` : 'pages'] = { rounds: ROUNDS, viewport: '1280x800', models: results };
fs.writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
