/*
 * Requests that outlive their client, and requests in flight when SIGTERM arrives. The
 * database is made slow on purpose by suspending hydrant's PostgreSQL backends (SIGSTOP),
 * so that a request is still waiting for its query when the client leaves or the server
 * is told to stop. Under the ASan build a use-after-free here would abort hydrant.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static harness_server_t server;
static char backends[4096]; /* pids of hydrant's PostgreSQL backends, space-separated */

/* SIGSTOP or SIGCONT every PostgreSQL backend that serves hydrant. */
static void signal_backends(const char *sig)
{
    if (strcmp(sig, "STOP") == 0) {
        PGconn *admin = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
        assert_int_equal(PQstatus(admin), CONNECTION_OK);
        PGresult *res = PQexec(admin, "SELECT pid FROM pg_stat_activity WHERE application_name = 'hydrant'");
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        assert_true(PQntuples(res) > 0);
        backends[0] = '\0';
        for (int i = 0; i < PQntuples(res); i++) {
            strcat(backends, " ");
            strcat(backends, PQgetvalue(res, i, 0));
        }
        PQclear(res);
        PQfinish(admin);
    }
    /* A backend of an earlier server may exit meanwhile: only ours matter, so a failed
     * kill of a vanished pid is not an error. */
    harness_system("kill -%s%s 2>/dev/null", sig, backends);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static int read_some(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    for (long long deadline = harness_now_ms() + timeout_ms; harness_now_ms() < deadline && got < len - 1;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return (int)got;
}

static void assert_live(void)
{
    assert_int_equal(harness_get_status(HARNESS_HTTP2, server.https_base, "/health/live"), 200);
}

static void test_clients_that_leave_mid_query(void **state)
{
    (void)state;
    assert_int_equal(harness_server_start(&server, NULL), 0);
    signal_backends("STOP");
    /* HTTP/1.1: ask, then reset the connection before the answer. */
    for (int i = 0; i < 5; i++) {
        int fd = raw_connect(server.http_port);
        send_text(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
    /* HTTP/2: the client gives up after 200 ms and closes its connection. */
    char url[128];
    snprintf(url, sizeof(url), "%s/health", server.https_base);
    harness_set_timeout_ms(200);
    for (int i = 0; i < 3; i++) {
        harness_response_t res;
        harness_request(&res, HARNESS_HTTP2, "GET", url, NULL, NULL, 0);
        assert_int_equal(res.status, 0); /* timed out: nothing came back */
        harness_response_free(&res);
    }
    harness_set_timeout_ms(10000);
    usleep(300 * 1000);
    signal_backends("CONT");
    usleep(500 * 1000); /* the late replies arrive for requests that are gone */
    assert_true(harness_server_alive(&server));
    assert_live();
    assert_int_equal(harness_server_stop(&server), 0);
}

static void test_sigterm_finishes_in_flight_requests(void **state)
{
    (void)state;
    assert_int_equal(harness_server_start(&server, NULL), 0);
    signal_backends("STOP");
    int fd = raw_connect(server.http_port);
    send_text(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(200 * 1000);
    kill(server.pid, SIGTERM);
    usleep(300 * 1000);
    /* Draining: no new connections are accepted... */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server.http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_not_equal(connect(probe, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(probe);
    /* ...but the request in flight gets its answer once the database answers. */
    signal_backends("CONT");
    char buf[4096];
    read_some(fd, buf, sizeof(buf), 5000);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "\"postgres\":\"ok\""));
    close(fd);
    assert_int_equal(harness_server_wait(&server), 0);
}

/* Status and body of GET path on a new HTTP/1.1 connection. */
static long get_body(const char *path, char *body, size_t len)
{
    char url[160];
    snprintf(url, sizeof(url), "%s%s", server.http_base, path);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
    snprintf(body, len, "%s", res.body != NULL ? res.body : "");
    long status = res.status;
    harness_response_free(&res);
    return status;
}

/* SIGTERM with limits.drain-delay-ms: /health/ready turns 503 "draining" at once while every
 * request is still served (new connections and kept-alive ones); then the drain closes the
 * idle keep-alive connection itself. Timeouts are set far beyond the harness's 30 s wait,
 * so a keep-alive left open would keep the process from exiting in time. */
static void test_sigterm_ready_then_drain(void **state)
{
    (void)state;
    const char *const env[] = {"HYDRANT_DRAIN_DELAY_MS=1500", "HYDRANT_SHUTDOWN_TIMEOUT_MS=120000",
                               "HYDRANT_REQUEST_TIMEOUT_MS=120000", "HYDRANT_IDLE_TIMEOUT_MS=120000", NULL};
    assert_int_equal(harness_server_start(&server, env), 0);
    char body[256], buf[4096];
    assert_int_equal(get_body("/health/ready", body, sizeof(body)), 200);
    assert_string_equal(body, "{\"status\":\"ready\"}");
    int idle = raw_connect(server.http_port);
    send_text(idle, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(read_some(idle, buf, sizeof(buf), 300) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));

    kill(server.pid, SIGTERM);
    usleep(200 * 1000);
    assert_int_equal(get_body("/health/ready", body, sizeof(body)), 503);
    assert_string_equal(body, "{\"status\":\"draining\"}");
    assert_int_equal(get_body("/health/live", body, sizeof(body)), 200);
    send_text(idle, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(read_some(idle, buf, sizeof(buf), 300) > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200"));

    /* After the delay the server closes the idle connection: the read ends with EOF. */
    char rest[64];
    long long start = harness_now_ms();
    int got = -1;
    while (got != 0 && harness_now_ms() - start < 20000) {
        struct pollfd p = {.fd = idle, .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            got = (int)read(idle, rest, sizeof(rest));
    }
    assert_int_equal(got, 0);
    close(idle);
    assert_int_equal(harness_server_wait(&server), 0);
}

/* X-Forwarded-For is believed from a trusted proxy only; the access log shows the client. */
static void test_forwarded_for_from_trusted_proxy(void **state)
{
    (void)state;
    const char *const env[] = {"HYDRANT_TRUSTED_PROXIES=127.0.0.1", NULL};
    assert_int_equal(harness_server_start(&server, env), 0);
    char url[128];
    snprintf(url, sizeof(url), "%s/health/live", server.http_base);
    const char *const headers[] = {"X-Forwarded-For: 198.51.100.7, 127.0.0.1", "X-Request-Id: xff-probe",
                                   NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, headers, NULL, 0);
    assert_int_equal(res.status, 200);
    harness_response_free(&res);
    assert_int_equal(harness_server_stop(&server), 0); /* flushes the access log */
    assert_int_equal(harness_system("grep -q '\"request_id\":\"xff-probe\".*\"client\":\"198.51.100.7\"' %s",
                                    server.log_path),
                     0);
}

/* TLS session resumption: a second handshake with the first session's ticket is resumed. */
static void test_tls_session_resumption(void **state)
{
    (void)state;
    assert_int_equal(harness_server_start(&server, NULL), 0);
    char session[256];
    snprintf(session, sizeof(session), "%s/tls-session-%d.pem", harness_env("HYDRANT_TEST_SERVICES_DIR"),
             getpid());
    /* stdin stays open a moment so that the client reads the post-handshake tickets. */
    const char *common =
        "(sleep 0.3) | openssl s_client -connect 127.0.0.1:%d -alpn h2 -%s %s %s 2>/dev/null";
    const char *versions[] = {"tls1_2", "tls1_3"};
    for (int v = 0; v < 2; v++) {
        char cmd[512];
        unlink(session);
        snprintf(cmd, sizeof(cmd), common, server.tls_port, versions[v], "-sess_out", session);
        assert_int_equal(harness_system("%s | grep -q 'ALPN protocol: h2'", cmd), 0);
        snprintf(cmd, sizeof(cmd), common, server.tls_port, versions[v], "-sess_in", session);
        assert_int_equal(harness_system("%s | grep -q '^Reused'", cmd), 0);
    }
    /* TLS 1.1 is refused. */
    assert_int_not_equal(
        harness_system(
            "openssl s_client -connect 127.0.0.1:%d -tls1_1 </dev/null 2>/dev/null | grep -q '^New, TLS'",
            server.tls_port),
        0);
    unlink(session);
    assert_int_equal(harness_server_stop(&server), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_that_leave_mid_query),
        cmocka_unit_test(test_sigterm_finishes_in_flight_requests),
        cmocka_unit_test(test_sigterm_ready_then_drain),
        cmocka_unit_test(test_forwarded_for_from_trusted_proxy),
        cmocka_unit_test(test_tls_session_resumption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
