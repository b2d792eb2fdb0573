/*
 * Realtime routes over real HTTP/2 and HTTP/1.1 against the real server: tickets (issued for
 * a token or an API key, single use, checked again when used) and rooms (members, messages
 * newest first with cursors, 404 for everybody else).
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

static harness_account_t alice, bob, carol;

/* harness_call on the test's server. */
static long call(int protocol, const char *method, const char *path, const char *auth_header,
                 const char *body, json_t **doc)
{
    return harness_call(&server, protocol, method, path, auth_header, body, doc);
}

/* A fresh ticket for the credentials header into out (64 bytes). */
static void ticket_for(const char *auth_header, int protocol, char *out)
{
    json_t *doc = NULL;
    assert_int_equal(call(protocol, "POST", "/api/v1/realtime/ticket", auth_header, NULL, &doc), 201);
    const char *ticket = json_string_value(json_object_get(doc, "ticket"));
    assert_non_null(ticket);
    assert_int_equal(json_integer_value(json_object_get(doc, "expires_in")), 30);
    assert_true(strlen(ticket) >= 32 && strlen(ticket) < 64);
    snprintf(out, 64, "%s", ticket);
    json_decref(doc);
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&server, server_env, &db) != 0)
        return -1;
    if (harness_account_create(&alice, &server, db, server_env, "rt-alice", "user", PASSWORD) != 0 ||
        harness_account_create(&bob, &server, db, server_env, "rt-bob", "user", PASSWORD) != 0 ||
        harness_account_create(&carol, &server, db, server_env, "rt-carol", "user", PASSWORD) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static void test_ticket_issued(void **state)
{
    (void)state;
    char a[64], b[64];
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        ticket_for(alice.auth, protocol, a);
        ticket_for(alice.auth, protocol, b);
        assert_string_not_equal(a, b);
    }
    json_t *doc = NULL;
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/realtime/ticket", NULL, NULL, &doc), 401);
    assert_string_equal(harness_error_code(doc), "unauthorized");
    json_decref(doc);
    assert_int_equal(
        call(HARNESS_HTTP2, "POST", "/api/v1/realtime/ticket", "Authorization: Bearer nope", NULL, &doc),
        401);
    json_decref(doc);
    /* an API key gets one too */
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/me/api-key", bob.auth, NULL, &doc), 201);
    char key[256];
    snprintf(key, sizeof(key), "X-API-Key: %s", json_string_value(json_object_get(doc, "api_key")));
    json_decref(doc);
    ticket_for(key, HARNESS_HTTP2, a);
    /* ... which stands for the key: bob's rooms, once */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/rooms?ticket=%s", a);
    assert_int_equal(call(HARNESS_HTTP1, "GET", path, NULL, NULL, &doc), 200);
    assert_non_null(json_object_get(doc, "items"));
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP1, "GET", path, NULL, NULL, &doc), 401);
    json_decref(doc);
}

/* A room of alice's; its id into out (40 bytes). */
static void make_room(const harness_account_t *who, const char *name, char *out)
{
    char body[256];
    json_t *doc = NULL;
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/rooms", who->auth, body, &doc), 201);
    json_t *room = json_object_get(doc, "room");
    assert_string_equal(json_string_value(json_object_get(room, "name")), name);
    assert_string_equal(json_string_value(json_object_get(room, "created_by")), who->id);
    assert_non_null(json_string_value(json_object_get(room, "created_at")));
    snprintf(out, 40, "%s", json_string_value(json_object_get(room, "id")));
    json_decref(doc);
}

/* The ids of a list answer's items, in order, into ids (at most n); returns how many. */
static int list_ids(const json_t *doc, char ids[][40], int n)
{
    json_t *items = json_object_get(doc, "items");
    int count = 0;
    for (size_t i = 0; i < json_array_size(items) && count < n; i++)
        snprintf(ids[count++], 40, "%s", json_string_value(json_object_get(json_array_get(items, i), "id")));
    return count;
}

static long post_message(const harness_account_t *who, int protocol, const char *room, const char *text,
                         json_t **doc)
{
    char path[128], body[8300];
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages", room);
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", text);
    return call(protocol, "POST", path, who->auth, body, doc);
}

static void test_ticket_single_use(void **state)
{
    (void)state;
    char ticket[64], path[128], room[40];
    make_room(&alice, "ticketed", room);
    ticket_for(alice.auth, HARNESS_HTTP2, ticket);
    snprintf(path, sizeof(path), "/api/v1/rooms?ticket=%s", ticket);
    json_t *doc = NULL;
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        /* the first use (HTTP/1.1) lists alice's rooms; the second is refused */
        long status = call(protocol, "GET", path, NULL, NULL, &doc);
        if (protocol == HARNESS_HTTP1) {
            assert_int_equal(status, 200);
            char ids[8][40];
            assert_true(list_ids(doc, ids, 8) >= 1);
            assert_string_equal(ids[0], room);
        } else {
            assert_int_equal(status, 401);
            assert_string_equal(harness_error_code(doc), "unauthorized");
        }
        json_decref(doc);
    }
    /* garbage and made-up tickets */
    assert_int_equal(call(HARNESS_HTTP2, "GET", "/api/v1/rooms?ticket=x", NULL, NULL, &doc), 401);
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "GET",
                          "/api/v1/rooms?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, NULL,
                          &doc),
                     401);
    json_decref(doc);
    /* a ticket of a user disabled since it was issued is refused when used */
    ticket_for(carol.auth, HARNESS_HTTP2, ticket);
    const char *values[] = {carol.id};
    PQclear(harness_sql(db, "UPDATE users SET disabled = true WHERE id = $1::uuid", 1, values));
    /* a change made behind hydrant's back reaches its principal cache by notification: wait
     * until carol's own token is refused, so that the ticket is judged on the same state */
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline; usleep(20000)) {
        long status = call(HARNESS_HTTP2, "GET", "/api/v1/rooms", carol.auth, NULL, &doc);
        json_decref(doc);
        if (status != 200)
            break;
    }
    snprintf(path, sizeof(path), "/api/v1/rooms?ticket=%s", ticket);
    assert_int_equal(call(HARNESS_HTTP2, "GET", path, NULL, NULL, &doc), 401);
    json_decref(doc);
    PQclear(harness_sql(db, "UPDATE users SET disabled = false WHERE id = $1::uuid", 1, values));
}

static void test_rooms_and_members(void **state)
{
    (void)state;
    char room[40], other[40], path[160], body[128], ids[8][40];
    json_t *doc = NULL;
    make_room(&alice, "first", other);
    make_room(&alice, "second", room);
    /* newest first, one a page */
    assert_int_equal(call(HARNESS_HTTP1, "GET", "/api/v1/rooms?limit=1", alice.auth, NULL, &doc), 200);
    assert_int_equal(list_ids(doc, ids, 8), 1);
    assert_string_equal(ids[0], room);
    snprintf(path, sizeof(path), "/api/v1/rooms?limit=1&cursor=%s",
             json_string_value(json_object_get(doc, "next_cursor")));
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "GET", path, alice.auth, NULL, &doc), 200);
    assert_int_equal(list_ids(doc, ids, 8), 1);
    assert_string_equal(ids[0], other);
    json_decref(doc);
    /* bob is no member: the room does not exist for him */
    assert_int_equal(call(HARNESS_HTTP2, "GET", "/api/v1/rooms", bob.auth, NULL, &doc), 200);
    assert_int_equal(list_ids(doc, ids, 8), 0);
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages", room);
    assert_int_equal(call(HARNESS_HTTP2, "GET", path, bob.auth, NULL, &doc), 404);
    assert_string_equal(harness_error_code(doc), "not_found");
    json_decref(doc);
    assert_int_equal(post_message(&bob, HARNESS_HTTP2, room, "hi", &doc), 404);
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/members", room);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", bob.id);
    assert_int_equal(call(HARNESS_HTTP2, "POST", path, bob.auth, body, &doc), 404);
    json_decref(doc);
    /* alice adds bob (twice: still 204), bob sees the room and adds carol */
    for (int i = 0; i < 2; i++)
        assert_int_equal(call(HARNESS_HTTP1 + i, "POST", path, alice.auth, body, NULL), 204);
    assert_int_equal(call(HARNESS_HTTP2, "GET", "/api/v1/rooms", bob.auth, NULL, &doc), 200);
    assert_int_equal(list_ids(doc, ids, 8), 1);
    assert_string_equal(ids[0], room);
    json_decref(doc);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", carol.id);
    assert_int_equal(call(HARNESS_HTTP2, "POST", path, bob.auth, body, NULL), 204);
    /* an unknown user, a bad body */
    assert_int_equal(call(HARNESS_HTTP2, "POST", path, bob.auth,
                          "{\"user_id\":\"00000000-0000-7000-8000-000000000000\"}", &doc),
                     422);
    assert_string_equal(harness_error_code(doc), "validation_failed");
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "POST", path, bob.auth, "{\"user_id\":42}", &doc), 422);
    json_decref(doc);
    /* carol leaves: then the room is gone for her, and leaving again is 404 */
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/members/me", room);
    assert_int_equal(call(HARNESS_HTTP2, "DELETE", path, carol.auth, NULL, NULL), 204);
    assert_int_equal(call(HARNESS_HTTP1, "DELETE", path, carol.auth, NULL, &doc), 404);
    json_decref(doc);
    assert_int_equal(post_message(&carol, HARNESS_HTTP2, room, "still here?", &doc), 404);
    json_decref(doc);
    /* names: required, 1..100 characters */
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/rooms", alice.auth, "{\"name\":\"\"}", &doc), 422);
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/rooms", alice.auth, "{}", &doc), 422);
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/rooms", NULL, "{\"name\":\"x\"}", &doc), 401);
    json_decref(doc);
    assert_int_equal(call(HARNESS_HTTP2, "GET", "/api/v1/rooms/not-a-uuid/messages", alice.auth, NULL, &doc),
                     404);
    json_decref(doc);
}

static void test_messages_newest_first(void **state)
{
    (void)state;
    char room[40], path[256], sent[5][40], ids[8][40];
    json_t *doc = NULL;
    make_room(&bob, "history", room);
    for (int i = 0; i < 5; i++) {
        char text[16];
        snprintf(text, sizeof(text), "message %d", i);
        assert_int_equal(post_message(&bob, i % 2 ? HARNESS_HTTP1 : HARNESS_HTTP2, room, text, &doc), 201);
        json_t *m = json_object_get(doc, "message");
        assert_string_equal(json_string_value(json_object_get(m, "text")), text);
        assert_string_equal(json_string_value(json_object_get(m, "room_id")), room);
        assert_string_equal(json_string_value(json_object_get(json_object_get(m, "user"), "id")), bob.id);
        assert_non_null(json_object_get(json_object_get(m, "user"), "username")); /* null without one */
        snprintf(sent[i], 40, "%s", json_string_value(json_object_get(m, "id")));
        json_decref(doc);
    }
    /* pages of two: 4 3 | 2 1 | 0, each once */
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages?limit=2", room);
    int seen = 4;
    for (int page = 0; page < 3; page++) {
        assert_int_equal(call(HARNESS_HTTP2, "GET", path, bob.auth, NULL, &doc), 200);
        int n = list_ids(doc, ids, 8);
        assert_int_equal(n, page < 2 ? 2 : 1);
        for (int i = 0; i < n; i++)
            assert_string_equal(ids[i], sent[seen--]);
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        if (page < 2)
            snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages?limit=2&cursor=%s", room, next);
        else
            assert_null(next);
        json_decref(doc);
    }
    /* text: 1..4000 characters (counted as characters, not bytes) */
    static char long_text[8200];
    memset(long_text, 0, sizeof(long_text));
    for (int i = 0; i < 4000; i++)
        strcat(long_text, "\xc3\xa9");
    assert_int_equal(post_message(&bob, HARNESS_HTTP2, room, long_text, &doc), 201);
    json_decref(doc);
    strcat(long_text, "x");
    assert_int_equal(post_message(&bob, HARNESS_HTTP2, room, long_text, &doc), 422);
    assert_string_equal(harness_error_code(doc), "validation_failed");
    json_decref(doc);
    assert_int_equal(post_message(&bob, HARNESS_HTTP2, room, "", &doc), 422);
    json_decref(doc);
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/messages?cursor=abc", room);
    assert_int_equal(call(HARNESS_HTTP2, "GET", path, bob.auth, NULL, &doc), 400);
    json_decref(doc);
}

/* The user's backlog in Redis as "event data" lines, oldest first, into out (n lines at most,
 * 8 KiB each; events of up to 4 KiB); their ids (the stream entry ids' first part) into ids. Returns how
 * many. */
static int backlog(const char *user, char out[][8192], long long *ids, int n)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "redis-cli -p %d --raw XRANGE hydrant:rt:log:%s - +",
             harness_service_port("redis"), user);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char line[3][4096];
    int count = 0;
    /* each entry: its id, then "event", the event, "data", the data */
    while (count < n && fgets(line[0], sizeof(line[0]), p) != NULL) {
        char field[64];
        assert_non_null(fgets(field, sizeof(field), p));
        assert_non_null(fgets(line[1], sizeof(line[1]), p));
        assert_non_null(fgets(field, sizeof(field), p));
        assert_non_null(fgets(line[2], sizeof(line[2]), p));
        line[1][strcspn(line[1], "\n")] = '\0';
        line[2][strcspn(line[2], "\n")] = '\0';
        ids[count] = atoll(line[0]);
        snprintf(out[count++], 8192, "%s %s", line[1], line[2]);
    }
    pclose(p);
    return count;
}

/* The "text" of the Message in an event line "room.message <Message>", or "". */
static const char *event_text(const char *line, char *out, size_t outlen)
{
    json_t *m = json_loads(line + strlen("room.message "), 0, NULL);
    snprintf(out, outlen, "%s",
             json_string_value(json_object_get(m, "text")) ? json_string_value(json_object_get(m, "text"))
                                                           : "");
    json_decref(m);
    return out;
}

static void test_events_published(void **state)
{
    (void)state;
    harness_account_t dave, erin;
    assert_int_equal(harness_account_create(&dave, &server, db, server_env, "rt-dave", "user", PASSWORD), 0);
    assert_int_equal(harness_account_create(&erin, &server, db, server_env, "rt-erin", "user", PASSWORD), 0);
    char room[40], path[128], body[128], events[8][8192];
    long long ids[8];
    json_t *doc = NULL;
    make_room(&dave, "events", room);
    snprintf(path, sizeof(path), "/api/v1/rooms/%s/members", room);
    snprintf(body, sizeof(body), "{\"user_id\":\"%s\"}", erin.id);
    assert_int_equal(call(HARNESS_HTTP2, "POST", path, dave.auth, body, NULL), 204);
    assert_int_equal(call(HARNESS_HTTP1, "POST", path, dave.auth, body, NULL),
                     204); /* no second invitation */
    assert_int_equal(post_message(&dave, HARNESS_HTTP2, room, "one", &doc), 201);
    char *first = json_dumps(json_object_get(doc, "message"), JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    assert_int_equal(post_message(&erin, HARNESS_HTTP1, room, "two", &doc), 201);
    json_decref(doc);
    /* erin: invited, then both messages, ids 1 2 3 */
    assert_int_equal(backlog(erin.id, events, ids, 8), 3);
    assert_true(strncmp(events[0], "room.invited {\"room\":", 21) == 0);
    json_t *invited = json_loads(events[0] + 13, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(invited, "room"), "id")), room);
    json_decref(invited);
    assert_true(strncmp(events[1], "room.message ", 13) == 0);
    json_t *told = json_loads(events[1] + 13, 0, NULL);
    char *told_text = json_dumps(told, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(told_text, first); /* the bare Message, as the POST answered it */
    free(told_text);
    json_decref(told);
    char text[64];
    assert_string_equal(event_text(events[2], text, sizeof(text)), "two");
    for (int i = 0; i < 3; i++)
        assert_int_equal(ids[i], i + 1);
    /* dave: no invitation, both messages */
    assert_int_equal(backlog(dave.id, events, ids, 8), 2);
    assert_string_equal(event_text(events[0], text, sizeof(text)), "one");
    assert_true(ids[0] == 1 && ids[1] == 2);
    free(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticket_issued),     cmocka_unit_test(test_ticket_single_use),
        cmocka_unit_test(test_rooms_and_members), cmocka_unit_test(test_messages_newest_first),
        cmocka_unit_test(test_events_published),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
