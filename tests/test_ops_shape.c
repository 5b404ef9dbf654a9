/*
 * test_ops_shape.c — the graph ops that move elements without arithmetic:
 * Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout (reshape.c),
 * Transpose (transpose.c), Concat (concat.c), and the shape arithmetic ops
 * Shape, Gather, Slice, Cast, Constant (shape.c).
 *
 * Evidence, per op:
 *   - hand-worked cases: inputs 0, 1, 2, … ("iota") so every expected value
 *     below is an index that can be read off the ONNX definition; the Slice
 *     and Cast values with steps, clamping and float16 rounding were
 *     computed with numpy (x[:, ::-2, 3:0:-2], astype(float16), …);
 *   - a naive reference where the kernel is clever: Transpose's walk (axis
 *     merging, contiguous runs) against a per-element index computation, for
 *     every permutation of a rank-4 tensor and the CNN cases;
 *   - both dtypes where exporters use int64 (Shape -> Gather -> Unsqueeze ->
 *     Concat -> Reshape), and every opset difference (attribute vs input
 *     forms of Squeeze, Unsqueeze, Slice, Dropout; Reshape's 0 and -1;
 *     allowzero; Shape's start/end);
 *   - refusals, checked by status and by words of the message;
 *   - finite-difference checks of every float backward (opcheck_gradients).
 *     These ops are linear, so the central difference is exact but for float
 *     rounding of x ± h (h = 1e-3): about 1e-4 in absolute terms; a wrong
 *     index or a missing accumulation is off by O(1); and a direct check
 *     that every backward adds into din (+=) rather than overwriting it.
 */
#include "check.h"
#include "opcheck.h"
#include "ops/ops.h"

#include <stdint.h>
#include <string.h>

#define D(...) ((int64_t[]){__VA_ARGS__})
#define F(...) ((float[]){__VA_ARGS__})
#define NARG(...) ((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
/* dims of a scalar: none, but a valid pointer for memcpy */
#define SCALAR ((int64_t[]){0})
#define IN(...) ((struct tview *[]){__VA_ARGS__})

#define GRAD_RTOL 1e-3
#define GRAD_ATOL 1e-3

/* ---- helpers --------------------------------------------------------------- */

/* A float tensor holding vals; data malloc'd. */
static struct tview ften(int ndim, const int64_t *dims, const float *vals)
{
    struct tview t = opcheck_tensor(ndim, dims, 1);
    memcpy(t.data, vals, (size_t)tview_count(&t) * sizeof(float));
    return t;
}

/* A float tensor 0, 1, 2, … in row-major order; data malloc'd. */
static struct tview iota(int ndim, const int64_t *dims)
{
    struct tview t = opcheck_tensor(ndim, dims, 1);
    for (int64_t k = 0; k < tview_count(&t); k++)
        tview_f(&t)[k] = (float)k;
    return t;
}

/* An int64 tensor 0, 1, 2, …; data malloc'd. */
static struct tview iota_i(int ndim, const int64_t *dims)
{
    struct tview t = {.dtype = DTYPE_INT64, .ndim = ndim};
    memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    int64_t n = tview_count(&t);
    t.data = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    for (int64_t k = 0; k < n; k++)
        tview_i(&t)[k] = k;
    return t;
}

/* A tensor whose value is only known when the batch runs (data NULL). */
static struct tview unknown(enum dtype dt, int ndim, const int64_t *dims)
{
    struct tview t = {.dtype = dt, .ndim = ndim};
    memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    return t;
}

static int dims_are(const struct tview *t, int ndim, const int64_t *dims)
{
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->dims[i] == dims[i];
    if (!ok) {
        char buf[96];
        printf("#   shape %s, expected rank %d:", dims_format(t, buf, sizeof buf), ndim);
        for (int i = 0; i < ndim; i++)
            printf(" %lld", (long long)dims[i]);
        printf("\n");
    }
    return ok;
}

static int floats_are(const struct tview *t, const float *want, int64_t n)
{
    if (t->dtype != DTYPE_FLOAT || tview_count(t) != n) {
        printf("#   dtype %d count %lld, expected float x %lld\n", t->dtype,
               (long long)tview_count(t), (long long)n);
        return 0;
    }
    for (int64_t k = 0; k < n; k++)
        if (tview_f(t)[k] != want[k]) {
            printf("#   element %lld: %.9g, expected %.9g\n", (long long)k, tview_f(t)[k],
                   want[k]);
            return 0;
        }
    return 1;
}

static int ints_are(const struct tview *t, const int64_t *want, int64_t n)
{
    if (t->dtype != DTYPE_INT64 || tview_count(t) != n) {
        printf("#   dtype %d count %lld, expected int64 x %lld\n", t->dtype,
               (long long)tview_count(t), (long long)n);
        return 0;
    }
    for (int64_t k = 0; k < n; k++)
        if (tview_i(t)[k] != want[k]) {
            printf("#   element %lld: %lld, expected %lld\n", (long long)k,
                   (long long)tview_i(t)[k], (long long)want[k]);
            return 0;
        }
    return 1;
}

/* The output equals the input element for element (ops that only relabel). */
static int same_elements(const struct tview *y, const struct tview *x)
{
    if (y->dtype != x->dtype || tview_count(y) != tview_count(x))
        return 0;
    size_t es = x->dtype == DTYPE_INT64 ? 8 : 4;
    return memcmp(y->data, x->data, (size_t)tview_count(x) * es) == 0;
}

/* Runs an op expected to be refused: returns 1 when it is, with `code` and
 * `words` in the message (also the node prefix every message carries). */
static int refused(const struct op *op, int opset, struct attr *a, int na, struct tview **in,
                   int nin, int nout, int code, const char *words)
{
    struct opcheck_run r;
    int rc = opcheck_forward(&r, op, opset, a, na, in, nin, nout);
    int ok = rc == code && strstr(r.err, words) && strstr(r.err, "node 't' (");
    if (!ok)
        printf("#   %s: status %d (expected %d), message \"%s\" (expected \"%s\")\n", op->name, rc,
               code, r.err, words);
    if (rc == 0)
        opcheck_free(&r);
    else
        free(r.node.params);
    return ok;
}

/* Runs op and checks its backward by finite differences on float inputs in
 * mask; returns the mismatches (0 is good), or -1 if the op failed. */
static int grad_check(const struct op *op, int opset, struct attr *a, int na, struct tview **in,
                      int nin, unsigned mask)
{
    struct opcheck_run r;
    int rc = opcheck_forward(&r, op, opset, a, na, in, nin, 1);
    if (rc < 0) {
        printf("#   %s: %s\n", op->name, r.err);
        free(r.node.params);
        return -1;
    }
    int bad = opcheck_gradients(&r, mask, GRAD_RTOL, GRAD_ATOL);
    opcheck_free(&r);
    return bad;
}

/* Backward accumulates: from din prefilled with 1, it must give 1 + what it
 * gives from zero, at every element of every float input. Returns 1 when so. */
static int accumulates(const struct op *op, int opset, struct attr *a, int na, struct tview **in,
                       int nin)
{
    struct opcheck_run r;
    if (opcheck_forward(&r, op, opset, a, na, in, nin, 1) < 0) {
        printf("#   %s: %s\n", op->name, r.err);
        free(r.node.params);
        return 0;
    }
    struct tview dy = opcheck_tensor(r.out[0].ndim, r.out[0].dims, 99);
    struct tview d0[OPCHECK_MAX_IO], d1[OPCHECK_MAX_IO];
    struct tview *p0[OPCHECK_MAX_IO] = {0}, *p1[OPCHECK_MAX_IO] = {0};
    for (int i = 0; i < nin; i++) {
        if (!in[i] || in[i]->dtype != DTYPE_FLOAT)
            continue;
        int64_t n = tview_count(in[i]);
        d0[i] = d1[i] = *in[i];
        d0[i].data = calloc((size_t)(n ? n : 1), sizeof(float));
        d1[i].data = malloc((size_t)(n ? n : 1) * sizeof(float));
        for (int64_t k = 0; k < n; k++)
            tview_f(&d1[i])[k] = 1.0f;
        p0[i] = &d0[i];
        p1[i] = &d1[i];
    }
    const struct tview *outc[] = {&r.out[0]}, *doutp[] = {&dy};
    struct op_ctx ctx = {.scratch = r.scratch, .scratch_len = r.scratch_len};
    op->backward(&r.node, (const struct tview *const *)r.in, outc, doutp, p0, &ctx);
    op->backward(&r.node, (const struct tview *const *)r.in, outc, doutp, p1, &ctx);
    int ok = 1;
    for (int i = 0; i < nin; i++) {
        if (!p0[i])
            continue;
        for (int64_t k = 0; ok && k < tview_count(in[i]); k++)
            if (fabsf(tview_f(&d1[i])[k] - (1.0f + tview_f(&d0[i])[k])) > 1e-6f) {
                printf("#   %s input %d element %lld: %g from 1, %g from 0\n", op->name, i,
                       (long long)k, tview_f(&d1[i])[k], tview_f(&d0[i])[k]);
                ok = 0;
            }
        free(d0[i].data);
        free(d1[i].data);
    }
    free(dy.data);
    opcheck_free(&r);
    return ok;
}

/* ---- Flatten ----------------------------------------------------------------- */

TEST(flatten_axes)
{
    struct tview x = iota(3, D(2, 3, 4));
    static const struct {
        int64_t axis;
        int64_t d0, d1;
    } cases[] = {{0, 1, 24}, {1, 2, 12}, {2, 6, 4}, {3, 24, 1},
                 {-1, 6, 4}, {-2, 2, 12}, {-3, 1, 24}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct attr a[] = {OPCHECK_INT("axis", cases[c].axis)};
        struct opcheck_run r;
        CHECK_EQ_INT(opcheck_forward(&r, &op_flatten, 13, a, 1, IN(&x), 1, 1), 0);
        CHECK(dims_are(&r.out[0], 2, D(cases[c].d0, cases[c].d1)));
        CHECK(same_elements(&r.out[0], &x));
        opcheck_free(&r);
    }
    /* no attribute: axis 1; opset 9 form is the same */
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_flatten, 9, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 12)));
    opcheck_free(&r);
    /* int64 */
    struct tview xi = iota_i(3, D(2, 1, 3));
    CHECK_EQ_INT(opcheck_forward(&r, &op_flatten, 13, NULL, 0, IN(&xi), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 3)));
    CHECK(ints_are(&r.out[0], D(0, 1, 2, 3, 4, 5), 6));
    opcheck_free(&r);
    struct attr bad[] = {OPCHECK_INT("axis", 4)};
    CHECK(refused(&op_flatten, 13, bad, 1, IN(&x), 1, 1, STRATA_E_FORMAT, "out of range"));
    struct attr bad2[] = {OPCHECK_INT("axis", -4)};
    CHECK(refused(&op_flatten, 13, bad2, 1, IN(&x), 1, 1, STRATA_E_FORMAT, "out of range"));
    CHECK(op_flatten.flags & OP_ALIAS);
    CHECK(op_flatten.flags & OP_INT64);
    free(x.data);
    free(xi.data);
}

TEST(flatten_gradients)
{
    struct tview x = opcheck_tensor(4, D(2, 3, 2, 2), 3);
    struct attr a[] = {OPCHECK_INT("axis", 2)};
    CHECK_EQ_INT(grad_check(&op_flatten, 13, a, 1, IN(&x), 1, 1), 0);
    free(x.data);
}

/* ---- Reshape ----------------------------------------------------------------- */

TEST(reshape_forms)
{
    struct tview x = iota(3, D(2, 3, 4));
    static const struct {
        int n;
        int64_t shape[4];
        int nd;
        int64_t want[4];
    } cases[] = {
        {2, {4, -1}, 2, {4, 6}},          /* -1 inferred */
        {2, {0, -1}, 2, {2, 12}},         /* 0 copies dim 0 */
        {3, {0, 0, -1}, 3, {2, 3, 4}},    /* identity through 0s */
        {1, {-1}, 1, {24}},
        {4, {2, 0, 2, -1}, 4, {2, 3, 2, 2}},
        {4, {1, 24, 1, 1}, 4, {1, 24, 1, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct tview s = opcheck_ints(1, D(cases[c].n), cases[c].shape);
        struct opcheck_run r;
        CHECK_EQ_INT(opcheck_forward(&r, &op_reshape, 13, NULL, 0, IN(&x, &s), 2, 1), 0);
        CHECK(dims_are(&r.out[0], cases[c].nd, cases[c].want));
        CHECK(same_elements(&r.out[0], &x));
        opcheck_free(&r);
        free(s.data);
    }
    free(x.data);
}

TEST(reshape_int64_and_allowzero)
{
    /* a shape vector reshaped, as exporters do: [4] -> [2, 2] */
    struct tview xi = opcheck_ints(1, D(4), D(7, 8, 9, 10));
    struct tview s = opcheck_ints(1, D(2), D(2, -1));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_reshape, 13, NULL, 0, IN(&xi, &s), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 2)));
    CHECK(ints_are(&r.out[0], D(7, 8, 9, 10), 4));
    opcheck_free(&r);
    free(s.data);

    /* allowzero = 1 (opset 14): 0 is a literal empty dim, [0,3,4] -> [3,4,0] */
    struct tview e = unknown(DTYPE_FLOAT, 3, D(0, 3, 4));
    e.data = malloc(4);
    struct tview s0 = opcheck_ints(1, D(3), D(3, 4, 0));
    struct attr az[] = {OPCHECK_INT("allowzero", 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_reshape, 14, az, 1, IN(&e, &s0), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(3, 4, 0)));
    opcheck_free(&r);
    /* allowzero = 0: the same 0 copies input dim 2 (4), and 3·4·4 ≠ 0 elements */
    CHECK(refused(&op_reshape, 14, NULL, 0, IN(&e, &s0), 2, 1, STRATA_E_FORMAT,
                  "(0 elements) to [3, 4, 0] (48 elements)"));
    /* allowzero with both 0 and -1 is invalid */
    struct tview s1 = opcheck_ints(1, D(3), D(0, -1, 4));
    CHECK(refused(&op_reshape, 14, az, 1, IN(&e, &s1), 2, 1, STRATA_E_FORMAT, "both 0 and -1"));
    free(e.data);
    free(s0.data);
    free(s1.data);
    free(xi.data);
}

TEST(reshape_refusals)
{
    struct tview x = iota(3, D(2, 3, 4));
    struct tview two = opcheck_ints(1, D(3), D(-1, -1, 6));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &two), 2, 1, STRATA_E_FORMAT,
                  "cannot reshape 2x3x4 to [-1, -1, 6]: at most one dimension may be -1"));
    struct tview mismatch = opcheck_ints(1, D(2), D(5, 5));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &mismatch), 2, 1, STRATA_E_FORMAT,
                  "cannot reshape 2x3x4 (24 elements) to [5, 5] (25 elements)"));
    struct tview indivisible = opcheck_ints(1, D(2), D(5, -1));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &indivisible), 2, 1, STRATA_E_FORMAT,
                  "2x3x4 (24 elements) to [5, -1]"));
    struct tview zero_past = opcheck_ints(1, D(4), D(1, 1, 24, 0));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &zero_past), 2, 1, STRATA_E_FORMAT,
                  "input has rank 3"));
    struct tview neg = opcheck_ints(1, D(2), D(-2, 12));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &neg), 2, 1, STRATA_E_FORMAT,
                  "dimension 0 is -2"));
    /* a shape computed from the batch's values cannot plan buffers */
    struct tview dyn = unknown(DTYPE_INT64, 1, D(2));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &dyn), 2, 1, STRATA_E_UNSUPPORTED,
                  "input 'shape' is computed from the batch's values"));
    struct tview fshape = ften(1, D(2), F(4, 6));
    CHECK(refused(&op_reshape, 13, NULL, 0, IN(&x, &fshape), 2, 1, STRATA_E_FORMAT,
                  "must be int64"));
    free(x.data);
    free(two.data);
    free(mismatch.data);
    free(indivisible.data);
    free(zero_past.data);
    free(neg.data);
    free(fshape.data);
}

TEST(reshape_gradients)
{
    struct tview x = opcheck_tensor(3, D(2, 3, 4), 5);
    struct tview s = opcheck_ints(1, D(3), D(0, -1, 3));
    CHECK_EQ_INT(grad_check(&op_reshape, 13, NULL, 0, IN(&x, &s), 2, 1), 0);
    free(x.data);
    free(s.data);
}

/* ---- Squeeze / Unsqueeze ------------------------------------------------------ */

TEST(squeeze_forms)
{
    struct tview x = iota(4, D(1, 3, 1, 2));
    struct opcheck_run r;
    /* opset 11: axes attribute, negative counted from the back */
    struct attr a[] = {OPCHECK_INTS("axes", 0, -2)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 11, a, 1, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    /* opset 13: the same axes as a constant input */
    struct tview ax = opcheck_ints(1, D(2), D(0, -2));
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 13, NULL, 0, IN(&x, &ax), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    opcheck_free(&r);
    struct tview ax2 = opcheck_ints(1, D(1), D(2));
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 13, NULL, 0, IN(&x, &ax2), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 3, 2)));
    opcheck_free(&r);
    /* no axes: every 1 goes, in both forms */
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 13, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 13, NULL, 0, IN(&x, NULL), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 6, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    opcheck_free(&r);
    /* int64: [1] -> scalar */
    struct tview xi = opcheck_ints(1, D(1), D(42));
    CHECK_EQ_INT(opcheck_forward(&r, &op_squeeze, 13, NULL, 0, IN(&xi), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 0, NULL));
    CHECK(ints_are(&r.out[0], D(42), 1));
    opcheck_free(&r);

    struct attr not1[] = {OPCHECK_INTS("axes", 1)};
    CHECK(refused(&op_squeeze, 11, not1, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "cannot squeeze axis 1 of shape 1x3x1x2: its size is 3, not 1"));
    CHECK(refused(&op_squeeze, 13, a, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "from opset 13 the axes are an input"));
    CHECK(refused(&op_squeeze, 12, NULL, 0, IN(&x, &ax), 2, 1, STRATA_E_FORMAT,
                  "before opset 13 the axes are an attribute"));
    struct tview dyn = unknown(DTYPE_INT64, 1, D(1));
    CHECK(refused(&op_squeeze, 13, NULL, 0, IN(&x, &dyn), 2, 1, STRATA_E_UNSUPPORTED,
                  "input 'axes' is computed from the batch's values"));
    struct attr twice[] = {OPCHECK_INTS("axes", 0, -4)};
    CHECK(refused(&op_squeeze, 11, twice, 1, IN(&x), 1, 1, STRATA_E_FORMAT, "listed twice"));
    struct attr far[] = {OPCHECK_INTS("axes", 4)};
    CHECK(refused(&op_squeeze, 11, far, 1, IN(&x), 1, 1, STRATA_E_FORMAT, "out of range"));
    free(x.data);
    free(ax.data);
    free(ax2.data);
    free(xi.data);
}

TEST(unsqueeze_forms)
{
    struct tview x = iota(2, D(2, 3));
    struct opcheck_run r;
    /* opset 11 attribute; axes index the output */
    struct attr a[] = {OPCHECK_INTS("axes", 0, 3)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_unsqueeze, 11, a, 1, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 4, D(1, 2, 3, 1)));
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    /* opset 13 input, unsorted and negative: output rank 4, -1 -> 3 */
    struct tview ax = opcheck_ints(1, D(2), D(-1, 1));
    CHECK_EQ_INT(opcheck_forward(&r, &op_unsqueeze, 13, NULL, 0, IN(&x, &ax), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 4, D(2, 1, 3, 1)));
    opcheck_free(&r);
    struct tview ax3 = opcheck_ints(1, D(3), D(4, 0, 2));
    CHECK_EQ_INT(opcheck_forward(&r, &op_unsqueeze, 13, NULL, 0, IN(&x, &ax3), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 5, D(1, 2, 1, 3, 1)));
    opcheck_free(&r);
    /* int64 scalar -> [1] (Gather -> Unsqueeze in shape subgraphs) */
    struct tview s = opcheck_ints(0, SCALAR, D(5));
    struct tview ax0 = opcheck_ints(1, D(1), D(0));
    CHECK_EQ_INT(opcheck_forward(&r, &op_unsqueeze, 13, NULL, 0, IN(&s, &ax0), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(1)));
    CHECK(ints_are(&r.out[0], D(5), 1));
    opcheck_free(&r);
    struct attr a0[] = {OPCHECK_INTS("axes", 0)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_unsqueeze, 9, a0, 1, IN(&s), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(1)));
    CHECK(ints_are(&r.out[0], D(5), 1));
    opcheck_free(&r);

    CHECK(refused(&op_unsqueeze, 11, NULL, 0, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "attribute 'axes' is required"));
    CHECK(refused(&op_unsqueeze, 13, NULL, 0, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "the axes input is missing"));
    CHECK(refused(&op_unsqueeze, 13, NULL, 0, IN(&x, NULL), 2, 1, STRATA_E_FORMAT,
                  "the axes input is missing"));
    struct tview dup = opcheck_ints(1, D(2), D(1, -3));
    CHECK(refused(&op_unsqueeze, 13, NULL, 0, IN(&x, &dup), 2, 1, STRATA_E_FORMAT,
                  "listed twice"));
    struct tview dyn = unknown(DTYPE_INT64, 1, D(1));
    CHECK(refused(&op_unsqueeze, 13, NULL, 0, IN(&x, &dyn), 2, 1, STRATA_E_UNSUPPORTED,
                  "known before the batch runs"));
    free(x.data);
    free(ax.data);
    free(ax3.data);
    free(s.data);
    free(ax0.data);
    free(dup.data);
}

TEST(squeeze_unsqueeze_gradients)
{
    struct tview x = opcheck_tensor(4, D(2, 1, 3, 1), 7);
    struct attr a[] = {OPCHECK_INTS("axes", 1, 3)};
    CHECK_EQ_INT(grad_check(&op_squeeze, 11, a, 1, IN(&x), 1, 1), 0);
    struct tview ax = opcheck_ints(1, D(1), D(-1));
    CHECK_EQ_INT(grad_check(&op_squeeze, 13, NULL, 0, IN(&x, &ax), 2, 1), 0);
    CHECK_EQ_INT(grad_check(&op_unsqueeze, 13, NULL, 0, IN(&x, &ax), 2, 1), 0);
    CHECK_EQ_INT(grad_check(&op_unsqueeze, 11, a, 1, IN(&x), 1, 1), 0);
    free(x.data);
    free(ax.data);
}

/* ---- Identity and Dropout ------------------------------------------------------- */

TEST(identity)
{
    struct tview x = opcheck_tensor(3, D(2, 3, 4), 9);
    struct tview xi = opcheck_ints(1, D(3), D(-1, 0, INT64_MAX));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_identity, 16, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 3, 4)));
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_identity, 13, NULL, 0, IN(&xi), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(-1, 0, INT64_MAX), 3));
    opcheck_free(&r);
    CHECK_EQ_INT(grad_check(&op_identity, 13, NULL, 0, IN(&x), 1, 1), 0);
    /* a gradient buffer shared by din and dout already holds the sum */
    CHECK_EQ_INT(opcheck_forward(&r, &op_identity, 13, NULL, 0, IN(&x), 1, 1), 0);
    struct tview g = ften(1, D(2), F(1.5f, -2));
    const struct tview *outc[] = {&r.out[0]}, *doutp[] = {&g};
    struct tview *dinp[] = {&g};
    op_identity.backward(&r.node, (const struct tview *const *)r.in, outc, doutp, dinp, NULL);
    CHECK(floats_are(&g, F(1.5f, -2), 2));
    opcheck_free(&r);
    free(g.data);
    free(x.data);
    free(xi.data);
}

TEST(dropout_inference)
{
    struct tview x = opcheck_tensor(2, D(3, 5), 11);
    struct opcheck_run r;
    /* opset 6: is_test and ratio attributes; opset 7..11: ratio */
    struct attr a6[] = {OPCHECK_FLOAT("ratio", 0.3f), OPCHECK_INT("is_test", 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_dropout, 6, a6, 2, IN(&x), 1, 1), 0);
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    struct attr a7[] = {OPCHECK_FLOAT("ratio", 0.2f)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_dropout, 11, a7, 1, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 5)));
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    /* opset 12+: ratio and a constant false training_mode as inputs */
    struct tview ratio = ften(0, SCALAR, F(0.5f));
    struct tview off = opcheck_ints(0, SCALAR, D(0));
    CHECK_EQ_INT(opcheck_forward(&r, &op_dropout, 13, NULL, 0, IN(&x, &ratio, &off), 3, 1), 0);
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_dropout, 12, NULL, 0, IN(&x, NULL, NULL), 3, 1), 0);
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    CHECK_EQ_INT(grad_check(&op_dropout, 13, NULL, 0, IN(&x, &ratio, &off), 3, 1), 0);
    CHECK_EQ_INT(grad_check(&op_dropout, 7, a7, 1, IN(&x), 1, 1), 0);
    free(x.data);
    free(ratio.data);
    free(off.data);
}

/* Training mode: each element kept with probability 1 − ratio and scaled by
 * 1/(1 − ratio), the rest zeroed; the same seed draws the same mask, another
 * seed another; backward passes the gradient through the kept elements
 * only (finite differences, the mask held by reseeding); ratio 0 keeps all. */
TEST(dropout_training)
{
    enum { N = 20000 };
    struct tview x = opcheck_tensor(2, D(4, N / 4), 21);
    for (int64_t k = 0; k < N; k++)
        tview_f(&x)[k] = tview_f(&x)[k] * 0.5f + 1.0f; /* never 0: a zero output means dropped */
    struct tview ratio = ften(0, SCALAR, F(0.3f));
    struct opcheck_run r, again, other;
    CHECK_EQ_INT(opcheck_forward_training(&r, &op_dropout, 13, NULL, 0, IN(&x, &ratio), 2, 1, 5), 0);
    int dropped = 0, wrong = 0;
    for (int64_t k = 0; k < N; k++) {
        float y = tview_f(&r.out[0])[k];
        if (y == 0.0f)
            dropped++;
        else if (y != tview_f(&x)[k] * (1.0f / 0.7f))
            wrong++;
    }
    /* binomial(20000, 0.3): mean 6000, sd 65; 5 sd either side */
    CHECK_MSG(dropped > 6000 - 325 && dropped < 6000 + 325, "%d of %d dropped", dropped, N);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(opcheck_forward_training(&again, &op_dropout, 13, NULL, 0, IN(&x, &ratio), 2, 1, 5),
                 0);
    CHECK(same_elements(&again.out[0], &r.out[0]));
    CHECK_EQ_INT(opcheck_forward_training(&other, &op_dropout, 13, NULL, 0, IN(&x, &ratio), 2, 1, 6),
                 0);
    CHECK(!same_elements(&other.out[0], &r.out[0]));
    opcheck_free(&r);
    opcheck_free(&again);
    opcheck_free(&other);

    struct tview small = opcheck_tensor(2, D(3, 7), 22);
    CHECK_EQ_INT(opcheck_forward_training(&r, &op_dropout, 13, NULL, 0, IN(&small, &ratio), 2, 1, 9),
                 0);
    CHECK_EQ_INT(opcheck_gradients(&r, 1, GRAD_RTOL, GRAD_ATOL), 0);
    opcheck_free(&r);
    /* opset 7: the ratio attribute */
    struct attr a7[] = {OPCHECK_FLOAT("ratio", 0.5f)};
    CHECK_EQ_INT(opcheck_forward_training(&r, &op_dropout, 7, a7, 1, IN(&small), 1, 1, 9), 0);
    CHECK_EQ_INT(opcheck_gradients(&r, 1, GRAD_RTOL, GRAD_ATOL), 0);
    int zeros = 0;
    for (int k = 0; k < 21; k++)
        zeros += tview_f(&r.out[0])[k] == 0.0f;
    CHECK(zeros > 0 && zeros < 21);
    opcheck_free(&r);
    struct tview none = ften(0, SCALAR, F(0.0f));
    CHECK_EQ_INT(opcheck_forward_training(&r, &op_dropout, 13, NULL, 0, IN(&small, &none), 2, 1, 9),
                 0);
    CHECK(same_elements(&r.out[0], &small));
    opcheck_free(&r);
    free(x.data);
    free(small.data);
    free(ratio.data);
    free(none.data);
}

TEST(dropout_refusals)
{
    struct tview x = opcheck_tensor(2, D(3, 5), 11);
    struct tview ratio = ften(0, SCALAR, F(0.5f));
    struct tview on = opcheck_ints(0, SCALAR, D(1));
    CHECK(refused(&op_dropout, 13, NULL, 0, IN(&x, &ratio, &on), 3, 1, STRATA_E_UNSUPPORTED,
                  "training_mode is true; it must be false"));
    struct tview on_f = ften(0, SCALAR, F(1.0f));
    CHECK(refused(&op_dropout, 12, NULL, 0, IN(&x, NULL, &on_f), 3, 1, STRATA_E_UNSUPPORTED,
                  "training_mode is true; it must be false"));
    struct tview dyn = unknown(DTYPE_INT64, 0, SCALAR);
    CHECK(refused(&op_dropout, 13, NULL, 0, IN(&x, &ratio, &dyn), 3, 1, STRATA_E_UNSUPPORTED,
                  "'training_mode' is computed at run time"));
    /* a ratio that would drop everything, or nothing sensible */
    struct tview one = ften(0, SCALAR, F(1.0f));
    CHECK(refused(&op_dropout, 13, NULL, 0, IN(&x, &one), 2, 1, STRATA_E_FORMAT,
                  "input 'ratio' is 1; it must be in [0, 1)"));
    struct attr all[] = {OPCHECK_FLOAT("ratio", 1.0f)};
    CHECK(refused(&op_dropout, 10, all, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "attribute 'ratio' is 1; it must be in [0, 1)"));
    free(one.data);
    CHECK(refused(&op_dropout, 13, NULL, 0, IN(&x), 1, 2, STRATA_E_UNSUPPORTED,
                  "'mask' output is not supported"));
    CHECK(refused(&op_dropout, 10, NULL, 0, IN(&x), 1, 2, STRATA_E_UNSUPPORTED,
                  "'mask' output is not supported"));
    CHECK(refused(&op_dropout, 11, NULL, 0, IN(&x, &ratio), 2, 1, STRATA_E_FORMAT,
                  "before opset 12 Dropout has one input"));
    struct attr wrong[] = {OPCHECK_INT("ratio", 1)};
    CHECK(refused(&op_dropout, 9, wrong, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "attribute 'ratio' is an int, expected a float"));
    free(x.data);
    free(ratio.data);
    free(on.data);
    free(on_f.data);
}

/* ---- Transpose ------------------------------------------------------------------ */

/* y = transpose(x, perm) one element at a time: output index -> coordinates
 * -> input offset. */
static void ref_transpose(float *y, const float *x, int r, const int64_t *dims, const int *perm)
{
    int64_t st[OP_MAX_DIMS], od[OP_MAX_DIMS], n = 1;
    for (int a = r - 1; a >= 0; a--) {
        st[a] = n;
        n *= dims[a];
    }
    for (int k = 0; k < r; k++)
        od[k] = dims[perm[k]];
    for (int64_t o = 0; o < n; o++) {
        int64_t rem = o, off = 0;
        for (int k = r - 1; k >= 0; k--) {
            off += rem % od[k] * st[perm[k]];
            rem /= od[k];
        }
        y[o] = x[off];
    }
}

/* Runs Transpose on x with perm and compares with ref_transpose; checks
 * gradients too. Returns 1 when both agree. */
static int transpose_matches(const struct tview *x, const int *perm)
{
    int r = x->ndim;
    struct attr a = {.name = (char *)"perm", .type = ATTR_INTS, .n = r,
                     .ints = (int64_t[OP_MAX_DIMS]){0}};
    for (int k = 0; k < r; k++)
        a.ints[k] = perm[k];
    struct opcheck_run run;
    struct tview xc = *x;
    if (opcheck_forward(&run, &op_transpose, 13, &a, 1, IN(&xc), 1, 1) < 0) {
        printf("#   %s\n", run.err);
        free(run.node.params);
        return 0;
    }
    int64_t n = tview_count(x);
    float *want = calloc((size_t)n, sizeof *want);
    ref_transpose(want, tview_f(x), r, x->dims, perm);
    int ok = floats_are(&run.out[0], want, n);
    for (int k = 0; k < r; k++)
        ok = ok && run.out[0].dims[k] == x->dims[perm[k]];
    ok = ok && opcheck_gradients(&run, 1, GRAD_RTOL, GRAD_ATOL) == 0;
    if (!ok) {
        printf("#   perm");
        for (int k = 0; k < r; k++)
            printf(" %d", perm[k]);
        printf("\n");
    }
    free(want);
    opcheck_free(&run);
    return ok;
}

TEST(transpose_hand_worked)
{
    /* [[0 1 2] [3 4 5]] reversed -> [[0 3] [1 4] [2 5]] */
    struct tview x = iota(2, D(2, 3));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_transpose, 13, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    CHECK(floats_are(&r.out[0], F(0, 3, 1, 4, 2, 5), 6));
    opcheck_free(&r);
    /* [2,2,2] perm [2,0,1]: y[i,j,k] = x[j,k,i] */
    struct tview c = iota(3, D(2, 2, 2));
    struct attr a[] = {OPCHECK_INTS("perm", 2, 0, 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_transpose, 6, a, 1, IN(&c), 1, 1), 0);
    CHECK(floats_are(&r.out[0], F(0, 2, 4, 6, 1, 3, 5, 7), 8));
    opcheck_free(&r);
    /* int64, default perm on [3] and on [2,2] */
    struct tview xi = opcheck_ints(2, D(2, 2), D(1, 2, 3, 4));
    CHECK_EQ_INT(opcheck_forward(&r, &op_transpose, 13, NULL, 0, IN(&xi), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(1, 3, 2, 4), 4));
    opcheck_free(&r);
    struct tview v = opcheck_ints(1, D(3), D(4, 5, 6));
    CHECK_EQ_INT(opcheck_forward(&r, &op_transpose, 13, NULL, 0, IN(&v), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(4, 5, 6), 3));
    opcheck_free(&r);
    free(x.data);
    free(c.data);
    free(xi.data);
    free(v.data);
}

TEST(transpose_cnn_cases)
{
    /* channel shuffle [N, g, C/g, H, W] perm [0, 2, 1, 3, 4] */
    struct tview s = opcheck_tensor(5, D(2, 3, 4, 2, 3), 21);
    CHECK(transpose_matches(&s, (int[]){0, 2, 1, 3, 4}));
    /* NCHW <-> NHWC */
    struct tview x = opcheck_tensor(4, D(2, 3, 4, 5), 22);
    CHECK(transpose_matches(&x, (int[]){0, 2, 3, 1}));
    CHECK(transpose_matches(&x, (int[]){0, 3, 1, 2}));
    /* batch 1 and unit dims: merging across dropped axes */
    struct tview u = opcheck_tensor(5, D(1, 4, 1, 3, 2), 23);
    CHECK(transpose_matches(&u, (int[]){2, 0, 3, 4, 1}));
    CHECK(transpose_matches(&u, (int[]){0, 1, 2, 3, 4}));
    free(s.data);
    free(x.data);
    free(u.data);
}

TEST(transpose_all_permutations)
{
    struct tview x = opcheck_tensor(4, D(2, 1, 3, 4), 31);
    int perm[4], bad = 0, count = 0;
    for (perm[0] = 0; perm[0] < 4; perm[0]++)
        for (perm[1] = 0; perm[1] < 4; perm[1]++)
            for (perm[2] = 0; perm[2] < 4; perm[2]++) {
                perm[3] = 6 - perm[0] - perm[1] - perm[2];
                if (perm[0] == perm[1] || perm[0] == perm[2] || perm[1] == perm[2] ||
                    perm[3] < 0 || perm[3] > 3 || perm[3] == perm[0] || perm[3] == perm[1] ||
                    perm[3] == perm[2])
                    continue;
                count++;
                bad += !transpose_matches(&x, perm);
            }
    CHECK_EQ_INT(count, 24);
    CHECK_EQ_INT(bad, 0);
    free(x.data);
}

TEST(transpose_refusals)
{
    struct tview x = iota(3, D(2, 3, 4));
    struct attr short_perm[] = {OPCHECK_INTS("perm", 1, 0)};
    CHECK(refused(&op_transpose, 13, short_perm, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "perm has 2 values but the input has rank 3"));
    struct attr repeat[] = {OPCHECK_INTS("perm", 0, 1, 1)};
    CHECK(refused(&op_transpose, 13, repeat, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "not a permutation"));
    struct attr far[] = {OPCHECK_INTS("perm", 0, 1, 3)};
    CHECK(refused(&op_transpose, 13, far, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "not a permutation"));
    free(x.data);
}

/* ---- Concat --------------------------------------------------------------------- */

TEST(concat_hand_worked)
{
    /* axis 1 of [2,1,2] (0..3) and [2,2,2] (0..7): rows interleave */
    struct tview a = iota(3, D(2, 1, 2)), b = iota(3, D(2, 2, 2));
    struct opcheck_run r;
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 13, ax1, 1, IN(&a, &b), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 3, 2)));
    CHECK(floats_are(&r.out[0], F(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7), 12));
    opcheck_free(&r);
    /* the same with axis -2 (opset 11+) */
    struct attr axm2[] = {OPCHECK_INT("axis", -2)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 11, axm2, 1, IN(&a, &b), 2, 1), 0);
    CHECK(floats_are(&r.out[0], F(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 7), 12));
    opcheck_free(&r);
    /* axis 0 is plain concatenation, three inputs, one of them empty */
    struct tview c = iota(2, D(1, 2)), e = unknown(DTYPE_FLOAT, 2, D(0, 2));
    e.data = malloc(4);
    struct tview m = ften(2, D(2, 2), F(10, 11, 12, 13));
    struct attr ax0[] = {OPCHECK_INT("axis", 0)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 6, ax0, 1, IN(&c, &e, &m), 3, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(3, 2)));
    CHECK(floats_are(&r.out[0], F(0, 1, 10, 11, 12, 13), 6));
    opcheck_free(&r);
    /* last axis */
    struct attr axl[] = {OPCHECK_INT("axis", -1)};
    struct tview c2 = iota(2, D(2, 1));
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 13, axl, 1, IN(&m, &c2), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 3)));
    CHECK(floats_are(&r.out[0], F(10, 11, 0, 12, 13, 1), 6));
    opcheck_free(&r);
    free(a.data);
    free(b.data);
    free(c.data);
    free(e.data);
    free(m.data);
    free(c2.data);
}

TEST(concat_int64_shape_vector)
{
    /* [batch] ++ [-1] ++ [7, 7]: the target shape of a Reshape */
    struct tview n = opcheck_ints(1, D(1), D(8)), m1 = opcheck_ints(1, D(1), D(-1));
    struct tview hw = opcheck_ints(1, D(2), D(7, 7));
    struct attr ax[] = {OPCHECK_INT("axis", 0)};
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 13, ax, 1, IN(&n, &m1, &hw), 3, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(4)));
    CHECK(ints_are(&r.out[0], D(8, -1, 7, 7), 4));
    opcheck_free(&r);
    /* a single input */
    CHECK_EQ_INT(opcheck_forward(&r, &op_concat, 13, ax, 1, IN(&hw), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(7, 7), 2));
    opcheck_free(&r);
    free(n.data);
    free(m1.data);
    free(hw.data);
}

TEST(concat_refusals)
{
    struct tview a = iota(2, D(2, 3)), b = iota(2, D(3, 3)), v = iota(1, D(3));
    struct tview i = opcheck_ints(2, D(2, 3), D(0, 0, 0, 0, 0, 0));
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    CHECK(refused(&op_concat, 13, ax1, 1, IN(&a, &b), 2, 1, STRATA_E_FORMAT,
                  "input 1 has shape 3x3 and input 0 has shape 2x3"));
    CHECK(refused(&op_concat, 13, ax1, 1, IN(&a, &v), 2, 1, STRATA_E_FORMAT,
                  "input 1 has shape 3 and input 0 has shape 2x3"));
    CHECK(refused(&op_concat, 13, ax1, 1, IN(&a, &i), 2, 1, STRATA_E_FORMAT, "int64"));
    CHECK(refused(&op_concat, 13, NULL, 0, IN(&a, &a), 2, 1, STRATA_E_FORMAT,
                  "attribute 'axis' is required"));
    struct attr ax2[] = {OPCHECK_INT("axis", 2)};
    CHECK(refused(&op_concat, 13, ax2, 1, IN(&a, &a), 2, 1, STRATA_E_FORMAT, "out of range"));
    free(a.data);
    free(b.data);
    free(v.data);
    free(i.data);
}

TEST(concat_gradients)
{
    struct tview a = opcheck_tensor(3, D(2, 1, 3), 41), b = opcheck_tensor(3, D(2, 2, 3), 42);
    struct tview c = opcheck_tensor(3, D(2, 3, 3), 43);
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    CHECK_EQ_INT(grad_check(&op_concat, 13, ax1, 1, IN(&a, &b, &c), 3, 7), 0);
    /* gradients only where asked: input 1 alone */
    CHECK_EQ_INT(grad_check(&op_concat, 13, ax1, 1, IN(&a, &b, &c), 3, 2), 0);
    struct tview d = opcheck_tensor(3, D(2, 2, 2), 44), e = opcheck_tensor(3, D(2, 2, 1), 45);
    struct attr axl[] = {OPCHECK_INT("axis", -1)};
    CHECK_EQ_INT(grad_check(&op_concat, 13, axl, 1, IN(&d, &e), 2, 3), 0);
    struct tview f = opcheck_tensor(3, D(1, 2, 2), 46);
    struct attr ax0[] = {OPCHECK_INT("axis", 0)};
    CHECK_EQ_INT(grad_check(&op_concat, 13, ax0, 1, IN(&d, &f), 2, 3), 0);
    free(a.data);
    free(b.data);
    free(c.data);
    free(d.data);
    free(e.data);
    free(f.data);
}

/* ---- Shape ---------------------------------------------------------------------- */

TEST(shape_forms)
{
    /* the input is an activation: only its shape is read */
    struct tview x = unknown(DTYPE_FLOAT, 4, D(8, 3, 224, 200));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_shape, 13, NULL, 0, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(4)));
    CHECK(ints_are(&r.out[0], D(8, 3, 224, 200), 4));
    opcheck_free(&r);
    static const struct {
        int has_start, has_end;
        int64_t start, end;
        int n;
        int64_t want[4];
    } cases[] = {
        {1, 0, 1, 0, 3, {3, 224, 200}},
        {0, 1, 0, -1, 3, {8, 3, 224}},
        {1, 1, 1, 2, 1, {3}},
        {1, 1, 1, -1, 2, {3, 224}},
        {1, 0, -1, 0, 1, {200}},
        {1, 0, -10, 0, 4, {8, 3, 224, 200}}, /* clamped to 0 */
        {0, 1, 0, 10, 4, {8, 3, 224, 200}},  /* clamped to rank */
        {1, 1, 3, 1, 0, {0}},                /* empty */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct attr a[2];
        int na = 0;
        if (cases[c].has_start)
            a[na++] = (struct attr)OPCHECK_INT("start", cases[c].start);
        if (cases[c].has_end)
            a[na++] = (struct attr)OPCHECK_INT("end", cases[c].end);
        CHECK_EQ_INT(opcheck_forward(&r, &op_shape, 15, a, na, IN(&x), 1, 1), 0);
        CHECK(dims_are(&r.out[0], 1, D(cases[c].n)));
        CHECK(ints_are(&r.out[0], cases[c].want, cases[c].n));
        opcheck_free(&r);
    }
    /* a scalar has shape [] */
    struct tview s = opcheck_ints(0, SCALAR, D(3));
    CHECK_EQ_INT(opcheck_forward(&r, &op_shape, 13, NULL, 0, IN(&s), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(0)));
    opcheck_free(&r);
    CHECK(op_shape.flags & OP_SHAPE_ONLY);
    CHECK(op_shape.backward == NULL);
    free(s.data);
}

/* ---- Gather --------------------------------------------------------------------- */

TEST(gather_hand_worked)
{
    struct opcheck_run r;
    /* axis 0 of [3,2] (0..5), indices [2, -3] -> rows 2 and 0 */
    struct tview x = iota(2, D(3, 2));
    struct tview idx = opcheck_ints(1, D(2), D(2, -3));
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, NULL, 0, IN(&x, &idx), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 2)));
    CHECK(floats_are(&r.out[0], F(4, 5, 0, 1), 4));
    opcheck_free(&r);
    /* axis 1 of [2,3] (0..5) with 2-D indices [[2,0],[1,1]]: output [2,2,2],
     * y[i,j,k] = x[i, idx[j,k]] */
    struct tview x2 = iota(2, D(2, 3));
    struct tview idx2 = opcheck_ints(2, D(2, 2), D(2, 0, 1, 1));
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 11, ax1, 1, IN(&x2, &idx2), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 2, 2)));
    CHECK(floats_are(&r.out[0], F(2, 0, 1, 1, 5, 3, 4, 4), 8));
    opcheck_free(&r);
    /* axis -1 with a scalar index: drops the axis */
    struct tview one = opcheck_ints(0, SCALAR, D(-1));
    struct attr axm1[] = {OPCHECK_INT("axis", -1)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, axm1, 1, IN(&x2, &one), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(2)));
    CHECK(floats_are(&r.out[0], F(2, 5), 2));
    opcheck_free(&r);
    free(x.data);
    free(idx.data);
    free(x2.data);
    free(idx2.data);
    free(one.data);
}

TEST(gather_int64_shape_arithmetic)
{
    /* Shape -> Gather(0): the batch size as a scalar */
    struct tview shape = opcheck_ints(1, D(4), D(8, 3, 224, 224));
    struct tview zero = opcheck_ints(0, SCALAR, D(0));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, NULL, 0, IN(&shape, &zero), 2, 1), 0);
    CHECK(dims_are(&r.out[0], 0, NULL));
    CHECK(ints_are(&r.out[0], D(8), 1));
    opcheck_free(&r);
    struct tview hw = opcheck_ints(1, D(2), D(-2, -1));
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, NULL, 0, IN(&shape, &hw), 2, 1), 0);
    CHECK(ints_are(&r.out[0], D(224, 224), 2));
    opcheck_free(&r);
    free(shape.data);
    free(zero.data);
    free(hw.data);
}

TEST(gather_out_of_range)
{
    struct tview x = iota(2, D(3, 2));
    struct tview far = opcheck_ints(1, D(2), D(0, 3));
    CHECK(refused(&op_gather, 13, NULL, 0, IN(&x, &far), 2, 1, STRATA_E_FORMAT,
                  "index 3 is out of range for axis 0 of shape 3x2 (valid: -3 to 2)"));
    struct tview below = opcheck_ints(1, D(1), D(-4));
    CHECK(refused(&op_gather, 13, NULL, 0, IN(&x, &below), 2, 1, STRATA_E_FORMAT,
                  "index -4 is out of range"));
    struct tview fidx = ften(1, D(1), F(0));
    CHECK(refused(&op_gather, 13, NULL, 0, IN(&x, &fidx), 2, 1, STRATA_E_FORMAT,
                  "indices must be integers"));
    struct attr ax2[] = {OPCHECK_INT("axis", 2)};
    struct tview ok = opcheck_ints(1, D(1), D(0));
    CHECK(refused(&op_gather, 13, ax2, 1, IN(&x, &ok), 2, 1, STRATA_E_FORMAT, "out of range"));

    /* indices that go out of range after planning (computed per batch; here
     * one past each end):
     * forward writes zeros for them and reads nothing outside x (ASan
     * watches), backward skips them */
    struct tview idx = opcheck_ints(1, D(3), D(1, 0, 2));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, NULL, 0, IN(&x, &idx), 2, 1), 0);
    CHECK(floats_are(&r.out[0], F(2, 3, 0, 1, 4, 5), 6));
    tview_i(&idx)[0] = 3;
    tview_i(&idx)[2] = -4;
    struct op_ctx ctx = {.scratch = r.scratch, .scratch_len = r.scratch_len};
    struct tview *outp[] = {&r.out[0]};
    op_gather.forward(&r.node, (const struct tview *const *)r.in, outp, &ctx);
    CHECK(floats_are(&r.out[0], F(0, 0, 0, 1, 0, 0), 6));
    struct tview dy = ften(2, D(3, 2), F(1, 2, 3, 4, 5, 6));
    struct tview dx = ften(2, D(3, 2), F(0, 0, 0, 0, 0, 0));
    const struct tview *outc[] = {&r.out[0]}, *doutp[] = {&dy};
    struct tview *dinp[] = {&dx, NULL};
    op_gather.backward(&r.node, (const struct tview *const *)r.in, outc, doutp, dinp, &ctx);
    CHECK(floats_are(&dx, F(3, 4, 0, 0, 0, 0), 6));
    opcheck_free(&r);
    free(x.data);
    free(far.data);
    free(below.data);
    free(fidx.data);
    free(ok.data);
    free(idx.data);
    free(dy.data);
    free(dx.data);
}

TEST(gather_gradients)
{
    struct tview x = opcheck_tensor(3, D(4, 3, 2), 51);
    /* a repeated index accumulates: rows 1 get two contributions */
    struct tview idx = opcheck_ints(1, D(4), D(1, -3, 3, 0));
    CHECK_EQ_INT(grad_check(&op_gather, 13, NULL, 0, IN(&x, &idx), 2, 1), 0);
    struct tview idx2 = opcheck_ints(2, D(2, 2), D(2, 0, 0, -1));
    struct attr ax1[] = {OPCHECK_INT("axis", 1)};
    CHECK_EQ_INT(grad_check(&op_gather, 13, ax1, 1, IN(&x, &idx2), 2, 1), 0);
    struct tview s = opcheck_ints(0, SCALAR, D(1));
    struct attr ax2[] = {OPCHECK_INT("axis", 2)};
    CHECK_EQ_INT(grad_check(&op_gather, 13, ax2, 1, IN(&x, &s), 2, 1), 0);
    /* backward accumulates into din (+=), checked directly: the same row twice */
    struct tview idx3 = opcheck_ints(1, D(2), D(1, 1));
    struct tview v = iota(2, D(2, 2));
    struct opcheck_run r;
    CHECK_EQ_INT(opcheck_forward(&r, &op_gather, 13, NULL, 0, IN(&v, &idx3), 2, 1), 0);
    struct tview dy = ften(2, D(2, 2), F(1, 2, 10, 20));
    struct tview dx = ften(2, D(2, 2), F(100, 100, 100, 100));
    const struct tview *outc[] = {&r.out[0]}, *doutp[] = {&dy};
    struct tview *dinp[] = {&dx, NULL};
    struct op_ctx ctx = {.scratch = r.scratch, .scratch_len = r.scratch_len};
    op_gather.backward(&r.node, (const struct tview *const *)r.in, outc, doutp, dinp, &ctx);
    CHECK(floats_are(&dx, F(100, 100, 111, 122), 4));
    opcheck_free(&r);
    free(x.data);
    free(idx.data);
    free(idx2.data);
    free(s.data);
    free(idx3.data);
    free(v.data);
    free(dy.data);
    free(dx.data);
}

/* ---- Slice ---------------------------------------------------------------------- */

/* Slice with inputs (opset >= 10); axes and steps may be NULL (absent). */
static int slice_in(struct opcheck_run *r, int opset, struct tview *x, int n,
                    const int64_t *starts, const int64_t *ends, const int64_t *axes,
                    const int64_t *steps, struct tview *keep)
{
    keep[0] = opcheck_ints(1, D(n), starts);
    keep[1] = opcheck_ints(1, D(n), ends);
    keep[2] = axes ? opcheck_ints(1, D(n), axes) : (struct tview){0};
    keep[3] = steps ? opcheck_ints(1, D(n), steps) : (struct tview){0};
    int nin = steps ? 5 : axes ? 4 : 3;
    return opcheck_forward(r, &op_slice, opset, NULL, 0,
                           IN(x, &keep[0], &keep[1], axes ? &keep[2] : NULL, &keep[3]), nin, 1);
}

static void free4(struct tview *k)
{
    for (int i = 0; i < 4; i++)
        free(k[i].data);
}

TEST(slice_inputs_form)
{
    struct tview x = iota(3, D(2, 3, 4)), k[4];
    struct opcheck_run r;
    /* x[:, ::-2, 3:0:-2] (numpy): [11 9 3 1 23 21 15 13] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 2, D(-1, 3), D(INT64_MIN, 0), D(1, 2), D(-2, -2), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 2, 2)));
    CHECK(floats_are(&r.out[0], F(11, 9, 3, 1, 23, 21, 15, 13), 8));
    opcheck_free(&r);
    free4(k);
    /* x[-1:, 1:1000, -3:-1]: [17 18 21 22]; axes negative, INT-like big end */
    CHECK_EQ_INT(slice_in(&r, 11, &x, 3, D(-1, 1, -3), D(INT64_MAX, 1000, -1), D(0, -2, -1),
                          NULL, k),
                 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 2, 2)));
    CHECK(floats_are(&r.out[0], F(17, 18, 21, 22), 4));
    opcheck_free(&r);
    free4(k);
    /* default axes (0, 1, …): x[1:2, 0:2] -> 12..19 */
    CHECK_EQ_INT(slice_in(&r, 10, &x, 2, D(1, 0), D(2, 2), NULL, NULL, k), 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 2, 4)));
    CHECK(floats_are(&r.out[0], F(12, 13, 14, 15, 16, 17, 18, 19), 8));
    opcheck_free(&r);
    free4(k);
    /* reversal of the last axis with INT64_MIN end: x[:, :, ::-1] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(-1), D(INT64_MIN), D(2), D(-1), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 3, 4)));
    CHECK(floats_are(&r.out[0],
                     F(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16, 23,
                       22, 21, 20),
                     24));
    opcheck_free(&r);
    free4(k);
    /* start past the end: an empty axis, x[:, 5:, :] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(5), D(INT64_MAX), D(1), NULL, k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 0, 4)));
    opcheck_free(&r);
    free4(k);
    /* a step larger than the axis: one element, x[:, 1::100] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(1), D(INT64_MAX), D(1), D(100), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 1, 4)));
    CHECK(floats_are(&r.out[0], F(4, 5, 6, 7, 16, 17, 18, 19), 8));
    opcheck_free(&r);
    free4(k);
    /* a start past the end with a negative step begins at the last element:
     * x[:, :, 10:1:-1] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(10), D(1), D(2), D(-1), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 3, 2)));
    CHECK(floats_are(&r.out[0], F(3, 2, 7, 6, 11, 10, 15, 14, 19, 18, 23, 22), 12));
    opcheck_free(&r);
    free4(k);
    /* INT64_MIN step on the first axis: x[-1::INT64_MIN] = x[1] */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(-1), D(INT64_MIN), D(0), D(INT64_MIN), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 3, 4)));
    CHECK(floats_are(&r.out[0], F(12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23), 12));
    opcheck_free(&r);
    free4(k);
    /* INT64_MIN step from the back: x[:, :, -1::INT64_MIN] = last column */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(-1), D(INT64_MIN), D(2), D(INT64_MIN), k), 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 3, 1)));
    CHECK(floats_are(&r.out[0], F(3, 7, 11, 15, 19, 23), 6));
    opcheck_free(&r);
    free4(k);
    free(x.data);
}

TEST(slice_attribute_form)
{
    /* opset < 10: starts/ends/axes attributes, no steps; the same slices */
    struct tview x = iota(3, D(2, 3, 4));
    struct opcheck_run r;
    struct attr a[] = {OPCHECK_INTS("starts", -1, 1, -3), OPCHECK_INTS("ends", 1000, 1000, -1),
                       OPCHECK_INTS("axes", 0, 1, 2)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_slice, 9, a, 3, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 2, 2)));
    CHECK(floats_are(&r.out[0], F(17, 18, 21, 22), 4));
    opcheck_free(&r);
    struct attr noaxes[] = {OPCHECK_INTS("starts", 1, 0), OPCHECK_INTS("ends", 2, 2)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_slice, 6, noaxes, 2, IN(&x), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 3, D(1, 2, 4)));
    CHECK(floats_are(&r.out[0], F(12, 13, 14, 15, 16, 17, 18, 19), 8));
    opcheck_free(&r);
    CHECK(refused(&op_slice, 13, a, 3, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "from opset 10 starts, ends and axes are inputs"));
    struct attr ends_only[] = {OPCHECK_INTS("ends", 1)};
    CHECK(refused(&op_slice, 9, ends_only, 1, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "'starts' and 'ends' are required"));
    struct attr uneven[] = {OPCHECK_INTS("starts", 0, 0), OPCHECK_INTS("ends", 1)};
    CHECK(refused(&op_slice, 9, uneven, 2, IN(&x), 1, 1, STRATA_E_FORMAT, "as many values"));
    free(x.data);
}

TEST(slice_int64_shape_vector)
{
    /* Shape -> Slice [2:] -> the spatial dims; and [:-2] with a step */
    struct tview shape = opcheck_ints(1, D(4), D(8, 3, 224, 200)), k[4];
    struct opcheck_run r;
    CHECK_EQ_INT(slice_in(&r, 13, &shape, 1, D(2), D(INT64_MAX), D(0), NULL, k), 0);
    CHECK(ints_are(&r.out[0], D(224, 200), 2));
    opcheck_free(&r);
    free4(k);
    CHECK_EQ_INT(slice_in(&r, 13, &shape, 1, D(-1), D(-5), NULL, D(-2), k), 0);
    CHECK(ints_are(&r.out[0], D(200, 3), 2));
    opcheck_free(&r);
    free4(k);
    free(shape.data);
}

TEST(slice_refusals)
{
    struct tview x = iota(2, D(3, 4)), k[4];
    struct opcheck_run r;
    CHECK_EQ_INT(slice_in(&r, 13, &x, 1, D(0), D(2), D(1), D(0), k), STRATA_E_FORMAT);
    CHECK(strstr(r.err, "the step for axis 1 is 0") != NULL);
    free(r.node.params);
    free4(k);
    CHECK_EQ_INT(slice_in(&r, 13, &x, 2, D(0, 0), D(2, 2), D(1, -1), NULL, k), STRATA_E_FORMAT);
    CHECK(strstr(r.err, "sliced twice") != NULL);
    free(r.node.params);
    free4(k);
    struct tview dyn = unknown(DTYPE_INT64, 1, D(1)), e = opcheck_ints(1, D(1), D(2));
    CHECK(refused(&op_slice, 13, NULL, 0, IN(&x, &dyn, &e), 3, 1, STRATA_E_UNSUPPORTED,
                  "input 'starts' is computed from the batch's values"));
    CHECK(refused(&op_slice, 13, NULL, 0, IN(&x, &e, &dyn), 3, 1, STRATA_E_UNSUPPORTED,
                  "input 'ends' is computed"));
    CHECK(refused(&op_slice, 13, NULL, 0, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "takes starts and ends as inputs"));
    struct tview two = opcheck_ints(1, D(2), D(0, 0));
    CHECK(refused(&op_slice, 13, NULL, 0, IN(&x, &two, &e), 3, 1, STRATA_E_FORMAT,
                  "as many values"));
    free(x.data);
    free(e.data);
    free(two.data);
}

TEST(slice_gradients)
{
    struct tview x = opcheck_tensor(3, D(3, 4, 5), 61), k[4];
    struct opcheck_run r;
    /* positive steps, a whole axis and a partial one (merged rows) */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 2, D(1, 1), D(3, 4), D(0, 1), NULL, k), 0);
    CHECK_EQ_INT(opcheck_gradients(&r, 1, GRAD_RTOL, GRAD_ATOL), 0);
    opcheck_free(&r);
    free4(k);
    /* negative and strided steps */
    CHECK_EQ_INT(slice_in(&r, 13, &x, 3, D(-1, 0, 4), D(INT64_MIN, 4, 0), D(0, 1, 2),
                          D(-2, 3, -1), k),
                 0);
    CHECK(dims_are(&r.out[0], 3, D(2, 2, 4)));
    CHECK_EQ_INT(opcheck_gradients(&r, 1, GRAD_RTOL, GRAD_ATOL), 0);
    opcheck_free(&r);
    free4(k);
    /* attribute form */
    struct attr a[] = {OPCHECK_INTS("starts", 1), OPCHECK_INTS("ends", -1),
                       OPCHECK_INTS("axes", 2)};
    CHECK_EQ_INT(grad_check(&op_slice, 9, a, 3, IN(&x), 1, 1), 0);
    free(x.data);
}

/* ---- Cast ----------------------------------------------------------------------- */

TEST(cast_float_int64)
{
    struct opcheck_run r;
    /* truncation toward zero; saturation, 2^63 (just past INT64_MAX) included */
    struct tview x = ften(1, D(9), F(-1.7f, -0.5f, 0.5f, 2.9f, 7.0f, 1e20f, -1e20f, NAN,
                                     9223372036854775808.0f));
    struct attr to7[] = {OPCHECK_INT("to", 7)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to7, 1, IN(&x), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(-1, 0, 0, 2, 7, INT64_MAX, INT64_MIN, 0, INT64_MAX), 9));
    opcheck_free(&r);
    /* to INT32: held as int64, saturated to int32's range */
    struct tview big = ften(1, D(3), F(3e9f, -3e9f, -2.5f));
    struct attr to6[] = {OPCHECK_INT("to", 6)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to6, 1, IN(&big), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(INT32_MAX, INT32_MIN, -2), 3));
    opcheck_free(&r);
    struct tview xi = opcheck_ints(2, D(2, 2), D(3, -4, INT64_MAX, -5000000000));
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 6, to6, 1, IN(&xi), 1, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 2)));
    CHECK(ints_are(&r.out[0], D(3, -4, INT32_MAX, INT32_MIN), 4));
    opcheck_free(&r);
    /* int64 -> float, and -> DOUBLE (held as float) */
    struct attr to1[] = {OPCHECK_INT("to", 1)}, to11[] = {OPCHECK_INT("to", 11)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to1, 1, IN(&xi), 1, 1), 0);
    CHECK(floats_are(&r.out[0], F(3, -4, 9223372036854775807.0f, -5e9f), 4));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to11, 1, IN(&xi), 1, 1), 0);
    CHECK(floats_are(&r.out[0], F(3, -4, 9223372036854775807.0f, -5e9f), 4));
    opcheck_free(&r);
    /* int64 -> int64 unchanged */
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to7, 1, IN(&xi), 1, 1), 0);
    CHECK(ints_are(&r.out[0], D(3, -4, INT64_MAX, -5000000000), 4));
    opcheck_free(&r);
    free(x.data);
    free(big.data);
    free(xi.data);
}

TEST(cast_float_rounding)
{
    struct opcheck_run r;
    /* values and their numpy astype(float16) images (round to nearest even);
     * ties: 1 + 3·2^-11 goes up, 1 + 2^-11 down, to the even neighbour */
    struct tview x = ften(1, D(12), F(0.1f, 1.0f / 3, 65504, 65519, 1e-6f, -2.5e-5f,
                                      1.0009765625f + 0.000244140625f, 1.00146484375f,
                                      1.00390625f, -7.3f, 1.00048828125f, 1.01171875f));
    struct attr to10[] = {OPCHECK_INT("to", 10)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to10, 1, IN(&x), 1, 1), 0);
    CHECK(floats_are(&r.out[0],
                     F(0.0999755859375f, 0.333251953125f, 65504, 65504, 1.0132789611816406e-06f,
                       -2.4974346160888672e-05f, 1.0009765625f, 1.001953125f, 1.00390625f,
                       -7.30078125f, 1, 1.01171875f),
                     12));
    opcheck_free(&r);
    /* beyond float16's range: inf, as a float16 would hold it */
    struct tview h = ften(1, D(2), F(65520, -1e6f));
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to10, 1, IN(&h), 1, 1), 0);
    CHECK(isinf(tview_f(&r.out[0])[0]) && tview_f(&r.out[0])[0] > 0);
    CHECK(isinf(tview_f(&r.out[0])[1]) && tview_f(&r.out[0])[1] < 0);
    opcheck_free(&r);
    /* float -> float and -> DOUBLE: unchanged */
    struct attr to1[] = {OPCHECK_INT("to", 1)}, to11[] = {OPCHECK_INT("to", 11)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to11, 1, IN(&x), 1, 1), 0);
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    CHECK_EQ_INT(opcheck_forward(&r, &op_cast, 13, to1, 1, IN(&x), 1, 1), 0);
    CHECK(same_elements(&r.out[0], &x));
    opcheck_free(&r);
    free(x.data);
    free(h.data);
}

TEST(cast_refusals_and_gradients)
{
    struct tview x = opcheck_tensor(2, D(3, 4), 71);
    struct attr str[] = {OPCHECK_INT("to", 8)};
    CHECK(refused(&op_cast, 13, str, 1, IN(&x), 1, 1, STRATA_E_UNSUPPORTED,
                  "Cast to STRING (to = 8) is not supported"));
    struct attr bl[] = {OPCHECK_INT("to", 9)};
    CHECK(refused(&op_cast, 13, bl, 1, IN(&x), 1, 1, STRATA_E_UNSUPPORTED, "Cast to BOOL"));
    struct attr bf[] = {OPCHECK_INT("to", 16)};
    CHECK(refused(&op_cast, 13, bf, 1, IN(&x), 1, 1, STRATA_E_UNSUPPORTED, "Cast to BFLOAT16"));
    struct attr u8[] = {OPCHECK_INT("to", 2)};
    CHECK(refused(&op_cast, 13, u8, 1, IN(&x), 1, 1, STRATA_E_UNSUPPORTED, "Cast to UINT8"));
    struct attr odd[] = {OPCHECK_INT("to", 99)};
    CHECK(refused(&op_cast, 13, odd, 1, IN(&x), 1, 1, STRATA_E_UNSUPPORTED, "unknown type"));
    CHECK(refused(&op_cast, 13, NULL, 0, IN(&x), 1, 1, STRATA_E_FORMAT,
                  "attribute 'to' is required"));
    struct attr as_str[] = {OPCHECK_STRING("to", "FLOAT")};
    CHECK(refused(&op_cast, 13, as_str, 1, IN(&x), 1, 1, STRATA_E_FORMAT, "expected an int"));
    /* float -> float passes the gradient through */
    struct attr to1[] = {OPCHECK_INT("to", 1)}, to11[] = {OPCHECK_INT("to", 11)};
    CHECK_EQ_INT(grad_check(&op_cast, 13, to1, 1, IN(&x), 1, 1), 0);
    CHECK_EQ_INT(grad_check(&op_cast, 13, to11, 1, IN(&x), 1, 1), 0);
    free(x.data);
}

/* ---- Constant ------------------------------------------------------------------- */

TEST(constant_forms)
{
    struct opcheck_run r;
    struct tview tf = ften(2, D(2, 2), F(1.5f, -2, 3, 4.25f));
    struct attr v[] = {{.name = (char *)"value", .type = ATTR_TENSOR, .t = tf}};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 13, v, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 2, D(2, 2)));
    CHECK(floats_are(&r.out[0], F(1.5f, -2, 3, 4.25f), 4));
    opcheck_free(&r);
    struct tview ti = opcheck_ints(1, D(3), D(1, -1, 49));
    struct attr vi[] = {{.name = (char *)"value", .type = ATTR_TENSOR, .t = ti}};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 9, vi, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(3)));
    CHECK(ints_are(&r.out[0], D(1, -1, 49), 3));
    opcheck_free(&r);
    struct tview ts = opcheck_ints(0, SCALAR, D(-7));
    struct attr vs[] = {{.name = (char *)"value", .type = ATTR_TENSOR, .t = ts}};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 13, vs, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 0, NULL));
    CHECK(ints_are(&r.out[0], D(-7), 1));
    opcheck_free(&r);
    /* opset 12 scalar and list forms */
    struct attr f1[] = {OPCHECK_FLOAT("value_float", 0.25f)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 12, f1, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 0, NULL));
    CHECK(floats_are(&r.out[0], F(0.25f), 1));
    opcheck_free(&r);
    struct attr fs[] = {OPCHECK_FLOATS("value_floats", 1, 2, 3)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 13, fs, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(3)));
    CHECK(floats_are(&r.out[0], F(1, 2, 3), 3));
    opcheck_free(&r);
    struct attr i1[] = {OPCHECK_INT("value_int", -3)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 13, i1, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 0, NULL));
    CHECK(ints_are(&r.out[0], D(-3), 1));
    opcheck_free(&r);
    struct attr is[] = {OPCHECK_INTS("value_ints", 0, -1, 4, 4)};
    CHECK_EQ_INT(opcheck_forward(&r, &op_constant, 13, is, 1, NULL, 0, 1), 0);
    CHECK(dims_are(&r.out[0], 1, D(4)));
    CHECK(ints_are(&r.out[0], D(0, -1, 4, 4), 4));
    opcheck_free(&r);
    CHECK(op_constant.backward == NULL);
    free(tf.data);
    free(ti.data);
    free(ts.data);
}

TEST(constant_refusals)
{
    struct attr sparse[] = {{.name = (char *)"sparse_value", .type = ATTR_TENSOR}};
    CHECK(refused(&op_constant, 13, sparse, 1, NULL, 0, 1, STRATA_E_UNSUPPORTED,
                  "attribute 'sparse_value' is not supported"));
    struct attr str[] = {OPCHECK_STRING("value_string", "hello")};
    CHECK(refused(&op_constant, 13, str, 1, NULL, 0, 1, STRATA_E_UNSUPPORTED,
                  "attribute 'value_string' is not supported"));
    CHECK(refused(&op_constant, 13, NULL, 0, NULL, 0, 1, STRATA_E_FORMAT,
                  "needs exactly one of"));
    struct attr two[] = {OPCHECK_INT("value_int", 1), OPCHECK_FLOAT("value_float", 1)};
    CHECK(refused(&op_constant, 13, two, 2, NULL, 0, 1, STRATA_E_FORMAT, "this one has 2"));
    struct attr wrong[] = {OPCHECK_FLOAT("value_int", 1)};
    CHECK(refused(&op_constant, 13, wrong, 1, NULL, 0, 1, STRATA_E_FORMAT, "wrong type"));
}

/* ---- accumulation of every backward ------------------------------------------- */

TEST(backward_accumulates)
{
    struct tview x = opcheck_tensor(4, D(2, 1, 3, 2), 81), y = opcheck_tensor(4, D(2, 2, 3, 2), 82);
    struct tview shape = opcheck_ints(1, D(2), D(-1, 6));
    struct tview ax = opcheck_ints(1, D(1), D(1));
    struct tview idx = opcheck_ints(1, D(3), D(1, 0, -1));
    struct tview st = opcheck_ints(1, D(1), D(-1)), en = opcheck_ints(1, D(1), D(INT64_MIN));
    struct tview sa = opcheck_ints(1, D(1), D(2)), sp = opcheck_ints(1, D(1), D(-2));
    struct attr ax1[] = {OPCHECK_INT("axis", 1)}, to1[] = {OPCHECK_INT("to", 1)};
    struct attr perm[] = {OPCHECK_INTS("perm", 0, 2, 3, 1)};
    CHECK(accumulates(&op_flatten, 13, NULL, 0, IN(&x), 1));
    CHECK(accumulates(&op_reshape, 13, NULL, 0, IN(&x, &shape), 2));
    CHECK(accumulates(&op_squeeze, 13, NULL, 0, IN(&x, &ax), 2));
    CHECK(accumulates(&op_unsqueeze, 13, NULL, 0, IN(&x, &ax), 2));
    CHECK(accumulates(&op_identity, 13, NULL, 0, IN(&x), 1));
    CHECK(accumulates(&op_dropout, 13, NULL, 0, IN(&x), 1));
    CHECK(accumulates(&op_transpose, 13, perm, 1, IN(&x), 1));
    CHECK(accumulates(&op_concat, 13, ax1, 1, IN(&x, &y, &x), 3));
    CHECK(accumulates(&op_gather, 13, NULL, 0, IN(&y, &idx), 2));
    CHECK(accumulates(&op_gather, 13, ax1, 1, IN(&y, &idx), 2));
    CHECK(accumulates(&op_slice, 13, NULL, 0, IN(&y, &st, &en, &sa, &sp), 5));
    CHECK(accumulates(&op_cast, 13, to1, 1, IN(&x), 1));
    free(x.data);
    free(y.data);
    free(shape.data);
    free(ax.data);
    free(idx.data);
    free(st.data);
    free(en.data);
    free(sa.data);
    free(sp.data);
}

/* ---- a whole shape subgraph ------------------------------------------------------ */

/* What exporters write for x.view(x.size(0), -1): Shape -> Gather(0) ->
 * Unsqueeze(0) -> Concat([n], [-1]) -> Reshape, run op by op. */
TEST(shape_subgraph_chain)
{
    struct tview x = iota(4, D(3, 2, 2, 2));
    struct opcheck_run sh, ga, un, co, re;
    CHECK_EQ_INT(opcheck_forward(&sh, &op_shape, 13, NULL, 0, IN(&x), 1, 1), 0);
    struct tview zero = opcheck_ints(0, SCALAR, D(0));
    CHECK_EQ_INT(opcheck_forward(&ga, &op_gather, 13, NULL, 0, IN(&sh.out[0], &zero), 2, 1), 0);
    struct tview ax = opcheck_ints(1, D(1), D(0));
    CHECK_EQ_INT(opcheck_forward(&un, &op_unsqueeze, 13, NULL, 0, IN(&ga.out[0], &ax), 2, 1), 0);
    struct tview m1 = opcheck_ints(1, D(1), D(-1));
    struct attr axis0[] = {OPCHECK_INT("axis", 0)};
    CHECK_EQ_INT(opcheck_forward(&co, &op_concat, 13, axis0, 1, IN(&un.out[0], &m1), 2, 1), 0);
    CHECK(ints_are(&co.out[0], D(3, -1), 2));
    CHECK_EQ_INT(opcheck_forward(&re, &op_reshape, 13, NULL, 0, IN(&x, &co.out[0]), 2, 1), 0);
    CHECK(dims_are(&re.out[0], 2, D(3, 8)));
    CHECK(same_elements(&re.out[0], &x));
    opcheck_free(&re);
    opcheck_free(&co);
    opcheck_free(&un);
    opcheck_free(&ga);
    opcheck_free(&sh);
    free(x.data);
    free(zero.data);
    free(ax.data);
    free(m1.data);
}

int main(void)
{
    RUN(flatten_axes);
    RUN(flatten_gradients);
    RUN(reshape_forms);
    RUN(reshape_int64_and_allowzero);
    RUN(reshape_refusals);
    RUN(reshape_gradients);
    RUN(squeeze_forms);
    RUN(unsqueeze_forms);
    RUN(squeeze_unsqueeze_gradients);
    RUN(identity);
    RUN(dropout_inference);
    RUN(dropout_training);
    RUN(dropout_refusals);
    RUN(transpose_hand_worked);
    RUN(transpose_cnn_cases);
    RUN(transpose_all_permutations);
    RUN(transpose_refusals);
    RUN(concat_hand_worked);
    RUN(concat_int64_shape_vector);
    RUN(concat_refusals);
    RUN(concat_gradients);
    RUN(shape_forms);
    RUN(gather_hand_worked);
    RUN(gather_int64_shape_arithmetic);
    RUN(gather_out_of_range);
    RUN(gather_gradients);
    RUN(slice_inputs_form);
    RUN(slice_attribute_form);
    RUN(slice_int64_shape_vector);
    RUN(slice_refusals);
    RUN(slice_gradients);
    RUN(cast_float_int64);
    RUN(cast_float_rounding);
    RUN(cast_refusals_and_gradients);
    RUN(constant_forms);
    RUN(constant_refusals);
    RUN(backward_accumulates);
    RUN(shape_subgraph_chain);
    return check_done();
}
