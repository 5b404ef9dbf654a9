/*
 * status.h — how the engine reports failure.
 *
 * Two tiers. A programmer error (a NULL where the contract forbids it, a
 * shape that cannot happen) asserts with file:line. Anything a user can cause
 * (a missing file, a corrupt image, a bad model.json) is returned as one of
 * the negative codes below, with a sentence the user can act on written into
 * a caller-supplied buffer of STRATA_ERR_LEN bytes. The library never exits.
 */
#ifndef STRATA_STATUS_H
#define STRATA_STATUS_H

#define STRATA_ERR_LEN 512

enum strata_status {
    STRATA_OK = 0,
    STRATA_E_IO = -1,       /* a file or folder could not be read or written */
    STRATA_E_FORMAT = -2,   /* the bytes are not what they claim to be (corrupt, truncated) */
    STRATA_E_LIMIT = -3,    /* the input is valid but over a size limit */
    STRATA_E_NOMEM = -4,    /* an allocation failed */
    STRATA_E_ARG = -5,      /* a parameter or configuration value is out of range */
    STRATA_E_UNSUPPORTED = -6, /* a valid input that strata does not handle */
    STRATA_E_NOTFOUND = -7, /* a named thing (class, layer, model) does not exist */
    STRATA_E_INTERRUPTED = -8, /* the caller asked to stop */
};

/* Writes a printf-style message into err (which may be NULL) and returns code,
 * so a failure reads `return strata_fail(err, STRATA_E_IO, "...", ...);`. */
int strata_fail(char *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A short constant name for a status code ("io", "format", ...). Can't fail. */
const char *strata_status_name(int code);

#endif
