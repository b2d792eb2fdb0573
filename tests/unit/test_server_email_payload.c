/*
 * The email job's payload built for sign-up (handlers_email_payload): the JSON the email job
 * reads, and NULL, never an empty or partial payload, when any allocation jansson makes on
 * the way fails (each one in turn, through jansson's allocator hooks) or an argument cannot
 * be encoded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "handlers/handlers.h"

static int allocations_left = -1; /* -1: no limit */

static void *limited_malloc(size_t size)
{
    if (allocations_left == 0)
        return NULL;
    if (allocations_left > 0)
        allocations_left--;
    return malloc(size);
}

static void test_payload(void **state)
{
    char *text = handlers_email_payload("ada@example.com", "tok_en-123");
    assert_non_null(text);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "to")), "ada@example.com");
    assert_string_equal(json_string_value(json_object_get(doc, "token")), "tok_en-123");
    json_decref(doc);
    free(text);
}

static void test_every_allocation_failing(void **state)
{
    json_set_alloc_funcs(limited_malloc, free);
    int failures = 0;
    char *text = NULL;
    for (int n = 0; n < 1000 && text == NULL; n++) {
        allocations_left = n;
        text = handlers_email_payload("ada@example.com", "tok_en-123");
        if (text == NULL)
            failures++;
    }
    allocations_left = -1;
    json_set_alloc_funcs(malloc, free);
    assert_true(failures >= 2); /* the object and the text at least */
    assert_non_null(text);      /* and then it succeeds, whole */
    assert_string_equal(text, "{\"to\":\"ada@example.com\",\"token\":\"tok_en-123\"}");
    free(text);
}

static void test_unencodable_arguments(void **state)
{
    assert_null(handlers_email_payload(NULL, "token"));
    assert_null(handlers_email_payload("ada@example.com", NULL));
    assert_null(handlers_email_payload("\xff@example.com", "token"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_every_allocation_failing),
        cmocka_unit_test(test_unencodable_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
