/*
 * cachefile.c — the framed binary cache files (see cachefile.h).
 */
#include "cachefile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "readfile.h"
#include "status.h"

/* ---- writing a payload ---------------------------------------------------- */

void cachefile_put(struct cachefile_writer *w, const void *data, size_t len)
{
    if (w->failed || !len)
        return;
    if (len > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->len < len) {
            if (cap > SIZE_MAX / 2) {
                w->failed = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *np = realloc(w->p, cap);
        if (!np) {
            w->failed = 1;
            return;
        }
        w->p = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, data, len);
    w->len += len;
}

void cachefile_put_u32(struct cachefile_writer *w, uint32_t v) { cachefile_put(w, &v, 4); }
void cachefile_put_i32(struct cachefile_writer *w, int32_t v) { cachefile_put(w, &v, 4); }
void cachefile_put_u64(struct cachefile_writer *w, uint64_t v) { cachefile_put(w, &v, 8); }
void cachefile_put_f32(struct cachefile_writer *w, float v) { cachefile_put(w, &v, 4); }
void cachefile_put_f64(struct cachefile_writer *w, double v) { cachefile_put(w, &v, 8); }

void cachefile_put_str(struct cachefile_writer *w, const char *s)
{
    size_t len = strlen(s);
    cachefile_put_u32(w, (uint32_t)len);
    cachefile_put(w, s, len);
}

/* ---- reading a payload ---------------------------------------------------- */

int cachefile_get(struct cachefile_reader *r, void *dst, size_t len)
{
    if (r->bad || len > r->left) {
        r->bad = 1;
        if (dst && len)
            memset(dst, 0, len);
        return -1;
    }
    if (len)
        memcpy(dst, r->p, len);
    r->p += len;
    r->left -= len;
    return 0;
}

uint32_t cachefile_get_u32(struct cachefile_reader *r)
{
    uint32_t v = 0;
    cachefile_get(r, &v, 4);
    return v;
}

int32_t cachefile_get_i32(struct cachefile_reader *r)
{
    int32_t v = 0;
    cachefile_get(r, &v, 4);
    return v;
}

uint64_t cachefile_get_u64(struct cachefile_reader *r)
{
    uint64_t v = 0;
    cachefile_get(r, &v, 8);
    return v;
}

float cachefile_get_f32(struct cachefile_reader *r)
{
    float v = 0;
    cachefile_get(r, &v, 4);
    return v;
}

double cachefile_get_f64(struct cachefile_reader *r)
{
    double v = 0;
    cachefile_get(r, &v, 8);
    return v;
}

int cachefile_get_str(struct cachefile_reader *r, char *dst, size_t cap)
{
    uint32_t len = cachefile_get_u32(r);
    if (r->bad || len >= cap || len > r->left) {
        r->bad = 1;
        dst[0] = 0;
        return -1;
    }
    cachefile_get(r, dst, len);
    dst[len] = 0;
    return 0;
}

char *cachefile_get_str_alloc(struct cachefile_reader *r, size_t max)
{
    uint32_t len = cachefile_get_u32(r);
    if (r->bad || len > max || len > r->left) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)len + 1);
    if (!s) {
        r->nomem = 1;
        return NULL;
    }
    cachefile_get(r, s, len);
    s[len] = 0;
    return s;
}

void *cachefile_get_array(struct cachefile_reader *r, size_t count, size_t size)
{
    if (r->bad || (count && size > r->left / count)) {
        r->bad = 1;
        return NULL;
    }
    size_t bytes = count * size;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        r->nomem = 1;
        return NULL;
    }
    cachefile_get(r, p, bytes);
    return p;
}

int cachefile_all_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* ---- the file ------------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t got = write(fd, p, len);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

int cachefile_write(const char *path, const char magic[8], uint32_t version, uint64_t key,
                    const struct cachefile_writer *w, char *err)
{
    /* The format is the host's memory layout; strata targets little-endian
     * machines. */
    assert(*(const uint8_t *)&(uint32_t){1} == 1);
    if (w->failed)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory writing %s", path);
    uint8_t header[CACHEFILE_HEADER_SIZE];
    uint32_t hsize = CACHEFILE_HEADER_SIZE;
    uint64_t plen = w->len, psum = hash_checksum64(w->p, w->len);
    memcpy(header, magic, 8);
    memcpy(header + 8, &version, 4);
    memcpy(header + 12, &hsize, 4);
    memcpy(header + 16, &key, 8);
    memcpy(header + 24, &plen, 8);
    memcpy(header + 32, &psum, 8);
    uint64_t hsum = hash_checksum64(header, 40);
    memcpy(header + 40, &hsum, 8);

    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = strata_fail(err, STRATA_E_IO, "%s: cannot create a temporary file: %s", path,
                             strerror(errno));
        free(tmp);
        return rc;
    }
    int bad = fchmod(fd, 0644) != 0 || write_all(fd, header, sizeof header) != 0 ||
              write_all(fd, w->p, w->len) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        saved = errno;
    }
    int rc = 0;
    if (bad) {
        unlink(tmp);
        rc = strata_fail(err, STRATA_E_IO, "%s: cannot write: %s", path, strerror(saved));
    }
    free(tmp);
    return rc;
}

int cachefile_read(const char *path, const char magic[8], const char *what, uint32_t version,
                   uint64_t expect_key, uint8_t **file, struct cachefile_reader *payload,
                   uint64_t *key, char *err)
{
    *file = NULL;
    memset(payload, 0, sizeof *payload);
    uint8_t *buf;
    size_t size;
    int rc = read_whole_file(path, SIZE_MAX, &buf, &size, err);
    if (rc)
        return rc;
    uint32_t fversion, hsize;
    uint64_t plen, psum, hsum;
    if (size < CACHEFILE_HEADER_SIZE) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: truncated (%zu bytes, less than a header)",
                         path, size);
        goto fail;
    }
    memcpy(&fversion, buf + 8, 4);
    memcpy(&hsize, buf + 12, 4);
    memcpy(key, buf + 16, 8);
    memcpy(&plen, buf + 24, 8);
    memcpy(&psum, buf + 32, 8);
    memcpy(&hsum, buf + 40, 8);
    if (memcmp(buf, magic, 8) != 0) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: not a strata %s file", path, what);
        goto fail;
    }
    if (hash_checksum64(buf, 40) != hsum) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: corrupt header (checksum mismatch)", path);
        goto fail;
    }
    if (fversion != version || hsize != CACHEFILE_HEADER_SIZE) {
        rc = strata_fail(err, STRATA_E_UNSUPPORTED,
                         "%s: %s format version %u, this strata reads version %u", path, what,
                         fversion, version);
        goto fail;
    }
    if (plen != size - CACHEFILE_HEADER_SIZE) {
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "%s: truncated or padded (%zu payload bytes, header says %llu)", path,
                         size - CACHEFILE_HEADER_SIZE, (unsigned long long)plen);
        goto fail;
    }
    if (hash_checksum64(buf + CACHEFILE_HEADER_SIZE, plen) != psum) {
        rc = strata_fail(err, STRATA_E_FORMAT, "%s: corrupt (checksum mismatch)", path);
        goto fail;
    }
    if (expect_key && *key != expect_key) {
        rc = strata_fail(err, STRATA_E_FORMAT,
                         "%s: computed for other weights, data or parameters (key %016llx, "
                         "expected %016llx)",
                         path, (unsigned long long)*key, (unsigned long long)expect_key);
        goto fail;
    }
    *file = buf;
    payload->p = buf + CACHEFILE_HEADER_SIZE;
    payload->left = plen;
    return 0;
fail:
    free(buf);
    return rc;
}
