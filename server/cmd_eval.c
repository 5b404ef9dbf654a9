/* cmd_eval.c — `strata eval <model>`: accuracy on a dataset split. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "evaljson.h"

static const char *const eval_help =
    "Usage: strata eval <model-id | model-dir> [options]\n\n"
    "Runs the model on every image of a dataset split and reports accuracy,\n"
    "per-class accuracy and the confusion matrix (rows: true class).\n\n"
    "  --data DIR     datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --split NAME   split to evaluate (default test)\n"
    "  --json         print JSON: {accuracy, balanced_accuracy, n, classes, per_class, confusion}\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS threads\n";

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"split", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *split = "test", *models = NULL;
    int json = 0, threads = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 's': split = optarg; break;
        case 'j': json = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("eval", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(eval_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("eval", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("eval", "expected one model");
    cli_set_threads(threads);

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    struct dataset ds = {0};
    struct evaluation ev = {0};
    uint8_t *pixels = NULL;
    int *labels = NULL, rc = EXIT_FAIL;
    if (model_open(&m, cli_models_root(models), argv[optind], err) < 0 ||
        cli_load_split(&m, dataset_root(data), split, &ds, &pixels, json, err) < 0) {
        cli_fail("eval", "%s", err);
        goto done;
    }
    labels = malloc((size_t)ds.n * sizeof(int));
    if (!labels) {
        cli_fail("eval", "out of memory");
        goto done;
    }
    for (int i = 0; i < ds.n; i++)
        labels[i] = ds.items[i].label;
    if (evaluate_images(&m, pixels, labels, ds.n, 64, &ev, err) < 0) {
        cli_fail("eval", "%s", err);
        goto done;
    }
    if (json) {
        json_t *out = evaluation_to_json(&ev, &m);
        json_object_set_new(out, "model", json_string(m.id));
        json_object_set_new(out, "split", json_string(split));
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        fputc('\n', stdout);
        json_decref(out);
    } else {
        printf("model %s on %s (%d images)\n", m.id, ds.dir, ev.n);
        printf("accuracy %.2f %%  (balanced %.2f %%)\n\n", 100 * ev.accuracy, 100 * ev.balanced_accuracy);
        printf("%-14s %8s %6s\n", "class", "accuracy", "n");
        for (int k = 0; k < m.n_classes; k++)
            printf("%-14s %7.2f%% %6d\n", m.classes[k], 100 * ev.per_class[k], ev.per_class_n[k]);
        printf("\nconfusion (rows: true, columns: predicted)\n%-14s", "");
        for (int k = 0; k < m.n_classes; k++)
            printf(" %9.9s", m.classes[k]);
        printf("\n");
        for (int t = 0; t < m.n_classes; t++) {
            printf("%-14s", m.classes[t]);
            for (int p = 0; p < m.n_classes; p++)
                printf(" %9d", ev.confusion[t * m.n_classes + p]);
            printf("\n");
        }
    }
    rc = EXIT_OK;
done:
    evaluation_free(&ev);
    free(labels);
    free(pixels);
    dataset_free(&ds);
    model_free(&m);
    return rc;
}
