/*
 * bench_forward.c — how fast strata's CNN runs on this machine, measured
 * against what this machine's BLAS can do.
 *
 *   1. the reference peak: sustained cblas_sgemm GFLOPS on large square
 *      matrices, with 2 threads and with 1;
 *   2. forward throughput of the seed architecture (150×150×3, conv 32 3×3
 *      relu, maxpool 2, conv 32 3×3 relu, maxpool 2, flatten, dense 128
 *      relu, dense 3 softmax; random weights) at batch 1 and 64;
 *   3. training throughput (forward + backward + Adam step) at batch 32, as
 *      strata's trainer takes it (train_graph.h), of the seed architecture
 *      and of every model.json named after the output path (a residual
 *      demo model, say: `bench_forward bench/results.json
 *      models/felines/model.json`), in the same rounds.
 *
 * Ratios are measured in paired rounds: a machine shared with others (a
 * virtual machine's neighbours) changes speed from one second to the next,
 * so a peak measured a minute before a workload misstates the ratio (runs
 * of the same binary minutes apart gave 39 % and 55 %). Each round measures
 * the 2-thread sgemm peak (4096 × 4096) and then every workload straight
 * after it; the reported ratio is the median over rounds of each round's
 * ratio, throughputs and the peak the medians of their own values.
 *
 * Every figure is the median of several runs. GFLOPS count the useful
 * multiply-adds of convolutions and dense layers (2 per MAC): forward F;
 * backward 2F, except the first layer, whose input gradient is not needed.
 * Writes a table to stdout and JSON to the path given (default
 * bench/results.json, merged with what other benches wrote there).
 */
#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "optim.h"
#include "train.h"
#include "train_graph.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Median GFLOPS of C = A·B for n×n matrices. */
static double sgemm_gflops(int n, int threads, int runs)
{
    openblas_set_num_threads(threads);
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float)),
          *c = malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = (float)(i % 7) * 0.1f, b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double t[16];
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = 2.0 * n * n * (double)n / (now() - t0) / 1e9;
    }
    free(a);
    free(b);
    free(c);
    return median(t, runs);
}

static const char *seed_json =
    "{\"id\":\"seed-bench\",\"input\":{\"height\":150,\"width\":150,\"channels\":3},"
    "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":["
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"conv2d\",\"filters\":32,\"kernel_size\":3,\"activation\":\"relu\"},"
    "{\"type\":\"maxpool2d\",\"pool_size\":2},"
    "{\"type\":\"flatten\"},"
    "{\"type\":\"dense\",\"units\":128,\"activation\":\"relu\"},"
    "{\"type\":\"dense\",\"units\":3,\"activation\":\"softmax\"}]}";

/* Useful FLOPs of one sample's forward pass, and of the layer-0 share. */
static double forward_flops(const struct model *m, double *first)
{
    double total = 0;
    *first = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct layer *l = &m->layers[i];
        double f = 0;
        if (l->cfg.kind == LAYER_CONV2D)
            f = 2.0 * l->out.h * l->out.w * l->cfg.kernel * l->cfg.kernel *
                (l->in.c / l->cfg.groups) * l->out.c;
        else if (l->cfg.kind == LAYER_DENSE)
            f = 2.0 * (double)shape_size(l->in) * l->out.c;
        if (i == 0)
            *first = f;
        total += f;
    }
    return total;
}

struct throughput {
    double images_per_s, gflops, ratio;
};

static struct throughput bench_forward(struct model *m, int batch, int runs, double flops, double peak)
{
    char err[STRATA_ERR_LEN];
    struct model_workspace ws;
    if (model_workspace_init(&ws, m, batch, err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    struct rng r;
    rng_seed(&r, 2);
    for (size_t i = 0; i < (size_t)batch * shape_size(m->input); i++)
        ws.input[i] = (float)rng_uniform(&r);
    /* Enough repetitions per run to last about half a second. */
    model_forward(m, &ws, ws.input, batch);
    double t0 = now();
    model_forward(m, &ws, ws.input, batch);
    int reps = (int)(0.5 / (now() - t0 + 1e-9)) + 1;
    double v[16];
    for (int k = 0; k < runs; k++) {
        t0 = now();
        for (int i = 0; i < reps; i++)
            model_forward(m, &ws, ws.input, batch);
        v[k] = (double)batch * reps / (now() - t0);
    }
    model_workspace_free(&ws);
    double ips = median(v, runs);
    return (struct throughput){ips, ips * flops / 1e9, ips * flops / 1e9 / peak};
}

/* Images/s of `step` (one training step of `batch` images on ctx): four
 * steps a run, the median of `runs` runs after one that warms up. */
static double steps_per_s(void (*step)(void *ctx), void *ctx, int batch, int runs)
{
    double v[16];
    for (int k = 0; k <= runs; k++) {
        int reps = 4;
        double t0 = now();
        for (int i = 0; i < reps; i++)
            step(ctx);
        if (k > 0) /* the first run warms up */
            v[k - 1] = (double)batch * reps / (now() - t0);
    }
    return median(v, runs);
}

/* What a training step needs besides its engine: random inputs, labels, the
 * loss's gradient, Adam. */
struct train_bench {
    struct model *m;
    int batch;
    float *in, *dl;
    int *labels;
    struct optim opt;
    struct train_graph tg;
    char err[STRATA_ERR_LEN];
};

static const struct optim_config bench_adam = {.kind = OPTIM_ADAM, .lr = 1e-4f, .beta1 = 0.9f,
                                               .beta2 = 0.999f, .eps = 1e-8f};

static void train_bench_data(struct train_bench *b, struct model *m, int batch)
{
    b->m = m;
    b->batch = batch;
    struct rng r;
    rng_seed(&r, 3);
    size_t n_in = (size_t)batch * shape_size(m->input);
    b->in = malloc(n_in * sizeof *b->in);
    b->labels = malloc((size_t)batch * sizeof(int));
    b->dl = malloc((size_t)batch * m->n_classes * sizeof(float));
    for (size_t i = 0; i < n_in; i++)
        b->in[i] = (float)rng_uniform(&r);
    for (int i = 0; i < batch; i++)
        b->labels[i] = i % m->n_classes;
}

static void train_bench_free(struct train_bench *b)
{
    free(b->in);
    free(b->labels);
    free(b->dl);
    optim_free(&b->opt);
}

static void graph_step(void *ctx)
{
    struct train_bench *b = ctx;
    const float *p = train_graph_forward(&b->tg, b->in, b->batch, 1, b->err);
    if (!p || (train_softmax_xent(p, b->labels, b->batch, b->m->n_classes, NULL, 0, b->dl),
               train_graph_backward(&b->tg, b->dl, b->err) < 0)) {
        fprintf(stderr, "%s\n", b->err);
        exit(1);
    }
    optim_step(&b->opt, 1e-4f);
}

/* The same step as strata's trainer takes it: on the model's graph
 * (train_graph.h), forward in training mode, backward to the weights, Adam. */
static struct throughput bench_train_graph(struct model *m, int batch, int runs, double flops,
                                           double peak)
{
    struct train_bench b = {0};
    struct optim_tensor *tensors = NULL;
    train_bench_data(&b, m, batch);
    if (train_graph_init(&b.tg, m, batch, 1, b.err) < 0 ||
        !(tensors = malloc((size_t)b.tg.n_params * sizeof *tensors)) ||
        optim_init_tensors(&b.opt, tensors, train_graph_optim_tensors(&b.tg, tensors), &bench_adam,
                           b.err) < 0) {
        fprintf(stderr, "%s\n", tensors ? b.err : "out of memory");
        exit(1);
    }
    double ips = steps_per_s(graph_step, &b, batch, runs);
    train_graph_free(&b.tg);
    train_bench_free(&b);
    free(tensors);
    return (struct throughput){ips, ips * flops / 1e9, ips * flops / 1e9 / peak};
}

/* Median of the ratios of the rounds (see the file comment). */
struct paired {
    double images_per_s, gflops, ratio;
};

static struct paired paired_median(const double *ips, const double *peak, int rounds, double flops)
{
    double v[32], r[32];
    for (int i = 0; i < rounds; i++) {
        v[i] = ips[i];
        r[i] = ips[i] * flops / 1e9 / peak[i];
    }
    double m = median(v, rounds);
    return (struct paired){m, m * flops / 1e9, median(r, rounds)};
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-') {
            /* an option is neither the results' path nor a model */
            fprintf(stderr, "usage: bench_forward [RESULTS.json [MODEL.json ...]]  (default "
                            "bench/results.json)\n");
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    const char *out_path = argc > 1 ? argv[1] : "bench/results.json";
    enum { RUNS = 7, ROUNDS = 9, PEAK_N = 4096, MAX_EXTRA = 8 };
    char err[STRATA_ERR_LEN];

    /* Further models whose training step is timed beside the seed's. */
    int n_extra = argc > 2 ? argc - 2 : 0;
    if (n_extra > MAX_EXTRA) {
        fprintf(stderr, "at most %d models after the output path\n", MAX_EXTRA);
        return 1;
    }
    struct model extra[MAX_EXTRA];
    memset(extra, 0, sizeof extra);
    double extra_flops[MAX_EXTRA], extra_ips[MAX_EXTRA][ROUNDS];
    for (int e = 0; e < n_extra; e++) {
        double first_e;
        if (model_load_json(&extra[e], argv[2 + e], err) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        model_init_params(&extra[e], 1);
        double f = forward_flops(&extra[e], &first_e);
        extra_flops[e] = f + 2 * f - first_e;
    }

    /* The sweep, for the table: which sizes reach the peak. */
    double peak1 = 0;
    for (int n = 1024; n <= PEAK_N; n *= 2) {
        double g1 = sgemm_gflops(n, 1, n == PEAK_N ? 3 : RUNS), g2 = sgemm_gflops(n, 2, n == PEAK_N ? 3 : RUNS);
        printf("sgemm %4d×%-4d   1 thread %7.1f GFLOPS   2 threads %7.1f GFLOPS\n", n, n, g1, g2);
        if (g1 > peak1)
            peak1 = g1;
    }

    struct model m = {0};
    if (model_parse_json(&m, seed_json, "seed architecture", err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    model_init_params(&m, 1);
    double first, fwd = forward_flops(&m, &first);
    double train_flops = fwd + 2 * fwd - first;

    double peak[ROUNDS], ips1[ROUNDS], ips64[ROUNDS], ipst[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        peak[r] = sgemm_gflops(PEAK_N, 2, 1);
        openblas_set_num_threads(2);
        ips1[r] = bench_forward(&m, 1, 1, fwd, peak[r]).images_per_s;
        ips64[r] = bench_forward(&m, 64, 1, fwd, peak[r]).images_per_s;
        ipst[r] = bench_train_graph(&m, 32, 1, train_flops, peak[r]).images_per_s;
        printf("round %d: peak %6.1f GFLOPS, forward batch 64 %6.1f images/s (%4.1f%%), train %6.1f images/s (%4.1f%%)",
               r + 1, peak[r], ips64[r], 100 * ips64[r] * fwd / 1e9 / peak[r], ipst[r],
               100 * ipst[r] * train_flops / 1e9 / peak[r]);
        for (int e = 0; e < n_extra; e++) {
            extra_ips[e][r] = bench_train_graph(&extra[e], 32, 1, extra_flops[e], peak[r]).images_per_s;
            printf(", %s train %.1f images/s (%.1f%%)", extra[e].id, extra_ips[e][r],
                   100 * extra_ips[e][r] * extra_flops[e] / 1e9 / peak[r]);
        }
        printf("\n");
        fflush(stdout);
    }
    model_free(&m);
    struct paired b1 = paired_median(ips1, peak, ROUNDS, fwd);
    struct paired b64 = paired_median(ips64, peak, ROUNDS, fwd);
    struct paired t32 = paired_median(ipst, peak, ROUNDS, train_flops);
    double peak2 = median(peak, ROUNDS);

    printf("\nreference peak (sgemm %d×%d, median of %d rounds): 2 threads %.1f GFLOPS; 1 thread %.1f GFLOPS\n",
           PEAK_N, PEAK_N, ROUNDS, peak2, peak1);
    printf("seed architecture 150×150: %.1f MFLOP per image forward, %.1f forward+backward\n\n",
           fwd / 1e6, train_flops / 1e6);
    printf("%-28s %12s %9s %12s\n", "measure", "images/s", "GFLOPS", "of peak");
    printf("%-28s %12.1f %9.1f %11.1f%%\n", "forward, batch 1", b1.images_per_s, b1.gflops, 100 * b1.ratio);
    printf("%-28s %12.1f %9.1f %11.1f%%\n", "forward, batch 64", b64.images_per_s, b64.gflops, 100 * b64.ratio);
    printf("%-28s %12.1f %9.1f %11.1f%%\n", "train step, batch 32", t32.images_per_s,
           t32.gflops, 100 * t32.ratio);
    json_t *models_train = json_object();
    for (int e = 0; e < n_extra; e++) {
        struct paired t = paired_median(extra_ips[e], peak, ROUNDS, extra_flops[e]);
        char label[128];
        snprintf(label, sizeof label, "train step, batch 32: %.60s", extra[e].id);
        printf("%-28s %12.1f %9.1f %11.1f%%\n", label, t.images_per_s, t.gflops, 100 * t.ratio);
        json_object_set_new(models_train, extra[e].id,
                            json_pack("{s:s, s:f, s:i, s:f, s:f, s:f}", "model_json", argv[2 + e],
                                      "mflop_per_image", extra_flops[e] / 1e6, "batch", 32,
                                      "images_per_s", t.images_per_s, "gflops", t.gflops,
                                      "ratio_to_peak", t.ratio));
        model_free(&extra[e]);
    }
    printf("(ratios: median over the rounds of each round's ratio)\n");

    json_t *root = json_load_file(out_path, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    json_object_set_new(root, "sgemm_peak_gflops",
                        json_pack("{s:f, s:f, s:i, s:i}", "threads_2", peak2, "threads_1", peak1,
                                  "n", PEAK_N, "rounds", ROUNDS));
    json_object_set_new(
        root, "seed_forward",
        json_pack("{s:f, s:{s:f, s:f, s:f}, s:{s:f, s:f, s:f}}", "mflop_per_image", fwd / 1e6, "batch_1",
                  "images_per_s", b1.images_per_s, "gflops", b1.gflops, "ratio_to_peak", b1.ratio,
                  "batch_64", "images_per_s", b64.images_per_s, "gflops", b64.gflops, "ratio_to_peak",
                  b64.ratio));
    json_object_set_new(root, "seed_train",
                        json_pack("{s:f, s:i, s:f, s:f, s:f}", "mflop_per_image", train_flops / 1e6,
                                  "batch", 32, "images_per_s", t32.images_per_s, "gflops", t32.gflops,
                                  "ratio_to_peak", t32.ratio));
    json_object_del(root, "seed_train_graph"); /* one engine: seed_train is the graph's */
    if (n_extra)
        json_object_set_new(root, "models_train", models_train);
    else
        json_decref(models_train);
    if (json_dump_file(root, out_path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(5)) != 0)
        fprintf(stderr, "cannot write %s\n", out_path);
    json_decref(root);
    return 0;
}
