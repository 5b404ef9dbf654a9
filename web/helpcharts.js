// helpcharts.js — the help page's small live plots, as pure functions from
// parameters to Plotly {data, layout}. Everything is computed here, in the
// browser (helpmath.js), on toy inputs: nothing comes from the server.

import { relu, sigmoid, softmax, linspace, conv2d, maxpool, pca2 } from './helpmath.js';
import { baseLayout, classColor, clusterColor, CENTER, GRID } from './palette.js';

// Diverging scale: blue for negative, white at zero, red for positive.
const DIVERGING = [[0, '#2166ac'], [0.5, '#f7f7f7'], [1, '#b2182b']];

const small = (extra) => baseLayout({ height: 260, margin: { l: 44, r: 12, t: 12, b: 40 }, ...extra });
const ax = (title, extra = {}) => ({ title: { text: title }, gridcolor: GRID, zeroline: true, zerolinecolor: '#c7ced8', ...extra });

export const ACTIVATIONS = { relu, sigmoid, tanh: Math.tanh, linear: (x) => x };

/** One neuron with one input: y = act(w·x + b), over x in [−4, 4]. */
export function neuronFigure(w, b, act = 'relu') {
  const f = ACTIVATIONS[act] || relu;
  const xs = linspace(-4, 4, 161);
  return {
    data: [
      { type: 'scatter', mode: 'lines', name: 'w·x + b', x: xs, y: xs.map((x) => w * x + b),
        line: { color: '#b8c0cc', dash: 'dot', width: 2 } },
      { type: 'scatter', mode: 'lines', name: `${act}(w·x + b)`, x: xs, y: xs.map((x) => f(w * x + b)),
        line: { color: classColor(0), width: 3 } },
    ],
    layout: small({ xaxis: ax('input x'), yaxis: ax('output', { range: [-4, 4] }),
      legend: { orientation: 'h', x: 0, y: 1.15 } }),
  };
}

/** relu, sigmoid and tanh on one plot. */
export function activationsFigure() {
  const xs = linspace(-6, 6, 241);
  const line = (name, f, i) => ({ type: 'scatter', mode: 'lines', name, x: xs, y: xs.map(f),
    line: { color: classColor(i), width: 3 } });
  return {
    data: [line('relu', relu, 0), line('sigmoid', sigmoid, 1), line('tanh', Math.tanh, 2)],
    layout: small({ xaxis: ax('input'), yaxis: ax('output', { range: [-1.3, 3] }),
      legend: { orientation: 'h', x: 0, y: 1.15 } }),
  };
}

/** Softmax of scores at a temperature, as bars. */
export function softmaxFigure(scores, labels, temperature = 1) {
  const p = softmax(scores, temperature);
  return {
    data: [{ type: 'bar', x: labels, y: p, marker: { color: labels.map((_, i) => classColor(i)) },
      text: p.map((v) => `${Math.round(v * 100)} %`), textposition: 'outside', cliponaxis: false,
      hovertemplate: '%{x}: %{y:.1%}<extra></extra>' }],
    layout: small({ yaxis: ax('probability', { range: [0, 1.1], tickformat: '.0%' }), xaxis: { fixedrange: true },
      showlegend: false }),
  };
}

/** A 12×12 toy picture: a bright square on a dark background, with a diagonal stripe. */
export function toyImage() {
  const N = 12;
  return Array.from({ length: N }, (_, y) => Array.from({ length: N }, (_, x) => {
    const square = x >= 3 && x <= 7 && y >= 2 && y <= 6 ? 1 : 0;
    const stripe = Math.abs(x - y - 2) < 1 && y > 6 ? 0.8 : 0;
    return Math.max(square, stripe);
  }));
}

export const KERNELS = {
  'vertical edges': [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
  'horizontal edges': [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
  blur: [[1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9], [1 / 9, 1 / 9, 1 / 9]],
};

/** Four heat-maps: picture, kernel, relu(convolution), max-pooled — in one
 *  row, or (columns: 2, for narrow screens) in a 2×2 grid. */
export function convFigure(img, kernel, { columns = 4 } = {}) {
  const conv = conv2d(img, kernel).map((r) => r.map(relu));
  const pooled = maxpool(conv, 2);
  const panels = [['picture', img], ['kernel 3×3', kernel], ['relu(conv)', conv], ['max-pool', pooled]];
  const data = panels.map(([, z], i) => ({
    type: 'heatmap', z, xaxis: `x${i + 1}`, yaxis: `y${i + 1}`, showscale: false,
    colorscale: i === 1 ? DIVERGING : [[0, '#0f172a'], [1, '#fde68a']],
    zmid: i === 1 ? 0 : undefined, xgap: 1, ygap: 1, hovertemplate: 'value %{z:.2f}<extra></extra>',
  }));
  const cols = columns === 2 ? 2 : 4;
  const rows = 4 / cols;
  const layout = baseLayout({ height: rows === 1 ? 230 : 420, margin: { l: 8, r: 8, t: 24, b: 8 }, annotations: [] });
  const gap = 0.06, w = (1 - (cols - 1) * gap) / cols;
  const vgap = 0.12, h = (1 - (rows - 1) * vgap) / rows;
  panels.forEach(([title], i) => {
    const x0 = (i % cols) * (w + gap);
    const y1 = 1 - Math.floor(i / cols) * (h + vgap);
    // constrain 'domain': square cells shrink the panel, never stretch the range.
    layout[`xaxis${i + 1}`] = { domain: [x0, x0 + w], visible: false, fixedrange: true, constrain: 'domain' };
    layout[`yaxis${i + 1}`] = { domain: [y1 - h, y1], visible: false, autorange: 'reversed', scaleanchor: `x${i + 1}`,
      fixedrange: true, constrain: 'domain' };
    layout.annotations.push({ text: title, x: x0 + w / 2, y: y1, xref: 'paper', yref: 'paper', yanchor: 'bottom',
      showarrow: false, font: { size: 12 } });
  });
  return { data, layout };
}

/** Toy points coloured by k-means cluster, centres in black. */
export function kmeansFigure(points, result) {
  const k = result.centers.length;
  const data = Array.from({ length: k }, (_, c) => {
    const idx = points.map((_, i) => i).filter((i) => result.labels[i] === c);
    return { type: 'scatter', mode: 'markers', name: `cluster ${c}`, x: idx.map((i) => points[i][0]),
      y: idx.map((i) => points[i][1]), marker: { color: clusterColor(c), size: 7, opacity: 0.85 }, hoverinfo: 'skip' };
  });
  data.push({ type: 'scatter', mode: 'markers', name: 'centres', x: result.centers.map((c) => c[0]),
    y: result.centers.map((c) => c[1]), marker: { color: CENTER, size: 13, line: { color: '#fff', width: 2 } }, hoverinfo: 'skip' });
  return { data, layout: small({ showlegend: false, xaxis: ax('', { zeroline: false }), yaxis: ax('', { zeroline: false }) }) };
}

/** Toy elbow curve with the chosen k and the elbow marked. */
export function toyElbowFigure(ks, inertia, k, elbow) {
  const at = ks.indexOf(k);
  return {
    data: [
      { type: 'scatter', mode: 'lines+markers', x: ks, y: inertia, line: { color: '#8a94a3', width: 2 },
        marker: { color: '#8a94a3', size: 7 }, hovertemplate: 'k = %{x}: inertia %{y:.1f}<extra></extra>' },
      { type: 'scatter', mode: 'markers', x: [k], y: [inertia[at]], marker: { color: '#2f6fde', size: 15, line: { color: '#fff', width: 2 } },
        hoverinfo: 'skip' },
    ],
    layout: small({ showlegend: false, xaxis: ax('k', { dtick: 1, zeroline: false }), yaxis: ax('inertia', { rangemode: 'tozero', zeroline: false }),
      annotations: [{ x: elbow, y: inertia[ks.indexOf(elbow)], text: 'elbow', ax: 26, ay: -26, arrowhead: 0 }] }),
  };
}

/** A cloud of points with its two principal axes drawn from the mean, scaled by spread. */
export function pcaFigure(points) {
  const { mean, axes, variances } = pca2(points);
  const total = variances[0] + variances[1];
  const arrows = axes.map((a, i) => {
    const len = 2 * Math.sqrt(Math.max(0, variances[i]));
    return {
      type: 'scatter', mode: 'lines', name: `PC ${i + 1}: ${Math.round((100 * variances[i]) / total)} % of the variance`,
      x: [mean[0] - a[0] * len, mean[0] + a[0] * len], y: [mean[1] - a[1] * len, mean[1] + a[1] * len],
      line: { color: i === 0 ? '#2f6fde' : '#e15759', width: 4 }, hoverinfo: 'skip',
    };
  });
  return {
    data: [{ type: 'scatter', mode: 'markers', name: 'points', x: points.map((p) => p[0]), y: points.map((p) => p[1]),
      marker: { color: '#9aa5b4', size: 6, opacity: 0.8 }, hoverinfo: 'skip', showlegend: false }, ...arrows],
    layout: small({ height: 320, xaxis: ax('feature 1', { zeroline: false }), yaxis: ax('feature 2', { zeroline: false, scaleanchor: 'x' }),
      legend: { orientation: 'h', x: 0, y: 1.18 } }),
  };
}

/** LIME region weights of the toy as a heat-map (warm: for the answer, cool: against). */
export function limeToyFigure(weights) {
  const m = Math.max(1e-9, ...weights.flat().map(Math.abs));
  return {
    data: [{ type: 'heatmap', z: weights, zmin: -m, zmax: m, colorscale: DIVERGING, xgap: 2, ygap: 2,
      showscale: false, hovertemplate: 'region weight %{z:.3f}<extra></extra>' }],
    layout: baseLayout({ height: 220, width: 240, margin: { l: 8, r: 8, t: 8, b: 8 },
      xaxis: { visible: false, fixedrange: true }, yaxis: { visible: false, autorange: 'reversed', scaleanchor: 'x', fixedrange: true } }),
  };
}
