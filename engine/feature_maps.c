/*
 * feature_maps.c — channels ranked by mean activation, and a channel's map
 * sampled down by area averages (see feature_maps.h).
 */
#include "feature_maps.h"

#include <assert.h>

int feature_maps_rank(const float *out, struct shape s, float *means, struct feature_channel *top,
                      int k)
{
    const int c = s.c, hw = s.h * s.w;
    for (int ch = 0; ch < c; ch++)
        means[ch] = 0;
    for (int p = 0; p < hw; p++)
        for (int ch = 0; ch < c; ch++)
            means[ch] += out[(size_t)p * c + ch];
    for (int ch = 0; ch < c; ch++)
        means[ch] /= (float)hw;
    if (k > c)
        k = c;
    int n = 0;
    for (int ch = 0; ch < c; ch++) {
        /* insertion into the sorted top list: largest mean first */
        int at = n;
        while (at > 0 && means[top[at - 1].index] < means[ch])
            at--;
        if (at >= k)
            continue;
        for (int j = (n < k ? n : k - 1); j > at; j--)
            top[j] = top[j - 1];
        top[at].index = ch;
        if (n < k)
            n++;
    }
    for (int j = 0; j < n; j++) {
        const int ch = top[j].index;
        float lo = out[ch], hi = out[ch];
        for (int p = 1; p < hw; p++) {
            float v = out[(size_t)p * c + ch];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        top[j].mean = means[ch];
        top[j].min = lo;
        top[j].max = hi;
    }
    return n;
}

void feature_maps_sample(const float *out, struct shape s, int channel, int map_w, int map_h,
                         float *map)
{
    assert(map_w >= 1 && map_h >= 1 && map_w <= s.w && map_h <= s.h);
    for (int y = 0; y < map_h; y++) {
        /* cell y covers rows [y*h/map_h, (y+1)*h/map_h) */
        const int y0 = y * s.h / map_h, y1 = (y + 1) * s.h / map_h;
        for (int x = 0; x < map_w; x++) {
            const int x0 = x * s.w / map_w, x1 = (x + 1) * s.w / map_w;
            double sum = 0;
            for (int yy = y0; yy < y1; yy++)
                for (int xx = x0; xx < x1; xx++)
                    sum += out[((size_t)yy * s.w + xx) * s.c + channel];
            map[y * map_w + x] = (float)(sum / ((double)(y1 - y0) * (x1 - x0)));
        }
    }
}
