/*
 * util_buf: appends and formats across growth, taking the text, and a failed allocation
 * that stays failed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void test_append_and_grow(void **state)
{
    util_buf_t b = {0};
    util_buf_str(&b, "");
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    char chunk[100];
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        util_buf_put(&b, chunk, sizeof(chunk)); /* 10,000 bytes: several doublings */
    assert_false(b.failed);
    assert_int_equal(b.len, 10000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], 'x');
    util_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_printf(void **state)
{
    util_buf_t b = {0};
    util_buf_printf(&b, "%s=%d;", "a", 1);
    assert_string_equal(b.data, "a=1;");
    for (int i = 0; i < 1000; i++)
        util_buf_printf(&b, "%04d,", i); /* each one past the room left now and then */
    assert_false(b.failed);
    assert_int_equal(b.len, 4 + 5000);
    assert_memory_equal(b.data + 4, "0000,0001,", 10);
    assert_memory_equal(b.data + b.len - 5, "0999,", 5);
    assert_int_equal(b.data[b.len], '\0');
    char big[3000];
    memset(big, 'y', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    util_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 5004 + 3001);
    assert_int_equal(b.data[b.len - 1], ']');
    size_t len = 0;
    char *text = util_buf_take(&b, &len);
    assert_int_equal(len, 8005);
    assert_int_equal(strlen(text), 8005);
    assert_null(b.data);
    free(text);
}

static void test_reserve(void **state)
{
    util_buf_t b = {0};
    assert_int_equal(util_buf_reserve(&b, 10), 0);
    assert_int_equal(b.cap, 512); /* the first allocation */
    assert_int_equal(util_buf_reserve(&b, 511), 0);
    assert_int_equal(b.cap, 512);
    assert_int_equal(util_buf_reserve(&b, 512), 0); /* and the NUL */
    assert_int_equal(b.cap, 1024);
    util_buf_free(&b);
}

static void test_failure_is_sticky(void **state)
{
    util_buf_t b = {0};
    util_buf_str(&b, "kept so far");
    assert_int_equal(util_buf_reserve(&b, SIZE_MAX - 8), -1);
    assert_true(b.failed);
    assert_string_equal(b.data, "kept so far"); /* consistent, but no longer growing */
    util_buf_str(&b, "more");
    util_buf_printf(&b, "%d", 42);
    assert_int_equal(b.len, strlen("kept so far"));
    assert_int_equal(util_buf_reserve(&b, 1), -1);
    size_t len = 99;
    assert_null(util_buf_take(&b, &len)); /* frees what there was */
    assert_int_equal(len, 0);
    assert_false(b.failed);
    assert_null(util_buf_take(&b, NULL)); /* nothing appended */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_grow),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_failure_is_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
