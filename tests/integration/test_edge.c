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
#include <signal.h>
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
                                          "HYDRANT_PRINCIPAL_CACHE_ENTRIES=0", /* /me must query */
                                          "HYDRANT_ARGON2_MEMORY_KIB=1024",
                                          "HYDRANT_ARGON2_ITERATIONS=1",
                                          NULL};

/* A server with small body budgets: bodies up to 256 KiB + 64 KiB (uploads.max-size and the
 * multipart slack), 600,000 bytes in flight per connection, 900,000 per address, and a body
 * slower than 50 bytes a second over a second cut. */
static harness_server_t bodies;
static const char *const bodies_env[] = {"HYDRANT_THREADS=1",
                                         "HYDRANT_UPLOAD_MAX_SIZE=262144",
                                         "HYDRANT_MAX_BODY_BYTES_PER_CONNECTION=600000",
                                         "HYDRANT_MAX_BODY_BYTES_PER_ADDRESS=900000",
                                         "HYDRANT_BODY_TIMEOUT_MS=1000",
                                         "HYDRANT_BODY_MIN_RATE=50",
                                         "HYDRANT_SEND_TIMEOUT_MS=1000",
                                         "HYDRANT_REQUEST_TIMEOUT_MS=1000", /* TLS handshakes too */
                                         "HYDRANT_SEND_MIN_RATE=50",
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
    if (bodies.pid > 0 && harness_server_alive(&bodies))
        harness_server_stop(&bodies);
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static double metric(const char *sample)
{
    return harness_metric(&server, sample);
}

/* Pumps h until it has n response heads, the server closed it, or wait_ms passed. */
static void responses_within(h2raw_t *h, int n, int wait_ms)
{
    for (long long deadline = harness_now_ms() + wait_ms;
         h2raw_responses(h) < n && !h2raw_closed(h) && harness_now_ms() < deadline;)
        h2raw_pump(h, 50);
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
    double refused = harness_metric(&limited, "hydrant_http_connections_refused_total");
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
    assert_true(harness_metric(&limited, "hydrant_http_connections_refused_total") - refused >= 1);
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
/* Lines of the limited server's stderr that contain text. */
static int count_lines(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int n = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, text) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

static int error_lines_written, error_lines_expected;

/* Every 5xx writes an error line, up to 100 a second per loop; the others are only counted
 * (hydrant_error_log_dropped_total). 320 requests on one connection whose share of queries
 * is 4 give some 300 503s within a second or two: the lines written and the lines counted
 * add up to them, and the lines stay within the cap. The lines are counted once the server
 * stopped (its writer thread flushed them). */
static void assert_error_lines_are_capped(const char *token)
{
    const char *busy = "http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"503\"}";
    double refused = harness_metric(&limited, busy),
           dropped = harness_metric(&limited, "hydrant_error_log_dropped_total");
    h2raw_t *h = h2raw_connect(limited.tls_port);
    assert_non_null(h);
    long long start = harness_now_ms();
    uint32_t stream = 1;
    for (int batch = 1; batch <= 4; batch++) {
        for (int i = 0; i < 80; i++, stream += 2)
            h2raw_request(h, stream, "/api/v1/me", token, 0);
        assert_int_equal(h2raw_flush(h), 0);
        responses_within(h, batch * 80, 5000);
    }
    long long seconds = (harness_now_ms() - start) / 1000 + 2; /* the seconds the burst touched */
    assert_int_equal(h2raw_responses(h), 320);
    h2raw_close(h);
    double refused_all = harness_metric(&limited, busy),
           dropped_all = harness_metric(&limited, "hydrant_error_log_dropped_total");
    int refusals = (int)(refused_all - refused), counted = (int)(dropped_all - dropped);
    assert_true(counted > 0);
    assert_true(refusals - counted <= 100 * seconds);
    /* this server's only error lines are /me's 503s: all of them, less those counted */
    error_lines_expected = (int)(refused_all - dropped_all);
}

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
    double refused = harness_metric(&limited, busy);
    h2raw_t *h = h2raw_connect(limited.tls_port);
    assert_non_null(h);
    h2raw_pump(h, 200);
    for (uint32_t i = 0, stream = 1; i < 40; i++, stream += 2)
        h2raw_request(h, stream, "/api/v1/me", token, 0);
    assert_int_equal(h2raw_flush(h), 0);
    responses_within(h, 40, 5000);
    assert_int_equal(h2raw_responses(h), 40); /* every one answered, none left hanging */
    h2raw_close(h);
    assert_true(harness_metric(&limited, busy) - refused >= 1);
    harness_response_t res;
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/me", limited.https_base);
    const char *headers[] = {a.auth, NULL};
    harness_request(&res, HARNESS_HTTP2, "GET", url, headers, NULL, 0);
    assert_int_equal(res.status, 200);
    harness_response_free(&res);
    assert_error_lines_are_capped(token);
    assert_int_equal(harness_server_stop(&limited), 0);
    error_lines_written = count_lines(limited.stderr_path, "/api/v1/me: 503");
    assert_int_equal(error_lines_written, error_lines_expected);
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
        responses_within(h, sent + 10, 5000);
    }
    assert_false(h2raw_closed(h));
    assert_true(h2raw_responses(h) >= SERVED);
    h2raw_close(h);
    assert_true(metric("http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"200\"}") - ok >=
                SERVED);
    assert_true(metric("hydrant_http_connections_throttled_total") == throttled);
}

/* Pumps h until the server closes it or wait_ms pass; whether it closed. */
static int closed_within(h2raw_t *h, int wait_ms)
{
    for (long long deadline = harness_now_ms() + wait_ms; !h2raw_closed(h) && harness_now_ms() < deadline;)
        h2raw_pump(h, 100);
    return h2raw_closed(h);
}

static void bodies_server(void)
{
    if (bodies.pid <= 0)
        assert_int_equal(harness_server_start(&bodies, bodies_env), 0);
}

/* libh2o 2.2 keeps an HTTP/2 stream whose body stops coming, or trickles in, for as long as
 * the connection lives; hydrant cuts the connection once the body came slower than
 * limits.body-min-rate over limits.body-timeout-ms. A body that comes slowly but steadily
 * enough is served. */
static void test_stalled_body_is_cut(void **state)
{
    (void)state;
    bodies_server();
    double stalled = harness_metric(&bodies, "hydrant_http_bodies_cut_total{reason=\"stalled\"}");
    h2raw_t *slow = h2raw_connect(bodies.tls_port);
    h2raw_t *stuck = h2raw_connect(bodies.tls_port);
    h2raw_t *trickle = h2raw_connect(bodies.tls_port);
    assert_non_null(slow);
    assert_non_null(stuck);
    assert_non_null(trickle);
    assert_int_equal(h2raw_post_head(trickle, 1, "/api/v1/auth/login") || h2raw_flush(trickle), 0);
    assert_int_equal(h2raw_post_head(stuck, 1, "/api/v1/auth/login") || h2raw_post_data(stuck, 1, 1000, 0) ||
                         h2raw_flush(stuck),
                     0);
    assert_int_equal(h2raw_post_head(slow, 1, "/api/v1/auth/login"), 0);
    for (int i = 0; i < 10; i++) { /* 100 bytes every 300 ms: three seconds in all */
        assert_int_equal(h2raw_post_data(slow, 1, 100, i == 9) || h2raw_flush(slow), 0);
        h2raw_post_data(trickle, 1, 1, 0); /* and one byte */
        h2raw_flush(trickle);
        h2raw_pump(slow, 300);
    }
    assert_true(closed_within(stuck, 15000));
    assert_true(closed_within(trickle, 15000));
    responses_within(slow, 1, 5000);
    assert_false(h2raw_closed(slow));
    assert_int_equal(h2raw_responses(slow), 1);
    h2raw_close(slow);
    h2raw_close(stuck);
    h2raw_close(trickle);
    assert_true(harness_metric(&bodies, "hydrant_http_bodies_cut_total{reason=\"stalled\"}") == stalled + 2);
}

/* Bodies parked unfinished count against their connection's and their address's budgets;
 * passing one cuts the connection, and what was counted is given back. */
static void test_bodies_in_flight_are_bounded(void **state)
{
    (void)state;
    bodies_server();
    double cut = harness_metric(&bodies, "hydrant_http_bodies_cut_total{reason=\"budget\"}");
    /* one connection: 2 x 300,000 bytes is its whole budget, a third body passes it */
    h2raw_t *greedy = h2raw_connect(bodies.tls_port);
    assert_non_null(greedy);
    for (uint32_t stream = 1; stream <= 3; stream += 2)
        assert_int_equal(h2raw_post_head(greedy, stream, "/api/v1/auth/login") ||
                             h2raw_post_data(greedy, stream, 300000, 0) || h2raw_flush(greedy),
                         0);
    assert_false(closed_within(greedy, 500));
    assert_int_equal(
        h2raw_post_head(greedy, 5, "/api/v1/auth/login") || h2raw_post_data(greedy, 5, 100000, 0), 0);
    h2raw_flush(greedy);
    assert_true(closed_within(greedy, 10000));
    h2raw_close(greedy);
    assert_true(harness_metric(&bodies, "hydrant_http_bodies_cut_total{reason=\"budget\"}") == cut + 1);

    /* two connections of one address, each within its own budget, pass the address's */
    h2raw_t *a = h2raw_connect(bodies.tls_port), *b = h2raw_connect(bodies.tls_port);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(h2raw_post_head(a, 1, "/api/v1/auth/login") || h2raw_post_data(a, 1, 300000, 0) ||
                         h2raw_post_head(a, 3, "/api/v1/auth/login") || h2raw_post_data(a, 3, 200000, 0) ||
                         h2raw_flush(a),
                     0);
    assert_false(closed_within(a, 500));
    assert_int_equal(h2raw_post_head(b, 1, "/api/v1/auth/login") || h2raw_post_data(b, 1, 300000, 0) ||
                         h2raw_post_head(b, 3, "/api/v1/auth/login") || h2raw_post_data(b, 3, 200000, 0),
                     0);
    h2raw_flush(b);
    assert_true(closed_within(b, 10000));
    assert_false(h2raw_closed(a));
    assert_true(harness_metric(&bodies, "hydrant_http_bodies_cut_total{reason=\"budget\"}") == cut + 2);

    /* the survivor finishes one body: it is answered, and nothing stays counted at the end */
    assert_int_equal(h2raw_post_data(a, 3, 1000, 1) || h2raw_flush(a), 0);
    responses_within(a, 1, 5000);
    assert_int_equal(h2raw_responses(a), 1);
    h2raw_close(a);
    h2raw_close(b);
    double left = -1;
    for (long long deadline = harness_now_ms() + 5000; left != 0 && harness_now_ms() < deadline;
         usleep(50000))
        left = harness_metric(&bodies, "hydrant_http_request_body_bytes");
    assert_true(left == 0);
}

/* A client that lets its answers wait forever (a zero flow-control window) kept its streams
 * and its connection in libh2o 2.2; hydrant cuts it once its answers were not read at
 * limits.send-min-rate over limits.send-timeout-ms. One that reads is served as ever. */
static void test_unread_answers_are_cut(void **state)
{
    (void)state;
    bodies_server();
    double unread = harness_metric(&bodies, "hydrant_http_answers_unread_total");
    h2raw_t *zero = h2raw_connect_window(bodies.tls_port, 0);
    h2raw_t *reader = h2raw_connect_window(bodies.tls_port, 1u << 30);
    assert_non_null(zero);
    assert_non_null(reader);
    for (uint32_t stream = 1; stream <= 99; stream += 2)
        h2raw_request(zero, stream, "/openapi.json", NULL, 0);
    assert_int_equal(h2raw_flush(zero), 0);
    assert_true(closed_within(zero, 15000));
    assert_true(harness_metric(&bodies, "hydrant_http_answers_unread_total") == unread + 1);
    for (uint32_t stream = 1; stream <= 9; stream += 2)
        h2raw_request(reader, stream, "/openapi.json", NULL, 0);
    assert_int_equal(h2raw_flush(reader), 0);
    responses_within(reader, 5, 5000);
    assert_false(closed_within(reader, 2500));
    assert_int_equal(h2raw_responses(reader), 5);
    h2raw_close(zero);
    h2raw_close(reader);
    assert_true(harness_metric(&bodies, "hydrant_http_answers_unread_total") == unread + 1);
}

/* hydrant completes TLS connections itself (so as to read the first frames): a handshake
 * that never ends is closed at limits.request-timeout-ms, as libh2o's own accept would, and
 * the connection is let go of. */
static void test_silent_handshake_is_closed(void **state)
{
    (void)state;
    bodies_server();
    double open = harness_metric(&bodies, "http_connections_open");
    int fd = connect_from("127.0.0.1", bodies.tls_port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x16\x03\x01", 3), 3); /* the start of a ClientHello, then nothing */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char byte;
    assert_int_equal(poll(&p, 1, 15000), 1);
    assert_true(read(fd, &byte, 1) <= 0);
    close(fd);
    double now_open = -1;
    for (long long deadline = harness_now_ms() + 5000; now_open != open && harness_now_ms() < deadline;
         usleep(50000))
        now_open = harness_metric(&bodies, "http_connections_open");
    assert_true(now_open == open);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* writes to connections the server cut */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_few_cancels_are_served_as_ever),
        cmocka_unit_test(test_rapid_reset_is_throttled_then_cut),
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test(test_queries_per_connection),
        cmocka_unit_test(test_stalled_body_is_cut),
        cmocka_unit_test(test_bodies_in_flight_are_bounded),
        cmocka_unit_test(test_unread_answers_are_cut),
        cmocka_unit_test(test_silent_handshake_is_closed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
