/*
 * heatmap.c — attribution maps as pictures (see heatmap.h).
 */
#include "heatmap.h"

#include <math.h>
#include <string.h>

/* ColorBrewer RdBu's ends and middle, as LIME's heat map */
static const float heat_neg[3] = {33, 102, 172}, heat_mid[3] = {247, 247, 247},
                   heat_pos[3] = {178, 24, 43};

void heatmap_colour(float t, float colour[3], float *opacity)
{
    const float *end = t < 0 ? heat_neg : heat_pos;
    float a = fabsf(t);
    for (int k = 0; k < 3; k++)
        colour[k] = heat_mid[k] + a * (end[k] - heat_mid[k]);
    *opacity = 0.3f + 0.5f * a; /* the photo shows through where the map says little */
}

void heatmap_blend(const uint8_t *src, const float colour[3], float opacity, uint8_t *dst)
{
    float grey = 0.299f * src[0] + 0.587f * src[1] + 0.114f * src[2];
    for (int k = 0; k < 3; k++)
        dst[k] = (uint8_t)lrintf((1 - opacity) * grey + opacity * colour[k]);
}

float heatmap_scale(const float *map, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++)
        s = fmaxf(s, fabsf(map[i]));
    return s;
}

int heatmap_render(const float *map, const uint8_t *rgb, int w, int h, struct image *out,
                   char *err)
{
    int rc = image_alloc(out, w, h, err);
    if (rc < 0)
        return rc;
    float s = heatmap_scale(map, w * h);
    for (int q = 0; q < w * h; q++) {
        float c[3], opacity;
        heatmap_colour(s > 0 ? map[q] / s : 0.0f, c, &opacity);
        heatmap_blend(rgb + 3 * (size_t)q, c, opacity, out->rgb + 3 * (size_t)q);
    }
    return 0;
}

int heatmap_add_legend(const struct image *img, struct image *out, char *err)
{
    const int gap = 2, bar = img->h / 12 > 6 ? img->h / 12 : 6;
    int rc = image_alloc(out, img->w, img->h + gap + bar, err);
    if (rc < 0)
        return rc;
    memcpy(out->rgb, img->rgb, (size_t)img->w * img->h * 3);
    memset(out->rgb + (size_t)img->w * img->h * 3, 255, (size_t)img->w * gap * 3);
    for (int x = 0; x < img->w; x++) {
        float colour[3], opacity;
        heatmap_colour(img->w > 1 ? 2.0f * (float)x / (float)(img->w - 1) - 1.0f : 0.0f, colour,
                       &opacity);
        uint8_t c[3];
        for (int k = 0; k < 3; k++)
            c[k] = (uint8_t)lrintf(colour[k]);
        for (int y = img->h + gap; y < out->h; y++)
            memcpy(out->rgb + ((size_t)y * img->w + x) * 3, c, 3);
    }
    return 0;
}
