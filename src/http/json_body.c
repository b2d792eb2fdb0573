/*
 * JSON request bodies under limits. The nesting depth is measured on the raw bytes before
 * jansson builds anything, so "[[[[[..." costs a linear scan and no allocation.
 */
#include "http/http.h"

#include <string.h>
#include <strings.h>

/* Maximum nesting depth of the raw text, or -1 when it exceeds limit. Strings are skipped
 * (escapes included) so brackets inside them do not count. */
static int http_json_depth(const char *body, size_t len, int limit)
{
    int depth = 0, max = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > limit)
                return -1;
            if (depth > max)
                max = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

static int http_json_strings_fit(const json_t *value, size_t max)
{
    const char *key;
    json_t *child;
    size_t index;
    switch (json_typeof(value)) {
    case JSON_STRING:
        return json_string_length(value) <= max;
    case JSON_OBJECT:
        json_object_foreach((json_t *)value, key,
                            child) if (strlen(key) > max || !http_json_strings_fit(child, max)) return 0;
        return 1;
    case JSON_ARRAY:
        json_array_foreach(value, index, child) if (!http_json_strings_fit(child, max)) return 0;
        return 1;
    default:
        return 1;
    }
}

http_json_status_t http_json_parse_object(const char *body, size_t len, const http_json_limits_t *limits,
                                          json_t **out)
{
    *out = NULL;
    if (len > limits->max_bytes)
        return HTTP_JSON_TOO_LARGE;
    if (http_json_depth(body, len, limits->max_depth) < 0)
        return HTTP_JSON_TOO_DEEP;
    json_error_t error;
    /* No JSON_ALLOW_NUL: a \u0000 inside a string is refused, so C strings stay whole. */
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &error);
    if (doc == NULL)
        return HTTP_JSON_INVALID;
    if (!json_is_object(doc)) {
        json_decref(doc);
        return HTTP_JSON_INVALID;
    }
    if (!http_json_strings_fit(doc, limits->max_string)) {
        json_decref(doc);
        return HTTP_JSON_STRING_TOO_LONG;
    }
    *out = doc;
    return HTTP_JSON_OK;
}

int http_is_json_content_type(const char *value, size_t len)
{
    static const char type[] = "application/json";
    size_t tlen = sizeof(type) - 1;
    while (len > 0 && (*value == ' ' || *value == '\t'))
        value++, len--;
    if (len < tlen || strncasecmp(value, type, tlen) != 0)
        return 0;
    value += tlen;
    len -= tlen;
    while (len > 0 && (*value == ' ' || *value == '\t'))
        value++, len--;
    return len == 0 || *value == ';';
}
