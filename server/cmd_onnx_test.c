/*
 * cmd_onnx_test.c — `strata onnx-test DIR...`: runs ONNX backend test cases
 * (conformance.h) and prints one line per case, then a count per op and a
 * summary.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "conformance.h"

static const char *const onnx_test_help =
    "Usage: strata onnx-test DIR... [options]\n\n"
    "Runs ONNX backend test cases: each DIR is a case (a folder with model.onnx and\n"
    "test_data_set_0/) or a folder of cases, such as Debian's libonnx-testdata\n"
    "(/usr/share/libonnx-testdata/data/node). Prints PASS, FAIL or SKIP per case\n"
    "(with the reason), the counts per op, and a summary. Outputs are compared with\n"
    "ONNX's reference at rtol 1e-3, atol 1e-7.\n\n"
    "  --quiet     print only failures and the summary\n"
    "  --threads N BLAS threads\n\n"
    "Exit status: 0 when no case failed, 1 otherwise.\n";

#define MAX_OPS 128

struct op_count {
    char name[48];
    int pass, fail;
};

struct tally {
    int pass, fail, skip;
    struct op_count ops[MAX_OPS];
    int n_ops;
    int quiet;
};

static void count_ops(struct tally *t, const struct conformance_result *r)
{
    char list[sizeof r->ops];
    snprintf(list, sizeof list, "%s", r->ops);
    for (char *save = NULL, *op = strtok_r(list, ",", &save); op; op = strtok_r(NULL, ",", &save)) {
        int i = 0;
        while (i < t->n_ops && strcmp(t->ops[i].name, op))
            i++;
        if (i == t->n_ops) {
            if (t->n_ops == MAX_OPS)
                continue;
            snprintf(t->ops[t->n_ops++].name, sizeof t->ops[0].name, "%s", op);
        }
        t->ops[i].pass += r->verdict == CONFORMANCE_PASS;
        t->ops[i].fail += r->verdict == CONFORMANCE_FAIL;
    }
}

static void run_case(struct tally *t, const char *dir)
{
    struct conformance_result r;
    conformance_run(dir, &r);
    static const char *const word[] = {"PASS", "FAIL", "SKIP"};
    if (!t->quiet || r.verdict == CONFORMANCE_FAIL) {
        if (r.verdict == CONFORMANCE_PASS)
            printf("PASS %s (max error %.3g)\n", dir, r.max_error);
        else
            printf("%s %s: %s\n", word[r.verdict], dir, r.reason);
    }
    t->pass += r.verdict == CONFORMANCE_PASS;
    t->fail += r.verdict == CONFORMANCE_FAIL;
    t->skip += r.verdict == CONFORMANCE_SKIP;
    count_ops(t, &r);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A case folder, or a folder of cases (sorted by name). */
static int run_dir(struct tally *t, const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    if (access(path, F_OK) == 0) {
        run_case(t, dir);
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/model.onnx", dir, e->d_name);
        if (access(path, F_OK) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            char **p = realloc(names, cap * sizeof *names);
            if (!p)
                break;
            names = p;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (names[i]) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            run_case(t, path);
        }
        free(names[i]);
    }
    free(names);
    return 0;
}

static int by_op(const void *a, const void *b)
{
    return strcmp(((const struct op_count *)a)->name, ((const struct op_count *)b)->name);
}

int cmd_onnx_test(int argc, char **argv)
{
    static const struct option opts[] = {{"quiet", no_argument, 0, 'q'},
                                         {"threads", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int threads = 0, c;
    static struct tally t;
    memset(&t, 0, sizeof t);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hq", opts, NULL)) != -1) {
        switch (c) {
        case 'q': t.quiet = 1; break;
        case 'T':
            if (cli_parse_int(optarg, 1, 256, &threads))
                return cli_usage_error("onnx-test", "--threads expects a positive integer, got '%s'", optarg);
            break;
        case 'h': fputs(onnx_test_help, stdout); return EXIT_OK;
        case ':': return cli_usage_error("onnx-test", "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("onnx-test", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return cli_usage_error("onnx-test", "expected at least one test case folder");
    cli_set_threads(threads);
    for (int i = optind; i < argc; i++)
        if (run_dir(&t, argv[i]) < 0)
            return cli_fail("onnx-test", "%s: neither a test case nor a folder of test cases",
                            argv[i]);
    qsort(t.ops, (size_t)t.n_ops, sizeof t.ops[0], by_op);
    /* a skipped case is usually one whose model did not load, so its ops are
     * not known: the table counts the cases that ran */
    printf("\ncases run, per op used: passed / failed\n");
    for (int i = 0; i < t.n_ops; i++)
        if (t.ops[i].pass || t.ops[i].fail)
            printf("  %-22s %4d %4d\n", t.ops[i].name, t.ops[i].pass, t.ops[i].fail);
    printf("\n%d passed, %d failed, %d skipped\n", t.pass, t.fail, t.skip);
    return t.fail ? EXIT_FAIL : EXIT_OK;
}
