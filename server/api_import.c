/*
 * api_import.c — models made from the browser: POST /api/models (an ONNX
 * file, its metadata, and an archive of photos or a dataset already on the
 * server), DELETE /api/models/{id}, and GET /api/datasets for the choice.
 *
 * An import is built in a fresh folder under <workspace>/.incoming (the
 * form's fields, the unpacked photos, the model folder), checked there by
 * opening the model as every command will, and only then renamed into
 * <workspace>/models/<id> and <workspace>/data/<id>: a refused import
 * leaves nothing behind, and nothing is ever written outside the
 * workspace. Imports run one at a time (app->imports_mu), which also makes
 * the check that the id is free and the rename into place one step.
 *
 * A file strata exported carries its title, classes, mean and std in its
 * metadata (model_import.h, import_file_meta_read): what the form leaves
 * out is taken from there, as `strata import` does, and the reply says
 * which fields came from the file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "dataset.h"
#include "form_spool.h"
#include "image_archive.h"
#include "json.h"
#include "model_admin.h"
#include "model_import.h"
#include "registry.h"
#include "state.h"
#include "workspace.h"

#define META_MAX_BYTES (64u << 10)

/* An id from a title: lower case letters and digits, other runs become
 * '-', at most 63 characters; "model" when nothing is left. */
static void id_from_title(const char *title, char *id, size_t len)
{
    size_t n = 0;
    int dash = 0;
    for (const unsigned char *p = (const unsigned char *)title; *p && n + 1 < len && n < 63; p++) {
        int c = *p;
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (dash && n)
                id[n++] = '-';
            dash = 0;
            if (n + 1 < len && n < 63)
                id[n++] = (char)c;
        } else {
            dash = 1;
        }
    }
    id[n] = '\0';
    if (!n)
        snprintf(id, len, "model");
}

struct import {
    struct app *app;
    char staging[1200];
    char id[64], title[256], dataset[256]; /* id, title "": not given */
    double mean[3], std[3];
    int have_mean, have_std; /* given by the form */
    int want_h, want_w;
    json_t *classes;  /* given, from the file's metadata, or from the images */
    int classes_from_file;
    json_t *from_metadata;  /* the fields taken from the file's metadata */
    json_t *metadata_notes; /* why an entry of it the import needed was not used */
    json_t *report;   /* the archive's, or a small one for a server dataset */
    int uploaded_images;
};

/* The metadata field: {"title"?, "id"?, "classes"?, "dataset"?, "mean"?,
 * "std"?, "input"?: [h, w]}; a key that is null (or a title that is "")
 * counts as left out. */
static int read_meta(struct import *im, const char *path, int has_archive, char *err)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return strata_fail(err, STRATA_E_ARG, "the meta field is not a JSON object%s%s",
                           j ? "" : ": ", j ? "" : je.text);
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (strcmp(key, "title") && strcmp(key, "id") && strcmp(key, "classes") &&
            strcmp(key, "dataset") && strcmp(key, "mean") && strcmp(key, "std") &&
            strcmp(key, "input")) {
            rc = strata_fail(err, STRATA_E_ARG,
                             "meta has an unknown key \"%.60s\"; the keys are title, id, classes, "
                             "dataset, mean, std and input",
                             key);
            break;
        }
    }
    json_t *tj = json_object_get(j, "title");
    const char *title = json_string_value(tj);
    if (rc == 0 && tj && !json_is_null(tj) && (!title || strlen(title) > 200))
        rc = strata_fail(err, STRATA_E_ARG,
                         "meta.title is a name of 1 to 200 characters (or leave it out when the "
                         "file, exported by strata, carries its own)");
    if (rc == 0 && title)
        snprintf(im->title, sizeof im->title, "%s", title);
    json_t *id = json_object_get(j, "id");
    if (rc == 0 && id && !json_is_null(id) &&
        (!json_is_string(id) || !import_id_ok(json_string_value(id))))
        rc = strata_fail(err, STRATA_E_ARG,
                         "meta.id: 1 to 63 letters, digits, '-', '_' and '.', not starting with "
                         "'.'");
    /* without an id, it comes from the title, once the file may have given one */
    if (rc == 0 && json_is_string(id) && json_string_length(id))
        snprintf(im->id, sizeof im->id, "%s", json_string_value(id));
    im->std[0] = im->std[1] = im->std[2] = 1;
    json_t *mean = json_object_get(j, "mean"), *std = json_object_get(j, "std");
    im->have_mean = mean && !json_is_null(mean);
    im->have_std = std && !json_is_null(std);
    if (rc == 0 && im->have_mean && import_triple(mean, im->mean, 0) < 0)
        rc = strata_fail(err, STRATA_E_ARG, "meta.mean is three numbers [r, g, b]");
    if (rc == 0 && im->have_std && import_triple(std, im->std, 1) < 0)
        rc = strata_fail(err, STRATA_E_ARG, "meta.std is three positive numbers [r, g, b]");
    json_t *input = json_object_get(j, "input");
    if (rc == 0 && input && !json_is_null(input)) {
        json_t *h = json_array_get(input, 0), *w = json_array_get(input, 1);
        if (!json_is_array(input) || json_array_size(input) != 2 || !json_is_integer(h) ||
            !json_is_integer(w) || json_integer_value(h) < 1 || json_integer_value(w) < 1 ||
            json_integer_value(h) > 4096 || json_integer_value(w) > 4096)
            rc = strata_fail(err, STRATA_E_ARG,
                             "meta.input is [height, width] in pixels, 1 to 4096 each");
        else {
            im->want_h = (int)json_integer_value(h);
            im->want_w = (int)json_integer_value(w);
        }
    }
    json_t *classes = json_object_get(j, "classes");
    if (rc == 0 && classes && !json_is_null(classes)) {
        if ((rc = import_classes_check(classes, err)) == 0)
            im->classes = json_incref(classes);
    }
    json_t *dataset = json_object_get(j, "dataset");
    const char *ds = json_string_value(dataset);
    if (rc == 0 && dataset && !json_is_null(dataset) && (!ds || !ds[0]))
        rc = strata_fail(err, STRATA_E_ARG, "meta.dataset names a dataset folder of the server");
    if (rc == 0 && ds && ds[0] && has_archive)
        rc = strata_fail(err, STRATA_E_ARG,
                         "give the images once: meta.dataset (a dataset of the server) or an "
                         "images archive, not both");
    if (rc == 0 && !(ds && ds[0]) && !has_archive)
        rc = strata_fail(err, STRATA_E_ARG,
                         "the model needs images to be analysed: name a dataset of the server in "
                         "meta.dataset (GET /api/datasets lists them) or upload an archive of "
                         "class folders in the images field");
    if (rc == 0 && ds && ds[0])
        snprintf(im->dataset, sizeof im->dataset, "%s", ds);
    json_decref(j);
    return rc;
}

/* Fills what the form left out (title, classes, mean, std) from the
 * metadata of the uploaded file, as `strata import` does, and records which
 * fields came from there; an entry present but unusable is noted, not
 * fatal. Then the title must be known (the id follows from it when not
 * given). Returns 0 or STRATA_E_ARG with err. */
static int use_file_meta(struct import *im, const char *onnx_path, char *err)
{
    struct import_file_meta fm;
    import_file_meta_read(&fm, onnx_path);
    im->from_metadata = json_array();
    im->metadata_notes = json_array();
    int left_out[4] = {!im->title[0], !im->classes, !im->have_mean, !im->have_std};
    int in_file[4] = {fm.title[0] != 0, fm.classes != NULL, fm.has_mean, fm.has_std};
    static const char *const fields[4] = {"title", "classes", "mean", "std"};
    for (int k = 0; k < 4; k++) {
        if (!left_out[k])
            continue; /* the form's value wins */
        json_t *why = json_object_get(fm.ignored, fields[k]);
        if (why)
            json_array_append(im->metadata_notes, why);
        if (!in_file[k])
            continue;
        json_array_append_new(im->from_metadata, json_string(fields[k]));
        if (k == 0)
            snprintf(im->title, sizeof im->title, "%s", fm.title);
        else if (k == 1) {
            im->classes = json_incref(fm.classes);
            im->classes_from_file = 1;
        } else if (k == 2)
            memcpy(im->mean, fm.mean, sizeof im->mean);
        else
            memcpy(im->std, fm.std, sizeof im->std);
    }
    const char *why_none =
        !fm.readable ? "is not an ONNX model whose metadata strata can read"
        : json_object_get(fm.ignored, "title")
            ? "carries no usable one in its metadata (strata.title)"
            : "carries none in its metadata (a file made by strata export has one, strata.title)";
    import_file_meta_deinit(&fm);
    if (!im->title[0])
        return strata_fail(err, STRATA_E_ARG,
                           "give the model a title (meta.title): the form leaves it empty and the "
                           "file %s",
                           why_none);
    if (!im->id[0])
        id_from_title(im->title, im->id, sizeof im->id);
    return 0;
}

/* The classes of the images must be the model's, in its output order:
 * strata labels images by their sorted class folders. */
static int match_classes(struct import *im, json_t *folders, char *err)
{
    if (!im->classes) {
        im->classes = json_incref(folders);
        return 0;
    }
    if (json_equal(im->classes, folders))
        return 0;
    char *given = json_dumps(im->classes, JSON_COMPACT), *have = json_dumps(folders, JSON_COMPACT);
    int rc = strata_fail(err, STRATA_E_ARG,
                         "the class names %.300s are not the image folders %.300s: strata labels "
                         "images by their class folders sorted by name, so the model's outputs "
                         "must be in that order%s",
                         given ? given : "?", have ? have : "?",
                         im->classes_from_file ? " (the names are the file's own, from its "
                                                 "metadata strata.classes)"
                                               : "");
    free(given);
    free(have);
    return rc;
}

static int images_from_dataset(struct import *im, char *err)
{
    struct dataset tr = {0}, te = {0};
    int rc = dataset_open(&tr, im->app->data_root, im->dataset, "train", err);
    if (rc == STRATA_E_ARG || rc == STRATA_E_IO || rc == STRATA_E_NOTFOUND)
        rc = strata_fail(err, STRATA_E_ARG,
                         "meta.dataset \"%.100s\" is not a dataset of the server with a train "
                         "split (GET /api/datasets lists them)",
                         im->dataset);
    json_t *folders = json_array(), *classes = json_array();
    for (int c = 0; rc == 0 && c < tr.n_classes; c++)
        json_array_append_new(folders, json_string(tr.classes[c]));
    int has_test = rc == 0 && dataset_open(&te, im->app->data_root, im->dataset, "test", NULL) == 0;
    for (int c = 0; rc == 0 && c < tr.n_classes; c++) {
        int n_train = 0, n_test = 0;
        for (int i = 0; i < tr.n; i++)
            n_train += tr.items[i].label == c;
        for (int i = 0; has_test && i < te.n; i++)
            n_test += strcmp(te.classes[te.items[i].label], tr.classes[c]) == 0;
        json_array_append_new(classes, json_pack("{s:s, s:i, s:i}", "name", tr.classes[c],
                                                 "train", n_train, "test", n_test));
    }
    if (rc == 0)
        rc = match_classes(im, folders, err);
    if (rc == 0)
        im->report = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "format", "dataset", "dataset",
                               im->dataset, "images", (json_int_t)(tr.n + te.n), "split",
                               "dataset", "split_note", "", "classes", classes);
    else
        json_decref(classes);
    json_decref(folders);
    dataset_free(&tr);
    dataset_free(&te);
    return rc;
}

static int images_from_archive(struct import *im, const char *archive, char *err)
{
    char dest[1300];
    snprintf(dest, sizeof dest, "%s/data", im->staging);
    if (mkdir(dest, 0755) != 0)
        return strata_fail(err, STRATA_E_IO, "cannot create %s: %s", dest, strerror(errno));
    struct image_archive_limits lim;
    image_archive_limits_default(&lim);
    if (im->app->cfg.max_archive_entries)
        lim.max_entries = im->app->cfg.max_archive_entries;
    if (im->app->cfg.max_archive_unpacked)
        lim.max_bytes = im->app->cfg.max_archive_unpacked;
    int rc = image_archive_extract(archive, dest, &lim, &im->report, err);
    if (rc < 0)
        return rc;
    im->uploaded_images = 1;
    json_t *folders = json_array();
    json_t *cls;
    size_t i;
    json_array_foreach(json_object_get(im->report, "classes"), i, cls)
        json_array_append(folders, json_object_get(cls, "name"));
    rc = match_classes(im, folders, err);
    json_decref(folders);
    return rc;
}

/* Every step after the form is on disk. Returns 0 (the model is added) or
 * a status with err; *http_status says which reply a failure gets. */
static int build(struct import *im, struct form_field *f, int *http_status, char *err)
{
    struct app *app = im->app;
    *http_status = 400;
    int rc = read_meta(im, f[0].path, f[2].present, err);
    if (rc == 0)
        rc = use_file_meta(im, f[1].path, err);
    if (rc < 0)
        return rc;
    char models_dir[1300], data_dir[1300];
    snprintf(models_dir, sizeof models_dir, "%s/models/%s", app->workspace, im->id);
    snprintf(data_dir, sizeof data_dir, "%s/data/%s", app->workspace, im->id);
    struct app_model *taken = app_model_get(app, im->id);
    struct stat st;
    if (taken || stat(models_dir, &st) == 0 || stat(data_dir, &st) == 0) {
        app_model_put(taken);
        *http_status = 409;
        return strata_fail(err, STRATA_E_ARG,
                           "a model named \"%s\" already exists: choose another id (or title)",
                           im->id);
    }
    rc = f[2].present ? images_from_archive(im, f[2].path, err) : images_from_dataset(im, err);
    if (rc == STRATA_E_LIMIT)
        *http_status = 413;
    if (rc < 0)
        return rc;

    char model_dir[1300], onnx[1400];
    snprintf(model_dir, sizeof model_dir, "%s/model", im->staging);
    snprintf(onnx, sizeof onnx, "%s/model.onnx", model_dir);
    if (mkdir(model_dir, 0755) != 0 || rename(f[1].path, onnx) != 0) {
        *http_status = 500;
        return strata_fail(err, STRATA_E_IO, "cannot prepare the model folder: %s", strerror(errno));
    }
    int h = 0, w = 0, n_layers = 0;
    rc = import_input_size(onnx, "the uploaded model", im->want_h, im->want_w, &h, &w, err);
    struct import_meta meta = {.id = im->id, .title = im->title, .classes = im->classes,
                               .dataset = im->uploaded_images ? im->id : im->dataset,
                               .mean = {im->mean[0], im->mean[1], im->mean[2]},
                               .std = {im->std[0], im->std[1], im->std[2]}, .height = h,
                               .width = w};
    if (rc == 0)
        rc = import_write_and_check(model_dir, &meta, &n_layers, err);
    if (rc < 0) {
        /* name the upload, not the folder it was checked in */
        char *at = strstr(err, onnx);
        if (at) {
            char msg[STRATA_ERR_LEN];
            snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - err), err, "the uploaded model",
                     at + strlen(onnx));
            snprintf(err, STRATA_ERR_LEN, "%s", msg);
        }
        return rc;
    }

    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    json_t *record = json_pack("{s:s, s:s, s:s, s:O, s:O, s:O}", "images",
                               im->uploaded_images ? "uploaded" : "dataset", "filename",
                               f[1].filename, "imported_at", stamp, "report", im->report,
                               "from_metadata", im->from_metadata, "metadata_notes",
                               im->metadata_notes);
    char path[1400];
    snprintf(path, sizeof path, "%s/import.json", model_dir);
    if (!record || json_dump_file(record, path, JSON_INDENT(2)) != 0) {
        json_decref(record);
        *http_status = 500;
        return strata_fail(err, STRATA_E_IO, "cannot write %s", path);
    }
    json_decref(record);

    char from[1300];
    snprintf(from, sizeof from, "%s/data", im->staging);
    if ((im->uploaded_images && rename(from, data_dir) != 0) || rename(model_dir, models_dir) != 0) {
        *http_status = 500;
        rc = strata_fail(err, STRATA_E_IO, "cannot move the import into %s/: %s", app->workspace,
                         strerror(errno));
        app_remove_tree(data_dir);
        return rc;
    }
    char data_root[1300];
    if (im->uploaded_images)
        snprintf(data_root, sizeof data_root, "%s/data", app->workspace);
    else
        snprintf(data_root, sizeof data_root, "%s", app->data_root);
    rc = app_add_model(app, models_dir, data_root, 1, err);
    if (rc < 0) {
        *http_status = 500;
        app_remove_tree(models_dir);
        if (im->uploaded_images)
            app_remove_tree(data_dir);
    }
    return rc;
}

int handle_import(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    char err[STRATA_ERR_LEN];
    if (!app->workspace[0])
        return response_error(res, 403, "imports_off",
                               "this server takes no imports (it was started without a "
                               "workspace)");
    if (req->body_fd < 0 || req->body_len == 0)
        return response_error(res, 400, "bad_request",
                              "send multipart/form-data with the fields meta (JSON), model (the "
                              ".onnx file) and, optionally, images (a .zip or .tar.gz of class "
                              "folders)");
    struct import im = {.app = app};
    pthread_mutex_lock(&app->imports_mu);
    snprintf(im.staging, sizeof im.staging, "%s/.incoming/import-XXXXXX", app->workspace);
    if (!mkdtemp(im.staging)) {
        pthread_mutex_unlock(&app->imports_mu);
        return response_error(res, 500, "internal", "cannot create a folder under %s: %s",
                              app->workspace, strerror(errno));
    }
    char form[1300];
    snprintf(form, sizeof form, "%s/form", im.staging);
    struct form_field f[] = {
        {.name = "meta", .max_bytes = META_MAX_BYTES, .required = 1},
        {.name = "model", .max_bytes = app->cfg.max_model_bytes, .required = 1},
        {.name = "images", .max_bytes = app->cfg.max_archive_bytes},
    };
    int status = 400;
    int rc = mkdir(form, 0700) != 0
                 ? strata_fail(err, STRATA_E_IO, "cannot create %s: %s", form, strerror(errno))
                 : form_spool(req->body_fd, req->body_len, req->content_type, form, f, 3, err);
    if (rc == STRATA_E_UNSUPPORTED)
        status = 415;
    else if (rc == STRATA_E_LIMIT)
        status = 413;
    else if (rc == STRATA_E_IO)
        status = 500;
    if (rc == 0 && f[1].size == 0)
        rc = strata_fail(err, STRATA_E_ARG, "the model field is empty: attach the .onnx file");
    if (rc == 0)
        rc = build(&im, f, &status, err);
    app_remove_tree(im.staging);
    pthread_mutex_unlock(&app->imports_mu);
    json_decref(im.classes);
    if (rc < 0) {
        json_decref(im.report);
        json_decref(im.from_metadata);
        json_decref(im.metadata_notes);
        const char *code = status == 409   ? "exists"
                           : status == 413 ? "too_large"
                           : status == 415 ? "unsupported_media_type"
                           : status == 500 ? "internal"
                                           : "bad_input";
        return response_error(res, status, code, "%s", err);
    }
    struct app_model *am = app_model_get(app, im.id);
    pthread_mutex_lock(&app->mu);
    json_t *summary = am ? api_model_summary(am) : json_null();
    pthread_mutex_unlock(&app->mu);
    app_model_put(am);
    response_json(res, 201, json_pack("{s:s, s:o, s:o, s:o, s:o}", "id", im.id, "model", summary,
                                      "report", im.report, "from_metadata", im.from_metadata,
                                      "metadata_notes", im.metadata_notes));
    response_header(res, "Location", "/api/models/%s", im.id);
    return 0;
}

int handle_delete_model(const struct request *req, struct response *res)
{
    char err[STRATA_ERR_LEN];
    int rc = app_delete_model(req->app, request_param(req, "id"), err);
    if (rc == STRATA_E_NOTFOUND)
        return response_error(res, 404, "not_found", "%s", err);
    if (rc < 0)
        return response_error(res, 403, "not_deletable", "%s", err);
    return response_empty(res, 204);
}

int handle_datasets(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    json_t *list = json_array();
    char **names = NULL;
    int n = dataset_list(app->data_root, 1, &names); /* sorted; none when unreadable */
    for (int i = 0; i < n; i++) {
        struct dataset tr = {0}, te = {0};
        if (dataset_open(&tr, app->data_root, names[i], "train", NULL) == 0) {
            json_t *classes = json_array();
            for (int c = 0; c < tr.n_classes; c++)
                json_array_append_new(classes, json_str(tr.classes[c]));
            int n_test = dataset_open(&te, app->data_root, names[i], "test", NULL) == 0 ? te.n : 0;
            json_array_append_new(list, json_pack("{s:o, s:o, s:i, s:i}", "name",
                                                  json_str(names[i]), "classes", classes,
                                                  "train", tr.n, "test", n_test));
        }
        dataset_free(&tr);
        dataset_free(&te);
    }
    dataset_names_free(names, n);
    response_json(res, 200, json_pack("{s:o}", "datasets", list));
    response_header(res, "Cache-Control", "no-cache");
    return 0;
}
