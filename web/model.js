// model.js — one model's page (model.html?id=<id>): header and architecture,
// the parallel-categories graph of the test images' paths, the layer panel,
// confusion matrix and training curves, the doubt evaluation, the mistakes
// gallery, out-of-model images and the upload. Owns the parallel graph's
// state (highlight, upload path); the other panels live in their own modules.

import { api } from './api.js';
import { el, fill, pct, count, shape, progress, errorBox, draw, titleCase } from './ui.js';
import { initMenu, fillMenu, menuError } from './nav.js';
import { classColor } from './palette.js';
import { parcatsFigure, parcatsMinWidth, uploadPath, indicesOfClass, layersNote, UPLOAD_LABEL } from './parcats.js';
import { confusionFigure } from './confusion.js';
import { curvesFigure } from './curves.js';
import { doubtHistogramFigure, aurocRows, shareAtLeast, lowDoubtShares, errorsNote } from './doubtchart.js';
import { initLayerView, setUpload as layerUpload } from './layerview.js';
import { initGallery } from './gallery.js';
import { initOutside } from './outside.js';
import { initUpload } from './upload.js';

const POLL_MS = 2000;

// Page state.
let model = null;
let paths = null;
let highlight = null; // Set of image indices, or null
let highlightLabel = '';
let upload = null; // {clusters, pred} for the parallel graph
let parcatsWired = false;
let lastReply = null; // the latest upload's predict reply, kept until the paths arrive
// This model's measured share of low doubts (lowDoubtShares), or null once
// known to be unavailable: the upload and the outside cards quote it.
let resolveShares;
const doubtShares = new Promise((r) => { resolveShares = r; });

const $ = (id) => document.getElementById(id);

function header(m) {
  const card = m.card || {};
  const acc = card.test?.accuracy ?? m.test_accuracy ?? m.analysis?.accuracy;
  const params = m.parameters ?? card.parameters ?? m.layers.reduce((s, l) => s + (l.parameters || 0), 0);
  const input = m.input ? `${m.input.height}×${m.input.width}×${m.input.channels}` : '';
  document.title = `strata — ${m.title || m.id}`;
  fill($('model-header'),
    el('div', { class: 'model-head' },
      el('div', {},
        el('p', { class: 'eyebrow' }, `${titleCase(m.dataset)} dataset${m.seed_architecture ? ' · seed architecture' : ''}`),
        el('h1', {}, m.title || m.id),
        m.description ? el('p', { class: 'lead' }, m.description) : null,
        el('ul', { class: 'chips', 'aria-label': 'classes' }, m.classes.map((c, i) => el('li', { class: 'chip' },
          el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }), c)))),
      el('dl', { class: 'facts' },
        el('div', {}, el('dt', {}, 'test accuracy'), el('dd', { id: 'fact-accuracy' }, pct(acc, 1))),
        el('div', {}, el('dt', {}, 'layers'), el('dd', { id: 'fact-layers' }, String(m.layers.length))),
        el('div', {}, el('dt', {}, 'parameters'), el('dd', {}, count(params))),
        el('div', {}, el('dt', {}, 'input'), el('dd', {}, input)))),
    el('h2', { class: 'sub-title' }, 'Architecture'),
    el('p', { class: 'small muted' }, 'The image enters on the left; each box is a layer with the shape of what it outputs (height × width × channels, or a vector length).'),
    el('ol', { class: 'arch', 'aria-label': 'layers' },
      el('li', { class: 'arch-layer arch-input' }, el('span', { class: 'arch-name' }, 'input'), el('span', { class: 'arch-shape' }, input)),
      m.layers.map((l) => el('li', { class: `arch-layer arch-${l.type}` },
        el('span', { class: 'arch-name' }, l.name),
        el('span', { class: 'arch-type' }, l.type, l.activation && l.activation !== 'linear' && l.activation !== 'none' ? ` · ${l.activation}` : ''),
        el('span', { class: 'arch-shape' }, shape(l.output_shape))))));
}

function quality(m) {
  const card = m.card;
  const test = card && card.test;
  if (test && Array.isArray(test.confusion)) {
    draw($('confusion'), confusionFigure(test.classes || m.classes, test.confusion), { displayModeBar: false });
  } else {
    fill($('confusion'), el('p', { class: 'empty' }, 'No evaluation recorded for this model yet.'));
  }
  const curve = card && card.training && card.training.curve;
  if (Array.isArray(curve) && curve.length) {
    const stacked = $('curves').clientWidth < 420;
    draw($('curves'), curvesFigure(curve, { bestEpoch: card.training.best_epoch ?? null, stacked }), { displayModeBar: false });
  } else {
    fill($('curves'), el('p', { class: 'empty' }, 'No training curve recorded for this model.'));
  }
}

// --- the doubt evaluation ----------------------------------------------------

const num3 = (x) => (x === null ? '–' : x.toFixed(3));

function doubtTable(report) {
  const rows = aurocRows(report);
  const levels = report.levels || {};
  const { edges, id, ood } = report.histogram;
  const highIn = shareAtLeast(edges, id, levels.high);
  const highOut = shareAtLeast(edges, ood, levels.high);
  const low = lowDoubtShares(report);
  const others = report.sources.filter((s) => s.ood).map((s) => s.name.replace(/\/test$/, '')).join(' and ');
  const cell = (r, col) => el('td', { class: r.best[col] ? 'best' : null, 'data-col': col,
    'data-value': col === 'auroc' ? r.auroc ?? '' : null }, num3(r[col]));
  return [
    el('table', { class: 'data-table', id: 'doubt-auroc' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'signal'),
        el('th', { scope: 'col', title: 'test images against outside photos; higher is better' }, 'AUROC'),
        el('th', { scope: 'col', title: 'share of test images flagged when 95 % of outside photos are; lower is better' }, 'FPR at 95\u00a0%'),
        el('th', { scope: 'col', title: 'its right answers against its wrong ones; higher is better' }, 'AUROC on its errors'))),
      el('tbody', {}, rows.map((r) => el('tr', { 'data-method': r.method },
        el('th', { scope: 'row' }, r.label),
        cell(r, 'auroc'), cell(r, 'fpr95'), cell(r, 'auroc_errors'))))),
    el('p', { class: 'small muted' }, 'Bold: the best signal in each column (higher AUROC, lower FPR).'),
    el('p', { class: 'small' },
      `${report.n_id} test images of this model against ${report.n_ood} photos of ${others || 'other folders'}. `,
      highIn !== null && highOut !== null
        ? `A high doubt (≥ ${levels.high}) goes to ${pct(highOut, 0)} of the outside photos and ${pct(highIn, 0)} of its own test images. `
        : '',
      low ? `A low doubt (below ${levels.medium}) goes to ${pct(low.ood, 0)} of the outside photos too: low is weak evidence. ` : '',
      `Its accuracy on those test images: ${pct(report.accuracy, 1)}.`),
    el('p', { class: 'small muted' }, 'Doubt levels: low below ', String(levels.medium), ', high from ',
      String(levels.high), '. How the score is built: ', el('a', { href: '/help.html#doubt' }, 'the help page'), '.'),
  ];
}

/** The sentence under the section's lead when a baseline spots this model's
 *  own mistakes better than the doubt does. */
function doubtVerdict(report) {
  const text = errorsNote(aurocRows(report));
  const node = $('doubt-verdict');
  node.hidden = !text;
  node.textContent = text;
}

async function loadDoubt(m) {
  const hist = $('doubt-histogram');
  const table = $('doubt-table');
  fill(hist, progress('Scoring the test images and the other datasets…'));
  fill(table);
  for (;;) {
    let detail;
    try {
      detail = await api.model(m.id);
    } catch (err) {
      resolveShares(null);
      fill(hist, errorBox(err, 'Lost the server'));
      return;
    }
    const ev = detail.doubt?.evaluation;
    if (ev !== 'pending' && ev !== 'ready') break; // 'unavailable', or a server without it
    if (ev === 'ready') {
      try {
        const report = await api.doubt(m.id);
        resolveShares(lowDoubtShares(report));
        hist.replaceChildren();
        await draw(hist, doubtHistogramFigure(report), { displayModeBar: false });
        fill(table, doubtTable(report));
        doubtVerdict(report);
      } catch (err) {
        resolveShares(null);
        fill(hist, errorBox(err, 'Could not load the doubt evaluation'));
      }
      return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  // Unavailable: say why (the server's message names what is missing).
  resolveShares(null);
  try {
    await api.doubt(m.id);
  } catch (err) {
    fill(hist, el('p', { class: 'empty' }, err.message || 'No doubt evaluation for this model.'));
  }
}

// --- the parallel graph ------------------------------------------------------

function drawParcats() {
  const node = $('parcats');
  const fig = parcatsFigure(paths, { highlight, upload });
  // Wide graphs scroll sideways on small screens rather than squeeze their
  // bars (and the notes under them) together.
  node.style.minWidth = `${Math.max(560, parcatsMinWidth(fig))}px`;
  node.dataset.lines = String(paths.images.true.length + (upload ? 1 : 0));
  node.dataset.upload = upload ? '1' : '0';
  return draw(node, fig, { displayModeBar: false }).then(() => {
    if (!parcatsWired) {
      parcatsWired = true;
      node.on('plotly_click', onParcatsClick);
    }
  });
}

function onParcatsClick(ev) {
  const n = paths.images.true.length;
  const set = new Set((ev.points || []).map((p) => p.pointNumber).filter((i) => i < n));
  if (!set.size) return;
  const parts = Object.entries(ev.constraints || {}).filter(([key]) => key !== 'color').map(([d, v]) => {
    const dim = paths.dimensions[Number(d)];
    if (!dim) return '';
    return dim.kind === 'layer' ? `cluster ${v} of ${dim.label}` : `${dim.label} ${v}`;
  }).filter(Boolean);
  setHighlight(set, parts.join(', ') || 'the clicked paths');
}

/** Highlights a set of images (null: all). `label` says which, for the note. */
export function setHighlight(set, label = '') {
  if (!paths) return;
  highlight = set && set.size ? set : null;
  highlightLabel = highlight ? label : '';
  const note = $('highlight-note');
  if (highlight) {
    const reset = el('button', { type: 'button', class: 'link-button' }, 'show all paths');
    reset.addEventListener('click', () => setHighlight(null));
    fill(note, `Highlighting ${highlight.size} of ${paths.images.true.length} images: ${highlightLabel}. `, reset);
  } else {
    fill(note, upload ? `Your image's path is the black line, starting at “${UPLOAD_LABEL}” at the bottom left. ` +
      'It is one image among ' + paths.images.true.length + ', so its band is thin: the test images\' lines are grey ' +
      'while it is shown. Pick a class above to colour that class\'s lines again.' : '');
  }
  for (const b of $('class-filter').querySelectorAll('button[data-class]')) {
    b.setAttribute('aria-pressed', String(highlight !== null && highlightLabel === `true class ${b.dataset.class}`));
  }
  drawParcats();
}

function classFilter() {
  const bar = $('class-filter');
  fill(bar, el('span', { class: 'toolbar-label' }, 'Highlight'),
    paths.classes.map((c, i) => el('button', { type: 'button', class: 'chip-button', 'data-class': c, 'aria-pressed': 'false' },
      el('span', { class: 'dot', style: `background:${classColor(i)}`, 'aria-hidden': 'true' }), c)));
  bar.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-class]');
    if (!b) return;
    if (b.getAttribute('aria-pressed') === 'true') { setHighlight(null); return; }
    const cls = paths.classes.indexOf(b.dataset.class);
    setHighlight(indicesOfClass(paths, cls), `true class ${b.dataset.class}`);
  });
}

// --- analysis ---------------------------------------------------------------

async function waitForAnalysis(id) {
  const box = $('analysis-status');
  for (;;) {
    let state = 'unknown';
    try {
      const h = await api.health();
      state = (h.analyses && h.analyses[id]) || state;
    } catch (err) {
      fill(box, errorBox(err, 'Lost the server'));
    }
    if (state === 'ready') { fill(box); return true; }
    if (state === 'failed') {
      let detail = '';
      try { detail = (await api.model(id)).analysis?.error || ''; } catch { /* keep the short message */ }
      fill(box, el('div', { class: 'error', role: 'alert' }, el('strong', {}, 'The analysis of this model failed'),
        detail ? ` — ${detail}` : ''));
      return false;
    }
    fill(box, el('div', { class: 'banner' }, progress(`strata is analysing this model (${state}): the graphs appear when it is done.`)));
    fill($('parcats'), el('p', { class: 'empty' }, 'Waiting for the analysis…'));
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function loadAnalysis(m) {
  fill($('parcats'), progress('Following the test images through the layers…'));
  try {
    paths = await api.paths(m.id);
  } catch (err) {
    fill($('parcats'), errorBox(err, 'Could not load the paths'));
    return;
  }
  $('parcats').replaceChildren();
  $('paths-layers-note').textContent = layersNote(m.layers, paths.dimensions.filter((d) => d.kind === 'layer'),
    m.doubt && m.doubt.state === 'ready' ? m.doubt.layers : null);
  if (lastReply) upload = uploadPath(paths, lastReply);
  classFilter();
  await drawParcats();
  initLayerView({ id: m.id, dims: paths.dimensions.filter((d) => d.kind === 'layer'), modelLayers: m.layers });
  initGallery({
    id: m.id,
    model: m,
    select: (item) => setHighlight(indicesOfClass(paths, paths.classes.indexOf(item.true)), `true class ${item.true}`),
  });
}

function onUpload(reply) {
  lastReply = reply;
  upload = reply && paths ? uploadPath(paths, reply) : null;
  layerUpload(reply);
  if (paths) setHighlight(highlight, highlightLabel);
}

async function main() {
  initMenu();
  const id = new URLSearchParams(location.search).get('id');
  const hideSections = () => {
    for (const sec of document.querySelectorAll('main > section.section')) sec.hidden = true;
  };
  if (!id) {
    fill($('model-header'), el('div', { class: 'error', role: 'alert' }, 'No model chosen. ',
      el('a', { href: '/' }, 'Pick one on the home page.')));
    hideSections();
    api.models().then((r) => fillMenu(r.models, null)).catch(menuError);
    return;
  }
  const modelsP = api.models().then((r) => { fillMenu(r.models, id); return r.models; })
    .catch((err) => { menuError(err); return []; });
  try {
    model = await api.model(id);
  } catch (err) {
    fill($('model-header'), errorBox(err, `Could not open the model “${id}”`));
    hideSections();
    return;
  }
  header(model);
  quality(model);
  initUpload({ model, result: onUpload, doubtShares });
  const ready = model.analysis?.state === 'ready' || await waitForAnalysis(id);
  if (!ready) { resolveShares(null); return; }
  loadDoubt(model);
  await loadAnalysis(model);
  // Other models' images are served from their analyses: list the models
  // again now, so that the ones that became ready meanwhile count.
  const models = await api.models().then((r) => r.models).catch(() => modelsP);
  if (models.length) initOutside({ model, models, doubtShares });
}

main();
