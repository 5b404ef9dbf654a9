// palette.js — the dashboard's colours, shared by every chart so that a class
// keeps one colour from the parallel graph to the scatter plots and the bars.
// Restrained, colour-blind-aware hues (after the Tableau 10 set, darkened a
// little to read on white); clusters use a second, distinct set so that a
// cluster colour is never mistaken for a class colour: clusterColors() picks
// them, for a model with C classes, away from the C class colours in use.

export const CLASS_COLORS = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1',
  '#edc948', '#9c755f', '#ff9da7', '#bab0ac',
];

export const CLUSTER_COLORS = [
  '#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e',
  '#e6ab02', '#a6761d', '#1f78b4', '#b2df8a', '#fb9a99',
];

// Candidates for cluster colours: mid-dark, saturated, readable on white.
const CLUSTER_POOL = [
  '#27336b', '#c2188b', '#a5a31a', '#7f4f24', '#0b5e5a', '#5b3fa8', '#d4a017', '#4a5560', '#29b6f6',
  '#7a1f2b', '#7cc400', '#ff6f00', '#00897b', '#8e24aa', '#1565c0', '#ad1457', '#9e9d24', '#6d4c41',
];

/** CIE L*a*b* (D65) of a "#rrggbb" colour. */
export function hexToLab(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lin = (v) => { const c = v / 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const [r, g, b] = [lin(n >> 16), lin((n >> 8) & 255), lin(n & 255)];
  const x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047;
  const y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b;
  const z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883;
  const f = (t) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  return [116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))];
}

/** Perceptual distance (CIE76 ΔE) between two "#rrggbb" colours. */
export function colorDistance(a, b) {
  const [p, q] = [hexToLab(a), hexToLab(b)];
  return Math.hypot(p[0] - q[0], p[1] - q[1], p[2] - q[2]);
}

const clusterOrders = new Map();

/**
 * k cluster colours for a model with `nClasses` classes: greedily, the pool
 * colour farthest (in ΔE) from every class colour in use and every cluster
 * colour already chosen. The order does not depend on k, so cluster c keeps
 * its colour when k changes; past the pool's size colours repeat.
 */
export function clusterColors(nClasses, k) {
  const C = Math.max(0, Math.min(nClasses, CLASS_COLORS.length));
  if (!clusterOrders.has(C)) {
    const taken = CLASS_COLORS.slice(0, C);
    const order = [];
    const left = CLUSTER_POOL.slice();
    while (left.length) {
      let best = 0, bestD = -1;
      left.forEach((c, i) => {
        const d = Math.min(Infinity, ...taken.map((t) => colorDistance(c, t)), ...order.map((t) => colorDistance(c, t)));
        if (d > bestD) { best = i; bestD = d; }
      });
      order.push(left.splice(best, 1)[0]);
    }
    clusterOrders.set(C, order);
  }
  const order = clusterOrders.get(C);
  return Array.from({ length: Math.max(0, k) }, (_, c) => order[c % order.length]);
}

/** Colour of lines and points the reader is not looking at. */
export const MUTED = '#d5dae1';
/** Colour of the reader's own (uploaded) image: near-black ink, unlike any class. */
export const UPLOAD = '#111827';
/** Cluster centres are drawn black, as the issue asks. */
export const CENTER = '#000000';
/** Text and grid colours for Plotly layouts. */
export const INK = '#1f2933';
export const GRID = '#e6e9ee';

/** Colour of class index i (cycles past the palette's end). */
export function classColor(i) {
  return CLASS_COLORS[((i % CLASS_COLORS.length) + CLASS_COLORS.length) % CLASS_COLORS.length];
}

/** Colour of cluster index c. */
export function clusterColor(c) {
  return CLUSTER_COLORS[((c % CLUSTER_COLORS.length) + CLUSTER_COLORS.length) % CLUSTER_COLORS.length];
}

/** The font every layout uses: the page's own system stack, so no web font is fetched. */
export const FONT = {
  family: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  size: 12,
  color: INK,
};

/**
 * A layout for a chart that neither pans nor zooms (baseLayout's defaults,
 * `extra`, every x/y axis of `extra` with a fixed range, no drag mode). Such
 * a chart is drawn without Plotly's toolbar, so a drag that zoomed would
 * leave no visible way back; and on a touch screen Plotly lets the browser
 * have a swipe only when there is no drag mode, so the page scrolls under
 * the reader's finger instead of the chart moving.
 */
export function stillLayout(extra = {}) {
  const layout = baseLayout({ ...extra, dragmode: false });
  for (const key of Object.keys(layout)) {
    if (/^[xy]axis\d*$/.test(key)) layout[key] = { ...layout[key], fixedrange: true };
  }
  return layout;
}

/** Layout defaults shared by the charts (transparent so the card shows through). */
export function baseLayout(extra = {}) {
  return {
    font: FONT,
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: 'rgba(0,0,0,0)',
    hoverlabel: { font: { family: FONT.family } },
    ...extra,
  };
}
