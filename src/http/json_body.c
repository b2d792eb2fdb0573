/*
 * JSON request bodies under limits. The nesting depth is measured on the raw bytes before
 * jansson builds anything, so "[[[[[..." costs a linear scan and no allocation.
 */
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
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

/* ------------------------------------------------------------ \u0000 in strings ---- */

#define HTTP_JSON_NUL_REASON      "must not contain \\u0000"
#define HTTP_JSON_NUL_NAME_REASON "a field name must not contain \\u0000"
#define HTTP_JSON_NUL_DETAILS_MAX 16  /* as many fields as a 422 names at most */
#define HTTP_JSON_NUL_NAME_MAX    128 /* bytes of a field name quoted in the details */

/* Adds a 422 detail for path (malloc'd here, "a.b[2]"); frees path. */
static void http_json_nul_add(json_t *details, char *path, const char *reason)
{
    if (path != NULL && json_object_size(details) < HTTP_JSON_NUL_DETAILS_MAX)
        json_object_set_new(details, path, json_string(reason));
    free(path);
}

/* parent + ".key" ("key" at the top) or parent + "[index]" when key is NULL; malloc'd. */
static char *http_json_child_path(const char *parent, const char *key, size_t index)
{
    char at[32];
    const char *dot = parent[0] != '\0' ? "." : "";
    if (key == NULL) {
        snprintf(at, sizeof(at), "[%zu]", index);
        key = at;
        dot = "";
    }
    size_t n = strlen(parent) + strlen(dot) + strlen(key) + 1;
    char *path = malloc(n);
    if (path != NULL)
        snprintf(path, n, "%s%s%s", parent, dot, key);
    return path;
}

/* Names every string below value that holds a NUL by its path from the body's top. */
static void http_json_nul_walk(const json_t *value, const char *path, json_t *details)
{
    const char *key;
    json_t *child;
    size_t index;
    switch (json_typeof(value)) {
    case JSON_STRING:
        if (memchr(json_string_value(value), '\0', json_string_length(value)) != NULL)
            http_json_nul_add(details, strdup(path), HTTP_JSON_NUL_REASON);
        return;
    case JSON_OBJECT:
        json_object_foreach((json_t *)value, key, child)
        {
            char *sub = http_json_child_path(path, key, 0);
            if (sub != NULL)
                http_json_nul_walk(child, sub, details);
            free(sub);
        }
        return;
    case JSON_ARRAY:
        json_array_foreach(value, index, child)
        {
            char *sub = http_json_child_path(path, NULL, index);
            if (sub != NULL)
                http_json_nul_walk(child, sub, details);
            free(sub);
        }
        return;
    default:
        return;
    }
}

/* jansson refuses a field name holding a NUL (it keeps names as C strings) and reports the
 * offset just past its closing quote. The name is named as sent (escapes and all), cut to
 * HTTP_JSON_NUL_NAME_MAX bytes on a UTF-8 boundary (jansson checked the encoding already). */
static char *http_json_nul_name(const char *body, size_t len, size_t end)
{
    size_t start = len;
    for (size_t i = 0; i < len && i < end; i++) {
        if (body[i] != '"')
            continue;
        size_t open = i;
        for (i++; i < len && body[i] != '"'; i++)
            if (body[i] == '\\')
                i++;
        if (i + 1 == end)
            start = open + 1;
    }
    if (start >= len || end - 1 < start)
        return strdup("(a field name)");
    size_t n = end - 1 - start;
    if (n > HTTP_JSON_NUL_NAME_MAX)
        n = util_utf8_cut(body + start, HTTP_JSON_NUL_NAME_MAX); /* jansson checked it is UTF-8 */
    return strndup(body + start, n);
}

/* A \u0000 is the only way a NUL gets into a parsed string (raw control characters are not
 * JSON), so bodies without that escape skip the walk. */
static json_t *http_json_nul_details(const char *body, size_t len, const json_t *doc)
{
    if (memmem(body, len, "\\u0000", 6) == NULL)
        return NULL;
    json_t *details = json_object();
    if (details != NULL)
        http_json_nul_walk(doc, "", details);
    if (json_object_size(details) == 0) {
        json_decref(details);
        return NULL;
    }
    return details;
}

/* ---------------------------------------------------------------- the parser ---- */

/* jansson stops at a field name holding \u0000, so whether the rest is JSON is checked on a
 * copy where every "\u0000" reads "\u0001": same length, and JSON exactly when the body is
 * (where the six bytes follow an escaped backslash they were text and still are). */
static int http_json_valid_but_nul(const char *body, size_t len)
{
    char *copy = malloc(len);
    if (copy == NULL)
        return 0;
    memcpy(copy, body, len);
    for (char *p = copy; (p = memmem(p, len - (size_t)(p - copy), "\\u0000", 6)) != NULL; p += 6)
        p[5] = '1';
    json_t *doc = json_loadb(copy, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    int ok = json_is_object(doc);
    json_decref(doc);
    free(copy);
    return ok;
}

static http_json_status_t http_json_refuse_nul_name(const char *body, size_t len, const json_error_t *error,
                                                    json_t **out)
{
    json_t *details = http_json_valid_but_nul(body, len) ? json_object() : NULL;
    if (details == NULL)
        return HTTP_JSON_INVALID;
    http_json_nul_add(details, http_json_nul_name(body, len, (size_t)error->position),
                      HTTP_JSON_NUL_NAME_REASON);
    *out = details;
    return HTTP_JSON_NUL;
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
    /* \u0000 is valid JSON: parsed whole (JSON_ALLOW_NUL), then refused by name below, so no
     * NUL ever cuts a value short where it is read as a C string. */
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &error);
    if (doc == NULL && json_error_code(&error) == json_error_null_byte_in_key)
        return http_json_refuse_nul_name(body, len, &error, out);
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
    json_t *nul = http_json_nul_details(body, len, doc);
    if (nul != NULL) {
        json_decref(doc);
        *out = nul;
        return HTTP_JSON_NUL;
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
