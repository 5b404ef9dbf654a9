/*
 * analyser.c — the analysis thread: what it does next, the analyses, the
 * doubt calibrations and evaluations, their progress (see analyser.h).
 */
#include "analyser.h"

#include <stdlib.h>
#include <string.h>

#include "progress.h"
#include "publish.h"
#include "registry.h"

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

static void analyse_one(struct app *app, struct app_model *am)
{
    char err[STRATA_ERR_LEN];
    struct analysis_params p;
    analysis_params_default(&p);
    publish_state(app, am, APP_ANALYSING, NULL);
    app_logf(app, "%s: analysing %s/%s/%s", am->id, am->data_root, am->m.dataset, p.split);
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
        app_logf(app, "%s: %s", am->id, am->a.cache_note);
    if (rc == 0 && (rc = publish_ready(app, am, err)) < 0)
        app_model_release_ready(am);
    am->analysis_wall = (app_now_ms() - t0) / 1e3;
    if (rc < 0) {
        app_logf(app, "%s: analysis failed: %s", am->id, err);
        publish_state(app, am, APP_FAILED, err);
        return;
    }
    app_logf(app, "%s: ready — %d images, accuracy %.1f %%, %d distinct paths, %s in %.2f s",
             am->id, am->a.n, 100 * am->a.accuracy, am->a.n_paths,
             am->a.cached ? "loaded from the cache" : "computed", am->analysis_wall);
    publish_state(app, am, APP_READY, NULL);
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
        app_logf(app, "%s", am->doubt_note);
        publish_doubt(app, am, NULL);
    } else {
        if (dm->cache_note[0])
            app_logf(app, "%s: %s", am->id, dm->cache_note);
        app_logf(app, "%s: doubt %s in %.2f s (%d reference, %d calibration images)", am->id,
                 dm->cached ? "loaded from the cache" : "calibrated", (app_now_ms() - t0) / 1e3,
                 dm->n_ref, dm->n_cal);
        publish_doubt(app, am, dm);
    }
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
    if (rc == 0 && !(b = publish_doubt_eval_blob(app, &r)))
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory serialising the evaluation");
    doubt_report_free(&r);
    if (rc < 0) {
        snprintf(am->doubt_eval_note, sizeof am->doubt_eval_note,
                 "no doubt evaluation for %s: %.400s", am->id, err);
        app_logf(app, "%s", am->doubt_eval_note);
        publish_doubt_eval(app, am, NULL);
    } else {
        app_logf(app, "%s: doubt evaluated in %.2f s", am->id, (app_now_ms() - t0) / 1e3);
        publish_doubt_eval(app, am, b);
    }
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
        case WORK_NO_DOUBT: publish_no_doubt(app, am); break;
        case WORK_EVALUATE: evaluate_doubt(app, am); break;
        case WORK_NONE: break;
        }
        app_model_put(am);
    }
}

int analyser_start(struct app *app, char *err)
{
    if (pthread_create(&app->analyser, NULL, analyser_main, app) != 0)
        return strata_fail(err, STRATA_E_NOMEM, "cannot start the analysis thread");
    app->analyser_started = 1;
    return 0;
}

void analyser_wake(struct app *app)
{
    pthread_mutex_lock(&app->mu);
    pthread_cond_broadcast(&app->work);
    pthread_mutex_unlock(&app->mu);
}

void analyser_stop(struct app *app)
{
    atomic_store(&app->stopping, 1);
    if (app->analyser_started) {
        analyser_wake(app);
        pthread_join(app->analyser, NULL);
        app->analyser_started = 0;
    }
}
