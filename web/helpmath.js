// helpmath.js — the small computations behind the help page's live plots:
// activation functions, a 2-D convolution and max-pooling, k-means with the
// elbow, and a 2-D PCA. Written for clarity on toy sizes, not for speed (the
// real work happens in strata's C engine). Pure; tested under Node.

export const relu = (x) => Math.max(0, x);
export const sigmoid = (x) => 1 / (1 + Math.exp(-x));

/** Softmax of a list of scores, stable (subtracts the max first). */
export function softmax(z, temperature = 1) {
  const t = temperature > 0 ? temperature : 1;
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp((v - m) / t));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Evenly spaced values from a to b, n of them (n ≥ 2). */
export function linspace(a, b, n) {
  return Array.from({ length: n }, (_, i) => a + ((b - a) * i) / (n - 1));
}

/** A seeded generator in [0, 1) (mulberry32), so the help plots look the same on each visit. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal draw from a uniform generator (Box–Muller). */
export function gauss(rand) {
  const u = 1 - rand(), v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** 'valid' 2-D cross-correlation (what CNN layers call convolution) of img (H×W) with k (h×w). */
export function conv2d(img, k) {
  const H = img.length, W = img[0].length, h = k.length, w = k[0].length;
  const out = [];
  for (let y = 0; y + h <= H; y++) {
    const row = [];
    for (let x = 0; x + w <= W; x++) {
      let s = 0;
      for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) s += img[y + i][x + j] * k[i][j];
      row.push(s);
    }
    out.push(row);
  }
  return out;
}

/** Max-pooling with a size×size window and the same stride (edges that do not fill a window are dropped). */
export function maxpool(img, size = 2) {
  const out = [];
  for (let y = 0; y + size <= img.length; y += size) {
    const row = [];
    for (let x = 0; x + size <= img[0].length; x += size) {
      let m = -Infinity;
      for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) m = Math.max(m, img[y + i][x + j]);
      row.push(m);
    }
    out.push(row);
  }
  return out;
}

const d2 = (a, b) => (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2;

/**
 * k-means (k-means++ start, Lloyd iterations) on 2-D points.
 * Returns {centers, labels, inertia}; deterministic for a given seed.
 */
export function kmeans(points, k, seed = 1, iters = 50) {
  const rand = rng(seed);
  const centers = [points[Math.floor(rand() * points.length)].slice()];
  while (centers.length < k) {
    const dist = points.map((p) => Math.min(...centers.map((c) => d2(p, c))));
    const total = dist.reduce((a, b) => a + b, 0);
    let r = rand() * total, i = 0;
    while (i < points.length - 1 && r >= dist[i]) { r -= dist[i]; i++; }
    centers.push(points[i].slice());
  }
  let labels = new Array(points.length).fill(0);
  for (let it = 0; it < iters; it++) {
    const next = points.map((p) => {
      let best = 0;
      for (let c = 1; c < k; c++) if (d2(p, centers[c]) < d2(p, centers[best])) best = c;
      return best;
    });
    const changed = next.some((l, i) => l !== labels[i]);
    labels = next;
    for (let c = 0; c < k; c++) {
      const mine = points.filter((_, i) => labels[i] === c);
      if (mine.length) centers[c] = [mine.reduce((s, p) => s + p[0], 0) / mine.length,
        mine.reduce((s, p) => s + p[1], 0) / mine.length];
    }
    if (!changed && it > 0) break;
  }
  const inertia = points.reduce((s, p, i) => s + d2(p, centers[labels[i]]), 0);
  return { centers, labels, inertia };
}

/**
 * The elbow of a decreasing inertia curve: the k whose point lies farthest
 * from the straight line joining the first and last points.
 */
export function elbowK(ks, inertia) {
  const n = ks.length;
  const [x0, y0, x1, y1] = [ks[0], inertia[0], ks[n - 1], inertia[n - 1]];
  let best = ks[0], bestD = -1;
  for (let i = 0; i < n; i++) {
    const d = Math.abs((y1 - y0) * ks[i] - (x1 - x0) * inertia[i] + x1 * y0 - y1 * x0);
    if (d > bestD) { bestD = d; best = ks[i]; }
  }
  return best;
}

/**
 * PCA of 2-D points: the mean, and the two principal axes (unit vectors,
 * largest variance first) with their variances — the eigen-decomposition of
 * the 2×2 covariance matrix in closed form.
 */
export function pca2(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  let a = 0, b = 0, c = 0;
  for (const [x, y] of points) { a += (x - mx) ** 2; b += (x - mx) * (y - my); c += (y - my) ** 2; }
  a /= n - 1; b /= n - 1; c /= n - 1;
  const tr = a + c, det = a * c - b * b;
  const disc = Math.sqrt(Math.max(0, (tr * tr) / 4 - det));
  const l1 = tr / 2 + disc, l2 = tr / 2 - disc;
  let v1 = Math.abs(b) > 1e-12 ? [l1 - c, b] : a >= c ? [1, 0] : [0, 1];
  const norm = Math.hypot(v1[0], v1[1]);
  v1 = [v1[0] / norm, v1[1] / norm];
  return { mean: [mx, my], axes: [v1, [-v1[1], v1[0]]], variances: [l1, l2] };
}

/**
 * Solves the square linear system A x = b (Gaussian elimination with partial
 * pivoting; A and b are copied). Returns x, or null when A is singular.
 */
export function solve(A, b) {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    if (Math.abs(M[p][c]) < 1e-12) return null;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let j = c; j <= n; j++) M[r][j] -= f * M[c][j];
    }
  }
  const x = new Array(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let j = r + 1; j < n; j++) s -= M[r][j] * x[j];
    x[r] = s / M[r][r];
  }
  return x;
}

/**
 * LIME on a toy: a `side`×`side` grid of regions is switched on and off at
 * random (`n` samples), a black-box `model(mask)` scores each masked image,
 * and a ridge regression (penalty `lambda`, samples weighted by closeness to
 * the full image) explains the score as a sum of per-region weights. Returns
 * {weights (side×side), intercept}. Same recipe as strata's C engine, tiny.
 */
export function limeToy(model, { side = 4, n = 300, lambda = 0.01, seed = 3 } = {}) {
  const d = side * side;
  const rand = rng(seed);
  const X = [], y = [], w = [];
  for (let s = 0; s < n; s++) {
    const mask = s === 0 ? new Array(d).fill(1) : Array.from({ length: d }, () => (rand() < 0.5 ? 0 : 1));
    const off = mask.filter((v) => v === 0).length / d;
    X.push([1, ...mask]);
    y.push(model(mask));
    w.push(Math.exp(-(off * off) / (0.25 * 0.25)));
  }
  const p = d + 1;
  const A = Array.from({ length: p }, () => new Array(p).fill(0));
  const b = new Array(p).fill(0);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < p; i++) {
      b[i] += w[s] * X[s][i] * y[s];
      for (let j = 0; j < p; j++) A[i][j] += w[s] * X[s][i] * X[s][j];
    }
  }
  for (let i = 1; i < p; i++) A[i][i] += lambda;
  const coef = solve(A, b) || new Array(p).fill(0);
  const weights = [];
  for (let r = 0; r < side; r++) weights.push(coef.slice(1 + r * side, 1 + (r + 1) * side));
  return { weights, intercept: coef[0] };
}

/** Purity of a clustering: the share of items that belong to their cluster's majority class. */
export function purity(labels, classes) {
  const by = new Map();
  labels.forEach((l, i) => {
    if (!by.has(l)) by.set(l, new Map());
    const m = by.get(l);
    m.set(classes[i], (m.get(classes[i]) || 0) + 1);
  });
  let s = 0;
  for (const m of by.values()) s += Math.max(...m.values());
  return labels.length ? s / labels.length : 0;
}

/** Adjusted Rand index between two labelings (Hubert & Arabie): 1 identical, ≈0 chance. */
export function ari(a, b) {
  const n = a.length;
  const c2 = (x) => (x * (x - 1)) / 2;
  const cell = new Map(), ra = new Map(), rb = new Map();
  for (let i = 0; i < n; i++) {
    const key = `${a[i]}\u0000${b[i]}`;
    cell.set(key, (cell.get(key) || 0) + 1);
    ra.set(a[i], (ra.get(a[i]) || 0) + 1);
    rb.set(b[i], (rb.get(b[i]) || 0) + 1);
  }
  let index = 0, sa = 0, sb = 0;
  for (const v of cell.values()) index += c2(v);
  for (const v of ra.values()) sa += c2(v);
  for (const v of rb.values()) sb += c2(v);
  const expected = (sa * sb) / c2(n);
  const max = (sa + sb) / 2;
  return max === expected ? 1 : (index - expected) / (max - expected);
}
