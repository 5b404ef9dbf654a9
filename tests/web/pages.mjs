// pages.mjs — what the browser tests share once the server and Chromium run:
// the two screen sizes, the waits, a page that records its console errors,
// screenshots into tests/artifacts/, a GET of the API's JSON, the model
// page's readiness, what its graph of paths draws, and the imported
// residual model's set-up (the reference from $STRATA_ONNX_REFS, a server
// with an empty --workspace).
// Not a test file itself (its name matches none of node --test's patterns).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO, strataBin, skipReason, serveHelp, startServer, launchChromium } from './strata-server.mjs';

export const ARTIFACTS = path.join(REPO, 'tests', 'artifacts');

/** The two screens, as viewport sizes (px)... */
export const DESKTOP_SIZE = { width: 1280, height: 800 };
export const PHONE_SIZE = { width: 390, height: 844 };
/** ... and as browser.newContext options: a desktop with a mouse, a phone
 *  with a touch screen at twice the pixels. */
export const DESKTOP = { viewport: DESKTOP_SIZE };
export const PHONE = { viewport: PHONE_SIZE, hasTouch: true, isMobile: true, deviceScaleFactor: 2 };

/** How long the server may take to analyse every model (s): $STRATA_READY_TIMEOUT_S, else 180. */
export const READY_TIMEOUT_S = Number(process.env.STRATA_READY_TIMEOUT_S || 180);
/** How long one step of a page may take (ms): a page's default timeout. */
export const STEP_MS = 60000;

/** GET base + p; asserts a 2xx status and resolves to the parsed JSON. */
export async function getJSON(base, p) {
  const r = await fetch(base + p);
  assert.ok(r.ok, `GET ${p} answered ${r.status}`);
  return r.json();
}

/**
 * A new page of `ctx` that records console errors and uncaught exceptions,
 * opened at base + url (left blank when url is empty). A 503 "busy"
 * resource error is not counted: api.js retries it after Retry-After, as
 * the API asks. `allow` (a regexp) names further expected messages.
 * Resolves to { page, errors }; errors grows as the page runs.
 */
export async function openPage(ctx, base, url, { allow = null, stepMs = STEP_MS } = {}) {
  const page = await ctx.newPage();
  page.setDefaultTimeout(stepMs);
  const errors = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (/status of 503/.test(text)) return;
    if (allow && allow.test(text)) return;
    errors.push(`console: ${text}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  if (url) await page.goto(base + url);
  return { page, errors };
}

/** A screenshot to tests/artifacts/<name>.png: the window, or with
 *  fullPage the whole page; fromTop scrolls to the top first (a full-page
 *  shot of a scrolled page draws the sticky bar mid-page). */
export async function screenshot(page, name, { fullPage = false, fromTop = false } = {}) {
  if (fromTop) await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage });
}

/** Waits until the model page has drawn its graph of paths and first
 *  scatter; parcatsTimeoutMs, when given, bounds the wait for the graph
 *  (else the page's default timeout). */
export async function modelPageReady(page, { parcatsTimeoutMs = null } = {}) {
  const parcatsDrawn = () => !!document.querySelector('#parcats svg.pathsgraph .pg-axis .pg-seg');
  if (parcatsTimeoutMs) await page.waitForFunction(parcatsDrawn, null, { timeout: parcatsTimeoutMs });
  else await page.waitForFunction(parcatsDrawn);
  await page.waitForFunction(() => {
    const gd = document.getElementById('scatter');
    return gd && gd.data && gd.data.length > 0 && !document.querySelector('#layer-stats .progress');
  });
}

/** For page.evaluate, on the model page: the figure its graph of paths
 *  draws (web/pathsgraph.js pathsFigure, as graphFigure gives it: per line
 *  `colors` — class index, C for grey, C + 1 for the upload —, `truth`,
 *  and per dimension `values`, `categoryarray`, `ticktext`, `counts`), or
 *  null. The page's own module, imported again: the same instance. */
export const pathsFigureShown = async () => {
  const { graphFigure } = await import('/pathsgraph.js');
  return graphFigure(document.getElementById('parcats'));
};

/** For page.evaluate: what the graph of paths has drawn, bar by bar, read
 *  from its SVG: [{dim, label, kind, segments: [{value, count, upload,
 *  bands: {colour index: count}}]}]. */
export const pathsDrawn = () => [...document.querySelectorAll('#parcats svg.pathsgraph .pg-axis')].map((ax) => ({
  dim: Number(ax.dataset.dim),
  label: ax.dataset.label,
  kind: ax.dataset.kind,
  segments: [...ax.querySelectorAll('.pg-seg')].map((sg) => ({
    value: sg.dataset.value,
    count: Number(sg.dataset.count),
    upload: sg.dataset.upload === '1',
    bands: Object.fromEntries([...sg.querySelectorAll('.pg-band')].map((b) => [b.dataset.color, Number(b.dataset.count)])),
  })),
}));

/** Asserts that the SVG (pathsDrawn) draws figure `fig` (pathsFigureShown):
 *  one bar per dimension; on each, one segment per category with lines, as
 *  many lines as the figure puts there, striped by the figure's colours of
 *  those lines; the upload's segment marked. */
export function assertDrawsFigure(drawn, fig, when = '') {
  assert.equal(drawn.length, fig.dimensions.length, `${when}: one bar per dimension`);
  fig.dimensions.forEach((d, i) => {
    const want = new Map();
    d.values.forEach((v, line) => {
      const key = String(v);
      if (!want.has(key)) want.set(key, { count: 0, bands: {} });
      const w = want.get(key);
      w.count += 1;
      w.bands[fig.colors[line]] = (w.bands[fig.colors[line]] || 0) + 1;
    });
    const got = new Map(drawn[i].segments.map((sg) => [sg.value, sg]));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `${when}: ${d.label}'s segments`);
    for (const [key, w] of want) {
      assert.equal(got.get(key).count, w.count, `${when}: ${d.label} ${key}: lines`);
      assert.deepEqual(got.get(key).bands, Object.fromEntries(Object.entries(w.bands).map(([c, m]) => [String(c), m])),
        `${when}: ${d.label} ${key}: stripes`);
    }
    if (fig.upload) {
      assert.deepEqual(drawn[i].segments.filter((sg) => sg.upload).map((sg) => sg.value), [String(d.values[fig.lines - 1])],
        `${when}: ${d.label}: the upload's segment`);
    }
  });
}

/** For page.evaluate(f, d): the category value (as a string) of the
 *  segment of dimension d the upload's line goes through, or null. */
export const uploadSegmentAt = (d) =>
  document.querySelector(`#parcats .pg-axis[data-dim="${d}"] .pg-seg[data-upload]`)?.dataset.value ?? null;

/** For page.evaluate: how many lines the graph of paths draws (its first bar's). */
export const pathsLines = () => [...document.querySelectorAll('#parcats .pg-axis[data-dim="0"] .pg-seg')]
  .reduce((sum, sg) => sum + Number(sg.dataset.count), 0);

/** For page.evaluate(f, [dim, value]): the page coordinates of the middle of
 *  segment `value` of dimension `dim` of the graph of paths, scrolled into
 *  the middle of the window first (and of its sideways-scrolling box). */
export const pathsSegmentAt = ([dim, value]) => {
  const seg = document.querySelector(`#parcats .pg-axis[data-dim="${dim}"] .pg-seg[data-value="${value}"]`);
  seg.scrollIntoView({ block: 'center', inline: 'center' });
  const r = seg.querySelector('.pg-outline').getBoundingClientRect();
  return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
};

/** For page.evaluate, on the model page's scatter: the image point farthest
 *  from every other point and centre (so that a tap can mean only it), in
 *  page pixels, with its index in the scatter reply and the scatter's layer
 *  and k: { x, y, index, layer, k }. */
export const loneImagePoint = () => {
  const gd = document.getElementById('scatter');
  const fl = gd._fullLayout;
  const box = gd.getBoundingClientRect();
  const px = (x, y) => [box.left + fl.xaxis._offset + fl.xaxis.d2p(x), box.top + fl.yaxis._offset + fl.yaxis.d2p(y)];
  const all = [];
  gd.data.forEach((tr) => tr.x.forEach((x, j) => all.push({ image: tr.name !== 'cluster centres' && tr.name !== 'your image',
    index: tr.customdata ? tr.customdata[j] : null, p: px(x, tr.y[j]) })));
  let best = null, bestD = -1;
  for (const a of all) {
    if (!a.image) continue;
    const [x, y] = a.p;
    if (x < box.left + fl.xaxis._offset + 10 || x > box.left + fl.xaxis._offset + fl.xaxis._length - 10) continue;
    if (y < box.top + fl.yaxis._offset + 10 || y > box.top + fl.yaxis._offset + fl.yaxis._length - 10) continue;
    if (y < 80 || y > window.innerHeight - 10) continue;
    const d = Math.min(...all.filter((b) => b !== a).map((b) => Math.hypot(b.p[0] - x, b.p[1] - y)));
    if (d > bestD) { best = a; bestD = d; }
  }
  return { x: best.p[0], y: best.p[1], index: best.index, layer: gd.dataset.layer, k: gd.dataset.k };
};

/** $STRATA_ONNX_REFS/residual/residual.onnx ('' when the variable is not set). */
export const RESIDUAL_ONNX = process.env.STRATA_ONNX_REFS
  ? path.join(process.env.STRATA_ONNX_REFS, 'residual', 'residual.onnx') : '';

/**
 * The residual CNN PyTorch trained on the felines, for the import tests:
 * resolves to { reference } (residual.reference.json: classes, mean, std)
 * or { skip } with the reason — no $STRATA_ONNX_REFS, no model there, or a
 * binary that cannot serve or has no --workspace (`purpose` says what the
 * workspace is for, in the reason).
 */
export function residualReference(purpose) {
  const refs = process.env.STRATA_ONNX_REFS || '';
  if (!refs) {
    return { skip: 'STRATA_ONNX_REFS is not set (scripts/test sets it once PyTorch has made the reference models in build-refs/)' };
  }
  if (!fs.existsSync(RESIDUAL_ONNX)) return { skip: `no ${RESIDUAL_ONNX} (scripts/onnx/train_residual.py makes it)` };
  const reference = JSON.parse(fs.readFileSync(path.join(refs, 'residual', 'residual.reference.json'), 'utf8'));
  const skip = skipReason();
  if (skip) return { skip, reference };
  if (!/--workspace\b/.test(serveHelp())) {
    return { skip: `${strataBin()} has no 'serve --workspace' yet (${purpose})`, reference };
  }
  return { reference };
}

/** A fresh temporary folder (named strata-<name>-…) holding an empty
 *  workspace/: { tmp, workspace }. The caller removes tmp. */
export function tempWorkspace(name) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `strata-${name}-`));
  const workspace = path.join(tmp, 'workspace');
  fs.mkdirSync(workspace);
  return { tmp, workspace };
}

/**
 * Starts `strata serve --workspace <workspace>` (up to READY_TIMEOUT_S for
 * the analyses) and Chromium. Resolves to { server, base, browser } or,
 * when Chromium cannot run, { server, base, skip }; the caller stops the
 * server. Rejects as startServer does.
 */
export async function workspaceSession(workspace) {
  const server = await startServer({ timeoutS: READY_TIMEOUT_S, extra: ['--workspace', workspace] });
  const launched = await launchChromium();
  if (launched.skip) return { server, base: server.base, skip: launched.skip };
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return { server, base: server.base, browser: launched.browser };
}
