/*
 * image.h — decoding, encoding and resizing of RGB8 images.
 *
 * Decoding refuses before allocating: an image whose header claims absurd
 * dimensions (a side over IMAGE_MAX_SIDE or more than IMAGE_MAX_PIXELS
 * pixels) is rejected with STRATA_E_LIMIT; a header claiming a side of 0,
 * and truncated or corrupt data, with STRATA_E_FORMAT. No input crashes the
 * decoder.
 */
#ifndef STRATA_IMAGE_H
#define STRATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define IMAGE_MAX_SIDE 8192
#define IMAGE_MAX_PIXELS 40000000L

/* An RGB8 image: pixel (x, y) channel c at rgb[(y*w + x)*3 + c]. */
struct image {
    int w, h;
    uint8_t *rgb; /* owned; image_free releases it */
};

enum image_format { IMAGE_UNKNOWN, IMAGE_JPEG, IMAGE_PNG };

/* Guesses the format from the first bytes. */
enum image_format image_sniff(const uint8_t *buf, size_t len);

/* Decodes JPEG or PNG bytes (any PNG colour type and bit depth: grey, palette,
 * alpha composited on white, 16-bit) into img. On failure img is left empty
 * and a negative status returned with a message in err. */
int image_decode(const uint8_t *buf, size_t len, struct image *img, char *err);

/* Reads and decodes a file. Files over 64 MB are refused (STRATA_E_LIMIT)
 * before being read. On failure the message begins with "<path>: ". */
int image_load(const char *path, struct image *img, char *err);

/* Allocates a w×h image (zeroed). Returns 0 or a negative status; a side
 * under 1 gives STRATA_E_ARG, sizes outside IMAGE_MAX_SIDE/IMAGE_MAX_PIXELS
 * STRATA_E_LIMIT. */
int image_alloc(struct image *img, int w, int h, char *err);

void image_free(struct image *img);

/* Encodes to a malloc'd buffer (*out, *out_len, caller frees). JPEG quality
 * must be 1..100 (else STRATA_E_ARG). */
int image_encode_png(const struct image *img, uint8_t **out, size_t *out_len, char *err);
int image_encode_jpeg(const struct image *img, int quality, uint8_t **out, size_t *out_len,
                      char *err);

/* Writes the whole of a buffer to a file. */
int image_write_file(const char *path, const uint8_t *buf, size_t len, char *err);

/* Resizes src into dst (allocated here, w×h). Bilinear when enlarging, area
 * averaging along an axis that shrinks, so a downscale does not alias.
 * A side under 1 gives STRATA_E_ARG, sizes outside
 * IMAGE_MAX_SIDE/IMAGE_MAX_PIXELS STRATA_E_LIMIT. */
int image_resize(const struct image *src, int w, int h, struct image *dst, char *err);

/* A Gaussian blur of src with standard deviation sigma pixels (> 0) into dst
 * (allocated here, same size): separable, the kernel cut at 3 sigma and
 * normalised, edges clamped. Returns 0 or a negative status (memory). */
int image_blur(const struct image *src, float sigma, struct image *dst, char *err);

#endif
