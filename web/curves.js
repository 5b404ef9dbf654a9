// curves.js — training curves from card.training.curve: loss (left) and
// accuracy (right) per epoch, on the training images and on the held-out
// validation images. Curves that part ways (training keeps improving,
// validation does not) are the picture of over-fitting.

import { stillLayout, GRID } from './palette.js';

const TRAIN = '#4e79a7';
const VAL = '#f28e2b';

/** Options: bestEpoch — the epoch whose weights the model keeps, marked
 *  with a dotted line on both panels and named at the top of the loss panel;
 *  stacked — loss above accuracy (narrow screens) instead of side by side. */
export function curvesFigure(curve, { bestEpoch = null, stacked = false } = {}) {
  const ep = curve.map((c) => c.epoch);
  const col = (key) => curve.map((c) => (typeof c[key] === 'number' ? c[key] : null));
  const line = (name, key, color, axis, dash) => ({
    type: 'scatter', mode: 'lines+markers', name, x: ep, y: col(key),
    xaxis: axis ? `x${axis}` : 'x', yaxis: axis ? `y${axis}` : 'y',
    line: { color, width: 2, dash }, marker: { size: 4, color },
    legendgroup: name, showlegend: !axis,
  });
  // The legend lists each series once; the accuracy panel reuses its colours.
  const data = [
    line('training', 'train_loss', TRAIN, '', 'solid'),
    line('validation', 'val_loss', VAL, '', 'solid'),
    line('training', 'train_acc', TRAIN, '2', 'solid'),
    line('validation', 'val_acc', VAL, '2', 'solid'),
  ];
  const shapes = bestEpoch === null ? [] : ['x', 'x2'].map((x) => ({
    type: 'line', xref: x, yref: x === 'x' ? 'y domain' : 'y2 domain', x0: bestEpoch, x1: bestEpoch,
    y0: 0, y1: 1, line: { color: '#8a94a3', width: 1, dash: 'dot' },
  }));
  // The name sits inside the loss panel, at its top (where a falling loss
  // leaves room), on the side of the line that has more epochs.
  const mid = ep.length ? (ep[0] + ep[ep.length - 1]) / 2 : 0;
  const right = bestEpoch !== null && bestEpoch > mid;
  const annotations = bestEpoch === null ? [] : [{
    x: bestEpoch, xref: 'x', y: 1, yref: 'y domain', yanchor: 'top', xanchor: right ? 'right' : 'left',
    xshift: right ? -4 : 4, showarrow: false, text: `best epoch ${bestEpoch}`,
    hovertext: 'the epoch with the best validation accuracy: the model keeps its weights',
    font: { size: 11, color: '#5b6573' }, bgcolor: 'rgba(255,255,255,0.8)',
  }];
  const layout = stillLayout({
    height: stacked ? 520 : 300,
    margin: { l: 52, r: 12, t: 28, b: 44 },
    xaxis: { domain: stacked ? [0, 1] : [0, 0.44], anchor: 'y', title: { text: 'epoch' }, gridcolor: GRID, zeroline: false },
    yaxis: { domain: stacked ? [0.6, 1] : [0, 1], anchor: 'x', title: { text: 'loss' }, gridcolor: GRID, zeroline: false,
      rangemode: 'tozero' },
    xaxis2: { domain: stacked ? [0, 1] : [0.56, 1], anchor: 'y2', title: { text: 'epoch' }, gridcolor: GRID, zeroline: false },
    yaxis2: { domain: stacked ? [0, 0.4] : [0, 1], anchor: 'x2', title: { text: 'accuracy' }, gridcolor: GRID,
      zeroline: false, range: [0, 1.02], tickformat: '.0%' },
    legend: { orientation: 'h', x: 0, y: 1.14 },
    shapes,
    annotations,
  });
  return { data, layout };
}
