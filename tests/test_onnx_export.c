/*
 * test_onnx_export.c — strata's own models written as ONNX (onnx_export)
 * and run back through the graph executor give the probabilities the layer
 * engine gives.
 *
 * Evidence: for each of the six committed demo models (the seed architecture
 * with a Flatten of a feature map, the deep ones with batch normalisation and
 * global pooling), a batch of 3 random normalised images goes through
 * model_forward (channels last) and, transposed to channels first, through
 * onnx_load + graph_run on the exported file: every probability agrees
 * within 1e-5. The two engines share no code on this path (layers/ against
 * ops/), so the export's layouts (HWIO to OIHW kernels, the Flatten order)
 * and attributes (SAME padding, epsilon) are what is checked. Also: an
 * imported model is refused, and an unwritable path is an I/O error.
 */
#include "check.h"
#include "graph.h"
#include "model.h"
#include "model_graph.h"
#include "onnx.h"
#include "onnx_export.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *models_root(void)
{
    const char *env = getenv("STRATA_MODELS");
    return env && *env ? env : "models";
}

static void export_matches(const char *id)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_open(&m, models_root(), id, err) < 0) {
        CHECK_MSG(0, "%s: %s", id, err);
        return;
    }
    CHECK(m.graph != NULL && m.graph->own); /* model_open runs inference on the graph... */
    model_graph_close(&m);                  /* ...which this test compares the layers with */
    char path[] = "/tmp/strata-export-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_MSG(onnx_export(&m, path, err) == 0, "%s: %s", id, err);

    enum { N = 3 };
    const int H = m.input.h, W = m.input.w, HW = H * W;
    struct model_workspace ws = {0};
    CHECK_MSG(model_workspace_init(&ws, &m, N, 0, err) == 0, "%s", err);
    float *nchw = malloc((size_t)N * 3 * HW * sizeof *nchw);
    uint64_t s = 12345;
    for (int i = 0; i < N * 3 * HW; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        ws.input[i] = (float)((s >> 11) * (1.0 / 9007199254740992.0)) * 4.0f - 2.0f;
    }
    /* channels last (strata) to channels first (the file) */
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++)
                nchw[((size_t)n * 3 + c) * HW + p] = ws.input[((size_t)n * HW + p) * 3 + c];
    model_forward(&m, &ws, ws.input, N, 0);
    const float *want = model_output(&ws, m.n_layers - 1);

    struct graph g = {0};
    struct graph_ws gws = {0};
    struct tview x = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {N, 3, H, W}, .data = nchw};
    int ok = onnx_load(&g, path, err) == 0;
    CHECK_MSG(ok, "%s: the export does not load: %s", id, err);
    if (ok && (ok = graph_ws_init(&gws, &g, &x, 0, err) == 0 && graph_run(&gws, &x, err) == 0)) {
        const struct tview *y = graph_value_view(&gws, g.outputs[0]);
        CHECK_EQ_INT(y->dims[0], N);
        CHECK_EQ_INT(y->dims[1], m.n_classes);
        double worst = 0;
        for (int i = 0; i < N * m.n_classes; i++)
            worst = fmax(worst, fabs((double)tview_f(y)[i] - want[i]));
        printf("# %s: %d layers, %d classes, max |layer engine - graph on the export| %.2g\n", id,
               m.n_layers, m.n_classes, worst);
        CHECK_MSG(worst < 1e-5, "%s: the export gives probabilities %g away", id, worst);
    }
    else
        CHECK_MSG(0, "%s: %s", id, err);
    if (ok)
        graph_ws_free(&gws);
    graph_deinit(&g);
    free(nchw);
    model_workspace_free(&ws);
    model_free(&m);
    unlink(path);
}

TEST(demo_models_export_and_run_back)
{
    const char *ids[] = {"felines", "paysages", "transports", "felines-seed", "paysages-seed",
                         "transports-seed"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        export_matches(ids[i]);
}

/* model_open runs a demo model's inference on the graph executor: every
 * layer's output, read through model_output (copied from the graph on first
 * read), is the layer engine's within 1e-4 of the layer's largest value, at
 * batch 1 and 5; a caller that reads only the probabilities copies no other
 * layer. */
static void graph_layers_match(const char *id)
{
    char err[STRATA_ERR_LEN] = "";
    struct model m = {0};
    if (model_open(&m, models_root(), id, err) < 0) {
        CHECK_MSG(0, "%s: %s", id, err);
        return;
    }
    enum { N = 5 };
    const size_t in = shape_size(m.input);
    float *x = malloc(N * in * sizeof *x);
    uint64_t s = 777;
    for (size_t i = 0; i < N * in; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((s >> 11) * (1.0 / 9007199254740992.0)) * 4.0f - 2.0f;
    }
    float **on_graph = calloc((size_t)m.n_layers, sizeof *on_graph);
    struct model_workspace ws = {0};
    CHECK_MSG(model_workspace_init(&ws, &m, N, 0, err) == 0, "%s", err);
    CHECK(ws.graph != NULL);
    for (int n = 1; n <= N; n += N - 1) {
        model_forward(&m, &ws, x, n, 0);
        const float *p = model_output(&ws, m.n_layers - 1);
        (void)p;
        int copied = 0;
        for (int l = 0; l < m.n_layers - 1; l++)
            copied += !ws.stale[l];
        CHECK_MSG(copied == 0, "%s: %d layers copied for the probabilities alone", id, copied);
        for (int l = 0; l < m.n_layers; l++) {
            size_t cnt = (size_t)n * shape_size(m.layers[l].out);
            free(on_graph[l]);
            on_graph[l] = malloc(cnt * sizeof(float));
            memcpy(on_graph[l], model_output(&ws, l), cnt * sizeof(float));
        }
    }
    model_workspace_free(&ws);
    model_graph_close(&m);
    CHECK_MSG(model_workspace_init(&ws, &m, N, 0, err) == 0, "%s", err);
    CHECK(ws.graph == NULL);
    model_forward(&m, &ws, x, N, 0);
    double worst = 0;
    for (int l = 0; l < m.n_layers; l++) {
        size_t cnt = (size_t)N * shape_size(m.layers[l].out);
        const float *want = model_output(&ws, l);
        double scale = 0, diff = 0;
        for (size_t i = 0; i < cnt; i++) {
            scale = fmax(scale, fabs(want[i]));
            diff = fmax(diff, fabs((double)want[i] - on_graph[l][i]));
        }
        worst = fmax(worst, diff / fmax(scale, 1e-12));
        CHECK_MSG(diff <= 1e-4 * fmax(scale, 1e-12), "%s layer %d (%s): %g off (largest %g)", id,
                  l, m.layers[l].cfg.name, diff, scale);
        free(on_graph[l]);
    }
    printf("# %s: every layer on the graph within %.2g of the layer engine (relative)\n", id, worst);
    free(on_graph);
    free(x);
    model_workspace_free(&ws);
    model_free(&m);
}

TEST(demo_models_run_on_the_graph)
{
    const char *ids[] = {"felines", "paysages", "transports", "felines-seed", "paysages-seed",
                         "transports-seed"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        graph_layers_match(ids[i]);
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
    RUN(demo_models_export_and_run_back);
    RUN(demo_models_run_on_the_graph);
    RUN(refusals);
    return check_done();
}
