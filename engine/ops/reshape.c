/*
 * reshape.c — ops that change a tensor's shape but not its bytes: Flatten,
 * Reshape, Squeeze, Unsqueeze and Identity.
 *
 * Row-major order makes each of them a relabelling of the same elements, so
 * forward is a copy (skipped when the graph points the output at the input's
 * bytes, as OP_ALIAS allows) and backward adds dout into din unchanged. They
 * take int64 tensors too: exporters reshape shape vectors with them (Gather
 * -> Unsqueeze -> Concat -> Reshape).
 *
 * Forms by opset (6..17):
 *   Flatten    axis attribute, default 1, in [-r, r] (negative from opset 11).
 *   Reshape    shape input (int64, known before the batch runs); 0 copies the
 *              input's dim, -1 is inferred; allowzero (opset 14) = 1 makes 0
 *              a literal empty dim.
 *   Squeeze    axes attribute before opset 13, optional int64 input after;
 *              no axes removes every dim of size 1.
 *   Unsqueeze  axes attribute before opset 13, int64 input after (required);
 *              axes count in the output's rank.
 * Negative axes are accepted in every opset (ONNX defines them from 11; older
 * files that use them are read the same way).
 */
#include "op.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

static size_t dtype_size(enum dtype t)
{
    return t == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float);
}

/* ---- shared by every op of this file --------------------------------------- */

/* out = in, byte for byte: the shapes differ, the row-major order does not. */
static void alias_forward(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, struct op_ctx *ctx)
{
    (void)node;
    (void)ctx;
    assert(in[0]->dtype == out[0]->dtype && tview_count(in[0]) == tview_count(out[0]));
    if (out[0]->data != in[0]->data)
        memcpy(out[0]->data, in[0]->data, (size_t)tview_count(in[0]) * dtype_size(in[0]->dtype));
}

/* din += dout: y_k = x_k for every flat index k, so dL/dx_k = dL/dy_k. When
 * the graph lets din and dout share one buffer (as it may the values), the
 * sum is already there. */
static void alias_backward(const struct node *node, const struct tview *const *in,
                           const struct tview *const *out, const struct tview *const *dout,
                           struct tview *const *din, struct op_ctx *ctx)
{
    (void)node;
    (void)in;
    (void)out;
    (void)ctx;
    if (!din[0] || din[0]->dtype != DTYPE_FLOAT || din[0]->data == dout[0]->data)
        return;
    float *dx = tview_f(din[0]);
    const float *dy = tview_f(dout[0]);
    int64_t n = tview_count(din[0]);
    assert(n == tview_count(dout[0]));
    for (int64_t k = 0; k < n; k++)
        dx[k] += dy[k];
}

/* y's dtype and shape = x's (y's data untouched). */
static void same_shape(struct tview *y, const struct tview *x)
{
    y->dtype = x->dtype;
    y->ndim = x->ndim;
    memcpy(y->dims, x->dims, sizeof y->dims);
}

/* Reads a small int64 tensor input that must be known before the batch runs
 * (Reshape's shape, Squeeze/Unsqueeze's axes) into vals[cap]. `what` names it
 * in messages. */
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

/* "[2, -1, 0]" into buf, for messages about requested shapes. */
static char *ints_format(const int64_t *v, int n, char *buf, size_t len)
{
    size_t used = snprintf(buf, len, "[");
    for (int i = 0; i < n && used < len; i++)
        used += snprintf(buf + used, len - used, i ? ", %lld" : "%lld", (long long)v[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* Marks each of axes[n], normalised to [0, rank), in mark[rank]; refuses
 * repeats. */
static int mark_axes(const struct node *node, const int64_t *axes, int n, int rank, int *mark,
                     char *err)
{
    memset(mark, 0, (size_t)rank * sizeof *mark);
    for (int i = 0; i < n; i++) {
        int a;
        int rc = node_axis(node, axes[i], rank, &a, err);
        if (rc < 0)
            return rc;
        if (mark[a])
            return node_fail(node, err, STRATA_E_FORMAT, "axis %lld is listed twice",
                             (long long)axes[i]);
        mark[a] = 1;
    }
    return 0;
}

/* ---- Flatten ------------------------------------------------------------------ */

struct flatten_params {
    int64_t axis;
};

static int flatten_setup(struct node *node, char *err)
{
    struct flatten_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    return node_attr_int(node, "axis", 1, &p->axis, err);
}

/* [d0 .. d(r-1)] -> [d0·…·d(axis-1), d(axis)·…·d(r-1)]; an empty product is 1. */
static int flatten_infer(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, char *err)
{
    const struct flatten_params *p = node->params;
    int r = in[0]->ndim;
    if (p->axis < -(int64_t)r || p->axis > r)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "axis %lld is out of range for rank %d (Flatten accepts %d to %d)",
                         (long long)p->axis, r, -r, r);
    int axis = (int)(p->axis < 0 ? p->axis + r : p->axis);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= in[0]->dims[i];
    for (int i = axis; i < r; i++)
        inner *= in[0]->dims[i];
    out[0]->dtype = in[0]->dtype;
    out[0]->ndim = 2;
    out[0]->dims[0] = outer;
    out[0]->dims[1] = inner;
    return 0;
}

const struct op op_flatten = {
    .name = "Flatten",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64 | OP_ALIAS,
    .setup = flatten_setup,
    .infer = flatten_infer,
    .forward = alias_forward,
    .backward = alias_backward,
};

/* ---- Reshape ------------------------------------------------------------------ */

struct reshape_params {
    int64_t allowzero;
};

static int reshape_setup(struct node *node, char *err)
{
    struct reshape_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    int rc = node_attr_int(node, "allowzero", 0, &p->allowzero, err);
    if (rc < 0)
        return rc;
    if (node->n_inputs != 2)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "Reshape takes the target shape as its second input (opset 5 and "
                         "later); this node has %d input(s)",
                         node->n_inputs);
    return 0;
}

/* Output dims from the requested shape s: s_i = 0 copies input dim i (unless
 * allowzero, where it is a literal 0), s_i = -1 (at most one) is whatever
 * makes the element counts equal, anything else is taken as is. */
static int reshape_infer(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, char *err)
{
    const struct reshape_params *p = node->params;
    const struct tview *x = in[0];
    if (!in[1])
        return node_fail(node, err, STRATA_E_FORMAT, "the target shape input is missing");
    int64_t s[OP_MAX_DIMS];
    int n, rc = const_ints(node, in[1], "shape", s, OP_MAX_DIMS, &n, err);
    if (rc < 0)
        return rc;
    char sx[96], ss[160];
    int64_t total = tview_count(x), known = 1;
    int infer_at = -1, has_zero = 0;
    for (int i = 0; i < n; i++) {
        int64_t d = s[i];
        if (d == -1) {
            if (infer_at >= 0)
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "cannot reshape %s to %s: at most one dimension may be -1",
                                 dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss));
            infer_at = i;
            d = 1;
        } else if (d < -1) {
            return node_fail(node, err, STRATA_E_FORMAT,
                             "cannot reshape %s to %s: dimension %d is %lld",
                             dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss), i,
                             (long long)d);
        } else if (d == 0 && !p->allowzero) {
            if (i >= x->ndim)
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "cannot reshape %s to %s: dimension %d is 0 (copy the input's) "
                                 "but the input has rank %d",
                                 dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss),
                                 i, x->ndim);
            d = x->dims[i];
        } else if (d == 0) {
            has_zero = 1;
        }
        if (d > 0 && known > INT64_MAX / d)
            return node_fail(node, err, STRATA_E_FORMAT, "cannot reshape %s to %s: too large",
                             dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss));
        known *= d;
        out[0]->dims[i] = d;
    }
    if (has_zero && infer_at >= 0)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "cannot reshape %s to %s: with allowzero = 1 a shape may not hold both "
                         "0 and -1",
                         dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss));
    if (infer_at >= 0) {
        if (known == 0)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "cannot reshape %s to %s: the other dimensions multiply to 0, so "
                             "the -1 dimension is undetermined",
                             dims_format(x, sx, sizeof sx), ints_format(s, n, ss, sizeof ss));
        if (total % known != 0)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "cannot reshape %s (%lld elements) to %s: no size for the -1 "
                             "dimension makes the counts equal",
                             dims_format(x, sx, sizeof sx), (long long)total,
                             ints_format(s, n, ss, sizeof ss));
        out[0]->dims[infer_at] = total / known;
    } else if (known != total) {
        return node_fail(node, err, STRATA_E_FORMAT,
                         "cannot reshape %s (%lld elements) to %s (%lld elements)",
                         dims_format(x, sx, sizeof sx), (long long)total,
                         ints_format(s, n, ss, sizeof ss), (long long)known);
    }
    out[0]->dtype = x->dtype;
    out[0]->ndim = n;
    return 0;
}

const struct op op_reshape = {
    .name = "Reshape",
    .min_inputs = 2, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64 | OP_ALIAS,
    .setup = reshape_setup,
    .infer = reshape_infer,
    .forward = alias_forward,
    .backward = alias_backward,
};

/* ---- Squeeze and Unsqueeze ------------------------------------------------------ */

/* The axes attribute (before opset 13); from opset 13 the axes are input 1. */
struct axes_params {
    int has_axes;
    int n_axes;
    int64_t axes[OP_MAX_DIMS];
};

static int axes_setup(struct node *node, char *err, int required)
{
    struct axes_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    if (node->opset >= 13) {
        if (node_attr(node, "axes"))
            return node_fail(node, err, STRATA_E_FORMAT,
                             "from opset 13 the axes are an input, not an attribute (the model "
                             "imports opset %d)",
                             node->opset);
        if (required && (node->n_inputs < 2 || (node->inputs && node->inputs[1] < 0)))
            return node_fail(node, err, STRATA_E_FORMAT, "the axes input is missing");
        return 0;
    }
    if (node->n_inputs > 1)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "before opset 13 the axes are an attribute, not an input (the model "
                         "imports opset %d)",
                         node->opset);
    p->has_axes = node_attr(node, "axes") != NULL;
    if (required && !p->has_axes)
        return node_fail(node, err, STRATA_E_FORMAT, "attribute 'axes' is required");
    return node_attr_ints(node, "axes", p->axes, OP_MAX_DIMS, &p->n_axes, err);
}

/* The axes for this call, from the attribute or the constant input 1; *have
 * is 0 when there are none (Squeeze then removes every dim of size 1). */
static int axes_get(const struct node *node, const struct tview *const *in, int64_t *axes,
                    int *n, int *have, char *err)
{
    const struct axes_params *p = node->params;
    if (node->opset < 13) {
        memcpy(axes, p->axes, sizeof p->axes);
        *n = p->n_axes;
        *have = p->has_axes;
        return 0;
    }
    *n = 0;
    *have = node->n_inputs > 1 && in[1];
    return *have ? const_ints(node, in[1], "axes", axes, OP_MAX_DIMS, n, err) : 0;
}

static int squeeze_setup(struct node *node, char *err)
{
    return axes_setup(node, err, 0);
}

static int unsqueeze_setup(struct node *node, char *err)
{
    return axes_setup(node, err, 1);
}

/* Drops the listed dims, which must be 1, or every 1 when none are listed. */
static int squeeze_infer(const struct node *node, const struct tview *const *in,
                         struct tview *const *out, char *err)
{
    const struct tview *x = in[0];
    int64_t axes[OP_MAX_DIMS];
    int n, have, mark[OP_MAX_DIMS];
    int rc = axes_get(node, in, axes, &n, &have, err);
    if (rc < 0)
        return rc;
    if (have) {
        if ((rc = mark_axes(node, axes, n, x->ndim, mark, err)) < 0)
            return rc;
        for (int i = 0; i < x->ndim; i++)
            if (mark[i] && x->dims[i] != 1) {
                char sx[96];
                return node_fail(node, err, STRATA_E_FORMAT,
                                 "cannot squeeze axis %d of shape %s: its size is %lld, not 1",
                                 i, dims_format(x, sx, sizeof sx), (long long)x->dims[i]);
            }
    } else {
        for (int i = 0; i < x->ndim; i++)
            mark[i] = x->dims[i] == 1;
    }
    int k = 0;
    for (int i = 0; i < x->ndim; i++)
        if (!mark[i])
            out[0]->dims[k++] = x->dims[i];
    out[0]->ndim = k;
    out[0]->dtype = x->dtype;
    return 0;
}

/* Inserts a dim of size 1 at each listed position of the output. */
static int unsqueeze_infer(const struct node *node, const struct tview *const *in,
                           struct tview *const *out, char *err)
{
    const struct tview *x = in[0];
    int64_t axes[OP_MAX_DIMS];
    int n, have, mark[OP_MAX_DIMS];
    int rc = axes_get(node, in, axes, &n, &have, err);
    if (rc < 0)
        return rc;
    if (!have)
        return node_fail(node, err, STRATA_E_FORMAT, "the axes input is missing");
    int rank = x->ndim + n;
    if (rank > OP_MAX_DIMS)
        return node_fail(node, err, STRATA_E_UNSUPPORTED,
                         "the output would have rank %d; at most %d is supported", rank,
                         OP_MAX_DIMS);
    if ((rc = mark_axes(node, axes, n, rank, mark, err)) < 0)
        return rc;
    for (int i = 0, j = 0; i < rank; i++)
        out[0]->dims[i] = mark[i] ? 1 : x->dims[j++];
    out[0]->ndim = rank;
    out[0]->dtype = x->dtype;
    return 0;
}

const struct op op_squeeze = {
    .name = "Squeeze",
    .min_inputs = 1, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64 | OP_ALIAS,
    .setup = squeeze_setup,
    .infer = squeeze_infer,
    .forward = alias_forward,
    .backward = alias_backward,
};

const struct op op_unsqueeze = {
    .name = "Unsqueeze",
    .min_inputs = 1, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64 | OP_ALIAS,
    .setup = unsqueeze_setup,
    .infer = unsqueeze_infer,
    .forward = alias_forward,
    .backward = alias_backward,
};

/* ---- Identity ----------------------------------------------------------------- */

static int identity_infer(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, char *err)
{
    (void)node;
    (void)err;
    same_shape(out[0], in[0]);
    return 0;
}

const struct op op_identity = {
    .name = "Identity",
    .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64 | OP_ALIAS,
    .infer = identity_infer,
    .forward = alias_forward,
    .backward = alias_backward,
};
