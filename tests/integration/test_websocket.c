/*
 * A room's WebSocket (GET /api/v1/rooms/{id}/ws) against the real server, with the tests' own
 * client (wsclient.c): credentials (401), non-members (404), HTTP/2 and plain GETs (426),
 * tickets (once), two members on two instances exchanging messages that history then shows,
 * presence, the limits (1008 for more than 10 messages a second, 1009 for a message over
 * 16 KiB after joining fragments), error frames that leave the socket open, pings, and 1001
 * for every socket when the server is told to stop.
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
#include "wsclient.h"

#define PASSWORD "correct horse battery staple"
#define WAIT_MS  5000

static harness_server_t server, other;
static PGconn *db;

/* Pings after 1 s of silence, closed after 2 s: the tests' sockets answer pings whenever
 * they read. */
static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                         "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         "HYDRANT_REALTIME_HEARTBEAT_MS=1000",
                                         "HYDRANT_JWT_SECRET=integration-test-secret-0123456789abcdef",
                                         NULL};

static harness_account_t alice, bob, carol;
static char room[40];

/* The room's socket path into out (with ?ticket= when ticket is not NULL). */
static const char *ws_path(const char *room_id, const char *ticket, char *out, size_t len)
{
    snprintf(out, len, "/api/v1/rooms/%s/ws%s%s", room_id, ticket != NULL ? "?ticket=" : "",
             ticket != NULL ? ticket : "");
    return out;
}

/* A socket of who's in the room on s, upgraded, and its own "joined" seen: the bus delivers
 * to it from then on. */
static void open_member(wsc_t *c, const harness_server_t *s, const harness_account_t *who)
{
    char path[128];
    assert_int_equal(wsc_open(c, s->http_port, ws_path(room, NULL, path, sizeof(path)), who->auth), 101);
    for (;;) {
        json_t *p = wsc_next(c, "presence", WAIT_MS, NULL);
        assert_non_null(p);
        const char *id = json_string_value(json_object_get(json_object_get(p, "user"), "id"));
        int mine = id != NULL && strcmp(id, who->id) == 0 &&
                   strcmp(json_string_value(json_object_get(p, "state")), "joined") == 0;
        json_decref(p);
        if (mine)
            return;
    }
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&server, server_env, &db) != 0 ||
        harness_server_start(&other, server_env) != 0)
        return -1;
    if (harness_account_create(&alice, &server, db, server_env, "ws-alice", "user", PASSWORD) != 0 ||
        harness_account_create(&bob, &server, db, server_env, "ws-bob", "user", PASSWORD) != 0 ||
        harness_account_create(&carol, &server, db, server_env, "ws-carol", "user", PASSWORD) != 0)
        return -1;
    json_t *doc = NULL;
    if (harness_call(&server, HARNESS_HTTP2, "POST", "/api/v1/rooms", alice.auth, "{\"name\":\"ws\"}",
                     &doc) != 201)
        return -1;
    snprintf(room, sizeof(room), "%s",
             json_string_value(json_object_get(json_object_get(doc, "room"), "id")));
    json_decref(doc);
    char path[128], body[128];
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/members", room);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", bob.id);
    return harness_call(&server, HARNESS_HTTP2, "POST", path, alice.auth, body, NULL) == 204 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    int a = harness_server_stop(&other), b = harness_server_stop(&server);
    return a == 0 && b == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ opening ---- */

static void test_refusals(void **state)
{
    (void)state;
    char path[128];
    wsc_t c;
    /* no credentials, or bad ones: 401 before anything else */
    assert_int_equal(wsc_open(&c, server.http_port, ws_path(room, NULL, path, sizeof(path)), NULL), 401);
    json_t *doc = json_loads(c.body, 0, NULL);
    assert_string_equal(harness_error_code(doc), "unauthorized");
    json_decref(doc);
    wsc_close(&c, 0);
    assert_int_equal(wsc_open(&c, server.http_port, path, "Authorization: Bearer nope"), 401);
    wsc_close(&c, 0);
    /* a non-member, and a room that does not exist: 404 */
    assert_int_equal(wsc_open(&c, server.http_port, path, carol.auth), 404);
    doc = json_loads(c.body, 0, NULL);
    assert_string_equal(harness_error_code(doc), "not_found");
    json_decref(doc);
    wsc_close(&c, 0);
    assert_int_equal(wsc_open(&c, server.http_port,
                              ws_path("00000000-0000-4000-8000-000000000000", NULL, path, sizeof(path)),
                              alice.auth),
                     404);
    wsc_close(&c, 0);
    /* HTTP/2 cannot upgrade (libh2o 2.2): 426 without an Upgrade header; no credentials: 401 */
    ws_path(room, NULL, path, sizeof(path));
    char url[256], buf[64];
    snprintf(url, sizeof(url), "%s%s", server.https_base, path);
    const char *headers[] = {alice.auth, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "GET", url, headers, NULL, 0);
    assert_int_equal(res.version, 2);
    assert_int_equal(res.status, 426);
    doc = json_loads(res.body, 0, NULL);
    assert_string_equal(harness_error_code(doc), "upgrade_required");
    json_decref(doc);
    assert_null(harness_header(&res, "upgrade", buf, sizeof(buf)));
    harness_response_free(&res);
    assert_int_equal(harness_call(&server, HARNESS_HTTP2, "GET", path, NULL, NULL, NULL), 401);
    /* a plain HTTP/1.1 GET: 426, naming the protocol to upgrade to */
    snprintf(url, sizeof(url), "%s%s", server.http_base, path);
    harness_request(&res, HARNESS_HTTP1, "GET", url, headers, NULL, 0);
    assert_int_equal(res.status, 426);
    assert_non_null(harness_header(&res, "upgrade", buf, sizeof(buf)));
    assert_string_equal(buf, "websocket");
    harness_response_free(&res);
}

static void test_ticket_once(void **state)
{
    (void)state;
    json_t *doc = NULL;
    assert_int_equal(
        harness_call(&server, HARNESS_HTTP2, "POST", "/api/v1/realtime/ticket", bob.auth, NULL, &doc), 201);
    char ticket[64], path[192];
    snprintf(ticket, sizeof(ticket), "%s", json_string_value(json_object_get(doc, "ticket")));
    json_decref(doc);
    wsc_t c;
    assert_int_equal(wsc_open(&c, server.http_port, ws_path(room, ticket, path, sizeof(path)), NULL), 101);
    wsc_close(&c, 1000);
    assert_int_equal(wsc_open(&c, server.http_port, path, NULL), 401);
    wsc_close(&c, 0);
}

/* ----------------------------------------------------------------- messages ---- */

/* Invalid messages get an error frame with the code, and the socket goes on. */
static void expect_error(wsc_t *c, const char *sent, int binary, const char *code)
{
    if (binary)
        assert_int_equal(wsc_send_frame(c, WSC_BINARY, 1, sent, strlen(sent)), 0);
    else
        assert_int_equal(wsc_send_text(c, sent), 0);
    json_t *e = wsc_next(c, "error", WAIT_MS, NULL);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "error"), "code")), code);
    assert_non_null(json_string_value(json_object_get(json_object_get(e, "error"), "message")));
    json_decref(e);
}

/* Over TLS (ALPN http/1.1, as a browser's wss://): the same socket. */
static void test_tls(void **state)
{
    (void)state;
    wsc_t c;
    char path[128];
    assert_int_equal(wsc_open_tls(&c, server.tls_port, ws_path(room, NULL, path, sizeof(path)), alice.auth),
                     101);
    json_t *p = wsc_next(&c, "presence", WAIT_MS, NULL);
    assert_non_null(p);
    json_decref(p);
    assert_int_equal(wsc_send_text(&c, "{\"type\":\"message\",\"text\":\"over tls\"}"), 0);
    json_t *m = wsc_next(&c, "message", WAIT_MS, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "message"), "text")),
                        "over tls");
    json_decref(m);
    expect_error(&c, "not json", 0, "invalid_json");
    wsc_close(&c, 1000);
}

static void test_invalid_messages(void **state)
{
    (void)state;
    wsc_t c;
    open_member(&c, &server, &alice);
    static char too_long[4100 + 64];
    snprintf(too_long, sizeof(too_long), "{\"type\":\"message\",\"text\":\"%04100d\"}", 0);
    expect_error(&c, "not json", 0, "invalid_json");
    expect_error(&c, "[1,2]", 0, "invalid_json");
    expect_error(&c, "{\"type\":\"message\"}", 1, "invalid_json");
    expect_error(&c, "{\"type\":\"shout\",\"text\":\"hi\"}", 0, "validation_failed");
    expect_error(&c, "{\"text\":\"hi\"}", 0, "validation_failed");
    expect_error(&c, "{\"type\":\"message\",\"text\":\"\"}", 0, "validation_failed");
    expect_error(&c, "{\"type\":\"message\",\"text\":7}", 0, "validation_failed");
    expect_error(&c, too_long, 0, "validation_failed");
    expect_error(&c, "{\"type\":\"message\",\"text\":\"a\\u0000b\"}", 0, "validation_failed");
    /* still usable: a valid message comes back stored */
    assert_int_equal(wsc_send_text(&c, "{\"type\":\"message\",\"text\":\"after the errors\"}"), 0);
    json_t *m = wsc_next(&c, "message", WAIT_MS, NULL);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "message"), "text")),
                        "after the errors");
    json_decref(m);
    wsc_close(&c, 1000);
}

/* The texts of the next n messages of c into texts (ids into ids). */
static void receive_messages(wsc_t *c, int n, char texts[][32], char ids[][40])
{
    for (int i = 0; i < n; i++) {
        json_t *m = wsc_next(c, "message", WAIT_MS, NULL);
        assert_non_null(m);
        json_t *msg = json_object_get(m, "message");
        assert_string_equal(json_string_value(json_object_get(msg, "room_id")), room);
        const char *author = json_string_value(json_object_get(json_object_get(msg, "user"), "id"));
        assert_non_null(author);
        assert_true(strcmp(author, alice.id) == 0 || strcmp(author, bob.id) == 0);
        snprintf(texts[i], 32, "%s", json_string_value(json_object_get(msg, "text")));
        snprintf(ids[i], 40, "%s", json_string_value(json_object_get(msg, "id")));
        json_decref(m);
    }
}

static int index_of(char ids[][40], int n, const char *id)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return i;
    return -1;
}

/* alice on one instance, bob on the other: each gets every message (its own too), each
 * author's in the order sent, and history holds exactly those, newest first. */
static void test_two_instances(void **state)
{
    (void)state;
    wsc_t a, b;
    open_member(&b, &other, &bob);
    open_member(&a, &server, &alice);
    json_t *p = wsc_next(&b, "presence", WAIT_MS, NULL);
    assert_non_null(p);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "user"), "id")), alice.id);
    assert_string_equal(json_string_value(json_object_get(p, "state")), "joined");
    json_decref(p);
    char text[96];
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof(text), "{\"type\":\"message\",\"text\":\"from alice %d\"}", i);
        assert_int_equal(wsc_send_text(&a, text), 0);
        snprintf(text, sizeof(text), "{\"type\":\"message\",\"text\":\"from bob %d\"}", i);
        assert_int_equal(wsc_send_text(&b, text), 0);
    }
    char at[6][32], bt[6][32], aid[6][40], bid[6][40];
    receive_messages(&a, 6, at, aid);
    receive_messages(&b, 6, bt, bid);
    /* each author's in order, on both sockets */
    for (int s = 0; s < 2; s++) {
        char(*texts)[32] = s == 0 ? at : bt;
        int next_alice = 0, next_bob = 0;
        for (int i = 0; i < 6; i++) {
            char want[32];
            if (strncmp(texts[i], "from alice", 10) == 0)
                snprintf(want, sizeof(want), "from alice %d", next_alice++);
            else
                snprintf(want, sizeof(want), "from bob %d", next_bob++);
            assert_string_equal(texts[i], want);
        }
    }
    /* history: the same six messages */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages?limit=6", room);
    json_t *doc = NULL;
    assert_int_equal(harness_call(&other, HARNESS_HTTP2, "GET", path, bob.auth, NULL, &doc), 200);
    json_t *items = json_object_get(doc, "items");
    assert_int_equal(json_array_size(items), 6);
    for (size_t i = 0; i < 6; i++) {
        const json_t *item = json_array_get(items, i);
        const char *id = json_string_value(json_object_get(item, "id"));
        int ia = index_of(aid, 6, id), ib = index_of(bid, 6, id);
        assert_true(ia >= 0 && ib >= 0);
        assert_string_equal(json_string_value(json_object_get(item, "text")), at[ia]);
    }
    json_decref(doc);
    /* alice leaves: bob hears of it */
    wsc_close(&a, 1000);
    for (;;) {
        p = wsc_next(&b, "presence", WAIT_MS, NULL);
        assert_non_null(p);
        int left =
            strcmp(json_string_value(json_object_get(p, "state")), "left") == 0 &&
            strcmp(json_string_value(json_object_get(json_object_get(p, "user"), "id")), alice.id) == 0;
        json_decref(p);
        if (left)
            break;
    }
    wsc_close(&b, 1000);
}

/* ------------------------------------------------------------------- limits ---- */

static void test_rate_limit(void **state)
{
    (void)state;
    wsc_t c;
    open_member(&c, &server, &alice);
    double before = harness_metric(&server, "hydrant_ws_closes_total{code=\"1008\"}");
    /* eleven at once: the eleventh is over 10 within one second */
    for (int i = 0; i < 11; i++)
        assert_int_equal(wsc_send_text(&c, "{\"type\":\"message\",\"text\":\"burst\"}"), 0);
    assert_int_equal(wsc_wait_close(&c, WAIT_MS), 1008);
    wsc_close(&c, 1008);
    for (long long deadline = harness_now_ms() + WAIT_MS; harness_now_ms() < deadline; usleep(20000))
        if (harness_metric(&server, "hydrant_ws_closes_total{code=\"1008\"}") > before)
            break;
    assert_true(harness_metric(&server, "hydrant_ws_closes_total{code=\"1008\"}") > before);
    /* ten in a second are fine: another socket sends ten and gets its ten back */
    open_member(&c, &server, &alice);
    for (int i = 0; i < 10; i++)
        assert_int_equal(wsc_send_text(&c, "{\"type\":\"message\",\"text\":\"ten\"}"), 0);
    for (int i = 0; i < 10; i++) {
        json_t *m = wsc_next(&c, "message", WAIT_MS, NULL);
        assert_non_null(m);
        json_decref(m);
    }
    wsc_close(&c, 1000);
}

static void test_message_too_big(void **state)
{
    (void)state;
    wsc_t c;
    open_member(&c, &server, &alice);
    /* 17 KiB in two fragments of 8.5 KiB: each is small, the message is not */
    static char half[17 * 1024 / 2];
    memset(half, 'x', sizeof(half));
    assert_int_equal(wsc_send_frame(&c, WSC_TEXT, 0, half, sizeof(half)), 0);
    assert_int_equal(wsc_send_frame(&c, 0, 1, half, sizeof(half)), 0);
    assert_int_equal(wsc_wait_close(&c, WAIT_MS), 1009);
    wsc_close(&c, 0);
    /* 16 KiB is allowed (and invalid as a message: an error frame, the socket stays) */
    open_member(&c, &server, &alice);
    static char exact[16 * 1024 + 1];
    memset(exact, ' ', sizeof(exact) - 1);
    exact[0] = '{';
    exact[sizeof(exact) - 2] = '}';
    expect_error(&c, exact, 0, "validation_failed");
    wsc_close(&c, 1000);
}

/* A socket that answers pings stays; one that does not is pinged, then closed. */
static void test_pings(void **state)
{
    (void)state;
    wsc_t live, mute;
    open_member(&live, &server, &alice);
    open_member(&mute, &server, &bob);
    mute.answer_pings = 0;
    long long until = harness_now_ms() + 3000;
    while (harness_now_ms() < until) {
        char *data = NULL;
        size_t len = 0;
        if (wsc_recv(&live, &data, &len, 100) >= 0)
            free(data);
    }
    assert_true(live.pings_seen >= 1);
    expect_error(&live, "still there?", 0, "invalid_json");
    assert_int_equal(wsc_wait_close(&mute, WAIT_MS), 1000);
    assert_true(mute.pings_seen >= 1);
    wsc_close(&mute, 0);
    wsc_close(&live, 1000);
}

/* A socket belongs to the session that opened it: logging that session out closes it (1008);
 * a socket of another session of the same user stays. */
static void test_session_revoked(void **state)
{
    (void)state;
    char url[256], body[256];
    snprintf(url, sizeof(url), "%s/api/v1/auth/login", server.https_base);
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", alice.email, PASSWORD);
    const char *login_headers[] = {"Content-Type: application/json", NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, "POST", url, login_headers, body, strlen(body));
    assert_int_equal(res.status, 200);
    json_t *doc = json_loads(res.body, 0, NULL);
    harness_account_t session = alice;
    snprintf(session.auth, sizeof(session.auth), "Authorization: Bearer %s",
             json_string_value(json_object_get(doc, "access_token")));
    json_decref(doc);
    harness_response_free(&res);
    wsc_t revoked, kept;
    open_member(&revoked, &other, &session);
    open_member(&kept, &server, &alice);
    snprintf(url, sizeof(url), "%s/api/v1/auth/logout", server.https_base);
    const char *headers[] = {session.auth, NULL};
    harness_request(&res, HARNESS_HTTP2, "POST", url, headers, NULL, 0);
    assert_int_equal(res.status, 204);
    harness_response_free(&res);
    assert_int_equal(wsc_wait_close(&revoked, WAIT_MS), 1008);
    wsc_close(&revoked, 0);
    expect_error(&kept, "still here?", 0, "invalid_json");
    wsc_close(&kept, 1000);
}

/* SIGTERM: every socket gets 1001, and the server still exits 0 (the drain does not wait for
 * a client that never answers the close). */
static void test_shutdown_closes(void **state)
{
    (void)state;
    harness_server_t third;
    assert_int_equal(harness_server_start(&third, server_env), 0);
    wsc_t quiet, polite;
    open_member(&quiet, &third, &alice);
    open_member(&polite, &third, &bob);
    assert_int_equal(harness_server_stop(&third), 0);
    assert_int_equal(wsc_wait_close(&quiet, WAIT_MS), 1001);
    assert_int_equal(wsc_wait_close(&polite, WAIT_MS), 1001);
    wsc_close(&quiet, 0);
    wsc_close(&polite, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),         cmocka_unit_test(test_ticket_once),
        cmocka_unit_test(test_invalid_messages), cmocka_unit_test(test_tls),
        cmocka_unit_test(test_two_instances),    cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_message_too_big),  cmocka_unit_test(test_pings),
        cmocka_unit_test(test_session_revoked),  cmocka_unit_test(test_shutdown_closes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
