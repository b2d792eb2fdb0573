/*
 * Accounts over real HTTP/2 and HTTP/1.1 against the real server: sign-up (validation,
 * conflicts, concurrent sign-ups), the confirmation email followed from the SMTP sink,
 * login (unknown email, wrong password, unconfirmed, disabled, legacy and weak hashes
 * re-hashed), the access token checked by an independent decoder (PyJWT) and the stored
 * hash by another Argon2 implementation (argon2-cffi), and GET /me with good and bad tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD "correct horse battery staple"
#define SECRET   "integration-test-secret-0123456789abcdef"

static harness_server_t server;
static PGconn *db;
static int seq;

/* Limits high enough for the whole suite from one address; test_rate_limits runs a server
 * of its own with small ones. */
static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                         "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_PUBLIC_URL=https://hydrant.example",
                                         "HYDRANT_JWT_SECRET=" SECRET,
                                         "HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS=1000000",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         NULL};

static int group_setup(void **state)
{
    if (harness_server_start(&server, server_env) != 0)
        return -1;
    db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    return PQstatus(db) == CONNECTION_OK ? 0 : -1;
}

static harness_server_t limited;

static int group_teardown(void **state)
{
    if (limited.pid > 0)
        harness_server_stop(&limited);
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------- helpers ---- */

static char *unique_email(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "%s-%d-%d-%lld@example.com", tag, getpid(), ++seq, harness_now_ms());
    return buf;
}

/* POSTs body to path; returns the status, the parsed body in *doc (NULL if not JSON). */
static long post(int protocol, const char *path, const char *body, json_t **doc, harness_response_t *keep)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base,
             path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, protocol, "POST", url, headers, body, strlen(body));
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    if (keep != NULL)
        *keep = res;
    else
        harness_response_free(&res);
    return status;
}

static long get(int protocol, const char *path, const char *bearer, json_t **doc, harness_response_t *keep)
{
    char url[1024], auth[2048];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base,
             path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer != NULL ? bearer : "");
    const char *headers[] = {auth, NULL};
    harness_response_t res;
    harness_request(&res, protocol, "GET", url, bearer != NULL ? headers : NULL, NULL, 0);
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    if (keep != NULL)
        *keep = res;
    else
        harness_response_free(&res);
    return status;
}

static const char *error_code(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}

static const char *detail(const json_t *doc, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(json_object_get(doc, "error"), "details"), field));
}

static long signup(int protocol, const char *email, const char *password, const char *username, json_t **doc)
{
    json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
    if (username != NULL)
        json_object_set_new(body, "username", json_string(username));
    char *text = json_dumps(body, JSON_COMPACT);
    long status = post(protocol, "/api/v1/auth/signup", text, doc, NULL);
    free(text);
    json_decref(body);
    return status;
}

static long login(int protocol, const char *email, const char *password, json_t **doc,
                  harness_response_t *keep)
{
    json_t *body = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *text = json_dumps(body, JSON_COMPACT);
    long status = post(protocol, "/api/v1/auth/login", text, doc, keep);
    free(text);
    json_decref(body);
    return status;
}

/* The confirmation link from the email the sink received for `to` (path and query only). */
/* The newest message for `to` that holds prefix (decoded), waiting for it (bounded). */
static char *message_with(const char *to, const char *prefix)
{
    for (long long deadline = harness_now_ms() + 20000; harness_now_ms() < deadline; usleep(50 * 1000)) {
        char *message = harness_mail_find(NULL, to, 0);
        if (message != NULL) {
            harness_qp_decode(message);
            if (strstr(message, prefix) != NULL)
                return message;
        }
        free(message);
    }
    return NULL;
}

static char *confirmation_path(const char *to)
{
    const char *prefix = "https://hydrant.example/api/v1/auth/confirm?token=";
    char *message = message_with(to, prefix);
    if (message == NULL)
        return NULL;
    const char *link = strstr(message, prefix);
    char *path = NULL;
    if (link != NULL) {
        link += strlen("https://hydrant.example");
        size_t n = strspn(link + strlen("/api/v1/auth/confirm?token="),
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
        path = strndup(link, strlen("/api/v1/auth/confirm?token=") + n);
    }
    free(message);
    return path;
}

static char *sql_value(const char *query, const char *param)
{
    const char *values[] = {param};
    PGresult *res = harness_sql(db, query, param != NULL ? 1 : 0, values);
    char *v = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return v;
}

/* A confirmed account made through the API; returns its id. */
static char *confirmed_account(const char *email)
{
    json_t *doc = NULL;
    assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, NULL, &doc), 201);
    char *id = strdup(json_string_value(json_object_get(json_object_get(doc, "user"), "id")));
    json_decref(doc);
    char *path = confirmation_path(email);
    assert_non_null(path);
    assert_int_equal(get(HARNESS_HTTP1, path, NULL, NULL, NULL), 200);
    free(path);
    return id;
}

/* -------------------------------------------------------------- sign-up ---- */

static void test_signup_then_confirm_by_the_emailed_link(void **state)
{
    char email[128], upper[128];
    unique_email(email, sizeof(email), "signup");
    snprintf(upper, sizeof(upper), "  S%.100s ", email + 1); /* trimmed and lower-cased */
    json_t *doc = NULL;
    assert_int_equal(signup(HARNESS_HTTP2, upper, PASSWORD, NULL, &doc), 201);
    json_t *user = json_object_get(doc, "user");
    assert_string_equal(json_string_value(json_object_get(user, "email")), email);
    assert_string_equal(json_string_value(json_object_get(user, "role")), "user");
    assert_true(json_is_false(json_object_get(user, "email_confirmed")));
    assert_true(json_is_null(json_object_get(user, "username")));
    assert_non_null(json_string_value(json_object_get(user, "created_at")));
    assert_null(json_object_get(user, "password_hash"));
    json_decref(doc);
    /* the same address again, in another case: taken */
    assert_int_equal(signup(HARNESS_HTTP1, upper, PASSWORD, NULL, &doc), 409);
    assert_string_equal(error_code(doc), "email_taken");
    json_decref(doc);
    /* login before confirming: the password matches, but the email is not confirmed */
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, &doc, NULL), 403);
    assert_string_equal(error_code(doc), "email_not_confirmed");
    json_decref(doc);
    /* the emailed link confirms, once */
    char *path = confirmation_path(email);
    assert_non_null(path);
    assert_int_equal(get(HARNESS_HTTP2, path, NULL, &doc, NULL), 200);
    assert_true(json_is_true(json_object_get(json_object_get(doc, "user"), "email_confirmed")));
    json_decref(doc);
    assert_int_equal(get(HARNESS_HTTP2, path, NULL, &doc, NULL), 400);
    assert_string_equal(error_code(doc), "invalid_token");
    json_decref(doc);
    free(path);
    assert_int_equal(harness_mail_count(email), 1);
    /* the job that sent it no longer holds the token */
    char *payload = sql_value("SELECT payload::text FROM jobs WHERE kind = 'email.confirmation' AND "
                              "payload->>'to' = $1 AND state = 'succeeded'",
                              email);
    assert_non_null(payload);
    assert_null(strstr(payload, "token"));
    free(payload);
}

static void test_signup_validation(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "invalid");
    json_t *doc = NULL;
    assert_int_equal(signup(HARNESS_HTTP2, "not-an-email", PASSWORD, NULL, &doc), 422);
    assert_string_equal(error_code(doc), "validation_failed");
    assert_non_null(detail(doc, "email"));
    json_decref(doc);
    assert_int_equal(signup(HARNESS_HTTP2, email, "short", NULL, &doc), 422);
    assert_non_null(detail(doc, "password"));
    json_decref(doc);
    assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, "no spaces allowed", &doc), 422);
    assert_non_null(detail(doc, "username"));
    json_decref(doc);
    char *big = malloc(10 * 1024 + 1);
    memset(big, 'p', 10 * 1024);
    big[10 * 1024] = '\0';
    assert_int_equal(signup(HARNESS_HTTP1, email, big, NULL, &doc), 422); /* never hashed */
    json_decref(doc);
    free(big);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/signup",
                          "{\"email\":\"a@b.co\",\"password\":\"12345678\",\"x\":1}", &doc, NULL),
                     422);
    assert_string_equal(detail(doc, "x"), "unknown field");
    json_decref(doc);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/signup", "{\"email\":7,\"password\":[]}", &doc, NULL),
                     422);
    assert_string_equal(detail(doc, "email"), "must be a string");
    assert_string_equal(detail(doc, "password"), "must be a string");
    json_decref(doc);
    char odd[256];
    snprintf(odd, sizeof(odd),
             "{\"email\": \"x'OR'1'='1--DROP-TABLE-users%d.%d@a.io\", \"password\": \"" PASSWORD "\"}",
             getpid(), ++seq);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/signup", odd, &doc, NULL),
                     201); /* an odd but valid address, stored as given */
    json_decref(doc);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/signup", "{\"email\":", NULL, NULL), 400);
    char deep[2100] = "{\"email\":";
    for (int i = 0; i < 1000; i++)
        strcat(deep, "[");
    assert_int_equal(post(HARNESS_HTTP1, "/api/v1/auth/login", deep, &doc, NULL), 400); /* 1,000 deep */
    assert_string_equal(error_code(doc), "invalid_json");
    json_decref(doc);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/signup",
                          "{\"email\":\"a\\u0000@b.co\",\"password\":\"12345678\"}", &doc, NULL),
                     422); /* NUL inside a string: valid JSON, refused by name */
    assert_string_equal(error_code(doc), "validation_failed");
    assert_non_null(detail(doc, "email"));
    json_decref(doc);
    /* usernames are unique case-insensitively */
    char name[32], other[128];
    snprintf(name, sizeof(name), "user%d_%d", getpid(), ++seq);
    assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, name, &doc), 201);
    json_decref(doc);
    name[0] = 'U';
    assert_int_equal(
        signup(HARNESS_HTTP2, unique_email(other, sizeof(other), "dupname"), PASSWORD, name, &doc), 409);
    assert_string_equal(error_code(doc), "username_taken");
    json_decref(doc);
}

/* What the mailer cannot send to is refused at sign-up (422 naming email), never turned into
 * an account whose confirmation email dies. */
static void test_signup_refuses_undeliverable_addresses(void **state)
{
    const char *bad[] = {"a(b)@x.com",  "a@b..com",   "\xc3\xbc@x.com", "\"quoted\"@x.com", ".a@x.com",
                         "a.@x.com",    "a..b@x.com", "a@-x.com",       "a@x-.com",         "a@x_y.com",
                         "a@localhost", "a;b@x.com",  "a@[127.0.0.1]",  "a@x.c\xc3\xb6m",   NULL};
    char local[80];
    memset(local, 'l', 65);
    snprintf(local + 65, sizeof(local) - 65, "@x.com"); /* a local part over 64 */
    bad[sizeof(bad) / sizeof(bad[0]) - 1] = local;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
            json_t *doc = NULL;
            long status = signup(protocol, bad[i], PASSWORD, NULL, &doc);
            if (status != 422 || doc == NULL || strcmp(error_code(doc), "validation_failed") != 0 ||
                detail(doc, "email") == NULL)
                fail_msg("sign-up with \"%s\" answered %ld, not 422 naming email", bad[i], status);
            json_decref(doc);
        }
    }
}

typedef struct {
    const char *email;
    long status;
} race_t;

static void *race_signup(void *arg)
{
    race_t *race = arg;
    race->status = signup(HARNESS_HTTP2, race->email, PASSWORD, NULL, NULL);
    return NULL;
}

static void test_concurrent_signups_one_wins(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "race");
    pthread_t threads[8];
    race_t races[8];
    for (int i = 0; i < 8; i++) {
        races[i] = (race_t){email, 0};
        pthread_create(&threads[i], NULL, race_signup, &races[i]);
    }
    int created = 0, taken = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        created += races[i].status == 201;
        taken += races[i].status == 409;
    }
    assert_int_equal(created, 1);
    assert_int_equal(taken, 7);
    char *count = sql_value(
        "SELECT count(*)::text FROM jobs WHERE kind = 'email.confirmation' AND payload->>'to' = $1", email);
    assert_string_equal(count, "1"); /* the losers' emails rolled back with their rows */
    free(count);
}

/* ---------------------------------------------------------------- login ---- */

/* Checks the access token with PyJWT (an independent implementation) and the stored hash
 * with argon2-cffi. */
static void check_independently(const char *token, const char *user_id, const char *email)
{
    assert_int_equal(
        harness_system("/usr/bin/python3 -c \"import jwt,sys; d=jwt.decode(sys.argv[1], '" SECRET
                       "', algorithms=['HS256'], issuer='hydrant', options={'require': "
                       "['exp','iat','sub','jti']}); assert d['sub']==sys.argv[2] and d['typ']=='access' "
                       "and d['role']=='user' and d['exp']-d['iat']==900, d\" '%s' '%s'",
                       token, user_id),
        0);
    char *hash = sql_value("SELECT password_hash FROM users WHERE email = $1", email);
    assert_non_null(hash);
    assert_int_equal(strncmp(hash, "$argon2id$v=19$m=1024,t=1,p=1$", 30), 0);
    assert_int_equal(
        harness_system("/usr/bin/python3 -c \"import argon2,sys; argon2.PasswordHasher().verify(sys.argv[1], "
                       "sys.argv[2])\" '%s' '" PASSWORD "'",
                       hash),
        0);
    free(hash);
}

/* GET /api/v1/me over HTTP/2 until it answers status, for at most 5 s: its last status,
 * with its body in *doc. */
static long get_until(long status, const char *token, json_t **doc)
{
    long got = 0;
    for (long long deadline = harness_now_ms() + 5000;; usleep(20000)) {
        *doc = NULL;
        got = get(HARNESS_HTTP2, "/api/v1/me", token, doc, NULL);
        if (got == status || harness_now_ms() >= deadline)
            return got;
        json_decref(*doc);
    }
}

static void test_login_and_me(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "login");
    char *id = confirmed_account(email);
    json_t *doc = NULL;
    harness_response_t res;
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, &doc, &res), 200);
    const char *access = json_string_value(json_object_get(doc, "access_token"));
    const char *refresh = json_string_value(json_object_get(doc, "refresh_token"));
    assert_non_null(access);
    assert_non_null(refresh);
    assert_true(strlen(refresh) >= 43);
    assert_string_equal(json_string_value(json_object_get(doc, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(doc, "expires_in")), 900);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "id")), id);
    char cookie[512];
    assert_non_null(harness_header(&res, "set-cookie", cookie, sizeof(cookie)));
    assert_non_null(strstr(cookie, refresh));
    assert_non_null(strstr(cookie, "HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=2592000"));
    /* tokens are never stored by a cache: the handler's no-store, not doubled by request.c's */
    char cache[64];
    assert_string_equal(harness_header(&res, "cache-control", cache, sizeof(cache)), "no-store");
    assert_null(strcasestr(strcasestr(res.headers, "cache-control:") + 14, "cache-control:"));
    harness_response_free(&res);
    check_independently(access, id, email);
    /* the refresh token is stored only as its hash */
    char *stored =
        sql_value("SELECT count(*)::text FROM refresh_tokens WHERE token_hash = encode(sha256($1::bytea), "
                  "'hex')",
                  refresh);
    assert_string_equal(stored, "1");
    free(stored);
    /* GET /me over both protocols */
    json_t *me = NULL;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        assert_int_equal(get(protocol, "/api/v1/me", access, &me, NULL), 200);
        assert_string_equal(json_string_value(json_object_get(json_object_get(me, "user"), "email")), email);
        json_decref(me);
    }
    /* revoked by "sign out everywhere" (tokens_valid_after moved past the token's iat), here
     * by SQL behind hydrant's back: the principal cache hears of it by notification, so the
     * refusal may take a moment (hydrant's own revocations are refused at once) */
    PQclear(harness_sql(
        db, "UPDATE users SET tokens_valid_after = now() + interval '1 minute' WHERE id = $1::uuid", 1,
        (const char *const[]){id}));
    assert_int_equal(get_until(401, access, &me), 401);
    assert_string_equal(error_code(me), "token_revoked");
    json_decref(me);
    PQclear(harness_sql(
        db, "UPDATE users SET tokens_valid_after = '-infinity', disabled = true WHERE id = $1::uuid", 1,
        (const char *const[]){id}));
    assert_int_equal(get_until(401, access, &me), 401);
    json_decref(me);
    /* disabled: 403 account_disabled, only with the right password */
    json_decref(doc);
    assert_int_equal(login(HARNESS_HTTP1, email, PASSWORD, &doc, NULL), 403);
    assert_string_equal(error_code(doc), "account_disabled");
    json_decref(doc);
    assert_int_equal(login(HARNESS_HTTP1, email, "wrong password!", &doc, NULL), 401);
    assert_string_equal(error_code(doc), "invalid_credentials");
    json_decref(doc);
    /* the failure's audit record is written after the answer: wait for it (bounded) */
    char *events = NULL;
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline; usleep(20 * 1000)) {
        free(events);
        events = sql_value(
            "SELECT string_agg(kind, ',' ORDER BY id) FROM auth_events WHERE user_id = $1::uuid", id);
        if (events != NULL && strcmp(events, "signup,login,login_failed") == 0)
            break;
    }
    assert_string_equal(events, "signup,login,login_failed");
    free(events);
    free(id);
}

static void test_login_failures_look_alike(void **state)
{
    char email[128], unknown[128];
    unique_email(email, sizeof(email), "alike");
    free(confirmed_account(email));
    json_t *wrong = NULL, *missing = NULL, *malformed = NULL;
    assert_int_equal(login(HARNESS_HTTP2, email, "not the password", &wrong, NULL), 401);
    assert_int_equal(
        login(HARNESS_HTTP2, unique_email(unknown, sizeof(unknown), "nobody"), PASSWORD, &missing, NULL),
        401);
    assert_int_equal(login(HARNESS_HTTP2, "no-at-sign", PASSWORD, &malformed, NULL), 401);
    assert_true(json_equal(wrong, missing));
    assert_true(json_equal(wrong, malformed));
    json_decref(wrong);
    json_decref(missing);
    json_decref(malformed);
    json_t *doc = NULL;
    char *big = malloc(10 * 1024 + 1);
    memset(big, 'p', 10 * 1024);
    big[10 * 1024] = '\0';
    assert_int_equal(login(HARNESS_HTTP2, email, big, &doc, NULL), 422);
    free(big);
    json_decref(doc);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/login", "{\"email\":\"a@b.co\"}", &doc, NULL), 422);
    assert_string_equal(detail(doc, "password"), "is required");
    json_decref(doc);
}

/* Users brought from a seed backend: a bcrypt hash and a weak Argon2id hash both log in
 * and are replaced by an Argon2id hash with the configured parameters. */
static void test_legacy_hashes_rehashed(void **state)
{
    const char *hashes[] = {
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa", /* "correct horse battery", crypt(3)
                                                                         */
        "$argon2id$v=19$m=64,t=1,p=1$wu6YhF+EzHQldem6X1KP/w$o4eNHr7ohtjv3LbACufZhQ", /* argon2-cffi, weak */
    };
    for (int i = 0; i < 2; i++) {
        char email[128];
        unique_email(email, sizeof(email), "legacy");
        PQclear(harness_sql(db,
                            "INSERT INTO users (email, password_hash, email_confirmed) VALUES ($1, $2, true)",
                            2, (const char *const[]){email, hashes[i]}));
        json_t *doc = NULL;
        assert_int_equal(login(HARNESS_HTTP2, email, "correct horse battery", &doc, NULL), 200);
        json_decref(doc);
        char *hash = sql_value("SELECT password_hash FROM users WHERE email = $1", email);
        assert_int_equal(strncmp(hash, "$argon2id$v=19$m=1024,t=1,p=1$", 30), 0);
        free(hash);
        assert_int_equal(login(HARNESS_HTTP1, email, "correct horse battery", &doc, NULL),
                         200); /* still works */
        json_decref(doc);
    }
}

static void test_bad_bearer_tokens(void **state)
{
    const char *bad[] = {
        "", "garbage", "a.b.c",
        /* alg none */
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.",
        /* HS256 with another key (PyJWT, secret "other") */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.5mhBHqs5_DTLdINd9p5m7ZJ6XU1R8PI-kvM3-xr1pFI"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        harness_response_t res;
        json_t *doc = NULL;
        assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", bad[i], &doc, &res), 401);
        assert_string_equal(error_code(doc), "unauthorized");
        char www[64];
        assert_non_null(harness_header(&res, "www-authenticate", www, sizeof(www)));
        harness_response_free(&res);
        json_decref(doc);
    }
    json_t *doc = NULL;
    assert_int_equal(get(HARNESS_HTTP1, "/api/v1/me", NULL, &doc, NULL), 401);
    json_decref(doc);
}

/* ------------------------------------------------------- refresh, logout ---- */

typedef struct {
    char access[1024];
    char refresh[128];
} session_t;

static void session_of(const json_t *doc, session_t *out)
{
    snprintf(out->access, sizeof(out->access), "%s", json_string_value(json_object_get(doc, "access_token")));
    snprintf(out->refresh, sizeof(out->refresh), "%s",
             json_string_value(json_object_get(doc, "refresh_token")));
}

static session_t *new_session(const char *email)
{
    static session_t sessions[16];
    static int n;
    session_t *s = &sessions[n++ % 16];
    json_t *doc = NULL;
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, &doc, NULL), 200);
    session_of(doc, s);
    json_decref(doc);
    return s;
}

static long refresh_with(int protocol, const char *token, json_t **doc)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", token);
    return post(protocol, "/api/v1/auth/refresh", body, doc, NULL);
}

static long refresh_by_cookie(const char *token, json_t **doc)
{
    char url[256], cookie[256];
    snprintf(url, sizeof(url), "%s/api/v1/auth/refresh", server.https_base);
    snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; refresh_token=%s", token);
    const char *headers[] = {cookie, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, NULL, 0);
    long status = res.status;
    *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

static long logout(const char *access, const char *body)
{
    char url[256], auth[1200];
    snprintf(url, sizeof(url), "%s/api/v1/auth/logout", server.https_base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", access);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, body, body != NULL ? strlen(body) : 0);
    long status = res.status;
    harness_response_free(&res);
    return status;
}

static void assert_refresh_refused(const char *token, const char *code)
{
    json_t *doc = NULL;
    assert_int_equal(refresh_with(HARNESS_HTTP2, token, &doc), 401);
    assert_string_equal(error_code(doc), code);
    json_decref(doc);
}

static void test_refresh_rotates_and_reuse_revokes_the_family(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "refresh");
    free(confirmed_account(email));
    session_t *first = new_session(email);
    json_t *doc = NULL;
    assert_int_equal(refresh_with(HARNESS_HTTP1, first->refresh, &doc), 200);
    session_t second;
    session_of(doc, &second);
    json_decref(doc);
    assert_string_not_equal(second.refresh, first->refresh);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", second.access, NULL, NULL), 200);
    /* by cookie alone */
    assert_int_equal(refresh_by_cookie(second.refresh, &doc), 200);
    session_t third;
    session_of(doc, &third);
    json_decref(doc);
    /* the first token again: a reuse; the whole family goes, the newest token included */
    assert_refresh_refused(first->refresh, "token_reused");
    /* and again, now that the family is revoked: still a reuse (contract v1.1) */
    assert_refresh_refused(first->refresh, "token_reused");
    assert_refresh_refused(second.refresh, "token_reused");
    assert_refresh_refused(third.refresh, "invalid_token");
    /* unknown, malformed and expired tokens */
    assert_refresh_refused("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid_token");
    assert_refresh_refused("not a token", "invalid_token");
    session_t *other = new_session(email);
    PQclear(
        harness_sql(db,
                    "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = "
                    "encode(sha256($1::bytea), 'hex')",
                    1, (const char *const[]){other->refresh}));
    assert_refresh_refused(other->refresh, "token_expired");
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/refresh", "{\"refresh_token\":1}", &doc, NULL), 422);
    json_decref(doc);
}

typedef struct {
    const char *token;
    long status;
    char code[32];
} refresh_race_t;

static void *race_refresh(void *arg)
{
    refresh_race_t *race = arg;
    json_t *doc = NULL;
    race->status = refresh_with(HARNESS_HTTP2, race->token, &doc);
    if (error_code(doc) != NULL)
        snprintf(race->code, sizeof(race->code), "%s", error_code(doc));
    json_decref(doc);
    return NULL;
}

/* Five clients race one refresh token: one rotates it, every other one is told it is a
 * reuse (also those that come after the family was burnt); the family is left whole and
 * revoked, never with two live children. */
static void test_refresh_race(void **state)
{
    enum { RACERS = 5 };
    char email[128];
    unique_email(email, sizeof(email), "race-refresh");
    free(confirmed_account(email));
    session_t *s = new_session(email);
    pthread_t threads[RACERS];
    refresh_race_t races[RACERS];
    for (int i = 0; i < RACERS; i++) {
        races[i] = (refresh_race_t){s->refresh, 0, ""};
        pthread_create(&threads[i], NULL, race_refresh, &races[i]);
    }
    int won = 0, reused = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(threads[i], NULL);
        won += races[i].status == 200;
        reused += races[i].status == 401 && !strcmp(races[i].code, "token_reused");
    }
    assert_int_equal(won, 1);
    assert_int_equal(reused, RACERS - 1);
    char *rows =
        sql_value("SELECT count(*) || ' ' || count(revoked_at) || ' ' || count(rotated_at) FROM "
                  "refresh_tokens WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = "
                  "encode(sha256($1::bytea), 'hex'))",
                  s->refresh);
    assert_string_equal(rows, "2 1 1"); /* the original (rotated, then burnt by the reuse) and one child */
    free(rows);
}

static void test_logout_one_session_and_all(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "logout");
    free(confirmed_account(email));
    session_t *a = new_session(email), *b = new_session(email);
    assert_int_equal(logout(a->access, NULL), 204);
    json_t *doc = NULL;
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", a->access, &doc, NULL), 401);
    assert_string_equal(error_code(doc), "token_revoked");
    json_decref(doc);
    assert_refresh_refused(a->refresh, "invalid_token");
    /* the other session is untouched */
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", b->access, NULL, NULL), 200);
    session_t *c = new_session(email);
    assert_int_equal(logout(b->access, "{\"all\": true}"), 204);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", c->access, &doc, NULL), 401);
    assert_string_equal(error_code(doc), "token_revoked");
    json_decref(doc);
    assert_refresh_refused(c->refresh, "invalid_token");
    assert_int_equal(logout(a->access, NULL), 401); /* a revoked token cannot log out again */
    /* credentials first: a revoked token is 401 whatever its body */
    assert_int_equal(logout(c->access, "{\"all\": \"yes\"}"), 401);
    /* a fresh login right after "everywhere" works at once */
    session_t *d = new_session(email);
    assert_int_equal(get(HARNESS_HTTP1, "/api/v1/me", d->access, NULL, NULL), 200);
    assert_int_equal(logout(d->access, "{\"all\": \"yes\"}"), 422); /* and changes nothing */
    assert_int_equal(get(HARNESS_HTTP1, "/api/v1/me", d->access, NULL, NULL), 200);
}

/* ------------------------------------------------------ emailed flows ---- */

static long count_jobs(const char *kind, const char *email)
{
    const char *values[] = {kind, email};
    PGresult *res =
        harness_sql(db, "SELECT count(*) FROM jobs WHERE kind = $1 AND payload->>'to' = $2", 2, values);
    long count = atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    return count;
}

static long post_email(const char *path, const char *email)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"email\":\"%s\"}", email);
    json_t *doc = NULL;
    long status = post(HARNESS_HTTP2, path, body, &doc, NULL);
    if (status == 202)
        assert_int_equal(json_object_size(doc), 0);
    json_decref(doc);
    return status;
}

static void test_resend_confirmation_once_a_minute(void **state)
{
    char email[128], unknown[128];
    unique_email(email, sizeof(email), "resend");
    json_t *doc = NULL;
    assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, NULL, &doc), 201);
    json_decref(doc);
    assert_int_equal(post_email("/api/v1/auth/confirm/resend", email), 202);
    assert_int_equal(post_email("/api/v1/auth/confirm/resend", email), 202); /* the same answer... */
    assert_int_equal(count_jobs("email.confirmation", email), 2);            /* ...but no third email */
    assert_int_equal(
        post_email("/api/v1/auth/confirm/resend", unique_email(unknown, sizeof(unknown), "ghost")), 202);
    assert_int_equal(count_jobs("email.confirmation", unknown), 0);
    /* the resend's link (the newest email) confirms */
    for (long long deadline = harness_now_ms() + 20000;
         harness_mail_count(email) < 2 && harness_now_ms() < deadline;)
        usleep(50 * 1000);
    char *path = confirmation_path(email); /* the newest email: the resend's */
    assert_non_null(path);
    assert_int_equal(get(HARNESS_HTTP2, path, NULL, NULL, NULL), 200);
    free(path);
    /* a confirmed account (under its limit) gets no more confirmation emails */
    char confirmed[128];
    free(confirmed_account(unique_email(confirmed, sizeof(confirmed), "confirmed")));
    assert_int_equal(post_email("/api/v1/auth/confirm/resend", confirmed), 202);
    assert_int_equal(count_jobs("email.confirmation", confirmed), 1);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/confirm/resend", "{\"email\":\"nope\"}", NULL, NULL),
                     422);
}

/* The reset link from the newest email for `to` (its token). */
static char *reset_token(const char *to)
{
    const char *prefix = "https://hydrant.example/reset-password?token=";
    char *message = message_with(to, prefix);
    if (message == NULL)
        return NULL;
    const char *link = strstr(message, prefix);
    char *token = NULL;
    if (link != NULL) {
        link += strlen(prefix);
        token =
            strndup(link, strspn(link, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"));
    }
    free(message);
    return token;
}

static void test_forgot_and_reset_password(void **state)
{
    char email[128], unknown[128];
    unique_email(email, sizeof(email), "forgot");
    free(confirmed_account(email));
    session_t *before = new_session(email);
    assert_int_equal(post_email("/api/v1/auth/password/forgot", email), 202);
    assert_int_equal(
        post_email("/api/v1/auth/password/forgot", unique_email(unknown, sizeof(unknown), "ghost")), 202);
    assert_int_equal(count_jobs("email.password_reset", unknown), 0);
    char *token = reset_token(email);
    assert_non_null(token);
    char body[256];
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":\"short\"}", token);
    json_t *doc = NULL;
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/password/reset", body, &doc, NULL), 422);
    json_decref(doc);
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":\"a brand new passphrase\"}", token);
    assert_int_equal(post(HARNESS_HTTP1, "/api/v1/auth/password/reset", body, NULL, NULL), 204);
    assert_int_equal(post(HARNESS_HTTP2, "/api/v1/auth/password/reset", body, &doc, NULL),
                     400); /* single use */
    assert_string_equal(error_code(doc), "invalid_token");
    json_decref(doc);
    /* every session of the user ended */
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", before->access, &doc, NULL), 401);
    assert_string_equal(error_code(doc), "token_revoked");
    json_decref(doc);
    assert_refresh_refused(before->refresh, "invalid_token");
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, NULL, NULL), 401);
    assert_int_equal(login(HARNESS_HTTP2, email, "a brand new passphrase", NULL, NULL), 200);
    char *reset_events =
        sql_value("SELECT count(*)::text FROM auth_events e JOIN users u ON u.id = e.user_id WHERE "
                  "u.email = $1 AND e.kind = 'password_reset' AND e.address = '127.0.0.1'",
                  email);
    assert_string_equal(reset_events, "1");
    free(reset_events);
    assert_int_equal(
        post(HARNESS_HTTP2, "/api/v1/auth/password/reset",
             "{\"token\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"password\":\"whatever 123\"}",
             &doc, NULL),
        400);
    json_decref(doc);
    free(token);
}

static long put_password(const char *access, const char *current, const char *fresh, json_t **doc)
{
    char url[256], auth[1200], body[512];
    snprintf(url, sizeof(url), "%s/api/v1/me/password", server.https_base);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", access);
    snprintf(body, sizeof(body), "{\"current_password\":\"%s\",\"new_password\":\"%s\"}", current, fresh);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "PUT", url, headers, body, strlen(body));
    long status = res.status;
    *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

static void test_change_password(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "change");
    free(confirmed_account(email));
    session_t *s = new_session(email);
    json_t *doc = NULL;
    assert_int_equal(put_password(s->access, "not my password", "another good one", &doc), 401);
    assert_string_equal(error_code(doc), "invalid_credentials");
    json_decref(doc);
    assert_int_equal(put_password(s->access, PASSWORD, "short", &doc), 422);
    json_decref(doc);
    assert_int_equal(put_password(s->access, PASSWORD, "another good one", &doc), 204);
    json_decref(doc);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", s->access, &doc, NULL), 401);
    assert_string_equal(error_code(doc), "token_revoked");
    json_decref(doc);
    assert_int_equal(login(HARNESS_HTTP2, email, "another good one", NULL, NULL), 200);
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, NULL, NULL), 401);
}

/* ----------------------------------------------------------- command line ---- */

static void test_user_commands(void **state)
{
    char email[128], args[512], out[1024];
    unique_email(email, sizeof(email), "cli-admin");
    snprintf(args, sizeof(args), "user create --email %s --role admin", email);
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, "an admin passphrase\n"),
                     0);
    char id[64];
    snprintf(id, sizeof(id), "%.36s", out);
    json_t *doc = NULL;
    assert_int_equal(login(HARNESS_HTTP2, email, "an admin passphrase", &doc, NULL),
                     200); /* confirmed already */
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "role")), "admin");
    session_t s;
    session_of(doc, &s);
    json_decref(doc);
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, "an admin passphrase\n"),
                     3);
    assert_non_null(strstr(out, "exists"));
    /* bad input: short password, unknown role, missing email */
    char other[128];
    snprintf(args, sizeof(args), "user create --email %s", unique_email(other, sizeof(other), "cli"));
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, "short\n"), 3);
    snprintf(args, sizeof(args), "user create --email %s --role root", other);
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, "long enough pw\n"), 3);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, "user create"), 2); /* usage */
    /* an unconfirmed one cannot log in until confirmed */
    snprintf(args, sizeof(args), "user create --email %s --unconfirmed", other);
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, "long enough pw\n"), 0);
    assert_int_equal(login(HARNESS_HTTP2, other, "long enough pw", &doc, NULL), 403);
    json_decref(doc);
    /* roles: the change is seen by the next request (the role is read from the row) */
    snprintf(args, sizeof(args), "user set-role %s superuser", id);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 0);
    char *role = sql_value("SELECT role FROM users WHERE id = $1::uuid", id);
    assert_string_equal(role, "superuser");
    free(role);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, "user set-role not-a-uuid admin"), 3);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env,
                                         "user set-role 00000000-0000-4000-8000-000000000000 admin"),
                     3);
    /* disabling ends every session at once */
    snprintf(args, sizeof(args), "user disable %s", id);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 0);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", s.access, NULL, NULL), 401);
    assert_refresh_refused(s.refresh, "invalid_token");
    char *events =
        sql_value("SELECT string_agg(kind, ',' ORDER BY id) FROM auth_events WHERE user_id = $1::uuid", id);
    assert_string_equal(events, "login,role_change,disabled");
    free(events);
}

/* ------------------------------------------------ profile, deletion, keys ---- */

/* Any method, with one auth header ("Authorization: Bearer ..." or "X-API-Key: ..."). */
static long call(const char *method, const char *path, const char *auth_header, const char *body,
                 json_t **doc)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", server.https_base, path);
    const char *headers[] = {"Content-Type: application/json", auth_header, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, method, url, headers, body, body != NULL ? strlen(body) : 0);
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

static char *bearer(const session_t *s)
{
    static char header[1200];
    snprintf(header, sizeof(header), "Authorization: Bearer %s", s->access);
    return header;
}

static void test_patch_me(void **state)
{
    char email[128], name[40], body[4200];
    unique_email(email, sizeof(email), "patch");
    free(confirmed_account(email));
    session_t *s = new_session(email);
    snprintf(name, sizeof(name), "p%d_%d", getpid(), ++seq);
    snprintf(body, sizeof(body), "{\"username\":\"%s\",\"display_name\":\"Ada \u00e9\",\"bio\":\"hi\"}",
             name);
    json_t *doc = NULL;
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), body, &doc), 200);
    json_t *user = json_object_get(doc, "user");
    assert_string_equal(json_string_value(json_object_get(user, "username")), name);
    assert_string_equal(json_string_value(json_object_get(user, "display_name")), "Ada \xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(user, "bio")), "hi");
    json_decref(doc);
    /* only what is sent changes; null clears the username */
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), "{\"username\":null}", &doc), 200);
    user = json_object_get(doc, "user");
    assert_true(json_is_null(json_object_get(user, "username")));
    assert_string_equal(json_string_value(json_object_get(user, "bio")), "hi");
    json_decref(doc);
    /* limits in code points: 100 two-byte characters pass, 101 do not */
    char display[1000] = "{\"display_name\":\"";
    for (int i = 0; i < 101; i++)
        strcat(display, "\xc3\xa9");
    strcat(display, "\"}");
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), display, &doc), 422);
    assert_non_null(detail(doc, "display_name"));
    json_decref(doc);
    display[strlen(display) - 4] = '\0';
    strcat(display, "\"}");
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), display, NULL), 200);
    char bio[2100];
    snprintf(bio, sizeof(bio), "{\"bio\":\"%02001d\"}", 0);
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), bio, &doc), 422);
    json_decref(doc);
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), "{\"role\":\"admin\"}", &doc),
                     422); /* not here */
    assert_string_equal(detail(doc, "role"), "unknown field");
    json_decref(doc);
    /* a taken username */
    char other[128];
    free(confirmed_account(unique_email(other, sizeof(other), "patch2")));
    session_t *t = new_session(other);
    snprintf(body, sizeof(body), "{\"username\":\"%s\"}", name);
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), body, NULL), 200);
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(t), body, &doc), 409);
    assert_string_equal(error_code(doc), "username_taken");
    json_decref(doc);
    assert_int_equal(call("PATCH", "/api/v1/me", NULL, "{}", NULL), 401);
    /* once the credentials are accepted, the body rules still apply */
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), "{\"bio\":", &doc), 400);
    assert_string_equal(error_code(doc), "invalid_json");
    json_decref(doc);
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/me", server.https_base);
    const char *text[] = {bearer(s), "Content-Type: text/plain", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "PATCH", url, text, "{}", 2);
    assert_int_equal(res.status, 415);
    harness_response_free(&res);
}

/* \u0000 is valid JSON: a field holding one is refused by name (422), never answered 400
 * invalid_json and never cut short at the NUL (a password "abc\u0000def" is not "abc"). */
static void test_nul_in_strings(void **state)
{
    char email[128], body[512];
    unique_email(email, sizeof(email), "nul");
    struct {
        const char *body_fmt; /* %s: the email */
        const char *field;
    } signups[] = {
        {"{\"email\":\"%s\",\"password\":\"" PASSWORD "\\u0000more\"}", "password"},
        {"{\"email\":\"%s\\u0000\",\"password\":\"" PASSWORD "\"}", "email"},
        {"{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"username\":\"ab\\u0000cd\"}", "username"},
        {"{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"extra\":{\"a\":[\"\\u0000\"]}}", "extra.a[0]"},
        {"{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"x\\u0000\":1}", "x\\u0000"},
    };
    for (size_t i = 0; i < sizeof(signups) / sizeof(signups[0]); i++) {
        for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
            json_t *doc = NULL;
            snprintf(body, sizeof(body), signups[i].body_fmt, email);
            long status = post(protocol, "/api/v1/auth/signup", body, &doc, NULL);
            if (status != 422 || doc == NULL || strcmp(error_code(doc), "validation_failed") != 0 ||
                detail(doc, signups[i].field) == NULL)
                fail_msg("%s answered %ld, not 422 naming %s", body, status, signups[i].field);
            json_decref(doc);
        }
    }
    char *users = sql_value("SELECT count(*)::text FROM users WHERE email = $1", email);
    assert_string_equal(users, "0"); /* no account with a password cut at the NUL */
    free(users);
    /* PATCH /me: the display name stays as it was */
    free(confirmed_account(email));
    session_t *s = new_session(email);
    json_t *doc = NULL;
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), "{\"display_name\":\"Ada\"}", NULL), 200);
    assert_int_equal(
        call("PATCH", "/api/v1/me", bearer(s), "{\"display_name\":\"Ada\\u0000Lovelace\"}", &doc), 422);
    assert_string_equal(error_code(doc), "validation_failed");
    assert_non_null(detail(doc, "display_name"));
    json_decref(doc);
    assert_int_equal(call("PATCH", "/api/v1/me", bearer(s), "{\"bio\":\"ok\",\"nope\":\"\\u0000\"}", &doc),
                     422);
    assert_non_null(detail(doc, "nope"));
    json_decref(doc);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", s->access, &doc, NULL), 200);
    json_t *user = json_object_get(doc, "user");
    assert_string_equal(json_string_value(json_object_get(user, "display_name")), "Ada");
    assert_string_equal(json_string_value(json_object_get(user, "bio")), "");
    json_decref(doc);
}

static void test_api_keys(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "keys");
    free(confirmed_account(email));
    session_t *s = new_session(email);
    json_t *doc = NULL;
    assert_int_equal(call("GET", "/api/v1/me/api-key", bearer(s), NULL, &doc), 404);
    json_decref(doc);
    assert_int_equal(call("POST", "/api/v1/me/api-key", bearer(s), NULL, &doc), 201);
    char key[128], header[200];
    snprintf(key, sizeof(key), "%s", json_string_value(json_object_get(doc, "api_key")));
    assert_int_equal(strncmp(json_string_value(json_object_get(doc, "prefix")), key, 8), 0);
    json_decref(doc);
    snprintf(header, sizeof(header), "X-API-Key: %s", key);
    /* the key authenticates on /me */
    assert_int_equal(call("GET", "/api/v1/me", header, NULL, &doc), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "email")), email);
    json_decref(doc);
    assert_int_equal(call("GET", "/api/v1/me/api-key", header, NULL, &doc), 200);
    assert_int_equal(strlen(json_string_value(json_object_get(doc, "prefix"))), 8);
    assert_non_null(json_string_value(json_object_get(doc, "last_used_at")));
    assert_null(json_object_get(doc, "api_key")); /* shown once only */
    json_decref(doc);
    char *stored = sql_value(
        "SELECT count(*)::text FROM api_keys WHERE key_hash = encode(sha256($1::bytea), 'hex')", key);
    assert_string_equal(stored, "1");
    free(stored);
    /* not for logout, which takes a Bearer token */
    assert_int_equal(call("POST", "/api/v1/auth/logout", header, NULL, NULL), 401);
    /* replaced: the old key stops working */
    assert_int_equal(call("POST", "/api/v1/me/api-key", bearer(s), NULL, &doc), 201);
    json_decref(doc);
    assert_int_equal(call("GET", "/api/v1/me", header, NULL, NULL), 401);
    assert_int_equal(
        call("GET", "/api/v1/me", "X-API-Key: hk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL),
        401);
    assert_int_equal(call("GET", "/api/v1/me", "X-API-Key: nonsense", NULL, NULL), 401);
    assert_int_equal(call("DELETE", "/api/v1/me/api-key", bearer(s), NULL, NULL), 204);
    assert_int_equal(call("GET", "/api/v1/me/api-key", bearer(s), NULL, NULL), 404);
}

static void test_delete_me(void **state)
{
    char email[128];
    unique_email(email, sizeof(email), "delete");
    char *id = confirmed_account(email);
    session_t *s = new_session(email);
    assert_int_equal(call("POST", "/api/v1/me/api-key", bearer(s), NULL, NULL), 201);
    json_t *doc = NULL;
    assert_int_equal(call("DELETE", "/api/v1/me", bearer(s), "{\"password\":\"wrong one\"}", &doc), 401);
    assert_string_equal(error_code(doc), "invalid_credentials");
    json_decref(doc);
    assert_int_equal(call("DELETE", "/api/v1/me", bearer(s), "{}", &doc), 422);
    json_decref(doc);
    assert_int_equal(call("DELETE", "/api/v1/me", bearer(s), "{\"password\":\"" PASSWORD "\"}", NULL), 204);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", s->access, NULL, NULL), 401);
    assert_refresh_refused(s->refresh, "invalid_token");
    assert_int_equal(login(HARNESS_HTTP2, email, PASSWORD, NULL, NULL), 401);
    char *left =
        sql_value("SELECT (SELECT count(*) FROM users WHERE id = $1::uuid) + (SELECT count(*) FROM "
                  "refresh_tokens WHERE user_id = $1::uuid) + (SELECT count(*) FROM api_keys WHERE user_id = "
                  "$1::uuid)",
                  id);
    assert_string_equal(left, "0");
    free(left);
    /* the address can sign up again */
    assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, NULL, &doc), 201);
    json_decref(doc);
    free(id);
}

/* ---------------------------------------------------------------- import ---- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_user_import(void **state)
{
    char path[512], args[600], out[2048], csv[4096], a[128], b[128], c[128];
    snprintf(path, sizeof(path), "%s/import-%d.csv", harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    unique_email(a, sizeof(a), "imported-bcrypt");
    unique_email(b, sizeof(b), "imported-argon2");
    unique_email(c, sizeof(c), "imported-json");
    snprintf(
        csv, sizeof(csv),
        "password_hash,email,role,confirmed\r\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,%s,user,true\r\n"
        "\"$argon2id$v=19$m=64,t=1,p=1$wu6YhF+EzHQldem6X1KP/w$o4eNHr7ohtjv3LbACufZhQ\",\"%s\",superuser,\r\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,a(b)@x.com,user,true\n"
        "plaintext,x-%s,user,true\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,%s,user,true\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,y-%s,root,true\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,z-%s\n"
        "$2b$04$xoLP.tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa,w-%s,user,maybe\n"
        "\"unterminated,v-%s,user,true\n",
        a, b, a, a, a, a, a, a);
    write_text(path, csv);
    snprintf(args, sizeof(args), "user import %s", path);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 3);
    assert_non_null(strstr(out, "imported 2, rejected 7"));
    const char *reasons[] = {"line 4: not a valid email",
                             "line 5: password_hash is not an Argon2 or bcrypt hash",
                             "line 6: an account with that email exists",
                             "line 7: role must be",
                             "line 8: not as many fields",
                             "line 9: confirmed must be true or false",
                             "line 10: not as many fields as the header, or a broken quote"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strstr(out, reasons[i]) == NULL)
            fail_msg("missing '%s' in: %s", reasons[i], out);
    /* both log in with their old passwords, and leave with Argon2id hashes of our parameters */
    json_t *doc = NULL;
    assert_int_equal(login(HARNESS_HTTP2, a, "correct horse battery", &doc, NULL), 200);
    json_decref(doc);
    assert_int_equal(login(HARNESS_HTTP2, b, "correct horse battery", &doc, NULL), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "role")),
                        "superuser");
    json_decref(doc);
    char *hash = sql_value("SELECT password_hash FROM users WHERE email = $1", a);
    assert_int_equal(strncmp(hash, "$argon2id$v=19$m=1024,t=1,p=1$", 30), 0);
    free(hash);
    /* JSON lines */
    snprintf(csv, sizeof(csv),
             "{\"email\":\"%s\",\"password_hash\":\"$2y$04$xoLP."
             "tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa\","
             "\"confirmed\":false,\"created_at\":\"2019-05-01T10:00:00Z\"}\n"
             "not "
             "json\n{\"email\":\"q-%s\",\"password_hash\":\"$2b$04$xoLP."
             "tAjo1c8QXB9hAbVVuuiIFiu0aBgtldow4vtWkW6eTFOAxIJa\","
             "\"created_at\":\"yesterday-ish\"}\n",
             c, c);
    write_text(path, csv);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 3);
    assert_non_null(strstr(out, "imported 1, rejected 2"));
    assert_non_null(strstr(out, "line 2: not a JSON object"));
    assert_non_null(strstr(out, "line 3: created_at is not a timestamp"));
    char *row = sql_value(
        "SELECT email_confirmed || ' ' || to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM "
        "users WHERE email = $1",
        c);
    assert_string_equal(row, "false 2019-05-01");
    free(row);
    assert_int_equal(login(HARNESS_HTTP2, c, "correct horse battery", &doc, NULL), 403); /* not confirmed */
    json_decref(doc);
    unlink(path);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 3); /* gone */
}

/* --------------------------------------------------------- administration ---- */

/* An account with a role, made by the command line, signed in. */
static session_t *privileged(const char *role, char *email, size_t len)
{
    char args[300], out[256];
    unique_email(email, len, role);
    snprintf(args, sizeof(args), "user create --email %s --role %s", email, role);
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), server_env, args, PASSWORD "\n"), 0);
    return new_session(email);
}

static void test_admin_users(void **state)
{
    char admin_email[128], super_email[128], plain_email[128];
    session_t *admin = privileged("admin", admin_email, sizeof(admin_email));
    session_t *super = privileged("superuser", super_email, sizeof(super_email));
    char *plain_id = confirmed_account(unique_email(plain_email, sizeof(plain_email), "plain"));
    session_t *plain = new_session(plain_email);
    json_t *doc = NULL;
    assert_int_equal(call("GET", "/api/v1/admin/users", bearer(plain), NULL, &doc), 403);
    assert_string_equal(error_code(doc), "forbidden");
    json_decref(doc);
    assert_int_equal(call("GET", "/api/v1/admin/users", NULL, NULL, NULL), 401);
    /* three users under one prefix, listed two by two, newest first */
    char prefix[64], email[128], path[300];
    snprintf(prefix, sizeof(prefix), "pager-%d-%d", getpid(), ++seq);
    for (int i = 0; i < 3; i++) {
        snprintf(email, sizeof(email), "%s-%d@example.com", prefix, i);
        assert_int_equal(signup(HARNESS_HTTP2, email, PASSWORD, NULL, &doc), 201);
        json_decref(doc);
    }
    snprintf(path, sizeof(path), "/api/v1/admin/users?limit=2&q=%s", prefix);
    assert_int_equal(call("GET", path, bearer(super), NULL, &doc), 200);
    json_t *items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(items, 0), "email")), "-2@"));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(items, 1), "email")), "-1@"));
    char cursor[128];
    snprintf(cursor, sizeof(cursor), "%s", json_string_value(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/admin/users?limit=2&q=%s&cursor=%s", prefix, cursor);
    assert_int_equal(call("GET", path, bearer(super), NULL, &doc), 200);
    items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(items, 0), "email")), "-0@"));
    assert_true(json_is_null(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    const char *bad[] = {
        "/api/v1/admin/users?limit=0",
        "/api/v1/admin/users?limit=101",
        "/api/v1/admin/users?limit=x",
        "/api/v1/admin/users?cursor=nonsense",
        "/api/v1/admin/users?cursor=12.not-a-uuid",
        "/api/v1/admin/users?cursor=9999999999999999999.00000000-0000-4000-8000-000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(call("GET", bad[i], bearer(super), NULL, &doc), 400);
        assert_string_equal(error_code(doc), "bad_request");
        json_decref(doc);
    }
    /* LIKE's metacharacters match only themselves */
    assert_int_equal(call("GET", "/api/v1/admin/users?q=%25", bearer(super), NULL, &doc), 200);
    assert_int_equal(json_array_size(json_object_get(doc, "items")), 0);
    json_decref(doc);
    /* one user */
    snprintf(path, sizeof(path), "/api/v1/admin/users/%s", plain_id);
    assert_int_equal(call("GET", path, bearer(super), NULL, &doc), 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "email")),
                        plain_email);
    json_decref(doc);
    assert_int_equal(
        call("GET", "/api/v1/admin/users/00000000-0000-4000-8000-000000000000", bearer(super), NULL, NULL),
        404);
    assert_int_equal(call("GET", "/api/v1/admin/users/not-a-uuid", bearer(super), NULL, NULL), 404);
    /* a change of nothing is no event (checked below) */
    assert_int_equal(call("PATCH", path, bearer(admin), "{}", NULL), 200);
    /* a superuser may disable a user, not change roles or touch an admin */
    assert_int_equal(call("PATCH", path, bearer(super), "{\"role\":\"superuser\"}", &doc), 403);
    json_decref(doc);
    char admin_path[300];
    char *admin_id = sql_value("SELECT id::text FROM users WHERE email = $1", admin_email);
    snprintf(admin_path, sizeof(admin_path), "/api/v1/admin/users/%s", admin_id);
    assert_int_equal(call("PATCH", admin_path, bearer(super), "{\"disabled\":true}", NULL), 403);
    assert_int_equal(call("PATCH", path, bearer(super), "{\"disabled\":true}", &doc), 200);
    assert_true(json_is_true(json_object_get(json_object_get(doc, "user"), "disabled")));
    json_decref(doc);
    assert_int_equal(get(HARNESS_HTTP2, "/api/v1/me", plain->access, NULL, NULL),
                     401); /* every session ended */
    assert_refresh_refused(plain->refresh, "invalid_token");
    /* an admin changes roles; the new role counts at once */
    assert_int_equal(call("PATCH", path, bearer(admin), "{\"role\":\"root\"}", &doc), 422);
    json_decref(doc);
    assert_int_equal(call("PATCH", path, bearer(admin), "{\"role\":\"superuser\",\"disabled\":false}", &doc),
                     200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "user"), "role")),
                        "superuser");
    json_decref(doc);
    session_t *promoted = new_session(plain_email);
    assert_int_equal(call("GET", "/api/v1/admin/users?limit=1", bearer(promoted), NULL, NULL), 200);
    /* one audit record per change, as the command line writes them, with the actor (named
     * here by its role) and the client's address */
    char *events = sql_value(
        "SELECT string_agg(kind || ' ' || coalesce((SELECT role FROM users WHERE id::text = detail->>'by'), "
        "'-') || ' ' || coalesce(detail->>'role', '-') || ' ' || coalesce(address, '-'), ',' ORDER BY id) "
        "FROM auth_events WHERE user_id = $1::uuid AND kind NOT IN ('signup', 'login')",
        plain_id);
    assert_string_equal(events, "disabled superuser - 127.0.0.1,role_change admin superuser 127.0.0.1,"
                                "enabled admin - 127.0.0.1");
    free(events);
    free(admin_id);
    free(plain_id);
}

/* ---------------------------------------------------------- rate limits ---- */

/* POST from a client address of our choosing: the limited server trusts 127.0.0.1 as a proxy. */
static long post_from(const char *address, const char *path, const char *body, harness_response_t *keep)
{
    char url[256], xff[128];
    snprintf(url, sizeof(url), "%s%s", limited.https_base, path);
    snprintf(xff, sizeof(xff), "X-Forwarded-For: %s", address);
    const char *headers[] = {"Content-Type: application/json", xff, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, body, strlen(body));
    long status = res.status;
    if (keep != NULL)
        *keep = res;
    else
        harness_response_free(&res);
    return status;
}

static long login_from(const char *address, const char *email, const char *password)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    return post_from(address, "/api/v1/auth/login", body, NULL);
}

static void test_rate_limits(void **state)
{
    const char *env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024", "HYDRANT_ARGON2_ITERATIONS=1",
                         "HYDRANT_JWT_SECRET=" SECRET, "HYDRANT_LIMIT_LOGIN_PER_EMAIL=3",
                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=5", "HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS=2",
                         "HYDRANT_TRUSTED_PROXIES=127.0.0.1",
                         /* the main server's workers send every email, with its public URL */
                         "HYDRANT_JOBS_ENABLED=false", "HYDRANT_REFRESH_REUSE_GRACE=30", NULL};
    assert_int_equal(harness_server_start(&limited, env), 0);
    /* addresses of this run only, so earlier runs' counters in Redis do not count */
    char a[32], b[32], c[32], d[32];
    int base = getpid() % 250;
    snprintf(a, sizeof(a), "10.%d.0.1", base);
    snprintf(b, sizeof(b), "10.%d.0.2", base);
    snprintf(c, sizeof(c), "10.%d.0.3", base);
    snprintf(d, sizeof(d), "10.%d.0.4", base);
    char email[128];
    unique_email(email, sizeof(email), "limited");
    free(confirmed_account(email));
    /* per email: three failures, then even the right password waits, from any address */
    for (int i = 0; i < 3; i++)
        assert_int_equal(login_from(a, email, "wrong password"), 401);
    harness_response_t res;
    char body[512];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    assert_int_equal(post_from(b, "/api/v1/auth/login", body, &res), 429);
    char retry[16];
    assert_non_null(harness_header(&res, "retry-after", retry, sizeof(retry)));
    assert_true(atoi(retry) >= 1 && atoi(retry) <= 900);
    assert_non_null(strstr(res.body, "rate_limited"));
    harness_response_free(&res);
    /* per address: five failures on different emails, then the address waits */
    for (int i = 0; i < 5; i++) {
        char other[128];
        assert_int_equal(login_from(c, unique_email(other, sizeof(other), "nobody"), "wrong password"), 401);
    }
    char fresh[128];
    assert_int_equal(login_from(c, unique_email(fresh, sizeof(fresh), "nobody"), "wrong password"), 429);
    /* email-sending requests per address: counted whatever they are */
    char forgot[256];
    snprintf(forgot, sizeof(forgot), "{\"email\":\"%s\"}", email);
    assert_int_equal(post_from(d, "/api/v1/auth/password/forgot", forgot, NULL), 202);
    assert_int_equal(post_from(d, "/api/v1/auth/confirm/resend", forgot, NULL), 202);
    assert_int_equal(post_from(d, "/api/v1/auth/password/forgot", forgot, NULL), 429);
    assert_int_equal(
        post_from(d, "/api/v1/auth/signup", "{\"email\":\"x@y.io\",\"password\":\"12345678\"}", NULL), 429);
    assert_int_equal(post_from(a, "/api/v1/auth/password/forgot", forgot, NULL), 202); /* another address */
    /* with a reuse grace, a token used again within it gets a fresh token of the same family
     * (multi-tab clients) instead of revoking the family */
    char grace_email[128];
    free(confirmed_account(unique_email(grace_email, sizeof(grace_email), "grace")));
    session_t *g = new_session(grace_email);
    char refresh_body[256];
    snprintf(refresh_body, sizeof(refresh_body), "{\"refresh_token\":\"%s\"}", g->refresh);
    harness_response_t first, second;
    assert_int_equal(post_from(a, "/api/v1/auth/refresh", refresh_body, &first), 200);
    assert_int_equal(post_from(a, "/api/v1/auth/refresh", refresh_body, &second), 200);
    json_t *d1 = json_loads(first.body, 0, NULL), *d2 = json_loads(second.body, 0, NULL);
    assert_string_not_equal(json_string_value(json_object_get(d1, "refresh_token")),
                            json_string_value(json_object_get(d2, "refresh_token")));
    char *families =
        sql_value("SELECT count(DISTINCT family_id) || ' ' || count(*) || ' ' || count(revoked_at) FROM "
                  "refresh_tokens r JOIN users u ON u.id = r.user_id WHERE u.email = $1",
                  grace_email);
    assert_string_equal(families, "1 3 0");
    free(families);
    json_decref(d1);
    json_decref(d2);
    harness_response_free(&first);
    harness_response_free(&second);
    assert_int_equal(harness_server_stop(&limited), 0);
}

/* The keys of Redis (KEYS-free: SCAN) that name subject, with their remaining time to live
 * in ms (-1: none, -2: gone); returns how many, at most max. */
static int redis_keys_of(redisContext *rc, const char *subject, char keys[][320], long long *ttl, int max)
{
    int n = 0;
    char cursor[32] = "0";
    do {
        redisReply *scan = redisCommand(rc, "SCAN %s MATCH hydrant:* COUNT 1000", cursor);
        assert_non_null(scan);
        assert_int_equal(scan->type, REDIS_REPLY_ARRAY);
        snprintf(cursor, sizeof(cursor), "%s", scan->element[0]->str);
        for (size_t i = 0; i < scan->element[1]->elements && n < max; i++) {
            const char *key = scan->element[1]->element[i]->str;
            if (strstr(key, subject) == NULL)
                continue;
            snprintf(keys[n], sizeof(keys[n]), "%s", key);
            redisReply *pttl = redisCommand(rc, "PTTL %s", key);
            assert_non_null(pttl);
            ttl[n++] = pttl->integer;
            freeReplyObject(pttl);
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

/* Every rate-limit counter expires. A Redis queue of 3 commands per loop refuses the fourth
 * command of a failed login's counting deterministically, as a busy queue would: with a
 * counter's INCR and EXPIRE sent as two commands, the login-email counter was counted and
 * its EXPIRE refused, so it would never expire. Checked on Redis itself. */
static void test_rate_limit_counters_always_expire(void **state)
{
    const char *env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                         "HYDRANT_ARGON2_ITERATIONS=1",
                         "HYDRANT_JWT_SECRET=" SECRET,
                         "HYDRANT_DATABASE_MAX_QUEUE=3",
                         "HYDRANT_TRUSTED_PROXIES=127.0.0.1",
                         "HYDRANT_JOBS_ENABLED=false",
                         NULL};
    assert_int_equal(harness_server_start(&limited, env), 0);
    /* subjects of this run only: eight four-digit groups, so no other address contains it */
    long long now = harness_now_ms();
    char address[64], email[128];
    snprintf(address, sizeof(address), "fd00:1:2:3:4:%x:%x:%x", 0x1000 + getpid() % 0xefff,
             0x1000 + (int)(now / 0xefff % 0xefff), 0x1000 + (int)(now % 0xefff));
    unique_email(email, sizeof(email), "ttl");
    for (int i = 0; i < 3; i++)
        assert_int_equal(login_from(address, email, "wrong password"), 401);
    char forgot[256];
    snprintf(forgot, sizeof(forgot), "{\"email\":\"%s\"}", email);
    /* The queue of 3 is shared with the failed logins' audit writes, which may still be in
     * flight: a 503 then is the overload answer (nothing changed), so ask again. */
    long forgot_status = 503;
    for (int tries = 0; forgot_status == 503 && tries < 50; tries++) {
        if (tries > 0)
            usleep(50 * 1000);
        forgot_status = post_from(address, "/api/v1/auth/password/forgot", forgot, NULL);
    }
    assert_int_equal(forgot_status, 202);
    /* login-address, login-email, email-requests, and the emails sent to the address; the
     * last failure's counting may still be on its way */
    redisContext *rc = redisConnect("127.0.0.1", harness_service_port("redis"));
    assert_true(rc != NULL && rc->err == 0);
    char keys[16][320];
    long long ttl[16];
    int n = 0;
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline; usleep(20 * 1000)) {
        n = redis_keys_of(rc, address, keys, ttl, 8);
        n += redis_keys_of(rc, email, keys + n, ttl + n, 8);
        if (n >= 4)
            break;
    }
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        if (ttl[i] <= 0)
            fprintf(stderr, "%s: no expiry (PTTL %lld)\n", keys[i], ttl[i]);
        assert_true(ttl[i] > 0);
    }
    redisFree(rc);
    assert_int_equal(harness_server_stop(&limited), 0);
}

/* The count of the rate-limit counter of subject on Redis (0 when it does not exist). */
static long long redis_count_of(redisContext *rc, const char *subject)
{
    char keys[4][320];
    long long ttl[4], total = 0;
    int n = redis_keys_of(rc, subject, keys, ttl, 4);
    for (int i = 0; i < n; i++) {
        redisReply *v = redisCommand(rc, "GET %s", keys[i]);
        assert_non_null(v);
        total += v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
        freeReplyObject(v);
    }
    return total;
}

/* A client that leaves while its limit check waits for Redis is answered by nobody, and its
 * request goes no further: no password is hashed and no failure counted for it. Redis is
 * paused (CLIENT PAUSE) past the client's patience but within hydrant's command timeout. */
static void test_rate_limit_check_skips_a_departed_client(void **state)
{
    const char *env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                         "HYDRANT_ARGON2_ITERATIONS=1",
                         "HYDRANT_JWT_SECRET=" SECRET,
                         "HYDRANT_REDIS_COMMAND_TIMEOUT_MS=5000",
                         "HYDRANT_TRUSTED_PROXIES=127.0.0.1",
                         "HYDRANT_JOBS_ENABLED=false",
                         NULL};
    assert_int_equal(harness_server_start(&limited, env), 0);
    long long now = harness_now_ms();
    char address[64];
    snprintf(address, sizeof(address), "fd00:1:2:3:5:%x:%x:%x", 0x1000 + getpid() % 0xefff,
             0x1000 + (int)(now / 0xefff % 0xefff), 0x1000 + (int)(now % 0xefff));
    redisContext *rc = redisConnect("127.0.0.1", harness_service_port("redis"));
    assert_true(rc != NULL && rc->err == 0);
    /* not an email: only the address is limited, and the login goes straight to hashing */
    const char *bad = "{\"email\":\"not-an-email\",\"password\":\"wrong password\"}";
    freeReplyObject(redisCommand(rc, "CLIENT PAUSE 1500 ALL"));
    harness_set_timeout_ms(200);
    assert_int_equal(post_from(address, "/api/v1/auth/login", bad, NULL), 0); /* gave up */
    harness_set_timeout_ms(10000);
    freeReplyObject(redisCommand(rc, "PING")); /* answered once the pause is over */
    /* one failed login of a client that waits for its answer: counted once */
    assert_int_equal(post_from(address, "/api/v1/auth/login", bad, NULL), 401);
    for (long long deadline = harness_now_ms() + 5000;
         redis_count_of(rc, address) < 1 && harness_now_ms() < deadline;)
        usleep(20 * 1000);
    usleep(300 * 1000); /* room for a second count to show */
    assert_int_equal(redis_count_of(rc, address), 1);
    redisFree(rc);
    assert_int_equal(harness_server_stop(&limited), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signup_then_confirm_by_the_emailed_link),
        cmocka_unit_test(test_signup_validation),
        cmocka_unit_test(test_signup_refuses_undeliverable_addresses),
        cmocka_unit_test(test_concurrent_signups_one_wins),
        cmocka_unit_test(test_login_and_me),
        cmocka_unit_test(test_login_failures_look_alike),
        cmocka_unit_test(test_legacy_hashes_rehashed),
        cmocka_unit_test(test_bad_bearer_tokens),
        cmocka_unit_test(test_refresh_rotates_and_reuse_revokes_the_family),
        cmocka_unit_test(test_refresh_race),
        cmocka_unit_test(test_logout_one_session_and_all),
        cmocka_unit_test(test_resend_confirmation_once_a_minute),
        cmocka_unit_test(test_forgot_and_reset_password),
        cmocka_unit_test(test_change_password),
        cmocka_unit_test(test_user_commands),
        cmocka_unit_test(test_patch_me),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_delete_me),
        cmocka_unit_test(test_admin_users),
        cmocka_unit_test(test_user_import),
        cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_rate_limit_counters_always_expire),
        cmocka_unit_test(test_rate_limit_check_skips_a_departed_client),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
