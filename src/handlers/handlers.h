/*
 * Route handlers, one file per route family. Each family adds its routes to the router at
 * start-up; handlers read their start-up data from r->app (a handlers_app_t).
 */
#ifndef HYDRANT_HANDLERS_H
#define HYDRANT_HANDLERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "config/config.h"
#include "auth/auth.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "util/util.h"

typedef struct handlers_principals handlers_principals_t; /* principal.c */

typedef struct {
    const cfg_t *cfg;
    char hostname[256];
    char *openapi_json; /* docs/openapi.yaml converted once to JSON */
    size_t openapi_len;
    const http_server_t *server;  /* for process-wide views (metrics) */
    const jobs_pool_t *jobs;      /* this process's workers, or NULL (metrics) */
    auth_jwt_config_t jwt;        /* access tokens (secret from the configuration) */
    unsigned char jwt_secret[64]; /* a random one for development when none is configured */
    auth_argon2_params_t argon2;
    /* A hash, with argon2's parameters, of a password nobody has: a login for an unknown
     * email verifies against it. Made once here, before any thread reads it. */
    char dummy_hash[AUTH_HASH_MAX];
    handlers_principals_t *principals; /* the principal cache's listener and log, or NULL when off */
    /* Set once by the main thread on SIGTERM/SIGINT: /health/ready answers "draining" from
     * then on, while the loops still serve for limits.drain-delay-ms. */
    atomic_int draining;
} handlers_app_t;

/* Loads what the handlers need (the OpenAPI document, the host name). */
int handlers_app_init(handlers_app_t *app, const cfg_t *cfg, char *err, size_t errlen);
void handlers_app_free(handlers_app_t *app);

/* Adds every route of every family. */
int handlers_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen);

/* A route family: the routes one file adds (src/handlers/<name>.c; the files family's
 * upload and download handlers are in files_upload.c and files_content.c). handlers_register
 * adds them in this order, and `hydrant routes` names each route's family from it. */
typedef struct {
    const char *name;
    int (*add)(http_router_t *router, char *err, size_t errlen);
} handlers_family_t;
extern const handlers_family_t handlers_families[]; /* ends with a NULL name */

/* `hydrant routes` (routes.c): every route handlers_register adds, one line each (method,
 * path template, family, flags), then extra's (family "testhooks") when extra is not NULL;
 * the same tables the server registers, so the listing cannot drift from the server.
 * Returns 0, or -1 with a message. */
int handlers_routes_print(FILE *out, const cfg_t *cfg,
                          int (*extra)(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen),
                          char *err, size_t errlen);

/* Route families. */
int handlers_ops_register(http_router_t *router, char *err, size_t errlen);
int handlers_auth_register(http_router_t *router, char *err, size_t errlen);
int handlers_me_register(http_router_t *router, char *err, size_t errlen);
int handlers_password_register(http_router_t *router, char *err, size_t errlen);
int handlers_profile_register(http_router_t *router, char *err, size_t errlen);
int handlers_admin_register(http_router_t *router, char *err, size_t errlen);
int handlers_jobs_register(http_router_t *router, char *err, size_t errlen);
int handlers_files_register(http_router_t *router, char *err, size_t errlen);
int handlers_realtime_register(http_router_t *router, char *err, size_t errlen);
int handlers_rooms_register(http_router_t *router, char *err, size_t errlen);
int handlers_notifications_register(http_router_t *router, char *err, size_t errlen);
/* POST /api/v1/files (files_upload.c) and GET /api/v1/files/{id}/content (files_content.c). */
void handlers_files_upload(struct http_request *r);
void handlers_files_content(struct http_request *r);
/* Pure parts of serving a file (files_content.c). Does an If-None-Match value name etag
 * (quoted, as sent in ETag) or "*"? */
int handlers_etag_matches(const char *header, size_t len, const char *etag);
/* One byte range of a Range header against size: 1 with offset and count, 0 to ignore the
 * header (malformed or several ranges), -1 when unsatisfiable (416). */
int handlers_parse_range(const char *header, size_t len, uint64_t size, uint64_t *offset, uint64_t *count);
/* The Content-Disposition value for a file name: an ASCII fallback and RFC 8187 UTF-8.
 * Returns 0, or -1 when it does not fit in outlen. */
int handlers_content_disposition(const char *name, char *out, size_t outlen);

/* ---- shared by the families ---- */

typedef struct {
    const char *name;
    json_type type; /* JSON_TRUE means any boolean */
    int required;
    int nullable;
} handlers_field_t;

/* The 422 details for unknown, missing and mistyped fields, or NULL when the body is fine. */
json_t *handlers_check_fields(const json_t *body, const handlers_field_t *fields, int nfields);
void handlers_respond_invalid(http_request_t *r, json_t *details);

/* Rate limits (limits.c): counters in Redis per limit and subject, each expiring at the end of
 * its window (which its first count starts). The callbacks run only while the client waits. */
typedef struct {
    const char *name;    /* "login-email", "login-address", "email-requests", "emails-reset" */
    const char *subject; /* the email or client address */
    int limit;           /* 0: off */
} handlers_limit_t;
typedef void (*handlers_next_fn)(http_request_t *r);
/* Calls next(r) when every counter is under its limit; otherwise answers 429 with
 * Retry-After (or 503 without Redis). Counts nothing. */
void handlers_limit_check(http_request_t *r, const handlers_limit_t *limits, int n, int window_s,
                          handlers_next_fn next);
/* Counts one event (a failed login) against each limit. */
void handlers_limit_hit(http_request_t *r, const handlers_limit_t *limits, int n, int window_s);
/* Counts this request, then calls next(r) if it is within the limit (else 429 / 503). */
void handlers_limit_take(http_request_t *r, const handlers_limit_t *limit, int window_s,
                         handlers_next_fn next);
/* The same, with over(r) instead of the 429 past the limit. */
void handlers_limit_take_or(http_request_t *r, const handlers_limit_t *limit, int window_s,
                            handlers_next_fn next, handlers_next_fn over);

/* Adds a family's route table. */
int handlers_add_routes(http_router_t *router, const http_route_t *routes, size_t n, char *err,
                        size_t errlen);
/* The contract's User as JSON (malloc'd, or NULL) from the DB_COL_USER_ROW__COUNT columns of
 * row starting at col, in DB_COLS_USER_ROW's order (db/columns.h): id, email, username,
 * display_name, bio, role, email_confirmed, disabled, and created_at, updated_at as
 * to_json(ts AT TIME ZONE 'UTC'). */
char *handlers_user_json_from_row(const PGresult *res, int row, int col);
/* Answers {"<name>": <json>} with JSON text built elsewhere (PostgreSQL, user_json.c),
 * wrapped as it is; handlers_respond_user is {"user": ...}. */
void handlers_respond_wrapped(http_request_t *r, int status, const char *name, const char *json);
void handlers_respond_user(http_request_t *r, int status, const char *user_json);

/* Lists and single rows (listing.c). */
typedef struct {
    int limit;
    char cursor_us[24];
    char cursor_id[40];
    int has_cursor;
} handlers_page_t;
/* ?limit= (1..100, default 20). Returns 0, or -1 when malformed (the caller answers 400). */
int handlers_parse_limit(http_request_t *r, int *limit);
/* ?cursor= as handlers_respond_page writes it for (created_at, id) lists. 0 or -1. */
int handlers_parse_time_cursor(http_request_t *r, handlers_page_t *page);
/* Both. 0 or -1. */
int handlers_parse_page(http_request_t *r, handlers_page_t *page);
/* {"items": [column json_col of each row as JSON], "next_cursor"} from a statement asked for
 * limit+1 rows; the cursor is column cursor_col, or "cursor_col.id_col" when id_col is not -1
 * (columns as db/columns.h names them). */
void handlers_respond_page(http_request_t *r, const db_reply_t *reply, int limit, int json_col,
                           int cursor_col, int id_col);
/* The {id} of the path (a UUID) into out, or 404 not_found answered with the message. */
int handlers_path_id(http_request_t *r, const char *not_found, char out[37]);
/* {"<name>": column col} of the one row, 404 when there is none, or the data layer's error. */
void handlers_respond_row(http_request_t *r, const db_reply_t *reply, int col, int status, const char *name,
                          const char *not_found);

/* Frees the request's state (e.g. the authentication's, once its callback has copied what it
 * needs) and gives it a zeroed one of `size` bytes freed by free_fn. On failure answers 500
 * and returns NULL. */
void *handlers_state_replace(http_request_t *r, size_t size, void (*free_fn)(void *));
/* A copy of a JSON string that holds a secret (a password); wipe it with handlers_secret_free. */
char *handlers_secret_copy(const json_t *value, size_t *len);
void handlers_secret_free(char *secret, size_t len);

/* The payload of an email job, {"to": to, "token": token}, as malloc'd JSON text, or NULL
 * when it could not be built (out of memory, a NULL or non-UTF-8 argument). */
char *handlers_email_payload(const char *to, const char *token);

/* The signed-in user of a request, once handlers_authenticate has called back. */
typedef struct {
    char id[64];
    char role[16];
    char *user_json;      /* the contract's User, as PostgreSQL built it (owned) */
    auth_claims_t claims; /* of the access token that authenticated the request */
} handlers_user_t;

/* The user that authenticated the request, while the request's state is still the
 * authentication's (no handlers_state_replace since), else NULL. */
const handlers_user_t *handlers_auth_user(const http_request_t *r);

/* Checks `Authorization: Bearer <access token>`: signature, expiry, type, then the user's
 * row (exists, not disabled, token not issued before tokens_valid_after). On success calls
 * ok(r, user); otherwise answers 401 (or 503) itself. */
typedef void (*handlers_auth_ok_fn)(http_request_t *r, handlers_user_t *user);
/* Files (files.c): the {id} of the path, or 404 answered; the owner a user may see files of
 * (NULL for superusers and admins: anybody's). */
int handlers_file_target(http_request_t *r, char out[37]);
const char *handlers_file_owner_filter(const handlers_user_t *user);
/* What a file route's state starts with. */
typedef struct {
    const char *dir; /* uploads.dir */
    char id[37];
} handlers_file_ref_t;
/* The path's file looked up with stmt ($1 id, $2 owner filter), cb with the reply; the
 * request's state becomes `size` zeroed bytes starting with a filled handlers_file_ref_t,
 * freed with free_fn. Returns the state, or NULL when the request was answered already. */
void *handlers_file_lookup(http_request_t *r, const handlers_user_t *user, size_t size,
                           void (*free_fn)(void *), db_stmt_id_t stmt, http_pg_cb cb);
void handlers_authenticate(http_request_t *r, handlers_auth_ok_fn ok);
/* The same, or `X-API-Key: <key>` when no Authorization header is sent (the contract's /me,
 * /files and /jobs routes). A key carries no token claims (user->claims is zeroed). */
void handlers_authenticate_or_key(http_request_t *r, handlers_auth_ok_fn ok);
/* Credentials checked once and held for a moment (a realtime ticket, realtime.c): an access
 * token's verified claims, or when claims.jti is "" an API key's hash. */
typedef struct {
    auth_claims_t claims;
    char key_hash[AUTH_TOKEN_HASH_LEN + 1];
} handlers_credentials_t;
/* Checks them again as their own route would now (the user, the revocations, the key), then
 * ok(r, user) or 401. */
void handlers_authenticate_credentials(http_request_t *r, const handlers_credentials_t *c,
                                       handlers_auth_ok_fn ok);
/* The stored hash of an `X-API-Key` value into out: 0, or -1 when it is no key of ours. */
int handlers_api_key_hash(const char *key, size_t len, char out[AUTH_TOKEN_HASH_LEN + 1]);
/* The realtime routes (realtime.c): `?ticket=` (single use) when sent, else as
 * handlers_authenticate_or_key. */
void handlers_authenticate_realtime(http_request_t *r, handlers_auth_ok_fn ok);
/* Notification events (events.c): each user's events get increasing ids and a backlog of at
 * least HANDLERS_EVENTS_BACKLOG in Redis, and are published on HANDLERS_EVENTS_CHANNEL as
 * "<user> <id> <event> <data>" for the streams of every instance. Call once the change they
 * tell of has committed; fire and forget. data is one JSON object. */
#define HANDLERS_EVENTS_BACKLOG DB_EVENTS_BACKLOG
#define HANDLERS_EVENTS_CHANNEL DB_EVENTS_CHANNEL
void handlers_events_publish(http_loop_t *loop, const char *event, const char *data, const char *const *users,
                             int nusers);
/* An event about one object ("job:<id>", "file:<id>") at the version its row has after the
 * change, to its owner (NULL or "": nobody): dropped if a newer version of it was published
 * already (db.h). */
void handlers_events_publish_object(http_loop_t *loop, const char *event, const char *data,
                                    const char *object, long long version, const char *user);
/* session.revoked {"session_id": sid} to the user; sid NULL: every session ended (logout all,
 * a password change or reset), written as HANDLERS_EVENTS_ALL_SESSIONS, which each stream
 * opened with an access token shows as its own session. Streams of that session end. */
#define HANDLERS_EVENTS_ALL_SESSIONS DB_EVENTS_ALL_SESSIONS
void handlers_events_session_revoked(http_loop_t *loop, const char *user_id, const char *sid);
/* The same for users given as a JSON array of ids (as PostgreSQL's json_agg writes it). */
void handlers_events_publish_json_users(http_loop_t *loop, const char *event, const char *data,
                                        const char *users_json);
/* The realtime bus (bus.c): each loop holds one Redis connection SUBSCRIBEd to
 * HANDLERS_EVENTS_CHANNEL and hands every publication to the watchers of its key on that loop:
 * a user's id for the user's events ("<user> <id> <event> <data>", as events.c publishes
 * them), or HANDLERS_BUS_ROOM "<room id>" for what is broadcast to a room's sockets without a
 * backlog (presence). Watchers live on the loop that made them; callbacks run on it. */
#define HANDLERS_BUS_ROOM "room:"
typedef struct handlers_bus_watch handlers_bus_watch_t;
typedef struct {
    long long id;      /* the user's event id; 0 for a room broadcast */
    const char *event; /* the event's name, NUL-terminated ("" for a room broadcast) */
    const char *data;  /* the JSON object, data_len bytes (not NUL-terminated) */
    size_t data_len;
} handlers_bus_msg_t;
/* msg NULL: the subscription was (re)established and publications may have been missed
 * meanwhile: a watcher with a backlog reads it again. */
typedef void (*handlers_bus_fn)(void *data, const handlers_bus_msg_t *msg);
/* Starts the loop's subscriber if it is not running. NULL when out of memory or without Redis.
 * The watch must be ended with handlers_bus_unwatch (not from inside its own callback's
 * caller chain is fine: unwatching during a dispatch is safe). */
handlers_bus_watch_t *handlers_bus_watch(http_request_t *r, const char *key, handlers_bus_fn fn, void *data);
void handlers_bus_unwatch(handlers_bus_watch_t *w);
/* 1 while this loop's subscriber is subscribed: publications reach the watchers without
 * polling. */
int handlers_bus_live(const http_loop_t *loop);
/* Publishes a room broadcast (data: one JSON object) to the watchers of HANDLERS_BUS_ROOM
 * room_id on every instance; fire and forget. */
void handlers_bus_publish_room(http_loop_t *loop, const char *room_id, const char *data);
/* Rooms (rooms.c, rooms_ws.c). A value that is a string of 1..max characters (the rule of a
 * room's name and a message's text). */
#define HANDLERS_ROOM_TEXT_MAX 4000
int handlers_text_within(const json_t *value, long max);
/* The statement that stores a message (values: room, author, text; nothing for a
 * non-member), and what follows it once stored: room.message to every member. Returns the
 * stored Message as JSON (in the reply), or NULL when nothing was stored. */
db_query_t handlers_room_message_query(const char *const values[3]);
const char *handlers_room_message_stored(http_loop_t *loop, const db_reply_t *reply);
/* GET /api/v1/rooms/{id}/ws (rooms_ws.c). */
void handlers_rooms_ws(http_request_t *r);
/* A client's WebSocket message, as the room socket reads it (pure; fuzzed): 0 with *text (a
 * malloc'd copy) for {"type":"message","text":"..."} within the rules of POST .../messages;
 * -1 with *error (malloc'd: the error frame to send) otherwise. */
#define HANDLERS_WS_MESSAGE_MAX (16 * 1024)
int handlers_room_ws_parse(const char *bytes, size_t len, int binary, char **text, char **error);
/* The error frame {"type":"error","error":{"code","message"[,"details"]}} (malloc'd), or NULL
 * when out of memory; details (may be NULL) is consumed. */
char *handlers_ws_error_frame(const char *code, const char *message, json_t *details);

/* Bearer, and the user's current role at least min_role (admin > superuser > user); 403
 * forbidden otherwise. */
void handlers_authenticate_role(http_request_t *r, const char *min_role, handlers_auth_ok_fn ok);
/* 3 admin, 2 superuser, 1 user, 0 anything else. */
int handlers_role_rank(const char *role);
/* The pure parts of reading credentials (me.c, auth.c; fuzzed in tests/fuzz): the token of
 * an `Authorization: Bearer <token>` value (scheme case-insensitive), or NULL; and the value
 * of the first `name=` pair of a Cookie header (at its start or after ' ' or ';', up to the
 * next ';'), its length returned (0 when absent) and *value set. */
const char *handlers_bearer_token(const char *header, size_t len, size_t *token_len);
size_t handlers_cookie_value(const char *cookie, size_t len, const char *name, const char **value);

/* The principal cache (principal.c; docs/ARCHITECTURE.md, "The principal cache"): per loop,
 * what a Bearer token's or an API key's check reads from the database, kept while the process's listener
 * on channel hydrant_principal is live. */
typedef struct {
    uint64_t gen, head, asked_ms; /* the listener's generation and the log's head when asked */
    int usable;                   /* 0: the answer may not be kept (cache off or bypassed) */
} handlers_principal_ticket_t;
/* Starts the listener when auth.principal-cache-entries > 0. 0 or -1 with a message. */
int handlers_principals_start(handlers_app_t *app, char *err, size_t errlen);
void handlers_principals_stop(handlers_app_t *app);
/* 1 on a hit: user is filled (user_json malloc'd). 0 on a miss or a bypass: the caller asks
 * the database, then hands its answer to handlers_principal_fill with the ticket. */
int handlers_principal_lookup(http_request_t *r, const auth_claims_t *claims, handlers_user_t *user,
                              handlers_principal_ticket_t *ticket);
/* Keeps an accepted principal read from the database, unless something about the user may
 * have changed since the ticket was made. */
void handlers_principal_fill(http_request_t *r, const handlers_principal_ticket_t *ticket,
                             const auth_claims_t *claims, const char *role, double tokens_valid_after,
                             const char *user_json);
/* The same for an API key by its hash (user->claims zeroed); a hit also sends the key's
 * last use to be written when this loop has not for auth.api-key-last-used-interval. */
int handlers_principal_lookup_key(http_request_t *r, const char *key_hash, handlers_user_t *user,
                                  handlers_principal_ticket_t *ticket);
/* handlers_principal_fill for the key whose user the database named. */
void handlers_principal_fill_key(http_request_t *r, const handlers_principal_ticket_t *ticket,
                                 const char *key_hash, const char *user_id, const char *role,
                                 double tokens_valid_after, const char *user_json);
/* Every loop of this process forgets the user before its next lookup (other processes hear of
 * it by notification). Harmless when nothing changed: for answers that leave it in doubt. */
void handlers_principal_forget(http_request_t *r, const char *user_id);
/* Once a change to what the cache holds committed: forgets the user here at once, then
 * answers status ({"user": user_json}, or no body when NULL) when this process's listener
 * has heard the change's notification, so that the other servers, signalled by PostgreSQL
 * at the same moment, have almost surely heard it too before the client can ask them; at
 * most 50 ms later (on the CPU pool: a blocked wait, never on the loop). */
void handlers_principal_changed(http_request_t *r, const char *user_id, int status, const char *user_json);
/* The same answering body (stolen; NULL: no body). */
void handlers_principal_changed_json(http_request_t *r, const char *user_id, int status, json_t *body);
/* The cache's metrics in Prometheus text (malloc'd). */
char *handlers_principal_metrics_text(const handlers_app_t *app);

/* Converts a YAML document (the OpenAPI description) to compact JSON. Returns a malloc'd
 * string or NULL with a message. Scalars stay strings except plain true/false/null and
 * numbers, as YAML 1.2's core schema reads them. */
char *handlers_yaml_to_json(const char *yaml, size_t len, size_t *out_len, char *err, size_t errlen);

#endif
