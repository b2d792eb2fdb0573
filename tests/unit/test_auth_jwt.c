/*
 * Access tokens: what we sign verifies (and a token signed by PyJWT does too), and every
 * kind of bad token is refused: tampered, other key, other or no algorithm, expired,
 * wrong type or issuer, issued in the future, malformed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define SECRET "unit-test-secret-0123456789abcdef-0123"
#define NOW    1800000000

static const auth_jwt_config_t config = {(const unsigned char *)SECRET, sizeof(SECRET) - 1, "hydrant", 900,
                                         5};

static auth_jwt_status_t verify(const char *token, time_t now, auth_claims_t *claims)
{
    return auth_jwt_verify(&config, token, strlen(token), now, claims);
}

static void test_issue_and_verify(void **state)
{
    auth_claims_t issued, seen;
    char *token =
        auth_jwt_issue(&config, "0192f1c4-aaaa-7000-8000-000000000001", "superuser", "fam-1", NOW, &issued);
    assert_non_null(token);
    assert_int_equal(verify(token, NOW + 10, &seen), AUTH_JWT_OK);
    assert_string_equal(seen.sub, "0192f1c4-aaaa-7000-8000-000000000001");
    assert_string_equal(seen.role, "superuser");
    assert_string_equal(seen.sid, "fam-1");
    assert_string_equal(seen.jti, issued.jti);
    assert_int_equal(strlen(seen.jti), 32);
    assert_int_equal(seen.iat, NOW);
    assert_int_equal(seen.exp, NOW + 900);
    char *other = auth_jwt_issue(&config, "x", "user", "fam", NOW, &issued);
    assert_string_not_equal(seen.jti, issued.jti); /* unique ids */
    free(other);
    /* expiry, with the leeway */
    assert_int_equal(verify(token, NOW + 905, NULL), AUTH_JWT_OK);
    assert_int_equal(verify(token, NOW + 906, NULL), AUTH_JWT_EXPIRED);
    /* issued in the future beyond the leeway */
    assert_int_equal(verify(token, NOW - 6, NULL), AUTH_JWT_INVALID);
    free(token);
}

static void test_token_from_pyjwt(void **state)
{
    const char *token =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoiMDE5MmYxYzQtMDAwMC03MDAwLTg"
        "wMDAtMDAwMDAwMDAwMDAxIiwicm9sZSI6ImFkbWluIiwidHlwIjoiYWNjZXNzIiwianRpIjoiYWJjMTIzIiwic2lkIjoiczE"
        "iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.Zz-t7gUTI7fwRuh7W500trKjeezHlSx48AjgFz8Ot-E";
    auth_claims_t c;
    assert_int_equal(verify(token, NOW, &c), AUTH_JWT_OK);
    assert_string_equal(c.role, "admin");
    assert_string_equal(c.jti, "abc123");
    assert_string_equal(c.sid, "s1");
    /* the same claims signed with HS512 by the same key: the algorithm is pinned */
    const char *hs512 =
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoidSIsInJvbGUiOiJ1c2VyIiwidHlwIjo"
        "iYWNjZXNzIiwianRpIjoiaiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.uCcGQOt-05ZJABv9-2PT4-D5"
        "sDpdgDwON_HdD8gs4hCWly9o714g3HWjpVaa_Zh_EeZOLadQCPpxwX7blNn14Q";
    assert_int_equal(verify(hs512, NOW, NULL), AUTH_JWT_INVALID);
}

static void test_tampered_and_foreign(void **state)
{
    char *token = auth_jwt_issue(&config, "u1", "user", "fam", NOW, NULL);
    char *dot = strchr(token, '.');
    /* flip one character of the payload */
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(token, NOW, NULL), AUTH_JWT_INVALID);
    free(token);
    /* the signature: each of its last character's spellings but the real one, one byte short,
     * one byte long */
    token = auth_jwt_issue(&config, "u1", "user", "fam", NOW, NULL);
    size_t len = strlen(token);
    char real = token[len - 1];
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (const char *c = b64url; *c != '\0'; c++) {
        token[len - 1] = *c;
        assert_int_equal(verify(token, NOW, NULL), *c == real ? AUTH_JWT_OK : AUTH_JWT_INVALID);
    }
    assert_int_equal(auth_jwt_verify(&config, token, len - 2, NOW, NULL), AUTH_JWT_INVALID);
    char *longer = malloc(len + 3);
    snprintf(longer, len + 3, "%sAA", token);
    assert_int_equal(verify(longer, NOW, NULL), AUTH_JWT_INVALID);
    free(longer);
    free(token);
    /* another key */
    auth_jwt_config_t other = config;
    other.secret = (const unsigned char *)"another-secret-0123456789abcdef-0123456";
    other.secret_len = strlen((const char *)other.secret);
    token = auth_jwt_issue(&other, "u1", "user", "fam", NOW, NULL);
    assert_int_equal(verify(token, NOW, NULL), AUTH_JWT_INVALID);
    free(token);
    /* another issuer */
    other = config;
    other.issuer = "someone-else";
    token = auth_jwt_issue(&other, "u1", "admin", "fam", NOW, NULL);
    assert_int_equal(verify(token, NOW, NULL), AUTH_JWT_INVALID);
    free(token);
}

/* {"alg":"none","typ":"JWT"} and {"alg":"HS256","typ":"JWT"} over the same payload. */
static void test_alg_none_and_headers(void **state)
{
    char *good = auth_jwt_issue(&config, "u1", "admin", "fam", NOW, NULL);
    const char *payload = strchr(good, '.');
    char forged[2048];
    snprintf(forged, sizeof(forged), "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%.*s.",
             (int)(strrchr(good, '.') - payload), payload);
    assert_int_equal(verify(forged, NOW, NULL), AUTH_JWT_INVALID); /* empty signature */
    snprintf(forged, sizeof(forged), "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%s", payload);
    assert_int_equal(verify(forged, NOW, NULL), AUTH_JWT_INVALID); /* none, with the real signature */
    /* {"alg":"HS256","typ":"JWS"} */
    snprintf(forged, sizeof(forged), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXUyJ9%s", payload);
    assert_int_equal(verify(forged, NOW, NULL), AUTH_JWT_INVALID);
    /* {"alg":"HS256","alg":"none"}: duplicate keys */
    snprintf(forged, sizeof(forged), "eyJhbGciOiJIUzI1NiIsImFsZyI6Im5vbmUifQ%s", payload);
    assert_int_equal(verify(forged, NOW, NULL), AUTH_JWT_INVALID);
    free(good);
}

/* Signed with our key by PyJWT, but not access tokens as we make them. */
static void test_wrong_claims(void **state)
{
    const char *refresh_typ =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoidTEiLCJyb2xlIjoidXNlciIsInR5cCI6InJlZnJl"
        "c2giLCJqdGkiOiJqMSIsInNpZCI6InMxIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjQxMDI0NDQ4MDB9."
        "rrgISg0scTxYZxuHU55U87C8kbVRmR3GecG_4_cvxWk";
    const char *no_typ = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                         "eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoidTEiLCJyb2xlIjoidXNlciIsImp0aSI6ImoxIiwi"
                         "c2lkIjoiczEiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0."
                         "r07lOuXAeqSN7HVt1A0vazjgQjp6dtz-R9RXg1KOqWI";
    const char *string_iat =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoidTEiLCJyb2xlIjoidXNlciIsInR5cCI6ImFjY2Vz"
        "cyIsImp0aSI6ImoxIiwic2lkIjoiczEiLCJpYXQiOiIxNzAwMDAwMDAwIiwiZXhwIjo0MTAyNDQ0ODAwfQ."
        "WJnx0NCsjUEjVdxVfsucSAGwhL3EB0CGRSdxFa85Tig";
    assert_int_equal(verify(refresh_typ, NOW, NULL), AUTH_JWT_INVALID);
    assert_int_equal(verify(no_typ, NOW, NULL), AUTH_JWT_INVALID);
    assert_int_equal(verify(string_iat, NOW, NULL), AUTH_JWT_INVALID);
}

/* exp at the largest integer (only the key's holder can sign one) is checked without
 * overflowing: exp + leeway was undefined behaviour (seen while writing tests/fuzz/
 * fuzz_auth_jwt.c, whose signed mode reproduces it; UBSan in the ASan build stops on it). */
static void test_exp_at_int64_max(void **state)
{
    const char *token =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
        "eyJpc3MiOiJoeWRyYW50Iiwic3ViIjoidTEiLCJyb2xlIjoidXNlciIsInR5cCI6ImFjY2Vz"
        "cyIsImp0aSI6ImoxIiwic2lkIjoiczEiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6OTIyMzM3MjAzNjg1NDc3NTgwN30."
        "BrqD5Q0Nqwue0uSa1Vhl0BHZ3w-7osa6RpiM5sVFOeA";
    auth_claims_t claims;
    assert_int_equal(verify(token, NOW, &claims), AUTH_JWT_OK);
    assert_true(claims.exp == INT64_MAX);
    /* A clock at the far end too: now + leeway overflowed in the iat check (found by the
     * fuzz target, which verifies a token again just past its exp). */
    assert_int_equal(verify(token, (time_t)(INT64_MAX - 2), NULL), AUTH_JWT_OK);
    assert_int_equal(verify(token, (time_t)INT64_MIN, NULL), AUTH_JWT_INVALID); /* issued "later" */
}

static void test_malformed(void **state)
{
    const char *bad[] = {"",
                         ".",
                         "..",
                         "a.b",
                         "a.b.c.d",
                         "a..c",
                         ".b.c",
                         "a.b.",
                         "not a token",
                         "eyJhbGciOiJIUzI1NiJ9.e30.sig=",
                         "eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
                         "e30.e30.e30",
                         "bnVsbA.e30.e30" /* header "null" */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify(bad[i], NOW, NULL), AUTH_JWT_INVALID);
    char *huge = malloc(5000);
    memset(huge, 'a', 4999);
    huge[4999] = '\0';
    huge[100] = huge[200] = '.';
    assert_int_equal(verify(huge, NOW, NULL), AUTH_JWT_INVALID);
    free(huge);
    char *token = auth_jwt_issue(&config, "u1", "user", "fam", NOW, NULL);
    /* a NUL inside the claimed length */
    assert_int_equal(auth_jwt_verify(&config, token, strlen(token) + 1, NOW, NULL), AUTH_JWT_INVALID);
    /* a truncated token */
    assert_int_equal(auth_jwt_verify(&config, token, strlen(token) - 3, NOW, NULL), AUTH_JWT_INVALID);
    free(token);
}

static void test_opaque_tokens(void **state)
{
    char a[AUTH_TOKEN_LEN + 1], b[AUTH_TOKEN_LEN + 1];
    assert_int_equal(auth_token_new(a), 0);
    assert_int_equal(auth_token_new(b), 0);
    assert_int_equal(strlen(a), AUTH_TOKEN_LEN);
    assert_string_not_equal(a, b);
    assert_true(auth_token_plausible(a, strlen(a)));
    assert_false(auth_token_plausible("short", 5));
    assert_false(auth_token_plausible("aaaaaaaaaaaaaaaa+aaa", 20));
    assert_false(auth_token_plausible("aaaaaaaaaaaaaaaa\0aaa", 20));
    char hash[AUTH_TOKEN_HASH_LEN + 1];
    auth_token_hash("abc", 3, hash); /* the FIPS 180-2 example */
    assert_string_equal(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* The second and later uses of a token come from the per-thread cache of verified tokens:
 * they must decide exactly as a fresh verification would. */
static void test_repeated_tokens(void **state)
{
    (void)state;
    auth_claims_t first, again;
    char *token = auth_jwt_issue(&config, "u-cache", "admin", "fam-c", NOW, NULL);
    assert_int_equal(verify(token, NOW, &first), AUTH_JWT_OK);
    memset(&again, 0, sizeof(again));
    assert_int_equal(verify(token, NOW + 1, &again), AUTH_JWT_OK);
    assert_memory_equal(&first, &again, sizeof(first));
    /* time moves on: expired (beyond the leeway), or not yet valid for a clock far behind */
    assert_int_equal(verify(token, NOW + 900 + 5 + 1, NULL), AUTH_JWT_EXPIRED);
    assert_int_equal(verify(token, NOW - 6, NULL), AUTH_JWT_INVALID);
    assert_int_equal(verify(token, NOW, NULL), AUTH_JWT_OK);
    /* another secret or issuer does not find the cached verdict */
    auth_jwt_config_t other = config;
    other.secret = (const unsigned char *)"another-secret-0123456789abcdef-0123456";
    other.secret_len = strlen((const char *)other.secret);
    assert_int_equal(auth_jwt_verify(&other, token, strlen(token), NOW, NULL), AUTH_JWT_INVALID);
    other = config;
    other.issuer = "someone-else";
    assert_int_equal(auth_jwt_verify(&other, token, strlen(token), NOW, NULL), AUTH_JWT_INVALID);
    /* a prefix or a one-character change of a cached token is a different token */
    size_t len = strlen(token);
    assert_int_equal(auth_jwt_verify(&config, token, len - 1, NOW, NULL), AUTH_JWT_INVALID);
    token[len - 2] = token[len - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(token, NOW, NULL), AUTH_JWT_INVALID);
    free(token);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_and_verify),
        cmocka_unit_test(test_token_from_pyjwt),
        cmocka_unit_test(test_tampered_and_foreign),
        cmocka_unit_test(test_alg_none_and_headers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_wrong_claims),
        cmocka_unit_test(test_exp_at_int64_max),
        cmocka_unit_test(test_opaque_tokens),
        cmocka_unit_test(test_repeated_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
