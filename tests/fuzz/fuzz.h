/*
 * What the libFuzzer targets share: a check that aborts (so that the fuzzer keeps the input)
 * and exact-size copies of the input's pieces, so that AddressSanitizer catches a parser that
 * reads one byte past what it was given.
 */
#ifndef HYDRANT_FUZZ_H
#define HYDRANT_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void fuzz_check(int ok)
{
    if (!ok)
        abort();
}

/* A malloc'd copy of len bytes (never NULL; len 0 is one byte, still not to be read). */
static inline char *fuzz_copy(const void *data, size_t len)
{
    char *copy = malloc(len + (len == 0));
    fuzz_check(copy != NULL);
    memcpy(copy, data, len);
    return copy;
}

/* The same, NUL-terminated (a C string that ends at the first NUL of data, if any). */
static inline char *fuzz_string(const void *data, size_t len)
{
    char *copy = malloc(len + 1);
    fuzz_check(copy != NULL);
    memcpy(copy, data, len);
    copy[len] = '\0';
    return copy;
}

/* Cuts the next piece off *data up to (not including) sep, or all that is left. */
static inline const uint8_t *fuzz_next(const uint8_t **data, size_t *size, uint8_t sep, size_t *len)
{
    const uint8_t *piece = *data, *end = memchr(*data, sep, *size);
    *len = end != NULL ? (size_t)(end - piece) : *size;
    *data += *len + (end != NULL);
    *size -= *len + (end != NULL);
    return piece;
}

#endif
