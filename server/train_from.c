/* train_from.c — an ONNX architecture made a model to train (see
 * train_from.h). */
#include "train_from.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classifier.h"
#include "dataset.h"
#include "graph.h"
#include "model_import.h"
#include "onnx.h"
#include "onnx_weights.h"
#include "status.h"

static void remove_partial(const char *dir)
{
    static const char *const files[] = {"model.onnx", "model.onnx.tmp", "model.json",
                                        "model.json.tmp"};
    char path[1400];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

int train_from_onnx(const struct train_from *o, char *dir, size_t cap, char *err)
{
    char tmp[1300], path[1400];
    struct stat st;
    snprintf(dir, cap, "%s/%s", o->models_root, o->id);
    if (!import_id_ok(o->id))
        return strata_fail(err, STRATA_E_ARG,
                           "'%s' is not a usable model id: use letters, digits, '-', '_' and '.'",
                           o->id);
    if (stat(dir, &st) == 0)
        return strata_fail(err, STRATA_E_ARG,
                           "%s already exists; choose another id, or train it without --from",
                           dir);

    json_t *names = json_array();
    struct dataset ds = {0};
    int rc = names ? dataset_open(&ds, o->data_root, o->dataset, "train", err)
                   : strata_fail(err, STRATA_E_NOMEM, "out of memory");
    for (int k = 0; rc == 0 && k < ds.n_classes; k++)
        json_array_append_new(names, json_string(ds.classes[k]));
    dataset_free(&ds);
    if (rc == 0 && json_array_size(names) < 2)
        rc = strata_fail(err, STRATA_E_ARG,
                         "%s/%s/train has %zu class folder; a classifier needs at least two",
                         o->data_root, o->dataset, json_array_size(names));
    int h = 0, w = 0;
    if (rc == 0)
        rc = import_input_size(o->file, o->file, o->height, o->width, &h, &w, err);
    struct graph g = {0};
    if (rc == 0)
        rc = onnx_load(&g, o->file, err);
    const int classes = (int)json_array_size(names);
    struct classifier c;
    if (rc == 0 && (rc = classifier_find(&g, &c, err)) < 0) {
        char why[STRATA_ERR_LEN];
        snprintf(why, sizeof why, "%s", err);
        strata_fail(err, rc, "%s: %s", o->file, why);
    }
    if (rc == 0 && c.outputs != classes) {
        const int before = c.outputs;
        if ((rc = classifier_resize(&g, &c, classes, o->seed, err)) == 0)
            fprintf(stderr,
                    "the classifier (node '%s', %s) gave %d scores; it now gives %d, one per "
                    "class of %s, its weights drawn at random\n",
                    g.nodes[c.node].name, g.nodes[c.node].op_type, before, classes, o->dataset);
    }
    snprintf(tmp, sizeof tmp, "%s/.train-from-%s-%d", o->models_root, o->id, (int)getpid());
    if (rc == 0 && ((mkdir(o->models_root, 0755) != 0 && errno != EEXIST) || mkdir(tmp, 0755) != 0))
        rc = strata_fail(err, STRATA_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    else if (rc == 0) {
        snprintf(path, sizeof path, "%s/model.onnx", tmp);
        rc = onnx_save_weights(o->file, &g, classes, path, err);
        struct import_meta meta = {.id = o->id, .classes = names, .dataset = o->dataset,
                                   .mean = {o->mean[0], o->mean[1], o->mean[2]},
                                   .std = {o->std[0], o->std[1], o->std[2]},
                                   .height = h, .width = w};
        int n_layers = 0;
        if (rc == 0)
            rc = import_write_and_check(tmp, &meta, &n_layers, err);
        if (rc == 0 && rename(tmp, dir) != 0)
            rc = strata_fail(err, STRATA_E_IO, "cannot rename %s to %s: %s", tmp, dir,
                             strerror(errno));
        if (rc < 0)
            remove_partial(tmp);
    }
    graph_deinit(&g);
    json_decref(names);
    return rc;
}
