/*
 * The real server against real PostgreSQL and Redis, driven over HTTP/2 (TLS) and HTTP/1.1
 * (plain and TLS): operations routes, the error envelope, request ids, body limits,
 * hostile clients, metrics, the access log and a clean shutdown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static harness_server_t server;

/* HSTS is off by default in development (tls.hsts-max-age): on here, to see where it goes. */
static const char *const test_env[] = {"HYDRANT_TEST_ROUTES=1", "HYDRANT_TLS_HSTS_MAX_AGE=600", NULL};

static int start_server(void **state)
{
    (void)state;
    return harness_server_start(&server, test_env);
}

static int stop_server(void **state)
{
    (void)state;
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static void url_of(char *buf, size_t len, int protocol, const char *path)
{
    snprintf(buf, len, "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base, path);
}

static json_t *request_json(int protocol, const char *method, const char *path, const char *const *headers,
                            const char *body, long expect_status, harness_response_t *out)
{
    char url[256];
    url_of(url, sizeof(url), protocol, path);
    harness_response_t res;
    harness_request(&res, protocol, method, url, headers, body, body != NULL ? strlen(body) : 0);
    if (res.status != expect_status)
        fprintf(stderr, "%s %s: status %ld, body %s\n", method, path, res.status, res.body);
    assert_int_equal(res.status, expect_status);
    assert_int_equal(res.version, protocol == HARNESS_HTTP2 ? 2 : 11);
    json_error_t jerr;
    json_t *doc = json_loads(res.body, 0, &jerr);
    if (out != NULL)
        *out = res;
    else
        harness_response_free(&res);
    return doc;
}

/* Asserts the contract's envelope and returns nothing; code is the expected error code. */
static void assert_error(json_t *doc, const char *code)
{
    assert_non_null(doc);
    json_t *error = json_object_get(doc, "error");
    assert_true(json_is_object(error));
    assert_string_equal(json_string_value(json_object_get(error, "code")), code);
    assert_true(json_is_string(json_object_get(error, "message")));
    json_decref(doc);
}

static void test_health_both_protocols(void **state)
{
    (void)state;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        json_t *doc = request_json(protocol, "GET", "/health", NULL, NULL, 200, NULL);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
        json_t *checks = json_object_get(doc, "checks");
        assert_string_equal(json_string_value(json_object_get(checks, "postgres")), "ok");
        assert_string_equal(json_string_value(json_object_get(checks, "redis")), "ok");
        json_decref(doc);
    }
}

static void test_http1_over_tls(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof(url), "%s/health/live", server.https_base);
    harness_response_t res;
    assert_int_equal(harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.version, 11);
    assert_string_equal(res.body, "{\"status\":\"ok\"}");
    harness_response_free(&res);
}

static size_t discard_body(char *data, size_t size, size_t n, void *user)
{
    (void)data;
    (void)user;
    return size * n;
}

/* Every answer over HTTP/1.1 has a length, so a keep-alive connection (a load balancer's)
 * survives errors and 201s: one connection serves a 404, a 401, a 200 and another 404. */
static void test_http1_keep_alive_across_statuses(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        long status;
    } steps[] = {{"/no/such/route", 404}, {"/api/v1/me", 401}, {"/health/live", 200}, {"/nope", 404}};
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        char url[256];
        url_of(url, sizeof(url), HARNESS_HTTP1, steps[i].path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        assert_int_equal(curl_easy_perform(curl), CURLE_OK);
        long status = 0, connects = -1;
        curl_off_t length = -1;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
        curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        assert_int_equal(status, steps[i].status);
        assert_true(length > 0);
        assert_int_equal(connects, i == 0 ? 1 : 0); /* the first request's connection, reused */
    }
    curl_easy_cleanup(curl);
}

static size_t keep_header(char *data, size_t size, size_t n, void *file)
{
    return fwrite(data, size, n, file) * size;
}

/* How many times the header name occurs in a response's header block. */
static int header_count(const harness_response_t *res, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *line = res->headers; line != NULL && *line != '\0'; line = strchr(line + 1, '\n'))
        n += strncasecmp(line + (*line == '\n'), name, len) == 0 && line[(*line == '\n') + len] == ':';
    return n;
}

/* Every answer, success or error, over each protocol and listener: nothing sniffed, framed,
 * referred, run or stored, each header once; HSTS over TLS only, also for HTTP/1.1 and
 * cleartext HTTP/2 (prior knowledge) on the plain listener gets none. */
static void test_security_headers(void **state)
{
    (void)state;
    static const struct {
        int protocol;
        int tls;
        const char *path;
        long status;
    } cases[] = {
        {HARNESS_HTTP2, 1, "/health/live", 200}, {HARNESS_HTTP2, 1, "/no/such/route", 404},
        {HARNESS_HTTP1, 1, "/api/v1/me", 401},   {HARNESS_HTTP1, 0, "/health/live", 200},
        {HARNESS_HTTP1, 0, "/metrics", 200},     {HARNESS_HTTP1, 0, "/api/v1/me", 401},
    };
    static const char *const expected[][2] = {
        {"x-content-type-options", "nosniff"},
        {"content-security-policy", "default-src 'none'; frame-ancestors 'none'"},
        {"x-frame-options", "DENY"},
        {"referrer-policy", "no-referrer"},
        {"cache-control", "no-store"},
    };
    char url[256], buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "%s%s", cases[i].tls ? server.https_base : server.http_base,
                 cases[i].path);
        harness_response_t res;
        harness_request(&res, cases[i].protocol, "GET", url, NULL, NULL, 0);
        assert_int_equal(res.status, cases[i].status);
        for (size_t h = 0; h < sizeof(expected) / sizeof(expected[0]); h++) {
            assert_string_equal(harness_header(&res, expected[h][0], buf, sizeof(buf)), expected[h][1]);
            assert_int_equal(header_count(&res, expected[h][0]), 1);
        }
        if (cases[i].tls)
            assert_string_equal(harness_header(&res, "strict-transport-security", buf, sizeof(buf)),
                                "max-age=600; includeSubDomains");
        else
            assert_int_equal(header_count(&res, "strict-transport-security"), 0);
        harness_response_free(&res);
    }
    /* cleartext HTTP/2 on the plain listener */
    CURL *curl = curl_easy_init();
    char *block = NULL;
    size_t block_len = 0;
    FILE *f = open_memstream(&block, &block_len);
    url_of(url, sizeof(url), HARNESS_HTTP1, "/health/live");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, keep_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    long version = 0;
    curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &version);
    assert_int_equal(version, CURL_HTTP_VERSION_2_0);
    fclose(f);
    harness_response_t h2c = {.headers = block};
    assert_string_equal(harness_header(&h2c, "x-content-type-options", buf, sizeof(buf)), "nosniff");
    assert_int_equal(header_count(&h2c, "strict-transport-security"), 0);
    free(block);
    curl_easy_cleanup(curl);
}

static void test_live_hostname_openapi(void **state)
{
    (void)state;
    json_t *doc = request_json(HARNESS_HTTP2, "GET", "/health/live", NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "status")), "ok");
    json_decref(doc);

    char expected[256];
    gethostname(expected, sizeof(expected));
    doc = request_json(HARNESS_HTTP2, "GET", "/hostname", NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "hostname")), expected);
    json_decref(doc);

    doc = request_json(HARNESS_HTTP1, "GET", "/openapi.json", NULL, NULL, 200, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths");
    for (const char *const *p =
             (const char *const[]){"/health", "/health/live", "/hostname", "/metrics", "/openapi.json", NULL};
         *p != NULL; p++)
        assert_non_null(json_object_get(paths, *p));
    json_decref(doc);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    (void)state;
    harness_response_t res;
    assert_error(request_json(HARNESS_HTTP2, "GET", "/no/such/route", NULL, NULL, 404, NULL), "not_found");
    assert_error(request_json(HARNESS_HTTP1, "GET", "/health/", NULL, NULL, 404, NULL), "not_found");
    assert_error(request_json(HARNESS_HTTP2, "DELETE", "/health", NULL, NULL, 405, &res),
                 "method_not_allowed");
    char allow[128];
    assert_non_null(harness_header(&res, "allow", allow, sizeof(allow)));
    assert_string_equal(allow, "GET, HEAD");
    harness_response_free(&res);
}

static void test_head_on_get_route(void **state)
{
    (void)state;
    char url[256];
    url_of(url, sizeof(url), HARNESS_HTTP1, "/health/live");
    harness_response_t res;
    assert_int_equal(harness_request(&res, HARNESS_HTTP1, "HEAD", url, NULL, NULL, 0), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.body_len, 0);
    harness_response_free(&res);
}

static void test_request_ids(void **state)
{
    (void)state;
    char id[200];
    harness_response_t res;
    const char *const sane[] = {"X-Request-Id: abc.DEF_123-x", NULL};
    json_decref(request_json(HARNESS_HTTP2, "GET", "/health/live", sane, NULL, 200, &res));
    assert_string_equal(harness_header(&res, "x-request-id", id, sizeof(id)), "abc.DEF_123-x");
    harness_response_free(&res);

    const char *const insane[] = {"X-Request-Id: bad id<script>", NULL};
    json_decref(request_json(HARNESS_HTTP1, "GET", "/health/live", insane, NULL, 200, &res));
    assert_non_null(harness_header(&res, "x-request-id", id, sizeof(id)));
    assert_string_not_equal(id, "bad id<script>");
    assert_int_equal(strlen(id), 32);
    harness_response_free(&res);

    /* Errors carry one too. */
    json_decref(request_json(HARNESS_HTTP2, "GET", "/nope", NULL, NULL, 404, &res));
    assert_non_null(harness_header(&res, "x-request-id", id, sizeof(id)));
    harness_response_free(&res);
}

static void test_json_body_rules(void **state)
{
    (void)state;
    const char *const json[] = {"Content-Type: application/json", NULL};
    const char *const text[] = {"Content-Type: text/plain", NULL};
    json_t *doc = request_json(HARNESS_HTTP2, "POST", "/internal/test/echo", json,
                               "{\"a\":[1,{\"b\":\"c\"}]}", 200, NULL);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(doc, "echo"), "a"), 0)), 1);
    json_decref(doc);

    assert_error(request_json(HARNESS_HTTP2, "POST", "/internal/test/echo", json, "{\"a\":", 400, NULL),
                 "invalid_json");
    assert_error(request_json(HARNESS_HTTP1, "POST", "/internal/test/echo", json, "[1,2]", 400, NULL),
                 "invalid_json");
    assert_error(request_json(HARNESS_HTTP1, "POST", "/internal/test/echo", json, "", 400, NULL),
                 "invalid_json");
    assert_error(request_json(HARNESS_HTTP2, "POST", "/internal/test/echo", text, "{\"a\":1}", 415, NULL),
                 "unsupported_media_type");
    /* \u0000 is valid JSON: refused by name, not as invalid_json */
    assert_error(
        request_json(HARNESS_HTTP1, "POST", "/internal/test/echo", json, "{\"a\":\"\\u0000\"}", 422, NULL),
        "validation_failed");

    /* Deeper than the configured depth (32). */
    char deep[256] = "{\"a\":";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_error(request_json(HARNESS_HTTP2, "POST", "/internal/test/echo", json, deep, 400, NULL),
                 "invalid_json");
}

static void test_body_limits(void **state)
{
    (void)state;
    const char *const json[] = {"Content-Type: application/json", NULL};
    /* The per-route limit (1 KiB) and the server-wide JSON limit (64 KiB in test.conf). */
    size_t sizes[] = {2000, 70 * 1024};
    const char *paths[] = {"/internal/test/echo-small", "/internal/test/echo"};
    for (int i = 0; i < 2; i++) {
        char *big = malloc(sizes[i] + 16);
        memset(big, ' ', sizes[i] + 16);
        memcpy(big, "{\"a\":\"", 6);
        memset(big + 6, 'x', sizes[i]);
        memcpy(big + 6 + sizes[i], "\"}", 3);
        for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++)
            assert_error(request_json(protocol, "POST", paths[i], json, big, 413, NULL), "payload_too_large");
        free(big);
    }
}

/* A raw HTTP/1.1 connection to the plain listener. */
static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server.http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Reads until the peer closes or timeout_ms pass; returns bytes read, -1 on timeout. */
static int raw_read_until_close(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n <= 0) {
            buf[got] = '\0';
            return (int)got;
        }
        got += (size_t)n;
        if (got >= len - 1)
            break;
    }
    buf[got] = '\0';
    return -1;
}

static void assert_server_still_serves(void)
{
    json_t *doc = request_json(HARNESS_HTTP2, "GET", "/health/live", NULL, NULL, 200, NULL);
    json_decref(doc);
}

static void test_stalled_body_is_cut_off(void **state)
{
    (void)state;
    int fd = raw_connect();
    const char *head = "POST /internal/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 1000\r\n\r\n{\"a\":";
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    /* While that client stalls, everybody else is served. */
    assert_server_still_serves();
    char buf[4096];
    /* request-timeout-ms is 3000 in test.conf: the connection must be closed well before 15 s. */
    assert_true(raw_read_until_close(fd, buf, sizeof(buf), 15000) >= 0);
    close(fd);
    assert_server_still_serves();
}

static void test_header_flood(void **state)
{
    (void)state;
    int fd = raw_connect();
    char *req = malloc(64 * 1024);
    size_t len = (size_t)sprintf(req, "GET /health/live HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 500; i++)
        len += (size_t)sprintf(req + len, "X-Flood-%d: %0100d\r\n", i, i);
    len += (size_t)sprintf(req + len, "\r\n");
    ssize_t w = write(fd, req, len);
    (void)w; /* the server may close before reading everything */
    char buf[4096];
    assert_true(raw_read_until_close(fd, buf, sizeof(buf), 15000) >= 0);
    /* Either refused with a 4xx or closed without an answer; never a 200 for 500 headers. */
    assert_null(strstr(buf, " 200 "));
    close(fd);
    free(req);
    assert_server_still_serves();
}

static void test_too_many_headers(void **state)
{
    (void)state;
    /* max-headers is 20 in test.conf; libh2o's own HTTP/1 cap is higher, HTTP/2 has none. */
    static char names[30][32];
    const char *headers[31];
    for (int i = 0; i < 30; i++) {
        snprintf(names[i], sizeof(names[i]), "X-Extra-%d: %d", i, i);
        headers[i] = names[i];
    }
    headers[30] = NULL;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++)
        assert_error(request_json(protocol, "GET", "/health/live", headers, NULL, 431, NULL), "bad_request");
    headers[10] = NULL; /* a few are fine */
    json_decref(request_json(HARNESS_HTTP2, "GET", "/health/live", headers, NULL, 200, NULL));
    /* too many bytes in few fields (limits.max-header-bytes, 16 KiB by default) */
    static char big[20 * 1024 + 16];
    snprintf(big, sizeof(big), "X-Big: %0*d", 20 * 1024, 7);
    const char *large[] = {big, NULL};
    assert_error(request_json(HARNESS_HTTP2, "GET", "/health/live", large, NULL, 431, NULL), "bad_request");
}

/* The connection that sent such a request is closed once its answer is out, keep-alive or
 * not: libh2o has decoded every field by then, and would for each of its next requests. */
static void test_header_flood_closes_the_connection(void **state)
{
    (void)state;
    char request[2048];
    int n = snprintf(request, sizeof(request), "GET /health/live HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 30; i++)
        n += snprintf(request + n, sizeof(request) - (size_t)n, "X-Extra-%d: %d\r\n", i, i);
    n += snprintf(request + n, sizeof(request) - (size_t)n, "\r\n");
    int fd = raw_connect();
    assert_int_equal(write(fd, request, (size_t)n), n);
    char answer[4096];
    int got = raw_read_until_close(fd, answer, sizeof(answer), 5000);
    close(fd);
    assert_true(got > 0); /* closed by the server, not left open until a timeout */
    assert_non_null(strstr(answer, "HTTP/1.1 431"));
    /* a request within the limits keeps its connection */
    fd = raw_connect();
    const char *fine = "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, fine, strlen(fine)), (ssize_t)strlen(fine));
    assert_int_equal(raw_read_until_close(fd, answer, sizeof(answer), 700), -1);
    close(fd);
}

static void test_garbage_request_line(void **state)
{
    (void)state;
    int fd = raw_connect();
    const char *junk = "\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n";
    assert_int_equal(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
    char buf[4096];
    assert_true(raw_read_until_close(fd, buf, sizeof(buf), 15000) >= 0);
    assert_null(strstr(buf, " 200 "));
    close(fd);
    assert_server_still_serves();
}

static void test_metrics_count_requests(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        json_decref(request_json(HARNESS_HTTP1, "GET", "/hostname", NULL, NULL, 200, NULL));
    char url[256];
    url_of(url, sizeof(url), HARNESS_HTTP2, "/metrics");
    harness_response_t res;
    assert_int_equal(harness_request(&res, HARNESS_HTTP2, "GET", url, NULL, NULL, 0), 0);
    assert_int_equal(res.status, 200);
    char ct[128];
    assert_non_null(
        strstr(harness_header(&res, "content-type", ct, sizeof(ct)), "text/plain; version=0.0.4"));
    const char *line =
        strstr(res.body, "http_requests_total{method=\"GET\",route=\"/hostname\",status=\"200\"} ");
    assert_non_null(line);
    assert_true(atol(strchr(line, '}') + 2) >= 3);
    assert_non_null(
        strstr(res.body, "http_request_duration_seconds_bucket{route=\"/hostname\",le=\"+Inf\"}"));
    assert_non_null(strstr(res.body, "hydrant_db_connections{state=\"ready\"}"));
    assert_non_null(strstr(res.body, "hydrant_redis_connections{state=\"ready\"}"));
    harness_response_free(&res);
}

static void test_access_log_lines(void **state)
{
    (void)state;
    const char *const id[] = {"X-Request-Id: access-log-probe-1", NULL};
    json_decref(request_json(HARNESS_HTTP2, "GET", "/health/live", id, NULL, 200, NULL));
    /* The log writer writes lines within about 100 ms. */
    char *found = NULL;
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline && found == NULL;) {
        usleep(100 * 1000);
        FILE *f = fopen(server.log_path, "r");
        char line[2048];
        while (f != NULL && found == NULL && fgets(line, sizeof(line), f) != NULL)
            if (strstr(line, "access-log-probe-1") != NULL)
                found = strdup(line);
        if (f != NULL)
            fclose(f);
    }
    assert_non_null(found);
    json_error_t jerr;
    json_t *entry = json_loads(found, 0, &jerr);
    assert_non_null(entry);
    assert_string_equal(json_string_value(json_object_get(entry, "route")), "/health/live");
    assert_string_equal(json_string_value(json_object_get(entry, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(entry, "protocol")), "HTTP/2");
    assert_string_equal(json_string_value(json_object_get(entry, "client")), "127.0.0.1");
    assert_int_equal(json_integer_value(json_object_get(entry, "status")), 200);
    assert_true(json_is_integer(json_object_get(entry, "duration_us")));
    json_decref(entry);
    free(found);
}

/* Reads what the FIFO has (nonblocking) into buf, keeping its tail when it overflows, until
 * `needle` shows up or idle_ms pass without data; returns whether it did. At the writers'
 * end of file it stops too. */
static int fifo_read_until(int fd, const char *needle, int idle_ms)
{
    static char buf[1 << 16];
    size_t len = 0;
    for (long long idle_until = harness_now_ms() + idle_ms; harness_now_ms() < idle_until;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (len > sizeof(buf) / 2) { /* keep the last half: a line is far shorter */
            memmove(buf, buf + len - sizeof(buf) / 4, sizeof(buf) / 4);
            len = sizeof(buf) / 4;
        }
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n == 0)
            break;
        if (n < 0)
            continue;
        len += (size_t)n;
        buf[len] = '\0';
        if (needle != NULL && strstr(buf, needle) != NULL)
            return 1;
        idle_until = harness_now_ms() + idle_ms;
    }
    return 0;
}

static long metric_value(const harness_server_t *s, const char *name)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", s->http_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
    const char *at = res.status == 200 ? strstr(res.body, name) : NULL;
    long v = at != NULL ? atol(at + strlen(name)) : -1;
    harness_response_free(&res);
    return v;
}

/* The access log is a FIFO the test opens and does not read (a container's log driver that
 * fell behind). The loops never write the log themselves, so every request is answered; the
 * lines that do not fit the writer's buffers are dropped and counted in /metrics. Once the
 * reader reads, new lines arrive, and the lines of the last requests before a SIGTERM are
 * written before the process ends. */
/* GET /health/live with an X-Request-Id; returns the status. */
static long get_live(const harness_server_t *s, const char *request_id)
{
    char url[256], id[128];
    snprintf(url, sizeof(url), "%s/health/live", s->http_base);
    snprintf(id, sizeof(id), "X-Request-Id: %s", request_id);
    const char *const headers[] = {id, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, headers, NULL, 0);
    long status = res.status;
    harness_response_free(&res);
    return status;
}

static harness_server_t fifo_server;

static void test_access_log_reader_that_does_not_read(void **state)
{
    (void)state;
    char fifo[320], log_env[340];
    snprintf(fifo, sizeof(fifo), "%s/access-%d.fifo", harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int reader = open(fifo, O_RDONLY | O_NONBLOCK); /* hydrant's open for writing then succeeds */
    assert_true(reader >= 0);
    assert_true(fcntl(reader, F_SETPIPE_SZ, 4096) >= 4096);
    snprintf(log_env, sizeof(log_env), "HYDRANT_ACCESS_LOG=%s", fifo);
    const char *const env[] = {"HYDRANT_TEST_ROUTES=1", log_env, "HYDRANT_ACCESS_LOG_BUFFER=16K", NULL};
    assert_int_equal(harness_server_start(&fifo_server, env), 0);
    /* 2,000 requests while nobody reads: a loop that wrote the log itself would stall at the
     * first full pipe (4 KiB, some 16 lines), and these would time out. */
    harness_set_timeout_ms(3000);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(harness_get_status(HARNESS_HTTP1, fifo_server.http_base, "/health/live"), 200);
    harness_set_timeout_ms(10000);
    long dropped = metric_value(&fifo_server, "\nhydrant_access_log_dropped_total ");
    assert_true(dropped > 0);
    /* The reader reads what the writer kept (until it has been quiet a while), then a new
     * request's line arrives. */
    fifo_read_until(reader, NULL, 500);
    assert_int_equal(get_live(&fifo_server, "fifo-probe-1"), 200);
    assert_true(fifo_read_until(reader, "\"fifo-probe-1\"", 5000));
    /* The last request's line before a SIGTERM is written before the process ends. */
    assert_int_equal(get_live(&fifo_server, "fifo-probe-2"), 200);
    kill(fifo_server.pid, SIGTERM);
    assert_true(fifo_read_until(reader, "\"fifo-probe-2\"", 10000));
    fifo_read_until(reader, NULL, 10000); /* to the end: the writer must not hold up the exit */
    assert_int_equal(harness_server_wait(&fifo_server), 0);
    close(reader);
    unlink(fifo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_both_protocols),
        cmocka_unit_test(test_http1_over_tls),
        cmocka_unit_test(test_http1_keep_alive_across_statuses),
        cmocka_unit_test(test_security_headers),
        cmocka_unit_test(test_live_hostname_openapi),
        cmocka_unit_test(test_not_found_and_method_not_allowed),
        cmocka_unit_test(test_head_on_get_route),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_json_body_rules),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_stalled_body_is_cut_off),
        cmocka_unit_test(test_header_flood),
        cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_header_flood_closes_the_connection),
        cmocka_unit_test(test_garbage_request_line),
        cmocka_unit_test(test_metrics_count_requests),
        cmocka_unit_test(test_access_log_lines),
        cmocka_unit_test(test_access_log_reader_that_does_not_read),
    };
    /* The server is stopped outside the group so that an unclean exit fails the run
     * (cmocka reports a failed group teardown without counting it). */
    int failed = cmocka_run_group_tests(tests, start_server, NULL);
    if (fifo_server.pid > 0) { /* its test failed: it may be stuck on its access log */
        kill(fifo_server.pid, SIGKILL);
        harness_server_wait(&fifo_server);
    }
    if (stop_server(NULL) != 0) {
        fprintf(stderr, "hydrant did not exit cleanly (status != 0) after SIGTERM\n");
        failed++;
    }
    return failed;
}
