/*
 * hash.h — the 64-bit FNV-1a hashes that key strata's caches and check the
 * files it writes. Not cryptographic: they detect corruption and change,
 * not tampering. Nothing here allocates or fails.
 */
#ifndef STRATA_HASH_H
#define STRATA_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_FNV_OFFSET 0xcbf29ce484222325ULL
#define HASH_FNV_PRIME 0x100000001b3ULL

/* Continues the FNV-1a hash h over len bytes. */
uint64_t hash_fnv1a(uint64_t h, const void *data, size_t len);

/* Continues h with a 64-bit value, and with a string and its length. */
uint64_t hash_u64(uint64_t h, uint64_t v);
uint64_t hash_str(uint64_t h, const char *s);

/* A checksum of a buffer: FNV-1a on 64-bit words in four interleaved lanes
 * (about 8x the speed of the byte loop, which matters for tens of MB), the
 * lanes, the tail and the length then folded byte-wise. Each lane step
 * x -> (x ^ w) * P is a bijection of x for a given w, so any single changed
 * word changes the result. */
uint64_t hash_checksum64(const void *data, size_t len);

#endif
