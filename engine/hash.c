/* hash.c — FNV-1a hashes and checksums (see hash.h). */
#include "hash.h"

#include <string.h>

uint64_t hash_fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= HASH_FNV_PRIME;
    }
    return h;
}

uint64_t hash_u64(uint64_t h, uint64_t v)
{
    return hash_fnv1a(h, &v, sizeof v);
}

uint64_t hash_str(uint64_t h, const char *s)
{
    uint32_t len = (uint32_t)strlen(s);
    h = hash_fnv1a(h, &len, sizeof len);
    return hash_fnv1a(h, s, len);
}

uint64_t hash_checksum64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t lane[4] = {HASH_FNV_OFFSET, HASH_FNV_OFFSET ^ 1, HASH_FNV_OFFSET ^ 2, HASH_FNV_OFFSET ^ 3};
    size_t i = 0;
    for (; i + 32 <= len; i += 32)
        for (int j = 0; j < 4; j++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * j, 8);
            lane[j] = (lane[j] ^ w) * HASH_FNV_PRIME;
        }
    uint64_t h = hash_fnv1a(HASH_FNV_OFFSET, lane, sizeof lane);
    h = hash_fnv1a(h, p + i, len - i);
    uint64_t n = len;
    return hash_fnv1a(h, &n, sizeof n);
}
