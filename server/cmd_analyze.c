/* cmd_analyze.c — `strata analyze <model>`: clusters every layer's
 * activations over a dataset split, projects them, follows the images'
 * paths; prints a per-layer table or JSON, exports .npy files, and keeps the
 * bundle in the analysis cache (see engine/analysis.h, docs/analysis.md). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis.h"
#include "cli.h"
#include "json.h"
#include "model_graph.h"
#include "model_import.h"
#include "npy.h"
#include "progress.h"

static const char *const analyze_help =
    "Usage: strata analyze <model-id | model-dir> [options]\n\n"
    "Runs every image of a dataset split through the model, reduces each layer's\n"
    "output to a feature row per image (average pooling to a grid per channel),\n"
    "clusters every layer with k-means (elbow over k = 1..10, automatic k >= 2),\n"
    "projects it with PCA, scores the clusters against the true classes and\n"
    "follows each image's path. The result is cached; a second run loads it.\n\n"
    "  --data DIR     datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --split NAME   split to analyse (default test)\n"
    "  --k LAYER=K    use K clusters at LAYER (a name or index); repeatable\n"
    "  --grid G       pooling grid side for convolution outputs (default 2)\n"
    "  --seed S       k-means seed (default 0)\n"
    "  --json         print JSON: {model, split, n_images, accuracy, distinct_paths,\n"
    "                 cached, seconds: {stage: s}, layers: [...]}\n"
    "  --export DIR   write <i>_<layer>_features.npy (float32 n x d),\n"
    "                 <i>_<layer>_clusters.npy (int32 n), <i>_<layer>_pca.npy,\n"
    "                 labels.npy, predictions.npy, probabilities.npy, index.json, README.txt\n"
    "  --cache DIR    cache folder (default $STRATA_CACHE or " ANALYSIS_DEFAULT_CACHE ")\n"
    "  --no-cache     neither read nor write the cache\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS and k-means threads\n"
    "  --layers LIST  an imported model's layers: `list` prints the graph values that\n"
    "                 can be shown (* shown now, d strata's default choice); names\n"
    "                 (comma-separated value, node or layer names) show those, and\n"
    "                 `default` strata's choice again. Kept in the model's model.json.\n";

static json_t *analysis_json(const struct analysis *a, const char *model, double wall)
{
    json_t *out = json_object();
    json_object_set_new(out, "model", json_string(model));
    json_object_set_new(out, "dataset", json_string(a->dataset));
    json_object_set_new(out, "split", json_string(a->split));
    json_object_set_new(out, "n_images", json_integer(a->n));
    json_object_set_new(out, "accuracy", json_real(a->accuracy));
    json_object_set_new(out, "misclassified", json_integer(a->n_missed));
    json_object_set_new(out, "distinct_paths", json_integer(a->n_paths));
    json_object_set_new(out, "cached", json_boolean(a->cached));
    json_object_set_new(out, "cache_file", json_string(a->cache_path));
    char key[24];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)a->key);
    json_object_set_new(out, "key", json_string(key));
    json_object_set_new(out, "grid", json_integer(a->grid));
    json_object_set_new(out, "seed", json_integer((json_int_t)a->seed));

    /* "seconds": what this run spent; the stages of the run that computed
     * the bundle stay available as "computed_seconds". */
    json_t *computed = json_object();
    for (int s = 0; s < ANALYSIS_STAGE_COUNT; s++)
        json_object_set_new(computed, analysis_stage_name(s), json_real(a->seconds[s]));
    json_t *sec = a->cached ? json_object() : json_deep_copy(computed);
    if (a->cached)
        json_object_set_new(sec, "cache_load", json_real(a->load_seconds));
    json_object_set_new(sec, "wall", json_real(wall));
    json_object_set_new(out, "seconds", sec);
    json_object_set_new(out, "computed_seconds", computed);

    json_t *layers = json_array();
    for (int l = 0; l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        json_t *j = json_object();
        char shape[48];
        json_object_set_new(j, "index", json_integer(l));
        json_object_set_new(j, "name", json_string(L->name));
        json_object_set_new(j, "type", json_string(L->type));
        json_object_set_new(j, "output_shape", json_string(shape_format(L->out, shape, sizeof shape)));
        json_object_set_new(j, "feature_size", json_integer(L->d));
        json_object_set_new(j, "same_as", L->same_as >= 0 ? json_integer(L->same_as) : json_null());
        json_object_set_new(j, "k", json_integer(L->c.k));
        json_object_set_new(j, "k_auto", json_integer(L->k_auto));
        json_object_set_new(j, "k_override", L->k_override ? json_integer(L->k_override) : json_null());
        json_object_set_new(j, "inertia", json_real(L->c.inertia));
        json_t *elbow = json_array();
        for (int k = 0; k < a->k_max; k++)
            json_array_append_new(elbow, json_real(L->elbow[k]));
        json_object_set_new(j, "elbow", elbow);
        json_object_set_new(j, "silhouette", json_number_or_null(L->c.silhouette));
        json_object_set_new(j, "ari", json_real(L->c.ari));
        json_object_set_new(j, "nmi", json_real(L->c.nmi));
        json_object_set_new(j, "purity", json_real(L->c.purity));
        json_t *ratio = json_array();
        json_array_append_new(ratio, json_real(L->pca_ratio[0]));
        json_array_append_new(ratio, json_real(L->pca_ratio[1]));
        json_object_set_new(j, "pca_variance_ratio", ratio);
        json_object_set_new(j, "pca_variance", json_real(L->pca_ratio[0] + L->pca_ratio[1]));
        json_array_append_new(layers, j);
    }
    json_object_set_new(out, "layers", layers);
    return out;
}

static void print_table(const struct analysis *a, const char *model, double wall)
{
    printf("model %s on %s/%s: %d images, accuracy %.2f %%, %d misclassified, %d distinct paths\n",
           model, a->dataset, a->split, a->n, 100 * a->accuracy, a->n_missed, a->n_paths);
    if (a->cached)
        printf("loaded from the cache %s in %.3f s\n", a->cache_path, a->load_seconds);
    else if (a->cache_path[0])
        printf("cached as %s\n", a->cache_path);
    printf("\n%-3s %-14s %-12s %6s %3s %12s %6s %6s %6s %6s %6s\n", "#", "layer", "output", "feat",
           "k", "inertia", "silh", "ARI", "NMI", "purity", "PCA12");
    for (int l = 0; l < a->n_layers; l++) {
        const struct analysis_layer *L = &a->layers[l];
        char shape[48], feat[24], silh[16];
        shape_format(L->out, shape, sizeof shape);
        if (L->same_as >= 0)
            snprintf(feat, sizeof feat, "=%d", L->same_as);
        else
            snprintf(feat, sizeof feat, "%d", L->d);
        if (isfinite(L->c.silhouette))
            snprintf(silh, sizeof silh, "%6.3f", L->c.silhouette);
        else
            snprintf(silh, sizeof silh, "%6s", "-");
        printf("%-3d %-14.14s %-12.12s %6s %2d%s %12.4g %s %6.3f %6.3f %6.3f %6.3f\n", l, L->name,
               shape, feat, L->c.k, L->k_override ? "*" : " ", L->c.inertia, silh, L->c.ari,
               L->c.nmi, L->c.purity, L->pca_ratio[0] + L->pca_ratio[1]);
    }
    printf("\nfeat: feature size (=i: the features of layer i); k*: set with --k; "
           "PCA12: variance share of PC1 + PC2\n");
    if (a->cached) {
        printf("seconds: cache load %.3f, wall %.3f (computed in %.2f)\n", a->load_seconds, wall,
               a->seconds[ANALYSIS_STAGE_TOTAL]);
    } else {
        printf("seconds:");
        for (int s = 0; s < ANALYSIS_STAGE_COUNT; s++)
            printf(" %s %.3f%s", analysis_stage_name(s), a->seconds[s],
                   s + 1 < ANALYSIS_STAGE_COUNT ? "," : "");
        printf(", wall %.3f\n", wall);
    }
}

/* mkdir -p for the export folder. */
static int make_dirs(const char *dir)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* Layer names become file names: anything but [A-Za-z0-9._-] becomes '_'. */
static void file_safe(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++) {
        char c = in[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        out[i] = ok ? c : '_';
    }
    out[i] = 0;
}

static const char *const export_readme =
    "strata analysis export\n"
    "======================\n\n"
    "NumPy .npy files (format 1.0, little-endian, C order); index.json lists them with\n"
    "the parameters and the image ids in row order.\n\n"
    "  labels.npy                 int32 [n]      true class of each image (index into classes)\n"
    "  predictions.npy            int32 [n]      predicted class\n"
    "  probabilities.npy          float32 [n, C] the model's output\n"
    "  <i>_<layer>_features.npy   float32 [n, d] the feature rows k-means and PCA saw\n"
    "  <i>_<layer>_clusters.npy   int32 [n]      cluster of each image (k in index.json)\n"
    "  <i>_<layer>_pca.npy        float32 [n, 2] the images in the layer's PCA plane\n\n"
    "Check the numbers, e.g. with scikit-learn:\n\n"
    "  import json, numpy as np\n"
    "  from sklearn.cluster import KMeans\n"
    "  from sklearn.metrics import adjusted_rand_score, silhouette_score\n"
    "  idx = json.load(open('index.json'))\n"
    "  L = idx['layers'][0]\n"
    "  X = np.load(L['features']); c = np.load(L['clusters']); y = np.load('labels.npy')\n"
    "  km = KMeans(L['k'], init='k-means++', n_init=10, random_state=0).fit(X)\n"
    "  print(km.inertia_, L['inertia'])           # within 1 % (strata's is often lower)\n"
    "  print(adjusted_rand_score(y, c), L['ari'])  # identical\n"
    "  print(silhouette_score(X, c), L['silhouette'])\n";

static int export_bundle(const struct analysis *a, const char *dir, char *err)
{
    if (make_dirs(dir) != 0)
        return strata_fail(err, STRATA_E_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[1400];
    long n = a->n, shape2[2];
    int rc;
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    if ((rc = npy_write_i32(path, a->labels, 1, &n, err)) < 0)
        return rc;
    snprintf(path, sizeof path, "%s/predictions.npy", dir);
    if ((rc = npy_write_i32(path, a->pred, 1, &n, err)) < 0)
        return rc;
    shape2[0] = n;
    shape2[1] = a->n_classes;
    snprintf(path, sizeof path, "%s/probabilities.npy", dir);
    if ((rc = npy_write_f32(path, a->probs, 2, shape2, err)) < 0)
        return rc;

    json_t *index = json_object();
    json_object_set_new(index, "model", json_string(a->model_id));
    json_object_set_new(index, "dataset", json_string(a->dataset));
    json_object_set_new(index, "split", json_string(a->split));
    json_object_set_new(index, "n_images", json_integer(a->n));
    json_t *classes = json_array(), *ids = json_array(), *layers = json_array();
    for (int c = 0; c < a->n_classes; c++)
        json_array_append_new(classes, json_string(a->classes[c]));
    for (int i = 0; i < a->n; i++)
        json_array_append_new(ids, json_string(a->image_ids[i]));
    json_object_set_new(index, "classes", classes);
    json_object_set_new(index, "images", ids);
    json_t *kp = json_object();
    json_object_set_new(kp, "n_init", json_integer(a->n_init));
    json_object_set_new(kp, "max_iter", json_integer(a->max_iter));
    json_object_set_new(kp, "tol", json_real(a->tol));
    json_object_set_new(kp, "seed", json_integer((json_int_t)a->seed));
    json_object_set_new(kp, "grid", json_integer(a->grid));
    json_object_set_new(index, "parameters", kp);
    json_object_set_new(index, "labels", json_string("labels.npy"));
    json_object_set_new(index, "predictions", json_string("predictions.npy"));
    json_object_set_new(index, "probabilities", json_string("probabilities.npy"));
    for (int l = 0; l < a->n_layers && rc == 0; l++) {
        const struct analysis_layer *L = &a->layers[l];
        char name[64], feat[160], clus[160], pca[160];
        file_safe(L->name, name, sizeof name);
        snprintf(feat, sizeof feat, "%d_%s_features.npy", l, name);
        snprintf(clus, sizeof clus, "%d_%s_clusters.npy", l, name);
        snprintf(pca, sizeof pca, "%d_%s_pca.npy", l, name);
        shape2[0] = n;
        shape2[1] = L->d;
        snprintf(path, sizeof path, "%s/%s", dir, feat);
        if ((rc = npy_write_f32(path, analysis_features(a, l), 2, shape2, err)) < 0)
            break;
        snprintf(path, sizeof path, "%s/%s", dir, clus);
        if ((rc = npy_write_i32(path, L->c.labels, 1, &n, err)) < 0)
            break;
        shape2[1] = 2;
        snprintf(path, sizeof path, "%s/%s", dir, pca);
        if ((rc = npy_write_f32(path, L->points, 2, shape2, err)) < 0)
            break;
        json_t *j = json_object();
        json_object_set_new(j, "index", json_integer(l));
        json_object_set_new(j, "name", json_string(L->name));
        json_object_set_new(j, "type", json_string(L->type));
        json_object_set_new(j, "features", json_string(feat));
        json_object_set_new(j, "clusters", json_string(clus));
        json_object_set_new(j, "pca", json_string(pca));
        json_object_set_new(j, "feature_size", json_integer(L->d));
        json_object_set_new(j, "k", json_integer(L->c.k));
        json_object_set_new(j, "inertia", json_real(L->c.inertia));
        json_object_set_new(j, "silhouette", json_number_or_null(L->c.silhouette));
        json_object_set_new(j, "ari", json_real(L->c.ari));
        json_object_set_new(j, "nmi", json_real(L->c.nmi));
        json_object_set_new(j, "purity", json_real(L->c.purity));
        json_t *elbow = json_array();
        for (int k = 0; k < a->k_max; k++)
            json_array_append_new(elbow, json_real(L->elbow[k]));
        json_object_set_new(j, "elbow", elbow);
        json_array_append_new(layers, j);
    }
    json_object_set_new(index, "layers", layers);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/index.json", dir);
        if (json_dump_file(index, path, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) != 0)
            rc = strata_fail(err, STRATA_E_IO, "%s: cannot write", path);
    }
    json_decref(index);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/README.txt", dir);
        FILE *fp = fopen(path, "w");
        if (!fp || fputs(export_readme, fp) < 0 || fclose(fp) != 0)
            rc = strata_fail(err, STRATA_E_IO, "%s: cannot write", path);
    }
    return rc;
}

/* --layers list: the graph values an imported model can show. */
static int list_values(const struct model *m)
{
    char err[STRATA_ERR_LEN];
    struct model_graph_value *v;
    int n;
    if (model_graph_values(m, &v, &n, err) < 0)
        return cli_fail("analyze", "%s", err);
    printf("   %-32s %-20s %-14s %s\n", "layer", "op", "shape", "value");
    for (int i = 0; i < n; i++) {
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", v[i].shape.h, v[i].shape.w, v[i].shape.c);
        printf("%c%c %-32s %-20s %-14s %s\n", v[i].shown >= 0 ? '*' : ' ',
               v[i].by_default ? 'd' : ' ', v[i].name, v[i].op, shape, v[i].tensor);
    }
    free(v);
    return EXIT_OK;
}

int cmd_analyze(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"split", required_argument, 0, 's'},
                                         {"k", required_argument, 0, 'k'},
                                         {"grid", required_argument, 0, 'g'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"json", no_argument, 0, 'j'},
                                         {"export", required_argument, 0, 'e'},
                                         {"cache", required_argument, 0, 'c'},
                                         {"no-cache", no_argument, 0, 'n'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"layers", required_argument, 0, 'L'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    struct analysis_params p;
    analysis_params_default(&p);
    const char *data = NULL, *models = NULL, *export_dir = NULL, *cache_flag = NULL,
               *layers = NULL;
    int json = 0, no_cache = 0, threads = 0, c, v;
    char err[STRATA_ERR_LEN];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 's':
            if (strlen(optarg) >= sizeof p.split)
                return cli_usage_error("analyze", "--split name too long");
            snprintf(p.split, sizeof p.split, "%s", optarg);
            break;
        case 'k':
            if (analysis_params_add_k(&p, optarg, err) < 0)
                return cli_usage_error("analyze", "%s", err);
            break;
        case 'g':
            if (cli_parse_int(optarg, 1, ANALYSIS_MAX_GRID, &p.grid))
                return cli_usage_error("analyze", "--grid expects an integer in 1..%d, got '%s'",
                                       ANALYSIS_MAX_GRID, optarg);
            break;
        case 'S':
            if (cli_parse_int(optarg, 0, 2147483647, &v))
                return cli_usage_error("analyze", "--seed expects a non-negative integer, got '%s'",
                                       optarg);
            p.seed = (uint64_t)v;
            break;
        case 'j': json = 1; break;
        case 'e': export_dir = optarg; break;
        case 'c': cache_flag = optarg; break;
        case 'n': no_cache = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("analyze", "--threads expects a positive integer, got '%s'",
                                       optarg);
            break;
        case 'L': layers = optarg; break;
        case 'h': fputs(analyze_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("analyze", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("analyze", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("analyze", "expected one model");
    cli_set_threads(threads);
    p.n_threads = threads;

    struct model m = {0};
    struct analysis a = {0};
    int rc = EXIT_FAIL;
    double t0 = progress_now();
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0) {
        cli_fail("analyze", "%s", err);
        goto done;
    }
    if (layers && strcmp(layers, "list") == 0) {
        rc = list_values(&m);
        goto done;
    }
    if (layers) {
        json_t *names = NULL;
        char dir[sizeof m.dir];
        snprintf(dir, sizeof dir, "%s", m.dir);
        int lrc = 0;
        if (strcmp(layers, "default") != 0) {
            names = json_array();
            lrc = import_classes_from_list(names, layers, err);
        }
        if (lrc == 0)
            lrc = import_set_shown(dir, names, err);
        json_decref(names);
        model_free(&m);
        memset(&m, 0, sizeof m);
        if (lrc < 0 || model_open(&m, ".", dir, err) < 0) {
            cli_fail("analyze", "%s", err);
            goto done;
        }
        fprintf(stderr, "strata analyze: %s shows %d layers (%s/model.json)\n", m.id, m.n_layers,
                dir);
    }
    struct cli_stages view = {.quiet = json};
    cli_catch_sigint();
    int arc = analysis_load_or_run(&m, &p, dataset_root(data),
                                   no_cache ? NULL : analysis_cache_dir(cache_flag), &a,
                                   cli_show_stages, &view, err);
    cli_release_sigint();
    progress_end(&view.bar);
    double wall = progress_now() - t0;
    if (arc < 0) {
        cli_fail("analyze", "%s", err);
        goto done;
    }
    if (a.cache_note[0])
        fprintf(stderr, "strata analyze: %s\n", a.cache_note);
    if (export_dir) {
        if (export_bundle(&a, export_dir, err) < 0) {
            cli_fail("analyze", "%s", err);
            goto done;
        }
        fprintf(stderr, "exported %d layers to %s\n", a.n_layers, export_dir);
    }
    if (json) {
        json_t *out = analysis_json(&a, m.id, wall);
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        print_table(&a, m.id, wall);
    }
    rc = EXIT_OK;
done:
    analysis_free(&a);
    model_free(&m);
    return rc;
}
