/*
 * app.c — loading the models, the background analyses, publication of the
 * precomputed replies, the caches and the explanation store (see app.h for
 * the rules that make them safe to read from any thread without locks).
 */
#include "app.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"
#include "json.h"
#include "progress.h"

/* --- small helpers ------------------------------------------------------- */

double app_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static FILE *app_log(const struct app *app)
{
    return app->cfg.log ? app->cfg.log : stderr;
}

static void logf_(const struct app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const struct app *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    FILE *f = app_log(app);
    fputs("strata serve: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    va_end(ap);
}

json_t *json_str(const char *s)
{
    json_t *j = json_string(s);
    if (j || !s)
        return j;
    /* Not UTF-8: keep ASCII, replace the rest. */
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_string(copy);
    free(copy);
    return j;
}

char *url_segment(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    assert(len > 0);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '.' || c == '_' || c == '~';
        if (keep) {
            if (o + 1 >= len)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 3 >= len)
                break;
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
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

const char *app_state_name(int state)
{
    switch (state) {
    case APP_QUEUED: return "queued";
    case APP_ANALYSING: return "analysing";
    case APP_READY: return "ready";
    default: return "failed";
    }
}

const char *app_doubt_state_name(int state)
{
    switch (state) {
    case APP_DOUBT_PENDING: return "pending";
    case APP_DOUBT_READY: return "ready";
    default: return "unavailable";
    }
}

/* --- blobs --------------------------------------------------------------- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct blob *blob_new(const void *data, size_t len)
{
    struct blob *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = 0;
    snprintf(b->etag, sizeof b->etag, "\"%016llx\"", (unsigned long long)fnv1a(b->data, len));
    return b;
}

struct blob *blob_json(const json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(7));
    if (!s)
        return NULL;
    struct blob *b = blob_new(s, strlen(s));
    free(s);
    return b;
}

struct blob *blob_json_steal(json_t *j)
{
    struct blob *b = blob_json(j);
    json_decref(j);
    return b;
}

int app_reply_blob(const struct request *req, struct response *res, const struct blob *b,
                   const char *content_type, const char *cache_control)
{
    if (http_etag_match(request_header(req, "If-None-Match"), b->etag))
        response_empty(res, 304);
    else
        response_bytes(res, 200, content_type, b->data, b->len, NULL, NULL);
    response_header(res, "ETag", "%s", b->etag);
    response_header(res, "Cache-Control", "%s", cache_control ? cache_control : "no-cache");
    return 0;
}

/* --- explanations -------------------------------------------------------- */

void explanation_unref(struct explanation *e)
{
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    free(e->json);
    free(e->overlay);
    free(e->heatmap);
    free(e);
}

static void explanation_unref_cb(void *cls)
{
    explanation_unref(cls);
}

int explanation_reply(const struct request *req, struct response *res, struct explanation *e,
                      int part)
{
    const struct blob *b = part == 0 ? e->json : part == 1 ? e->overlay : e->heatmap;
    const char *type = part == 0 ? "application/json" : "image/png";
    if (http_etag_match(request_header(req, "If-None-Match"), b->etag)) {
        response_empty(res, 304);
    } else {
        atomic_fetch_add(&e->refs, 1); /* dropped when the bytes are sent */
        response_bytes(res, 200, type, b->data, b->len, explanation_unref_cb, e);
    }
    response_header(res, "ETag", "%s", b->etag);
    /* An explanation never changes under its id. */
    response_header(res, "Cache-Control", "private, max-age=3600");
    return 0;
}

void app_lime_params(struct lime_params *p)
{
    lime_params_default(p);
    p->batch_size = 100;
}

/* --- configuration ------------------------------------------------------- */

void app_config_defaults(struct app_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->models_root = "models";
    cfg->data_root = dataset_root(NULL);
    cfg->cache_dir = ANALYSIS_DEFAULT_CACHE;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cpus > 0 ? (int)(cpus < 64 ? cpus : 64) : 2;
    cfg->max_queue = 32;
    cfg->max_explanations = 64;
    cfg->max_image_explanations = 256;
    cfg->job_timeout_s = 120;
    cfg->log = NULL;
    cfg->workspace = NULL;
    cfg->max_model_bytes = (uint64_t)300 << 20;
    cfg->max_archive_bytes = (uint64_t)1 << 30;
    cfg->max_archive_entries = 100000;
    cfg->max_archive_unpacked = (uint64_t)4 << 30;
}

/* --- loading the models -------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_model(const void *a, const void *b)
{
    return strcmp((*(struct app_model *const *)a)->id, (*(struct app_model *const *)b)->id);
}

/* Loads one model folder into am. A model that cannot run is kept with its
 * state FAILED and the reason in am->error. */
static void load_model(struct app *app, struct app_model *am, const char *dir)
{
    char path[1400], err[STRATA_ERR_LEN];
    snprintf(am->dir, sizeof am->dir, "%s", dir);
    const char *slash = strrchr(dir, '/');
    snprintf(am->id, sizeof am->id, "%s", slash ? slash + 1 : dir);
    am->app = app;
    pthread_mutex_init(&am->ws_mu, NULL);
    atomic_init(&am->refs, 1); /* the registry's */
    atomic_init(&am->deleted, 0);
    atomic_init(&am->state, APP_QUEUED);
    atomic_init(&am->detail, NULL);
    atomic_init(&am->doubt, NULL);
    atomic_init(&am->doubt_state, APP_DOUBT_PENDING);
    atomic_init(&am->doubt_eval, NULL);
    atomic_init(&am->doubt_eval_state, APP_DOUBT_PENDING);
    am->cover = -1;

    snprintf(path, sizeof path, "%s/model.json", am->dir);
    if (model_load_json(&am->m, path, err) < 0) {
        snprintf(am->error, sizeof am->error, "%s", err);
        atomic_store(&am->state, APP_FAILED);
        return;
    }
    am->loaded = 1;
    snprintf(am->id, sizeof am->id, "%s", am->m.id);

    snprintf(path, sizeof path, "%s/card.json", am->dir);
    if (access(path, F_OK) == 0) {
        json_error_t je;
        am->card = json_load_file(path, 0, &je);
        if (!am->card)
            logf_(app, "%s: card.json ignored: line %d: %s", am->id, je.line, je.text);
    }

    if (am->m.onnx[0]) {
        if (model_load_onnx(&am->m, err) < 0) {
            snprintf(am->error, sizeof am->error, "%s", err);
            atomic_store(&am->state, APP_FAILED);
            return;
        }
        am->has_weights = 1;
        return;
    }
    snprintf(path, sizeof path, "%s/weights.safetensors", am->dir);
    if (access(path, F_OK) != 0) {
        snprintf(am->error, sizeof am->error,
                 "model %s has no weights (%.300s): train it with `strata train %s`", am->id, path,
                 am->id);
        atomic_store(&am->state, APP_FAILED);
        return;
    }
    if (model_load_weights(&am->m, path, err) < 0 || model_run_on_graph(&am->m, err) < 0) {
        snprintf(am->error, sizeof am->error, "%s", err);
        atomic_store(&am->state, APP_FAILED);
        return;
    }
    am->has_weights = 1;
}

/* Frees everything of a model that nobody uses any more. */
static void model_destroy(struct app_model *am);

/* Adds am (one reference: the registry's) unless its id is taken. Returns
 * 0, STRATA_E_ARG (taken) or STRATA_E_NOMEM. */
static int registry_add(struct app *app, struct app_model *am)
{
    int rc = 0;
    pthread_rwlock_wrlock(&app->models_lock);
    for (int i = 0; i < app->n_models && rc == 0; i++)
        if (strcmp(app->models[i]->id, am->id) == 0)
            rc = STRATA_E_ARG;
    if (rc == 0 && app->n_models == app->cap_models) {
        int cap = app->cap_models ? 2 * app->cap_models : 16;
        struct app_model **m = realloc(app->models, (size_t)cap * sizeof *m);
        if (!m)
            rc = STRATA_E_NOMEM;
        else {
            app->models = m;
            app->cap_models = cap;
        }
    }
    if (rc == 0)
        app->models[app->n_models++] = am;
    pthread_rwlock_unlock(&app->models_lock);
    return rc;
}

/* Where an uploaded model's images are: its own folder under
 * <workspace>/data when the import brought them (import.json "images":
 * "uploaded"), else the server's datasets. */
static void uploaded_data_root(const struct app *app, const char *dir, char *out, size_t len)
{
    char path[1500];
    snprintf(path, sizeof path, "%s/import.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    const char *images = json_string_value(json_object_get(j, "images"));
    if (images && strcmp(images, "uploaded") == 0)
        snprintf(out, len, "%.1000s/data", app->workspace);
    else
        snprintf(out, len, "%s", app->data_root);
    json_decref(j);
}

/* Loads every model folder under root (sorted by folder name) into the
 * registry; a second folder declaring an id already loaded is skipped. A
 * missing root is an error only when required. */
static int load_models(struct app *app, const char *root, int uploaded, int required, char *err)
{
    DIR *d = opendir(root);
    if (!d) {
        if (!required && errno == ENOENT)
            return 0;
        return strata_fail(err, STRATA_E_IO, "cannot read the models folder %s: %s", root,
                           strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        snprintf(path, sizeof path, "%s/%s/model.json", root, e->d_name);
        if (access(path, F_OK) != 0) {
            logf_(app, "%s/%s: no model.json, skipped", root, e->d_name);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn) {
                rc = STRATA_E_NOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = STRATA_E_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n)
        qsort(names, n, sizeof *names, cmp_str);
    int first = app->n_models;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct app_model *am = calloc(1, sizeof *am);
        if (!am) {
            rc = STRATA_E_NOMEM;
            break;
        }
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        load_model(app, am, dir);
        am->uploaded = uploaded;
        if (uploaded)
            uploaded_data_root(app, dir, am->data_root, sizeof am->data_root);
        else
            snprintf(am->data_root, sizeof am->data_root, "%s", app->data_root);
        /* Two folders declaring the same id: the first (by folder name) wins. */
        rc = registry_add(app, am);
        if (rc == STRATA_E_ARG) {
            logf_(app, "%s: model id %s is already used by another folder, skipped", am->dir,
                  am->id);
            rc = 0;
            model_destroy(am);
        } else if (rc < 0) {
            model_destroy(am);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc < 0)
        return strata_fail(err, rc, "out of memory loading the models");
    if (app->n_models > first)
        qsort(app->models + first, (size_t)(app->n_models - first), sizeof *app->models,
              cmp_model);
    return 0;
}

/* --- publication --------------------------------------------------------- */

/* Keeps a replaced blob until app_free (see app.h). Called with app->mu. */
static void retire(struct app *app, struct blob *b)
{
    if (!b)
        return;
    if (app->n_retired == app->cap_retired) {
        size_t cap = app->cap_retired ? 2 * app->cap_retired : 32;
        struct blob **r = realloc(app->retired, cap * sizeof *r);
        if (!r)
            return; /* leaks one small blob rather than freeing bytes in use */
        app->retired = r;
        app->cap_retired = cap;
    }
    app->retired[app->n_retired++] = b;
}

struct blob *api_models_list_blob(struct app *app)
{
    json_t *list = json_array();
    pthread_rwlock_rdlock(&app->models_lock);
    for (int i = 0; list && i < app->n_models; i++)
        if (json_array_append_new(list, api_model_summary(app->models[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    pthread_rwlock_unlock(&app->models_lock);
    return blob_json_steal(list ? json_pack("{s:o}", "models", list) : NULL);
}

int app_set_state(struct app *app, struct app_model *am, int state, const char *error)
{
    pthread_mutex_lock(&app->mu);
    struct blob *detail = NULL;
    if (am) {
        if (state == APP_FAILED && error)
            snprintf(am->error, sizeof am->error, "%s", error);
        atomic_store_explicit(&am->state, state, memory_order_release);
        detail = blob_json_steal(api_model_detail(am));
        if (detail)
            retire(app, atomic_exchange(&am->detail, detail));
    }
    struct blob *list = api_models_list_blob(app);
    if (list)
        retire(app, atomic_exchange(&app->models_list, list));
    pthread_mutex_unlock(&app->mu);
    return (am && !detail) || !list ? STRATA_E_NOMEM : 0;
}

/* --- the analyses -------------------------------------------------------- */

struct analysis_view {
    struct app *app;
    struct app_model *am;
    struct progress bar;
    char stage[32];
    char label[128];
};

static int on_progress(void *user, const char *stage, long done, long total)
{
    struct analysis_view *v = user;
    if (strcmp(stage, v->stage) != 0) {
        progress_end(&v->bar);
        snprintf(v->stage, sizeof v->stage, "%s", stage);
        snprintf(v->label, sizeof v->label, "%s: %s", v->am->id, stage);
        progress_begin(&v->bar, v->label);
    }
    progress_update(&v->bar, done, total, NULL);
    pthread_mutex_lock(&v->app->mu);
    snprintf(v->am->progress_stage, sizeof v->am->progress_stage, "%s", stage);
    v->am->progress_done = done;
    v->am->progress_total = total;
    pthread_mutex_unlock(&v->app->mu);
    return atomic_load(&v->app->stopping) || atomic_load(&v->am->deleted);
}

/* The analysis thread is done with am for now: no progress to show. */
static void progress_clear(struct app *app, struct app_model *am)
{
    pthread_mutex_lock(&app->mu);
    am->progress_stage[0] = '\0';
    am->progress_done = am->progress_total = 0;
    pthread_mutex_unlock(&app->mu);
}

/* A run that stopped because the server is stopping or the model was
 * deleted: nothing to publish. */
static int stopped_early(struct app *app, struct app_model *am, int rc)
{
    return rc == STRATA_E_INTERRUPTED && (atomic_load(&app->stopping) || atomic_load(&am->deleted));
}

/* Builds everything a READY model serves, from its bundle. */
static int prepare_ready(struct app *app, struct app_model *am, char *err)
{
    const struct analysis *a = &am->a;
    snprintf(am->image_dir, sizeof am->image_dir, "%s/%s/%s", am->data_root, a->dataset,
             a->split);
    am->dims = malloc((size_t)(a->n_layers ? a->n_layers : 1) * sizeof(int));
    am->thumbs = calloc((size_t)a->n, sizeof *am->thumbs);
    am->expl = calloc((size_t)a->n, sizeof *am->expl);
    am->layers = calloc((size_t)(a->n_layers ? a->n_layers : 1), sizeof *am->layers);
    if (!am->dims || !am->thumbs || !am->expl || !am->layers)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory preparing the replies of %s",
                           am->id);
    for (int i = 0; i < a->n; i++)
        atomic_init(&am->thumbs[i], NULL);
    am->n_dims = 0;
    for (int l = 0; l < a->n_layers; l++) {
        if (a->layers[l].same_as < 0)
            am->dims[am->n_dims++] = l;
        for (int k = 0; k <= ANALYSIS_DEFAULT_K_MAX; k++) {
            atomic_init(&am->layers[l].scatter_k[k], NULL);
            atomic_init(&am->layers[l].clustering_k[k], NULL);
        }
    }
    /* The cover: the image the model recognises with the most confidence. */
    am->cover = a->n ? 0 : -1;
    float best = -1;
    for (int i = 0; i < a->n; i++) {
        float p = a->probs[(size_t)i * a->n_classes + a->pred[i]];
        if (a->pred[i] == a->labels[i] && p > best) {
            best = p;
            am->cover = i;
        }
    }
    int rc = api_layers_precompute(am, err);
    if (rc == 0)
        rc = api_paths_precompute(am, err);
    return rc;
}

/* Frees what prepare_ready and the on-demand caches hold. */
static void release_ready(struct app_model *am)
{
    if (am->layers) {
        for (int l = 0; l < am->a.n_layers; l++) {
            free(am->layers[l].scatter);
            free(am->layers[l].elbow);
            for (int k = 0; k <= ANALYSIS_DEFAULT_K_MAX; k++) {
                free(atomic_load(&am->layers[l].scatter_k[k]));
                struct analysis_clustering *c = atomic_load(&am->layers[l].clustering_k[k]);
                if (c) {
                    analysis_clustering_free(c);
                    free(c);
                }
            }
        }
    }
    if (am->thumbs)
        for (int i = 0; i < am->a.n; i++)
            free(atomic_load(&am->thumbs[i]));
    free(am->layers);
    free(am->thumbs);
    free(am->expl);
    free(am->dims);
    free(am->paths);
    free(am->misclassified);
    am->layers = NULL;
    am->thumbs = NULL;
    am->expl = NULL;
    am->dims = NULL;
    am->paths = am->misclassified = NULL;
    analysis_free(&am->a);
}

static void analyse_one(struct app *app, struct app_model *am)
{
    char err[STRATA_ERR_LEN];
    struct analysis_params p;
    analysis_params_default(&p);
    app_set_state(app, am, APP_ANALYSING, NULL);
    logf_(app, "%s: analysing %s/%s/%s", am->id, am->data_root, am->m.dataset, p.split);
    struct analysis_view view = {.app = app, .am = am};
    double t0 = app_now_ms();
    int rc = analysis_load_or_run(&am->m, &p, am->data_root,
                                  app->cache_dir[0] ? app->cache_dir : NULL, &am->a,
                                  on_progress, &view, err);
    progress_end(&view.bar);
    progress_clear(app, am);
    if (stopped_early(app, am, rc))
        return;
    if (rc == 0 && am->a.cache_note[0])
        logf_(app, "%s: %s", am->id, am->a.cache_note);
    if (rc == 0 && (rc = prepare_ready(app, am, err)) < 0)
        release_ready(am);
    am->analysis_wall = (app_now_ms() - t0) / 1e3;
    if (rc < 0) {
        logf_(app, "%s: analysis failed: %s", am->id, err);
        app_set_state(app, am, APP_FAILED, err);
        return;
    }
    logf_(app, "%s: ready — %d images, accuracy %.1f %%, %d distinct paths, %s in %.2f s", am->id,
          am->a.n, 100 * am->a.accuracy, am->a.n_paths,
          am->a.cached ? "loaded from the cache" : "computed", am->analysis_wall);
    app_set_state(app, am, APP_READY, NULL);
}

static void calibrate_doubt(struct app *app, struct app_model *am)
{
    char err[STRATA_ERR_LEN];
    struct doubt_params p;
    doubt_params_default(&p);
    struct doubt_model *dm = calloc(1, sizeof *dm);
    struct analysis_view view = {.app = app, .am = am};
    double t0 = app_now_ms();
    int rc = dm ? doubt_load_or_calibrate(&am->m, &p, am->data_root,
                                          app->cache_dir[0] ? app->cache_dir : NULL, dm,
                                          on_progress, &view, err)
                : strata_fail(err, STRATA_E_NOMEM, "out of memory");
    progress_end(&view.bar);
    progress_clear(app, am);
    if (stopped_early(app, am, rc)) {
        free(dm);
        return;
    }
    if (rc < 0) {
        free(dm);
        snprintf(am->doubt_note, sizeof am->doubt_note, "no doubt score for %s: %.400s", am->id,
                 err);
        logf_(app, "%s", am->doubt_note);
        atomic_store_explicit(&am->doubt_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    } else {
        if (dm->cache_note[0])
            logf_(app, "%s: %s", am->id, dm->cache_note);
        logf_(app, "%s: doubt %s in %.2f s (%d reference, %d calibration images)", am->id,
              dm->cached ? "loaded from the cache" : "calibrated", (app_now_ms() - t0) / 1e3,
              dm->n_ref, dm->n_cal);
        atomic_store_explicit(&am->doubt, dm, memory_order_release);
        atomic_store_explicit(&am->doubt_state, APP_DOUBT_READY, memory_order_release);
    }
    app_set_state(app, am, APP_READY, NULL); /* the detail shows the doubt's state */
}

/* The model page's doubt evaluation (doubt_report_load_or_run: test split
 * against the other datasets' test splits), serialised once. */
static void evaluate_doubt(struct app *app, struct app_model *am)
{
    char err[STRATA_ERR_LEN];
    const struct doubt_model *dm = atomic_load_explicit(&am->doubt, memory_order_acquire);
    struct doubt_report r = {0};
    struct analysis_view view = {.app = app, .am = am};
    double t0 = app_now_ms();
    /* Out-of-distribution photos: the server's datasets, also for a model
     * whose own images were uploaded. */
    int rc = doubt_report_load_or_run(dm, &am->m, am->data_root, app->data_root,
                                      app->cache_dir[0] ? app->cache_dir : NULL, &r, on_progress,
                                      &view, err);
    progress_end(&view.bar);
    progress_clear(app, am);
    if (stopped_early(app, am, rc))
        return;
    struct blob *b = NULL;
    if (rc == 0 && !(b = api_doubt_eval_blob(&r)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory serialising the evaluation");
    doubt_report_free(&r);
    if (rc < 0) {
        snprintf(am->doubt_eval_note, sizeof am->doubt_eval_note,
                 "no doubt evaluation for %s: %.400s", am->id, err);
        logf_(app, "%s", am->doubt_eval_note);
        atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    } else {
        logf_(app, "%s: doubt evaluated in %.2f s", am->id, (app_now_ms() - t0) / 1e3);
        atomic_store_explicit(&am->doubt_eval, b, memory_order_release);
        atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_READY, memory_order_release);
    }
    app_set_state(app, am, APP_READY, NULL); /* the detail shows the evaluation's state */
}

enum work { WORK_NONE, WORK_ANALYSE, WORK_CALIBRATE, WORK_NO_DOUBT, WORK_EVALUATE };

/* The next thing the analysis thread should do, on a model it then holds a
 * reference to: every analysis first (what the pages show), then the doubt
 * scores (what predictions carry; a model without one learns it at once),
 * then their evaluations (the model pages). Called with app->mu. */
static struct app_model *next_work(struct app *app, enum work *what)
{
    struct app_model *found = NULL;
    *what = WORK_NONE;
    pthread_rwlock_rdlock(&app->models_lock);
    for (int pass = 0; pass < 3 && !found; pass++) {
        for (int i = 0; i < app->n_models && !found; i++) {
            struct app_model *am = app->models[i];
            int st = atomic_load(&am->state), ds = atomic_load(&am->doubt_state),
                es = atomic_load(&am->doubt_eval_state);
            if (pass == 0 && st == APP_QUEUED)
                *what = WORK_ANALYSE;
            else if (pass == 1 && st == APP_READY && ds == APP_DOUBT_PENDING)
                *what = WORK_CALIBRATE;
            else if (pass == 1 && st == APP_FAILED && ds == APP_DOUBT_PENDING)
                *what = WORK_NO_DOUBT;
            else if (pass == 1 && ds == APP_DOUBT_UNAVAILABLE && es == APP_DOUBT_PENDING)
                *what = WORK_NO_DOUBT;
            else if (pass == 2 && ds == APP_DOUBT_READY && es == APP_DOUBT_PENDING)
                *what = WORK_EVALUATE;
            else
                continue;
            found = am;
            atomic_fetch_add(&am->refs, 1);
        }
    }
    pthread_rwlock_unlock(&app->models_lock);
    return found;
}

/* A model without a doubt score (its analysis or calibration failed): its
 * evaluation cannot be either. */
static void no_doubt(struct app *app, struct app_model *am)
{
    if (atomic_load(&am->doubt_state) == APP_DOUBT_PENDING)
        atomic_store(&am->doubt_state, APP_DOUBT_UNAVAILABLE);
    snprintf(am->doubt_eval_note, sizeof am->doubt_eval_note,
             "no doubt evaluation for %s: it has no doubt score (%.300s)", am->id,
             am->doubt_note[0] ? am->doubt_note : "its analysis failed");
    atomic_store_explicit(&am->doubt_eval_state, APP_DOUBT_UNAVAILABLE, memory_order_release);
    app_set_state(app, am, atomic_load(&am->state), NULL);
}

static void *analyser_main(void *cls)
{
    struct app *app = cls;
    for (;;) {
        enum work what = WORK_NONE;
        struct app_model *am = NULL;
        pthread_mutex_lock(&app->mu);
        while (!atomic_load(&app->stopping) && !(am = next_work(app, &what)))
            pthread_cond_wait(&app->work, &app->mu);
        pthread_mutex_unlock(&app->mu);
        if (!am)
            return NULL; /* stopping */
        switch (what) {
        case WORK_ANALYSE: analyse_one(app, am); break;
        case WORK_CALIBRATE: calibrate_doubt(app, am); break;
        case WORK_NO_DOUBT: no_doubt(app, am); break;
        case WORK_EVALUATE: evaluate_doubt(app, am); break;
        case WORK_NONE: break;
        }
        app_model_put(am);
    }
}

int app_start_analyses(struct app *app, char *err)
{
    if (pthread_create(&app->analyser, NULL, analyser_main, app) != 0)
        return strata_fail(err, STRATA_E_NOMEM, "cannot start the analysis thread");
    app->analyser_started = 1;
    return 0;
}

/* --- lifecycle ----------------------------------------------------------- */

int app_new(const struct app_config *cfg, struct app **out, char *err)
{
    *out = NULL;
    if (cfg->workers < 1 || cfg->max_queue < 0 || cfg->max_explanations < 1 ||
        cfg->max_image_explanations < 1 ||
        !cfg->models_root || !cfg->data_root)
        return strata_fail(err, STRATA_E_ARG,
                           "server configuration out of range (workers >= 1, queue >= 0, "
                           "explanations >= 1, models and data folders set)");
    struct app *app = calloc(1, sizeof *app);
    if (!app)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    app->cfg = *cfg;
    snprintf(app->models_root, sizeof app->models_root, "%s", cfg->models_root);
    snprintf(app->data_root, sizeof app->data_root, "%s", cfg->data_root);
    snprintf(app->cache_dir, sizeof app->cache_dir, "%s", cfg->cache_dir ? cfg->cache_dir : "");
    snprintf(app->workspace, sizeof app->workspace, "%s", cfg->workspace ? cfg->workspace : "");
    pthread_mutex_init(&app->mu, NULL);
    pthread_mutex_init(&app->store_mu, NULL);
    pthread_mutex_init(&app->imports_mu, NULL);
    pthread_rwlock_init(&app->models_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&app->work, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&app->models_list, NULL);
    atomic_init(&app->stopping, 0);

    int rc = 0;
    app->store = calloc((size_t)cfg->max_explanations, sizeof *app->store);
    app->store_num = calloc((size_t)cfg->max_explanations, sizeof *app->store_num);
    app->img_ring = calloc((size_t)cfg->max_image_explanations, sizeof *app->img_ring);
    app->openapi = api_openapi_blob();
    if (!app->store || !app->store_num || !app->img_ring || !app->openapi)
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = load_models(app, app->models_root, 0, 1, err);
    if (rc == 0 && app->workspace[0]) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/models", app->workspace);
        rc = load_models(app, dir, 1, 0, err);
    }
    if (rc == 0)
        rc = jobs_new(cfg->workers, cfg->max_queue, &app->jobs, err);
    for (int i = 0; rc == 0 && i < app->n_models; i++) {
        struct app_model *am = app->models[i];
        if (atomic_load(&am->state) == APP_FAILED)
            logf_(app, "%s: %s", am->id, am->error);
        if (app_set_state(app, am, atomic_load(&am->state), NULL) < 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    if (rc == 0 && app->n_models == 0 &&
        app_set_state(app, NULL, 0, NULL) < 0) /* the empty models list */
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc < 0) {
        app_free(app);
        return rc;
    }
    *out = app;
    return 0;
}

static void model_destroy(struct app_model *am)
{
    struct app *app = am->app;
    /* Dataset explanations in the ring outlive their model's slots. */
    pthread_mutex_lock(&app->store_mu);
    for (int i = 0; app->img_ring && i < app->cfg.max_image_explanations; i++)
        if (app->img_ring[i] && app->img_ring[i]->owner == am)
            app->img_ring[i]->owner = NULL;
    pthread_mutex_unlock(&app->store_mu);
    release_ready(am);
    struct doubt_model *dm = atomic_load(&am->doubt);
    doubt_free(dm);
    free(dm);
    free(atomic_load(&am->doubt_eval));
    free(atomic_load(&am->detail));
    for (int w = 0; w < am->n_ws_free; w++) {
        model_workspace_free(am->ws_free[w]);
        free(am->ws_free[w]);
    }
    free(am->ws_free);
    model_free(&am->m);
    json_decref(am->card);
    pthread_mutex_destroy(&am->ws_mu);
    free(am);
}

void app_model_put(struct app_model *am)
{
    if (am && atomic_fetch_sub(&am->refs, 1) == 1)
        model_destroy(am);
}

void app_free(struct app *app)
{
    if (!app)
        return;
    atomic_store(&app->stopping, 1);
    if (app->analyser_started) {
        pthread_mutex_lock(&app->mu);
        pthread_cond_broadcast(&app->work);
        pthread_mutex_unlock(&app->mu);
        pthread_join(app->analyser, NULL);
    }
    jobs_free(app->jobs);
    for (int i = 0; i < app->n_models; i++)
        app_model_put(app->models[i]); /* the registry's reference, the last one now */
    free(app->models);
    if (app->store)
        for (int i = 0; i < app->cfg.max_explanations; i++)
            explanation_unref(app->store[i]);
    free(app->store);
    free(app->store_num);
    if (app->img_ring) /* the models' slots are gone already: only the ring owns these */
        for (int i = 0; i < app->cfg.max_image_explanations; i++)
            explanation_unref(app->img_ring[i]);
    free(app->img_ring);
    for (size_t i = 0; i < app->n_retired; i++)
        free(app->retired[i]);
    free(app->retired);
    free(atomic_load(&app->models_list));
    free(app->openapi);
    pthread_mutex_destroy(&app->mu);
    pthread_mutex_destroy(&app->store_mu);
    pthread_mutex_destroy(&app->imports_mu);
    pthread_rwlock_destroy(&app->models_lock);
    pthread_cond_destroy(&app->work);
    free(app);
}

/* --- lookups ------------------------------------------------------------- */

struct app_model *app_model_get(struct app *app, const char *id)
{
    struct app_model *found = NULL;
    if (!id)
        return NULL;
    pthread_rwlock_rdlock(&app->models_lock);
    for (int i = 0; i < app->n_models && !found; i++)
        if (strcmp(app->models[i]->id, id) == 0) {
            found = app->models[i];
            atomic_fetch_add(&found->refs, 1);
        }
    pthread_rwlock_unlock(&app->models_lock);
    return found;
}

static void model_put_cb(void *cls)
{
    app_model_put(cls);
}

struct app_model *app_model_or_404(const struct request *req, struct response *res)
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

void app_models_each(struct app *app, void (*fn)(struct app_model *am, void *user), void *user)
{
    pthread_rwlock_rdlock(&app->models_lock);
    for (int i = 0; i < app->n_models; i++)
        fn(app->models[i], user);
    pthread_rwlock_unlock(&app->models_lock);
}

int app_add_model(struct app *app, const char *dir, const char *data_root, int uploaded,
                  char *err)
{
    struct app_model *am = calloc(1, sizeof *am);
    if (!am)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    load_model(app, am, dir);
    am->uploaded = uploaded;
    snprintf(am->data_root, sizeof am->data_root, "%s", data_root);
    int rc = registry_add(app, am);
    if (rc < 0) {
        model_destroy(am);
        return rc == STRATA_E_ARG ? strata_fail(err, rc, "a model named %s already exists", am->id)
                                  : strata_fail(err, rc, "out of memory");
    }
    if (atomic_load(&am->state) == APP_FAILED)
        logf_(app, "%s: %s", am->id, am->error);
    app_set_state(app, am, atomic_load(&am->state), NULL);
    pthread_mutex_lock(&app->mu);
    pthread_cond_broadcast(&app->work);
    pthread_mutex_unlock(&app->mu);
    return 0;
}

/* Removes what extraction or an import wrote: a folder tree of plain files
 * (links are removed, never followed). */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void app_remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int app_reload_model(struct app *app, const char *id, char *err)
{
    struct app_model *old = app_model_get(app, id);
    if (!old)
        return strata_fail(err, STRATA_E_NOTFOUND, "no model named \"%.100s\"", id);
    struct app_model *am = calloc(1, sizeof *am);
    if (!am) {
        app_model_put(old);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    load_model(app, am, old->dir);
    am->uploaded = old->uploaded;
    snprintf(am->data_root, sizeof am->data_root, "%s", old->data_root);
    int swapped = 0;
    pthread_rwlock_wrlock(&app->models_lock);
    for (int i = 0; i < app->n_models && !swapped; i++)
        if (app->models[i] == old) {
            app->models[i] = am;
            swapped = 1;
        }
    pthread_rwlock_unlock(&app->models_lock);
    if (!swapped) { /* deleted meanwhile */
        model_destroy(am);
        app_model_put(old);
        return strata_fail(err, STRATA_E_NOTFOUND, "model %s was deleted", id);
    }
    atomic_store(&old->deleted, 1); /* its analysis stops */
    logf_(app, "%s: loaded again from %s", am->id, am->dir);
    app_set_state(app, am, atomic_load(&am->state), NULL);
    pthread_mutex_lock(&app->mu);
    pthread_cond_broadcast(&app->work);
    pthread_mutex_unlock(&app->mu);
    app_model_put(old); /* the registry's reference */
    app_model_put(old); /* ours */
    return 0;
}

int app_workspace_prepare(const char *workspace, char *err)
{
    const char *subs[] = {"", "/models", "/data", "/.incoming"};
    char path[1200];
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        snprintf(path, sizeof path, "%s%s", workspace, subs[i]);
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return strata_fail(err, STRATA_E_IO, "cannot create the workspace folder %s: %s",
                               path, strerror(errno));
    }
    /* imports a previous run left half done */
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char old[1500];
        snprintf(old, sizeof old, "%s/%s", path, e->d_name);
        app_remove_tree(old);
    }
    if (d)
        closedir(d);
    return 0;
}

int app_delete_model(struct app *app, const char *id, char *err)
{
    struct app_model *am = NULL;
    int rc = 0;
    pthread_rwlock_wrlock(&app->models_lock);
    int i = 0;
    while (i < app->n_models && strcmp(app->models[i]->id, id) != 0)
        i++;
    if (i == app->n_models)
        rc = strata_fail(err, STRATA_E_NOTFOUND, "no model named \"%.100s\": GET /api/models "
                                                 "lists them",
                         id);
    else if (!app->models[i]->uploaded)
        rc = strata_fail(err, STRATA_E_ARG,
                         "%s was not made through this page or POST /api/models: demo models "
                         "and models imported with `strata import` are not deleted from here",
                         id);
    else {
        am = app->models[i];
        memmove(app->models + i, app->models + i + 1,
                (size_t)(app->n_models - i - 1) * sizeof *app->models);
        app->n_models--;
        atomic_store(&am->deleted, 1);
    }
    pthread_rwlock_unlock(&app->models_lock);
    if (rc < 0)
        return rc;
    /* The files go now; the memory when the last request using it is done. */
    char data[1400];
    snprintf(data, sizeof data, "%s/data", app->workspace);
    if (strcmp(am->data_root, data) == 0) {
        snprintf(data, sizeof data, "%s/data/%s", app->workspace, am->id);
        app_remove_tree(data);
    }
    app_remove_tree(am->dir);
    logf_(app, "%s: deleted", am->id);
    app_set_state(app, NULL, 0, NULL);
    app_model_put(am);
    return 0;
}

int app_require_ready(const struct app_model *am, struct response *res)
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

struct model_workspace *app_workspace_take(struct app_model *am, char *err)
{
    struct model_workspace *ws = NULL;
    pthread_mutex_lock(&am->ws_mu);
    if (am->n_ws_free)
        ws = am->ws_free[--am->n_ws_free];
    pthread_mutex_unlock(&am->ws_mu);
    if (ws)
        return ws;
    ws = malloc(sizeof *ws);
    if (!ws) {
        strata_fail(err, STRATA_E_NOMEM, "out of memory");
        return NULL;
    }
    if (model_workspace_init(ws, &am->m, 1, 0, err) < 0) {
        free(ws);
        return NULL;
    }
    return ws;
}

void app_workspace_give(struct app_model *am, struct model_workspace *ws)
{
    if (!ws)
        return;
    pthread_mutex_lock(&am->ws_mu);
    if (am->n_ws_free == am->ws_cap) {
        int cap = am->ws_cap ? 2 * am->ws_cap : 4;
        struct model_workspace **w = realloc(am->ws_free, (size_t)cap * sizeof *w);
        if (w) {
            am->ws_free = w;
            am->ws_cap = cap;
        }
    }
    if (am->n_ws_free < am->ws_cap) {
        am->ws_free[am->n_ws_free++] = ws;
        ws = NULL;
    }
    pthread_mutex_unlock(&am->ws_mu);
    if (ws) {
        model_workspace_free(ws);
        free(ws);
    }
}

/* --- the upload explanation store ---------------------------------------- */

unsigned long long app_store_reserve(struct app *app)
{
    pthread_mutex_lock(&app->store_mu);
    unsigned long long n = ++app->store_next;
    pthread_mutex_unlock(&app->store_mu);
    return n;
}

void app_store_put(struct app *app, unsigned long long n, struct explanation *e)
{
    size_t slot = (size_t)((n - 1) % (unsigned long long)app->cfg.max_explanations);
    struct explanation *drop;
    pthread_mutex_lock(&app->store_mu);
    if (app->store[slot] && app->store_num[slot] > n) {
        drop = e; /* a newer one already took the slot */
    } else {
        drop = app->store[slot];
        app->store[slot] = e;
        app->store_num[slot] = n;
    }
    pthread_mutex_unlock(&app->store_mu);
    explanation_unref(drop);
}

struct explanation *app_explanation_get(struct app *app, const char *id)
{
    struct explanation *e = NULL;
    char *end;
    if (id[0] == 'e' && id[1] >= '1' && id[1] <= '9') {
        errno = 0;
        unsigned long long n = strtoull(id + 1, &end, 10);
        if (errno || *end)
            return NULL;
        size_t slot = (size_t)((n - 1) % (unsigned long long)app->cfg.max_explanations);
        pthread_mutex_lock(&app->store_mu);
        if (app->store[slot] && app->store_num[slot] == n) {
            e = app->store[slot];
            atomic_fetch_add(&e->refs, 1);
        }
        pthread_mutex_unlock(&app->store_mu);
        return e;
    }
    /* A dataset image's: "<model>~<index>" (model ids never hold '~'). */
    const char *tilde = strrchr(id, '~');
    if (!tilde || tilde == id || tilde[1] < '0' || tilde[1] > '9')
        return NULL;
    char model[64];
    size_t ml = (size_t)(tilde - id);
    if (ml >= sizeof model)
        return NULL;
    memcpy(model, id, ml);
    model[ml] = '\0';
    struct app_model *am = app_model_get(app, model);
    if (!am || atomic_load_explicit(&am->state, memory_order_acquire) != APP_READY) {
        app_model_put(am);
        return NULL;
    }
    int i = analysis_parse_index(tilde + 1, am->a.n);
    e = i < 0 ? NULL : app_image_explanation_get(app, am, i);
    app_model_put(am);
    return e;
}

struct explanation *app_image_explanation_get(struct app *app, struct app_model *am, int i)
{
    pthread_mutex_lock(&app->store_mu);
    struct explanation *e = am->expl[i];
    if (e)
        atomic_fetch_add(&e->refs, 1);
    pthread_mutex_unlock(&app->store_mu);
    return e;
}

struct explanation *app_image_explanation_put(struct app *app, struct app_model *am, int i,
                                              struct explanation *e)
{
    struct explanation *drop = NULL, *serve;
    pthread_mutex_lock(&app->store_mu);
    if (am->expl[i]) {
        drop = e; /* computed twice at once: keep the first */
        serve = am->expl[i];
    } else {
        size_t slot = app->img_next++ % (size_t)app->cfg.max_image_explanations;
        drop = app->img_ring[slot];
        if (drop && drop->owner) /* NULL: its model was deleted */
            drop->owner->expl[drop->index] = NULL;
        e->owner = am;
        e->index = i;
        app->img_ring[slot] = e;
        am->expl[i] = e;
        serve = e;
    }
    atomic_fetch_add(&serve->refs, 1);
    pthread_mutex_unlock(&app->store_mu);
    explanation_unref(drop);
    return serve;
}
