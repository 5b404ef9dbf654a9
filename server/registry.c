/*
 * registry.c — model entries: loading a folder into one, the array of them
 * under its lock, references, and freeing an entry with what it holds.
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expl_store.h"

/* --- loading ------------------------------------------------------------- */

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
    atomic_init(&am->refs, 1); /* the caller's, then the registry's */
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
            app_logf(app, "%s: card.json ignored: line %d: %s", am->id, je.line, je.text);
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

struct app_model *app_model_load(struct app *app, const char *dir, const char *data_root,
                                 int uploaded)
{
    struct app_model *am = calloc(1, sizeof *am);
    if (!am)
        return NULL;
    load_model(app, am, dir);
    am->uploaded = uploaded;
    snprintf(am->data_root, sizeof am->data_root, "%s", data_root);
    return am;
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

int registry_load_folder(struct app *app, const char *root, int uploaded, int required,
                         char *err)
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
            app_logf(app, "%s/%s: no model.json, skipped", root, e->d_name);
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
        char dir[1400], data_root[1024];
        snprintf(dir, sizeof dir, "%s/%s", root, names[i]);
        if (uploaded)
            uploaded_data_root(app, dir, data_root, sizeof data_root);
        else
            snprintf(data_root, sizeof data_root, "%s", app->data_root);
        struct app_model *am = app_model_load(app, dir, data_root, uploaded);
        if (!am) {
            rc = STRATA_E_NOMEM;
            break;
        }
        /* Two folders declaring the same id: the first (by folder name) wins. */
        rc = registry_add(app, am);
        if (rc == STRATA_E_ARG) {
            app_logf(app, "%s: model id %s is already used by another folder, skipped", am->dir,
                     am->id);
            rc = 0;
            app_model_put(am);
        } else if (rc < 0) {
            app_model_put(am);
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

/* --- the registry -------------------------------------------------------- */

int registry_add(struct app *app, struct app_model *am)
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

int registry_replace(struct app *app, struct app_model *old, struct app_model *am)
{
    int swapped = 0;
    pthread_rwlock_wrlock(&app->models_lock);
    for (int i = 0; i < app->n_models && !swapped; i++)
        if (app->models[i] == old) {
            app->models[i] = am;
            swapped = 1;
        }
    pthread_rwlock_unlock(&app->models_lock);
    return swapped;
}

int registry_remove_uploaded(struct app *app, const char *id, struct app_model **out,
                             char *err)
{
    struct app_model *am = NULL;
    int rc = 0;
    *out = NULL;
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
    *out = am;
    return rc;
}

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

void app_models_each(struct app *app, void (*fn)(struct app_model *am, void *user), void *user)
{
    pthread_rwlock_rdlock(&app->models_lock);
    for (int i = 0; i < app->n_models; i++)
        fn(app->models[i], user);
    pthread_rwlock_unlock(&app->models_lock);
}

/* --- references and freeing ---------------------------------------------- */

void app_model_release_ready(struct app_model *am)
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

/* Frees everything of a model that nobody uses any more. */
static void model_destroy(struct app_model *am)
{
    /* Dataset explanations in the ring outlive their model's slots. */
    expl_store_forget(am->app->store, am->expl);
    app_model_release_ready(am);
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

/* --- a model's inference workspaces -------------------------------------- */

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
    if (model_workspace_init(ws, &am->m, 1, err) < 0) {
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
