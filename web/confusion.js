// confusion.js — the confusion matrix as a heat-map: row = true class,
// column = the class the model answered, cell = number of test images
// (card.test.confusion of GET /api/models/{id}). The diagonal holds the
// right answers; everything off it is a mistake, and which cell is dark
// tells which classes the model mixes up.

import { stillLayout } from './palette.js';
import { counted } from './words.js';

export function confusionFigure(classes, confusion) {
  const z = confusion.map((row) => row.slice());
  const max = Math.max(1, ...z.flat());
  const annotations = [];
  z.forEach((row, t) => row.forEach((v, p) => {
    annotations.push({
      x: classes[p], y: classes[t], text: String(v), showarrow: false,
      font: { size: 12, color: v > max * 0.55 ? '#ffffff' : '#1f2933' },
    });
  }));
  const data = [{
    type: 'heatmap',
    z,
    x: classes.slice(),
    y: classes.slice(),
    colorscale: [[0, '#f4f6fa'], [0.35, '#a9c1ea'], [1, '#1f4fa8']],
    zmin: 0,
    zmax: max,
    showscale: false,
    xgap: 2,
    ygap: 2,
    customdata: z.map((row) => row.map((v) => counted(v, 'image'))),
    hovertemplate: 'true %{y} → predicted %{x}<br>%{customdata}<extra></extra>',
  }];
  const layout = stillLayout({
    height: 340,
    margin: { l: 90, r: 12, t: 12, b: 72 },
    xaxis: { title: { text: 'predicted' }, side: 'bottom', tickangle: -30, showgrid: false },
    yaxis: { title: { text: 'true' }, autorange: 'reversed', showgrid: false },
    annotations,
  });
  return { data, layout };
}
