/*
 * bench_onnx.c — strata's forward pass of an ONNX file, in images per
 * second, for the side-by-side comparison with ONNX Runtime
 * (bench/onnx_vs_ort.sh runs both on the same file in the same run).
 *
 *   bench_onnx MODEL.onnx [--batch 1,16] [--threads 1,2] [--runs 7] [--warmup 2]
 *
 * Input: random floats in [-1, 1) of shape B x 3 x H x W, H and W from the
 * file (224 when it leaves them open). Each configuration prints one JSON
 * line: {"engine":"strata","model","batch","threads","images_per_s_median",
 * "images_per_s_min","images_per_s_max","runs":[...]}, the same shape as
 * bench/ort/ort_bench.mjs prints, so one script reads both.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "graph.h"
#include "onnx.h"
#include "parallel.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "1,16" -> {1, 16}; returns the count. */
static int parse_list(const char *s, int *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s)
            break;
        s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    int batches[8] = {1, 16}, nb = 2, threads[8] = {1, 2}, nt = 2, runs = 7, warmup = 2;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            nb = parse_list(argv[++i], batches, 8);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            nt = parse_list(argv[++i], threads, 8);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else
            file = argv[i];
    }
    if (!file || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_onnx MODEL.onnx [--batch 1,16] [--threads 1,2] [--runs 7] "
                        "[--warmup 2]\n");
        return 2;
    }
    char err[STRATA_ERR_LEN];
    struct graph g = {0};
    if (onnx_load(&g, file, err) < 0) {
        fprintf(stderr, "bench_onnx: %s\n", err);
        return 1;
    }
    const struct tview *decl = &g.values[g.inputs[0]].init;
    int64_t H = decl->ndim == 4 && decl->dims[2] > 0 ? decl->dims[2] : 224;
    int64_t W = decl->ndim == 4 && decl->dims[3] > 0 ? decl->dims[3] : 224;
    const char *name = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    for (int t = 0; t < nt; t++) {
        openblas_set_num_threads(threads[t]);
        parallel_set_threads(threads[t]);
        for (int b = 0; b < nb; b++) {
            int B = batches[b];
            struct tview x = {.dtype = DTYPE_FLOAT, .ndim = 4, .dims = {B, 3, H, W}};
            size_t n = (size_t)B * 3 * (size_t)(H * W);
            float *data = malloc(n * sizeof *data);
            uint64_t s = 88172645463325252ull;
            for (size_t i = 0; i < n; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                data[i] = (float)((s >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
            }
            x.data = data;
            struct graph_ws ws;
            if (graph_ws_init(&ws, &g, &x, 0, err) < 0) {
                fprintf(stderr, "bench_onnx: %s\n", err);
                return 1;
            }
            double *ips = malloc((size_t)runs * sizeof *ips);
            for (int r = 0; r < warmup + runs; r++) {
                double t0 = now();
                graph_run(&ws, &x, err);
                double dt = now() - t0;
                if (r >= warmup)
                    ips[r - warmup] = B / dt;
            }
            printf("{\"engine\":\"strata\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,"
                   "\"images_per_s_median\":",
                   name, B, threads[t]);
            double *sorted = malloc((size_t)runs * sizeof *sorted);
            memcpy(sorted, ips, (size_t)runs * sizeof *sorted);
            qsort(sorted, (size_t)runs, sizeof *sorted, cmp_double);
            double med = runs % 2 ? sorted[runs / 2] : 0.5 * (sorted[runs / 2 - 1] + sorted[runs / 2]);
            printf("%.2f,\"images_per_s_min\":%.2f,\"images_per_s_max\":%.2f,\"runs\":[", med,
                   sorted[0], sorted[runs - 1]);
            for (int r = 0; r < runs; r++)
                printf("%s%.2f", r ? "," : "", ips[r]);
            printf("]}\n");
            fflush(stdout);
            free(sorted);
            free(ips);
            graph_ws_free(&ws);
            free(data);
        }
    }
    graph_deinit(&g);
    return 0;
}
