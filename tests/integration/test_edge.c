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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
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

/* The principal cache off: these tests spend database work (/api/v1/me's token check), which a
 * warm cache would answer at once, before the reset is read. */
static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024", "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_PRINCIPAL_CACHE_ENTRIES=0", NULL};

/* A server of its own with small per-address and per-connection limits, one loop so that the
 * shares are the limits themselves. */
static harness_server_t limited;
static const char *const limited_env[] = {"HYDRANT_THREADS=1",
                                          "HYDRANT_MAX_CONNECTIONS_PER_ADDRESS=3",
                                          "HYDRANT_NEW_CONNECTIONS_PER_ADDRESS=1000",
                                          "HYDRANT_MAX_QUERIES_PER_CONNECTION=4",
                                          "HYDRANT_ARGON2_MEMORY_KIB=1024",
                                          "HYDRANT_ARGON2_ITERATIONS=1",
                                          NULL};

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&server, server_env, &db) != 0 ||
        harness_account_create(&account, &server, db, server_env, "edge", "user", PASSWORD) != 0)
        return -1;
    bearer = account.auth + strlen("Authorization: ");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (limited.pid > 0 && harness_server_alive(&limited))
        harness_server_stop(&limited);
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

/* The value of one sample of /metrics ("name" or "name{labels}") of s, 0 when absent. */
static double metric_of(const harness_server_t *s, const char *sample)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", s->http_base);
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

static double metric(const char *sample)
{
    return metric_of(&server, sample);
}

/* A plain TCP connection to port from a loopback address of our choosing (127.0.0.N), or -1. */
static int connect_from(const char *source, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in from = {.sin_family = AF_INET},
                       to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, source, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof(from)) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Is the connection still open after a request on it (answered), or closed by the server at
 * once without an answer? 1 open and answered, 0 closed. */
static int answers(int fd)
{
    const char *req = "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        return 0;
    char buf[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    return n > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

static void test_connections_per_address(void **state)
{
    (void)state;
    assert_int_equal(harness_server_start(&limited, limited_env), 0);
    double refused = metric_of(&limited, "hydrant_http_connections_refused_total");
    int mine[4];
    for (int i = 0; i < 3; i++) {
        mine[i] = connect_from("127.0.0.3", limited.http_port);
        assert_true(mine[i] >= 0);
        assert_true(answers(mine[i]));
    }
    mine[3] = connect_from("127.0.0.3", limited.http_port); /* the fourth: closed at once */
    assert_true(mine[3] >= 0);
    assert_false(answers(mine[3]));
    int other = connect_from("127.0.0.4", limited.http_port); /* another address is served */
    assert_true(other >= 0);
    assert_true(answers(other));
    assert_true(metric_of(&limited, "hydrant_http_connections_refused_total") - refused >= 1);
    for (int i = 0; i < 4; i++)
        close(mine[i]);
    close(other);
    /* once they are closed, the address may connect again */
    int again = -1;
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline; usleep(50 * 1000)) {
        again = connect_from("127.0.0.3", limited.http_port);
        if (again >= 0 && answers(again))
            break;
        if (again >= 0)
            close(again);
        again = -1;
    }
    assert_true(again >= 0);
    close(again);
}

/* One connection may hold at most 4 queries: of 40 requests sent at once on it, those beyond
 * its share are answered 503 at once; another connection is served meanwhile. */
static void test_queries_per_connection(void **state)
{
    (void)state;
    harness_account_t a;
    PGconn *conn = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    assert_int_equal(harness_account_create(&a, &limited, conn, limited_env, "edge-share", "user", PASSWORD),
                     0);
    PQfinish(conn);
    const char *token = a.auth + strlen("Authorization: ");
    const char *busy = "http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"503\"}";
    double refused = metric_of(&limited, busy);
    h2raw_t *h = h2raw_connect(limited.tls_port);
    assert_non_null(h);
    h2raw_pump(h, 200);
    for (uint32_t i = 0, stream = 1; i < 40; i++, stream += 2)
        h2raw_request(h, stream, "/api/v1/me", token, 0);
    assert_int_equal(h2raw_flush(h), 0);
    for (long long deadline = harness_now_ms() + 5000;
         h2raw_responses(h) < 40 && harness_now_ms() < deadline;)
        h2raw_pump(h, 50);
    assert_int_equal(h2raw_responses(h), 40); /* every one answered, none left hanging */
    h2raw_close(h);
    assert_true(metric_of(&limited, busy) - refused >= 1);
    harness_response_t res;
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/me", limited.https_base);
    const char *headers[] = {a.auth, NULL};
    harness_request(&res, HARNESS_HTTP2, "GET", url, headers, NULL, 0);
    assert_int_equal(res.status, 200);
    harness_response_free(&res);
    assert_int_equal(harness_server_stop(&limited), 0);
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
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test(test_queries_per_connection),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
