/*
 * shape.c — the ops of shape arithmetic: Shape, Gather, Slice, Cast and
 * Constant. Exporters build shapes with them (Shape -> Gather -> Unsqueeze ->
 * Concat -> Reshape), so each runs on int64 tensors, which the graph
 * evaluates once per batch size; Gather, Slice and Cast run on float tensors
 * too, per batch, with backward.
 *
 * Forms by opset (6..17):
 *   Shape     start/end attributes from opset 15 (clamped like Python slices).
 *   Gather    axis attribute, default 0; negative indices count from the end.
 *   Slice     starts/ends/axes attributes before opset 10; from opset 10
 *             starts, ends, optional axes, optional steps as int64 inputs
 *             known before the batch runs.
 *   Cast      `to` attribute (a TensorProto.DataType number).
 *   Constant  `value` (a float or int64 tensor); from opset 12 also
 *             value_float(s), value_int(s). sparse_value and strings are
 *             refused.
 * Negative axes are accepted in every opset (ONNX defines them from 11; older
 * files that use them are read the same way).
 */
#include "op.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

static size_t dtype_size(enum dtype t)
{
    return t == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float);
}

/* Reads a small int64 tensor input that must be known before the batch runs
 * (Slice's starts, ends, axes, steps) into vals[cap]. */
static int const_ints(const struct node *node, const struct tview *t, const char *what,
                      int64_t *vals, int cap, int *n, char *err)
{
    if (!t->data)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input '%s' is computed from the batch's values; strata needs it known "
                         "before the batch runs (an initializer, a Constant, or shape arithmetic "
                         "on Shape)",
                         what);
    if (t->dtype != DTYPE_INT64)
        return node_fail(node, err, STRATA_E_FORMAT, "input '%s' must be int64, not float",
                         what);
    if (t->ndim > 1)
        return node_fail(node, err, STRATA_E_FORMAT, "input '%s' must be 1-D, not rank %d",
                         what, t->ndim);
    int64_t c = tview_count(t);
    if (c > cap)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "input '%s' has %lld values; at most %d are supported", what,
                         (long long)c, cap);
    memcpy(vals, t->data, (size_t)c * sizeof *vals);
    *n = (int)c;
    return 0;
}

/* ---- Shape -------------------------------------------------------------------- */

struct shape_params {
    int64_t start, end;
    int has_end;
};

static int shape_setup(struct node *node, char *err)
{
    struct shape_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    p->has_end = node_attr(node, "end") != NULL;
    int rc = node_attr_int(node, "start", 0, &p->start, err);
    return rc < 0 ? rc : node_attr_int(node, "end", 0, &p->end, err);
}

/* The dims [lo, hi) the output lists: start and end count from the back when
 * negative and are clamped to [0, rank]. */
static void shape_range(const struct shape_params *p, int r, int *lo, int *hi)
{
    int64_t s = p->start, e = p->has_end ? p->end : r;
    if (s < 0)
        s += r;
    if (e < 0)
        e += r;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < 0 ? 0 : e > r ? r : e;
    *lo = (int)s;
    *hi = (int)(e > s ? e : s);
}

static int shape_infer(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, char *err)
{
    (void)err;
    int lo, hi;
    shape_range(node->params, in[0]->ndim, &lo, &hi);
    out[0]->dtype = DTYPE_INT64;
    out[0]->ndim = 1;
    out[0]->dims[0] = hi - lo;
    return 0;
}

static void shape_forward(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    int lo, hi;
    shape_range(node->params, in[0]->ndim, &lo, &hi);
    for (int k = lo; k < hi; k++)
        tview_i(out[0])[k - lo] = in[0]->dims[k];
}

const struct op op_shape = {
    .name = "Shape",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_SHAPE_ONLY | OP_INT64,
    .setup = shape_setup,
    .infer = shape_infer,
    .forward = shape_forward,
};

/* ---- Gather ------------------------------------------------------------------- */

/*
 * With data seen as [outer, S, inner] around `axis` (S = dims[axis]) and the
 * indices flattened to [m]:
 *   y[o, j, i] = x[o, idx_j, i],   idx_j = indices_j (+ S when negative)
 * and y's shape is dims[<axis] ++ indices' shape ++ dims[>axis].
 */

struct gather_params {
    int64_t axis;
};

static int gather_setup(struct node *node, char *err)
{
    struct gather_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    return node_attr_int(node, "axis", 0, &p->axis, err);
}

static int gather_axis(const struct node *node, int rank)
{
    const struct gather_params *p = node->params;
    return (int)(p->axis < 0 ? p->axis + rank : p->axis);
}

static int gather_infer(const struct node *node, const struct tview *const *in,
                        struct tview *const *out, char *err)
{
    const struct gather_params *p = node->params;
    const struct tview *x = in[0], *ind = in[1];
    char sx[96];
    if (x->ndim == 0)
        return node_fail(node, err, STRATA_E_FORMAT, "cannot gather from a scalar");
    int axis;
    int rc = node_axis(node, p->axis, x->ndim, &axis, err);
    if (rc < 0)
        return rc;
    if (ind->dtype != DTYPE_INT64)
        return node_fail(node, err, STRATA_E_FORMAT, "the indices must be integers, not float");
    int rank = x->ndim + ind->ndim - 1;
    if (rank > OP_MAX_DIMS)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "the output would have rank %d; at most %d is supported", rank,
                         OP_MAX_DIMS);
    int64_t S = x->dims[axis];
    if (ind->data) {
        int64_t m = tview_count(ind);
        for (int64_t j = 0; j < m; j++) {
            int64_t v = tview_i(ind)[j];
            if (v < -S || v >= S)
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "index %lld is out of range for axis %d of shape %s (valid: "
                                 "%lld to %lld)",
                                 (long long)v, axis, dims_format(x, sx, sizeof sx),
                                 (long long)-S, (long long)(S - 1));
        }
    }
    out[0]->dtype = x->dtype;
    out[0]->ndim = rank;
    int k = 0;
    for (int i = 0; i < axis; i++)
        out[0]->dims[k++] = x->dims[i];
    for (int i = 0; i < ind->ndim; i++)
        out[0]->dims[k++] = ind->dims[i];
    for (int i = axis + 1; i < x->ndim; i++)
        out[0]->dims[k++] = x->dims[i];
    return 0;
}

/* outer, S, inner of x around axis. */
static void split_at(const struct tview *x, int axis, int64_t *outer, int64_t *S, int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->dims[i];
    for (int i = axis + 1; i < x->ndim; i++)
        *inner *= x->dims[i];
    *S = x->dims[axis];
}

/* Indices that turn out of range at run time (computed from the batch, so
 * unchecked by infer) give zeros, never a read outside x. */
static void gather_forward(const struct node *node, const struct tview *const *in,
                           struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    const struct tview *x = in[0];
    const int64_t *idx = tview_i(in[1]);
    int64_t outer, S, inner, m = tview_count(in[1]);
    split_at(x, gather_axis(node, x->ndim), &outer, &S, &inner);
    size_t es = dtype_size(x->dtype), row = (size_t)inner * es;
    const char *src = x->data;
    char *dst = out[0]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            int64_t v = idx[j] < 0 ? idx[j] + S : idx[j];
            char *d = dst + (size_t)(o * m + j) * row;
            if (v < 0 || v >= S)
                memset(d, 0, row);
            else
                memcpy(d, src + (size_t)(o * S + v) * row, row);
        }
}

/* dx[o, idx_j, i] += dy[o, j, i]; a repeated index accumulates. */
static void gather_backward(const struct node *node, const struct tview *const *in,
                            const struct tview *const *out, const struct tview *const *dout,
                            struct tview *const *din, struct op_ctx *ctx)
{
    (void)ctx;
    (void)out;
    if (!din[0] || din[0]->dtype != DTYPE_FLOAT)
        return;
    const int64_t *idx = tview_i(in[1]);
    int64_t outer, S, inner, m = tview_count(in[1]);
    split_at(in[0], gather_axis(node, in[0]->ndim), &outer, &S, &inner);
    float *dx = tview_f(din[0]);
    const float *dy = tview_f(dout[0]);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < m; j++) {
            int64_t v = idx[j] < 0 ? idx[j] + S : idx[j];
            if (v < 0 || v >= S)
                continue;
            float *d = dx + (o * S + v) * inner;
            const float *g = dy + (o * m + j) * inner;
            for (int64_t i = 0; i < inner; i++)
                d[i] += g[i];
        }
}

const struct op op_gather = {
    .name = "Gather",
    .min_inputs = 2, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64,
    .setup = gather_setup,
    .infer = gather_infer,
    .forward = gather_forward,
    .backward = gather_backward,
};

/* ---- Slice -------------------------------------------------------------------- */

/*
 * Along each sliced axis of size d, with start s, end e and step k ≠ 0:
 *   s, e < 0 count from the back (+ d);
 *   k > 0: s, e clamped to [0, d],       y takes s, s+k, … while < e;
 *   k < 0: s clamped to [0, d-1], e to [-1, d-1], y takes s, s+k, … while > e.
 * So an end of INT64_MAX means "to the end" and INT64_MIN with k < 0 "to the
 * front". Unlisted axes are taken whole.
 */

/* The attributes before opset 10. */
struct slice_params {
    int n, has_axes;
    int64_t starts[OP_MAX_DIMS], ends[OP_MAX_DIMS], axes[OP_MAX_DIMS];
};

static int slice_setup(struct node *node, char *err)
{
    struct slice_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    if (node->opset >= 10) {
        if (node_attr(node, "starts") || node_attr(node, "ends") || node_attr(node, "axes"))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "from opset 10 starts, ends and axes are inputs, not attributes "
                             "(the model imports opset %d)",
                             node->opset);
        if (node->n_inputs < 3)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "from opset 10 Slice takes starts and ends as inputs 2 and 3; this "
                             "node has %d input(s)",
                             node->n_inputs);
        return 0;
    }
    if (node->n_inputs > 1)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "before opset 10 starts, ends and axes are attributes, not inputs (the "
                         "model imports opset %d)",
                         node->opset);
    if (!node_attr(node, "starts") || !node_attr(node, "ends"))
        return node_fail(node, err, STRATA_E_FORMAT, "attributes 'starts' and 'ends' are required");
    int ne, na, rc;
    if ((rc = node_attr_ints(node, "starts", p->starts, OP_MAX_DIMS, &p->n, err)) < 0 ||
        (rc = node_attr_ints(node, "ends", p->ends, OP_MAX_DIMS, &ne, err)) < 0 ||
        (rc = node_attr_ints(node, "axes", p->axes, OP_MAX_DIMS, &na, err)) < 0)
        return rc;
    p->has_axes = node_attr(node, "axes") != NULL;
    if (ne != p->n || (p->has_axes && na != p->n))
        return node_fail(node, err, STRATA_E_FORMAT,
                         "starts, ends and axes must have as many values (%d, %d, %d)", p->n, ne,
                         p->has_axes ? na : p->n);
    return 0;
}

/* What to take along every axis of x: first index, step, count. */
struct slice_plan {
    int64_t start[OP_MAX_DIMS], step[OP_MAX_DIMS], len[OP_MAX_DIMS];
};

static int slice_make_plan(const struct node *node, const struct tview *const *in,
                           struct slice_plan *pl, char *err)
{
    const struct tview *x = in[0];
    int r = x->ndim, n, rc;
    int64_t starts[OP_MAX_DIMS], ends[OP_MAX_DIMS], axes[OP_MAX_DIMS], steps[OP_MAX_DIMS];
    int has_axes = 0, has_steps = 0;
    if (node->opset < 10) {
        const struct slice_params *p = node->params;
        n = p->n;
        memcpy(starts, p->starts, sizeof starts);
        memcpy(ends, p->ends, sizeof ends);
        memcpy(axes, p->axes, sizeof axes);
        has_axes = p->has_axes;
    } else {
        int ne, na = 0, ns = 0;
        if (!in[1] || !in[2])
            return node_fail(node, err, STRATA_E_FORMAT, "the starts or ends input is missing");
        if ((rc = const_ints(node, in[1], "starts", starts, OP_MAX_DIMS, &n, err)) < 0 ||
            (rc = const_ints(node, in[2], "ends", ends, OP_MAX_DIMS, &ne, err)) < 0)
            return rc;
        has_axes = node->n_inputs > 3 && in[3];
        has_steps = node->n_inputs > 4 && in[4];
        if (has_axes && (rc = const_ints(node, in[3], "axes", axes, OP_MAX_DIMS, &na, err)) < 0)
            return rc;
        if (has_steps && (rc = const_ints(node, in[4], "steps", steps, OP_MAX_DIMS, &ns, err)) < 0)
            return rc;
        if (ne != n || (has_axes && na != n) || (has_steps && ns != n))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "starts, ends, axes and steps must have as many values (%d, %d, "
                             "%d, %d)",
                             n, ne, has_axes ? na : n, has_steps ? ns : n);
    }
    if (n > r)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "%d axes are sliced but the input has rank %d", n, r);
    for (int a = 0; a < r; a++) {
        pl->start[a] = 0;
        pl->step[a] = 1;
        pl->len[a] = x->dims[a];
    }
    int done[OP_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        int a;
        if ((rc = node_axis(node, has_axes ? axes[i] : i, r, &a, err)) < 0)
            return rc;
        if (done[a])
            return node_fail(node, err, STRATA_E_FORMAT, "axis %d is sliced twice", a);
        done[a] = 1;
        int64_t d = x->dims[a], s = starts[i], e = ends[i], k = has_steps ? steps[i] : 1;
        if (k == 0)
            return node_fail(node, err, STRATA_E_FORMAT, "the step for axis %d is 0", a);
        if (s < 0)
            s += d;
        if (e < 0)
            e += d;
        uint64_t len;
        if (d == 0) {
            len = 0;
        } else if (k > 0) {
            s = s < 0 ? 0 : s > d ? d : s;
            e = e < 0 ? 0 : e > d ? d : e;
            len = e > s ? ((uint64_t)(e - s) + (uint64_t)k - 1) / (uint64_t)k : 0;
        } else {
            uint64_t mag = 0 - (uint64_t)k; /* |k|, also for INT64_MIN */
            s = s < 0 ? 0 : s > d - 1 ? d - 1 : s;
            e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            len = s > e ? ((uint64_t)(s - e) + mag - 1) / mag : 0;
        }
        pl->start[a] = s;
        /* with one element or none the step is never taken: 1 keeps the
         * kernel's offsets small */
        pl->step[a] = len > 1 ? k : 1;
        pl->len[a] = (int64_t)len;
    }
    return 0;
}

static int slice_infer(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, char *err)
{
    struct slice_plan pl;
    int rc = slice_make_plan(node, in, &pl, err);
    if (rc < 0)
        return rc;
    out[0]->dtype = in[0]->dtype;
    out[0]->ndim = in[0]->ndim;
    memcpy(out[0]->dims, pl.len, sizeof pl.len);
    return 0;
}

/* The output axes as a walk through x: sizes n[], input strides s[] (in
 * elements, step included) and the first element's offset. Axes of size 1
 * are dropped, and output axes k-1, k merged when s(k-1) = s(k)·n(k) (one
 * stride steps through both): a slice of whole rows becomes one run. */
struct walk {
    int nd;
    int64_t base;
    int64_t n[OP_MAX_DIMS], s[OP_MAX_DIMS];
};

static void slice_walk(const struct slice_plan *pl, const struct tview *x, struct walk *w)
{
    int64_t stride = 1, st[OP_MAX_DIMS];
    for (int a = x->ndim - 1; a >= 0; a--) {
        st[a] = stride;
        stride *= x->dims[a];
    }
    w->nd = 0;
    w->base = 0;
    for (int a = 0; a < x->ndim; a++) {
        w->base += pl->start[a] * st[a];
        int64_t n = pl->len[a], s = pl->step[a] * st[a];
        if (n == 1)
            continue;
        if (w->nd > 0 && w->s[w->nd - 1] == s * n) {
            w->n[w->nd - 1] *= n;
            w->s[w->nd - 1] = s;
        } else {
            w->n[w->nd] = n;
            w->s[w->nd] = s;
            w->nd++;
        }
    }
    if (w->nd == 0) {
        w->n[0] = 1;
        w->s[0] = 1;
        w->nd = 1;
    }
}

/* Walks `count` elements: y (in order) = x (along the walk), or, with
 * `scatter_add` (float), x (along the walk) += y (in order). */
static void walk_run(void *y, void *x, size_t es, const struct walk *w, int64_t count,
                     int scatter_add)
{
    if (count == 0)
        return;
    int last = w->nd - 1;
    int64_t n = w->n[last], is = w->s[last];
    int64_t rows = count / n, idx[OP_MAX_DIMS] = {0}, off = w->base;
    char *yp = y;
    for (int64_t row = 0; row < rows; row++) {
        if (scatter_add) {
            float *dx = (float *)x + off;
            const float *dy = (const float *)yp;
            for (int64_t j = 0; j < n; j++)
                dx[j * is] += dy[j];
        } else if (is == 1) {
            memcpy(yp, (char *)x + (size_t)off * es, (size_t)n * es);
        } else if (es == sizeof(int64_t)) {
            const int64_t *src = (const int64_t *)x + off;
            for (int64_t j = 0; j < n; j++)
                ((int64_t *)yp)[j] = src[j * is];
        } else {
            const float *src = (const float *)x + off;
            for (int64_t j = 0; j < n; j++)
                ((float *)yp)[j] = src[j * is];
        }
        yp += (size_t)n * es;
        for (int k = last - 1; k >= 0; k--) {
            off += w->s[k];
            if (++idx[k] < w->n[k])
                break;
            off -= w->s[k] * w->n[k];
            idx[k] = 0;
        }
    }
}

static void slice_forward(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    struct slice_plan pl;
    struct walk w;
    char err[STRATA_ERR_LEN];
    int rc = slice_make_plan(node, in, &pl, err);
    assert(rc == 0);
    (void)rc;
    slice_walk(&pl, in[0], &w);
    walk_run(out[0]->data, in[0]->data, dtype_size(in[0]->dtype), &w, tview_count(out[0]), 0);
}

/* dx at the sliced positions += dy; the other positions get nothing. */
static void slice_backward(const struct node *node, const struct tview *const *in,
                           const struct tview *const *out, const struct tview *const *dout,
                           struct tview *const *din, struct op_ctx *ctx)
{
    (void)ctx;
    (void)out;
    if (!din[0] || din[0]->dtype != DTYPE_FLOAT)
        return;
    struct slice_plan pl;
    struct walk w;
    char err[STRATA_ERR_LEN];
    int rc = slice_make_plan(node, in, &pl, err);
    assert(rc == 0);
    (void)rc;
    slice_walk(&pl, in[0], &w);
    walk_run(dout[0]->data, din[0]->data, sizeof(float), &w, tview_count(dout[0]), 1);
}

const struct op op_slice = {
    .name = "Slice",
    .min_inputs = 1, .max_inputs = 5, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64,
    .setup = slice_setup,
    .infer = slice_infer,
    .forward = slice_forward,
    .backward = slice_backward,
};

/* ---- Cast --------------------------------------------------------------------- */

/*
 * Tensors here are float32 or int64, so each target type is held by the
 * nearest of the two, with its values:
 *   FLOAT (1), DOUBLE (11)   float32, values unchanged
 *   FLOAT16 (10)             float32, rounded (to nearest, ties to even) to
 *                            float16's precision; beyond its range -> ±inf,
 *                            as a float16 would hold them
 *   INT64 (7)                int64; floats truncated toward zero
 *   INT32 (6)                int64; likewise, then saturated to int32
 * Floats to integers: NaN -> 0, out-of-range values saturate. Strings, bool,
 * bfloat16, the 8- and 16-bit integers, the unsigned types and complex are
 * refused.
 */

enum cast_round { CAST_EXACT, CAST_HALF };

struct cast_params {
    int64_t to;
    enum dtype out;
    enum cast_round round;
    int64_t lo, hi; /* integer targets: the range values saturate to */
};

static const char *onnx_type_name(int64_t t)
{
    static const char *const names[] = {
        "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING",
        "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    };
    return t >= 0 && t < (int64_t)(sizeof names / sizeof names[0]) ? names[t] : "an unknown type";
}

static int cast_setup(struct node *node, char *err)
{
    struct cast_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    if (!node_attr(node, "to"))
        return node_fail(node, err, STRATA_E_FORMAT, "attribute 'to' is required");
    int rc = node_attr_int(node, "to", 0, &p->to, err);
    if (rc < 0)
        return rc;
    p->out = DTYPE_FLOAT;
    p->round = CAST_EXACT;
    p->lo = INT64_MIN;
    p->hi = INT64_MAX;
    switch (p->to) {
    case 1: case 11: break;
    case 10: p->round = CAST_HALF; break;
    case 7: p->out = DTYPE_INT64; break;
    case 6:
        p->out = DTYPE_INT64;
        p->lo = INT32_MIN;
        p->hi = INT32_MAX;
        break;
    default:
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "Cast to %s (to = %lld) is not supported; strata casts to FLOAT, "
                         "DOUBLE, FLOAT16 (held as float32) and INT32, INT64 (held as int64)",
                         onnx_type_name(p->to), (long long)p->to);
    }
    return 0;
}

static int cast_infer(const struct node *node, const struct tview *const *in,
                      struct tview *const *out, char *err)
{
    (void)err;
    const struct cast_params *p = node->params;
    out[0]->dtype = p->out;
    out[0]->ndim = in[0]->ndim;
    memcpy(out[0]->dims, in[0]->dims, sizeof out[0]->dims);
    return 0;
}

/* x rounded to the nearest binary16 value (ties to even), as a float. Normal
 * halves keep 10 of float's 23 fraction bits: adding 0xfff plus the lowest
 * kept bit, then clearing the 13 dropped bits, rounds ties to even. Below
 * 2^-14 halves are subnormal, multiples of 2^-24, rounded by nearbyintf (the
 * default mode is to nearest even). From 65520 up the value becomes inf. */
static float round_half(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t sign = u & 0x80000000u, a = u ^ sign;
    if (a >= 0x7f800000u) /* inf, NaN */
        return x;
    if (a >= 0x477ff000u) {
        a = 0x7f800000u;
    } else if (a < 0x38800000u) {
        float m = nearbyintf(fabsf(x) * 16777216.0f) / 16777216.0f;
        memcpy(&a, &m, sizeof a);
    } else {
        a = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
    }
    u = sign | a;
    memcpy(&x, &u, sizeof x);
    return x;
}

static float cast_round(float x, enum cast_round r)
{
    return r == CAST_HALF ? round_half(x) : x;
}

/* Truncation toward zero, saturated to [lo, hi]; NaN -> 0. Done in double,
 * where every float and both limits of int32 are exact and 2^63 bounds
 * int64, so no conversion overflows. */
static int64_t float_to_int(float x, int64_t lo, int64_t hi)
{
    if (isnan(x))
        return 0;
    double t = trunc((double)x);
    if (t <= (double)lo)
        return lo;
    if (t >= (double)hi)
        return hi;
    return (int64_t)t;
}

static void cast_forward(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    const struct cast_params *p = node->params;
    int64_t n = tview_count(in[0]);
    if (in[0]->dtype == DTYPE_FLOAT && p->out == DTYPE_FLOAT) {
        const float *x = tview_f(in[0]);
        float *y = tview_f(out[0]);
        for (int64_t k = 0; k < n; k++)
            y[k] = cast_round(x[k], p->round);
    } else if (in[0]->dtype == DTYPE_INT64 && p->out == DTYPE_FLOAT) {
        const int64_t *x = tview_i(in[0]);
        float *y = tview_f(out[0]);
        for (int64_t k = 0; k < n; k++)
            y[k] = cast_round((float)x[k], p->round);
    } else if (in[0]->dtype == DTYPE_FLOAT) {
        const float *x = tview_f(in[0]);
        int64_t *y = tview_i(out[0]);
        for (int64_t k = 0; k < n; k++)
            y[k] = float_to_int(x[k], p->lo, p->hi);
    } else {
        const int64_t *x = tview_i(in[0]);
        int64_t *y = tview_i(out[0]);
        for (int64_t k = 0; k < n; k++)
            y[k] = x[k] < p->lo ? p->lo : x[k] > p->hi ? p->hi : x[k];
    }
}

/* Float to float: the rounding's derivative is taken as 1 (straight
 * through), so dx += dy. Casts to or from integers carry no gradient. */
static void cast_backward(const struct node *node, const struct tview *const *in,
                          const struct tview *const *out, const struct tview *const *dout,
                          struct tview *const *din, struct op_ctx *ctx)
{
    (void)node;
    (void)ctx;
    if (!din[0] || in[0]->dtype != DTYPE_FLOAT || out[0]->dtype != DTYPE_FLOAT)
        return;
    float *dx = tview_f(din[0]);
    const float *dy = tview_f(dout[0]);
    int64_t n = tview_count(in[0]);
    for (int64_t k = 0; k < n; k++)
        dx[k] += dy[k];
}

const struct op op_cast = {
    .name = "Cast",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64,
    .setup = cast_setup,
    .infer = cast_infer,
    .forward = cast_forward,
    .backward = cast_backward,
};

/* ---- Constant ----------------------------------------------------------------- */

/* Which attribute holds the value; forward reads it from node->attrs. */
enum constant_kind { CONST_TENSOR, CONST_FLOAT, CONST_FLOATS, CONST_INT, CONST_INTS };

struct constant_params {
    enum constant_kind kind;
    int attr; /* index into node->attrs */
};

static int constant_setup(struct node *node, char *err)
{
    static const struct {
        const char *name;
        enum attr_type type;
        enum constant_kind kind;
    } forms[] = {
        {"value", ATTR_TENSOR, CONST_TENSOR},    {"value_float", ATTR_FLOAT, CONST_FLOAT},
        {"value_floats", ATTR_FLOATS, CONST_FLOATS}, {"value_int", ATTR_INT, CONST_INT},
        {"value_ints", ATTR_INTS, CONST_INTS},
    };
    struct constant_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    static const char *const refused[] = {"sparse_value", "value_string", "value_strings"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (node_attr(node, refused[i]))
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "attribute '%s' is not supported: strata's constants are float or "
                             "int64 tensors ('value', 'value_float(s)', 'value_int(s)')",
                             refused[i]);
    int found = 0;
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++)
        for (int i = 0; i < node->n_attrs; i++) {
            const struct attr *a = &node->attrs[i];
            if (strcmp(a->name, forms[f].name) != 0)
                continue;
            if (a->type != forms[f].type)
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "attribute '%s' has the wrong type for a Constant", a->name);
            if (a->type == ATTR_TENSOR && a->t.ndim > OP_MAX_DIMS)
                return node_fail(node, err, STRATA_E_UNSUPPORTED,
                                 "the value has rank %d; at most %d is supported", a->t.ndim,
                                 OP_MAX_DIMS);
            if (a->type == ATTR_TENSOR && a->t.dtype != DTYPE_FLOAT &&
                a->t.dtype != DTYPE_INT64)
                return node_fail(node, err, STRATA_E_UNSUPPORTED,
                                 "the value's element type is not float or int64");
            p->kind = forms[f].kind;
            p->attr = i;
            found++;
        }
    if (found != 1)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "a Constant needs exactly one of 'value', 'value_float', "
                         "'value_floats', 'value_int', 'value_ints'; this one has %d",
                         found);
    return 0;
}

static int constant_infer(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, char *err)
{
    (void)in;
    (void)err;
    const struct constant_params *p = node->params;
    const struct attr *a = &node->attrs[p->attr];
    struct tview *y = out[0];
    y->ndim = 0;
    switch (p->kind) {
    case CONST_TENSOR:
        y->dtype = a->t.dtype;
        y->ndim = a->t.ndim;
        memcpy(y->dims, a->t.dims, sizeof y->dims);
        break;
    case CONST_FLOAT: y->dtype = DTYPE_FLOAT; break;
    case CONST_INT: y->dtype = DTYPE_INT64; break;
    case CONST_FLOATS:
    case CONST_INTS:
        y->dtype = p->kind == CONST_FLOATS ? DTYPE_FLOAT : DTYPE_INT64;
        y->ndim = 1;
        y->dims[0] = a->n;
        break;
    }
    return 0;
}

static void constant_forward(const struct node *node, const struct tview *const *in,
                             struct tview *const *out, struct op_ctx *ctx)
{
    (void)in;
    (void)ctx;
    const struct constant_params *p = node->params;
    const struct attr *a = &node->attrs[p->attr];
    void *y = out[0]->data;
    switch (p->kind) {
    case CONST_TENSOR:
        memcpy(y, a->t.data, (size_t)tview_count(&a->t) * dtype_size(a->t.dtype));
        break;
    case CONST_FLOAT: *(float *)y = a->f; break;
    case CONST_INT: *(int64_t *)y = a->i; break;
    case CONST_FLOATS: memcpy(y, a->floats, (size_t)a->n * sizeof(float)); break;
    case CONST_INTS: memcpy(y, a->ints, (size_t)a->n * sizeof(int64_t)); break;
    }
}

const struct op op_constant = {
    .name = "Constant",
    .min_inputs = 0, .max_inputs = 0, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_SHAPE_ONLY | OP_INT64,
    .setup = constant_setup,
    .infer = constant_infer,
    .forward = constant_forward,
};
