/* layer_model.c — see layer_model.h. */
#include "layer_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int layer_model_make(struct model *m, int h, int w, int n_classes, const char *layers, char *err)
{
    size_t cap = strlen(layers) + 16 * (size_t)n_classes + 256;
    char *text = malloc(cap);
    if (!text)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory for a test model");
    size_t k = (size_t)snprintf(text, cap,
                                "{\"input\": {\"height\": %d, \"width\": %d, \"channels\": 3},"
                                " \"classes\": [",
                                h, w);
    for (int i = 0; i < n_classes; i++)
        k += (size_t)snprintf(text + k, cap - k, "%s\"c%d\"", i ? ", " : "", i);
    snprintf(text + k, cap - k, "], \"layers\": [%s]}", layers);
    int rc = model_parse_json(m, text, "test model", err);
    free(text);
    return rc;
}

void nhwc_to_nchw(float *dst, const float *src, int n, int h, int w, int c)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)b * c + ch) * h * w + p] = src[((size_t)b * h * w + p) * c + ch];
}

void nchw_to_nhwc(float *dst, const float *src, int n, int h, int w, int c)
{
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < h * w; p++)
                dst[((size_t)b * h * w + p) * c + ch] = src[((size_t)b * c + ch) * h * w + p];
}
