// doubtchart.js — the model page's "when to doubt it" panel, from GET
// /api/models/{id}/doubt: a histogram of the doubt of the model's own test
// images against images of the other datasets (each as a share of its own
// group, so that 200 felines and 950 others compare), with the level
// thresholds marked, and the table of AUROC / FPR at 95 % TPR for strata's
// doubt and the two baselines. A score that separates well puts the two
// groups at opposite ends.

import { stillLayout, GRID } from './palette.js';
import { counted } from './words.js';

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
    text: counts.map((c) => counted(c, 'image')),
    textposition: 'none',
    hovertemplate: `${name}<br>doubt %{customdata[1]:.2f}–%{customdata[2]:.2f}: %{text} (%{y:.1%})<extra></extra>`,
  });
  const data = [
    bar('its test images', id, IN_COLOR, report.n_id),
    bar('other datasets', ood, OUT_COLOR, report.n_ood),
  ];
  const levels = report.levels || {};
  const marks = [['medium', levels.medium], ['high', levels.high]].filter(([, v]) => typeof v === 'number');
  const layout = stillLayout({
    height: 300,
    barmode: 'overlay',
    bargap: 0,
    margin: { l: 52, r: 12, t: 30, b: 44 },
    xaxis: { title: { text: 'doubt' }, range: [0, 1], gridcolor: GRID, zeroline: false },
    yaxis: { title: { text: 'share of the group' }, tickformat: '.0%', gridcolor: GRID, zeroline: false, rangemode: 'tozero' },
    // Above the plot area, growing upwards (Plotly widens the top margin when
    // it wraps onto two rows on a phone), clear of the level labels inside.
    legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom' },
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

/** Share of a group whose doubt is below `threshold` (bins whose left edge
 *  is below it, to within rounding: the complement of shareAtLeast). */
export function shareBelow(edges, counts, threshold) {
  const total = counts.reduce((s, v) => s + v, 0);
  if (!(total > 0)) return null;
  let below = 0;
  counts.forEach((v, i) => { if (edges[i] < threshold - 1e-9) below += v; });
  return below / total;
}

/**
 * How often this model's doubt is "low" (below report.levels.medium) for
 * photos of the other datasets (`ood`, classes it never learned) and for
 * its own test images (`id`), from the report's histogram; null when the
 * report has no level or histogram.
 */
export function lowDoubtShares(report) {
  const medium = report && report.levels ? report.levels.medium : undefined;
  const h = report && report.histogram;
  if (typeof medium !== 'number' || !h || !Array.isArray(h.edges)) return null;
  const ood = shareBelow(h.edges, h.ood || [], medium);
  const id = shareBelow(h.edges, h.id || [], medium);
  if (ood === null) return null;
  return { ood, id, nOod: report.n_ood ?? (h.ood || []).reduce((s, v) => s + v, 0) };
}

const percent = (x) => `${Math.round(100 * x)}\u00a0%`;

/** The sentence shown beside a low doubt: low is weak evidence, with this
 *  model's measured share of other datasets' photos rated low when known
 *  (`shares` from lowDoubtShares, or null). */
export function lowDoubtText(shares) {
  if (!shares || typeof shares.ood !== 'number') {
    return 'A low doubt is weak evidence: photos of things this model never learned can get a low doubt too.';
  }
  const own = typeof shares.id === 'number' ? `, against ${percent(shares.id)} of its own test images` : '';
  return `A low doubt is weak evidence: this model also rates low ${percent(shares.ood)} of ${shares.nOod} photos ` +
    `from the other datasets (things it never learned)${own}.`;
}

// Per column, which way is better.
const COLUMNS = { auroc: 'max', fpr95: 'min', auroc_errors: 'max' };

/** Rows of the comparison table, in METHOD_LABELS order: {method, label,
 *  auroc, fpr95, auroc_errors, best} where best.<column> says whether the
 *  row holds that column's best value (highest AUROC, lowest FPR; ties are
 *  all best; a missing value never is). */
export function aurocRows(report) {
  const methods = Object.keys(METHOD_LABELS).filter((k) => report.auroc && k in report.auroc);
  const value = (o, k) => (o && typeof o[k] === 'number' && Number.isFinite(o[k]) ? o[k] : null);
  const rows = methods.map((k) => ({
    method: k, label: METHOD_LABELS[k], auroc: value(report.auroc, k), fpr95: value(report.fpr95, k),
    auroc_errors: value(report.auroc_errors, k), best: {},
  }));
  for (const [col, way] of Object.entries(COLUMNS)) {
    const vals = rows.map((r) => r[col]).filter((v) => v !== null);
    const top = vals.length ? (way === 'max' ? Math.max(...vals) : Math.min(...vals)) : null;
    for (const r of rows) r.best[col] = r[col] !== null && r[col] === top;
  }
  return rows;
}

/** A plain sentence when a baseline spots the model's own mistakes better
 *  than strata's doubt (a higher "AUROC on its errors"), naming the best
 *  one; '' when the doubt is best there or the numbers are missing. */
export function errorsNote(rows) {
  const doubt = rows.find((r) => r.method === 'doubt');
  if (!doubt || doubt.auroc_errors === null) return '';
  const better = rows.filter((r) => r.method !== 'doubt' && r.auroc_errors !== null && r.auroc_errors > doubt.auroc_errors)
    .sort((a, b) => b.auroc_errors - a.auroc_errors)[0];
  if (!better) return '';
  return `For spotting this model's own mistakes among its test images, the ${better.label} does better than ` +
    `strata's doubt (AUROC ${better.auroc_errors.toFixed(3)} against ${doubt.auroc_errors.toFixed(3)}): the doubt ` +
    'is built to flag images unlike the ones it learned from, not to tell which of its answers are wrong.';
}
