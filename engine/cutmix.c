/* cutmix.c — pasting a rectangle of one training image into another (see cutmix.h). */
#include "cutmix.h"

#include <math.h>
#include <string.h>

void cutmix_batch(float *batch, float *copy, int n, int h, int w, int c, float p,
                  struct cutmix_pair *pairs, struct rng *r)
{
    for (int i = 0; i < n; i++)
        pairs[i] = (struct cutmix_pair){.partner = i, .keep = 1.0f};
    if (!(p > 0) || n < 2)
        return;
    size_t image = (size_t)h * w * c, row = (size_t)w * c;
    memcpy(copy, batch, (size_t)n * image * sizeof *batch);
    for (int i = 0; i < n; i++) {
        if (rng_uniform(r) >= p)
            continue;
        /* a partner other than i, uniform among the n - 1 others */
        int j = (int)rng_below(r, (uint64_t)(n - 1));
        j += j >= i;
        double cut = sqrt(1.0 - rng_uniform(r)); /* √(1 − λ) */
        int bh = (int)lround(cut * h), bw = (int)lround(cut * w);
        int cy = (int)rng_below(r, (uint64_t)h), cx = (int)rng_below(r, (uint64_t)w);
        int y0 = cy - bh / 2, x0 = cx - bw / 2, y1 = y0 + bh, x1 = x0 + bw;
        y0 = y0 < 0 ? 0 : y0;
        x0 = x0 < 0 ? 0 : x0;
        y1 = y1 > h ? h : y1;
        x1 = x1 > w ? w : x1;
        if (y1 <= y0 || x1 <= x0)
            continue; /* nothing pasted: the image stays its own */
        for (int y = y0; y < y1; y++)
            memcpy(batch + i * image + y * row + (size_t)x0 * c,
                   copy + j * image + y * row + (size_t)x0 * c, (size_t)(x1 - x0) * c * sizeof *batch);
        pairs[i] = (struct cutmix_pair){
            .partner = j, .keep = 1.0f - (float)((double)(y1 - y0) * (x1 - x0) / ((double)h * w))};
    }
}
