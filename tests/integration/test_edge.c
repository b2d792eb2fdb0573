/*
 * hydrant at a hostile HTTP/2 edge (issue 12), driven by a raw frame client (h2raw.c): a
 * connection that resets every stream it opens (Rapid Reset, CVE-2023-44487) is throttled,
 * then cut, and counted, and the database work of its requests is dropped before it is sent;
 * a client that cancels a few requests among many is served as ever.
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

#include "h2raw.h"
#include "harness.h"

#define PASSWORD "edge-password-1"

static harness_server_t server;
static PGconn *db;
static harness_account_t account;
static const char *bearer; /* "Bearer <token>" */

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024", "HYDRANT_ARGON2_ITERATIONS=1",
                                         NULL};

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start(&server, server_env) != 0)
        return -1;
    db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    if (PQstatus(db) != CONNECTION_OK ||
        harness_account_create(&account, &server, db, server_env, "edge", "user", PASSWORD) != 0)
        return -1;
    bearer = account.auth + strlen("Authorization: ");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

/* The value of one sample of /metrics ("name" or "name{labels}"), 0 when absent. */
static double metric(const char *sample)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", server.http_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
    double value = 0;
    size_t len = strlen(sample);
    for (const char *p = res.body; p != NULL && *p != '\0';
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, sample, len) == 0 && p[len] == ' ') {
            value = atof(p + len + 1);
            break;
        }
    }
    harness_response_free(&res);
    return value;
}

static void test_rapid_reset_is_throttled_then_cut(void **state)
{
    (void)state;
    double abandoned = metric("hydrant_http_requests_abandoned_total");
    double throttled = metric("hydrant_http_connections_throttled_total");
    double cut = metric("hydrant_http_connections_cut_total");
    double dropped = metric("hydrant_http_work_dropped_total{kind=\"database\"}");
    h2raw_t *h = h2raw_connect(server.tls_port);
    assert_non_null(h);
    h2raw_pump(h, 200);
    uint32_t stream = 1;
    /* Up to 2,000 requests, each reset in the same write as its HEADERS; far fewer are
     * needed to run through a budget of 100 twice. */
    for (int batch = 0; batch < 40 && !h2raw_closed(h); batch++) {
        for (int i = 0; i < 50; i++, stream += 2)
            h2raw_request(h, stream, "/api/v1/me", bearer, 1);
        if (h2raw_flush(h) != 0)
            break;
        h2raw_pump(h, 20);
    }
    for (long long deadline = harness_now_ms() + 5000; !h2raw_closed(h) && harness_now_ms() < deadline;)
        h2raw_pump(h, 100);
    assert_true(h2raw_closed(h));
    h2raw_close(h);
    assert_true(metric("hydrant_http_requests_abandoned_total") - abandoned >= 100);
    assert_true(metric("hydrant_http_connections_throttled_total") - throttled >= 1);
    assert_true(metric("hydrant_http_connections_cut_total") - cut >= 1);
    /* A reset that arrives in the same read as its request leaves the request's query unsent
     * (the batches of a loop iteration leave at its end). */
    assert_true(metric("hydrant_http_work_dropped_total{kind=\"database\"}") - dropped >= 50);
    /* everybody else is served */
    harness_response_t res;
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/me", server.https_base);
    const char *headers[] = {account.auth, NULL};
    harness_request(&res, HARNESS_HTTP2, "GET", url, headers, NULL, 0);
    assert_int_equal(res.status, 200);
    harness_response_free(&res);
}

static void test_a_few_cancels_are_served_as_ever(void **state)
{
    (void)state;
    double throttled = metric("hydrant_http_connections_throttled_total");
    double ok = metric("http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"200\"}");
    h2raw_t *h = h2raw_connect(server.tls_port);
    assert_non_null(h);
    h2raw_pump(h, 200);
    uint32_t stream = 1;
    enum { CANCELLED = 30, SERVED = 120 };
    for (int i = 0; i < CANCELLED; i++, stream += 2)
        h2raw_request(h, stream, "/api/v1/me", bearer, 1);
    assert_int_equal(h2raw_flush(h), 0);
    /* then requests it waits for, a few at a time as a browser would */
    for (int sent = 0; sent < SERVED; sent += 10) {
        for (int i = 0; i < 10; i++, stream += 2)
            h2raw_request(h, stream, "/api/v1/me", bearer, 0);
        assert_int_equal(h2raw_flush(h), 0);
        for (long long deadline = harness_now_ms() + 5000;
             h2raw_responses(h) < sent + 10 && !h2raw_closed(h) && harness_now_ms() < deadline;)
            h2raw_pump(h, 50);
    }
    assert_false(h2raw_closed(h));
    assert_true(h2raw_responses(h) >= SERVED);
    h2raw_close(h);
    assert_true(metric("http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"200\"}") - ok >=
                SERVED);
    assert_true(metric("hydrant_http_connections_throttled_total") == throttled);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_few_cancels_are_served_as_ever),
        cmocka_unit_test(test_rapid_reset_is_throttled_then_cut),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
