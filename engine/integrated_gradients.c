/*
 * integrated_gradients.c — Integrated Gradients (see integrated_gradients.h).
 */
#include "integrated_gradients.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ig_compute(struct model_grad *mg, const float *x, const float *baseline, int cls, int steps,
               float *map, struct ig_result *r, char *err)
{
    if (steps < 1)
        return strata_fail(err, STRATA_E_ARG, "Integrated Gradients needs at least 1 step");
    const size_t n_in = 3 * (size_t)mg->h * (size_t)mg->w, HW = n_in / 3;
    const int B = mg->max_batch, K = mg->n_classes;
    float *xs = malloc((size_t)B * n_in * sizeof *xs);
    double *avg = calloc(n_in, sizeof *avg);
    int *classes = malloc((size_t)B * sizeof *classes);
    if (!xs || !avg || !classes) {
        free(xs);
        free(avg);
        free(classes);
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for Integrated Gradients");
    }
    for (int i = 0; i < B; i++)
        classes[i] = cls;
    int rc = 0;
    for (int first = 0; first <= steps && rc == 0; first += B) {
        int n = steps + 1 - first < B ? steps + 1 - first : B;
        for (int i = 0; i < n; i++) {
            float alpha = (float)(first + i) / (float)steps;
            float *xi = xs + (size_t)i * n_in;
            for (size_t j = 0; j < n_in; j++)
                xi[j] = baseline[j] + alpha * (x[j] - baseline[j]);
        }
        if ((rc = model_grad_run(mg, xs, n, classes, err)) < 0)
            break;
        const float *g = tview_f(model_grad_gradient(mg, mg->input));
        const float *logits = model_grad_logits(mg);
        for (int i = 0; i < n; i++) {
            int point = first + i;
            double weight = point == 0 || point == steps ? 0.5 : 1.0;
            const float *gi = g + (size_t)i * n_in;
            for (size_t j = 0; j < n_in; j++)
                avg[j] += weight * gi[j];
            if (point == 0)
                r->f_baseline = logits[(size_t)i * K + cls];
            if (point == steps)
                r->f_input = logits[(size_t)i * K + cls];
        }
    }
    if (rc == 0) {
        double sum = 0;
        for (size_t p = 0; p < HW; p++) {
            double a = 0;
            for (int c = 0; c < 3; c++) {
                size_t j = c * HW + p;
                a += (double)(x[j] - baseline[j]) * avg[j] / steps;
            }
            map[p] = (float)a;
            sum += a;
        }
        double delta = r->f_input - r->f_baseline;
        r->sum = sum;
        r->completeness = delta != 0 ? fabs(sum - delta) / fabs(delta) : fabs(sum);
    }
    free(xs);
    free(avg);
    free(classes);
    return rc;
}
