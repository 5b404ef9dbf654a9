/* status.c — error messages for recoverable failures (see status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

int strata_fail(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, STRATA_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *strata_status_name(int code)
{
    switch (code) {
    case STRATA_OK: return "ok";
    case STRATA_E_IO: return "io";
    case STRATA_E_FORMAT: return "format";
    case STRATA_E_LIMIT: return "limit";
    case STRATA_E_NOMEM: return "nomem";
    case STRATA_E_ARG: return "argument";
    case STRATA_E_UNSUPPORTED: return "unsupported";
    case STRATA_E_NOTFOUND: return "not_found";
    case STRATA_E_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}
