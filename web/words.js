// words.js — counted nouns for the dashboard's sentences and tooltips, so
// that a count and its noun agree: "no images", "1 image", "72 images".
// Pure (no DOM), tested under Node.

/** `n` with its noun: "no images" for 0, "1 image", "72 images"; `many`
 *  for irregular plurals (counted(3, 'class', 'classes')). */
export function counted(n, one, many = `${one}s`) {
  if (n === 0) return `no ${many}`;
  return `${n} ${n === 1 ? one : many}`;
}
