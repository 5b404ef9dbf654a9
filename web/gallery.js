// gallery.js — "where it goes wrong": the test images the model misreads
// (GET /api/models/{id}/misclassified), each a button; opening one shows it
// in the image panel below the gallery (imagepanel.js: the photo, its
// classes, doubt, path, LIME with the explanation methods side by side on
// request, and what a layer sees), and tells the page, which highlights its
// path. The page is told when the reader opens or closes an image (it keeps
// the opened one in the URL), and opens one itself with openImage (a
// reload, the back button).

import { api, imageUrl } from './api.js';
import { el, fill, pct, progress, errorBox } from './ui.js';
import { counted } from './words.js';
import { renderImagePanel, clearImagePanel } from './imagepanel.js';

const FIRST = 18;

let modelId = null;
let model = null; // {id, ...}: what the image panel needs
let items = [];
let onSelect = () => {};
let onClosed = () => {};
let wanted = null; // the image id to open once the list has come
let loaded = false;
const nodes = {};

/** Loads and shows the gallery. `select(item)` is called when the reader
 *  opens an image, `closed()` when they close it; `open` is an image id to
 *  open once the list has come (without calling `select`); `model` (the
 *  model's JSON, default {id}) is handed to the image panel. */
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
  clearImagePanel(nodes.detail);
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

function open(i, button) {
  const it = items[i];
  for (const b of nodes.grid.querySelectorAll('button[data-index]')) b.setAttribute('aria-pressed', String(b === button));
  wanted = it.id;
  renderImagePanel(nodes.detail, { kind: 'dataset', id: it.id, index: it.index, true: it.true, pred: it.pred, item: it }, {
    model,
    compareId: 'mistake-compare',
    close: () => {
      closeImage();
      button.focus();
      onClosed();
    },
  });
  nodes.detail.hidden = false;
  nodes.detail.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}
