/*
 * The growing output buffer of every writer that does not know its size in advance (the
 * mailer's message, the User object, /metrics).
 */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: the User object, the path every authenticated request takes, fits
 * in one. */
#define UTIL_BUF_FIRST 512

int util_buf_reserve(util_buf_t *b, size_t n)
{
    if (b->failed)
        return -1;
    if (b->cap > b->len && n < b->cap - b->len)
        return 0;
    size_t cap = b->cap != 0 ? b->cap : UTIL_BUF_FIRST;
    while (cap - b->len <= n && cap <= SIZE_MAX / 2)
        cap *= 2;
    char *data = cap - b->len > n ? realloc(b->data, cap) : NULL;
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

void util_buf_put(util_buf_t *b, const void *s, size_t n)
{
    if (util_buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void util_buf_str(util_buf_t *b, const char *s)
{
    util_buf_put(b, s, strlen(s));
}

/* Formats into the room there is; only when that is too small, grows and formats again. */
void util_buf_printf(util_buf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data != NULL ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= room && util_buf_reserve(b, (size_t)n) == 0) {
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (n < 0)
        b->failed = 1;
    if (b->failed) {
        if (b->data != NULL)
            b->data[b->len] = '\0'; /* a cut-short attempt may have written there */
        return;
    }
    b->len += (size_t)n;
}

char *util_buf_take(util_buf_t *b, size_t *len)
{
    char *data = b->failed ? NULL : b->data;
    if (len != NULL)
        *len = data != NULL ? b->len : 0;
    if (data == NULL)
        free(b->data);
    *b = (util_buf_t){0};
    return data;
}

void util_buf_free(util_buf_t *b)
{
    free(b->data);
    *b = (util_buf_t){0};
}
