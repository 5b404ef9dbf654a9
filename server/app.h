/*
 * app.h — the state behind `strata serve`: the models, their analysis
 * bundles, every GET answer precomputed as bytes, the caches filled on
 * demand (re-clusterings, thumbnails, explanations of dataset images), the
 * bounded store of upload explanations, and the worker pool.
 *
 * Life of a model. app_new loads every models/<id>/model.json with its
 * weights and card.json; a model that cannot be loaded (no weights, a broken
 * file) is kept, in state FAILED with a message, so that the API can say why.
 * app_start_analyses then builds the bundles in one background thread, one
 * model after another (analysis_load_or_run with the cache folder), while
 * the server already answers: QUEUED -> ANALYSING -> READY or FAILED.
 * Before a model becomes READY, everything its GET endpoints return (paths,
 * misclassified, every layer's scatter and elbow) is serialised once into
 * immutable blobs; handlers then only pick a blob and send its bytes.
 *
 * Publication. `state` is an atomic written last (release) by the analysis
 * thread; a handler that reads READY (acquire) sees the bundle and every
 * blob built before, and none of them changes again. The few replies that
 * do change with the state (the models list, a model's detail) are rebuilt
 * and swapped atomically; the replaced blobs are kept until app_free (a
 * handful per model), so a reply still being sent never loses its bytes.
 * Caches filled on demand use the same rule: a slot goes from NULL to its
 * final value once (compare-and-swap; a loser frees its copy) and is freed
 * only by app_free.
 *
 * Doubt. Once every analysis is done, the same thread calibrates each ready
 * model's doubt score (doubt_load_or_calibrate, cached beside the analyses)
 * and publishes it through an atomic pointer; until then, or when a model
 * cannot have one (no validation hold-out, no train split), predictions
 * carry "doubt": null and the reason.
 *
 * Explanations are the exception to "never freed before app_free": they
 * weigh ~100 KB each, so they live in two rings, oldest evicted first —
 * cfg.max_explanations uploads, cfg.max_image_explanations dataset images
 * (a model's slot for image i points into the second ring and is cleared
 * on eviction). Both are guarded by app->store_mu, and an entry is
 * reference-counted because a GET may still be sending its PNG when a newer
 * one evicts it.
 *
 * Threading: every function here may be called from any HTTP or worker
 * thread, except app_new, app_start_analyses and app_free.
 */
#ifndef STRATA_APP_H
#define STRATA_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "analysis.h"
#include "doubt.h"
#include "jobs.h"
#include "lime.h"
#include "model.h"
#include "router.h"

/* --- immutable reply bytes ----------------------------------------------- */

struct blob {
    size_t len;
    char etag[24]; /* "\"<16 hex digits>\"": FNV-1a 64 of the bytes */
    unsigned char data[];
};

/* Copies len bytes into a new blob (free with free()). NULL when out of
 * memory. */
struct blob *blob_new(const void *data, size_t len);

/* Serialises j compactly (7 significant digits: a float32 read back within
 * one unit of its last digit) into a new blob; j is not consumed. NULL when
 * out of memory (or j is NULL). */
struct blob *blob_json(const json_t *j);

/* blob_json, then drops the reference to j (NULL-safe). */
struct blob *blob_json_steal(json_t *j);

/* Replies 200 with the blob's bytes (borrowed: the blob must outlive the
 * server, which the publication rules above guarantee), its ETag and
 * Cache-Control (NULL means "no-cache": revalidate, answered 304 when
 * If-None-Match holds the ETag). Returns 0. */
int app_reply_blob(const struct request *req, struct response *res, const struct blob *b,
                   const char *content_type, const char *cache_control);

/* --- explanations ---------------------------------------------------------- */

struct explanation {
    atomic_int refs;
    char id[96];
    struct blob *json, *overlay, *heatmap; /* owned */
    struct app_model *owner; /* dataset image explanations: whose slot points here */
    int index;
};

/* Drops a reference; the last one frees the explanation. NULL-safe. */
void explanation_unref(struct explanation *e);

/* Side length the overlay and heat map are scaled to (the longer side),
 * since the model's input (64 to 96 pixels) is too small to look at. */
#define EXPLANATION_DISPLAY_SIDE 256

/* Builds an explanation (refs = 1) of res->classes[0] from a LIME result on
 * `resized` (the image at the model's input size): the JSON of docs/api.md,
 * the overlay and the heat map as PNG. image_id is the dataset image's id
 * or NULL for an upload; truth its true class or -1. Returns 0, or
 * STRATA_E_NOMEM / an encoder failure with err. */
struct app_model;
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

/* --- models -------------------------------------------------------------- */

enum app_state { APP_QUEUED, APP_ANALYSING, APP_READY, APP_FAILED };

enum app_doubt_state { APP_DOUBT_PENDING, APP_DOUBT_READY, APP_DOUBT_UNAVAILABLE };

/* "queued", "analysing", "ready", "failed". */
const char *app_state_name(int state);

/* "pending", "ready", "unavailable". */
const char *app_doubt_state_name(int state);

/* Precomputed replies of one layer. */
struct app_layer {
    struct blob *scatter; /* with the bundle's k */
    struct blob *elbow;
    _Atomic(struct blob *) scatter_k[ANALYSIS_DEFAULT_K_MAX + 1]; /* ?k=N, filled on demand */
    /* the clustering behind scatter_k[N], kept for placing uploads at that k */
    _Atomic(struct analysis_clustering *) clustering_k[ANALYSIS_DEFAULT_K_MAX + 1];
};

/* Layer l of a ready model clustered with k clusters, into *out: the
 * analysis's own when k is its k, else the re-clustering
 * (analysis_recluster) made once and kept. Borrowed (lives as long as am).
 * Returns 0, or STRATA_E_ARG (k out of range) / STRATA_E_NOMEM with err.
 * CPU-heavy the first time: call it from a job. */
int app_layer_clustering(struct app_model *am, int l, int k,
                         const struct analysis_clustering **out, char *err);

struct app;

struct app_model {
    struct app *app;
    char id[64];          /* model id (model.json "id", else the folder name) */
    char dir[1300];       /* its folder */
    char data_root[1024]; /* the datasets folder its dataset is in */
    int uploaded;         /* made by POST /api/models: it can be deleted */
    /* References: the registry's (until deleted) and one per user (a
     * request being handled or sent, the analysis thread); the last one
     * frees the model. */
    atomic_int refs;
    atomic_int deleted;   /* out of the registry: work on it stops early */
    /* What the analysis thread is doing on it (app->mu): a stage name
     * ("forward", "clustering", ...) and done/total, while QUEUED or
     * ANALYSING or calibrating; stage empty otherwise. */
    char progress_stage[32];
    long progress_done, progress_total;
    int loaded;           /* model.json parsed: m is usable for its description */
    int has_weights;      /* and its weights are loaded: m can run */
    struct model m;
    json_t *card;         /* card.json, or NULL */
    atomic_int state;     /* enum app_state */
    char error[STRATA_ERR_LEN]; /* why FAILED; written before the state */
    double analysis_wall; /* seconds the analysis took in this process */

    /* Valid once state is READY, then read-only: */
    struct analysis a;
    char image_dir[1200]; /* <data>/<dataset>/<split>: where the images are */
    int n_dims;           /* layers shown as path dimensions (same_as < 0) */
    int *dims;            /* [n_dims] their indices */
    int cover;            /* image index used as the model's cover, -1 none */
    struct blob *paths, *misclassified;
    struct app_layer *layers;              /* [a.n_layers] */
    _Atomic(struct blob *) *thumbs;        /* [a.n] 64x64 JPEG, on demand */
    struct explanation **expl;            /* [a.n] LIME of image i, or NULL (app->store_mu) */

    _Atomic(struct blob *) detail; /* GET /api/models/{id}, rebuilt on state changes */

    /* The doubt model, NULL until calibrated (then read-only); doubt_state
     * says which, doubt_note why there is none (written before the state). */
    _Atomic(struct doubt_model *) doubt;
    atomic_int doubt_state; /* enum app_doubt_state */
    char doubt_note[STRATA_ERR_LEN];

    /* GET /api/models/{id}/doubt: the doubt evaluated on the test split
     * against the other datasets' (doubt_report_load_or_run), NULL until
     * computed after every doubt model is calibrated; doubt_eval_state and
     * doubt_eval_note as for the doubt model. */
    _Atomic(struct blob *) doubt_eval;
    atomic_int doubt_eval_state; /* enum app_doubt_state */
    char doubt_eval_note[STRATA_ERR_LEN];

    /* Inference workspaces (batch 1) for predict: one per concurrent job,
     * reused rather than allocated per request. */
    pthread_mutex_t ws_mu;
    struct model_workspace **ws_free;
    int n_ws_free, ws_cap;
};

struct app_config {
    const char *models_root; /* folder of model folders */
    const char *data_root;   /* datasets folder */
    const char *cache_dir;   /* analysis cache, NULL disables it */
    int workers;             /* worker threads for CPU-heavy requests (>= 1) */
    int max_queue;           /* jobs waiting beyond the workers before 503 */
    int max_explanations;    /* upload explanations kept (>= 1) */
    int max_image_explanations; /* dataset image explanations kept (>= 1) */
    double job_timeout_s;    /* how long a request waits for its job */
    size_t max_upload_bytes; /* the HTTP body limit, reported by /api/health (0: not given) */
    /* Models imported through the API: <workspace>/models/<id>, their
     * uploaded images <workspace>/data/<id>, uploads in progress
     * <workspace>/.incoming. NULL: imports are refused. */
    const char *workspace;
    uint64_t max_model_bytes;   /* the .onnx of an import, default 300 MB */
    uint64_t max_archive_bytes; /* the images archive of an import (compressed), 1 GiB */
    uint64_t max_archive_entries, max_archive_unpacked; /* image_archive.h's limits */
    FILE *log;               /* startup and analysis messages (NULL: stderr) */
};

/* Defaults: models "models", data dataset_root(NULL), cache
 * ANALYSIS_DEFAULT_CACHE, one worker per online CPU, queue 32, 64 upload
 * and 256 dataset image explanations, 120 s. Can't fail. */
void app_config_defaults(struct app_config *cfg);

struct app {
    struct app_config cfg;
    char models_root[1024], data_root[1024], cache_dir[1024], workspace[1024];
    /* The registry: models_lock guards the array (read: lookups and
     * listings; write: adding and deleting). */
    pthread_rwlock_t models_lock;
    int n_models, cap_models;
    struct app_model **models; /* [n_models]: models_root's sorted by id, then the workspace's */
    pthread_mutex_t imports_mu; /* one import writes into the workspace at a time */
    struct blob *openapi;
    _Atomic(struct blob *) models_list;
    struct job_pool *jobs;

    pthread_mutex_t mu; /* state changes and the retired blobs */
    struct blob **retired;
    size_t n_retired, cap_retired;

    pthread_mutex_t store_mu; /* both explanation rings and the models' expl slots */
    struct explanation **store; /* uploads: ring [cfg.max_explanations] */
    unsigned long long *store_num; /* [cfg.max_explanations] id number of each entry */
    unsigned long long store_next; /* ids e1, e2, ...: e<n> sits at store[(n-1) % cap] */
    struct explanation **img_ring; /* dataset images: ring [cfg.max_image_explanations] */
    size_t img_next;

    pthread_t analyser;
    int analyser_started;
    pthread_cond_t work; /* with mu: a model was added (the analysis thread waits on it) */
    atomic_int stopping;
};

/* Loads every model folder under cfg->models_root (a folder without a
 * model.json is skipped with a note on the log; a broken model is kept as
 * FAILED), starts the worker pool and precomputes the replies that do not
 * need an analysis. Returns 0 and *out, or STRATA_E_IO (the models folder
 * cannot be read), STRATA_E_ARG (bad config) or STRATA_E_NOMEM with err.
 * Free with app_free. */
int app_new(const struct app_config *cfg, struct app **out, char *err);

/* Starts the background thread that loads or computes each model's
 * analysis, one after another, printing progress on the log. Returns 0 or
 * STRATA_E_NOMEM (the thread could not start). */
int app_start_analyses(struct app *app, char *err);

/* Interrupts and joins the analysis thread, stops the worker pool (after
 * the jobs already queued), frees everything. Stop the HTTP server first.
 * NULL-safe. */
void app_free(struct app *app);

/* The model with that id with a new reference (give it back with
 * app_model_put), or NULL. */
struct app_model *app_model_get(struct app *app, const char *id);
void app_model_put(struct app_model *am);

/* Finds the {id} path parameter's model, holding a reference until res
 * has been sent (response_on_done); on failure fills res with 404 and
 * returns NULL. */
struct app_model *app_model_or_404(const struct request *req, struct response *res);

/* Loads the model folder `dir` (uploaded: made by POST /api/models, with
 * its images under data_root) into the registry and queues its analysis.
 * Returns 0, or STRATA_E_ARG (the id is taken) / STRATA_E_NOMEM with err;
 * a model that loads but cannot run is added as FAILED, as at start. */
int app_add_model(struct app *app, const char *dir, const char *data_root, int uploaded,
                  char *err);

/* Takes the model out of the registry (its analysis stops, requests in
 * flight finish) and removes its folder and, for uploaded images, its
 * dataset folder. Only uploaded models: STRATA_E_ARG for others,
 * STRATA_E_NOTFOUND for an unknown id, with err. */
int app_delete_model(struct app *app, const char *id, char *err);

/* Loads the model `id` again from its folder (after its model.json
 * changed) in place of the one in the registry, which stops its analysis
 * and goes when the requests using it are done; the new one is analysed
 * anew. Returns 0, or STRATA_E_NOTFOUND / STRATA_E_NOMEM with err. */
int app_reload_model(struct app *app, const char *id, char *err);

/* Removes a folder and everything under it; links are removed, never
 * followed. Failures are ignored (what is left stays). */
void app_remove_tree(const char *path);

/* Creates <workspace>/{models,data,.incoming} as needed and empties
 * .incoming (imports a stopped server left half done). Returns 0 or
 * STRATA_E_IO with err. */
int app_workspace_prepare(const char *workspace, char *err);

/* Calls fn on every model in the registry, in order, under its read lock
 * (fn must not add or delete models). */
void app_models_each(struct app *app, void (*fn)(struct app_model *am, void *user), void *user);

/* Image i of am's analysed split as a file path under the split's folder
 * (api_images.c): its id "<class>/<file>" with plain names, or -1 for an id
 * that is not (nothing outside the split is ever named) or too long. */
int app_image_path(const struct app_model *am, int i, char *path, size_t len);

/* Whether am's analysis is READY; otherwise fills res with 409
 * "analysing" (queued or in progress) or 409 "analysis_failed" and returns
 * 0. */
int app_require_ready(const struct app_model *am, struct response *res);

/* The image a request about one image names: ?image=<index | class/file>
 * of am's analysed split (*index set, up untouched), else the body (raw
 * image or the multipart field "image"; *index -1, *up filled). Returns 0,
 * or -1 with res holding the reply (404 for an unknown image, the body's
 * 4xx). */
struct upload;
int app_image_of_request(const struct request *req, struct response *res,
                         const struct app_model *am, int *index, struct upload *up);

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

/* A batch-1 inference workspace for am (reused, else allocated); NULL with
 * err when out of memory. Give it back with app_workspace_give. */
struct model_workspace *app_workspace_take(struct app_model *am, char *err);
void app_workspace_give(struct app_model *am, struct model_workspace *ws);

/* Upload explanations: reserve the next id number n (the explanation's id
 * is "e<n>", needed in its JSON before it is stored), then store it there,
 * handing over the caller's reference; the oldest entry is evicted when the
 * ring is full (an entry that a newer one has already displaced is dropped
 * at once). Can't fail. */
unsigned long long app_store_reserve(struct app *app);
void app_store_put(struct app *app, unsigned long long n, struct explanation *e);

/* The explanation of image i of a ready model, with a new reference, or
 * NULL when it has not been computed (or was evicted). */
struct explanation *app_image_explanation_get(struct app *app, struct app_model *am, int i);

/* Keeps e (the caller's reference moves to the store) as the explanation of
 * image i of am, evicting the oldest dataset explanation when full, and
 * returns the explanation to serve with a new reference: e, or the one
 * another request stored meanwhile (then e is dropped). Can't fail. */
struct explanation *app_image_explanation_put(struct app *app, struct app_model *am, int i,
                                              struct explanation *e);

/* The explanation with that id — an upload's "e<n>" or a dataset image's
 * "<model>~<index>" — with a new reference (explanation_unref), or NULL. */
struct explanation *app_explanation_get(struct app *app, const char *id);

/* Publishes am's new state (and error, for FAILED): rebuilds its detail
 * and the models list (am NULL: only the list). Returns 0 or
 * STRATA_E_NOMEM (the old replies stay). */
int app_set_state(struct app *app, struct app_model *am, int state, const char *error);

/* --- helpers for the handlers -------------------------------------------- */

/* A JSON string of s; bytes that are not valid UTF-8 become '?' (file
 * names need not be UTF-8, JSON strings must). NULL when out of memory. */
json_t *json_str(const char *s);

/* Percent-encodes s as one URL path segment (RFC 3986 unreserved kept)
 * into out; returns out. Truncates at len. */
char *url_segment(const char *s, char *out, size_t len);

/* The URL path of dataset image `index` of am, with `suffix` ("", "/thumb",
 * "/explanation") appended: /api/models/<id>/images/<class>/<file><suffix>. */
void app_image_url(const struct app_model *am, int index, const char *suffix, char *out,
                   size_t len);

/* Monotonic milliseconds. */
double app_now_ms(void);

/* --- resources (one file each) ------------------------------------------- */

/* api_models.c: a model's entry in GET /api/models, and GET /api/models/{id}
 * (both read am->progress_*: call with app->mu held). */
json_t *api_model_summary(const struct app_model *am);
json_t *api_model_detail(const struct app_model *am);
/* The reply of GET /api/models built now (with app->mu held). */
struct blob *api_models_list_blob(struct app *app);

/* api_layers.c: the scatter and elbow blobs of every layer (am->layers). */
int api_layers_precompute(struct app_model *am, char *err);
/* api_paths.c: am->paths and am->misclassified. */
int api_paths_precompute(struct app_model *am, char *err);
/* api_doubt.c: the reply of GET /api/models/{id}/doubt for report r. NULL
 * when out of memory. */
struct blob *api_doubt_eval_blob(const struct doubt_report *r);
/* api_openapi.c: the OpenAPI document. NULL when out of memory. */
struct blob *api_openapi_blob(void);

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
