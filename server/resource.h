/*
 * resource.h — what the API's resources (api_*.c) share about a request on
 * a model: the preconditions every such handler opens with (the model
 * exists: 404; its analysis is ready: 409), the image a request names, the
 * URL of a dataset image, and running CPU-heavy work on the worker pool.
 *
 *     struct app_model *am = app_model_or_404(req, res);
 *     if (!am || !app_require_ready(am, res))
 *         return 0; // res holds the 404 or 409
 *
 * Threading: any HTTP thread.
 */
#ifndef STRATA_RESOURCE_H
#define STRATA_RESOURCE_H

#include <stddef.h>

#include "jobs.h"
#include "request.h"
#include "state.h"

struct upload;

/* Finds the {id} path parameter's model, holding a reference until res
 * has been sent (response_on_done); on failure fills res with 404 and
 * returns NULL. */
struct app_model *app_model_or_404(const struct request *req, struct response *res);

/* Whether am's analysis is READY; otherwise fills res with 409
 * "analysing" (queued or in progress) or 409 "analysis_failed" and returns
 * 0. */
int app_require_ready(const struct app_model *am, struct response *res);

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
