// probabilities.js — the class probabilities of one prediction as horizontal
// bars (the `probabilities` of POST /api/models/{id}/predict), the answer's
// bar in its class colour and the others muted, so that a confident answer
// (one long bar) and a hesitant one (several similar bars) look different.

import { stillLayout, classColor, MUTED, GRID } from './palette.js';

/** `classes` gives each class its colour (the model's class order). */
export function probabilityFigure(reply, classes) {
  const probs = reply.probabilities || [];
  const names = probs.map((p) => p.class);
  const values = probs.map((p) => p.probability);
  const data = [{
    type: 'bar',
    orientation: 'h',
    x: values,
    y: names,
    text: values.map((v) => `${(100 * v).toFixed(v < 0.1 ? 1 : 0)} %`),
    textposition: 'outside',
    cliponaxis: false,
    marker: { color: names.map((n) => (n === reply.predicted ? classColor(classes.indexOf(n)) : MUTED)) },
    hovertemplate: '%{y}: %{x:.1%}<extra></extra>',
  }];
  const layout = stillLayout({
    height: 40 + 30 * Math.max(2, names.length),
    margin: { l: 96, r: 48, t: 8, b: 28 },
    xaxis: { range: [0, 1], tickformat: '.0%', gridcolor: GRID, zeroline: false, fixedrange: true },
    yaxis: { autorange: 'reversed', fixedrange: true },
    bargap: 0.35,
    showlegend: false,
  });
  return { data, layout };
}
