// uploadk.js — where the reader's upload falls at the k they chose for a
// layer. A predict reply places the upload among the analysis's own
// clusters of each layer; for a layer the reader clustered with another k
// the page asks predict again with `k<layer>=<k>` (its `clusters_at`: the
// cluster of that k-means, as GET …/layers/{layer}/scatter?k= makes it).
// The answers of every ask for one upload are kept together in its reply:
// `clusters_at` (the server's field, each layer and k once) and, for the
// asks that were refused or failed, `clusters_failed` [{layer, k,
// message}] (this page's own field), so that the star, the line in the
// graph of paths and the table say why a cluster is not known.
//
// Pure: no DOM, no network (tested under Node).

/** The upload's cluster at `layer` clustered with `k`, from the reply's
 *  `clusters_at`, or null when not known. */
export function clusterAt(reply, layer, k) {
  const hit = (reply?.clusters_at || []).find((c) => c.layer === layer && c.k === k);
  return hit && Number.isInteger(hit.cluster) ? hit.cluster : null;
}

/** Why the ask for `layer` at `k` failed (a sentence), or null. */
export function failedAt(reply, layer, k) {
  const hit = (reply?.clusters_failed || []).find((c) => c.layer === layer && c.k === k);
  return hit ? hit.message || 'no reason given' : null;
}

/** The [layer, k] pairs of `kMap` (Map layer -> k, the reader's k where it
 *  is not the analysis's) the reply neither knows nor failed to learn. */
export function missingAt(reply, kMap) {
  const out = [];
  for (const [layer, k] of kMap || []) {
    if (clusterAt(reply, layer, k) === null && failedAt(reply, layer, k) === null) out.push([layer, k]);
  }
  return out;
}

/** The reply with `found` ([{layer, k, cluster}], a later reply's
 *  clusters_at) and `failed` ([{layer, k, message}]) added; an entry for a
 *  layer and k it has replaces the old one. Returns a new object. */
export function withClustersAt(reply, found = [], failed = []) {
  const key = (c) => `${c.layer}:${c.k}`;
  const known = new Map((reply.clusters_at || []).map((c) => [key(c), c]));
  for (const c of found || []) known.set(key(c), { layer: c.layer, k: c.k, cluster: c.cluster });
  const bad = new Map((reply.clusters_failed || []).map((c) => [key(c), c]));
  for (const c of failed || []) bad.set(key(c), { layer: c.layer, k: c.k, message: c.message });
  for (const k of known.keys()) bad.delete(k);
  return { ...reply, clusters_at: [...known.values()], clusters_failed: [...bad.values()] };
}
