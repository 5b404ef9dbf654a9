/*
 * form_spool.h — a multipart/form-data body held in a file (a spooled
 * upload, router.h's ROUTE_SPOOL_BODY) split into one file per field, in
 * constant memory: the body is read in blocks and each field's bytes are
 * written out as they pass, so a 300 MB model costs a 256 KB buffer.
 *
 *     struct form_field f[] = {
 *         {.name = "meta", .max_bytes = 64 << 10, .required = 1},
 *         {.name = "model", .max_bytes = 300 << 20, .required = 1},
 *         {.name = "images", .max_bytes = 1ull << 30},
 *     };
 *     if (form_spool(req->body_fd, req->body_len, req->content_type, dir, f, 3, err) < 0) ...
 *     // f[1].path is "<dir>/model", f[1].size its length, f[1].filename as sent
 *
 * Only the listed fields are accepted, each at most once: a form is a
 * contract, and an unknown or repeated field is more likely a client's
 * mistake than something to ignore.
 */
#ifndef STRATA_FORM_SPOOL_H
#define STRATA_FORM_SPOOL_H

#include <stdint.h>

#include "status.h"

struct form_field {
    const char *name;   /* the field's name in the form (a plain file name) */
    uint64_t max_bytes; /* its limit */
    int required;
    /* Filled by form_spool: */
    int present;
    uint64_t size;
    char path[1200];        /* <dir>/<name>, written when present */
    char filename[256];     /* as the client named it, may be empty */
    char content_type[128]; /* the part's declared type, lower case, may be empty */
};

/* Splits the body (len bytes of fd, read with pread from offset 0) of
 * Content-Type content_type into <dir>/<field name> files (created, never
 * overwritten: dir should be fresh). Returns 0, or with err:
 *   STRATA_E_UNSUPPORTED  the body is not multipart/form-data;
 *   STRATA_E_FORMAT       broken multipart, an unknown or repeated field, a
 *                         required field missing;
 *   STRATA_E_LIMIT        a field over its max_bytes (the message names it);
 *   STRATA_E_IO           reading the body or writing a field failed.
 * Files already written stay in dir on failure: the caller removes dir. */
int form_spool(int fd, uint64_t len, const char *content_type, const char *dir,
               struct form_field *fields, int n_fields, char *err);

#endif
