/*
 * The jobs API over real HTTP/2 and HTTP/1.1 against the real server: a user's own jobs
 * (list, filters, paging, one job, cancel), other users' jobs answered 404, API keys, and the
 * admin routes (every user's jobs, retry) for superusers only. Jobs are written straight into
 * PostgreSQL by the test, scheduled a day ahead so no worker takes them meanwhile.
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

#define PASSWORD "correct horse battery staple"

static harness_server_t server;
static PGconn *db;

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024", "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         "HYDRANT_JWT_SECRET=integration-test-secret-0123456789abcdef", NULL};

typedef harness_account_t account_t;

static account_t alice, bob, super;
/* alice: a queued job (future), a dead one, a succeeded one; bob: a queued one. */
static char alice_queued[40], alice_dead[40], alice_done[40], bob_queued[40];

static long call(int protocol, const char *method, const char *path, const char *auth_header, json_t **doc)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base,
             path);
    const char *headers[] = {auth_header, NULL};
    harness_response_t res;
    harness_request(&res, protocol, method, url, auth_header != NULL ? headers : NULL, NULL, 0);
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

static long as(const account_t *who, int protocol, const char *method, const char *path, json_t **doc)
{
    return call(protocol, method, path, who->auth, doc);
}

static const char *error_code(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}

static void make_account(account_t *a, const char *tag, const char *role)
{
    assert_int_equal(harness_account_create(a, &server, db, server_env, tag, role, PASSWORD), 0);
}

static void make_job(char out[40], const account_t *owner, const char *state, const char *queue)
{
    const char *values[] = {owner->id, state, queue};
    PGresult *res = harness_sql(db,
                                "INSERT INTO jobs (kind, queue, owner_id, state, run_at, attempt, error) "
                                "VALUES ('test.api', $3, $1::uuid, $2, now() + interval '1 day', "
                                "CASE WHEN $2 = 'dead' THEN 5 ELSE 0 END, "
                                "CASE WHEN $2 = 'dead' THEN 'it broke' END) RETURNING id",
                                3, values);
    snprintf(out, 40, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    usleep(3000); /* ids are time-ordered by the millisecond: the next job is newer */
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start(&server, server_env) != 0)
        return -1;
    db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    if (PQstatus(db) != CONNECTION_OK)
        return -1;
    make_account(&alice, "alice", "user");
    make_account(&bob, "bob", "user");
    make_account(&super, "super", "superuser");
    make_job(alice_queued, &alice, "queued", "long");
    make_job(alice_dead, &alice, "dead", "short");
    make_job(alice_done, &alice, "succeeded", "medium");
    make_job(bob_queued, &bob, "queued", "short");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

/* The ids of a list answer, in order, into ids (at most n); returns how many. */
static int list_ids(const json_t *doc, char ids[][40], int n)
{
    json_t *items = json_object_get(doc, "items");
    int count = 0;
    for (size_t i = 0; i < json_array_size(items) && count < n; i++)
        snprintf(ids[count++], 40, "%s", json_string_value(json_object_get(json_array_get(items, i), "id")));
    return count;
}

static void test_own_jobs_newest_first(void **state)
{
    (void)state;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        json_t *doc = NULL;
        assert_int_equal(as(&alice, protocol, "GET", "/api/v1/jobs", &doc), 200);
        char ids[10][40];
        assert_int_equal(list_ids(doc, ids, 10), 3); /* alice's three, not bob's */
        assert_string_equal(ids[0], alice_done);
        assert_string_equal(ids[1], alice_dead);
        assert_string_equal(ids[2], alice_queued);
        assert_true(json_is_null(json_object_get(doc, "next_cursor")));
        json_t *first = json_array_get(json_object_get(doc, "items"), 0);
        assert_string_equal(json_string_value(json_object_get(first, "kind")), "test.api");
        assert_string_equal(json_string_value(json_object_get(first, "queue")), "medium");
        json_decref(doc);
    }
}

static void test_filters_and_paging(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(as(&alice, HARNESS_HTTP2, "GET", "/api/v1/jobs?state=dead", &doc), 200);
    char ids[10][40];
    assert_int_equal(list_ids(doc, ids, 10), 1);
    assert_string_equal(ids[0], alice_dead);
    json_t *job = json_array_get(json_object_get(doc, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(job, "error")), "it broke");
    json_decref(doc);
    /* one a page: three pages, each id once, then no cursor */
    char path[256] = "/api/v1/jobs?limit=1", seen[3][40];
    for (int page = 0; page < 3; page++) {
        assert_int_equal(as(&alice, HARNESS_HTTP2, "GET", path, &doc), 200);
        assert_int_equal(list_ids(doc, &seen[page], 1), 1);
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        if (page < 2) {
            assert_non_null(next);
            snprintf(path, sizeof(path), "/api/v1/jobs?limit=1&cursor=%s", next);
        } else {
            assert_null(next);
        }
        json_decref(doc);
    }
    assert_string_equal(seen[0], alice_done);
    assert_string_equal(seen[1], alice_dead);
    assert_string_equal(seen[2], alice_queued);
}

static void test_bad_list_parameters(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "/api/v1/jobs?limit=0",          "/api/v1/jobs?limit=101",       "/api/v1/jobs?limit=ten",
        "/api/v1/jobs?limit=",           "/api/v1/jobs?state=sleeping",  "/api/v1/jobs?state=",
        "/api/v1/jobs?cursor=12345",     "/api/v1/jobs?cursor=%27%3B--", "/api/v1/jobs?queue=short",
        "/api/v1/admin/jobs?queue=fast", "/api/v1/admin/jobs?limit=-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *doc = NULL;
        long status = as(&super, HARNESS_HTTP2, "GET", bad[i], &doc);
        if (status != 400)
            fprintf(stderr, "%s: %ld\n", bad[i], status);
        assert_int_equal(status, 400);
        assert_string_equal(error_code(doc), "bad_request");
        json_decref(doc);
    }
}

static void test_one_job_and_other_users(void **state)
{
    (void)state;
    char path[128];
    json_t *doc = NULL;
    snprintf(path, sizeof(path), "/api/v1/jobs/%s", alice_dead);
    assert_int_equal(as(&alice, HARNESS_HTTP1, "GET", path, &doc), 200);
    json_t *job = json_object_get(doc, "job");
    assert_string_equal(json_string_value(json_object_get(job, "id")), alice_dead);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 5);
    json_decref(doc);
    /* bob does not learn that alice's job exists; a superuser may read it */
    assert_int_equal(as(&bob, HARNESS_HTTP2, "GET", path, &doc), 404);
    assert_string_equal(error_code(doc), "not_found");
    json_decref(doc);
    assert_int_equal(as(&super, HARNESS_HTTP2, "GET", path, NULL), 200);
    /* ids that name no job */
    assert_int_equal(as(&alice, HARNESS_HTTP2, "GET", "/api/v1/jobs/not-a-uuid", NULL), 404);
    assert_int_equal(
        as(&alice, HARNESS_HTTP2, "GET", "/api/v1/jobs/00000000-0000-0000-0000-000000000000", NULL), 404);
    /* no credentials */
    assert_int_equal(call(HARNESS_HTTP2, "GET", path, NULL, &doc), 401);
    assert_string_equal(error_code(doc), "unauthorized");
    json_decref(doc);
}

static void test_cancel(void **state)
{
    (void)state;
    char path[128];
    json_t *doc = NULL;
    /* bob cannot cancel alice's job, and is not told it exists */
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/cancel", alice_queued);
    assert_int_equal(as(&bob, HARNESS_HTTP2, "POST", path, &doc), 404);
    json_decref(doc);
    assert_int_equal(as(&alice, HARNESS_HTTP2, "POST", path, &doc), 202);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "job"), "state")),
                        "cancelled");
    json_decref(doc);
    /* once cancelled, or when dead: 409 */
    assert_int_equal(as(&alice, HARNESS_HTTP1, "POST", path, &doc), 409);
    assert_string_equal(error_code(doc), "conflict");
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/cancel", alice_dead);
    assert_int_equal(as(&alice, HARNESS_HTTP2, "POST", path, &doc), 409);
    json_decref(doc);
    const char *values[] = {alice_queued};
    PGresult *res =
        harness_sql(db, "SELECT state, finished_at IS NOT NULL FROM jobs WHERE id = $1", 1, values);
    assert_string_equal(PQgetvalue(res, 0, 0), "cancelled");
    assert_string_equal(PQgetvalue(res, 0, 1), "t");
    PQclear(res);
}

static void test_api_key(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(as(&bob, HARNESS_HTTP2, "POST", "/api/v1/me/api-key", &doc), 201);
    char header[256];
    snprintf(header, sizeof(header), "X-API-Key: %s", json_string_value(json_object_get(doc, "api_key")));
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "GET", "/api/v1/jobs", header, &doc), 200);
    char ids[4][40];
    assert_int_equal(list_ids(doc, ids, 4), 1);
    assert_string_equal(ids[0], bob_queued);
    json_decref(doc);
}

static void test_admin_routes(void **state)
{
    (void)state;
    json_t *doc = NULL;
    /* users are refused */
    assert_int_equal(as(&alice, HARNESS_HTTP2, "GET", "/api/v1/admin/jobs", &doc), 403);
    assert_string_equal(error_code(doc), "forbidden");
    json_decref(doc);
    /* every user's jobs, filtered by queue and state */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/admin/jobs?queue=short&state=queued&limit=100");
    assert_int_equal(as(&super, HARNESS_HTTP2, "GET", path, &doc), 200);
    json_t *items = json_object_get(doc, "items");
    int found_bob = 0;
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *job = json_array_get(items, i);
        assert_string_equal(json_string_value(json_object_get(job, "queue")), "short");
        assert_string_equal(json_string_value(json_object_get(job, "state")), "queued");
        found_bob += strcmp(json_string_value(json_object_get(job, "id")), bob_queued) == 0;
    }
    assert_int_equal(found_bob, 1);
    json_decref(doc);
    /* retry: users refused; a dead job goes back to its queue; a succeeded one is 409 */
    snprintf(path, sizeof(path), "/api/v1/admin/jobs/%s/retry", alice_dead);
    assert_int_equal(as(&alice, HARNESS_HTTP2, "POST", path, NULL), 403);
    assert_int_equal(as(&super, HARNESS_HTTP2, "POST", path, &doc), 202);
    json_t *job = json_object_get(doc, "job");
    assert_string_equal(json_string_value(json_object_get(job, "state")), "queued");
    assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 0);
    assert_true(json_is_null(json_object_get(job, "error")));
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/admin/jobs/%s/retry", alice_done);
    assert_int_equal(as(&super, HARNESS_HTTP1, "POST", path, &doc), 409);
    assert_string_equal(error_code(doc), "conflict");
    json_decref(doc);
    assert_int_equal(as(&super, HARNESS_HTTP2, "POST",
                        "/api/v1/admin/jobs/00000000-0000-0000-0000-000000000000/retry", NULL),
                     404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_jobs_newest_first),
        cmocka_unit_test(test_filters_and_paging),
        cmocka_unit_test(test_bad_list_parameters),
        cmocka_unit_test(test_one_job_and_other_users),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_admin_routes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
