// graphview.js — the model page's architecture as a small graph: the input
// image first, then every layer in order, each a box with its name, what
// computes it (an imported model's ONNX op; for strata's own models the
// layer type and activation) and the shape of its output; and the joins
// between them, from each layer's `inputs` in GET /api/models/{id} (-1 is
// the image). A layer that reads the one before it is joined to it by a
// short arrow; a layer that reads an earlier one (the skip of a residual
// block, or a branch) gets a bracket over the boxes between, from the
// earlier box to it, so a residual network's joins are seen at a glance.
//
// The boxes sit in fixed-width columns of one row that scrolls sideways
// (names too long for a column wrap inside it, so text never overlaps), which
// makes every position a function of the column alone: graphLayout is pure
// (model detail in, boxes and SVG paths out, testable under Node) and
// architecture() only builds the DOM. Keyboard: one tab stop in the row;
// the arrow keys, Home and End move from box to box, and the box in focus
// (or under the pointer) shows its own joins in the accent colour.

import { el } from './ui.js';

const SVG = 'http://www.w3.org/2000/svg';

/** Geometry, in px: column gap (room for the chain arrow), padding around
 *  the row, distance between bracket levels, and the arrow's height below
 *  a box's top edge (level with the name). */
export const GRAPH_GAP = 22;
export const GRAPH_PAD = 6;
export const GRAPH_LEVEL = 10;
export const GRAPH_ARROW_Y = 20;
const MIN_COL = 84;
const MAX_COL = 150;

/** Whether a model detail is an imported one (its layers carry `op`). */
export function isImported(m) {
  return Array.isArray(m?.layers) && m.layers.some((l) => l && l.op !== undefined);
}

/** What computes a layer, in a few words: the ONNX op of an imported model
 *  ("Relu", "Add"; its type when the op is null), else strata's type and
 *  the activation when there is one ("conv2d · relu"). */
export function layerOp(l, imported) {
  if (imported) return l.op || l.type || '';
  const act = l.activation && l.activation !== 'linear' && l.activation !== 'none' && l.activation !== l.type
    ? ` · ${l.activation}` : '';
  return `${l.type || ''}${act}`;
}

/** A family for the box's colour: conv, act(ivation), pool, norm, join,
 *  dense, shape (flatten, dropout, reshape) or other. */
export function opKind(op) {
  const o = String(op || '').toLowerCase().split(' · ')[0];
  if (/conv/.test(o)) return 'conv';
  if (/pool/.test(o)) return 'pool';
  if (/norm/.test(o)) return 'norm';
  if (/^(add|sum|concat|mul)$/.test(o)) return 'join';
  if (/^(dense|gemm|matmul|linear|softmax)$/.test(o)) return 'dense';
  if (/^(flatten|dropout|reshape|identity|squeeze|transpose)$/.test(o)) return 'shape';
  if (/^(relu|leakyrelu|prelu|sigmoid|tanh|clip|hardswish|hardsigmoid|gelu|elu|selu|silu|swish|mish|erf)$/.test(o)) return 'act';
  return 'other';
}

/** "32×32×64" from [32, 32, 64] (a vector as the server gives it: "1×1×128"). */
function shapeText(s) {
  return Array.isArray(s) ? s.join('×') : '';
}

/** The width of a node's column: enough for the longest piece of its name
 *  (a name wraps after a "/"), of its op (after a space) and its shape on
 *  one line each, at about 8.4 px a character of the bold name and 7.5 of
 *  the rest (generous: an estimate that falls short breaks a word), within
 *  [MIN_COL, MAX_COL]. Text longer than that wraps inside its box, which
 *  never overlaps the next. */
export function columnWidth(n) {
  const longest = (text, split) => Math.max(0, ...String(text).split(split).map((w) => w.length));
  const px = Math.max(8.4 * longest(n.name, /(?<=\/)/), 7.6 * longest(n.op, ' '), 7.4 * String(n.shape).length);
  return Math.round(Math.min(MAX_COL, Math.max(MIN_COL, px + 20)));
}

/** The layers each layer reads, as positions in the row (0 is the image,
 *  layer i is at i + 1): its `inputs` when the server gives them, else the
 *  layer before. Indices out of range are dropped. */
function readsOf(layers) {
  return layers.map((l, i) => {
    const list = Array.isArray(l.inputs) ? l.inputs : [i - 1];
    return [...new Set(list.filter((j) => Number.isInteger(j) && j >= -1 && j < layers.length && j !== i))]
      .map((j) => j + 1);
  });
}

/**
 * The graph of a model detail (GET /api/models/{id}): {gap, top, width,
 * levels, nodes, edges}. `nodes[p]` is the box at position p (0: the
 * image): {pos, index (layer index, -1 for the image), name, op, kind,
 * shape, reads (positions), skips (positions read other than p − 1), x
 * (its left edge), width, cx (its centre)}. `edges` are {from, to, kind:
 * 'chain' | 'skip', level (skips only, 0 the lowest), d (an SVG path)}: a
 * chain edge is an arrow in the gap between two neighbouring boxes at
 * GRAPH_ARROW_Y below their top (`top`); a skip is a bracket that rises
 * from the top of the box read, runs above the row (higher for a higher
 * level) and comes down onto the reader. Brackets whose spans overlap get
 * different levels (shorter ones lower), and several brackets leaving or
 * reaching one box leave and arrive side by side, so none share a line.
 */
export function graphLayout(m) {
  const imported = isImported(m);
  const layers = Array.isArray(m.layers) ? m.layers : [];
  const inp = m.input;
  const nodes = [{
    pos: 0, index: -1, name: 'input', op: 'image', kind: 'input',
    shape: inp ? `${inp.height}×${inp.width}×${inp.channels}` : '', reads: [], skips: [],
  }];
  const reads = readsOf(layers);
  layers.forEach((l, i) => {
    const op = layerOp(l, imported);
    nodes.push({
      pos: i + 1, index: Number.isInteger(l.index) ? l.index : i, name: String(l.name ?? i), op,
      kind: opKind(op), shape: shapeText(l.output_shape), reads: reads[i],
      skips: reads[i].filter((p) => p !== i),
    });
  });
  let x = GRAPH_PAD;
  for (const n of nodes) {
    n.width = columnWidth(n);
    n.x = x;
    n.cx = x + n.width / 2;
    x += n.width + GRAPH_GAP;
  }

  // Skips, shorter spans first, each on the lowest level free over its span.
  const skips = [];
  for (const n of nodes) for (const s of n.skips) skips.push({ from: s, to: n.pos });
  skips.sort((a, b) => (a.to - a.from) - (b.to - b.from) || a.from - b.from);
  const levels = [];
  for (const e of skips) {
    let lv = 0;
    while ((levels[lv] || []).some((o) => o.from < e.to && e.from < o.to)) lv++;
    (levels[lv] = levels[lv] || []).push(e);
    e.level = lv;
  }
  const nLevels = levels.length;
  const top = nLevels ? GRAPH_PAD + GRAPH_LEVEL * nLevels + 12 : GRAPH_PAD;

  // Where each bracket leaves its box (right of the centre, the longest
  // innermost) and reaches the reader (left of the centre, likewise).
  const spread = (list, sign, half) => {
    list.sort((a, b) => (b.to - b.from) - (a.to - a.from));
    const room = Math.max(1, Math.floor((half - 10) / 8));
    list.forEach((e, k) => { e[sign > 0 ? 'x1' : 'x2'] = sign * (6 + 8 * Math.min(k, room)); });
  };
  for (const n of nodes) {
    spread(skips.filter((e) => e.from === n.pos), 1, n.width / 2);
    spread(skips.filter((e) => e.to === n.pos), -1, n.width / 2);
  }
  const r = 5;
  const edges = [];
  for (const n of nodes) {
    if (n.reads.includes(n.pos - 1)) {
      const y = top + GRAPH_ARROW_Y;
      edges.push({ from: n.pos - 1, to: n.pos, kind: 'chain', d: `M${n.x - GRAPH_GAP + 2} ${y}H${n.x - 3}` });
    }
  }
  for (const e of skips) {
    const x1 = nodes[e.from].cx + e.x1;
    const x2 = nodes[e.to].cx + e.x2;
    const yTop = top - 12 - GRAPH_LEVEL * e.level;
    edges.push({
      from: e.from, to: e.to, kind: 'skip', level: e.level,
      d: `M${x1} ${top}V${yTop + r}Q${x1} ${yTop} ${x1 + r} ${yTop}H${x2 - r}Q${x2} ${yTop} ${x2} ${yTop + r}V${top - 3}`,
    });
  }
  const width = x - GRAPH_GAP + GRAPH_PAD;
  return { gap: GRAPH_GAP, top, width, nodes, edges, levels: nLevels };
}

/** "the image", or a layer's name, for sentences. */
function readName(nodes, p) {
  return p === 0 ? 'the image' : nodes[p].name;
}

/** A name with a line-break opportunity after each "/". */
function breakable(name) {
  return name.split(/(?<=\/)/).flatMap((part, i) => (i ? [el('wbr'), part] : [part]));
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/**
 * The architecture of model detail `m` as DOM nodes for the page's header:
 * the graph (an ordered list of boxes over an SVG of arrows and brackets, in
 * a row that scrolls sideways), a hint to scroll when the row is wider than
 * the page and, when it has joins, a line saying how to read the brackets.
 */
export function architecture(m) {
  const g = graphLayout(m);
  const { nodes, edges, top } = g;
  const n = nodes.length;
  const joins = nodes.filter((x) => x.reads.length > 1);

  const svg = svgEl('svg', { class: 'graph-edges', width: g.width, height: top + GRAPH_ARROW_Y + 8, 'aria-hidden': 'true', focusable: 'false' });
  const defs = svgEl('defs', {});
  const heads = [['graph-arrow', 'graph-head'], ['graph-arrow-skip', 'graph-head graph-head-skip'], ['graph-arrow-lit', 'graph-head graph-head-lit']];
  for (const [id, cls] of heads) {
    const marker = svgEl('marker', {
      id, viewBox: '0 0 8 8', refX: 7, refY: 4, markerWidth: 7, markerHeight: 7, markerUnits: 'userSpaceOnUse', orient: 'auto',
    });
    marker.append(svgEl('path', { d: 'M0 0L8 4L0 8z', class: cls }));
    defs.append(marker);
  }
  svg.append(defs);
  for (const e of edges) {
    const head = `url(#${e.kind === 'skip' ? 'graph-arrow-skip' : 'graph-arrow'})`;
    svg.append(svgEl('path', {
      d: e.d, class: `graph-edge graph-${e.kind}`, 'data-from': e.from, 'data-to': e.to, 'data-head': head, 'marker-end': head,
    }));
  }

  const items = nodes.map((x) => {
    const skipNames = x.skips.map((p) => readName(nodes, p));
    const said = x.pos === 0 ? 'the image the model is given'
      : `reads ${x.reads.map((p) => readName(nodes, p)).join(' and ') || 'nothing shown'}` +
        (x.reads.length > 1 ? ': a join' : '');
    return el('li', {
      class: `arch-layer graph-node graph-${x.kind}${x.pos === 0 ? ' arch-input' : ''}${x.reads.length > 1 ? ' graph-join' : ''}`,
      'data-pos': x.pos, 'data-index': x.index, 'data-reads': x.reads.join(','), tabindex: x.pos === 0 ? '0' : '-1',
    },
    el('span', { class: 'arch-name' }, breakable(x.name)),
    el('span', { class: 'arch-type' }, x.op),
    el('span', { class: 'arch-shape' }, x.shape),
    skipNames.length ? el('span', { class: 'graph-skip-note', 'aria-hidden': 'true' }, '+ ', breakable(skipNames.join(', '))) : null,
    el('span', { class: 'visually-hidden' }, `, ${said}`));
  });
  const list = el('ol', {
    class: 'graph-nodes', 'aria-label': `layers, the image first (${n - 1})`,
    style: `grid-template-columns:${nodes.map((x) => `${x.width}px`).join(' ')};column-gap:${GRAPH_GAP}px;` +
      `padding:${top}px ${GRAPH_PAD}px ${GRAPH_PAD + 4}px`,
  }, items);
  const graph = el('div', { class: 'graph', style: `width:${g.width}px` }, svg, list);
  const scroller = el('div', { class: 'graph-scroll', id: 'arch-graph', 'data-layers': n - 1, 'data-joins': joins.length }, graph);
  wire(scroller, list, svg);
  // Said only when the row is wider than the page.
  const hint = el('p', { class: 'small muted graph-hint', hidden: true }, `Scroll sideways for all ${n - 1} layers →`);
  if (typeof ResizeObserver !== 'undefined') {
    new ResizeObserver(() => { hint.hidden = scroller.scrollWidth <= scroller.clientWidth + 1; }).observe(scroller);
  }

  const legend = joins.length
    ? el('p', { class: 'small muted graph-legend' },
      el('span', { class: 'graph-key', 'aria-hidden': 'true' }),
      el('span', {}, 'A blue bracket is a join: the layer it comes down on also reads the earlier layer it rises ',
        `from (a residual network's skip). ${joins.length === 1 ? 'One layer joins' : `${joins.length} layers join`} two inputs.`))
    : null;
  return [scroller, hint, legend];
}

/** Roving focus over the boxes, and the joins of the box in focus or under
 *  the pointer drawn in the accent colour. */
function wire(scroller, list, svg) {
  const boxes = () => [...list.querySelectorAll('.graph-node')];
  const mark = (box) => {
    const p = box ? box.dataset.pos : null;
    for (const path of svg.querySelectorAll('.graph-edge')) {
      const lit = p !== null && (path.dataset.to === p || path.dataset.from === p);
      path.classList.toggle('is-lit', lit);
      path.setAttribute('marker-end', lit ? 'url(#graph-arrow-lit)' : path.dataset.head);
    }
    for (const b of boxes()) b.classList.toggle('is-lit', b === box);
  };
  const go = (box) => {
    for (const b of boxes()) b.tabIndex = b === box ? 0 : -1;
    box.focus({ preventScroll: true });
    box.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  };
  list.addEventListener('keydown', (e) => {
    const all = boxes();
    const i = all.indexOf(e.target);
    if (i < 0) return;
    const to = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: all.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    go(all[Math.max(0, Math.min(all.length - 1, to))]);
  });
  list.addEventListener('focusin', (e) => { const b = e.target.closest('.graph-node'); if (b) mark(b); });
  list.addEventListener('focusout', () => mark(null));
  list.addEventListener('pointerover', (e) => { const b = e.target.closest('.graph-node'); if (b) mark(b); });
  list.addEventListener('pointerleave', () => mark(list.contains(document.activeElement) ? document.activeElement : null));
  list.addEventListener('click', (e) => { const b = e.target.closest('.graph-node'); if (b) go(b); });
}
