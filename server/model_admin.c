/*
 * model_admin.c — models added, reloaded and deleted while serving (see
 * model_admin.h).
 */
#include "model_admin.h"

#include <stdio.h>
#include <string.h>

#include "analyser.h"
#include "publish.h"
#include "registry.h"
#include "workspace.h"

int app_add_model(struct app *app, const char *dir, const char *data_root, int uploaded,
                  char *err)
{
    struct app_model *am = app_model_load(app, dir, data_root, uploaded);
    if (!am)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    int rc = registry_add(app, am);
    if (rc < 0) {
        rc = rc == STRATA_E_ARG ? strata_fail(err, rc, "a model named %s already exists", am->id)
                                : strata_fail(err, rc, "out of memory");
        app_model_put(am);
        return rc;
    }
    if (atomic_load(&am->state) == APP_FAILED)
        app_logf(app, "%s: %s", am->id, am->error);
    publish_state(app, am, atomic_load(&am->state), NULL);
    analyser_wake(app);
    return 0;
}

int app_reload_model(struct app *app, const char *id, char *err)
{
    struct app_model *old = app_model_get(app, id);
    if (!old)
        return strata_fail(err, STRATA_E_NOTFOUND, "no model named \"%.100s\"", id);
    struct app_model *am = app_model_load(app, old->dir, old->data_root, old->uploaded);
    if (!am) {
        app_model_put(old);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    }
    if (!registry_replace(app, old, am)) { /* deleted meanwhile */
        app_model_put(am);
        app_model_put(old);
        return strata_fail(err, STRATA_E_NOTFOUND, "model %s was deleted", id);
    }
    atomic_store(&old->deleted, 1); /* its analysis stops */
    app_logf(app, "%s: loaded again from %s", am->id, am->dir);
    publish_state(app, am, atomic_load(&am->state), NULL);
    analyser_wake(app);
    app_model_put(old); /* the registry's reference */
    app_model_put(old); /* ours */
    return 0;
}

int app_delete_model(struct app *app, const char *id, char *err)
{
    struct app_model *am;
    int rc = registry_remove_uploaded(app, id, &am, err);
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
    app_logf(app, "%s: deleted", am->id);
    publish_state(app, NULL, 0, NULL);
    app_model_put(am);
    return 0;
}
