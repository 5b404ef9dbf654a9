// outside.js — "images it was never meant to see": a few photos from the
// other demo datasets (a glacier shown to the felines model, say), fetched as
// bytes from another model's image endpoint and posted to this model's
// predict endpoint, exactly as an upload would be. Each card shows what the
// model answers, how sure it is, its doubt and the LIME overlay. The work
// starts when the section scrolls into view and runs one image at a time, so
// it never competes with the rest of the page for the server's workers.

import { api, imageUrl, getBlob, predict } from './api.js';
import { el, fill, pct, progress, errorBox, doubtBadge, imageLoaded, lowDoubtNote } from './ui.js';

const PER_DATASET = 2;

/**
 * The out-of-model images for `model`: for every other dataset, PER_DATASET
 * of its classes spread over its class list, image 0000.jpg of each, served
 * by a model of that dataset (an analysed one when possible). Pure.
 */
export function pickOutside(model, models) {
  const others = new Map();
  for (const m of models) {
    if (m.dataset === model.dataset) continue;
    const have = others.get(m.dataset);
    if (!have || (have.analysis !== 'ready' && m.analysis === 'ready') ||
        (have.seed_architecture && !m.seed_architecture && (m.analysis === 'ready') === (have.analysis === 'ready'))) {
      others.set(m.dataset, m);
    }
  }
  const picks = [];
  for (const [dataset, m] of [...others.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    const C = m.classes.length;
    const chosen = new Set();
    for (let j = 0; j < Math.min(PER_DATASET, C); j++) chosen.add(Math.floor(((j + 1) * C) / (PER_DATASET + 1)));
    for (const c of chosen) picks.push({ source: m.id, dataset, cls: m.classes[c], image: `${m.classes[c]}/0000.jpg` });
  }
  return picks;
}

let started = false;
let lowShares = null; // promise of lowDoubtShares(report) | null

/** Lays out the cards and starts the predictions when the section is visible.
 *  `doubtShares`: a promise of the model's lowDoubtShares() (or null), for
 *  the note beside a low doubt. */
export function initOutside({ model, models, doubtShares = null }) {
  lowShares = doubtShares;
  const root = document.getElementById('outside');
  const picks = pickOutside(model, models);
  if (!picks.length) {
    fill(root, el('p', { class: 'empty' }, 'No other dataset is installed to compare with.'));
    return;
  }
  const cards = picks.map((p) => {
    const status = el('div', { class: 'outside-status' }, el('span', { class: 'muted small' }, 'waiting…'));
    const img = el('img', { src: imageUrl(p.source, p.image), alt: `${p.cls} photo from the ${p.dataset} dataset`,
      width: 160, height: 160, loading: 'lazy' });
    const card = el('article', { class: 'card outside-card', 'data-image': `${p.source}:${p.image}` },
      el('div', { class: 'outside-images' }, el('figure', { class: 'lime-figure' }, img, el('figcaption', {}, 'photo'))),
      el('div', { class: 'outside-body' },
        el('h3', {}, `${p.cls.charAt(0).toUpperCase()}${p.cls.slice(1)} photo`, el('span', { class: 'muted' }, ` from ${p.dataset}`)),
        status));
    return { p, card, img, status };
  });
  fill(root, cards.map((c) => c.card));
  const go = async () => {
    if (started) return;
    started = true;
    for (const c of cards) await run(model, c);
  };
  if ('IntersectionObserver' in window) {
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { io.disconnect(); go(); }
    }, { rootMargin: '200px' });
    io.observe(root);
  } else {
    go();
  }
}

async function run(model, { p, card, img, status }) {
  fill(status, progress('asking the model…'));
  try {
    const blob = await getBlob(imageUrl(p.source, p.image));
    const reply = await predict(model.id, blob, { filename: p.image.replace('/', '-') });
    fill(status,
      el('p', { class: 'answer' }, 'Taken for ', el('strong', {}, `“${reply.predicted}”`),
        ` · ${pct(reply.probability)}`),
      el('div', { class: 'answer-meta' }, doubtBadge(reply.doubt)),
      lowDoubtNote(reply.doubt, lowShares),
      reply.doubt?.explanation ? el('p', { class: 'small muted' }, reply.doubt.explanation) : null);
    card.dataset.predicted = reply.predicted;
    if (reply.explanation?.overlay) {
      const overlay = el('img', { class: 'lime-overlay', src: reply.explanation.overlay,
        alt: `LIME overlay: the outlined regions made the model say “${reply.predicted}”`, width: 160, height: 160 });
      const box = el('figure', { class: 'lime-figure' }, progress(''), el('figcaption', {}, 'LIME'));
      img.closest('figure').after(box);
      await imageLoaded(overlay);
      box.firstChild.replaceWith(overlay);
    }
  } catch (err) {
    fill(status, errorBox(err, 'No answer'));
  }
}
