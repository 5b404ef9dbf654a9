/*
 * cmd_import.c — `strata import FILE.onnx --id ID ...`: makes an ONNX file a
 * strata model. models/ID/ receives the file as it is (the source of truth,
 * nothing converted) and a model.json with what ONNX does not say: the class
 * names, the input normalisation, the title and the dataset (from the
 * options, or from the metadata of a file strata exported). The folder is
 * written under a temporary name, opened as a model to check everything, and
 * only then renamed into place: a failed import leaves nothing behind.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "model_import.h"

static const char *const import_help =
    "Usage: strata import FILE.onnx --id ID [options]\n\n"
    "Imports an ONNX image classifier (exported from PyTorch, Keras via tf2onnx, ...)\n"
    "as the strata model ID: writes <models>/ID/model.onnx (the file, unchanged) and\n"
    "<models>/ID/model.json. After that, predict, eval, explain, analyze and\n"
    "doubt-eval work on ID, and `strata serve` lists it.\n\n"
    "The model must take one float batch N x 3 x H x W (RGB, channels first) and give\n"
    "N x K class scores (logits, or probabilities from a final Softmax).\n\n"
    "A file strata exported (strata export) says its classes, normalisation and title\n"
    "in its metadata: they are used unless an option below says otherwise.\n\n"
    "Class names, in the order of the model's outputs (one of):\n"
    "  --classes a,b,c    comma-separated\n"
    "  --labels FILE      one name per line\n"
    "  --dataset NAME     the class folders of <data>/NAME/train, sorted (as strata and\n"
    "                     torchvision's ImageFolder sort them); also the model's dataset\n\n"
    "  --mean r,g,b       input normalisation: x = (pixel/255 - mean) / std\n"
    "  --std r,g,b        (default mean 0,0,0 and std 1,1,1: pixels scaled to [0, 1];\n"
    "                     ImageNet: --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225;\n"
    "                     [-1, 1]: --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)\n"
    "  --input HxW        input size, when the file leaves it open (e.g. 224x224)\n"
    "  --title TEXT       the name shown on the pages (default: ID)\n"
    "  --data DIR         datasets folder (default $STRATA_DATA or " DATASET_DEFAULT_ROOT ")\n"
    "  --models DIR       folder holding the models (default $STRATA_MODELS or ./models)\n";

/* Appends one class name (trimmed) to arr; refuses empty names. */
static int add_class(json_t *arr, const char *begin, const char *end)
{
    while (begin < end && (*begin == ' ' || *begin == '\t'))
        begin++;
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        end--;
    if (end == begin || end - begin > 255)
        return -1;
    return json_array_append_new(arr, json_stringn(begin, (size_t)(end - begin)));
}

static int classes_from_file(json_t *arr, const char *path, char *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strata_fail(err, STRATA_E_IO, "%s: %s", path, strerror(errno));
    char line[1024];
    int rc = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strcspn(line, "\n");
        line[len] = 0;
        int blank = 1;
        for (char *c = line; *c; c++)
            blank &= *c == ' ' || *c == '\t' || *c == '\r';
        if (blank)
            continue;
        if (add_class(arr, line, line + len) < 0) {
            rc = strata_fail(err, STRATA_E_ARG, "%s:%d: a class name of 1 to 255 characters",
                             path, lineno);
            break;
        }
    }
    fclose(f);
    return rc;
}

static int copy_file(const char *from, const char *to, char *err)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return strata_fail(err, STRATA_E_IO, "%s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return strata_fail(err, STRATA_E_IO, "%s: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        bad |= fwrite(buf, 1, n, out) != n;
    bad |= ferror(in);
    fclose(in);
    bad |= fclose(out) != 0;
    return bad ? strata_fail(err, STRATA_E_IO, "copying %s to %s failed", from, to) : 0;
}

static void remove_folder(const char *dir)
{
    char path[1400];
    const char *files[] = {"model.onnx", "model.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int cmd_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, 0, 'i'},     {"models", required_argument, 0, 'm'},
        {"classes", required_argument, 0, 'c'}, {"labels", required_argument, 0, 'l'},
        {"dataset", required_argument, 0, 'd'}, {"mean", required_argument, 0, 'M'},
        {"std", required_argument, 0, 'S'},    {"title", required_argument, 0, 't'},
        {"input", required_argument, 0, 'I'},  {"data", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    const char *id = NULL, *models = NULL, *classes = NULL, *labels = NULL, *dataset = NULL,
               *title = NULL, *input = NULL, *data = NULL;
    double mean[3] = {0, 0, 0}, stdv[3] = {1, 1, 1};
    int c, have_mean = 0, have_std = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': id = optarg; break;
        case 'm': models = optarg; break;
        case 'c': classes = optarg; break;
        case 'l': labels = optarg; break;
        case 'd': dataset = optarg; break;
        case 't': title = optarg; break;
        case 'I': input = optarg; break;
        case 'D': data = optarg; break;
        case 'M':
            if (cli_parse_triple(optarg, mean, 0))
                return cli_usage_error("import", "--mean expects three numbers r,g,b, got '%s'", optarg);
            have_mean = 1;
            break;
        case 'S':
            if (cli_parse_triple(optarg, stdv, 1))
                return cli_usage_error("import", "--std expects three positive numbers r,g,b, got '%s'", optarg);
            have_std = 1;
            break;
        case 'h': fputs(import_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("import", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("import", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("import", "expected one ONNX file");
    if (!id)
        return cli_usage_error("import", "--id is required (the new model's name)");
    if (!import_id_ok(id))
        return cli_usage_error("import", "--id '%s': use letters, digits, '-', '_' and '.' only", id);
    if (classes && labels)
        return cli_usage_error("import", "--classes and --labels are alternatives; give one");

    const char *file = argv[optind];
    /* what a file strata exported says about itself */
    struct import_file_meta fm;
    import_file_meta_read(&fm, file);
    json_t *meta_classes = fm.classes ? json_incref(fm.classes) : NULL;
    char meta_title[sizeof fm.title] = "";
    int meta_norm = 0, meta_cls = 0;
    if (!have_mean && fm.has_mean) {
        memcpy(mean, fm.mean, sizeof mean);
        meta_norm = 1;
    }
    if (!have_std && fm.has_std) {
        memcpy(stdv, fm.std, sizeof stdv);
        meta_norm = 1;
    }
    if (!title && fm.title[0]) {
        snprintf(meta_title, sizeof meta_title, "%s", fm.title);
        title = meta_title;
    }
    const char *key;
    json_t *why;
    json_object_foreach(fm.ignored, key, why)
        fprintf(stderr, "strata import: %s\n", json_string_value(why));
    import_file_meta_deinit(&fm);
    if (!classes && !labels && !dataset && !meta_classes)
        return cli_usage_error("import", "give the class names: --classes, --labels or --dataset");
    char err[STRATA_ERR_LEN], dir[1200], tmp[1300], path[1400];
    const char *root = cli_models_root(models);
    snprintf(dir, sizeof dir, "%s/%s", root, id);
    struct stat st;
    if (stat(dir, &st) == 0) {
        json_decref(meta_classes);
        return cli_fail("import", "%s already exists; choose another --id or remove it first", dir);
    }

    json_t *names = json_array();
    int rc = 0;
    if (classes)
        rc = import_classes_from_list(names, classes, err);
    else if (labels)
        rc = classes_from_file(names, labels, err);
    else if (meta_classes && !dataset) {
        json_array_extend(names, meta_classes);
        meta_cls = 1;
    } else {
        struct dataset ds = {0};
        rc = dataset_open(&ds, dataset_root(data), dataset, "train", err);
        for (int k = 0; rc == 0 && k < ds.n_classes; k++)
            json_array_append_new(names, json_string(ds.classes[k]));
        dataset_free(&ds);
    }
    json_decref(meta_classes);
    if (rc == 0 && (meta_cls || meta_norm || title == meta_title))
        printf("from the file's metadata:%s%s%s\n", meta_cls ? " classes" : "",
               meta_norm ? " normalisation" : "", title == meta_title ? " title" : "");
    int h = 0, w = 0, want_h = 0, want_w = 0;
    if (input && (sscanf(input, "%dx%d", &want_h, &want_w) != 2 || want_h < 1 || want_w < 1)) {
        json_decref(names);
        return cli_usage_error("import", "--input expects HxW, e.g. 224x224, got '%s'", input);
    }
    if (rc == 0)
        rc = import_input_size(file, file, want_h, want_w, &h, &w, err);
    if (rc < 0) {
        json_decref(names);
        return cli_fail("import", "%s", err);
    }

    snprintf(tmp, sizeof tmp, "%s/.import-%s-%d", root, id, (int)getpid());
    if ((mkdir(root, 0755) != 0 && errno != EEXIST) || mkdir(tmp, 0755) != 0) {
        json_decref(names);
        return cli_fail("import", "cannot create %s: %s", tmp, strerror(errno));
    }
    snprintf(path, sizeof path, "%s/model.onnx", tmp);
    rc = copy_file(file, path, err);
    struct import_meta meta = {.id = id, .title = title, .classes = names, .dataset = dataset,
                               .mean = {mean[0], mean[1], mean[2]},
                               .std = {stdv[0], stdv[1], stdv[2]}, .height = h, .width = w};
    int n_layers = 0;
    if (rc == 0 && (rc = import_write_and_check(tmp, &meta, &n_layers, err)) == 0)
        printf("imported %s: %zu classes, input %dx%d, %d layers shown\n", id,
               json_array_size(names), h, w, n_layers);
    json_decref(names);
    if (rc == 0 && rename(tmp, dir) != 0)
        rc = strata_fail(err, STRATA_E_IO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    if (rc < 0) {
        remove_folder(tmp);
        /* name the user's file, not the temporary copy the check opened */
        char copy[1400], *at;
        snprintf(copy, sizeof copy, "%s/model.onnx", tmp);
        if ((at = strstr(err, copy)))
            return cli_fail("import", "%.*s%s%s", (int)(at - err), err, file, at + strlen(copy));
        return cli_fail("import", "%s", err);
    }
    printf("wrote %s/model.json and %s/model.onnx\n", dir, dir);
    return EXIT_OK;
}
