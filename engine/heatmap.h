/*
 * heatmap.h — a per-pixel attribution map drawn over its photo.
 *
 * One colour scale for every explanation method, LIME's heat map included: red where the map is positive (the pixels pushed the model towards
 * the class), blue where negative (away from it), white at zero, scaled so
 * that ±max|map| are the ends, blended over a grey copy of the photo and more
 * opaque the larger |value|.
 */
#ifndef STRATA_HEATMAP_H
#define STRATA_HEATMAP_H

#include <stdint.h>

#include "image.h"

/* The largest |map[i]| of n values (0 for an all-zero map): the colour
 * scale runs from −that (blue) to +that (red). Can't fail. */
float heatmap_scale(const float *map, int n);

/* The scale's colour for t in [-1, 1] (blue, white, red) and how opaquely
 * it covers the photo (0.3 at 0, 0.8 at either end). Can't fail. */
void heatmap_colour(float t, float colour[3], float *opacity);

/* dst[3] = the grey of src[3] blended with colour at opacity. Can't fail. */
void heatmap_blend(const uint8_t *src, const float colour[3], float opacity, uint8_t *dst);

/* Draws map[h][w] over rgb[h][w][3] into *out (allocated here, w×h; free
 * with image_free). Returns 0 or a negative status (memory, sizes). */
int heatmap_render(const float *map, const uint8_t *rgb, int w, int h, struct image *out,
                   char *err);

/* *out = img with a colour bar under it (allocated here; free with
 * image_free): a white gap, then the scale from blue (−max|map|, left edge)
 * through white (0, the middle) to red (+max|map|, right edge), so that a
 * picture saved alone still says what its colours mean. */
int heatmap_add_legend(const struct image *img, struct image *out, char *err);

#endif
