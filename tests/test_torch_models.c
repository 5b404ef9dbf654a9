/*
 * test_torch_models.c — real architectures exported from PyTorch
 * (scripts/onnx/export_torchvision.py: ResNet-18, MobileNetV2,
 * MobileNetV3-small, EfficientNet-B0, SqueezeNet 1.1, DenseNet-121,
 * ShuffleNetV2-x0.5, random weights with BatchNorm statistics estimated
 * first) run as imported strata models on real photos: every class
 * probability must match PyTorch's within 1e-4, image by image at batch 1 and
 * all together at batch 16.
 *
 * The exports and PyTorch's probabilities are made once per test run by
 * scripts/test into $STRATA_ONNX_REFS (PyTorch runs there, never here); the
 * photos are PNG files at the input size, so strata decodes exactly the
 * pixels PyTorch saw. Without that folder the test is skipped with the reason.
 *
 * Grad-CAM on ResNet-18, through strata's own gradients of the ONNX graph,
 * against the same computation in PyTorch (hooks on layer4[-1], as
 * pytorch-grad-cam): the 7×7 map before upsampling within 1e-4 of its
 * largest value, the upsampled map scaled to [0, 1] within 1e-4.
 */
#include "check.h"
#include "model_graph.h"
#include "gradcam.h"
#include "image.h"
#include "model.h"
#include "model_grad.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOLERANCE 1e-4

static const char *const archs[] = {"resnet18",        "mobilenet_v2", "mobilenet_v3_small",
                                    "efficientnet_b0", "squeezenet1_1", "densenet121",
                                    "shufflenet_v2_x0_5"};

static const char *refs_dir(void)
{
    const char *d = getenv("STRATA_ONNX_REFS");
    return d && d[0] ? d : NULL;
}

/* Writes <tmp>/<arch>/model.json naming the reference's .onnx (linked). */
static int make_model_dir(const char *refs, const char *arch, const json_t *ref, char *dir,
                          size_t len)
{
    snprintf(dir, len, "%s/models/%s", refs, arch);
    char path[1400], target[1400];
    snprintf(path, sizeof path, "%s/models", refs);
    mkdir(path, 0755);
    mkdir(dir, 0755);
    int K = (int)json_array_size(json_array_get(json_object_get(ref, "probs_batch1"), 0));
    json_t *classes = json_array();
    for (int k = 0; k < K; k++) {
        char name[16];
        snprintf(name, sizeof name, "c%d", k);
        json_array_append_new(classes, json_string(name));
    }
    json_t *input = json_object_get(ref, "input");
    json_t *j = json_pack("{s:s, s:{s:O, s:O, s:i}, s:{s:O, s:O}, s:o, s:s}", "id", arch, "input",
                          "height", json_array_get(input, 0), "width", json_array_get(input, 1),
                          "channels", 3, "normalization", "mean", json_object_get(ref, "mean"),
                          "std", json_object_get(ref, "std"), "classes", classes, "onnx",
                          "model.onnx");
    snprintf(path, sizeof path, "%s/model.json", dir);
    int rc = json_dump_file(j, path, JSON_INDENT(1));
    json_decref(j);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    snprintf(target, sizeof target, "%s/%s", refs, json_string_value(json_object_get(ref, "onnx")));
    unlink(path);
    return rc || symlink(target, path);
}

/* Largest |strata - torch| over images [0, n) of probs (strata) against
 * rows of want. */
static double max_diff(const float *probs, const json_t *want, int first, int n, int K)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const json_t *row = json_array_get(want, (size_t)(first + i));
        for (int k = 0; k < K; k++) {
            double d = fabs(probs[(size_t)i * K + k] - json_real_value(json_array_get(row, (size_t)k)));
            worst = d > worst ? d : worst;
        }
    }
    return worst;
}

static void check_arch(const char *arch)
{
    const char *refs = refs_dir();
    char path[1400], dir[1200], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/%s.reference.json", refs, arch);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    CHECK_MSG(ref != NULL, "%s: %s", path, je.text);
    if (!ref)
        return;
    CHECK(make_model_dir(refs, arch, ref, dir, sizeof dir) == 0);
    struct model m = {0};
    int rc = model_open(&m, NULL, dir, err);
    CHECK_MSG(rc == 0, "%s", err);
    json_t *images = json_object_get(ref, "images");
    int n = (int)json_array_size(images), K = m.n_classes;
    CHECK(n == 16);
    if (rc == 0 && n > 0) {
        size_t in = (size_t)m.input.h * m.input.w * 3;
        float *x = malloc((size_t)n * in * sizeof *x);
        for (int i = 0; i < n; i++) {
            struct image img = {0};
            snprintf(path, sizeof path, "%s/%s", refs,
                     json_string_value(json_array_get(images, (size_t)i)));
            CHECK_MSG(image_load(path, &img, err) == 0, "%s", err);
            CHECK(img.w == m.input.w && img.h == m.input.h);
            if (img.rgb)
                model_normalise(&m, img.rgb, x + (size_t)i * in);
            image_free(&img);
        }
        struct model_workspace ws;
        CHECK_MSG(model_workspace_init(&ws, &m, n, err) == 0, "%s", err);
        double worst1 = 0, worst16;
        for (int i = 0; i < n; i++) {
            model_forward(&m, &ws, x + (size_t)i * in, 1);
            double d = max_diff(model_output(&ws, m.n_layers - 1),
                                json_object_get(ref, "probs_batch1"), i, 1, K);
            worst1 = d > worst1 ? d : worst1;
        }
        model_forward(&m, &ws, x, n);
        worst16 = max_diff(model_output(&ws, m.n_layers - 1), json_object_get(ref, "probs_batch16"),
                           0, n, K);
        printf("# %s: %d classes, %d layers shown; max |strata - torch| %.2g at batch 1, %.2g at "
               "batch 16\n",
               arch, K, m.n_layers, worst1, worst16);
        CHECK(worst1 <= TOLERANCE);
        CHECK(worst16 <= TOLERANCE);
        /* the probabilities must say something: not all equal */
        const float *p = model_output(&ws, m.n_layers - 1);
        float lo = p[0], hi = p[0];
        for (int k = 0; k < K; k++) {
            lo = p[k] < lo ? p[k] : lo;
            hi = p[k] > hi ? p[k] : hi;
        }
        CHECK_MSG(hi - lo > 1e-3, "%s: flat probabilities (%.3g to %.3g)", arch, lo, hi);
        model_workspace_free(&ws);
        free(x);
    }
    model_free(&m);
    json_decref(ref);
}

static void check_gradcam(void)
{
    const char *refs = refs_dir();
    char path[1400], dir[1200], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/resnet18.reference.json", refs);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    json_t *gc = ref ? json_object_get(ref, "gradcam") : NULL;
    CHECK_MSG(gc != NULL, "%s has no Grad-CAM reference", path);
    if (!gc) {
        json_decref(ref);
        return;
    }
    CHECK(make_model_dir(refs, "resnet18", ref, dir, sizeof dir) == 0);
    struct model m = {0};
    struct model_grad mg;
    CHECK_MSG(model_open(&m, NULL, dir, err) == 0, "%s", err);
    CHECK_MSG(model_grad_init(&mg, &m, 1, err) == 0, "%s", err);
    int layer = model_grad_find_layer(&mg, NULL, err);
    CHECK_MSG(layer >= 0, "%s", err);
    const int H = m.input.h, W = m.input.w;
    float *x = malloc(3 * (size_t)H * W * sizeof *x), *map = malloc((size_t)H * W * sizeof *map);
    json_t *classes = json_object_get(gc, "classes"), *maps = json_object_get(gc, "maps");
    json_t *cams = json_object_get(gc, "cams");
    int n = (int)json_array_size(classes);
    CHECK(n == 3);
    for (int i = 0; i < n && layer >= 0; i++) {
        struct image img = {0};
        snprintf(path, sizeof path, "%s/%s", refs,
                 json_string_value(json_array_get(json_object_get(ref, "images"), (size_t)i)));
        CHECK_MSG(image_load(path, &img, err) == 0, "%s", err);
        if (!img.rgb)
            continue;
        model_grad_image(&mg, img.rgb, x);
        image_free(&img);
        int cls = (int)json_integer_value(json_array_get(classes, (size_t)i));
        CHECK_MSG(gradcam_compute(&mg, x, cls, layer, map, err) == 0, "%s", err);
        /* the map before upsampling: recomputed from the layer as gradcam.h defines it */
        const struct tview *a = model_grad_value(&mg, layer), *da = model_grad_gradient(&mg, layer);
        CHECK(a->dims[2] == 7 && a->dims[3] == 7);
        const int C = (int)a->dims[1];
        double worst_cam = 0, cam_max = 0, lo = INFINITY, hi = -INFINITY;
        for (int p = 0; p < 49; p++) {
            double v = 0;
            for (int k = 0; k < C; k++) {
                double alpha = 0;
                for (int q = 0; q < 49; q++)
                    alpha += tview_f(da)[k * 49 + q];
                v += alpha / 49 * tview_f(a)[k * 49 + p];
            }
            v = v > 0 ? v : 0;
            double want = json_real_value(json_array_get(json_array_get(json_array_get(cams, (size_t)i), (size_t)(p / 7)), (size_t)(p % 7)));
            cam_max = fmax(cam_max, fabs(want));
            worst_cam = fmax(worst_cam, fabs(v - want));
        }
        for (int p = 0; p < H * W; p++) {
            lo = fmin(lo, map[p]);
            hi = fmax(hi, map[p]);
        }
        double worst = 0;
        json_t *want = json_array_get(maps, (size_t)i);
        for (int p = 0; p < H * W; p++) {
            double v = (map[p] - lo) / (1e-7 + (hi - lo));
            worst = fmax(worst, fabs(v - json_real_value(json_array_get(want, (size_t)p))));
        }
        printf("# resnet18 Grad-CAM, image %d, class %d: 7x7 map max |strata - torch| %.2g "
               "(largest value %.3g); scaled 224x224 map %.2g\n", i, cls, worst_cam, cam_max, worst);
        CHECK(cam_max > 0);
        CHECK(worst_cam <= 1e-4 * cam_max);
        CHECK(worst <= 1e-4);
    }
    free(x);
    free(map);
    model_grad_deinit(&mg);
    model_free(&m);
    json_decref(ref);
}

/* ResNet-18's layers: the default choice, a residual sum's two inputs (the
 * block's own path and the skip), and a choice by name in model.json. */
static void check_layer_choice(void)
{
    const char *refs = refs_dir();
    char path[1400], dir[1200], err[STRATA_ERR_LEN];
    snprintf(path, sizeof path, "%s/resnet18.reference.json", refs);
    json_t *ref = json_load_file(path, 0, NULL);
    CHECK(ref != NULL && make_model_dir(refs, "resnet18", ref, dir, sizeof dir) == 0);
    struct model m = {0};
    CHECK_MSG(model_open(&m, NULL, dir, err) == 0, "%s", err);
    /* by default: the stem's Relu and pool, each block's two Relus (an Add
     * followed by a Relu shows once, as the Relu), the pooled features,
     * logits, probabilities */
    CHECK_EQ_INT(m.n_layers, 2 + 8 * 2 + 3);
    struct model_graph_value *v;
    int n = 0, shown = 0, by_default = 0;
    CHECK_MSG(model_graph_values(&m, &v, &n, err) == 0, "%s", err);
    for (int i = 0; i < n; i++) {
        shown += v[i].shown >= 0;
        by_default += v[i].by_default;
    }
    CHECK_EQ_INT(shown, m.n_layers - 2);
    CHECK_EQ_INT(by_default, shown);
    /* every Conv, Relu, Add and pool of the network (BatchNorm is folded) */
    CHECK(n > 40);
    free(v);
    /* layer1.0's second Relu reads the Add of the block's path and the skip:
     * layer1.0/relu (through conv2) and maxpool */
    int relu_1 = -1, relu = -1, maxpool = -1;
    for (int l = 0; l < m.n_layers; l++) {
        relu_1 = strcmp(m.layers[l].cfg.name, "layer1.0/relu_1") ? relu_1 : l;
        relu = strcmp(m.layers[l].cfg.name, "layer1.0/relu") ? relu : l;
        maxpool = strcmp(m.layers[l].cfg.name, "maxpool") ? maxpool : l;
    }
    CHECK(relu_1 > 0 && relu > 0 && maxpool > 0);
    int from[8];
    CHECK_EQ_INT(model_graph_layer_inputs(&m, relu_1, from, 8), 2);
    CHECK(from[0] == maxpool && from[1] == relu);
    CHECK_EQ_INT(model_graph_layer_inputs(&m, 0, from, 8), 1);
    CHECK_EQ_INT(from[0], -1); /* the first layer reads the image */
    model_free(&m);

    /* a choice by value, node and layer name, kept in the graph's order */
    snprintf(path, sizeof path, "%s/model.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    json_object_set_new(j, "shown", json_pack("[s, s, s]", "layer4.1", "/layer1/layer1.0/Add",
                                              "/layer2/layer2.0/relu/Relu_output_0"));
    CHECK(json_dump_file(j, path, JSON_INDENT(1)) == 0);
    struct model c = {0};
    CHECK_MSG(model_open(&c, NULL, dir, err) == 0, "%s", err);
    CHECK_EQ_INT(c.n_layers, 5);
    CHECK(!strcmp(c.layers[0].cfg.name, "layer1.0") && !strcmp(c.layers[1].cfg.name, "layer2.0/relu") &&
          !strcmp(c.layers[2].cfg.name, "layer4.1"));
    CHECK(c.layers[2].out.h == 7 && c.layers[2].out.c == 512);
    /* layer4.1 reads, through the layers not shown, both earlier choices:
     * layer2.0/relu on layer2.0's own path, layer1.0 on its skip */
    CHECK_EQ_INT(model_graph_layer_inputs(&c, 2, from, 8), 2);
    CHECK(from[0] == 0 && from[1] == 1);
    CHECK_EQ_INT(model_graph_layer_inputs(&c, 1, from, 8), 1);
    CHECK_EQ_INT(from[0], 0);
    model_free(&c);
    json_object_set_new(j, "shown", json_pack("[s]", "no-such-value"));
    CHECK(json_dump_file(j, path, JSON_INDENT(1)) == 0);
    CHECK_EQ_INT(model_open(&c, NULL, dir, err), STRATA_E_NOTFOUND);
    CHECK(strstr(err, "no-such-value") != NULL);
    model_free(&c);
    json_decref(j);
    json_decref(ref);
}

int main(void)
{
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        char path[1200];
        if (!refs_dir()) {
            check_count++;
            printf("ok %d - %s # SKIP STRATA_ONNX_REFS is not set: scripts/test exports the "
                   "reference models with python3-torch (scripts/setup --test installs it)\n",
                   check_count, archs[a]);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s.reference.json", refs_dir(), archs[a]);
        if (access(path, F_OK) != 0) {
            check_count++;
            check_failed_total++;
            printf("not ok %d - %s\n#   %s is missing: the export failed\n", check_count,
                   archs[a], path);
            continue;
        }
        check_current_failed = 0;
        check_arch(archs[a]);
        check_count++;
        if (check_current_failed)
            check_failed_total++;
        printf("%s %d - %s\n", check_current_failed ? "not ok" : "ok", check_count, archs[a]);
    }
    if (refs_dir()) {
        check_current_failed = 0;
        check_gradcam();
        check_count++;
        if (check_current_failed)
            check_failed_total++;
        printf("%s %d - resnet18 Grad-CAM against PyTorch\n", check_current_failed ? "not ok" : "ok",
               check_count);
        check_current_failed = 0;
        check_layer_choice();
        check_count++;
        if (check_current_failed)
            check_failed_total++;
        printf("%s %d - resnet18 layers: default choice, residual joins, chosen by name\n",
               check_current_failed ? "not ok" : "ok", check_count);
    } else {
        check_count++;
        printf("ok %d - resnet18 Grad-CAM against PyTorch # SKIP STRATA_ONNX_REFS is not set: "
               "scripts/test exports the reference models with python3-torch\n", check_count);
        check_count++;
        printf("ok %d - resnet18 layers # SKIP STRATA_ONNX_REFS is not set\n", check_count);
    }
    return check_done();
}
