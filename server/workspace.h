/*
 * workspace.h — the folder that models imported through the API live in:
 * <workspace>/models/<id> (their model folders), <workspace>/data/<id>
 * (their uploaded images) and <workspace>/.incoming (imports in progress),
 * and removing what an import or a deleted model leaves.
 *
 * Plain file operations: nothing here knows the app.
 */
#ifndef STRATA_WORKSPACE_H
#define STRATA_WORKSPACE_H

/* Creates <workspace>/{models,data,.incoming} as needed and empties
 * .incoming (imports a stopped server left half done). Returns 0 or
 * STRATA_E_IO with err. */
int app_workspace_prepare(const char *workspace, char *err);

/* Removes a folder and everything under it; links are removed, never
 * followed. Failures are ignored (what is left stays). */
void app_remove_tree(const char *path);

#endif
