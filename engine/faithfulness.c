/*
 * faithfulness.c — deletion and insertion curves (see faithfulness.h).
 */
#include "faithfulness.h"

#include <stdlib.h>
#include <string.h>

#include "infer.h"

float faith_blur_sigma(int side)
{
    /* RISE blurs 224-pixel images with σ = 5 */
    float s = 5.0f * (float)side / 224.0f;
    return s < 1 ? 1 : s;
}

double faith_auc(const float *curve)
{
    double a = 0;
    for (int k = 0; k < FAITH_STEPS; k++)
        a += 0.5 * ((double)curve[k] + curve[k + 1]);
    return a / FAITH_STEPS;
}

struct ranked {
    float value;
    int pixel;
};

/* Largest first; equal values in reading order (a total order: stable). */
static int by_value_desc(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->value != y->value)
        return x->value > y->value ? -1 : 1;
    return (x->pixel > y->pixel) - (x->pixel < y->pixel);
}

int faith_compute(struct model *m, struct model_workspace *ws, const uint8_t *rgb,
                  const uint8_t *blurred, int cls, const float *map, struct faith_result *r,
                  char *err)
{
    const int HW = m->input.h * m->input.w, K = m->n_classes, n = 2 * (FAITH_STEPS + 1);
    const size_t img_bytes = (size_t)HW * 3;
    struct ranked *order = malloc((size_t)HW * sizeof *order);
    uint8_t *imgs = malloc((size_t)n * img_bytes);
    float *probs = malloc((size_t)n * K * sizeof *probs);
    int rc = 0;
    if (!order || !imgs || !probs) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for the deletion and insertion curves");
        goto done;
    }
    for (int q = 0; q < HW; q++)
        order[q] = (struct ranked){map[q], q};
    qsort(order, (size_t)HW, sizeof *order, by_value_desc);
    for (int k = 0; k <= FAITH_STEPS; k++) {
        uint8_t *del = imgs + (size_t)k * img_bytes;
        uint8_t *ins = imgs + (size_t)(FAITH_STEPS + 1 + k) * img_bytes;
        memcpy(del, rgb, img_bytes);
        memcpy(ins, blurred, img_bytes);
        int taken = (int)((long long)HW * k / FAITH_STEPS);
        for (int t = 0; t < taken; t++) {
            size_t q = (size_t)order[t].pixel * 3;
            memset(del + q, 0, 3);
            memcpy(ins + q, rgb + q, 3);
        }
    }
    if ((rc = infer_images(m, ws, imgs, n, probs, NULL, NULL)) < 0)
        goto done;
    for (int k = 0; k <= FAITH_STEPS; k++) {
        r->deletion[k] = probs[(size_t)k * K + cls];
        r->insertion[k] = probs[(size_t)(FAITH_STEPS + 1 + k) * K + cls];
    }
    r->deletion_auc = faith_auc(r->deletion);
    r->insertion_auc = faith_auc(r->insertion);
done:
    free(order);
    free(imgs);
    free(probs);
    return rc;
}
