/*
 * test_conformance.c — ONNX's own backend test cases, as Debian's
 * libonnx-testdata installs them: one TAP line per case. A case passes when
 * every output matches ONNX's reference at rtol 1e-3, atol 1e-7; a case that
 * needs what strata does not support (an op, 1-D/3-D convolution,
 * training-mode dropout, a non-float tensor type) is skipped with that reason;
 * anything else fails.
 */
#include "check.h"
#include "conformance.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TESTDATA "/usr/share/libonnx-testdata/data"

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_suite(const char *suite)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", TESTDATA, suite);
    DIR *d = opendir(dir);
    if (!d) {
        SKIP(suite, "libonnx-testdata is not installed (scripts/setup --test installs it)");
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, names[i]);
        if (access(path, F_OK) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            struct conformance_result r;
            conformance_run(path, &r);
            check_count++;
            if (r.verdict == CONFORMANCE_PASS) {
                printf("ok %d - %s/%s\n", check_count, suite, names[i]);
            } else if (r.verdict == CONFORMANCE_SKIP) {
                printf("ok %d - %s/%s # SKIP %s\n", check_count, suite, names[i], r.reason);
            } else {
                check_failed_total++;
                printf("not ok %d - %s/%s\n#   %s\n", check_count, suite, names[i], r.reason);
            }
        }
        free(names[i]);
    }
    free(names);
}

int main(void)
{
    run_suite("node");
    run_suite("pytorch-converted");
    run_suite("pytorch-operator");
    run_suite("simple");
    return check_done();
}
