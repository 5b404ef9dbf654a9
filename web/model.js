// model.js — one model's page (model.html?id=<id>): header and architecture,
// the parallel-categories graph of the test images' paths, the layer panel,
// confusion matrix and training curves, the doubt evaluation, the mistakes
// gallery, out-of-model images and the upload. The panels live in their own
// modules (the graph of paths in pathsview.js, the galleries and image
// panels the views open in linked.js); this page ties them together
// and keeps the reader's view in the URL (viewstate.js): a reader's change
// is a new history entry, and back, forward or a reload show it again.

import { api } from './api.js';
import { el, fill, pct, count, progress, errorBox, draw, titleCase, plotlyAfter } from './ui.js';
import { initMenu, fillMenu, menuError } from './nav.js';
import { classColor } from './palette.js';
import { layersNote } from './parcats.js';
import { initPaths, highlightClass, setClustering, setUpload as pathsUpload, updateUpload as pathsUpdateUpload } from './pathsview.js';
import { readView, viewSearch } from './viewstate.js';
import { confusionFigure, confusionSource } from './confusion.js';
import { curvesFigure } from './curves.js';
import { doubtHistogramFigure, aurocRows, shareAtLeast, lowDoubtShares, errorsNote } from './doubtchart.js';
import { initLayerView, applyView as applyLayerView, setUpload as layerUpload, markImage } from './layerview.js';
import { initGallery, openImage, closeImage } from './gallery.js';
import { initLinked, applyLinked, clusterClicked, mistakeOpened, mistakeClosed } from './linked.js';
import { initOutside } from './outside.js';
import { initUpload, followK } from './upload.js';
import { refreshPanelPaths } from './imagepanel.js';
import { initDelete } from './modeldelete.js';
import { analysisText, progressShare } from './importcheck.js';
import { architecture, isImported } from './graphview.js';
import { layerChooser } from './layerchooser.js';
import { initChartTables } from './tables.js';

const POLL_MS = 2000;
const ANALYSIS_POLL_MS = 1000;

// Page state.
let model = null;
let view = readView(location.search); // what the reader looks at (viewstate.js)
let lastReply = null; // the latest upload's predict reply, kept until the paths arrive
const kShown = new Map(); // layer index -> the k the graphs show, where it is not the analysis's
// This model's measured share of low doubts (lowDoubtShares), or null once
// known to be unavailable: the upload and the outside cards quote it.
let resolveShares;
const doubtShares = new Promise((r) => { resolveShares = r; });
// Plotly (the other charts) loads once the graph of paths, drawn without it,
// is on screen, or at once when there is no graph to wait for (ui.js).
let pathsShown;
plotlyAfter(new Promise((r) => { pathsShown = () => requestAnimationFrame(() => setTimeout(r, 0)); }));

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
    el('p', { class: 'small muted' }, 'The image enters on the left; each box is a layer: its name, ',
      isImported(m) ? 'the ONNX op that computes it' : 'its type', ' and the shape of what it outputs ',
      '(height × width × channels, or a vector length). With a keyboard, the arrow keys go from box to box.'),
    architecture(m), // graphview.js
    layerChooser(m)); // layerchooser.js: imported models only
}

function quality(m) {
  const card = m.card;
  // The training card's matrix, else (an imported model) the analysis's.
  const cm = confusionSource(m);
  if (cm) {
    $('confusion').querySelector(':scope > .empty')?.remove();
    draw($('confusion'), confusionFigure(cm.classes, cm.confusion), { displayModeBar: false });
    $('confusion-note').textContent = cm.source === 'analysis'
      ? `Counted over the ${cm.images} images of the ${cm.split} split that strata analysed (this model has no training card).`
      : '';
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

// --- the view in the URL ------------------------------------------------------

/** A change of view made by the reader: a new history entry, so that back
 *  undoes it (with `replace`, the current entry is changed instead: for a
 *  change the reader did not ask for, such as an upload ending a highlight). */
function changeView(patch, { replace = false } = {}) {
  view = { ...view, ...patch };
  const search = viewSearch(model.id, view);
  if (search === location.search) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', `${location.pathname}${search}${location.hash}`);
}

/** Back or forward: the view the URL now holds. */
function onPopState() {
  view = readView(location.search);
  applyLayerView(view);
  highlightClass(view.cls);
  applyLinked(view); // the gallery and the image opened, wherever they open, and their paths (linked.js)
}

// --- analysis ---------------------------------------------------------------

/** Shows the server's progress while the model is queued or analysed, asked
 *  again every second; resolves to the model's detail once it is ready, or
 *  null when the analysis failed (the banner then says why) or the model is gone. */
async function waitForAnalysis(id) {
  const box = $('analysis-status');
  fill($('parcats'), el('p', { class: 'empty' }, 'Waiting for the analysis…'));
  for (;;) {
    let m = null;
    try {
      m = await api.model(id);
    } catch (err) {
      fill(box, errorBox(err, 'Lost the server'));
      if (err.status === 404) return null;
    }
    const state = m?.analysis?.state;
    if (state === 'ready') { fill(box); return m; }
    if (state === 'failed') {
      const detail = m.analysis.error || m.error || '';
      fill(box, el('div', { class: 'error', role: 'alert' }, el('strong', {}, 'The analysis of this model failed'),
        detail ? ` — ${detail}` : ''));
      return null;
    }
    if (m) {
      const p = m.progress ?? m.analysis?.progress ?? null;
      const share = progressShare(p);
      fill(box, el('div', { class: 'banner', id: 'analysis-banner', 'data-state': state || '' },
        progress(el('span', {}, el('strong', {}, 'strata is working on this model'), ' — ',
          el('span', { 'data-progress': '' }, analysisText(state, p)), '. The graphs appear when it is done.')),
        share === null ? null : el('div', { class: 'meter', role: 'progressbar', 'aria-label': 'analysis progress',
          'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(100 * share) },
        el('span', { class: 'meter-fill meter-progress', style: `width:${Math.round(100 * share)}%` }))));
    }
    await new Promise((r) => setTimeout(r, ANALYSIS_POLL_MS));
  }
}

async function loadAnalysis(m) {
  fill($('parcats'), progress('Following the test images through the layers…'));
  let doc;
  try {
    doc = await api.paths(m.id);
  } catch (err) {
    fill($('parcats'), errorBox(err, 'Could not load the paths'));
    pathsShown();
    return;
  }
  $('parcats').replaceChildren();
  const dims = doc.dimensions.filter((d) => d.kind === 'layer');
  $('paths-layers-note').textContent = layersNote(m.layers, dims,
    m.doubt && m.doubt.state === 'ready' ? m.doubt.layers : null);
  try {
    initPaths({ doc, cls: view.cls, changed: (patch) => changeView(patch), clusterClicked });
    if (lastReply) pathsUpload(lastReply);
  } finally {
    pathsShown();
  }
  initLayerView({
    // An imported layer's type is its ONNX op ("Relu", "Add") on its button.
    id: m.id, dims, modelLayers: m.layers.map((l) => (l.op ? { ...l, type: l.op } : l)), view,
    changed: (v) => changeView(v),
    clustered: onClustered,
  });
  initGallery({
    id: m.id,
    model: m,
    select: (item) => {
      mistakeOpened(item); // its own path lights up
      changeView({ image: item.id });
    },
    closed: () => {
      mistakeClosed();
      changeView({ image: null });
    },
  });
  // Galleries of a confusion cell or a cluster, the image panel, their paths;
  // the opened image (a mistake's too) comes from the URL here.
  initLinked({ model: m, paths: doc, view, changed: (patch) => changeView(patch), getView: () => view,
    mistakes: { open: openImage, close: closeImage }, marked: markImage });
  window.addEventListener('popstate', onPopState);
}

/** A new upload's reply: its path and star on the graphs. The graph of
 *  paths ends its highlight for it, which the URL then forgets too. */
function onUpload(reply) {
  lastReply = reply;
  layerUpload(reply);
  if (pathsUpload(reply)) changeView({ cls: null }, { replace: true });
}

/** The same upload's reply, knowing its clusters at the reader's k: its
 *  star and its line follow (the upload's card draws its own table again). */
function onUploadUpdated(reply) {
  lastReply = reply;
  layerUpload(reply);
  pathsUpdateUpload(reply);
}

/** A layer clustered with the reader's k (a scatter reply), or back to the
 *  analysis's own (null): the graph of paths, the open panels' tables and
 *  the upload's cluster there follow. */
function onClustered(layer, scatter) {
  setClustering(layer, scatter);
  if (scatter) kShown.set(layer, scatter.k);
  else kShown.delete(layer);
  refreshPanelPaths();
  followK(kShown);
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
    fill($('model-header'), errorBox(err, `Could not open the model “${id}”`),
      el('p', {}, el('a', { href: '/' }, 'See every model on the home page.')));
    hideSections();
    return;
  }
  header(model);
  initDelete(model, $('model-header'));
  quality(model);
  initUpload({ model, result: onUpload, updated: onUploadUpdated, doubtShares });
  if (model.analysis?.state !== 'ready') {
    pathsShown(); // the graph waits for the analysis; the other charts need not
    const ready = await waitForAnalysis(id);
    if (!ready) { resolveShares(null); return; }
    model = ready; // its accuracy and doubt are known now
    header(model);
    initDelete(model, $('model-header'));
    quality(model); // an imported model's confusion comes with its analysis
  }
  initChartTables({ id: model.id, layers: model.layers }); // tables.js
  loadDoubt(model);
  await loadAnalysis(model);
  // Other models' images are served from their analyses: list the models
  // again now, so that the ones that became ready meanwhile count.
  const models = await api.models().then((r) => r.models).catch(() => modelsP);
  if (models.length) initOutside({ model, models, doubtShares });
}

main();
