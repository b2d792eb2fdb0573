/*
 * The principal cache (docs/ARCHITECTURE.md, "The principal cache") against two real servers
 * sharing one database: a warm token is answered from the cache (its hit counter moves, so a
 * cache that did nothing fails here), and every way of revoking or changing what the cache
 * holds counts at the very next request, on the server that made the change and on the
 * other one; a listener connection cut by pg_terminate_backend never lets a revoked token
 * through, and the cache comes back once the listener has reconnected. API keys take the same
 * path (docs/PERFORMANCE.md, section 6): answered from the cache, refused at once when deleted,
 * replaced or their user disabled, their last use still written under cache hits, never
 * accepted after a deletion the cut listener could not hear of.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD     "principal-password-1"
#define NEW_PASSWORD "principal-password-2"

static harness_server_t a_srv, b_srv;
static PGconn *db;
/* Checks on the other server: how many, how many needed more than one request, the longest
 * wait (printed at the end). */
static int cross_checks, cross_late;
static long long cross_max_ms;

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                         "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_REQUIRE_EMAIL_CONFIRMATION=false",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         "HYDRANT_LIMIT_LOGIN_PER_EMAIL=1000000",
                                         "HYDRANT_API_KEY_LAST_USED_INTERVAL=1",
                                         NULL};

/* ------------------------------------------------------------------ helpers ---- */

static long request(const harness_server_t *s, const char *method, const char *path, const char *auth,
                    const char *body, char *out, size_t outlen)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", s->https_base, path);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, method, url, headers, body, body != NULL ? strlen(body) : 0);
    if (out != NULL)
        snprintf(out, outlen, "%s", res.body != NULL ? res.body : "");
    long status = res.status;
    harness_response_free(&res);
    return status;
}

static long me(const harness_server_t *s, const char *auth, char *out, size_t outlen)
{
    return request(s, "GET", "/api/v1/me", auth, NULL, out, outlen);
}

/* A value of the server's /metrics (a metric without labels), or -1. */
static double metric(const harness_server_t *s, const char *name)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", s->http_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
    double v = -1;
    char needle[128];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *at = res.body != NULL ? strstr(res.body, needle) : NULL;
    if (at != NULL)
        v = atof(at + strlen(needle));
    harness_response_free(&res);
    return v;
}

static int wait_listening(const harness_server_t *s)
{
    long long deadline = harness_now_ms() + 10000;
    while (harness_now_ms() < deadline) {
        if (metric(s, "hydrant_principal_cache_listening") == 1)
            return 0;
        usleep(20000);
    }
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&a_srv, server_env, &db) != 0 ||
        harness_server_start(&b_srv, server_env) != 0)
        return -1;
    return wait_listening(&a_srv) == 0 && wait_listening(&b_srv) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    fprintf(
        stderr,
        "principal cache: %d checks on the other server, %d needed more than one request, longest %lld ms\n",
        cross_checks, cross_late, cross_max_ms);
    PQfinish(db);
    int a = harness_server_stop(&a_srv), b = harness_server_stop(&b_srv);
    return a == 0 && b == 0 ? 0 : -1;
}

static void account(harness_account_t *acc, const char *tag, const char *role)
{
    assert_int_equal(harness_account_create(acc, &a_srv, db, server_env, tag, role, PASSWORD), 0);
}

/* Another session of the account: a fresh "Authorization: Bearer ..." in auth. */
static void login(const harness_account_t *acc, const char *password, char *auth, size_t len)
{
    char body[512], out[4096];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", acc->email, password);
    assert_int_equal(request(&a_srv, "POST", "/api/v1/auth/login", NULL, body, out, sizeof(out)), 200);
    const char *start = strstr(out, "\"access_token\":\"");
    assert_non_null(start);
    start += 16;
    snprintf(auth, len, "Authorization: Bearer %.*s", (int)(strchr(start, '"') - start), start);
}

/* The token works on both servers, and is then answered from their caches: each request is a
 * connection of its own, which the kernel gives to any of a server's loops (each loop has its
 * own cache), so a few requests warm every loop, and at least one of them is a hit. */
static void warm(const char *auth)
{
    const harness_server_t *servers[] = {&a_srv, &b_srv};
    for (int i = 0; i < 2; i++) {
        /* A fill asked before the server heard of a change to the user (a new key's
         * notification) is not kept: on a loaded machine a round may fill nothing. */
        double hits = metric(servers[i], "hydrant_principal_cache_hits_total");
        for (int round = 0; round < 20 && metric(servers[i], "hydrant_principal_cache_hits_total") < hits + 1;
             round++)
            for (int n = 0; n < 8; n++)
                assert_int_equal(me(servers[i], auth, NULL, 0), 200);
        assert_true(metric(servers[i], "hydrant_principal_cache_hits_total") >= hits + 1);
    }
}

/* GET path with auth on s until the answer has `status` (and `needle` in its body, when not
 * NULL). On the server that made the change it must be the very next request: the change's
 * answer was only sent once every loop there would miss. Elsewhere the change travels as a
 * notification; that server's listener was signalled by PostgreSQL at the same moment as the
 * changing server's, whose answer waited to hear it, so it is almost always there first too,
 * but on a loaded machine it may come a few milliseconds after the client's next request
 * (docs/ARCHITECTURE.md): a bound of 500 ms, and the lag is reported. */
static void expect(const harness_server_t *s, const char *path, const char *auth, long status,
                   const char *needle, int at_once)
{
    char out[4096];
    long long start = harness_now_ms();
    int tries = 0;
    for (;;) {
        long got = request(s, "GET", path, auth, NULL, out, sizeof(out));
        if (got == status && (needle == NULL || strstr(out, needle) != NULL))
            break;
        tries++;
        if (at_once || harness_now_ms() - start > 500) {
            fprintf(stderr, "%s on %s: %ld %s after %d tries\n", path, s->https_base, got, out, tries);
            fail();
        }
        usleep(1000);
    }
    if (!at_once) {
        cross_checks++;
        cross_late += tries > 0;
        if (harness_now_ms() - start > cross_max_ms)
            cross_max_ms = harness_now_ms() - start;
    }
}

/* Refused on both servers; changed_on is the server that made the change (NULL: SQL). */
/* A fresh account with two sessions (acc->auth and other), both warm on both servers. */
static void two_sessions(harness_account_t *acc, const char *tag, char other[1100])
{
    account(acc, tag, "user");
    login(acc, PASSWORD, other, 1100);
    warm(acc->auth);
    warm(other);
}

static void assert_refused_everywhere(const char *auth, const harness_server_t *changed_on)
{
    expect(&a_srv, "/api/v1/me", auth, 401, NULL, changed_on == &a_srv);
    expect(&b_srv, "/api/v1/me", auth, 401, NULL, changed_on == &b_srv);
}

/* ------------------------------------------------------------------- tests ---- */

static void test_warm_path_is_a_hit(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-warm", "user");
    double hits = metric(&a_srv, "hydrant_principal_cache_hits_total");
    double misses = metric(&a_srv, "hydrant_principal_cache_misses_total");
    for (int i = 0; i < 20; i++)
        assert_int_equal(me(&a_srv, acc.auth, NULL, 0), 200);
    /* One miss per loop thread at most (each loop has its own cache), the rest hits. */
    assert_true(metric(&a_srv, "hydrant_principal_cache_hits_total") >= hits + 10);
    assert_true(metric(&a_srv, "hydrant_principal_cache_misses_total") <= misses + 4);
    assert_true(metric(&a_srv, "hydrant_principal_cache_entries") >= 1);
}

static void test_logout(void **state)
{
    harness_account_t acc;
    char other[1100];
    two_sessions(&acc, "pc-logout", other);
    assert_int_equal(request(&a_srv, "POST", "/api/v1/auth/logout", acc.auth, "{}", NULL, 0), 204);
    assert_refused_everywhere(acc.auth, &a_srv);
    /* The other session lives on. */
    assert_int_equal(me(&a_srv, other, NULL, 0), 200);
    assert_int_equal(me(&b_srv, other, NULL, 0), 200);
}

static void test_logout_all(void **state)
{
    harness_account_t acc;
    char other[1100];
    two_sessions(&acc, "pc-logout-all", other);
    assert_int_equal(request(&b_srv, "POST", "/api/v1/auth/logout", acc.auth, "{\"all\":true}", NULL, 0),
                     204);
    assert_refused_everywhere(other, &b_srv);
    assert_refused_everywhere(acc.auth, &b_srv);
}

static void test_password_change(void **state)
{
    harness_account_t acc;
    char other[1100];
    two_sessions(&acc, "pc-password", other);
    assert_int_equal(request(&a_srv, "PUT", "/api/v1/me/password", acc.auth,
                             "{\"current_password\":\"" PASSWORD "\",\"new_password\":\"" NEW_PASSWORD "\"}",
                             NULL, 0),
                     204);
    assert_refused_everywhere(other, &a_srv);
    assert_refused_everywhere(acc.auth, &a_srv);
}

/* A one-time token of the account as its emailed link would carry it (stored as its SHA-256),
 * for purpose reset or confirm, into token. */
static void email_token(const harness_account_t *acc, const char *purpose, char token[64])
{
    snprintf(token, 64, "principalcache%s%d%lld", purpose, (int)getpid(), harness_now_ms());
    const char *values[] = {token, acc->id, purpose};
    PQclear(harness_sql(
        db,
        "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES "
        "(encode(sha256(convert_to($1, 'UTF8')), 'hex'), $2::uuid, $3, now() + interval '1 hour')",
        3, values));
}

static void test_password_reset(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-reset", "user");
    warm(acc.auth);
    char token[64], body[256];
    email_token(&acc, "reset", token);
    snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":\"%s\"}", token, NEW_PASSWORD);
    assert_int_equal(request(&b_srv, "POST", "/api/v1/auth/password/reset", NULL, body, NULL, 0), 204);
    assert_refused_everywhere(acc.auth, &b_srv);
}

/* Confirming the email changes the User that /me shows. */
static void test_email_confirmation(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-confirm", "user");
    const char *values[] = {acc.id};
    PQclear(harness_sql(db, "UPDATE users SET email_confirmed = false WHERE id = $1::uuid", 1, values));
    expect(&a_srv, "/api/v1/me", acc.auth, 200, "\"email_confirmed\":false", 0);
    expect(&b_srv, "/api/v1/me", acc.auth, 200, "\"email_confirmed\":false", 0);
    warm(acc.auth);
    char token[64], body[128];
    email_token(&acc, "confirm", token);
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
    assert_int_equal(request(&a_srv, "POST", "/api/v1/auth/confirm", NULL, body, NULL, 0), 200);
    expect(&a_srv, "/api/v1/me", acc.auth, 200, "\"email_confirmed\":true", 1);
    expect(&b_srv, "/api/v1/me", acc.auth, 200, "\"email_confirmed\":true", 0);
}

static void admin_patch(const harness_account_t *admin, const harness_account_t *target, const char *body)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/admin/users/%s", target->id);
    assert_int_equal(request(&a_srv, "PATCH", path, admin->auth, body, NULL, 0), 200);
}

static void test_disable_and_role_change(void **state)
{
    harness_account_t admin, target;
    account(&admin, "pc-admin", "admin");
    account(&target, "pc-target", "user");
    warm(target.auth);
    admin_patch(&admin, &target, "{\"role\":\"superuser\"}");
    expect(&a_srv, "/api/v1/me", target.auth, 200, "\"role\":\"superuser\"", 1);
    expect(&b_srv, "/api/v1/me", target.auth, 200, "\"role\":\"superuser\"", 0);
    /* A demotion counts at once for the routes that need the role. */
    assert_int_equal(request(&b_srv, "GET", "/api/v1/admin/users", target.auth, NULL, NULL, 0), 200);
    admin_patch(&admin, &target, "{\"role\":\"user\"}");
    expect(&a_srv, "/api/v1/admin/users", target.auth, 403, NULL, 1);
    expect(&b_srv, "/api/v1/admin/users", target.auth, 403, NULL, 0);
    /* Warm, the role rule still holds (a hit accepts at once: the route's role must be known
     * before the lookup). */
    warm(target.auth);
    for (int i = 0; i < 6; i++) {
        expect(&a_srv, "/api/v1/admin/users", target.auth, 403, NULL, 1);
        expect(&b_srv, "/api/v1/admin/users", target.auth, 403, NULL, 1);
    }
    warm(target.auth);
    admin_patch(&admin, &target, "{\"disabled\":true}");
    assert_refused_everywhere(target.auth, &a_srv);
}

static void test_profile_update_and_deletion(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-profile", "user");
    warm(acc.auth);
    assert_int_equal(
        request(&a_srv, "PATCH", "/api/v1/me", acc.auth, "{\"display_name\":\"Cached No More\"}", NULL, 0),
        200);
    expect(&a_srv, "/api/v1/me", acc.auth, 200, "Cached No More", 1);
    expect(&b_srv, "/api/v1/me", acc.auth, 200, "Cached No More", 0);
    warm(acc.auth);
    assert_int_equal(
        request(&b_srv, "DELETE", "/api/v1/me", acc.auth, "{\"password\":\"" PASSWORD "\"}", NULL, 0), 204);
    assert_refused_everywhere(acc.auth, &b_srv);
}

/* An operator's SQL reaches the caches too (the trigger of migration 0007). */
static void test_change_by_sql(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-sql", "user");
    warm(acc.auth);
    const char *values[] = {acc.id};
    PQclear(harness_sql(db, "UPDATE users SET disabled = true WHERE id = $1::uuid", 1, values));
    assert_refused_everywhere(acc.auth, NULL);
}

/* ---------------------------------------------------------------- API keys ---- */

/* A new API key of the account, made on s: "X-API-Key: hk_..." into header. */
static void api_key(const harness_account_t *acc, const harness_server_t *s, char header[128])
{
    char out[1024];
    assert_int_equal(request(s, "POST", "/api/v1/me/api-key", acc->auth, NULL, out, sizeof(out)), 201);
    const char *start = strstr(out, "\"api_key\":\"");
    assert_non_null(start);
    start += 11;
    snprintf(header, 128, "X-API-Key: %.*s", (int)(strchr(start, '"') - start), start);
}

/* A fresh account with a key (made on a), warm on both servers. */
static void keyed_account(harness_account_t *acc, const char *tag, const char *role, char key[128])
{
    account(acc, tag, role);
    api_key(acc, &a_srv, key);
    warm(key);
}

static void test_api_key_is_a_hit(void **state)
{
    harness_account_t acc;
    char key[128];
    account(&acc, "pc-key-warm", "user");
    api_key(&acc, &a_srv, key);
    double hits = metric(&a_srv, "hydrant_principal_cache_hits_total");
    double misses = metric(&a_srv, "hydrant_principal_cache_misses_total");
    char out[4096];
    for (int i = 0; i < 20; i++) {
        assert_int_equal(me(&a_srv, key, out, sizeof(out)), 200);
        assert_non_null(strstr(out, acc.id));
    }
    assert_true(metric(&a_srv, "hydrant_principal_cache_hits_total") >= hits + 10);
    assert_true(metric(&a_srv, "hydrant_principal_cache_misses_total") <= misses + 4);
    assert_true(metric(&a_srv, "hydrant_principal_cache_keys") >= 1);
    /* The key's entry is the user's: the token is answered along with it, with the same User,
     * and a key that was never made is refused, warm or not. */
    char by_token[4096];
    assert_int_equal(me(&a_srv, acc.auth, by_token, sizeof(by_token)), 200);
    assert_string_equal(by_token, out);
    assert_int_equal(me(&a_srv, "X-API-Key: hk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, 0), 401);
}

static void test_api_key_deleted(void **state)
{
    harness_account_t acc;
    char key[128];
    keyed_account(&acc, "pc-key-delete", "user", key);
    assert_int_equal(request(&a_srv, "DELETE", "/api/v1/me/api-key", key, NULL, NULL, 0), 204);
    assert_refused_everywhere(key, &a_srv);
    /* The user's token is untouched. */
    assert_int_equal(me(&a_srv, acc.auth, NULL, 0), 200);
    assert_int_equal(me(&b_srv, acc.auth, NULL, 0), 200);
    /* Deleted on the other server this time. */
    api_key(&acc, &a_srv, key);
    warm(key);
    assert_int_equal(request(&b_srv, "DELETE", "/api/v1/me/api-key", acc.auth, NULL, NULL, 0), 204);
    assert_refused_everywhere(key, &b_srv);
}

static void test_api_key_rotated(void **state)
{
    harness_account_t acc;
    char key[128], next[128];
    keyed_account(&acc, "pc-key-rotate", "user", key);
    api_key(&acc, &b_srv, next);
    assert_refused_everywhere(key, &b_srv);
    expect(&a_srv, "/api/v1/me", next, 200, acc.id, 1);
    expect(&b_srv, "/api/v1/me", next, 200, acc.id, 1);
    warm(next);
    api_key(&acc, &a_srv, key);
    assert_refused_everywhere(next, &a_srv);
}

static void test_api_key_user_disabled(void **state)
{
    harness_account_t admin, target;
    char key[128];
    account(&admin, "pc-key-admin", "admin");
    keyed_account(&target, "pc-key-target", "user", key);
    admin_patch(&admin, &target, "{\"disabled\":true}");
    assert_refused_everywhere(key, &a_srv);
}

/* A key's last use, in Unix seconds, or -1 when never. */
static double key_last_used(const harness_account_t *acc)
{
    const char *values[] = {acc->id};
    PGresult *res = harness_sql(
        db, "SELECT coalesce(extract(epoch FROM last_used_at), -1) FROM api_keys WHERE user_id = $1::uuid", 1,
        values);
    double at = atof(PQgetvalue(res, 0, 0));
    PQclear(res);
    return at;
}

/* A hit skips the statement that writes the key's last use, so it writes it itself (at most
 * once a second here: HYDRANT_API_KEY_LAST_USED_INTERVAL=1). A round counts only when all its
 * requests were hits; and the write must not invalidate anything (no notification). */
static void test_api_key_last_used_under_hits(void **state)
{
    harness_account_t acc;
    char key[128];
    keyed_account(&acc, "pc-key-used", "user", key);
    double first = key_last_used(&acc);
    assert_true(first > 0);
    int advanced = 0;
    for (int round = 0; round < 5 && !advanced; round++) {
        usleep(1100 * 1000);
        double misses = metric(&a_srv, "hydrant_principal_cache_misses_total");
        double notified = metric(&a_srv, "hydrant_principal_cache_notifications_total");
        double touches = metric(&a_srv, "hydrant_principal_cache_key_touches_total");
        for (int i = 0; i < 4; i++)
            assert_int_equal(me(&a_srv, key, NULL, 0), 200);
        if (metric(&a_srv, "hydrant_principal_cache_misses_total") != misses)
            continue; /* a loop that had not seen the key yet asked the database itself */
        assert_true(metric(&a_srv, "hydrant_principal_cache_key_touches_total") >= touches + 1);
        for (int tries = 0; tries < 200 && !advanced; tries++) {
            advanced = key_last_used(&acc) > first;
            if (!advanced)
                usleep(10000);
        }
        assert_true(advanced);
        assert_true(metric(&a_srv, "hydrant_principal_cache_notifications_total") == notified);
    }
    assert_true(advanced);
    /* The trigger itself, on this connection (a session hears its own transactions'
     * notifications with their result): quiet for a last-use write, speaking for a key's
     * deletion. */
    const char *values[] = {acc.id};
    PQclear(harness_sql(db, "LISTEN hydrant_principal", 0, NULL));
    PQclear(harness_sql(db, "UPDATE api_keys SET last_used_at = now() WHERE user_id = $1::uuid", 1, values));
    PQconsumeInput(db);
    PGnotify *heard = PQnotifies(db);
    assert_null(heard);
    PQclear(harness_sql(db, "DELETE FROM api_keys WHERE user_id = $1::uuid", 1, values));
    PQconsumeInput(db);
    int told = 0;
    while ((heard = PQnotifies(db)) != NULL) {
        told |= strcmp(heard->relname, "hydrant_principal") == 0 && strcmp(heard->extra, acc.id) == 0;
        PQfreemem(heard);
    }
    PQclear(harness_sql(db, "UNLISTEN hydrant_principal", 0, NULL));
    assert_true(told);
}

/* The listener's backend of a server, by the application_name that names its process. */
static void terminate_listener(const harness_server_t *s)
{
    char name[64];
    snprintf(name, sizeof(name), "hydrant-principals:%ld", (long)s->pid);
    const char *values[] = {name};
    PGresult *res =
        harness_sql(db,
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                    "WHERE application_name = $1",
                    1, values);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
}

/* ALTER DATABASE cannot run on a connection to the database it changes: from "postgres". */
static void allow_connections(int allow)
{
    PGresult *res = harness_sql(db, "SELECT current_database()", 0, NULL);
    char *name = PQescapeIdentifier(db, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
    PQclear(res);
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *values[] = {PQhost(db), PQport(db), PQuser(db), "postgres", NULL};
    PGconn *admin = PQconnectdbParams(keys, values, 0);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    char sql[256];
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS %s", name, allow ? "true" : "false");
    PQfreemem(name);
    PQclear(harness_sql(admin, sql, 0, NULL));
    PQfinish(admin);
}

/* The listener of s cut and kept from reconnecting (the database takes no new connection
 * until allow_connections(1)), once s says it is no longer listening (at most 5 s). */
static void cut_listener(const harness_server_t *s)
{
    allow_connections(0);
    terminate_listener(s);
    long long deadline = harness_now_ms() + 5000;
    while (metric(s, "hydrant_principal_cache_listening") != 0 && harness_now_ms() < deadline)
        usleep(1000);
}

/* A's listener is cut and kept from reconnecting (the database refuses new connections for a
 * while; the servers' pipelined connections stay), then the user is revoked by SQL: the
 * notification cannot reach A, whose caches must be emptied and bypassed. Once the listener
 * is back the cache serves again. Three rounds. */
static void test_cut_listener_fails_closed(void **state)
{
    for (int round = 0; round < 3; round++) {
        harness_account_t acc;
        char other[1100];
        two_sessions(&acc, "pc-cut", other);
        double bypassed = metric(&a_srv, "hydrant_principal_cache_bypassed_total");
        cut_listener(&a_srv);
        const char *values[] = {acc.id};
        PQclear(
            harness_sql(db, "UPDATE users SET tokens_valid_after = now() WHERE id = $1::uuid", 1, values));
        long first = me(&a_srv, acc.auth, NULL, 0), second = me(&a_srv, other, NULL, 0);
        double listening = metric(&a_srv, "hydrant_principal_cache_listening");
        double bypassed_after = metric(&a_srv, "hydrant_principal_cache_bypassed_total");
        allow_connections(1); /* before any assertion: the other tests need connections */
        assert_int_equal(listening, 0);
        assert_int_equal(first, 401);
        assert_int_equal(second, 401);
        /* B heard it (on a loaded machine a few milliseconds after the client's next request). */
        expect(&b_srv, "/api/v1/me", acc.auth, 401, NULL, 0);
        assert_true(bypassed_after >= bypassed + 2);
        /* The listener comes back (backoff), and with it the cache. */
        assert_int_equal(wait_listening(&a_srv), 0);
        harness_account_t next;
        account(&next, "pc-cut-next", "user");
        warm(next.auth);
    }
    assert_true(metric(&a_srv, "hydrant_principal_cache_bypass_seconds_total") > 0);
}

/* Revoked, then the listener cut before the use: the notification was heard, or the cut
 * empties the cache; either way the token is refused. */
static void test_revoke_then_cut(void **state)
{
    harness_account_t acc;
    account(&acc, "pc-revoke-cut", "user");
    warm(acc.auth);
    const char *values[] = {acc.id};
    PQclear(harness_sql(db, "UPDATE users SET disabled = true WHERE id = $1::uuid", 1, values));
    terminate_listener(&b_srv);
    assert_refused_everywhere(acc.auth, NULL);
    assert_int_equal(wait_listening(&b_srv), 0);
}

/* A's listener is cut and kept from reconnecting, then a warm key is deleted by SQL: A never
 * accepts it (its cache is bypassed), nor does B (which heard it). */
static void test_api_key_cut_listener_fails_closed(void **state)
{
    harness_account_t acc;
    char key[128];
    keyed_account(&acc, "pc-key-cut", "user", key);
    double bypassed = metric(&a_srv, "hydrant_principal_cache_bypassed_total");
    cut_listener(&a_srv);
    const char *values[] = {acc.id};
    PQclear(harness_sql(db, "DELETE FROM api_keys WHERE user_id = $1::uuid", 1, values));
    long on_a[4];
    for (int i = 0; i < 4; i++)
        on_a[i] = me(&a_srv, key, NULL, 0);
    double listening = metric(&a_srv, "hydrant_principal_cache_listening");
    double bypassed_after = metric(&a_srv, "hydrant_principal_cache_bypassed_total");
    allow_connections(1); /* before any assertion: the other tests need connections */
    assert_int_equal(listening, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(on_a[i], 401);
    expect(&b_srv, "/api/v1/me", key, 401, NULL, 0);
    assert_true(bypassed_after >= bypassed + 4);
    assert_int_equal(wait_listening(&a_srv), 0);
    /* A emptied its cache when its listener came back: the deleted key, at once. */
    expect(&a_srv, "/api/v1/me", key, 401, NULL, 1);
    /* Deleted while B's listener is down, so that B cannot hear it: once back, B refuses it
     * at once (only the emptying on reconnect can refuse it there). */
    api_key(&acc, &a_srv, key);
    warm(key);
    cut_listener(&b_srv);
    PQclear(harness_sql(db, "DELETE FROM api_keys WHERE user_id = $1::uuid", 1, values));
    allow_connections(1);
    assert_int_equal(wait_listening(&b_srv), 0);
    expect(&b_srv, "/api/v1/me", key, 401, NULL, 1);
    expect(&a_srv, "/api/v1/me", key, 401, NULL, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_warm_path_is_a_hit),
        cmocka_unit_test(test_logout),
        cmocka_unit_test(test_logout_all),
        cmocka_unit_test(test_password_change),
        cmocka_unit_test(test_password_reset),
        cmocka_unit_test(test_email_confirmation),
        cmocka_unit_test(test_disable_and_role_change),
        cmocka_unit_test(test_profile_update_and_deletion),
        cmocka_unit_test(test_change_by_sql),
        cmocka_unit_test(test_cut_listener_fails_closed),
        cmocka_unit_test(test_revoke_then_cut),
        cmocka_unit_test(test_api_key_is_a_hit),
        cmocka_unit_test(test_api_key_deleted),
        cmocka_unit_test(test_api_key_rotated),
        cmocka_unit_test(test_api_key_user_disabled),
        cmocka_unit_test(test_api_key_last_used_under_hits),
        cmocka_unit_test(test_api_key_cut_listener_fails_closed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
