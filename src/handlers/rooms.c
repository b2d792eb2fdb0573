/*
 * Chat rooms over HTTP (contract: Realtime, /api/v1/rooms): rooms, members and messages in
 * PostgreSQL (migration 0009). Only members see a room: to anybody else every room route
 * answers 404, so a room's existence is not told. Membership is checked inside the statement
 * that acts (one round trip, and no window between a check and the act).
 */
#include "handlers/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOMS_NOT_FOUND    "no such room"
#define ROOMS_NAME_MAX     100
#define ROOMS_CURSOR_RANGE 18 /* digits of a message cursor: within bigint */

/* The room's id from the path, or 404 answered. */
static int rooms_target(http_request_t *r, char out[37])
{
    return handlers_path_id(r, ROOMS_NOT_FOUND, out);
}

int handlers_text_within(const json_t *value, long max)
{
    if (!json_is_string(value))
        return 0;
    long n = auth_utf8_length(json_string_value(value), json_string_length(value));
    return n >= 1 && n <= max;
}

/* The body's one string field `name`, 1..max characters: its value, or NULL with 422
 * answered. */
static const char *rooms_text_field(http_request_t *r, const char *name, long max)
{
    const handlers_field_t fields[] = {{name, JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 1);
    const json_t *value = json_object_get(r->body, name);
    if (details == NULL && !handlers_text_within(value, max)) {
        char why[64];
        snprintf(why, sizeof(why), "must be 1 to %ld characters", max);
        details = json_pack("{s:s}", name, why);
    }
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return NULL;
    }
    return json_string_value(value);
}

/* ------------------------------------------------------------------ rooms ---- */

static void rooms_created(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_row(r, reply, DB_COL_ROOM_CREATE_ROOM, 201, "room", ROOMS_NOT_FOUND);
}

static void rooms_create_ok(http_request_t *r, handlers_user_t *user)
{
    const char *name = rooms_text_field(r, "name", ROOMS_NAME_MAX);
    if (name == NULL)
        return;
    const char *values[] = {name, user->id};
    db_query_t q = {.stmt = DB_STMT_ROOM_CREATE, .nparams = 2, .values = values};
    http_pg(r, &q, 1, rooms_created);
}

static void rooms_create(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_create_ok);
}

typedef struct {
    int limit;
} rooms_page_t;

static void rooms_listed(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_page(r, reply, ((rooms_page_t *)r->state)->limit, DB_COL_ROOM_LIST_ROOM,
                          DB_COL_ROOM_LIST_ID, -1);
}

static void rooms_list_ok(http_request_t *r, handlers_user_t *user)
{
    char cursor[40], uid[64], limit[16];
    int page_limit = 0;
    int n = http_query_param(r, "cursor", cursor, sizeof(cursor));
    if (handlers_parse_limit(r, &page_limit) != 0 || n == -2 ||
        (n >= 0 && !util_uuid_valid(cursor, (size_t)n))) {
        http_respond_error(r, 400, "bad_request", "limit is 1 to 100; cursor must be as given", NULL);
        return;
    }
    snprintf(uid, sizeof(uid), "%s", user->id);
    rooms_page_t *page = handlers_state_replace(r, sizeof(*page), free);
    if (page == NULL)
        return;
    page->limit = page_limit;
    snprintf(limit, sizeof(limit), "%d", page_limit + 1);
    const char *values[] = {uid, limit, n >= 0 ? cursor : NULL};
    db_query_t q = {.stmt = DB_STMT_ROOM_LIST, .nparams = 3, .values = values};
    http_pg(r, &q, 1, rooms_listed);
}

static void rooms_list(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_list_ok);
}

/* ---------------------------------------------------------------- members ---- */

/* The user added (not a member before) hears of it: room.invited with {"room": Room}; also
 * when the caller has left meanwhile (http_pg_always). */
static void rooms_invited(http_request_t *r, PGresult *res)
{
    const char *user = ((const char *)r->state);
    const char *room = PQgetvalue(res, 0, DB_COL_ROOM_MEMBER_ADD_ROOM);
    size_t len = strlen(room) + 16;
    char *data = malloc(len);
    if (data == NULL)
        return;
    snprintf(data, len, "{\"room\":%s}", room);
    handlers_events_publish(r->loop, "room.invited", data, &user, 1);
    free(data);
}

static void rooms_member_added(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQgetvalue(res, 0, DB_COL_ROOM_MEMBER_ADD_MEMBER)[0] != 't') {
        http_respond_error(r, 404, "not_found", ROOMS_NOT_FOUND, NULL);
        return;
    }
    if (PQgetvalue(res, 0, DB_COL_ROOM_MEMBER_ADD_USER_EXISTS)[0] != 't') {
        handlers_respond_invalid(r, json_pack("{s:s}", "user_id", "no such user"));
        return;
    }
    if (PQgetvalue(res, 0, DB_COL_ROOM_MEMBER_ADD_ADDED)[0] == 't')
        rooms_invited(r, res);
    http_respond_empty(r, 204);
}

static void rooms_member_add_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (rooms_target(r, id) != 0)
        return;
    const handlers_field_t fields[] = {{"user_id", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 1);
    const json_t *added = json_object_get(r->body, "user_id");
    if (details == NULL && !util_uuid_valid(json_string_value(added), json_string_length(added)))
        details = json_pack("{s:s}", "user_id", "must be a user id");
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    /* The added user's id is the state: room.invited goes to them. */
    char uid[64];
    snprintf(uid, sizeof(uid), "%s", user->id);
    char *target = handlers_state_replace(r, 37, free);
    if (target == NULL)
        return;
    memcpy(target, json_string_value(added), 36);
    const char *values[] = {id, uid, target};
    db_query_t q = {.stmt = DB_STMT_ROOM_MEMBER_ADD, .nparams = 3, .values = values};
    http_pg_always(r, &q, 1, rooms_member_added);
}

static void rooms_member_add(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_member_add_ok);
}

static void rooms_left(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1)
        http_respond_error(r, 404, "not_found", ROOMS_NOT_FOUND, NULL);
    else
        http_respond_empty(r, 204);
}

static void rooms_leave_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (rooms_target(r, id) != 0)
        return;
    const char *values[] = {id, user->id};
    db_query_t q = {.stmt = DB_STMT_ROOM_MEMBER_LEAVE, .nparams = 2, .values = values};
    http_pg(r, &q, 1, rooms_left);
}

static void rooms_leave(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_leave_ok);
}

/* --------------------------------------------------------------- messages ---- */

db_query_t handlers_room_message_query(const char *const values[3])
{
    return (db_query_t){.stmt = DB_STMT_ROOM_MESSAGE_CREATE, .nparams = 3, .values = values};
}

const char *handlers_room_message_stored(http_loop_t *loop, const db_reply_t *reply)
{
    if (reply->status != DB_OK || PQntuples(reply->results[0]) != 1)
        return NULL;
    const char *message = PQgetvalue(reply->results[0], 0, DB_COL_ROOM_MESSAGE_CREATE_MESSAGE);
    handlers_events_publish_json_users(loop, "room.message", message,
                                       PQgetvalue(reply->results[0], 0, DB_COL_ROOM_MESSAGE_CREATE_MEMBERS));
    return message;
}

/* Stored, then told: room.message to every member (the author's other streams too), also
 * when the author has left meanwhile (http_pg_always): a stored message is always told. */
static void rooms_message_created(http_request_t *r, const db_reply_t *reply)
{
    handlers_room_message_stored(r->loop, reply);
    handlers_respond_row(r, reply, DB_COL_ROOM_MESSAGE_CREATE_MESSAGE, 201, "message", ROOMS_NOT_FOUND);
}

static void rooms_message_create_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (rooms_target(r, id) != 0)
        return;
    const char *text = rooms_text_field(r, "text", HANDLERS_ROOM_TEXT_MAX);
    if (text == NULL)
        return;
    const char *values[] = {id, user->id, text};
    db_query_t q = handlers_room_message_query(values);
    http_pg_always(r, &q, 1, rooms_message_created);
}

static void rooms_message_create(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_message_create_ok);
}

/* The membership check, then the page: a member's empty room is an empty list, anybody
 * else's 404. */
static void rooms_messages_listed(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQgetvalue(reply->results[0], 0, DB_COL_ROOM_MEMBER_MEMBER)[0] != 't') {
        http_respond_error(r, 404, "not_found", ROOMS_NOT_FOUND, NULL);
        return;
    }
    db_reply_t page = *reply;
    page.results = reply->results + 1;
    page.nresults = 1;
    handlers_respond_page(r, &page, ((rooms_page_t *)r->state)->limit, DB_COL_ROOM_MESSAGE_LIST_MESSAGE,
                          DB_COL_ROOM_MESSAGE_LIST_SEQ, -1);
}

/* A message cursor: the seq handlers_respond_page wrote, 1..18 digits. */
static int rooms_seq_cursor(http_request_t *r, char out[ROOMS_CURSOR_RANGE + 2])
{
    int n = http_query_param(r, "cursor", out, ROOMS_CURSOR_RANGE + 2);
    if (n == -1)
        return 0;
    if (n < 1 || n > ROOMS_CURSOR_RANGE)
        return -1;
    for (int i = 0; i < n; i++)
        if (!isdigit((unsigned char)out[i]))
            return -1;
    return 1;
}

static void rooms_messages_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37], uid[64], limit[16], cursor[ROOMS_CURSOR_RANGE + 2];
    int page_limit = 0;
    if (rooms_target(r, id) != 0)
        return;
    int has_cursor = rooms_seq_cursor(r, cursor);
    if (handlers_parse_limit(r, &page_limit) != 0 || has_cursor < 0) {
        http_respond_error(r, 400, "bad_request", "limit is 1 to 100; cursor must be as given", NULL);
        return;
    }
    snprintf(uid, sizeof(uid), "%s", user->id);
    rooms_page_t *page = handlers_state_replace(r, sizeof(*page), free);
    if (page == NULL)
        return;
    page->limit = page_limit;
    snprintf(limit, sizeof(limit), "%d", page_limit + 1);
    const char *values[] = {id, uid, limit, has_cursor ? cursor : NULL};
    db_query_t batch[2] = {
        {.stmt = DB_STMT_ROOM_MEMBER, .nparams = 2, .values = values},
        {.stmt = DB_STMT_ROOM_MESSAGE_LIST, .nparams = 4, .values = values},
    };
    http_pg(r, batch, 2, rooms_messages_listed);
}

static void rooms_messages(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_messages_ok);
}

int handlers_rooms_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"POST", "/api/v1/rooms", rooms_create, 0, HTTP_ROUTE_AUTHENTICATED | HTTP_ROUTE_JSON_BODY},
        {"GET", "/api/v1/rooms", rooms_list, 0, HTTP_ROUTE_AUTHENTICATED},
        {"POST", "/api/v1/rooms/{id}/members", rooms_member_add, 0,
         HTTP_ROUTE_AUTHENTICATED | HTTP_ROUTE_JSON_BODY},
        {"DELETE", "/api/v1/rooms/{id}/members/me", rooms_leave, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/rooms/{id}/messages", rooms_messages, 0, HTTP_ROUTE_AUTHENTICATED},
        {"POST", "/api/v1/rooms/{id}/messages", rooms_message_create, 0,
         HTTP_ROUTE_AUTHENTICATED | HTTP_ROUTE_JSON_BODY},
        {"GET", "/api/v1/rooms/{id}/ws", handlers_rooms_ws, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
