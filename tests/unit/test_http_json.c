#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static const http_json_limits_t limits = {.max_bytes = 4096, .max_depth = 4, .max_string = 16};

static http_json_status_t parse(const char *text, json_t **out)
{
    return http_json_parse_object(text, strlen(text), &limits, out);
}

static void test_valid_object(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(parse("{\"a\": [1, {\"b\": \"c\"}], \"d\": null}", &doc), HTTP_JSON_OK);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(doc, "a"), 1), "b")),
                        "c");
    json_decref(doc);
}

static void test_invalid_and_non_objects(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "{",
                         "{\"a\":}",
                         "[1,2]",
                         "\"str\"",
                         "42",
                         "null",
                         "{\"a\":1} x",
                         "{'a':1}",
                         "{\"a\":1,\"a\":2}",
                         "{\"a\\u0000\":",     /* \u0000 in a name does not make broken JSON valid */
                         "{\"a\":\"\\u0000\"", /* nor in a value */
                         "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *doc = (json_t *)1;
        assert_int_equal(parse(bad[i], &doc), HTTP_JSON_INVALID);
        assert_null(doc);
    }
}

static void test_depth(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(parse("{\"a\":{\"b\":{\"c\":[1]}}}", &doc), HTTP_JSON_OK); /* depth 4 */
    json_decref(doc);
    assert_int_equal(parse("{\"a\":{\"b\":{\"c\":[[1]]}}}", &doc), HTTP_JSON_TOO_DEEP);
    /* A hostile prefix is refused before jansson sees it, even unterminated. */
    char deep[2000];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    deep[0] = '{';
    assert_int_equal(parse(deep, &doc), HTTP_JSON_TOO_DEEP);
    /* Brackets inside strings, and escaped quotes, do not count. */
    assert_int_equal(parse("{\"a\":\"[[[[[[\\\"[[[[\"}", &doc), HTTP_JSON_OK);
    json_decref(doc);
}

static void test_sizes(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(parse("{\"a\":\"0123456789abcdef\"}", &doc), HTTP_JSON_OK);
    json_decref(doc);
    assert_int_equal(parse("{\"a\":\"0123456789abcdefg\"}", &doc), HTTP_JSON_STRING_TOO_LONG);
    assert_null(doc);
    assert_int_equal(parse("{\"0123456789abcdefg\":1}", &doc), HTTP_JSON_STRING_TOO_LONG);
    char *big = malloc(5000);
    memset(big, ' ', 5000);
    memcpy(big, "{}", 2);
    assert_int_equal(http_json_parse_object(big, 5000, &limits, &doc), HTTP_JSON_TOO_LARGE);
    free(big);
}

/* The 422 details of a \u0000 body: {path: reason}. */
static void expect_nul(const char *text, const char *path, const char *reason)
{
    json_t *details = NULL;
    assert_int_equal(parse(text, &details), HTTP_JSON_NUL);
    const char *why = json_string_value(json_object_get(details, path));
    if (why == NULL || strcmp(why, reason) != 0) {
        char *dump = json_dumps(details, JSON_COMPACT);
        fail_msg("%s: details %s do not name %s", text, dump, path);
    }
    json_decref(details);
}

static void test_nul_in_strings(void **state)
{
    (void)state;
    const char *value = "must not contain \\u0000", *name = "a field name must not contain \\u0000";
    /* never cut short: "abc\u0000def" is refused, not read as "abc" */
    expect_nul("{\"password\":\"abc\\u0000def\"}", "password", value);
    expect_nul("{\"a\":\"\\u0000\"}", "a", value);
    expect_nul("{\"a\":{\"b\":[\"ok\",\"x\\u0000\"]}}", "a.b[1]", value);
    expect_nul("{\"unknown\":[[\"\\u0000\"]]}", "unknown[0][0]", value);
    expect_nul("{\"a\\u0000b\":1}", "a\\u0000b", name); /* named as sent */
    expect_nul("{\"x\":1,\"y\":{\"\\u00e9\\\"\\u0000\":2}}", "\\u00e9\\\"\\u0000", name);
    json_t *details = NULL;
    assert_int_equal(parse("{\"a\":\"\\u0000\",\"b\":\"\\u0000\",\"c\":\"ok\"}", &details), HTTP_JSON_NUL);
    assert_int_equal(json_object_size(details), 2); /* every such field */
    json_decref(details);
    /* an escaped backslash followed by "u0000" is text, not a NUL */
    json_t *doc = NULL;
    assert_int_equal(parse("{\"a\":\"\\\\u0000\"}", &doc), HTTP_JSON_OK);
    assert_string_equal(json_string_value(json_object_get(doc, "a")), "\\u0000");
    json_decref(doc);
}

static void test_content_types(void **state)
{
    (void)state;
    const char *yes[] = {"application/json", "Application/JSON", "application/json; charset=utf-8",
                         " application/json ;charset=UTF-8"};
    const char *no[] = {"", "text/plain", "application/jsonx", "application/json-patch+json", "application/"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        assert_true(http_is_json_content_type(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_false(http_is_json_content_type(no[i], strlen(no[i])));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_object),  cmocka_unit_test(test_invalid_and_non_objects),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_content_types), cmocka_unit_test(test_nul_in_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
