// upload.js — "try your own image": drag-and-drop or file picker, then POST
// /api/models/{id}/predict. The answer is shown in the image panel
// (imagepanel.js: the photo, the probability bars, the doubt, the path layer
// by layer as a table, the LIME overlay or heat-map, the explanation methods
// side by side on request, what a layer sees), and the reply is handed to
// the page, which draws the image's path on the graph of paths and its star
// on the layer scatter, the two graphs this section sits between. An image
// far smaller than what the model looks at is said to be (its answer means
// little). A file that is not JPEG or PNG, or is over the size limit, is
// refused here before anything is sent (uploadcheck.js); a refusal by the
// server (413 too large, 400/415 not an image, ...) is said in plain words,
// with the server's own sentence in small print below. A refused file leaves
// the previous answer where it was, on this card and in the graphs.
//
// The reader's k. At a layer the reader clustered with another k than the
// analysis's (followK), the upload's star, its line and its table show its
// cluster of that k: the upload asks predict with `k<layer>=<k>` for those
// layers, and a k chosen afterwards is asked for again with the file the
// page still has, without LIME (`explain=0`). What is learnt is added to
// the reply (uploadk.js) and handed to the page (`updated`). A refused or
// failed ask changes nothing else: the cluster stays "?" and the table says
// why in a short note.

import { predict, getJSON } from './api.js';
import { el, fill, progress } from './ui.js';
import { renderImagePanel, updatePanelReply } from './imagepanel.js';
import { missingAt, withClustersAt } from './uploadk.js';
import { checkUpload, uploadErrorText, formatBytes, DEFAULT_UPLOAD_LIMIT, UPLOAD_ACCEPT } from './uploadcheck.js';

let model = null;
let onResult = () => {};
let onUpdated = () => {};
let shown = null; // {reply, file, asking}: the upload shown, its reply with what the re-asks learnt
const wanted = new Map(); // layer index -> the reader's k, where it is not the analysis's
let lowShares = null; // promise of lowDoubtShares(report) | null
let token = 0;
let previewUrl = null;
let limit = DEFAULT_UPLOAD_LIMIT; // until /api/health says the server's own
const nodes = {};

/** Wires the drop zone. `result(reply)` is called with each new prediction
 *  (a refused or failed upload changes nothing there), `updated(reply)`
 *  with the same upload's reply once it knows its clusters at a k the
 *  reader chose (followK); `doubtShares` is a promise of this model's
 *  lowDoubtShares() (or null), for the note beside a low doubt. */
export function initUpload({ model: m, result, updated, doubtShares = null }) {
  model = m;
  onResult = result || onResult;
  onUpdated = updated || onUpdated;
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
  // With an answer below it, the drop zone takes one line: the answer stays
  // near the graph of paths above.
  nodes.zone.classList.add('is-compact');
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = url;
  shown = { reply: withClustersAt(reply), file, asking: new Set() };
  renderImagePanel(nodes.answer, { kind: 'upload', reply: shown.reply, file, url: previewUrl },
    { model, compareId: 'upload-compare', barsId: 'upload-bars', lowShares });
  onResult(shown.reply);
  // The layers the reader clustered with another k.
  reask();
}

/** The reader's k for each layer where it is not the analysis's (a Map
 *  layer -> k, as the graphs show them): the upload shown is asked where it
 *  falls at the ones its reply does not know yet. */
export function followK(kMap) {
  wanted.clear();
  for (const [layer, k] of kMap || []) wanted.set(layer, k);
  reask();
}

/** Asks predict again, without LIME, for the upload shown at the layers and
 *  k its reply does not know; hands the fuller reply on. */
async function reask() {
  const now = shown;
  const key = ([layer, k]) => `${layer}:${k}`;
  const ask = now ? missingAt(now.reply, wanted).filter((p) => !now.asking.has(key(p))) : [];
  if (!ask.length) return;
  for (const p of ask) now.asking.add(key(p));
  let found = [], failed = [];
  try {
    const r = await predict(model.id, now.file, { explain: false, filename: now.file.name || 'upload', k: ask });
    found = (r.clusters_at || []).filter((c) => ask.some(([l, k]) => c.layer === l && c.k === k));
    const got = new Set(found.map((c) => `${c.layer}:${c.k}`));
    failed = ask.filter(([l, k]) => !got.has(`${l}:${k}`))
      .map(([layer, k]) => ({ layer, k, message: 'the answer did not say' }));
  } catch (err) {
    failed = ask.map(([layer, k]) => ({ layer, k, message: err.message || 'the request failed' }));
  }
  for (const p of ask) now.asking.delete(key(p));
  if (shown !== now) return; // another upload since
  now.reply = withClustersAt(now.reply, found, failed);
  updatePanelReply(nodes.answer, now.reply);
  onUpdated(now.reply);
}
