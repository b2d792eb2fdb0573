#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static void noop(http_request_t *r)
{
    (void)r;
}

static void test_render_sums_shards(void **state)
{
    (void)state;
    http_router_t *router = http_router_new();
    char err[128];
    http_route_t route = {"GET", "/files/{id}", noop, 0, 0};
    assert_int_equal(http_router_add(router, &route, err, sizeof(err)), 0);
    http_metrics_shard_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    http_metrics_observe(a, 0, 200, 300);      /* 0.3 ms: first bucket */
    http_metrics_observe(b, 0, 200, 3000);     /* 3 ms: the 0.005 bucket */
    http_metrics_observe(b, 0, 404, 20000000); /* 20 s: only +Inf */
    http_metrics_observe(a, HTTP_METRICS_ROUTE_UNMATCHED, 404, 10);
    http_metrics_observe(a, 0, 299, 10); /* a status without its own slot */
    atomic_fetch_add(&a->connections_open, 2);
    atomic_fetch_add(&b->connections_total, 5);
    atomic_fetch_add(&b->connections_open, 3);
    atomic_fetch_add(&a->connections_handed_over, 4);
    atomic_fetch_add(&b->connections_handed_over, 1);
    http_metrics_shard_t *shards[] = {a, b};
    util_buf_t out = {0};
    http_metrics_render(&out, router, shards, 2);
    assert_non_null(out.data);
    assert_non_null(strstr(out.data, "# TYPE http_requests_total counter\n"));
    assert_non_null(
        strstr(out.data, "http_requests_total{method=\"GET\",route=\"/files/{id}\",status=\"200\"} 2\n"));
    assert_non_null(
        strstr(out.data, "http_requests_total{method=\"GET\",route=\"/files/{id}\",status=\"404\"} 1\n"));
    assert_non_null(
        strstr(out.data, "http_requests_total{method=\"GET\",route=\"/files/{id}\",status=\"other\"} 1\n"));
    assert_non_null(
        strstr(out.data, "http_requests_total{method=\"ANY\",route=\"unmatched\",status=\"404\"} 1\n"));
    assert_non_null(
        strstr(out.data, "http_request_duration_seconds_bucket{route=\"/files/{id}\",le=\"0.0005\"} 2\n"));
    assert_non_null(
        strstr(out.data, "http_request_duration_seconds_bucket{route=\"/files/{id}\",le=\"0.001\"} 2\n"));
    assert_non_null(
        strstr(out.data, "http_request_duration_seconds_bucket{route=\"/files/{id}\",le=\"0.005\"} 3\n"));
    assert_non_null(
        strstr(out.data, "http_request_duration_seconds_bucket{route=\"/files/{id}\",le=\"10\"} 3\n"));
    assert_non_null(
        strstr(out.data, "http_request_duration_seconds_bucket{route=\"/files/{id}\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(out.data, "http_request_duration_seconds_count{route=\"/files/{id}\"} 4\n"));
    assert_non_null(strstr(out.data, "http_request_duration_seconds_sum{route=\"/files/{id}\"} 20.003310\n"));
    assert_non_null(strstr(out.data, "http_connections_open 5\n"));
    /* Per loop, by the shard's index, and the hand-offs summed. */
    assert_non_null(strstr(out.data, "# TYPE hydrant_loop_connections_open gauge\n"));
    assert_non_null(strstr(out.data, "hydrant_loop_connections_open{loop=\"0\"} 2\n"));
    assert_non_null(strstr(out.data, "hydrant_loop_connections_open{loop=\"1\"} 3\n"));
    assert_non_null(strstr(out.data, "# TYPE hydrant_connections_handed_over_total counter\n"));
    assert_non_null(strstr(out.data, "hydrant_connections_handed_over_total 5\n"));
    assert_non_null(strstr(out.data, "http_connections_total 5\n"));
    util_buf_free(&out);
    free(a);
    free(b);
    http_router_free(router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_sums_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
