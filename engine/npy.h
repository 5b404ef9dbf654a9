/*
 * npy.h — NumPy .npy files (format version 1.0), so that features, labels and
 * projections computed by strata can be inspected with NumPy and compared with
 * scikit-learn on exactly the same numbers.
 *
 * Only what strata exchanges is supported: little-endian float32 ('<f4'),
 * int32 ('<i4') and float64 ('<f8') arrays in C order, up to NPY_MAX_DIM
 * dimensions. The header is the one numpy.save writes:
 *
 *   "\x93NUMPY" 0x01 0x00 <uint16 LE header_len>
 *   "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 512), }"
 *   spaces, '\n'  — padded so that the data starts at a multiple of 64 bytes,
 *   after numpy's 21 - len(str(shape[0])) spare spaces (numpy 1.24's layout:
 *   the headers are byte-identical).
 *
 * A 1-D shape is written "(n,)" and a 0-D one "()". The writers assume a
 * little-endian host (x86-64, arm64), which is asserted.
 */
#ifndef STRATA_NPY_H
#define STRATA_NPY_H

#include <stddef.h>

#include "status.h"

#define NPY_MAX_DIM 8

enum npy_dtype {
    NPY_F32 = 0, /* '<f4' */
    NPY_I32 = 1, /* '<i4' */
    NPY_F64 = 2, /* '<f8' */
};

/* An array read from a file. `data` holds count() elements of `dtype`. */
struct npy_array {
    enum npy_dtype dtype;
    int ndim;
    long shape[NPY_MAX_DIM];
    void *data; /* owned; freed by npy_array_free */
};

/* Size in bytes of one element of dtype. Can't fail. */
size_t npy_dtype_size(enum npy_dtype dtype);

/* Product of the shape (1 for ndim = 0). Can't fail. */
size_t npy_count(int ndim, const long *shape);

/* Formats the complete header (magic, version, length, dict, padding, '\n')
 * for an array of the given dtype and shape into buf (at least `len` bytes).
 * Returns the header's length in bytes (a multiple of 64), or
 * STRATA_E_LIMIT if it does not fit in `len`. ndim is 0..NPY_MAX_DIM and
 * every extent >= 0 (asserted). The buffer is not NUL-terminated. */
int npy_format_header(enum npy_dtype dtype, int ndim, const long *shape, char *buf, size_t len);

/* Writes `data` (npy_count(ndim, shape) elements of dtype, C order) to a new
 * .npy file at `path`, replacing any file there. Returns 0, or STRATA_E_IO
 * with the path and the system's reason in err. */
int npy_write(const char *path, enum npy_dtype dtype, const void *data, int ndim,
              const long *shape, char *err);

/* Typed conveniences over npy_write. */
int npy_write_f32(const char *path, const float *data, int ndim, const long *shape, char *err);
int npy_write_i32(const char *path, const int *data, int ndim, const long *shape, char *err);
int npy_write_f64(const char *path, const double *data, int ndim, const long *shape, char *err);

/* Reads a .npy file written by numpy.save or npy_write: version 1.x or 2.x,
 * C order, one of the three dtypes above. On success fills *out (free with
 * npy_array_free) and returns 0. Fails with STRATA_E_IO (cannot open or read),
 * STRATA_E_FORMAT (not a .npy file, truncated, malformed header),
 * STRATA_E_UNSUPPORTED (another dtype, big-endian data, Fortran order, more
 * than NPY_MAX_DIM dimensions) or STRATA_E_NOMEM; *out is then empty. */
int npy_read(const char *path, struct npy_array *out, char *err);

/* Frees the data of an array from npy_read and empties it. NULL-safe. */
void npy_array_free(struct npy_array *a);

#endif
