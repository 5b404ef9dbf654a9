// confusion.js — the confusion matrix as a heat-map: row = true class,
// column = the class the model answered, cell = number of test images
// (card.test.confusion of GET /api/models/{id}, or analysis.confusion for a
// model without a training card: confusionSource). The diagonal holds the
// right answers; everything off it is a mistake, and which cell is dark
// tells which classes the model mixes up. A click on a cell names it
// (confusionCell), and the page shows that cell's images.

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
    hovertemplate: 'true %{y} → predicted %{x}<br>%{customdata}<br><i>click to see them</i><extra></extra>',
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

/** The cell a click on confusionFigure's heat-map picked, from Plotly's
 *  click point (x: the answered class, y: the true class, z: the count):
 *  {t, p (indices into `classes`), count}, or null. */
export function confusionCell(classes, point) {
  if (!point) return null;
  const t = classes.indexOf(point.y), p = classes.indexOf(point.x);
  if (t < 0 || p < 0) return null;
  return { t, p, count: typeof point.z === 'number' ? point.z : null };
}

/**
 * The confusion matrix a model detail (GET /api/models/{id}) offers, or null:
 * its training card's (card.test.confusion, over the test images strata
 * trained it with), else its analysis's (analysis.confusion, over the split
 * the server analysed: the only one an imported model has). Returns
 * {classes, confusion, source: 'card' | 'analysis', split, images}.
 */
export function confusionSource(m) {
  const test = m && m.card && m.card.test;
  const sum = (z) => z.reduce((s, row) => s + row.reduce((a, v) => a + v, 0), 0);
  if (test && Array.isArray(test.confusion)) {
    return { classes: test.classes || m.classes, confusion: test.confusion, source: 'card', split: 'test',
      images: sum(test.confusion) };
  }
  const a = m && m.analysis;
  if (a && Array.isArray(a.confusion) && a.confusion.length) {
    return { classes: m.classes, confusion: a.confusion, source: 'analysis', split: a.split || 'test',
      images: sum(a.confusion) };
  }
  return null;
}
