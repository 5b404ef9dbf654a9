/*
 * form_spool.c — multipart/form-data from a file to one file per field (see
 * form_spool.h).
 *
 * The body is read through a window of FORM_WINDOW bytes. The reader works
 * on a stream that starts with a virtual "\r\n", so that the first
 * delimiter ("--boundary" at the very start, or after a preamble) is found
 * like every other one ("\r\n--boundary"). While a field's content passes,
 * all but the last (delimiter length − 1) bytes of the window are written
 * out before the next read: those few may be the start of the delimiter.
 */
#include "form_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "multipart.h"

#define FORM_WINDOW (256u << 10)

struct stream {
    int fd;
    uint64_t len, read; /* body length, bytes of it read so far */
    unsigned char *buf;
    size_t pos, n; /* unread bytes are buf[pos..n) */
};

/* Moves the unread bytes to the front and reads more. Returns the number of
 * new bytes (0 at the end of the body), or STRATA_E_IO. */
static long stream_fill(struct stream *s, char *err)
{
    if (s->pos) {
        memmove(s->buf, s->buf + s->pos, s->n - s->pos);
        s->n -= s->pos;
        s->pos = 0;
    }
    size_t room = FORM_WINDOW - s->n;
    uint64_t left = s->len - s->read;
    if (room > left)
        room = (size_t)left;
    if (room == 0)
        return 0;
    ssize_t r;
    do
        r = pread(s->fd, s->buf + s->n, room, (off_t)s->read);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return strata_fail(err, STRATA_E_IO, "reading the upload failed: %s", strerror(errno));
    if (r == 0)
        return strata_fail(err, STRATA_E_IO, "the upload is shorter than its length");
    s->n += (size_t)r;
    s->read += (uint64_t)r;
    return r;
}

/* Makes at least `want` unread bytes available if the body has them.
 * Returns 0 or STRATA_E_IO. */
static int stream_want(struct stream *s, size_t want, char *err)
{
    while (s->n - s->pos < want) {
        long r = stream_fill(s, err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return 0;
    }
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Passes the content of one part up to the next delimiter: to out (a file,
 * or -1 to drop it) within the field's limit. Leaves the stream just after
 * the delimiter. */
static int pass_content(struct stream *s, const char *delim, size_t dlen, int out,
                        struct form_field *f, int index, char *err)
{
    for (;;) {
        size_t avail = s->n - s->pos;
        const unsigned char *d = avail >= dlen ? memmem(s->buf + s->pos, avail, delim, dlen) : NULL;
        size_t upto = d ? (size_t)(d - s->buf) : avail >= dlen ? s->n - (dlen - 1) : s->pos;
        size_t chunk = upto - s->pos;
        if (chunk && f) {
            if (f->size + chunk > f->max_bytes)
                return strata_fail(err, STRATA_E_LIMIT,
                                   "the form field \"%s\" is over its limit of %llu bytes (%llu "
                                   "MB)",
                                   f->name, (unsigned long long)f->max_bytes,
                                   (unsigned long long)(f->max_bytes >> 20));
            if (write_all(out, s->buf + s->pos, chunk) < 0)
                return strata_fail(err, STRATA_E_IO, "storing the form field \"%s\" failed: %s",
                                   f->name, strerror(errno));
            f->size += chunk;
        }
        s->pos = upto;
        if (d) {
            s->pos += dlen;
            return 0;
        }
        long r = stream_fill(s, err);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no closing boundary after it: the body "
                               "is truncated or the boundary is wrong",
                               index);
    }
}

static struct form_field *field_named(struct form_field *fields, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

static int split(struct stream *s, const char *delim, size_t dlen, const char *dir,
                 struct form_field *fields, int n_fields, char *err)
{
    /* The preamble, up to the first delimiter, is dropped. */
    int rc = pass_content(s, delim, dlen, -1, NULL, 0, err);
    if (rc == STRATA_E_FORMAT)
        return strata_fail(err, STRATA_E_FORMAT,
                           "the multipart body does not contain its boundary \"%s\"", delim + 4);
    if (rc < 0)
        return rc;
    for (int index = 1;; index++) {
        if ((rc = stream_want(s, 2, err)) < 0)
            return rc;
        if (s->n - s->pos >= 2 && s->buf[s->pos] == '-' && s->buf[s->pos + 1] == '-')
            return 0; /* the closing delimiter; the epilogue is ignored */
        /* optional transport padding, then CRLF */
        for (;;) {
            if ((rc = stream_want(s, 1, err)) < 0)
                return rc;
            if (s->n == s->pos || (s->buf[s->pos] != ' ' && s->buf[s->pos] != '\t'))
                break;
            s->pos++;
        }
        if ((rc = stream_want(s, 2, err)) < 0)
            return rc;
        if (s->n - s->pos < 2 || s->buf[s->pos] != '\r' || s->buf[s->pos + 1] != '\n')
            return strata_fail(err, STRATA_E_FORMAT,
                               "the multipart body ends without its closing boundary \"--%s--\"",
                               delim + 4);
        s->pos += 2;
        if ((rc = stream_want(s, MULTIPART_MAX_HEADER_BLOCK + 4, err)) < 0)
            return rc;
        size_t avail = s->n - s->pos;
        size_t window = avail < MULTIPART_MAX_HEADER_BLOCK + 4 ? avail : MULTIPART_MAX_HEADER_BLOCK + 4;
        const unsigned char *hend = memmem(s->buf + s->pos, window, "\r\n\r\n", 4);
        if (!hend)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no end of headers (or over %d bytes of "
                               "headers)",
                               index, MULTIPART_MAX_HEADER_BLOCK);
        struct multipart_part ph;
        rc = multipart_part_headers((const char *)s->buf + s->pos,
                                    (size_t)(hend - (s->buf + s->pos)), index, &ph, err);
        if (rc < 0)
            return rc;
        s->pos = (size_t)(hend - s->buf) + 4;

        struct form_field *f = field_named(fields, n_fields, ph.name);
        if (!f) {
            char names[400] = "";
            for (int i = 0; i < n_fields; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i ? ", " : "", fields[i].name);
            return strata_fail(err, STRATA_E_FORMAT,
                               "the form has an unexpected field \"%.100s\"; its fields are %s",
                               ph.name, names);
        }
        if (f->present)
            return strata_fail(err, STRATA_E_FORMAT, "the form field \"%s\" is given twice",
                               f->name);
        f->present = 1;
        f->size = 0;
        snprintf(f->filename, sizeof f->filename, "%s", ph.filename);
        snprintf(f->content_type, sizeof f->content_type, "%s", ph.content_type);
        snprintf(f->path, sizeof f->path, "%s/%s", dir, f->name);
        int out = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
            return strata_fail(err, STRATA_E_IO, "cannot store the form field \"%s\" in %s: %s",
                               f->name, dir, strerror(errno));
        rc = pass_content(s, delim, dlen, out, f, index, err);
        if (close(out) != 0 && rc == 0)
            rc = strata_fail(err, STRATA_E_IO, "storing the form field \"%s\" failed: %s",
                             f->name, strerror(errno));
        if (rc < 0)
            return rc;
    }
}

int form_spool(int fd, uint64_t len, const char *content_type, const char *dir,
               struct form_field *fields, int n_fields, char *err)
{
    for (int i = 0; i < n_fields; i++) {
        fields[i].present = 0;
        fields[i].size = 0;
        fields[i].path[0] = fields[i].filename[0] = fields[i].content_type[0] = '\0';
    }
    char boundary[80];
    long blen = multipart_boundary(content_type, boundary, sizeof boundary, err);
    if (blen < 0)
        return (int)blen;
    char delim[4 + 80];
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);

    struct stream s = {.fd = fd, .len = len, .buf = malloc(FORM_WINDOW)};
    if (!s.buf)
        return strata_fail(err, STRATA_E_NOMEM, "out of memory reading the form");
    /* the virtual CRLF before the body (see the file comment) */
    s.buf[0] = '\r';
    s.buf[1] = '\n';
    s.n = 2;
    int rc = split(&s, delim, dlen, dir, fields, n_fields, err);
    free(s.buf);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n_fields; i++)
        if (fields[i].required && !fields[i].present)
            return strata_fail(err, STRATA_E_FORMAT, "the form has no field \"%s\"",
                               fields[i].name);
    return 0;
}
