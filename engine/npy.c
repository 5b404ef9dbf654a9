/* npy.c — .npy writer and reader (see npy.h for the format). */
#include "npy.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
static const char *const npy_descr[] = {"<f4", "<i4", "<f8"};

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

size_t npy_dtype_size(enum npy_dtype dtype)
{
    switch (dtype) {
    case NPY_F32: return 4;
    case NPY_I32: return 4;
    case NPY_F64: return 8;
    }
    assert(!"unknown npy dtype");
    return 0;
}

size_t npy_count(int ndim, const long *shape)
{
    size_t c = 1;
    for (int i = 0; i < ndim; i++)
        c *= (size_t)shape[i];
    return c;
}

int npy_format_header(enum npy_dtype dtype, int ndim, const long *shape, char *buf, size_t len)
{
    assert(ndim >= 0 && ndim <= NPY_MAX_DIM);
    assert((unsigned)dtype <= NPY_F64);
    char dict[512];
    int m = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     npy_descr[dtype]);
    for (int i = 0; i < ndim; i++) {
        assert(shape[i] >= 0);
        /* numpy writes "(n,)" for one dimension, "(a, b)" for more. */
        m += snprintf(dict + m, sizeof dict - (size_t)m, "%ld%s", shape[i],
                      ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
    }
    m += snprintf(dict + m, sizeof dict - (size_t)m, "), }");
    /* numpy leaves room for the first extent to grow to 21 digits (so an
     * array can be appended to in place); doing the same makes our headers
     * byte-identical to numpy.save's. */
    int grow = 0;
    if (ndim > 0) {
        char digits[32];
        grow = 21 - snprintf(digits, sizeof digits, "%ld", shape[0]);
    }
    /* 10 bytes of preamble, the dict, spaces, and a final '\n'; the total is
     * rounded up to a multiple of 64 so the data is aligned for mmap. */
    size_t total = (size_t)(10 + m + grow + 1 + 63) / 64 * 64;
    if (total > len || total - 10 > UINT16_MAX)
        return STRATA_E_LIMIT;
    uint16_t hlen = (uint16_t)(total - 10);
    memcpy(buf, npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)m);
    memset(buf + 10 + m, ' ', total - 10 - (size_t)m - 1);
    buf[total - 1] = '\n';
    return (int)total;
}

int npy_write(const char *path, enum npy_dtype dtype, const void *data, int ndim,
              const long *shape, char *err)
{
    assert(host_is_little_endian());
    char header[1024];
    int hl = npy_format_header(dtype, ndim, shape, header, sizeof header);
    assert(hl > 0); /* NPY_MAX_DIM extents always fit in 1024 bytes */
    size_t bytes = npy_count(ndim, shape) * npy_dtype_size(dtype);
    assert(data || bytes == 0);
    FILE *f = fopen(path, "wb");
    if (!f)
        return strata_fail(err, STRATA_E_IO, "cannot create %s: %s", path, strerror(errno));
    int ok = fwrite(header, 1, (size_t)hl, f) == (size_t)hl &&
             (bytes == 0 || fwrite(data, 1, bytes, f) == bytes);
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok)
        return strata_fail(err, STRATA_E_IO, "cannot write %s: %s", path, strerror(saved));
    return STRATA_OK;
}

int npy_write_f32(const char *path, const float *data, int ndim, const long *shape, char *err)
{
    return npy_write(path, NPY_F32, data, ndim, shape, err);
}

int npy_write_i32(const char *path, const int *data, int ndim, const long *shape, char *err)
{
    return npy_write(path, NPY_I32, data, ndim, shape, err);
}

int npy_write_f64(const char *path, const double *data, int ndim, const long *shape, char *err)
{
    return npy_write(path, NPY_F64, data, ndim, shape, err);
}

/* Finds `'key':` in the header dict and returns a pointer just past the colon
 * and any spaces, or NULL. */
static const char *dict_value(const char *dict, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(dict, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

/* Parses the header dict into dtype and shape. Returns 0 or a status. */
static int parse_dict(const char *dict, const char *path, struct npy_array *a, char *err)
{
    const char *v = dict_value(dict, "descr");
    if (!v || (*v != '\'' && *v != '"'))
        return strata_fail(err, STRATA_E_FORMAT, "%s: .npy header has no 'descr'", path);
    char descr[16] = {0};
    char quote = *v++;
    size_t i = 0;
    while (*v && *v != quote && i + 1 < sizeof descr)
        descr[i++] = *v++;
    int found = -1;
    for (int t = 0; t < 3; t++)
        if (!strcmp(descr, npy_descr[t]))
            found = t;
    /* A single byte has no byte order: '|' would also be fine, but strata
     * never writes single-byte arrays, so anything else is unsupported. */
    if (found < 0)
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: dtype '%s' is not supported (use float32, int32 or float64, "
                           "little-endian)", path, descr);
    a->dtype = (enum npy_dtype)found;

    v = dict_value(dict, "fortran_order");
    if (!v)
        return strata_fail(err, STRATA_E_FORMAT, "%s: .npy header has no 'fortran_order'", path);
    if (!strncmp(v, "True", 4))
        return strata_fail(err, STRATA_E_UNSUPPORTED,
                           "%s: Fortran-ordered arrays are not supported (save a C-ordered copy "
                           "with numpy.ascontiguousarray)", path);
    if (strncmp(v, "False", 5))
        return strata_fail(err, STRATA_E_FORMAT, "%s: bad 'fortran_order' in .npy header", path);

    v = dict_value(dict, "shape");
    if (!v || *v != '(')
        return strata_fail(err, STRATA_E_FORMAT, "%s: .npy header has no 'shape' tuple", path);
    v++;
    a->ndim = 0;
    for (;;) {
        while (*v == ' ' || *v == ',')
            v++;
        if (*v == ')')
            break;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (end == v || x < 0 || errno)
            return strata_fail(err, STRATA_E_FORMAT, "%s: bad 'shape' in .npy header", path);
        if (a->ndim == NPY_MAX_DIM)
            return strata_fail(err, STRATA_E_UNSUPPORTED,
                               "%s: more than %d dimensions are not supported", path, NPY_MAX_DIM);
        a->shape[a->ndim++] = x;
        v = end;
    }
    return STRATA_OK;
}

int npy_read(const char *path, struct npy_array *out, char *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return strata_fail(err, STRATA_E_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char pre[12];
    int rc = STRATA_OK;
    char *dict = NULL;
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, npy_magic, 6)) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s is not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) {
            rc = strata_fail(err, STRATA_E_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) {
            rc = strata_fail(err, STRATA_E_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
               (size_t)pre[11] << 24;
    } else {
        rc = strata_fail(err, STRATA_E_UNSUPPORTED, "%s: .npy format version %d is not supported",
                         path, pre[6]);
        goto done;
    }
    if (hlen > (1u << 20)) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: implausible .npy header length %zu", path,
                         hlen);
        goto done;
    }
    dict = malloc(hlen + 1);
    if (!dict) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    if (fread(dict, 1, hlen, f) != hlen) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    dict[hlen] = 0;
    rc = parse_dict(dict, path, out, err);
    if (rc)
        goto done;
    size_t count = npy_count(out->ndim, out->shape);
    size_t bytes = count * npy_dtype_size(out->dtype);
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        rc = strata_fail(err, STRATA_E_NOMEM, "out of memory reading %s (%zu bytes)", path, bytes);
        goto done;
    }
    if (fread(out->data, 1, bytes, f) != bytes) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: truncated .npy data (expected %zu bytes)",
                         path, bytes);
        goto done;
    }
done:
    free(dict);
    fclose(f);
    if (rc)
        npy_array_free(out);
    return rc;
}

void npy_array_free(struct npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
