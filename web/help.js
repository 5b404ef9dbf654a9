// help.js — the help page: small live plots computed in the browser
// (helpmath.js, helpcharts.js) next to plain-language explanations, and a toy
// graph of paths drawn by the model pages' own module (pathsgraph.js), where
// a click on a bar or a ribbon highlights the lines through it.

import { initMenu, fillMenu, menuError } from './nav.js';
import { api } from './api.js';
import { draw, pct } from './ui.js';
import { lowDoubtShares } from './doubtchart.js';
import { rng, gauss, kmeans, elbowK, limeToy, purity, ari } from './helpmath.js';
import {
  neuronFigure, activationsFigure, softmaxFigure, toyImage, KERNELS, convFigure,
  kmeansFigure, toyElbowFigure, pcaFigure, limeToyFigure,
} from './helpcharts.js';
import { pathsFigure, drawPathsGraph, graphName } from './pathsgraph.js';

const $ = (id) => document.getElementById(id);
const STATIC = { displayModeBar: false, responsive: true };

/** Calls `update` now and whenever one of the inputs changes; mirrors range values into their <output>. */
function bind(ids, update) {
  const run = () => {
    for (const id of ids) {
      const out = $(`${id}-out`);
      if (out) out.textContent = Number($(id).value).toFixed($(id).step === '1' ? 0 : 1);
    }
    update();
  };
  for (const id of ids) $(id).addEventListener('input', run);
  run();
}

/** Three Gaussian blobs of 2-D points, the same on every visit. */
function blobs() {
  const rand = rng(7);
  const centres = [[-2, -1], [2, -1.5], [0.5, 2.2]];
  const pts = [];
  for (const [cx, cy] of centres) for (let i = 0; i < 40; i++) pts.push([cx + 0.7 * gauss(rand), cy + 0.7 * gauss(rand)]);
  return pts;
}

/** A toy "analysis": 90 images of three classes through two layers, as /paths would send it. */
function toyPaths() {
  const rand = rng(11);
  const classes = ['forest', 'glacier', 'sea'];
  const t = [], c1 = [], c2 = [], pred = [];
  for (let i = 0; i < 90; i++) {
    const cls = i % 3;
    // Layer 1 sees colours: glacier and sea (blue, white) share a cluster.
    const a = cls === 0 ? (rand() < 0.85 ? 0 : 1) : (rand() < 0.85 ? 1 : 0);
    // Layer 2 sees textures: mostly one cluster per class.
    const b = rand() < 0.8 ? cls : Math.floor(rand() * 3);
    t.push(cls); c1.push(a); c2.push(b); pred.push(rand() < 0.9 ? b : cls);
  }
  return {
    classes,
    dimensions: [
      { label: 'true class', kind: 'true' },
      { label: 'layer 1', kind: 'layer', layer: 0, k: 2, purity: purity(c1, t), ari: ari(c1, t) },
      { label: 'layer 2', kind: 'layer', layer: 1, k: 3, purity: purity(c2, t), ari: ari(c2, t) },
      { label: 'predicted', kind: 'pred' },
    ],
    images: { id: t.map((_, i) => `toy/${i}`), true: t, pred, clusters: t.map((_, i) => [c1[i], c2[i]]) },
  };
}

/** Fills in each model's measured share of other datasets' photos rated
 *  "low" (GET …/doubt); models whose evaluation is not ready (the detail
 *  says so, without a 409) are left out. */
async function lowShares(models) {
  const node = $('low-doubt-shares');
  const found = [];
  for (const m of models) {
    try {
      if ((await api.model(m.id)).doubt?.evaluation !== 'ready') continue;
      const s = lowDoubtShares(await api.doubt(m.id));
      if (s) found.push(`${m.title || m.id} ${pct(s.ood)}`);
    } catch { /* no evaluation for this model */ }
  }
  if (found.length) node.textContent = `${found.join(', ')} (“When to doubt it” on each model's page has the details)`;
}

/** The toy graph of paths: a click on a segment or a ribbon highlights the
 *  lines through it; a second click on the same lines ends it. */
function toyGraph(node, paths) {
  let highlight = null;
  const key = (set) => [...set].join(',');
  const drawToy = () => {
    const fig = pathsFigure(paths, { highlight });
    drawPathsGraph(node, fig, {
      height: 400,
      label: graphName(fig).replace(/^Graph/, 'Toy graph'),
      click: ({ lines }) => {
        highlight = highlight && key(highlight) === key(lines) ? null : lines;
        drawToy();
      },
    });
  };
  drawToy();
}

function main() {
  initMenu();
  api.models().then((r) => { fillMenu(r.models); lowShares(r.models); }).catch(menuError);

  bind(['neuron-w', 'neuron-b'], () =>
    draw($('plot-neuron'), neuronFigure(Number($('neuron-w').value), Number($('neuron-b').value), $('neuron-act').value), STATIC));
  $('neuron-act').addEventListener('change', () =>
    draw($('plot-neuron'), neuronFigure(Number($('neuron-w').value), Number($('neuron-b').value), $('neuron-act').value), STATIC));

  draw($('plot-activations'), activationsFigure(), STATIC);
  bind(['softmax-t'], () => draw($('plot-softmax'),
    softmaxFigure([2.0, 1.0, 0.2, -1.0], ['cheetah', 'jaguar', 'leopard', 'tiger'], Number($('softmax-t').value)), STATIC));

  const img = toyImage();
  const conv = () => draw($('plot-conv'), convFigure(img, KERNELS[$('conv-kernel').value],
    { columns: $('plot-conv').clientWidth < 560 ? 2 : 4 }), STATIC);
  $('conv-kernel').addEventListener('change', conv);
  conv();

  const pts = blobs();
  const ks = [1, 2, 3, 4, 5, 6, 7, 8];
  const fits = ks.map((k) => kmeans(pts, k, 5));
  const inertia = fits.map((f) => f.inertia);
  const elbow = elbowK(ks, inertia);
  bind(['kmeans-k'], () => {
    const k = Number($('kmeans-k').value);
    draw($('plot-kmeans'), kmeansFigure(pts, fits[k - 1]), STATIC);
    draw($('plot-toy-elbow'), toyElbowFigure(ks, inertia, k, elbow), STATIC);
  });

  const rand = rng(21);
  const cloud = Array.from({ length: 150 }, () => {
    const u = 1.6 * gauss(rand), v = 0.45 * gauss(rand);
    return [u * 0.8 - v * 0.6 + 1, u * 0.6 + v * 0.8 + 0.5];
  });
  draw($('plot-pca'), pcaFigure(cloud), STATIC);

  toyGraph($('plot-parcats'), toyPaths());

  // The toy black box: likes the top-left 2×2 regions, dislikes the bottom-right one.
  const toyModel = (mask) => 1 / (1 + Math.exp(-(1.5 * (mask[0] + mask[1] + mask[4] + mask[5]) - 2 * mask[15] - 2)));
  draw($('plot-lime'), limeToyFigure(limeToy(toyModel).weights), STATIC);
}

main();
