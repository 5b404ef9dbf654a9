// describe.js — short sentences a newcomer can read next to a LIME map: what
// the image was taken for, which regions weighed most, and where its path
// through the layers left the clusters of its true class. The server's own
// `description` wins when it sends one; otherwise the sentences are composed
// here from the numbers it did send. Pure (no DOM), tested under Node.

function pct(p) {
  return typeof p === 'number' && Number.isFinite(p) ? `${Math.round(p * 100)} %` : null;
}

function article(word) {
  return /^[aeiou]/i.test(word) ? 'an' : 'a';
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
  if (expl && typeof expl.description === 'string' && expl.description.trim()) return expl.description.trim();
  const out = [];
  const p = pct(item.probability);
  out.push(`Taken for ${article(item.pred)} ${item.pred}${p ? ` (${p})` : ''} although it is ${article(item.true)} ${item.true}` +
    `${pct(item.true_probability) ? ` (${pct(item.true_probability)} for the right answer)` : ''}.`);
  if (expl && Array.isArray(expl.weights)) {
    const pos = expl.weights.filter((w) => w.weight > 0);
    const total = pos.reduce((s, w) => s + w.weight, 0);
    const top = topSegments(expl.weights, 3);
    if (top.length && total > 0) {
      const share = top.reduce((s, w) => s + w.weight, 0) / total;
      out.push(`Of the ${expl.segments ?? expl.weights.length} regions LIME cut the image into, ` +
        `${top.length === 1 ? 'one carries' : `${top.length} carry`} ${Math.round(share * 100)} % of the weight ` +
        `pushing towards “${expl.class ?? item.pred}” — they are the brightest on the map.`);
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
    out.push(`Its path stayed in ${item.true} clusters through every layer: only the final decision went wrong.`);
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
  out.push(`The model says ${article(reply.predicted)} ${reply.predicted}${p ? ` (${p})` : ''}.`);
  const probs = (reply.probabilities || []).slice().sort((a, b) => b.probability - a.probability);
  if (probs.length > 1 && probs[1].probability > 0.2) {
    out.push(`It hesitates with ${probs[1].class} (${pct(probs[1].probability)}).`);
  }
  if (reply.doubt && typeof reply.doubt.explanation === 'string' && reply.doubt.explanation) {
    out.push(reply.doubt.explanation);
  }
  return out.join(' ');
}
