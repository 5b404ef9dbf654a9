// featuremaps.js — what a layer sees, inside the image panel: for one image
// and one layer (POST /api/models/{id}/features), the layer's strongest
// channels, each drawn as a small heat map over the greyed photo, with a
// layer picker, the input's and the layer's sizes, and every channel's mean
// activation as a strip of bars. A layer without spatial extent (1 × 1 × F:
// a global pooling, a dense layer) has no maps: its strongest units are
// bars instead, named after the classes for the model's last layer.
//
// One colour scale for every tile, explained in a legend: a map's cells are
// integers from 0 to 1000 of that channel's own [min, max], so a tile says
// where its channel responds, not how strongly; its mean and max are written
// under it. Low cells are nearly transparent (the photo shows through), high
// ones opaque and bright.
//
// featureView() and featurePixels() are pure (tested under Node);
// renderFeatures() draws into a container, whose earlier view it replaces; a
// reply that comes back after a newer request was made is dropped.

import { features } from './api.js';
import { el, fill, progress, errorBox, draw, shape } from './ui.js';
import { stillLayout, MUTED, GRID } from './palette.js';

/** Map cells are integers in 0…1000 of their channel's own range. */
export const CELL_UNIT = 1000;

/** How many channels may be mapped (the endpoint's own limits). */
export const TOP_CHOICES = [6, 12, 24, 48];
export const TOP_DEFAULT = 12;

/** The sequential scale, from a channel's lowest value (dark, nearly
 *  transparent) to its highest (bright, opaque): [t, [r, g, b]] stops. */
export const FEATURE_STOPS = [
  [0, [33, 29, 95]],
  [0.25, [87, 44, 158]],
  [0.5, [196, 62, 122]],
  [0.75, [247, 137, 58]],
  [1, [252, 231, 97]],
];
/** Opacity at the low and the high end of the scale. */
export const ALPHA_LOW = 0.45;
export const ALPHA_HIGH = 0.95;

/** [r, g, b, a] (a in 0…255) of a cell t in [0, 1] (clamped). */
export function featureColor(t) {
  const x = Number.isFinite(t) ? Math.max(0, Math.min(1, t)) : 0;
  let rgb = FEATURE_STOPS[FEATURE_STOPS.length - 1][1];
  for (let i = 1; i < FEATURE_STOPS.length; i++) {
    const [t1, c1] = FEATURE_STOPS[i];
    if (x <= t1) {
      const [t0, c0] = FEATURE_STOPS[i - 1];
      const f = (x - t0) / (t1 - t0);
      rgb = c0.map((c, k) => Math.round(c + f * (c1[k] - c)));
      break;
    }
  }
  return [...rgb, Math.round(255 * (ALPHA_LOW + (ALPHA_HIGH - ALPHA_LOW) * x))];
}

/** RGBA pixels (row-major) of one channel's map: `cells` are width × height
 *  integers 0…1000 (missing ones count as 0). */
export function featurePixels(cells, width, height) {
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const c = featureColor((cells[i] ?? 0) / CELL_UNIT);
    out.set(c, 4 * i);
  }
  return out;
}

/** A value with three significant digits ("4.10", "0.0264", "−1.70"). */
export function fmt(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  const s = a >= 1000 ? a.toFixed(0) : a.toPrecision(3);
  return `${x < 0 ? '\u2212' : ''}${/e/.test(s) ? a.toExponential(1) : s}`;
}

/** The layers a reader can pick, as <option>s: {value (index), label}. */
export function layerChoices(layers) {
  return (layers || []).map((l) => ({ value: l.index, label: `${l.name} · ${shape(l.output_shape)}` }));
}

const spatial = (l) => Array.isArray(l.output_shape) && l.output_shape.length === 3 &&
  l.output_shape[0] > 1 && l.output_shape[1] > 1;

/** The layer shown first: the first layer with spatial extent whose side is
 *  at most half the input's (past the first pooling, where the maps show
 *  parts rather than edges), else the first spatial one, else the first. */
export function defaultFeatureLayer(layers, input = null) {
  const list = layers || [];
  const side = input && input.height ? input.height : Infinity;
  const half = list.find((l) => spatial(l) && l.output_shape[0] <= side / 2);
  const any = list.find(spatial);
  return (half || any || list[0] || { index: 0 }).index;
}

/**
 * What is drawn for a reply of POST …/features: {layer, input, image,
 * predicted, spatial, mapSize, channels (the layer's channel count), tiles,
 * means, unitNames}. `tiles` has one entry per mapped channel, largest mean
 * first: {index, mean, min, max, cells, label ("#17"), text ("mean 0.93"),
 * maxText ("max 4.10")}; `means` every channel's mean with the mapped ones marked.
 * `classes` name the units of the model's last layer when `last` is true
 * and their count is the classes'.
 */
export function featureView(reply, { classes = [], last = false } = {}) {
  const chans = Array.isArray(reply.channels) ? reply.channels : [];
  const size = reply.map_size || { width: 0, height: 0 };
  const spatialMap = size.width > 0 && size.height > 0 && chans.some((c) => Array.isArray(c.map));
  const means = Array.isArray(reply.means) ? reply.means : [];
  const named = last && classes.length === means.length;
  const unitName = (i) => (named ? classes[i] : `unit ${i}`);
  const mapped = new Set(chans.map((c) => c.index));
  return {
    layer: reply.layer,
    input: reply.input,
    image: reply.image,
    predicted: reply.predicted,
    spatial: spatialMap,
    mapSize: size,
    channels: means.length,
    tiles: chans.map((c) => ({
      index: c.index,
      mean: c.mean,
      min: c.min,
      max: c.max,
      cells: Array.isArray(c.map) ? c.map : null,
      label: spatialMap ? `#${c.index}` : unitName(c.index),
      text: spatialMap ? `mean ${fmt(c.mean)}` : fmt(c.mean),
      maxText: spatialMap ? `max ${fmt(c.max)}` : null,
    })),
    means: means.map((m, i) => ({ index: i, mean: m, mapped: mapped.has(i) })),
    unitNames: named,
  };
}

/** Horizontal bars of a vector layer's strongest units, largest on top. */
export function unitsFigure(view) {
  const tiles = view.tiles;
  return {
    data: [{
      type: 'bar',
      orientation: 'h',
      x: tiles.map((t) => t.mean),
      y: tiles.map((t) => t.label),
      text: tiles.map((t) => t.text),
      textposition: 'outside',
      cliponaxis: false,
      marker: { color: '#c43e7a' },
      hovertemplate: '%{y}: %{x:.4g}<extra></extra>',
    }],
    layout: stillLayout({
      height: 40 + 24 * Math.max(2, tiles.length),
      margin: { l: view.unitNames ? 90 : 70, r: 56, t: 6, b: 28 },
      xaxis: { gridcolor: GRID, zeroline: true, zerolinecolor: '#b3bcc8' },
      yaxis: { autorange: 'reversed', type: 'category' },
      bargap: 0.3,
      showlegend: false,
    }),
  };
}

/** Every channel's mean activation as thin bars, the mapped ones coloured. */
export function meansFigure(view) {
  const m = view.means;
  return {
    data: [{
      type: 'bar',
      x: m.map((c) => c.index),
      y: m.map((c) => c.mean),
      marker: { color: m.map((c) => (c.mapped ? '#c43e7a' : MUTED)) },
      hovertemplate: 'channel %{x}: mean %{y:.3g}<extra></extra>',
    }],
    layout: stillLayout({
      height: 130,
      margin: { l: 44, r: 8, t: 6, b: 30 },
      xaxis: { title: { text: 'channel', font: { size: 10 }, standoff: 2 }, showgrid: false, tickfont: { size: 10 } },
      yaxis: { gridcolor: GRID, zeroline: true, zerolinecolor: '#b3bcc8', tickfont: { size: 10 } },
      bargap: 0.15,
      showlegend: false,
    }),
  };
}

// --- drawing -----------------------------------------------------------------

// The reader's last choices, kept for the next image they open.
const remembered = { layer: null, top: TOP_DEFAULT };
// Per container: {token, controller, model, source, photo (promise of a grey canvas | null), nodes}.
const views = new WeakMap();
// Per tile canvas: {map (a canvas of the map's size), grey}, so that a resize repaints it.
const painted = new WeakMap();
const resizer = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver((entries) => {
  for (const e of entries) {
    const p = painted.get(e.target);
    if (p && e.target.isConnected) paint(e.target, p.map, p.grey);
  }
});

/** A canvas holding the photo in grey, at most 240 px a side. */
function greyCanvas(img) {
  const f = Math.min(1, 240 / Math.max(img.naturalWidth, img.naturalHeight, 1));
  const w = Math.max(1, Math.round(img.naturalWidth * f)), h = Math.max(1, Math.round(img.naturalHeight * f));
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h);
  const px = data.data;
  for (let i = 0; i < px.length; i += 4) {
    // Light and soft, so that the map reads first and the photo under it second.
    const y = 110 + 0.55 * (0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]);
    px[i] = px[i + 1] = px[i + 2] = y;
  }
  ctx.putImageData(data, 0, 0);
  return c;
}

function loadGrey(url) {
  if (!url) return Promise.resolve(null);
  return new Promise((resolve) => {
    const img = new Image();
    img.decoding = 'async';
    img.addEventListener('load', () => resolve(greyCanvas(img)), { once: true });
    img.addEventListener('error', () => resolve(null), { once: true });
    img.src = url;
  });
}

/** The greyed photo stretched to the canvas (as the model stretches a photo
 *  to its input), the map over it cell by cell (no smoothing: each square is
 *  one cell of the layer's output). */
function paint(canvas, map, grey) {
  const box = canvas.getBoundingClientRect();
  if (box.width < 1 || box.height < 1) return;
  const dpr = window.devicePixelRatio || 1;
  const w = Math.round(box.width * dpr), h = Math.round(box.height * dpr);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#9aa3ae';
  ctx.fillRect(0, 0, w, h);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  if (grey) ctx.drawImage(grey, 0, 0, w, h);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(map, 0, 0, w, h);
}

function mapCanvas(cells, width, height) {
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  c.getContext('2d').putImageData(new ImageData(featurePixels(cells, width, height), width, height), 0, 0);
  return c;
}

/** The legend: the scale as it looks over a mid-grey photo. */
function legendCanvas() {
  const W = 200;
  const c = el('canvas', { class: 'features-scale', width: W, height: 1, 'aria-hidden': 'true' });
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#9aa3ae';
  ctx.fillRect(0, 0, W, 1);
  const px = new Uint8ClampedArray(W * 4);
  for (let x = 0; x < W; x++) px.set(featureColor(x / (W - 1)), 4 * x);
  const strip = document.createElement('canvas');
  strip.width = W;
  strip.height = 1;
  strip.getContext('2d').putImageData(new ImageData(px, W, 1), 0, 0);
  ctx.drawImage(strip, 0, 0);
  return c;
}

function frame(container, view) {
  const select = el('select', { class: 'features-layer' },
    layerChoices(view.model.layers).map((o) => el('option', { value: o.value }, o.label)));
  const top = el('select', { class: 'features-top' },
    TOP_CHOICES.map((k) => el('option', { value: k }, String(k))));
  const nodes = {
    select,
    top,
    sizes: el('p', { class: 'features-sizes small' }),
    status: el('div', { class: 'features-status', 'aria-live': 'polite' }),
    legend: el('div', { class: 'features-legend small' }),
    grid: el('div', { class: 'features-grid', role: 'list' }),
    bars: el('div', { class: 'plot features-bars', hidden: true }),
    means: el('div', { class: 'plot features-means', hidden: true }),
    meansNote: el('p', { class: 'small muted features-means-note', hidden: true }),
  };
  select.addEventListener('change', () => {
    remembered.layer = Number(select.value);
    request(container);
  });
  top.addEventListener('change', () => {
    remembered.top = Number(top.value);
    request(container);
  });
  fill(container,
    el('h4', { class: 'features-title' }, 'What a layer sees'),
    el('p', { class: 'small muted features-lead' }, 'Each channel of a convolution layer is one detector slid over the ' +
      'image; its map says where in the photo it responds. Here are the channels that respond most to this image ' +
      '(the largest mean activation), each over the photo.'),
    el('div', { class: 'features-controls' },
      el('label', {}, el('span', {}, 'Layer'), select),
      el('label', {}, el('span', {}, 'Channels'), top)),
    nodes.sizes, nodes.status, nodes.legend, nodes.grid, nodes.bars, nodes.meansNote, nodes.means);
  view.nodes = nodes;
}

function showLegend(nodes, v) {
  if (!v.spatial) {
    fill(nodes.legend);
    return;
  }
  fill(nodes.legend,
    el('div', { class: 'features-scale-row' },
      el('span', {}, 'its lowest'), legendCanvas(), el('span', {}, 'its highest')),
    el('p', { class: 'muted' }, 'One colour scale for every tile, but each map is scaled to its own channel\u2019s range: ' +
      'dark where the channel is at its lowest, bright yellow where it is at its highest, the photo faint beneath. ' +
      'So the tiles compare places, not strengths: under each tile, its channel\u2019s mean and its max.'));
}

function tileNode(t, v, grey) {
  const canvas = el('canvas', { class: 'features-canvas', width: v.mapSize.width, height: v.mapSize.height, role: 'img',
    'aria-label': `channel ${t.index} over the photo: mean ${fmt(t.mean)}, from ${fmt(t.min)} to ${fmt(t.max)}` });
  canvas.style.aspectRatio = `${v.mapSize.width} / ${v.mapSize.height}`;
  const map = mapCanvas(t.cells || [], v.mapSize.width, v.mapSize.height);
  painted.set(canvas, { map, grey });
  if (resizer) resizer.observe(canvas);
  const node = el('figure', { class: 'features-tile', role: 'listitem', 'data-channel': t.index, 'data-mean': t.mean,
    'data-max': t.max },
  canvas,
  el('figcaption', {}, el('strong', {}, t.label), el('span', {}, t.text), el('span', {}, t.maxText)));
  return { node, canvas, map };
}

function sizesText(v, layerInfo) {
  const input = Array.isArray(v.input) ? v.input.join('×') : '';
  const out = v.layer && Array.isArray(v.layer.shape) ? v.layer.shape.join('×') : '';
  const type = layerInfo && layerInfo.type ? ` (${layerInfo.type})` : '';
  const parts = [el('span', { class: 'features-size', 'data-input': input }, 'input ', el('strong', {}, input)), ' \u2192 ',
    el('span', { class: 'features-size', 'data-output': out }, `${v.layer?.name ?? 'layer'}${type} `, el('strong', {}, out))];
  if (v.spatial) {
    const mw = v.mapSize.width, mh = v.mapSize.height;
    const [lh, lw] = v.layer.shape;
    parts.push(`: ${v.channels} channels, each a ${lh}×${lw} map`,
      mw !== lw || mh !== lh ? ` (averaged to ${mw}×${mh} here)` : '', '.');
  } else {
    parts.push(`: ${v.channels} ${v.unitNames ? 'class scores' : 'numbers'}, with no extent in the image, so no maps: ` +
      `${v.tiles.length >= v.channels ? `all ${v.channels}` : `the ${v.tiles.length} largest`} as bars.`);
  }
  if (v.image && v.image.width && Array.isArray(v.input) &&
      (v.image.width !== v.input[1] || v.image.height !== v.input[0])) {
    parts.push(` The photo (${v.image.width}×${v.image.height}) is resized to the input.`);
  }
  return parts;
}

async function show(container, view, reply) {
  const { nodes, model } = view;
  const layerInfo = (model.layers || []).find((l) => l.index === reply.layer?.index);
  const last = model.layers && model.layers.length && reply.layer?.index === model.layers[model.layers.length - 1].index;
  const v = featureView(reply, { classes: model.classes || [], last });
  fill(nodes.sizes, sizesText(v, layerInfo));
  container.dataset.layer = String(v.layer?.index ?? '');
  container.dataset.spatial = String(v.spatial);
  container.dataset.tiles = String(v.spatial ? v.tiles.length : 0);
  showLegend(nodes, v);
  if (v.spatial) {
    const grey = await view.photo;
    const tiles = v.tiles.map((t) => tileNode(t, v, grey));
    fill(nodes.grid, tiles.map((t) => t.node));
    nodes.grid.hidden = false;
    for (const t of tiles) paint(t.canvas, t.map, grey);
    nodes.bars.hidden = true;
    nodes.meansNote.hidden = false;
    nodes.meansNote.textContent = `Every channel's mean activation on this image (the ${v.tiles.length} mapped above in colour):`;
    nodes.means.hidden = false;
    await draw(nodes.means, meansFigure(v), { displayModeBar: false });
  } else {
    fill(nodes.grid);
    nodes.grid.hidden = true;
    nodes.means.hidden = true;
    nodes.meansNote.hidden = true;
    nodes.bars.hidden = false;
    await draw(nodes.bars, unitsFigure(v), { displayModeBar: false });
  }
}

async function request(container) {
  const view = views.get(container);
  if (!view) return;
  const my = ++view.token;
  if (view.controller) view.controller.abort();
  const controller = new AbortController();
  view.controller = controller;
  const layer = remembered.layer ?? defaultFeatureLayer(view.model.layers, view.model.input);
  const top = remembered.top;
  view.nodes.select.value = String(layer);
  view.nodes.top.value = String(top);
  container.dataset.state = 'loading';
  container.setAttribute('aria-busy', 'true');
  view.nodes.grid.classList.add('is-loading');
  fill(view.nodes.status, progress('Running the image through the model to that layer…'));
  let reply;
  try {
    reply = await features(view.model.id, { layer, top, image: view.source.image ?? null },
      { body: view.source.file || null, signal: controller.signal });
  } catch (err) {
    if (my !== view.token || (err && err.name === 'AbortError')) return;
    container.dataset.state = 'error';
    container.removeAttribute('aria-busy');
    view.nodes.grid.classList.remove('is-loading');
    fill(view.nodes.status, errorBox(err, 'Could not look inside that layer'));
    return;
  }
  if (my !== view.token) return;
  fill(view.nodes.status);
  view.nodes.grid.classList.remove('is-loading');
  await show(container, view, reply);
  if (my !== view.token) return;
  container.removeAttribute('aria-busy');
  container.dataset.state = 'ready';
}

/**
 * Shows in `container` what a layer of `model` ({id, layers, input,
 * classes}) sees in one image: `source` is {image: index or "class/file"}
 * (a test image) or {file: a File or Blob} (sent as the body); `photoUrl`
 * the photo drawn under the maps (null: none). Starts at the layer the
 * reader picked last (else defaultFeatureLayer). Calling it again on the
 * same container replaces what it shows.
 */
export function renderFeatures(container, model, source, { photoUrl = null } = {}) {
  clearFeatures(container);
  const view = { token: 0, controller: null, model, source, photo: loadGrey(photoUrl) };
  views.set(container, view);
  container.classList.add('features');
  frame(container, view);
  return request(container);
}

/** Stops what `container`'s view waits for and empties it. */
export function clearFeatures(container) {
  const view = container && views.get(container);
  if (!view) return;
  view.token += 1;
  if (view.controller) view.controller.abort();
  for (const c of view.nodes.grid.querySelectorAll('canvas')) if (resizer) resizer.unobserve(c);
  views.delete(container);
  container.replaceChildren();
  delete container.dataset.state;
  container.removeAttribute('aria-busy');
}
