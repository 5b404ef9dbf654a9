/*
 * feature_maps.h — what one layer of a CNN sees in one image: the mean
 * activation of each of its channels, the channels that respond most, and
 * where in the image each of them responds (its map, sampled down for a
 * page to draw).
 *
 *     float means[c];
 *     struct feature_channel top[12];
 *     int k = feature_maps_rank(model_output(ws, l), m->layers[l].out, means, top, 12);
 *     feature_maps_sample(model_output(ws, l), shape, top[0].index, 28, 28, map);
 *
 * The layer output is one image's NHWC tensor (h x w x c), as model_output
 * gives it; nothing here allocates.
 */
#ifndef STRATA_FEATURE_MAPS_H
#define STRATA_FEATURE_MAPS_H

#include "tensor.h"

struct feature_channel {
    int index;  /* channel number in the layer */
    float mean; /* its mean activation over the h x w positions */
    float min, max;
};

/* Writes every channel's mean into means[c] and the k channels of largest
 * mean (ties: the lower index first) into top[<= k], largest first, with
 * their min and max. Returns how many were written (min(k, c)). */
int feature_maps_rank(const float *out, struct shape s, float *means, struct feature_channel *top,
                      int k);

/* Channel `channel` of out as a map of map_h x map_w area averages (each
 * cell the mean of the positions it covers; map sides at most h and w):
 * map[y * map_w + x]. */
void feature_maps_sample(const float *out, struct shape s, int channel, int map_w, int map_h,
                         float *map);

#endif
