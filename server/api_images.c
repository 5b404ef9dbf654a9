/*
 * api_images.c — the images of a model's analysed split:
 *   GET /api/models/{id}/images/{image}               the file as stored
 *   GET /api/models/{id}/images/{image}/thumb         a 64x64 JPEG
 *   GET /api/models/{id}/images/{image}/explanation   LIME of the model's answer
 * An image is addressed by its id "<class>/<file>" written as two path
 * segments (…/images/jaguar/0003.jpg), or by its index in the analysis
 * (…/images/17). Only ids listed in the bundle are ever opened, so a path
 * cannot name a file outside the dataset split.
 *
 * Thumbnails and explanations are computed on first request and kept: a
 * thumbnail (~2 KB) for the life of the server, an explanation (~100 KB of
 * PNG) in the bounded ring of dataset explanations (expl_store.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "blob.h"
#include "expl_store.h"
#include "explain.h"
#include "json.h"
#include "lime.h"
#include "resource.h"
#include "state.h"
#include "static.h"

#define THUMB_SIDE 64
#define THUMB_QUALITY 85

/* The image the path names, or -1 with a 404 in res. */
static int image_or_404(const struct request *req, struct response *res,
                        const struct app_model *am)
{
    const struct analysis *a = &am->a;
    const char *cls = request_param(req, "class"), *file = request_param(req, "file");
    const char *image = request_param(req, "image");
    int i = -1;
    char id[1024];
    if (cls && file) {
        snprintf(id, sizeof id, "%s/%s", cls, file);
        i = analysis_image_index(a, id);
    } else if (image) {
        snprintf(id, sizeof id, "%s", image);
        /* An index in plain digits ("17", not "017" or "+17"), else a
         * whole id, should '/' come encoded. */
        i = analysis_parse_index(image, a->n);
        if (i < 0)
            i = analysis_image_index(a, image);
    }
    if (i < 0)
        response_error(res, 404, "not_found",
                       "model %s has no image \"%.200s\" in its %s split: use <class>/<file> or "
                       "an index 0..%d",
                       am->id, cls || image ? id : "", a->split, a->n - 1);
    return i;
}

/* See api.h. */
int app_image_path(const struct app_model *am, int i, char *path, size_t len)
{
    const char *id = am->a.image_ids[i];
    const char *slash = strchr(id, '/');
    if (!slash || slash == id || !slash[1] || strchr(slash + 1, '/') || id[0] == '.' ||
        slash[1] == '.')
        return -1;
    int n = snprintf(path, len, "%s/%s", am->image_dir, id);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int handle_image(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    int i = image_or_404(req, res, am);
    if (i < 0)
        return 0;
    char path[2200];
    if (app_image_path(am, i, path, sizeof path) < 0)
        return response_error(res, 404, "not_found", "image %d of %s has no usable file name", i,
                              am->id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return response_error(res, 404, "not_found",
                              "the file of image %s is gone from the dataset (%s)",
                              am->a.image_ids[i], strerror(e));
    }
    char etag[64];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size, (unsigned long long)st.st_mtime);
    if (http_etag_match(request_header(req, "If-None-Match"), etag)) {
        close(fd);
        response_empty(res, 304);
    } else {
        response_file(res, 200, static_mime_type(path), fd, (uint64_t)st.st_size);
    }
    response_header(res, "ETag", "%s", etag);
    response_header(res, "Cache-Control", "public, max-age=3600");
    return 0;
}

/* Decodes image i, crops its centre square and encodes a THUMB_SIDE JPEG. */
static int make_thumb(const struct app_model *am, int i, struct blob **out, char *err)
{
    char path[2200];
    if (app_image_path(am, i, path, sizeof path) < 0)
        return strata_fail(err, STRATA_E_NOTFOUND, "image %d has no usable file name", i);
    struct image img = {0}, square = {0}, small = {0};
    uint8_t *jpg = NULL;
    size_t len = 0;
    int rc = image_load(path, &img, err);
    int side = img.w < img.h ? img.w : img.h;
    if (rc == 0 && (rc = image_alloc(&square, side, side, err)) == 0) {
        int x0 = (img.w - side) / 2, y0 = (img.h - side) / 2;
        for (int y = 0; y < side; y++)
            memcpy(square.rgb + (size_t)y * side * 3,
                   img.rgb + ((size_t)(y0 + y) * img.w + x0) * 3, (size_t)side * 3);
    }
    if (rc == 0)
        rc = image_resize(&square, THUMB_SIDE, THUMB_SIDE, &small, err);
    if (rc == 0)
        rc = image_encode_jpeg(&small, THUMB_QUALITY, &jpg, &len, err);
    if (rc == 0 && !(*out = blob_new(jpg, len)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    free(jpg);
    image_free(&small);
    image_free(&square);
    image_free(&img);
    return rc;
}

int handle_thumb(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    int i = image_or_404(req, res, am);
    if (i < 0)
        return 0;
    struct blob *b = atomic_load(&am->thumbs[i]);
    if (!b) {
        char err[STRATA_ERR_LEN];
        struct blob *made = NULL;
        int rc = make_thumb(am, i, &made, err);
        if (rc < 0)
            return response_error(res, rc == STRATA_E_NOMEM ? 503 : 500,
                                   rc == STRATA_E_NOMEM ? "out_of_memory" : "internal",
                                   "cannot make the thumbnail of %s: %s", am->a.image_ids[i], err);
        struct blob *expected = NULL;
        if (atomic_compare_exchange_strong(&am->thumbs[i], &expected, made)) {
            b = made;
        } else {
            free(made);
            b = expected;
        }
    }
    return blob_reply(req, res, b, "image/jpeg", "public, max-age=3600");
}

struct image_explain_job {
    struct app_model *am;
    int index;
    int rc;
    char err[STRATA_ERR_LEN];
    struct explanation *expl;
};

static int run_image_explain(void *arg, const atomic_int *cancel)
{
    struct image_explain_job *j = arg;
    const struct analysis *a = &j->am->a;
    char path[2200], id[96];
    struct image img = {0}, small = {0};
    struct lime_result lr = {0};
    struct lime_params lp;
    app_lime_params(&lp);
    lp.cancel = cancel; /* a timeout, or the client left */
    int label = a->pred[j->index];
    if (app_image_path(j->am, j->index, path, sizeof path) < 0) {
        j->rc = strata_fail(j->err, STRATA_E_NOTFOUND, "image %d has no usable file name",
                            j->index);
        return 0;
    }
    j->rc = image_load(path, &img, j->err);
    if (j->rc == 0 && job_cancelled(cancel))
        j->rc = strata_fail(j->err, STRATA_E_INTERRUPTED, "cancelled");
    if (j->rc == 0)
        j->rc = explain_image(&j->am->m, &img, &lp, &label, 1, &lr, &small, j->err);
    if (j->rc == 0) {
        snprintf(id, sizeof id, "%s~%d", j->am->id, j->index);
        j->rc = explanation_build(j->am, id, &lr, &small, a->image_ids[j->index],
                                  a->labels[j->index], &j->expl, j->err);
    }
    lime_result_free(&lr);
    image_free(&small);
    image_free(&img);
    return 0;
}

int handle_image_explanation(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_ANALYSIS: READY */
    int i = image_or_404(req, res, am);
    if (i < 0)
        return 0;
    struct app *app = req->app;
    struct explanation *e = expl_store_image_get(app->store, am->expl, i);
    if (!e) {
        struct image_explain_job j = {.am = am, .index = i};
        if (app_run_job(req, run_image_explain, &j, res) < 0)
            return 0;
        if (j.rc == STRATA_E_INTERRUPTED && request_client_gone(req))
            return response_error(res, 503, "cancelled",
                                  "the connection was closed before the explanation was ready");
        if (j.rc == STRATA_E_INTERRUPTED)
            return response_error(res, 503, "timeout", "the explanation took too long; retry");
        if (j.rc < 0)
            return response_error(res, j.rc == STRATA_E_NOMEM ? 503 : 500,
                                  j.rc == STRATA_E_NOMEM ? "out_of_memory" : "internal",
                                  "cannot explain %s: %s", am->a.image_ids[i], j.err);
        e = expl_store_image_put(app->store, am->expl, i, j.expl);
    }
    explanation_reply(req, res, e, 0);
    explanation_unref(e);
    return 0;
}
