// layerview.js — the "one layer seen from above" panel of the model page:
// a button per analysed layer; for the chosen layer its PCA scatter (points
// coloured by cluster or by true class, centres in black, a thumbnail on
// hover), its elbow curve with the chosen k, and a k selector that
// re-clusters live (GET …/scatter?k=N). An uploaded image appears as a star.

import { api, imageUrl } from './api.js';
import { el, fill, draw, num, pct, progress, errorBox } from './ui.js';
import { scatterFigure } from './scatter.js';
import { elbowFigure } from './elbow.js';

const K_MAX = 10;

// Module state: one layer panel per page.
let modelId = null;
let layers = []; // [{layer, label, k, type, shape}]
let current = null; // index into layers
let k = null;
let colorBy = 'cluster';
let scatter = null;
let elbow = null;
let upload = null; // predict reply
let token = 0;
let hoverWired = false;
const nodes = {};

function byId(id) { return document.getElementById(id); }

/** Sets up the panel. `dims` are the layer dimensions of /paths; `modelLayers`
 *  the model's layer list (for types and shapes). Selects the first layer. */
export function initLayerView({ id, dims, modelLayers }) {
  modelId = id;
  Object.assign(nodes, {
    buttons: byId('layer-buttons'), scatter: byId('scatter'), tip: byId('scatter-tip'),
    elbow: byId('elbow'), kSel: byId('k-selector'), stats: byId('layer-stats'),
    byCluster: byId('colour-cluster'), byClass: byId('colour-class'),
  });
  const info = new Map((modelLayers || []).map((l) => [l.index, l]));
  layers = dims.map((d) => ({ layer: d.layer, label: d.label, k: d.k, type: info.get(d.layer)?.type,
    shape: info.get(d.layer)?.output_shape }));
  fill(nodes.buttons, layers.map((l, i) => el('button', {
    type: 'button', class: 'layer-button', 'aria-pressed': 'false', 'data-layer': l.layer, 'data-pos': i,
  }, el('span', { class: 'layer-name' }, l.label), l.type ? el('span', { class: 'layer-type' }, l.type) : null)));
  nodes.buttons.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-pos]');
    if (b) selectLayer(Number(b.dataset.pos));
  });
  fill(nodes.kSel, el('span', { class: 'toolbar-label' }, 'k'),
    Array.from({ length: K_MAX }, (_, i) => el('button', { type: 'button', class: 'k-button', 'data-k': i + 1,
      'aria-pressed': 'false', 'aria-label': `k = ${i + 1}` }, String(i + 1))));
  nodes.kSel.addEventListener('click', (e) => {
    const b = e.target.closest('button[data-k]');
    if (b) setK(Number(b.dataset.k));
  });
  nodes.byCluster.addEventListener('click', () => setColorBy('cluster'));
  nodes.byClass.addEventListener('click', () => setColorBy('class'));
  if (layers.length) selectLayer(0);
}

/** Marks (or, with null, unmarks) an uploaded image on every layer's scatter. */
export function setUpload(reply) {
  upload = reply;
  if (scatter) drawScatter();
}

function uploadPoint() {
  if (!upload || current === null) return null;
  const l = (upload.layers || []).find((x) => x.index === layers[current].layer);
  return l ? { x: l.x, y: l.y, cluster: l.cluster } : null;
}

function setColorBy(mode) {
  colorBy = mode;
  nodes.byCluster.setAttribute('aria-pressed', String(mode === 'cluster'));
  nodes.byClass.setAttribute('aria-pressed', String(mode === 'class'));
  if (scatter) drawScatter();
}

async function selectLayer(pos) {
  current = pos;
  k = null;
  for (const b of nodes.buttons.querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(Number(b.dataset.pos) === pos));
  }
  const my = ++token;
  nodes.stats.replaceChildren(progress(`Loading ${layers[pos].label}…`));
  try {
    const [s, e] = await Promise.all([api.scatter(modelId, layers[pos].layer), api.elbow(modelId, layers[pos].layer)]);
    if (my !== token) return;
    scatter = s; elbow = e; k = s.k;
    await Promise.all([drawScatter(), drawElbow()]);
    showStats();
  } catch (err) {
    if (my === token) fill(nodes.stats, errorBox(err, `Could not load layer ${layers[pos].label}`));
  }
}

async function setK(newK) {
  if (current === null || newK === k) return;
  const my = ++token;
  k = newK;
  markK();
  nodes.stats.replaceChildren(progress(`Clustering into ${newK} groups…`));
  try {
    const s = await api.scatter(modelId, layers[current].layer, newK);
    if (my !== token) return;
    scatter = s;
    await Promise.all([drawScatter(), drawElbow()]);
    showStats();
  } catch (err) {
    if (my === token) fill(nodes.stats, errorBox(err, 'Could not re-cluster'));
  }
}

function markK() {
  for (const b of nodes.kSel.querySelectorAll('button')) {
    const bk = Number(b.dataset.k);
    b.setAttribute('aria-pressed', String(bk === k));
    b.classList.toggle('is-auto', elbow !== null && bk === elbow.k_auto);
    b.title = elbow !== null && bk === elbow.k_auto ? 'the elbow: strata\'s choice' : '';
  }
}

async function drawScatter() {
  const fig = scatterFigure(scatter, { colorBy, upload: uploadPoint() });
  nodes.scatter.dataset.points = String(scatter.points.x.length);
  nodes.scatter.dataset.centers = String(scatter.centers.x.length);
  nodes.scatter.dataset.layer = String(scatter.layer?.index ?? layers[current].layer);
  nodes.scatter.dataset.k = String(scatter.k);
  await draw(nodes.scatter, fig);
  if (!hoverWired) {
    hoverWired = true;
    nodes.scatter.on('plotly_hover', showTip);
    nodes.scatter.on('plotly_unhover', () => { nodes.tip.hidden = true; });
  }
}

async function drawElbow() {
  await draw(nodes.elbow, elbowFigure(elbow, { k }), { displayModeBar: false });
  nodes.elbow.dataset.k = String(k);
  if (!nodes.elbow.dataset.wired) {
    nodes.elbow.dataset.wired = '1';
    nodes.elbow.on('plotly_click', (ev) => {
      const p = ev.points && ev.points[0];
      if (p && Number.isInteger(p.x)) setK(p.x);
    });
  }
  markK();
}

function showStats() {
  const s = scatter;
  const evr = s.explained_variance_ratio || [];
  const both = evr.length >= 2 ? evr[0] + evr[1] : null;
  const l = layers[current];
  fill(nodes.stats,
    el('span', {}, el('strong', {}, l.label), l.shape ? ` (${l.shape.join('×')})` : ''),
    el('span', {}, `k = ${s.k}${s.k_auto && s.k_auto !== s.k ? ` (elbow: ${s.k_auto})` : ''}`),
    el('span', { title: 'share of each cluster held by its majority class' }, `purity ${num(s.purity)}`),
    el('span', { title: 'adjusted Rand index between clusters and classes (0 = chance, 1 = identical)' }, `ARI ${num(s.ari)}`),
    el('span', { title: 'normalised mutual information between clusters and classes' }, `NMI ${num(s.nmi)}`),
    el('span', { title: 'how well separated the clusters are (−1…1)' }, `silhouette ${num(s.silhouette)}`),
    both !== null ? el('span', {}, `the 2 axes show ${pct(both)} of the variance`) : null);
}

function showTip(ev) {
  const p = ev.points && ev.points[0];
  if (!p || !scatter) return;
  const t = p.data;
  if (t.name === 'cluster centres' || t.name === 'your image' || typeof p.customdata !== 'number') {
    nodes.tip.hidden = true;
    return;
  }
  const i = p.customdata;
  const pts = scatter.points;
  const cls = scatter.classes;
  const right = pts.true[i] === pts.pred[i];
  fill(nodes.tip,
    el('img', { src: imageUrl(modelId, pts.id[i], { thumb: true }), alt: `${cls[pts.true[i]]} photo`, width: 64, height: 64 }),
    el('div', {},
      el('div', {}, el('span', { class: 'muted' }, 'true '), el('strong', {}, cls[pts.true[i]])),
      el('div', { class: right ? 'ok' : 'bad' }, el('span', { class: 'muted' }, 'predicted '), cls[pts.pred[i]]),
      el('div', { class: 'muted' }, `cluster ${pts.cluster[i]}`)));
  const wrap = nodes.scatter.getBoundingClientRect();
  const x = ev.event ? ev.event.clientX - wrap.left : 0;
  const y = ev.event ? ev.event.clientY - wrap.top : 0;
  nodes.tip.hidden = false;
  const w = nodes.tip.offsetWidth, h = nodes.tip.offsetHeight;
  nodes.tip.style.left = `${Math.max(4, Math.min(wrap.width - w - 4, x + 14))}px`;
  nodes.tip.style.top = `${Math.max(4, Math.min(wrap.height - h - 4, y - h - 10))}px`;
}
