/* cmd_doubt.c — `strata doubt-eval <model>`: how well the doubt score tells
 * images the model knows from images it does not, against the maximum
 * softmax probability and the energy score (see engine/doubt.h,
 * docs/doubt.md). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "cli.h"
#include "doubt.h"
#include "progress.h"

static const char *const doubt_help =
    "Usage: strata doubt-eval <model-id | model-dir> [options]\n\n"
    "Calibrates the model's doubt score on the training images (reference) and\n"
    "the validation hold-out of training (calibration), or loads it from the\n"
    "cache, then scores in-distribution images (the model's test split) and\n"
    "out-of-distribution images (by default the test splits of the other\n"
    "datasets, plus every --ood folder) with the doubt, the maximum softmax\n"
    "probability (MSP) and the energy score. Reports, per method, the AUROC\n"
    "of in- vs out-of-distribution (positives: out-of-distribution), the false-\n"
    "positive rate at 95 % true-positive rate, and the AUROC of separating the\n"
    "model's wrong from its right predictions on the test split.\n\n"
    "  --data DIR     datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --ood DIR      an extra folder of out-of-distribution images (.jpg, .jpeg,\n"
    "                 .png, searched recursively); repeatable\n"
    "  --no-default-ood  do not use the other datasets' test splits\n"
    "  --shrinkage S  covariance shrinkage in [0, 1) (default 0.01)\n"
    "  --validation-split F  calibrate on this share of each class of the train\n"
    "                 split (default: the model's training.validation_split)\n"
    "  --split-seed S seed of that split (with --validation-split; default 0)\n"
    "  --json         print JSON: {model, n_id, n_ood, accuracy, sources, auroc,\n"
    "                 fpr95, auroc_errors (each {doubt, msp, energy}), levels,\n"
    "                 histogram {edges, id, ood} of the doubt, calibration}\n"
    "  --cache DIR    cache folder (default $STRATA_CACHE or " ANALYSIS_DEFAULT_CACHE ")\n"
    "  --no-cache     neither read nor write the cache\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS threads\n";

#define MAX_OOD_DIRS 8

static json_t *report_json(const struct doubt_report *r, const struct doubt_model *dm)
{
    json_t *out = doubt_report_json(r, 20);
    if (!out)
        return NULL;
    json_t *layers = json_array();
    for (int l = 0; l < dm->n_layers; l++)
        json_array_append_new(layers, json_pack("{s:s, s:b}", "name", dm->layers[l].name,
                                                "in_distance", dm->layers[l].in_distance));
    json_t *cal = json_pack("{s:f, s:i, s:i, s:i, s:f, s:I, s:o, s:b, s:s, s:f}", "shrinkage",
                            (double)dm->shrinkage, "grid", dm->grid, "n_reference", dm->n_ref,
                            "n_calibration", dm->n_cal, "validation_split",
                            (double)dm->validation_split, "split_seed", (json_int_t)dm->split_seed,
                            "layers", layers, "cached", dm->cached, "cache_file", dm->cache_path,
                            "seconds", dm->seconds);
    json_object_set_new(out, "calibration", cal);
    return out;
}

static void print_report(const struct doubt_report *r, const struct doubt_model *dm)
{
    printf("model %s\n", r->model_id);
    printf("calibration: %d training images as reference, %d held out (validation_split %.2f, seed %llu), "
           "%d probed layers, shrinkage %.3g%s\n",
           dm->n_ref, dm->n_cal, (double)dm->validation_split, (unsigned long long)dm->split_seed,
           dm->n_layers, (double)dm->shrinkage, dm->cached ? " (cached)" : "");
    for (int i = 0; i < r->n_sources; i++)
        printf("  %-18s %-24s %5d images\n", r->sources[i].ood ? "out-of-distribution" : "in-distribution",
               r->sources[i].name, r->sources[i].n);
    printf("in-distribution accuracy %.2f %% (%d images), %d out-of-distribution images\n\n",
           100 * r->accuracy, r->n_id, r->n_ood);
    printf("%-8s %12s %12s %14s\n", "method", "AUROC (OOD)", "FPR@95%TPR", "AUROC (errors)");
    for (int k = 0; k < DOUBT_N_METHODS; k++)
        printf("%-8s %12.4f %12.4f %14.4f\n", doubt_method_name(k), r->auroc[k], r->fpr95[k],
               r->auroc_errors[k]);
    int lv[2][3] = {{0}};
    for (int i = 0; i < r->n_id; i++)
        lv[0][doubt_level_of(r->id_score[DOUBT_METHOD_DOUBT][i])]++;
    for (int i = 0; i < r->n_ood; i++)
        lv[1][doubt_level_of(r->ood_score[DOUBT_METHOD_DOUBT][i])]++;
    printf("\ndoubt levels (low < %.2f <= medium < %.2f <= high):\n", (double)DOUBT_MEDIUM,
           (double)DOUBT_HIGH);
    printf("  in-distribution      low %5.1f %%  medium %5.1f %%  high %5.1f %%\n",
           100.0 * lv[0][0] / r->n_id, 100.0 * lv[0][1] / r->n_id, 100.0 * lv[0][2] / r->n_id);
    printf("  out-of-distribution  low %5.1f %%  medium %5.1f %%  high %5.1f %%\n",
           100.0 * lv[1][0] / r->n_ood, 100.0 * lv[1][1] / r->n_ood, 100.0 * lv[1][2] / r->n_ood);
}

int cmd_doubt_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"ood", required_argument, 0, 'o'},
                                         {"no-default-ood", no_argument, 0, 'N'},
                                         {"shrinkage", required_argument, 0, 'k'},
                                         {"validation-split", required_argument, 0, 'v'},
                                         {"split-seed", required_argument, 0, 'S'},
                                         {"json", no_argument, 0, 'j'},
                                         {"cache", required_argument, 0, 'c'},
                                         {"no-cache", no_argument, 0, 'n'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *models = NULL, *cache = NULL;
    const char *ood[MAX_OOD_DIRS];
    int n_ood = 0, default_ood = 1, json = 0, no_cache = 0, threads = 0, c;
    struct doubt_params p;
    doubt_params_default(&p);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'o':
            if (n_ood == MAX_OOD_DIRS)
                return cli_usage_error("doubt-eval", "at most %d --ood folders", MAX_OOD_DIRS);
            ood[n_ood++] = optarg;
            break;
        case 'N': default_ood = 0; break;
        case 'k': {
            char *end;
            double s = strtod(optarg, &end);
            if (end == optarg || *end || !(s >= 0 && s < 1))
                return cli_usage_error("doubt-eval", "--shrinkage expects a number in [0, 1), got '%s'",
                                       optarg);
            p.shrinkage = (float)s;
            break;
        }
        case 'v': {
            char *end;
            double f = strtod(optarg, &end);
            if (end == optarg || *end || !(f > 0 && f < 1))
                return cli_usage_error("doubt-eval", "--validation-split expects a number in (0, 1), got '%s'",
                                       optarg);
            p.validation_split = (float)f;
            break;
        }
        case 'S': {
            char *end;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (end == optarg || *end)
                return cli_usage_error("doubt-eval", "--split-seed expects an integer, got '%s'", optarg);
            p.split_seed = s;
            break;
        }
        case 'j': json = 1; break;
        case 'c': cache = optarg; break;
        case 'n': no_cache = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("doubt-eval", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(doubt_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("doubt-eval", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("doubt-eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("doubt-eval", "expected one model");
    if (!default_ood && n_ood == 0)
        return cli_usage_error("doubt-eval", "--no-default-ood needs at least one --ood folder");
    cli_set_threads(threads);
    cli_catch_sigint();

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    struct doubt_model dm = {0};
    struct doubt_report r = {0};
    struct cli_stages v = {.quiet = json};
    const char *root = dataset_root(data);
    const char *cache_dir = no_cache ? NULL : analysis_cache_dir(cache);
    int rc = EXIT_FAIL;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0 ||
        doubt_load_or_calibrate(&m, &p, root, cache_dir, &dm, cli_show_stages, &v, err) < 0) {
        progress_end(&v.bar);
        cli_fail("doubt-eval", "%s", err);
        goto done;
    }
    if (dm.cache_note[0])
        fprintf(stderr, "strata doubt-eval: %s\n", dm.cache_note);
    int erc = n_ood == 0 && default_ood
                  ? doubt_report_load_or_run(&dm, &m, root, NULL, cache_dir, &r, cli_show_stages, &v, err)
                  : doubt_report_run(&dm, &m, root, ood, n_ood, default_ood, &r, cli_show_stages, &v, err);
    progress_end(&v.bar);
    if (erc < 0) {
        cli_fail("doubt-eval", "%s", err);
        goto done;
    }
    if (json) {
        json_t *out = report_json(&r, &dm);
        if (!out) {
            cli_fail("doubt-eval", "out of memory");
            goto done;
        }
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        print_report(&r, &dm);
    }
    rc = EXIT_OK;
done:
    doubt_report_free(&r);
    doubt_free(&dm);
    model_free(&m);
    return rc;
}
