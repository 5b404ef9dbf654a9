/*
 * api_health.c — GET /api/health: is the server up, and where each model's
 * analysis stands. Built per request (a few models: microseconds), since it
 * is the one reply whose point is to be current.
 */
#include <stdatomic.h>

#include "api.h"
#include "jobs.h"
#include "json.h"
#include "registry.h"
#include "state.h"

struct tally {
    json_t *states;
    int n, ready;
};

static void tally_model(struct app_model *am, void *user)
{
    struct tally *t = user;
    int s = atomic_load_explicit(&am->state, memory_order_acquire);
    t->n++;
    t->ready += s == APP_READY;
    if (t->states)
        json_object_set_new(t->states, am->id, json_string(app_state_name(s)));
}

int handle_health(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    struct tally t = {.states = json_object()};
    app_models_each(app, tally_model, &t);
    json_t *states = t.states;
    int ready = t.ready;
    struct jobs_stats js;
    jobs_get_stats(app->jobs, &js);
    json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:o, s:I, s:{s:i, s:i, s:i, s:i, s:I, s:I, s:I}}",
                          "status",
                          "ok", "version", STRATA_VERSION, "models", t.n,
                          "analyses_ready", ready, "analyses", states, "max_upload_bytes",
                          (json_int_t)app->cfg.max_upload_bytes, "jobs", "workers",
                          js.workers, "max_queue", js.max_queue, "queued", js.queued, "running",
                          js.running, "completed", (json_int_t)js.completed, "rejected",
                          (json_int_t)js.rejected, "abandoned", (json_int_t)js.abandoned);
    if (j) {
        json_object_set_new(j, "imports", json_boolean(app->workspace[0] != 0));
        json_object_set_new(j, "max_model_mb", json_integer((json_int_t)(app->cfg.max_model_bytes >> 20)));
        json_object_set_new(j, "max_archive_mb",
                            json_integer((json_int_t)(app->cfg.max_archive_bytes >> 20)));
    }
    response_json(res, 200, j);
    response_header(res, "Cache-Control", "no-store");
    return 0;
}
