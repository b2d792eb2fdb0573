/*
 * UTF-8: every edge of RFC 3629 (overlong forms, surrogates, past U+10FFFF, stray and
 * missing continuation bytes), code point counts, and cutting without splitting a character.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static long length(const char *s)
{
    return util_utf8_length(s, strlen(s));
}

static void test_valid(void **state)
{
    assert_int_equal(length(""), 0);
    assert_int_equal(length("plain ascii"), 11);
    assert_int_equal(length("\xc2\x80"), 1);         /* U+0080, the first two-byte */
    assert_int_equal(length("\xdf\xbf"), 1);         /* U+07FF */
    assert_int_equal(length("\xe0\xa0\x80"), 1);     /* U+0800 */
    assert_int_equal(length("\xed\x9f\xbf"), 1);     /* U+D7FF, below the surrogates */
    assert_int_equal(length("\xee\x80\x80"), 1);     /* U+E000, above them */
    assert_int_equal(length("\xef\xbf\xbf"), 1);     /* U+FFFF */
    assert_int_equal(length("\xf0\x90\x80\x80"), 1); /* U+10000 */
    assert_int_equal(length("\xf4\x8f\xbf\xbf"), 1); /* U+10FFFF, the last */
    assert_int_equal(length("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), 9);
    assert_int_equal(util_utf8_length("a\0b", 3), 3); /* NUL is a character; callers refuse it */
}

static void test_invalid(void **state)
{
    const char *bad[] = {
        "\x80", /* stray continuation */
        "a\xbf",
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong U+007F */
        "\xe0\x80\x80",     /* overlong three-byte */
        "\xe0\x9f\xbf",     /* overlong U+07FF */
        "\xf0\x80\x80\x80", /* overlong four-byte */
        "\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
        "\xed\xa0\x80",     /* U+D800, a surrogate */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xf8\x88\x80\x80\x80",
        "\xfe",
        "\xff",
        "\xc3", /* cut short */
        "\xe2\x82",
        "\xf0\x9f\x98",
        "\xc3\x28", /* a lead without its continuation */
        "\xe2\x28\xa1",
        "\xf0\x9f\x28\x80",
        "ok\xe2\x82\xac\xe2\x82",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (length(bad[i]) != -1)
            fail_msg("accepted case %zu", i);
}

static void test_sequence(void **state)
{
    const unsigned char euro[] = {0xe2, 0x82, 0xac};
    assert_int_equal(util_utf8_sequence(euro, 3), 3);
    assert_int_equal(util_utf8_sequence(euro, 2), 0); /* not all there */
    assert_int_equal(util_utf8_sequence((const unsigned char *)"A", 1), 1);
    assert_int_equal(util_utf8_sequence((const unsigned char *)"\xed\xa0\x80", 3), 0);
    /* every lead byte against the range table */
    for (int b = 0; b < 256; b++) {
        unsigned char s[4] = {(unsigned char)b, 0x90, 0x90, 0x90};
        size_t want = b < 0x80    ? 1
                      : b < 0xc2  ? 0
                      : b < 0xe0  ? 2
                      : b < 0xf0  ? (b == 0xe0 ? 0 : 3)
                      : b <= 0xf3 ? 4
                                  : 0;
        if (b == 0xed)
            want = 3; /* 0x90 is below 0xa0: not a surrogate */
        if (util_utf8_sequence(s, 4) != want)
            fail_msg("lead 0x%02x", b);
    }
}

static void test_cut(void **state)
{
    const char *s = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a b é € 😀 */
    const size_t want[] = {0, 1, 2, 2, 4, 4, 4, 7, 7, 7, 7, 11};
    for (size_t len = 0; len <= 11; len++)
        if (util_utf8_cut(s, len) != want[len])
            fail_msg("cut at %zu gave %zu", len, util_utf8_cut(s, len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
