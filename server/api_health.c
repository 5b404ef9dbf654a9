/*
 * api_health.c — GET /api/health: is the server up, and where each model's
 * analysis stands. Built per request (a few models: microseconds), since it
 * is the one reply whose point is to be current.
 */
#include <stdatomic.h>

#include "app.h"
#include "json.h"

int handle_health(const struct request *req, struct response *res)
{
    struct app *app = req->app;
    json_t *states = json_object();
    int ready = 0;
    for (int i = 0; states && i < app->n_models; i++) {
        int s = atomic_load_explicit(&app->models[i].state, memory_order_acquire);
        ready += s == APP_READY;
        json_object_set_new(states, app->models[i].id, json_string(app_state_name(s)));
    }
    struct jobs_stats js;
    jobs_get_stats(app->jobs, &js);
    json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:o, s:I, s:{s:i, s:i, s:i, s:i, s:I, s:I, s:I}}",
                          "status",
                          "ok", "version", STRATA_VERSION, "models", app->n_models,
                          "analyses_ready", ready, "analyses", states, "max_upload_bytes",
                          (json_int_t)app->cfg.max_upload_bytes, "jobs", "workers",
                          js.workers, "max_queue", js.max_queue, "queued", js.queued, "running",
                          js.running, "completed", (json_int_t)js.completed, "rejected",
                          (json_int_t)js.rejected, "abandoned", (json_int_t)js.abandoned);
    response_json(res, 200, j);
    response_header(res, "Cache-Control", "no-store");
    return 0;
}
