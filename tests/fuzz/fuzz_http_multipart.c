/*
 * libFuzzer target for the multipart/form-data parser (see tests/fuzz/CMakeLists.txt).
 *
 * Input: one seed byte, a Content-Type value up to the first '\n', then the body. The seed
 * chooses how the body is cut into chunks and the limits. The body is parsed twice, cut
 * and whole, and both runs must agree on the status and on every callback: the parser
 * promises that how a body arrives never changes what it means. Each chunk is a separate
 * allocation of its exact size, so AddressSanitizer catches a read past a chunk.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

typedef struct {
    uint64_t hash; /* FNV-1a over every event and content byte, in order */
    size_t body_len;
    size_t part_bytes, total_bytes;
    int in_part, begins, ends;
    int abort_at_end; /* the current part is named "end" */
} events_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

static void mix(events_t *e, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++)
        e->hash = (e->hash ^ b[i]) * 0x100000001b3u;
}

static void mix_string(events_t *e, const char *s, size_t len)
{
    if (s == NULL) {
        mix(e, "\xff", 1);
        return;
    }
    check(strlen(s) == len);
    mix(e, &len, sizeof(len));
    mix(e, s, len);
}

static int on_begin(void *user, const http_multipart_part_t *part)
{
    events_t *e = user;
    check(!e->in_part && part->name != NULL && part->name_len > 0 && part->index == e->begins);
    e->in_part = 1;
    e->begins++;
    e->part_bytes = 0;
    mix(e, "B", 1);
    mix_string(e, part->name, part->name_len);
    mix_string(e, part->filename, part->filename_len);
    mix_string(e, part->content_type, part->content_type_len);
    /* Aborts at points that do not depend on the cuts, so that those paths are compared
     * too (an abort from part_data would cut the content at a chunk-dependent byte). */
    e->abort_at_end = strcmp(part->name, "end") == 0;
    return strcmp(part->name, "abort") == 0;
}

static int on_data(void *user, const char *data, size_t len)
{
    events_t *e = user;
    check(e->in_part && len > 0);
    e->part_bytes += len;
    e->total_bytes += len;
    check(e->part_bytes <= e->body_len && e->total_bytes <= e->body_len);
    mix(e, data, len);
    return 0;
}

static int on_end(void *user)
{
    events_t *e = user;
    check(e->in_part);
    e->in_part = 0;
    e->ends++;
    mix(e, "E", 1);
    return e->abort_at_end;
}

static const http_multipart_callbacks_t callbacks = {on_begin, on_data, on_end};

static uint32_t next_random(uint32_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return *state;
}

/* Bits 0-1 of the seed: one-byte chunks, 1..16, 1..512, or two chunks. */
static size_t next_chunk(uint8_t seed, uint32_t *rng, size_t left, int *calls)
{
    size_t n;
    switch (seed & 3) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + next_random(rng) % 16;
        break;
    case 2:
        n = 1 + next_random(rng) % 512;
        break;
    default:
        n = (*calls)++ == 0 ? next_random(rng) % (left + 1) : left;
        break;
    }
    return n < left ? n : left;
}

static http_multipart_status_t feed(http_multipart_t *p, const uint8_t *body, size_t len)
{
    char *copy = malloc(len + (len == 0));
    check(copy != NULL);
    memcpy(copy, body, len);
    http_multipart_status_t st = http_multipart_feed(p, copy, len);
    free(copy);
    return st;
}

/* whole: the body in one chunk; otherwise cut as the seed says. */
static http_multipart_status_t run(const char *boundary, size_t blen, const http_multipart_limits_t *limits,
                                   const uint8_t *body, size_t len, uint8_t seed, int whole, events_t *e)
{
    memset(e, 0, sizeof(*e));
    e->hash = 0xcbf29ce484222325u;
    e->body_len = len;
    http_multipart_t *p = http_multipart_new(boundary, blen, limits, &callbacks, e);
    check(p != NULL);
    uint32_t rng = 0x9e3779b9u ^ seed;
    int calls = 0;
    http_multipart_status_t st = HTTP_MULTIPART_OK;
    size_t at = 0;
    do {
        size_t n = whole ? len - at : next_chunk(seed, &rng, len - at, &calls);
        st = feed(p, body + at, n);
        at += n;
    } while (st == HTTP_MULTIPART_OK && at < len);
    http_multipart_status_t final = http_multipart_finish(p);
    check(st == HTTP_MULTIPART_OK || final == st);
    /* A finished or failed parser stays so and calls nobody. */
    uint64_t hash = e->hash;
    check(http_multipart_feed(p, "\r\n--x\r\n\r\n", 9) == final);
    check(e->hash == hash);
    http_multipart_free(p);
    if (final == HTTP_MULTIPART_OK)
        check(!e->in_part && e->begins == e->ends);
    return final;
}

static int is_bchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

/* Returns the boundary's length, or -1, having checked what the extractor promises. */
static int extract_boundary(const uint8_t *ct, size_t len, char *out, size_t outlen)
{
    int n = http_multipart_boundary((const char *)ct, len, out, outlen);
    if (n < 0)
        return -1;
    check(n >= 1 && n <= HTTP_MULTIPART_BOUNDARY_MAX && strlen(out) == (size_t)n && out[n - 1] != ' ');
    for (int i = 0; i < n; i++)
        check(is_bchar((unsigned char)out[i]));
    char exact[HTTP_MULTIPART_BOUNDARY_MAX + 1];
    check(http_multipart_boundary((const char *)ct, len, exact, (size_t)n + 1) == n &&
          strcmp(exact, out) == 0);
    check(http_multipart_boundary((const char *)ct, len, exact, (size_t)n) == -1);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t seed = data[0];
    const uint8_t *rest = data + 1, *nl = memchr(rest, '\n', size - 1);
    const uint8_t *body = nl != NULL ? nl + 1 : rest;
    size_t body_len = size - (size_t)(body - data);

    char boundary[128];
    int blen = nl != NULL ? extract_boundary(rest, (size_t)(nl - rest), boundary, sizeof(boundary)) : -1;
    if (blen < 0) {
        /* Still exercise the body parser when the Content-Type does not parse. */
        strcpy(boundary, "AaB03x");
        blen = 6;
    }
    /* Bits 2-3: the header limit, 4-5: the part limit, 6: a preamble limit. */
    http_multipart_limits_t limits = {
        .max_header_bytes = (size_t)64 << ((seed >> 2) & 3),
        .max_parts = 1 + ((seed >> 4) & 3),
        .max_preamble = (seed & 0x40) ? 32 : 0,
    };
    events_t cut, whole;
    http_multipart_status_t a = run(boundary, (size_t)blen, &limits, body, body_len, seed, 0, &cut);
    http_multipart_status_t b = run(boundary, (size_t)blen, &limits, body, body_len, seed, 1, &whole);
    check(a == b && cut.hash == whole.hash && cut.total_bytes == whole.total_bytes &&
          cut.begins == whole.begins && cut.ends == whole.ends);
    return 0;
}
