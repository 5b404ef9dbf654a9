/*
 * model_import.c — the parts of importing an ONNX classifier that the
 * command line and the API share (see model_import.h).
 */
#include "model_import.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "graph.h"
#include "model.h"
#include "onnx.h"

int import_id_ok(const char *s)
{
    if (!s || !s[0] || s[0] == '.' || strlen(s) >= 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

int import_input_size(const char *onnx_path, const char *what, int want_h, int want_w, int *h,
                      int *w, char *err)
{
    struct graph g = {0};
    int rc = onnx_load(&g, onnx_path, err);
    if (rc < 0)
        return rc;
    int64_t fh = -1, fw = -1;
    if (g.n_inputs >= 1 && g.values[g.inputs[0]].init.ndim == 4) {
        fh = g.values[g.inputs[0]].init.dims[2];
        fw = g.values[g.inputs[0]].init.dims[3];
    }
    graph_deinit(&g);
    if (want_h || want_w) {
        if (want_h < 1 || want_w < 1 || want_h > 4096 || want_w > 4096)
            return strata_fail(err, STRATA_E_ARG,
                               "the input size is HxW with sides of 1 to 4096 pixels, e.g. "
                               "224x224; got %dx%d",
                               want_h, want_w);
        if ((fh >= 0 && fh != want_h) || (fw >= 0 && fw != want_w))
            return strata_fail(err, STRATA_E_ARG, "input %dx%d was given, but %s fixes %lldx%lld",
                               want_h, want_w, what, (long long)fh, (long long)fw);
        *h = want_h;
        *w = want_w;
        return 0;
    }
    if (fh < 1 || fw < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "%s leaves the input's height and width open: give them (the size "
                           "the model was trained at, e.g. 224x224)",
                           what);
    if (fh > 4096 || fw > 4096)
        return strata_fail(err, STRATA_E_UNSUPPORTED, "%s: input %lldx%lld is over 4096 pixels",
                           what, (long long)fh, (long long)fw);
    *h = (int)fh;
    *w = (int)fw;
    return 0;
}

int import_write_and_check(const char *folder, const struct import_meta *meta, int *n_layers,
                           char *err)
{
    const double *mu = meta->mean, *sd = meta->std;
    json_t *j = json_pack("{s:s, s:s, s:{s:i, s:i, s:i}, s:{s:[f,f,f], s:[f,f,f]}, s:O, s:s}",
                          "id", meta->id, "title", meta->title ? meta->title : meta->id, "input",
                          "height", meta->height, "width", meta->width, "channels", 3,
                          "normalization", "mean", mu[0], mu[1], mu[2], "std", sd[0], sd[1],
                          sd[2], "classes", (json_t *)meta->classes, "onnx", "model.onnx");
    if (j && meta->dataset) /* without one, the dataset defaults to the id */
        json_object_set_new(j, "dataset", json_string(meta->dataset));
    if (!j)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    char path[1400];
    snprintf(path, sizeof path, "%s/model.json", folder);
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_REAL_PRECISION(7)) != 0
                 ? strata_fail(err, STRATA_E_IO, "cannot write %s", path)
                 : 0;
    json_decref(j);
    /* the real check: open it as a model, exactly as every command will */
    struct model m = {0};
    if (rc == 0 && (rc = model_open(&m, ".", folder, err)) == 0) {
        if (n_layers)
            *n_layers = m.n_layers;
        model_free(&m);
    }
    return rc;
}

int import_classes_from_list(json_t *arr, const char *list, char *err)
{
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;
        while (b < end && (*b == ' ' || *b == '\t'))
            b++;
        while (end > b && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        if (end == b || end - b > 255)
            return strata_fail(err, STRATA_E_ARG,
                               "class names are 1 to 255 characters, comma-separated");
        json_array_append_new(arr, json_stringn(b, (size_t)(end - b)));
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int import_classes_check(const json_t *arr, char *err)
{
    if (!json_is_array(arr) || json_array_size(arr) < 2)
        return strata_fail(err, STRATA_E_ARG, "give at least 2 class names");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *c = json_array_get(arr, i);
        size_t n = json_is_string(c) ? json_string_length(c) : 0;
        if (n == 0 || n > 255)
            return strata_fail(err, STRATA_E_ARG, "class name %zu is not a string of 1 to 255 "
                                                  "characters",
                               i + 1);
        for (size_t k = 0; k < i; k++)
            if (json_equal(c, json_array_get(arr, k)))
                return strata_fail(err, STRATA_E_ARG, "class name \"%.100s\" is given twice",
                                   json_string_value(c));
    }
    return 0;
}

int import_triple(const json_t *j, double out[3], int positive)
{
    double t[3];
    if (!json_is_array(j) || json_array_size(j) != 3)
        return -1;
    for (int i = 0; i < 3; i++) {
        const json_t *v = json_array_get(j, (size_t)i);
        if (!json_is_number(v))
            return -1;
        t[i] = json_number_value(v);
        if (t[i] != t[i] || t[i] > 1e6 || t[i] < -1e6 || (positive && !(t[i] > 0)))
            return -1;
    }
    memcpy(out, t, sizeof t);
    return 0;
}

/* import_triple on a JSON array text (strata.mean, strata.std); 1 when v
 * held one. */
static int meta_triple(const char *v, double out[3], int positive)
{
    json_t *a = v ? json_loads(v, 0, NULL) : NULL;
    int ok = a && import_triple(a, out, positive) == 0;
    json_decref(a);
    return ok;
}

static void file_meta_ignore(struct import_file_meta *fm, const char *field, const char *why)
{
    char text[2 * STRATA_ERR_LEN];
    snprintf(text, sizeof text, "the file's strata.%s %s; it was not used", field, why);
    json_object_set_new(fm->ignored, field, json_string(text));
}

void import_file_meta_read(struct import_file_meta *fm, const char *path)
{
    memset(fm, 0, sizeof *fm);
    fm->ignored = json_object();
    struct onnx_metadata md = {0};
    char err[STRATA_ERR_LEN];
    if (onnx_read_metadata(path, &md, err) < 0)
        return;
    fm->readable = 1;
    const char *v = onnx_metadata_get(&md, "strata.title");
    if (v) {
        /* json_string refuses what is not UTF-8: model.json could not hold it */
        json_t *s = json_string(v);
        if (s && v[0] && strlen(v) <= 200)
            snprintf(fm->title, sizeof fm->title, "%s", v);
        else
            file_meta_ignore(fm, "title", "is not a name of 1 to 200 bytes of UTF-8 text");
        json_decref(s);
    }
    if ((v = onnx_metadata_get(&md, "strata.classes"))) {
        json_t *a = json_loads(v, 0, NULL);
        if (!json_is_array(a)) {
            file_meta_ignore(fm, "classes", "is not a JSON array of class names");
        } else if (import_classes_check(a, err) < 0) {
            char why[STRATA_ERR_LEN + 40];
            snprintf(why, sizeof why, "is not a usable list of class names (%s)", err);
            file_meta_ignore(fm, "classes", why);
        } else {
            fm->classes = json_incref(a);
        }
        json_decref(a);
    }
    if ((v = onnx_metadata_get(&md, "strata.mean"))) {
        fm->has_mean = meta_triple(v, fm->mean, 0);
        if (!fm->has_mean)
            file_meta_ignore(fm, "mean", "is not a JSON array of three finite numbers");
    }
    if ((v = onnx_metadata_get(&md, "strata.std"))) {
        fm->has_std = meta_triple(v, fm->std, 1);
        if (!fm->has_std)
            file_meta_ignore(fm, "std", "is not a JSON array of three finite positive numbers");
    }
    onnx_metadata_free(&md);
}

void import_file_meta_deinit(struct import_file_meta *fm)
{
    json_decref(fm->classes);
    json_decref(fm->ignored);
    memset(fm, 0, sizeof *fm);
}

/* Replaces <dir>/model.json with j, whole (written beside it, renamed). */
static int write_model_json(const char *dir, const json_t *j, char *err)
{
    char path[1400], tmp[1500];
    snprintf(path, sizeof path, "%s/model.json", dir);
    snprintf(tmp, sizeof tmp, "%s/.model.json.new", dir);
    if (json_dump_file(j, tmp, JSON_INDENT(2) | JSON_REAL_PRECISION(7)) != 0 ||
        rename(tmp, path) != 0) {
        unlink(tmp);
        return strata_fail(err, STRATA_E_IO, "cannot write %s", path);
    }
    return 0;
}

int import_set_shown(const char *dir, const json_t *names, char *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/model.json", dir);
    json_error_t je;
    json_t *old = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!old)
        return strata_fail(err, STRATA_E_FORMAT, "%s: %s", path, je.text);
    if (!json_is_string(json_object_get(old, "onnx"))) {
        json_decref(old);
        return strata_fail(err, STRATA_E_ARG,
                           "%s is not an imported model: strata's own models show every layer",
                           dir);
    }
    json_t *j = json_deep_copy(old);
    int rc = j ? 0 : strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc == 0 && names)
        json_object_set(j, "shown", (json_t *)names);
    else if (rc == 0)
        json_object_del(j, "shown");
    if (rc == 0)
        rc = write_model_json(dir, j, err);
    /* the check: the model opens with the new choice, else the old file is back */
    struct model m = {0};
    if (rc == 0 && (rc = model_open(&m, ".", dir, err)) < 0) {
        char werr[STRATA_ERR_LEN];
        write_model_json(dir, old, werr);
    }
    model_free(&m);
    json_decref(j);
    json_decref(old);
    return rc;
}
