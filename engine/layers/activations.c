/*
 * activations.c — relu, sigmoid and softmax: the fused kernels every layer
 * shares (activation_forward / activation_backward) and the three standalone
 * layers (relu_ops, sigmoid_ops, softmax_ops) built on them.
 *
 * The shared kernels work in place on rows × len floats (the standalone
 * layers also write out of place, without a copy first). Only softmax cares about
 * rows: it normalises along each row, which in NHWC is the channel axis of
 * one position (or the classes of one sample after a dense layer).
 *
 * Backward takes y, the activated output, not the pre-activation: every one
 * of these derivatives is cheaper to write in terms of y, and y is what the
 * model keeps (it is the layer's captured output).
 *
 * Every loop runs on the pool (parallel.h), cut in rows: each element (and
 * each softmax row) is computed by one piece exactly as in one pass, so the
 * result does not depend on the split.
 */
#include "layer.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

/* Stable for any x: exp is only ever taken of a non-positive number, so it
 * cannot overflow (a large |x| underflows to 0 and gives exactly 0 or 1). */
static inline float sigmoidf(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* softmax(x)_i = exp(x_i - m) / Σ_j exp(x_j - m) with m = max_j x_j: the same
 * value as without m, but every exponent is ≤ 0 so nothing overflows and the
 * largest term is exactly 1, so the sum is ≥ 1. */
static void softmax_rows(float *y, const float *x, int rows, int len)
{
    for (int r = 0; r < rows; r++) {
        const float *v = x + (size_t)r * (size_t)len;
        float *o = y + (size_t)r * (size_t)len;
        float m = v[0];
        for (int i = 1; i < len; i++)
            m = v[i] > m ? v[i] : m;
        double sum = 0.0;
        for (int i = 0; i < len; i++) {
            o[i] = expf(v[i] - m);
            sum += o[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < len; i++)
            o[i] *= inv;
    }
}

/* y = act(x) for rows × len floats; y may equal x (every element is read
 * before it is written), so the standalone layers need no copy first. */
static void activation_apply(enum activation act, float *y, const float *x, int rows, int len)
{
    size_t n = (size_t)rows * (size_t)len;
    switch (act) {
    case ACT_NONE:
        if (y != x)
            memcpy(y, x, n * sizeof(float));
        return;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = sigmoidf(x[i]);
        return;
    case ACT_SOFTMAX:
        softmax_rows(y, x, rows, len);
        return;
    }
    assert(!"unknown activation");
}

/* One activation loop over rows × len floats, for the pieces run on the
 * pool; a piece [b, e) is rows b … e − 1. */
struct act_job {
    enum activation act;
    float *y;           /* forward: y; backward: dy (in place) or din */
    const float *x;     /* forward: x; backward: y */
    float *dout;        /* standalone backward: dout */
    int len;
};

static void act_forward_piece(void *p, int b, int e)
{
    const struct act_job *j = p;
    const size_t off = (size_t)b * (size_t)j->len;
    activation_apply(j->act, j->y + off, j->x + off, e - b, j->len);
}

static void activation_backward_rows(enum activation act, float *dy, const float *y, int rows,
                                     int len);

static void act_backward_piece(void *p, int b, int e)
{
    const struct act_job *j = p;
    const size_t off = (size_t)b * (size_t)j->len;
    activation_backward_rows(j->act, j->y + off, j->x + off, e - b, j->len);
}

/* Work per row: relu touches 2 floats per value, sigmoid and softmax cost an
 * exp, worth about 8. */
static int act_grain(enum activation act, int len)
{
    return parallel_grain((size_t)len * (act == ACT_RELU || act == ACT_NONE ? 2 : 8));
}

/* Applies act in place to rows × len floats. Can't fail. */
void activation_forward(enum activation act, float *x, int rows, int len)
{
    assert(rows >= 0 && len >= 0);
    if ((size_t)rows * (size_t)len == 0 || act == ACT_NONE)
        return;
    assert(x);
    struct act_job j = {.act = act, .y = x, .x = x, .len = len};
    parallel_for_grain(rows, act_grain(act, len), act_forward_piece, &j);
}

/* Turns dy = dL/dy into dL/dz in place, where y = act(z), given y:
 *   relu     dz = dy · [y > 0]
 *   sigmoid  dz = dy · y (1 - y)
 *   softmax  dz_i = Σ_j dy_j ∂y_j/∂z_i = Σ_j dy_j y_j (δ_ij - y_i)
 *               = y_i (dy_i - Σ_j dy_j y_j)        (per row)
 * Can't fail. */
void activation_backward(enum activation act, float *dy, const float *y, int rows, int len)
{
    assert(rows >= 0 && len >= 0);
    if ((size_t)rows * (size_t)len == 0 || act == ACT_NONE)
        return;
    assert(dy && y);
    struct act_job j = {.act = act, .y = dy, .x = y, .len = len};
    parallel_for_grain(rows, act_grain(act, len), act_backward_piece, &j);
}

/* activation_backward on one thread. */
static void activation_backward_rows(enum activation act, float *dy, const float *y, int rows,
                                     int len)
{
    size_t n = (size_t)rows * (size_t)len;
    switch (act) {
    case ACT_NONE:
        return;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            float g = dy[i]; /* loaded unconditionally: the select vectorises */
            dy[i] = y[i] > 0.0f ? g : 0.0f;
        }
        return;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dy[i] *= y[i] * (1.0f - y[i]);
        return;
    case ACT_SOFTMAX:
        for (int r = 0; r < rows; r++) {
            float *g = dy + (size_t)r * (size_t)len;
            const float *p = y + (size_t)r * (size_t)len;
            double dot = 0.0;
            for (int i = 0; i < len; i++)
                dot += (double)g[i] * p[i];
            float s = (float)dot;
            for (int i = 0; i < len; i++)
                g[i] = p[i] * (g[i] - s);
        }
        return;
    }
    assert(!"unknown activation");
}

/* The name model.json uses; ACT_NONE is Keras's "linear". Static string,
 * can't fail. */
const char *activation_name(enum activation act)
{
    switch (act) {
    case ACT_NONE: return "linear";
    case ACT_RELU: return "relu";
    case ACT_SIGMOID: return "sigmoid";
    case ACT_SOFTMAX: return "softmax";
    }
    return "unknown";
}

static const struct {
    const char *name;
    enum activation act;
} activation_table[] = {
    {"linear", ACT_NONE},
    {"none", ACT_NONE},
    {"relu", ACT_RELU},
    {"sigmoid", ACT_SIGMOID},
    {"softmax", ACT_SOFTMAX},
};

/* Parses a model.json activation name into *out. Returns 0, or STRATA_E_ARG
 * for an unknown name (out untouched; the caller writes the message, since it
 * knows which layer and file the name came from). */
int activation_parse(const char *name, enum activation *out)
{
    assert(name && out);
    for (size_t i = 0; i < sizeof activation_table / sizeof activation_table[0]; i++) {
        if (strcmp(name, activation_table[i].name) == 0) {
            *out = activation_table[i].act;
            return 0;
        }
    }
    return STRATA_E_ARG;
}

/* ---- standalone activation layers ---------------------------------------- */

/* Shape-preserving; the fused `activation` field means nothing here and is
 * ignored. */
static int act_configure(struct layer *l, char *err)
{
    if (l->in.h < 1 || l->in.w < 1 || l->in.c < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "layer '%s': input shape %dx%dx%d is empty", l->cfg.name,
                           l->in.h, l->in.w, l->in.c);
    l->out = l->in;
    return 0;
}

static int act_params(const struct layer *l, struct param_desc *desc)
{
    return 0;
}

static size_t act_state_size(const struct layer *l, int n)
{
    return 0;
}

static void act_state_bind(struct layer *l, void *block, int n)
{
}

static void act_init(struct layer *l, struct rng *r)
{
}

/* Rows are positions and len is channels, so softmax runs over c. */
static void act_forward(enum activation act, const struct layer *l, float *out,
                        const float *in, int n)
{
    struct act_job j = {.act = act, .y = out, .x = in, .len = l->in.c};
    parallel_for_grain(n * l->in.h * l->in.w, act_grain(act, l->in.c), act_forward_piece, &j);
}

/* din += d(pre-activation) for rows [b, e) (or just din += dout with
 * dout_is_preact, marked by act == ACT_NONE). relu and sigmoid do it in one
 * pass; softmax first turns dout into it in place (its rows couple the
 * channels). */
static void act_backward_add_piece(void *p, int b, int e)
{
    const struct act_job *j = p;
    const size_t off = (size_t)b * (size_t)j->len, total = (size_t)(e - b) * (size_t)j->len;
    float *restrict din = j->y + off, *restrict dout = j->dout + off;
    const float *restrict y = j->x + off;
    switch (j->act) {
    case ACT_NONE:
        for (size_t i = 0; i < total; i++)
            din[i] += dout[i];
        return;
    case ACT_RELU:
        for (size_t i = 0; i < total; i++) {
            float g = dout[i]; /* loaded unconditionally: the select vectorises */
            din[i] += y[i] > 0.0f ? g : 0.0f;
        }
        return;
    case ACT_SIGMOID:
        for (size_t i = 0; i < total; i++)
            din[i] += dout[i] * y[i] * (1.0f - y[i]);
        return;
    case ACT_SOFTMAX:
        activation_backward_rows(ACT_SOFTMAX, dout, y, e - b, j->len);
        for (size_t i = 0; i < total; i++)
            din[i] += dout[i];
        return;
    }
}

/* din += d(pre-activation). With dout_is_preact the caller already turned
 * dout into it, and dout is added as is. */
static void act_backward(enum activation act, struct layer *l, float *restrict din,
                         float *restrict dout, const float *restrict y, int n,
                         const struct layer_ctx *ctx)
{
    if (!din)
        return;
    struct act_job j = {.act = ctx->dout_is_preact ? ACT_NONE : act, .y = din, .x = y,
                        .dout = dout, .len = l->in.c};
    parallel_for_grain(n * l->in.h * l->in.w, act_grain(act, l->in.c), act_backward_add_piece,
                       &j);
}

#define STANDALONE_ACTIVATION(NAME, ACT, KIND)                                              \
    static void NAME##_forward(const struct layer *l, float *out, const float *in, int n,  \
                               struct layer_ctx *ctx)                                       \
    {                                                                                       \
        act_forward(ACT, l, out, in, n);                                                    \
    }                                                                                       \
    static void NAME##_backward(struct layer *l, float *din, float *dout, const float *in, \
                                const float *out, int n, struct layer_ctx *ctx)             \
    {                                                                                       \
        act_backward(ACT, l, din, dout, out, n, ctx);                                       \
    }                                                                                       \
    const struct layer_ops NAME##_ops = {                                                   \
        .type = #NAME,                                                                      \
        .kind = KIND,                                                                       \
        .configure = act_configure,                                                         \
        .params = act_params,                                                               \
        .col_size = NULL,                                                                   \
        .state_size = act_state_size,                                                       \
        .state_bind = act_state_bind,                                                       \
        .init = act_init,                                                                   \
        .forward = NAME##_forward,                                                          \
        .backward = NAME##_backward,                                                        \
    };

STANDALONE_ACTIVATION(relu, ACT_RELU, LAYER_RELU)
STANDALONE_ACTIVATION(sigmoid, ACT_SIGMOID, LAYER_SIGMOID)
STANDALONE_ACTIVATION(softmax, ACT_SOFTMAX, LAYER_SOFTMAX)
