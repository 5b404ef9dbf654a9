/*
 * occlusion.c — attribution by occlusion (see occlusion.h).
 */
#include "occlusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"

int occlusion_default_patch(int side)
{
    int p = (side + 3) / 6;
    return p < 1 ? 1 : p;
}

/* Patch origins along a side: 0, stride, ... and side − patch. */
static int positions(int side, int patch, int stride, int *out)
{
    int n = 0;
    for (int o = 0; o + patch <= side; o += stride)
        out[n++] = o;
    if (out[n - 1] + patch < side)
        out[n++] = side - patch;
    return n;
}

int occlusion_compute(struct model *m, struct model_workspace *ws, const uint8_t *rgb, int cls,
                      int patch, int stride, float *map, char *err)
{
    const int H = m->input.h, W = m->input.w, K = m->n_classes;
    if (patch < 1 || patch > H || patch > W || stride < 1)
        return strata_fail(err, STRATA_E_ARG,
                           "occlusion: the patch must be 1 to %d pixels and the stride at least 1 "
                           "(got %d and %d)",
                           H < W ? H : W, patch, stride);
    const size_t img_bytes = (size_t)H * W * 3;
    const int B = ws->max_batch;
    int *ys = malloc((size_t)(H + 1) * sizeof *ys), *xs = malloc((size_t)(W + 1) * sizeof *xs);
    uint8_t *batch = malloc((size_t)B * img_bytes);
    float *probs = malloc((size_t)B * K * sizeof *probs);
    float *count = calloc((size_t)H * W, sizeof *count);
    int rc = 0;
    if (!ys || !xs || !batch || !probs || !count) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory for occlusion");
        goto done;
    }
    uint8_t fill[3];
    for (int c = 0; c < 3; c++)
        fill[c] = (uint8_t)lrintf(fminf(fmaxf(m->mean[c] * 255.0f, 0), 255));
    int ny = positions(H, patch, stride, ys), nx = positions(W, patch, stride, xs);
    int total = ny * nx;
    float p0;
    if ((rc = infer_images(m, ws, rgb, 1, probs, NULL, NULL)) < 0)
        goto done;
    p0 = probs[cls];
    memset(map, 0, (size_t)H * W * sizeof *map);
    for (int first = 0; first < total; first += B) {
        int n = total - first < B ? total - first : B;
        for (int i = 0; i < n; i++) {
            uint8_t *img = batch + (size_t)i * img_bytes;
            int oy = ys[(first + i) / nx], ox = xs[(first + i) % nx];
            memcpy(img, rgb, img_bytes);
            for (int y = oy; y < oy + patch; y++)
                for (int x = ox; x < ox + patch; x++)
                    memcpy(img + ((size_t)y * W + x) * 3, fill, 3);
        }
        if ((rc = infer_images(m, ws, batch, n, probs, NULL, NULL)) < 0)
            goto done;
        for (int i = 0; i < n; i++) {
            int oy = ys[(first + i) / nx], ox = xs[(first + i) % nx];
            float drop = p0 - probs[(size_t)i * K + cls];
            for (int y = oy; y < oy + patch; y++)
                for (int x = ox; x < ox + patch; x++) {
                    map[y * W + x] += drop;
                    count[y * W + x] += 1;
                }
        }
    }
    for (int q = 0; q < H * W; q++)
        map[q] /= count[q];
done:
    free(ys);
    free(xs);
    free(batch);
    free(probs);
    free(count);
    return rc;
}
