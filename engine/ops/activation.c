/*
 * activation.c — the pointwise activations: Relu, LeakyRelu, PRelu, Clip,
 * Sigmoid, HardSigmoid, HardSwish and Tanh, on float32 tensors of any shape.
 *
 * Every one maps each element on its own, y = f(x), so backward is
 * dx += f'(x) · dy elementwise (f' written beside each f below). Where f is
 * piecewise linear, f' at a kink is taken from the side the comparison in
 * forward picks. Sigmoid and Tanh write f' from the output y (y(1-y),
 * 1-y²); the others from x.
 *
 * Two take a second tensor:
 *  - PRelu's slope broadcasts onto X in one direction (ONNX unidirectional
 *    broadcasting, the numpy rule with X's shape fixed: [C,1,1] is per
 *    channel of N×C×H×W, [W] per column), and gets a gradient
 *    dslope = Σ dy·x over the elements with x ≤ 0 that used it.
 *  - Clip takes min and max as attributes before opset 11, as optional scalar
 *    inputs from opset 11 on; strata needs those inputs to be constants (an
 *    initializer or a Constant), as exporters write them. Their gradients are
 *    the sums of dy over the elements clamped to them.
 */
#include "op.h"

#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

enum act_kind {
    ACT_RELU, ACT_LEAKY_RELU, ACT_CLIP, ACT_SIGMOID, ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_TANH,
};

struct act_params {
    enum act_kind kind;
    float alpha, beta;  /* LeakyRelu alpha; HardSigmoid alpha, beta */
    float lo, hi;       /* Clip before opset 11: attributes min, max */
};

static int act_setup(struct node *node, char *err, enum act_kind kind)
{
    struct act_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    node->params = p;
    p->kind = kind;
    switch (kind) {
    case ACT_LEAKY_RELU:
        return node_attr_float(node, "alpha", 0.01f, &p->alpha, err);
    case ACT_HARD_SIGMOID: {
        int rc = node_attr_float(node, "alpha", 0.2f, &p->alpha, err);
        return rc < 0 ? rc : node_attr_float(node, "beta", 0.5f, &p->beta, err);
    }
    case ACT_CLIP:
        p->lo = -FLT_MAX;
        p->hi = FLT_MAX;
        if (node->opset < 11) {
            int rc = node_attr_float(node, "min", -FLT_MAX, &p->lo, err);
            return rc < 0 ? rc : node_attr_float(node, "max", FLT_MAX, &p->hi, err);
        }
        return 0;
    default:
        return 0;
    }
}

static int act_setup_relu(struct node *n, char *e) { return act_setup(n, e, ACT_RELU); }
static int act_setup_leaky(struct node *n, char *e) { return act_setup(n, e, ACT_LEAKY_RELU); }
static int act_setup_clip(struct node *n, char *e) { return act_setup(n, e, ACT_CLIP); }
static int act_setup_sigmoid(struct node *n, char *e) { return act_setup(n, e, ACT_SIGMOID); }
static int act_setup_hsig(struct node *n, char *e) { return act_setup(n, e, ACT_HARD_SIGMOID); }
static int act_setup_hswish(struct node *n, char *e) { return act_setup(n, e, ACT_HARD_SWISH); }
static int act_setup_tanh(struct node *n, char *e) { return act_setup(n, e, ACT_TANH); }

static int act_need_float(const struct node *node, const struct tview *t, const char *what,
                          char *err)
{
    if (t->dtype != DTYPE_FLOAT)
        return node_fail(node, err, STRATA_E_UNSUPPORTED, "%s is int64; only float is supported",
                         what);
    return 0;
}

static int act_infer(const struct node *node, const struct tview *const *in,
                     struct tview *const *out, char *err)
{
    int rc = act_need_float(node, in[0], "input X", err);
    if (rc < 0)
        return rc;
    *out[0] = *in[0];
    out[0]->data = NULL;
    return 0;
}

/* Float bits, and float selects done on them: the loops below are written
 * without a floating-point comparison feeding a choice, because GCC only
 * turns such a choice into a vector blend when comparisons may not trap
 * (-fno-trapping-math, which the tests that enable traps rule out). */
static inline uint32_t act_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float act_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* min(a, b) for a, b ≥ 0 (their bit patterns order as the values do). */
static inline float act_min_nonneg(float a, float b)
{
    const uint32_t x = act_bits(a), y = act_bits(b);
    return act_float(x < y ? x : y);
}

/* e^t for −104 ≤ t ≤ 0, in plain arithmetic the compiler vectorises (libm's
 * expf is a call per element, and made Sigmoid the slowest op of
 * EfficientNet): t = k·ln 2 + r with k = round(t / ln 2) and |r| ≤ ln 2 / 2
 * (ln 2 in two parts, so r is exact to float precision), e^r by its Taylor
 * polynomial to r⁷ (truncation below 6e-9, relative), times 2^k put straight
 * into the exponent bits, in two halves so that results down to the
 * subnormals come out right (at −104, e^t is below half the smallest
 * subnormal and the product rounds to 0). Relative error: a few float ulps
 * (checked against double precision in test_ops_math). */
static inline float act_exp_nonpositive(float t)
{
    /* k = round(t / ln 2) ≤ 0, by truncating a non-negative number */
    const int32_t ki = -(int32_t)(0.5f - t * 1.44269504f);
    const float k = (float)ki;
    const float r = (t - k * 0.693145752f) - k * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t k1 = ki / 2, k2 = ki - k1; /* each ≥ −75: a normal 2^k */
    return p * act_float((uint32_t)(k1 + 127) << 23) * act_float((uint32_t)(k2 + 127) << 23);
}

/* Stable for any x: exp is only taken of a non-positive number, so it cannot
 * overflow; a large |x| underflows to 0 or 1. σ(x) = 1/(1 + e) for x ≥ 0 and
 * e/(1 + e) below, with e = e^−|x|: one division whichever the sign. */
static inline float act_sigmoidf(float x)
{
    const float e = act_exp_nonpositive(-act_min_nonneg(fabsf(x), 104.0f));
    const uint32_t negative = 0u - (act_bits(x) >> 31); /* all ones when x < 0 */
    const float num = act_float((act_bits(1.0f) & ~negative) | (act_bits(e) & negative));
    return num / (1.0f + e);
}

/* tanh x = sign(x)·(1 − e)/(1 + e) with e = e^(−2|x|). Near 0, 1 − e loses
 * the low bits of x; below |x| = 1/8 the odd series x − x³/3 + 2x⁵/15 −
 * 17x⁷/315 + 62x⁹/2835 is used instead (its truncation, 1382x¹¹/155925, is
 * below 1e-12 relative there).
 * Both come from a clamped |x|, so no lane overflows (tanh is exactly ±1 in
 * float beyond |x| = 10), then one is picked. */
static inline float act_tanhf(float x)
{
    const float a = fabsf(x);
    const float e = act_exp_nonpositive(-2.0f * act_min_nonneg(a, 10.0f));
    const float big = (1.0f - e) / (1.0f + e);
    const float as = act_min_nonneg(a, 0.125f), s2 = as * as;
    const float small =
        as * (1.0f + s2 * (-1.0f / 3.0f + s2 * (2.0f / 15.0f +
                                                s2 * (-17.0f / 315.0f + s2 * (62.0f / 2835.0f)))));
    const uint32_t t = act_bits(a) < act_bits(0.125f) ? act_bits(small) : act_bits(big);
    return act_float(t | (act_bits(x) & 0x80000000u));
}

/* Sigmoid and Tanh over [i0, i1), vectorised for the CPU at hand. */
#define ACT_VECTOR __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

ACT_VECTOR static void act_sigmoid_run(float *restrict y, const float *restrict x, int64_t i0,
                                       int64_t i1)
{
    for (int64_t i = i0; i < i1; i++)
        y[i] = act_sigmoidf(x[i]);
}

/* x·σ(x), with the product rounded once more, as Mul after Sigmoid gives. */
ACT_VECTOR static void act_silu_run(float *restrict y, const float *restrict x, int64_t i0,
                                    int64_t i1)
{
    for (int64_t i = i0; i < i1; i++)
        y[i] = x[i] * act_sigmoidf(x[i]);
}

ACT_VECTOR static void act_tanh_run(float *restrict y, const float *restrict x, int64_t i0,
                                    int64_t i1)
{
    for (int64_t i = i0; i < i1; i++)
        y[i] = act_tanhf(x[i]);
}

/* Clip's bounds: the attributes before opset 11, else the constant inputs
 * (either may be absent: no bound on that side). */
static void clip_bounds(const struct node *node, const struct tview *const *in, float *lo,
                        float *hi)
{
    const struct act_params *p = node->params;
    *lo = p->lo;
    *hi = p->hi;
    if (node->opset >= 11) {
        if (node->n_inputs > 1 && in[1])
            *lo = tview_f(in[1])[0];
        if (node->n_inputs > 2 && in[2])
            *hi = tview_f(in[2])[0];
    }
}

/* Elements per piece of a parallel activation loop. */
#define ACT_CHUNK 4096

struct act_job {
    const struct act_params *p;
    int times_input;    /* Sigmoid fused with the Mul by its input: x·σ(x) */
    float lo, hi;       /* Clip's bounds */
    const float *x;
    float *y;
    int64_t n;
};

/* Elements [i0, i1) of y = f(x); each element on its own, so any split gives
 * the same result. */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void act_apply(const struct act_job *j, int64_t i0, int64_t i1)
{
    const float *restrict x = j->x;
    float *restrict y = j->y;
    switch (j->p->kind) {
    case ACT_RELU: /* y = max(0, x) */
        for (int64_t i = i0; i < i1; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU: { /* y = x for x > 0, alpha·x otherwise */
        const float a = j->p->alpha;
        for (int64_t i = i0; i < i1; i++)
            y[i] = x[i] > 0.0f ? x[i] : a * x[i];
        break;
    }
    case ACT_CLIP: { /* y = min(max(x, lo), hi): hi everywhere when lo > hi, as ONNX says */
        const float lo = j->lo, hi = j->hi;
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i] > lo ? x[i] : lo;
            y[i] = v < hi ? v : hi;
        }
        break;
    }
    case ACT_SIGMOID: /* y = 1 / (1 + e^-x), or x·σ(x) fused */
        if (j->times_input)
            act_silu_run(y, x, i0, i1);
        else
            act_sigmoid_run(y, x, i0, i1);
        break;
    case ACT_HARD_SIGMOID: { /* y = max(0, min(1, alpha·x + beta)) */
        const float a = j->p->alpha, b = j->p->beta;
        for (int64_t i = i0; i < i1; i++) {
            float v = a * x[i] + b;
            y[i] = v <= 0.0f ? 0.0f : v >= 1.0f ? 1.0f : v;
        }
        break;
    }
    case ACT_HARD_SWISH: /* y = x · max(0, min(1, x/6 + 1/2)) */
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i] / 6.0f + 0.5f;
            y[i] = v <= 0.0f ? 0.0f : v >= 1.0f ? x[i] : x[i] * v;
        }
        break;
    case ACT_TANH: /* saturates to ±1 without overflow */
        act_tanh_run(y, x, i0, i1);
        break;
    }
}

static void act_piece(void *ctx, int c0, int c1)
{
    const struct act_job *j = ctx;
    const int64_t i1 = (int64_t)c1 * ACT_CHUNK;
    act_apply(j, (int64_t)c0 * ACT_CHUNK, i1 < j->n ? i1 : j->n);
}

static void act_forward(const struct node *node, const struct tview *const *in,
                        struct tview *const *out, struct op_ctx *ctx)
{
    struct act_job j = {.p = node->params, .x = tview_f(in[0]), .y = tview_f(out[0]),
                        .n = tview_count(in[0]), .times_input = ctx && ctx->times_input};
    if (j.p->kind == ACT_CLIP)
        clip_bounds(node, in, &j.lo, &j.hi);
    const int64_t chunks = (j.n + ACT_CHUNK - 1) / ACT_CHUNK;
    assert(chunks <= INT_MAX);
    parallel_for_grain((int)chunks, parallel_grain(2 * ACT_CHUNK), act_piece, &j);
}

/* dx[i] += f'(x[i]) · g[i] for i in [i0, i1), for every kind but Clip.
 * dx is never one of the others (a gradient has its own buffer), so the
 * loops vectorise (a ReLU's took 7 % of a residual model's training step
 * otherwise). */
ACT_VECTOR static void act_grad_range(const struct act_params *p, const float *restrict x,
                                      const float *restrict y, const float *restrict g,
                                      float *restrict dx, int64_t i0, int64_t i1)
{
    switch (p->kind) {
    case ACT_RELU: /* f' = 1 for x > 0, else 0 */
        for (int64_t i = i0; i < i1; i++)
            dx[i] += x[i] > 0.0f ? g[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU: /* f' = 1 for x > 0, else alpha */
        for (int64_t i = i0; i < i1; i++)
            dx[i] += x[i] > 0.0f ? g[i] : p->alpha * g[i];
        break;
    case ACT_SIGMOID: /* f' = y (1 - y) */
        for (int64_t i = i0; i < i1; i++)
            dx[i] += g[i] * y[i] * (1.0f - y[i]);
        break;
    case ACT_HARD_SIGMOID: /* f' = alpha inside the linear band, else 0 */
        for (int64_t i = i0; i < i1; i++) {
            float v = p->alpha * x[i] + p->beta;
            dx[i] += v <= 0.0f || v >= 1.0f ? 0.0f : p->alpha * g[i];
        }
        break;
    case ACT_HARD_SWISH: /* f' = 0 below -3, 1 above 3, x/3 + 1/2 between */
        for (int64_t i = i0; i < i1; i++) {
            float v = x[i] / 6.0f + 0.5f;
            dx[i] += v <= 0.0f ? 0.0f : v >= 1.0f ? g[i] : g[i] * (x[i] / 3.0f + 0.5f);
        }
        break;
    case ACT_TANH: /* f' = 1 - y² */
        for (int64_t i = i0; i < i1; i++)
            dx[i] += g[i] * (1.0f - y[i] * y[i]);
        break;
    case ACT_CLIP:
        break;
    }
}

/* A backward's element-wise gradients on the pool: each element on its own,
 * so the pool may cut anywhere and the result is the serial loop's. */
struct act_grad_job {
    const struct act_params *p;
    const float *x, *y, *g;
    float *dx;
};

static void act_grad_piece(void *arg, int i0, int i1)
{
    const struct act_grad_job *j = arg;
    act_grad_range(j->p, j->x, j->y, j->g, j->dx, i0, i1);
}

static void act_backward(const struct node *node, const struct tview *const *in,
                         const struct tview *const *out, const struct tview *const *dout,
                         struct tview *const *din, struct op_ctx *ctx)
{
    const struct act_params *p = node->params;
    const float *x = tview_f(in[0]), *y = tview_f(out[0]), *g = tview_f(dout[0]);
    float *dx = din[0] ? tview_f(din[0]) : NULL;
    int64_t n = tview_count(in[0]);
    if (p->kind != ACT_CLIP) {
        if (!dx)
            return;
        if (n > INT_MAX) {
            act_grad_range(p, x, y, g, dx, 0, n);
            return;
        }
        struct act_grad_job j = {.p = p, .x = x, .y = y, .g = g, .dx = dx};
        parallel_for_grain((int)n, parallel_grain(4), act_grad_piece, &j);
        return;
    }
    /* y is hi where max(x, lo) ≥ hi, else x where x > lo, else lo: the
     * gradient goes to whichever of hi, x, lo was picked; what goes to the
     * bounds is summed, in one pass */
    float lo, hi;
    clip_bounds(node, in, &lo, &hi);
    double dlo = 0.0, dhi = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] > lo ? x[i] : lo;
        if (v >= hi)
            dhi += g[i];
        else if (x[i] > lo) {
            if (dx)
                dx[i] += g[i];
        } else
            dlo += g[i];
    }
    if (node->opset >= 11 && node->n_inputs > 1 && din[1])
        tview_f(din[1])[0] += (float)dlo;
    if (node->opset >= 11 && node->n_inputs > 2 && din[2])
        tview_f(din[2])[0] += (float)dhi;
}

/* ---- Clip from opset 11: min and max as constant inputs ------------------ */

static int clip_infer(const struct node *node, const struct tview *const *in,
                      struct tview *const *out, char *err)
{
    static const char *const names[] = {"", "min", "max"};
    int rc = act_infer(node, in, out, err);
    if (rc < 0)
        return rc;
    for (int i = 1; i < node->n_inputs; i++) {
        const struct tview *t = in[i];
        if (!t)
            continue;
        if (node->opset < 11)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "has %d inputs; before opset 11 min and max are attributes",
                             node->n_inputs);
        char sd[96];
        if ((rc = act_need_float(node, t, names[i], err)) < 0)
            return rc;
        if (tview_count(t) != 1)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "input %s has shape %s; it must be a scalar", names[i],
                             dims_format(t, sd, sizeof sd));
        if (!t->data)
            return node_fail(node, err, STRATA_E_UNSUPPORTED,
                             "input %s is computed by the graph; strata needs it to be a constant "
                             "(an initializer or a Constant node)",
                             names[i]);
    }
    return 0;
}

/* ---- PRelu: slope broadcast onto X ---------------------------------------- */

/* The slope as it broadcasts: before opset 7, a 1-D slope of X's channel
 * count is per channel (axis 1), not aligned with X's last axis as numpy
 * broadcasting would align it; it is viewed as C x 1 x ... x 1. */
static struct tview prelu_slope(const struct node *node, const struct tview *x,
                                const struct tview *slope)
{
    struct tview s = *slope;
    if (node->opset < 7 && s.ndim == 1 && x->ndim >= 2 && s.dims[0] == x->dims[1] &&
        s.dims[0] != 1) {
        s.ndim = x->ndim - 1;
        for (int i = 1; i < s.ndim; i++)
            s.dims[i] = 1;
    }
    return s;
}

static int prelu_infer(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, char *err)
{
    int rc = act_infer(node, in, out, err);
    if (rc < 0 || (rc = act_need_float(node, in[1], "slope", err)) < 0)
        return rc;
    struct tview o, slope = prelu_slope(node, in[0], in[1]);
    if ((rc = broadcast_shapes(node, in[0], &slope, &o, err)) < 0)
        return rc;
    int same = o.ndim == in[0]->ndim;
    for (int i = 0; same && i < o.ndim; i++)
        same = o.dims[i] == in[0]->dims[i];
    if (!same) {
        char sx[96], ss[96];
        return node_fail(node, err, STRATA_E_FORMAT, "slope %s does not broadcast onto X %s",
                         dims_format(in[1], ss, sizeof ss), dims_format(in[0], sx, sizeof sx));
    }
    return 0;
}

/* X's index space with extent-1 axes dropped and axes merged where slope
 * continues contiguously (or stays broadcast) across them: extents n[] and
 * slope's strides s[] (0 where broadcast). X itself is contiguous, so the
 * innermost axis of extent n[rank-1] is a contiguous run of X, along which
 * slope's stride is 0 or 1. */
struct prelu_plan {
    int rank;
    int64_t n[OP_MAX_DIMS], s[OP_MAX_DIMS];
};

static void prelu_plan_build(struct prelu_plan *p, const struct tview *x, const struct tview *sl)
{
    int64_t s[OP_MAX_DIMS], step = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        int k = i - (x->ndim - sl->ndim);
        int64_t d = k >= 0 ? sl->dims[k] : 1;
        s[i] = d == 1 ? 0 : step;
        step *= d;
    }
    p->rank = 0;
    for (int i = 0; i < x->ndim; i++) {
        int64_t d = x->dims[i];
        if (d == 1)
            continue;
        if (p->rank > 0 && p->s[p->rank - 1] == s[i] * d) {
            p->n[p->rank - 1] *= d;
            p->s[p->rank - 1] = s[i];
            continue;
        }
        p->n[p->rank] = d;
        p->s[p->rank] = s[i];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->n[0] = 1;
        p->s[0] = 0;
    }
}

static inline void prelu_plan_next(const struct prelu_plan *p, int64_t *idx, int64_t *os)
{
    for (int k = p->rank - 2; k >= 0; k--) {
        *os += p->s[k];
        if (++idx[k] < p->n[k])
            return;
        *os -= p->s[k] * p->n[k];
        idx[k] = 0;
    }
}

/* y = x for x > 0, slope·x otherwise */
static void prelu_forward(const struct node *node, const struct tview *const *in,
                          struct tview *const *out, struct op_ctx *ctx)
{
    int64_t total = tview_count(in[0]);
    if (total == 0)
        return;
    struct prelu_plan pl;
    struct tview slope = prelu_slope(node, in[0], in[1]);
    prelu_plan_build(&pl, in[0], &slope);
    int64_t inner = pl.n[pl.rank - 1], ss = pl.s[pl.rank - 1];
    int64_t idx[OP_MAX_DIMS] = {0}, os = 0;
    const float *x = tview_f(in[0]), *sl = tview_f(in[1]);
    float *y = tview_f(out[0]);
    for (int64_t r = 0; r < total / inner; r++) {
        const float *xr = x + r * inner, *sr = sl + os;
        float *yr = y + r * inner;
        for (int64_t i = 0; i < inner; i++)
            yr[i] = xr[i] > 0.0f ? xr[i] : sr[i * ss] * xr[i];
        prelu_plan_next(&pl, idx, &os);
    }
}

/* dx = dy for x > 0, slope·dy otherwise; dslope = Σ dy·x over x ≤ 0, summed
 * over the axes slope is broadcast on */
static void prelu_backward(const struct node *node, const struct tview *const *in,
                           const struct tview *const *out, const struct tview *const *dout,
                           struct tview *const *din, struct op_ctx *ctx)
{
    int64_t total = tview_count(in[0]);
    if (total == 0)
        return;
    struct prelu_plan pl;
    struct tview slope = prelu_slope(node, in[0], in[1]);
    prelu_plan_build(&pl, in[0], &slope);
    int64_t inner = pl.n[pl.rank - 1], ss = pl.s[pl.rank - 1];
    int64_t idx[OP_MAX_DIMS] = {0}, os = 0;
    const float *x = tview_f(in[0]), *sl = tview_f(in[1]), *g = tview_f(dout[0]);
    float *dx = din[0] ? tview_f(din[0]) : NULL, *ds = din[1] ? tview_f(din[1]) : NULL;
    for (int64_t r = 0; r < total / inner; r++) {
        const float *xr = x + r * inner, *gr = g + r * inner, *sr = sl + os;
        if (dx) {
            float *dr = dx + r * inner;
            for (int64_t i = 0; i < inner; i++)
                dr[i] += xr[i] > 0.0f ? gr[i] : sr[i * ss] * gr[i];
        }
        if (ds && ss) {
            for (int64_t i = 0; i < inner; i++)
                ds[os + i] += xr[i] > 0.0f ? 0.0f : gr[i] * xr[i];
        } else if (ds) {
            double acc = 0.0;
            for (int64_t i = 0; i < inner; i++)
                acc += xr[i] > 0.0f ? 0.0f : gr[i] * xr[i];
            ds[os] += (float)acc;
        }
        prelu_plan_next(&pl, idx, &os);
    }
}

/* ---- the table entries ----------------------------------------------------- */

/* Relu and Clip as clamps, for the graph to fuse into the Conv before them. */
static int relu_as_clamp(const struct node *node, const struct tview *const *in, float *lo,
                         float *hi)
{
    (void)node, (void)in;
    *lo = 0.0f;
    *hi = INFINITY;
    return 1;
}

static int clip_as_clamp(const struct node *node, const struct tview *const *in, float *lo,
                         float *hi)
{
    clip_bounds(node, in, lo, hi);
    return 1;
}

#define ACT_OP(var, onnx_name, setup_fn, clamp_fn)                                         \
    const struct op var = {                                                                \
        .name = onnx_name,                                                                 \
        .min_inputs = 1, .max_inputs = 1, .min_outputs = 1, .max_outputs = 1,              \
        .setup = setup_fn,                                                                 \
        .infer = act_infer,                                                                \
        .forward = act_forward,                                                            \
        .as_clamp = clamp_fn,                                                              \
        .backward = act_backward,                                                          \
    }

ACT_OP(op_relu, "Relu", act_setup_relu, relu_as_clamp);
ACT_OP(op_leaky_relu, "LeakyRelu", act_setup_leaky, NULL);
ACT_OP(op_sigmoid, "Sigmoid", act_setup_sigmoid, NULL);
ACT_OP(op_hard_sigmoid, "HardSigmoid", act_setup_hsig, NULL);
/* HardSwish exists from opset 14; HardSigmoid with alpha 1/6, beta 1/2, times x. */
ACT_OP(op_hard_swish, "HardSwish", act_setup_hswish, NULL);
ACT_OP(op_tanh, "Tanh", act_setup_tanh, NULL);

const struct op op_clip = {
    .name = "Clip",
    .min_inputs = 1, .max_inputs = 3, .min_outputs = 1, .max_outputs = 1,
    .setup = act_setup_clip,
    .infer = clip_infer,
    .forward = act_forward,
    .as_clamp = clip_as_clamp,
    .backward = act_backward,
};

const struct op op_prelu = {
    .name = "PRelu",
    .min_inputs = 2, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,
    .infer = prelu_infer,
    .forward = prelu_forward,
    .backward = prelu_backward,
};
