// scatter.js — one layer seen from above: every analysed image's activations
// at that layer, projected on the layer's first two principal components
// (GET /api/models/{id}/layers/{layer}/scatter), coloured by the cluster
// k-means put it in or by its true class, with the cluster centres in black.
//
// Pure: server JSON in, Plotly {data, layout} out. Each point carries its
// index in `customdata`, so the page can show the image's thumbnail on hover
// (or on a tap, on a touch screen), and each centre its cluster; scatterPick
// tells the page which of the two a click picked (an image opens its panel,
// a centre its cluster's gallery). The reader's upload is a star; the image
// open in the page's image panel is ringed.

import { baseLayout, classColor, clusterColors, CENTER, UPLOAD, GRID, INK } from './palette.js';
import { counted } from './words.js';

/** The name of the ring's shapes around the opened image. */
export const MARK_NAME = 'opened image';

function pct(r) {
  return typeof r === 'number' && Number.isFinite(r) ? ` (${Math.round(r * 100)} % of variance)` : '';
}

/** Groups point indices by a key array (cluster or true class) into `n` groups. */
function groupBy(keys, n) {
  const groups = Array.from({ length: n }, () => []);
  keys.forEach((key, i) => { if (key >= 0 && key < n) groups[key].push(i); });
  return groups;
}

/** The star's tooltip: the upload's cluster, with its k when the reader
 *  clustered the layer with another k than the analysis's (`k` against
 *  `analysedK`); while it is being asked for, or why it is not known. */
function uploadText(upload) {
  const other = upload.k !== undefined && upload.analysedK !== undefined && upload.k !== upload.analysedK;
  if (Number.isInteger(upload.cluster)) return `your image · cluster ${upload.cluster}${other ? ` at k = ${upload.k}` : ''}`;
  if (other && upload.failed) {
    return `your image · its cluster at k = ${upload.k} is not known<br>(strata could not place it: ${upload.failed})`;
  }
  if (other) return `your image · finding its cluster at k = ${upload.k}…`;
  return 'your image';
}

/**
 * Options: colorBy 'cluster' (one trace per cluster, k traces) or 'class'
 * (one trace per class); upload {x, y, cluster (null when not known), k,
 * analysedK, failed (why its cluster at k is not known)} marks the reader's
 * image as a star, outlined in its cluster's colour when the points are
 * coloured by cluster; marked (an index into the points, or null) rings the
 * image opened in the page's image panel (a layout shape, named
 * MARK_NAME, that no click or hover sees); touch: for a touch screen, no
 * drag mode, so that a swipe scrolls the page (Plotly leaves a touch to the
 * browser only then) and the toolbar's buttons zoom. Always one more trace
 * for the centres, drawn black.
 */
export function scatterFigure(s, { colorBy = 'cluster', upload = null, marked = null, touch = false } = {}) {
  const { points, centers, classes } = s;
  const n = points.x.length;
  const k = Math.max(s.k || 0, centers.x.length);
  const byCluster = colorBy !== 'class';
  const keys = byCluster ? points.cluster : points.true;
  const groups = groupBy(keys, byCluster ? k : classes.length);
  // Cluster colours kept away from the class colours, which mean classes everywhere.
  const ccol = clusterColors(classes.length, k);

  const data = groups.map((idx, g) => {
    const majority = byCluster && centers.majority ? centers.majority[g] : undefined;
    const name = byCluster
      ? `cluster ${g}${majority !== undefined && majority >= 0 ? ` · mostly ${classes[majority]}` : ''}`
      : classes[g];
    return {
      type: 'scatter',
      mode: 'markers',
      name,
      x: idx.map((i) => points.x[i]),
      y: idx.map((i) => points.y[i]),
      customdata: idx,
      marker: {
        color: byCluster ? ccol[g] : classColor(g),
        size: 7,
        opacity: 0.8,
        line: { width: 0.5, color: '#ffffff' },
      },
      hoverinfo: 'none',
    };
  });

  data.push({
    type: 'scatter',
    mode: 'markers',
    name: 'cluster centres',
    x: centers.x.slice(),
    y: centers.y.slice(),
    customdata: centers.x.map((_, c) => c),
    text: centers.x.map((_, c) => {
      const m = centers.majority ? centers.majority[c] : -1;
      const size = centers.size ? centers.size[c] : undefined;
      return `centre of cluster ${c}${size !== undefined ? ` · ${counted(size, 'image')}` : ''}` +
        `${m >= 0 && classes[m] ? ` · mostly ${classes[m]}` : ''}<br>${touch ? 'tap' : 'click'} to see its images`;
    }),
    hovertemplate: '%{text}<extra></extra>',
    marker: {
      color: CENTER,
      opacity: 1,
      symbol: 'circle',
      size: centers.x.map((_, c) => {
        const size = centers.size ? centers.size[c] : 0;
        return 9 + Math.min(9, Math.sqrt(Math.max(0, size)) * (n ? 30 / Math.sqrt(n) : 0) / 3);
      }),
      line: { width: 2, color: '#ffffff' },
    },
  });

  if (upload && Number.isFinite(upload.x) && Number.isFinite(upload.y)) {
    data.push({
      type: 'scatter',
      mode: 'markers',
      name: 'your image',
      x: [upload.x],
      y: [upload.y],
      text: [uploadText(upload)],
      hovertemplate: '%{text}<extra></extra>',
      meta: { cluster: Number.isInteger(upload.cluster) ? upload.cluster : null, k: upload.k ?? null },
      marker: { color: UPLOAD, symbol: 'star', size: 22,
        line: byCluster && Number.isInteger(upload.cluster) && upload.cluster < k
          ? { width: 3, color: ccol[upload.cluster] } : { width: 1.5, color: '#ffffff' } },
    });
  }

  // The opened image: a ring of fixed size in pixels around its point.
  const shapes = [];
  if (Number.isInteger(marked) && marked >= 0 && marked < n && Number.isFinite(points.x[marked]) && Number.isFinite(points.y[marked])) {
    for (const [width, color] of [[5, '#ffffff'], [2.5, INK]]) {
      shapes.push({ type: 'circle', name: MARK_NAME, xref: 'x', yref: 'y', xsizemode: 'pixel', ysizemode: 'pixel',
        xanchor: points.x[marked], yanchor: points.y[marked], x0: -11, x1: 11, y0: -11, y1: 11,
        line: { color, width }, fillcolor: 'rgba(0,0,0,0)', layer: 'above' });
    }
  }

  const evr = s.explained_variance_ratio || [];
  const layout = baseLayout({
    height: 440,
    margin: { l: 56, r: 16, t: 16, b: 48 },
    xaxis: { title: { text: `PC 1${pct(evr[0])}` }, zeroline: false, gridcolor: GRID },
    yaxis: { title: { text: `PC 2${pct(evr[1])}` }, zeroline: false, gridcolor: GRID },
    legend: { orientation: 'h', y: -0.18, x: 0, font: { size: 11 } },
    hovermode: 'closest',
    shapes,
    dragmode: touch ? false : 'pan',
    modebar: { bgcolor: 'rgba(255,255,255,0.9)', color: '#8a94a3', activecolor: '#1f2933' },
  });
  return { data, layout };
}

/** What a click on scatterFigure's figure picked, from Plotly's click
 *  point: {kind: 'image', index (into the reply's points)}, {kind:
 *  'centre', cluster}, or null (the upload's star). */
export function scatterPick(point) {
  const t = point && point.data;
  if (!t || t.name === 'your image' || !Number.isInteger(point.customdata)) return null;
  return t.name === 'cluster centres' ? { kind: 'centre', cluster: point.customdata } : { kind: 'image', index: point.customdata };
}

/** Number of image points in a scatter figure (every trace but centres and upload). */
export function imagePointCount(fig) {
  return fig.data
    .filter((t) => t.name !== 'cluster centres' && t.name !== 'your image')
    .reduce((sum, t) => sum + t.x.length, 0);
}
