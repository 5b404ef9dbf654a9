// home.js — the home page: one card per demo dataset (cover photo from the
// data, its classes, the accuracy of its best model, a link to that model),
// then "Your models": one card per model imported through the page (its
// analysis' progress while it runs) and the way to import one; and the
// models menu. Data: GET /api/models and GET /api/health.

import { api } from './api.js';
import { el, pct, fill, errorBox, titleCase, fullFromThumb, classOfId } from './ui.js';
import { initMenu, fillMenu, menuError } from './nav.js';
import { classColor } from './palette.js';
import { analysisText, progressShare } from './importcheck.js';

// The issue lists the demo datasets in this order; any other dataset follows.
const ORDER = ['paysages', 'transports', 'felines'];

// How often the page asks again while one of the user's models is analysed.
const POLL_MS = 2000;

/** Groups models by dataset; the best model is the most accurate one (a
 *  deep model before a seed one on ties or when accuracy is unknown).
 *  Models imported through the page are left out, whatever their dataset:
 *  they have cards of their own (ownModels). */
export function datasetsOf(models) {
  const by = new Map();
  for (const m of models) {
    if (m.uploaded) continue;
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

/** The models imported through the page, sorted by title. */
export function ownModels(models) {
  return models.filter((m) => m.uploaded).sort((a, b) => (a.title || a.id).localeCompare(b.title || b.id));
}

function card({ dataset, best, others }, own = false) {
  const cover = best.cover ? fullFromThumb(best.cover) : null;
  const coverClass = best.cover ? classOfId(best.cover.split('/images/')[1] || '') : '';
  const href = `/model.html?id=${encodeURIComponent(best.id)}`;
  const state = best.analysis && best.analysis !== 'ready'
    ? el('span', { class: `badge badge-${best.analysis}` }, best.analysis) : null;
  const name = own ? best.title || best.id : titleCase(dataset);
  const share = progressShare(best.progress);
  const running = best.analysis === 'queued' || best.analysis === 'analysing';
  const attrs = own ? { class: 'card dataset-card own-card', href, 'data-model': best.id, 'data-analysis': best.analysis }
    : { class: 'card dataset-card', href, 'data-dataset': dataset };
  return el('a', attrs,
    el('div', { class: 'cover' },
      cover ? el('img', { src: cover, alt: `${coverClass ? `${coverClass} photo` : 'A photo'} from the ${own ? name : dataset} test images`,
        width: 160, height: 160, loading: 'lazy' }) : el('div', { class: 'cover-empty' }, (name || '?')[0].toUpperCase())),
    el('div', { class: 'card-body' },
      el('h3', {}, name, state),
      own && running ? el('div', { class: 'card-progress' },
        el('p', { class: 'small', 'data-progress': '' }, analysisText(best.analysis, best.progress)),
        share !== null ? el('div', { class: 'meter', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
          'aria-valuenow': Math.round(100 * share), 'aria-label': 'analysis progress' },
        el('span', { class: 'meter-fill meter-progress', style: `width:${Math.round(100 * share)}%` })) : null) : null,
      own && best.analysis === 'failed' ? el('p', { class: 'small bad' }, best.error || 'The analysis failed.') : null,
      own && !best.description ? null : el('p', { class: 'card-desc' }, best.description || ''),
      el('ul', { class: 'chips', 'aria-label': 'classes' },
        (best.classes || []).map((c, i) => el('li', { class: 'chip' },
          el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }), c))),
      el('div', { class: 'card-foot' },
        own && typeof best.test_accuracy !== 'number' ? null
          : el('span', { class: 'metric' }, el('strong', {}, pct(best.test_accuracy)), ' test accuracy'),
        el('span', { class: 'muted' }, own ? `${best.id} · ${best.layers} layers` : `${best.title || best.id} · ${best.layers} layers`)),
      others.length ? el('p', { class: 'card-others muted' }, 'Also: ', others.map((o, i) => [
        i ? '; ' : '', `${o.title || o.id} · ${o.layers} layers · ${pct(o.test_accuracy)}`])) : null));
}

// The "Your models" cards drawn, by model id, with what they showed: a card
// is drawn again only when that changed, so that a ready card's photo is not
// reloaded while another card follows its analysis.
const ownDrawn = new Map();

/** The "Your models" cards, then the card that leads to the import page. */
function ownCards(models) {
  const own = ownModels(models);
  const add = el('a', { class: 'card add-card', href: '/import.html', id: 'use-own-model' },
    el('span', { class: 'add-plus', 'aria-hidden': 'true' }, '+'),
    el('span', { class: 'add-title' }, 'Use your own model'),
    el('span', { class: 'small muted' }, 'An ONNX classifier and a folder of photos per class.'));
  const nodes = own.map((m) => {
    const sig = JSON.stringify([m.title, m.analysis, m.progress, m.cover, m.test_accuracy, m.error, m.layers]);
    const was = ownDrawn.get(m.id);
    if (was && was.sig === sig) return was.node;
    const node = card({ dataset: m.dataset, best: m, others: [] }, true);
    ownDrawn.set(m.id, { sig, node });
    return node;
  });
  return [...(nodes.length ? nodes : [el('p', { class: 'empty own-empty' }, 'None yet.')]), add];
}

async function main() {
  initMenu();
  const cards = document.getElementById('cards');
  const own = document.getElementById('own-cards');
  // Back from a model's page after deleting it: say so once.
  const deleted = new URLSearchParams(location.search).get('deleted');
  if (deleted) {
    own.before(el('p', { class: 'notice', role: 'status', id: 'deleted-note' }, `“${deleted}” was deleted.`));
    history.replaceState(null, '', location.pathname);
  }
  api.health().then((h) => {
    document.getElementById('version').textContent = h.version ? `version ${h.version}` : '';
  }).catch(() => {});
  try {
    const { models } = await api.models();
    fillMenu(models);
    fill(own, ownCards(models));
    const ds = datasetsOf(models);
    if (!ds.length) {
      fill(cards, el('p', { class: 'empty' }, 'No model is installed yet: train one with `strata train <model>`.'));
    } else {
      fill(cards, ds.map((d) => card(d)));
    }
    // While one of the user's models is analysed, its card follows the progress.
    let list = models;
    while (ownModels(list).some((m) => m.analysis === 'queued' || m.analysis === 'analysing')) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      try {
        list = (await api.models()).models;
      } catch {
        continue; // the server may be restarting: ask again
      }
      fill(own, ownCards(list));
    }
  } catch (err) {
    menuError(err);
    fill(cards, errorBox(err, 'Could not load the models'));
    fill(own);
  }
}

if (typeof document !== 'undefined') main();
