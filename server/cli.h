/*
 * cli.h — what the `strata` sub-commands share: option conventions, opening
 * a model and a dataset split, and reporting errors.
 *
 * Exit codes: 0 success, 1 failure (message on stderr), 2 usage error.
 */
#ifndef STRATA_CLI_H
#define STRATA_CLI_H

#include <signal.h>
#include <stdint.h>

#include "dataset.h"
#include "model.h"
#include "progress.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

/* The command table (main.c) — used by `strata --help`. */
extern const struct command strata_commands[];

int cmd_predict(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_doubt_eval(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_onnx_test(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);

/* Folder of the models: the flag if given, else $STRATA_MODELS, else "models". */
const char *cli_models_root(const char *flag);

/* Sets the OpenBLAS and the engine loops' (parallel.h) thread count when threads > 0;
 * returns the BLAS count in use. */
int cli_set_threads(int threads);

/* Prints "strata <cmd>: <message>" to stderr and returns EXIT_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a usage error and the hint to run --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a positive integer option value; returns 0 and *out, or -1. */
int cli_parse_int(const char *s, int lo, int hi, int *out);

/* Parses three comma-separated numbers ("0.485,0.456,0.406", a --mean or
 * --std), each positive when `positive`; returns 0 and out, or -1. */
int cli_parse_triple(const char *s, double out[3], int positive);

/* Ctrl-C during a long command: cli_catch_sigint clears cli_stop_requested
 * and installs a handler that sets it (the command stops cleanly at its
 * next check); a second Ctrl-C ends the process the usual way.
 * cli_release_sigint restores the default. */
extern volatile sig_atomic_t cli_stop_requested;
void cli_catch_sigint(void);
void cli_release_sigint(void);

/* Progress of an engine call with stages (an analysis_progress_fn): one bar
 * per stage on a terminal, none when quiet. End with progress_end(&v.bar). */
struct cli_stages {
    struct progress bar;
    char stage[32];
    int quiet;
};

/* The callback: user is a struct cli_stages. Returns cli_stop_requested
 * (nonzero asks the engine to stop). */
int cli_show_stages(void *user, const char *stage, long done, long total);

/* Opens a dataset split for the model and decodes it at the model's input
 * size into *pixels (malloc'd, caller frees). Checks that the dataset's
 * classes are the model's, in order. Shows progress on a terminal. Skipped
 * files are reported on stderr. Returns 0 or a negative status with err. */
int cli_load_split(const struct model *m, const char *data_root, const char *split,
                   struct dataset *ds, uint8_t **pixels, int quiet, char *err);

#endif
