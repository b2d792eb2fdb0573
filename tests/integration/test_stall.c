/*
 * A stalled PostgreSQL backend (SIGSTOP) past the query timeout: hydrant answers without
 * waiting for it, and what it answered must stay true when the backend wakes up. Before the
 * batches carried a deadline, the woken backend committed a refresh answered with an error
 * (the client's retry was then a reuse that revoked its own session) and a sign-up answered
 * with an error (its retry got 409).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD "stall-password-1"

static harness_server_t server;
static PGconn *db;
static pid_t stalled; /* a stopped backend, woken by the teardown if a test fails midway */

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                         "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_DATABASE_QUERY_TIMEOUT_MS=1200",
                                         "HYDRANT_THREADS=1",
                                         "HYDRANT_DATABASE_POOL_SIZE=1",
                                         "HYDRANT_REQUIRE_EMAIL_CONFIRMATION=false",
                                         "HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS=1000000",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         NULL};

static int group_setup(void **state)
{
    (void)state;
    return harness_server_start_with_db(&server, server_env, &db);
}

static int group_teardown(void **state)
{
    (void)state;
    if (stalled > 0)
        kill(stalled, SIGCONT); /* PostgreSQL could not stop with it */
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static long post_json(const char *path, const char *body, json_t **doc)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", server.https_base, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, body, strlen(body));
    json_error_t jerr;
    *doc = json_loads(res.body != NULL ? res.body : "", 0, &jerr);
    long status = res.status;
    harness_response_free(&res);
    return status;
}

/* The text of the one value a query returns (malloc'd). */
static char *sql_value(const char *query, const char *param)
{
    PGresult *res = harness_sql(db, query, param != NULL ? 1 : 0, param != NULL ? &param : NULL);
    char *v = strdup(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return v;
}

/* Waits (bounded) until the pool is connected again, so the next request is served. */
static void wait_for_pool(void)
{
    for (long long deadline = harness_now_ms() + 10000; harness_now_ms() < deadline; usleep(50 * 1000))
        if (harness_get_status(HARNESS_HTTP2, server.https_base, "/health") == 200)
            return;
    fail_msg("the pool did not come back");
}

/* The one backend of hydrant's one pipelined connection (one loop, pool size 1), stopped:
 * whatever hydrant sends it waits in its socket. */
static pid_t stall(void)
{
    wait_for_pool(); /* a connection of its own after the last test cut one */
    PGresult *res =
        harness_sql(db, "SELECT pid FROM pg_stat_activity WHERE application_name = 'hydrant'", 0, NULL);
    assert_int_equal(PQntuples(res), 1);
    pid_t pid = (pid_t)atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    stalled = pid;
    return pid;
}

static void wake(pid_t pid)
{
    assert_int_equal(kill(pid, SIGCONT), 0);
    stalled = 0;
}

static void wait_exit(pid_t pid)
{
    for (long long deadline = harness_now_ms() + 15000; harness_now_ms() < deadline; usleep(20 * 1000))
        if (kill(pid, 0) != 0)
            return;
    fail_msg("the backend did not end");
}

/* Woken, the backend reads what hydrant sent before it gave up on the connection, runs it,
 * then finds its client gone and exits: waits (bounded) for that, so that whatever it was
 * going to commit is committed. */
static void resume(pid_t pid)
{
    wake(pid);
    wait_exit(pid);
}

/* Answered without success while the backend was stalled: an in-doubt 500 or a 503. */
static void assert_not_done(long status, const json_t *doc)
{
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    assert_non_null(code);
    assert_true((status == 500 && strcmp(code, "internal") == 0) ||
                (status == 503 && strcmp(code, "unavailable") == 0));
}

/* A new account's session: its refresh token, and a refresh request's body with it. */
static void new_session(const char *tag, char refresh[256], char body[512])
{
    char email[128];
    snprintf(email, sizeof(email), "stall-%s-%d@example.com", tag, getpid());
    snprintf(body, 512, "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    json_t *doc = NULL;
    assert_int_equal(post_json("/api/v1/auth/signup", body, &doc), 201);
    json_decref(doc);
    assert_int_equal(post_json("/api/v1/auth/login", body, &doc), 200);
    snprintf(refresh, 256, "%s", json_string_value(json_object_get(doc, "refresh_token")));
    json_decref(doc);
    snprintf(body, 512, "{\"refresh_token\":\"%s\"}", refresh);
}

static void test_stalled_refresh_never_rotates_later(void **state)
{
    (void)state;
    char refresh[256], body[512];
    new_session("refresh", refresh, body);
    json_t *doc = NULL;
    pid_t backend = stall();
    long status = post_json("/api/v1/auth/refresh", body, &doc);
    assert_not_done(status, doc);
    json_decref(doc);
    resume(backend);
    wait_for_pool();

    /* Nothing was rotated: the family still has its one token, and retrying works. */
    char *rows =
        sql_value("SELECT count(*) || ' ' || count(rotated_at) FROM refresh_tokens WHERE family_id = "
                  "(SELECT family_id FROM refresh_tokens WHERE token_hash = "
                  "encode(sha256($1::bytea), 'hex'))",
                  refresh);
    assert_string_equal(rows, "1 0");
    free(rows);
    assert_int_equal(post_json("/api/v1/auth/refresh", body, &doc), 200);
    json_decref(doc);
}

/* Polls (bounded) until a query's one value is want. */
static void wait_for_value(const char *query, const char *param, const char *want)
{
    for (long long deadline = harness_now_ms() + 10000; harness_now_ms() < deadline; usleep(20 * 1000)) {
        char *v = sql_value(query, param);
        int done = strcmp(v, want) == 0;
        free(v);
        if (done)
            return;
    }
    fail_msg("%s never gave %s", query, want);
}

/* Does hydrant's Redis hold a note that the token's rotation went unanswered? */
static int unanswered_noted(const char *refresh)
{
    char *hash = sql_value("SELECT encode(sha256($1::bytea), 'hex')", refresh);
    int found = harness_system("test \"$(redis-cli -p %d exists hydrant:refresh:unanswered:%s)\" = 1",
                               harness_service_port("redis"), hash) == 0;
    free(hash);
    return found;
}

/* The client gives up while the backend is slow; the rotation then commits, but its answer
 * reaches nobody. The client's retry with the same token is a new rotation of the family,
 * not a reuse that would revoke its own session (contract v1.1). */
static void test_unanswered_rotation_may_be_retried(void **state)
{
    (void)state;
    char refresh[256], body[512];
    new_session("unanswered", refresh, body);
    json_t *doc = NULL;
    pid_t backend = stall();
    harness_set_timeout_ms(300);
    long status = post_json("/api/v1/auth/refresh", body, &doc);
    harness_set_timeout_ms(10000);
    json_decref(doc);
    assert_int_equal(status, 0); /* the client left */
    wake(backend);               /* well within the query timeout: the rotation commits */
    wait_for_value(
        "SELECT count(rotated_at) FROM refresh_tokens WHERE token_hash = encode(sha256($1::bytea), 'hex')",
        refresh, "1");
    for (long long deadline = harness_now_ms() + 5000;
         !unanswered_noted(refresh) && harness_now_ms() < deadline;)
        usleep(20 * 1000);
    assert_true(unanswered_noted(refresh));

    assert_int_equal(post_json("/api/v1/auth/refresh", body, &doc), 200);
    assert_non_null(json_string_value(json_object_get(doc, "refresh_token")));
    json_decref(doc);
    /* One family, not revoked: the first child (never delivered) and the retry's. */
    char *rows =
        sql_value("SELECT count(*) || ' ' || count(revoked_at) FROM refresh_tokens WHERE family_id = "
                  "(SELECT family_id FROM refresh_tokens WHERE token_hash = "
                  "encode(sha256($1::bytea), 'hex'))",
                  refresh);
    assert_string_equal(rows, "3 0");
    free(rows);
    /* A token whose rotation was answered is a reuse as ever. */
    char answered[256];
    new_session("answered", answered, body);
    assert_int_equal(post_json("/api/v1/auth/refresh", body, &doc), 200);
    json_decref(doc);
    assert_int_equal(post_json("/api/v1/auth/refresh", body, &doc), 401);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "error"), "code")),
                        "token_reused");
    json_decref(doc);
}

/* A new connection for the test once PostgreSQL is back from a crash (bounded). */
static void reconnect(void)
{
    PQfinish(db);
    for (long long deadline = harness_now_ms() + 30000; harness_now_ms() < deadline; usleep(100 * 1000)) {
        db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
        if (PQstatus(db) == CONNECTION_OK)
            return;
        PQfinish(db);
    }
    db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    assert_int_equal(PQstatus(db), CONNECTION_OK);
}

/* Has the backend's socket received bytes the backend has not read yet (hydrant's batch,
 * sent to a stopped backend)? The backend's socket inodes from /proc/PID/fd, their receive
 * queues from /proc/net/tcp (hex). */
static int backend_has_unread_input(pid_t pid)
{
    char dir[64], link[96], target[64];
    unsigned long inodes[32];
    int n = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    for (int fd = 0; fd < 256 && n < 32; fd++) {
        snprintf(link, sizeof(link), "%s/%d", dir, fd);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (sscanf(target, "socket:[%lu]", &inodes[n]) == 1)
            n++;
    }
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        unsigned rx;
        unsigned long inode;
        if (sscanf(line, " %*d: %*X:%*X %*X:%*X %*X %*X:%X %*X:%*X %*X %*u %*u %lu", &rx, &inode) != 2)
            continue;
        for (int i = 0; i < n && !found; i++)
            found = inodes[i] == inode && rx > 0;
    }
    fclose(f);
    return found;
}

typedef struct {
    const char *body;
    const char *key;
    long status;
    char code[32];
} signup_call_t;

static void *signup_with_key(void *arg)
{
    signup_call_t *c = arg;
    char url[256], key_header[128];
    snprintf(url, sizeof(url), "%s/api/v1/auth/signup", server.https_base);
    snprintf(key_header, sizeof(key_header), "Idempotency-Key: %s", c->key);
    const char *headers[] = {"Content-Type: application/json", key_header, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, c->body, strlen(c->body));
    c->status = res.status;
    json_error_t jerr;
    json_t *doc = json_loads(res.body != NULL ? res.body : "", 0, &jerr);
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    snprintf(c->code, sizeof(c->code), "%s", code != NULL ? code : "");
    json_decref(doc);
    harness_response_free(&res);
    return NULL;
}

/* A sign-up (with an Idempotency-Key) is sent to a stopped backend, whose connection is then
 * cut: terminated by PostgreSQL (it says so before running anything: 503, nothing changed),
 * or killed outright (nobody can say: 500 with the outcome unknown). Either way the retry
 * with the same key acts once. */
static void cut_during_signup(const char *tag, int kill_it, long want_status, const char *want_code)
{
    char email[128], body[256], key[64];
    snprintf(email, sizeof(email), "stall-cut-%s-%d@example.com", tag, getpid());
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    snprintf(key, sizeof(key), "cut-%s-%d", tag, getpid());
    pid_t backend = stall();
    signup_call_t call = {.body = body, .key = key};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, signup_with_key, &call), 0);
    /* No assertion while the thread runs: a failing one would leave it writing into this
     * frame. */
    int sent = 0;
    for (long long deadline = harness_now_ms() + 10000; !sent && harness_now_ms() < deadline;
         usleep(5 * 1000))
        sent = backend_has_unread_input(backend);
    int cut = -1;
    if (!sent) {
        wake(backend);
    } else if (kill_it) {
        cut = kill(backend, SIGKILL); /* PostgreSQL then restarts every backend */
        stalled = 0;
    } else {
        char query[96];
        snprintf(query, sizeof(query), "SELECT pg_terminate_backend(%d)", (int)backend);
        PQclear(PQexec(db, query));
        cut = kill(backend, SIGCONT);
        stalled = 0;
    }
    pthread_join(thread, NULL);
    if (kill_it)
        reconnect(); /* the crash ended the test's own connection too */
    assert_true(sent);
    assert_int_equal(cut, 0);
    if (!kill_it)
        wait_exit(backend); /* it ends, having run nothing */
    assert_int_equal(call.status, want_status);
    assert_string_equal(call.code, want_code);
    wait_for_pool();
    char *count = sql_value("SELECT count(*) FROM users WHERE email = $1", email);
    assert_string_equal(count, "0");
    free(count);
    signup_call_t retry = {.body = body, .key = key};
    signup_with_key(&retry);
    assert_int_equal(retry.status, 201);
    count = sql_value("SELECT count(*) FROM users WHERE email = $1", email);
    assert_string_equal(count, "1");
    free(count);
}

static void test_terminated_connection_changed_nothing(void **state)
{
    (void)state;
    cut_during_signup("terminated", 0, 503, "unavailable");
}

static void test_killed_backend_leaves_the_outcome_open(void **state)
{
    (void)state;
    cut_during_signup("killed", 1, 500, "internal");
}

static void test_stalled_signup_never_commits_later(void **state)
{
    (void)state;
    char email[128], body[512];
    snprintf(email, sizeof(email), "stall-signup-%d@example.com", getpid());
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", email);
    pid_t backend = stall();
    json_t *doc = NULL;
    long status = post_json("/api/v1/auth/signup", body, &doc);
    assert_not_done(status, doc);
    json_decref(doc);
    resume(backend);
    wait_for_pool();

    char *count = sql_value("SELECT count(*) FROM users WHERE email = $1", email);
    assert_string_equal(count, "0");
    free(count);
    assert_int_equal(post_json("/api/v1/auth/signup", body, &doc), 201); /* the retry, not a 409 */
    json_decref(doc);
}

int main(void)
{
    if (geteuid() != 0) {
        /* Stopping PostgreSQL's backends needs root or the postgres user (CI runs as root). */
        fprintf(stderr, "test_stall: not root, skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_refresh_never_rotates_later),
        cmocka_unit_test(test_stalled_signup_never_commits_later),
        cmocka_unit_test(test_unanswered_rotation_may_be_retried),
        cmocka_unit_test(test_terminated_connection_changed_nothing),
        cmocka_unit_test(test_killed_backend_leaves_the_outcome_open),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
