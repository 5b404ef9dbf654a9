/*
 * app.c — the app put together: its parts started and stopped in order,
 * and the API's replies wired into publication (see app.h).
 */
#include "app.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyser.h"
#include "expl_store.h"
#include "jobs.h"
#include "publish.h"
#include "registry.h"

/* The replies publication stores, built by the API's resources. */
static const struct app_replies api_replies = {
    .model_detail = api_model_detail,
    .models_list = api_models_list_blob,
    .layers = api_layers_precompute,
    .paths = api_paths_precompute,
    .doubt_eval = api_doubt_eval_blob,
};

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
    pthread_mutex_init(&app->imports_mu, NULL);
    pthread_rwlock_init(&app->models_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&app->work, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&app->models_list, NULL);
    atomic_init(&app->stopping, 0);

    app->replies = &api_replies;

    int rc = expl_store_new(cfg->max_explanations, cfg->max_image_explanations, &app->store);
    app->openapi = api_openapi_blob();
    if (rc < 0 || !app->openapi)
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = registry_load_folder(app, app->models_root, 0, 1, err);
    if (rc == 0 && app->workspace[0]) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/models", app->workspace);
        rc = registry_load_folder(app, dir, 1, 0, err);
    }
    if (rc == 0)
        rc = jobs_new(cfg->workers, cfg->max_queue, &app->jobs, err);
    for (int i = 0; rc == 0 && i < app->n_models; i++) {
        struct app_model *am = app->models[i];
        if (atomic_load(&am->state) == APP_FAILED)
            app_logf(app, "%s: %s", am->id, am->error);
        if (publish_state(app, am, atomic_load(&am->state), NULL) < 0)
            rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    if (rc == 0 && app->n_models == 0 &&
        publish_state(app, NULL, 0, NULL) < 0) /* the empty models list */
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory");
    if (rc < 0) {
        app_free(app);
        return rc;
    }
    *out = app;
    return 0;
}

int app_start_analyses(struct app *app, char *err)
{
    return analyser_start(app, err);
}

void app_free(struct app *app)
{
    if (!app)
        return;
    analyser_stop(app);
    jobs_free(app->jobs);
    for (int i = 0; i < app->n_models; i++)
        app_model_put(app->models[i]); /* the registry's reference, the last one now */
    free(app->models);
    expl_store_free(app->store); /* after the models: they point into it */
    publish_free(app);
    free(app->openapi);
    pthread_mutex_destroy(&app->mu);
    pthread_mutex_destroy(&app->imports_mu);
    pthread_rwlock_destroy(&app->models_lock);
    pthread_cond_destroy(&app->work);
    free(app);
}
