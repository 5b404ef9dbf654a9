// upload.js — "try your own image": drag-and-drop or file picker, then POST
// /api/models/{id}/predict. Shows the photo, the probability bars, the doubt
// (score, level, the server's explanation), the LIME overlay (toggle with the
// heat-map), and hands the reply to the page, which draws the image's path on
// the parallel graph and its star on the layer scatter. Failures (413 too
// large, 400/415 not an image) show the server's own sentence.

import { predict } from './api.js';
import { el, fill, progress, errorBox, draw, doubtPanel, imageLoaded } from './ui.js';
import { probabilityFigure } from './probabilities.js';
import { describePrediction } from './describe.js';

let model = null;
let onResult = () => {};
let token = 0;
let previewUrl = null;
const nodes = {};

/** Wires the drop zone. `result(reply | null)` is called with each new prediction
 *  (null when a new upload starts or fails). */
export function initUpload({ model: m, result }) {
  model = m;
  onResult = result || onResult;
  nodes.zone = document.getElementById('dropzone');
  nodes.input = document.getElementById('file-input');
  nodes.out = document.getElementById('upload-result');
  nodes.input.addEventListener('change', () => {
    if (nodes.input.files && nodes.input.files[0]) send(nodes.input.files[0]);
  });
  nodes.zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    nodes.zone.classList.add('is-over');
  });
  nodes.zone.addEventListener('dragleave', () => nodes.zone.classList.remove('is-over'));
  nodes.zone.addEventListener('drop', (e) => {
    e.preventDefault();
    nodes.zone.classList.remove('is-over');
    const f = e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) send(f);
  });
}

async function send(file) {
  const my = ++token;
  onResult(null);
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  const looksLikeImage = /^image\//.test(file.type);
  previewUrl = looksLikeImage ? URL.createObjectURL(file) : null;
  fill(nodes.out, el('div', { class: 'upload-status' },
    progress(`Running ${model.title || model.id} on ${file.name} and asking LIME why — this takes a second or two…`)));
  let reply;
  try {
    reply = await predict(model.id, file, { filename: file.name || 'upload' });
  } catch (err) {
    if (my !== token) return;
    fill(nodes.out, errorBox(err, `No answer for ${file.name}`));
    nodes.input.value = '';
    return;
  }
  if (my !== token) return;
  nodes.input.value = '';
  render(reply, file);
  onResult(reply);
}

async function render(reply, file) {
  const my = token;
  const photo = previewUrl
    ? el('img', { class: 'upload-photo', src: previewUrl, alt: `your image ${file.name}`, width: 192, height: 192 })
    : el('div', { class: 'lime-placeholder' });
  const ex = reply.explanation || null;
  const limeBox = el('div', { class: 'lime-box' });
  const bars = el('div', { class: 'plot plot-bars', id: 'upload-bars' });
  fill(nodes.out,
    el('div', { class: 'upload-grid' },
      el('figure', { class: 'lime-figure' }, photo, el('figcaption', {}, file.name)),
      el('div', { class: 'upload-answer' },
        el('p', { class: 'answer big', 'data-predicted': reply.predicted }, describePrediction({ ...reply, doubt: null })),
        bars,
        doubtPanel(reply.doubt),
        el('p', { class: 'small muted path-note' }, 'Your image\'s path is drawn in black on the parallel graph, and its ' +
          'position is a black star on the layer scatter.')),
      limeBox));
  await draw(bars, probabilityFigure(reply, model.classes), { displayModeBar: false, staticPlot: false });
  if (!ex || !ex.overlay) {
    fill(limeBox, el('p', { class: 'small muted' }, 'No LIME explanation came with this answer.'));
    return;
  }
  fill(limeBox, el('figure', { class: 'lime-figure' }, progress('loading the explanation…'), el('figcaption', {}, 'LIME')));
  const overlay = el('img', { class: 'lime-overlay', src: ex.overlay, alt: `LIME overlay: the regions that made the model say ${reply.predicted}`, width: 192, height: 192 });
  const heat = ex.heatmap ? el('img', { class: 'lime-heatmap', src: ex.heatmap, alt: 'LIME heat-map of region weights', width: 192, height: 192, hidden: true }) : null;
  try {
    await imageLoaded(overlay);
  } catch (err) {
    if (my === token) fill(limeBox, errorBox(err, 'The explanation image did not load'));
    return;
  }
  if (my !== token) return;
  const caption = el('figcaption', {}, 'LIME overlay: bright regions made the answer');
  const toggle = heat ? el('div', { class: 'segmented', role: 'group', 'aria-label': 'Explanation view' },
    el('button', { type: 'button', 'aria-pressed': 'true', 'data-view': 'overlay' }, 'overlay'),
    el('button', { type: 'button', 'aria-pressed': 'false', 'data-view': 'heatmap' }, 'heat-map')) : null;
  if (toggle) {
    toggle.addEventListener('click', (e) => {
      const b = e.target.closest('button[data-view]');
      if (!b) return;
      const heatOn = b.dataset.view === 'heatmap';
      for (const x of toggle.querySelectorAll('button')) x.setAttribute('aria-pressed', String(x === b));
      overlay.hidden = heatOn;
      heat.hidden = !heatOn;
      caption.textContent = heatOn ? 'heat-map: warm regions pushed towards the answer, cool ones against it'
        : 'LIME overlay: bright regions made the answer';
    });
  }
  fill(limeBox, el('figure', { class: 'lime-figure' }, overlay, heat, caption), toggle);
}
