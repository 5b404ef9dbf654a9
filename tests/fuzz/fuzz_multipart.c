/*
 * fuzz_multipart.c — libFuzzer target for the upload body reader
 * (request_image_body, request_form_part): the input's first line is the
 * request's Content-Type, the rest its body. A part found lies inside the
 * body; anything else is refused with one of the documented statuses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_part(int rc, const struct upload *up, const uint8_t *body, size_t len)
{
    if (rc == 0) {
        if (up->len > len || (up->len && (up->data < body || up->data + up->len > body + len)))
            abort();
        if (!memchr(up->content_type, '\0', sizeof up->content_type) ||
            !memchr(up->filename, '\0', sizeof up->filename))
            abort();
    }
    else if (rc != STRATA_E_FORMAT && rc != STRATA_E_UNSUPPORTED && rc != STRATA_E_NOTFOUND)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
    size_t head = nl ? (size_t)(nl - data) : 0;
    char ctype[513];
    memcpy(ctype, data, head);
    ctype[head] = '\0';
    if (memchr(ctype, '\0', head))
        return 0; /* a header value cannot hold NUL */
    const uint8_t *rest = nl ? nl + 1 : data;
    size_t len = size - (size_t)(rest - data);
    uint8_t *body = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    memcpy(body, rest, len);
    struct request req = {.content_type = head ? ctype : NULL, .body = body, .body_len = len};
    struct upload up;
    char err[STRATA_ERR_LEN];
    check_part(request_image_body(&req, "image", &up, err), &up, body, len);
    check_part(request_form_part(&req, "meta", &up, err), &up, body, len);
    free(body);
    return 0;
}
