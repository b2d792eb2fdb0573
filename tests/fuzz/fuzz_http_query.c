/*
 * libFuzzer target for query strings: http_query_param, on a request whose libh2o part is
 * a zeroed h2o_req_t with only the path and query_at set (all that it reads).
 *
 * Input: one byte for the output buffer's size, the parameter's name up to the first '\n',
 * then the path with its query. A value found is NUL-free and fits the buffer; percent-
 * encoded in full into another query, it must decode to the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

/* http_query_param for name in path (a copy of exactly path_len bytes). */
static int query(const char *path, size_t path_len, const char *name, char *buf, size_t buflen)
{
    char *copy = fuzz_copy(path, path_len);
    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    req.path = h2o_iovec_init(copy, path_len);
    const char *q = memchr(copy, '?', path_len);
    req.query_at = q != NULL ? (size_t)(q - copy) : SIZE_MAX;
    http_request_t r = {.h2o = &req};
    int n = http_query_param(&r, name, buf, buflen);
    free(copy);
    return n;
}

/* "/?NAME=%XX%XX..." with every byte of value encoded. */
static void check_encoded(const char *name, const char *value, size_t len, size_t buflen)
{
    size_t name_len = strlen(name), cap = 3 + name_len + 3 * len + 1;
    char *path = malloc(cap), *buf = malloc(buflen);
    fuzz_check(path != NULL && buf != NULL);
    size_t o = (size_t)snprintf(path, cap, "/?%s=", name);
    for (size_t i = 0; i < len; i++)
        o += (size_t)snprintf(path + o, cap - o, "%%%02X", (unsigned char)value[i]);
    fuzz_check(query(path, o, name, buf, buflen) == (int)len && memcmp(buf, value, len) == 0);
    free(path);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t buflen = 1 + data[0], name_len, path_len;
    data++, size--;
    char *name = fuzz_string(fuzz_next(&data, &size, '\n', &name_len), name_len);
    const char *path = (const char *)data;
    path_len = size;
    char *buf = malloc(buflen);
    fuzz_check(buf != NULL);
    int n = query(path, path_len, name, buf, buflen);
    fuzz_check(n >= -2);
    if (n >= 0) {
        fuzz_check((size_t)n < buflen && strlen(buf) == (size_t)n);
        /* A name holding '&' or '=' can never match a key: the round trip is for the rest. */
        if (strpbrk(name, "&=") == NULL && strlen(name) == name_len)
            check_encoded(name, buf, (size_t)n, buflen);
    }
    free(buf);
    free(name);
    return 0;
}
