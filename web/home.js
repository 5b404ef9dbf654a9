// home.js — the home page: one card per demo dataset (cover photo from the
// data, its classes, the accuracy of its best model, a link to that model)
// and the models menu. Data: GET /api/models and GET /api/health.

import { api } from './api.js';
import { el, pct, fill, errorBox, titleCase, fullFromThumb, classOfId } from './ui.js';
import { initMenu, fillMenu, menuError } from './nav.js';
import { classColor } from './palette.js';

// The issue lists the demo datasets in this order; any other dataset follows.
const ORDER = ['paysages', 'transports', 'felines'];

/** Groups models by dataset; the best model is the most accurate one (a
 *  deep model before a seed one on ties or when accuracy is unknown). */
export function datasetsOf(models) {
  const by = new Map();
  for (const m of models) {
    if (!by.has(m.dataset)) by.set(m.dataset, []);
    by.get(m.dataset).push(m);
  }
  const acc = (m) => (typeof m.test_accuracy === 'number' ? m.test_accuracy : -1);
  const list = [...by.entries()].map(([dataset, ms]) => {
    const sorted = ms.slice().sort((a, b) => acc(b) - acc(a) || Number(a.seed_architecture) - Number(b.seed_architecture));
    return { dataset, best: sorted[0], others: sorted.slice(1) };
  });
  const rank = (d) => (ORDER.indexOf(d) >= 0 ? ORDER.indexOf(d) : ORDER.length);
  return list.sort((a, b) => rank(a.dataset) - rank(b.dataset) || a.dataset.localeCompare(b.dataset));
}

function card({ dataset, best, others }) {
  const cover = best.cover ? fullFromThumb(best.cover) : null;
  const coverClass = best.cover ? classOfId(best.cover.split('/images/')[1] || '') : '';
  const href = `/model.html?id=${encodeURIComponent(best.id)}`;
  const state = best.analysis && best.analysis !== 'ready'
    ? el('span', { class: `badge badge-${best.analysis}` }, best.analysis) : null;
  return el('a', { class: 'card dataset-card', href, 'data-dataset': dataset },
    el('div', { class: 'cover' },
      cover ? el('img', { src: cover, alt: `${coverClass ? `${coverClass} photo` : 'A photo'} from the ${dataset} test images`,
        width: 160, height: 160, loading: 'lazy' }) : el('div', { class: 'cover-empty' }, dataset[0].toUpperCase())),
    el('div', { class: 'card-body' },
      el('h3', {}, titleCase(dataset), state),
      el('p', { class: 'card-desc' }, best.description || ''),
      el('ul', { class: 'chips', 'aria-label': 'classes' },
        (best.classes || []).map((c, i) => el('li', { class: 'chip' },
          el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }), c))),
      el('div', { class: 'card-foot' },
        el('span', { class: 'metric' }, el('strong', {}, pct(best.test_accuracy)), ' test accuracy'),
        el('span', { class: 'muted' }, `${best.title || best.id} · ${best.layers} layers`)),
      others.length ? el('p', { class: 'card-others muted' }, 'Also: ', others.map((o, i) => [
        i ? '; ' : '', `${o.title || o.id} · ${o.layers} layers · ${pct(o.test_accuracy)}`])) : null));
}

async function main() {
  initMenu();
  const cards = document.getElementById('cards');
  api.health().then((h) => {
    document.getElementById('version').textContent = h.version ? `version ${h.version}` : '';
  }).catch(() => {});
  try {
    const { models } = await api.models();
    fillMenu(models);
    const ds = datasetsOf(models);
    if (!ds.length) {
      fill(cards, el('p', { class: 'empty' }, 'No model is installed yet: train one with `strata train <model>`.'));
      return;
    }
    fill(cards, ds.map(card));
  } catch (err) {
    menuError(err);
    fill(cards, errorBox(err, 'Could not load the models'));
  }
}

if (typeof document !== 'undefined') main();
