/*
 * safetensors.h — reading and writing the safetensors format, independent of
 * any model.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then
 * the data section. The JSON maps tensor names to
 *   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with offsets in bytes relative to the start of the data section, and may
 * hold one "__metadata__" object of string values.
 *
 * Everything a file claims is distrusted: st_parse checks the header length
 * against the buffer, the JSON's structure, each dtype, shape and offset pair,
 * that every tensor's byte span is exactly product(shape) × dtype size, and
 * that the spans, sorted, tile the data section exactly (no overlap, no gap,
 * nothing past the end, no trailing bytes). No input crashes it; every
 * failure names the tensor or field at fault.
 *
 * st_expect_f32 then checks a parsed file against the list of tensors a
 * caller needs (names, F32, shapes; nothing missing, nothing extra), and
 * st_encode_f32 / st_write_f32 produce files that load back bit-identical.
 */
#ifndef STRATA_SAFETENSORS_H
#define STRATA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define ST_MAX_DIMS 8
/* A header longer than this is refused before it is parsed. */
#define ST_HEADER_MAX ((uint64_t)100 << 20)

enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64,
    ST_DTYPE_COUNT
};

/* One tensor as the header describes it (already validated). */
struct st_tensor {
    char *name;                 /* owned by the st_file */
    enum st_dtype dtype;
    int ndim;                   /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t begin, end;          /* byte span in the data section */
};

/* A parsed file. Tensors are in header order. `data` points into the parsed
 * buffer: borrowed from the caller after st_parse, owned (in `owned`) after
 * st_read. */
struct st_file {
    int n;
    struct st_tensor *tensors;  /* [n] */
    const uint8_t *data;        /* data section */
    size_t data_len;
    int n_meta;
    char **meta_keys, **meta_values; /* [n_meta] the __metadata__ pairs */
    uint8_t *owned;             /* the whole file when read by st_read */
};

/* What a caller expects one tensor to be (dtype F32). */
struct st_spec {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
};

/* One tensor to write: ndim dims of shape, product(shape) floats of data. */
struct st_out {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
};

/* Byte size of one element of a dtype, and its name in the header ("F32"). */
size_t st_dtype_size(enum st_dtype d);
const char *st_dtype_name(enum st_dtype d);

/* Parses and validates buf[len] (a whole file) into f. `what` names the
 * source in messages (usually the path). f->data borrows from buf, which the
 * caller keeps alive until st_free. On failure f is left empty (st_free is
 * still safe) and a negative status is returned: STRATA_E_LIMIT for a header
 * over ST_HEADER_MAX, STRATA_E_NOMEM, else STRATA_E_FORMAT. */
int st_parse(struct st_file *f, const uint8_t *buf, size_t len, const char *what, char *err);

/* Reads the file at path (refusing, before reading, one larger than
 * max_bytes with STRATA_E_LIMIT) and parses it; f owns the bytes. A missing
 * file is STRATA_E_NOTFOUND, another read failure STRATA_E_IO. */
int st_read(struct st_file *f, const char *path, size_t max_bytes, char *err);

/* Frees what st_parse / st_read allocated and zeroes f. Safe on a zeroed or
 * already freed struct. */
void st_free(struct st_file *f);

/* The tensor named `name`, or NULL. Borrowed from f. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* The __metadata__ value of key, or NULL. Borrowed from f. */
const char *st_meta(const struct st_file *f, const char *key);

/* Checks that f holds exactly the n tensors of want, each F32 with the
 * expected shape, and nothing else. Returns 0, or STRATA_E_FORMAT (missing,
 * wrong shape, unexpected tensor) / STRATA_E_UNSUPPORTED (another dtype) with
 * a message naming the tensor and what was expected. */
int st_expect_f32(const struct st_file *f, const struct st_spec *want, int n, const char *what,
                  char *err);

/* Copies an F32 tensor's data (little-endian in the file) into dst, which
 * holds (t->end - t->begin) / 4 floats. Bit-exact: no arithmetic on values. */
void st_copy_f32(const struct st_file *f, const struct st_tensor *t, float *dst);

/* Encodes n F32 tensors and meta (n_meta "key", "value" pairs, may be 0) into
 * a malloc'd buffer (*out, *out_len; the caller frees). The header's keys are
 * sorted, the data laid out in the same order, and the header padded with
 * spaces so the data starts at a multiple of 8 bytes. Returns 0,
 * STRATA_E_ARG for duplicate or empty names, or STRATA_E_NOMEM. */
int st_encode_f32(const struct st_out *t, int n, const char *const *meta_keys,
                  const char *const *meta_values, int n_meta, uint8_t **out, size_t *out_len,
                  char *err);

/* st_encode_f32 then writes path atomically (a temporary file beside it,
 * renamed over path), so a reader never sees half a file. STRATA_E_IO on a
 * write failure, naming the path. */
int st_write_f32(const char *path, const struct st_out *t, int n,
                 const char *const *meta_keys, const char *const *meta_values, int n_meta,
                 char *err);

#endif
