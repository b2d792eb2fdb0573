/*
 * The principal cache (src/auth/principal_cache.c) and the invalidation log
 * (principal_log.c): hits need a verified jti, entries expire, the LRU bound holds under many
 * distinct users, API keys are found through their map only while the user's entry holds
 * them, and the log forgets what was pushed (everything once it has wrapped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"

static auth_principal_t principal(int n)
{
    auth_principal_t p = {.role = "user", .tokens_valid_after = NAN, .user_json = "{\"id\":\"x\"}"};
    snprintf(p.user_id, sizeof(p.user_id), "00000000-0000-7000-8000-%012d", n);
    return p;
}

static void test_hit_needs_verified_jti(void **state)
{
    auth_pcache_t *c = auth_pcache_new(8);
    auth_principal_t p = principal(1);
    assert_null(auth_pcache_get(c, p.user_id, "j1", 0));
    assert_int_equal(auth_pcache_put(c, &p, "j1", 1000), 0);
    const auth_principal_t *got = auth_pcache_get(c, p.user_id, "j1", 10);
    assert_non_null(got);
    assert_string_equal(got->role, "user");
    assert_string_equal(got->user_json, "{\"id\":\"x\"}");
    assert_ptr_not_equal(got->user_json, p.user_json);    /* its own copy */
    assert_null(auth_pcache_get(c, p.user_id, "j2", 10)); /* never verified */
    /* A second jti joins the entry; the earlier expiry stays. */
    assert_int_equal(auth_pcache_put(c, &p, "j2", 5000), 0);
    assert_non_null(auth_pcache_get(c, p.user_id, "j2", 10));
    assert_non_null(auth_pcache_get(c, p.user_id, "j1", 10));
    assert_null(auth_pcache_get(c, p.user_id, "j1", 1000)); /* expired, and removed */
    assert_int_equal(auth_pcache_count(c), 0);
    auth_pcache_free(c);
}

static void test_jti_set_is_bounded(void **state)
{
    auth_pcache_t *c = auth_pcache_new(8);
    auth_principal_t p = principal(1);
    char jti[16];
    for (int i = 0; i < AUTH_PCACHE_JTIS + 2; i++) {
        snprintf(jti, sizeof(jti), "j%d", i);
        assert_int_equal(auth_pcache_put(c, &p, jti, 1000), 0);
    }
    assert_null(auth_pcache_get(c, p.user_id, "j0", 1)); /* the oldest were replaced */
    assert_null(auth_pcache_get(c, p.user_id, "j1", 1));
    snprintf(jti, sizeof(jti), "j%d", AUTH_PCACHE_JTIS + 1);
    assert_non_null(auth_pcache_get(c, p.user_id, jti, 1));
    char long_jti[80];
    memset(long_jti, 'a', sizeof(long_jti) - 1);
    long_jti[sizeof(long_jti) - 1] = '\0';
    assert_int_equal(auth_pcache_put(c, &p, long_jti, 1000), -1);
    auth_pcache_free(c);
}

static void test_forget_and_clear(void **state)
{
    auth_pcache_t *c = auth_pcache_new(8);
    for (int i = 0; i < 5; i++) {
        auth_principal_t p = principal(i);
        assert_int_equal(auth_pcache_put(c, &p, "j", 1000), 0);
    }
    auth_principal_t p2 = principal(2);
    assert_int_equal(auth_pcache_forget(c, p2.user_id), 1);
    assert_int_equal(auth_pcache_forget(c, p2.user_id), 0);
    assert_null(auth_pcache_get(c, p2.user_id, "j", 1));
    assert_int_equal(auth_pcache_count(c), 4);
    assert_int_equal(auth_pcache_clear(c), 4);
    assert_int_equal(auth_pcache_count(c), 0);
    auth_pcache_free(c);
}

/* 100,000 distinct users through a cache of 1,000: never more than 1,000 entries, the most
 * recent ones stay, and a user kept in use is never the one evicted. */
static void test_lru_bound_many_users(void **state)
{
    const size_t max = 1000;
    auth_pcache_t *c = auth_pcache_new(max);
    auth_principal_t hot = principal(999999);
    assert_int_equal(auth_pcache_put(c, &hot, "h", UINT64_MAX), 0);
    for (int i = 0; i < 100000; i++) {
        auth_principal_t p = principal(i);
        assert_int_equal(auth_pcache_put(c, &p, "j", UINT64_MAX), 0);
        assert_true(auth_pcache_count(c) <= max);
        if (i % 100 == 0)
            assert_non_null(auth_pcache_get(c, hot.user_id, "h", 1));
    }
    assert_int_equal(auth_pcache_count(c), max);
    assert_int_equal(auth_pcache_evictions(c), 100000 + 1 - max);
    assert_non_null(auth_pcache_get(c, hot.user_id, "h", 1));
    auth_principal_t last = principal(99999), gone = principal(0);
    assert_non_null(auth_pcache_get(c, last.user_id, "j", 1));
    assert_null(auth_pcache_get(c, gone.user_id, "j", 1));
    auth_pcache_free(c);
}

static void test_log_apply_and_touched(void **state)
{
    auth_pcache_t *c = auth_pcache_new(16);
    auth_pcache_log_t *log = auth_pcache_log_new(4);
    for (int i = 0; i < 3; i++) {
        auth_principal_t p = principal(i);
        assert_int_equal(auth_pcache_put(c, &p, "j", 1000), 0);
    }
    uint64_t cursor = auth_pcache_log_head(log);
    auth_principal_t p1 = principal(1), p2 = principal(2);
    assert_int_equal(auth_pcache_log_touched(log, cursor, p1.user_id), 0);
    auth_pcache_log_push(log, p1.user_id, 0, 1);
    assert_int_equal(auth_pcache_log_touched(log, cursor, p1.user_id), 1);
    assert_int_equal(auth_pcache_log_touched(log, cursor, p2.user_id), 0);
    assert_int_equal(auth_pcache_log_apply(log, &cursor, c), 1);
    assert_int_equal(cursor, auth_pcache_log_head(log));
    assert_int_equal(auth_pcache_count(c), 2);
    assert_int_equal(auth_pcache_log_apply(log, &cursor, c), 0);
    /* Everyone. */
    auth_pcache_log_push(log, AUTH_PCACHE_ALL, 0, 1);
    assert_int_equal(auth_pcache_log_touched(log, cursor, p2.user_id), 1);
    assert_int_equal(auth_pcache_log_apply(log, &cursor, c), 2);
    /* A cursor the ring has lapped: everything goes, and every fill since is suspect. */
    auth_principal_t p0 = principal(0);
    assert_int_equal(auth_pcache_put(c, &p0, "j", 1000), 0);
    uint64_t old = cursor;
    for (int i = 0; i < 5; i++)
        auth_pcache_log_push(log, "someone-else", 0, 1);
    assert_int_equal(auth_pcache_log_touched(log, old, p0.user_id), 1);
    assert_int_equal(auth_pcache_log_apply(log, &cursor, c), 1);
    assert_int_equal(auth_pcache_count(c), 0);
    /* A payload too long to be a user id counts as everyone. */
    uint64_t before = cursor;
    auth_pcache_log_push(log, "0123456789012345678901234567890123456789-too-long", 0, 1);
    assert_int_equal(auth_pcache_log_touched(log, before, p0.user_id), 1);
    auth_pcache_log_free(log);
    auth_pcache_free(c);
}

/* What a revoking request waits for: the database's word (heard) about its user, since
 * the request began; its own push does not count. */
static void test_log_wait_heard(void **state)
{
    auth_pcache_log_t *log = auth_pcache_log_new(8);
    auth_pcache_log_push(log, "u1", 0, 100);
    assert_int_equal(auth_pcache_log_wait_heard(log, "u1", 100, 10), 0); /* times out */
    auth_pcache_log_push(log, "u2", 1, 100);
    assert_int_equal(auth_pcache_log_wait_heard(log, "u1", 100, 1), 0);
    auth_pcache_log_push(log, "u1", 1, 90); /* heard before the request began */
    assert_int_equal(auth_pcache_log_wait_heard(log, "u1", 100, 1), 0);
    auth_pcache_log_push(log, "u1", 1, 105);
    assert_int_equal(auth_pcache_log_wait_heard(log, "u1", 100, 1000), 1);
    auth_pcache_log_push(log, AUTH_PCACHE_ALL, 1, 110); /* everyone (the listener went down) */
    assert_int_equal(auth_pcache_log_wait_heard(log, "u3", 106, 1000), 1);
    auth_pcache_log_free(log);
}

/* A key's hash as SHA-256 hex of a made-up key. */
static void key_hash(int n, char out[AUTH_TOKEN_HASH_LEN + 1])
{
    char key[32];
    snprintf(key, sizeof(key), "hk_key-number-%d", n);
    auth_token_hash(key, strlen(key), out);
}

static void test_key_map(void **state)
{
    auth_pcache_t *c = auth_pcache_new(8);
    auth_principal_t p = principal(1);
    char k1[AUTH_TOKEN_HASH_LEN + 1], k2[AUTH_TOKEN_HASH_LEN + 1];
    key_hash(1, k1);
    key_hash(2, k2);
    int touch = -1;
    assert_null(auth_pcache_get_key(c, k1, 0, 100, &touch));
    assert_int_equal(touch, 0);
    assert_int_equal(auth_pcache_put_key(c, &p, k1, 1000, 10), 0);
    const auth_principal_t *got = auth_pcache_get_key(c, k1, 20, 100, &touch);
    assert_non_null(got);
    assert_string_equal(got->user_id, p.user_id);
    assert_int_equal(touch, 0); /* written at 10, not yet due */
    assert_non_null(auth_pcache_get_key(c, k1, 110, 100, &touch));
    assert_int_equal(touch, 1); /* due: and counted as written now */
    assert_non_null(auth_pcache_get_key(c, k1, 120, 100, &touch));
    assert_int_equal(touch, 0);
    assert_null(auth_pcache_get_key(c, k2, 20, 100, &touch)); /* never verified */
    /* Forgetting the user makes the map's pair stale: a miss, and a token fill of the same
     * user does not bring the key back. */
    assert_int_equal(auth_pcache_forget(c, p.user_id), 1);
    assert_null(auth_pcache_get_key(c, k1, 20, 100, &touch));
    assert_int_equal(auth_pcache_put(c, &p, "j1", 1000), 0);
    assert_null(auth_pcache_get_key(c, k1, 20, 100, &touch));
    assert_non_null(auth_pcache_get(c, p.user_id, "j1", 20));
    /* The key's entry expires like any other. */
    assert_int_equal(auth_pcache_put_key(c, &p, k2, 1000, 10), 0);
    assert_non_null(auth_pcache_get_key(c, k2, 20, 100, &touch));
    assert_null(auth_pcache_get_key(c, k2, 1000, 100, &touch));
    /* Bounded: many keys never hold more than max_entries pairs. */
    for (int i = 0; i < 1000; i++) {
        auth_principal_t q = principal(i);
        char k[AUTH_TOKEN_HASH_LEN + 1];
        key_hash(100 + i, k);
        assert_int_equal(auth_pcache_put_key(c, &q, k, 5000, 0), 0);
        assert_non_null(auth_pcache_get_key(c, k, 1, 100, &touch));
    }
    assert_true(auth_pcache_key_count(c) <= 8);
    assert_true(auth_pcache_key_evictions(c) >= 1000 - 8);
    assert_int_equal(auth_pcache_put_key(c, &p, "short", 1000, 0), -1);
    auth_pcache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_needs_verified_jti),
        cmocka_unit_test(test_jti_set_is_bounded),
        cmocka_unit_test(test_forget_and_clear),
        cmocka_unit_test(test_lru_bound_many_users),
        cmocka_unit_test(test_log_apply_and_touched),
        cmocka_unit_test(test_log_wait_heard),
        cmocka_unit_test(test_key_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
