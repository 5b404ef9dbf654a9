// tables.js — text for the model page's charts, for a reader who cannot see
// them: a "Show as table" toggle under the graph of paths and under the
// scatter, each giving the same data as a table, and an accessible name (a
// sentence saying what the chart holds, with role="img", or role="figure"
// for a chart whose own buttons must stay reachable) on every Plotly chart
// of the page once Plotly has drawn it (the graph of paths, pathsgraph.js,
// names its own SVG).
//
//   - the paths: one row per distinct path (true class, the cluster at each
//     layer as the graph names it, predicted class) with its number of
//     images, the most common first; read from the figure as drawn, so it
//     follows the reader's k and the uploaded image's line;
//   - the scatter: one row per cluster of the layer shown (as many images,
//     the class most of them belong to, its purity, how many of each class,
//     how many the model answers right), from the same scatter reply the
//     layer panel draws (its layer and k are on the chart's data-* attributes).
//
// pathRows and clusterRows are pure (tested under Node); the rest waits for
// each chart's drawings (Plotly's plotly_afterplot, the graph of paths'
// pathsdrawn) and redraws what is open.

import { api } from './api.js';
import { el, fill, num, pct, progress, errorBox } from './ui.js';
import { counted } from './words.js';
import { graphFigure } from './pathsgraph.js';

/** How many paths the table lists before a "show all" button. */
export const PATH_ROWS = 40;

/**
 * The distinct paths of the graph of paths' figure (pathsgraph.js
 * pathsFigure; its dimensions' label, values, categoryarray and ticktext
 * are read): {columns (the dimensions' labels), rows: [{cells (one text
 * per dimension, as the graph names the category: a cluster is
 * "2 · jaguar"), count}], lines (how many lines the graph draws)}. Rows are
 * the most common first, ties in order of first appearance.
 */
export function pathRows(fig) {
  const dims = fig.dimensions || [];
  const lines = dims.length ? dims[0].values.length : 0;
  const names = dims.map((d) => {
    const text = new Map();
    if (Array.isArray(d.ticktext) && Array.isArray(d.categoryarray)) {
      d.categoryarray.forEach((c, i) => text.set(c, String(d.ticktext[i] ?? c)));
    }
    return (v) => (text.has(v) ? text.get(v) : String(v));
  });
  const byKey = new Map();
  for (let i = 0; i < lines; i++) {
    const cells = dims.map((d, j) => names[j](d.values[i]));
    const key = cells.join('\u0001');
    const row = byKey.get(key);
    if (row) row.count += 1;
    else byKey.set(key, { cells, count: 1, first: i });
  }
  const rows = [...byKey.values()].sort((a, b) => b.count - a.count || a.first - b.first)
    .map(({ cells, count }) => ({ cells, count }));
  return { columns: dims.map((d) => String(d.label)), rows, lines };
}

/**
 * The clusters of a scatter reply (GET …/layers/{layer}/scatter): one row
 * per cluster, {cluster, size, byClass (images of each class), majority
 * (class index, -1 when empty), purity (share of the majority class; null
 * when empty), right (images the model answers right)}.
 */
export function clusterRows(s) {
  const { points, classes } = s;
  const k = Math.max(s.k || 0, s.centers?.x?.length || 0, ...points.cluster.map((c) => c + 1));
  const rows = Array.from({ length: k }, (_, c) => ({
    cluster: c, size: 0, byClass: new Array(classes.length).fill(0), majority: -1, purity: null, right: 0,
  }));
  points.cluster.forEach((c, i) => {
    const r = rows[c];
    if (!r) return;
    r.size += 1;
    if (points.true[i] >= 0 && points.true[i] < classes.length) r.byClass[points.true[i]] += 1;
    if (points.true[i] === points.pred[i]) r.right += 1;
  });
  for (const r of rows) {
    if (!r.size) continue;
    let best = 0;
    r.byClass.forEach((n, c) => { if (n > r.byClass[best]) best = c; });
    r.majority = best;
    r.purity = r.byClass[best] / r.size;
  }
  return rows;
}

// --- the charts' names -------------------------------------------------------------

/** A sentence naming chart `node` as drawn, or '' when it has nothing to say. */
function chartName(node, layerName) {
  const d = node.data || [];
  switch (node.id) {
    case 'scatter': {
      const ds = node.dataset;
      return `Scatter of layer ${layerName(Number(ds.layer))}: ${counted(Number(ds.points), 'image')} placed by ` +
        `their two main directions of variation (PCA), in ${counted(Number(ds.k), 'cluster')}. ` +
        'The table under it, "Show as table", gives each cluster\'s make-up.' +
        `${ds.marked ? ` The ringed point is ${ds.marked}, the image opened.` : ''}`;
    }
    case 'confusion': {
      const tr = d[0];
      if (!tr || !Array.isArray(tr.z)) return '';
      const classes = tr.x;
      let total = 0, diag = 0, worst = null;
      tr.z.forEach((row, t) => row.forEach((v, p) => {
        total += v;
        if (t === p) diag += v;
        else if (v > 0 && (!worst || v > worst.v)) worst = { v, t, p };
      }));
      return `Confusion matrix of ${counted(classes.length, 'class', 'classes')} over ${counted(total, 'image')}: ` +
        `${diag} answered right. ` +
        (worst ? `The most frequent mistake: ${counted(worst.v, 'image')} of ${classes[worst.t]} taken for ${classes[worst.p]}.` : '');
    }
    case 'curves': {
      const epochs = Math.max(0, ...d.map((t) => (t.x || []).length));
      return `Training curves over ${counted(epochs, 'epoch')}: loss (left or top) and accuracy, on the training ` +
        'images and on the held-out validation images.';
    }
    case 'elbow': {
      const tr = d[0];
      if (!tr || !tr.x) return '';
      const chosen = d.find((t) => /^chosen k = \d+/.test(t.name || ''));
      return `Elbow curve: how tight the clusters are (inertia) for k from ${tr.x[0]} to ${tr.x[tr.x.length - 1]}` +
        (chosen ? `; ${chosen.name}.` : '.');
    }
    case 'doubt-histogram':
      return `Histogram of the doubt, from 0 to 1, of ${d.filter((t) => t.type === 'bar').map((t) => t.name).join(' and ')}.`;
    default:
      return '';
  }
}

/** Calls `drawn()` after each drawing of chart `node` by Plotly (once its
 *  first drawing is there), and `gone()` when its content is replaced by
 *  something else (a progress line, an error). */
function onDrawn(node, drawn, gone) {
  let wired = false;
  const check = () => {
    const plotted = !!node.querySelector(':scope > .plot-container');
    if (!plotted) { gone(); return; }
    if (!wired && typeof node.on === 'function') {
      wired = true;
      node.on('plotly_afterplot', drawn);
    }
    drawn();
  };
  new MutationObserver(check).observe(node, { childList: true });
  check();
}

const FOCUSABLE = 'a[href], button, input, select, textarea, [tabindex]:not([tabindex="-1"])';

/** Names every chart of the page as it is drawn. `layerName(index)` names
 *  a layer of the model. */
function nameCharts(layerName) {
  for (const id of ['scatter', 'confusion', 'curves', 'elbow', 'doubt-histogram']) {
    const node = document.getElementById(id);
    if (!node) continue;
    onDrawn(node, () => {
      const label = chartName(node, layerName);
      if (!label) return;
      // A chart with controls of its own (the scatter's zoom buttons) is a
      // named figure, whose buttons stay reachable; any other, one image.
      node.setAttribute('role', node.querySelector(FOCUSABLE) ? 'figure' : 'img');
      node.setAttribute('aria-label', label);
    }, () => {
      node.removeAttribute('role');
      node.removeAttribute('aria-label');
    });
  }
}

// --- the toggles --------------------------------------------------------------------

/** A "Show as table" button and the region it opens into `container`;
 *  `build(region)` fills the region each time it opens and on refresh(). */
function tableToggle(container, build) {
  const regionId = `${container.id}-body`;
  const button = el('button', {
    type: 'button', class: 'small-button table-toggle', 'aria-expanded': 'false', 'aria-controls': regionId,
  }, 'Show as table');
  const region = el('div', { id: regionId, class: 'chart-table-body', hidden: true });
  fill(container, button, region);
  let open = false;
  button.addEventListener('click', () => {
    open = !open;
    button.setAttribute('aria-expanded', String(open));
    button.textContent = open ? 'Hide the table' : 'Show as table';
    region.hidden = !open;
    if (open) build(region);
  });
  return { refresh: () => { if (open) build(region); } };
}

function pathsTable(region, state) {
  const fig = graphFigure(document.getElementById('parcats'));
  if (!fig) { fill(region, el('p', { class: 'empty' }, 'The graph is not drawn yet.')); return; }
  const { columns, rows, lines } = pathRows(fig);
  // A redrawing that changes no count (a highlight) leaves the table, and the reader's place in it, alone.
  const sig = JSON.stringify([columns, rows, state.all]);
  if (sig === state.sig && region.querySelector('#paths-table-data')) return;
  state.sig = sig;
  const shown = state.all ? rows : rows.slice(0, PATH_ROWS);
  const caption = `${counted(lines, 'image')} follow ${counted(rows.length, 'distinct path')} from true class to ` +
    `answer, the most common first${shown.length < rows.length ? ` (the first ${shown.length} here)` : ''}.`;
  const more = rows.length > shown.length
    ? el('button', { type: 'button', class: 'link-button', 'data-more': '' }, `Show all ${rows.length} paths`) : null;
  if (more) more.addEventListener('click', () => { state.all = true; pathsTable(region, state); });
  fill(region,
    // The caption, shown above the box that scrolls (a table's own caption would scroll away with it).
    el('p', { class: 'table-caption', 'aria-hidden': 'true' }, caption),
    el('div', { class: 'scroll-x table-scroll', tabindex: '0', role: 'region', 'aria-label': 'the paths as a table' },
      el('table', { class: 'data-table chart-table', id: 'paths-table-data', 'data-rows': rows.length, 'data-lines': lines },
        el('caption', { class: 'visually-hidden' }, caption),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col' }, 'images'),
          columns.map((c) => el('th', { scope: 'col' }, c)))),
        el('tbody', {}, shown.map((r) => el('tr', {},
          el('th', { scope: 'row', 'data-count': r.count }, String(r.count)),
          r.cells.map((c) => el('td', {}, c))))))),
    more);
}

async function scatterTable(region, id, layerName, cache) {
  const gd = document.getElementById('scatter');
  const layer = Number(gd?.dataset.layer);
  const k = Number(gd?.dataset.k);
  if (!Number.isInteger(layer) || !Number.isInteger(k)) {
    fill(region, el('p', { class: 'empty' }, 'The scatter is not drawn yet.'));
    return;
  }
  const key = `${layer}/${k}`;
  if (cache.key === key && region.querySelector(`#scatter-table-data[data-layer="${layer}"][data-k="${k}"]`)) return;
  if (cache.key !== key) {
    if (!region.childElementCount) fill(region, progress('Counting the clusters…'));
    try {
      // The analysis's own clustering, or the reader's k, as the panel asked.
      let s = await api.scatter(id, layer);
      if (s.k !== k) s = await api.scatter(id, layer, k);
      cache.key = key;
      cache.reply = s;
    } catch (err) {
      fill(region, errorBox(err, 'Could not count the clusters'));
      return;
    }
    const now = document.getElementById('scatter').dataset;
    if (`${now.layer}/${now.k}` !== key) return; // the reader moved on: that drawing refreshes it
  }
  const s = cache.reply;
  const rows = clusterRows(s);
  const classes = s.classes;
  const n = s.points.x.length;
  const caption = `Layer ${layerName(layer)}: ${counted(n, 'image')} in ${counted(rows.length, 'cluster')}, ` +
    `purity ${num(s.purity)}.`;
  fill(region,
    el('p', { class: 'table-caption', 'aria-hidden': 'true' }, caption),
    el('div', { class: 'scroll-x table-scroll', tabindex: '0', role: 'region', 'aria-label': 'the clusters as a table' },
      el('table', { class: 'data-table chart-table', id: 'scatter-table-data', 'data-layer': layer, 'data-k': k },
        el('caption', { class: 'visually-hidden' }, caption),
        el('thead', {}, el('tr', {},
          el('th', { scope: 'col' }, 'cluster'),
          el('th', { scope: 'col' }, 'images'),
          el('th', { scope: 'col' }, 'mostly'),
          el('th', { scope: 'col', title: 'share of the cluster held by its majority class' }, 'purity'),
          classes.map((c) => el('th', { scope: 'col' }, c)),
          el('th', { scope: 'col', title: 'images of the cluster the model answers right' }, 'answered right'))),
        el('tbody', {}, rows.map((r) => el('tr', { 'data-cluster': r.cluster },
          el('th', { scope: 'row' }, String(r.cluster)),
          el('td', { 'data-size': r.size }, String(r.size)),
          el('td', {}, r.majority >= 0 ? classes[r.majority] : '–'),
          el('td', {}, r.purity === null ? '–' : pct(r.purity)),
          r.byClass.map((v) => el('td', {}, String(v))),
          el('td', {}, String(r.right))))))));
}

/**
 * Sets up the text alternatives of the model page for model `id`, whose
 * layers (GET /api/models/{id}'s `layers`) name the scatter's layer: the
 * two toggles (#paths-table, #scatter-table) and the charts' names. Once
 * per page.
 */
export function initChartTables({ id, layers = [] }) {
  const names = new Map(layers.map((l) => [l.index, l.name]));
  const layerName = (i) => names.get(i) ?? String(i);
  nameCharts(layerName);
  const pathsBox = document.getElementById('paths-table');
  if (pathsBox) {
    const state = { all: false };
    const t = tableToggle(pathsBox, (region) => pathsTable(region, state));
    document.getElementById('parcats')?.addEventListener('pathsdrawn', t.refresh);
  }
  const scatterBox = document.getElementById('scatter-table');
  if (scatterBox) {
    const cache = { key: null, reply: null };
    const t = tableToggle(scatterBox, (region) => scatterTable(region, id, layerName, cache));
    onDrawn(document.getElementById('scatter'), t.refresh, () => {});
  }
}
