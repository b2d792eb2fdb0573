/*
 * GET /api/v1/notifications/stream against the real server over HTTP/2 and HTTP/1.1: room
 * events arrive live and in order, Last-Event-ID resumes with nothing lost or repeated, a gap
 * in the backlog starts the stream with `reset`, a stream held on a second server gets the
 * events made on the first, and shutdown ends open streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h2raw.h"
#include "harness.h"

#define PASSWORD   "correct horse battery staple"
#define MAX_EVENTS 16

static harness_server_t server, other;
static PGconn *db;

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                         "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         "HYDRANT_JWT_SECRET=integration-test-secret-0123456789abcdef",
                                         "HYDRANT_REALTIME_HEARTBEAT_MS=200",
                                         "HYDRANT_REALTIME_POLL_MS=20",
                                         NULL};

static harness_account_t alice;
static char room[40];

/* One stream read on a thread of its own until it has `want` events, ends, or 10 s pass. */
typedef struct {
    pthread_t thread;
    char url[512];
    const char *headers[3];
    int protocol, want;
    char buf[65536];
    size_t len;
    atomic_int started, finished;
    int nevents;
    long long ids[MAX_EVENTS];
    char names[MAX_EVENTS][32];
    char data[MAX_EVENTS][1024];
    int curl_code;
    long status;
} reader_t;

/* Parses the complete events in buf (blocks ending with a blank line; comments skipped). */
static void reader_parse(reader_t *rd)
{
    rd->nevents = 0;
    char *copy = strndup(rd->buf, rd->len), *save = NULL;
    char *end = strstr(copy, "\n\n");
    for (char *block = copy; end != NULL && rd->nevents < MAX_EVENTS;
         block = end + 2, end = strstr(block, "\n\n")) {
        *end = '\0';
        long long id = -1;
        char name[32] = "", data[1024] = "";
        for (char *line = strtok_r(block, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "id: ", 4) == 0)
                id = atoll(line + 4);
            else if (strncmp(line, "event: ", 7) == 0)
                snprintf(name, sizeof(name), "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                snprintf(data, sizeof(data), "%s", line + 6);
        }
        if (name[0] == '\0')
            continue; /* a comment (heartbeat) */
        rd->ids[rd->nevents] = id;
        snprintf(rd->names[rd->nevents], 32, "%s", name);
        snprintf(rd->data[rd->nevents++], 1024, "%s", data);
    }
    free(copy);
}

static size_t reader_write(char *ptr, size_t size, size_t n, void *arg)
{
    reader_t *rd = arg;
    size_t len = size * n;
    if (rd->len + len >= sizeof(rd->buf))
        return 0;
    memcpy(rd->buf + rd->len, ptr, len);
    rd->len += len;
    atomic_store(&rd->started, 1);
    reader_parse(rd);
    return rd->nevents >= rd->want ? 0 : len; /* 0 ends the transfer */
}

static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    for (int i = 0; rd->headers[i] != NULL; i++)
        list = curl_slist_append(list, rd->headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, rd->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                     rd->protocol == HARNESS_HTTP2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, reader_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, rd);
    rd->curl_code = (int)curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rd->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    atomic_store(&rd->finished, 1);
    return NULL;
}

/* Opens a stream on s with the credentials header auth (alice's when NULL) and one extra
 * header (or NULL); waits (bounded) for its first bytes. */
static reader_t *reader_open_as(const harness_server_t *s, int protocol, const char *auth, const char *extra,
                                int want)
{
    reader_t *rd = calloc(1, sizeof(*rd));
    snprintf(rd->url, sizeof(rd->url), "%s/api/v1/notifications/stream",
             protocol == HARNESS_HTTP2 ? s->https_base : s->http_base);
    rd->headers[0] = auth != NULL ? auth : alice.auth;
    rd->headers[1] = extra;
    rd->protocol = protocol;
    rd->want = want;
    assert_int_equal(pthread_create(&rd->thread, NULL, reader_main, rd), 0);
    for (int i = 0; i < 500 && !atomic_load(&rd->started) && !atomic_load(&rd->finished); i++)
        usleep(10000);
    assert_true(atomic_load(&rd->started));
    return rd;
}

static reader_t *reader_open(const harness_server_t *s, int protocol, const char *extra, int want)
{
    return reader_open_as(s, protocol, NULL, extra, want);
}

/* Waits for the reader's end (it stops itself at `want` events or after 10 s). */
static void reader_join(reader_t *rd)
{
    pthread_join(rd->thread, NULL);
}

static void post_message(const harness_server_t *s, const char *text)
{
    char url[256], body[128];
    snprintf(url, sizeof(url), "%s/api/v1/rooms/%s/messages", s->https_base, room);
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", text);
    const char *headers[] = {"Content-Type: application/json", alice.auth, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, body, strlen(body));
    assert_int_equal(res.status, 201);
    harness_response_free(&res);
}

/* The text of a room.message event's Message. */
static void assert_message(const reader_t *rd, int i, const char *text)
{
    assert_string_equal(rd->names[i], "room.message");
    json_t *m = json_loads(rd->data[i], 0, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "text")), text);
    assert_string_equal(json_string_value(json_object_get(m, "room_id")), room);
    json_decref(m);
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&server, server_env, &db) != 0 ||
        harness_account_create(&alice, &server, db, server_env, "sse-alice", "user", PASSWORD) != 0)
        return -1;
    const char *headers[] = {"Content-Type: application/json", alice.auth, NULL};
    char url[256];
    snprintf(url, sizeof(url), "%s/api/v1/rooms", server.https_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, "{\"name\":\"sse\"}", 14);
    json_t *doc = json_loads(res.body, 0, NULL);
    snprintf(room, sizeof(room), "%s",
             json_string_value(json_object_get(json_object_get(doc, "room"), "id")));
    json_decref(doc);
    long status = res.status;
    if (status != 201)
        fprintf(stderr, "creating a room: %ld %s\n", status, res.body != NULL ? res.body : "");
    harness_response_free(&res);
    return status == 201 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static long long last_seen; /* the newest event id a test saw, for the next */

static void test_live_in_order(void **state)
{
    (void)state;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        reader_t *rd = reader_open(&server, protocol, NULL, 3);
        post_message(&server, "one");
        post_message(&server, "two");
        post_message(&server, "three");
        reader_join(rd);
        assert_int_equal(rd->status, 200);
        assert_int_equal(rd->nevents, 3);
        assert_message(rd, 0, "one");
        assert_message(rd, 1, "two");
        assert_message(rd, 2, "three");
        assert_true(rd->ids[1] == rd->ids[0] + 1 && rd->ids[2] == rd->ids[1] + 1);
        assert_true(rd->ids[0] > last_seen);
        last_seen = rd->ids[2];
        free(rd);
    }
}

static void test_resume(void **state)
{
    (void)state;
    static const char *const texts[] = {"three", "four", "five"};
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        /* resumed two back: those two from the backlog, then a live one, each once, in order */
        char header[64];
        snprintf(header, sizeof(header), "Last-Event-ID: %lld", last_seen - 2);
        reader_t *rd = reader_open(&server, protocol, header, 3);
        post_message(&server, texts[protocol]);
        reader_join(rd);
        assert_int_equal(rd->nevents, 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(rd->ids[i], last_seen - 1 + i);
        assert_message(rd, 1, texts[protocol - 1]);
        assert_message(rd, 2, texts[protocol]);
        last_seen++;
        free(rd);
    }
}

static void test_reset_after_gap(void **state)
{
    (void)state;
    /* the backlog is gone (trimmed, expired): resuming from 1 cannot be complete */
    assert_int_equal(harness_system("redis-cli -p %d DEL hydrant:rt:log:%s >/dev/null",
                                    harness_service_port("redis"), alice.id),
                     0);
    reader_t *rd = reader_open(&server, HARNESS_HTTP2, "Last-Event-ID: 1", 2);
    post_message(&server, "six");
    reader_join(rd);
    assert_int_equal(rd->nevents, 2);
    assert_string_equal(rd->names[0], "reset");
    assert_int_equal(rd->ids[0], last_seen);
    assert_message(rd, 1, "six");
    assert_int_equal(rd->ids[1], last_seen + 1);
    last_seen++;
    free(rd);
}

/* A second session of alice's: its "Authorization: Bearer ..." header into out (1100 bytes). */
static void second_session(char *out)
{
    harness_account_t again = alice;
    char url[256], body[256];
    snprintf(url, sizeof(url), "%s/api/v1/auth/login", server.https_base);
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", alice.email, PASSWORD);
    const char *headers[] = {"Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, body, strlen(body));
    assert_int_equal(res.status, 200);
    json_t *doc = json_loads(res.body, 0, NULL);
    snprintf(again.auth, sizeof(again.auth), "Authorization: Bearer %s",
             json_string_value(json_object_get(doc, "access_token")));
    json_decref(doc);
    harness_response_free(&res);
    memcpy(out, again.auth, sizeof(again.auth));
}

static void test_revocation_ends_the_stream(void **state)
{
    (void)state;
    char session[1100];
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        second_session(session);
        reader_t *revoked = reader_open_as(&server, protocol, session, NULL, MAX_EVENTS);
        reader_t *kept = reader_open(&server, protocol, NULL, 1);
        char url[256];
        snprintf(url, sizeof(url), "%s/api/v1/auth/logout", server.https_base);
        const char *headers[] = {session, NULL};
        harness_response_t res;
        harness_request(&res, HARNESS_HTTP2, "POST", url, headers, NULL, 0);
        assert_int_equal(res.status, 204);
        harness_response_free(&res);
        /* the logged-out session's stream says so and ends by itself (not at want, not by
         * its 10 s limit) */
        reader_join(revoked);
        assert_int_equal(revoked->curl_code, CURLE_OK);
        assert_int_equal(revoked->nevents, 1);
        assert_string_equal(revoked->names[0], "session.revoked");
        json_t *data = json_loads(revoked->data[0], 0, NULL);
        const char *sid = json_string_value(json_object_get(data, "session_id"));
        assert_non_null(sid);
        /* the other session's stream hears of it, naming the same session, and goes on */
        reader_join(kept);
        assert_int_equal(kept->nevents, 1);
        assert_string_equal(kept->names[0], "session.revoked");
        assert_int_equal(kept->ids[0], revoked->ids[0]);
        json_t *told = json_loads(kept->data[0], 0, NULL);
        assert_string_equal(json_string_value(json_object_get(told, "session_id")), sid);
        json_decref(told);
        json_decref(data);
        last_seen = kept->ids[0];
        free(revoked);
        free(kept);
    }
}

static void test_other_instance_and_shutdown(void **state)
{
    (void)state;
    assert_int_equal(harness_server_start(&other, server_env), 0);
    reader_t *rd = reader_open(&other, HARNESS_HTTP2, NULL, 1);
    post_message(&server, "across");
    reader_join(rd);
    assert_int_equal(rd->nevents, 1);
    assert_message(rd, 0, "across");
    free(rd);
    /* streams still open when the server is told to stop end, and the server exits 0 */
    reader_t *h1 = reader_open(&other, HARNESS_HTTP1, NULL, MAX_EVENTS);
    reader_t *h2 = reader_open(&other, HARNESS_HTTP2, NULL, MAX_EVENTS);
    assert_int_equal(harness_server_stop(&other), 0);
    reader_join(h1);
    reader_join(h2);
    assert_int_not_equal(h1->curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_not_equal(h2->curl_code, CURLE_OPERATION_TIMEDOUT);
    free(h1);
    free(h2);
}

/* A client that reads nothing (flow-control window 0) can hold no more than its stream's
 * queue: once a send has waited more than two heartbeats its connection is cut, while the
 * other streams are served. */
static void test_non_reader_is_dropped(void **state)
{
    (void)state;
    double cut = harness_metric(&server, "hydrant_http_connections_cut_total");
    h2raw_t *h = h2raw_connect_window(server.tls_port, 0);
    assert_non_null(h);
    h2raw_request(h, 1, "/api/v1/notifications/stream", alice.auth + strlen("Authorization: "), 0);
    assert_int_equal(h2raw_flush(h), 0);
    reader_t *rd = reader_open(&server, HARNESS_HTTP2, NULL, 5);
    for (int i = 0; i < 5; i++)
        post_message(&server, "unread");
    reader_join(rd);
    assert_int_equal(rd->nevents, 5);
    last_seen = rd->ids[4];
    free(rd);
    for (long long deadline = harness_now_ms() + 10000; !h2raw_closed(h) && harness_now_ms() < deadline;)
        h2raw_pump(h, 100);
    assert_true(h2raw_closed(h));
    h2raw_close(h);
    assert_true(harness_metric(&server, "hydrant_http_connections_cut_total") >= cut + 1);
}

/* Waits (bounded) until the server's metric sample is at least want; returns its value. */
static double metric_at_least(const harness_server_t *s, const char *sample, double want)
{
    double v = harness_metric(s, sample);
    for (long long deadline = harness_now_ms() + 10000; v < want && harness_now_ms() < deadline;) {
        usleep(20000);
        v = harness_metric(s, sample);
    }
    return v;
}

#define BUS_DELIVERED  "hydrant_realtime_events_delivered_total{source=\"bus\"}"
#define BUS_SUBSCRIBED "hydrant_realtime_bus_subscriptions_total"

/* With polling all but off (realtime.poll-ms 10 s), events reach a stream through its loop's
 * subscriber, straight from the publication; when the subscriber is cut off (Redis's CLIENT
 * KILL TYPE pubsub), what was published meanwhile arrives once it has subscribed again, read
 * from the backlog, in order and once. */
static void test_bus_wakes_streams(void **state)
{
    (void)state;
    const char *env[16];
    int n = 0;
    for (; server_env[n] != NULL; n++)
        env[n] = strcmp(server_env[n], "HYDRANT_REALTIME_POLL_MS=20") == 0 ? "HYDRANT_REALTIME_POLL_MS=10000"
                                                                           : server_env[n];
    env[n] = NULL;
    harness_server_t quiet;
    assert_int_equal(harness_server_start(&quiet, env), 0);
    reader_t *rd = reader_open(&quiet, HARNESS_HTTP2, NULL, 4);
    assert_true(metric_at_least(&quiet, BUS_SUBSCRIBED, 1) >= 1);
    assert_true(metric_at_least(&quiet, "hydrant_realtime_backlog_reads_total", 1) >= 1);
    /* the loop's heartbeat went through Redis (every 2 s): the fan-out's lag is measured */
    assert_true(metric_at_least(&quiet, "hydrant_realtime_bus_lag_seconds", 1e-6) > 0);
    static const char *const texts[] = {"bus-1", "bus-2", "bus-3", "bus-4"};
    for (int i = 0; i < 2; i++) {
        post_message(&server, texts[i]);
        assert_true(metric_at_least(&quiet, BUS_DELIVERED, i + 1) >= i + 1);
    }
    /* cut the subscriber off, publish while it is away, and it catches up */
    double subscribed = harness_metric(&quiet, BUS_SUBSCRIBED);
    assert_int_equal(
        harness_system("redis-cli -p %d CLIENT KILL TYPE pubsub >/dev/null", harness_service_port("redis")),
        0);
    post_message(&server, texts[2]);
    post_message(&server, texts[3]);
    reader_join(rd);
    assert_int_equal(rd->nevents, 4);
    for (int i = 0; i < 4; i++)
        assert_message(rd, i, texts[i]);
    assert_true(rd->ids[3] == rd->ids[0] + 3);
    last_seen = rd->ids[3];
    free(rd);
    assert_true(harness_metric(&quiet, BUS_SUBSCRIBED) >= subscribed + 1);
    assert_int_equal(harness_server_stop(&quiet), 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_in_order),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_reset_after_gap),
        cmocka_unit_test(test_revocation_ends_the_stream),
        cmocka_unit_test(test_non_reader_is_dropped),
        cmocka_unit_test(test_bus_wakes_streams),
        cmocka_unit_test(test_other_instance_and_shutdown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
