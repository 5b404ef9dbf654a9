// elbow.js — the elbow curve of one layer (GET …/layers/{layer}/elbow): the
// k-means inertia (sum of squared distances to the nearest centre) for
// k = 1…10. Inertia always falls as k grows; the "elbow", where adding a
// cluster stops paying much, is the k strata picks (k_auto). The chosen k
// is marked so the reader sees where the current clustering sits.

import { stillLayout, INK, GRID } from './palette.js';

/** Options: k — the k to mark as chosen (defaults to the document's k). */
export function elbowFigure(e, { k = e.k } = {}) {
  const ks = e.k_values;
  const y = e.inertia;
  const data = [{
    type: 'scatter',
    mode: 'lines+markers',
    name: 'inertia',
    x: ks.slice(),
    y: y.slice(),
    line: { color: '#8a94a3', width: 2 },
    marker: { color: '#8a94a3', size: 7 },
    hovertemplate: 'k = %{x}<br>inertia %{y:.4g}<extra></extra>',
  }];
  const at = ks.indexOf(k);
  if (at >= 0) {
    data.push({
      type: 'scatter',
      mode: 'markers',
      name: `chosen k = ${k}`,
      x: [k],
      y: [y[at]],
      marker: { color: '#2f6fde', size: 15, line: { color: '#ffffff', width: 2 } },
      hovertemplate: `chosen k = ${k}<extra></extra>`,
    });
  }
  const auto = ks.indexOf(e.k_auto);
  const annotations = auto >= 0 ? [{
    x: e.k_auto, y: y[auto], text: 'elbow', showarrow: true, arrowhead: 0, ax: 24, ay: -28,
    font: { size: 11, color: INK },
  }] : [];
  const layout = stillLayout({
    height: 300,
    margin: { l: 64, r: 16, t: 12, b: 44 },
    showlegend: false,
    xaxis: { title: { text: 'k (number of clusters)' }, dtick: 1, gridcolor: GRID, zeroline: false },
    yaxis: { title: { text: 'inertia' }, gridcolor: GRID, zeroline: false, rangemode: 'tozero' },
    shapes: at >= 0 ? [{
      type: 'line', xref: 'x', yref: 'paper', x0: k, x1: k, y0: 0, y1: 1,
      line: { color: '#2f6fde', width: 1, dash: 'dot' },
    }] : [],
    annotations,
  });
  return { data, layout };
}
