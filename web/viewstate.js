// viewstate.js — what the model page shows, kept in its URL so that a reload,
// a link sent to someone and the back button all find the same view:
//
//   id       the model (model.html?id=felines)
//   layer    the layer panel's layer, as the model's layer index (absent: the first analysed one)
//   k<L>=N   the reader's k for layer L, where it is not the analysis's own (k3=5)
//   colour   "class" when the scatter is coloured by true class (absent: by cluster)
//   class    the class whose paths are highlighted
//   image    the test image opened (its image id, "jaguar/0012.jpg"): a mistake,
//            a point of the scatter or a thumbnail of the gallery below
//   cell     the confusion-matrix cell whose images are shown, "t.p" (true
//            and answered class indices: cell=1.2)
//   cluster  the cluster whose images are shown, "L.c" (the model's layer
//            index and the cluster, at the k the URL gives that layer:
//            cluster=6.2)
//
// Pure (no DOM): the page reads location.search with readView and writes
// viewSearch's answer with history.pushState. Tested under Node.

const LAYER = /^\d{1,4}$/;
const K = /^k(\d{1,4})$/;
const K_VALUE = /^\d{1,2}$/;
const PAIR = /^\d{1,4}\.\d{1,4}$/;

/** The view a query string describes (unknown or malformed keys ignored):
 *  {layer: int | null, k: Map layer -> k, colour: 'cluster' | 'class',
 *  cls: string | null, image: string | null}, with `cell` and `cluster`
 *  ("t.p", "L.c") only when the query has them. */
export function readView(search) {
  const q = new URLSearchParams(search);
  const layer = q.get('layer');
  const k = new Map();
  for (const [key, value] of q) {
    const m = K.exec(key);
    if (m && K_VALUE.test(value)) k.set(Number(m[1]), Number(value));
  }
  const view = {
    layer: layer !== null && LAYER.test(layer) ? Number(layer) : null,
    k,
    colour: q.get('colour') === 'class' ? 'class' : 'cluster',
    cls: q.get('class') || null,
    image: q.get('image') || null,
  };
  // One gallery at a time: a cell, else a cluster.
  const cell = q.get('cell'), cluster = q.get('cluster');
  if (cell !== null && PAIR.test(cell)) view.cell = cell;
  else if (cluster !== null && PAIR.test(cluster)) view.cluster = cluster;
  return view;
}

/** The query string ("?id=…&…") for model `id` shown as `view` (readView's
 *  shape; what is at its default is left out). */
export function viewSearch(id, view = {}) {
  const q = new URLSearchParams();
  q.set('id', id);
  if (Number.isInteger(view.layer)) q.set('layer', String(view.layer));
  const ks = [...(view.k || new Map())].filter(([l, kk]) => Number.isInteger(l) && Number.isInteger(kk))
    .sort((a, b) => a[0] - b[0]);
  for (const [l, kk] of ks) q.set(`k${l}`, String(kk));
  if (view.colour === 'class') q.set('colour', 'class');
  if (view.cls) q.set('class', view.cls);
  if (view.image) q.set('image', view.image);
  if (view.cell && PAIR.test(view.cell)) q.set('cell', view.cell);
  else if (view.cluster && PAIR.test(view.cluster)) q.set('cluster', view.cluster);
  return `?${q}`;
}
