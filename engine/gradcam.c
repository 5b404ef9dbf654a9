/*
 * gradcam.c — Grad-CAM (see gradcam.h).
 */
#include "gradcam.h"

#include <stdlib.h>
#include <string.h>

/* Source index and weight of the next one for output position i. */
static void bilinear_tap(int i, int src_n, int dst_n, int *i0, int *i1, float *t)
{
    float s = ((float)i + 0.5f) * (float)src_n / (float)dst_n - 0.5f;
    if (s < 0)
        s = 0;
    int a = (int)s;
    if (a > src_n - 1)
        a = src_n - 1;
    *i0 = a;
    *i1 = a + 1 < src_n ? a + 1 : a;
    *t = s - (float)a;
    if (*i1 == a)
        *t = 0;
}

void gradcam_upsample(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    for (int y = 0; y < dh; y++) {
        int y0, y1;
        float ty;
        bilinear_tap(y, sh, dh, &y0, &y1, &ty);
        for (int x = 0; x < dw; x++) {
            int x0, x1;
            float tx;
            bilinear_tap(x, sw, dw, &x0, &x1, &tx);
            float top = src[y0 * sw + x0] * (1 - tx) + src[y0 * sw + x1] * tx;
            float bottom = src[y1 * sw + x0] * (1 - tx) + src[y1 * sw + x1] * tx;
            dst[y * dw + x] = top * (1 - ty) + bottom * ty;
        }
    }
}

int gradcam_compute(struct model_grad *mg, const float *x, int cls, int layer, float *map,
                    char *err)
{
    int rc = model_grad_run(mg, x, 1, &cls, err);
    if (rc < 0)
        return rc;
    const struct tview *a = model_grad_value(mg, layer), *da = model_grad_gradient(mg, layer);
    if (!da->data)
        return strata_fail(err, STRATA_E_ARG, "value '%s' does not lead to the class scores",
                           mg->g->values[layer].name);
    const int C = (int)a->dims[1], h = (int)a->dims[2], w = (int)a->dims[3], hw = h * w;
    float *cam = calloc((size_t)hw, sizeof *cam);
    if (!cam)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for Grad-CAM");
    const float *A = tview_f(a), *dA = tview_f(da);
    for (int k = 0; k < C; k++) {
        double alpha = 0;
        for (int p = 0; p < hw; p++)
            alpha += dA[(size_t)k * hw + p];
        alpha /= hw;
        for (int p = 0; p < hw; p++)
            cam[p] += (float)alpha * A[(size_t)k * hw + p];
    }
    for (int p = 0; p < hw; p++)
        cam[p] = cam[p] > 0 ? cam[p] : 0;
    gradcam_upsample(cam, h, w, map, mg->h, mg->w);
    free(cam);
    return 0;
}
