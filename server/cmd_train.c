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
#include "graph.h"
#include "model_graph.h"
#include "onnx_weights.h"
#include "progress.h"
#include "train.h"
#include "train_from.h"
#include "train_graph.h"

static const char *const train_help =
    "Usage: strata train <model-id | model-dir | model.json> [options]\n"
    "       strata train ID --from FILE.onnx [options]\n\n"
    "Trains the model defined by model.json on <data>/<dataset>/train and\n"
    "writes weights.safetensors and card.json (curves, test accuracy,\n"
    "per-class accuracy, confusion matrix, time) next to it or into --out.\n"
    "An imported model (model.json names an ONNX file) is trained from its\n"
    "file's weights, and its model.onnx is rewritten with the trained ones.\n"
    "Ctrl-C stops after the current batch and keeps the best weights so far.\n\n"
    "  --data DIR     datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --epochs N     override training.epochs\n"
    "  --seed S       override training.seed\n"
    "  --out DIR      where to write weights.safetensors and card.json (strata's own models)\n"
    "  --log-json     one JSON line per epoch on stdout (the default when stderr is not a terminal)\n"
    "  --models DIR   folder holding the models (default $STRATA_MODELS or ./models)\n"
    "  --threads N    BLAS threads\n\n"
    "Training an architecture from an ONNX file (e.g. an untrained torchvision\n"
    "MobileNetV2 or ResNet-18 exported by PyTorch) as the new model ID:\n"
    "  --from FILE    the ONNX file; models/ID is made from it as `strata import`\n"
    "                 makes one, with the dataset's class folders as the classes;\n"
    "                 a classifier with another number of outputs (1,000) gets one\n"
    "                 per class, drawn at random\n"
    "  --dataset NAME the images: <data>/NAME/{train,test} (default: ID)\n"
    "  --init W       onnx: start from the file's weights (default); random: from\n"
    "                 scratch (He/Glorot-uniform weights, batch-norm statistics reset)\n"
    "  --mean r,g,b   input normalisation x = (pixel/255 - mean) / std\n"
    "  --std r,g,b    (default ImageNet's: 0.485,0.456,0.406 and 0.229,0.224,0.225)\n"
    "  --input HxW    input size, when the file leaves it open\n"
    "The training hyper-parameters are model.json's \"training\" object\n"
    "(docs/training.md); without one, the defaults.\n";

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
        "width", m->input.w, "channels", m->input.c, "parameters",
        (json_int_t)(m->onnx[0] ? graph_param_count(&m->graph->g) : model_trainable_count(m)),
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
                                         {"from", required_argument, 0, 'f'},
                                         {"dataset", required_argument, 0, 'D'},
                                         {"init", required_argument, 0, 'i'},
                                         {"mean", required_argument, 0, 'M'},
                                         {"std", required_argument, 0, 'S'},
                                         {"input", required_argument, 0, 'I'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *data = NULL, *out_dir = NULL, *models = NULL, *from = NULL, *dataset = NULL,
               *init = NULL, *input = NULL;
    double mean[3] = {0.485, 0.456, 0.406}, stdv[3] = {0.229, 0.224, 0.225};
    int epochs = 0, seed = -1, threads = 0, log_json = !progress_is_tty(), c, norm_given = 0;
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
        case 'f': from = optarg; break;
        case 'D': dataset = optarg; break;
        case 'i':
            if (strcmp(optarg, "onnx") != 0 && strcmp(optarg, "random") != 0)
                return cli_usage_error("train", "--init expects onnx or random, got '%s'", optarg);
            init = optarg;
            break;
        case 'I': input = optarg; break;
        case 'M':
            if (cli_parse_triple(optarg, mean, 0))
                return cli_usage_error("train", "--mean expects three numbers r,g,b, got '%s'", optarg);
            norm_given = 1;
            break;
        case 'S':
            if (cli_parse_triple(optarg, stdv, 1))
                return cli_usage_error("train", "--std expects three positive numbers r,g,b, got '%s'",
                                       optarg);
            norm_given = 1;
            break;
        case 'h': fputs(train_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("train", "expected one model");
    if (!from && (dataset || norm_given || input))
        return cli_usage_error("train", "--dataset, --mean, --std and --input go with --from "
                               "(a model's own are in its model.json)");
    int n_threads = cli_set_threads(threads);

    /* Resolve the definition: a model.json file, a folder, or an id (with
     * --from, the new model's, made first). */
    const char *arg = argv[optind];
    char json_path[1100], dir[1024];
    char err[STRATA_ERR_LEN];
    size_t alen = strlen(arg);
    struct stat st;
    if (from) {
        int want_h = 0, want_w = 0;
        if (input && (sscanf(input, "%dx%d", &want_h, &want_w) != 2 || want_h < 1 || want_w < 1))
            return cli_usage_error("train", "--input expects HxW, e.g. 224x224, got '%s'", input);
        if (out_dir)
            return cli_usage_error("train", "--out does not go with --from: the model is made in "
                                   "<models>/ID");
        struct train_from o = {.file = from, .id = arg, .models_root = cli_models_root(models),
                               .data_root = dataset_root(data), .dataset = dataset ? dataset : arg,
                               .mean = {mean[0], mean[1], mean[2]},
                               .std = {stdv[0], stdv[1], stdv[2]}, .height = want_h,
                               .width = want_w, .seed = seed >= 0 ? (uint64_t)seed : 1};
        if (train_from_onnx(&o, dir, sizeof dir, err) < 0)
            return cli_fail("train", "%s", err);
        snprintf(json_path, sizeof json_path, "%s/model.json", dir);
        fprintf(stderr, "made %s from %s\n", dir, from);
    } else if (alen > 5 && strcmp(arg + alen - 5, ".json") == 0) {
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

    struct model m = {0};
    struct dataset train_ds = {0}, test_ds = {0};
    struct train_config cfg;
    struct train_report report = {0};
    struct evaluation test_ev = {0};
    uint8_t *pixels = NULL, *test_pixels = NULL;
    int *labels = NULL, rc = EXIT_FAIL, have_test = 0;
    json_t *card = NULL;

    if (model_load_json(&m, json_path, err) < 0 ||
        train_config_parse(&cfg, json_object_get(m.json, "training"), json_path, err) < 0 ||
        (m.onnx[0] && model_load_onnx(&m, err) < 0)) {
        cli_fail("train", "%s", err);
        goto done;
    }
    if (m.onnx[0] && strcmp(out_dir, dir) != 0) {
        cli_fail("train", "%s is imported from %s: its trained weights replace that file, in "
                 "its folder; --out is for strata's own models", m.id, m.onnx);
        goto done;
    }
    if (!m.onnx[0] && init) {
        cli_fail("train", "--init is for imported models; %s is one of strata's own (its "
                 "weights are drawn from training.seed)", m.id);
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
    if (!m.onnx[0])
        model_init_params(&m, cfg.seed);
    else if (init && strcmp(init, "random") == 0 && train_graph_randomize(&m, cfg.seed, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }

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
    /* the test split is measured as every command will run the model: on
     * its graph */
    if (model_run_on_graph(&m, err) < 0) {
        cli_fail("train", "%s", err);
        goto done;
    }
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

    char weights_path[1400], card_path[1100];
    snprintf(card_path, sizeof card_path, "%s/card.json", out_dir);
    if (m.onnx[0]) {
        /* the file, rewritten with the trained weights */
        snprintf(weights_path, sizeof weights_path, "%s/%s", m.dir, m.onnx);
        if (onnx_save_weights(weights_path, &m.graph->g, m.n_classes, weights_path, err) < 0) {
            cli_fail("train", "%s", err);
            goto done;
        }
    } else {
        snprintf(weights_path, sizeof weights_path, "%s/weights.safetensors", out_dir);
        if (model_save_weights(&m, weights_path, err) < 0) {
            cli_fail("train", "%s", err);
            goto done;
        }
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
