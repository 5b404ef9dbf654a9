/*
 * api_doubt.c — GET /api/models/{id}/doubt: how well the doubt score tells
 * the model's test images from the other datasets' (strata doubt-eval's
 * default evaluation), for the model page's histogram and AUROC table.
 * The analysis thread computes it once per model, after every doubt model
 * is calibrated (cached beside the analyses), and publishes it as a blob.
 */
#include <stdatomic.h>

#include "api.h"
#include "blob.h"
#include "json.h"
#include "state.h"

/* Bins of the histogram over [0, 1]: 0.05 wide, fine enough to see where
 * the two distributions cross with a few hundred images on each side. */
#define DOUBT_HISTOGRAM_BINS 20

struct blob *api_doubt_eval_blob(const struct doubt_report *r)
{
    return blob_json_steal(doubt_report_json(r, DOUBT_HISTOGRAM_BINS));
}

int handle_doubt(const struct request *req, struct response *res)
{
    struct app_model *am = req->model; /* the route's APP_NEEDS_MODEL */
    int state = atomic_load_explicit(&am->doubt_eval_state, memory_order_acquire);
    if (state == APP_DOUBT_READY)
        return blob_reply(req, res, atomic_load(&am->doubt_eval), "application/json", NULL);
    if (state == APP_DOUBT_UNAVAILABLE)
        response_error(res, 409, "doubt_unavailable", "%s", am->doubt_eval_note);
    else
        response_error(res, 409, "evaluating",
                       "the doubt of model %s is still being calibrated and evaluated (after "
                       "every analysis); try again in a minute",
                       am->id);
    return 0;
}
