/* The pure parts of serving a file: If-None-Match, Range and Content-Disposition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "handlers/handlers.h"

#define ETAG "\"0123abcd\""

static int inm(const char *header)
{
    return handlers_etag_matches(header, strlen(header), ETAG);
}

static void test_if_none_match(void **state)
{
    (void)state;
    assert_true(inm(ETAG));
    assert_true(inm("*"));
    assert_true(inm("\"other\", " ETAG));
    assert_true(inm("W/" ETAG));
    assert_true(inm(" \"a\" ,\t" ETAG " , \"b\""));
    assert_false(inm("\"0123abc\""));
    assert_false(inm("0123abcd")); /* unquoted is another tag */
    assert_false(inm(""));
    assert_false(inm("\"0123abcd\"x"));
}

static int range(const char *header, uint64_t size, uint64_t *offset, uint64_t *count)
{
    *offset = *count = 999;
    return handlers_parse_range(header, strlen(header), size, offset, count);
}

static void test_ranges(void **state)
{
    (void)state;
    uint64_t o, n;
    assert_int_equal(range("bytes=0-0", 10, &o, &n), 1);
    assert_int_equal(o, 0);
    assert_int_equal(n, 1);
    assert_int_equal(range("bytes=2-5", 10, &o, &n), 1);
    assert_int_equal(o, 2);
    assert_int_equal(n, 4);
    assert_int_equal(range("bytes=7-", 10, &o, &n), 1); /* to the end */
    assert_int_equal(o, 7);
    assert_int_equal(n, 3);
    assert_int_equal(range("bytes=5-100", 10, &o, &n), 1); /* clamped */
    assert_int_equal(o, 5);
    assert_int_equal(n, 5);
    assert_int_equal(range("bytes=-3", 10, &o, &n), 1); /* the last three */
    assert_int_equal(o, 7);
    assert_int_equal(n, 3);
    assert_int_equal(range("bytes=-30", 10, &o, &n), 1); /* more than there is: all */
    assert_int_equal(o, 0);
    assert_int_equal(n, 10);
    /* unsatisfiable */
    assert_int_equal(range("bytes=10-", 10, &o, &n), -1);
    assert_int_equal(range("bytes=-0", 10, &o, &n), -1);
    assert_int_equal(range("bytes=0-", 0, &o, &n), -1);
    /* ignored: the whole file is sent */
    static const char *const ignored[] = {"bytes=5-2",  "bytes=0-1,3-4", "items=0-1",
                                          "bytes=",     "bytes=-",       "bytes=a-b",
                                          "bytes= 1-2", "bytes=1-2 ",    "bytes=99999999999999999999-",
                                          "bytes=1--2", "bytes"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        assert_int_equal(range(ignored[i], 10, &o, &n), 0);
}

static void test_content_disposition(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(handlers_content_disposition("report.csv", out, sizeof(out)), 0);
    assert_string_equal(out, "attachment; filename=\"report.csv\"; filename*=UTF-8''report.csv");
    assert_int_equal(handlers_content_disposition("caf\xc3\xa9 \"x\"\\%;.txt", out, sizeof(out)), 0);
    assert_string_equal(
        out, "attachment; filename=\"caf__ _x___;.txt\"; filename*=UTF-8''caf%C3%A9%20%22x%22%5C%25%3B.txt");
    /* a header break can never come through */
    assert_int_equal(handlers_content_disposition("a\r\nSet-Cookie: x=1", out, sizeof(out)), 0);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\n'));
    /* too small an output is refused, not cut */
    assert_int_equal(handlers_content_disposition("report.csv", out, 40), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_if_none_match),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_content_disposition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
