/*
 * concat.c — Concat: joins any number of tensors (float or int64, same rank,
 * same dims but on `axis`) along `axis`.
 *
 * `axis` is a required attribute in every opset we read (6..17); negative
 * values count from the end (ONNX defines them from opset 11; older files
 * that use them are read the same way).
 *
 * Seen as [outer, d_i·inner] row blocks, with outer = Π dims[<axis] and
 * inner = Π dims[>axis], output row o is input 0's row o, then input 1's row
 * o, and so on: forward copies those blocks, backward adds the matching
 * blocks of dout into each din.
 */
#include "op.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "../status.h"

struct concat_params {
    int64_t axis;
};

static int concat_setup(struct node *node, char *err)
{
    struct concat_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    if (!node_attr(node, "axis"))
        return node_fail(node, err, STRATA_E_FORMAT, "attribute 'axis' is required");
    return node_attr_int(node, "axis", 0, &p->axis, err);
}

static int concat_infer(const struct node *node, const struct tview *const *in,
                        struct tview *const *out, char *err)
{
    const struct concat_params *p = node->params;
    if (node->n_inputs < 1 || !in[0])
        return node_fail(node, err, STRATA_E_FORMAT, "Concat needs at least one input");
    const struct tview *x0 = in[0];
    if (x0->ndim == 0)
        return node_fail(node, err, STRATA_E_FORMAT, "cannot concatenate scalars");
    int axis;
    int rc = node_axis(node, p->axis, x0->ndim, &axis, err);
    if (rc < 0)
        return rc;
    out[0]->dtype = x0->dtype;
    out[0]->ndim = x0->ndim;
    memcpy(out[0]->dims, x0->dims, sizeof out[0]->dims);
    out[0]->dims[axis] = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        const struct tview *x = in[i];
        char s0[96], si[96];
        if (!x)
            return node_fail(node, err, STRATA_E_FORMAT, "input %d is missing", i);
        if (x->dtype != x0->dtype)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input %d is %s but input 0 is %s: Concat needs one element type",
                             i, x->dtype == DTYPE_INT64 ? "int64" : "float",
                             x0->dtype == DTYPE_INT64 ? "int64" : "float");
        int same = x->ndim == x0->ndim;
        for (int k = 0; same && k < x0->ndim; k++)
            same = k == axis || x->dims[k] == x0->dims[k];
        if (!same)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input %d has shape %s and input 0 has shape %s: they must agree "
                             "on every axis but %d",
                             i, dims_format(x, si, sizeof si), dims_format(x0, s0, sizeof s0),
                             axis);
        out[0]->dims[axis] += x->dims[axis];
    }
    return 0;
}

/* Π dims[<axis] of t. */
static int64_t outer_count(const struct tview *t, int axis)
{
    int64_t n = 1;
    for (int k = 0; k < axis; k++)
        n *= t->dims[k];
    return n;
}

/* The axis as infer normalised it (it cannot fail after infer). */
static int concat_axis(const struct node *node, int rank)
{
    const struct concat_params *p = node->params;
    return (int)(p->axis < 0 ? p->axis + rank : p->axis);
}

static void concat_forward(const struct node *node, const struct tview *const *in,
                           struct tview *const *out, struct op_ctx *ctx)
{
    (void)ctx;
    const struct tview *y = out[0];
    int axis = concat_axis(node, y->ndim);
    size_t es = y->dtype == DTYPE_INT64 ? sizeof(int64_t) : sizeof(float);
    int64_t outer = outer_count(y, axis);
    size_t out_row = (size_t)(tview_count(y) / (outer ? outer : 1)) * es;
    size_t at = 0; /* byte offset of input i's block within an output row */
    for (int i = 0; i < node->n_inputs; i++) {
        size_t row = (size_t)(outer ? tview_count(in[i]) / outer : 0) * es;
        const char *x = in[i]->data;
        char *d = (char *)y->data + at;
        for (int64_t o = 0; o < outer; o++)
            memcpy(d + (size_t)o * out_row, x + (size_t)o * row, row);
        at += row;
    }
}

/* din_i[o, j] += dout[o, off_i + j]: each input's block of every row. */
static void concat_backward(const struct node *node, const struct tview *const *in,
                            const struct tview *const *out, const struct tview *const *dout,
                            struct tview *const *din, struct op_ctx *ctx)
{
    (void)ctx;
    const struct tview *y = out[0];
    if (y->dtype != DTYPE_FLOAT)
        return;
    int axis = concat_axis(node, y->ndim);
    int64_t outer = outer_count(y, axis);
    int64_t out_row = outer ? tview_count(y) / outer : 0;
    int64_t at = 0;
    for (int i = 0; i < node->n_inputs; i++) {
        int64_t row = outer ? tview_count(in[i]) / outer : 0;
        if (din[i]) {
            float *dx = tview_f(din[i]);
            const float *dy = tview_f(dout[0]) + at;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < row; j++)
                    dx[o * row + j] += dy[o * out_row + j];
        }
        at += row;
    }
}

const struct op op_concat = {
    .name = "Concat",
    .min_inputs = 1, .max_inputs = -1, .min_outputs = 1, .max_outputs = 1,
    .flags = OP_INT64,
    .setup = concat_setup,
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
};
