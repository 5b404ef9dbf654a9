/*
 * multipart.h — the bodies of upload requests: multipart/form-data fields
 * found in a body held in memory, and the image an upload endpoint received
 * (a raw image/png or image/jpeg body, or a form field). The pieces of the
 * multipart grammar are shared with the streaming reader of imports
 * (form_spool.h).
 *
 * Nothing here allocates: an upload points into the request's body.
 */
#ifndef STRATA_MULTIPART_H
#define STRATA_MULTIPART_H

#include <stddef.h>

#include "request.h"

/* One part of a multipart/form-data body, or a whole raw body. The bytes
 * are borrowed from the request body; the strings are copies (truncated to
 * their buffers; empty when the part did not declare them). */
struct upload {
    const unsigned char *data;
    size_t len;
    char content_type[128]; /* the part's (or body's) declared type, lower case */
    char filename[256];
};

/* Finds the form field `name` in a multipart/form-data body. Returns 0 and
 * fills *out; STRATA_E_NOTFOUND when the body is well-formed multipart
 * without that field; STRATA_E_UNSUPPORTED when the body is not multipart;
 * STRATA_E_FORMAT when the multipart structure is broken (no boundary
 * parameter, no closing delimiter, a part without headers or name). An
 * actionable message goes into err (may be NULL). */
int request_form_part(const struct request *req, const char *name, struct upload *out,
                      char *err);

/* The image an upload endpoint received: either the raw body of an
 * image/png or image/jpeg request, or the form field `field` (NULL means
 * "image") of a multipart/form-data request whose declared part type is
 * image/png, image/jpeg, application/octet-stream or absent (the decoder
 * sniffs the bytes). Returns 0 and fills *out, or
 *   STRATA_E_UNSUPPORTED — the request (or part) has another content type: 415;
 *   STRATA_E_FORMAT      — empty body, broken multipart, missing field: 400;
 * with a message in err. response_fail() maps these codes to the reply. */
int request_image_body(const struct request *req, const char *field, struct upload *out,
                       char *err);

/* The pieces of multipart/form-data parsing that a streaming reader
 * (form_spool.h) shares with request_form_part. */
#define MULTIPART_MAX_HEADER_BLOCK 16384

struct multipart_part {
    char name[256];
    int has_name;
    char filename[256];
    char content_type[128]; /* lower case, without parameters */
};

/* The boundary parameter of a multipart/form-data Content-Type (1 to 70
 * characters) into boundary (at least 80 bytes). Returns its length, or
 * STRATA_E_UNSUPPORTED (another media type) / STRATA_E_FORMAT (no usable
 * boundary) with err. */
long multipart_boundary(const char *content_type, char *boundary, size_t len, char *err);

/* Parses the header block of part `index` (1-based, for messages): h[0..len)
 * without the blank line that ends it. Returns 0, or STRATA_E_FORMAT with
 * err (a line without ':', no Content-Disposition with a name). */
int multipart_part_headers(const char *h, size_t len, int index, struct multipart_part *ph,
                           char *err);

#endif
