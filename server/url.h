/*
 * url.h — percent-encoding (RFC 3986) both ways: decoding what a client sent
 * (path parameters, query strings, static file paths) and encoding one path
 * segment of a URL the server writes into a reply.
 */
#ifndef STRATA_URL_H
#define STRATA_URL_H

#include <stddef.h>

/* Decodes %XX escapes of s[0..len) into out (at least len + 1 bytes), also
 * '+' to a space when plus_is_space. NUL-terminates. Returns the decoded
 * length, or -1 for a malformed escape. The result may contain NUL bytes
 * (from %00); callers that need a C string check the length. */
long http_percent_decode(const char *s, size_t len, char *out, int plus_is_space);

/* Percent-encodes s as one URL path segment (RFC 3986 unreserved kept)
 * into out; returns out. Truncates at len. */
char *url_segment(const char *s, char *out, size_t len);

#endif
