/*
 * api.h — the resources of strata's JSON API, one file each (api_*.c): the
 * handlers the route table calls, and what the rest of the server asks of
 * them — the replies publication stores (publish.h's struct app_replies,
 * installed by app_new) and explanations.
 *
 * Handlers read the app's state (state.h) and never change it but through
 * registry.h, model_admin.h, publish.h and expl_store.h; resource.h holds
 * the preconditions they share. None of the files they use calls back into
 * them.
 */
#ifndef STRATA_API_H
#define STRATA_API_H

#include <stddef.h>

#include <jansson.h>

#include "request.h"
#include "router.h"

struct analysis_clustering;
struct app;
struct app_model;
struct blob;
struct doubt_report;
struct explanation;
struct image;
struct lime_params;
struct lime_result;

/* api_models.c: a model's entry in GET /api/models, and GET /api/models/{id}
 * (both read am->progress_*: call with app->mu held). */
json_t *api_model_summary(const struct app_model *am);
json_t *api_model_detail(const struct app_model *am);
/* The reply of GET /api/models built now (with app->mu held). */
struct blob *api_models_list_blob(struct app *app);

/* api_layers.c: the scatter and elbow blobs of every layer (am->layers). */
int api_layers_precompute(struct app_model *am, char *err);

/* api_layers.c: layer l of a ready model clustered with k clusters, into
 * *out: the analysis's own when k is its k, else the re-clustering
 * (analysis_recluster) made once and kept. Borrowed (lives as long as am).
 * Returns 0, or STRATA_E_ARG (k out of range) / STRATA_E_NOMEM with err.
 * CPU-heavy the first time: call it from a job. */
int app_layer_clustering(struct app_model *am, int l, int k,
                         const struct analysis_clustering **out, char *err);

/* api_paths.c: am->paths and am->misclassified. */
int api_paths_precompute(struct app_model *am, char *err);

/* api_doubt.c: the reply of GET /api/models/{id}/doubt for report r. NULL
 * when out of memory. */
struct blob *api_doubt_eval_blob(const struct doubt_report *r);

/* api_openapi.c: the OpenAPI document. NULL when out of memory. */
struct blob *api_openapi_blob(void);

/* api_images.c: image i of am's analysed split as a file path under the
 * split's folder: its id "<class>/<file>" with plain names, or -1 for an
 * id that is not (nothing outside the split is ever named) or too long. */
int app_image_path(const struct app_model *am, int i, char *path, size_t len);

/* api_explanations.c: explanations as the API serves them. */

/* Side length the overlay and heat map are scaled to (the longer side),
 * since the model's input (64 to 96 pixels) is too small to look at. */
#define EXPLANATION_DISPLAY_SIDE 256

/* Builds an explanation (refs = 1) of res->classes[0] from a LIME result on
 * `resized` (the image at the model's input size): the JSON of docs/api.md,
 * the overlay and the heat map as PNG. image_id is the dataset image's id
 * or NULL for an upload; truth its true class or -1. Returns 0, or
 * STRATA_E_NOMEM / an encoder failure with err. */
int explanation_build(const struct app_model *am, const char *id, const struct lime_result *res,
                      const struct image *resized, const char *image_id, int truth,
                      struct explanation **out, char *err);

/* Replies with part 0 (JSON), 1 (overlay PNG) or 2 (heat-map PNG) of e,
 * holding a reference until the bytes are sent. Returns 0. */
int explanation_reply(const struct request *req, struct response *res, struct explanation *e,
                      int part);

/* The LIME settings the server uses (lime_params_default, batches sized for
 * the seed models). Can't fail. */
void app_lime_params(struct lime_params *p);

/* The handlers. */
int handle_health(const struct request *req, struct response *res);
int handle_models(const struct request *req, struct response *res);
int handle_model(const struct request *req, struct response *res);
int handle_scatter(const struct request *req, struct response *res);
int handle_elbow(const struct request *req, struct response *res);
int handle_paths(const struct request *req, struct response *res);
int handle_misclassified(const struct request *req, struct response *res);
int handle_doubt(const struct request *req, struct response *res);
int handle_image(const struct request *req, struct response *res);
int handle_thumb(const struct request *req, struct response *res);
int handle_image_explanation(const struct request *req, struct response *res);
int handle_predict(const struct request *req, struct response *res);
int handle_explain(const struct request *req, struct response *res);
int handle_explanation(const struct request *req, struct response *res);
int handle_explanation_overlay(const struct request *req, struct response *res);
int handle_explanation_heatmap(const struct request *req, struct response *res);
int handle_openapi(const struct request *req, struct response *res);
int handle_import(const struct request *req, struct response *res);
int handle_delete_model(const struct request *req, struct response *res);
int handle_datasets(const struct request *req, struct response *res);
int handle_graph(const struct request *req, struct response *res);
int handle_features(const struct request *req, struct response *res);
int handle_set_layers(const struct request *req, struct response *res);

/* The route table of the API (cmd_serve.c builds the router from it). */
extern const struct route app_routes[];
extern const size_t app_n_routes;

#endif
