/*
 * test_parallel.c — the thread pool (parallel.h) and the promise the engine
 * makes on it: the same bits whatever the thread count.
 *
 * parallel_for itself: every index of [0, n) covered exactly once, pieces
 * never shorter than the grain, for many n, grains, thread counts and modes;
 * workers really run pieces, with the caller's floating-point environment;
 * nested and concurrent callers finish (a deadlock would hang the test until
 * meson's timeout).
 *
 * Models on the graph executor: one training step on the model's training
 * graph (train_graph.h: a forward with batch statistics and dropout, the
 * backward of the softmax cross-entropy, an Adam step) and then an inference
 * forward (model_forward) with the weights the step left. Everything they
 * produce — the probabilities, every float value of the training forward and
 * the gradient backward left on it, every trainable tensor's gradient, the
 * weights and running statistics after the step, every layer's inference
 * output — is compared bit for bit between one thread and: two and three
 * threads in PARALLEL_CHECK_REVERSE (pieces run last-first on one thread:
 * any dependence on the split or the order shows deterministically), and two
 * and four threads in PARALLEL_CHECK_EAGER (real concurrency), for two
 * models that between them use every layer type strata's models have and so
 * every op they run as: Conv (3×3 with stride 1 and 2, same and valid, and
 * 1×1; with relu, sigmoid and a softmax over the channels; 8 to 2064
 * filters), BatchNormalization (32 and 24 channels, with and without relu),
 * MaxPool with and without overlapping windows, the standalone activations,
 * GlobalAveragePool, Dropout, Flatten and Gemm. Then whole training runs
 * (train_run, augmentation included) compared the same way, and the
 * property the parallel augmentation relies on.
 */
#include "check.h"
#include "augment.h"
#include "model.h"
#include "model_graph.h"
#include "optim.h"
#include "parallel.h"
#include "rng.h"
#include "train.h"
#include "train_graph.h"

#include <fenv.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_ms(double ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(ms * 1e6)};
    nanosleep(&ts, NULL);
}

/* ---- parallel_for: coverage ----------------------------------------------- */

struct cover {
    int *count;
    int min_len, calls, bad_range, n;
};

static void cover_piece(void *p, int b, int e)
{
    struct cover *c = p;
    if (b < 0 || e > c->n || b >= e)
        __atomic_fetch_add(&c->bad_range, 1, __ATOMIC_RELAXED);
    for (int i = b; i < e && i >= 0 && i < c->n; i++)
        __atomic_fetch_add(&c->count[i], 1, __ATOMIC_RELAXED);
    int len = e - b, cur = __atomic_load_n(&c->min_len, __ATOMIC_RELAXED);
    while (len < cur &&
           !__atomic_compare_exchange_n(&c->min_len, &cur, len, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
    __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
}

/* Runs one loop and checks it; returns the number of failed checks. */
static int cover_check(int n, int grain, int *count)
{
    struct cover c = {.count = count, .min_len = 1 << 30, .n = n};
    memset(count, 0, (size_t)(n > 0 ? n : 1) * sizeof(int));
    parallel_for_grain(n, grain, cover_piece, &c);
    int failed = 0;
    for (int i = 0; i < n; i++)
        failed += count[i] != 1;
    failed += c.bad_range != 0;
    if (n <= 0) {
        failed += c.calls != 0;
    } else {
        int g = grain < 1 ? 1 : grain;
        failed += c.min_len < (g < n ? g : n);
        failed += c.calls < 1;
    }
    return failed;
}

TEST(parallel_for_covers_every_index_once)
{
    static const int ns[] = {0, -3, 1, 2, 3, 5, 8, 17, 100, 1000, 65537};
    static const int grains[] = {0, 1, 2, 3, 7, 64, 1000, 100000};
    static const int threads[] = {1, 2, 3, 5};
    static const enum parallel_check modes[] = {PARALLEL_CHECK_OFF, PARALLEL_CHECK_EAGER,
                                                PARALLEL_CHECK_REVERSE};
    int *count = malloc(65537 * sizeof(int));
    int loops = 0;
    for (size_t t = 0; t < sizeof threads / sizeof threads[0]; t++) {
        parallel_set_threads(threads[t]);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            parallel_set_check(modes[m]);
            for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
                for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                    int f = cover_check(ns[i], grains[g], count);
                    CHECK_MSG(f == 0, "threads %d mode %d n %d grain %d: %d failures",
                              threads[t], (int)modes[m], ns[i], grains[g], f);
                    loops++;
                }
        }
    }
    CHECK_EQ_INT(loops, 4 * 3 * 11 * 8);
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
    free(count);
}

TEST(parallel_for_plain_is_grain_one)
{
    int count[40];
    parallel_set_threads(2);
    struct cover c = {.count = count, .min_len = 1 << 30, .n = 40};
    memset(count, 0, sizeof count);
    parallel_for(40, cover_piece, &c);
    for (int i = 0; i < 40; i++)
        CHECK_EQ_INT(count[i], 1);
    CHECK(c.bad_range == 0 && c.calls >= 1);
    parallel_set_threads(0);
}

/* ---- parallel_for: threads, floating point -------------------------------- */

struct who {
    pthread_t caller;
    int others;         /* pieces run on another thread */
    float third[8];     /* 1/3 as each piece computes it */
};

static void who_piece(void *p, int b, int e)
{
    struct who *w = p;
    sleep_ms(2); /* long enough that a woken worker always finds pieces left */
    if (!pthread_equal(pthread_self(), w->caller))
        __atomic_fetch_add(&w->others, 1, __ATOMIC_RELAXED);
    for (int i = b; i < e; i++) {
        volatile float one = 1.0f, three = 3.0f;
        w->third[i] = one / three;
    }
}

TEST(workers_run_pieces_with_the_callers_rounding)
{
    parallel_set_threads(2);
    parallel_set_check(PARALLEL_CHECK_EAGER);
    volatile float one = 1.0f, three = 3.0f;
    const float nearest = one / three;
    const int saved = fegetround();
    fesetround(FE_DOWNWARD);
    const float down = one / three;
    long before = parallel_worker_pieces();
    int shared = 0, tries = 0, wrong = 0;
    for (; tries < 50 && !shared; tries++) {
        struct who w = {.caller = pthread_self()};
        parallel_for(8, who_piece, &w);
        shared = w.others > 0;
        for (int i = 0; i < 8; i++)
            wrong += memcmp(&w.third[i], &down, sizeof down) != 0;
    }
    fesetround(saved);
    CHECK(memcmp(&down, &nearest, sizeof down) != 0); /* the two modes do differ */
    CHECK_MSG(shared, "no piece ran on a worker in %d tries", tries);
    CHECK(parallel_worker_pieces() > before);
    CHECK_EQ_INT(wrong, 0);
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
}

TEST(thread_count_setting)
{
    const char *old = getenv("STRATA_THREADS");
    char *saved = old ? strdup(old) : NULL;
    parallel_set_threads(3);
    CHECK_EQ_INT(parallel_threads(), 3);
    parallel_set_threads(1000);
    CHECK_EQ_INT(parallel_threads(), PARALLEL_MAX_THREADS);
    setenv("STRATA_THREADS", "5", 1);
    parallel_set_threads(0);
    CHECK_EQ_INT(parallel_threads(), 5);
    parallel_set_threads(2); /* an explicit count wins over the environment */
    CHECK_EQ_INT(parallel_threads(), 2);
    unsetenv("STRATA_THREADS");
    parallel_set_threads(0);
    const int dflt = parallel_threads();
    CHECK(dflt >= 1 && dflt <= 8);
    setenv("STRATA_THREADS", "lots", 1); /* not a number: the default */
    parallel_set_threads(0);
    CHECK_EQ_INT(parallel_threads(), dflt);
    setenv("STRATA_THREADS", "0", 1);
    parallel_set_threads(0);
    CHECK_EQ_INT(parallel_threads(), dflt);
    if (saved)
        setenv("STRATA_THREADS", saved, 1);
    else
        unsetenv("STRATA_THREADS");
    free(saved);
    parallel_set_threads(0);
}

/* ---- nested and concurrent callers ---------------------------------------- */

enum { NEST_OUTER = 48, NEST_INNER = 3000 };

struct nest {
    int *count; /* [NEST_OUTER][NEST_INNER] */
};

struct nest_row {
    int *row;
};

static void nest_inner(void *p, int b, int e)
{
    struct nest_row *r = p;
    for (int i = b; i < e; i++)
        __atomic_fetch_add(&r->row[i], 1, __ATOMIC_RELAXED);
}

static void nest_outer(void *p, int b, int e)
{
    struct nest *n = p;
    for (int i = b; i < e; i++) {
        struct nest_row r = {n->count + (size_t)i * NEST_INNER};
        parallel_for_grain(NEST_INNER, 10, nest_inner, &r);
    }
}

TEST(nested_loops_finish_and_cover)
{
    static const enum parallel_check modes[] = {PARALLEL_CHECK_OFF, PARALLEL_CHECK_EAGER,
                                                PARALLEL_CHECK_REVERSE};
    int *count = malloc((size_t)NEST_OUTER * NEST_INNER * sizeof(int));
    parallel_set_threads(2);
    for (size_t m = 0; m < 3; m++) {
        parallel_set_check(modes[m]);
        memset(count, 0, (size_t)NEST_OUTER * NEST_INNER * sizeof(int));
        struct nest n = {count};
        parallel_for(NEST_OUTER, nest_outer, &n);
        int wrong = 0;
        for (int i = 0; i < NEST_OUTER * NEST_INNER; i++)
            wrong += count[i] != 1;
        CHECK_MSG(wrong == 0, "mode %d: %d indices not covered exactly once", (int)modes[m],
                  wrong);
    }
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
    free(count);
}

enum { CONC_THREADS = 4, CONC_LOOPS = 200, CONC_N = 5000 };

struct conc {
    int count[CONC_N];
    int failures;
};

static void *conc_main(void *p)
{
    struct conc *c = p;
    for (int k = 0; k < CONC_LOOPS; k++)
        c->failures += cover_check(CONC_N, 1 + k % 97, c->count) != 0;
    return NULL;
}

TEST(concurrent_callers_finish_and_cover)
{
    static const enum parallel_check modes[] = {PARALLEL_CHECK_OFF, PARALLEL_CHECK_EAGER};
    parallel_set_threads(2);
    for (size_t m = 0; m < 2; m++) {
        parallel_set_check(modes[m]);
        struct conc *c = calloc(CONC_THREADS, sizeof *c);
        pthread_t th[CONC_THREADS];
        for (int i = 0; i < CONC_THREADS; i++)
            CHECK(pthread_create(&th[i], NULL, conc_main, &c[i]) == 0);
        for (int i = 0; i < CONC_THREADS; i++) {
            pthread_join(th[i], NULL);
            CHECK_MSG(c[i].failures == 0, "mode %d caller %d: %d bad loops", (int)modes[m], i,
                      c[i].failures);
        }
        free(c);
    }
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
}

/* ---- models: bit-identical whatever the threads --------------------------- */

/* Between them, every op strata's own models run as, in its parallel loops
 * (see the file comment). Model A, 40×40:
 *   conv 3×3 RGB, relu;
 *   conv 3×3 over 8, stride 1: col2im adds nine windows into each input
 *     value, so a split that changed their order would show;
 *   conv 3×3 over 16, 32 filters, no activation;
 *   batch norm relu (32 channels);
 *   max-pool 3 stride 1 (a value can win up to nine windows);
 *   conv 1×1 (the direct path), sigmoid;
 *   max-pool 3 stride 2 (overlapping windows);
 *   conv 3×3 stride 2, 24 filters;
 *   batch norm without activation (24 channels);
 *   relu layer; max-pool 2;
 *   conv 3×3 softmax (20 filters: a softmax over the channels); sigmoid
 *   layer; global average pool; dropout; dense softmax.
 * Model B: a 1×1 convolution with 2064 filters, then a softmax layer over
 * them and a dropout large enough to be split. */
static const char *model_a_json =
    "{\"id\":\"par-a\",\"input\":{\"height\":40,\"width\":40,\"channels\":3},"
    "\"classes\":[\"a\",\"b\",\"c\",\"d\",\"e\"],\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":8,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
    "{\"type\":\"conv2d\",\"filters\":16,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"padding\":\"same\"},"
    "{\"type\":\"batch_norm\",\"momentum\":0.9,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":3,\"strides\":1,\"padding\":\"same\"},"
    "{\"type\":\"conv2d\",\"filters\":16,\"kernel_size\":1,\"activation\":\"sigmoid\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":3,\"strides\":2},"
    "{\"type\":\"conv2d\",\"filters\":24,\"kernel_size\":3,\"strides\":2,\"activation\":\"relu\"},"
    "{\"type\":\"batch_norm\",\"momentum\":0.8},"
    "{\"type\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2,\"padding\":\"same\"},"
    "{\"type\":\"conv2d\",\"filters\":20,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"softmax\"},"
    "{\"type\":\"sigmoid\"},"
    "{\"type\":\"global_avg_pool\"},"
    "{\"type\":\"dropout\",\"rate\":0.25},"
    "{\"type\":\"dense\",\"units\":5,\"activation\":\"softmax\"}]}";

static const char *model_b_json =
    "{\"id\":\"par-b\",\"input\":{\"height\":6,\"width\":6,\"channels\":3},"
    "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":2064,\"kernel_size\":1,\"activation\":\"relu\"},"
    "{\"type\":\"softmax\"},"
    "{\"type\":\"dropout\",\"rate\":0.5},"
    "{\"type\":\"global_avg_pool\"},"
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}]}";

/* Everything one training step and one inference forward produce, laid end
 * to end; seg[i] is where the i-th named piece starts. */
struct snapshot {
    float *v;
    size_t len, cap;
    int nseg, segcap;
    size_t *seg;
    char (*names)[128];
};

static void snap_add(struct snapshot *s, const char *name, const float *x, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->v = realloc(s->v, s->cap * sizeof(float));
    }
    if (s->nseg == s->segcap) {
        s->segcap = s->segcap ? 2 * s->segcap : 64;
        s->seg = realloc(s->seg, (size_t)s->segcap * sizeof *s->seg);
        s->names = realloc(s->names, (size_t)s->segcap * sizeof *s->names);
    }
    memcpy(s->v + s->len, x, n * sizeof(float));
    s->seg[s->nseg] = s->len;
    snprintf(s->names[s->nseg], sizeof s->names[0], "%s", name);
    s->nseg++;
    s->len += n;
}

static void snap_free(struct snapshot *s)
{
    free(s->v);
    free(s->seg);
    free(s->names);
    memset(s, 0, sizeof *s);
}

/* One training step of the model on a fixed batch of n, on its training
 * graph (train_graph.h), then one inference forward (model_forward) with the
 * weights and running statistics the step left, all with the current thread
 * settings. The snapshot holds: the probabilities; every float value of the
 * training forward (each layer's output and what lies between) and the
 * gradient backward left on each; the gradient of every trainable tensor;
 * the weights and running statistics after an Adam step; every layer's
 * inference output. Returns 0 or -1. */
static int run_model(const char *json, int n, struct snapshot *s)
{
    char err[STRATA_ERR_LEN] = "", name[128];
    struct model m = {0};
    struct train_graph t = {0};
    struct optim o = {0};
    struct model_workspace ws = {0};
    float *x = NULL, *dl = NULL, *state = NULL;
    int *labels = NULL;
    int rc = -1;
    memset(s, 0, sizeof *s);
    if (model_parse_json(&m, json, "test", err) < 0)
        goto out;
    model_init_params(&m, 11);
    if (train_graph_init(&t, &m, n, 6, err) < 0)
        goto out;
    struct rng r;
    rng_seed(&r, 5);
    const size_t in_len = (size_t)n * shape_size(m.input);
    x = malloc(in_len * sizeof *x);
    labels = malloc((size_t)n * sizeof *labels);
    dl = malloc((size_t)n * m.n_classes * sizeof *dl);
    state = malloc(t.state_len * sizeof *state);
    for (size_t i = 0; i < in_len; i++)
        x[i] = (float)(2.0 * rng_uniform(&r) - 1.0);
    for (int i = 0; i < n; i++)
        labels[i] = i % m.n_classes;

    const float *p = train_graph_forward(&t, x, n, 1, err);
    if (!p)
        goto out;
    snap_add(s, "training probabilities", p, (size_t)n * m.n_classes);
    train_softmax_xent(p, labels, n, m.n_classes, NULL, 0, dl);
    if (train_graph_backward(&t, dl, err) < 0)
        goto out;
    const struct graph *g = &t.mg->g;
    for (int v = 0; v < g->n_values; v++) {
        const struct tview *val = graph_value_view(&t.ws, v), *grad = &t.ws.grads[v];
        if (g->values[v].kind != VALUE_NODE || val->dtype != DTYPE_FLOAT || !val->data)
            continue;
        snprintf(name, sizeof name, "training value %s", g->values[v].name);
        snap_add(s, name, tview_f(val), (size_t)tview_count(val));
        if (grad->data) {
            snprintf(name, sizeof name, "gradient of %s", g->values[v].name);
            snap_add(s, name, tview_f(grad), (size_t)tview_count(grad));
        }
    }
    struct optim_tensor ot[4 * MODEL_MAX_LAYERS];
    const int nt = train_graph_optim_tensors(&t, ot);
    for (int i = 0; i < nt; i++) {
        snprintf(name, sizeof name, "gradient of trainable tensor %d", i);
        snap_add(s, name, ot[i].grad, ot[i].len);
    }
    const struct optim_config adam = {.kind = OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f,
                                      .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-4f};
    if (optim_init_tensors(&o, ot, nt, &adam, err) < 0)
        goto out;
    optim_step(&o, 0.01f);
    train_graph_save(&t, state);
    snap_add(s, "weights and running statistics after the step", state, t.state_len);

    train_graph_to_model(&t, &m);
    if (model_workspace_init(&ws, &m, n, err) < 0)
        goto out;
    model_forward(&m, &ws, x, n);
    for (int i = 0; i < m.n_layers; i++) {
        snprintf(name, sizeof name, "inference output of layer %d (%s)", i, m.layers[i].cfg.name);
        snap_add(s, name, model_output(&ws, i), (size_t)n * shape_size(m.layers[i].out));
    }
    rc = 0;
out:
    if (rc < 0)
        printf("# %s\n", err);
    free(x);
    free(labels);
    free(dl);
    free(state);
    optim_free(&o);
    model_workspace_free(&ws);
    train_graph_free(&t);
    model_free(&m);
    return rc;
}

/* Bitwise comparison; prints the first difference. Returns 1 if equal. */
static int snap_equal(const struct snapshot *a, const struct snapshot *b, const char *what)
{
    if (a->len != b->len || a->nseg != b->nseg) {
        printf("# %s: snapshots of different sizes\n", what);
        return 0;
    }
    for (int k = 0; k < a->nseg; k++) {
        size_t end = k + 1 < a->nseg ? a->seg[k + 1] : a->len;
        for (size_t i = a->seg[k]; i < end; i++)
            if (memcmp(&a->v[i], &b->v[i], sizeof(float)) != 0) {
                printf("# %s: %s differs at %zu: %.9g vs %.9g\n", what, a->names[k],
                       i - a->seg[k], (double)a->v[i], (double)b->v[i]);
                return 0;
            }
    }
    return 1;
}

static void check_model_bits(const char *json, int n)
{
    struct snapshot ref, got;
    parallel_set_threads(1);
    parallel_set_check(PARALLEL_CHECK_OFF);
    CHECK(run_model(json, n, &ref) == 0);
    CHECK(ref.len > 0);

    static const struct {
        int threads;
        enum parallel_check mode;
        const char *what;
    } runs[] = {
        {2, PARALLEL_CHECK_REVERSE, "2 threads, pieces in reverse"},
        {3, PARALLEL_CHECK_REVERSE, "3 threads, pieces in reverse"},
        {2, PARALLEL_CHECK_EAGER, "2 threads"},
        {2, PARALLEL_CHECK_EAGER, "2 threads again"},
        {4, PARALLEL_CHECK_EAGER, "4 threads"},
        {2, PARALLEL_CHECK_OFF, "2 threads with back-off"},
    };
    long before = parallel_worker_pieces();
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        parallel_set_threads(runs[r].threads);
        parallel_set_check(runs[r].mode);
        CHECK(run_model(json, n, &got) == 0);
        CHECK_MSG(snap_equal(&ref, &got, runs[r].what), "%s differs from 1 thread",
                  runs[r].what);
        snap_free(&got);
    }
    /* The eager runs must really have shared work, or they proved little. */
    CHECK_MSG(parallel_worker_pieces() > before, "no piece ran on a worker");
    parallel_set_check(PARALLEL_CHECK_OFF);
    parallel_set_threads(0);
    printf("# %d pieces compared, %zu floats\n", ref.nseg, ref.len);
    snap_free(&ref);
}

TEST(layers_bit_identical_model_a)
{
    check_model_bits(model_a_json, 6);
}

TEST(layers_bit_identical_model_b)
{
    check_model_bits(model_b_json, 4);
}

/* ---- augmentation and whole training runs --------------------------------- */

/* train.c's parallel augmentation moves each piece's rng past the images
 * before it by augmenting 1×1 images: that is only right if augment_sample
 * draws the same values whatever the image. */
TEST(augment_draws_do_not_depend_on_the_image)
{
    static const struct augment_config cfgs[] = {
        {0},
        {.flip = 1},
        {.zoom = 0.2f, .translate = 0.1f},
        {.flip = 1, .zoom = 0.15f, .translate = 0.08f, .brightness = 0.2f, .contrast = 0.2f,
         .saturation = 0.2f},
    };
    const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.25f, 0.2f, 0.3f};
    enum { W = 37, H = 23 };
    uint8_t *img = malloc(W * H * 3);
    float *out = malloc(W * H * 3 * sizeof(float));
    struct rng pix;
    rng_seed(&pix, 77);
    for (int i = 0; i < W * H * 3; i++)
        img[i] = (uint8_t)rng_below(&pix, 256);
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        struct rng a, b;
        rng_seed(&a, 100 + c);
        rng_seed(&b, 100 + c);
        const uint8_t px[3] = {0, 0, 0};
        float one[3];
        for (int k = 0; k < 5; k++) {
            augment_sample(&cfgs[c], img, W, H, mean, std, out, &a);
            augment_sample(&cfgs[c], px, 1, 1, mean, std, one, &b);
        }
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "config %zu: the rng moved differently", c);
    }
    free(img);
    free(out);
}

static const char *train_json =
    "{\"id\":\"par-train\",\"input\":{\"height\":20,\"width\":20,\"channels\":3},"
    "\"normalization\":{\"mean\":[0.4,0.4,0.4],\"std\":[0.3,0.3,0.3]},"
    "\"classes\":[\"x\",\"y\",\"z\"],\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":16,\"kernel_size\":3,\"padding\":\"same\",\"use_bias\":false},"
    "{\"type\":\"batch_norm\",\"momentum\":0.9,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"padding\":\"same\",\"activation\":\"relu\"},"
    "{\"type\":\"global_avg_pool\"},"
    "{\"type\":\"dropout\",\"rate\":0.2},"
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}],"
    "\"training\":{\"epochs\":2,\"batch_size\":16,\"seed\":9,"
    "\"optimizer\":{\"type\":\"adam\",\"lr\":0.01},"
    "\"augment\":{\"flip\":true,\"zoom\":0.15,\"translate\":0.08,\"brightness\":0.2,"
    "\"contrast\":0.2,\"saturation\":0.2},\"validation_split\":0.2}}";

/* Trains the small model on fixed random images, with the given
 * training.rotation_labels; returns its parameters (malloc'd, *n_params of
 * them) or NULL. */
static float *train_small(size_t *n_params, float rotation_labels)
{
    char err[STRATA_ERR_LEN];
    enum { N = 60, S = 20 };
    uint8_t *pixels = malloc((size_t)N * S * S * 3);
    int labels[N];
    struct rng r;
    rng_seed(&r, 42);
    for (int i = 0; i < N; i++) {
        labels[i] = i % 3;
        for (int k = 0; k < S * S * 3; k++)
            pixels[(size_t)i * S * S * 3 + k] = (uint8_t)(rng_below(&r, 128) + 40 * labels[i]);
    }
    struct model m = {0};
    struct train_config cfg;
    struct train_report rep = {0};
    float *params = NULL;
    if (model_parse_json(&m, train_json, "test", err) < 0 ||
        train_config_parse(&cfg, json_object_get(m.json, "training"), "test", err) < 0) {
        printf("# %s\n", err);
        goto out;
    }
    cfg.rotation_labels = rotation_labels;
    model_init_params(&m, cfg.seed);
    if (train_run(&m, &cfg, pixels, labels, N, NULL, NULL, NULL, &rep, err) < 0) {
        printf("# %s\n", err);
        goto out;
    }
    train_report_free(&rep);
    params = malloc(m.n_params * sizeof(float));
    memcpy(params, m.params, m.n_params * sizeof(float));
    *n_params = m.n_params;
out:
    model_free(&m);
    free(pixels);
    return params;
}

TEST(training_runs_bit_identical)
{
    /* Plain, and with rotation labels (turned images go through a scratch
     * buffer on the pool). */
    for (int rot = 0; rot < 2; rot++) {
        size_t n_ref = 0, n_got = 0;
        parallel_set_threads(1);
        float *ref = train_small(&n_ref, rot ? 1.0f : 0.0f);
        CHECK(ref != NULL && n_ref > 0);
        static const struct {
            int threads;
            enum parallel_check mode;
        } runs[] = {{2, PARALLEL_CHECK_REVERSE}, {2, PARALLEL_CHECK_EAGER}, {3, PARALLEL_CHECK_EAGER}};
        for (size_t r = 0; r < sizeof runs / sizeof runs[0] && ref; r++) {
            parallel_set_threads(runs[r].threads);
            parallel_set_check(runs[r].mode);
            float *got = train_small(&n_got, rot ? 1.0f : 0.0f);
            CHECK(got != NULL && n_got == n_ref);
            if (got && n_got == n_ref) {
                size_t diff = 0;
                while (diff < n_ref && memcmp(&ref[diff], &got[diff], sizeof(float)) == 0)
                    diff++;
                CHECK_MSG(diff == n_ref,
                          "rotation labels %d, threads %d mode %d: parameter %zu differs (%.9g vs %.9g)",
                          rot, runs[r].threads, (int)runs[r].mode, diff,
                          diff < n_ref ? (double)ref[diff] : 0.0,
                          diff < n_ref ? (double)got[diff] : 0.0);
            }
            free(got);
        }
        parallel_set_check(PARALLEL_CHECK_OFF);
        parallel_set_threads(0);
        free(ref);
    }
}

int main(void)
{
    RUN(parallel_for_covers_every_index_once);
    RUN(parallel_for_plain_is_grain_one);
    RUN(workers_run_pieces_with_the_callers_rounding);
    RUN(thread_count_setting);
    RUN(nested_loops_finish_and_cover);
    RUN(concurrent_callers_finish_and_cover);
    RUN(layers_bit_identical_model_a);
    RUN(layers_bit_identical_model_b);
    RUN(augment_draws_do_not_depend_on_the_image);
    RUN(training_runs_bit_identical);
    return check_done();
}
