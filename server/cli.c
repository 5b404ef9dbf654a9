/* cli.c — helpers shared by the sub-commands (see cli.h). */
#include "cli.h"
#include "parallel.h"

#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

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

int cli_parse_triple(const char *s, double out[3], int positive)
{
    char *end;
    for (int i = 0; i < 3; i++) {
        errno = 0;
        out[i] = strtod(s, &end);
        if (end == s || errno || (positive && !(out[i] > 0)) || out[i] != out[i])
            return -1;
        s = end;
        if (i < 2 && *s++ != ',')
            return -1;
    }
    return *s ? -1 : 0;
}

volatile sig_atomic_t cli_stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
    /* A second Ctrl-C ends the process the usual way. */
    signal(SIGINT, SIG_DFL);
}

void cli_catch_sigint(void)
{
    cli_stop_requested = 0;
    signal(SIGINT, on_sigint);
}

void cli_release_sigint(void)
{
    signal(SIGINT, SIG_DFL);
}

int cli_show_stages(void *user, const char *stage, long done, long total)
{
    struct cli_stages *v = user;
    if (!v->quiet) {
        if (strcmp(stage, v->stage) != 0) {
            progress_end(&v->bar);
            snprintf(v->stage, sizeof v->stage, "%s", stage);
            progress_begin(&v->bar, v->stage);
        }
        progress_update(&v->bar, done, total, NULL);
    }
    return cli_stop_requested != 0;
}

int cli_load_split(const struct model *m, const char *data_root, const char *split,
                   struct dataset *ds, uint8_t **pixels, int quiet, char *err)
{
    *pixels = NULL;
    int rc = analysis_open_split(m, data_root, split, ds, err);
    if (rc < 0)
        return rc;
    struct cli_stages v = {.quiet = quiet};
    rc = analysis_load_pixels(m, ds, pixels, cli_show_stages, &v, err);
    progress_end(&v.bar);
    if (rc < 0) {
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
