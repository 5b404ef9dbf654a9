// importcheck.js — the "Your model" form's logic, without the DOM: the id
// derived from a title, the normalisation presets, what a file strata
// exported says about itself (its ONNX metadata: title, classes, mean and
// std, used where the form is left empty), the checks made before anything
// is sent (file names and sizes against the server's limits, the fields
// POST /api/models needs), the import report and the server's refusals in
// words, and an analysis' progress in words (the home page and the model
// page say it too). Pure, tested under Node.

import { formatBytes } from './uploadcheck.js';

/** The limits of a server that does not report its own (GET /api/health:
 *  max_model_mb, max_archive_mb; 1 MB = 2^20 bytes). */
export const DEFAULT_LIMITS = { model: 300 * 1024 * 1024, archive: 1024 * 1024 * 1024 };

/** The limits in bytes from a /api/health reply (defaults for what it lacks). */
export function limitsOf(health) {
  const mb = (v, d) => (Number.isFinite(v) && v > 0 ? v * 1024 * 1024 : d);
  return {
    model: mb(health && health.max_model_mb, DEFAULT_LIMITS.model),
    archive: mb(health && health.max_archive_mb, DEFAULT_LIMITS.archive),
  };
}

/** What the file pickers offer. */
export const MODEL_ACCEPT = '.onnx';
export const ARCHIVE_ACCEPT = '.zip,.tar.gz,.tgz,.tar';
const ARCHIVE_NAME = /\.(zip|tar\.gz|tgz|tar)$/i;

/** The longest id the server takes. */
export const ID_MAX = 63;

/**
 * The id a title gives: lower case, accents dropped, every run of other
 * characters turned into one hyphen, no hyphen at either end, at most 63
 * characters ("My ResNet-18 (v2)" -> "my-resnet-18-v2"). Empty when the
 * title has no letter or digit of [a-z0-9].
 */
export function idFromTitle(title) {
  return String(title ?? '')
    .normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, ID_MAX)
    .replace(/-+$/, '');
}

/** Whether an id typed by hand is one the server takes: [a-z0-9-], 1 to 63
 *  characters, starting and ending with a letter or digit. */
export function validId(id) {
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(String(id));
}

/**
 * The normalisation presets: the model sees x = (pixel / 255 − mean) / std
 * per channel (red, green, blue). "[0, 1]" leaves pixel/255 as is; ImageNet's
 * mean and std are what torchvision's pretrained models expect; "[-1, 1]"
 * centres on grey.
 */
export const NORMALISATIONS = [
  { key: 'unit', label: '[0, 1]', mean: [0, 0, 0], std: [1, 1, 1],
    note: 'pixel / 255: each value between 0 and 1' },
  { key: 'imagenet', label: 'ImageNet mean/std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
    note: "what torchvision's pretrained models expect" },
  { key: 'symmetric', label: '[-1, 1]', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5],
    note: 'each value between −1 and 1' },
];

/** The choice that sends no mean and std: the server takes them from the
 *  file's metadata (a file strata exported has them), else [0, 1]. */
export const NORM_FROM_FILE = { key: 'file', label: 'From the file',
  note: 'what a file exported by strata says; [0, 1] for other files' };

/** The preset key for a mean and std (within 1e-6), else "custom". */
export function presetOf(mean, std) {
  const same = (a, b) => Array.isArray(a) && a.length === 3 && a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
  const p = NORMALISATIONS.find((n) => same(mean, n.mean) && same(std, n.std));
  return p ? p.key : 'custom';
}

/** Class names typed by hand: comma-separated or one per line, blanks dropped. */
export function parseClassNames(text) {
  return String(text ?? '').split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

// --- what a file strata exported says about itself ---------------------------

/** A protobuf varint at bytes[i]: {value, next}, or null when it runs past
 *  the bytes or beyond 2^53. */
function varint(bytes, i) {
  let value = 0;
  for (let mul = 1; i < bytes.length && mul < 2 ** 53; mul *= 128) {
    const b = bytes[i++];
    value += (b & 0x7f) * mul;
    if (!(b & 0x80)) return { value, next: i };
  }
  return null;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** One StringStringEntryProto ({1: key, 2: value}): {key, value}, or null. */
function metadataEntry(bytes) {
  const e = {};
  for (let i = 0; i < bytes.length;) {
    const tag = varint(bytes, i);
    if (!tag || tag.value % 8 !== 2) return null;
    const len = varint(bytes, tag.next);
    if (!len || len.next + len.value > bytes.length) return null;
    const field = Math.floor(tag.value / 8);
    if (field === 1 || field === 2) {
      try {
        e[field === 1 ? 'key' : 'value'] = utf8.decode(bytes.subarray(len.next, len.next + len.value));
      } catch { return null; }
    }
    i = len.next + len.value;
  }
  return typeof e.key === 'string' ? { key: e.key, value: e.value ?? '' } : null;
}

/**
 * The metadata_props of an ONNX file (a Blob or File): {key: value}, the
 * first entry of a key winning as on the server. Only small pieces are
 * read: the ModelProto's top-level fields are walked and each is skipped by
 * its length (the graph, megabytes, is never read), except field 14, the
 * metadata entries. Resolves to null when the bytes are not a protobuf
 * message this walk understands — the server then says what is wrong.
 */
export async function readOnnxMetadata(blob) {
  const size = blob.size;
  const read = async (a, b) => new Uint8Array(await blob.slice(a, Math.min(b, size)).arrayBuffer());
  const props = {};
  let pos = 0;
  for (let n = 0; pos < size; n++) {
    if (n > 100000) return null;
    const head = await read(pos, pos + 20);
    const tag = varint(head, 0);
    if (!tag || tag.value < 8) return null;
    const wire = tag.value % 8;
    if (wire === 0) {
      const v = varint(head, tag.next);
      if (!v) return null;
      pos += v.next;
    } else if (wire === 1 || wire === 5) {
      pos += tag.next + (wire === 1 ? 8 : 4);
    } else if (wire === 2) {
      const len = varint(head, tag.next);
      if (!len) return null;
      const start = pos + len.next;
      pos = start + len.value;
      if (pos > size) return null;
      if (Math.floor(tag.value / 8) === 14) {
        if (len.value > 1 << 20) return null;
        const e = metadataEntry(await read(start, pos));
        if (e && !(e.key in props)) props[e.key] = e.value;
      }
    } else {
      return null;
    }
  }
  return pos === size ? props : null;
}

const bytesOf = (s) => new TextEncoder().encode(s).length;

/** Three numbers from a JSON array text, finite (and > 0 when positive). */
function triple(text, positive) {
  try {
    const a = JSON.parse(text);
    return Array.isArray(a) && a.length === 3 && a.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))
      ? a : null;
  } catch { return null; }
}

/**
 * What the server will take from a file's metadata ({key: value}, as
 * readOnnxMetadata gives it), checked as the server checks it (a title of 1
 * to 200 bytes, at least two distinct class names of 1 to 255 bytes, three
 * finite means, three positive standard deviations): {title?, classes?,
 * mean?, std?, ignored: [field names present but unusable]}.
 */
export function fileMetaOf(props) {
  const p = props || {};
  const out = { ignored: [] };
  const has = (k) => Object.prototype.hasOwnProperty.call(p, k);
  if (has('strata.title')) {
    const t = p['strata.title'];
    if (t && bytesOf(t) <= 200) out.title = t;
    else out.ignored.push('title');
  }
  if (has('strata.classes')) {
    let c = null;
    try { c = JSON.parse(p['strata.classes']); } catch { /* left out below */ }
    const ok = Array.isArray(c) && c.length >= 2 && new Set(c).size === c.length &&
      c.every((n) => typeof n === 'string' && n.length > 0 && bytesOf(n) <= 255);
    if (ok) out.classes = c;
    else out.ignored.push('classes');
  }
  for (const [k, positive] of [['mean', false], ['std', true]]) {
    if (!has(`strata.${k}`)) continue;
    const t = triple(p[`strata.${k}`], positive);
    if (t) out[k] = t;
    else out.ignored.push(k);
  }
  return out;
}

/** The fields a file gives, in the order the server lists them. */
export function fileFields(fm) {
  return fm ? ['title', 'classes', 'mean', 'std'].filter((k) => fm[k] !== undefined) : [];
}

/** A list of field names in words: "title, classes, mean and std". */
export function fieldsText(fields) {
  const f = (fields || []).map(String);
  return f.length < 2 ? (f[0] || '') : `${f.slice(0, -1).join(', ')} and ${f.at(-1)}`;
}

/**
 * What a chosen file says about itself, in one sentence for the form
 * (fileMetaOf's result; null: unknown, nothing said).
 */
export function fileMetaText(fm) {
  if (!fm) return '';
  const said = [];
  if (fm.title !== undefined) said.push(`the title “${fm.title}”`);
  if (fm.classes) {
    const names = fm.classes.length > 8 ? [...fm.classes.slice(0, 6), '…'] : fm.classes;
    said.push(`${fm.classes.length} classes (${names.join(', ')})`);
  }
  if (fm.mean) said.push(`mean ${fm.mean.join(', ')}`);
  if (fm.std) said.push(`std ${fm.std.join(', ')}`);
  const bad = fm.ignored && fm.ignored.length
    ? ` Its ${fieldsText(fm.ignored)} ${fm.ignored.length === 1 ? 'is' : 'are'} not usable and will be left out.` : '';
  if (!said.length) return `This file carries no title, classes or normalisation of its own: fill them in below.${bad}`;
  return `This file says ${fieldsText(said)}: each is used unless you fill in its field below.${bad}`;
}

/**
 * Checks a chosen file before it is sent. `kind` is "model" (.onnx) or
 * "archive" (.zip, .tar.gz, .tgz, .tar); `limit` is the server's limit in
 * bytes. Returns null when the file may go, else a sentence saying what is
 * wrong and what to do.
 */
export function checkFile(file, kind, limit) {
  if (!file) return kind === 'model' ? 'Choose the model file (.onnx).' : 'Choose the archive of images.';
  const name = file.name || 'this file';
  if (kind === 'model' && !/\.onnx$/i.test(name)) {
    return `“${name}” is not an ONNX file: strata imports a model saved as .onnx (from PyTorch: torch.onnx.export).`;
  }
  if (kind === 'archive' && !ARCHIVE_NAME.test(name)) {
    return `“${name}” is not an archive strata reads: use a .zip, .tar.gz, .tgz or .tar file.`;
  }
  if (!(file.size > 0)) return `“${name}” is empty.`;
  if (Number.isFinite(limit) && file.size > limit) {
    const what = kind === 'model' ? 'models' : 'archives';
    return `“${name}” is too big: ${formatBytes(file.size)}, and this server takes ${what} up to ${formatBytes(limit)}.`;
  }
  return null;
}

const number = (s) => {
  const t = String(s ?? '').trim();
  if (!t) return NaN;
  return Number(t.replace(',', '.'));
};

/**
 * Checks the whole form and builds the `meta` field of POST /api/models.
 * `v` holds the form's values:
 *   modelFile, title, id, classesFrom ("images" | "typed"), classesText,
 *   norm (a preset key, "file" or "custom"), mean, std (three strings each,
 *   for custom), height, width (strings, both or neither), imagesFrom
 *   ("archive" | "dataset"), dataset (a name), archiveFile, fileMeta (what
 *   the model file says, fileMetaOf's result; null or absent: not known);
 * a field left empty is left out of `meta`, and the server takes it from
 * the file's metadata when it has it;
 * `limits` is limitsOf(health). Returns {meta, errors}: `errors` maps a
 * field name to a sentence (empty when all is well; `meta` is then null).
 */
export function buildMeta(v, limits = DEFAULT_LIMITS) {
  const errors = {};
  const meta = {};

  const modelBad = checkFile(v.modelFile, 'model', limits.model);
  if (modelBad) errors.model = modelBad;

  const fm = v.fileMeta || null;
  const title = String(v.title ?? '').trim();
  if (title) meta.title = title;
  else if (fm && fm.title === undefined) {
    errors.title = 'This file carries no title of its own: give the model one, it heads its page and its card.';
  }

  const typedId = String(v.id ?? '').trim();
  if (typedId) {
    if (validId(typedId)) meta.id = typedId;
    else errors.id = `“${typedId}” cannot be an id: use lower-case letters a–z, digits and hyphens (up to ${ID_MAX}), starting and ending with a letter or digit.`;
  } else if (title) {
    const derived = idFromTitle(title);
    if (derived) meta.id = derived;
    else errors.id = 'The title has no letter a–z or digit to make an id from: type an id.';
  } else if (fm && fm.title) {
    // the id the page shows, from the file's title (the server would make one too)
    const derived = idFromTitle(fm.title);
    if (derived) meta.id = derived;
  }

  if (v.classesFrom === 'typed') {
    const names = parseClassNames(v.classesText);
    const seen = new Set();
    const twice = names.filter((n) => (seen.has(n) ? true : (seen.add(n), false)));
    if (names.length < 2) errors.classes = 'Type at least two class names, separated by commas or one per line.';
    else if (twice.length) errors.classes = `“${twice[0]}” is typed twice: each class needs its own name.`;
    else meta.classes = names;
  }

  if (v.imagesFrom === 'dataset') {
    if (!v.dataset) errors.images = 'Pick one of the server\'s datasets, or send an archive of your images.';
    else meta.dataset = String(v.dataset);
  } else {
    const bad = checkFile(v.archiveFile, 'archive', limits.archive);
    if (bad) errors.images = bad;
  }

  const preset = NORMALISATIONS.find((n) => n.key === v.norm);
  if (v.norm === NORM_FROM_FILE.key) {
    // nothing sent: the server uses the file's own, else [0, 1]
  } else if (preset) {
    meta.mean = preset.mean.slice();
    meta.std = preset.std.slice();
  } else {
    const mean = [0, 1, 2].map((i) => number(v.mean && v.mean[i]));
    const std = [0, 1, 2].map((i) => number(v.std && v.std[i]));
    if (!mean.every(Number.isFinite) || !std.every(Number.isFinite)) {
      errors.norm = 'Give a number for each of the three means and the three standard deviations.';
    } else if (!std.every((s) => s > 0)) {
      errors.norm = 'Each standard deviation must be above 0 (the pixel value is divided by it).';
    } else {
      meta.mean = mean;
      meta.std = std;
    }
  }

  const hs = String(v.height ?? '').trim();
  const ws = String(v.width ?? '').trim();
  if (hs || ws) {
    const h = Number(hs), w = Number(ws);
    const ok = (x) => Number.isInteger(x) && x >= 1 && x <= 4096;
    if (!hs || !ws) errors.input = 'Give both the height and the width, or leave both empty.';
    else if (!ok(h) || !ok(w)) errors.input = 'The height and the width are whole numbers of pixels, from 1 to 4096.';
    else meta.input = [h, w];
  }

  const failed = Object.keys(errors).length > 0;
  return { meta: failed ? null : meta, errors };
}

/** An analysis' progress ({stage, done, total}) in words: "forward 340/1200
 *  images"; "" when there is none. */
export function progressText(p) {
  if (!p || typeof p !== 'object' || !p.stage) return '';
  const stage = String(p.stage).replace(/_/g, ' ');
  if (!(Number.isFinite(p.done) && Number.isFinite(p.total) && p.total > 0)) return stage;
  // The server's stages: "loading images", "forward" (images), "clustering"
  // (layers), "calibrating"; an unknown one is shown as it comes.
  const unit = { forward: ' images', clustering: ' layers' }[stage] || '';
  return `${stage} ${p.done}/${p.total}${unit}`;
}

/** The share of a progress done, in [0, 1], or null. */
export function progressShare(p) {
  if (!p || !(Number.isFinite(p.done) && Number.isFinite(p.total) && p.total > 0)) return null;
  return Math.min(1, Math.max(0, p.done / p.total));
}

/** A model's analysis state and progress in words, for a banner or a badge:
 *  "analysing: forward 340/1200 images", "queued: waiting for its turn". */
export function analysisText(state, p = null) {
  const s = typeof state === 'string' ? state : state && state.state;
  if (s === 'queued') return 'queued: waiting for its turn';
  if (s === 'analysing') {
    const t = progressText(p);
    return t ? `analysing: ${t}` : 'analysing';
  }
  return s || 'unknown';
}

const SPLIT_WORDS = {
  archive: 'The archive\'s own train/ and test/ folders were kept as they are.',
  dataset: 'The dataset\'s own train and test images were kept as they are.',
  made: 'There were no train/ and test/ folders: strata kept 20\u00a0% of each class for testing, chosen at random with a fixed seed.',
};

/**
 * The import report of POST /api/models in words: {summary, format, split, rows
 * [{name, train, test}], total {train, test}, skipped [{entry, reason}],
 * more (skipped entries not listed)}.
 */
export function reportText(report) {
  const r = report || {};
  const rows = Array.isArray(r.classes) ? r.classes.map((c) => ({ name: c.name, train: c.train ?? 0, test: c.test ?? 0 })) : [];
  const total = rows.reduce((t, c) => ({ train: t.train + c.train, test: t.test + c.test }), { train: 0, test: 0 });
  const images = Number.isFinite(r.images) ? r.images : total.train + total.test;
  const fromDataset = r.format === 'dataset' || r.split === 'dataset';
  const from = fromDataset ? 'from the server\'s dataset'
    : `from ${Number.isFinite(r.entries) ? `${r.entries} entries of ` : ''}the archive`;
  const summary = `${images} image${images === 1 ? '' : 's'} of ${rows.length} class${rows.length === 1 ? '' : 'es'} kept ${from}.`;
  const format = !fromDataset && r.format ? `Archive format: ${r.format}.` : '';
  const note = r.split_note ? String(r.split_note) : '';
  const split = SPLIT_WORDS[r.split] || (note ? `${note[0].toUpperCase()}${note.slice(1)}${/[.!]$/.test(note) ? '' : '.'}` : '');
  const skipped = Array.isArray(r.skipped) ? r.skipped : [];
  const n = Number.isFinite(r.n_skipped) ? r.n_skipped : skipped.length;
  return { summary, format, split, rows, total, skipped, nSkipped: n, more: Math.max(0, n - skipped.length) };
}

/**
 * A refused import in plain words: {title, text, field}. `err` is an
 * ApiError (code, status, the server's message); `field` names the form
 * field to look at again, if any. The server's sentence is the text: it
 * says what is wrong with this file or these images.
 */
export function importErrorText(err, limits = DEFAULT_LIMITS) {
  const code = err && err.code;
  const status = err && err.status;
  const said = (err && err.message) || '';
  if (code === 'network' || status === 0) {
    return { title: 'The upload did not reach strata', field: null,
      text: 'The connection closed before the server answered. Is strata serve still running? ' +
        `A file over the server's limits (models up to ${formatBytes(limits.model)}, archives up to ${formatBytes(limits.archive)}) is cut off too.` };
  }
  if (status === 409 || code === 'exists') {
    return { title: 'That id is taken', field: 'id', text: `${said} Type another id, or change the title.`.trim() };
  }
  if (status === 413 || code === 'too_large') {
    return { title: 'Too large for this server', field: null,
      text: said || `Models go up to ${formatBytes(limits.model)} and archives up to ${formatBytes(limits.archive)}.` };
  }
  if (status === 400 && /meta\.title/.test(said)) {
    return { title: 'The model needs a title', field: 'title', text: said };
  }
  if (status === 503 || code === 'busy') {
    return { title: 'The server is busy importing other models', field: null,
      text: `${said} Try again in a minute: nothing you typed is lost.`.trim() };
  }
  return { title: 'strata could not import this model', field: null, text: said || 'The server refused it without saying why.' };
}
