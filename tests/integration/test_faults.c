/*
 * Dependencies going away while hydrant serves: PostgreSQL stopped gives /health 503 within
 * 2 s and no crash; started again, /health is 200 within 5 s without restarting hydrant.
 * The same for Redis. Requests that do not need the dependency keep being served.
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

static harness_server_t server;

static int start_server(void **state)
{
    (void)state;
    return harness_server_start(&server, NULL);
}

static int stop_server(void **state)
{
    (void)state;
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static int services(const char *action)
{
    return harness_system("%s/scripts/services.sh %s %s >/dev/null", harness_env("HYDRANT_SOURCE_DIR"),
                          action, harness_env("HYDRANT_TEST_SERVICES_DIR"));
}

/* GET /health over HTTP/2; returns the status and the named check's value. */
static long health(const char *check, char *value, size_t len)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/health", server.https_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "GET", url, NULL, NULL, 0);
    long status = res.status;
    json_error_t jerr;
    json_t *doc = json_loads(res.body, 0, &jerr);
    const char *v = json_string_value(json_object_get(json_object_get(doc, "checks"), check));
    snprintf(value, len, "%s", v != NULL ? v : "");
    if (status == 503) {
        char retry[32];
        assert_non_null(harness_header(&res, "retry-after", retry, sizeof(retry)));
        assert_string_equal(json_string_value(json_object_get(doc, "status")), "degraded");
    }
    json_decref(doc);
    harness_response_free(&res);
    return status;
}

/* Polls /health until it answers `want` with the check at `check_value`, bounded. Returns
 * the milliseconds it took, or -1. */
static long long wait_for_health(long want, const char *check, const char *check_value, int bound_ms)
{
    long long start = harness_now_ms();
    while (harness_now_ms() - start < bound_ms) {
        char value[32];
        if (health(check, value, sizeof(value)) == want && strcmp(value, check_value) == 0)
            return harness_now_ms() - start;
        usleep(50 * 1000);
    }
    return -1;
}

/* /health/ready agrees with /health: 200 "ready" alone, or 503 "degraded" with the checks.
 * Each loop thread reconnects on its own backoff and the request may reach another thread
 * than /health's: polled, bounded. */
static void assert_ready(long want, const char *check, const char *check_value)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/health/ready", server.http_base);
    harness_response_t res;
    for (long long start = harness_now_ms();; usleep(50 * 1000)) {
        harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
        if (res.status == want || harness_now_ms() - start > 5000)
            break;
        harness_response_free(&res);
    }
    assert_int_equal(res.status, want);
    json_error_t jerr;
    json_t *doc = json_loads(res.body, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        want == 200 ? "ready" : "degraded");
    if (want != 200)
        assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "checks"), check)),
                            check_value);
    json_decref(doc);
    harness_response_free(&res);
}

static void assert_live(void)
{
    assert_int_equal(harness_get_status(HARNESS_HTTP1, server.http_base, "/health/live"), 200);
}

static void test_postgres_outage(void **state)
{
    (void)state;
    assert_true(wait_for_health(200, "postgres", "ok", 5000) >= 0);
    assert_int_equal(services("pg-stop"), 0);
    long long down_ms = wait_for_health(503, "postgres", "down", 2000);
    fprintf(stderr, "postgres stopped: /health 503 after %lld ms\n", down_ms);
    assert_true(down_ms >= 0);
    assert_ready(503, "postgres", "down");
    assert_live();
    assert_true(harness_server_alive(&server));
    assert_int_equal(services("pg-start"), 0);
    long long up_ms = wait_for_health(200, "postgres", "ok", 5000);
    fprintf(stderr, "postgres started: /health 200 after %lld ms\n", up_ms);
    assert_true(up_ms >= 0);
    assert_ready(200, NULL, NULL);
}

static void test_redis_outage(void **state)
{
    (void)state;
    assert_true(wait_for_health(200, "redis", "ok", 5000) >= 0);
    assert_int_equal(services("redis-stop"), 0);
    long long down_ms = wait_for_health(503, "redis", "down", 2000);
    fprintf(stderr, "redis stopped: /health 503 after %lld ms\n", down_ms);
    assert_true(down_ms >= 0);
    assert_ready(503, "redis", "down");
    assert_live();
    assert_int_equal(services("redis-start"), 0);
    long long up_ms = wait_for_health(200, "redis", "ok", 5000);
    fprintf(stderr, "redis started: /health 200 after %lld ms\n", up_ms);
    assert_true(up_ms >= 0);
    assert_ready(200, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postgres_outage),
        cmocka_unit_test(test_redis_outage),
    };
    /* The server is stopped outside the group so that an unclean exit fails the run
     * (cmocka reports a failed group teardown without counting it). */
    int failed = cmocka_run_group_tests(tests, start_server, NULL);
    if (stop_server(NULL) != 0) {
        fprintf(stderr, "hydrant did not exit cleanly (status != 0) after SIGTERM\n");
        failed++;
    }
    return failed;
}
