/* cli.c — helpers shared by the sub-commands (see cli.h). */
#include "cli.h"
#include "parallel.h"

#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "progress.h"

const char *cli_models_root(const char *flag)
{
    if (flag && *flag)
        return flag;
    const char *env = getenv("STRATA_MODELS");
    return env && *env ? env : "models";
}

int cli_set_threads(int threads)
{
    /* The engine's own loops (parallel.h) use as many threads as the BLAS. */
    if (threads > 0) {
        openblas_set_num_threads(threads);
        parallel_set_threads(threads);
    }
    return openblas_get_num_threads();
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "strata %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "strata %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nRun 'strata %s --help' for usage.\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static void load_progress(int done, int total, void *user)
{
    progress_update(user, done, total, NULL);
}

int cli_load_split(const struct model *m, const char *data_root, const char *split,
                   struct dataset *ds, uint8_t **pixels, int quiet, char *err)
{
    *pixels = NULL;
    int rc = dataset_open(ds, data_root, m->dataset, split, err);
    if (rc < 0)
        return rc;
    int same = ds->n_classes == m->n_classes;
    for (int c = 0; same && c < m->n_classes; c++)
        same = strcmp(ds->classes[c], m->classes[c]) == 0;
    if (!same) {
        char have[512] = "", want[512] = "";
        for (int c = 0; c < ds->n_classes; c++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", c ? ", " : "", ds->classes[c]);
        for (int c = 0; c < m->n_classes; c++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", c ? ", " : "", m->classes[c]);
        rc = strata_fail(err, STRATA_E_ARG, "%s has classes [%s] but model %s expects [%s]",
                         ds->dir, have, m->id, want);
        dataset_free(ds);
        return rc;
    }
    size_t per = shape_size(m->input);
    *pixels = malloc((size_t)ds->n * per);
    if (!*pixels) {
        dataset_free(ds);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for %d images", ds->n);
    }
    struct progress p;
    progress_begin(&p, "loading images");
    if (quiet)
        p.enabled = 0;
    rc = dataset_load_images(ds, m->input.w, m->input.h, *pixels, load_progress, &p, err);
    progress_end(&p);
    if (rc < 0) {
        free(*pixels);
        *pixels = NULL;
        dataset_free(ds);
        return rc;
    }
    for (int i = 0; i < ds->n_skipped; i++)
        fprintf(stderr, "skipped %s\n", ds->skipped[i]);
    if (ds->n == 0) {
        free(*pixels);
        *pixels = NULL;
        rc = strata_fail(err, STRATA_E_IO, "no readable image in %s", ds->dir);
        dataset_free(ds);
        return rc;
    }
    return 0;
}
