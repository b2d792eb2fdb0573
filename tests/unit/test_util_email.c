/*
 * The one email rule (util_email_valid) and the contract's normal form (util_email_fold,
 * util_email_normalize): tables of addresses accepted and refused, the length limits at
 * their edges, and the one-label domain allowed only for the configured From address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/util.h"

static int valid(const char *addr)
{
    return util_email_valid(addr, strlen(addr), 0);
}

static void test_accepted(void **state)
{
    const char *good[] = {"a@b.co",
                          "user@example.com",
                          "User.Name@Example.COM", /* case is normalising's business */
                          "first.last+tag@mail.example.co.uk",
                          "o'brien@example.com",
                          "a_b-c!#$%&'*+/=?^`{|}~@example.com", /* every atext character */
                          "x'OR'1'='1--@a.io",
                          "1@2.3",
                          "a@xn--bcher-kva.example",
                          "a@b-c.d-e.f",
                          "a.b.c@d.e"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!valid(good[i]))
            fail_msg("refused \"%s\"", good[i]);
}

static void test_refused(void **state)
{
    const char *bad[] = {"", "@", "a", "a@", "@b.co", "ab.co", "a@@b.co", "a@b@c.co",
                         /* the issue's addresses: accepted by sign-up, refused by the mailer */
                         "a(b)@x.com", "a@b..com", "\xc3\xbc@x.com",
                         /* not a dot-atom */
                         ".a@b.co", "a.@b.co", "a..b@c.co", "\"a\"@b.co", /* quoted local parts */
                         "\"a b\"@c.co", "a b@c.co", " a@b.co", "a@b.co ", "a\t@b.co", "a\\b@c.co",
                         "a,b@c.co", "a;b@c.co", "a:b@c.co", "a<b@c.co", "a>b@c.co", "a[b]@c.co", "<a@b.co>",
                         "a\x7f@b.co", "a\x01@b.co", "caf\xc3\xa9@b.co", "a@b.co\r\nBcc: x@y.z", "a@b.co\n",
                         /* domains */
                         "a@b", "a@localhost", "a@.b.co", "a@b.co.", "a@-b.co", "a@b-.co", "a@b.-co",
                         "a@b.co-", "a@b_c.co", "a@[127.0.0.1]", "a@b.c\xc3\xb6m", "a@b!.co", "a@b.co/",
                         "a@b.c o"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    assert_false(util_email_valid(NULL, 0, 0));
    assert_false(util_email_valid("a@b.co\0x", 8, 0)); /* a NUL inside */
    assert_false(util_email_valid("a\0@b.co", 7, 0));
}

static void test_limits(void **state)
{
    char addr[300];
    /* local part: 64 bytes fit, 65 do not */
    memset(addr, 'l', 64);
    strcpy(addr + 64, "@example.com");
    assert_true(valid(addr));
    memset(addr, 'l', 65);
    strcpy(addr + 65, "@example.com");
    assert_false(valid(addr));
    /* a label: 63 bytes fit, 64 do not */
    strcpy(addr, "a@");
    memset(addr + 2, 'd', 63);
    strcpy(addr + 65, ".com");
    assert_true(valid(addr));
    memset(addr + 2, 'd', 64);
    strcpy(addr + 66, ".com");
    assert_false(valid(addr));
    /* the whole address: 254 bytes fit, 255 do not (64 + 1 + 63.63.61 = 254) */
    memset(addr, 'l', 64);
    addr[64] = '@';
    char *d = addr + 65;
    for (int i = 0; i < 2; i++, d += 64) {
        memset(d, 'd', 63);
        d[63] = '.';
    }
    memset(d, 'd', 61);
    d[61] = '\0';
    assert_int_equal(strlen(addr), 254);
    assert_true(valid(addr));
    strcat(addr, "d");
    assert_int_equal(strlen(addr), 255);
    assert_false(valid(addr));
}

static void test_single_label_only_when_asked(void **state)
{
    assert_false(util_email_valid("no-reply@localhost", 18, 0));
    assert_true(util_email_valid("no-reply@localhost", 18, UTIL_EMAIL_SINGLE_LABEL));
    assert_true(util_email_valid("no-reply@example.com", 20, UTIL_EMAIL_SINGLE_LABEL));
    assert_false(util_email_valid("no-reply@-localhost", 19, UTIL_EMAIL_SINGLE_LABEL));
    assert_false(util_email_valid("no-reply@", 9, UTIL_EMAIL_SINGLE_LABEL));
    assert_false(util_email_valid("a(b)@localhost", 14, UTIL_EMAIL_SINGLE_LABEL));
}

static void test_normalize(void **state)
{
    char out[300];
    assert_int_equal(util_email_normalize("  Alice@Example.COM \n", 21, out, sizeof(out)), 0);
    assert_string_equal(out, "alice@example.com");
    const char *bad[] = {"",
                         "   ",
                         "a@b",
                         "@example.com",
                         "alice@",
                         "alice@example",
                         "a@@b.co",
                         "al ice@example.com",
                         "alice@.com",
                         "alice@example.com.",
                         "a(b)@x.com",
                         "a@b..com",
                         "\xc3\x9c@x.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (util_email_normalize(bad[i], strlen(bad[i]), out, sizeof(out)) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(util_email_normalize("a@b.co\0x", 8, out, sizeof(out)), -1);
    /* out too small for the address and its NUL */
    assert_int_equal(util_email_normalize("a@b.co", 6, out, 6), -1);
    assert_int_equal(util_email_normalize("a@b.co", 6, out, 7), 0);
}

static void test_fold(void **state)
{
    char out[300];
    /* folding trims and lower-cases ASCII only, and does not judge: a lookup key */
    assert_int_equal(util_email_fold(" \tA(B)@X.COM\r\n", strlen(" \tA(B)@X.COM\r\n"), out, sizeof(out)), 10);
    assert_string_equal(out, "a(b)@x.com");
    assert_int_equal(util_email_fold("\xc3\x9c@X.com", strlen("\xc3\x9c@X.com"), out, sizeof(out)), 8);
    assert_string_equal(out, "\xc3\x9c@x.com");
    assert_int_equal(util_email_fold("  ", 2, out, sizeof(out)), -1);
    char big[300];
    memset(big, 'a', 255);
    assert_int_equal(util_email_fold(big, 254, out, sizeof(out)), 254);
    assert_int_equal(util_email_fold(big, 255, out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),  cmocka_unit_test(test_refused),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_single_label_only_when_asked),
        cmocka_unit_test(test_normalize), cmocka_unit_test(test_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
