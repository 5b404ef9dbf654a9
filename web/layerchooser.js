// layerchooser.js — "Choose layers", for an imported model: every value of
// its graph that can be shown as a layer (GET /api/models/{id}/graph: name,
// ONNX op, shape; checked when shown; strata's own choice marked), picked by
// the reader and sent as PUT /api/models/{id}/layers {"shown": [value
// names]}, or {"shown": null} for strata's choice. The server then loads
// the model again and analyses it anew: the page is opened again on the
// same view, less what named layers that may be gone (the layer, its k, a
// cluster), and shows the analysis's progress banner until the new graphs
// can be drawn. A refused choice shows the server's sentence and changes nothing.
//
// strata's own models show every layer (the graph answers 400
// not_imported): they get no chooser. The graph is asked for when the
// reader first opens the chooser.

import { api } from './api.js';
import { el, fill, progress, errorBox, shape } from './ui.js';
import { isImported } from './graphview.js';
import { readView, viewSearch } from './viewstate.js';
import { counted } from './words.js';

// Module state: one chooser per page, kept across redraws of the header.
let root = null;
let model = null;
let graph = null; // GET …/graph reply
let open = false;
let busy = false;

/** The value names shown now, in the graph's order. */
export function shownValues(g) {
  return g.values.filter((v) => v.shown !== null && v.shown !== undefined).map((v) => v.value);
}

/**
 * The chooser for model detail `m`, or null for strata's own models: one
 * element, the same on every call, so that redrawing the header keeps what
 * the reader has ticked.
 */
export function layerChooser(m) {
  if (!isImported(m)) return null;
  model = m;
  if (root) return root;
  const toggle = el('button', {
    type: 'button', class: 'small-button chooser-toggle', id: 'choose-layers',
    'aria-expanded': 'false', 'aria-controls': 'chooser-panel',
  }, 'Choose layers');
  const panel = el('div', { class: 'chooser-panel', id: 'chooser-panel', hidden: true });
  root = el('div', { class: 'chooser', id: 'layer-chooser' }, toggle, panel);
  toggle.addEventListener('click', () => setOpen(!open));
  return root;
}

function setOpen(want) {
  open = want;
  const toggle = root.querySelector('#choose-layers');
  const panel = root.querySelector('#chooser-panel');
  toggle.setAttribute('aria-expanded', String(open));
  panel.hidden = !open;
  if (open) load();
}

async function load() {
  const panel = root.querySelector('#chooser-panel');
  fill(panel, progress('Listing the values of the model\'s graph…'));
  try {
    graph = await api.graph(model.id);
  } catch (err) {
    fill(panel, errorBox(err, 'Could not list the model\'s layers'));
    return;
  }
  form();
}

function form() {
  const panel = root.querySelector('#chooser-panel');
  const shownNow = new Set(shownValues(graph));
  const rows = graph.values.map((v, i) => {
    const id = `chooser-v${i}`;
    return el('li', { class: 'chooser-row' },
      el('input', { type: 'checkbox', id, value: v.value, checked: shownNow.has(v.value), 'data-default': v.default ? '1' : null }),
      el('label', { for: id, title: v.value },
        el('span', { class: 'chooser-name' }, v.name),
        el('span', { class: 'chooser-meta' }, [v.op, shape(v.shape)].filter(Boolean).join(' · ')),
        v.default ? el('span', { class: 'chooser-default' }, el('span', { 'aria-hidden': 'true' }, '★ '), 'strata\'s choice') : null));
  });
  const count = el('span', { class: 'chooser-count', 'aria-live': 'polite' });
  const apply = el('button', { type: 'submit', class: 'small-button chooser-apply', id: 'chooser-apply' }, 'Show these layers');
  const strata = el('button', {
    type: 'button', class: 'small-button', id: 'chooser-strata',
    disabled: graph.chosen === null || graph.chosen === undefined,
    title: graph.chosen ? '' : 'strata\'s choice is shown now',
  }, 'strata\'s choice');
  const cancel = el('button', { type: 'button', class: 'link-button', id: 'chooser-cancel' }, 'Cancel');
  const status = el('div', { class: 'chooser-status', id: 'chooser-status', 'aria-live': 'polite' });
  const f = el('form', { class: 'chooser-form', id: 'chooser-form' },
    el('fieldset', {},
      el('legend', { class: 'sub-title' }, 'Layers to show'),
      el('p', { class: 'small muted' },
        `${counted(graph.values.length, 'value')} of the model's graph can be shown as layers, in the order it computes them. `,
        'Checked ones are shown; ', el('span', { 'aria-hidden': 'true' }, '★ '),
        `marks strata's own choice. A new choice is analysed anew, which takes a moment; the class scores are always shown last.`),
      el('ul', { class: 'chooser-list' }, rows)),
    el('div', { class: 'chooser-actions' }, apply, count, strata, cancel),
    status);
  fill(panel, f);
  const boxes = () => [...f.querySelectorAll('input[type="checkbox"]')];
  const recount = () => {
    const n = boxes().filter((b) => b.checked).length;
    count.textContent = `${counted(n, 'value')} checked`;
    apply.disabled = busy || n === 0;
  };
  f.addEventListener('change', recount);
  recount();
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    const chosen = boxes().filter((b) => b.checked).map((b) => b.value);
    if (!chosen.length) { fill(status, el('p', { class: 'error', role: 'alert' }, 'Pick at least one layer.')); return; }
    if (chosen.length === shownNow.size && chosen.every((v) => shownNow.has(v))) {
      fill(status, el('p', { class: 'small muted' }, 'These are the layers shown now.'));
      return;
    }
    send(chosen);
  });
  strata.addEventListener('click', () => send(null));
  cancel.addEventListener('click', () => { setOpen(false); root.querySelector('#choose-layers').focus(); });
}

/** PUT the choice; on success open the page again (it shows the analysis's
 *  progress), else say why and leave everything as it was. */
async function send(shown) {
  if (busy) return;
  const status = root.querySelector('#chooser-status');
  const buttons = [...root.querySelectorAll('#chooser-form button')].filter((b) => !b.disabled);
  busy = true;
  for (const b of buttons) b.disabled = true;
  fill(status, progress(shown === null ? 'Going back to strata\'s choice…' : `Sending ${counted(shown.length, 'layer')}…`));
  try {
    const m = await api.setLayers(model.id, shown);
    fill(status, progress(`Analysing ${m.title || m.id} with ${counted(m.layers.length, 'layer')}…`));
    // What the view says of layers (the layer, its k, a cluster) named the
    // layers of before; what does not name one stays.
    const was = readView(location.search);
    const view = { colour: was.colour, cls: was.cls, image: was.image, cell: was.cell };
    location.replace(`${location.pathname}${viewSearch(m.id, view)}${location.hash}`);
  } catch (err) {
    busy = false;
    fill(status, errorBox(err, err.status >= 400 && err.status < 500
      ? 'strata refused this choice; nothing changed' : 'The choice did not reach strata'));
    for (const b of buttons) b.disabled = false;
    root.querySelector('#chooser-form')?.dispatchEvent(new Event('change'));
  }
}
