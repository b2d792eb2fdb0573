/*
 * libFuzzer target for JSON request bodies: http_json_parse_object (limits, depth before
 * parsing, the \u0000 refusal and its details) and http_is_json_content_type.
 *
 * Input: one byte choosing the limits, then the body. A body that is accepted must come back
 * the same when dumped and parsed again; a refused one leaves nothing behind, except the 422
 * details for \u0000, which must be a non-empty object of at most 16 string reasons.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http/http.h"

static void check_nul_details(const json_t *details)
{
    const char *key;
    json_t *reason;
    fuzz_check(json_is_object(details) && json_object_size(details) >= 1 && json_object_size(details) <= 16);
    json_object_foreach((json_t *)details, key, reason) fuzz_check(json_is_string(reason) && key != NULL);
}

/* An accepted body, dumped and parsed again under the same depth and string limits. */
static void check_round_trip(const json_t *doc, const http_json_limits_t *limits)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    fuzz_check(text != NULL);
    http_json_limits_t again = *limits;
    again.max_bytes = SIZE_MAX;
    json_t *back = NULL;
    fuzz_check(http_json_parse_object(text, strlen(text), &again, &back) == HTTP_JSON_OK);
    fuzz_check(json_equal(doc, back));
    json_decref(back);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t seed = data[0];
    http_json_limits_t limits = {
        .max_bytes = (seed & 1) ? 64 : 1u << 20,
        .max_depth = 1 + ((seed >> 1) & 31),
        .max_string = (seed & 0x40) ? 8 : 4096,
    };
    char *body = fuzz_copy(data + 1, size - 1);
    json_t *out = (json_t *)1;
    http_json_status_t st = http_json_parse_object(body, size - 1, &limits, &out);
    if (st == HTTP_JSON_OK) {
        fuzz_check(json_is_object(out));
        check_round_trip(out, &limits);
    } else if (st == HTTP_JSON_NUL) {
        check_nul_details(out);
    } else {
        fuzz_check(out == NULL);
    }
    json_decref(out);
    http_is_json_content_type(body, size - 1);
    free(body);
    return 0;
}
