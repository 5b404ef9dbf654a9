/*
 * fuzz_image.c — libFuzzer target for image_decode (JPEG and PNG, with the
 * decoder's size limits): any bytes give an image whose buffer covers
 * w × h × 3 within the limits, or a negative status and an empty image.
 */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct image img;
    char err[STRATA_ERR_LEN];
    int rc = image_decode(data, size, &img, err);
    if (rc != 0) {
        if (rc > 0 || img.rgb || !err[0])
            abort();
        return 0;
    }
    if (!img.rgb || img.w < 1 || img.h < 1 || img.w > IMAGE_MAX_SIDE || img.h > IMAGE_MAX_SIDE ||
        (long)img.w * img.h > IMAGE_MAX_PIXELS)
        abort();
    volatile uint8_t last = img.rgb[(size_t)img.w * img.h * 3 - 1]; /* ASan: a short buffer */
    (void)last;
    image_free(&img);
    return 0;
}
