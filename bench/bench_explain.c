/*
 * bench_explain.c — the explanation methods side by side on real mistakes:
 * how faithful each is, and how long each takes.
 *
 * For each model given (default: the three deep demo models), every test
 * image the model gets wrong (or the first --mistakes of them) is explained
 * for the class the model gave, by Grad-CAM, Integrated Gradients (32
 * steps), occlusion, LIME (1000 samples) and a random map; each map is scored
 * by its deletion and insertion areas. Prints, per model and method, the mean
 * areas, how often the method was the most faithful (largest insertion −
 * deletion among the four real ones), and the median time of each method
 * and of one map's deletion + insertion curves. With --time ID (repeatable),
 * a model is only timed, on five test images (for imported models such as
 * ResNet-18, on felines photos when the model's dataset is not there). With
 * --load N, N busy processes compete for the two cores meanwhile (this
 * machine is shared: the speed a user sees when it is busy). Merges
 * {"explanations" or "explanations_load_N": ...} into the JSON file of --out
 * (default bench/results.json).
 *
 *   bench_explain [--models DIR] [--data DIR] [--mistakes N] [--time ID]...
 *                 [--load N] [--out FILE] [MODEL...]
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attribution.h"
#include "dataset.h"
#include "evaluate.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct tally {
    double del[ATTR_N_METHODS], ins[ATTR_N_METHODS];
    int best[ATTR_N_METHODS];
    double *ms[ATTR_N_METHODS], *ms_faith;
    double *completeness, *setup;
    int n, n_faith;
};

static int run_model(const char *models, const char *data, const char *id, int max_images,
                     int timing_only, json_t *out, char *err)
{
    struct model m = {0};
    struct dataset ds = {0};
    struct evaluation ev = {0};
    uint8_t *pixels = NULL;
    int rc = model_open(&m, models, id, err);
    /* a model only timed may come without a dataset of its own (ResNet-18 with
     * random weights): any photos do */
    if (rc == 0)
        rc = dataset_open(&ds, data, m.dataset, "test", err);
    if (rc < 0 && timing_only && m.n_classes > 0)
        rc = dataset_open(&ds, data, "felines", "test", err);
    const size_t per = (size_t)m.input.h * m.input.w * 3;
    if (rc == 0 && !(pixels = malloc((size_t)ds.n * per)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    int n = rc == 0 ? dataset_load_images(&ds, m.input.w, m.input.h, pixels, NULL, NULL, err) : rc;
    int *labels = NULL;
    if (n >= 0 && !(labels = malloc((size_t)(n ? n : 1) * sizeof *labels)))
        n = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        labels[i] = ds.items[i].label;
    if (n >= 0)
        rc = evaluate_images(&m, pixels, labels, n, 32, &ev, err);
    else
        rc = n;
    if (rc < 0)
        goto done;

    struct attribution_params p;
    attribution_params_default(&p);
    p.methods = timing_only ? (1u << ATTR_GRADCAM) | (1u << ATTR_IG) | (1u << ATTR_OCCLUSION)
                            : (1u << ATTR_N_METHODS) - 1;
    struct tally t = {0};
    for (int k = 0; k < ATTR_N_METHODS; k++)
        t.ms[k] = calloc((size_t)n + 1, sizeof(double));
    t.ms_faith = calloc((size_t)(n + 1) * ATTR_N_METHODS, sizeof(double));
    t.completeness = calloc((size_t)n + 1, sizeof(double));
    t.setup = calloc((size_t)n + 1, sizeof(double));
    int mistakes = 0;
    for (int i = 0; i < n; i++)
        mistakes += ev.pred[i] != labels[i];
    for (int i = 0; i < n && t.n < max_images; i++) {
        if (!timing_only && ev.pred[i] == labels[i])
            continue;
        struct image img = {.w = m.input.w, .h = m.input.h, .rgb = pixels + (size_t)i * per};
        struct attribution_result r;
        p.seed = (uint64_t)i;
        p.lime.seed = (uint64_t)i;
        if ((rc = attribution_explain(&m, &img, &p, &r, err)) < 0)
            goto tally_done;
        for (int k = 0; k < ATTR_N_METHODS; k++) {
            const struct attribution_map *am = &r.maps[k];
            if (!am->done)
                continue;
            t.del[k] += am->faith.deletion_auc;
            t.ins[k] += am->faith.insertion_auc;
            t.ms[k][t.n] = am->ms;
            t.ms_faith[t.n_faith++] = am->ms_faith;
        }
        t.completeness[t.n] = r.maps[ATTR_IG].ig.completeness;
        t.setup[t.n] = r.ms_gradient_setup;
        if (r.best >= 0)
            t.best[r.best]++;
        t.n++;
        attribution_result_free(&r);
    }
    printf("\n%s (%dx%d), %s: %d of %d test images\n", m.id, m.input.w, m.input.h,
           timing_only ? "timing" : "misclassified", t.n, timing_only ? n : mistakes);
    printf("%-10s %10s %10s %10s %12s\n", "method", "deletion", "insertion", "most", "median ms");
    json_t *j = json_pack("{s:i, s:i, s:i, s:[i, i]}", "images", t.n, "test_images", n,
                          "misclassified", mistakes, "input", m.input.w, m.input.h);
    json_t *methods = json_object();
    for (int k = 0; k < ATTR_N_METHODS; k++) {
        if (!(p.methods & (1u << k)) || t.n == 0)
            continue;
        double ms = median(t.ms[k], t.n);
        double d = t.del[k] / t.n, in = t.ins[k] / t.n;
        printf("%-10s %10.3f %10.3f %10d %12.1f\n", attribution_method_name(k), d, in, t.best[k], ms);
        json_object_set_new(methods, attribution_method_name(k),
                            json_pack("{s:f, s:f, s:i, s:f}", "deletion_auc", d, "insertion_auc", in,
                                      "most_faithful", t.best[k], "median_ms", ms));
    }
    double faith_ms = median(t.ms_faith, t.n_faith), ig_err = median(t.completeness, t.n);
    double setup_ms = median(t.setup, t.n);
    printf("deletion + insertion curves of one map: median %.1f ms; IG completeness error "
           "(32 steps): median %.2f %%; graph with gradients, once per explanation: "
           "median %.1f ms\n", faith_ms, 100 * ig_err, setup_ms);
    json_object_set_new(j, "gradient_setup_median_ms", json_real(setup_ms));
    json_object_set_new(j, "methods", methods);
    json_object_set_new(j, "faithfulness_median_ms", json_real(faith_ms));
    json_object_set_new(j, "ig_completeness_error_median", json_real(ig_err));
    json_object_set_new(out, m.id, j);
tally_done:
    for (int k = 0; k < ATTR_N_METHODS; k++)
        free(t.ms[k]);
    free(t.ms_faith);
    free(t.completeness);
    free(t.setup);
done:
    free(labels);
    free(pixels);
    evaluation_free(&ev);
    dataset_free(&ds);
    model_free(&m);
    return rc;
}

int main(int argc, char **argv)
{
    const char *models = getenv("STRATA_MODELS") ? getenv("STRATA_MODELS") : "models";
    const char *data = dataset_root(NULL), *out_path = "bench/results.json";
    const char *ids[16], *timed[16];
    int n_ids = 0, n_timed = 0, max_images = 1000000, load = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--models") && i + 1 < argc)
            models = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out_path = argv[++i];
        else if (!strcmp(argv[i], "--mistakes") && i + 1 < argc)
            max_images = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--load") && i + 1 < argc)
            load = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--time") && i + 1 < argc && n_timed < 16)
            timed[n_timed++] = argv[++i];
        else if (argv[i][0] != '-' && n_ids < 16)
            ids[n_ids++] = argv[i];
        else
            return fprintf(stderr, "usage: bench_explain [--models DIR] [--data DIR] [--mistakes N] "
                                   "[--time ID]... [--load N] [--out FILE] [MODEL...]\n"), 2;
    }
    if (!n_ids) {
        ids[n_ids++] = "felines";
        ids[n_ids++] = "paysages";
        ids[n_ids++] = "transports";
    }
    char err[STRATA_ERR_LEN];
    pid_t busy[8];
    load = load < 0 ? 0 : load > 8 ? 8 : load;
    for (int i = 0; i < load; i++)
        if ((busy[i] = fork()) == 0)
            for (volatile unsigned long spin = 0;; spin++)
                ;
    setvbuf(stdout, NULL, _IOLBF, 0);
    json_t *res = json_object();
    int failed = 0;
    for (int i = 0; i < n_ids + n_timed; i++) {
        int timing = i >= n_ids;
        const char *id = timing ? timed[i - n_ids] : ids[i];
        if (run_model(models, data, id, timing ? 5 : max_images, timing, res, err) < 0) {
            fprintf(stderr, "%s: %s\n", id, err);
            failed = 1;
        }
    }
    for (int i = 0; i < load; i++) {
        kill(busy[i], SIGKILL);
        waitpid(busy[i], NULL, 0);
    }
    json_t *root = json_load_file(out_path, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    char key[40] = "explanations";
    if (load)
        snprintf(key, sizeof key, "explanations_load_%d", load);
    json_object_set_new(root, key, res);
    if (json_dump_file(root, out_path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(5)) != 0)
        fprintf(stderr, "cannot write %s\n", out_path);
    json_decref(root);
    return failed;
}
