/* augment.c — random flips, zoom, translation, colour jitter and erasing (see augment.h). */
#include "augment.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

static float uniform_between(struct rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)rng_uniform(r);
}

static inline float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* Sets a random rectangle of dst (w×h×3, normalised) to 0: area a share of
 * the image drawn from [AUGMENT_ERASE_MIN, AUGMENT_ERASE_MAX], aspect ratio
 * log-uniform in [0.3, 1/0.3], position uniform among those that fit. */
#define AUGMENT_ERASE_MIN 0.02f
#define AUGMENT_ERASE_MAX 0.25f
static void erase_rectangle(float *dst, int w, int h, struct rng *r)
{
    float area = uniform_between(r, AUGMENT_ERASE_MIN, AUGMENT_ERASE_MAX) * (float)w * (float)h;
    float aspect = expf(uniform_between(r, logf(0.3f), -logf(0.3f)));
    int eh = (int)lroundf(sqrtf(area * aspect)), ew = (int)lroundf(sqrtf(area / aspect));
    eh = eh < 1 ? 1 : eh > h ? h : eh;
    ew = ew < 1 ? 1 : ew > w ? w : ew;
    int y0 = (int)(rng_uniform(r) * (h - eh + 1)), x0 = (int)(rng_uniform(r) * (w - ew + 1));
    y0 = y0 > h - eh ? h - eh : y0;
    x0 = x0 > w - ew ? w - ew : x0;
    for (int y = y0; y < y0 + eh; y++)
        memset(dst + ((size_t)y * w + x0) * 3, 0, (size_t)ew * 3 * sizeof(float));
}

void augment_sample(const struct augment_config *a, const uint8_t *src, int w, int h,
                    const float mean[3], const float std[3], float *dst, struct rng *r)
{
    int flip = a->flip && rng_uniform(r) < 0.5;
    float scale = a->zoom > 0 ? uniform_between(r, 1.0f, 1.0f + a->zoom) : 1.0f;
    float tx = a->translate > 0 ? uniform_between(r, -a->translate, a->translate) * w : 0;
    float ty = a->translate > 0 ? uniform_between(r, -a->translate, a->translate) * h : 0;
    float bright = a->brightness > 0 ? uniform_between(r, 1 - a->brightness, 1 + a->brightness) : 1;
    float contrast = a->contrast > 0 ? uniform_between(r, 1 - a->contrast, 1 + a->contrast) : 1;
    float sat = a->saturation > 0 ? uniform_between(r, 1 - a->saturation, 1 + a->saturation) : 1;

    /* Output pixel centre (x + 0.5) maps back to source coordinate
     * (x + 0.5 - w/2) / scale + w/2 - tx, sampled bilinearly. */
    float inv = 1.0f / scale;
    double grey_sum = 0;
    for (int y = 0; y < h; y++) {
        float sy = clampf(((float)y + 0.5f - h * 0.5f) * inv + h * 0.5f - ty - 0.5f, 0, (float)(h - 1));
        int y0 = (int)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        float fy = sy - (float)y0;
        for (int x = 0; x < w; x++) {
            int ox = flip ? w - 1 - x : x;
            float sx = clampf(((float)x + 0.5f - w * 0.5f) * inv + w * 0.5f - tx - 0.5f, 0, (float)(w - 1));
            int x0 = (int)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            float fx = sx - (float)x0;
            const uint8_t *p00 = src + ((size_t)y0 * w + x0) * 3, *p01 = src + ((size_t)y0 * w + x1) * 3;
            const uint8_t *p10 = src + ((size_t)y1 * w + x0) * 3, *p11 = src + ((size_t)y1 * w + x1) * 3;
            float *o = dst + ((size_t)y * w + ox) * 3;
            for (int c = 0; c < 3; c++) {
                float top = p00[c] + fx * (float)(p01[c] - p00[c]);
                float bot = p10[c] + fx * (float)(p11[c] - p10[c]);
                o[c] = (top + fy * (bot - top)) * (bright / 255.0f);
            }
            grey_sum += 0.299f * o[0] + 0.587f * o[1] + 0.114f * o[2];
        }
    }

    /* Contrast pulls every value towards the image's mean grey; saturation
     * towards the pixel's own grey. Then clip to the valid range and
     * normalise. */
    float grey_mean = (float)(grey_sum / ((double)w * h));
    float inv_std[3] = {1.0f / std[0], 1.0f / std[1], 1.0f / std[2]};
    for (size_t i = 0; i < (size_t)w * h; i++) {
        float *o = dst + i * 3;
        float g = 0.299f * o[0] + 0.587f * o[1] + 0.114f * o[2];
        for (int c = 0; c < 3; c++) {
            float v = g + sat * (o[c] - g);
            v = grey_mean + contrast * (v - grey_mean);
            o[c] = (clampf(v, 0.0f, 1.0f) - mean[c]) * inv_std[c];
        }
    }

    if (a->erase > 0 && rng_uniform(r) < a->erase)
        erase_rectangle(dst, w, h, r);
}

void augment_turn(const float *src, int size, int channels, int turns, float *dst)
{
    turns &= 3;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            /* The source pixel of (y, x): each clockwise turn maps source
             * (sy, sx) to (sx, size-1-sy), so undo the turns one by one. */
            int sy = y, sx = x;
            for (int k = 0; k < turns; k++) {
                int t = sy;
                sy = size - 1 - sx;
                sx = t;
            }
            memcpy(dst + ((size_t)y * size + x) * channels,
                   src + ((size_t)sy * size + sx) * channels, (size_t)channels * sizeof(float));
        }
}
