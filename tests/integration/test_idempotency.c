/*
 * Idempotency-Key (contract v1.1) against the real server: a repeat with the same key and
 * request gets the first answer without acting twice; another request under the key is 422;
 * a claim in progress is 409 and a stale one is taken over; keys belong to their caller; the
 * kept answers do not hold secrets in clear; an answer is kept even when its client left
 * before it, so that the client's retry gets it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD "idempotent-password-1"

static harness_server_t server;
static PGconn *db;

static const char *const server_env[] = {
    "HYDRANT_ARGON2_MEMORY_KIB=1024",           "HYDRANT_ARGON2_ITERATIONS=1",
    "HYDRANT_REQUIRE_EMAIL_CONFIRMATION=false", "HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS=1000000",
    "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",  NULL};

static int group_setup(void **state)
{
    (void)state;
    return harness_server_start_with_db(&server, server_env, &db);
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

typedef struct {
    long status;
    char body[4096];
    int replayed; /* Idempotent-Replayed: true */
} answer_t;

/* POST with an Idempotency-Key (NULL: none) and an Authorization header (NULL: none). */
static void post(answer_t *a, int protocol, const char *path, const char *key, const char *auth,
                 const char *body)
{
    char url[256], key_header[400];
    snprintf(url, sizeof(url), "%s%s", server.https_base, path);
    snprintf(key_header, sizeof(key_header), "Idempotency-Key: %s", key != NULL ? key : "");
    const char *headers[4] = {"Content-Type: application/json"};
    int n = 1;
    if (key != NULL)
        headers[n++] = key_header;
    if (auth != NULL)
        headers[n++] = auth;
    headers[n] = NULL;
    harness_response_t res;
    harness_request(&res, protocol, "POST", url, headers, body, strlen(body));
    a->status = res.status;
    snprintf(a->body, sizeof(a->body), "%s", res.body != NULL ? res.body : "");
    char value[16];
    a->replayed = harness_header(&res, "idempotent-replayed", value, sizeof(value)) != NULL &&
                  strcmp(value, "true") == 0;
    harness_response_free(&res);
}

static char *sql_value(const char *query, const char *param)
{
    PGresult *res = harness_sql(db, query, param != NULL ? 1 : 0, param != NULL ? &param : NULL);
    char *v = strdup(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

static void assert_sql(const char *query, const char *param, const char *want)
{
    char *v = sql_value(query, param);
    assert_string_equal(v, want);
    free(v);
}

static const char *error_code(const char *body, char *buf, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr);
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    snprintf(buf, len, "%s", code != NULL ? code : "");
    json_decref(doc);
    return buf;
}

static void signup_body(char *out, size_t len, const char *tag, const char *password)
{
    snprintf(out, len, "{\"email\":\"idem-%s-%d@example.com\",\"password\":\"%s\"}", tag, getpid(), password);
}

static void test_repeat_gets_the_first_answer(void **state)
{
    (void)state;
    char body[256], key[64], code[32];
    signup_body(body, sizeof(body), "repeat", PASSWORD);
    snprintf(key, sizeof(key), "signup-%d", getpid());
    answer_t first, again, other;
    post(&first, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(first.status, 201);
    assert_false(first.replayed);
    post(&again, HARNESS_HTTP1, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(again.status, 201); /* not 409 email_taken: the first answer */
    assert_true(again.replayed);
    assert_string_equal(again.body, first.body);
    char email[128];
    snprintf(email, sizeof(email), "idem-repeat-%d@example.com", getpid());
    assert_sql("SELECT count(*) FROM users WHERE email = $1", email, "1");
    /* the same key with another request */
    signup_body(body, sizeof(body), "repeat", "another-password-2");
    post(&other, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(other.status, 422);
    assert_string_equal(error_code(other.body, code, sizeof(code)), "validation_failed");
    assert_non_null(strstr(other.body, "Idempotency-Key"));
    /* without a key, the same sign-up is a conflict as ever */
    signup_body(body, sizeof(body), "repeat", PASSWORD);
    post(&other, HARNESS_HTTP2, "/api/v1/auth/signup", NULL, NULL, body);
    assert_int_equal(other.status, 409);
}

static void test_malformed_keys_are_refused(void **state)
{
    (void)state;
    char body[256], long_key[300];
    signup_body(body, sizeof(body), "malformed", PASSWORD);
    memset(long_key, 'k', 256);
    long_key[256] = '\0';
    const char *bad[] = {"has space", "sémantique", long_key, "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        answer_t a;
        post(&a, HARNESS_HTTP2, "/api/v1/auth/signup", bad[i], NULL, body);
        assert_int_equal(a.status, 400);
    }
    char email[128];
    snprintf(email, sizeof(email), "idem-malformed-%d@example.com", getpid());
    assert_sql("SELECT count(*) FROM users WHERE email = $1", email, "0");
}

static void test_claims_in_progress_and_stale(void **state)
{
    (void)state;
    char body[256], key[64], code[32];
    signup_body(body, sizeof(body), "progress", PASSWORD);
    snprintf(key, sizeof(key), "progress-%d", getpid());
    answer_t a;
    post(&a, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(a.status, 201);
    /* as if the first request were still at work */
    PQclear(harness_sql(db,
                        "UPDATE idempotency_keys SET state = 'started', started_at = now() WHERE key = $1", 1,
                        (const char *const[]){key}));
    post(&a, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(a.status, 409);
    assert_string_equal(error_code(a.body, code, sizeof(code)), "conflict");
    assert_non_null(strstr(a.body, "still being processed"));
    /* as if it had written, then died before its answer */
    PQclear(harness_sql(db, "UPDATE idempotency_keys SET state = 'committed' WHERE key = $1", 1,
                        (const char *const[]){key}));
    post(&a, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(a.status, 409);
    assert_non_null(strstr(a.body, "took effect"));
    /* a claim that never wrote, long ago: taken over, and this attempt acts (the address is
     * taken by the first one now) */
    PQclear(
        harness_sql(db,
                    "UPDATE idempotency_keys SET state = 'started', started_at = now() - interval '1 hour' "
                    "WHERE key = $1",
                    1, (const char *const[]){key}));
    post(&a, HARNESS_HTTP2, "/api/v1/auth/signup", key, NULL, body);
    assert_int_equal(a.status, 409);
    assert_string_equal(error_code(a.body, code, sizeof(code)), "email_taken");
    assert_sql("SELECT state FROM idempotency_keys WHERE key = $1", key, "done");
}

static void test_keys_belong_to_their_caller(void **state)
{
    (void)state;
    harness_account_t alice, bob;
    assert_int_equal(harness_account_create(&alice, &server, db, server_env, "idem-alice", "user", PASSWORD),
                     0);
    assert_int_equal(harness_account_create(&bob, &server, db, server_env, "idem-bob", "user", PASSWORD), 0);
    answer_t first, again, other;
    post(&first, HARNESS_HTTP2, "/api/v1/me/api-key", "make-key", alice.auth, "");
    assert_int_equal(first.status, 201);
    post(&again, HARNESS_HTTP2, "/api/v1/me/api-key", "make-key", alice.auth, "");
    assert_int_equal(again.status, 201);
    assert_true(again.replayed);
    assert_string_equal(again.body, first.body); /* the same key, not a replaced one */
    post(&other, HARNESS_HTTP2, "/api/v1/me/api-key", "make-key", bob.auth, "");
    assert_int_equal(other.status, 201);
    assert_false(other.replayed);
    assert_string_not_equal(other.body, first.body);
    /* The kept answer holds the API key sealed, never in clear. */
    json_error_t jerr;
    json_t *doc = json_loads(first.body, 0, &jerr);
    const char *api_key = json_string_value(json_object_get(doc, "api_key"));
    assert_non_null(api_key);
    assert_sql(
        "SELECT count(*) FROM idempotency_keys WHERE key = 'make-key' AND position(convert_to($1, 'UTF8') "
        "IN body) > 0",
        api_key, "0");
    char scopes[128];
    snprintf(scopes, sizeof(scopes), "{%s,%s}", alice.id, bob.id);
    assert_sql("SELECT count(*) FROM idempotency_keys WHERE key = 'make-key' AND scope = ANY($1::text[])",
               scopes, "2");
    json_decref(doc);
    /* without credentials: 401 before any key is looked at */
    post(&other, HARNESS_HTTP2, "/api/v1/me/api-key", "make-key", NULL, "");
    assert_int_equal(other.status, 401);
}

/* The client gives up while the login waits (Redis paused under its rate-limit check); the
 * login goes on, its answer is kept, and the retry gets it: one session, not two. */
static void test_answer_kept_for_a_client_that_left(void **state)
{
    (void)state;
    harness_account_t carol;
    assert_int_equal(harness_account_create(&carol, &server, db, server_env, "idem-carol", "user", PASSWORD),
                     0);
    char body[256], key[64];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", carol.email);
    snprintf(key, sizeof(key), "login-%d", getpid());
    char *before =
        sql_value("SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1", carol.id);
    assert_int_equal(
        harness_system("redis-cli -p %d CLIENT PAUSE 700 ALL >/dev/null", harness_service_port("redis")), 0);
    harness_set_timeout_ms(250);
    answer_t gone, retry;
    post(&gone, HARNESS_HTTP2, "/api/v1/auth/login", key, NULL, body);
    harness_set_timeout_ms(10000);
    assert_int_equal(gone.status, 0); /* the client left */
    for (long long deadline = harness_now_ms() + 10000; harness_now_ms() < deadline; usleep(20 * 1000)) {
        char *st = sql_value("SELECT state FROM idempotency_keys WHERE key = $1", key);
        int done = strcmp(st, "done") == 0;
        free(st);
        if (done)
            break;
    }
    assert_sql("SELECT state FROM idempotency_keys WHERE key = $1", key, "done");
    post(&retry, HARNESS_HTTP1, "/api/v1/auth/login", key, NULL, body);
    assert_int_equal(retry.status, 200);
    assert_true(retry.replayed);
    char *after =
        sql_value("SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE user_id = $1", carol.id);
    assert_int_equal(atoi(after), atoi(before) + 1);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeat_gets_the_first_answer),
        cmocka_unit_test(test_malformed_keys_are_refused),
        cmocka_unit_test(test_claims_in_progress_and_stale),
        cmocka_unit_test(test_keys_belong_to_their_caller),
        cmocka_unit_test(test_answer_kept_for_a_client_that_left),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
