/*
 * test_onnx_export.c — strata's own models written as ONNX (onnx_export)
 * and run on the graph executor compute what the layers say they compute.
 *
 * Evidence: a batch of random normalised images goes through
 *  - model_forward, which runs the model on the graph built from its
 *    in-memory export (model_graph_from_layers), at batch 1 and 3;
 *  - the exported file (the same bytes onnx_export_bytes gives), loaded back
 *    with onnx_load and run with graph_run on the images channels first;
 * and every layer's output (read through model_output, or as the graph value
 * the exporter names for the layer) and the probabilities are compared with
 * ref_forward (ref_forward.c), a naive double-precision forward pass straight
 * from the layers and their parameters that shares no code with the export
 * or the ops: each layer within 1e-4 of its largest value, the probabilities
 * within 1e-5. The models: the six committed demo models (the seed
 * architecture, valid convolutions and a Flatten of a feature map; the deep
 * ones, SAME convolutions without bias, batch normalisation, global pooling
 * and dropout), and a small hand-built one with every layer kind and the
 * cases the demo models leave out — SAME padding that is uneven (more after
 * than before, a 4×4 kernel; stride 2 over an even and an odd size), a
 * max-pool over negative values with SAME padding and its own stride,
 * sigmoid and per-position softmax fused into a convolution, the standalone
 * activations, a dense layer straight after a feature map, batch
 * normalisation with non-trivial statistics; and one whose layers name their
 * inputs — residual adds (of two and of three inputs, with and without a
 * fused activation), concats of branches including the image, a pooled
 * vector beside a 1×1 map, dense layers reading a layer several places
 * back — with what each layer reads as model_graph_layer_inputs reports
 * it; and one of grouped and depthwise convolutions with relu6 and
 * hardswish. The file's metadata carries the class names, the normalisation and the
 * title (JSON that parses back to the model's values). Reading the
 * probabilities alone
 * copies no other layer out of the graph. Also: an imported model is
 * refused, and an unwritable path is an I/O error.
 */
#include "check.h"
#include "graph.h"
#include "model.h"
#include "model_graph.h"
#include "onnx.h"
#include "onnx_export.h"
#include "ref_forward.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A layer's output within LAYER_TOL of its largest magnitude, the
 * probabilities within PROB_TOL. Measured: at most 4e-6 (F(4×4, 3×3)
 * Winograd on the large early layers) and 4.7e-7 (see the "#" lines); a
 * layout or padding mistake is off by tens of percent. */
#define LAYER_TOL 1e-4
#define PROB_TOL 1e-5

enum { BATCH = 3 };

static const char *models_root(void)
{
    const char *env = getenv("STRATA_MODELS");
    return env && *env ? env : "models";
}

/* Uniform in [-2, 2), a normalised image's range (xorshift64). */
static float uniform(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) * (1.0 / 9007199254740992.0)) * 4.0f - 2.0f;
}

/* Largest |got − want| over n samples of shape s; got is NHWC, or channels
 * first when nchw is set. *scale receives the largest |want|. */
static double max_diff(const float *got, int nchw, const double *want, int n, struct shape s,
                       double *scale)
{
    const size_t hw = (size_t)s.h * s.w;
    double diff = 0;
    *scale = 0;
    for (int b = 0; b < n; b++)
        for (size_t p = 0; p < hw; p++)
            for (int c = 0; c < s.c; c++) {
                size_t i = ((size_t)b * hw + p) * s.c + c;
                size_t j = nchw ? ((size_t)b * s.c + c) * hw + p : i;
                *scale = fmax(*scale, fabs(want[i]));
                diff = fmax(diff, fabs((double)got[j] - want[i]));
            }
    return diff;
}

/* What one run gave against the reference: the worst layer (relative to
 * its largest value) and the probabilities (absolute). */
struct worst {
    double layer, prob;
};

/* Checks one layer's output (n samples) against the reference, and the
 * probabilities when l is the last layer. */
static void check_layer(const struct model *m, int l, const float *got, int nchw,
                        const double *want, int n, const char *what, struct worst *w)
{
    double scale, diff = max_diff(got, nchw, want, n, m->layers[l].out, &scale);
    double rel = diff / fmax(scale, 1e-12);
    w->layer = fmax(w->layer, rel);
    CHECK_MSG(rel <= LAYER_TOL, "%s, %s, layer %d (%s): %g off, its largest value %g", m->id,
              what, l, m->layers[l].cfg.name, diff, scale);
    if (l == m->n_layers - 1) {
        w->prob = fmax(w->prob, diff);
        CHECK_MSG(diff <= PROB_TOL, "%s, %s: probabilities %g off", m->id, what, diff);
    }
}

/* model_forward at batch 1 and BATCH against the reference. */
static struct worst check_model_forward(struct model *m, const float *x, double *const *ref)
{
    struct worst w = {0};
    char err[STRATA_ERR_LEN] = "";
    struct model_workspace ws = {0};
    if (model_workspace_init(&ws, m, BATCH, err) < 0) {
        CHECK_MSG(0, "%s: %s", m->id, err);
        return w;
    }
    CHECK(m->graph != NULL && m->graph->own);
    for (int n = 1; n <= BATCH; n += BATCH - 1) {
        model_forward(m, &ws, x, n);
        (void)model_output(&ws, m->n_layers - 1);
        int copied = 0;
        for (int l = 0; l < m->n_layers - 1; l++)
            copied += !ws.stale[l];
        CHECK_MSG(copied == 0, "%s: %d layers copied for the probabilities alone", m->id, copied);
        for (int l = 0; l < m->n_layers; l++)
            check_layer(m, l, model_output(&ws, l), 0, ref[l], n, "model_forward", &w);
    }
    model_workspace_free(&ws);
    return w;
}

/* Whether the file at path holds exactly bytes[len]. */
static int file_is(const char *path, const uint8_t *bytes, size_t len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    uint8_t *got = malloc(len + 1);
    int same = got && fread(got, 1, len + 1, f) == len && memcmp(got, bytes, len) == 0;
    free(got);
    fclose(f);
    return same;
}

/* The exported file, loaded back and run on the graph executor, against the
 * reference: every layer as the value the exporter names for it. */
static struct worst check_export_file(const struct model *m, const float *x, double *const *ref)
{
    struct worst w = {0};
    char err[STRATA_ERR_LEN] = "";
    char path[] = "/tmp/strata-export-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_MSG(onnx_export(m, path, err) == 0, "%s: %s", m->id, err);
    char (*names)[ONNX_EXPORT_NAME_LEN] = calloc((size_t)m->n_layers, sizeof *names);
    uint8_t *bytes = NULL;
    size_t len = 0;
    CHECK_MSG(onnx_export_bytes(m, &bytes, &len, names, err) == 0, "%s: %s", m->id, err);
    CHECK_MSG(file_is(path, bytes, len), "%s: the file is not the export's %zu bytes", m->id, len);
    free(bytes);

    /* channels last (strata) to channels first (the file) */
    const int H = m->input.h, W = m->input.w, HW = H * W;
    float *nchw = malloc((size_t)BATCH * 3 * HW * sizeof *nchw);
    for (int b = 0; b < BATCH; b++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++)
                nchw[((size_t)b * 3 + c) * HW + p] = x[((size_t)b * HW + p) * 3 + c];
    struct graph g = {0};
    struct graph_ws gws = {0};
    struct tview in = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {BATCH, 3, H, W}, .data = nchw};
    int loaded = onnx_load(&g, path, err) == 0;
    CHECK_MSG(loaded, "%s: the export does not load: %s", m->id, err);
    int ran = loaded && graph_ws_init(&gws, &g, &in, 0, err) == 0;
    ran = ran && graph_run(&gws, &in, err) == 0;
    CHECK_MSG(!loaded || ran, "%s: the export does not run: %s", m->id, err);
    for (int l = 0; ran && l < m->n_layers; l++) {
        struct shape s = m->layers[l].out;
        int v = graph_find_value(&g, names[l]);
        CHECK_MSG(v >= 0, "%s: layer %d's value '%s' is not in the file", m->id, l, names[l]);
        if (v < 0)
            continue;
        const struct tview *y = graph_value_view(&gws, v);
        /* a feature map [N, C, H, W], or a vector [N, F] */
        int fits = y->ndim == 4 ? y->dims[0] == BATCH && y->dims[1] == s.c && y->dims[2] == s.h &&
                                      y->dims[3] == s.w
                                : y->ndim == 2 && y->dims[0] == BATCH &&
                                      y->dims[1] == (int64_t)shape_size(s);
        CHECK_MSG(fits, "%s: layer %d (%s) is a value of %d dims [%lld, %lld, ...], not %dx%dx%d",
                  m->id, l, m->layers[l].cfg.name, y->ndim, (long long)y->dims[0],
                  (long long)y->dims[1], s.h, s.w, s.c);
        if (fits)
            check_layer(m, l, tview_f(y), y->ndim == 4, ref[l], BATCH, "the file", &w);
    }
    if (ran) {
        const struct tview *y = graph_value_view(&gws, g.outputs[0]);
        int fits = y->ndim == 2 && y->dims[0] == BATCH && y->dims[1] == m->n_classes;
        CHECK_MSG(fits, "%s: the file's output is not %d x %d", m->id, BATCH, m->n_classes);
        if (fits)
            check_layer(m, m->n_layers - 1, tview_f(y), 0, ref[m->n_layers - 1], BATCH,
                        "the file's output", &w);
        graph_ws_free(&gws);
    }
    graph_deinit(&g);
    free(nchw);
    free(names);
    unlink(path);
    return w;
}

/* m's layers give the per-image shapes want[0 … n), worked out by hand. */
static void check_shapes(const struct model *m, const struct shape *want, int n)
{
    CHECK_EQ_INT(m->n_layers, n);
    for (int l = 0; l < m->n_layers && l < n; l++)
        CHECK_MSG(m->layers[l].out.h == want[l].h && m->layers[l].out.w == want[l].w &&
                      m->layers[l].out.c == want[l].c,
                  "layer %d: %dx%dx%d", l, m->layers[l].out.h, m->layers[l].out.w,
                  m->layers[l].out.c);
}

/* Kernels as initialised (seed); biases, gammas, betas and running
 * statistics drawn from `draw` so that none of them is neutral. */
static void random_params(struct model *m, uint64_t seed, uint64_t draw)
{
    model_init_params(m, seed);
    for (int l = 0; l < m->n_layers; l++) {
        struct layer_tensors *t = &m->layers[l].w;
        for (int i = 0; i < m->layers[l].out.c; i++) {
            if (t->bias)
                t->bias[i] = 0.25f * uniform(&draw);
            if (t->gamma) {
                t->gamma[i] = 1 + 0.25f * uniform(&draw);
                t->beta[i] = 0.5f * uniform(&draw);
                t->moving_mean[i] = 0.25f * uniform(&draw);
                t->moving_var[i] = 1 + 0.4f * uniform(&draw);
            }
        }
    }
}

/* Both runs of m against the reference on BATCH random images. */
static void check_against_reference(struct model *m, uint64_t seed)
{
    char err[STRATA_ERR_LEN] = "";
    const size_t count = BATCH * shape_size(m->input);
    float *x = malloc(count * sizeof *x);
    for (size_t i = 0; i < count; i++)
        x[i] = uniform(&seed);
    double **ref = ref_forward(m, x, BATCH, err);
    CHECK_MSG(ref != NULL, "%s: %s", m->id, err);
    if (ref) {
        struct worst a = check_model_forward(m, x, ref);
        struct worst b = check_export_file(m, x, ref);
        printf("# %s: %d layers; worst layer (relative) / probabilities against the reference: "
               "model_forward %.2g / %.2g, the file %.2g / %.2g\n",
               m->id, m->n_layers, a.layer, a.prob, b.layer, b.prob);
    }
    ref_forward_free(m, ref);
    free(x);
}

TEST(demo_models_against_the_reference)
{
    const char *ids[] = {"felines",         "paysages",         "transports",
                         "felines-seed",    "paysages-seed",    "transports-seed",
                         "felines-residual", "transports-residual"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char err[STRATA_ERR_LEN] = "";
        struct model m = {0};
        if (model_open(&m, models_root(), ids[i], err) < 0) {
            CHECK_MSG(0, "%s: %s", ids[i], err);
            continue;
        }
        check_against_reference(&m, 12345 + i);
        model_free(&m);
    }
}

/* Every layer kind, and what the demo models leave out. Sizes per image:
 * 12x13x3 -> c1 (4x4, SAME: 1 before, 2 after) 12x13x6 -> mp1 (3x3 stride
 * 2, SAME: rows 0 before and 1 after, columns 1 and 1; over c1's values,
 * half of them negative, so a window of negatives at the border shows
 * whether padding can win) 6x7x6 -> r1, bn1 -> c2 (3x3 stride 2, SAME: rows
 * 0 and 1, columns 1 and 1) 3x4x8 -> c3 (2x2, VALID, no bias) 2x3x5 -> bn2,
 * sm, do -> d1 (from the feature map) 7 -> s1, f1 -> d2 3. */
static const char every_kind_json[] =
    "{\"id\":\"every-kind\",\"input\":{\"height\":12,\"width\":13,\"channels\":3},"
    "\"normalization\":{\"mean\":[0,0,0],\"std\":[1,1,1]},"
    "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":6,\"kernel_size\":4,\"padding\":\"same\"},"
    "{\"type\":\"maxpool2d\",\"name\":\"mp1\",\"pool_size\":3,\"strides\":2,\"padding\":\"same\"},"
    "{\"type\":\"relu\",\"name\":\"r1\"},"
    "{\"type\":\"batch_norm\",\"name\":\"bn1\",\"epsilon\":0.01},"
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":8,\"kernel_size\":3,\"strides\":2,"
    "\"padding\":\"same\",\"activation\":\"sigmoid\"},"
    "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":5,\"kernel_size\":2,\"use_bias\":false,"
    "\"activation\":\"softmax\"},"
    "{\"type\":\"batch_norm\",\"name\":\"bn2\",\"activation\":\"relu\"},"
    "{\"type\":\"softmax\",\"name\":\"sm\"},"
    "{\"type\":\"dropout\",\"name\":\"do\",\"rate\":0.3},"
    "{\"type\":\"dense\",\"name\":\"d1\",\"units\":7,\"activation\":\"relu\"},"
    "{\"type\":\"sigmoid\",\"name\":\"s1\"},"
    "{\"type\":\"flatten\",\"name\":\"f1\"},"
    "{\"type\":\"dense\",\"name\":\"d2\",\"units\":3,\"activation\":\"softmax\"}]}";

TEST(every_layer_kind_against_the_reference)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_parse_json(&m, every_kind_json, "every-kind", err) < 0) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const struct shape want[] = {{12, 13, 6}, {6, 7, 6},   {6, 7, 6},   {6, 7, 6}, {3, 4, 8},
                                 {2, 3, 5},   {2, 3, 5},   {2, 3, 5},   {2, 3, 5}, {1, 1, 7},
                                 {1, 1, 7},   {1, 1, 7},   {1, 1, 3}};
    check_shapes(&m, want, (int)(sizeof want / sizeof want[0]));
    random_params(&m, 7, 99);
    check_against_reference(&m, 4242);
    model_free(&m);
}

/* Layers that name their inputs: a residual block (a stem and two layers,
 * added back with a fused relu), an add of three inputs, concats of
 * branches (one the image itself; one of a pooled vector beside a 1×1 map,
 * flat and channels-first in the graph), and dense layers reading a layer
 * several places back. Sizes per image: 10x9x3 -> stem, a1, a2, res, add3
 * 10x9x6 -> cat (add3, the image, a1) 10x9x15 -> pool (2, SAME) 5x5x15 ->
 * g1 (global pool) 15 and p1 (5x5 stride 5 over pool) 1x1x15 -> joined 30
 * -> d1 5; d2 (from g1) 5 -> dd (d1 + d2) 5 -> out 4. */
static const char residual_json[] =
    "{\"id\":\"residual\",\"input\":{\"height\":10,\"width\":9,\"channels\":3},"
    "\"classes\":[\"a\",\"b\",\"c\",\"d\"],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"stem\",\"filters\":6,\"kernel_size\":3,\"padding\":\"same\","
    "\"activation\":\"relu\"},"
    "{\"type\":\"conv2d\",\"name\":\"a1\",\"filters\":6,\"kernel_size\":3,\"padding\":\"same\"},"
    "{\"type\":\"batch_norm\",\"name\":\"a2\",\"activation\":\"sigmoid\"},"
    "{\"type\":\"add\",\"name\":\"res\",\"inputs\":[\"stem\",\"a2\"],\"activation\":\"relu\"},"
    "{\"type\":\"add\",\"name\":\"add3\",\"inputs\":[\"res\",\"stem\",\"a1\"]},"
    "{\"type\":\"concat\",\"name\":\"cat\",\"inputs\":[\"add3\",\"input\",\"a1\"]},"
    "{\"type\":\"maxpool2d\",\"name\":\"pool\",\"pool_size\":2,\"padding\":\"same\"},"
    "{\"type\":\"global_avg_pool\",\"name\":\"g1\"},"
    "{\"type\":\"conv2d\",\"name\":\"p1\",\"filters\":15,\"kernel_size\":5,\"inputs\":[\"pool\"],"
    "\"strides\":5},"
    "{\"type\":\"concat\",\"name\":\"joined\",\"inputs\":[\"g1\",\"p1\"]},"
    "{\"type\":\"dense\",\"name\":\"d1\",\"units\":5,\"activation\":\"relu\"},"
    "{\"type\":\"dense\",\"name\":\"d2\",\"units\":5,\"inputs\":[\"g1\"]},"
    "{\"type\":\"add\",\"name\":\"dd\",\"inputs\":[\"d1\",\"d2\"]},"
    "{\"type\":\"dense\",\"name\":\"out\",\"units\":4,\"activation\":\"softmax\"}]}";

TEST(layers_that_name_their_inputs_against_the_reference)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_parse_json(&m, residual_json, "residual", err) < 0) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const struct shape want[] = {{10, 9, 6},  {10, 9, 6}, {10, 9, 6}, {10, 9, 6}, {10, 9, 6},
                                 {10, 9, 15}, {5, 5, 15}, {1, 1, 15}, {1, 1, 15}, {1, 1, 30},
                                 {1, 1, 5},   {1, 1, 5},  {1, 1, 5},  {1, 1, 4}};
    check_shapes(&m, want, (int)(sizeof want / sizeof want[0]));
    /* what each reads, as the API and the analysis see it */
    int from[LAYER_MAX_INPUTS];
    CHECK_EQ_INT(model_graph_layer_inputs(&m, 5, from, LAYER_MAX_INPUTS), 3);
    CHECK(from[0] == -1 && from[1] == 1 && from[2] == 4);
    CHECK_EQ_INT(model_graph_layer_inputs(&m, 11, from, LAYER_MAX_INPUTS), 1);
    CHECK_EQ_INT(from[0], 7);
    random_params(&m, 11, 5);
    check_against_reference(&m, 777);
    model_free(&m);
}

/* Grouped and depthwise convolutions and the activations of mobile networks:
 * a stem with relu6, a depthwise 3×3 (groups = channels, stride 2, SAME)
 * with relu6, a pointwise 1×1 with hardswish, a residual add, a convolution
 * in 2 groups (each filter reads half the channels), hardswish fused into a
 * batch norm, then a global pool and a dense softmax. Per image 11x10x3 ->
 * stem 11x10x8 -> dw 6x5x8 -> pw 6x5x8 -> res 6x5x8 -> g2 6x5x6 -> bn ->
 * gap 6 -> out 3. */
static const char mobile_json[] =
    "{\"id\":\"mobile\",\"input\":{\"height\":11,\"width\":10,\"channels\":3},"
    "\"classes\":[\"a\",\"b\",\"c\"],\"layers\":["
    "{\"type\":\"conv2d\",\"name\":\"stem\",\"filters\":8,\"kernel_size\":3,\"padding\":\"same\","
    "\"activation\":\"relu6\"},"
    "{\"type\":\"conv2d\",\"name\":\"dw\",\"filters\":8,\"kernel_size\":3,\"strides\":2,"
    "\"padding\":\"same\",\"groups\":8,\"activation\":\"relu6\"},"
    "{\"type\":\"conv2d\",\"name\":\"pw\",\"filters\":8,\"kernel_size\":1,\"activation\":\"hardswish\"},"
    "{\"type\":\"add\",\"name\":\"res\",\"inputs\":[\"dw\",\"pw\"]},"
    "{\"type\":\"conv2d\",\"name\":\"g2\",\"filters\":6,\"kernel_size\":3,\"padding\":\"same\","
    "\"groups\":2},"
    "{\"type\":\"batch_norm\",\"name\":\"bn\",\"activation\":\"hardswish\"},"
    "{\"type\":\"global_avg_pool\",\"name\":\"gap\"},"
    "{\"type\":\"dense\",\"name\":\"out\",\"units\":3,\"activation\":\"softmax\"}]}";

TEST(grouped_convolutions_and_mobile_activations_against_the_reference)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_parse_json(&m, mobile_json, "mobile", err) < 0) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    const struct shape want[] = {{11, 10, 8}, {6, 5, 8}, {6, 5, 8}, {6, 5, 8},
                                 {6, 5, 6},   {6, 5, 6}, {1, 1, 6}, {1, 1, 3}};
    check_shapes(&m, want, (int)(sizeof want / sizeof want[0]));
    /* a depthwise kernel reads one channel per filter, a 2-group one half */
    CHECK(m.n_params > 0 && m.layers[1].w.bias - m.layers[1].w.kernel == 3 * 3 * 1 * 8);
    CHECK(m.layers[4].w.bias - m.layers[4].w.kernel == 3 * 3 * 4 * 6);
    random_params(&m, 3, 17);
    /* wide enough inputs that relu6 and hardswish meet every piece of their
     * definitions (below 0 or −3, between, above 6 or 3) */
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < m.layers[l].out.c; i++)
            m.layers[l].w.bias[i] *= 8;
    check_against_reference(&m, 99);
    model_free(&m);
}

/* The metadata an export carries: the class names, the normalisation and the
 * title, as JSON a reader parses back to the model's own values. */
TEST(metadata_says_what_onnx_does_not)
{
    char err[STRATA_ERR_LEN] = "", path[] = "/tmp/strata_meta_XXXXXX";
    struct model m = {0};
    if (model_open(&m, models_root(), "felines-seed", err) < 0) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_MSG(onnx_export(&m, path, err) == 0, "%s", err);
    struct onnx_metadata md;
    CHECK_MSG(onnx_read_metadata(path, &md, err) == 0, "%s", err);
    const char *cls = onnx_metadata_get(&md, "strata.classes");
    const char *mean = onnx_metadata_get(&md, "strata.mean");
    const char *sd = onnx_metadata_get(&md, "strata.std");
    const char *title = onnx_metadata_get(&md, "strata.title");
    CHECK(cls && mean && sd && title);
    CHECK(onnx_metadata_get(&md, "strata.nothing") == NULL);
    if (cls && mean && sd && title) {
        json_t *c = json_loads(cls, 0, NULL), *mu = json_loads(mean, 0, NULL),
               *s = json_loads(sd, 0, NULL);
        CHECK(json_is_array(c) && (int)json_array_size(c) == m.n_classes);
        for (int k = 0; k < m.n_classes && json_is_array(c); k++)
            CHECK(strcmp(json_string_value(json_array_get(c, (size_t)k)), m.classes[k]) == 0);
        for (int k = 0; k < 3; k++) {
            CHECK_NEAR(json_number_value(json_array_get(mu, (size_t)k)), m.mean[k], 1e-7);
            CHECK_NEAR(json_number_value(json_array_get(s, (size_t)k)), m.std[k], 1e-7);
        }
        CHECK(strcmp(title, m.title) == 0);
        json_decref(c);
        json_decref(mu);
        json_decref(s);
    }
    onnx_metadata_free(&md);
    /* not an ONNX file: an error, not a crash */
    FILE *f = fopen(path, "w");
    fputs("not a model", f);
    fclose(f);
    CHECK(onnx_read_metadata(path, &md, err) < 0);
    CHECK(md.n == 0 && md.keys == NULL);
    unlink(path);
    model_free(&m);
}

TEST(refusals)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_open(&m, models_root(), "felines-seed", err) < 0) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    CHECK_EQ_INT(onnx_export(&m, "/nonexistent-dir/x.onnx", err), STRATA_E_IO);
    CHECK_MSG(strstr(err, "/nonexistent-dir/x.onnx") != NULL, "%s", err);
    /* an imported model's export is its own file */
    snprintf(m.onnx, sizeof m.onnx, "model.onnx");
    CHECK_EQ_INT(onnx_export(&m, "/tmp/never-written.onnx", err), STRATA_E_ARG);
    CHECK_MSG(strstr(err, "imported") != NULL, "%s", err);
    CHECK(access("/tmp/never-written.onnx", F_OK) != 0);
    m.onnx[0] = '\0';
    model_free(&m);
}

int main(void)
{
    RUN(demo_models_against_the_reference);
    RUN(every_layer_kind_against_the_reference);
    RUN(layers_that_name_their_inputs_against_the_reference);
    RUN(grouped_convolutions_and_mobile_activations_against_the_reference);
    RUN(metadata_says_what_onnx_does_not);
    RUN(refusals);
    return check_done();
}
