/* cmd_train.c — `strata train`: train a model and write its weights and card. */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "evaljson.h"
#include "evaluate.h"
#include "progress.h"
#include "train.h"

static const char *const train_help =
    "Usage: strata train <model-id | model-dir | model.json> [options]\n\n"
    "Trains the model defined by model.json on <data>/<dataset>/train and\n"
    "writes weights.safetensors and card.json (curves, test accuracy,\n"
    "per-class accuracy, confusion matrix, time) next to it or into --out.\n"
    "Ctrl-C stops after the current batch and keeps the best weights so far.\n\n"
    "  --data DIR     datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --epochs N     override training.epochs\n"
    "  --seed S       override training.seed\n"
    "  --out DIR      where to write weights.safetensors and card.json\n"
    "  --log-json     one JSON line per epoch on stdout (the default when stderr is not a terminal)\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS threads\n";

struct train_view {
    int log_json;
    struct progress bar;
};

static void show_progress(void *user, const struct train_progress *p, const struct train_epoch *e)
{
    struct train_view *v = user;
    if (!e) {
        char detail[160];
        snprintf(detail, sizeof detail, "epoch %d/%d  loss %.4f  acc %.1f%%  %.0f img/s  ETA %.0fs",
                 p->epoch, p->epochs, p->loss, 100 * p->acc, p->images_per_s, p->eta_s);
        progress_update(&v->bar, p->batch, p->batches, detail);
        return;
    }
    progress_end(&v->bar);
    if (v->log_json) {
        printf("{\"epoch\":%d,\"epochs\":%d,\"train_loss\":%.5f,\"train_acc\":%.5f,\"val_loss\":%.5f,"
               "\"val_acc\":%.5f,\"lr\":%.6g,\"seconds\":%.2f,\"images_per_s\":%.1f,\"eta_s\":%.0f}\n",
               e->epoch, p->epochs, e->train_loss, e->train_acc, e->val_loss, e->val_acc, e->lr,
               e->seconds, p->images_per_s, p->eta_s);
        fflush(stdout);
    }
    if (v->bar.enabled)
        fprintf(stderr, "epoch %3d  loss %.4f  acc %5.1f%%  val loss %.4f  val acc %5.1f%%  %.1fs\n",
                e->epoch, e->train_loss, 100 * e->train_acc, e->val_loss, 100 * e->val_acc, e->seconds);
}

/* Writes text to path via a temporary file and a rename. */
static int write_json_file(const char *path, json_t *j, char *err)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(6) | JSON_SORT_KEYS) != 0 ||
        rename(tmp, path) != 0) {
        unlink(tmp);
        return strata_fail(err, STRATA_E_IO, "cannot write %s", path);
    }
    return 0;
}

static json_t *card_json(const struct model *m, const struct train_config *cfg,
                         const struct train_report *r, const struct evaluation *test, const char *data_dir,
                         size_t weights_bytes)
{
    json_t *epochs = json_array();
    for (int i = 0; i < r->n_epochs; i++) {
        const struct train_epoch *e = &r->epochs[i];
        json_array_append_new(epochs, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "epoch", e->epoch,
                                                "train_loss", e->train_loss, "train_acc", e->train_acc,
                                                "val_loss", e->val_loss, "val_acc", e->val_acc, "lr",
                                                e->lr, "seconds", e->seconds));
    }
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *card = json_pack(
        "{s:s, s:s, s:s, s:{s:i, s:i, s:i}, s:I, s:I, s:{s:f, s:i, s:i, s:i, s:I, s:i, s:i, s:i, s:b, "
        "s:b, s:o}, s:s}",
        "model", m->id, "title", m->title, "dataset", m->dataset, "input", "height", m->input.h,
        "width", m->input.w, "channels", m->input.c, "parameters", (json_int_t)model_trainable_count(m),
        "weights_bytes", (json_int_t)weights_bytes, "training", "seconds", r->seconds, "threads",
        r->threads, "epochs_run", r->n_epochs, "best_epoch", r->best_epoch, "seed",
        (json_int_t)cfg->seed, "n_train", r->n_train, "n_val", r->n_val, "batch_size", cfg->batch_size,
        "stopped_early", r->stopped_early, "interrupted", r->interrupted, "curve", epochs, "trained_at",
        when);
    json_object_set_new(json_object_get(card, "training"), "best_val_acc", json_real(r->best_val_acc));
    json_object_set_new(card, "data", json_string(data_dir));
    if (test)
        json_object_set_new(card, "test", evaluation_to_json(test, m));
    json_t *training = json_object_get(m->json, "training");
    json_t *notes = training ? json_object_get(training, "notes") : NULL;
    if (notes)
        json_object_set(card, "notes", notes);
    return card;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"epochs", required_argument, 0, 'e'},
                                         {"seed", required_argument, 0, 's'},
                                         {"out", required_argument, 0, 'o'},
                                         {"log-json", no_argument, 0, 'l'},
                                         {"models", required_argument, 0, 'm'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *out_dir = NULL, *models = NULL;
    int epochs = 0, seed = -1, threads = 0, log_json = !progress_is_tty(), c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'e':
            if (cli_parse_int(optarg, 1, 100000, &epochs))
                return cli_usage_error("train", "--epochs expects a positive integer, got '%s'", optarg);
            break;
        case 's':
            if (cli_parse_int(optarg, 0, 2147483647, &seed))
                return cli_usage_error("train", "--seed expects a non-negative integer, got '%s'", optarg);
            break;
        case 'o': out_dir = optarg; break;
        case 'l': log_json = 1; break;
        case 'm': models = optarg; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("train", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(train_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("train", "expected one model");
    int n_threads = cli_set_threads(threads);

    /* Resolve the definition: a model.json file, a folder, or an id. */
    const char *arg = argv[optind];
    char json_path[1100], dir[1024];
    size_t alen = strlen(arg);
    struct stat st;
    if (alen > 5 && strcmp(arg + alen - 5, ".json") == 0) {
        snprintf(json_path, sizeof json_path, "%s", arg);
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", arg);
        snprintf(dir, sizeof dir, "%s", dirname(tmp));
    } else {
        if (strchr(arg, '/') || (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)))
            snprintf(dir, sizeof dir, "%s", arg);
        else
            snprintf(dir, sizeof dir, "%s/%s", cli_models_root(models), arg);
        snprintf(json_path, sizeof json_path, "%s/model.json", dir);
    }
    if (!out_dir)
        out_dir = dir;

    char err[STRATA_ERR_LEN];
    struct model m = {0};
    struct dataset train_ds = {0}, test_ds = {0};
    struct train_config cfg;
    struct train_report report = {0};
    struct evaluation test_ev = {0};
    uint8_t *pixels = NULL, *test_pixels = NULL;
    int *labels = NULL, rc = EXIT_FAIL, have_test = 0;
    json_t *card = NULL;

    if (model_load_json(&m, json_path, err) < 0 ||
        train_config_parse(&cfg, json_object_get(m.json, "training"), json_path, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
    if (epochs)
        cfg.epochs = epochs;
    if (seed >= 0)
        cfg.seed = (uint64_t)seed;
    if (mkdir(out_dir, 0755) != 0 && access(out_dir, W_OK) != 0) {
        cli_fail("train", "cannot write to output folder %s", out_dir);
        goto done;
    }
    if (m.n_classes < 2) {
        /* a softmax over one class is 1 whatever the image: nothing to learn */
        cli_fail("train", "%s lists %d class; a classifier needs at least two (one class folder "
                 "per class under the dataset's train/)",
                 json_path, m.n_classes);
        goto done;
    }
    const char *data_root = dataset_root(data);
    if (cli_load_split(&m, data_root, "train", &train_ds, &pixels, 0, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
    labels = malloc((size_t)train_ds.n * sizeof(int));
    if (!labels) {
        cli_fail("train", "out of memory");
        goto done;
    }
    for (int i = 0; i < train_ds.n; i++)
        labels[i] = train_ds.items[i].label;
    model_init_params(&m, cfg.seed);

    fprintf(stderr, "training %s on %d images of %s (%d classes), %d epochs, batch %d, %d threads\n",
            m.id, train_ds.n, train_ds.dir, m.n_classes, cfg.epochs, cfg.batch_size, n_threads);
    struct train_view view = {.log_json = log_json};
    progress_begin(&view.bar, "train");
    cli_catch_sigint();
    int trc = train_run(&m, &cfg, pixels, labels, train_ds.n, show_progress, &view, &cli_stop_requested,
                        &report, err);
    cli_release_sigint();
    progress_end(&view.bar);
    if (trc < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
    report.threads = n_threads;
    if (report.interrupted)
        fprintf(stderr, "interrupted: keeping the weights of epoch %d\n", report.best_epoch);

    /* The test split, if there is one, measures what the card reports. */
    free(pixels);
    pixels = NULL;
    if (cli_load_split(&m, data_root, "test", &test_ds, &test_pixels, 0, err) == 0) {
        int *test_labels = malloc((size_t)test_ds.n * sizeof(int));
        if (test_labels) {
            for (int i = 0; i < test_ds.n; i++)
                test_labels[i] = test_ds.items[i].label;
            have_test = evaluate_images(&m, test_pixels, test_labels, test_ds.n, 64, &test_ev, err) == 0;
            free(test_labels);
        }
    } else {
        fprintf(stderr, "no test split evaluated: %s\n", err);
    }

    char weights_path[1100], card_path[1100];
    snprintf(weights_path, sizeof weights_path, "%s/weights.safetensors", out_dir);
    snprintf(card_path, sizeof card_path, "%s/card.json", out_dir);
    if (model_save_weights(&m, weights_path, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
    stat(weights_path, &st);
    card = card_json(&m, &cfg, &report, have_test ? &test_ev : NULL, data_root, (size_t)st.st_size);
    if (write_json_file(card_path, card, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
    fprintf(stderr, "wrote %s and %s (%.1f s", weights_path, card_path, report.seconds);
    if (have_test)
        fprintf(stderr, ", test accuracy %.2f %%, balanced %.2f %%", 100 * test_ev.accuracy,
                100 * test_ev.balanced_accuracy);
    fprintf(stderr, ")\n");
    rc = report.interrupted ? EXIT_FAIL : EXIT_OK;
done:
    json_decref(card);
    evaluation_free(&test_ev);
    train_report_free(&report);
    free(labels);
    free(pixels);
    free(test_pixels);
    dataset_free(&train_ds);
    dataset_free(&test_ds);
    model_free(&m);
    return rc;
}
