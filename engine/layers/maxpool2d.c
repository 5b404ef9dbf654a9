/*
 * maxpool2d.c — max pooling over pool×pool windows with a stride, NHWC.
 *
 * Output size (TensorFlow's rules):
 *   valid  out = floor((in − pool) / stride) + 1
 *   same   out = ceil(in / stride); the window grid is padded by
 *          pad_total = max((out − 1)·stride + pool − in, 0), the smaller half
 *          (pad_total / 2) before and the rest after. Padded positions are
 *          skipped, never compared, so they never win (a window of negative
 *          values keeps its maximum; every window overlaps the input because
 *          pad_before < pool and (out − 1)·stride < in).
 *
 * A training forward records, per output element, the index of the winning
 * input element *within its sample* (((y·W + x)·C + c), an int32), in
 * l->state.argmax [n · out]; backward scatters dout through it. On ties the
 * first element in window scan order (row-major) wins, so the gradient goes
 * to exactly one input, as in TensorFlow.
 *
 * Windows are walked position by position with the channel loop innermost:
 * each step compares C consecutive floats, which vectorises.
 *
 * Both directions run on the pool (parallel.h): the forward cut in output
 * rows of the batch, the backward in output rows when windows cannot overlap
 * (stride ≥ pool: each input element gets at most one gradient) and in
 * samples otherwise. Every output (and every din element) is computed by one
 * piece in the serial order, so the result does not depend on the split.
 */
#include "layer.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

static int mp_out_size(int in, int pool, int stride, enum padding pad)
{
    if (pad == PADDING_SAME)
        return (in + stride - 1) / stride;
    return (in - pool) / stride + 1;
}

static int mp_pad_before(int in, int out, int pool, int stride, enum padding pad)
{
    if (pad != PADDING_SAME)
        return 0;
    int total = (out - 1) * stride + pool - in;
    return total > 0 ? total / 2 : 0;
}

static int mp_configure(struct layer *l, char *err)
{
    struct layer_config *c = &l->cfg;
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': input shape %dx%dx%d is empty",
                           c->name, l->in.h, l->in.w, l->in.c);
    if (c->pool < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': pool_size is %d, it must be >= 1",
                           c->name, c->pool);
    if (c->stride == 0)
        c->stride = c->pool;
    if (c->stride < 1)
        return strata_fail(err, STRATA_E_ARG, "layer '%s': strides is %d, it must be >= 1",
                           c->name, c->stride);
    if (c->padding != PADDING_VALID && c->padding != PADDING_SAME)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': padding must be \"valid\" or \"same\"", c->name);
    if (c->activation != ACT_NONE)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': maxpool2d takes no activation (got \"%s\")", c->name,
                           activation_name(c->activation));
    if (c->padding == PADDING_VALID && (l->in.h < c->pool || l->in.w < c->pool))
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': pool_size %d is larger than the %dx%d input; "
                           "use padding \"same\" or a smaller pool",
                           c->name, c->pool, l->in.h, l->in.w);
    if (shape_size(l->in) > (size_t)INT32_MAX)
        return strata_fail(err, STRATA_E_LIMIT,
                           "layer '%s': input of %zu values per sample is too large",
                           c->name, shape_size(l->in));
    l->out = (struct shape){
        .h = mp_out_size(l->in.h, c->pool, c->stride, c->padding),
        .w = mp_out_size(l->in.w, c->pool, c->stride, c->padding),
        .c = l->in.c,
    };
    return 0;
}

static int mp_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static size_t mp_state_size(const struct layer *l, int n)
{
    return (size_t)n * shape_size(l->out) * sizeof(int32_t);
}

static void mp_state_bind(struct layer *l, void *block, int n)
{
    l->state.argmax = block;
}

static void mp_init(struct layer *l, struct rng *r)
{
}

struct mp_job {
    const struct layer *l;
    float *out;        /* forward: out; backward: din */
    const float *in;   /* forward: in; backward: dout */
    int32_t *argmax;   /* NULL for an inference forward */
};

/* Output rows [rb, re) of the batch (row r is output row r mod OH of sample
 * r / OH). */
static void mp_forward_rows(const struct layer *l, float *restrict out, const float *restrict in,
                            int32_t *restrict argmax, int rb, int re)
{
    const int H = l->in.h, W = l->in.w, C = l->in.c;
    const int OH = l->out.h, OW = l->out.w;
    const int p = l->cfg.pool, s = l->cfg.stride;
    const int pt = mp_pad_before(H, OH, p, s, l->cfg.padding);
    const int pl = mp_pad_before(W, OW, p, s, l->cfg.padding);
    const size_t in_sz = shape_size(l->in), out_sz = shape_size(l->out);

    for (int row = rb; row < re; row++) {
        const int b = row / OH, oy = row % OH;
        const float *xin = in + (size_t)b * in_sz;
        int y0 = oy * s - pt, y1 = y0 + p;
        y0 = y0 < 0 ? 0 : y0;
        y1 = y1 > H ? H : y1;
        for (int ox = 0; ox < OW; ox++) {
            int x0 = ox * s - pl, x1 = x0 + p;
            x0 = x0 < 0 ? 0 : x0;
            x1 = x1 > W ? W : x1;
            size_t o_off = (size_t)b * out_sz + ((size_t)oy * OW + ox) * C;
            float *o = out + o_off;
            /* Seed with the first valid element, not −∞: no sentinel to
             * leak out and nothing for a padded position to win with. */
            size_t first = ((size_t)y0 * W + x0) * C;
            memcpy(o, xin + first, (size_t)C * sizeof(float));
            if (argmax) {
                int32_t *a = argmax + o_off;
                for (int c = 0; c < C; c++)
                    a[c] = (int32_t)(first + c);
                for (int y = y0; y < y1; y++) {
                    for (int x = (y == y0 ? x0 + 1 : x0); x < x1; x++) {
                        int32_t base = (int32_t)(((size_t)y * W + x) * C);
                        const float *r = xin + base;
                        /* The index is selected through an all-ones
                         * mask rather than a second ?:, which gcc
                         * will not if-convert: this way the loop
                         * vectorises like the plain max below. */
                        for (int c = 0; c < C; c++) {
                            float v = r[c], m = o[c];
                            int32_t win = -(int32_t)(v > m);
                            o[c] = v > m ? v : m;
                            a[c] = (a[c] & ~win) | ((base + c) & win);
                        }
                    }
                }
            } else {
                for (int y = y0; y < y1; y++) {
                    for (int x = (y == y0 ? x0 + 1 : x0); x < x1; x++) {
                        const float *r = xin + ((size_t)y * W + x) * C;
                        for (int c = 0; c < C; c++)
                            o[c] = r[c] > o[c] ? r[c] : o[c];
                    }
                }
            }
        }
    }
}

static void mp_forward_piece(void *p, int b, int e)
{
    const struct mp_job *j = p;
    mp_forward_rows(j->l, j->out, j->in, j->argmax, b, e);
}

static void mp_forward(const struct layer *l, float *restrict out, const float *restrict in,
                       int n, struct layer_ctx *ctx)
{
    struct mp_job j = {.l = l, .out = out, .in = in,
                       .argmax = ctx->training ? l->state.argmax : NULL};
    const size_t row_work = (size_t)l->out.w * l->in.c * ((size_t)l->cfg.pool * l->cfg.pool + 1);
    assert((int64_t)n * l->out.h <= INT32_MAX);
    parallel_for_grain(n * l->out.h, parallel_grain(row_work), mp_forward_piece, &j);
}

/* din[argmax] += dout for the outputs [ob, oe) of sample b: each output's
 * gradient goes to the one input that won its window. */
static void mp_scatter(const struct layer *l, float *restrict din, const float *restrict dout,
                       int b, size_t ob, size_t oe)
{
    const size_t in_sz = shape_size(l->in), out_sz = shape_size(l->out);
    float *d = din + (size_t)b * in_sz;
    const float *g = dout + (size_t)b * out_sz;
    const int32_t *a = l->state.argmax + (size_t)b * out_sz;
    for (size_t i = ob; i < oe; i++)
        d[a[i]] += g[i];
}

/* Samples [b, e). */
static void mp_backward_samples(void *p, int b, int e)
{
    const struct mp_job *j = p;
    for (int s = b; s < e; s++)
        mp_scatter(j->l, j->out, j->in, s, 0, shape_size(j->l->out));
}

/* Output rows [b, e) of the batch; only when windows do not overlap. */
static void mp_backward_rows(void *p, int b, int e)
{
    const struct mp_job *j = p;
    const int OH = j->l->out.h;
    const size_t row = (size_t)j->l->out.w * j->l->out.c;
    for (int r = b; r < e; r++)
        mp_scatter(j->l, j->out, j->in, r / OH, (size_t)(r % OH) * row,
                   (size_t)(r % OH + 1) * row);
}

/* din[argmax] += dout. Needs the argmax of a training forward on the same
 * batch. */
static void mp_backward(struct layer *l, float *din, float *dout, const float *in,
                        const float *out, int n, struct layer_ctx *ctx)
{
    if (!din)
        return;
    assert(l->state.argmax && "maxpool2d: backward needs a training forward's argmax");
    struct mp_job j = {.l = l, .out = din, .in = dout};
    const size_t row = (size_t)l->out.w * l->out.c;
    if (l->cfg.stride >= l->cfg.pool)
        parallel_for_grain(n * l->out.h, parallel_grain(3 * row), mp_backward_rows, &j);
    else
        parallel_for_grain(n, parallel_grain(3 * row * l->out.h), mp_backward_samples, &j);
}

const struct layer_ops maxpool2d_ops = {
    .type = "maxpool2d",
    .kind = LAYER_MAXPOOL2D,
    .configure = mp_configure,
    .params = mp_params,
    .col_size = NULL,
    .state_size = mp_state_size,
    .state_bind = mp_state_bind,
    .init = mp_init,
    .forward = mp_forward,
    .backward = mp_backward,
};
