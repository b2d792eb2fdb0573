/*
 * util_hex_encode, util_hex_value and the UUID text form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

static void test_hex(void **state)
{
    const unsigned char bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(bytes) + 1];
    memset(out, '?', sizeof(out));
    util_hex_encode(bytes, sizeof(bytes), out, 0);
    assert_string_equal(out, "00017f80abff");
    util_hex_encode(bytes, sizeof(bytes), out, UTIL_HEX_UPPER);
    assert_string_equal(out, "00017F80ABFF");
    util_hex_encode(bytes, 0, out, 0);
    assert_string_equal(out, "");
    unsigned char all[256];
    char text[513];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    util_hex_encode(all, sizeof(all), text, 0);
    for (int i = 0; i < 256; i++) {
        char want[3];
        snprintf(want, sizeof(want), "%02x", i);
        assert_memory_equal(text + 2 * i, want, 2);
    }
}

static void test_hex_value(void **state)
{
    for (int c = -1; c < 256; c++) {
        int want = c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : -1;
        assert_int_equal(util_hex_value(c), want);
    }
    assert_int_equal(util_hex_value((char)0xe9), -1); /* a signed char past ASCII */
    char text[2 * 256 + 1];
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    util_hex_encode(all, sizeof(all), text, UTIL_HEX_UPPER);
    for (int i = 0; i < 256; i++)
        assert_int_equal(util_hex_value(text[2 * i]) << 4 | util_hex_value(text[2 * i + 1]), i);
}

static void test_uuid_format(void **state)
{
    const unsigned char b[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    char out[UTIL_UUID_LEN + 1];
    util_uuid_format(b, out);
    assert_string_equal(out, "12345678-9abc-def0-0123-456789abcdef");
}

static void test_uuid_v4(void **state)
{
    char a[UTIL_UUID_LEN + 1], b[UTIL_UUID_LEN + 1];
    assert_int_equal(util_uuid_v4(a), 0);
    assert_int_equal(util_uuid_v4(b), 0);
    assert_int_equal(strlen(a), UTIL_UUID_LEN);
    assert_true(util_uuid_valid(a, strlen(a)));
    assert_int_equal(a[14], '4');           /* version */
    assert_non_null(strchr("89ab", a[19])); /* variant */
    assert_string_not_equal(a, b);
}

static void test_uuid_valid(void **state)
{
    const char *good[] = {"00000000-0000-0000-0000-000000000000", "0190a6f2-7c4e-7abc-8def-0123456789ab",
                          "0190A6F2-7C4E-7ABC-8DEF-0123456789AB"};
    const char *bad[] = {"",
                         "0190a6f2-7c4e-7abc-8def-0123456789a",   /* short */
                         "0190a6f2-7c4e-7abc-8def-0123456789abc", /* long */
                         "0190a6f27c4e-7abc-8def-0123456789ab-",  /* dash moved */
                         "0190a6g2-7c4e-7abc-8def-0123456789ab",  /* not hex */
                         "{190a6f2-7c4e-7abc-8def-0123456789ab"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(util_uuid_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (util_uuid_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted \"%s\"", bad[i]);
    char nul[] = "0190a6f2-7c4e-7abc-8def-0123456789ab";
    nul[3] = '\0';
    assert_false(util_uuid_valid(nul, 36));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),     cmocka_unit_test(test_hex_value),  cmocka_unit_test(test_uuid_format),
        cmocka_unit_test(test_uuid_v4), cmocka_unit_test(test_uuid_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
