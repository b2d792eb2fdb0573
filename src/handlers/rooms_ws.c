/*
 * GET /api/v1/rooms/{id}/ws (contract: Realtime): a room's WebSocket, HTTP/1.1 only (ws.c
 * holds the transport: limits, pings, the closing handshake, shutdown).
 *
 * Credentials come first (401), then the protocol (HTTP/2: 426, as libh2o 2.2 cannot upgrade
 * there), then the room (404 for non-members). A client's message is stored with the
 * statement and the publication POST /rooms/{id}/messages uses (rooms.c), one at a time per
 * socket so that a socket's messages are stored and told in the order it sent them. Nothing
 * goes from socket to socket directly: a stored message reaches every member as the user
 * event room.message (events.c), and the realtime bus (bus.c) hands it, on every instance,
 * to the member's sockets of that room, the author's own included (its confirmation).
 * Presence goes through the bus's room broadcast, without a backlog.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOMS_WS_NOT_FOUND   "no such room"
#define ROOMS_WS_MAX_WAITING 16 /* messages received, not stored yet (the rate limit keeps it low) */

typedef struct rooms_ws_waiting {
    struct rooms_ws_waiting *next;
    char *text;
} rooms_ws_waiting_t;

typedef struct {
    http_loop_t *loop;
    http_ws_t *ws; /* NULL once gone */
    handlers_bus_watch_t *user_watch, *room_watch;
    char room[37];
    char user[64];
    char sid[64]; /* the session of the token that opened it; "" for an API key */
    char *who;    /* {"id","username"} of the user, for presence */
    rooms_ws_waiting_t *head, *tail;
    int nwaiting;
    int storing; /* a message's store in flight: the state outlives the socket until it answers */
    int joined;  /* "joined" told: once the bus is subscribed, so that the socket hears it too */
} rooms_ws_t;

/* ------------------------------------------------------------ client messages (pure) ---- */

char *handlers_ws_error_frame(const char *code, const char *message, json_t *details)
{
    json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (error != NULL && details != NULL)
        json_object_set(error, "details", details);
    json_decref(details);
    json_t *frame = error != NULL ? json_pack("{s:s, s:o}", "type", "error", "error", error) : NULL;
    char *text = frame != NULL ? json_dumps(frame, JSON_COMPACT) : NULL;
    json_decref(frame);
    return text;
}

static int rooms_ws_invalid(char **error, const char *field, const char *why)
{
    *error = handlers_ws_error_frame("validation_failed", "the message is not valid",
                                     json_pack("{s:s}", field, why));
    return -1;
}

int handlers_room_ws_parse(const char *bytes, size_t len, int binary, char **text, char **error)
{
    *text = NULL;
    *error = NULL;
    if (binary) {
        *error = handlers_ws_error_frame("invalid_json", "messages are JSON objects in text frames", NULL);
        return -1;
    }
    const http_json_limits_t limits = {
        .max_bytes = HANDLERS_WS_MESSAGE_MAX, .max_depth = 16, .max_string = HANDLERS_WS_MESSAGE_MAX};
    json_t *doc = NULL;
    switch (http_json_parse_object(bytes, len, &limits, &doc)) {
    case HTTP_JSON_OK:
        break;
    case HTTP_JSON_NUL:
        *error = handlers_ws_error_frame("validation_failed", "the message is not valid", doc);
        return -1;
    default:
        *error = handlers_ws_error_frame("invalid_json", "the message is not a JSON object", NULL);
        return -1;
    }
    const char *type = json_string_value(json_object_get(doc, "type"));
    const json_t *value = json_object_get(doc, "text");
    int rc = 0;
    if (type == NULL || strcmp(type, "message") != 0)
        rc = rooms_ws_invalid(error, "type", "must be \"message\"");
    else if (!json_is_string(value))
        rc = rooms_ws_invalid(error, "text", "must be a string");
    else if (!handlers_text_within(value, HANDLERS_ROOM_TEXT_MAX))
        rc = rooms_ws_invalid(error, "text", "must be 1 to 4000 characters");
    else if ((*text = strdup(json_string_value(value))) == NULL)
        rc = -1;
    json_decref(doc);
    return rc;
}

/* --------------------------------------------------------------- the socket ---- */

static void rooms_ws_free(rooms_ws_t *s)
{
    while (s->head != NULL) {
        rooms_ws_waiting_t *w = s->head;
        s->head = w->next;
        free(w->text);
        free(w);
    }
    free(s->who);
    free(s);
}

static void rooms_ws_send_error(rooms_ws_t *s, const char *code, const char *message)
{
    char *frame = handlers_ws_error_frame(code, message, NULL);
    if (frame != NULL && s->ws != NULL)
        http_ws_send_text(s->ws, frame, strlen(frame));
    free(frame);
}

/* {"type":"presence","user":{...},"state":state} to the room's sockets on every instance. */
static void rooms_ws_presence(rooms_ws_t *s, const char *state)
{
    size_t len = strlen(s->who) + strlen(state) + 64;
    char *frame = malloc(len);
    if (frame == NULL)
        return;
    snprintf(frame, len, "{\"type\":\"presence\",\"user\":%s,\"state\":\"%s\"}", s->who, state);
    handlers_bus_publish_room(s->loop, s->room, frame);
    free(frame);
}

static void rooms_ws_store_next(rooms_ws_t *s);

static void rooms_ws_stored(void *data, const db_reply_t *reply)
{
    rooms_ws_t *s = data;
    s->storing = 0;
    /* told even when the socket is gone: a stored message is always told */
    const char *message = handlers_room_message_stored(s->loop, reply);
    if (s->ws == NULL) {
        rooms_ws_free(s);
        return;
    }
    if (message == NULL && reply->status == DB_OK) {
        rooms_ws_send_error(s, "not_found", ROOMS_WS_NOT_FOUND);
        http_ws_close(s->ws, 1008, "not a member of the room");
        return;
    }
    if (message == NULL)
        rooms_ws_send_error(s, reply->status == DB_ERR_INDOUBT ? "internal" : "unavailable",
                            reply->status == DB_ERR_INDOUBT ? "the message may or may not have been stored"
                                                            : "the message was not stored; send it again");
    rooms_ws_store_next(s);
}

static void rooms_ws_store_next(rooms_ws_t *s)
{
    while (!s->storing && s->head != NULL && s->ws != NULL) {
        rooms_ws_waiting_t *w = s->head;
        s->head = w->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->nwaiting--;
        const char *values[] = {s->room, s->user, w->text};
        db_query_t q = handlers_room_message_query(values);
        if (s->loop->pg != NULL && db_pg_submit(s->loop->pg, &q, 1, rooms_ws_stored, s) == 0)
            s->storing = 1;
        else
            rooms_ws_send_error(s, "unavailable", "the message was not stored; send it again");
        free(w->text);
        free(w);
    }
}

static void rooms_ws_message(void *data, int binary, const char *bytes, size_t len)
{
    rooms_ws_t *s = data;
    char *text = NULL, *error = NULL;
    if (handlers_room_ws_parse(bytes, len, binary, &text, &error) != 0) {
        if (error != NULL)
            http_ws_send_text(s->ws, error, strlen(error));
        free(error);
        return;
    }
    rooms_ws_waiting_t *w = s->nwaiting < ROOMS_WS_MAX_WAITING ? malloc(sizeof(*w)) : NULL;
    if (w == NULL) {
        free(text);
        rooms_ws_send_error(s, "unavailable", "too many messages waiting to be stored; send it again");
        return;
    }
    *w = (rooms_ws_waiting_t){.text = text};
    if (s->tail != NULL)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    s->nwaiting++;
    rooms_ws_store_next(s);
}

static void rooms_ws_unwatch(rooms_ws_t *s)
{
    if (s->user_watch != NULL)
        handlers_bus_unwatch(s->user_watch);
    if (s->room_watch != NULL)
        handlers_bus_unwatch(s->room_watch);
    s->user_watch = s->room_watch = NULL;
}

static void rooms_ws_gone(void *data)
{
    rooms_ws_t *s = data;
    s->ws = NULL;
    rooms_ws_unwatch(s);
    rooms_ws_presence(s, "left");
    if (!s->storing)
        rooms_ws_free(s);
}

/* A session.revoked event about the socket's session (its own, or all of them). */
static int rooms_ws_revoked(const rooms_ws_t *s, const handlers_bus_msg_t *msg)
{
    if (s->sid[0] == '\0')
        return 0;
    json_t *doc = json_loadb(msg->data, msg->data_len, 0, NULL);
    const char *sid = json_string_value(json_object_get(doc, "session_id"));
    int mine = sid != NULL && (strcmp(sid, s->sid) == 0 || strcmp(sid, HANDLERS_EVENTS_ALL_SESSIONS) == 0);
    json_decref(doc);
    return mine;
}

/* The user's events: the room's messages go to the socket; the end of its session ends it. */
static void rooms_ws_user_event(void *data, const handlers_bus_msg_t *msg)
{
    rooms_ws_t *s = data;
    if (msg == NULL || s->ws == NULL)
        return;
    if (strcmp(msg->event, "session.revoked") == 0 && rooms_ws_revoked(s, msg)) {
        http_ws_close(s->ws, 1008, "the session was revoked");
        return;
    }
    if (strcmp(msg->event, "room.message") != 0)
        return;
    json_t *doc = json_loadb(msg->data, msg->data_len, 0, NULL);
    const char *room = json_string_value(json_object_get(doc, "room_id"));
    int ours = room != NULL && strcmp(room, s->room) == 0;
    json_decref(doc);
    if (!ours)
        return;
    util_buf_t b = {0};
    util_buf_str(&b, "{\"type\":\"message\",\"message\":");
    util_buf_put(&b, msg->data, msg->data_len);
    util_buf_str(&b, "}");
    if (!b.failed)
        http_ws_send_text(s->ws, b.data, b.len);
    util_buf_free(&b);
}

static void rooms_ws_join(rooms_ws_t *s)
{
    if (s->joined)
        return;
    s->joined = 1;
    rooms_ws_presence(s, "joined");
}

/* The room's broadcasts (presence) are frames already. The bus's (re)subscription (msg NULL)
 * is when a socket opened meanwhile is told as joined. */
static void rooms_ws_room_event(void *data, const handlers_bus_msg_t *msg)
{
    rooms_ws_t *s = data;
    if (s->ws == NULL)
        return;
    if (msg == NULL)
        rooms_ws_join(s);
    else
        http_ws_send_text(s->ws, msg->data, msg->data_len);
}

/* ---------------------------------------------------------------- opening ---- */

/* The request's state: the socket's, until the socket takes it. */
static void rooms_ws_holder_free(void *p)
{
    rooms_ws_t **holder = p;
    if (*holder != NULL)
        rooms_ws_free(*holder);
    free(holder);
}

static void rooms_ws_member(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQgetvalue(reply->results[0], 0, DB_COL_ROOM_MEMBER_MEMBER)[0] != 't') {
        http_respond_error(r, 404, "not_found", ROOMS_WS_NOT_FOUND, NULL);
        return;
    }
    rooms_ws_t **holder = r->state, *s = *holder;
    const handlers_app_t *app = r->app;
    char room_key[64];
    snprintf(room_key, sizeof(room_key), HANDLERS_BUS_ROOM "%s", s->room);
    s->loop = r->loop;
    s->user_watch = handlers_bus_watch(r, s->user, rooms_ws_user_event, s);
    s->room_watch = handlers_bus_watch(r, room_key, rooms_ws_room_event, s);
    if (s->user_watch == NULL || s->room_watch == NULL) {
        rooms_ws_unwatch(s);
        http_respond_error(r, 503, "unavailable", "the realtime bus is unavailable", NULL);
        return;
    }
    const http_ws_limits_t limits = {
        .max_message = HANDLERS_WS_MESSAGE_MAX,
        .max_per_second = 10,
        .max_queued = (size_t)app->cfg->realtime.stream_queue,
        .ping_ms = (uint64_t)app->cfg->realtime.heartbeat_ms,
    };
    static const http_ws_callbacks_t callbacks = {rooms_ws_message, rooms_ws_gone};
    s->ws = http_ws_accept(r, &limits, &callbacks, s);
    if (s->ws == NULL) {
        rooms_ws_unwatch(s);
        return;
    }
    *holder = NULL; /* the socket's now: freed once it is gone */
    if (handlers_bus_live(r->loop))
        rooms_ws_join(s);
}

/* {"id","username"} of the user's JSON, malloc'd, or NULL. */
static char *rooms_ws_who(const handlers_user_t *user)
{
    json_t *doc = user->user_json != NULL ? json_loads(user->user_json, 0, NULL) : NULL;
    const char *username = json_string_value(json_object_get(doc, "username"));
    json_t *who = json_pack("{s:s, s:s?}", "id", user->id, "username", username);
    char *text = who != NULL ? json_dumps(who, JSON_COMPACT) : NULL;
    json_decref(who);
    json_decref(doc);
    return text;
}

static void rooms_ws_open_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (r->h2o != NULL && r->h2o->version >= 0x200) {
        http_respond_error(r, 426, "upgrade_required",
                           "a WebSocket needs HTTP/1.1 with Upgrade: websocket (HTTP/2 cannot upgrade)",
                           NULL);
        return;
    }
    if (handlers_path_id(r, ROOMS_WS_NOT_FOUND, id) != 0)
        return;
    int handshake = http_ws_is_handshake(r);
    if (handshake < 0) {
        http_respond_error(r, 400, "bad_request", "the WebSocket handshake is malformed", NULL);
        return;
    }
    if (handshake == 0) {
        http_add_header(r, "Upgrade", "websocket");
        http_respond_error(r, 426, "upgrade_required", "this is a WebSocket: send Upgrade: websocket", NULL);
        return;
    }
    rooms_ws_t *s = calloc(1, sizeof(*s));
    char *who = s != NULL ? rooms_ws_who(user) : NULL;
    if (who == NULL) {
        free(s);
        http_respond_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    s->who = who;
    memcpy(s->room, id, sizeof(s->room));
    snprintf(s->user, sizeof(s->user), "%s", user->id);
    snprintf(s->sid, sizeof(s->sid), "%s", user->claims.sid);
    rooms_ws_t **holder = handlers_state_replace(r, sizeof(*holder), rooms_ws_holder_free);
    if (holder == NULL) {
        rooms_ws_free(s);
        return;
    }
    *holder = s;
    const char *values[] = {s->room, s->user};
    db_query_t q = {.stmt = DB_STMT_ROOM_MEMBER, .nparams = 2, .values = values};
    http_pg(r, &q, 1, rooms_ws_member);
}

void handlers_rooms_ws(http_request_t *r)
{
    handlers_authenticate_realtime(r, rooms_ws_open_ok);
}
