/*
 * resource.h — what the API's resources (api_*.c) share about a request on
 * a model: the preconditions of the routes under /api/models/{id} (the
 * model exists: 404; its analysis is ready: 409), the image a request
 * names, the URL of a dataset image, and running CPU-heavy work on the
 * worker pool.
 *
 * The route table names a route's preconditions in its flags, and the
 * router built with app_route_guard checks them before the handler, which
 * finds the model in req->model:
 *
 *     {"GET", "/api/models/{id}/paths", handle_paths, APP_NEEDS_ANALYSIS},
 *     router_new_guarded(app_routes, app_n_routes, app_route_guard, &router, err);
 *
 *     int handle_paths(const struct request *req, struct response *res)
 *     {
 *         struct app_model *am = req->model; // exists, analysis READY
 *
 * Threading: any HTTP thread.
 */
#ifndef STRATA_RESOURCE_H
#define STRATA_RESOURCE_H

#include <stddef.h>

#include "jobs.h"
#include "request.h"
#include "router.h"
#include "state.h"

struct upload;

/* Route preconditions (router.h's ROUTE_NEEDS_MASK), checked in this
 * order. APP_NEEDS_MODEL: the {id} path parameter names a model of the
 * registry, else 404 not_found; the model becomes req->model, with a
 * reference held until the reply has been sent. APP_NEEDS_ANALYSIS: that
 * model's analysis is READY, else 409 "analysing" (queued or in progress)
 * or 409 "analysis_failed"; it implies APP_NEEDS_MODEL. */
#define APP_NEEDS_MODEL (1u << ROUTE_NEEDS_SHIFT)
#define APP_NEEDS_ANALYSIS (APP_NEEDS_MODEL | 2u << ROUTE_NEEDS_SHIFT)

/* The router's guard (route_guard) for the preconditions above. */
int app_route_guard(unsigned needs, struct request *req, struct response *res);

/* The image a request about one image names: ?image=<index | class/file>
 * of am's analysed split (*index set, up untouched), else the body (raw
 * image or the multipart field "image"; *index -1, *up filled). Returns 0,
 * or -1 with res holding the reply (404 for an unknown image, the body's
 * 4xx). */
int app_image_of_request(const struct request *req, struct response *res,
                         const struct app_model *am, int *index, struct upload *up);

/* The URL path of dataset image `index` of am, with `suffix` ("", "/thumb",
 * "/explanation") appended: /api/models/<id>/images/<class>/<file><suffix>. */
void app_image_url(const struct app_model *am, int index, const char *suffix, char *out,
                   size_t len);

/* Runs fn(arg) on the worker pool (req->app's) and waits for it, giving up
 * when req's client closes the connection (request_client_gone): a job
 * still queued is dropped, a running one has its cancel flag set. A job
 * reports its own outcome through arg and returns 0, so that a negative
 * result here is always the pool's: then res holds 503 busy with
 * Retry-After (queue full, STRATA_E_LIMIT) or 503 shutting_down /
 * cancelled (the client left) / timeout (STRATA_E_INTERRUPTED). Returns 0
 * when the job ran (also when it was asked to stop while running: its arg
 * says what it did). */
int app_run_job(const struct request *req, job_fn fn, void *arg, struct response *res);

#endif
