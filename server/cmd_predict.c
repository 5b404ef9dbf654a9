/* cmd_predict.c — `strata predict <model> <image>`: classify one image, and
 * say how far to trust the answer (the question of question.h, as the API
 * asks it). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "cli.h"
#include "doubt_cache.h"
#include "doubt_json.h"
#include "question.h"

static const char *const predict_help =
    "Usage: strata predict <model-id | model-dir> <image> [options]\n\n"
    "Classifies one JPEG or PNG image and prints the classes by probability.\n\n"
    "  --top N        how many classes to print (default: all)\n"
    "  --no-doubt     skip the doubt score (it needs the dataset to calibrate, once)\n"
    "  --data DIR     datasets folder, for the doubt calibration (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --cache DIR    where the doubt calibration is kept (default $STRATA_CACHE or var/cache)\n"
    "  --json         print JSON: {\"model\", \"image\", \"predicted\", \"probabilities\": [{class, probability}],\n"
    "                 \"doubt\"} — the doubt as POST /api/models/{id}/predict gives it (null without one)\n"
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
    struct doubt_model dm = {0};
    struct question_answer a = {0};
    int rc = EXIT_FAIL, have_dm = 0;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0 ||
        image_load(argv[optind + 1], &img, err) < 0) {
        cli_fail("predict", "%s", err);
        goto done;
    }
    /* The doubt model is calibrated once per model and cached; without it
     * the prediction still answers. */
    char derr[STRATA_ERR_LEN] = "";
    if (!no_doubt) {
        struct doubt_params dp;
        doubt_params_default(&dp);
        have_dm = doubt_load_or_calibrate(&m, &dp, dataset_root(data), analysis_cache_dir(cache),
                                          &dm, NULL, NULL, derr) == 0;
    }
    const struct question q = {.doubt = have_dm ? &dm : NULL};
    if (question_ask_image(&m, NULL, &img, &q, &a, err) < 0) {
        cli_fail("predict", "%s", err);
        goto done;
    }
    if (!no_doubt && !a.doubt)
        fprintf(stderr, "strata predict: no doubt score: %s\n", have_dm ? a.doubt_error : derr);
    int order[MODEL_MAX_CLASSES];
    /* Classes by falling probability (insertion sort: C is small). */
    for (int i = 0; i < m.n_classes; i++) {
        int j = i;
        while (j > 0 && a.probs[order[j - 1]] < a.probs[i]) {
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
                                                  "probability", (double)a.probs[order[i]]));
        json_t *out = json_pack("{s:s, s:s, s:s, s:o}", "model", m.id, "image", argv[optind + 1],
                                "predicted", m.classes[order[0]], "probabilities", list);
        if (out && !no_doubt)
            json_object_set_new(out, "doubt", a.doubt ? doubt_result_json(a.doubt, &m) : json_null());
        if (!out) {
            cli_fail("predict", "out of memory");
            goto done;
        }
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        printf("%s: %s\n", argv[optind + 1], m.classes[order[0]]);
        for (int i = 0; i < shown; i++)
            printf("  %-16s %6.2f %%\n", m.classes[order[i]], 100.0 * a.probs[order[i]]);
        if (a.doubt)
            printf("doubt %.2f (%s): %s\n", a.doubt->doubt, doubt_level_name(a.doubt->level),
                   a.doubt->explanation);
    }
    rc = EXIT_OK;
done:
    question_answer_free(&a);
    doubt_free(&dm);
    image_free(&img);
    model_free(&m);
    return rc;
}
