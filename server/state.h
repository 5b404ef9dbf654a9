/*
 * state.h — the state behind `strata serve`: the app, its configuration, and
 * one entry per model, with the rules for reading them from any thread.
 *
 * This header holds the data; each part of it is changed by one file:
 *   registry.h    the models array and the references that keep an entry
 *                 alive; loading a model folder into an entry; freeing it
 *   analyser.h    the background thread that analyses the models (state
 *                 QUEUED -> ANALYSING -> READY or FAILED, then the doubt)
 *   publish.h     how a result becomes visible: what changes a state, the
 *                 replies rebuilt and swapped, the replaced ones retired
 *   expl_store.h  the bounded store of explanations
 *   model_admin.h models added, reloaded and deleted while serving
 *   app.h         app_new and app_free, which put them together
 * Handlers (api.h) read this state and never write it but through those.
 *
 * Reading without locks. `state` is an atomic written last (release) by
 * the analysis thread; a handler that reads READY (acquire) sees the bundle
 * and every blob built before, and none of them changes again (publish.h).
 * Caches filled on demand (re-clusterings, thumbnails) go from NULL to
 * their final value once (compare-and-swap; a loser frees its copy) and are
 * freed only with the model.
 */
#ifndef STRATA_STATE_H
#define STRATA_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "analysis.h"
#include "doubt.h"
#include "model.h"

struct blob;          /* blob.h */
struct explanation;   /* expl_store.h */
struct expl_store;
struct job_pool;      /* jobs.h */
struct app_replies;   /* publish.h */

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

struct app;

struct app_model {
    struct app *app;      /* borrowed: the app it belongs to */
    char id[64];          /* model id (model.json "id", else the folder name) */
    char dir[1300];       /* its folder */
    char data_root[1024]; /* the datasets folder its dataset is in */
    int uploaded;         /* made by POST /api/models: it can be deleted */
    /* References (registry.h): the registry's (until deleted) and one per
     * user (a request being handled or sent, the analysis thread); the last
     * one frees the model. */
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

    /* Valid once state is READY (publish.h), then read-only: */
    struct analysis a;
    char image_dir[1200]; /* <data>/<dataset>/<split>: where the images are */
    int n_dims;           /* layers shown as path dimensions (same_as < 0) */
    int *dims;            /* [n_dims] their indices */
    int cover;            /* image index used as the model's cover, -1 none */
    struct blob *paths, *misclassified;
    struct app_layer *layers;              /* [a.n_layers] */
    _Atomic(struct blob *) *thumbs;        /* [a.n] 64x64 JPEG, on demand */
    struct explanation **expl;            /* [a.n] LIME of image i, or NULL (expl_store.h's lock) */

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
     * reused rather than allocated per request (registry.h). */
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

/* Defaults: models "models", data dataset_root(NULL), cache
 * ANALYSIS_DEFAULT_CACHE, one worker per online CPU, queue 32, 64 upload
 * and 256 dataset image explanations, 120 s. Can't fail. */
void app_config_defaults(struct app_config *cfg);

struct app {
    struct app_config cfg;
    char models_root[1024], data_root[1024], cache_dir[1024], workspace[1024];
    /* The registry (registry.h): models_lock guards the array (read:
     * lookups and listings; write: adding and deleting). */
    pthread_rwlock_t models_lock;
    int n_models, cap_models;
    struct app_model **models; /* [n_models]: models_root's sorted by id, then the workspace's */
    pthread_mutex_t imports_mu; /* one import writes into the workspace at a time */
    struct blob *openapi;
    struct job_pool *jobs;
    struct expl_store *store; /* explanations (expl_store.h) */

    /* Publication (publish.h): how replies are built, the models list. */
    const struct app_replies *replies;
    _Atomic(struct blob *) models_list;
    pthread_mutex_t mu; /* state changes, progress and the retired blobs */
    struct blob **retired;
    size_t n_retired, cap_retired;

    /* The analysis thread (analyser.h). */
    pthread_t analyser;
    int analyser_started;
    pthread_cond_t work; /* with mu: a model was added (the analysis thread waits on it) */
    atomic_int stopping;
};

/* Writes "strata serve: <message>" and a newline on the app's log
 * (cfg.log, else stderr) and flushes it. */
void app_logf(const struct app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Monotonic milliseconds. */
double app_now_ms(void);

#endif
