// describe.js — short sentences a newcomer can read next to a LIME map: what
// the image was taken for, which regions weighed most, and where its path
// through the layers left the clusters of its true class. The sentences are
// composed here from the numbers the server sends (not from its own
// `description`, which puts "a" before class names, and class names are
// plural as often as not: "a buildings"). A class name is quoted as the
// model's word (taken for “sea”) or used as an adjective (a buildings photo),
// never given an article. Pure (no DOM), tested under Node.

function pct(p) {
  return typeof p === 'number' && Number.isFinite(p) ? `${Math.round(p * 100)}\u00a0%` : null;
}

/** A class name as the model's word: “sea”. */
export function quoted(cls) {
  return `“${cls}”`;
}

/** "Buildings photo" style: the class name used as an adjective, capitalised. */
function photoOf(cls) {
  const s = String(cls);
  return `${s.charAt(0).toUpperCase()}${s.slice(1)} photo`;
}

/** The segments that pushed the answer up, strongest first. */
export function topSegments(weights, n = 3) {
  return (weights || [])
    .filter((w) => typeof w.weight === 'number' && w.weight > 0)
    .sort((a, b) => b.weight - a.weight)
    .slice(0, n);
}

/**
 * A description of why a dataset image was misread. `item` is an entry of
 * GET /api/models/{id}/misclassified; `expl` (optional) the image's LIME
 * explanation. Returns a string of one to four sentences.
 */
export function describeMistake(item, expl = null) {
  const out = [];
  const p = pct(item.probability);
  const tp = pct(item.true_probability);
  out.push(`${photoOf(item.true)} taken for ${quoted(item.pred)}${p ? ` (${p})` : ''}` +
    `${tp ? `; the right answer, ${quoted(item.true)}, got ${tp}` : ''}.`);
  if (expl && Array.isArray(expl.weights)) {
    const pos = expl.weights.filter((w) => w.weight > 0);
    const total = pos.reduce((s, w) => s + w.weight, 0);
    const top = topSegments(expl.weights, 3);
    if (top.length && total > 0) {
      const share = top.reduce((s, w) => s + w.weight, 0) / total;
      out.push(`Of the ${expl.segments ?? expl.weights.length} regions LIME cut the image into, ` +
        `${top.length === 1 ? 'one carries' : `${top.length} carry`} ${Math.round(share * 100)}\u00a0% of the weight ` +
        `pushing towards ${quoted(expl.class ?? item.pred)} — ${top.length === 1 ? 'it is' : 'they are'} among the ` +
        'regions outlined on the overlay.');
    } else {
      out.push('No region pushes clearly towards this answer: the model\'s choice is spread over the whole image.');
    }
    if (typeof expl.score === 'number') {
      out.push(expl.score >= 0.5
        ? `The explanation fits the model well here (R² ${expl.score.toFixed(2)}).`
        : `Read the map with care: the explanation only roughly fits the model here (R² ${expl.score.toFixed(2)}).`);
    }
  }
  if (item.left_at) {
    out.push(`Its path left the clusters of ${item.true} images at layer ${item.left_at} and never came back.`);
  } else if (item.left_at === null) {
    out.push(`Its path stayed in clusters of ${item.true} images through every layer: only the final decision went wrong.`);
  }
  return out.join(' ');
}

/**
 * Sentences about an uploaded image's prediction (POST …/predict reply).
 * Uses the doubt's own explanation when present.
 */
export function describePrediction(reply) {
  const out = [];
  const p = pct(reply.probability);
  out.push(`The model says ${quoted(reply.predicted)}${p ? ` (${p})` : ''}.`);
  const probs = (reply.probabilities || []).slice().sort((a, b) => b.probability - a.probability);
  if (probs.length > 1 && probs[1].probability > 0.2) {
    out.push(`It hesitates with ${quoted(probs[1].class)} (${pct(probs[1].probability)}).`);
  }
  if (reply.doubt && typeof reply.doubt.explanation === 'string' && reply.doubt.explanation) {
    out.push(reply.doubt.explanation);
  }
  return out.join(' ');
}
