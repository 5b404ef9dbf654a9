// ui.js — small DOM helpers shared by the pages: element building, number
// formatting, progress and error boxes, and drawing a Plotly figure (newPlot
// the first time, react afterwards). Browser only.
//
// Plotly.js is not in the pages' heads: its 4.8 MB bundle takes about a
// second of the main thread to run, which would hold back everything the
// page shows first. The first draw() loads it (a script element added
// then), after what the page asked to come first (plotlyAfter).

import { lowDoubtText } from './doubtchart.js';

/** Creates an element: el('a', {href: '/', class: 'x'}, 'text', child, ...).
 *  Attributes starting with "on" are refused: handlers go through addEventListener. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (/^on/i.test(k)) throw new Error(`inline handler ${k} refused: use addEventListener`);
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** "79 %" from 0.79 (a no-break space, so the sign never wraps alone onto
 *  the next line); "–" for a missing value. */
export function pct(x, digits = 0) {
  return typeof x === 'number' && Number.isFinite(x) ? `${(100 * x).toFixed(digits)}\u00a0%` : '–';
}

/** A number with `digits` decimals, or "–". */
export function num(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/** "390 k" style parameter counts. */
export function count(n) {
  if (typeof n !== 'number') return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e4) return `${Math.round(n / 1e3)} k`;
  return String(n);
}

/** "96×96×32" from an output shape. */
export function shape(s) {
  return Array.isArray(s) ? s.join('×') : '';
}

/** A progress line with a spinner, announced to screen readers. */
export function progress(text) {
  return el('div', { class: 'progress', role: 'status' }, el('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

/** An error box showing the server's sentence (ApiError.message) and its code. */
export function errorBox(err, prefix = '') {
  const code = err && err.code ? ` (${err.status ? err.status + ' ' : ''}${err.code})` : '';
  return el('div', { class: 'error', role: 'alert' },
    el('strong', {}, prefix || 'Something went wrong'), ' — ', err && err.message ? err.message : String(err),
    el('span', { class: 'error-code' }, code));
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

let plotlyGate = Promise.resolve();
let plotlyLoad = null;

/** Holds the loading of Plotly back until `p` settles (say, until the
 *  page's first chart, drawn without it, is on screen). Call it before the
 *  first draw(). */
export function plotlyAfter(p) {
  plotlyGate = Promise.resolve(p).catch(() => {});
}

/** Resolves to window.Plotly, loading /vendor/plotly.min.js the first time
 *  (once plotlyAfter's promise has settled); rejects when it cannot load
 *  (the next call tries again). */
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoad) {
    plotlyLoad = plotlyGate.then(() => new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const script = el('script', { src: '/vendor/plotly.min.js', async: true });
      script.addEventListener('load', () => resolve(window.Plotly));
      script.addEventListener('error', () => {
        plotlyLoad = null;
        script.remove();
        reject(new Error('Plotly (/vendor/plotly.min.js) could not be loaded'));
      });
      document.head.append(script);
    }));
  }
  return plotlyLoad;
}

const drawn = new WeakSet();
// Plotly's own `responsive` only follows window resizes; a plot whose box
// changes because the layout around it changed (an image loading beside it,
// a panel opening) is resized through this observer instead.
const resizer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver((entries) => {
  for (const e of entries) {
    if (e.target.isConnected && e.target.offsetWidth > 0 && window.Plotly) window.Plotly.Plots.resize(e.target);
  }
});
const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ['select2d', 'lasso2d', 'autoScale2d', 'toImage'] };

/** Draws fig into node: Plotly.newPlot the first time, Plotly.react after
 *  (once Plotly is loaded: see plotly()). */
export async function draw(node, fig, config = {}) {
  const cfg = { ...CONFIG, ...config };
  const P = await plotly();
  if (drawn.has(node)) return P.react(node, fig.data, fig.layout, cfg);
  drawn.add(node);
  const done = await P.newPlot(node, fig.data, fig.layout, cfg);
  if (resizer) resizer.observe(node);
  return done;
}

/** Capitalised dataset name ("felines" -> "Felines"). */
export function titleCase(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

/** Full-size image URL from a thumb URL ("…/thumb" stripped). */
export function fullFromThumb(url) {
  return typeof url === 'string' ? url.replace(/\/thumb$/, '') : url;
}

/** The class an image id names ("jaguar%2F0003.jpg" or "jaguar/0003.jpg" -> "jaguar"). */
export function classOfId(id) {
  const s = decodeURIComponent(String(id));
  const slash = s.indexOf('/');
  return slash > 0 ? s.slice(0, slash) : '';
}

/** A small coloured badge for a doubt reply {score, level, explanation}; null when absent. */
export function doubtBadge(doubt) {
  if (!doubt || typeof doubt !== 'object') return null;
  const level = typeof doubt.level === 'string' ? doubt.level : 'unknown';
  return el('span', { class: `doubt-badge doubt-${level.replace(/[^a-z]/gi, '')}`, title: doubt.explanation || '' },
    `doubt ${level}`, typeof doubt.score === 'number' ? ` · ${doubt.score.toFixed(2)}` : '');
}

/** The doubt as a meter (score in [0, 1]), its level, the server's
 *  explanation and, when given, a note (a node) after it. */
export function doubtPanel(doubt, { note = null } = {}) {
  if (!doubt || typeof doubt !== 'object') return null;
  const score = typeof doubt.score === 'number' && Number.isFinite(doubt.score) ? doubt.score : null;
  const level = typeof doubt.level === 'string' ? doubt.level : 'unknown';
  return el('div', { class: `doubt doubt-${level.replace(/[^a-z]/gi, '')}` },
    el('div', { class: 'doubt-head' },
      el('span', { class: 'doubt-title' }, 'Doubt'),
      el('span', { class: 'doubt-score', 'data-doubt': score ?? '' }, score === null ? '–' : score.toFixed(2)),
      el('span', { class: 'doubt-level' }, level)),
    score === null ? null : el('div', { class: 'meter', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 1,
      'aria-valuenow': score.toFixed(2), 'aria-label': 'doubt score' },
    el('span', { class: 'meter-fill', style: `width:${Math.round(Math.min(1, Math.max(0, score)) * 100)}%` })),
    doubt.explanation ? el('p', { class: 'doubt-text' }, doubt.explanation) : null,
    note);
}

/**
 * For a low doubt, a small note saying that low is weak evidence; null for
 * any other level. `shares` is a promise of lowDoubtShares(report) (or
 * null): the note starts generic and gains this model's measured share of
 * other datasets' photos rated low when the promise resolves.
 */
export function lowDoubtNote(doubt, shares = null) {
  if (!doubt || doubt.level !== 'low') return null;
  const p = el('p', { class: 'small low-doubt-note' }, lowDoubtText(null));
  if (shares && typeof shares.then === 'function') {
    shares.then((s) => { if (s) p.textContent = lowDoubtText(s); }).catch(() => {});
  }
  return p;
}

/** Resolves when an <img> has loaded (rejects on error). */
export function imageLoaded(img) {
  if (img.complete && img.naturalWidth > 0) return Promise.resolve(img);
  return new Promise((resolve, reject) => {
    img.addEventListener('load', () => resolve(img), { once: true });
    img.addEventListener('error', () => reject(new Error(`could not load ${img.src}`)), { once: true });
  });
}
