// nav.js — the top bar every page shares: the models menu (top left), which
// lists every model with its dataset, layer count and accuracy, the seed
// architecture variants included, then the models imported through the
// page (under "your models") and the link to import one; the "?" help link
// sits on the right in the page markup. Opens on click or Enter, closes on
// Escape or outside click.

import { el, pct, fill } from './ui.js';

let button = null;
let panel = null;

function close(focusButton = false) {
  if (!panel || panel.hidden) return;
  panel.hidden = true;
  button.setAttribute('aria-expanded', 'false');
  if (focusButton) button.focus();
}

function open() {
  panel.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  const first = panel.querySelector('a');
  if (first) first.focus();
}

/** Fills the menu from the /api/models list (`models` array); `current` is the
 *  id of the model shown, marked in the list. */
export function fillMenu(models, current = null) {
  if (!panel) return;
  const byDataset = new Map();
  const own = [];
  for (const m of models) {
    if (m.uploaded) { own.push(m); continue; }
    if (!byDataset.has(m.dataset)) byDataset.set(m.dataset, []);
    byDataset.get(m.dataset).push(m);
  }
  const item = (m) => el('li', {},
    el('a', { href: `/model.html?id=${encodeURIComponent(m.id)}`, class: 'menu-item', 'data-model': m.id,
      'aria-current': m.id === current ? 'page' : null },
      el('span', { class: 'menu-title' }, m.title || m.id),
      el('span', { class: 'menu-meta' },
        `${m.layers} layers`,
        m.seed_architecture && !/seed/i.test(m.title || '') ? ' · seed architecture' : '',
        typeof m.test_accuracy === 'number' ? ` · ${pct(m.test_accuracy)}` : '',
        m.analysis && m.analysis !== 'ready' ? ` · ${m.analysis}` : '')));
  const groups = [...byDataset.entries()].map(([ds, list]) => {
    list.sort((a, b) => Number(a.seed_architecture) - Number(b.seed_architecture) || a.id.localeCompare(b.id));
    return el('li', { class: 'menu-group' },
      el('div', { class: 'menu-dataset' }, ds),
      el('ul', {}, list.map(item)));
  });
  own.sort((a, b) => (a.title || a.id).localeCompare(b.title || b.id));
  groups.push(el('li', { class: 'menu-group menu-own' },
    el('div', { class: 'menu-dataset' }, 'your models'),
    el('ul', {}, own.map(item),
      el('li', {}, el('a', { href: '/import.html', class: 'menu-action',
        'aria-current': location.pathname === '/import.html' ? 'page' : null }, '+ Use your own model')))));
  fill(panel, el('ul', { class: 'menu-list' }, groups));
}

/** Shows a failure inside the menu (the page stays usable). */
export function menuError(err) {
  if (panel) fill(panel, el('p', { class: 'menu-error' }, `Could not list the models: ${err.message}`));
}

/** Wires the menu button; call once per page. */
export function initMenu() {
  button = document.getElementById('menu-button');
  panel = document.getElementById('menu-panel');
  if (!button || !panel) return;
  button.addEventListener('click', (e) => {
    e.stopPropagation();
    if (panel.hidden) open(); else close();
  });
  document.addEventListener('click', (e) => {
    if (!panel.hidden && !panel.contains(e.target)) close();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') close(true);
  });
}
