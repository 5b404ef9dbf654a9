/*
 * resource.c — the preconditions and helpers the API's resources share
 * (see resource.h).
 */
#include "resource.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "multipart.h"
#include "registry.h"
#include "url.h"

static void model_put_cb(void *cls)
{
    app_model_put(cls);
}

/* The {id} parameter's model with a reference released with res, or NULL
 * with res holding the 404. */
static struct app_model *model_of_request(const struct request *req, struct response *res)
{
    const char *id = request_param(req, "id");
    struct app_model *am = app_model_get(req->app, id);
    if (!am)
        response_error(res, 404, "not_found",
                       "no model named \"%.100s\": GET /api/models lists them", id ? id : "");
    else
        response_on_done(res, model_put_cb, am);
    return am;
}

/* Whether am's analysis is READY, else 0 with res holding the 409. */
static int analysis_ready(const struct app_model *am, struct response *res)
{
    int state = atomic_load_explicit(&am->state, memory_order_acquire);
    if (state == APP_READY)
        return 1;
    if (state == APP_FAILED)
        response_error(res, 409, "analysis_failed", "model %s cannot be analysed: %s", am->id,
                       am->error);
    else
        response_error(res, 409, "analysing",
                       "model %s is being analysed (%s); try again when GET /api/health says "
                       "\"ready\"",
                       am->id, app_state_name(state));
    return 0;
}

int app_route_guard(unsigned needs, struct request *req, struct response *res)
{
    assert(!(needs & ~APP_NEEDS_ANALYSIS)); /* a bit the table uses and nothing here checks */
    if (needs & APP_NEEDS_MODEL) {
        req->model = model_of_request(req, res);
        if (!req->model)
            return 0;
    }
    if ((needs & APP_NEEDS_ANALYSIS) == APP_NEEDS_ANALYSIS && !analysis_ready(req->model, res))
        return 0;
    return 1;
}

int app_image_of_request(const struct request *req, struct response *res,
                         const struct app_model *am, int *index, struct upload *up)
{
    const char *v = request_query(req, "image");
    *index = -1;
    if (v) {
        const struct analysis *a = &am->a;
        *index = analysis_parse_index(v, a->n);
        if (*index < 0)
            *index = analysis_image_index(a, v);
        if (*index < 0) {
            response_error(res, 404, "not_found",
                           "model %s has no image \"%.200s\" in its %s split: use "
                           "<class>/<file> or an index 0..%d",
                           am->id, v, a->split, a->n - 1);
            return -1;
        }
        return 0;
    }
    char err[STRATA_ERR_LEN];
    int rc = request_image_body(req, "image", up, err);
    if (rc < 0) {
        response_fail(res, rc, err);
        return -1;
    }
    return 0;
}

void app_image_url(const struct app_model *am, int index, const char *suffix, char *out,
                   size_t len)
{
    /* Ids are "<class>/<file>": each part becomes its own segment. */
    const char *id = am->a.image_ids[index];
    const char *slash = strchr(id, '/');
    char cls[256], file[768], tmp[256];
    size_t cl = slash ? (size_t)(slash - id) : 0;
    if (cl >= sizeof tmp)
        cl = sizeof tmp - 1;
    memcpy(tmp, id, cl);
    tmp[cl] = '\0';
    url_segment(tmp, cls, sizeof cls);
    url_segment(slash ? slash + 1 : id, file, sizeof file);
    snprintf(out, len, "/api/models/%s/images/%s/%s%s", am->id, cls, file, suffix);
}

static int request_gone(void *cls)
{
    return request_client_gone(cls);
}

int app_run_job(const struct request *req, job_fn fn, void *arg, struct response *res)
{
    struct app *app = req->app;
    char err[STRATA_ERR_LEN];
    int rc = jobs_run_watch(app->jobs, fn, arg, app->cfg.job_timeout_s, request_gone,
                            (void *)req, err);
    if (rc >= 0)
        return 0;
    if (rc == STRATA_E_LIMIT)
        response_busy(res, 2);
    else if (atomic_load(&app->stopping))
        response_error(res, 503, "shutting_down", "the server is shutting down");
    else if (request_client_gone(req))
        response_error(res, 503, "cancelled",
                       "the connection was closed before the answer was ready, so the work "
                       "was dropped; keep the connection open until the reply");
    else {
        response_error(res, 503, "timeout",
                       "the request waited over %.0f s for a worker; retry later",
                       app->cfg.job_timeout_s);
        response_header(res, "Retry-After", "5");
    }
    return rc;
}
