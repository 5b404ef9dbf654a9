// compare.js — "compare explanation methods": one prediction explained by
// several methods side by side (POST /api/models/{id}/explain): Grad-CAM,
// Integrated Gradients, occlusion, LIME, and a random map as the yardstick a
// real map must beat. Each card shows its map over the greyed photo (a
// diverging blue–white–red scale: red pushed the model towards the class,
// blue against it), a colour bar with the map's range, the two faithfulness
// scores and their curves (hide the pixels the map ranks first: the
// probability should fall fast; reveal them on a blurred copy: it should rise
// fast), and the method's own details. A class picker asks about another
// class ("why not jaguar?").
//
// compareView() turns a reply into what is drawn, without a browser (tested
// under Node); renderCompare() draws it into a container. Each container has
// its own state here (request token, abort controller, photo); a reply that
// comes back after a newer request was made is dropped.

import { explain, imageUrl } from './api.js';
import { el, fill, progress, errorBox, draw, num, pct, imageLoaded } from './ui.js';
import { baseLayout, GRID } from './palette.js';

/** The diverging scale, from −1 (blue: against the class) through 0 (white)
 *  to +1 (red: towards it), as [t, [r, g, b]] stops (after ColorBrewer RdBu). */
export const DIVERGING = [
  [-1, [33, 102, 172]],
  [-0.5, [103, 169, 207]],
  [0, [255, 255, 255]],
  [0.5, [239, 138, 98]],
  [1, [178, 24, 43]],
];

/** How much of the map covers the greyed photo (0: none, 1: opaque). */
export const OVERLAY_ALPHA = 0.62;

/** Colours of the two faithfulness curves: apart from the map's red and blue. */
export const DELETION_COLOR = '#6a3d9a';
export const INSERTION_COLOR = '#1b9e77';

/** Map values are integers in −1000…1000 of the map's scale. */
export const MAP_UNIT = 1000;

/** What each method does, in a sentence (the random map's says why it is there). */
export const METHOD_ABOUT = {
  gradcam: 'Where the last convolution layer’s features point, weighted by how much they raise the class’s score.',
  ig: 'The score’s gradient, summed along a path from a black image to this one. Often faint and speckled: a few ' +
    'pixels carry the largest values.',
  occlusion: 'How much the probability drops when a grey patch hides each place.',
  lime: 'A linear model fitted to the answers for copies with regions greyed out.',
  random: 'Random numbers, for comparison: a map that does no better than this one tells little.',
};

/** The [r, g, b] of a map value t in [−1, 1] (clamped), interpolated between DIVERGING's stops. */
export function mapColor(t) {
  const x = Number.isFinite(t) ? Math.max(-1, Math.min(1, t)) : 0;
  for (let i = 1; i < DIVERGING.length; i++) {
    const [t1, c1] = DIVERGING[i];
    if (x <= t1) {
      const [t0, c0] = DIVERGING[i - 1];
      const f = (x - t0) / (t1 - t0);
      return c0.map((c, k) => Math.round(c + f * (c1[k] - c)));
    }
  }
  return DIVERGING[DIVERGING.length - 1][1].slice();
}

/** RGBA pixels (row-major, opaque) of a reply's map {width, height, values}:
 *  +1000 is the red end, −1000 the blue end, 0 white. */
export function mapPixels(map) {
  const w = map.width, h = map.height;
  const out = new Uint8ClampedArray(w * h * 4);
  const values = map.values || [];
  for (let i = 0; i < w * h; i++) {
    const [r, g, b] = mapColor((values[i] ?? 0) / MAP_UNIT);
    out[4 * i] = r;
    out[4 * i + 1] = g;
    out[4 * i + 2] = b;
    out[4 * i + 3] = 255;
  }
  return out;
}

/** A CSS linear-gradient of the diverging scale, left (−) to right (+). */
export function colorBarGradient() {
  const stops = DIVERGING.map(([t, c]) => `rgb(${c.join(', ')}) ${Math.round((t + 1) * 50)}%`);
  return `linear-gradient(to right, ${stops.join(', ')})`;
}

/** A map's scale with two significant digits ("0.068", "0.20", "1.3"); "0" for zero. */
export function formatScale(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 100) return a.toFixed(0);
  const s = a.toPrecision(2);
  return /e/.test(s) ? a.toExponential(1) : s;
}

/** The colour bar's ends: {low: "−0.068", high: "+0.068"} (a true minus sign). */
export function scaleRange(scale) {
  const s = formatScale(scale);
  return { low: s === '0' || s === '–' ? s : `\u2212${s}`, high: s === '0' || s === '–' ? s : `+${s}` };
}

/** A method's details as [label, text] pairs, in plain words. */
export function methodDetails(m) {
  const d = m.details || {};
  switch (m.method) {
    case 'gradcam':
      return [['layer', d.layer ? `${d.layer}${d.height && d.width ? ` (${d.height}×${d.width})` : ''}` : '–']];
    case 'ig':
      return [
        ['steps', d.steps ?? '–'],
        ['baseline', d.baseline === 'blur' ? 'blurred copy' : d.baseline || '–'],
        ['completeness error', pct(d.completeness_error, 1)],
      ];
    case 'occlusion':
      return [['patch', d.patch ? `${d.patch} px` : '–'], ['stride', d.stride ? `${d.stride} px` : '–']];
    case 'lime':
      return [
        ['fit R²', num(d.score, 2)],
        ['regions', d.segments ?? '–'],
        ['samples', d.samples ?? '–'],
      ];
    default:
      return [];
  }
}

/** The deletion and insertion curves of one method: probability against the
 *  share of pixels (0…1) removed (deletion) or revealed (insertion). */
export function faithfulnessFigure(m) {
  const del = m.deletion || [];
  const ins = m.insertion || [];
  const n = Math.max(del.length, ins.length);
  const x = Array.from({ length: n }, (_, i) => (n > 1 ? i / (n - 1) : 0));
  const line = (name, y, color, fillcolor) => ({
    type: 'scatter', mode: 'lines', name, x: x.slice(0, y.length), y,
    line: { color, width: 2 }, fill: 'tozeroy', fillcolor,
    hoverinfo: 'skip',
  });
  const axis = { gridcolor: GRID, zeroline: false, fixedrange: true, tickfont: { size: 10 } };
  return {
    data: [
      line('deletion', del, DELETION_COLOR, 'rgba(106, 61, 154, 0.10)'),
      line('insertion', ins, INSERTION_COLOR, 'rgba(27, 158, 119, 0.10)'),
    ],
    layout: baseLayout({
      height: 150,
      margin: { l: 36, r: 20, t: 8, b: 34 },
      showlegend: false,
      dragmode: false,
      xaxis: { ...axis, range: [0, 1], tickvals: [0, 0.5, 1], ticktext: ['0', '50\u00a0%', '100\u00a0%'],
        title: { text: 'share of pixels', font: { size: 10 }, standoff: 4 } },
      // No "0" on this axis: the x axis's own "0" sits at that corner.
      yaxis: { ...axis, range: [0, 1.02], tickvals: [0, 0.5, 1], ticktext: ['', '0.5', '1'],
        title: { text: 'probability', font: { size: 10 }, standoff: 2 } },
    }),
  };
}

const auc = (m, key) => (typeof m[key] === 'number' && Number.isFinite(m[key]) ? m[key] : null);

/**
 * What the compare view draws for a reply of POST /api/models/{id}/explain:
 * {cls, predicted, truth, probability, summary, best, options, cards}.
 * `options` are the class picker's entries (one per class, the explained one
 * selected); `cards` one per method in the reply's order, each with its
 * map's RGBA pixels, colour-bar ends, scores (and whether each is the best
 * of the real methods), whether it beats the random map, its details and its
 * curves' figure. The best method's card has `best`; the random map's has
 * `comparison`.
 */
export function compareView(reply) {
  const methods = Array.isArray(reply.methods) ? reply.methods : [];
  const real = methods.filter((m) => m.method !== 'random');
  const pick = (key, better) => {
    const vals = real.map((m) => auc(m, key)).filter((v) => v !== null);
    return vals.length > 1 ? better(...vals) : null;
  };
  const bestDeletion = pick('deletion_auc', Math.min);
  const bestInsertion = pick('insertion_auc', Math.max);
  const random = methods.find((m) => m.method === 'random');
  const margin = (m) => (auc(m, 'insertion_auc') === null || auc(m, 'deletion_auc') === null ? null
    : m.insertion_auc - m.deletion_auc);
  const randomMargin = random ? margin(random) : null;
  const probs = Array.isArray(reply.probabilities) ? reply.probabilities : [];
  const options = probs.map((p) => {
    const tags = [];
    if (p.class === reply.predicted) tags.push('the answer');
    if (reply.true && p.class === reply.true) tags.push('true class');
    return {
      value: p.class,
      label: `${p.class} · ${pct(p.probability)}${tags.length ? ` (${tags.join(', ')})` : ''}`,
      selected: p.class === reply.class,
    };
  });
  const cards = methods.map((m) => {
    const comparison = m.method === 'random';
    const mine = margin(m);
    const map = m.map || { width: 0, height: 0, scale: 0, values: [] };
    return {
      method: m.method,
      title: m.title || m.method,
      about: METHOD_ABOUT[m.method] || '',
      best: !comparison && reply.best === m.method,
      comparison,
      width: map.width,
      height: map.height,
      scale: map.scale,
      range: scaleRange(map.scale),
      pixels: mapPixels(map),
      deletion: auc(m, 'deletion_auc'),
      insertion: auc(m, 'insertion_auc'),
      bestDeletion: !comparison && bestDeletion !== null && auc(m, 'deletion_auc') === bestDeletion,
      bestInsertion: !comparison && bestInsertion !== null && auc(m, 'insertion_auc') === bestInsertion,
      beatsRandom: comparison || mine === null || randomMargin === null ? null : mine > randomMargin,
      details: methodDetails(m),
      figure: faithfulnessFigure(m),
    };
  });
  return {
    cls: reply.class,
    predicted: reply.predicted,
    truth: reply.true ?? null,
    probability: reply.probability,
    summary: reply.summary || '',
    best: reply.best ?? null,
    options,
    cards,
  };
}

// --- drawing ---------------------------------------------------------------------

// Per container: {token, controller, source, model, photo (a promise of a
// greyed canvas or null), photoUrl, nodes, cards: Map(method -> nodes)}.
const views = new WeakMap();
// Per map canvas: what it shows ({map, grey}), so that a resize redraws it.
const painted = new WeakMap();
const resizer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver((entries) => {
  for (const e of entries) {
    const p = painted.get(e.target);
    if (p && e.target.isConnected) paint(e.target, p.map, p.grey);
  }
});

/** A canvas holding the photo in grey, at most GREY_SIDE pixels a side.
 *  paint() stretches it to the map's shape, as the model stretches a photo
 *  to its input. */
const GREY_SIDE = 320;
function greyPhoto(img) {
  const f = Math.min(1, GREY_SIDE / Math.max(img.naturalWidth, img.naturalHeight, 1));
  const w = Math.max(1, Math.round(img.naturalWidth * f)), h = Math.max(1, Math.round(img.naturalHeight * f));
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(img, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    px[i] = px[i + 1] = px[i + 2] = y;
  }
  ctx.putImageData(data, 0, 0);
  return c;
}

/** A canvas of the map's own size holding its colours. */
function mapCanvas(card) {
  const c = document.createElement('canvas');
  c.width = Math.max(1, card.width);
  c.height = Math.max(1, card.height);
  if (card.width > 0 && card.height > 0) {
    c.getContext('2d').putImageData(new ImageData(card.pixels, card.width, card.height), 0, 0);
  }
  return c;
}

/** Draws the greyed photo and the map over it into `canvas`, at the size the
 *  canvas is displayed (times the device's pixel ratio), smoothing both. */
function paint(canvas, map, grey) {
  const box = canvas.getBoundingClientRect();
  if (box.width < 1 || box.height < 1) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(box.width * dpr), h = Math.round(box.height * dpr);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.globalAlpha = 1;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, w, h);
  if (grey) ctx.drawImage(grey, 0, 0, w, h);
  ctx.globalAlpha = grey ? OVERLAY_ALPHA : 1;
  ctx.drawImage(map, 0, 0, w, h);
  ctx.globalAlpha = 1;
}

function sourceKey(source) {
  return source.file ? source.file : `image:${source.image}`;
}

/** Builds the view's frame (heading, picker, status, summary, grid) in `container`. */
function frame(container, view) {
  const select = el('select', { class: 'compare-class' });
  const nodes = {
    select,
    // Shown once the first reply has listed the classes.
    picker: el('label', { class: 'compare-picker', hidden: true }, el('span', {}, 'Explain the class'), select),
    status: el('div', { class: 'compare-status', 'aria-live': 'polite' }),
    question: el('p', { class: 'compare-question' }),
    summary: el('p', { class: 'compare-summary', hidden: true }),
    grid: el('div', { class: 'compare-grid', role: 'group', 'aria-label': 'one card per explanation method' }),
  };
  select.addEventListener('change', () => request(container, select.value));
  fill(container,
    el('div', { class: 'compare-head' },
      el('h4', { class: 'compare-title' }, 'Explanation methods side by side'),
      nodes.picker),
    el('p', { class: 'small muted compare-lead' }, 'Each map colours the pixels that pushed the model towards the ' +
      'class in red and those that pushed it away in blue. Below each map, how well the model’s own behaviour ' +
      'agrees with it: hide the pixels the map ranks first, and the probability should fall fast (deletion: a ' +
      'small area is better); reveal them on a blurred copy, and it should rise fast (insertion: a large area is ' +
      'better). A shaded score is the best of the four methods.'),
    nodes.status, nodes.question, nodes.summary, nodes.grid);
  view.nodes = nodes;
  view.cards = new Map();
}

/** The nodes of one method's card, made once and refilled for each reply. */
function cardNodes(method) {
  const n = {
    root: el('article', { class: 'compare-card', 'data-method': method }),
    title: el('h5', { class: 'compare-card-title' }),
    badge: el('span', { class: 'compare-badge', hidden: true }),
    about: el('p', { class: 'compare-about small muted' }),
    canvas: el('canvas', { class: 'compare-canvas', role: 'img', width: 96, height: 96 }),
    low: el('span', { class: 'colorbar-low' }),
    high: el('span', { class: 'colorbar-high' }),
    meaning: el('p', { class: 'colorbar-meaning' }),
    scores: el('dl', { class: 'compare-scores' }),
    versus: el('p', { class: 'compare-versus small' }),
    details: el('dl', { class: 'compare-details' }),
    plot: el('div', { class: 'plot plot-faith' }),
  };
  fill(n.root,
    el('header', { class: 'compare-card-head' }, n.title, n.badge),
    n.about,
    el('div', { class: 'compare-map' }, n.canvas),
    el('div', { class: 'colorbar-legend' },
      el('div', { class: 'colorbar', style: `background:${colorBarGradient()}`, 'aria-hidden': 'true' }),
      el('div', { class: 'colorbar-ticks' }, n.low, el('span', { class: 'colorbar-zero' }, '0'), n.high),
      n.meaning),
    n.scores, n.versus, n.details, n.plot);
  return n;
}

function scoreRow(key, value, best, label, arrow, hint, color) {
  return el('div', { class: `compare-score${best ? ' is-best-score' : ''}`, 'data-score': key },
    el('dt', {}, el('span', { class: 'swatch', style: `background:${color}`, 'aria-hidden': 'true' }), label,
      el('span', { class: 'score-hint' }, `${arrow} ${hint}`)),
    el('dd', { class: 'score-value', 'data-value': value ?? '', title: best ? 'the best of the four methods' : null },
      num(value, 2)));
}

function fillCard(n, card, view, cls) {
  n.root.classList.toggle('is-best', card.best);
  n.root.classList.toggle('is-comparison', card.comparison);
  n.root.dataset.best = card.best ? 'true' : 'false';
  n.title.textContent = card.title;
  n.badge.hidden = !card.best && !card.comparison;
  n.badge.textContent = card.best ? 'best here' : card.comparison ? 'for comparison' : '';
  n.badge.className = `compare-badge${card.best ? ' badge-best' : ''}${card.comparison ? ' badge-comparison' : ''}`;
  n.about.textContent = card.about;
  n.canvas.setAttribute('aria-label', `${card.title} map for “${cls}” over the greyed photo: red pushed towards ` +
    `“${cls}”, blue against it; from ${card.range.low} to ${card.range.high}`);
  n.canvas.style.aspectRatio = card.width > 0 && card.height > 0 ? `${card.width} / ${card.height}` : '1';
  n.low.textContent = card.range.low;
  n.high.textContent = card.range.high;
  fill(n.meaning,
    el('span', { class: 'meaning-towards' }, 'red'), ` pushed towards “${cls}”, `,
    el('span', { class: 'meaning-against' }, 'blue'), ' against it, white neither');
  fill(n.scores,
    scoreRow('deletion', card.deletion, card.bestDeletion, 'deletion AUC', '↓', 'lower is better', DELETION_COLOR),
    scoreRow('insertion', card.insertion, card.bestInsertion, 'insertion AUC', '↑', 'higher is better', INSERTION_COLOR));
  // Empty rather than hidden, so that every card keeps the same rows.
  n.versus.className = `compare-versus small ${card.beatsRandom ? 'ok' : 'bad'}`;
  n.versus.textContent = card.beatsRandom === null ? ''
    : card.beatsRandom ? 'Scores better than the random map.' : 'Scores no better than the random map.';
  fill(n.details, card.details.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, String(v)))));
  const map = mapCanvas(card);
  painted.set(n.canvas, { map, grey: view.grey });
  paint(n.canvas, map, view.grey);
  if (resizer) resizer.observe(n.canvas);
  return draw(n.plot, card.figure, { staticPlot: true, displayModeBar: false, scrollZoom: false });
}

function show(container, view, cv) {
  const { nodes } = view;
  fill(nodes.select, cv.options.map((o) => el('option', { value: o.value, selected: o.selected }, o.label)));
  nodes.select.value = cv.cls;
  nodes.picker.hidden = false;
  const answer = cv.cls === cv.predicted;
  fill(nodes.question,
    answer ? 'Why did the model answer ' : 'Why not ',
    el('strong', {}, `“${cv.cls}”`),
    answer ? `? (${pct(cv.probability)})` : `? (${pct(cv.probability)}; its answer is “${cv.predicted}”)`);
  nodes.summary.textContent = cv.summary;
  nodes.summary.hidden = !cv.summary;
  container.dataset.class = cv.cls;
  container.dataset.best = cv.best || '';
  const seen = new Set();
  const plots = [];
  for (const card of cv.cards) {
    seen.add(card.method);
    let n = view.cards.get(card.method);
    if (!n) {
      n = cardNodes(card.method);
      view.cards.set(card.method, n);
    }
    nodes.grid.append(n.root); // keeps the reply's order
    plots.push(fillCard(n, card, view, cv.cls));
  }
  for (const [method, n] of view.cards) {
    if (!seen.has(method)) { n.root.remove(); view.cards.delete(method); }
  }
  return Promise.all(plots);
}

async function request(container, cls = null) {
  const view = views.get(container);
  if (!view) return;
  const my = ++view.token;
  if (view.controller) view.controller.abort();
  const controller = new AbortController();
  view.controller = controller;
  const { nodes } = view;
  container.setAttribute('aria-busy', 'true');
  container.dataset.state = 'loading';
  nodes.grid.classList.add('is-loading');
  const what = cls ? `“${cls}”` : 'the model’s answer';
  fill(nodes.status, progress(`Explaining ${what} four ways and scoring each map — this takes a second or two…`));
  let reply;
  try {
    const params = { method: 'all', class: cls };
    if (view.source.image !== undefined && view.source.image !== null) params.image = view.source.image;
    reply = await explain(view.model.id, params, { body: view.source.file || null, signal: controller.signal });
    // The photo is needed to draw; a photo that does not load leaves the maps alone.
    view.grey = await view.photo;
  } catch (err) {
    if (my !== view.token) return;
    container.removeAttribute('aria-busy');
    container.dataset.state = 'error';
    nodes.grid.classList.remove('is-loading');
    const again = el('button', { type: 'button', class: 'small-button' }, 'Try again');
    again.addEventListener('click', () => request(container, cls));
    fill(nodes.status, errorBox(err, 'Could not compare the explanations'), again);
    fill(nodes.question);
    nodes.summary.hidden = true;
    for (const n of view.cards.values()) n.root.remove();
    view.cards.clear();
    return;
  }
  if (my !== view.token) return;
  const cv = compareView(reply);
  fill(nodes.status);
  nodes.grid.classList.remove('is-loading');
  await show(container, view, cv);
  if (my !== view.token) return;
  container.removeAttribute('aria-busy');
  container.dataset.state = 'ready';
}

/**
 * Shows, in `container`, one prediction of `model` ({id, ...}) explained by
 * every method, and asks again when another class is picked. `source` is
 * {image: index or "class/file"} (one of the model's analysed test images)
 * or {file: a File or Blob} (sent as the request's body). `cls` asks about a
 * class other than the predicted one. Calling it again on the same container
 * replaces what it shows; an answer to an older call is dropped.
 */
export function renderCompare(container, model, source, { cls = null } = {}) {
  let view = views.get(container);
  if (!view || view.model.id !== model.id || sourceKey(view.source) !== sourceKey(source)) {
    if (view) clearCompare(container);
    view = { token: 0, controller: null, model, source, grey: null, photoUrl: null };
    const img = new Image();
    img.decoding = 'async';
    if (source.file) {
      view.photoUrl = URL.createObjectURL(source.file);
      img.src = view.photoUrl;
    } else {
      img.src = imageUrl(model.id, source.image);
    }
    view.photo = imageLoaded(img).then(greyPhoto).catch(() => null);
    views.set(container, view);
    frame(container, view);
  }
  container.classList.add('compare');
  return request(container, cls);
}

/** Stops what `container`'s view is waiting for and empties it. */
export function clearCompare(container) {
  const view = container && views.get(container);
  if (!view) return;
  view.token += 1;
  if (view.controller) view.controller.abort();
  if (view.photoUrl) URL.revokeObjectURL(view.photoUrl);
  for (const n of view.cards.values()) if (resizer) resizer.unobserve(n.canvas);
  views.delete(container);
  container.replaceChildren();
  delete container.dataset.state;
  container.removeAttribute('aria-busy');
}
