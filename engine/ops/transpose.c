/*
 * transpose.c — Transpose: permutes the axes of a tensor (float or int64, any
 * rank up to OP_MAX_DIMS).
 *
 *   y[i_0, …, i_(r-1)] = x[j]   with j_perm[k] = i_k,   out dims[k] = in dims[perm[k]]
 *
 * `perm` is an attribute (every opset); absent, it reverses the axes.
 *
 * The kernel walks the output in order and reads the input through strides.
 * Before it does, axes of size 1 are dropped and neighbouring output axes
 * that are also neighbours, in the same order, in the input are merged; what
 * remains is usually short. When the last remaining axis has input stride 1
 * the inner loop is one memcpy of a contiguous run: channel shuffle
 * ([N, g, C/g, H, W], perm [0, 2, 1, 3, 4]) reduces to copies of H·W floats.
 * Backward is the same walk with the inverse permutation, adding.
 */
#include "op.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

struct transpose_params {
    int has_perm;
    int n_perm;
    int64_t perm[OP_MAX_DIMS];
};

static int transpose_setup(struct node *node, char *err)
{
    struct transpose_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    p->has_perm = node_attr(node, "perm") != NULL;
    return node_attr_ints(node, "perm", p->perm, OP_MAX_DIMS, &p->n_perm, err);
}

/* The permutation for a rank-r input into perm[r]: the attribute, checked to
 * be a permutation of 0..r-1, or the reversal. */
static int transpose_perm(const struct node *node, int r, int *perm, char *err)
{
    const struct transpose_params *p = node->params;
    if (!p->has_perm) {
        for (int k = 0; k < r; k++)
            perm[k] = r - 1 - k;
        return 0;
    }
    if (p->n_perm != r)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "perm has %d values but the input has rank %d", p->n_perm, r);
    int seen[OP_MAX_DIMS] = {0};
    for (int k = 0; k < r; k++) {
        int64_t a = p->perm[k];
        if (a < 0 || a >= r || seen[a])
            return node_fail(node, err, STRATA_E_FORMAT,
                             "perm is not a permutation of 0..%d (value %lld at position %d)",
                             r - 1, (long long)a, k);
        seen[a] = 1;
        perm[k] = (int)a;
    }
    return 0;
}

static int transpose_infer(const struct node *node, const struct tview *const *in,
                           struct tview *const *out, char *err)
{
    int perm[OP_MAX_DIMS];
    int rc = transpose_perm(node, in[0]->ndim, perm, err);
    if (rc < 0)
        return rc;
    out[0]->dtype = in[0]->dtype;
    out[0]->ndim = in[0]->ndim;
    for (int k = 0; k < in[0]->ndim; k++)
        out[0]->dims[k] = in[0]->dims[perm[k]];
    return 0;
}

/* The walk: output axes, outermost first, each with its size and the stride
 * (in elements) of the input axis it reads. */
struct walk {
    int nd;
    int64_t n[OP_MAX_DIMS];
    int64_t s[OP_MAX_DIMS];
};

/* Plans the walk for an input of dims[r] read as output axis k <- input axis
 * perm[k]. Output axes k-1, k are merged when stride(k-1) = stride(k)·n(k):
 * stepping through both in output order then visits the input at one stride. */
static void walk_plan(struct walk *w, int r, const int64_t *dims, const int *perm)
{
    int64_t stride[OP_MAX_DIMS];
    int64_t s = 1;
    for (int a = r - 1; a >= 0; a--) {
        stride[a] = s;
        s *= dims[a];
    }
    w->nd = 0;
    for (int k = 0; k < r; k++) {
        int a = perm[k];
        if (dims[a] == 1)
            continue;
        if (w->nd > 0 && w->s[w->nd - 1] == stride[a] * dims[a]) {
            w->n[w->nd - 1] *= dims[a];
            w->s[w->nd - 1] = stride[a];
        } else {
            w->n[w->nd] = dims[a];
            w->s[w->nd] = stride[a];
            w->nd++;
        }
    }
    if (w->nd == 0) { /* a scalar, or all dims 1: one element */
        w->n[0] = 1;
        w->s[0] = 1;
        w->nd = 1;
    }
}

/* dst (written in order, count elements) = src read along the walk. When
 * `add` (float only), dst += instead of =. */
static void walk_run(void *dst, const void *src, size_t es, const struct walk *w, int64_t count,
                     int add)
{
    if (count == 0)
        return;
    int last = w->nd - 1;
    int64_t n = w->n[last], is = w->s[last];
    int64_t rows = count / n;
    int64_t idx[OP_MAX_DIMS] = {0};
    int64_t off = 0; /* input offset of the current row's first element */
    char *d = dst;
    const char *sp = src;
    for (int64_t row = 0; row < rows; row++) {
        if (add) {
            float *y = (float *)d;
            const float *x = (const float *)sp + off;
            for (int64_t j = 0; j < n; j++)
                y[j] += x[j * is];
        } else if (is == 1) {
            memcpy(d, sp + (size_t)off * es, (size_t)n * es);
        } else if (es == sizeof(int64_t)) {
            int64_t *y = (int64_t *)d;
            const int64_t *x = (const int64_t *)sp + off;
            for (int64_t j = 0; j < n; j++)
                y[j] = x[j * is];
        } else {
            float *y = (float *)d;
            const float *x = (const float *)sp + off;
            for (int64_t j = 0; j < n; j++)
                y[j] = x[j * is];
        }
        d += (size_t)n * es;
        /* next row: odometer over the outer axes, innermost first */
        for (int k = last - 1; k >= 0; k--) {
            off += w->s[k];
            if (++idx[k] < w->n[k])
                break;
            off -= w->s[k] * w->n[k];
            idx[k] = 0;
        }
    }
}

static size_t dtype_size(enum dtype t)
{
    return t == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float);
}

static void transpose_forward(const struct node *node, const struct tview *const *in,
                              struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    int perm[OP_MAX_DIMS];
    char err[STRATA_ERR_LEN];
    int rc = transpose_perm(node, in[0]->ndim, perm, err);
    assert(rc == 0);
    (void)rc;
    struct walk w;
    walk_plan(&w, in[0]->ndim, in[0]->dims, perm);
    walk_run(out[0]->data, in[0]->data, dtype_size(in[0]->dtype), &w, tview_count(out[0]), 0);
}

/* dx = transpose(dy, perm⁻¹): x's axis perm[k] is y's axis k. */
static void transpose_backward(const struct node *node, const struct tview *const *in,
                               const struct tview *const *out, const struct tview *const *dout,
                               struct tview *const *din, struct op_ctx *ctx)
{
    (void)ctx;
    (void)in;
    if (!din[0] || din[0]->dtype != DTYPE_FLOAT)
        return;
    int perm[OP_MAX_DIMS], inv[OP_MAX_DIMS];
    char err[STRATA_ERR_LEN];
    int r = out[0]->ndim;
    int rc = transpose_perm(node, r, perm, err);
    assert(rc == 0);
    (void)rc;
    for (int k = 0; k < r; k++)
        inv[perm[k]] = k;
    struct walk w;
    walk_plan(&w, r, dout[0]->dims, inv);
    walk_run(din[0]->data, dout[0]->data, sizeof(float), &w, tview_count(din[0]), 1);
}

const struct op op_transpose = {
    .name = "Transpose",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64,
    .setup = transpose_setup,
    .infer = transpose_infer,
    .forward = transpose_forward,
    .backward = transpose_backward,
};
