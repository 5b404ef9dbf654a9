/*
 * elementwise.c — Add, Sub, Mul and Div with ONNX broadcasting, on float32
 * and (for shape arithmetic) int64 tensors.
 *
 * Broadcasting. From opset 7 on, A and B broadcast both ways as numpy does:
 * shapes are aligned on their last axis and a dimension of 1 stretches to the
 * other's. Before opset 7 B alone was stretched onto A, and only with the
 * attribute broadcast=1; the attribute `axis` then said at which axis of A
 * B's first dimension lines up (suffix alignment without it). That legacy
 * form is mapped onto the modern one by appending to B's shape as many 1s as
 * A has axes after B's last aligned one ([3,4] at axis 1 of a rank-4 A reads
 * as [3,4,1]); the memory layout of B does not change, so only the view does.
 *
 * Iteration. Both operands are walked through the output's index space with
 * per-operand element strides, 0 along the axes it is broadcast on. Output
 * axes of extent 1 are dropped and neighbouring axes merged wherever both
 * operands continue contiguously (or both stay broadcast) across them, so the
 * common layouts collapse to one tight inner loop:
 *   same shape             -> 1 axis, both strides 1
 *   scalar operand         -> 1 axis, that operand's stride 0
 *   per-channel [C,1,1] or [1,C,1,1] onto N×C×H×W
 *                          -> axes [N, C, H·W], the channel operand constant
 *                             along the inner H·W run
 * The inner loop is specialised on the two inner strides (each 0 or 1).
 *
 * Fused clamp. At inference the graph may run the Relu or Clip after an Add
 * (a residual block's sum) inside it (op_ctx.clamp): each piece of the sum is
 * clamped while it is still in cache, as Clip computes it.
 *
 * Backward. With out = A ∘ B and upstream gradient g:
 *   Add  dA = g          dB = g
 *   Sub  dA = g          dB = -g
 *   Mul  dA = g·B        dB = g·A
 *   Div  dA = g / B      dB = -g·A / B²
 * each summed over the axes its operand was broadcast on — which the same
 * strided walk does by accumulating into the operand-shaped gradient (a
 * stride of 0 revisits the same element). Inner runs that collapse onto one
 * element are summed in double first. Int64 outputs carry no gradient.
 */
#include "op.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../parallel.h"
#include "../status.h"

enum ew_kind { EW_ADD, EW_SUB, EW_MUL, EW_DIV };

struct ew_params {
    enum ew_kind kind;
    int legacy;         /* opset < 7: unidirectional broadcast of B onto A */
    int broadcast;      /* legacy: attribute broadcast (0: shapes must match) */
    int has_axis;       /* legacy: attribute axis given */
    int64_t axis;       /* legacy: axis of A where B's first dimension lines up */
};

static int ew_setup(struct node *node, char *err, enum ew_kind kind)
{
    struct ew_params *p = calloc(1, sizeof *p);
    if (!p)
        return node_fail(node, err, STRATA_E_NOMEM, "out of memory");
    p->kind = kind;
    p->legacy = node->opset < 7;
    int rc = 0;
    if (p->legacy) {
        int64_t b;
        rc = node_attr_int(node, "broadcast", 0, &b, err);
        p->broadcast = b != 0;
        p->has_axis = node_attr(node, "axis") != NULL;
        if (rc == 0)
            rc = node_attr_int(node, "axis", 0, &p->axis, err);
    }
    node->params = p;
    return rc;
}

static int ew_setup_add(struct node *node, char *err) { return ew_setup(node, err, EW_ADD); }
static int ew_setup_sub(struct node *node, char *err) { return ew_setup(node, err, EW_SUB); }
static int ew_setup_mul(struct node *node, char *err) { return ew_setup(node, err, EW_MUL); }
static int ew_setup_div(struct node *node, char *err) { return ew_setup(node, err, EW_DIV); }

/* B as it broadcasts in the modern (numpy) sense: B itself, or for the legacy
 * broadcast=1 with an axis, B's dims followed by 1s up to A's rank after the
 * axis. Returns 0 or a negative status (err may be NULL after infer). */
static int ew_view_b(const struct node *node, const struct tview *a, const struct tview *b,
                     struct tview *bv, char *err)
{
    const struct ew_params *p = node->params;
    *bv = *b;
    if (!p->legacy || !p->broadcast || !p->has_axis)
        return 0;
    int axis;
    int rc = node_axis(node, p->axis, a->ndim, &axis, err);
    if (rc < 0)
        return rc;
    if (axis + b->ndim > a->ndim) {
        char sa[96], sb[96];
        return node_fail(node, err, STRATA_E_FORMAT,
                         "with broadcast=1 and axis=%lld, B (%s) does not fit inside A (%s)",
                         (long long)p->axis, dims_format(b, sb, sizeof sb),
                         dims_format(a, sa, sizeof sa));
    }
    for (int i = b->ndim; i < a->ndim - axis; i++)
        bv->dims[i] = 1;
    bv->ndim = a->ndim - axis;
    return 0;
}

static int ew_infer(const struct node *node, const struct tview *const *in,
                    struct tview *const *out, char *err)
{
    const struct ew_params *p = node->params;
    const struct tview *a = in[0], *b = in[1];
    if (a->dtype != b->dtype)
        return node_fail(node, err, STRATA_E_FORMAT,
                         "inputs have different element types (%s and %s)",
                         a->dtype == DTYPE_INT64 ? "int64" : "float",
                         b->dtype == DTYPE_INT64 ? "int64" : "float");
    char sa[96], sb[96];
    if (p->legacy && !p->broadcast) {
        int same = a->ndim == b->ndim;
        for (int i = 0; same && i < a->ndim; i++)
            same = a->dims[i] == b->dims[i];
        if (!same)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "shapes %s and %s differ and attribute broadcast is not set "
                             "(opset %d needs broadcast=1 to broadcast)",
                             dims_format(a, sa, sizeof sa), dims_format(b, sb, sizeof sb),
                             node->opset);
    }
    struct tview bv;
    int rc = ew_view_b(node, a, b, &bv, err);
    if (rc < 0)
        return rc;
    rc = broadcast_shapes(node, a, &bv, out[0], err);
    if (rc < 0)
        return rc;
    if (p->legacy) {
        /* unidirectional: the result must keep A's shape */
        int same = out[0]->ndim == a->ndim;
        for (int i = 0; same && i < a->ndim; i++)
            same = out[0]->dims[i] == a->dims[i];
        if (!same)
            return node_fail(node, err, STRATA_E_FORMAT,
                             "B (%s) does not broadcast onto A (%s) (opset %d broadcasts B "
                             "onto A only)",
                             dims_format(b, sb, sizeof sb), dims_format(a, sa, sizeof sa),
                             node->opset);
    }
    out[0]->dtype = a->dtype;
    return 0;
}

/* ---- strided walk over the output ---------------------------------------- */

/* The output's index space after dropping extent-1 axes and merging
 * neighbours: extents n[], and each operand's element strides (0 where it is
 * broadcast). The innermost axis is rank-1; its strides are 0 or 1. */
struct ew_plan {
    int rank;
    int64_t n[OP_MAX_DIMS];
    int64_t sa[OP_MAX_DIMS], sb[OP_MAX_DIMS];
};

/* Strides of t (right-aligned against an output of rank `rank`) per output
 * axis, 0 where t has extent 1 or no axis at all. */
static void ew_strides(const struct tview *t, int rank, int64_t *s)
{
    int64_t step = 1;
    for (int i = rank - 1; i >= 0; i--) {
        int k = i - (rank - t->ndim);
        int64_t d = k >= 0 ? t->dims[k] : 1;
        s[i] = d == 1 ? 0 : step;
        step *= d;
    }
}

static void ew_plan_build(struct ew_plan *p, const struct tview *out, const struct tview *a,
                          const struct tview *b)
{
    int64_t sa[OP_MAX_DIMS], sb[OP_MAX_DIMS];
    ew_strides(a, out->ndim, sa);
    ew_strides(b, out->ndim, sb);
    p->rank = 0;
    for (int i = 0; i < out->ndim; i++) {
        int64_t d = out->dims[i];
        if (d == 1)
            continue;
        int r = p->rank;
        /* axis i continues axis r-1 when stepping r-1 once equals stepping i
         * d times, for both operands (0 == 0·d covers "broadcast on both") */
        if (r > 0 && p->sa[r - 1] == sa[i] * d && p->sb[r - 1] == sb[i] * d) {
            p->n[r - 1] *= d;
            p->sa[r - 1] = sa[i];
            p->sb[r - 1] = sb[i];
            continue;
        }
        p->n[r] = d;
        p->sa[r] = sa[i];
        p->sb[r] = sb[i];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->n[0] = 1;
        p->sa[0] = p->sb[0] = 0;
    }
    assert(p->sa[p->rank - 1] <= 1 && p->sb[p->rank - 1] <= 1);
}

/* Steps the counter over the outer axes (all but the innermost) and keeps the
 * operand offsets in step with it. */
static inline void ew_plan_next(const struct ew_plan *p, int64_t *idx, int64_t *oa, int64_t *ob)
{
    for (int k = p->rank - 2; k >= 0; k--) {
        *oa += p->sa[k];
        *ob += p->sb[k];
        if (++idx[k] < p->n[k])
            return;
        *oa -= p->sa[k] * p->n[k];
        *ob -= p->sb[k] * p->n[k];
        idx[k] = 0;
    }
}

/* o[i] = EXPR(x, y) for i < n, x = a[i·sa], y = b[i·sb], sa and sb in {0, 1};
 * each stride combination gets its own loop so the compiler sees unit
 * strides or loop-invariant operands. */
#define EW_INNER(T, EXPR)                                                                  \
    do {                                                                                   \
        if (sa && sb) {                                                                    \
            for (int64_t i = 0; i < n; i++) {                                              \
                T x = a[i], y = b[i];                                                      \
                o[i] = (EXPR);                                                             \
            }                                                                              \
        } else if (sa) {                                                                   \
            T y = b[0];                                                                    \
            for (int64_t i = 0; i < n; i++) {                                              \
                T x = a[i];                                                                \
                o[i] = (EXPR);                                                             \
            }                                                                              \
        } else if (sb) {                                                                   \
            T x = a[0];                                                                    \
            for (int64_t i = 0; i < n; i++) {                                              \
                T y = b[i];                                                                \
                o[i] = (EXPR);                                                             \
            }                                                                              \
        } else {                                                                           \
            T x = a[0], y = b[0];                                                          \
            T v = (EXPR);                                                                  \
            for (int64_t i = 0; i < n; i++)                                                \
                o[i] = v;                                                                  \
        }                                                                                  \
    } while (0)

/* Compiled for AVX-512, AVX2 and baseline x86-64, chosen by the CPU at hand:
 * the same arithmetic on every one (one rounding per element). */
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
static void ew_inner_f(enum ew_kind k, float *o, const float *a, int64_t sa, const float *b,
                       int64_t sb, int64_t n)
{
    switch (k) {
    case EW_ADD: EW_INNER(float, x + y); break;
    case EW_SUB: EW_INNER(float, x - y); break;
    case EW_MUL: EW_INNER(float, x * y); break;
    case EW_DIV: EW_INNER(float, x / y); break;
    }
}

/* Integer division as ONNX (and C) define it: the quotient truncated toward
 * zero. A division by zero gives 0 rather than trapping: forward cannot fail,
 * and these values are shape arithmetic that a later op will refuse if it
 * matters. INT64_MIN / -1 wraps to INT64_MIN instead of overflowing. */
static inline int64_t ew_idiv(int64_t x, int64_t y)
{
    if (y == 0)
        return 0;
    if (y == -1)
        return (int64_t)(0 - (uint64_t)x);
    return x / y;
}

/* Int64 add, sub and mul wrap around (two's complement) on overflow, done in
 * uint64 so no signed overflow happens. */
static void ew_inner_i(enum ew_kind k, int64_t *o, const int64_t *a, int64_t sa, const int64_t *b,
                       int64_t sb, int64_t n)
{
    switch (k) {
    case EW_ADD: EW_INNER(int64_t, (int64_t)((uint64_t)x + (uint64_t)y)); break;
    case EW_SUB: EW_INNER(int64_t, (int64_t)((uint64_t)x - (uint64_t)y)); break;
    case EW_MUL: EW_INNER(int64_t, (int64_t)((uint64_t)x * (uint64_t)y)); break;
    case EW_DIV: EW_INNER(int64_t, ew_idiv(x, y)); break;
    }
}

/* Floats per piece when the output is one long run (same shapes, or a
 * scalar operand). */
#define EW_CHUNK 4096

struct ew_job {
    enum ew_kind kind;
    const struct ew_plan *pl;
    float *o;
    const float *a, *b;
    int64_t inner, outer;
    int clamp; /* min(max(·, lo), hi) on what is written (a fused Relu or Clip) */
    float lo, hi;
};

/* Rows [r0, r1) of the float output (or chunks of its one run when there is
 * a single row); each element is computed once, the same way whatever the
 * split. */
static void ew_piece(void *ctx, int r0, int r1)
{
    const struct ew_job *j = ctx;
    const struct ew_plan *pl = j->pl;
    const int64_t isa = pl->sa[pl->rank - 1], isb = pl->sb[pl->rank - 1];
    if (j->outer == 1) {
        for (int64_t c = r0; c < r1; c++) {
            const int64_t s = c * EW_CHUNK, e = s + EW_CHUNK < j->inner ? s + EW_CHUNK : j->inner;
            ew_inner_f(j->kind, j->o + s, j->a + s * isa, isa, j->b + s * isb, isb, e - s);
            if (j->clamp)
                op_clamp(j->o + s, e - s, j->lo, j->hi);
        }
        return;
    }
    /* the outer index of row r0, digit by digit, and its operand offsets */
    int64_t idx[OP_MAX_DIMS] = {0}, oa = 0, ob = 0, rest = r0;
    for (int k = pl->rank - 2; k >= 0; k--) {
        idx[k] = rest % pl->n[k];
        rest /= pl->n[k];
        oa += idx[k] * pl->sa[k];
        ob += idx[k] * pl->sb[k];
    }
    for (int64_t r = r0; r < r1; r++) {
        ew_inner_f(j->kind, j->o + r * j->inner, j->a + oa, isa, j->b + ob, isb, j->inner);
        if (j->clamp)
            op_clamp(j->o + r * j->inner, j->inner, j->lo, j->hi);
        ew_plan_next(pl, idx, &oa, &ob);
    }
}

static void ew_forward(const struct node *node, const struct tview *const *in,
                       struct tview *const *out, struct op_ctx *ctx)
{
    const struct ew_params *p = node->params;
    const struct tview *a = in[0];
    struct tview bv;
    int rc = ew_view_b(node, a, in[1], &bv, NULL);
    assert(rc == 0);
    (void)rc;
    int64_t total = tview_count(out[0]);
    if (total == 0)
        return;
    struct ew_plan pl;
    ew_plan_build(&pl, out[0], a, &bv);
    int64_t inner = pl.n[pl.rank - 1], outer = total / inner;
    int64_t isa = pl.sa[pl.rank - 1], isb = pl.sb[pl.rank - 1];
    if (out[0]->dtype == DTYPE_FLOAT) {
        /* activations: on every thread */
        const int clamp = ctx && ctx->clamp;
        struct ew_job j = {.kind = p->kind, .pl = &pl, .o = tview_f(out[0]), .a = tview_f(a),
                           .b = tview_f(&bv), .inner = inner, .outer = outer, .clamp = clamp,
                           .lo = clamp ? ctx->clamp_lo : 0.0f, .hi = clamp ? ctx->clamp_hi : 0.0f};
        const int64_t pieces = outer == 1 ? (inner + EW_CHUNK - 1) / EW_CHUNK : outer;
        const size_t work = 3 * (size_t)(outer == 1 ? EW_CHUNK : inner);
        if (pieces <= INT_MAX) {
            parallel_for_grain((int)pieces, parallel_grain(work), ew_piece, &j);
            return;
        }
    }
    int64_t idx[OP_MAX_DIMS] = {0}, oa = 0, ob = 0;
    for (int64_t r = 0; r < outer; r++) {
        if (out[0]->dtype == DTYPE_INT64)
            ew_inner_i(p->kind, tview_i(out[0]) + r * inner, tview_i(a) + oa, isa,
                       tview_i(&bv) + ob, isb, inner);
        else {
            ew_inner_f(p->kind, tview_f(out[0]) + r * inner, tview_f(a) + oa, isa,
                       tview_f(&bv) + ob, isb, inner);
            if (ctx && ctx->clamp)
                op_clamp(tview_f(out[0]) + r * inner, inner, ctx->clamp_lo, ctx->clamp_hi);
        }
        ew_plan_next(&pl, idx, &oa, &ob);
    }
}

/* The gradient of one operand from one inner run: term_i is dA or dB's
 * contribution from output element i (table in the file header); it is added
 * to d[i] (stride 1) or, when the run collapses onto one element (stride 0),
 * summed in double and added once. */
static inline float ew_term(enum ew_kind k, int which, float g, float x, float y)
{
    switch (k) {
    case EW_ADD: return g;
    case EW_SUB: return which ? -g : g;
    case EW_MUL: return which ? g * x : g * y;
    case EW_DIV: return which ? -(g * (x / y)) / y : g / y;
    }
    return 0.0f;
}

static void ew_grad_inner(enum ew_kind k, int which, float *d, int64_t sd, const float *g,
                          const float *a, int64_t sa, const float *b, int64_t sb, int64_t n)
{
    if (sd) {
        for (int64_t i = 0; i < n; i++)
            d[i] += ew_term(k, which, g[i], a[i * sa], b[i * sb]);
    } else {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += ew_term(k, which, g[i], a[i * sa], b[i * sb]);
        d[0] += (float)s;
    }
}

static void ew_backward(const struct node *node, const struct tview *const *in,
                        const struct tview *const *out, const struct tview *const *dout,
                        struct tview *const *din, struct op_ctx *ctx)
{
    const struct ew_params *p = node->params;
    if (out[0]->dtype != DTYPE_FLOAT || (!din[0] && !din[1]))
        return;
    const struct tview *a = in[0];
    struct tview bv;
    int rc = ew_view_b(node, a, in[1], &bv, NULL);
    assert(rc == 0);
    (void)rc;
    int64_t total = tview_count(out[0]);
    if (total == 0)
        return;
    struct ew_plan pl;
    ew_plan_build(&pl, out[0], a, &bv);
    int64_t inner = pl.n[pl.rank - 1], outer = total / inner;
    int64_t isa = pl.sa[pl.rank - 1], isb = pl.sb[pl.rank - 1];
    int64_t idx[OP_MAX_DIMS] = {0}, oa = 0, ob = 0;
    const float *g = tview_f(dout[0]), *af = tview_f(a), *bf = tview_f(&bv);
    for (int64_t r = 0; r < outer; r++) {
        const float *gr = g + r * inner;
        if (din[0])
            ew_grad_inner(p->kind, 0, tview_f(din[0]) + oa, isa, gr, af + oa, isa, bf + ob, isb,
                          inner);
        if (din[1])
            ew_grad_inner(p->kind, 1, tview_f(din[1]) + ob, isb, gr, af + oa, isa, bf + ob, isb,
                          inner);
        ew_plan_next(&pl, idx, &oa, &ob);
    }
}

#define EW_OP(var, onnx_name, setup_fn)                                                    \
    const struct op var = {                                                                \
        .name = onnx_name,                                                                 \
        .min_inputs = 2, .max_inputs = 2, .min_outputs = 1, .max_outputs = 1,              \
        .flags = OP_INT64,                                                                 \
        .setup = setup_fn,                                                                 \
        .infer = ew_infer,                                                                 \
        .forward = ew_forward,                                                             \
        .backward = ew_backward,                                                           \
    }

EW_OP(op_add, "Add", ew_setup_add);
EW_OP(op_sub, "Sub", ew_setup_sub);
EW_OP(op_mul, "Mul", ew_setup_mul);
EW_OP(op_div, "Div", ew_setup_div);
