/*
 * Passwords: Argon2id round trips, hashes made by other implementations (argon2-cffi,
 * Python's crypt for bcrypt), rehash decisions, and the input rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

/* Small parameters: the tests check behaviour, not cost. */
static const auth_argon2_params_t quick = {64, 1, 1};

#define PW "correct horse battery"

static void test_argon2id_round_trip(void **state)
{
    char hash[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(PW, strlen(PW), &quick, hash, sizeof(hash)), 0);
    assert_int_equal(strncmp(hash, "$argon2id$v=19$m=64,t=1,p=1$", 28), 0);
    assert_int_equal(auth_password_verify(PW, strlen(PW), hash), AUTH_VERIFY_MATCH);
    assert_int_equal(auth_password_verify("correct horse batterY", strlen(PW), hash), AUTH_VERIFY_MISMATCH);
    assert_int_equal(auth_password_verify(PW, strlen(PW) - 1, hash), AUTH_VERIFY_MISMATCH);
    char again[AUTH_HASH_MAX];
    assert_int_equal(auth_password_hash(PW, strlen(PW), &quick, again, sizeof(again)), 0);
    assert_string_not_equal(hash, again); /* a fresh salt each time */
    char small[40];
    assert_int_equal(auth_password_hash(PW, strlen(PW), &quick, small, sizeof(small)), -1);
}

/* Made by argon2-cffi 21.1 (Debian's python3-argon2): the PHC strings are portable. */
static void test_hashes_from_other_implementations(void **state)
{
    assert_int_equal(
        auth_password_verify(PW, strlen(PW),
                             "$argon2id$v=19$m=64,t=1,p=1$wu6YhF+EzHQldem6X1KP/w$o4eNHr7ohtjv3LbACufZhQ"),
        AUTH_VERIFY_MATCH);
    const char *unicode = "p\xc3\xa4ssw\xc3\xb6rd \xc3\xbcn\xc3\xaf"
                          "code";
    assert_int_equal(
        auth_password_verify(unicode, strlen(unicode),
                             "$argon2i$v=19$m=1024,t=2,p=2$5R7JjAxYxUcDIXMT4NyZbQ$d2gG/eRh3JtoJedA5YIVSA"),
        AUTH_VERIFY_MATCH);
    /* bcrypt from Python's crypt (libxcrypt), and the same hash under the $2y$ and $2a$ names */
    const char *bcrypt = "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa";
    assert_int_equal(auth_password_verify(PW, strlen(PW), bcrypt), AUTH_VERIFY_MATCH);
    assert_int_equal(auth_password_verify("wrong password!", 15, bcrypt), AUTH_VERIFY_MISMATCH);
    char other[80];
    strcpy(other, bcrypt);
    other[2] = 'y';
    assert_int_equal(auth_password_verify(PW, strlen(PW), other), AUTH_VERIFY_MATCH);
    /* a NUL inside the password never matches a bcrypt hash (crypt would stop at it) */
    assert_int_equal(auth_password_verify("correct horse battery\0x", strlen(PW) + 2, bcrypt),
                     AUTH_VERIFY_MISMATCH);
}

static void test_unsupported_and_corrupt_hashes(void **state)
{
    assert_int_equal(auth_password_verify(PW, strlen(PW), ""), AUTH_VERIFY_UNSUPPORTED);
    assert_int_equal(auth_password_verify(PW, strlen(PW), "plaintext"), AUTH_VERIFY_UNSUPPORTED);
    assert_int_equal(auth_password_verify(PW, strlen(PW), "$1$abc$def"),
                     AUTH_VERIFY_UNSUPPORTED); /* md5-crypt */
    assert_int_equal(auth_password_verify(PW, strlen(PW), "$argon2id$v=19$m=64,t=1,p=1$short"),
                     AUTH_VERIFY_UNSUPPORTED);
    assert_int_equal(auth_password_verify(PW, strlen(PW), "$2b$04$tooshort"), AUTH_VERIFY_UNSUPPORTED);
}

static void test_needs_rehash(void **state)
{
    auth_argon2_params_t owasp = {19456, 2, 1};
    assert_false(auth_password_needs_rehash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", &owasp));
    assert_false(auth_password_needs_rehash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", &owasp));
    assert_true(auth_password_needs_rehash("$argon2id$v=19$m=4096,t=2,p=1$c2FsdA$aGFzaA", &owasp));
    assert_true(auth_password_needs_rehash("$argon2id$v=19$m=19456,t=1,p=1$c2FsdA$aGFzaA", &owasp));
    assert_true(auth_password_needs_rehash("$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", &owasp));
    assert_true(
        auth_password_needs_rehash("$2b$12$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa", &owasp));
}

static void test_password_rules(void **state)
{
    assert_true(auth_password_acceptable("12345678", 8));
    assert_false(auth_password_acceptable("1234567", 7));
    /* 8 code points of 2 bytes each, and 7 of them (14 bytes) */
    const char *eight = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    assert_true(auth_password_acceptable(eight, 16));
    assert_false(auth_password_acceptable(eight, 14));
    assert_false(auth_password_acceptable("abc\0defgh", 9));        /* NUL */
    assert_false(auth_password_acceptable("abcdefg\xc3", 8));       /* truncated */
    assert_false(auth_password_acceptable("abcdefg\xff", 8));       /* not UTF-8 */
    assert_false(auth_password_acceptable("abcdef\xc0\xaf", 8));    /* overlong */
    assert_false(auth_password_acceptable("abcde\xed\xa0\x80", 8)); /* surrogate */
    char *big = malloc(10 * 1024);
    memset(big, 'a', 10 * 1024);
    assert_false(auth_password_acceptable(big, 10 * 1024)); /* refused before any hashing */
    assert_true(auth_password_acceptable(big, 256));
    assert_false(auth_password_acceptable(big, 257));
    free(big);
}

static void test_username_rules(void **state)
{
    assert_true(auth_username_valid("alice", 5));
    assert_true(auth_username_valid("a.b-c_9", 7));
    assert_false(auth_username_valid("ab", 2));
    assert_false(auth_username_valid("abcdefghijklmnopqrstuvwxyz0123456", 33));
    assert_false(auth_username_valid("al ice", 6));
    assert_false(auth_username_valid("ali'ce", 6));
    assert_false(auth_username_valid("al\xc3\xa9", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argon2id_round_trip),
        cmocka_unit_test(test_hashes_from_other_implementations),
        cmocka_unit_test(test_unsupported_and_corrupt_hashes),
        cmocka_unit_test(test_needs_rehash),
        cmocka_unit_test(test_password_rules),
        cmocka_unit_test(test_username_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
