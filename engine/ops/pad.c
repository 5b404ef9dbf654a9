/*
 * pad.c — Pad (ONNX), float32, any rank up to OP_MAX_DIMS: forward and
 * backward.
 *
 * Forms by opset:
 *   opset < 11   attributes pads (ints), value (float, default 0), mode
 *   opset ≥ 11   inputs pads (int64, 1-D, must be a constant) and optional
 *                constant_value (a one-value float tensor, default 0);
 *                attribute mode
 * pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...], two per axis of X;
 * a negative pad removes elements (cropping). mode is constant, reflect or
 * edge (wrap, from opset 19, is refused).
 *
 * Along each axis, with begin pad pb and end pad pe, the elements that are
 * kept are the source range [lo, hi) = [max(0, −pb), n − max(0, −pe)) of the
 * input, and output position o reads source position i = o − pb:
 *     lo ≤ i < hi   X[i]
 *     otherwise     constant: the value
 *                   edge:     X[lo] before the range, X[hi − 1] after it
 *                   reflect:  X[2·lo − i] before, X[2·(hi − 1) − i] after
 *                             (mirrored on the first and last kept values,
 *                             without repeating them)
 * so padding applies to the cropped tensor, as ONNX Runtime does it. An
 * output element of an N-D tensor reads the source element whose coordinate
 * on every axis is mapped that way; in constant mode, a single axis outside
 * its range makes the element the value. reflect needs pads smaller than
 * the kept length (hi − lo), edge a kept length ≥ 1 where it pads; infer
 * refuses the others.
 *
 * Backward: each output element's gradient goes to the source element it
 * read (so edge and reflect accumulate several onto one), and, when
 * constant_value is an input that wants a gradient, the gradients of the
 * constant-filled elements sum into it. Cropped elements get none.
 *
 * The output is produced a row (last axis) at a time: the source row is
 * found from the other coordinates, then its middle is one copy and the
 * padded ends are mapped element by element. Forward rows run on the
 * engine's threads (parallel.h); backward runs on one thread, since edge
 * and reflect rows share their sources.
 */
#include "op.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE };

struct pad_params {
    enum pad_mode mode;
    int from_inputs;                    /* opset ≥ 11: pads and value are inputs */
    int n_pads;                         /* opset < 11: the attribute */
    int64_t pads[2 * OP_MAX_DIMS];
    float value;
};

/* One call's geometry. Axis a: input n[a], output out[a], begin pad pb[a],
 * kept source range [lo[a], hi[a]). */
struct pad_geom {
    int rank;
    enum pad_mode mode;
    float value;
    int64_t n[OP_MAX_DIMS], out[OP_MAX_DIMS], pb[OP_MAX_DIMS], lo[OP_MAX_DIMS],
        hi[OP_MAX_DIMS];
    int64_t in_stride[OP_MAX_DIMS];     /* row-major strides of X */
};

static int pad_setup(struct node *node, char *err)
{
    struct pad_params p = {.from_inputs = node->opset >= 11};
    const char *mode;
    int rc;
    if ((rc = node_attr_string(node, "mode", "constant", &mode, err)) < 0)
        return rc;
    if (strcmp(mode, "constant") == 0)
        p.mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0)
        p.mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0)
        p.mode = PAD_EDGE;
    else if (strcmp(mode, "wrap") == 0)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "mode \"wrap\" is not supported; constant, reflect and edge are");
    else
        return node_fail(node, err, STRATA_E_FORMAT,
                         "attribute 'mode' is \"%s\"; expected constant, reflect or edge",
                         mode);
    if (!p.from_inputs) {
        if ((rc = node_attr_ints(node, "pads", p.pads, 2 * OP_MAX_DIMS, &p.n_pads, err)) < 0 ||
            (rc = node_attr_float(node, "value", 0.0f, &p.value, err)) < 0)
            return rc;
        if (!node_attr(node, "pads"))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "attribute 'pads' is required (opset %d)", node->opset);
    } else if (node->n_inputs < 2) {
        return node_fail(node, err, STRATA_E_FORMAT,
                         "input 'pads' is required from opset 11 (this model imports %d)",
                         node->opset);
    }
    struct pad_params *q = malloc(sizeof *q);
    if (!q)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    *q = p;
    node->params = q;
    return 0;
}

/* Fills g from X and the pads (attribute or constant input). Returns 0 or a
 * negative status with the reason in err (err may be NULL after infer has
 * accepted the same inputs). */
static int pad_geom_of(const struct node *node, const struct tview *const *in,
                       struct pad_geom *g, char *err)
{
    const struct pad_params *p = node->params;
    const struct tview *x = in[0];
    const int64_t *pads = p->pads;
    int n_pads = p->n_pads;
    char sx[96], sp[96];
    g->rank = x->ndim;
    g->mode = p->mode;
    g->value = p->value;
    if (p->from_inputs) {
        const struct tview *tp = in[1];
        if (!tp)
            return node_fail(node, err, STRATA_E_FORMAT, "input 'pads' is required");
        if (tp->dtype != DTYPE_INT64 || tp->ndim != 1)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input 'pads' must be a 1-D int64 tensor; it is %s",
                             dims_format(tp, sp, sizeof sp));
        if (!tp->data)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "input 'pads' must be a constant (an initializer or a Constant), "
                             "not computed from the image");
        pads = tview_i(tp);
        n_pads = (int)(tp->dims[0] < INT_MAX ? tp->dims[0] : INT_MAX);
        const struct tview *tv = node->n_inputs > 2 ? in[2] : NULL;
        g->value = 0.0f;
        if (tv) {
            if (tv->dtype != DTYPE_FLOAT || tview_count(tv) != 1)
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "input 'constant_value' must be one float; it is %s",
                                 dims_format(tv, sp, sizeof sp));
            if (tv->data)
                g->value = tview_f(tv)[0];
        }
    }
    if (n_pads != 2 * x->ndim)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "pads has %d values; input %s (rank %d) needs %d", n_pads,
                         dims_format(x, sx, sizeof sx), x->ndim, 2 * x->ndim);
    int64_t stride = 1;
    for (int a = x->ndim - 1; a >= 0; a--) {
        const int64_t n = x->dims[a], b = pads[a], e = pads[a + x->ndim];
        if (b < -INT_MAX || b > INT_MAX || e < -INT_MAX || e > INT_MAX || n > INT_MAX ||
            n + b + e < 0)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "pads %lld and %lld on axis %d of input %s leave a negative or "
                             "too large size",
                             (long long)b, (long long)e, a, dims_format(x, sx, sizeof sx));
        g->n[a] = n;
        g->out[a] = n + b + e;
        g->pb[a] = b;
        g->lo[a] = b < 0 ? -b : 0;
        g->hi[a] = e < 0 ? n + e : n;
        g->in_stride[a] = stride;
        stride *= n;
        const int64_t kept = g->hi[a] - g->lo[a];
        if (p->mode == PAD_REFLECT && (b > 0 || e > 0) && (b >= kept || e >= kept))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "reflect pads %lld and %lld on axis %d must be smaller than the "
                             "%lld elements kept of input %s",
                             (long long)b, (long long)e, a, (long long)(kept > 0 ? kept : 0),
                             dims_format(x, sx, sizeof sx));
        if (p->mode == PAD_EDGE && (b > 0 || e > 0) && kept < 1)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "edge padding on axis %d of input %s keeps no element to repeat",
                             a, dims_format(x, sx, sizeof sx));
    }
    return 0;
}

/* Output rows (all axes but the last) and their length; a rank-0 tensor is
 * one row of one element. */
static int64_t pad_rows(const struct pad_geom *g, int64_t *len)
{
    int64_t rows = 1;
    for (int a = 0; a + 1 < g->rank; a++)
        rows *= g->out[a];
    *len = g->rank ? g->out[g->rank - 1] : 1;
    return rows;
}

static int pad_infer(const struct node *node, const struct tview *const *in,
                     struct tview *const *out, char *err)
{
    const struct tview *x = in[0];
    if (x->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input data is not float32; only float32 is supported");
    struct pad_geom g;
    int rc = pad_geom_of(node, in, &g, err);
    if (rc < 0)
        return rc;
    /* rows (every axis but the last) are counted in an int */
    int64_t total = 1, len;
    for (int a = 0; a < g.rank; a++) {
        if (g.out[a] > 0 && total > INT64_MAX / 4 / g.out[a])
            return node_fail(node, err, STRATA_E_LIMIT, "the padded output is too large");
        total *= g.out[a];
    }
    if (pad_rows(&g, &len) > INT_MAX)
        return node_fail(node, err, STRATA_E_LIMIT, "the padded output has too many rows");
    out[0]->dtype = DTYPE_FLOAT;
    out[0]->ndim = g.rank;
    for (int a = 0; a < g.rank; a++)
        out[0]->dims[a] = g.out[a];
    return 0;
}

/* Source coordinate of output coordinate o on axis a, or −1 for the
 * constant. */
static inline int64_t pad_map(const struct pad_geom *g, int a, int64_t o)
{
    const int64_t i = o - g->pb[a];
    if (i >= g->lo[a] && i < g->hi[a])
        return i;
    switch (g->mode) {
    case PAD_CONSTANT:
        return -1;
    case PAD_EDGE:
        return i < g->lo[a] ? g->lo[a] : g->hi[a] - 1;
    case PAD_REFLECT:
        return i < g->lo[a] ? 2 * g->lo[a] - i : 2 * (g->hi[a] - 1) - i;
    }
    return -1;
}

/* Offset in X of the source row of output row r, or −1 when a coordinate
 * maps to the constant. */
static int64_t pad_row_source(const struct pad_geom *g, int64_t r)
{
    int64_t off = 0;
    for (int a = g->rank - 2; a >= 0; a--) {
        const int64_t o = r % g->out[a];
        r /= g->out[a];
        const int64_t i = pad_map(g, a, o);
        if (i < 0)
            return -1;
        off += i * g->in_stride[a];
    }
    return off;
}

struct pad_job {
    const struct pad_geom *g;
    int64_t len;
    const float *x;
    float *y;
};

static void pad_forward_piece(void *ctx, int r0, int r1)
{
    const struct pad_job *j = ctx;
    const struct pad_geom *g = j->g;
    const int last = g->rank - 1;
    for (int r = r0; r < r1; r++) {
        float *y = j->y + (size_t)r * j->len;
        const int64_t src = pad_row_source(g, r);
        if (src < 0) {
            for (int64_t o = 0; o < j->len; o++)
                y[o] = g->value;
            continue;
        }
        if (g->rank == 0) {
            y[0] = j->x[0];
            continue;
        }
        const float *x = j->x + src;
        /* outputs [m0, m1) read the kept range in order */
        int64_t m0 = g->pb[last] + g->lo[last], m1 = g->pb[last] + g->hi[last];
        m0 = m0 < 0 ? 0 : m0 > j->len ? j->len : m0;
        m1 = m1 < m0 ? m0 : m1 > j->len ? j->len : m1;
        for (int64_t o = 0; o < m0; o++) {
            const int64_t i = pad_map(g, last, o);
            y[o] = i < 0 ? g->value : x[i];
        }
        if (m1 > m0)
            memcpy(y + m0, x + (m0 - g->pb[last]), (size_t)(m1 - m0) * sizeof *y);
        for (int64_t o = m1; o < j->len; o++) {
            const int64_t i = pad_map(g, last, o);
            y[o] = i < 0 ? g->value : x[i];
        }
    }
}

static void pad_forward(const struct node *node, const struct tview *const *in,
                        struct tview *const *out, struct op_ctx *ctx)
{
    struct pad_geom g;
    int rc = pad_geom_of(node, in, &g, NULL);
    assert(rc == 0 && "pad: inputs differ from those infer accepted");
    (void)rc;
    struct pad_job j = {.g = &g, .x = tview_f(in[0]), .y = tview_f(out[0])};
    const int64_t rows = pad_rows(&g, &j.len);
    if (rows * j.len == 0)
        return;
    parallel_for_grain((int)rows, parallel_grain(2 * (size_t)j.len), pad_forward_piece, &j);
}

static void pad_backward(const struct node *node, const struct tview *const *in,
                         const struct tview *const *out, const struct tview *const *dout,
                         struct tview *const *din, struct op_ctx *ctx)
{
    const struct pad_params *p = node->params;
    float *dx = din[0] ? tview_f(din[0]) : NULL;
    float *dvalue = p->from_inputs && node->n_inputs > 2 && in[2] && din[2] &&
                            p->mode == PAD_CONSTANT
                        ? tview_f(din[2])
                        : NULL;
    if (!dx && !dvalue)
        return;
    struct pad_geom g;
    int rc = pad_geom_of(node, in, &g, NULL);
    assert(rc == 0 && "pad: inputs differ from those infer accepted");
    (void)rc;
    int64_t len;
    const int64_t rows = pad_rows(&g, &len);
    const float *dy = tview_f(dout[0]);
    const int last = g.rank - 1;
    double dv = 0;
    for (int64_t r = 0; r < rows; r++, dy += len) {
        const int64_t src = pad_row_source(&g, r);
        if (src < 0) {
            for (int64_t o = 0; o < len; o++)
                dv += dy[o];
            continue;
        }
        if (g.rank == 0) {
            if (dx)
                dx[0] += dy[0];
            continue;
        }
        for (int64_t o = 0; o < len; o++) {
            const int64_t i = pad_map(&g, last, o);
            if (i < 0)
                dv += dy[o];
            else if (dx)
                dx[src + i] += dy[o];
        }
    }
    if (dvalue)
        dvalue[0] += (float)dv;
}

/* Pad: input data (and from opset 11 pads, optional constant_value); one
 * output. setup refuses an unknown mode, wrap, and a missing pads; infer
 * refuses non-float data, pads of the wrong length or type, non-constant
 * pads, sizes that would become negative, and reflect/edge pads larger than
 * what is kept. */
const struct op op_pad = {
    .name = "Pad",
    .min_inputs = 1,
    .max_inputs = 3,
    .min_outputs = 1,
    .max_outputs = 1,
    .setup = pad_setup,
    .infer = pad_infer,
    .forward = pad_forward,
    .backward = pad_backward,
};
