/*
 * slic.c — SLIC superpixels (see slic.h for the algorithm and its contract).
 *
 * Cost is O(N) per iteration: each of the K centres scans a window of about
 * (2S)² = 4N/K pixels. The only allocations are made once per call.
 */
#include "slic.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLIC_ITERATIONS 10
/* A connected piece smaller than this fraction of N/K is merged away. */
#define SLIC_MIN_SIZE_FRACTION 0.25

/* sRGB D65 → XYZ (IEC 61966-2-1, as tabulated by B. Lindbloom). The rows sum
 * to the D65 white point, so white maps to X/Xn = Y/Yn = Z/Zn = 1 exactly. */
static const double rgb_to_xyz[3][3] = {
    {0.4124564, 0.3575761, 0.1804375},
    {0.2126729, 0.7151522, 0.0721750},
    {0.0193339, 0.1191920, 0.9503041},
};
static const double white_d65[3] = {0.4124564 + 0.3575761 + 0.1804375,
                                    0.2126729 + 0.7151522 + 0.0721750,
                                    0.0193339 + 0.1191920 + 0.9503041};

/* CIE f(t): cube root above (6/29)³, a linear segment below so f and its
 * slope are continuous there. */
static double lab_f(double t)
{
    const double d = 6.0 / 29.0;
    return t > d * d * d ? cbrt(t) : t / (3 * d * d) + 4.0 / 29.0;
}

void slic_rgb_to_lab(const uint8_t *rgb, int n, float *lab)
{
    /* The sRGB transfer curve for each of the 256 codes, built per call
     * (256 pow calls, negligible next to the per-pixel cube roots). */
    double lin[256];
    for (int v = 0; v < 256; v++) {
        double c = v / 255.0;
        lin[v] = c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
    }
    for (int i = 0; i < n; i++) {
        const uint8_t *p = rgb + 3 * (size_t)i;
        double r = lin[p[0]], g = lin[p[1]], b = lin[p[2]];
        double f[3];
        for (int k = 0; k < 3; k++) {
            double v = rgb_to_xyz[k][0] * r + rgb_to_xyz[k][1] * g + rgb_to_xyz[k][2] * b;
            f[k] = lab_f(v / white_d65[k]);
        }
        lab[3 * (size_t)i + 0] = (float)(116 * f[1] - 16);
        lab[3 * (size_t)i + 1] = (float)(500 * (f[0] - f[1]));
        lab[3 * (size_t)i + 2] = (float)(200 * (f[1] - f[2]));
    }
}

static inline float sq(float v) { return v * v; }

/* Squared Lab gradient at (x, y) from central differences, edges clamped. */
static float gradient(const float *lab, int w, int h, int x, int y)
{
    int xl = x > 0 ? x - 1 : x, xr = x < w - 1 ? x + 1 : x;
    int yu = y > 0 ? y - 1 : y, yd = y < h - 1 ? y + 1 : y;
    const float *l = lab + 3 * ((size_t)y * w + xl), *r = lab + 3 * ((size_t)y * w + xr);
    const float *u = lab + 3 * ((size_t)yu * w + x), *d = lab + 3 * ((size_t)yd * w + x);
    float g = 0;
    for (int c = 0; c < 3; c++)
        g += sq(r[c] - l[c]) + sq(d[c] - u[c]);
    return g;
}

/* A cluster centre: colour and position. */
struct centre {
    float l, a, b, x, y;
};

static int find_root(int *parent, int c)
{
    int r = c;
    while (parent[r] != r)
        r = parent[r];
    while (parent[c] != r) { /* path compression */
        int next = parent[c];
        parent[c] = r;
        c = next;
    }
    return r;
}

/* Scratch of the connectivity step, all sized for the worst case of one
 * component per pixel. */
struct components {
    int *comp;    /* N: component of each pixel */
    int *queue;   /* N: pixels in BFS order; component c owns queue[start[c] .. +size[c]) */
    int *start;   /* N */
    int *size;    /* N: merged size for roots */
    int *parent;  /* N: union-find over components */
    int *order;   /* N: small components, smallest first */
    int *next;    /* N: the members of a root's set as a list: root, next[root], ... */
    int *tail;    /* N: last member of a root's list */
    double *sum;  /* 3N: Lab sums, merged for roots */
};

/* Smallest first, ties by index (qsort_r: the sizes travel as context, so
 * concurrent calls share nothing). */
static int cmp_by_size(const void *pa, const void *pb, void *ctx)
{
    const int *size = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (size[a] != size[b])
        return size[a] < size[b] ? -1 : 1;
    return (a > b) - (a < b);
}

/* Splits labels into 4-connected pieces, merges small pieces into their most
 * similar neighbour, and renumbers in raster order. Returns the count. */
static int enforce_connectivity(int *labels, const float *lab, int w, int h, int min_size,
                                struct components *cs)
{
    const int n = w * h;
    int *comp = cs->comp, *queue = cs->queue;
    for (int p = 0; p < n; p++)
        comp[p] = -1;
    int ncomp = 0, qtail = 0;
    for (int p0 = 0; p0 < n; p0++) {
        if (comp[p0] >= 0)
            continue;
        int c = ncomp++, lbl = labels[p0], qhead = qtail;
        cs->start[c] = qtail;
        comp[p0] = c;
        queue[qtail++] = p0;
        double s0 = 0, s1 = 0, s2 = 0;
        while (qhead < qtail) {
            int p = queue[qhead++], x = p % w, y = p / w;
            s0 += lab[3 * (size_t)p];
            s1 += lab[3 * (size_t)p + 1];
            s2 += lab[3 * (size_t)p + 2];
            int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1,
                         y < h - 1 ? p + w : -1};
            for (int k = 0; k < 4; k++) {
                int q = nb[k];
                if (q >= 0 && comp[q] < 0 && labels[q] == lbl) {
                    comp[q] = c;
                    queue[qtail++] = q;
                }
            }
        }
        cs->size[c] = qtail - cs->start[c];
        cs->parent[c] = c;
        cs->next[c] = -1;
        cs->tail[c] = c;
        cs->sum[3 * (size_t)c] = s0;
        cs->sum[3 * (size_t)c + 1] = s1;
        cs->sum[3 * (size_t)c + 2] = s2;
    }

    int nsmall = 0;
    for (int c = 0; c < ncomp; c++)
        if (cs->size[c] < min_size)
            cs->order[nsmall++] = c;
    qsort_r(cs->order, (size_t)nsmall, sizeof(int), cmp_by_size, cs->size);

    for (int i = 0; i < nsmall; i++) {
        int c = cs->order[i], r = find_root(cs->parent, c);
        if (cs->size[r] >= min_size)
            continue;
        double mr[3];
        for (int k = 0; k < 3; k++)
            mr[k] = cs->sum[3 * (size_t)r + k] / cs->size[r];
        int best = -1;
        double best_d = DBL_MAX;
        /* The neighbours of r's whole set (every member piece's pixels; the set
         * is small, so this is cheap). */
        for (int mc = r; mc >= 0; mc = cs->next[mc]) {
            int end = mc + 1 < ncomp ? cs->start[mc + 1] : n;
            for (int j = cs->start[mc]; j < end; j++) {
                int p = queue[j], x = p % w, y = p / w;
                int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1,
                             y < h - 1 ? p + w : -1};
                for (int k = 0; k < 4; k++) {
                    if (nb[k] < 0)
                        continue;
                    int o = find_root(cs->parent, comp[nb[k]]);
                    if (o == r)
                        continue;
                    double dd = 0;
                    for (int t = 0; t < 3; t++) {
                        double v = cs->sum[3 * (size_t)o + t] / cs->size[o] - mr[t];
                        dd += v * v;
                    }
                    if (dd < best_d || (dd == best_d && o < best)) {
                        best_d = dd;
                        best = o;
                    }
                }
            }
        }
        if (best < 0)
            continue; /* the whole image is one piece */
        cs->parent[r] = best;
        cs->next[cs->tail[best]] = r;
        cs->tail[best] = cs->tail[r];
        cs->size[best] += cs->size[r];
        for (int t = 0; t < 3; t++)
            cs->sum[3 * (size_t)best + t] += cs->sum[3 * (size_t)r + t];
    }

    /* Renumber roots in raster order of first appearance; order[] is reused
     * as the root → label map. */
    int *newid = cs->order;
    for (int c = 0; c < ncomp; c++)
        newid[c] = -1;
    int nseg = 0;
    for (int p = 0; p < n; p++) {
        int r = find_root(cs->parent, comp[p]);
        if (newid[r] < 0)
            newid[r] = nseg++;
        labels[p] = newid[r];
    }
    return nseg;
}

int slic_segment(const uint8_t *rgb, int w, int h, int n_segments, float compactness,
                 int *labels, int *n_out, char *err)
{
    assert(rgb && labels && n_out);
    if (w < 2 || h < 2)
        return strata_fail(err, STRATA_E_ARG,
                           "slic: the image is %dx%d; superpixels need at least 2x2 pixels", w, h);
    const int n = w * h;
    if (n_segments < 1 || n_segments > n / 4)
        return strata_fail(err, STRATA_E_ARG,
                           "slic: n_segments is %d; a %dx%d image takes between 1 and %d", n_segments,
                           w, h, n / 4);
    if (!(compactness > 0) || !isfinite(compactness))
        return strata_fail(err, STRATA_E_ARG, "slic: compactness is %g; it must be > 0",
                           (double)compactness);

    /* The grid: nx×ny cells of about S×S, S = sqrt(N/K). */
    double s0 = sqrt((double)n / n_segments);
    int nx = (int)lround(w / s0), ny = (int)lround(h / s0);
    nx = nx < 1 ? 1 : nx > w ? w : nx;
    ny = ny < 1 ? 1 : ny > h ? h : ny;
    const int kc = nx * ny;
    const double step = sqrt((double)n / kc);

    float *lab = malloc(3 * (size_t)n * sizeof(float));
    float *dist = malloc((size_t)n * sizeof(float));
    int *prev = malloc((size_t)n * sizeof(int));
    struct centre *ct = malloc((size_t)kc * sizeof(struct centre));
    double *acc = malloc(6 * (size_t)kc * sizeof(double));
    struct components cs = {
        .comp = malloc((size_t)n * sizeof(int)),
        .queue = malloc((size_t)n * sizeof(int)),
        .start = malloc((size_t)n * sizeof(int)),
        .size = malloc((size_t)n * sizeof(int)),
        .parent = malloc((size_t)n * sizeof(int)),
        .order = malloc((size_t)n * sizeof(int)),
        .next = malloc((size_t)n * sizeof(int)),
        .tail = malloc((size_t)n * sizeof(int)),
        .sum = malloc(3 * (size_t)n * sizeof(double)),
    };
    int rc = STRATA_OK;
    if (!lab || !dist || !prev || !ct || !acc || !cs.comp || !cs.queue || !cs.start ||
        !cs.size || !cs.parent || !cs.order || !cs.next || !cs.tail || !cs.sum) {
        rc = strata_fail(err, STRATA_E_NOMEM, "slic: out of memory for a %dx%d image", w, h);
        goto out;
    }

    slic_rgb_to_lab(rgb, n, lab);

    /* Seeds at the cell centres, each moved to the lowest-gradient pixel of
     * its 3×3 neighbourhood so it does not start on an edge or noisy pixel.
     * The first strictly smaller gradient wins, keeping this deterministic. */
    for (int j = 0; j < ny; j++) {
        for (int i = 0; i < nx; i++) {
            int sx = (int)((i + 0.5) * w / nx), sy = (int)((j + 0.5) * h / ny);
            int bx = sx, by = sy;
            float bg = gradient(lab, w, h, sx, sy);
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    int x = sx + dx, y = sy + dy;
                    if (x < 0 || x >= w || y < 0 || y >= h)
                        continue;
                    float g = gradient(lab, w, h, x, y);
                    if (g < bg) {
                        bg = g;
                        bx = x;
                        by = y;
                    }
                }
            }
            const float *c = lab + 3 * ((size_t)by * w + bx);
            ct[j * nx + i] = (struct centre){c[0], c[1], c[2], (float)bx, (float)by};
        }
    }

    /* D² = dc² + ds²·(m/S)²; comparing squared distances is enough. */
    const float spatial = (float)((compactness / step) * (compactness / step));
    const int radius = (int)ceil(step);
    for (int p = 0; p < n; p++)
        labels[p] = -1;
    for (int it = 0; it < SLIC_ITERATIONS; it++) {
        memcpy(prev, labels, (size_t)n * sizeof(int));
        for (int p = 0; p < n; p++) {
            dist[p] = FLT_MAX;
            labels[p] = -1;
        }
        for (int k = 0; k < kc; k++) {
            const struct centre c = ct[k];
            int x0 = (int)c.x - radius, x1 = (int)c.x + radius;
            int y0 = (int)c.y - radius, y1 = (int)c.y + radius;
            x0 = x0 < 0 ? 0 : x0;
            y0 = y0 < 0 ? 0 : y0;
            x1 = x1 > w - 1 ? w - 1 : x1;
            y1 = y1 > h - 1 ? h - 1 : y1;
            for (int y = y0; y <= y1; y++) {
                float dy2 = sq((float)y - c.y) * spatial;
                const float *lp = lab + 3 * ((size_t)y * w + x0);
                float *dp = dist + (size_t)y * w;
                int *lb = labels + (size_t)y * w;
                for (int x = x0; x <= x1; x++, lp += 3) {
                    float d = sq(lp[0] - c.l) + sq(lp[1] - c.a) + sq(lp[2] - c.b) + dy2 +
                              sq((float)x - c.x) * spatial;
                    if (d < dp[x]) {
                        dp[x] = d;
                        lb[x] = k;
                    }
                }
            }
        }
        /* New centres: means of their pixels; an empty cluster keeps its
         * centre (it may win pixels back next round). */
        memset(acc, 0, 6 * (size_t)kc * sizeof(double));
        int changed = 0;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int p = y * w + x, k = labels[p];
                changed += k != prev[p];
                if (k < 0)
                    continue;
                double *a = acc + 6 * (size_t)k;
                a[0] += lab[3 * (size_t)p];
                a[1] += lab[3 * (size_t)p + 1];
                a[2] += lab[3 * (size_t)p + 2];
                a[3] += x;
                a[4] += y;
                a[5] += 1;
            }
        }
        for (int k = 0; k < kc; k++) {
            const double *a = acc + 6 * (size_t)k;
            if (a[5] > 0)
                ct[k] = (struct centre){(float)(a[0] / a[5]), (float)(a[1] / a[5]),
                                        (float)(a[2] / a[5]), (float)(a[3] / a[5]),
                                        (float)(a[4] / a[5])};
        }
        if (!changed)
            break;
    }

    /* Pixels no window reached keep label -1 and are handled like any other
     * label by the connectivity step (as pieces, merged when small). */
    int min_size = (int)(SLIC_MIN_SIZE_FRACTION * n / kc);
    *n_out = enforce_connectivity(labels, lab, w, h, min_size < 1 ? 1 : min_size, &cs);

out:
    free(lab);
    free(dist);
    free(prev);
    free(ct);
    free(acc);
    free(cs.comp);
    free(cs.queue);
    free(cs.start);
    free(cs.size);
    free(cs.parent);
    free(cs.order);
    free(cs.next);
    free(cs.tail);
    free(cs.sum);
    return rc;
}
