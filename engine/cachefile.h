/*
 * cachefile.h — the binary files strata caches results in (the layer
 * analysis, the doubt model, the doubt evaluation): a growing buffer to
 * serialise a payload into, a bounds-checked reader to parse one with, and
 * the framed file that carries it.
 *
 * File layout (integers and floats in the host's layout; strata targets
 * little-endian machines, x86-64 and arm64):
 *
 *    0  8 bytes magic            what the file holds
 *    8  u32 version              the caller's format version
 *   12  u32 header size          48
 *   16  u64 key                  what the content was computed from (0: none)
 *   24  u64 payload length       bytes after the header
 *   32  u64 payload checksum     hash_checksum64 of the payload
 *   40  u64 header checksum      hash_checksum64 of bytes 0..39
 *   48  payload
 *
 * Strings in a payload are a u32 length and the bytes, no NUL.
 */
#ifndef STRATA_CACHEFILE_H
#define STRATA_CACHEFILE_H

#include <stddef.h>
#include <stdint.h>

#define CACHEFILE_HEADER_SIZE 48

/* A payload being written. Start from {0}; `failed` is set once growing the
 * buffer failed, and later puts do nothing. The caller frees p. */
struct cachefile_writer {
    uint8_t *p;
    size_t len, cap;
    int failed;
};

void cachefile_put(struct cachefile_writer *w, const void *data, size_t len);
void cachefile_put_u32(struct cachefile_writer *w, uint32_t v);
void cachefile_put_i32(struct cachefile_writer *w, int32_t v);
void cachefile_put_u64(struct cachefile_writer *w, uint64_t v);
void cachefile_put_f32(struct cachefile_writer *w, float v);
void cachefile_put_f64(struct cachefile_writer *w, double v);
void cachefile_put_str(struct cachefile_writer *w, const char *s);

/* A payload being read. Every get that would read past the end sets `bad`,
 * zeroes what it was to fill, and later gets do nothing; `nomem` is set when
 * a get that allocates could not. */
struct cachefile_reader {
    const uint8_t *p;
    size_t left; /* bytes not read yet */
    int bad, nomem;
};

int cachefile_get(struct cachefile_reader *r, void *dst, size_t len); /* 0 or -1 */
uint32_t cachefile_get_u32(struct cachefile_reader *r);
int32_t cachefile_get_i32(struct cachefile_reader *r);
uint64_t cachefile_get_u64(struct cachefile_reader *r);
float cachefile_get_f32(struct cachefile_reader *r);
double cachefile_get_f64(struct cachefile_reader *r);

/* A string into dst (cap bytes, NUL included); a longer one sets bad and
 * leaves dst empty. Returns 0 or -1. */
int cachefile_get_str(struct cachefile_reader *r, char *dst, size_t cap);

/* A string of at most max bytes, allocated (free it); NULL when it is
 * missing or longer (bad) or on allocation failure (nomem). */
char *cachefile_get_str_alloc(struct cachefile_reader *r, size_t max);

/* count elements of `size` bytes, allocated (free it); NULL when they are
 * not all there (bad) or on allocation failure (nomem). */
void *cachefile_get_array(struct cachefile_reader *r, size_t count, size_t size);

/* 1 when the n floats read into v are all finite (no NaN, no infinity): a
 * cached number a checksum passed can still be one no computation gives.
 * Can't fail. */
int cachefile_all_finite(const float *v, size_t n);

/* Writes the framed file atomically: a temporary file in the same folder
 * (mode 0644: the CLI and a server running as another user share caches),
 * renamed over path, so readers see the old file or the whole new one.
 * Fails with STRATA_E_NOMEM when w->failed, STRATA_E_IO (err names path). */
int cachefile_write(const char *path, const char magic[8], uint32_t version, uint64_t key,
                    const struct cachefile_writer *w, char *err);

/* Reads and checks a framed file: magic, header checksum, version, length,
 * payload checksum, then the key when expect_key is not 0. On success *file
 * is the whole file (free it), *payload reads its payload and *key is the
 * file's key. Fails with STRATA_E_NOTFOUND (no file), STRATA_E_IO,
 * STRATA_E_NOMEM, STRATA_E_UNSUPPORTED (another version) or STRATA_E_FORMAT
 * (anything else), err naming path and `what` ("analysis", ...); *file is
 * then NULL. */
int cachefile_read(const char *path, const char magic[8], const char *what, uint32_t version,
                   uint64_t expect_key, uint8_t **file, struct cachefile_reader *payload,
                   uint64_t *key, char *err);

#endif
