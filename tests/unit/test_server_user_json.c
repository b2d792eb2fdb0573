/* The User JSON the loop writes from PostgreSQL's columns: parsed back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"

static PGresult *user_row(const char *const values[10])
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[10];
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < 10; i++) {
        attrs[i].name = (char *)"c";
        attrs[i].format = 0;
        attrs[i].typid = 25;
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    assert_true(PQsetResultAttrs(res, 10, attrs));
    for (int i = 0; i < 10; i++)
        assert_true(
            PQsetvalue(res, 0, i, (char *)values[i], values[i] != NULL ? (int)strlen(values[i]) : -1));
    return res;
}

static json_t *build(const char *const values[10])
{
    PGresult *res = user_row(values);
    char *text = handlers_user_json_from_row(res, 0, 0);
    PQclear(res);
    assert_non_null(text);
    json_error_t error;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &error);
    if (doc == NULL)
        fail_msg("not JSON: %s (%s)", text, error.text);
    free(text);
    return doc;
}

static void test_fields_and_types(void **state)
{
    (void)state;
    const char *values[10] = {
        "0192f1c4-aaaa-7000-8000-000000000001", "ada@example.com",        NULL, "Ada", "", "admin", "t", "f",
        "\"2026-12-01T17:23:38.999255\"",       "\"2026-12-01T17:23:38\""};
    json_t *u = build(values);
    assert_string_equal(json_string_value(json_object_get(u, "id")), values[0]);
    assert_string_equal(json_string_value(json_object_get(u, "email")), "ada@example.com");
    assert_true(json_is_null(json_object_get(u, "username")));
    assert_string_equal(json_string_value(json_object_get(u, "display_name")), "Ada");
    assert_string_equal(json_string_value(json_object_get(u, "bio")), "");
    assert_string_equal(json_string_value(json_object_get(u, "role")), "admin");
    assert_true(json_is_true(json_object_get(u, "email_confirmed")));
    assert_true(json_is_false(json_object_get(u, "disabled")));
    /* milliseconds truncated, as to_char's MS; whole seconds get .000 */
    assert_string_equal(json_string_value(json_object_get(u, "created_at")), "2026-12-01T17:23:38.999Z");
    assert_string_equal(json_string_value(json_object_get(u, "updated_at")), "2026-12-01T17:23:38.000Z");
    assert_int_equal(json_object_size(u), 10);
    json_decref(u);
}

static void test_short_fractions(void **state)
{
    (void)state;
    const char *values[10] = {
        "i", "e", "u", "d", "b", "user", "f", "t", "\"2026-01-02T03:04:05.5\"", "\"2026-01-02T03:04:05.25\""};
    json_t *u = build(values);
    assert_string_equal(json_string_value(json_object_get(u, "created_at")), "2026-01-02T03:04:05.500Z");
    assert_string_equal(json_string_value(json_object_get(u, "updated_at")), "2026-01-02T03:04:05.250Z");
    json_decref(u);
}

/* Whatever a user wrote in their profile comes back as the same string. */
static void test_hostile_strings(void **state)
{
    (void)state;
    const char *bio = "quote \" backslash \\ newline \n tab \t bell \a unit \x1f caf\xc3\xa9 </script>";
    const char *values[10] = {"i",    "e", "u", "{\"display\":1}",         bio,
                              "user", "f", "f", "\"2026-01-02T03:04:05\"", "\"2026-01-02T03:04:05\""};
    json_t *u = build(values);
    assert_string_equal(json_string_value(json_object_get(u, "bio")), bio);
    assert_string_equal(json_string_value(json_object_get(u, "display_name")), "{\"display\":1}");
    json_decref(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_types),
        cmocka_unit_test(test_short_fractions),
        cmocka_unit_test(test_hostile_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
