/*
 * cmd_bench.c — `strata bench MODEL`: how fast a forward pass runs, in
 * images per second and milliseconds per batch, on random input.
 *
 * MODEL is a model id (or folder), run as every strata command runs it
 * (model_forward: what predict, LIME and the analysis pay), or an .onnx file,
 * run by the graph executor alone (what `onnxruntime_perf_test` measures, so
 * the two can be compared on the same file).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "graph.h"
#include "onnx.h"
#include "reduce.h"

static const char *const bench_help =
    "Usage: strata bench <model-id | model-dir | file.onnx> [options]\n\n"
    "Times the forward pass on random input and prints images/s and ms per batch.\n"
    "A model id runs the way LIME and an evaluation run it (normalised images in,\n"
    "probabilities out); an .onnx file runs through the graph executor alone, as\n"
    "ONNX Runtime would run it.\n\n"
    "  --batch N      images per forward pass (default 1)\n"
    "  --threads T    threads (default: OpenBLAS's own choice)\n"
    "  --seconds S    how long to time, after the warm-up (default 3)\n"
    "  --warmup N     untimed passes first (default 2)\n"
    "  --input HxW    image size, for an .onnx file whose size is left open (default 224x224)\n"
    "  --capture      a model id: every layer's output kept and, after each pass,\n"
    "                 pooled into feature rows, as the analysis captures it (what it\n"
    "                 costs over a forward for the probabilities alone)\n"
    "  --json         print {\"model\", \"batch\", \"threads\", \"batches\", \"seconds\",\n"
    "                 \"images_per_s\", \"ms_per_batch\", \"ms_per_batch_min\"}\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n\n"
    "ms_per_batch is the median batch; images_per_s counts every image timed.\n";

static double now_s(void)
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

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Uniform floats in [-1, 1): the range of normalised pixels. */
static void fill_random(float *x, size_t n)
{
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
    }
}

/* One forward pass of whichever kind the command opened. */
struct bench_target {
    /* a model id */
    struct model model;
    struct model_workspace ws;
    int have_ws;
    /* an .onnx file */
    struct graph graph;
    struct graph_ws gws;
    int have_gws;
    struct tview x;
    float *data;
    int batch;
    /* --capture: one feature row per image and layer, as the analysis makes */
    float *rows;
};

static int open_onnx(struct bench_target *t, const char *file, int batch, int h, int w, char *err)
{
    if (onnx_load(&t->graph, file, err) < 0)
        return -1;
    if (t->graph.n_inputs != 1)
        return strata_fail(err, STRATA_E_ARG, "%s: the model has %d inputs; strata bench feeds one image batch",
                           file, t->graph.n_inputs);
    const struct tview *decl = &t->graph.values[t->graph.inputs[0]].init;
    if (decl->ndim != 4 || decl->dtype != DTYPE_FLOAT)
        return strata_fail(err, STRATA_E_ARG, "%s: the input is not a float N x C x H x W batch", file);
    if (decl->dims[0] > 0 && decl->dims[0] != batch)
        return strata_fail(err, STRATA_E_ARG, "%s: the batch size is fixed to %lld in the file; use --batch %lld",
                           file, (long long)decl->dims[0], (long long)decl->dims[0]);
    int64_t C = decl->dims[1] > 0 ? decl->dims[1] : 3;
    int64_t H = decl->dims[2] > 0 ? decl->dims[2] : h;
    int64_t W = decl->dims[3] > 0 ? decl->dims[3] : w;
    t->x = (struct tview){.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {batch, C, H, W}};
    size_t n = (size_t)batch * (size_t)(C * H * W);
    if (!(t->data = malloc(n * sizeof *t->data)))
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for a batch of %d", batch);
    fill_random(t->data, n);
    t->x.data = t->data;
    if (graph_ws_init(&t->gws, &t->graph, &t->x, 0, err) < 0)
        return -1;
    t->have_gws = 1;
    /* as a strata model runs it: activations fused into their convolutions
     * where nothing else reads the convolution's output */
    if (graph_ws_fuse(&t->gws, NULL, 0) < 0)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for the graph workspace");
    return 0;
}

static int open_model(struct bench_target *t, const char *models, const char *id, int batch,
                      int capture, char *err)
{
    if (model_open(&t->model, cli_models_root(models), id, err) < 0)
        return -1;
    if (model_workspace_init(&t->ws, &t->model, batch, err) < 0)
        return -1;
    t->have_ws = 1;
    /* without --capture, a forward for the probabilities alone, as LIME and
     * an evaluation run it; with it, every layer's output, as the analysis */
    if (!capture && model_workspace_probabilities_only(&t->ws, &t->model, err) < 0)
        return -1;
    fill_random(t->ws.input, (size_t)batch * shape_size(t->model.input));
    return 0;
}

/* Scratch rows for --capture: the widest layer's features for the batch. */
static int open_capture(struct bench_target *t, char *err)
{
    size_t most = 1;
    for (int l = 0; l < t->model.n_layers; l++) {
        struct shape s = t->model.layers[l].out;
        size_t d = (size_t)reduce_avgpool_dim(s.h, s.w, s.c, REDUCE_DEFAULT_GRID);
        most = d > most ? d : most;
    }
    if (!(t->rows = malloc(most * t->batch * sizeof *t->rows)))
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    return 0;
}

static int run_once(struct bench_target *t, char *err)
{
    if (t->have_gws)
        return graph_run(&t->gws, &t->x, err);
    model_forward(&t->model, &t->ws, t->ws.input, t->batch);
    for (int l = 0; t->rows && l < t->model.n_layers; l++) {
        /* as the analysis's capture does (analysis.c) */
        struct shape s = t->model.layers[l].out;
        const float *nchw = model_output_nchw(&t->ws, l);
        if (nchw)
            reduce_avgpool_nchw(nchw, t->batch, s.h, s.w, s.c, REDUCE_DEFAULT_GRID, t->rows);
        else
            reduce_avgpool(model_output(&t->ws, l), t->batch, s.h, s.w, s.c, REDUCE_DEFAULT_GRID,
                           t->rows);
    }
    return 0;
}

static void close_target(struct bench_target *t)
{
    if (t->have_gws)
        graph_ws_free(&t->gws);
    graph_deinit(&t->graph);
    free(t->data);
    free(t->rows);
    if (t->have_ws)
        model_workspace_free(&t->ws);
    model_free(&t->model);
}

int cmd_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"batch", required_argument, 0, 'b'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"warmup", required_argument, 0, 'w'},
                                         {"input", required_argument, 0, 'i'},
                                         {"json", no_argument, 0, 'j'},
                                         {"models", required_argument, 0, 'm'},
                                         {"capture", no_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int batch = 1, threads = 0, warmup = 2, json = 0, h = 224, w = 224, capture = 0, c;
    double seconds = 3;
    const char *models = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (cli_parse_int(optarg, 1, 4096, &batch))
                return cli_usage_error("bench", "--batch expects an integer from 1 to 4096, got '%s'", optarg);
            break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("bench", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 's': {
            char *end;
            seconds = strtod(optarg, &end);
            if (end == optarg || *end || !(seconds >= 0.01 && seconds <= 3600))
                return cli_usage_error("bench", "--seconds expects a number from 0.01 to 3600, got '%s'",
                                       optarg);
            break;
        }
        case 'w':
            if (cli_parse_int(optarg, 0, 1000, &warmup))
                return cli_usage_error("bench", "--warmup expects an integer from 0 to 1000, got '%s'", optarg);
            break;
        case 'i': {
            char tail;
            if (sscanf(optarg, "%dx%d%c", &h, &w, &tail) != 2 || h < 1 || w < 1 || h > 4096 || w > 4096)
                return cli_usage_error("bench", "--input expects HxW, such as 224x224, got '%s'", optarg);
            break;
        }
        case 'j': json = 1; break;
        case 'm': models = optarg; break;
        case 'c': capture = 1; break;
        case 'h': fputs(bench_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("bench", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("bench", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("bench", "expected one model (an id, a folder or an .onnx file)");
    const char *what = argv[optind];
    int used_threads = cli_set_threads(threads);

    char err[STRATA_ERR_LEN];
    struct bench_target t = {.batch = batch};
    double *times = NULL;
    int rc = EXIT_FAIL;
    if (capture && ends_with(what, ".onnx")) {
        cli_usage_error("bench", "--capture needs a model id: an .onnx file has no layers chosen");
        rc = EXIT_USAGE;
        goto done;
    }
    if ((ends_with(what, ".onnx") ? open_onnx(&t, what, batch, h, w, err)
                                  : open_model(&t, models, what, batch, capture, err)) < 0 ||
        (capture && open_capture(&t, err) < 0)) {
        cli_fail("bench", "%s", err);
        goto done;
    }
    for (int i = 0; i < warmup; i++)
        if (run_once(&t, err) < 0) {
            cli_fail("bench", "%s", err);
            goto done;
        }
    /* Batches are timed one by one until the time is up (and at least three,
     * for a median); the list grows by doubling, outside the timed calls. */
    size_t n = 0, cap = 64;
    if (!(times = malloc(cap * sizeof *times))) {
        cli_fail("bench", "out of memory");
        goto done;
    }
    cli_catch_sigint();
    double start = now_s(), end = start;
    while ((end - start < seconds || n < 3) && !cli_stop_requested) {
        if (n == cap) {
            double *grown = realloc(times, 2 * cap * sizeof *times);
            if (!grown) {
                cli_release_sigint();
                cli_fail("bench", "out of memory");
                goto done;
            }
            times = grown, cap *= 2;
        }
        double t0 = now_s();
        if (run_once(&t, err) < 0) {
            cli_release_sigint();
            cli_fail("bench", "%s", err);
            goto done;
        }
        end = now_s();
        times[n++] = end - t0;
    }
    cli_release_sigint();
    if (n == 0) {
        cli_fail("bench", "stopped before the first timed batch");
        goto done;
    }
    double total = end - start, ips = (double)n * batch / total;
    qsort(times, n, sizeof *times, cmp_double);
    double median = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
    const char *name = strrchr(what, '/') && ends_with(what, ".onnx") ? strrchr(what, '/') + 1 : what;
    const char *shown = t.model.id[0] ? t.model.id : name;
    if (json) {
        json_t *out = json_pack("{s:s, s:i, s:i, s:I, s:f, s:f, s:f, s:f}", "model", shown, "batch", batch,
                                "threads", used_threads, "batches", (json_int_t)n, "seconds", total,
                                "images_per_s", ips, "ms_per_batch", 1e3 * median, "ms_per_batch_min",
                                1e3 * times[0]);
        json_object_set_new(out, "capture", json_boolean(capture));
        json_dumpf(out, stdout, JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    }
    else
        printf("%s, batch %d, %d thread%s: %.1f images/s, %.2f ms per batch (median of %zu; fastest "
               "%.2f ms)\n",
               shown, batch, used_threads, used_threads == 1 ? "" : "s", ips,
               1e3 * median, n, 1e3 * times[0]);
    rc = EXIT_OK;
done:
    free(times);
    close_target(&t);
    return rc;
}
