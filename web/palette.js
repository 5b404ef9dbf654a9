// palette.js — the dashboard's colours, shared by every chart so that a class
// keeps one colour from the parallel graph to the scatter plots and the bars.
// Restrained, colour-blind-aware hues (after the Tableau 10 set, darkened a
// little to read on white); clusters use a second, distinct set so that a
// cluster colour is never mistaken for a class colour.

export const CLASS_COLORS = [
  '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1',
  '#edc948', '#9c755f', '#ff9da7', '#bab0ac',
];

export const CLUSTER_COLORS = [
  '#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e',
  '#e6ab02', '#a6761d', '#1f78b4', '#b2df8a', '#fb9a99',
];

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
