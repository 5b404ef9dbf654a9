/*
 * test_norm_pool.c — batch_norm, maxpool2d, global_avg_pool, the activations
 * (fused kernels and standalone layers) and the layer registry.
 *
 * Three kinds of evidence: hand-worked cases (values written out below),
 * independent references (a naive max-pool over an explicitly padded grid,
 * batch norm recomputed in double from its formula), and central
 * finite-difference checks of every backward.
 *
 * Each layer is built by hand the way model.c builds one: cfg, configure,
 * one parameter slab and one gradient slab laid out as ops->params lists
 * them, and a state block of ops->state_size bytes bound with state_bind.
 *
 * Finite differences. The loss is L = Σ_i w_i y_i with fixed random weights
 * w, summed in double, so dL/dy = w and one backward from dout = w gives
 * every analytic gradient. The numeric one is (L(v+ε) − L(v−ε)) / 2ε with
 * ε = 1e-3. In float32 each y_i carries a rounding error of about 6e-8·|y_i|,
 * so L is known to ~1e-6 over the few hundred outputs used here and the
 * quotient to ~1e-3; the truncation error ε²·f'''/6 is ~1e-6 for these smooth
 * functions. Hence the acceptance rule
 *     |analytic − numeric| ≤ 1e-2 · max(|analytic|, |numeric|) + 2e-3,
 * loose enough for float noise, tight enough that a wrong term (a missing
 * gamma, a dropped Σ, a 1/M for 1/(M−1)) fails by orders of magnitude.
 * Piecewise-linear layers (relu, max-pool) are exact away from their kinks:
 * max-pool inputs are distinct values 0.05 apart (no tie can flip under
 * ±ε), and where a relu pattern flips under the perturbation that one
 * coordinate is skipped (counted, and required to be rare).
 */
#include "check.h"
#include "layers/layer.h"
#include "rng.h"
#include "status.h"

#include <stdint.h>
#include <string.h>

#define FD_EPS 1e-3f
#define FD_RTOL 1e-2
#define FD_ATOL 2e-3

/* ---- building a layer by hand ------------------------------------------- */

struct fixture {
    struct layer l;
    const struct layer_ops *ops;
    float *params, *grads;
    void *state;
    int max_batch;
};

static float **tensor_slot(struct layer_tensors *t, const char *name)
{
    if (strcmp(name, "kernel") == 0) return &t->kernel;
    if (strcmp(name, "bias") == 0) return &t->bias;
    if (strcmp(name, "gamma") == 0) return &t->gamma;
    if (strcmp(name, "beta") == 0) return &t->beta;
    if (strcmp(name, "moving_mean") == 0) return &t->moving_mean;
    if (strcmp(name, "moving_variance") == 0) return &t->moving_var;
    return NULL;
}

/* Configures, allocates and binds; returns configure's status. */
static int fixture_init(struct fixture *f, const struct layer_ops *ops, struct layer_config cfg,
                        struct shape in, int max_batch, char *err)
{
    memset(f, 0, sizeof *f);
    f->ops = ops;
    f->max_batch = max_batch;
    f->l.cfg = cfg;
    f->l.cfg.kind = ops->kind;
    f->l.in = in;
    int rc = ops->configure(&f->l, err);
    if (rc)
        return rc;
    struct param_desc d[LAYER_MAX_PARAMS];
    int np = ops->params(&f->l, d);
    size_t total = 0;
    for (int i = 0; i < np; i++) {
        size_t k = 1;
        for (int j = 0; j < d[i].ndim; j++)
            k *= (size_t)d[i].dims[j];
        total += k;
    }
    f->params = calloc(total + 1, sizeof(float));
    f->grads = calloc(total + 1, sizeof(float));
    size_t off = 0;
    for (int i = 0; i < np; i++) {
        size_t k = 1;
        for (int j = 0; j < d[i].ndim; j++)
            k *= (size_t)d[i].dims[j];
        *tensor_slot(&f->l.w, d[i].name) = f->params + off;
        *tensor_slot(&f->l.grad, d[i].name) = f->grads + off;
        off += k;
    }
    size_t ss = ops->state_size(&f->l, max_batch);
    if (ss) {
        f->state = aligned_alloc(64, (ss + 63) & ~(size_t)63);
        memset(f->state, 0, ss);
        ops->state_bind(&f->l, f->state, max_batch);
    }
    struct rng r;
    rng_seed(&r, 1);
    ops->init(&f->l, &r);
    return 0;
}

static void fixture_free(struct fixture *f)
{
    free(f->params);
    free(f->grads);
    free(f->state);
}

static size_t in_size(const struct fixture *f, int n)
{
    return (size_t)n * shape_size(f->l.in);
}

static size_t out_size(const struct fixture *f, int n)
{
    return (size_t)n * shape_size(f->l.out);
}

static void fill_normal(struct rng *r, float *v, size_t n, double mean, double sd)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(mean + sd * rng_normal(r));
}

static void fill_uniform(struct rng *r, float *v, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}

/* ---- finite differences -------------------------------------------------- */

static double weighted_sum(const float *y, const float *w, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * y[i];
    return s;
}

/* Forward of the fixture's layer and L = Σ w·y. If mask is not NULL, it
 * returns through *flipped whether (y > 0) differs from mask anywhere. */
static double fd_loss(struct fixture *f, const float *x, int n, float *y, const float *w,
                      int training, const uint8_t *mask, int *flipped)
{
    struct layer_ctx ctx = {.training = training};
    f->ops->forward(&f->l, y, x, n, &ctx);
    size_t m = out_size(f, n);
    if (mask) {
        *flipped = 0;
        for (size_t i = 0; i < m; i++)
            *flipped |= (y[i] > 0.0f) != mask[i];
    }
    return weighted_sum(y, w, m);
}

struct fd_result {
    int checked, skipped, failed;
    double worst_err;       /* largest |a − num| / (rtol·max + atol) seen */
    size_t worst_i;
    double worst_a, worst_num;
};

/* Compares analytic[k] with central differences of L in the k floats v (which
 * may be x itself or a parameter tensor of the layer). */
static struct fd_result fd_compare(struct fixture *f, float *x, int n, const float *w,
                                   int training, float *v, const float *analytic, size_t k,
                                   const uint8_t *mask)
{
    struct fd_result r = {0};
    float *y = malloc(out_size(f, n) * sizeof(float));
    for (size_t i = 0; i < k; i++) {
        float keep = v[i];
        int flip_p = 0, flip_m = 0;
        v[i] = keep + FD_EPS;
        double lp = fd_loss(f, x, n, y, w, training, mask, &flip_p);
        v[i] = keep - FD_EPS;
        double lm = fd_loss(f, x, n, y, w, training, mask, &flip_m);
        v[i] = keep;
        if (flip_p || flip_m) {
            r.skipped++;
            continue;
        }
        /* The perturbation actually applied is the float spacing, not 2ε. */
        double h = (double)(keep + FD_EPS) - (double)(keep - FD_EPS);
        double num = (lp - lm) / h;
        double a = analytic[i];
        double scale = FD_RTOL * fmax(fabs(a), fabs(num)) + FD_ATOL;
        double e = fabs(a - num) / scale;
        r.checked++;
        if (e > 1.0)
            r.failed++;
        if (e > r.worst_err) {
            r.worst_err = e;
            r.worst_i = i;
            r.worst_a = a;
            r.worst_num = num;
        }
    }
    free(y);
    return r;
}

#define CHECK_FD(r, what)                                                                  \
    do {                                                                                   \
        struct fd_result r_ = (r);                                                         \
        printf("# %s: %d coordinates, worst error %.2f of tolerance\n", what, r_.checked,  \
               r_.worst_err);                                                              \
        CHECK_MSG(r_.failed == 0 && r_.checked > 0,                                        \
                  "%s: %d of %d coordinates off; worst [%zu] analytic %.6g numeric %.6g",  \
                  what, r_.failed, r_.checked, r_.worst_i, r_.worst_a, r_.worst_num);      \
        CHECK_MSG(r_.skipped * 5 <= r_.checked, "%s: %d coordinates skipped at kinks",     \
                  what, r_.skipped);                                                       \
    } while (0)

/* ---- activations: hand-worked -------------------------------------------- */

TEST(softmax_known_vector)
{
    /* exp(1−3) = 0.1353352832, exp(2−3) = 0.3678794412, exp(0) = 1,
     * sum = 1.5032147244 → 0.0900305732, 0.2447284711, 0.6652409558.
     * The second row is the first shifted by 1000: same result, and no
     * overflow (exp(1002) would trap). */
    float x[6] = {1, 2, 3, 1001, 1002, 1003};
    activation_forward(ACT_SOFTMAX, x, 2, 3);
    const double p[3] = {0.0900305732, 0.2447284711, 0.6652409558};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(x[r * 3 + i], p[i], 1e-6);
}

TEST(sigmoid_relu_values)
{
    /* σ(0) = 1/2; σ(2) = 1/(1 + e^-2) = 1/1.1353352832 = 0.8807970780;
     * σ(−2) = 1 − σ(2) = 0.1192029220; ±100 and ±1000 saturate without an
     * overflow trap. */
    float s[7] = {0, 2, -2, 100, -100, 1000, -1000};
    activation_forward(ACT_SIGMOID, s, 1, 7);
    CHECK_NEAR(s[0], 0.5, 1e-7);
    CHECK_NEAR(s[1], 0.8807970780, 1e-6);
    CHECK_NEAR(s[2], 0.1192029220, 1e-6);
    CHECK(s[3] == 1.0f);
    CHECK(s[4] >= 0.0f && s[4] < 1e-40f);
    CHECK(s[5] == 1.0f);
    CHECK(s[6] == 0.0f);

    float r[5] = {-1.5f, 0.0f, 2.5f, -0.0f, 1e-30f};
    activation_forward(ACT_RELU, r, 1, 5);
    CHECK(r[0] == 0.0f && r[1] == 0.0f && r[2] == 2.5f && r[3] == 0.0f && r[4] == 1e-30f);

    float id[3] = {-4, 0.5f, 7};
    activation_forward(ACT_NONE, id, 1, 3);
    CHECK(id[0] == -4 && id[1] == 0.5f && id[2] == 7);

    /* Backward by hand: relu passes dy where y > 0; sigmoid at y = 0.5 gives
     * dy/4; softmax rows: y = (0.5, 0.5), dy = (1, 0): Σ dy·y = 0.5, so
     * dz = (0.5·0.5, 0.5·(−0.5)) = (0.25, −0.25). */
    float y1[3] = {0, 2, 0}, d1[3] = {3, 4, 5};
    activation_backward(ACT_RELU, d1, y1, 1, 3);
    CHECK(d1[0] == 0 && d1[1] == 4 && d1[2] == 0);
    float y2[1] = {0.5f}, d2[1] = {2};
    activation_backward(ACT_SIGMOID, d2, y2, 1, 1);
    CHECK_NEAR(d2[0], 0.5, 1e-7);
    float y3[2] = {0.5f, 0.5f}, d3[2] = {1, 0};
    activation_backward(ACT_SOFTMAX, d3, y3, 1, 2);
    CHECK_NEAR(d3[0], 0.25, 1e-7);
    CHECK_NEAR(d3[1], -0.25, 1e-7);
}

TEST(activation_names)
{
    const char *names[] = {"relu", "sigmoid", "softmax", "linear", "none"};
    const enum activation acts[] = {ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX, ACT_NONE, ACT_NONE};
    for (int i = 0; i < 5; i++) {
        enum activation a = ACT_SOFTMAX;
        if (i == 2)
            a = ACT_NONE;
        CHECK_EQ_INT(activation_parse(names[i], &a), 0);
        CHECK_EQ_INT(a, acts[i]);
        enum activation back = ACT_RELU;
        CHECK_EQ_INT(activation_parse(activation_name(acts[i]), &back), 0);
        CHECK_EQ_INT(back, acts[i]);
    }
    enum activation a = ACT_SIGMOID;
    CHECK(activation_parse("tanh", &a) < 0);
    CHECK(activation_parse("Relu", &a) < 0);
    CHECK(activation_parse("", &a) < 0);
    CHECK_EQ_INT(a, ACT_SIGMOID);
}

/* The fused activation_backward against finite differences of
 * L = Σ w·act(z), for each activation, rows of several lengths. */
TEST(activation_backward_gradcheck)
{
    struct rng r;
    rng_seed(&r, 11);
    const int rows = 3, len = 5, n = rows * len;
    const enum activation acts[] = {ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX};
    for (int ai = 0; ai < 4; ai++) {
        enum activation act = acts[ai];
        float z[15], y[15], g[15], w[15], t[15];
        fill_normal(&r, z, n, 0.0, 2.0);
        for (int i = 0; i < n; i++) /* keep relu's kink out of ±ε */
            if (fabsf(z[i]) < 0.05f)
                z[i] += z[i] < 0 ? -0.1f : 0.1f;
        fill_uniform(&r, w, n, -1.0, 1.0);
        memcpy(y, z, sizeof y);
        activation_forward(act, y, rows, len);
        memcpy(g, w, sizeof g);
        activation_backward(act, g, y, rows, len);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            float keep = z[i];
            z[i] = keep + FD_EPS;
            memcpy(t, z, sizeof t);
            activation_forward(act, t, rows, len);
            double lp = weighted_sum(t, w, n);
            z[i] = keep - FD_EPS;
            memcpy(t, z, sizeof t);
            activation_forward(act, t, rows, len);
            double lm = weighted_sum(t, w, n);
            z[i] = keep;
            double num = (lp - lm) / ((double)(keep + FD_EPS) - (double)(keep - FD_EPS));
            if (fabs(g[i] - num) > FD_RTOL * fmax(fabs(g[i]), fabs(num)) + FD_ATOL) {
                printf("#   %s [%d]: analytic %.6g numeric %.6g\n", activation_name(act), i,
                       (double)g[i], num);
                bad++;
            }
        }
        CHECK_EQ_INT(bad, 0);
    }
}

/* ---- standalone activation layers ---------------------------------------- */

static const struct layer_ops *const act_layer_ops[3] = {&relu_ops, &sigmoid_ops,
                                                         &softmax_ops};

TEST(standalone_activation_forward)
{
    /* A 1×2×3 map: softmax runs over the 3 channels of each position. */
    struct shape in = {1, 2, 3};
    const float x[6] = {1, 2, 3, -1, 0, 4};
    for (int k = 0; k < 3; k++) {
        struct fixture f;
        char err[STRATA_ERR_LEN];
        CHECK_EQ_INT(fixture_init(&f, act_layer_ops[k], (struct layer_config){.name = "a"},
                                  in, 1, err),
                     0);
        CHECK(f.l.out.h == 1 && f.l.out.w == 2 && f.l.out.c == 3);
        struct param_desc d[LAYER_MAX_PARAMS];
        CHECK_EQ_INT(f.ops->params(&f.l, d), 0);
        float y[6], ref[6];
        memcpy(ref, x, sizeof ref);
        activation_forward(k == 0 ? ACT_RELU : k == 1 ? ACT_SIGMOID : ACT_SOFTMAX, ref, 2, 3);
        struct layer_ctx ctx = {0};
        f.ops->forward(&f.l, y, x, 1, &ctx);
        for (int i = 0; i < 6; i++)
            CHECK(y[i] == ref[i]);
        fixture_free(&f);
    }
    /* Softmax per position, by hand: (1,2,3) as in softmax_known_vector. */
    struct fixture f;
    fixture_init(&f, &softmax_ops, (struct layer_config){.name = "sm"}, in, 1, NULL);
    float y[6];
    struct layer_ctx ctx = {0};
    f.ops->forward(&f.l, y, x, 1, &ctx);
    CHECK_NEAR(y[0], 0.0900305732, 1e-6);
    CHECK_NEAR(y[2], 0.6652409558, 1e-6);
    CHECK_NEAR(y[3] + y[4] + y[5], 1.0, 1e-6);
    fixture_free(&f);
}

TEST(standalone_activation_gradcheck)
{
    struct rng r;
    rng_seed(&r, 12);
    struct shape in = {2, 3, 4};
    const int n = 2;
    for (int k = 0; k < 3; k++) {
        struct fixture f;
        fixture_init(&f, act_layer_ops[k], (struct layer_config){.name = "a"}, in, n, NULL);
        size_t ni = in_size(&f, n), no = out_size(&f, n);
        float *x = malloc(ni * 4), *y = malloc(no * 4), *w = malloc(no * 4),
              *g = malloc(no * 4), *din = calloc(ni, 4);
        fill_normal(&r, x, ni, 0.0, 1.5);
        for (size_t i = 0; i < ni; i++)
            if (fabsf(x[i]) < 0.05f)
                x[i] += x[i] < 0 ? -0.1f : 0.1f;
        fill_uniform(&r, w, no, -1.0, 1.0);
        struct layer_ctx ctx = {.training = 1};
        f.ops->forward(&f.l, y, x, n, &ctx);
        memcpy(g, w, no * 4);
        f.ops->backward(&f.l, din, g, x, y, n, &ctx);
        CHECK_FD(fd_compare(&f, x, n, w, 1, x, din, ni, NULL), f.ops->type);

        /* Accumulation: a second call with the same dout adds the same
         * gradient again. */
        float *once = malloc(ni * 4);
        memcpy(once, din, ni * 4);
        memcpy(g, w, no * 4);
        f.ops->backward(&f.l, din, g, x, y, n, &ctx);
        for (size_t i = 0; i < ni; i++)
            CHECK_NEAR(din[i], 2.0f * once[i], 1e-6 * (1 + fabs(once[i])));

        /* dout_is_preact: dout already d(pre-activation) passes straight
         * through. */
        memcpy(g, w, no * 4);
        activation_backward(k == 0 ? ACT_RELU : k == 1 ? ACT_SIGMOID : ACT_SOFTMAX, g, y,
                            n * in.h * in.w, in.c);
        memset(din, 0, ni * 4);
        struct layer_ctx pre = {.training = 1, .dout_is_preact = 1};
        f.ops->backward(&f.l, din, g, x, y, n, &pre);
        for (size_t i = 0; i < ni; i++)
            CHECK_NEAR(din[i], once[i], 1e-7);

        /* din == NULL is allowed and touches nothing. */
        f.ops->backward(&f.l, NULL, g, x, y, n, &ctx);
        free(x), free(y), free(w), free(g), free(din), free(once);
        fixture_free(&f);
    }
}

/* ---- max-pool ------------------------------------------------------------ */

static struct layer_config pool_cfg(int pool, int stride, enum padding pad)
{
    struct layer_config c = {.pool = pool, .stride = stride, .padding = pad};
    strcpy(c.name, "pool_1");
    return c;
}

TEST(maxpool_2x2_on_4x4)
{
    /* Windows (stride 2):  [1 5 | 2 0]      maxima 5 (index 1)  8 (index 6)
     *                      [3 4 | 8 7]
     *                      [-1 -2 | 6 9]    maxima -1 (index 8) 11 (index 15)
     *                      [-3 -4 | 10 11]                                   */
    const float x[16] = {1, 5, 2, 0, 3, 4, 8, 7, -1, -2, 6, 9, -3, -4, 10, 11};
    struct fixture f;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, 1, NULL),
                 0);
    CHECK_EQ_INT(f.l.cfg.stride, 2); /* stride 0 defaults to the pool size */
    CHECK(f.l.out.h == 2 && f.l.out.w == 2 && f.l.out.c == 1);
    float y[4];
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, 1, &ctx);
    CHECK(y[0] == 5 && y[1] == 8 && y[2] == -1 && y[3] == 11);
    CHECK(f.l.state.argmax[0] == 1 && f.l.state.argmax[1] == 6 &&
          f.l.state.argmax[2] == 8 && f.l.state.argmax[3] == 15);

    /* Backward scatters each dout to its window's winner. */
    float g[4] = {1, 2, 3, 4}, din[16] = {0};
    f.ops->backward(&f.l, din, g, x, y, 1, &ctx);
    for (int i = 0; i < 16; i++) {
        float want = i == 1 ? 1 : i == 6 ? 2 : i == 8 ? 3 : i == 15 ? 4 : 0;
        CHECK(din[i] == want);
    }

    /* Ties: the first element in scan order wins, so the gradient of a flat
     * window goes to its top-left input, once. */
    const float flat[16] = {7, 7, 1, 2, 7, 7, 2, 2, 0, 0, 3, 3, 0, 0, 3, 3};
    f.ops->forward(&f.l, y, flat, 1, &ctx);
    CHECK(y[0] == 7 && y[1] == 2 && y[2] == 0 && y[3] == 3);
    CHECK(f.l.state.argmax[0] == 0 && f.l.state.argmax[1] == 3 &&
          f.l.state.argmax[2] == 8 && f.l.state.argmax[3] == 10);

    /* Inference with the state unbound: same values, nothing written. */
    f.ops->forward(&f.l, y, x, 1, &ctx);
    f.l.state.argmax = NULL;
    struct layer_ctx inf = {0};
    float y2[4];
    f.ops->forward(&f.l, y2, x, 1, &inf);
    CHECK(memcmp(y, y2, sizeof y) == 0);
    fixture_free(&f);

    /* Two channels interleaved (NHWC): channel 1 is channel 0 negated, so
     * its maxima are the negated window minima: −min{1,5,3,4} = −1,
     * −min{2,0,8,7} = 0, −min{−1,−2,−3,−4} = 4, −min{6,9,10,11} = −6. */
    float x2[32];
    for (int i = 0; i < 16; i++) {
        x2[2 * i] = x[i];
        x2[2 * i + 1] = -x[i];
    }
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 2, PADDING_VALID), (struct shape){4, 4, 2}, 1,
                 NULL);
    float y3[8];
    f.ops->forward(&f.l, y3, x2, 1, &ctx);
    CHECK(y3[0] == 5 && y3[2] == 8 && y3[4] == -1 && y3[6] == 11);
    CHECK(y3[1] == -1 && y3[3] == 0 && y3[5] == 4 && y3[7] == -6);
    fixture_free(&f);
}

TEST(maxpool_same_padding_odd_input)
{
    /* 3×3 of negative values, pool 2 stride 2, same: out ceil(3/2) = 2,
     * pad_total = (2−1)·2 + 2 − 3 = 1, all of it after. Windows:
     * {−1,−2,−4,−5} → −1, {−3,−6} → −3, {−7,−8} → −7, {−9} → −9.
     * A padded zero taking part would have won the last three. */
    const float x[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9};
    struct fixture f;
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 2, PADDING_SAME), (struct shape){3, 3, 1}, 1,
                 NULL);
    CHECK(f.l.out.h == 2 && f.l.out.w == 2);
    float y[9];
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, 1, &ctx);
    CHECK(y[0] == -1 && y[1] == -3 && y[2] == -7 && y[3] == -9);
    CHECK(f.l.state.argmax[3] == 8);
    fixture_free(&f);

    /* Pool 3 stride 1 same: pad 1 each side; each output is the max of its
     * clipped 3×3 neighbourhood, i.e. of its top-left-most member here. */
    fixture_init(&f, &maxpool2d_ops, pool_cfg(3, 1, PADDING_SAME), (struct shape){3, 3, 1}, 1,
                 NULL);
    CHECK(f.l.out.h == 3 && f.l.out.w == 3);
    f.ops->forward(&f.l, y, x, 1, &ctx);
    const float want[9] = {-1, -1, -2, -1, -1, -2, -4, -4, -5};
    for (int i = 0; i < 9; i++)
        CHECK(y[i] == want[i]);
    fixture_free(&f);

    /* Uneven split: width 4, pool 3, stride 2, same → out 2, pad_total 1,
     * TensorFlow puts it after: windows {0,1,2} and {2,3}. With x = 1 2 3 0
     * that is (3, 3); padding before instead would give (2, 3). */
    const float row[4] = {1, 2, 3, 0};
    fixture_init(&f, &maxpool2d_ops, pool_cfg(3, 2, PADDING_SAME), (struct shape){1, 4, 1}, 1,
                 NULL);
    CHECK(f.l.out.h == 1 && f.l.out.w == 2);
    f.ops->forward(&f.l, y, row, 1, &ctx);
    CHECK(y[0] == 3 && y[1] == 3);
    fixture_free(&f);

    /* Output sizes: 5×7 with pool 2: same → 3×4, valid → 2×3; pool 3
     * stride 2 valid on 7 → floor(4/2)+1 = 3. */
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_SAME), (struct shape){5, 7, 2}, 1,
                 NULL);
    CHECK(f.l.out.h == 3 && f.l.out.w == 4 && f.l.out.c == 2);
    fixture_free(&f);
    fixture_init(&f, &maxpool2d_ops, pool_cfg(2, 0, PADDING_VALID), (struct shape){5, 7, 2}, 1,
                 NULL);
    CHECK(f.l.out.h == 2 && f.l.out.w == 3);
    fixture_free(&f);
    fixture_init(&f, &maxpool2d_ops, pool_cfg(3, 2, PADDING_VALID), (struct shape){7, 7, 1}, 1,
                 NULL);
    CHECK(f.l.out.h == 3 && f.l.out.w == 3);
    fixture_free(&f);
}

/* Naive reference: pad the input explicitly with −∞ (TensorFlow's split:
 * the smaller half before), then take plain window maxima. */
static void maxpool_reference(float *out, const float *in, int n, int H, int W, int C, int p,
                              int s, enum padding pad, int *OHp, int *OWp)
{
    int OH, OW, pt = 0, pl = 0;
    if (pad == PADDING_SAME) {
        OH = (int)ceil((double)H / s);
        OW = (int)ceil((double)W / s);
        int th = (OH - 1) * s + p - H, tw = (OW - 1) * s + p - W;
        pt = th > 0 ? th / 2 : 0;
        pl = tw > 0 ? tw / 2 : 0;
    } else {
        OH = (int)floor((double)(H - p) / s) + 1;
        OW = (int)floor((double)(W - p) / s) + 1;
    }
    int PH = OH * s + p, PW = OW * s + p;
    float *padded = malloc((size_t)PH * PW * C * sizeof(float));
    for (int b = 0; b < n; b++) {
        for (int i = 0; i < PH * PW * C; i++)
            padded[i] = -INFINITY;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < C; c++)
                    padded[((y + pt) * PW + x + pl) * C + c] =
                        in[(((size_t)b * H + y) * W + x) * C + c];
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++) {
                            float v = padded[((oy * s + ky) * PW + ox * s + kx) * C + c];
                            m = v > m ? v : m;
                        }
                    out[(((size_t)b * OH + oy) * OW + ox) * C + c] = m;
                }
    }
    free(padded);
    *OHp = OH;
    *OWp = OW;
}

TEST(maxpool_matches_reference)
{
    struct rng r;
    rng_seed(&r, 5);
    const int pools[] = {1, 2, 3, 2, 3, 4}, strides[] = {1, 2, 2, 1, 3, 3};
    const int sizes[][2] = {{4, 4}, {5, 7}, {8, 6}, {9, 9}};
    int configs = 0;
    for (int pi = 0; pi < 6; pi++)
        for (int si = 0; si < 4; si++)
            for (int pad = 0; pad < 2; pad++) {
                int H = sizes[si][0], W = sizes[si][1], C = 1 + (pi + si) % 5, n = 2;
                struct fixture f;
                int rc = fixture_init(&f, &maxpool2d_ops,
                                      pool_cfg(pools[pi], strides[pi], (enum padding)pad),
                                      (struct shape){H, W, C}, n, NULL);
                CHECK_EQ_INT(rc, 0);
                size_t ni = in_size(&f, n), no = out_size(&f, n);
                float *x = malloc(ni * 4), *y = malloc(no * 4), *ref = malloc(no * 4);
                fill_normal(&r, x, ni, -3.0, 1.0); /* mostly negative: padding must lose */
                struct layer_ctx ctx = {.training = pad};
                f.ops->forward(&f.l, y, x, n, &ctx);
                int OH, OW;
                maxpool_reference(ref, x, n, H, W, C, pools[pi], strides[pi],
                                  (enum padding)pad, &OH, &OW);
                CHECK_EQ_INT(f.l.out.h, OH);
                CHECK_EQ_INT(f.l.out.w, OW);
                int bad = 0;
                for (size_t i = 0; i < no; i++)
                    bad += y[i] != ref[i];
                /* argmax points at an input holding the output value */
                if (ctx.training)
                    for (size_t i = 0; i < no; i++) {
                        size_t b = i / shape_size(f.l.out);
                        bad += x[b * shape_size(f.l.in) + f.l.state.argmax[i]] != y[i];
                    }
                CHECK_MSG(bad == 0, "pool %d stride %d pad %d in %dx%dx%d: %d mismatches",
                          pools[pi], strides[pi], pad, H, W, C, bad);
                configs++;
                free(x), free(y), free(ref);
                fixture_free(&f);
            }
    CHECK_EQ_INT(configs, 48);
}

/* Distinct values 0.05 apart, shuffled: no window has a tie, and ±ε cannot
 * change a winner. */
static void fill_distinct(struct rng *r, float *x, size_t n)
{
    int *perm = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++)
        perm[i] = (int)i;
    rng_shuffle_int(r, perm, (int)n);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.05f * (float)perm[i] - 0.025f * (float)n;
    free(perm);
}

TEST(maxpool_gradcheck)
{
    struct rng r;
    rng_seed(&r, 6);
    /* overlapping windows (stride < pool) make one input win several times,
     * which the scatter must add up */
    const int cfgs[][3] = {{2, 2, PADDING_VALID}, {3, 1, PADDING_SAME}, {3, 2, PADDING_SAME}};
    for (int k = 0; k < 3; k++) {
        struct fixture f;
        const int n = 2;
        fixture_init(&f, &maxpool2d_ops, pool_cfg(cfgs[k][0], cfgs[k][1], cfgs[k][2]),
                     (struct shape){5, 4, 3}, n, NULL);
        size_t ni = in_size(&f, n), no = out_size(&f, n);
        float *x = malloc(ni * 4), *y = malloc(no * 4), *w = malloc(no * 4),
              *g = malloc(no * 4), *din = calloc(ni, 4), *once = malloc(ni * 4);
        fill_distinct(&r, x, ni);
        fill_uniform(&r, w, no, -1.0, 1.0);
        struct layer_ctx ctx = {.training = 1};
        f.ops->forward(&f.l, y, x, n, &ctx);
        memcpy(g, w, no * 4);
        f.ops->backward(&f.l, din, g, x, y, n, &ctx);
        memcpy(once, din, ni * 4);
        CHECK_FD(fd_compare(&f, x, n, w, 1, x, din, ni, NULL), "maxpool2d");
        /* fd_compare ran forwards; rebuild the argmax, then accumulate. */
        f.ops->forward(&f.l, y, x, n, &ctx);
        memcpy(g, w, no * 4);
        f.ops->backward(&f.l, din, g, x, y, n, &ctx);
        for (size_t i = 0; i < ni; i++)
            CHECK_NEAR(din[i], 2.0f * once[i], 1e-6 * (1 + fabs(once[i])));
        free(x), free(y), free(w), free(g), free(din), free(once);
        fixture_free(&f);
    }
}

TEST(maxpool_configure_errors)
{
    char err[STRATA_ERR_LEN];
    struct fixture f;
    err[0] = 0;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(0, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "pool_size"));
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(2, -1, PADDING_VALID),
                              (struct shape){4, 4, 1}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "strides"));
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(5, 0, PADDING_VALID),
                              (struct shape){4, 4, 1}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "larger"));
    /* the same pool with same padding is fine: one 1×1 output */
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, pool_cfg(5, 0, PADDING_SAME),
                              (struct shape){4, 4, 1}, 1, err),
                 0);
    CHECK(f.l.out.h == 1 && f.l.out.w == 1);
    fixture_free(&f);
    struct layer_config c = pool_cfg(2, 0, PADDING_VALID);
    c.activation = ACT_RELU;
    CHECK_EQ_INT(fixture_init(&f, &maxpool2d_ops, c, (struct shape){4, 4, 1}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "pool_1") && strstr(err, "activation"));
}

/* ---- global average pool ------------------------------------------------- */

TEST(gap_hand_worked)
{
    /* 2×2×2, two samples. Sample 0: channel 0 = 1,2,3,4 → 2.5; channel 1 =
     * −1,5,0,4 → 2. Sample 1: channel 0 = 10,10,10,−2 → 7; channel 1 = 0 → 0. */
    const float x[16] = {1, -1, 2, 5, 3, 0, 4, 4, 10, 0, 10, 0, 10, 0, -2, 0};
    struct fixture f;
    char err[STRATA_ERR_LEN];
    struct layer_config c = {.name = "gap"};
    CHECK_EQ_INT(fixture_init(&f, &global_avg_pool_ops, c, (struct shape){2, 2, 2}, 2, err), 0);
    CHECK(f.l.out.h == 1 && f.l.out.w == 1 && f.l.out.c == 2);
    float y[4];
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, 2, &ctx);
    CHECK(y[0] == 2.5f && y[1] == 2.0f && y[2] == 7.0f && y[3] == 0.0f);
    /* Backward: each of the 4 positions gets dout/4. */
    float g[4] = {4, 8, -2, 1}, din[16] = {0};
    f.ops->backward(&f.l, din, g, x, y, 2, &ctx);
    for (int p = 0; p < 4; p++) {
        CHECK(din[2 * p] == 1.0f && din[2 * p + 1] == 2.0f);
        CHECK(din[8 + 2 * p] == -0.5f && din[8 + 2 * p + 1] == 0.25f);
    }
    fixture_free(&f);
}

TEST(gap_gradcheck)
{
    struct rng r;
    rng_seed(&r, 7);
    struct fixture f;
    const int n = 3;
    fixture_init(&f, &global_avg_pool_ops, (struct layer_config){.name = "gap"},
                 (struct shape){3, 5, 4}, n, NULL);
    size_t ni = in_size(&f, n), no = out_size(&f, n);
    float *x = malloc(ni * 4), *y = malloc(no * 4), *w = malloc(no * 4), *g = malloc(no * 4),
          *din = calloc(ni, 4), *once = malloc(ni * 4);
    fill_normal(&r, x, ni, 0.5, 2.0);
    fill_uniform(&r, w, no, -3.0, 3.0);
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, n, &ctx);
    memcpy(g, w, no * 4);
    f.ops->backward(&f.l, din, g, x, y, n, &ctx);
    memcpy(once, din, ni * 4);
    CHECK_FD(fd_compare(&f, x, n, w, 1, x, din, ni, NULL), "global_avg_pool");
    memcpy(g, w, no * 4);
    f.ops->backward(&f.l, din, g, x, y, n, &ctx);
    for (size_t i = 0; i < ni; i++)
        CHECK_NEAR(din[i], 2.0f * once[i], 1e-6 * (1 + fabs(once[i])));
    free(x), free(y), free(w), free(g), free(din), free(once);
    fixture_free(&f);
}

/* ---- batch norm ---------------------------------------------------------- */

static struct layer_config bn_cfg(enum activation act, float eps, float momentum)
{
    struct layer_config c = {.activation = act, .epsilon = eps, .momentum = momentum};
    strcpy(c.name, "bn_1");
    return c;
}

static double act_ref(enum activation act, double z)
{
    switch (act) {
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    default: return z;
    }
}

TEST(batch_norm_params_and_init)
{
    struct fixture f;
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 0.99f),
                              (struct shape){2, 2, 3}, 1, NULL),
                 0);
    struct param_desc d[LAYER_MAX_PARAMS];
    CHECK_EQ_INT(f.ops->params(&f.l, d), 4);
    const char *names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(d[i].name, names[i]) == 0);
        CHECK(d[i].ndim == 1 && d[i].dims[0] == 3);
        CHECK_EQ_INT(d[i].trainable, i < 2);
    }
    for (int c = 0; c < 3; c++)
        CHECK(f.l.w.gamma[c] == 1 && f.l.w.beta[c] == 0 && f.l.w.moving_mean[c] == 0 &&
              f.l.w.moving_var[c] == 1);
    CHECK(f.l.out.h == 2 && f.l.out.w == 2 && f.l.out.c == 3);
    CHECK_EQ_INT(f.ops->state_size(&f.l, 5), (5 * 12 + 2 * 3) * (int)sizeof(float));
    fixture_free(&f);

    char err[STRATA_ERR_LEN];
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 0.0f, 0.99f),
                              (struct shape){2, 2, 3}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "bn_1") && strstr(err, "epsilon"));
    CHECK_EQ_INT(fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 1.5f),
                              (struct shape){2, 2, 3}, 1, err),
                 STRATA_E_ARG);
    CHECK(strstr(err, "bn_1") && strstr(err, "momentum"));
}

TEST(batch_norm_inference_formula)
{
    struct rng r;
    rng_seed(&r, 21);
    const enum activation acts[] = {ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX};
    const int n = 3, C = 5;
    for (int ai = 0; ai < 4; ai++) {
        struct fixture f;
        fixture_init(&f, &batch_norm_ops, bn_cfg(acts[ai], 1e-3f, 0.99f),
                     (struct shape){2, 3, C}, n, NULL);
        fill_normal(&r, f.l.w.gamma, C, 1.0, 0.5);
        fill_normal(&r, f.l.w.beta, C, 0.0, 0.5);
        fill_normal(&r, f.l.w.moving_mean, C, 0.0, 2.0);
        fill_uniform(&r, f.l.w.moving_var, C, 0.01, 4.0);
        size_t ni = in_size(&f, n);
        float *x = malloc(ni * 4), *y = malloc(ni * 4), keep[20];
        memcpy(keep, f.params, sizeof keep);
        fill_normal(&r, x, ni, 0.5, 2.0);
        struct layer_ctx ctx = {0};
        f.ops->forward(&f.l, y, x, n, &ctx);
        double maxd = 0;
        for (size_t p = 0; p < ni / C; p++) {
            double z[5], sum = 0, m = -INFINITY;
            for (int c = 0; c < C; c++) {
                z[c] = f.l.w.gamma[c] * ((double)x[p * C + c] - f.l.w.moving_mean[c]) /
                           sqrt((double)f.l.w.moving_var[c] + 1e-3) +
                       f.l.w.beta[c];
                m = fmax(m, z[c]);
            }
            if (acts[ai] == ACT_SOFTMAX) {
                for (int c = 0; c < C; c++)
                    sum += exp(z[c] - m);
                for (int c = 0; c < C; c++)
                    z[c] = exp(z[c] - m) / sum;
            } else {
                for (int c = 0; c < C; c++)
                    z[c] = act_ref(acts[ai], z[c]);
            }
            for (int c = 0; c < C; c++)
                maxd = fmax(maxd, fabs(y[p * C + c] - z[c]) / (1 + fabs(z[c])));
        }
        CHECK_MSG(maxd < 2e-6, "%s: max relative difference %.3g",
                  activation_name(acts[ai]), maxd);
        /* inference leaves the running statistics alone */
        CHECK(memcmp(keep, f.params, sizeof keep) == 0);
        free(x), free(y);
        fixture_free(&f);
    }
}

TEST(batch_norm_training_statistics)
{
    struct rng r;
    rng_seed(&r, 22);
    /* M = 8·3·5 = 120 values per channel: two of the kernel's 64-position
     * summation chunks, the second one partial. */
    const int n = 8, C = 3;
    const float mom = 0.9f, eps = 1e-3f;
    struct fixture f;
    fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, eps, mom), (struct shape){3, 5, C}, n,
                 NULL);
    size_t ni = in_size(&f, n), M = ni / C;
    float *x = malloc(ni * 4), *y = malloc(ni * 4);
    /* channel c: mean 5c − 3, sd 1 + c; channel 2 also sits on a large
     * offset, where a one-pass E[x²] − E[x]² would lose the variance. */
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++)
            x[p * C + c] = (float)((c == 2 ? 1000.0 : 5.0 * c - 3.0) + (1 + c) * rng_normal(&r));
    double mean_b[3] = {0}, var_b[3] = {0};
    for (int c = 0; c < C; c++) {
        for (size_t p = 0; p < M; p++)
            mean_b[c] += x[p * C + c];
        mean_b[c] /= M;
        for (size_t p = 0; p < M; p++)
            var_b[c] += (x[p * C + c] - mean_b[c]) * (x[p * C + c] - mean_b[c]);
        var_b[c] /= M;
    }
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, n, &ctx);
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (size_t p = 0; p < M; p++)
            m += y[p * C + c];
        m /= M;
        for (size_t p = 0; p < M; p++)
            v += (y[p * C + c] - m) * (y[p * C + c] - m);
        v /= M;
        CHECK_NEAR(m, 0.0, 1e-5);
        /* var(y) = σ²/(σ² + eps), within 1e-3 of 1 for these σ */
        CHECK_NEAR(v, var_b[c] / (var_b[c] + eps), 2e-5);
        CHECK_NEAR(v, 1.0, 1e-3);
        /* moving = momentum·old + (1 − momentum)·batch, variance unbiased */
        CHECK_NEAR(f.l.w.moving_mean[c], 0.1 * mean_b[c], 1e-5 * (1 + fabs(mean_b[c])));
        CHECK_NEAR(f.l.w.moving_var[c], 0.9 + 0.1 * var_b[c] * M / (M - 1.0),
                   1e-5 * (1 + var_b[c]));
        CHECK_NEAR(f.l.state.mean[c], mean_b[c], 1e-5 * (1 + fabs(mean_b[c])));
        CHECK_NEAR(f.l.state.invstd[c], 1.0 / sqrt(var_b[c] + eps), 1e-5);
    }
    /* A second batch moves the averages again from where they are. */
    double mm1[3], mv1[3];
    for (int c = 0; c < C; c++)
        mm1[c] = f.l.w.moving_mean[c], mv1[c] = f.l.w.moving_var[c];
    for (size_t i = 0; i < ni; i++)
        x[i] = 2.0f * x[i] + 1.0f; /* mean → 2μ + 1, variance → 4σ² */
    f.ops->forward(&f.l, y, x, n, &ctx);
    for (int c = 0; c < C; c++) {
        CHECK_NEAR(f.l.w.moving_mean[c], 0.9 * mm1[c] + 0.1 * (2 * mean_b[c] + 1),
                   1e-5 * (1 + fabs(mean_b[c])));
        CHECK_NEAR(f.l.w.moving_var[c], 0.9 * mv1[c] + 0.1 * 4 * var_b[c] * M / (M - 1.0),
                   2e-5 * (1 + var_b[c]));
    }
    free(x), free(y);
    fixture_free(&f);
}

/* Gradient check of batch norm w.r.t. x, gamma and beta; the analytic
 * gradients come from one backward, then are compared coordinate by
 * coordinate. Also checks accumulation, din == NULL and dout_is_preact. */
static void bn_gradcheck(enum activation act, int training, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    const int n = 2, C = 3;
    struct fixture f;
    fixture_init(&f, &batch_norm_ops, bn_cfg(act, 1e-3f, 0.9f), (struct shape){2, 3, C}, n,
                 NULL);
    fill_normal(&r, f.l.w.gamma, C, 1.0, 0.5);
    fill_normal(&r, f.l.w.beta, C, 0.2, 0.5);
    fill_normal(&r, f.l.w.moving_mean, C, 0.0, 1.0);
    fill_uniform(&r, f.l.w.moving_var, C, 0.5, 2.0);
    size_t ni = in_size(&f, n), no = out_size(&f, n);
    float *x = malloc(ni * 4), *y = malloc(ni * 4), *w = malloc(no * 4), *g = malloc(no * 4),
          *din = calloc(ni, 4), *once = malloc(ni * 4);
    uint8_t *mask = NULL;
    fill_normal(&r, x, ni, 0.3, 1.5);
    fill_uniform(&r, w, no, -1.0, 1.0);

    struct layer_ctx ctx = {.training = training};
    f.ops->forward(&f.l, y, x, n, &ctx);
    if (act == ACT_RELU) {
        mask = malloc(no);
        for (size_t i = 0; i < no; i++)
            mask[i] = y[i] > 0.0f;
    }
    memcpy(g, w, no * 4);
    f.ops->backward(&f.l, din, g, x, y, n, &ctx);
    float dgamma[3], dbeta[3];
    memcpy(once, din, ni * 4);
    memcpy(dgamma, f.l.grad.gamma, sizeof dgamma);
    memcpy(dbeta, f.l.grad.beta, sizeof dbeta);

    char what[64];
    snprintf(what, sizeof what, "batch_norm %s %s dx", training ? "train" : "infer",
             activation_name(act));
    CHECK_FD(fd_compare(&f, x, n, w, training, x, once, ni, mask), what);
    snprintf(what, sizeof what, "batch_norm %s %s dgamma", training ? "train" : "infer",
             activation_name(act));
    CHECK_FD(fd_compare(&f, x, n, w, training, f.l.w.gamma, dgamma, C, mask), what);
    snprintf(what, sizeof what, "batch_norm %s %s dbeta", training ? "train" : "infer",
             activation_name(act));
    CHECK_FD(fd_compare(&f, x, n, w, training, f.l.w.beta, dbeta, C, mask), what);

    /* Accumulation: rebuild the state (fd_compare's forwards overwrote it),
     * backward again with the same dout: every gradient doubles. */
    f.ops->forward(&f.l, y, x, n, &ctx);
    memcpy(g, w, no * 4);
    f.ops->backward(&f.l, din, g, x, y, n, &ctx);
    for (size_t i = 0; i < ni; i++)
        CHECK_NEAR(din[i], 2.0f * once[i], 1e-6 * (1 + fabs(once[i])));
    for (int c = 0; c < C; c++) {
        CHECK_NEAR(f.l.grad.gamma[c], 2.0f * dgamma[c], 1e-6 * (1 + fabs(dgamma[c])));
        CHECK_NEAR(f.l.grad.beta[c], 2.0f * dbeta[c], 1e-6 * (1 + fabs(dbeta[c])));
    }

    /* din == NULL still accumulates the parameter gradients; dout already
     * turned into d(pre-activation) with dout_is_preact gives the same. */
    memset(f.grads, 0, 4 * C * sizeof(float));
    memcpy(g, w, no * 4);
    activation_backward(act, g, y, n * 6, C);
    struct layer_ctx pre = ctx;
    pre.dout_is_preact = 1;
    f.ops->backward(&f.l, NULL, g, x, y, n, &pre);
    for (int c = 0; c < C; c++) {
        CHECK_NEAR(f.l.grad.gamma[c], dgamma[c], 1e-5 * (1 + fabs(dgamma[c])));
        CHECK_NEAR(f.l.grad.beta[c], dbeta[c], 1e-5 * (1 + fabs(dbeta[c])));
    }
    memset(din, 0, ni * 4);
    f.ops->backward(&f.l, din, g, x, y, n, &pre);
    for (size_t i = 0; i < ni; i++)
        CHECK_NEAR(din[i], once[i], 1e-6 * (1 + fabs(once[i])));

    free(x), free(y), free(w), free(g), free(din), free(once), free(mask);
    fixture_free(&f);
}

TEST(batch_norm_training_gradcheck)
{
    bn_gradcheck(ACT_NONE, 1, 31);
}

TEST(batch_norm_training_relu_gradcheck)
{
    bn_gradcheck(ACT_RELU, 1, 32);
}

TEST(batch_norm_training_sigmoid_softmax_gradcheck)
{
    bn_gradcheck(ACT_SIGMOID, 1, 33);
    bn_gradcheck(ACT_SOFTMAX, 1, 34);
}

TEST(batch_norm_inference_gradcheck)
{
    bn_gradcheck(ACT_NONE, 0, 35);
    bn_gradcheck(ACT_RELU, 0, 36);
}

/* Many channels (more than one stack block of 256, M = 108 spanning two
 * summation chunks), and a batch of one position per channel: M = 1
 * (variance 0, moving variance fed 0 rather than 0/0). */
TEST(batch_norm_wide_and_single)
{
    struct rng r;
    rng_seed(&r, 41);
    const int C = 600, n = 3;
    struct fixture f;
    fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 0.5f), (struct shape){6, 6, C},
                 n, NULL);
    fill_normal(&r, f.l.w.gamma, C, 1.0, 0.3);
    fill_normal(&r, f.l.w.beta, C, 0.0, 0.3);
    size_t ni = in_size(&f, n);
    float *x = malloc(ni * 4), *y = malloc(ni * 4), *g = malloc(ni * 4), *din = calloc(ni, 4);
    /* channel offsets from −900 to 900 with sd 2: each block of channels
     * must shift its sums by its own channels' values or lose the variance */
    const size_t M = ni / C;
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++)
            x[p * C + c] = (float)((c % 7) * 300.0 - 900.0 + 2.0 * rng_normal(&r));
    struct layer_ctx ctx = {.training = 1};
    f.ops->forward(&f.l, y, x, n, &ctx);
    double worst = 0;
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0;
        for (size_t p = 0; p < M; p++)
            m += x[p * C + c];
        m /= M;
        for (size_t p = 0; p < M; p++)
            v += (x[p * C + c] - m) * (x[p * C + c] - m);
        v /= M;
        for (size_t p = 0; p < M; p++) {
            double want = f.l.w.gamma[c] * (x[p * C + c] - m) / sqrt(v + 1e-3) + f.l.w.beta[c];
            worst = fmax(worst, fabs(y[p * C + c] - want));
        }
    }
    CHECK_MSG(worst < 1e-4, "600 channels: max |diff| %.3g", worst);
    /* Σ over a channel of dx is 0 for any dout (shifting a channel's inputs
     * changes nothing in training mode). Checked without the offsets: with
     * them, float x itself is only known to ~6e-5 and so is the sum. */
    for (size_t p = 0; p < M; p++)
        for (int c = 0; c < C; c++)
            x[p * C + c] -= (float)((c % 7) * 300.0 - 900.0);
    f.ops->forward(&f.l, y, x, n, &ctx);
    fill_normal(&r, g, ni, 0.0, 1.0);
    f.ops->backward(&f.l, din, g, x, y, n, &ctx);
    worst = 0;
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (size_t p = 0; p < M; p++)
            s += din[p * C + c];
        worst = fmax(worst, fabs(s));
    }
    CHECK_MSG(worst < 1e-4, "Σ dx over a channel: %.3g", worst);
    free(x), free(y), free(g), free(din);
    fixture_free(&f);

    /* 1×1 input, batch of 1: every channel has one value, output is beta. */
    fixture_init(&f, &batch_norm_ops, bn_cfg(ACT_NONE, 1e-3f, 0.5f), (struct shape){1, 1, 2},
                 1, NULL);
    f.l.w.beta[0] = 0.25f;
    f.l.w.beta[1] = -1.0f;
    float x1[2] = {7, -3}, y1[2];
    f.ops->forward(&f.l, y1, x1, 1, &ctx);
    CHECK(y1[0] == 0.25f && y1[1] == -1.0f);
    CHECK_NEAR(f.l.w.moving_mean[0], 3.5, 1e-6);
    CHECK_NEAR(f.l.w.moving_var[0], 0.5, 1e-6);
    fixture_free(&f);
}

/* ---- registry ------------------------------------------------------------ */

TEST(registry)
{
    const char *types[LAYER_KIND_COUNT] = {
        [LAYER_CONV2D] = "conv2d",       [LAYER_BATCH_NORM] = "batch_norm",
        [LAYER_MAXPOOL2D] = "maxpool2d", [LAYER_GLOBAL_AVG_POOL] = "global_avg_pool",
        [LAYER_FLATTEN] = "flatten",     [LAYER_DENSE] = "dense",
        [LAYER_DROPOUT] = "dropout",     [LAYER_RELU] = "relu",
        [LAYER_SIGMOID] = "sigmoid",     [LAYER_SOFTMAX] = "softmax",
    };
    for (int k = 0; k < LAYER_KIND_COUNT; k++) {
        const struct layer_ops *ops = layer_ops_of((enum layer_kind)k);
        CHECK(ops != NULL);
        CHECK_EQ_INT(ops->kind, k);
        CHECK_MSG(strcmp(ops->type, types[k]) == 0, "kind %d has type %s", k, ops->type);
        CHECK(layer_ops_find(types[k]) == ops);
        CHECK(ops->configure && ops->params && ops->forward && ops->backward);
    }
    CHECK(layer_ops_find("Conv2D") == NULL);
    CHECK(layer_ops_find("lstm") == NULL);
    CHECK(layer_ops_find("") == NULL);
    CHECK(layer_ops_find("batch_norm") == &batch_norm_ops);
}

int main(void)
{
    RUN(softmax_known_vector);
    RUN(sigmoid_relu_values);
    RUN(activation_names);
    RUN(activation_backward_gradcheck);
    RUN(standalone_activation_forward);
    RUN(standalone_activation_gradcheck);
    RUN(maxpool_2x2_on_4x4);
    RUN(maxpool_same_padding_odd_input);
    RUN(maxpool_matches_reference);
    RUN(maxpool_gradcheck);
    RUN(maxpool_configure_errors);
    RUN(gap_hand_worked);
    RUN(gap_gradcheck);
    RUN(batch_norm_params_and_init);
    RUN(batch_norm_inference_formula);
    RUN(batch_norm_training_statistics);
    RUN(batch_norm_training_gradcheck);
    RUN(batch_norm_training_relu_gradcheck);
    RUN(batch_norm_training_sigmoid_softmax_gradcheck);
    RUN(batch_norm_inference_gradcheck);
    RUN(batch_norm_wide_and_single);
    RUN(registry);
    return check_done();
}
