/*
 * readfile.h — reading a whole regular file into memory.
 *
 * One place for what the weights, cache and image readers all need: refuse
 * what is not a regular file, refuse from its size a file over a limit
 * before allocating for it, and retry reads that a signal interrupts.
 */
#ifndef STRATA_READFILE_H
#define STRATA_READFILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the file at path into a new buffer: *data (the caller frees it; at
 * least 1 byte is allocated, so an empty file gives a valid pointer) and
 * *len. Fails, with *data NULL and err naming the path, with
 * STRATA_E_NOTFOUND if it does not exist, STRATA_E_IO if it cannot be
 * opened or read or is not a regular file, STRATA_E_LIMIT if it holds more
 * than max_bytes, STRATA_E_NOMEM. */
int read_whole_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err);

#endif
