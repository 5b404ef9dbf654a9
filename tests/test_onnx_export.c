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
 * normalisation with non-trivial statistics. Reading the probabilities alone
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

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A layer's output within LAYER_TOL of its largest magnitude, the
 * probabilities within PROB_TOL. Measured: at most 1.5e-6 and 6.3e-7 (see
 * the "#" lines); a layout or padding mistake is off by tens of percent. */
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
    const char *ids[] = {"felines", "paysages", "transports", "felines-seed", "paysages-seed",
                         "transports-seed"};
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
    CHECK_EQ_INT(m.n_layers, (int)(sizeof want / sizeof want[0]));
    for (int l = 0; l < m.n_layers && l < (int)(sizeof want / sizeof want[0]); l++)
        CHECK_MSG(m.layers[l].out.h == want[l].h && m.layers[l].out.w == want[l].w &&
                      m.layers[l].out.c == want[l].c,
                  "layer %d: %dx%dx%d", l, m.layers[l].out.h, m.layers[l].out.w,
                  m.layers[l].out.c);
    /* kernels as initialised; biases, gammas, betas and running statistics
     * drawn so that none of them is neutral */
    model_init_params(&m, 7);
    uint64_t s = 99;
    for (int l = 0; l < m.n_layers; l++) {
        struct layer_tensors *t = &m.layers[l].w;
        for (int i = 0; i < m.layers[l].out.c; i++) {
            if (t->bias)
                t->bias[i] = 0.25f * uniform(&s);
            if (t->gamma) {
                t->gamma[i] = 1 + 0.25f * uniform(&s);
                t->beta[i] = 0.5f * uniform(&s);
                t->moving_mean[i] = 0.25f * uniform(&s);
                t->moving_var[i] = 1 + 0.4f * uniform(&s);
            }
        }
    }
    check_against_reference(&m, 4242);
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
    RUN(refusals);
    return check_done();
}
