/*
 * test_ops_math.c — the arithmetic graph ops: Add/Sub/Mul/Div
 * (elementwise.c), the activations (activation.c), Softmax/LogSoftmax
 * (softmax.c), Gemm/MatMul (gemm.c) and ReduceMean (reduce_mean.c).
 *
 * Evidence of three kinds:
 *  - hand-worked or numpy-computed values written out below (numpy 1.24 in
 *    float64, rounded to 8 digits);
 *  - naive references written here independently of the ops: broadcasting
 *    by per-element index arithmetic (multi-index of the output, each input
 *    read at that index with its extent-1 axes pinned to 0), matrix products
 *    as triple loops, means as explicit sums;
 *  - central finite differences of every backward (opcheck_gradients), for
 *    every form whose maths differs (broadcast layout, transposes, C shape,
 *    softmax axis semantics, reduced axes). Piecewise-linear ops get inputs
 *    kept at least 0.05 from their kinks, ten times the perturbation.
 * Floating-point traps are on: large |x| through sigmoid, tanh and softmax
 * must not overflow.
 */
#include "check.h"
#include "opcheck.h"
#include "ops/ops.h"
#include "sgemm.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FD_RTOL 1e-2
#define FD_ATOL 2e-3

/* ---- helpers ---------------------------------------------------------------- */

static const int64_t scalar_dims[1] = {0}; /* dims argument of a rank-0 tensor */

static struct tview tv_vals(int ndim, const int64_t *dims, const float *vals)
{
    struct tview t = opcheck_tensor(ndim, dims, 1);
    memcpy(t.data, vals, (size_t)tview_count(&t) * sizeof(float));
    return t;
}

/* Compares n floats, reporting the first few mismatches; returns how many. */
static int near_all(const float *got, const float *want, int64_t n, double tol)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= tol * (1.0 + fabs(want[i])))) {
            if (bad < 5)
                printf("#   element %lld: got %.9g, want %.9g\n", (long long)i, got[i], want[i]);
            bad++;
        }
    }
    return bad;
}

static int same_dims(const struct tview *t, int ndim, const int64_t *dims)
{
    if (t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->dims[i] != dims[i])
            return 0;
    return 1;
}

/* Flat index into an input of shape (rank, dims), right-aligned against the
 * output, for the output element whose multi-index is idx[orank]. */
static int64_t bcast_src(const int64_t *idx, int orank, int rank, const int64_t *dims)
{
    int64_t off = 0;
    for (int i = 0; i < rank; i++) {
        int64_t k = dims[i] == 1 ? 0 : idx[orank - rank + i];
        off = off * dims[i] + k;
    }
    return off;
}

static void unflatten(int64_t flat, int rank, const int64_t *dims, int64_t *idx)
{
    for (int i = rank - 1; i >= 0; i--) {
        idx[i] = flat % dims[i];
        flat /= dims[i];
    }
}

/* Values pushed at least `gap` away from each kink k (x in [k-gap, k+gap]
 * moves to k±gap±(x-k), keeping its side). */
static void away_from(float *x, int64_t n, const float *kinks, int nk, float gap)
{
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < nk; j++) {
            float d = x[i] - kinks[j];
            if (fabsf(d) < gap)
                x[i] = kinks[j] + (d >= 0 ? gap + d : -gap + d);
        }
}

static void scale(float *x, int64_t n, float s)
{
    for (int64_t i = 0; i < n; i++)
        x[i] *= s;
}

/* ---- Add / Sub / Mul / Div ------------------------------------------------ */

TEST(add_hand_worked)
{
    struct tview a = tv_vals(2, (int64_t[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6});
    struct tview b = tv_vals(2, (int64_t[]){2, 3}, (float[]){10, 20, 30, 40, 50, 60});
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_add, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){2, 3}));
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){11, 22, 33, 44, 55, 66}, 6, 0), 0);
    opcheck_free(&r);

    /* [3,1] against [1,4] -> [3,4]: both directions at once */
    struct tview c = tv_vals(2, (int64_t[]){3, 1}, (float[]){1, 2, 3});
    struct tview d = tv_vals(2, (int64_t[]){1, 4}, (float[]){10, 20, 30, 40});
    CHECK_EQ_INT(opcheck_forward(&r, &op_sub, 13, NULL, 0, (struct tview *[]){&c, &d}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){3, 4}));
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]),
                          (float[]){-9, -19, -29, -39, -8, -18, -28, -38, -7, -17, -27, -37}, 12,
                          0),
                 0);
    opcheck_free(&r);

    /* per channel: [1,2,2,2] * [2,1,1] */
    struct tview e = tv_vals(4, (int64_t[]){1, 2, 2, 2}, (float[]){1, 2, 3, 4, 5, 6, 7, 8});
    struct tview f = tv_vals(3, (int64_t[]){2, 1, 1}, (float[]){10, -1});
    CHECK_EQ_INT(opcheck_forward(&r, &op_mul, 13, NULL, 0, (struct tview *[]){&e, &f}, 2, 1), 0);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){10, 20, 30, 40, -5, -6, -7, -8}, 8, 0),
                 0);
    opcheck_free(&r);

    /* scalar divisor */
    struct tview s = tv_vals(0, scalar_dims, (float[]){4});
    CHECK_EQ_INT(opcheck_forward(&r, &op_div, 7, NULL, 0, (struct tview *[]){&a, &s}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){2, 3}));
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){0.25f, 0.5f, 0.75f, 1, 1.25f, 1.5f}, 6, 0),
                 0);
    opcheck_free(&r);
    /* scalar dividend */
    CHECK_EQ_INT(opcheck_forward(&r, &op_div, 14, NULL, 0, (struct tview *[]){&s, &a}, 2, 1), 0);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){4, 2, 4.0f / 3, 1, 0.8f, 4.0f / 6}, 6,
                          1e-6),
                 0);
    opcheck_free(&r);
    free(a.data), free(b.data), free(c.data), free(d.data), free(e.data), free(f.data);
    free(s.data);
}

/* One broadcasting form: A and B as given to the op; B as numpy sees it
 * (the legacy forms' B with trailing 1s, written out by hand); the expected
 * output shape. */
struct ew_form {
    const char *name;
    int opset;
    int n_attrs;
    struct attr attrs[2];
    int ra, rb, rbe, ro;
    int64_t da[4], db[4], dbe[4], dout[4];
};

static const struct ew_form ew_forms[] = {
    {"same shape", 13, 0, {{0}}, 4, 4, 4, 4, {2, 3, 4, 5}, {2, 3, 4, 5}, {2, 3, 4, 5},
     {2, 3, 4, 5}},
    {"NCHW + [C,1,1]", 13, 0, {{0}}, 4, 3, 3, 4, {2, 3, 4, 5}, {3, 1, 1}, {3, 1, 1},
     {2, 3, 4, 5}},
    {"NCHW + [1,C,1,1]", 7, 0, {{0}}, 4, 4, 4, 4, {2, 3, 4, 5}, {1, 3, 1, 1}, {1, 3, 1, 1},
     {2, 3, 4, 5}},
    {"[C,1,1] + NCHW", 13, 0, {{0}}, 3, 4, 4, 4, {3, 1, 1}, {2, 3, 4, 5}, {2, 3, 4, 5},
     {2, 3, 4, 5}},
    {"NCHW + scalar", 13, 0, {{0}}, 4, 0, 0, 4, {2, 3, 4, 5}, {0}, {0}, {2, 3, 4, 5}},
    {"scalar + NCHW", 14, 0, {{0}}, 0, 4, 4, 4, {0}, {2, 3, 4, 5}, {2, 3, 4, 5}, {2, 3, 4, 5}},
    {"NCHW + [W]", 13, 0, {{0}}, 4, 1, 1, 4, {2, 3, 4, 5}, {5}, {5}, {2, 3, 4, 5}},
    {"[2,1,5] + [3,1]", 13, 0, {{0}}, 3, 2, 2, 3, {2, 1, 5}, {3, 1}, {3, 1}, {2, 3, 5}},
    {"[N,1,H,1] + [C,1,W]", 13, 0, {{0}}, 4, 3, 3, 4, {2, 1, 4, 1}, {3, 1, 5}, {3, 1, 5},
     {2, 3, 4, 5}},
    {"legacy axis=1 [3,4]", 6, 2, {OPCHECK_INT("broadcast", 1), OPCHECK_INT("axis", 1)}, 4, 2, 3,
     4, {2, 3, 4, 5}, {3, 4}, {3, 4, 1}, {2, 3, 4, 5}},
    {"legacy axis=0 [2]", 6, 2, {OPCHECK_INT("broadcast", 1), OPCHECK_INT("axis", 0)}, 4, 1, 4, 4,
     {2, 3, 4, 5}, {2}, {2, 1, 1, 1}, {2, 3, 4, 5}},
    {"legacy suffix [4,5]", 6, 1, {OPCHECK_INT("broadcast", 1)}, 4, 2, 2, 4, {2, 3, 4, 5},
     {4, 5}, {4, 5}, {2, 3, 4, 5}},
    {"legacy [1,1]", 6, 1, {OPCHECK_INT("broadcast", 1)}, 4, 2, 2, 4, {2, 3, 4, 5}, {1, 1},
     {1, 1}, {2, 3, 4, 5}},
    {"legacy broadcast=0 same", 6, 0, {{0}}, 2, 2, 2, 2, {2, 3}, {2, 3}, {2, 3}, {2, 3}},
};

static double ew_ref(const struct op *op, double a, double b)
{
    if (op == &op_add)
        return a + b;
    if (op == &op_sub)
        return a - b;
    if (op == &op_mul)
        return a * b;
    return a / b;
}

TEST(elementwise_broadcast_forms)
{
    const struct op *ops[] = {&op_add, &op_sub, &op_mul, &op_div};
    for (size_t f = 0; f < sizeof ew_forms / sizeof ew_forms[0]; f++) {
        const struct ew_form *F = &ew_forms[f];
        for (int o = 0; o < 4; o++) {
            struct tview a = opcheck_tensor(F->ra, F->da, 10 + f);
            struct tview b = opcheck_tensor(F->rb, F->db, 50 + f);
            if (ops[o] == &op_div) /* B in ±[0.5, 1.5): far from the pole */
                for (int64_t i = 0; i < tview_count(&b); i++)
                    tview_f(&b)[i] += tview_f(&b)[i] >= 0 ? 0.5f : -0.5f;
            struct attr attrs[2];
            memcpy(attrs, F->attrs, sizeof attrs);
            struct opcheck_run r;
            int rc = opcheck_forward(&r, ops[o], F->opset, attrs, F->n_attrs,
                                     (struct tview *[]){&a, &b}, 2, 1);
            CHECK_MSG(rc == 0, "%s %s: %s", ops[o]->name, F->name, r.err);
            if (rc == 0) {
                CHECK_MSG(same_dims(&r.out[0], F->ro, F->dout), "%s %s: output shape",
                          ops[o]->name, F->name);
                int64_t n = tview_count(&r.out[0]), idx[4];
                int bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    unflatten(i, F->ro, F->dout, idx);
                    double want = ew_ref(ops[o], tview_f(&a)[bcast_src(idx, F->ro, F->ra, F->da)],
                                         tview_f(&b)[bcast_src(idx, F->ro, F->rbe, F->dbe)]);
                    if (fabs(tview_f(&r.out[0])[i] - want) > 1e-6 * (1 + fabs(want)))
                        bad++;
                }
                CHECK_MSG(bad == 0, "%s %s: %d values differ from the reference", ops[o]->name,
                          F->name, bad);
                int g = opcheck_gradients(&r, 3, FD_RTOL, FD_ATOL);
                CHECK_MSG(g == 0, "%s %s: %d gradient mismatches", ops[o]->name, F->name, g);
            }
            opcheck_free(&r);
            free(a.data);
            free(b.data);
        }
    }
}

TEST(elementwise_refusals)
{
    struct opcheck_run r;
    struct tview a = opcheck_tensor(4, (int64_t[]){2, 3, 4, 5}, 1);
    struct tview c = opcheck_tensor(1, (int64_t[]){3}, 2);
    /* [C] aligns with W under numpy rules: 3 against 5 */
    CHECK(opcheck_forward(&r, &op_add, 13, NULL, 0, (struct tview *[]){&a, &c}, 2, 1) ==
          STRATA_E_FORMAT);
    CHECK_MSG(strstr(r.err, "do not broadcast") && strstr(r.err, "2x3x4x5") &&
                  strstr(r.err, "node 't' (Add)"),
              "%s", r.err);
    opcheck_free(&r);

    /* opset 6 without broadcast=1: shapes must match */
    CHECK(opcheck_forward(&r, &op_mul, 6, NULL, 0, (struct tview *[]){&a, &c}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "broadcast=1"), "%s", r.err);
    opcheck_free(&r);

    /* opset 6, broadcast=1, axis=3: B of rank 1 fits, [3] against W=5 does not */
    struct attr at[] = {OPCHECK_INT("broadcast", 1), OPCHECK_INT("axis", 3)};
    CHECK(opcheck_forward(&r, &op_mul, 6, at, 2, (struct tview *[]){&a, &c}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "does not broadcast onto A") || strstr(r.err, "do not broadcast"),
              "%s", r.err);
    opcheck_free(&r);

    /* opset 6, B larger than A: legacy broadcasting is B onto A only */
    struct attr bc[] = {OPCHECK_INT("broadcast", 1)};
    struct tview w = opcheck_tensor(1, (int64_t[]){5}, 4);
    CHECK(opcheck_forward(&r, &op_sub, 6, bc, 1, (struct tview *[]){&w, &a}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "does not broadcast onto A"), "%s", r.err);
    opcheck_free(&r);

    /* axis so far right that B sticks out of A */
    struct tview d = opcheck_tensor(2, (int64_t[]){4, 5}, 3);
    struct attr at3[] = {OPCHECK_INT("broadcast", 1), OPCHECK_INT("axis", 3)};
    CHECK(opcheck_forward(&r, &op_add, 6, at3, 2, (struct tview *[]){&a, &d}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "does not fit inside A"), "%s", r.err);
    opcheck_free(&r);

    /* float with int64 */
    struct tview k = opcheck_ints(1, (int64_t[]){1}, (int64_t[]){2});
    CHECK(opcheck_forward(&r, &op_div, 13, NULL, 0, (struct tview *[]){&a, &k}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "different element types"), "%s", r.err);
    opcheck_free(&r);
    free(a.data), free(c.data), free(d.data), free(k.data), free(w.data);
}

TEST(elementwise_int64)
{
    struct opcheck_run r;
    struct tview a = opcheck_ints(1, (int64_t[]){8},
                                  (int64_t[]){7, -7, 7, -7, 64, 5, INT64_MIN, 0});
    struct tview b = opcheck_ints(1, (int64_t[]){8}, (int64_t[]){2, 2, -2, -2, 8, 0, -1, 3});
    /* Div truncates toward zero; x / 0 gives 0; INT64_MIN / -1 wraps */
    CHECK_EQ_INT(opcheck_forward(&r, &op_div, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    CHECK(r.out[0].dtype == DTYPE_INT64);
    const int64_t qdiv[] = {3, -3, -3, 3, 8, 0, INT64_MIN, 0};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(tview_i(&r.out[0])[i], qdiv[i]);
    opcheck_free(&r);

    CHECK_EQ_INT(opcheck_forward(&r, &op_mul, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    const int64_t qmul[] = {14, -14, -14, 14, 512, 0, INT64_MIN /* wraps */, 0};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(tview_i(&r.out[0])[i], qmul[i]);
    opcheck_free(&r);

    CHECK_EQ_INT(opcheck_forward(&r, &op_add, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    const int64_t qadd[] = {9, -5, 5, -9, 72, 5, INT64_MAX /* wraps */, 3};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(tview_i(&r.out[0])[i], qadd[i]);
    opcheck_free(&r);

    CHECK_EQ_INT(opcheck_forward(&r, &op_sub, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    const int64_t qsub[] = {5, -9, 9, -5, 56, 5, INT64_MIN + 1, -3};
    for (int i = 0; i < 8; i++)
        CHECK_EQ_INT(tview_i(&r.out[0])[i], qsub[i]);
    opcheck_free(&r);

    /* shape arithmetic: channels // groups with a scalar, and a 1-element
     * tensor times a [4] shape */
    struct tview ch = opcheck_ints(1, (int64_t[]){1}, (int64_t[]){96});
    struct tview grp = opcheck_ints(0, scalar_dims, (int64_t[]){4});
    CHECK_EQ_INT(opcheck_forward(&r, &op_div, 7, NULL, 0, (struct tview *[]){&ch, &grp}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 1, (int64_t[]){1}));
    CHECK_EQ_INT(tview_i(&r.out[0])[0], 24);
    opcheck_free(&r);
    struct tview shp = opcheck_ints(1, (int64_t[]){4}, (int64_t[]){1, 3, 224, 224});
    CHECK_EQ_INT(opcheck_forward(&r, &op_mul, 14, NULL, 0, (struct tview *[]){&shp, &grp}, 2, 1),
                 0);
    const int64_t qs[] = {4, 12, 896, 896};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(tview_i(&r.out[0])[i], qs[i]);
    opcheck_free(&r);
    free(a.data), free(b.data), free(ch.data), free(grp.data), free(shp.data);
}

/* ---- activations ----------------------------------------------------------- */

static const float act_x[6] = {-2, -0.5f, 0, 0.5f, 2, 5};

/* Runs a unary op on act_x and compares with want. */
static void act_hand(const struct op *op, int opset, struct attr *attrs, int n_attrs,
                     const float *want, double tol)
{
    struct tview x = tv_vals(1, (int64_t[]){6}, act_x);
    struct opcheck_run r;
    int rc = opcheck_forward(&r, op, opset, attrs, n_attrs, (struct tview *[]){&x}, 1, 1);
    CHECK_MSG(rc == 0, "%s: %s", op->name, r.err);
    if (rc == 0) {
        CHECK(same_dims(&r.out[0], 1, (int64_t[]){6}));
        CHECK_MSG(near_all(tview_f(&r.out[0]), want, 6, tol) == 0, "%s", op->name);
    }
    opcheck_free(&r);
    free(x.data);
}

TEST(activations_hand_worked)
{
    act_hand(&op_relu, 14, NULL, 0, (float[]){0, 0, 0, 0.5f, 2, 5}, 0);
    act_hand(&op_leaky_relu, 6, NULL, 0, (float[]){-0.02f, -0.005f, 0, 0.5f, 2, 5}, 1e-7);
    struct attr la[] = {OPCHECK_FLOAT("alpha", 0.1f)};
    act_hand(&op_leaky_relu, 16, la, 1, (float[]){-0.2f, -0.05f, 0, 0.5f, 2, 5}, 1e-7);
    act_hand(&op_sigmoid, 13, NULL, 0,
             (float[]){0.11920292f, 0.37754067f, 0.5f, 0.62245933f, 0.88079708f, 0.99330715f},
             1e-6);
    act_hand(&op_tanh, 6, NULL, 0,
             (float[]){-0.96402758f, -0.46211716f, 0, 0.46211716f, 0.96402758f, 0.99990920f},
             1e-6);
    /* 0.2x + 0.5, clamped */
    act_hand(&op_hard_sigmoid, 6, NULL, 0, (float[]){0.1f, 0.4f, 0.5f, 0.6f, 0.9f, 1}, 1e-6);
    struct attr ha[] = {OPCHECK_FLOAT("alpha", 0.5f), OPCHECK_FLOAT("beta", 0.6f)};
    act_hand(&op_hard_sigmoid, 6, ha, 2, (float[]){0, 0.35f, 0.6f, 0.85f, 1, 1}, 1e-6);
    act_hand(&op_hard_swish, 14, NULL, 0,
             (float[]){-0.33333333f, -0.20833333f, 0, 0.29166667f, 1.66666667f, 5}, 1e-6);
}

TEST(clip_forms)
{
    struct attr a6[] = {OPCHECK_FLOAT("min", -1), OPCHECK_FLOAT("max", 1)};
    act_hand(&op_clip, 6, a6, 2, (float[]){-1, -0.5f, 0, 0.5f, 1, 1}, 0);
    struct attr a6lo[] = {OPCHECK_FLOAT("min", 0)};
    act_hand(&op_clip, 6, a6lo, 1, (float[]){0, 0, 0, 0.5f, 2, 5}, 0);
    act_hand(&op_clip, 11, NULL, 0, act_x, 0); /* no bounds: identity */

    struct tview x = tv_vals(1, (int64_t[]){6}, act_x);
    struct tview lo = tv_vals(0, scalar_dims, (float[]){-1});
    struct tview hi = tv_vals(1, (int64_t[]){1}, (float[]){1});
    struct opcheck_run r;
    struct {
        struct tview *in[3];
        int n_in, opset;
        float want[6];
    } cases[] = {
        {{&x, &lo, &hi}, 3, 11, {-1, -0.5f, 0, 0.5f, 1, 1}},
        {{&x, &lo, NULL}, 3, 12, {-1, -0.5f, 0, 0.5f, 2, 5}},
        {{&x, &lo}, 2, 13, {-1, -0.5f, 0, 0.5f, 2, 5}},
        {{&x, NULL, &hi}, 3, 13, {-2, -0.5f, 0, 0.5f, 1, 1}},
        {{&x, &hi, &lo}, 3, 13, {-1, -1, -1, -1, -1, -1}}, /* min > max: everything is max */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int rc = opcheck_forward(&r, &op_clip, cases[c].opset, NULL, 0, cases[c].in,
                                 cases[c].n_in, 1);
        CHECK_MSG(rc == 0, "case %zu: %s", c, r.err);
        if (rc == 0)
            CHECK_MSG(near_all(tview_f(&r.out[0]), cases[c].want, 6, 0) == 0, "case %zu", c);
        opcheck_free(&r);
    }

    /* a min computed by the graph (no data while inferring) is refused */
    struct tview act_lo = {.dtype = DTYPE_FLOAT, .ndim = 0};
    CHECK(opcheck_forward(&r, &op_clip, 13, NULL, 0, (struct tview *[]){&x, &act_lo, &hi}, 3,
                          1) == STRATA_E_UNSUPPORTED);
    CHECK_MSG(strstr(r.err, "input min") && strstr(r.err, "constant") &&
                  strstr(r.err, "node 't' (Clip)"),
              "%s", r.err);
    opcheck_free(&r);
    /* a min that is not a scalar */
    struct tview two = tv_vals(1, (int64_t[]){2}, (float[]){0, 1});
    CHECK(opcheck_forward(&r, &op_clip, 13, NULL, 0, (struct tview *[]){&x, &two}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "scalar"), "%s", r.err);
    opcheck_free(&r);
    free(x.data), free(lo.data), free(hi.data), free(two.data);
}

TEST(prelu_forms)
{
    struct opcheck_run r;
    /* per channel: slope [C,1,1] on [1,2,1,2] */
    struct tview x = tv_vals(4, (int64_t[]){1, 2, 1, 2}, (float[]){-1, 2, -3, 4});
    struct tview s = tv_vals(3, (int64_t[]){2, 1, 1}, (float[]){0.1f, 0.5f});
    CHECK_EQ_INT(opcheck_forward(&r, &op_prelu, 9, NULL, 0, (struct tview *[]){&x, &s}, 2, 1), 0);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){-0.1f, 2, -1.5f, 4}, 4, 1e-7), 0);
    opcheck_free(&r);

    /* ONNX's test_prelu_broadcast layout: [3,4,5] with slope [5] (last axis),
     * and a per-channel [4,1] and a scalar [1], against a naive reference */
    struct {
        int rs;
        int64_t ds[2];
    } slopes[] = {{1, {5}}, {2, {4, 1}}, {1, {1}}, {2, {4, 5}}};
    int64_t dx[3] = {3, 4, 5}, idx[3];
    for (size_t k = 0; k < sizeof slopes / sizeof slopes[0]; k++) {
        struct tview xx = opcheck_tensor(3, dx, 70);
        struct tview ss = opcheck_tensor(slopes[k].rs, slopes[k].ds, 71 + k);
        away_from(tview_f(&xx), 60, (float[]){0}, 1, 0.05f);
        int rc = opcheck_forward(&r, &op_prelu, 16, NULL, 0, (struct tview *[]){&xx, &ss}, 2, 1);
        CHECK_MSG(rc == 0, "slope %zu: %s", k, r.err);
        if (rc == 0) {
            int bad = 0;
            for (int64_t i = 0; i < 60; i++) {
                unflatten(i, 3, dx, idx);
                float v = tview_f(&xx)[i];
                float sl = tview_f(&ss)[bcast_src(idx, 3, slopes[k].rs, slopes[k].ds)];
                bad += fabsf(tview_f(&r.out[0])[i] - (v > 0 ? v : sl * v)) > 1e-7f;
            }
            CHECK_MSG(bad == 0, "slope %zu: %d values differ", k, bad);
            CHECK_EQ_INT(opcheck_gradients(&r, 3, FD_RTOL, FD_ATOL), 0);
        }
        opcheck_free(&r);
        free(xx.data), free(ss.data);
    }

    /* slope [C] on NCHW aligns with W: 2 against 2 works, 3 against 5 does not */
    struct tview big = opcheck_tensor(4, (int64_t[]){2, 3, 4, 5}, 5);
    struct tview s3 = opcheck_tensor(1, (int64_t[]){3}, 6);
    CHECK(opcheck_forward(&r, &op_prelu, 16, NULL, 0, (struct tview *[]){&big, &s3}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "do not broadcast") || strstr(r.err, "does not broadcast"), "%s",
              r.err);
    opcheck_free(&r);
    /* a slope larger than X is unidirectional-broadcast's refusal */
    struct tview sbig = opcheck_tensor(4, (int64_t[]){2, 2, 1, 2}, 7);
    CHECK(opcheck_forward(&r, &op_prelu, 16, NULL, 0, (struct tview *[]){&x, &sbig}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "does not broadcast onto X"), "%s", r.err);
    opcheck_free(&r);
    free(x.data), free(s.data), free(big.data), free(s3.data), free(sbig.data);
}

/* Sigmoid and Tanh against double precision over their whole useful range:
 * every step of 1/1024 on [-110, 110] (which covers the subnormal tail of
 * the sigmoid and the saturation of both) and the first 1/8 around 0 in
 * finer steps (tanh's series branch and where it hands over). Relative error at most 8 float ulps
 * (4.8e-7) where the true value is a normal float, absolute at most 2^-149
 * ×4 below. */
TEST(sigmoid_tanh_match_double_precision)
{
    const int n = 2 * 110 * 1024 + 1 + 2 * 16384;
    float *xs = malloc((size_t)n * sizeof *xs);
    int k = 0;
    for (int i = -110 * 1024; i <= 110 * 1024; i++)
        xs[k++] = (float)i / 1024.0f;
    for (int i = 1; i <= 16384; i++) {
        xs[k++] = (float)i / 131072.0f;
        xs[k++] = -(float)i / 131072.0f;
    }
    struct tview x = tv_vals(1, (int64_t[]){n}, xs);
    const struct op *ops[] = {&op_sigmoid, &op_tanh};
    for (int o = 0; o < 2; o++) {
        struct opcheck_run r;
        CHECK_EQ_INT(opcheck_forward(&r, ops[o], 13, NULL, 0, (struct tview *[]){&x}, 1, 1), 0);
        const float *y = tview_f(&r.out[0]);
        double worst_rel = 0, worst_abs = 0;
        float at = 0;
        for (int i = 0; i < n; i++) {
            const double v = xs[i];
            const double want = o == 0 ? 1.0 / (1.0 + exp(-v)) : tanh(v);
            const double diff = fabs(y[i] - want);
            if (fabs(want) >= FLT_MIN) {
                if (diff / fabs(want) > worst_rel)
                    worst_rel = diff / fabs(want), at = xs[i];
            }
            else if (diff > worst_abs)
                worst_abs = diff;
        }
        printf("# %s: worst relative error %.3g (at x = %g), worst absolute below FLT_MIN %.3g\n",
             ops[o]->name, worst_rel, at, worst_abs);
        CHECK_MSG(worst_rel <= 4.8e-7, "%s: relative error %g at x = %g", ops[o]->name, worst_rel, at);
        CHECK_MSG(worst_abs <= 4 * 1.401298464e-45, "%s: absolute error %g", ops[o]->name, worst_abs);
        opcheck_free(&r);
    }
    free(xs);
    free(x.data);
}

TEST(activations_large_inputs)
{
    /* exp of ±1e30 would overflow: sigmoid must not take it, tanh saturates */
    struct tview x = tv_vals(1, (int64_t[]){6}, (float[]){-1e30f, -100, -89, 89, 100, 1e30f});
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_sigmoid, 13, NULL, 0, (struct tview *[]){&x}, 1, 1), 0);
    const float *y = tview_f(&r.out[0]);
    CHECK(y[0] == 0.0f && y[5] == 1.0f && y[4] == 1.0f);
    CHECK(y[1] >= 0.0f && y[1] < 1e-40f);
    CHECK_EQ_INT(opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL), 0);
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_tanh, 13, NULL, 0, (struct tview *[]){&x}, 1, 1), 0);
    y = tview_f(&r.out[0]);
    CHECK(y[0] == -1.0f && y[1] == -1.0f && y[4] == 1.0f && y[5] == 1.0f);
    CHECK_EQ_INT(opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL), 0);
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_hard_swish, 14, NULL, 0, (struct tview *[]){&x}, 1, 1),
                 0);
    y = tview_f(&r.out[0]);
    CHECK(y[0] == 0.0f && y[5] == 1e30f);
    opcheck_free(&r);
    free(x.data);
}

TEST(activations_gradients)
{
    struct opcheck_run r;
    int64_t d[4] = {2, 3, 4, 5};
    struct attr leaky[] = {OPCHECK_FLOAT("alpha", 0.2f)};
    struct attr hsig[] = {OPCHECK_FLOAT("alpha", 0.3f), OPCHECK_FLOAT("beta", 0.4f)};
    struct attr clip6[] = {OPCHECK_FLOAT("min", -1.5f), OPCHECK_FLOAT("max", 2)};
    struct {
        const struct op *op;
        int opset;
        struct attr *attrs;
        int n_attrs;
        float range;        /* inputs in [-range, range) */
        float kinks[2];
        int nk;
    } cases[] = {
        {&op_relu, 13, NULL, 0, 1, {0}, 1},
        {&op_leaky_relu, 16, leaky, 1, 1, {0}, 1},
        {&op_leaky_relu, 6, NULL, 0, 1, {0}, 1},
        {&op_sigmoid, 13, NULL, 0, 6, {0}, 0},
        {&op_tanh, 13, NULL, 0, 3, {0}, 0},
        {&op_hard_sigmoid, 6, NULL, 0, 4, {-2.5f, 2.5f}, 2},
        {&op_hard_sigmoid, 6, hsig, 2, 4, {-4.0f / 3, 2}, 2},
        {&op_hard_swish, 14, NULL, 0, 5, {-3, 3}, 2},
        {&op_clip, 6, clip6, 2, 3, {-1.5f, 2}, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct tview x = opcheck_tensor(4, d, 20 + c);
        scale(tview_f(&x), 120, cases[c].range);
        away_from(tview_f(&x), 120, cases[c].kinks, cases[c].nk, 0.05f);
        int rc = opcheck_forward(&r, cases[c].op, cases[c].opset, cases[c].attrs,
                                 cases[c].n_attrs, (struct tview *[]){&x}, 1, 1);
        CHECK_MSG(rc == 0, "%s: %s", cases[c].op->name, r.err);
        if (rc == 0) {
            int g = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
            CHECK_MSG(g == 0, "%s (case %zu): %d gradient mismatches", cases[c].op->name, c, g);
        }
        opcheck_free(&r);
        free(x.data);
    }

    /* Clip-11 with bound inputs: dX, dmin and dmax (sums over the clamped) */
    struct tview lo = tv_vals(0, scalar_dims, (float[]){-0.5f});
    struct tview hi = tv_vals(0, scalar_dims, (float[]){0.7f});
    struct {
        struct tview *in[3];
        int n_in;
        unsigned mask;
    } cl[] = {{{NULL, &lo, &hi}, 3, 7}, {{NULL, &lo}, 2, 3}, {{NULL, NULL, &hi}, 3, 5}};
    for (size_t c = 0; c < sizeof cl / sizeof cl[0]; c++) {
        struct tview x = opcheck_tensor(4, d, 40 + c);
        away_from(tview_f(&x), 120, (float[]){-0.5f, 0.7f}, 2, 0.05f);
        cl[c].in[0] = &x;
        int rc = opcheck_forward(&r, &op_clip, 13, NULL, 0, cl[c].in, cl[c].n_in, 1);
        CHECK_MSG(rc == 0, "clip %zu: %s", c, r.err);
        if (rc == 0) {
            int g = opcheck_gradients(&r, cl[c].mask, FD_RTOL, FD_ATOL);
            CHECK_MSG(g == 0, "clip case %zu: %d gradient mismatches", c, g);
        }
        opcheck_free(&r);
        free(x.data);
    }
    free(lo.data), free(hi.data);

    /* PRelu per channel of NCHW, dX and dslope */
    struct tview x = opcheck_tensor(4, d, 60);
    struct tview s = opcheck_tensor(3, (int64_t[]){3, 1, 1}, 61);
    away_from(tview_f(&x), 120, (float[]){0}, 1, 0.05f);
    CHECK_EQ_INT(opcheck_forward(&r, &op_prelu, 9, NULL, 0, (struct tview *[]){&x, &s}, 2, 1), 0);
    CHECK_EQ_INT(opcheck_gradients(&r, 3, FD_RTOL, FD_ATOL), 0);
    opcheck_free(&r);
    free(x.data), free(s.data);
}

TEST(activations_refuse_int64)
{
    struct opcheck_run r;
    struct tview k = opcheck_ints(1, (int64_t[]){2}, (int64_t[]){1, -1});
    CHECK(opcheck_forward(&r, &op_relu, 13, NULL, 0, (struct tview *[]){&k}, 1, 1) ==
          STRATA_E_UNSUPPORTED);
    CHECK_MSG(strstr(r.err, "only float"), "%s", r.err);
    opcheck_free(&r);
    free(k.data);
}

/* ---- Softmax / LogSoftmax -------------------------------------------------- */

/* x[i] = ((7i) mod 11)/4 - 1 on [2,3,4] and numpy's results for it */
static void sm_input(float *x)
{
    for (int i = 0; i < 24; i++)
        x[i] = (float)((i * 7) % 11) / 4.0f - 1.0f;
}

static const float sm_o11_axis1[24] = {
    0.01902807f, 0.10949896f, 0.04028242f, 0.23180930f, 0.08527787f, 0.03137198f,
    0.18053326f, 0.06641448f, 0.02443252f, 0.14059945f, 0.05172365f, 0.01902807f,
    0.10041438f, 0.03694039f, 0.21257724f, 0.07820280f, 0.02876920f, 0.16555532f,
    0.06090440f, 0.02240548f, 0.12893462f, 0.04743239f, 0.01744940f, 0.10041438f};
static const float sm_o13_axis1[24] = {
    0.14780405f, 0.38902480f, 0.14780405f, 0.73067913f, 0.66241179f, 0.11145747f,
    0.66241179f, 0.20934308f, 0.18978416f, 0.49951773f, 0.18978416f, 0.05997780f,
    0.38902480f, 0.14780405f, 0.73067913f, 0.38902480f, 0.11145747f, 0.66241179f,
    0.20934308f, 0.11145747f, 0.49951773f, 0.18978416f, 0.05997780f, 0.49951773f};
static const float sm_o13_last[24] = {
    0.04749669f, 0.27332461f, 0.10055050f, 0.57862820f, 0.23453916f, 0.08628214f,
    0.49651941f, 0.18265928f, 0.10362261f, 0.59630695f, 0.21936907f, 0.08070137f,
    0.23453916f, 0.08628214f, 0.49651941f, 0.18265928f, 0.10362261f, 0.59630695f,
    0.21936907f, 0.08070137f, 0.43820912f, 0.16120812f, 0.05930515f, 0.34127760f};
static const float lsm_o13_axis1[24] = {
    -1.91186787f, -0.94411219f, -1.91186787f, -0.31378086f, -0.41186787f, -2.19411219f,
    -0.41186787f, -1.56378086f, -1.66186787f, -0.69411219f, -1.66186787f, -2.81378086f,
    -0.94411219f, -1.91186787f, -0.31378086f, -0.94411219f, -2.19411219f, -0.41186787f,
    -1.56378086f, -2.19411219f, -0.69411219f, -1.66186787f, -2.81378086f, -0.69411219f};
static const float lsm_o11_axis1[24] = {
    -3.96184024f, -2.21184024f, -3.21184024f, -1.46184024f, -2.46184024f, -3.46184024f,
    -1.71184024f, -2.71184024f, -3.71184024f, -1.96184024f, -2.96184024f, -3.96184024f,
    -2.29844986f, -3.29844986f, -1.54844986f, -2.54844986f, -3.54844986f, -1.79844986f,
    -2.79844986f, -3.79844986f, -2.04844986f, -3.04844986f, -4.04844986f, -2.29844986f};

TEST(softmax_opset_semantics)
{
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    struct attr axm1[] = {OPCHECK_INT("axis", -1)};
    struct attr axm2[] = {OPCHECK_INT("axis", -2)};
    struct {
        const struct op *op;
        int opset;
        struct attr *attrs;
        int n_attrs;
        const float *want;
    } cases[] = {
        {&op_softmax, 11, ax1, 1, sm_o11_axis1},  /* [2,12] rows */
        {&op_softmax, 11, NULL, 0, sm_o11_axis1}, /* default axis 1 */
        {&op_softmax, 6, ax1, 1, sm_o11_axis1},
        {&op_softmax, 13, ax1, 1, sm_o13_axis1},  /* along axis 1 only */
        {&op_softmax, 13, axm2, 1, sm_o13_axis1},
        {&op_softmax, 13, NULL, 0, sm_o13_last},  /* default axis -1 */
        {&op_softmax, 11, NULL, 0, sm_o11_axis1},
        {&op_softmax, 11, (struct attr[]){OPCHECK_INT("axis", 2)}, 1, sm_o13_last},
        {&op_softmax, 13, axm1, 1, sm_o13_last},
        {&op_log_softmax, 13, ax1, 1, lsm_o13_axis1},
        {&op_log_softmax, 11, ax1, 1, lsm_o11_axis1},
        {&op_log_softmax, 12, NULL, 0, lsm_o11_axis1},
    };
    int64_t d[3] = {2, 3, 4};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct tview x = opcheck_tensor(3, d, 1);
        sm_input(tview_f(&x));
        struct opcheck_run r;
        int rc = opcheck_forward(&r, cases[c].op, cases[c].opset, cases[c].attrs,
                                 cases[c].n_attrs, (struct tview *[]){&x}, 1, 1);
        CHECK_MSG(rc == 0, "case %zu: %s", c, r.err);
        if (rc == 0) {
            CHECK(same_dims(&r.out[0], 3, d));
            CHECK_MSG(near_all(tview_f(&r.out[0]), cases[c].want, 24, 2e-6) == 0, "case %zu (%s "
                      "opset %d)", c, cases[c].op->name, cases[c].opset);
            int g = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
            CHECK_MSG(g == 0, "case %zu: %d gradient mismatches", c, g);
        }
        opcheck_free(&r);
        free(x.data);
    }
}

TEST(softmax_gradients_nchw)
{
    /* inner > 1 (axis 1 of NCHW at opset 13) and the flattened form, on
     * random inputs scaled to [-3, 3). Small extents: the finite difference
     * of a log-softmax over all elements at once carries rounding noise that
     * grows with the number of elements. */
    int64_t d[4] = {2, 3, 2, 3};
    const struct op *ops[] = {&op_softmax, &op_log_softmax};
    int opsets[] = {11, 13};
    for (int o = 0; o < 2; o++)
        for (int v = 0; v < 2; v++)
            for (int axis = 0; axis < 4; axis++) {
                struct tview x = opcheck_tensor(4, d, 80 + axis);
                scale(tview_f(&x), 36, 3);
                struct attr a[] = {OPCHECK_INT("axis", axis)};
                struct opcheck_run r;
                int rc = opcheck_forward(&r, ops[o], opsets[v], a, 1, (struct tview *[]){&x}, 1, 1);
                CHECK_MSG(rc == 0, "%s", r.err);
                if (rc == 0) {
                    int g = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
                    CHECK_MSG(g == 0, "%s opset %d axis %d: %d gradient mismatches",
                              ops[o]->name, opsets[v], axis, g);
                    /* each distribution sums to 1 (softmax) */
                    if (ops[o] == &op_softmax && opsets[v] == 13 && axis == 1) {
                        const float *y = tview_f(&r.out[0]);
                        for (int n = 0; n < 2; n++)
                            for (int k = 0; k < 6; k++)
                                CHECK_NEAR(y[n * 18 + k] + y[n * 18 + 6 + k] +
                                               y[n * 18 + 12 + k],
                                           1.0, 1e-6);
                    }
                }
                opcheck_free(&r);
                free(x.data);
            }
}

TEST(softmax_large_inputs)
{
    /* numpy: softmax([1000, 1001, 1002]) = [0.09003057, 0.24472847,
     * 0.66524096]; the same shifted by -1e4; and a -1e30 that underflows */
    struct tview x = tv_vals(2, (int64_t[]){3, 3},
                             (float[]){1000, 1001, 1002, -10000, -9999, -9998, -1e30f, 0, 1e30f});
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_softmax, 13, NULL, 0, (struct tview *[]){&x}, 1, 1), 0);
    const float want[9] = {0.09003057f, 0.24472847f, 0.66524096f, 0.09003057f, 0.24472847f,
                           0.66524096f, 0, 0, 1};
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), want, 9, 1e-6), 0);
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_log_softmax, 13, NULL, 0, (struct tview *[]){&x}, 1, 1),
                 0);
    /* log of the above: [-2.40760596, -1.40760596, -0.40760596] */
    const float *y = tview_f(&r.out[0]);
    CHECK_NEAR(y[0], -2.40760596, 1e-6);
    CHECK_NEAR(y[2], -0.40760596, 1e-6);
    CHECK_NEAR(y[3], -2.40760596, 1e-6);
    CHECK_NEAR(y[8], 0.0, 1e-6);
    CHECK_NEAR(y[7], -1e30, 1e24);
    opcheck_free(&r);
    free(x.data);
}

TEST(softmax_refusals)
{
    struct tview x = opcheck_tensor(2, (int64_t[]){2, 3}, 1);
    struct attr a[] = {OPCHECK_INT("axis", 2)};
    struct opcheck_run r;
    CHECK(opcheck_forward(&r, &op_softmax, 13, a, 1, (struct tview *[]){&x}, 1, 1) < 0);
    CHECK_MSG(strstr(r.err, "axis 2 is out of range"), "%s", r.err);
    opcheck_free(&r);
    free(x.data);
}

/* ---- Gemm ------------------------------------------------------------------- */

TEST(gemm_hand_worked)
{
    struct opcheck_run r;
    struct tview a = tv_vals(2, (int64_t[]){2, 2}, (float[]){1, 2, 3, 4});
    struct tview b = tv_vals(2, (int64_t[]){2, 2}, (float[]){5, 6, 7, 8});
    CHECK_EQ_INT(opcheck_forward(&r, &op_gemm, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){19, 22, 43, 50}, 4, 0), 0);
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){19, 22, 43, 50}, 4, 0), 0);
    opcheck_free(&r);

    /* ONNX's test_gemm_all_attributes layout: A [4,3] and B [5,4], both
     * transposed, alpha 0.25, beta 0.35, C [1,5]; values from numpy */
    struct tview at = opcheck_tensor(2, (int64_t[]){4, 3}, 1);
    struct tview bt = opcheck_tensor(2, (int64_t[]){5, 4}, 1);
    struct tview c = tv_vals(2, (int64_t[]){1, 5}, (float[]){0.1f, 0.2f, 0.3f, 0.4f, 0.5f});
    for (int i = 0; i < 12; i++)
        tview_f(&at)[i] = (float)(i % 7 - 3) * 0.5f;
    for (int i = 0; i < 20; i++)
        tview_f(&bt)[i] = (float)((i * 3) % 5 - 2) * 0.25f;
    struct attr all[] = {OPCHECK_FLOAT("alpha", 0.25f), OPCHECK_FLOAT("beta", 0.35f),
                         OPCHECK_INT("transA", 1), OPCHECK_INT("transB", 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_gemm, 13, all, 4, (struct tview *[]){&at, &bt, &c}, 3, 1),
                 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){3, 5}));
    const float want[15] = {0.06625f, 0.195f,    -0.30125f, 0.29625f, 0.26875f,
                            0.285f,   -0.08625f, 0.1675f,   0.265f,   -0.10625f,
                            0.285f,   -0.14875f, 0.19875f,  0.23375f, -0.04375f};
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), want, 15, 1e-6), 0);
    opcheck_free(&r);
    free(a.data), free(b.data), free(at.data), free(bt.data), free(c.data);
}

/* Y = alpha · op(A) · op(B) + beta · C by triple loop; C given as [cm, cn]
 * (1 where broadcast) or absent. */
static void gemm_ref(float *y, const float *a, const float *b, const float *c, int64_t cm,
                     int64_t cn, int m, int n, int k, int ta, int tb, float alpha, float beta)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (double)(ta ? a[p * m + i] : a[i * k + p]) *
                     (tb ? b[j * k + p] : b[p * n + j]);
            s *= alpha;
            if (c)
                s += (double)beta * c[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
            y[i * n + j] = (float)s;
        }
}

TEST(gemm_forms)
{
    const int m = 3, n = 4, k = 5;
    struct {
        int opset, rank;
        int64_t dims[2];
        int64_t cm, cn;      /* C as the reference reads it */
    } cs[] = {
        {13, -1, {0}, 0, 0},         /* no C */
        {11, 0, {0}, 1, 1},          /* scalar */
        {13, 1, {1}, 1, 1},          /* [1] */
        {13, 1, {4}, 1, 4},          /* [N] */
        {9, 2, {1, 4}, 1, 4},        /* [1,N] */
        {13, 2, {3, 1}, 3, 1},       /* [M,1] */
        {7, 2, {3, 4}, 3, 4},        /* [M,N] */
        {6, 2, {3, 4}, 3, 4},        /* opset 6 exact C */
        {6, 1, {4}, 1, 4},           /* opset 6 with broadcast=1 */
    };
    for (int t = 0; t < 4; t++)
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
            int ta = t & 1, tb = t >> 1;
            struct tview a = opcheck_tensor(2, ta ? (int64_t[]){k, m} : (int64_t[]){m, k}, t + 1);
            struct tview b = opcheck_tensor(2, tb ? (int64_t[]){n, k} : (int64_t[]){k, n}, t + 7);
            struct tview c = opcheck_tensor(cs[ci].rank < 0 ? 0 : cs[ci].rank, cs[ci].dims, ci);
            struct attr at[] = {OPCHECK_FLOAT("alpha", 0.7f), OPCHECK_FLOAT("beta", -1.3f),
                                OPCHECK_INT("transA", ta), OPCHECK_INT("transB", tb),
                                OPCHECK_INT("broadcast", 1)};
            int n_at = cs[ci].opset == 6 && cs[ci].rank == 1 ? 5 : 4;
            struct opcheck_run r;
            int has_c = cs[ci].rank >= 0;
            int rc = opcheck_forward(&r, &op_gemm, cs[ci].opset, at, n_at,
                                     (struct tview *[]){&a, &b, &c}, has_c ? 3 : 2, 1);
            CHECK_MSG(rc == 0, "trans %d C %zu: %s", t, ci, r.err);
            if (rc == 0) {
                float want[12];
                gemm_ref(want, tview_f(&a), tview_f(&b), has_c ? tview_f(&c) : NULL, cs[ci].cm,
                         cs[ci].cn, m, n, k, ta, tb, 0.7f, -1.3f);
                CHECK(same_dims(&r.out[0], 2, (int64_t[]){m, n}));
                CHECK_MSG(near_all(tview_f(&r.out[0]), want, 12, 1e-5) == 0, "trans %d C %zu",
                          t, ci);
                int g = opcheck_gradients(&r, has_c ? 7 : 3, FD_RTOL, FD_ATOL);
                CHECK_MSG(g == 0, "trans %d C %zu: %d gradient mismatches", t, ci, g);
            }
            opcheck_free(&r);
            free(a.data), free(b.data), free(c.data);
        }

    /* defaults: alpha = beta = 1, C absent from the input list (opset 11) */
    struct tview a = opcheck_tensor(2, (int64_t[]){2, 3}, 3);
    struct tview b = opcheck_tensor(2, (int64_t[]){3, 2}, 4);
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_gemm, 11, NULL, 0, (struct tview *[]){&a, &b, NULL}, 3,
                                 1),
                 0);
    float want[4];
    gemm_ref(want, tview_f(&a), tview_f(&b), NULL, 0, 0, 2, 2, 3, 0, 0, 1, 1);
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), want, 4, 1e-6), 0);
    opcheck_free(&r);
    free(a.data), free(b.data);
}

/* A dense layer's form, Y = X·Bᵀ (+ beta·C), on batches either side of
 * the 16 images up to which it runs as dot products of rows (gemv.c) and
 * beyond which on sgemm with Bᵀ packed, against double precision; run with
 * strata's kernels and with the OpenBLAS fallback (main). */
TEST(gemm_dense_layer_shapes)
{
    const int ms[] = {1, 3, 16, 17, 40}, ks[] = {5, 200, 700}, ns[] = {7, 50};
    for (int mi = 0; mi < 5; mi++)
        for (int ki = 0; ki < 3; ki++)
            for (int ni = 0; ni < 2; ni++)
                for (int withc = 0; withc < 2; withc++) {
                    const int m = ms[mi], k = ks[ki], n = ns[ni];
                    struct tview a = opcheck_tensor(2, (int64_t[]){m, k}, 31 + mi);
                    struct tview b = opcheck_tensor(2, (int64_t[]){n, k}, 41 + ki);
                    struct tview c = opcheck_tensor(1, (int64_t[]){n}, 51 + ni);
                    struct attr at[] = {OPCHECK_INT("transB", 1), OPCHECK_FLOAT("beta", 0.5f)};
                    struct opcheck_run r;
                    CHECK_EQ_INT(opcheck_forward(&r, &op_gemm, 13, at, 2,
                                                 (struct tview *[]){&a, &b, &c}, withc ? 3 : 2, 1),
                                 0);
                    float *want = malloc((size_t)m * n * sizeof *want);
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double sum = withc ? 0.5 * tview_f(&c)[j] : 0.0;
                            for (int q = 0; q < k; q++)
                                sum += (double)tview_f(&a)[(size_t)i * k + q] *
                                       tview_f(&b)[(size_t)j * k + q];
                            want[(size_t)i * n + j] = (float)sum;
                        }
                    const int bad = near_all(tview_f(&r.out[0]), want, (int64_t)m * n, 1e-5);
                    CHECK_MSG(bad == 0, "m %d k %d n %d C %d: %d elements off", m, k, n, withc, bad);
                    free(want);
                    opcheck_free(&r);
                    free(a.data), free(b.data), free(c.data);
                }
}

TEST(gemm_refusals)
{
    struct opcheck_run r;
    struct tview a = opcheck_tensor(2, (int64_t[]){3, 5}, 1);
    struct tview b = opcheck_tensor(2, (int64_t[]){5, 4}, 2);
    struct tview cn = opcheck_tensor(1, (int64_t[]){4}, 3);
    struct tview c5 = opcheck_tensor(1, (int64_t[]){5}, 4);
    struct tview a3 = opcheck_tensor(3, (int64_t[]){1, 3, 5}, 5);

    /* C required before opset 11 */
    CHECK(opcheck_forward(&r, &op_gemm, 9, NULL, 0, (struct tview *[]){&a, &b}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "input C is missing"), "%s", r.err);
    opcheck_free(&r);
    /* opset 6 without broadcast=1: C must be MxN */
    CHECK(opcheck_forward(&r, &op_gemm, 6, NULL, 0, (struct tview *[]){&a, &b, &cn}, 3, 1) < 0);
    CHECK_MSG(strstr(r.err, "does not broadcast") && strstr(r.err, "broadcast=1"), "%s", r.err);
    opcheck_free(&r);
    /* [5] against N = 4 */
    CHECK(opcheck_forward(&r, &op_gemm, 13, NULL, 0, (struct tview *[]){&a, &b, &c5}, 3, 1) < 0);
    CHECK_MSG(strstr(r.err, "C 5 does not broadcast onto the 3x4 result"), "%s", r.err);
    opcheck_free(&r);
    /* inner dimensions */
    struct attr tb[] = {OPCHECK_INT("transB", 1)};
    CHECK(opcheck_forward(&r, &op_gemm, 13, tb, 1, (struct tview *[]){&a, &b}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "inner dimensions 5 and 4 differ"), "%s", r.err);
    opcheck_free(&r);
    /* rank 3 */
    CHECK(opcheck_forward(&r, &op_gemm, 13, NULL, 0, (struct tview *[]){&a3, &b}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "must be 2-D"), "%s", r.err);
    opcheck_free(&r);
    free(a.data), free(b.data), free(cn.data), free(c5.data), free(a3.data);
}

/* ---- MatMul ------------------------------------------------------------------ */

/* numpy.matmul by definition: promote rank-1 operands, broadcast the batch,
 * triple loop per batch element. */
static void matmul_ref(float *y, const float *a, int ra, const int64_t *da, const float *b,
                       int rb, const int64_t *db)
{
    int64_t A[OP_MAX_DIMS], B[OP_MAX_DIMS];
    int na = ra, nb = rb;
    memcpy(A, da, (size_t)ra * sizeof *A);
    memcpy(B, db, (size_t)rb * sizeof *B);
    if (na == 1) {
        A[1] = A[0];
        A[0] = 1;
        na = 2;
    }
    if (nb == 1) {
        B[1] = 1;
        nb = 2;
    }
    int64_t m = A[na - 2], k = A[na - 1], n = B[nb - 1];
    int rbt = (na > nb ? na : nb) - 2;
    int64_t bt[OP_MAX_DIMS], ab[OP_MAX_DIMS], bb[OP_MAX_DIMS], nbatch = 1;
    for (int i = 0; i < rbt; i++) {
        int ia = i - (rbt - (na - 2)), ib = i - (rbt - (nb - 2));
        ab[i] = ia >= 0 ? A[ia] : 1;
        bb[i] = ib >= 0 ? B[ib] : 1;
        bt[i] = ab[i] > bb[i] ? ab[i] : bb[i];
        nbatch *= bt[i];
    }
    for (int64_t q = 0; q < nbatch; q++) {
        int64_t idx[OP_MAX_DIMS];
        unflatten(q, rbt, bt, idx);
        int64_t oa = bcast_src(idx, rbt, rbt, ab), ob = bcast_src(idx, rbt, rbt, bb);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++)
                    s += (double)a[oa * m * k + i * k + p] * b[ob * k * n + p * n + j];
                y[q * m * n + i * n + j] = (float)s;
            }
    }
}

TEST(matmul_forms)
{
    struct {
        int ra, rb, ro;
        int64_t da[4], db[4], dout[4];
    } cs[] = {
        {2, 2, 2, {3, 4}, {4, 5}, {3, 5}},
        {3, 3, 3, {2, 3, 4}, {2, 4, 5}, {2, 3, 5}},          /* batched */
        {4, 3, 4, {2, 1, 3, 4}, {3, 4, 5}, {2, 3, 3, 5}},    /* broadcast batch */
        {4, 4, 4, {1, 2, 3, 4}, {2, 1, 4, 3}, {2, 2, 3, 3}}, /* both broadcast */
        {3, 2, 3, {2, 3, 4}, {4, 5}, {2, 3, 5}},             /* batch folded into M */
        {2, 3, 3, {3, 4}, {2, 4, 5}, {2, 3, 5}},             /* A shared by B's batch */
        {1, 2, 1, {4}, {4, 5}, {5}},                         /* row vector */
        {3, 1, 2, {2, 3, 4}, {4}, {2, 3}},                   /* column vector */
        {1, 1, 0, {4}, {4}, {0}},                            /* dot product */
        {1, 3, 2, {4}, {2, 4, 5}, {2, 5}},
        {4, 4, 4, {1, 2, 3, 4}, {1, 2, 4, 3}, {1, 2, 3, 3}}, /* ONNX test_matmul_4d */
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        struct tview a = opcheck_tensor(cs[c].ra, cs[c].da, 30 + c);
        struct tview b = opcheck_tensor(cs[c].rb, cs[c].db, 60 + c);
        struct opcheck_run r;
        int rc = opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1);
        CHECK_MSG(rc == 0, "case %zu: %s", c, r.err);
        if (rc == 0) {
            CHECK_MSG(same_dims(&r.out[0], cs[c].ro, cs[c].dout), "case %zu: output shape", c);
            float want[128];
            matmul_ref(want, tview_f(&a), cs[c].ra, cs[c].da, tview_f(&b), cs[c].rb, cs[c].db);
            CHECK_MSG(near_all(tview_f(&r.out[0]), want, tview_count(&r.out[0]), 1e-5) == 0,
                      "case %zu", c);
            int g = opcheck_gradients(&r, 3, FD_RTOL, FD_ATOL);
            CHECK_MSG(g == 0, "case %zu: %d gradient mismatches", c, g);
        }
        opcheck_free(&r);
        free(a.data), free(b.data);
    }
}

TEST(matmul_numpy_values)
{
    /* a = arange(12)-5 as [2,1,2,3], b = (arange(18)%4)-1.5 as [3,3,2]:
     * numpy's a @ b is [2,3,2,2] */
    struct tview a = opcheck_tensor(4, (int64_t[]){2, 1, 2, 3}, 1);
    struct tview b = opcheck_tensor(3, (int64_t[]){3, 3, 2}, 1);
    for (int i = 0; i < 12; i++)
        tview_f(&a)[i] = (float)i - 5;
    for (int i = 0; i < 18; i++)
        tview_f(&b)[i] = (float)(i % 4) - 1.5f;
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_matmul, 9, NULL, 0, (struct tview *[]){&a, &b}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 4, (int64_t[]){2, 3, 2, 2}));
    const float want[24] = {10, -2, 2.5f, -0.5f, 2,  -10, 0.5f,  -2.5f, 10, -2, 2.5f,  -0.5f,
                            -5, 1,  -12.5f, 2.5f, -1, 5,  -2.5f, 12.5f, -5, 1,  -12.5f, 2.5f};
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), want, 24, 0), 0);
    opcheck_free(&r);

    /* [1,2,3] @ b -> [3,2];  a[:2x2x3] @ [1,2,3] -> [2,2] */
    struct tview v = tv_vals(1, (int64_t[]){3}, (float[]){1, 2, 3});
    CHECK_EQ_INT(opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&v, &b}, 2, 1), 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){3, 2}));
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){-5, 1, -1, 5, -5, 1}, 6, 0), 0);
    opcheck_free(&r);
    struct tview a3 = opcheck_tensor(3, (int64_t[]){2, 2, 3}, 1);
    memcpy(a3.data, a.data, 12 * sizeof(float));
    CHECK_EQ_INT(opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&a3, &v}, 2, 1),
                 0);
    CHECK(same_dims(&r.out[0], 2, (int64_t[]){2, 2}));
    CHECK_EQ_INT(near_all(tview_f(&r.out[0]), (float[]){-22, -4, 14, 32}, 4, 0), 0);
    opcheck_free(&r);
    free(a.data), free(b.data), free(v.data), free(a3.data);
}

TEST(matmul_refusals)
{
    struct opcheck_run r;
    struct tview a = opcheck_tensor(3, (int64_t[]){2, 3, 4}, 1);
    struct tview b = opcheck_tensor(3, (int64_t[]){3, 4, 5}, 2);
    struct tview c = opcheck_tensor(2, (int64_t[]){5, 4}, 3);
    CHECK(opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&a, &b}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "batch dimensions do not broadcast"), "%s", r.err);
    opcheck_free(&r);
    CHECK(opcheck_forward(&r, &op_matmul, 13, NULL, 0, (struct tview *[]){&a, &c}, 2, 1) < 0);
    CHECK_MSG(strstr(r.err, "inner dimensions 4 and 5 differ"), "%s", r.err);
    opcheck_free(&r);
    free(a.data), free(b.data), free(c.data);
}

/* ---- ReduceMean ---------------------------------------------------------------- */

TEST(reduce_mean_hand_worked)
{
    /* ONNX's example: data [3,2,2] */
    const float data[12] = {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2};
    struct attr ax1[] = {OPCHECK_INTS("axes", 1)};
    struct attr ax1_nokeep[] = {OPCHECK_INTS("axes", 1), OPCHECK_INT("keepdims", 0)};
    struct attr axm2[] = {OPCHECK_INTS("axes", -2), OPCHECK_INT("keepdims", 1)};
    struct attr ax02[] = {OPCHECK_INTS("axes", 0, 2), OPCHECK_INT("keepdims", 0)};
    struct attr all_nokeep[] = {OPCHECK_INT("keepdims", 0)};
    struct {
        struct attr *attrs;
        int n_attrs, ro;
        int64_t dout[3];
        int n;
        float want[6];
    } cs[] = {
        {ax1, 1, 3, {3, 1, 2}, 6, {12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f}},
        {ax1_nokeep, 2, 2, {3, 2}, 6, {12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f}},
        {axm2, 2, 3, {3, 1, 2}, 6, {12.5f, 1.5f, 35, 1.5f, 57.5f, 1.5f}},
        {ax02, 2, 1, {2}, 2, {15.5f, 21}},
        {NULL, 0, 3, {1, 1, 1}, 1, {18.25f}},
        {all_nokeep, 1, 0, {0}, 1, {18.25f}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        struct tview x = tv_vals(3, (int64_t[]){3, 2, 2}, data);
        struct opcheck_run r;
        int rc = opcheck_forward(&r, &op_reduce_mean, 13, cs[c].attrs, cs[c].n_attrs,
                                 (struct tview *[]){&x}, 1, 1);
        CHECK_MSG(rc == 0, "case %zu: %s", c, r.err);
        if (rc == 0) {
            CHECK_MSG(same_dims(&r.out[0], cs[c].ro, cs[c].dout), "case %zu: shape", c);
            CHECK_MSG(near_all(tview_f(&r.out[0]), cs[c].want, cs[c].n, 1e-7) == 0, "case %zu",
                      c);
        }
        opcheck_free(&r);
        free(x.data);
    }
}

TEST(reduce_mean_forms)
{
    int64_t d[4] = {2, 3, 4, 5};
    struct attr hw[] = {OPCHECK_INTS("axes", 2, 3)};
    struct attr ch[] = {OPCHECK_INTS("axes", 1), OPCHECK_INT("keepdims", 0)};
    struct attr nh[] = {OPCHECK_INTS("axes", 0, 2)};
    struct attr w[] = {OPCHECK_INTS("axes", -1), OPCHECK_INT("keepdims", 0)};
    struct attr cw[] = {OPCHECK_INTS("axes", 3, 1)};
    struct {
        struct attr *attrs;
        int n_attrs;
        int red[4];
    } cs[] = {
        {hw, 1, {0, 0, 1, 1}}, {ch, 2, {0, 1, 0, 0}}, {nh, 1, {1, 0, 1, 0}},
        {w, 2, {0, 0, 0, 1}},  {cw, 1, {0, 1, 0, 1}}, {NULL, 0, {1, 1, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        struct tview x = opcheck_tensor(4, d, 90 + c);
        struct opcheck_run r;
        int rc = opcheck_forward(&r, &op_reduce_mean, 11, cs[c].attrs, cs[c].n_attrs,
                                 (struct tview *[]){&x}, 1, 1);
        CHECK_MSG(rc == 0, "case %zu: %s", c, r.err);
        if (rc == 0) {
            /* reference: for each output cell (reduced axes pinned to 0 in
             * the kept-dims layout), sum the matching inputs explicitly */
            int64_t ko[4], count = 1;
            for (int i = 0; i < 4; i++) {
                ko[i] = cs[c].red[i] ? 1 : d[i];
                count *= cs[c].red[i] ? d[i] : 1;
            }
            CHECK_EQ_INT(tview_count(&r.out[0]), 120 / count);
            double sums[120] = {0};
            int64_t idx[4];
            for (int64_t i = 0; i < 120; i++) {
                unflatten(i, 4, d, idx);
                sums[bcast_src(idx, 4, 4, ko)] += tview_f(&x)[i];
            }
            int bad = 0;
            for (int64_t j = 0; j < 120 / count; j++)
                bad += fabs(tview_f(&r.out[0])[j] - sums[j] / count) > 1e-6;
            CHECK_MSG(bad == 0, "case %zu: %d means differ", c, bad);
            int g = opcheck_gradients(&r, 1, FD_RTOL, FD_ATOL);
            CHECK_MSG(g == 0, "case %zu: %d gradient mismatches", c, g);
        }
        opcheck_free(&r);
        free(x.data);
    }
}

TEST(reduce_mean_refusals)
{
    struct tview x = opcheck_tensor(2, (int64_t[]){2, 3}, 1);
    struct opcheck_run r;
    struct attr dup[] = {OPCHECK_INTS("axes", 1, -1)};
    CHECK(opcheck_forward(&r, &op_reduce_mean, 13, dup, 1, (struct tview *[]){&x}, 1, 1) < 0);
    CHECK_MSG(strstr(r.err, "listed twice"), "%s", r.err);
    opcheck_free(&r);
    struct attr far[] = {OPCHECK_INTS("axes", 2)};
    CHECK(opcheck_forward(&r, &op_reduce_mean, 13, far, 1, (struct tview *[]){&x}, 1, 1) < 0);
    CHECK_MSG(strstr(r.err, "axis 2 is out of range for rank 2"), "%s", r.err);
    opcheck_free(&r);
    free(x.data);
}

int main(void)
{
    RUN(add_hand_worked);
    RUN(elementwise_broadcast_forms);
    RUN(elementwise_refusals);
    RUN(elementwise_int64);
    RUN(activations_hand_worked);
    RUN(clip_forms);
    RUN(prelu_forms);
    RUN(sigmoid_tanh_match_double_precision);
    RUN(activations_large_inputs);
    RUN(activations_gradients);
    RUN(activations_refuse_int64);
    RUN(softmax_opset_semantics);
    RUN(softmax_gradients_nchw);
    RUN(softmax_large_inputs);
    RUN(softmax_refusals);
    RUN(gemm_hand_worked);
    RUN(gemm_forms);
    RUN(gemm_dense_layer_shapes);
    sgemm_set_enabled(0);
    check_run(test_gemm_dense_layer_shapes, "gemm_dense_layer_shapes (fallback)");
    sgemm_set_enabled(1);
    RUN(gemm_refusals);
    RUN(matmul_forms);
    RUN(matmul_numpy_values);
    RUN(matmul_refusals);
    RUN(reduce_mean_hand_worked);
    RUN(reduce_mean_forms);
    RUN(reduce_mean_refusals);
    return check_done();
}
