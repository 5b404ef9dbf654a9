/*
 * bench_lime.c — time of one LIME explanation (150×150 image, 1000 samples)
 * per stage, on the seed architecture at 150×150 with random weights and, if
 * its weights are present, on the deep felines demo model. Median of 5 runs,
 * with the server's batch size (100 images asked for; explain_batch keeps a
 * batch's activations within its budget), and the memory one explanation
 * adds: the peak resident size during the runs (reset before each model)
 * minus the size before them. Prints a table and merges {"lime": ...} into
 * the JSON file given (default bench/results.json).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"

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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct stages {
    double segment, perturb, classify, regression, total;
    double peak_mb;     /* resident memory the runs added at their peak */
};

/* A /proc/self/status field in kB (VmRSS, VmHWM), or -1. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

/* Resets the peak resident size to the current one (Linux: "5" into
 * clear_refs). */
static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static int bench_model(struct model *m, const struct image *img, struct stages *med, char *err)
{
    enum { RUNS = 5 };
    double v[5][RUNS];
    struct lime_params p;
    lime_params_default(&p);
    p.batch_size = 100; /* what the server asks for */
    reset_peak();
    const long before = status_kb("VmRSS");
    for (int r = 0; r < RUNS; r++) {
        struct lime_result res;
        struct image small;
        int rc = explain_image(m, img, &p, NULL, 0, &res, &small, err);
        if (rc < 0)
            return rc;
        v[0][r] = res.ms_segment;
        v[1][r] = res.ms_perturb;
        v[2][r] = res.ms_classify;
        v[3][r] = res.ms_regression;
        v[4][r] = res.ms_total;
        lime_result_free(&res);
        image_free(&small);
    }
    for (int s = 0; s < 5; s++)
        qsort(v[s], RUNS, sizeof(double), cmp_double);
    *med = (struct stages){v[0][RUNS / 2], v[1][RUNS / 2], v[2][RUNS / 2], v[3][RUNS / 2], v[4][RUNS / 2],
                           (status_kb("VmHWM") - before) / 1024.0};
    return 0;
}

static json_t *stages_json(const struct stages *s)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "segmentation_s", s->segment / 1e3,
                     "perturbation_s", s->perturb / 1e3, "inference_s", s->classify / 1e3,
                     "regression_s", s->regression / 1e3, "total_s", s->total / 1e3,
                     "peak_memory_mb", s->peak_mb, "batch_asked", 100);
}

static void print_row(const char *name, const struct stages *s)
{
    printf("%-28s %8.3f %8.3f %8.3f %8.3f %8.3f %8.0f\n", name, s->segment / 1e3,
           s->perturb / 1e3, s->classify / 1e3, s->regression / 1e3, s->total / 1e3, s->peak_mb);
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        /* an option is not a path to write the results to */
        fprintf(stderr, "usage: bench_lime [RESULTS.json]  (default bench/results.json)\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    const char *out_path = argc > 1 ? argv[1] : "bench/results.json";
    const char *models = getenv("STRATA_MODELS") ? getenv("STRATA_MODELS") : "models";
    char err[STRATA_ERR_LEN];

    /* A 150×150 test image: smooth colour fields with a few shapes, so SLIC
     * has real edges to follow. */
    struct image img;
    if (image_alloc(&img, 150, 150, err) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    for (int y = 0; y < 150; y++)
        for (int x = 0; x < 150; x++) {
            uint8_t *p = img.rgb + (y * 150 + x) * 3;
            int in_disc = (x - 50) * (x - 50) + (y - 60) * (y - 60) < 900;
            int in_box = x > 90 && x < 135 && y > 80 && y < 140;
            p[0] = (uint8_t)(in_disc ? 220 : in_box ? 40 : x);
            p[1] = (uint8_t)(in_disc ? 60 : in_box ? 180 : y);
            p[2] = (uint8_t)(in_box ? 60 : 120);
        }

    printf("%-28s %8s %8s %8s %8s %8s %8s\n", "LIME, 1000 samples (s)", "segment", "perturb",
           "model", "ridge", "total", "+MB");
    json_t *lime = json_object();
    struct model seed = {0};
    struct stages s;
    if (model_parse_json(&seed, seed_json, "seed architecture", err) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    model_init_params(&seed, 1);
    /* as model_open leaves every model the server serves: run on its graph */
    if (model_run_on_graph(&seed, err) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    if (bench_model(&seed, &img, &s, err) < 0)
        return fprintf(stderr, "%s\n", err), 1;
    print_row("seed architecture 150×150", &s);
    json_object_set_new(lime, "seed_150", stages_json(&s));
    model_free(&seed);

    struct model deep = {0};
    if (model_open(&deep, models, "felines", err) == 0) {
        if (bench_model(&deep, &img, &s, err) < 0)
            return fprintf(stderr, "%s\n", err), 1;
        char name[64];
        snprintf(name, sizeof name, "felines (%dx%d)", deep.input.w, deep.input.h);
        print_row(name, &s);
        json_object_set_new(lime, "felines", stages_json(&s));
        model_free(&deep);
    } else {
        printf("felines: not measured (%s)\n", err);
    }

    json_t *root = json_load_file(out_path, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    json_object_set_new(root, "lime", lime);
    if (json_dump_file(root, out_path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(5)) != 0)
        fprintf(stderr, "cannot write %s\n", out_path);
    json_decref(root);
    image_free(&img);
    return 0;
}
