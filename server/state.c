/*
 * state.c — the names of the states, the configuration's defaults, the log
 * and the clock every part of the app uses.
 */
#include "state.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataset.h"

double app_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void app_logf(const struct app *app, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    FILE *f = app->cfg.log ? app->cfg.log : stderr;
    fputs("strata serve: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    va_end(ap);
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
