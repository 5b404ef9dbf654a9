// pathsgraph.js — the graph of paths, drawn as the page's own SVG: every
// analysed image is one line running from its true class, through the
// cluster it falls in at each analysed layer, to the class the model
// answered (data: GET /api/models/{id}/paths). It is the first chart of the
// model page, so it does without Plotly (whose bundle takes about a second
// of the main thread to run) and appears as soon as its JSON has come.
//
//   - one vertical bar per dimension (the true class, each layer, the
//     predicted class), split into its categories (classes, clusters) as
//     stacked segments as tall as their number of lines, each striped by
//     the colours of the lines through it;
//   - between two neighbouring bars, one ribbon per (category on the left,
//     category on the right, colour), as wide as its lines: lines keep their
//     true class's colour, grey where they are not highlighted, ink for the
//     reader's upload, which is also drawn as one black line across the
//     whole graph (being one image among hundreds, its band is thin);
//   - in a segment the lines go by colour, then by where they come from (on
//     its left side) or go to (on its right side), so the stripes of a bar
//     meet the ribbons of their colour on both sides;
//   - a layer's clusters are stacked by the class most of their images
//     belong to, then by number, so that what a layer has sorted reads as
//     straight bands; the true and predicted classes in the classes' order;
//   - the dimension's name over each bar and its note under it (the number
//     of images; k, purity and ARI; the accuracy), placed at the bar's own
//     x, so they stay with it at any width;
//   - the categories' names beside their segments ("2 · jaguar"); where a
//     layer's names would reach the bar before it, its clusters' numbers,
//     each with a dot of its majority class's colour. A graph too wide for
//     its box scrolls sideways (pathsMinWidth) rather than squeeze.
//
// The reader hovers (or taps) a segment or a ribbon for a tooltip in words,
// and clicks (or taps) one: the page is told which lines pass there. With a
// keyboard the graph is one tab stop; the arrow keys go from segment to
// segment and Enter (or Space) clicks. A vertical swipe scrolls the page: no
// touch is captured.
//
// pathsFigure, pathsLayout, pathsMargins, pathsMinWidth, linesThrough,
// describeTarget and graphName are pure (tested under Node); drawPathsGraph
// builds the SVG, its tooltip and keyboard.

import { el } from './ui.js';
import { classColor, MUTED, UPLOAD, INK, FONT } from './palette.js';
import { counted } from './words.js';
import { clusterMajorities, UPLOAD_LABEL } from './parcats.js';

/** Geometry, in px: the graph's height, room over the bars (their names)
 *  and under them (the notes), a bar's width, the least gap between two
 *  segments of a bar, the least distance between two labels' baselines. */
export const PATHS_HEIGHT = 520;
export const PATHS_TOP = 34;
export const PATHS_BOTTOM = 62;
export const PATHS_BAR = 14;
export const PATHS_GAP = 8;
const LABEL_STEP = 12;
/** The narrowest gap between two bars' centres that keeps the notes under
 *  them ("purity 0.37" at 10 px, 58 px wide with its padding) apart. */
export const PATHS_MIN_STEP = 64;
/** About how wide a character is: of a category label (11 px), of a bar's
 *  name (12 px, semi-bold), of a note (10 px). */
const LABEL_PX = 6.5;
const TITLE_PX = 7;
const NOTE_PX = 5.6;

const round = (v) => Math.round(v * 10) / 10;
const pct = (x) => `${Math.round(100 * x)}\u00a0%`;

function fmt(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–';
}

/**
 * What the graph draws, line by line, from a paths document (GET …/paths,
 * with the reader's clusterings: parcats.js withClustering). Options:
 *   highlight: a Set of image indices to keep in colour (others grey), or null;
 *   upload: {clusters, pred} (parcats.js uploadPath), one more line, the
 *     last, or null; without a highlight every other line is then grey, so
 *     that the one ink line stands out.
 * Returns {classes, n (test images), lines (n, + 1 with an upload), upload
 * (whether there is one), colors (per line: its class index, `grey` = C, or
 * `mine` = C + 1 for the upload), truth (per line: true class index, −1 for
 * the upload), answer (per line: the predicted class index, −1 when
 * unknown), grey, mine, dimensions}. Each dimension is {label, kind,
 * layer, k, reclustered, values (per line), categoryarray (the categories
 * top to bottom: class names, cluster numbers, −1 for the upload's unknown
 * cluster), ticktext (their names: a cluster is "2 · jaguar", after the
 * class most of its images belong to), majority (that class's index per
 * category; a class's own index on the class dimensions; −1 for none),
 * counts (lines per category), note (the lines of text under the bar)}.
 */
export function pathsFigure(paths, { highlight = null, upload = null } = {}) {
  const { classes, dimensions, images } = paths;
  const C = classes.length;
  const n = images.true.length;
  const GREY = C, MINE = C + 1;
  const majorities = clusterMajorities(paths);
  const grey = (i) => (highlight ? !highlight.has(i) : upload !== null);
  const colors = images.true.map((t, i) => (grey(i) ? GREY : t));
  const truth = images.true.slice();
  const answer = images.pred.slice();
  if (upload) { colors.push(MINE); truth.push(-1); answer.push(upload.pred); }
  const correct = images.true.filter((t, i) => t === images.pred[i]).length;
  const [howMany, ...noun] = counted(n, 'image').split(' ');

  let layerJ = 0;
  const dims = dimensions.map((d) => {
    const base = { label: d.label, kind: d.kind };
    let values, categoryarray, ticktext, majority, note;
    if (d.kind === 'true') {
      values = images.true.map((t) => classes[t]);
      categoryarray = classes.slice();
      if (upload) { values.push(UPLOAD_LABEL); categoryarray.push(UPLOAD_LABEL); }
      ticktext = categoryarray.map(String);
      majority = categoryarray.map((c) => classes.indexOf(c));
      note = [howMany, noun.join(' ')];
    } else if (d.kind === 'pred') {
      values = images.pred.map((p) => classes[p]);
      categoryarray = classes.slice();
      if (upload) {
        values.push(upload.pred >= 0 ? classes[upload.pred] : '?');
        if (upload.pred < 0) categoryarray.push('?');
      }
      ticktext = categoryarray.map(String);
      majority = categoryarray.map((c) => classes.indexOf(c));
      note = ['accuracy', `${n ? Math.round((100 * correct) / n) : 0} %`];
    } else {
      const j = layerJ++;
      values = images.clusters.map((c) => c[j]);
      const maj = majorities[j];
      // By majority class, then number; a cluster with no images last.
      categoryarray = Array.from({ length: maj.length }, (_, c) => c)
        .sort((a, b) => (maj[a] < 0) - (maj[b] < 0) || maj[a] - maj[b] || a - b);
      ticktext = categoryarray.map((c) => (maj[c] >= 0 ? `${c} · ${classes[maj[c]]}` : `${c}`));
      majority = categoryarray.map((c) => maj[c]);
      if (upload) {
        const c = upload.clusters[j];
        const known = Number.isInteger(c) && c >= 0;
        values.push(known ? c : -1);
        if (!known) { categoryarray.push(-1); ticktext.push('?'); majority.push(-1); }
      }
      note = [`k ${d.k ?? '–'}`, `purity ${fmt(d.purity)}`, `ARI ${fmt(d.ari)}`];
      Object.assign(base, { layer: d.layer, k: d.k, reclustered: !!d.reclustered });
    }
    const at = new Map(categoryarray.map((v, c) => [v, c]));
    const counts = categoryarray.map(() => 0);
    for (const v of values) if (at.has(v)) counts[at.get(v)] += 1;
    return { ...base, values, categoryarray, ticktext, majority, counts, note };
  });
  return {
    classes: classes.slice(), n, lines: colors.length, upload: !!upload, colors, truth, answer, grey: GREY, mine: MINE,
    dimensions: dims,
  };
}

/** The colour of colour index `c` of a figure. */
export function colorOf(fig, c) {
  if (c === fig.grey) return MUTED;
  if (c === fig.mine) return UPLOAD;
  return classColor(c);
}

/** Room (px) left of the first bar and right of the last one: for their
 *  category labels (beside the bar, 5 px off) and, centred on the bar, for
 *  the bar's name and note. */
export function pathsMargins(fig) {
  const dims = fig.dimensions;
  const shown = (d) => d.ticktext.filter((_, c) => d.counts[c] > 0);
  const longest = (list) => Math.max(0, ...list.map((t) => String(t).length));
  const centred = (d) => Math.max(TITLE_PX * String(d.label).length, NOTE_PX * longest(d.note)) / 2 - PATHS_BAR / 2;
  const side = (d) => Math.ceil(Math.max(LABEL_PX * longest(shown(d)) + 8, centred(d) + 4, 12));
  return { l: side(dims[0]), r: side(dims[dims.length - 1]) };
}

/** The width (px) below which the graph should scroll sideways rather than
 *  squeeze: its margins, the bars and, between bars, PATHS_MIN_STEP or more
 *  when two neighbouring names (centred over their bars, 12 px semi-bold,
 *  about 7 px a character) need more room, as the long names of an imported
 *  model's layers do ("blocks.0/Relu_1"). */
export function pathsMinWidth(fig) {
  const dims = fig.dimensions;
  const { l, r } = pathsMargins(fig);
  let step = PATHS_MIN_STEP;
  for (let i = 1; i < dims.length; i++) {
    const chars = (String(dims[i - 1].label).length + String(dims[i].label).length) / 2;
    step = Math.max(step, Math.ceil(7 * chars + 10));
  }
  return Math.ceil(l + r + PATHS_BAR + step * Math.max(0, dims.length - 1));
}

/** Centres `ys` (ascending) at least `gap` apart, pushed down then back up
 *  so that the last is no lower than `hi`. */
function spread(ys, gap, hi) {
  const out = ys.slice();
  for (let i = 1; i < out.length; i++) out[i] = Math.max(out[i], out[i - 1] + gap);
  for (let i = out.length - 1; i >= 0; i--) {
    const cap = i === out.length - 1 ? hi : out[i + 1] - gap;
    if (out[i] > cap) out[i] = cap;
  }
  return out;
}

/** The SVG path of a ribbon from [a0, a1] at x = xa to [b0, b1] at x = xb:
 *  two cubic curves, flat at both ends. */
function ribbonPath(xa, a0, a1, xb, b0, b1) {
  const xm = round((xa + xb) / 2);
  return `M${round(xa)} ${round(a0)}C${xm} ${round(a0)} ${xm} ${round(b0)} ${round(xb)} ${round(b0)}` +
    `L${round(xb)} ${round(b1)}C${xm} ${round(b1)} ${xm} ${round(a1)} ${round(xa)} ${round(a1)}Z`;
}

/**
 * Where everything goes for a graph `width` px wide (pathsFigure's `fig`):
 * {width, height, unit (px a line), axes, ribbons, upload}. Each axis is
 * {dim, x (its bar's left edge), cx (its centre), title: {x, y, text},
 * note: {x, y, lines}, side ('left' or 'right': where its labels are),
 * segments}; each segment {value, text, count, y0, y1, upload (whether the
 * upload's line passes), bands: [{color, count, y0, y1}], label: {x, y,
 * anchor, text, dot: null or {x, y, color (a class index)}}}: a layer's
 * labels too long for the gap left of its bar are its clusters' numbers,
 * each with a dot of its majority class's colour. Each ribbon is {gap (the left bar's dimension), from, to
 * (category values), color, count, a0, a1, b0, b1 (its ends' tops and
 * bottoms), d (SVG path)}, drawn grey ones first; `upload` is the SVG path
 * of the upload's black line, or null.
 */
export function pathsLayout(fig, width, height = PATHS_HEIGHT) {
  const dims = fig.dimensions;
  const D = dims.length;
  const N = fig.lines;
  const { l, r } = pathsMargins(fig);
  const step = D > 1 ? (width - l - r - PATHS_BAR) / (D - 1) : 0;
  const plotH = height - PATHS_TOP - PATHS_BOTTOM;
  const bottom = PATHS_TOP + plotH;

  // Categories drawn (those with lines), and each line's position among them.
  const cats = dims.map((d) => d.categoryarray.map((value, c) => ({ value, text: d.ticktext[c], count: d.counts[c] }))
    .filter((c) => c.count > 0));
  const where = dims.map((d, i) => {
    const at = new Map(cats[i].map((c, j) => [c.value, j]));
    return d.values.map((v) => at.get(v));
  });
  const maxCats = Math.max(1, ...cats.map((c) => c.length));
  const unit = N ? Math.max(0, plotH - PATHS_GAP * (maxCats - 1)) / N : 0;
  const colorList = [...new Set(fig.colors)].sort((a, b) => a - b);

  const axes = dims.map((d, i) => {
    const x = l + i * step;
    const cs = cats[i];
    const used = unit * N;
    // Every bar spans the same height: fewer segments, wider gaps.
    const gap = cs.length > 1 ? (plotH - used) / (cs.length - 1) : 0;
    let y = PATHS_TOP + (cs.length > 1 ? 0 : (plotH - used) / 2);
    const segments = cs.map((c) => {
      const s = { value: c.value, text: c.text, count: c.count, y0: y, y1: y + c.count * unit, upload: false, bands: [] };
      y = s.y1 + gap;
      return s;
    });
    // Stripes: the segment's lines by colour.
    const byColor = segments.map(() => new Map());
    where[i].forEach((j, line) => {
      const m = byColor[j];
      m.set(fig.colors[line], (m.get(fig.colors[line]) || 0) + 1);
    });
    segments.forEach((s, j) => {
      let yb = s.y0;
      for (const color of colorList) {
        const count = byColor[j].get(color);
        if (!count) continue;
        s.bands.push({ color, count, y0: yb, y1: yb + count * unit });
        yb += count * unit;
      }
    });
    if (fig.upload) segments[where[i][N - 1]].upload = true;
    const side = i === D - 1 && D > 1 ? 'right' : 'left';
    const ys = spread(segments.map((s) => (s.y0 + s.y1) / 2 + 4), LABEL_STEP, bottom + 4);
    // A layer's labels sit in the gap left of its bar: where "2 · jaguar"
    // would reach the bar before, the cluster's number and a dot of its
    // majority class's colour say it (the tooltip has the words).
    const compact = i > 0 && i < D - 1 &&
      LABEL_PX * Math.max(0, ...segments.map((seg) => seg.text.length)) + 10 > step - PATHS_BAR;
    segments.forEach((seg, j) => {
      const c = d.categoryarray.indexOf(seg.value);
      if (side === 'right') seg.label = { x: x + PATHS_BAR + 5, y: ys[j], anchor: 'start', text: seg.text, dot: null };
      else if (!compact) seg.label = { x: x - 5, y: ys[j], anchor: 'end', text: seg.text, dot: null };
      else {
        const m = d.majority[c];
        seg.label = { x: x - (m >= 0 ? 13 : 5), y: ys[j], anchor: 'end', text: seg.value === -1 ? '?' : String(seg.value),
          dot: m >= 0 ? { x: x - 7, y: ys[j] - 3.5, color: m } : null };
      }
    });
    const cx = x + PATHS_BAR / 2;
    return {
      dim: i, x, cx, side, segments,
      title: { x: cx, y: PATHS_TOP - 12, text: String(d.label) },
      note: { x: cx, y: bottom + 18, lines: d.note },
    };
  });

  // Ribbons between bars g and g + 1: lines grouped by (left category,
  // right category, colour), stacked in each segment by colour and then by
  // the category at the other end.
  const ribbons = [];
  for (let g = 0; g + 1 < D; g++) {
    const groups = new Map();
    for (let line = 0; line < N; line++) {
      const a = where[g][line], b = where[g + 1][line], color = fig.colors[line];
      const key = `${a}|${b}|${color}`;
      const got = groups.get(key);
      if (got) got.count += 1;
      else groups.set(key, { a, b, color, count: 1 });
    }
    const list = [...groups.values()];
    const left = axes[g].segments.map((s) => s.y0), right = axes[g + 1].segments.map((s) => s.y0);
    for (const rb of [...list].sort((p, q) => p.a - q.a || p.color - q.color || p.b - q.b)) {
      rb.a0 = left[rb.a];
      left[rb.a] += rb.count * unit;
      rb.a1 = left[rb.a];
    }
    for (const rb of [...list].sort((p, q) => p.b - q.b || p.color - q.color || p.a - q.a)) {
      rb.b0 = right[rb.b];
      right[rb.b] += rb.count * unit;
      rb.b1 = right[rb.b];
    }
    const xa = axes[g].x + PATHS_BAR, xb = axes[g + 1].x;
    for (const rb of list) {
      ribbons.push({
        gap: g, from: cats[g][rb.a].value, to: cats[g + 1][rb.b].value, color: rb.color, count: rb.count,
        a0: rb.a0, a1: rb.a1, b0: rb.b0, b1: rb.b1, d: ribbonPath(xa, rb.a0, rb.a1, xb, rb.b0, rb.b1),
      });
    }
  }
  const rank = (c) => (c === fig.grey ? 0 : c === fig.mine ? 2 : 1);
  ribbons.sort((p, q) => rank(p.color) - rank(q.color));

  // The upload's line: through the middle of its stripe (the segment's last,
  // its colour being the highest) on every bar.
  let upload = null;
  if (fig.upload && N > 0) {
    const pts = axes.map((ax) => {
      const s = ax.segments[where[ax.dim][N - 1]];
      const band = s.bands[s.bands.length - 1];
      return { x: ax.x, y: (band.y0 + band.y1) / 2 };
    });
    upload = `M${round(pts[0].x)} ${round(pts[0].y)}h${PATHS_BAR}`;
    for (let g = 1; g < pts.length; g++) {
      const xa = pts[g - 1].x + PATHS_BAR, xb = pts[g].x, xm = round((xa + xb) / 2);
      upload += `C${xm} ${round(pts[g - 1].y)} ${xm} ${round(pts[g].y)} ${round(xb)} ${round(pts[g].y)}h${PATHS_BAR}`;
    }
  }
  return { width, height, unit, axes, ribbons, upload };
}

/** The lines (indices into the figure's lines) whose value at each
 *  dimension of `constraints` ({dimension index: category value}) is that
 *  value; with `color`, only those of that colour index. */
export function linesThrough(fig, constraints, color = null) {
  const pairs = Object.entries(constraints).map(([d, v]) => [fig.dimensions[Number(d)].values, v]);
  const out = new Set();
  for (let i = 0; i < fig.lines; i++) {
    if (color !== null && fig.colors[i] !== color) continue;
    if (pairs.every(([values, v]) => values[i] === v)) out.add(i);
  }
  return out;
}

/** A category of dimension `d` in words: "conv3 cluster 2 · jaguar",
 *  "true class jaguar", "your image". */
function categoryName(d, value) {
  const c = d.categoryarray.indexOf(value);
  const text = c >= 0 ? d.ticktext[c] : String(value);
  if (value === UPLOAD_LABEL && d.kind === 'true') return UPLOAD_LABEL;
  return d.kind === 'layer' ? `${d.label} cluster ${text}` : `${d.label} ${text}`;
}

/**
 * The tooltip of a segment ({dim, value}) or of a ribbon ({gap, from, to,
 * color}) of figure `fig`, in words: {title, lines}. Counts are test
 * images ("72 images · 36 % of all 200"; a ribbon of a class, "40 images ·
 * 36 % of jaguar"), the upload said apart.
 */
export function describeTarget(fig, target) {
  const { classes, n } = fig;
  const of = (m, total) => (total ? pct(m / total) : '–');
  const makeup = (lines) => {
    const by = new Map();
    for (const i of lines) if (i < n) by.set(fig.truth[i], (by.get(fig.truth[i]) || 0) + 1);
    return [...by.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 3)
      .map(([c, m]) => `${classes[c]} ${m}`).join(' · ');
  };
  if ('dim' in target) {
    const d = fig.dimensions[target.dim];
    const all = linesThrough(fig, { [target.dim]: target.value });
    const mine = fig.upload && all.has(fig.lines - 1);
    const m = all.size - (mine ? 1 : 0);
    if (m === 0 && mine) {
      return { title: categoryName(d, target.value),
        lines: [target.value === -1 ? 'your image: its cluster at this k is not known' : 'your image, alone here'] };
    }
    const lines = [`${counted(m, 'image')} · ${of(m, n)} of all ${n}`];
    if (d.kind === 'layer') lines.push(makeup(all));
    else {
      const right = [...all].filter((i) => i < n && fig.truth[i] === fig.answer[i]).length;
      lines.push(d.kind === 'true' ? `answered right: ${right} (${of(right, m)})` : `right: ${right} of them (${of(right, m)})`);
    }
    if (mine) lines.push('and your image');
    return { title: categoryName(d, target.value), lines };
  }
  const a = fig.dimensions[target.gap], b = fig.dimensions[target.gap + 1];
  const route = `${categoryName(a, target.from)} → ${categoryName(b, target.to)}`;
  if (target.color === fig.mine) return { title: UPLOAD_LABEL, lines: [route] };
  const lines = linesThrough(fig, { [target.gap]: target.from, [target.gap + 1]: target.to }, target.color);
  const m = lines.size;
  if (target.color < classes.length) {
    const total = fig.truth.filter((t, i) => i < n && t === target.color).length;
    return { title: `${counted(m, 'image')} · ${of(m, total)} of ${classes[target.color]}`, lines: [route] };
  }
  return { title: `${counted(m, 'image')} · ${of(m, n)} of all ${n}`, lines: [route, makeup(lines)] };
}

/** The graph's accessible name: what it shows, and how to move in it. */
export function graphName(fig) {
  const layers = fig.dimensions.filter((d) => d.kind === 'layer').length;
  return `Graph of the paths of ${counted(fig.n, 'image')}${fig.upload ? ' and of your image' : ''}: from the true ` +
    `class, through the clusters of ${counted(layers, 'layer')}, to the predicted class. With a keyboard, the arrow ` +
    'keys go from segment to segment and Enter picks one.';
}

// --- drawing ------------------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined && v !== false) e.setAttribute(k, String(v));
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// Hover, focus and the labels' white halo, for this graph only.
const STYLE = `
svg.pathsgraph .pg-seg { cursor: pointer; outline: none; }
svg.pathsgraph .pg-seg:hover .pg-outline { stroke-width: 2; }
svg.pathsgraph .pg-seg:focus-visible .pg-outline { stroke: #2f6fde; stroke-width: 3; }
svg.pathsgraph .pg-ribbon { cursor: pointer; fill-opacity: 0.55; }
svg.pathsgraph .pg-ribbon.is-grey { fill-opacity: 0.8; }
svg.pathsgraph .pg-ribbon:hover { fill-opacity: 0.95; }
svg.pathsgraph .pg-label { paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; pointer-events: none; }
svg.pathsgraph .pg-upload { pointer-events: none; }
svg.pathsgraph text { pointer-events: none; }
`;

// node -> {fig, click, label, height, svg, tip, layout, width, focus: {dim, value} of the tab stop,
// pointer: the last one's type, drawing: while a drawing replaces the SVG's content}
const graphs = new WeakMap();

/** The figure the graph in `node` draws (pathsFigure's), or null. */
export function graphFigure(node) {
  return graphs.get(node)?.fig ?? null;
}

/**
 * Draws figure `fig` (pathsFigure) into `node`, as wide as the node (it
 * follows the node's width), `height` px tall; draws it again on later
 * calls. `click({constraints, lines})` is called when the reader clicks,
 * taps or picks with the keyboard a segment ({dimension index: value}) or a
 * ribbon (two of them); `lines` is the Set of the lines that pass there.
 * `label` is the SVG's accessible name (default graphName(fig)). The node
 * gets a `pathsdrawn` event after each drawing.
 */
export function drawPathsGraph(node, fig, { click = null, label = null, height = PATHS_HEIGHT } = {}) {
  let g = graphs.get(node);
  if (!g) {
    g = setUp(node);
    graphs.set(node, g);
  }
  g.fig = fig;
  g.click = click;
  g.label = label || graphName(fig);
  g.height = height;
  if (g.svg.parentNode !== node) node.replaceChildren(g.svg, g.tip);
  render(node, g);
}

function setUp(node) {
  // tabindex −1: Chromium would make the SVG itself a tab stop (a scroller to it).
  const svg = s('svg', { class: 'pathsgraph', role: 'figure', tabindex: '-1',
    style: `display:block;outline:none;font-family:${FONT.family}` });
  const tip = el('div', { class: 'scatter-tip pg-tip', hidden: true, 'aria-hidden': 'true' });
  const g = {
    fig: null, click: null, label: '', height: PATHS_HEIGHT, svg, tip, layout: null, width: 0, focus: null,
    pointer: 'mouse', drawing: false,
  };
  node.style.position = 'relative';
  node.replaceChildren(svg, tip);

  const targetOf = (e) => e.target.closest && e.target.closest('.pg-seg, .pg-ribbon');
  svg.addEventListener('pointerdown', (e) => { g.pointer = e.pointerType || 'mouse'; });
  svg.addEventListener('pointermove', (e) => {
    if (e.pointerType === 'touch') return;
    const t = targetOf(e);
    if (t) showTip(node, g, t, e.clientX, e.clientY);
    else tip.hidden = true;
  });
  svg.addEventListener('pointerleave', () => { tip.hidden = true; });
  // A tap elsewhere on the page puts a tapped segment's tooltip away.
  document.addEventListener('pointerdown', (e) => { if (!svg.contains(e.target)) tip.hidden = true; });
  svg.addEventListener('click', (e) => {
    const t = targetOf(e);
    if (!t) { tip.hidden = true; return; }
    if (g.pointer === 'touch') showTip(node, g, t, e.clientX, e.clientY);
    pick(g, t);
  });
  svg.addEventListener('focusin', (e) => {
    const t = e.target.closest('.pg-seg');
    if (!t) return;
    const [i, j] = t.dataset.key.split(':').map(Number);
    g.focus = { dim: i, value: g.layout.axes[i].segments[j].value };
    roving(g, t.dataset.key);
    // The keyboard's focus shows the tooltip; a click's does not keep it.
    if (!t.matches(':focus-visible')) return;
    const r = t.querySelector('.pg-outline').getBoundingClientRect();
    showTip(node, g, t, r.right + 4, r.top + r.height / 2);
  });
  svg.addEventListener('focusout', (e) => {
    // Not when a new drawing replaces the focused segment (it takes the focus back).
    if (!g.drawing && !svg.contains(e.relatedTarget)) tip.hidden = true;
  });
  svg.addEventListener('keydown', (e) => {
    const t = e.target.closest('.pg-seg');
    if (!t) return;
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      pick(g, t);
      return;
    }
    const [i, j] = t.dataset.key.split(':').map(Number);
    const axes = g.layout.axes;
    const mid = (seg) => (seg.y0 + seg.y1) / 2;
    const nearest = (ax, y) => ax.segments.reduce((best, seg, k) =>
      (Math.abs(mid(seg) - y) < Math.abs(mid(ax.segments[best]) - y) ? k : best), 0);
    let to = null;
    if (e.key === 'ArrowUp') to = [i, Math.max(0, j - 1)];
    else if (e.key === 'ArrowDown') to = [i, Math.min(axes[i].segments.length - 1, j + 1)];
    else if (e.key === 'ArrowLeft' && i > 0) to = [i - 1, nearest(axes[i - 1], mid(axes[i].segments[j]))];
    else if (e.key === 'ArrowRight' && i < axes.length - 1) to = [i + 1, nearest(axes[i + 1], mid(axes[i].segments[j]))];
    else if (e.key === 'Home') to = [0, 0];
    else if (e.key === 'End') to = [axes.length - 1, 0];
    if (!to) return;
    e.preventDefault();
    const next = svg.querySelector(`.pg-seg[data-key="${to[0]}:${to[1]}"]`);
    if (next) next.focus({ preventScroll: false });
  });
  if (typeof ResizeObserver !== 'undefined') {
    let pending = false;
    new ResizeObserver(() => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        if (g.fig && node.isConnected && Math.abs(node.clientWidth - g.width) >= 1) render(node, g);
      });
    }).observe(node);
  }
  return g;
}

/** One tab stop in the graph: segment `key` ("dimension:segment"). */
function roving(g, key) {
  for (const seg of g.svg.querySelectorAll('.pg-seg')) seg.setAttribute('tabindex', seg.dataset.key === key ? '0' : '-1');
}

/** What segment or ribbon element `t` stands for. */
function targetFor(g, t) {
  if (t.classList.contains('pg-seg')) {
    const [i, j] = t.dataset.key.split(':').map(Number);
    return { dim: i, value: g.layout.axes[i].segments[j].value };
  }
  const rb = g.layout.ribbons[Number(t.dataset.index)];
  return { gap: rb.gap, from: rb.from, to: rb.to, color: rb.color };
}

function pick(g, t) {
  if (!g.click) return;
  const target = targetFor(g, t);
  const constraints = 'dim' in target ? { [target.dim]: target.value } : { [target.gap]: target.from, [target.gap + 1]: target.to };
  g.click({ constraints, lines: linesThrough(g.fig, constraints) });
}

function showTip(node, g, t, clientX, clientY) {
  const { title, lines } = describeTarget(g.fig, targetFor(g, t));
  const { tip } = g;
  tip.replaceChildren(el('div', {}, el('strong', {}, title), lines.filter(Boolean).map((l) => el('div', {}, l))));
  tip.hidden = false;
  const box = node.getBoundingClientRect();
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = clientX - box.left + 14, y = clientY - box.top + 14;
  if (x + w > node.clientWidth - 2) x = Math.max(2, clientX - box.left - w - 14);
  if (y + h > node.clientHeight - 2) y = Math.max(2, clientY - box.top - h - 14);
  tip.style.left = `${Math.round(x)}px`;
  tip.style.top = `${Math.round(y)}px`;
}

function render(node, g) {
  const { fig, svg } = g;
  const width = Math.max(1, node.clientWidth || parseFloat(node.style.minWidth) || 600);
  const L = pathsLayout(fig, width, g.height);
  g.layout = L;
  g.width = width;
  const hadFocus = svg.contains(document.activeElement);

  const ribbons = s('g', { class: 'pg-ribbons' }, L.ribbons.map((rb, k) => s('path', {
    class: `pg-ribbon${rb.color === fig.grey ? ' is-grey' : ''}`, d: rb.d, fill: colorOf(fig, rb.color),
    'data-index': k, 'data-gap': rb.gap, 'data-from': rb.from, 'data-to': rb.to, 'data-color': rb.color, 'data-count': rb.count,
  })));
  const axes = L.axes.map((ax) => {
    const d = fig.dimensions[ax.dim];
    return s('g', { class: 'pg-axis', 'data-dim': ax.dim, 'data-kind': d.kind, 'data-label': d.label },
      ax.segments.map((seg, j) => {
        const { title, lines } = describeTarget(fig, { dim: ax.dim, value: seg.value });
        const h = Math.max(1, seg.y1 - seg.y0);
        return s('g', {
          class: 'pg-seg', role: 'button', tabindex: '-1', 'data-key': `${ax.dim}:${j}`, 'data-dim': ax.dim,
          'data-value': seg.value, 'data-count': seg.count, 'data-upload': seg.upload ? '1' : null,
          'aria-label': `${title}: ${lines.filter(Boolean).join('; ')}`,
        },
        seg.bands.map((b) => s('rect', { class: 'pg-band', x: round(ax.x), y: round(b.y0), width: PATHS_BAR,
          height: round(Math.max(0.5, b.y1 - b.y0)), fill: colorOf(fig, b.color), 'data-color': b.color, 'data-count': b.count })),
        // A little taller than a one-line segment, so that it can be hit.
        s('rect', { class: 'pg-hit', x: round(ax.x - 3), y: round((seg.y0 + seg.y1) / 2 - Math.max(h, 6) / 2),
          width: PATHS_BAR + 6, height: round(Math.max(h, 6)), fill: 'transparent' }),
        s('rect', { class: 'pg-outline', x: round(ax.x), y: round(seg.y0), width: PATHS_BAR, height: round(h),
          fill: 'none', stroke: INK, 'stroke-opacity': 0.75, 'stroke-width': 1, rx: 1.5 }));
      }));
  });
  const labels = s('g', { class: 'pg-labels', 'font-size': 11, fill: INK, 'aria-hidden': 'true' },
    L.axes.flatMap((ax) => ax.segments.map((seg) => {
      const { label } = seg;
      const text = s('text', { class: 'pg-label', x: round(label.x), y: round(label.y), 'text-anchor': label.anchor,
        'data-dim': ax.dim }, label.text);
      if (!label.dot) return text;
      return [s('circle', { class: 'pg-dot', cx: round(label.dot.x), cy: round(label.dot.y), r: 3.5,
        fill: classColor(label.dot.color), stroke: '#fff', 'stroke-width': 1.5 }), text];
    })));
  const titles = s('g', { class: 'pg-titles', 'font-size': 12, 'font-weight': 600, fill: INK, 'text-anchor': 'middle', 'aria-hidden': 'true' },
    L.axes.map((ax) => s('text', { class: 'pg-title', x: round(ax.title.x), y: ax.title.y, 'data-dim': ax.dim }, ax.title.text)));
  const notes = s('g', { class: 'pg-notes', 'font-size': 10, fill: '#5f6b7a', 'text-anchor': 'middle', 'aria-hidden': 'true' },
    L.axes.map((ax) => s('text', { class: 'pg-note', x: round(ax.note.x), y: ax.note.y, 'data-dim': ax.dim },
      ax.note.lines.map((line, k) => s('tspan', { x: round(ax.note.x), dy: k ? 12 : 0 }, line)))));
  const upload = L.upload ? s('path', { class: 'pg-upload', d: L.upload, fill: 'none', stroke: UPLOAD,
    'stroke-width': Math.max(2, Math.min(4, L.unit)), 'stroke-linejoin': 'round' }) : null;

  svg.setAttribute('width', String(L.width));
  svg.setAttribute('height', String(L.height));
  svg.setAttribute('viewBox', `0 0 ${L.width} ${L.height}`);
  svg.setAttribute('aria-label', g.label);
  g.drawing = true;
  svg.replaceChildren(s('style', {}, STYLE), ribbons, s('g', { class: 'pg-axes' }, axes), upload, labels, titles, notes);

  // The tab stop stays on its segment (by value) through a new drawing.
  const ax = g.focus && L.axes[g.focus.dim];
  const j = ax ? ax.segments.findIndex((seg) => seg.value === g.focus.value) : -1;
  const key = j >= 0 ? `${g.focus.dim}:${j}` : '0:0';
  roving(g, key);
  if (hadFocus) svg.querySelector(`.pg-seg[data-key="${key}"]`)?.focus({ preventScroll: true });
  g.drawing = false;
  node.dispatchEvent(new CustomEvent('pathsdrawn'));
}
