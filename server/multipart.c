/*
 * multipart.c — multipart/form-data (RFC 7578) and the header values it
 * needs (media types, `; key="value"` parameters), and the image body of an
 * upload endpoint.
 */
#include "multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* --- header values: media types and parameters --------------------------- */

/* Copies the media type of a Content-Type value (before any ';'), trimmed
 * and lower-cased, into out. */
static void media_type(const char *value, char *out, size_t len)
{
    size_t o = 0;
    if (value) {
        while (*value == ' ' || *value == '\t')
            value++;
        for (; *value && *value != ';' && o + 1 < len; value++)
            out[o++] = (char)tolower((unsigned char)*value);
    }
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
}

/* Finds parameter `key` (ignoring case) in the ';'-separated parameters of a
 * header value of length vlen — `form-data; name="image"; filename="a.png"`
 * or `multipart/form-data; boundary=xyz` — and copies its value, unquoted,
 * into out. Returns the value's length, -1 when absent, -2 when it does not
 * fit or a quoted string is not closed. */
static long header_param(const char *v, size_t vlen, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key), i = 0;
    /* Skip the leading token (the media type or disposition type). */
    while (i < vlen && v[i] != ';')
        i++;
    while (i < vlen) {
        i++; /* past ';' */
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        size_t name = i;
        while (i < vlen && v[i] != '=' && v[i] != ';')
            i++;
        size_t name_end = i;
        while (name_end > name && (v[name_end - 1] == ' ' || v[name_end - 1] == '\t'))
            name_end--;
        if (i >= vlen || v[i] == ';')
            continue; /* a parameter without a value */
        i++; /* past '=' */
        while (i < vlen && (v[i] == ' ' || v[i] == '\t'))
            i++;
        int match = name_end - name == klen && strncasecmp(v + name, key, klen) == 0;
        size_t o = 0;
        if (i < vlen && v[i] == '"') {
            i++;
            int closed = 0;
            while (i < vlen) {
                char c = v[i++];
                if (c == '"') {
                    closed = 1;
                    break;
                }
                if (c == '\\' && i < vlen)
                    c = v[i++];
                if (match) {
                    if (o + 1 >= len)
                        return -2;
                    out[o++] = c;
                }
            }
            if (!closed)
                return -2;
            while (i < vlen && v[i] != ';')
                i++;
        } else {
            size_t start = i;
            while (i < vlen && v[i] != ';')
                i++;
            size_t end = i;
            while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
                end--;
            if (match) {
                if (end - start + 1 > len)
                    return -2;
                memcpy(out, v + start, end - start);
                o = end - start;
            }
        }
        if (match) {
            out[o] = '\0';
            return (long)o;
        }
    }
    return -1;
}

/* --- multipart/form-data ------------------------------------------------- */

long multipart_boundary(const char *content_type, char *boundary, size_t len, char *err)
{
    char type[64];
    media_type(content_type, type, sizeof type);
    if (strcmp(type, "multipart/form-data") != 0)
        return strata_fail(err, STRATA_E_UNSUPPORTED, "the body is %s, not multipart/form-data",
                           type[0] ? type : "untyped");
    /* RFC 2046: a boundary is 1 to 70 characters. */
    long blen = header_param(content_type, strlen(content_type), "boundary", boundary, len);
    if (blen < 1 || blen > 70)
        return strata_fail(err, STRATA_E_FORMAT,
                           "multipart/form-data needs a boundary parameter of 1 to 70 "
                           "characters in its Content-Type");
    return blen;
}

int multipart_part_headers(const char *h, size_t len, int index, struct multipart_part *ph,
                           char *err)
{
    memset(ph, 0, sizeof *ph);
    int has_disposition = 0;
    size_t i = 0;
    while (i < len) {
        const char *eol = memmem(h + i, len - i, "\r\n", 2);
        size_t line_end = eol ? (size_t)(eol - h) : len;
        const char *line = h + i;
        size_t llen = line_end - i;
        const char *colon = memchr(line, ':', llen);
        if (!colon)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has a header line without ':'", index);
        size_t nlen = (size_t)(colon - line);
        const char *val = colon + 1;
        size_t vlen = llen - nlen - 1;
        while (vlen && (*val == ' ' || *val == '\t')) {
            val++;
            vlen--;
        }
        if (nlen == 19 && strncasecmp(line, "Content-Disposition", 19) == 0) {
            has_disposition = 1;
            long n = header_param(val, vlen, "name", ph->name, sizeof ph->name);
            if (n == -2)
                return strata_fail(err, STRATA_E_FORMAT,
                                   "multipart part %d: malformed or overlong name", index);
            ph->has_name = n >= 0;
            n = header_param(val, vlen, "filename", ph->filename, sizeof ph->filename);
            if (n == -2)
                ph->filename[0] = '\0'; /* an overlong filename is only informative */
        } else if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
            char tmp[sizeof ph->content_type];
            size_t n = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
            memcpy(tmp, val, n);
            tmp[n] = '\0';
            media_type(tmp, ph->content_type, sizeof ph->content_type);
        }
        i = line_end + 2;
    }
    if (!has_disposition || !ph->has_name)
        return strata_fail(err, STRATA_E_FORMAT,
                           "multipart part %d has no Content-Disposition with a name", index);
    return 0;
}

int request_form_part(const struct request *req, const char *name, struct upload *out,
                      char *err)
{
    memset(out, 0, sizeof *out);
    char boundary[80];
    long blen = multipart_boundary(req->content_type, boundary, sizeof boundary, err);
    if (blen < 0)
        return (int)blen;
    char delim[2 + 80 + 2]; /* "\r\n--" + boundary */
    size_t dlen = (size_t)snprintf(delim, sizeof delim, "\r\n--%s", boundary);

    const char *b = (const char *)req->body;
    size_t len = req->body ? req->body_len : 0;
    size_t p;
    /* The first delimiter may open the body or follow a preamble. */
    if (len >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0) {
        p = dlen - 2;
    } else {
        const char *d = len ? memmem(b, len, delim, dlen) : NULL;
        if (!d)
            return strata_fail(err, STRATA_E_FORMAT,
                               "the multipart body does not contain its boundary \"%s\"",
                               boundary);
        p = (size_t)(d - b) + dlen;
    }

    int found = 0;
    for (int index = 1;; index++) {
        /* After a delimiter: "--" closes the body, else CRLF starts a part
         * (optional spaces before it are transport padding). */
        if (len - p >= 2 && b[p] == '-' && b[p + 1] == '-')
            break;
        while (p < len && (b[p] == ' ' || b[p] == '\t'))
            p++;
        if (len - p < 2 || b[p] != '\r' || b[p + 1] != '\n')
            return strata_fail(err, STRATA_E_FORMAT,
                               "the multipart body ends without its closing boundary "
                               "\"--%s--\"",
                               boundary);
        p += 2;
        size_t window = len - p < MULTIPART_MAX_HEADER_BLOCK ? len - p : MULTIPART_MAX_HEADER_BLOCK;
        const char *hend = memmem(b + p, window, "\r\n\r\n", 4);
        if (!hend)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no end of headers (or over %d bytes of "
                               "headers)",
                               index, MULTIPART_MAX_HEADER_BLOCK);
        struct multipart_part ph;
        int rc = multipart_part_headers(b + p, (size_t)(hend - (b + p)), index, &ph, err);
        if (rc < 0)
            return rc;
        size_t content = (size_t)(hend - b) + 4;
        const char *d = memmem(b + content, len - content, delim, dlen);
        if (!d)
            return strata_fail(err, STRATA_E_FORMAT,
                               "multipart part %d has no closing boundary \"--%s\" after it: "
                               "the body is truncated or the boundary is wrong",
                               index, boundary);
        if (!found && strcmp(ph.name, name) == 0) {
            found = 1;
            out->data = (const unsigned char *)b + content;
            out->len = (size_t)(d - (b + content));
            snprintf(out->content_type, sizeof out->content_type, "%s", ph.content_type);
            snprintf(out->filename, sizeof out->filename, "%s", ph.filename);
        }
        p = (size_t)(d - b) + dlen;
    }
    if (!found) {
        memset(out, 0, sizeof *out);
        return strata_fail(err, STRATA_E_NOTFOUND, "the form has no field named \"%s\"", name);
    }
    return 0;
}

static int is_image_type(const char *t)
{
    return strcmp(t, "image/png") == 0 || strcmp(t, "image/jpeg") == 0 ||
           strcmp(t, "image/jpg") == 0;
}

int request_image_body(const struct request *req, const char *field, struct upload *out,
                       char *err)
{
    memset(out, 0, sizeof *out);
    if (!field)
        field = "image";
    char type[64];
    media_type(req->content_type, type, sizeof type);
    if (is_image_type(type)) {
        if (req->body_len == 0 || !req->body)
            return strata_fail(err, STRATA_E_FORMAT, "the request body is empty: send the image "
                                                     "bytes");
        out->data = req->body;
        out->len = req->body_len;
        snprintf(out->content_type, sizeof out->content_type, "%s", type);
        return 0;
    }
    if (strcmp(type, "multipart/form-data") == 0) {
        int rc = request_form_part(req, field, out, err);
        if (rc == STRATA_E_NOTFOUND)
            return strata_fail(err, STRATA_E_FORMAT,
                               "the form has no field \"%s\": send the image in a file field "
                               "named \"%s\"",
                               field, field);
        if (rc < 0)
            return rc;
        const char *pt = out->content_type;
        if (pt[0] && !is_image_type(pt) && strcmp(pt, "application/octet-stream") != 0) {
            int code = strata_fail(err, STRATA_E_UNSUPPORTED,
                                   "the form field \"%s\" is %s: send a PNG or JPEG image", field,
                                   pt);
            memset(out, 0, sizeof *out);
            return code;
        }
        if (out->len == 0) {
            memset(out, 0, sizeof *out);
            return strata_fail(err, STRATA_E_FORMAT, "the form field \"%s\" is empty", field);
        }
        return 0;
    }
    return strata_fail(err, STRATA_E_UNSUPPORTED,
                       "a body of type %s is not an image: send image/png, image/jpeg or "
                       "multipart/form-data with a field \"%s\"",
                       type[0] ? type : "(none)", field);
}
