/* cmd_predict.c — `strata predict <model> <image>`: classify one image. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "cli.h"
#include "doubt.h"
#include "infer.h"

static const char *const predict_help =
    "Usage: strata predict <model-id | model-dir> <image> [options]\n\n"
    "Classifies one JPEG or PNG image and prints the classes by probability.\n\n"
    "  --top N        how many classes to print (default: all)\n"
    "  --no-doubt     skip the doubt score (it needs the dataset to calibrate, once)\n"
    "  --data DIR     datasets folder, for the doubt calibration (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --cache DIR    where the doubt calibration is kept (default $STRATA_CACHE or var/cache)\n"
    "  --json         print JSON: {\"model\", \"image\", \"predicted\", \"probabilities\": [{class, probability}]}\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS threads\n";

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"top", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"data", required_argument, 0, 'd'},
                                         {"cache", required_argument, 0, 'c'},
                                         {"no-doubt", no_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int top = 0, json = 0, threads = 0, no_doubt = 0, c;
    const char *models = NULL, *data = NULL, *cache = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_int(optarg, 1, MODEL_MAX_CLASSES, &top))
                return cli_usage_error("predict", "--top expects a positive integer, got '%s'", optarg);
            break;
        case 'j': json = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("predict", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'd': data = optarg; break;
        case 'c': cache = optarg; break;
        case 'D': no_doubt = 1; break;
        case 'h': fputs(predict_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("predict", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("predict", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("predict", "expected a model and an image");
    cli_set_threads(threads);

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    struct image img = {0};
    float *probs = NULL;
    struct doubt_result *dr = NULL;
    char derr[STRATA_ERR_LEN] = "";
    int rc = EXIT_FAIL;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0) {
        cli_fail("predict", "%s", err);
        goto done;
    }
    if (image_load(argv[optind + 1], &img, err) < 0) {
        cli_fail("predict", "%s", err);
        goto done;
    }
    struct model_workspace ws;
    if (model_workspace_init(&ws, &m, 1, 0, err) < 0) {
        cli_fail("predict", "%s", err);
        goto done;
    }
    if (model_preprocess(&m, &img, ws.input, err) < 0) {
        model_workspace_free(&ws);
        cli_fail("predict", "%s", err);
        goto done;
    }
    model_forward(&m, &ws, ws.input, 1, 0);
    /* The doubt score reads this forward pass; its calibration is computed
     * once per model and cached. */
    if (!no_doubt) {
        struct doubt_params dp;
        struct doubt_model dm;
        doubt_params_default(&dp);
        dr = malloc(sizeof *dr);
        if (dr && doubt_load_or_calibrate(&m, &dp, dataset_root(data), analysis_cache_dir(cache), &dm,
                                          NULL, NULL, derr) == 0) {
            if (doubt_score(&dm, &m, NULL, &ws, 0, dr, derr) < 0) {
                free(dr);
                dr = NULL;
            }
            doubt_free(&dm);
        } else {
            free(dr);
            dr = NULL;
        }
        if (!dr)
            fprintf(stderr, "strata predict: no doubt score: %s\n", derr);
    }
    probs = malloc((size_t)m.n_classes * sizeof(float));
    int *order = calloc((size_t)m.n_classes, sizeof(int));
    if (!probs || !order) {
        free(order);
        model_workspace_free(&ws);
        cli_fail("predict", "out of memory");
        goto done;
    }
    memcpy(probs, model_output(&ws, m.n_layers - 1), (size_t)m.n_classes * sizeof(float));
    model_workspace_free(&ws);
    /* Classes by falling probability (insertion sort: C is small). */
    for (int i = 0; i < m.n_classes; i++) {
        int j = i;
        while (j > 0 && probs[order[j - 1]] < probs[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    int shown = top && top < m.n_classes ? top : m.n_classes;
    if (json) {
        json_t *list = json_array();
        for (int i = 0; i < shown; i++)
            json_array_append_new(list, json_pack("{s:s, s:f}", "class", m.classes[order[i]],
                                                  "probability", (double)probs[order[i]]));
        json_t *out = json_pack("{s:s, s:s, s:s, s:o}", "model", m.id, "image", argv[optind + 1],
                                "predicted", m.classes[order[0]], "probabilities", list);
        if (!no_doubt)
            json_object_set_new(out, "doubt", dr ? doubt_result_json(dr, &m) : json_null());
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        printf("%s: %s\n", argv[optind + 1], m.classes[order[0]]);
        for (int i = 0; i < shown; i++)
            printf("  %-16s %6.2f %%\n", m.classes[order[i]], 100.0 * probs[order[i]]);
        if (dr)
            printf("doubt %.2f (%s): %s\n", dr->doubt, doubt_level_name(dr->level), dr->explanation);
    }
    free(order);
    rc = EXIT_OK;
done:
    free(dr);
    free(probs);
    image_free(&img);
    model_free(&m);
    return rc;
}
