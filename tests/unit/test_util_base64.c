/*
 * util_base64_encode and the one strict decoder: the RFC 4648 vectors, round trips in both
 * alphabets with and without padding, and every way of spelling bytes that is not the one
 * canonical spelling refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static long decode(const char *in, unsigned char *out, size_t outlen, unsigned flags)
{
    return util_base64_decode(in, strlen(in), out, outlen, flags);
}

static void test_rfc4648_vectors(void **state)
{
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    const char *bare[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        char out[16];
        size_t n = strlen(plain[i]);
        assert_int_equal(util_base64_encode(plain[i], n, out, UTIL_BASE64_PAD), strlen(padded[i]));
        assert_string_equal(out, padded[i]);
        assert_true(strlen(out) <= UTIL_BASE64_LEN(n));
        assert_int_equal(util_base64_encode(plain[i], n, out, UTIL_BASE64_URL), strlen(bare[i]));
        assert_string_equal(out, bare[i]);
        unsigned char back[16];
        assert_int_equal(decode(padded[i], back, sizeof(back), UTIL_BASE64_PAD), (long)n);
        assert_memory_equal(back, plain[i], n);
        assert_int_equal(decode(bare[i], back, sizeof(back), UTIL_BASE64_URL), (long)n);
        assert_memory_equal(back, plain[i], n);
    }
}

static void test_alphabets(void **state)
{
    const unsigned char b[] = {0xfb, 0xff, 0xbf};
    char out[8];
    util_base64_encode(b, sizeof(b), out, 0);
    assert_string_equal(out, "+/+/");
    util_base64_encode(b, sizeof(b), out, UTIL_BASE64_URL);
    assert_string_equal(out, "-_-_");
    unsigned char back[4];
    assert_int_equal(decode("+/+/", back, sizeof(back), 0), 3);
    assert_int_equal(decode("-_-_", back, sizeof(back), UTIL_BASE64_URL), 3);
    assert_memory_equal(back, b, 3);
    assert_int_equal(decode("-_-_", back, sizeof(back), 0), -1); /* the other alphabet */
    assert_int_equal(decode("+/+/", back, sizeof(back), UTIL_BASE64_URL), -1);
    assert_int_equal(util_base64_value('-', UTIL_BASE64_URL), 62);
    assert_int_equal(util_base64_value('/', 0), 63);
    assert_int_equal(util_base64_value('=', 0), -1);
    assert_int_equal(util_base64_value('.', UTIL_BASE64_URL), -1);
}

static void test_round_trips(void **state)
{
    const unsigned flags[] = {0, UTIL_BASE64_PAD, UTIL_BASE64_URL, UTIL_BASE64_URL | UTIL_BASE64_PAD};
    unsigned char in[70], back[70];
    char text[UTIL_BASE64_LEN(sizeof(in)) + 1];
    for (size_t n = 0; n <= sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(i * 37 + n * 11);
        for (size_t f = 0; f < 4; f++) {
            size_t len = util_base64_encode(in, n, text, flags[f]);
            assert_int_equal(len, strlen(text));
            assert_int_equal(util_base64_decode(text, len, back, n, flags[f]), (long)n); /* exact room */
            assert_memory_equal(back, in, n);
            if (n > 0)
                assert_int_equal(util_base64_decode(text, len, back, n - 1, flags[f]), -1);
        }
    }
}

/* The same bytes spelled another way: non-zero leftover bits (what a flipped low bit of a
 * JWT signature's last character gives), wrong or missing padding, stray characters. */
static void test_strict(void **state)
{
    unsigned char out[64];
    const char *url_refused[] = {
        "Zh",                                 /* 'f' with leftover bits set: "Zg" is the one spelling */
        "Zm9",   "Zm9vYh", "Zm9vYmF", "Zg==", /* padding where there is none */
        "Zg=",   "Z",                         /* a lone character holds no byte */
        "Zm9vY", "Zm 9v",  "Zm9v\n",  "Zm9+", "Zm9/", "Zm\0v",
    };
    for (size_t i = 0; i < sizeof(url_refused) / sizeof(url_refused[0]); i++)
        if (util_base64_decode(url_refused[i], i == 12 ? 4 : strlen(url_refused[i]), out, sizeof(out),
                               UTIL_BASE64_URL) != -1)
            fail_msg("url accepted \"%s\"", url_refused[i]);
    const char *padded_refused[] = {
        "Zg",   "Zg=",      "Zm8",  "Zh==", "Zm9=",    "Zg===",    "Z===",
        "====", "Zg==Zg==", "Zm=v", "=Zm9", "Zm9vYg=", "Zm9vYg=A",
    };
    for (size_t i = 0; i < sizeof(padded_refused) / sizeof(padded_refused[0]); i++)
        if (decode(padded_refused[i], out, sizeof(out), UTIL_BASE64_PAD) != -1)
            fail_msg("padded accepted \"%s\"", padded_refused[i]);
    /* the JWT signature case: 43 characters for 32 bytes, the last holding 2 spare bits */
    unsigned char sig[32];
    for (int i = 0; i < 32; i++)
        sig[i] = (unsigned char)(0xa5 ^ i);
    char text[UTIL_BASE64_LEN(32) + 1];
    assert_int_equal(util_base64_encode(sig, 32, text, UTIL_BASE64_URL), 43);
    assert_int_equal(decode(text, out, sizeof(out), UTIL_BASE64_URL), 32);
    text[42] = (char)(util_base64_value(text[42], UTIL_BASE64_URL) & 1 ? text[42] - 1 : text[42] + 1);
    assert_int_equal(decode(text, out, sizeof(out), UTIL_BASE64_URL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_alphabets),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_strict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
