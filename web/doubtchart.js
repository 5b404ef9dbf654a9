// doubtchart.js — the model page's "when to doubt it" panel, from GET
// /api/models/{id}/doubt: a histogram of the doubt of the model's own test
// images against images of the other datasets (each as a share of its own
// group, so that 200 felines and 950 others compare), with the level
// thresholds marked, and the table of AUROC / FPR at 95 % TPR for strata's
// doubt and the two baselines. A score that separates well puts the two
// groups at opposite ends.

import { baseLayout, GRID } from './palette.js';

export const IN_COLOR = '#4e79a7';
export const OUT_COLOR = '#e15759';

export const METHOD_LABELS = {
  doubt: 'strata doubt',
  msp: 'max. softmax probability',
  energy: 'energy score',
};

/** Share of each bin in its group (counts / total); zeros when the group is empty. */
export function shares(counts) {
  const total = counts.reduce((s, v) => s + v, 0);
  return counts.map((v) => (total > 0 ? v / total : 0));
}

/** Share of a group whose doubt is at least `threshold` (bins whose left
 *  edge is at or above it, to within rounding). */
export function shareAtLeast(edges, counts, threshold) {
  const total = counts.reduce((s, v) => s + v, 0);
  if (!(total > 0)) return null;
  let above = 0;
  counts.forEach((v, i) => { if (edges[i] >= threshold - 1e-9) above += v; });
  return above / total;
}

/** The Plotly figure: two overlaid bar series over the bins of
 *  report.histogram, dotted lines at report.levels.medium and .high. */
export function doubtHistogramFigure(report) {
  const { edges, id, ood } = report.histogram;
  const centres = id.map((_, i) => (edges[i] + edges[i + 1]) / 2);
  const width = edges.length > 1 ? edges[1] - edges[0] : 0.05;
  const bar = (name, counts, color, n) => ({
    type: 'bar', name: `${name} (${n})`, x: centres, y: shares(counts), width,
    marker: { color, opacity: 0.62, line: { color, width: 1 } },
    customdata: counts.map((c, i) => [c, edges[i], edges[i + 1]]),
    hovertemplate: `${name}<br>doubt %{customdata[1]:.2f}–%{customdata[2]:.2f}: %{customdata[0]} images (%{y:.1%})<extra></extra>`,
  });
  const data = [
    bar('its test images', id, IN_COLOR, report.n_id),
    bar('other datasets', ood, OUT_COLOR, report.n_ood),
  ];
  const levels = report.levels || {};
  const marks = [['medium', levels.medium], ['high', levels.high]].filter(([, v]) => typeof v === 'number');
  const layout = baseLayout({
    height: 300,
    barmode: 'overlay',
    bargap: 0,
    margin: { l: 52, r: 12, t: 28, b: 44 },
    xaxis: { title: { text: 'doubt' }, range: [0, 1], gridcolor: GRID, zeroline: false },
    yaxis: { title: { text: 'share of the group' }, tickformat: '.0%', gridcolor: GRID, zeroline: false, rangemode: 'tozero' },
    legend: { orientation: 'h', x: 0, y: 1.14 },
    shapes: marks.map(([, v]) => ({
      type: 'line', xref: 'x', yref: 'y domain', x0: v, x1: v, y0: 0, y1: 1,
      line: { color: '#8a94a3', width: 1, dash: 'dot' },
    })),
    annotations: marks.map(([name, v]) => ({
      x: v, y: 1, xref: 'x', yref: 'y domain', text: name, showarrow: false,
      xanchor: 'right', yanchor: 'top', font: { size: 11, color: '#5b6573' },
    })),
  });
  return { data, layout };
}

/** Rows of the comparison table, in METHOD_LABELS order: {method, label,
 *  auroc, fpr95, auroc_errors, best} with best = the highest OOD AUROC. */
export function aurocRows(report) {
  const methods = Object.keys(METHOD_LABELS).filter((k) => report.auroc && k in report.auroc);
  const value = (o, k) => (o && typeof o[k] === 'number' && Number.isFinite(o[k]) ? o[k] : null);
  const rows = methods.map((k) => ({
    method: k, label: METHOD_LABELS[k], auroc: value(report.auroc, k), fpr95: value(report.fpr95, k),
    auroc_errors: value(report.auroc_errors, k), best: false,
  }));
  const top = Math.max(...rows.map((r) => (r.auroc === null ? -Infinity : r.auroc)));
  for (const r of rows) r.best = r.auroc !== null && r.auroc === top;
  return rows;
}
