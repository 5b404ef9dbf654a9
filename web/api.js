// api.js — the one place the dashboard talks to strata's JSON API (docs/api.md).
//
// Every failure, whoever detects it, comes out as an ApiError carrying the
// server's machine code, HTTP status and the sentence the server wrote for a
// person, so pages can show that sentence as is. A 503 "busy" reply is retried
// after its Retry-After delay, a few times, because LIME work shares a bounded
// worker pool on the server and a short wait is the expected remedy.
//
// No DOM access here: the module also runs under Node (tests/web/api.test.mjs).

/** An API failure: `code` is the server's machine code ("not_found", "busy",
 *  "network", ...), `status` the HTTP status (0 when no reply came). */
export class ApiError extends Error {
  constructor(message, { code = 'error', status = 0 } = {}) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
  }
}

// Module state, set once by pages that need another origin (tests do).
let base = '';
const BUSY_RETRIES = 4;
const BUSY_MAX_WAIT_S = 10;

/** Makes relative API paths resolve against `origin` (e.g. "http://127.0.0.1:8080").
 *  Pages never call this: in a browser the page's own origin is right. */
export function setBase(origin) {
  base = origin.replace(/\/$/, '');
}

/** Encodes an image id for a URL path: each part of "jaguar/0012.jpg" is
 *  percent-encoded on its own and the slash kept ("jaguar/0012.jpg"), the form
 *  the server's own URLs (cover, thumb) use; an index ("17") stays one segment.
 *  (docs/api.md also names the one-segment "jaguar%2F0012.jpg" form, which
 *  the server's router refuses as a decoded '/'.) */
export function encodeImageId(id) {
  return String(id).split('/').map(encodeURIComponent).join('/');
}

/** URL of a dataset image of a model's analysed split (full size or 64×64 thumb). */
export function imageUrl(modelId, imageId, { thumb = false } = {}) {
  const u = `${base}/api/models/${encodeURIComponent(modelId)}/images/${encodeImageId(imageId)}`;
  return thumb ? `${u}/thumb` : u;
}

/** Turns a non-2xx Response into an ApiError, reading the error envelope
 *  {"error":{"code","message"}} when the body holds one. */
export async function errorFromResponse(res) {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // No body to read: the generic sentence stays.
  }
  return errorFromBody(res.status, res.statusText, text);
}

/** The ApiError for a non-2xx reply whose status, status text and body
 *  text are known (fetch and XMLHttpRequest replies alike). */
export function errorFromBody(status, statusText, text) {
  let code = `http_${status}`;
  let message = `The server answered ${status}${statusText ? ' ' + statusText : ''}.`;
  try {
    const body = text ? JSON.parse(text) : null;
    if (body && body.error && typeof body.error === 'object') {
      if (typeof body.error.code === 'string') code = body.error.code;
      if (typeof body.error.message === 'string' && body.error.message) message = body.error.message;
    }
  } catch {
    // Not JSON (a proxy's HTML page, say): keep the generic sentence.
  }
  return new ApiError(message, { code, status });
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    if (signal) {
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(signal.reason ?? new DOMException('Aborted', 'AbortError'));
      }, { once: true });
    }
  });
}

/** fetch() with the envelope and busy handling. Resolves to the Response
 *  (2xx only); rejects with ApiError. `init.body` must be re-sendable
 *  (a Blob, FormData or string) because a busy reply is retried. */
export async function request(path, init = {}) {
  const url = /^https?:/.test(path) ? path : base + path;
  for (let attempt = 0; ; attempt++) {
    let res;
    try {
      res = await fetch(url, init);
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      throw new ApiError('Could not reach the strata server. Is `strata serve` still running?',
        { code: 'network', status: 0 });
    }
    if (res.ok) return res;
    if (res.status === 503 && attempt < BUSY_RETRIES) {
      const after = Number(res.headers.get('Retry-After'));
      const wait = Number.isFinite(after) && after > 0 ? Math.min(after, BUSY_MAX_WAIT_S) : 1 + attempt;
      await res.body?.cancel?.();
      await sleep(wait * 1000, init.signal);
      continue;
    }
    throw await errorFromResponse(res);
  }
}

/** GET a JSON document. Rejects with ApiError (including a 2xx that is not JSON). */
export async function getJSON(path, init = {}) {
  const res = await request(path, { ...init, method: 'GET', headers: { Accept: 'application/json' } });
  try {
    return await res.json();
  } catch {
    throw new ApiError(`The server's answer to ${path} is not valid JSON.`, { code: 'bad_json', status: res.status });
  }
}

/** POSTs an image (File or Blob) to /api/models/{id}/predict as multipart
 *  field "image"; `explain: false` asks for no LIME. With no `blob`,
 *  `image` (an index or "class/file" of the analysed split) names the image
 *  and nothing is sent. `k` (a Map or [[layer, k], ...]) asks where the
 *  image falls at each layer clustered with that k (the reply's
 *  `clusters_at`). Resolves to the prediction JSON; rejects with ApiError
 *  carrying the server's message (413 too large, 400/415 not an image, 400
 *  bad_parameter for a layer or k out of range, 404 no such image). */
export async function predict(modelId, blob, { explain = true, filename = 'image', signal, image = null, k = null } = {}) {
  const q = new URLSearchParams();
  if (!explain) q.set('explain', '0');
  const init = { method: 'POST', signal, headers: { Accept: 'application/json' } };
  if (blob) {
    const form = new FormData();
    form.append('image', blob, blob.name || filename);
    init.body = form;
  } else if (image !== null && image !== undefined) {
    q.set('image', String(image));
  }
  for (const [layer, kk] of k || []) q.append(`k${layer}`, String(kk));
  const qs = q.toString();
  const res = await request(`/api/models/${encodeURIComponent(modelId)}/predict${qs ? `?${qs}` : ''}`, init);
  try {
    return await res.json();
  } catch {
    throw new ApiError('The prediction reply is not valid JSON.', { code: 'bad_json', status: res.status });
  }
}

/** POSTs to /api/models/{id}/explain: one prediction explained by several
 *  methods side by side, each map scored. `params` make the query string
 *  (image, method, class, layer, steps, baseline, patch, stride; a null,
 *  undefined or empty value is left out). `body` (a File or Blob), when
 *  given, is the image, sent as multipart field "image" as predict() does;
 *  without it, `params.image` names one of the model's analysed images.
 *  Resolves to the reply JSON; rejects with ApiError (400 bad parameter,
 *  404 no such image, 415 not an image, ...). */
export async function explain(modelId, params = {}, { body = null, filename = 'image', signal } = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== '') q.append(k, String(v));
  }
  const qs = q.toString();
  const init = { method: 'POST', signal, headers: { Accept: 'application/json' } };
  if (body) {
    const form = new FormData();
    form.append('image', body, body.name || filename);
    init.body = form;
  }
  const res = await request(`/api/models/${encodeURIComponent(modelId)}/explain${qs ? `?${qs}` : ''}`, init);
  try {
    return await res.json();
  } catch {
    throw new ApiError('The explanation reply is not valid JSON.', { code: 'bad_json', status: res.status });
  }
}

/** POSTs to /api/models/{id}/features: what layer `layer` (an index or a
 *  name) sees in one image, its `top` strongest channels mapped. The image
 *  is `body` (a File or Blob, sent as multipart field "image" as predict()
 *  does) or, without a body, `image` (an index or "class/file" of the
 *  analysed split). Resolves to the reply JSON; rejects with ApiError (400
 *  unknown layer or top out of range, 404 no such image, 415, ...). */
export async function features(modelId, { layer, top = null, image = null } = {}, { body = null, filename = 'image', signal } = {}) {
  const q = new URLSearchParams({ layer: String(layer) });
  if (top !== null && top !== undefined) q.set('top', String(top));
  const init = { method: 'POST', signal, headers: { Accept: 'application/json' } };
  if (body) {
    const form = new FormData();
    form.append('image', body, body.name || filename);
    init.body = form;
  } else if (image !== null && image !== undefined) {
    q.set('image', String(image));
  }
  const res = await request(`/api/models/${encodeURIComponent(modelId)}/features?${q}`, init);
  try {
    return await res.json();
  } catch {
    throw new ApiError('The reply about the layer\'s channels is not valid JSON.', { code: 'bad_json', status: res.status });
  }
}

/**
 * POSTs a FormData with XMLHttpRequest, whose upload events fetch() lacks:
 * `onProgress({loaded, total})` follows the bytes sent, `onSent()` is called
 * once the whole body is out (the server then works on it). Resolves to
 * {status, body (the parsed JSON, or null), location (the Location header)}
 * for a 2xx reply; rejects with ApiError (the envelope's code and message;
 * code "network" when no reply came, "abort" when `signal` aborted it). A
 * busy reply is not retried: the body may be large, the person decides.
 * Browser only.
 */
export function sendForm(path, form, { onProgress = null, onSent = null, signal = null } = {}) {
  const url = /^https?:/.test(path) ? path : base + path;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => {
      if (onProgress) onProgress({ loaded: e.loaded, total: e.lengthComputable ? e.total : null });
    });
    xhr.upload.addEventListener('load', () => { if (onSent) onSent(); });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        let body = null;
        try {
          body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          reject(new ApiError(`The server's answer to ${path} is not valid JSON.`, { code: 'bad_json', status: xhr.status }));
          return;
        }
        resolve({ status: xhr.status, body, location: xhr.getResponseHeader('Location') });
      } else {
        reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(
      'Could not reach the strata server, or it closed the connection during the upload.', { code: 'network', status: 0 })));
    xhr.addEventListener('abort', () => reject(new ApiError('The upload was stopped.', { code: 'abort', status: 0 })));
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(form);
  });
}

/** DELETEs an imported model (204). Rejects with ApiError: 403
 *  not_deletable (a demo or command-line model), 404 unknown. */
export async function deleteModel(id) {
  await request(`/api/models/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { Accept: 'application/json' } });
}

/** PUTs the layers an imported model shows: `shown` a list of value, node
 *  or layer names of GET …/graph, or null for strata's choice. Resolves to
 *  the new model detail (analysed anew); rejects with ApiError (400 with
 *  the server's sentence for a name the graph lacks, or not_imported). */
export async function setLayers(id, shown) {
  const res = await request(`/api/models/${encodeURIComponent(id)}/layers`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ shown }),
  });
  try {
    return await res.json();
  } catch {
    throw new ApiError('The reply to the choice of layers is not valid JSON.', { code: 'bad_json', status: res.status });
  }
}

/** GETs a binary resource (an image) as a Blob. */
export async function getBlob(path, init = {}) {
  const res = await request(path, { ...init, method: 'GET' });
  return res.blob();
}

// Shorthands for the endpoints of docs/api.md, so that URL shapes live here only.
const m = (id) => `/api/models/${encodeURIComponent(id)}`;
export const api = {
  health: (o) => getJSON('/api/health', o),
  models: (o) => getJSON('/api/models', o),
  datasets: (o) => getJSON('/api/datasets', o),
  /** POST /api/models: `form` holds meta, model and (optionally) images, in that order. */
  createModel: (form, o) => sendForm('/api/models', form, o),
  deleteModel: (id) => deleteModel(id),
  model: (id, o) => getJSON(m(id), o),
  graph: (id, o) => getJSON(`${m(id)}/graph`, o),
  setLayers: (id, shown) => setLayers(id, shown),
  paths: (id, o) => getJSON(`${m(id)}/paths`, o),
  scatter: (id, layer, k, o) =>
    getJSON(`${m(id)}/layers/${encodeURIComponent(layer)}/scatter${k ? `?k=${k}` : ''}`, o),
  elbow: (id, layer, o) => getJSON(`${m(id)}/layers/${encodeURIComponent(layer)}/elbow`, o),
  misclassified: (id, o) => getJSON(`${m(id)}/misclassified`, o),
  doubt: (id, o) => getJSON(`${m(id)}/doubt`, o),
  explanation: (id, image, o) => getJSON(`${m(id)}/images/${encodeImageId(image)}/explanation`, o),
  uploadExplanation: (eid, o) => getJSON(`/api/explanations/${encodeURIComponent(eid)}`, o),
};
