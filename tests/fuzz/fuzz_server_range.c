/*
 * libFuzzer target for the file download's headers: handlers_parse_range (Range),
 * handlers_etag_matches (If-None-Match) and handlers_content_disposition (the file's name).
 *
 * Input: 8 bytes of file size (bit 7 of the first clear: a size below 65536), then the Range
 * value, the If-None-Match value and the file name, separated by '\n'. A satisfiable range
 * lies inside the file and reads back the same when written as "bytes=first-last"; a list
 * that ends with the file's ETag matches it; the Content-Disposition value is printable
 * ASCII only (the name cannot break out of the header), and its filename* decodes to the name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "handlers/handlers.h"

#define ETAG "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\""

static void check_range(const uint8_t *value, size_t len, uint64_t size)
{
    char *header = fuzz_copy(value, len);
    uint64_t offset = UINT64_MAX, count = UINT64_MAX;
    int rc = handlers_parse_range(header, len, size, &offset, &count);
    fuzz_check(rc >= -1 && rc <= 1);
    /* Positions are read up to 19 digits: the round trip is for ranges that end below. */
    if (rc == 1)
        fuzz_check(count >= 1 && offset < size && count <= size - offset);
    if (rc == 1 && offset + count - 1 <= 9999999999999999999u) {
        char again[64];
        int n = snprintf(again, sizeof(again), "bytes=%llu-%llu", (unsigned long long)offset,
                         (unsigned long long)(offset + count - 1));
        uint64_t offset2, count2;
        fuzz_check(handlers_parse_range(again, (size_t)n, size, &offset2, &count2) == 1 &&
                   offset2 == offset && count2 == count);
    }
    free(header);
}

static void check_etag(const uint8_t *value, size_t len)
{
    char *header = fuzz_copy(value, len);
    handlers_etag_matches(header, len, ETAG);
    free(header);
    size_t n = len + sizeof(ETAG) + 2;
    char *list = malloc(n);
    fuzz_check(list != NULL);
    memcpy(list, value, len);
    memcpy(list + len, ", " ETAG, sizeof(", " ETAG));
    fuzz_check(handlers_etag_matches(list, n - 1, ETAG) == 1);
    free(list);
}

/* Percent-decodes what follows "filename*=UTF-8''" and compares it with the name. The last
 * one: the quoted ASCII fallback before it may spell the same words. */
static void check_filename_star(const char *out, const char *name)
{
    const char *p = NULL;
    for (const char *at = out; (at = strstr(at, "\"; filename*=UTF-8''")) != NULL; at++)
        p = at;
    fuzz_check(p != NULL);
    p += strlen("\"; filename*=UTF-8''");
    size_t at = 0;
    for (; *p != '\0'; p++, at++) {
        unsigned c = (unsigned char)*p;
        if (c == '%') {
            fuzz_check(sscanf(p + 1, "%2X", &c) == 1);
            p += 2;
        }
        fuzz_check(name[at] != '\0' && (unsigned char)name[at] == c);
    }
    fuzz_check(name[at] == '\0');
}

static void check_disposition(const uint8_t *value, size_t len, size_t outlen)
{
    char *name = fuzz_string(value, len), *out = malloc(outlen);
    fuzz_check(out != NULL);
    size_t need = strlen(name) * 4 + 64;
    int rc = handlers_content_disposition(name, out, outlen);
    fuzz_check(rc == 0 || (rc == -1 && outlen < need));
    if (rc == 0) {
        fuzz_check(strlen(out) < outlen);
        for (const char *p = out; *p != '\0'; p++)
            fuzz_check(*p >= 0x20 && *p < 0x7f);
        check_filename_star(out, name);
    }
    free(out);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t file_size = 0;
    for (int i = 0; i < 8; i++)
        file_size = file_size << 8 | data[i];
    if (!(data[0] & 0x80))
        file_size &= 0xffff;
    size_t outlen = 1 + (data[1] & 0x7f) * ((data[1] & 0x80) ? 16 : 1);
    data += 8, size -= 8;
    size_t range_len, inm_len;
    const uint8_t *range = fuzz_next(&data, &size, '\n', &range_len);
    const uint8_t *inm = fuzz_next(&data, &size, '\n', &inm_len);
    check_range(range, range_len, file_size);
    check_etag(inm, inm_len);
    check_disposition(data, size, outlen);
    return 0;
}
