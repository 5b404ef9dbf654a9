// import.js — the "Your model" page (import.html): a form that sends an ONNX
// classifier and its images (an archive, or a dataset already on the
// server) to POST /api/models, with the upload's progress, then the
// server's import report and a link to the new model's page. Every check
// that can be made here is made before anything is sent (importcheck.js);
// a refusal by the server is said in plain words and leaves the form as it
// was. A chosen model file's own metadata (a strata export's title,
// classes, mean and std) is read here too, so that the form says what the
// server will take from it and picks "From the file" for the
// normalisation; the result says which fields came from the file.
// Data: GET /api/health (limits), GET /api/datasets, GET /api/models.

import { api } from './api.js';
import { el, fill, progress, pct, errorBox } from './ui.js';
import { initMenu, fillMenu, menuError } from './nav.js';
import { formatBytes } from './uploadcheck.js';
import {
  DEFAULT_LIMITS, limitsOf, checkFile, buildMeta, idFromTitle, NORMALISATIONS, NORM_FROM_FILE, reportText,
  importErrorText, MODEL_ACCEPT, ARCHIVE_ACCEPT, analysisText, progressShare, readOnnxMetadata, fileMetaOf,
  fileMetaText, fieldsText,
} from './importcheck.js';

const $ = (id) => document.getElementById(id);

// Page state.
let limits = DEFAULT_LIMITS;
let datasets = []; // GET /api/datasets' list
let sending = false;
let watched = 0; // which import's analysis the result follows (a new one stops the old)
let fileMeta = null; // what the chosen model file says about itself (fileMetaOf), null: unknown
let peeked = 0; // which file's metadata is being read (a newer choice drops the older answer)
let normChosen = false; // the person picked a normalisation: the file no longer picks it
const POLL_MS = 1000;
const TITLE_PLACEHOLDER = 'My ResNet on felines';

// Each checked field: where its message goes and what to focus, in form order.
const FIELDS = {
  model: { error: 'model-error', input: () => $('model-file') },
  title: { error: 'title-error', input: () => $('title') },
  id: { error: 'id-error', input: () => $('model-id') },
  images: { error: 'images-error', input: () => (imagesFrom() === 'dataset' ? $('dataset') : $('archive-file')) },
  classes: { error: 'classes-error', input: () => $('classes') },
  norm: { error: 'norm-error', input: () => $('mean-0') },
  input: { error: 'input-error', input: () => $('input-height') },
};

const radio = (name) => document.querySelector(`input[name="${name}"]:checked`)?.value;
const imagesFrom = () => radio('images-from') || 'archive';
const classesFrom = () => radio('classes-from') || 'images';

/** The form's values, as buildMeta() takes them. */
function values() {
  return {
    modelFile: $('model-file').files[0] || null,
    title: $('title').value,
    id: $('model-id').value,
    classesFrom: classesFrom(),
    classesText: $('classes').value,
    norm: radio('norm') || 'imagenet',
    mean: [0, 1, 2].map((i) => $(`mean-${i}`).value),
    std: [0, 1, 2].map((i) => $(`std-${i}`).value),
    height: $('input-height').value,
    width: $('input-width').value,
    imagesFrom: imagesFrom(),
    dataset: $('dataset').value,
    archiveFile: $('archive-file').files[0] || null,
    fileMeta,
  };
}

/** Shows one field's message (null clears it) and marks its input. */
function fieldError(key, text) {
  const f = FIELDS[key];
  const box = $(f.error);
  box.textContent = text || '';
  box.hidden = !text;
  const input = f.input();
  if (input) {
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  // "Nothing was sent: see what is marked above" goes with the last mark
  const status = $('import-status');
  if (!text && status.dataset.state === 'invalid' && Object.values(FIELDS).every((x) => $(x.error).hidden)) {
    delete status.dataset.state;
    fill(status);
  }
}

function showErrors(errors) {
  for (const key of Object.keys(FIELDS)) fieldError(key, errors[key] || null);
}

// --- live parts of the form ---------------------------------------------------

function showId() {
  const typed = $('model-id').value.trim();
  const title = $('title').value.trim();
  const derived = idFromTitle(title || fileMeta?.title || '');
  $('model-id').placeholder = derived || 'my-model';
  const id = typed || derived;
  const from = title ? 'From the title' : 'From the file\'s title';
  fill($('id-hint'), id
    ? [typed ? 'Its page will be ' : `${from}; its page will be `, el('code', { id: 'id-shown' }, `/model.html?id=${id}`), '.']
    : 'Left empty, the id comes from the title: lower-case letters, digits and hyphens.');
}

/** Says what the chosen model file carries, and lets it pick the
 *  normalisation ("From the file") unless the person picked one. */
function showFileMeta() {
  const box = $('model-meta');
  box.textContent = fileMetaText(fileMeta);
  box.hidden = !fileMeta;
  box.dataset.fields = fileMeta ? ['title', 'classes', 'mean', 'std'].filter((k) => fileMeta[k]).join(' ') : '';
  $('title').placeholder = fileMeta?.title || TITLE_PLACEHOLDER;
  if (!normChosen) {
    const want = fileMeta && (fileMeta.mean || fileMeta.std) ? NORM_FROM_FILE.key : 'imagenet';
    const input = document.querySelector(`input[name="norm"][value="${want}"]`);
    if (input) input.checked = true;
  }
  if (fileMeta) fieldError('title', null);
  showId();
  showPanels();
}

/** Reads the chosen model file's metadata (a few small pieces of it). */
async function peekModel() {
  const file = $('model-file').files[0] || null;
  const my = ++peeked;
  fileMeta = null;
  showFileMeta();
  if (!file || checkFile(file, 'model', Infinity)) return;
  let props = null;
  try {
    props = await readOnnxMetadata(file);
  } catch {
    props = null; // unreadable here: the server says what is wrong with it
  }
  if (my !== peeked) return;
  fileMeta = props ? fileMetaOf(props) : null;
  showFileMeta();
}

function showFile(input, kind) {
  const file = input.files[0] || null;
  let info = input.parentElement.querySelector('.file-info');
  if (!info) {
    info = el('span', { class: 'file-info small muted' });
    input.after(info);
  }
  info.textContent = file ? `${file.name} · ${formatBytes(file.size)}` : '';
  const bad = file ? checkFile(file, kind, kind === 'model' ? limits.model : limits.archive) : null;
  fieldError(kind === 'model' ? 'model' : 'images', bad);
}

function showPanels() {
  const fromDataset = imagesFrom() === 'dataset';
  $('images-archive').hidden = fromDataset;
  $('images-dataset').hidden = !fromDataset;
  const typed = classesFrom() === 'typed';
  $('classes-typed').hidden = !typed;
  $('classes-images-hint').hidden = typed;
  $('norm-custom').hidden = radio('norm') !== 'custom';
  const ds = fromDataset ? datasets.find((d) => d.name === $('dataset').value) : null;
  $('classes-preview').textContent = [
    ds && Array.isArray(ds.classes) ? `For ${ds.name}: ${ds.classes.join(', ')}.` : '',
    fileMeta?.classes ? 'The file names its own classes: the folders must have those names.' : '',
  ].filter(Boolean).join(' ');
  fieldError('images', null);
  if (!fromDataset && $('archive-file').files[0]) showFile($('archive-file'), 'archive');
}

function normChoices() {
  const options = [NORM_FROM_FILE, ...NORMALISATIONS, { key: 'custom', label: 'custom', note: 'your own mean and std' }];
  fill($('norm-choice'), options.map((n) => el('label', { class: 'choice-option' },
    el('input', { type: 'radio', name: 'norm', value: n.key, checked: n.key === 'imagenet' }),
    el('span', {}, n.label, n.mean
      ? [el('span', { class: 'choice-note numbers' }, `mean ${n.mean.join(', ')}`),
        el('span', { class: 'choice-note numbers' }, `std ${n.std.join(', ')}`)]
      : el('span', { class: 'choice-note' }, n.note)))));
}

function showLimits() {
  $('model-limit').textContent = formatBytes(limits.model);
  $('archive-limit').textContent = formatBytes(limits.archive);
}

function fillDatasets(list, failure = null) {
  const select = $('dataset');
  if (failure) {
    fill(select, el('option', { value: '' }, 'Could not list the datasets'));
    $('dataset-hint').textContent = `The server did not list its datasets: ${failure.message}`;
    return;
  }
  if (!list.length) {
    fill(select, el('option', { value: '' }, 'No dataset on this server'));
    return;
  }
  fill(select, list.map((d) => el('option', { value: d.name },
    `${d.name} — ${(d.classes || []).length} classes, ${d.train ?? '?'} training and ${d.test ?? '?'} test images`)));
}

// --- sending ------------------------------------------------------------------

function setSending(on) {
  sending = on;
  for (const fs of $('import-form').querySelectorAll('fieldset')) fs.disabled = on;
  $('import-submit').disabled = on || Boolean($('no-imports'));
  $('import-submit').textContent = on ? 'Importing…' : 'Import and analyse';
}

function uploadProgress(box, { loaded, total }) {
  const share = total ? loaded / total : null;
  let bar = box.querySelector('progress');
  let text = box.querySelector('.upload-progress-text');
  if (!bar) {
    bar = el('progress', { max: 1, value: 0, 'aria-label': 'upload progress' });
    text = el('span', { class: 'upload-progress-text' });
    fill(box, el('div', { class: 'upload-progress' }, bar, text));
  }
  // What was sent so far stays readable on the box (tests read it too).
  box.dataset.sent = String(loaded);
  if (total) box.dataset.total = String(total);
  if (share !== null) bar.value = share;
  else bar.removeAttribute('value');
  text.textContent = total
    ? `Sending: ${formatBytes(loaded)} of ${formatBytes(total)} (${Math.floor(100 * share)}\u00a0%)`
    : `Sending: ${formatBytes(loaded)}`;
}

async function submit(e) {
  e.preventDefault();
  if (sending) return;
  const status = $('import-status');
  const v = values();
  const { meta, errors } = buildMeta(v, limits);
  showErrors(errors);
  if (!meta) {
    status.dataset.state = 'invalid';
    fill(status, el('p', { class: 'field-error' }, 'Nothing was sent: see what is marked above.'));
    const first = Object.keys(FIELDS).find((k) => errors[k]);
    FIELDS[first].input()?.focus();
    return;
  }
  const form = new FormData();
  form.append('meta', JSON.stringify(meta));
  form.append('model', v.modelFile, v.modelFile.name);
  if (v.imagesFrom === 'archive') form.append('images', v.archiveFile, v.archiveFile.name);

  setSending(true);
  status.dataset.state = 'sending';
  uploadProgress(status, { loaded: 0, total: v.modelFile.size + (v.imagesFrom === 'archive' ? v.archiveFile.size : 0) });
  let reply;
  try {
    reply = await api.createModel(form, {
      onProgress: (p) => uploadProgress(status, p),
      onSent: () => fill(status, progress('Sent. strata is checking the model and reading the images…')),
    });
  } catch (err) {
    setSending(false);
    const { title, text, field } = importErrorText(err, limits);
    status.dataset.state = 'error';
    fill(status, el('div', { class: 'error', role: 'alert', 'data-code': err.code || '' },
      el('strong', {}, title), ' — ', text,
      el('p', { class: 'error-detail' }, 'The form is as you left it. ',
        err.status ? `The server answered ${err.status} ${err.code}.` : '')));
    if (field) {
      fieldError(field, title);
      FIELDS[field].input()?.focus();
    }
    return;
  }
  setSending(false);
  status.dataset.state = 'done';
  fill(status);
  showResult(reply.body || {}, meta);
}

function showResult(body, meta) {
  const id = body.id || meta.id;
  const m = body.model || {};
  const r = reportText(body.report);
  const href = `/model.html?id=${encodeURIComponent(id)}`;
  const again = el('button', { type: 'button', class: 'small-button', id: 'import-again' }, 'Import another model');
  again.addEventListener('click', () => {
    watched += 1;
    $('import-result').hidden = true;
    $('import-form').reset();
    for (const info of document.querySelectorAll('.file-info')) info.textContent = '';
    peeked += 1;
    fileMeta = null;
    normChosen = false;
    showFileMeta();
    $('import-form').hidden = false;
    $('model-file').focus();
  });
  const heading = el('h2', { tabindex: '-1' }, `“${m.title || meta.title}” is imported`);
  const section = $('import-result');
  fill(section,
    heading,
    el('p', {}, 'Its id is ', el('code', {}, id), '. strata analyses it now, as it does the demo models; its page shows ' +
      'how far it has got, then the graphs once it is done.'),
    fromFileNote(body),
    el('div', { id: 'import-analysis', class: 'import-analysis' }),
    el('p', { class: 'result-actions' },
      el('a', { class: 'action-button', href, id: 'open-model' }, 'Open its page'), again),
    el('h3', { class: 'sub-title' }, 'What strata kept'),
    el('p', { id: 'report-summary' }, r.summary, r.format ? el('span', { class: 'small muted' }, ` ${r.format}`) : null),
    r.split ? el('p', { class: 'small', id: 'report-split', 'data-split': body.report?.split || '' }, r.split) : null,
    el('div', { class: 'scroll-x' }, el('table', { class: 'data-table report-table', id: 'report-classes' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, 'class'), el('th', { scope: 'col' }, 'training'), el('th', { scope: 'col' }, 'test'))),
      el('tbody', {}, r.rows.map((c) => el('tr', { 'data-class': c.name },
        el('th', { scope: 'row' }, c.name), el('td', {}, String(c.train)), el('td', {}, String(c.test))))),
      el('tfoot', {}, el('tr', {},
        el('th', { scope: 'row' }, 'total'), el('td', {}, String(r.total.train)), el('td', {}, String(r.total.test)))))),
    skippedList(r, body.report?.split === 'dataset'));
  $('import-form').hidden = true;
  section.hidden = false;
  section.scrollIntoView({ block: 'start' });
  heading.focus({ preventScroll: true });
  followAnalysis(id, m);
}

/** Shows the new model's analysis state, from the import reply first, then
 *  asked again every second until it is ready or failed. */
async function followAnalysis(id, first) {
  const my = ++watched;
  let m = first;
  for (;;) {
    const box = $('import-analysis');
    const state = typeof m.analysis === 'string' ? m.analysis : m.analysis?.state;
    box.dataset.state = state || '';
    if (state === 'ready') {
      const acc = m.test_accuracy ?? m.analysis?.accuracy;
      fill(box, el('p', { class: 'ok' }, el('strong', {}, 'Analysed'),
        typeof acc === 'number' ? ` — ${pct(acc, 1)} of its test images right. ` : '. ',
        el('a', { href: `/model.html?id=${encodeURIComponent(id)}` }, 'See it layer by layer'), '.'));
      return;
    }
    if (state === 'failed') {
      fill(box, el('div', { class: 'error', role: 'alert' }, el('strong', {}, 'The analysis failed'),
        ' — ', m.error || m.analysis?.error || 'the server did not say why.'));
      return;
    }
    if (state) {
      const share = progressShare(m.progress);
      fill(box, progress(el('span', { 'data-progress': '' }, analysisText(state, m.progress))),
        share === null ? null : el('div', { class: 'meter', role: 'progressbar', 'aria-label': 'analysis progress',
          'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(100 * share) },
        el('span', { class: 'meter-fill meter-progress', style: `width:${Math.round(100 * share)}%` })));
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
    if (my !== watched) return;
    try {
      m = await api.model(id);
    } catch (err) {
      if (my === watched) fill($('import-analysis'), errorBox(err, 'Could not follow the analysis'));
      return;
    }
    if (my !== watched) return;
  }
}

/** Which fields came from the file's metadata, and why an entry of it
 *  was left out (the reply's from_metadata and metadata_notes). */
function fromFileNote(body) {
  const from = Array.isArray(body.from_metadata) ? body.from_metadata : [];
  const notes = Array.isArray(body.metadata_notes) ? body.metadata_notes : [];
  if (!from.length && !notes.length) return null;
  return el('div', { id: 'import-from-file', 'data-fields': from.join(' ') },
    from.length ? el('p', {}, 'From the file\'s own metadata: ', el('strong', {}, fieldsText(from)), '.') : null,
    notes.length ? el('ul', { class: 'small muted' }, notes.map((n) => el('li', {}, n))) : null);
}

function skippedList(r, fromDataset) {
  if (!r.nSkipped) {
    return el('p', { class: 'small muted', id: 'report-skipped', 'data-skipped': 0 },
      fromDataset ? 'Every image of the dataset was read.' : 'No entry of the archive was skipped.');
  }
  const items = r.skipped.map((s) => el('li', {}, el('code', {}, s.entry), ' — ', s.reason));
  const list = el('ul', { class: 'skipped-list' }, items,
    r.more ? el('li', { class: 'muted' }, `and ${r.more} more, not listed`) : null);
  const title = fromDataset ? `${r.nSkipped} file${r.nSkipped === 1 ? '' : 's'} of the dataset skipped`
    : `${r.nSkipped} entr${r.nSkipped === 1 ? 'y' : 'ies'} of the archive skipped`;
  return el('div', { id: 'report-skipped', 'data-skipped': r.nSkipped },
    r.skipped.length > 6
      ? el('details', {}, el('summary', {}, title), list)
      : [el('p', { class: 'small' }, `${title}:`), list]);
}

// --- start --------------------------------------------------------------------

function main() {
  initMenu();
  $('model-file').setAttribute('accept', MODEL_ACCEPT);
  $('archive-file').setAttribute('accept', ARCHIVE_ACCEPT);
  normChoices();
  showLimits();
  showId();
  showPanels();
  const form = $('import-form');
  form.addEventListener('submit', submit);
  $('title').addEventListener('input', () => { showId(); fieldError('title', null); fieldError('id', null); });
  $('model-id').addEventListener('input', () => { showId(); fieldError('id', null); });
  $('model-file').addEventListener('change', () => { showFile($('model-file'), 'model'); peekModel(); });
  $('archive-file').addEventListener('change', () => showFile($('archive-file'), 'archive'));
  $('dataset').addEventListener('change', showPanels);
  $('classes').addEventListener('input', () => fieldError('classes', null));
  form.addEventListener('change', (e) => {
    if (e.target.name === 'norm') normChosen = true;
    if (e.target.name === 'images-from' || e.target.name === 'classes-from' || e.target.name === 'norm') showPanels();
    if (e.target.name === 'norm' || /^(mean|std)-/.test(e.target.id)) fieldError('norm', null);
    if (/^input-/.test(e.target.id)) fieldError('input', null);
  });

  api.health().then((h) => {
    limits = limitsOf(h);
    showLimits();
    if (h.imports === false) {
      $('import-form').prepend(el('div', { class: 'error', role: 'alert', id: 'no-imports' },
        el('strong', {}, 'This server takes no imports'), ' — it was started without a workspace folder, where ' +
        'imported models are kept (strata serve --workspace DIR).'));
      $('import-submit').disabled = true;
    }
    if ($('model-file').files[0]) showFile($('model-file'), 'model');
    if ($('archive-file').files[0]) showFile($('archive-file'), 'archive');
  }).catch(() => {}); // the defaults stay; the server still refuses what is over its limits
  api.datasets().then((r) => {
    datasets = Array.isArray(r.datasets) ? r.datasets : [];
    fillDatasets(datasets);
    showPanels();
  }).catch((err) => fillDatasets([], err));
  api.models().then((r) => fillMenu(r.models)).catch(menuError);
}

if (typeof document !== 'undefined') main();
