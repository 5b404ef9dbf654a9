// upload.js — "try your own image": drag-and-drop or file picker, then POST
// /api/models/{id}/predict. Shows the photo, the probability bars, the doubt
// (score, level, the server's explanation), the LIME overlay (toggle with the
// heat-map), and hands the reply to the page, which draws the image's path on
// the parallel graph and its star on the layer scatter; a button opens the
// explanation methods side by side for the same file (compare.js). An image
// far smaller than what the model looks at is said to be (its answer means
// little). A file that is not JPEG or PNG, or is over the size limit, is
// refused here before anything is sent (uploadcheck.js); a refusal by the
// server (413 too large, 400/415 not an image, ...) is said in plain words,
// with the server's own sentence in small print below. A refused file leaves
// the previous answer where it was, on this card and in the graphs.

import { predict, getJSON } from './api.js';
import { el, fill, progress, errorBox, draw, doubtPanel, imageLoaded, lowDoubtNote } from './ui.js';
import { probabilityFigure } from './probabilities.js';
import { describePrediction } from './describe.js';
import { renderCompare, clearCompare } from './compare.js';
import { checkUpload, uploadErrorText, smallImageText, formatBytes, DEFAULT_UPLOAD_LIMIT, UPLOAD_ACCEPT } from './uploadcheck.js';

let model = null;
let onResult = () => {};
let lowShares = null; // promise of lowDoubtShares(report) | null
let token = 0;
let previewUrl = null;
let compareBox = null; // the last upload's compare view
let limit = DEFAULT_UPLOAD_LIMIT; // until /api/health says the server's own
const nodes = {};

/** Wires the drop zone. `result(reply)` is called with each new prediction
 *  (a refused or failed upload changes nothing there); `doubtShares` is a
 *  promise of this model's lowDoubtShares() (or null), for the note beside a
 *  low doubt. */
export function initUpload({ model: m, result, doubtShares = null }) {
  model = m;
  onResult = result || onResult;
  lowShares = doubtShares;
  nodes.zone = document.getElementById('dropzone');
  nodes.input = document.getElementById('file-input');
  nodes.out = document.getElementById('upload-result');
  // What is happening (progress, a refusal) above the latest answer.
  nodes.status = el('div', { class: 'upload-status' });
  nodes.answer = el('div', { class: 'upload-answer-box' });
  fill(nodes.out, nodes.status, nodes.answer);
  nodes.input.setAttribute('accept', UPLOAD_ACCEPT);
  const limits = document.getElementById('upload-limits');
  const showLimit = () => { if (limits) limits.textContent = `JPEG or PNG, up to ${formatBytes(limit)}`; };
  showLimit();
  getJSON('/api/health').then((h) => {
    if (Number.isFinite(h.max_upload_bytes) && h.max_upload_bytes > 0) {
      limit = h.max_upload_bytes;
      showLimit();
    }
  }).catch(() => {}); // the default stays; the server still refuses what is over its limit
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

/** A refused upload: what is wrong in plain words, and (when the server
 *  said it) the server's own sentence and code in small print. */
function refusal(title, text, err = null) {
  const detail = err && err.message
    ? el('p', { class: 'error-detail' }, 'The server said: ', err.message,
      err.code ? ` (${err.status ? `${err.status} ` : ''}${err.code})` : '')
    : null;
  return el('div', { class: 'error', role: 'alert' }, el('strong', {}, title), ' — ', text, detail);
}

/** A refusal or failure, above the previous answer, which stays. */
function refused(box) {
  const kept = nodes.answer.childElementCount > 0;
  nodes.answer.classList.remove('is-stale');
  fill(nodes.status, box, kept ? el('p', { class: 'small muted' }, 'The answer for your previous image stays below, ' +
    'and in the graphs above.') : null);
  nodes.input.value = '';
}

async function send(file) {
  const my = ++token;
  const bad = checkUpload(file, { limit, input: model.input });
  if (bad) {
    nodes.out.dataset.refused = bad.code;
    refused(refusal(bad.title, bad.text));
    return;
  }
  delete nodes.out.dataset.refused;
  const url = /^image\//.test(file.type) ? URL.createObjectURL(file) : null;
  fill(nodes.status, progress(`Running ${model.title || model.id} on ${file.name} and asking LIME why — this takes a second or two…`));
  nodes.answer.classList.add('is-stale');
  let reply;
  try {
    reply = await predict(model.id, file, { filename: file.name || 'upload' });
  } catch (err) {
    if (url) URL.revokeObjectURL(url);
    if (my !== token) return;
    const { title, text } = uploadErrorText(err, { limit, input: model.input });
    refused(refusal(title, text, err));
    return;
  }
  if (my !== token) { if (url) URL.revokeObjectURL(url); return; }
  nodes.input.value = '';
  fill(nodes.status);
  nodes.answer.classList.remove('is-stale');
  clearCompare(compareBox);
  compareBox = null;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
  render(reply, file);
  onResult(reply);
}

async function render(reply, file) {
  const my = token;
  const small = smallImageText(reply.image, model.input);
  const photo = previewUrl
    ? el('img', { class: 'upload-photo', src: previewUrl, alt: `your image ${file.name}`, width: 192, height: 192 })
    : el('div', { class: 'lime-placeholder' });
  const ex = reply.explanation || null;
  const limeBox = el('div', { class: 'lime-box' });
  const bars = el('div', { class: 'plot plot-bars', id: 'upload-bars' });
  const box = el('div', { class: 'compare', id: 'upload-compare', hidden: true });
  compareBox = box;
  const compare = el('button', { type: 'button', class: 'action-button compare-button', 'aria-expanded': 'false',
    'aria-controls': 'upload-compare' }, 'Compare explanation methods');
  compare.addEventListener('click', () => {
    if (box.hidden) {
      box.hidden = false;
      compare.setAttribute('aria-expanded', 'true');
      renderCompare(box, model, { file });
    }
    box.scrollIntoView({ block: 'start', behavior: 'smooth' });
  });
  fill(nodes.answer,
    el('div', { class: 'upload-grid' },
      el('figure', { class: 'lime-figure' }, photo, el('figcaption', {}, file.name)),
      el('div', { class: 'upload-answer' },
        small ? el('p', { class: 'banner small-image', role: 'note' }, small) : null,
        el('p', { class: small ? 'answer' : 'answer big', 'data-predicted': reply.predicted },
          describePrediction({ ...reply, doubt: null })),
        bars,
        doubtPanel(reply.doubt, { note: lowDoubtNote(reply.doubt, lowShares) }),
        el('p', { class: 'small muted path-note' }, 'Your image\'s path is the black line in the graph of paths above, ' +
          'and its position is a black star on the layer scatter.')),
      limeBox),
    el('div', { class: 'detail-actions upload-actions' }, compare,
      el('p', { class: 'small muted' }, 'See Grad-CAM, Integrated Gradients, occlusion and LIME side by side on ' +
        'your image, each scored by how the model reacts when the pixels it points at are hidden.')),
    box);
  await draw(bars, probabilityFigure(reply, model.classes), { displayModeBar: false, staticPlot: false });
  if (!ex || !ex.overlay) {
    fill(limeBox, el('p', { class: 'small muted' }, 'No LIME explanation came with this answer.'));
    return;
  }
  fill(limeBox, el('figure', { class: 'lime-figure' }, progress('loading the explanation…'), el('figcaption', {}, 'LIME')));
  const overlay = el('img', { class: 'lime-overlay', src: ex.overlay, alt: `LIME overlay: the outlined regions made the model say “${reply.predicted}”`, width: 192, height: 192 });
  const heat = ex.heatmap ? el('img', { class: 'lime-heatmap', src: ex.heatmap, alt: 'LIME heat-map of region weights', width: 192, height: 192, hidden: true }) : null;
  try {
    await imageLoaded(overlay);
  } catch (err) {
    if (my === token) fill(limeBox, errorBox(err, 'The explanation image did not load'));
    return;
  }
  if (my !== token) return;
  const OVERLAY_CAPTION = 'LIME overlay: the outlined regions pushed the model most towards its answer';
  const caption = el('figcaption', {}, OVERLAY_CAPTION);
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
        : OVERLAY_CAPTION;
    });
  }
  fill(limeBox, el('figure', { class: 'lime-figure' }, overlay, heat, caption), toggle);
}
