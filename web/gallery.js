// gallery.js — "where it goes wrong": the test images the model misreads
// (GET /api/models/{id}/misclassified), each a button; opening one shows the
// photo, its LIME overlay and heat-map (GET …/images/{image}/explanation,
// computed on first request, so a progress line shows meanwhile) and a short
// description, and tells the page to highlight its class's paths. A button
// there opens the explanation methods side by side for that image
// (compare.js). The page is told when the reader opens or closes an image
// (it keeps the opened one in the URL), and opens one itself with
// openImage (a reload, the back button).

import { api, imageUrl } from './api.js';
import { el, fill, pct, progress, errorBox, imageLoaded } from './ui.js';
import { describeMistake } from './describe.js';
import { counted } from './words.js';
import { renderCompare, clearCompare } from './compare.js';

const FIRST = 18;

let modelId = null;
let model = null; // {id, ...}: what the compare view needs
let compareBox = null; // the open mistake's compare view
let items = [];
let onSelect = () => {};
let onClosed = () => {};
let wanted = null; // the image id to open once the list has come
let loaded = false;
let token = 0;
const nodes = {};

/** Loads and shows the gallery. `select(item)` is called when the reader
 *  opens an image, `closed()` when they close it; `open` is an image id to
 *  open once the list has come (without calling `select`); `model` (the
 *  model's JSON, default {id}) is handed to the compare view. */
export async function initGallery({ id, model: m = null, select, closed, open: first = null }) {
  modelId = id;
  model = m || { id };
  onSelect = select || onSelect;
  onClosed = closed || onClosed;
  wanted = first;
  Object.assign(nodes, {
    grid: document.getElementById('gallery'),
    more: document.getElementById('gallery-more'),
    detail: document.getElementById('mistake-detail'),
  });
  fill(nodes.grid, progress('Finding the images it gets wrong…'));
  nodes.grid.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-index]');
    if (!b) return;
    onSelect(items[Number(b.dataset.index)]);
    open(Number(b.dataset.index), b);
  });
  try {
    ({ images: items } = await api.misclassified(modelId));
    // The most confident mistakes first: they are the ones to learn from.
    items = items.slice().sort((a, b) => (b.probability ?? 0) - (a.probability ?? 0));
  } catch (err) {
    fill(nodes.grid, errorBox(err, 'Could not list the mistakes'));
    return;
  }
  loaded = true;
  if (!items.length) {
    fill(nodes.grid, el('p', { class: 'empty' }, 'This model gets every analysed test image right.'));
    return;
  }
  show(Math.min(FIRST, items.length));
  if (wanted !== null) {
    const at = items.findIndex((it) => it.id === wanted);
    openImage(wanted);
    if (at >= 0) nodes.detail.scrollIntoView({ block: 'start' });
  }
}

/** Opens the mistake whose image id is `imageId` (showing the whole list
 *  when it is not among the first ones), as a click on it would, without
 *  telling the page; before the list has come, once it has. */
export function openImage(imageId) {
  wanted = imageId;
  if (!loaded) return;
  const i = items.findIndex((it) => it.id === imageId);
  if (i < 0) return;
  if (!nodes.grid.querySelector(`button[data-index="${i}"]`)) show(items.length);
  const button = nodes.grid.querySelector(`button[data-index="${i}"]`);
  if (button.getAttribute('aria-pressed') === 'true' && !nodes.detail.hidden) return;
  open(i, button);
}

/** Closes the opened mistake, if any, without telling the page. */
export function closeImage() {
  wanted = null;
  if (!nodes.detail || nodes.detail.hidden) return;
  clearCompare(compareBox);
  ++token;
  nodes.detail.hidden = true;
  for (const b of nodes.grid.querySelectorAll('button[data-index]')) b.setAttribute('aria-pressed', 'false');
}

function show(n) {
  fill(nodes.grid, items.slice(0, n).map((it, i) => el('button', {
    type: 'button', class: 'gallery-item', 'data-index': i, 'aria-pressed': 'false',
    title: `${it.id}: ${it.true} photo taken for “${it.pred}”`,
  },
  el('img', { src: it.thumb || imageUrl(modelId, it.id, { thumb: true }), alt: `${it.true} photo taken for “${it.pred}”`,
    width: 64, height: 64, loading: 'lazy' }),
  el('span', { class: 'gallery-caption' },
    el('span', { class: 'from' }, it.true), ' → ', el('span', { class: 'to' }, it.pred)),
  el('span', { class: 'gallery-prob' }, pct(it.probability)))));
  if (n < items.length) {
    const b = el('button', { type: 'button', class: 'link-button' }, `Show all ${items.length} mistakes`);
    b.addEventListener('click', () => show(items.length));
    fill(nodes.more, b);
  } else {
    fill(nodes.more, el('p', { class: 'small muted' }, `${counted(items.length, 'test image')} misread.`));
  }
}

async function open(i, button) {
  const it = items[i];
  for (const b of nodes.grid.querySelectorAll('button[data-index]')) b.setAttribute('aria-pressed', String(b === button));
  wanted = it.id;
  const my = ++token;
  clearCompare(compareBox);
  const box = el('div', { class: 'compare', id: 'mistake-compare', hidden: true });
  compareBox = box;
  const compare = el('button', { type: 'button', class: 'action-button compare-button', 'aria-expanded': 'false',
    'aria-controls': 'mistake-compare' }, 'Compare explanation methods');
  compare.addEventListener('click', () => {
    if (box.hidden) {
      box.hidden = false;
      compare.setAttribute('aria-expanded', 'true');
      renderCompare(box, model, { image: it.index ?? it.id });
    }
    box.scrollIntoView({ block: 'start', behavior: 'smooth' });
  });
  const overlayBox = el('figure', { class: 'lime-figure' }, progress('LIME is probing the model…'),
    el('figcaption', {}, 'LIME overlay'));
  const heatBox = el('figure', { class: 'lime-figure' }, el('div', { class: 'lime-placeholder' }),
    el('figcaption', {}, 'heat-map'));
  const text = el('p', { class: 'description' }, describeMistake(it));
  const close = el('button', { type: 'button', class: 'close-button', 'aria-label': 'Close' }, '×');
  close.addEventListener('click', () => {
    closeImage();
    button.focus();
    onClosed();
  });
  fill(nodes.detail,
    el('div', { class: 'detail-head' },
      el('h3', {}, `${it.true} → ${it.pred}`, el('span', { class: 'muted' }, ` · ${pct(it.probability)}`)), close),
    el('div', { class: 'lime-row' },
      el('figure', { class: 'lime-figure' },
        el('img', { src: it.image || imageUrl(modelId, it.id), alt: `the ${it.true} photo ${it.id}`, width: 160, height: 160 }),
        el('figcaption', {}, 'the photo')),
      overlayBox, heatBox,
      el('div', { class: 'detail-actions' }, compare,
        el('p', { class: 'small muted' }, 'LIME is one way to explain an answer. See Grad-CAM, Integrated ' +
          'Gradients and occlusion beside it on this photo, each scored by how the model reacts when the pixels ' +
          'it points at are hidden.'))),
    text,
    el('p', { class: 'small muted' }, 'In the overlay, the regions that pushed most towards the answer are outlined; in ' +
      'the heat-map, warm colours push towards it and cool ones against it.'),
    box);
  nodes.detail.hidden = false;
  nodes.detail.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  try {
    const ex = await api.explanation(modelId, it.id);
    if (my !== token) return;
    const overlay = el('img', { class: 'lime-overlay', src: ex.overlay, alt: `LIME overlay: the outlined regions made the model say “${ex.class || it.pred}”`, width: 160, height: 160 });
    const heat = el('img', { class: 'lime-heatmap', src: ex.heatmap, alt: 'LIME heat-map of region weights', width: 160, height: 160 });
    await Promise.all([imageLoaded(overlay), imageLoaded(heat)]);
    if (my !== token) return;
    overlayBox.firstChild.replaceWith(overlay);
    heatBox.firstChild.replaceWith(heat);
    text.textContent = describeMistake(it, ex);
  } catch (err) {
    if (my === token) overlayBox.firstChild.replaceWith(errorBox(err, 'No explanation'));
  }
}
