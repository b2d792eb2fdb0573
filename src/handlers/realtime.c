/*
 * Realtime tickets (contract: Realtime). A browser's EventSource or WebSocket cannot send an
 * Authorization header, so a client with credentials first asks POST /api/v1/realtime/ticket
 * and then opens the stream with `?ticket=`. A ticket stands for the credentials that got it:
 * the access token's claims (so the stream belongs to that token's session) or the API key's
 * hash. It lives in Redis for HYDRANT_TICKET_TTL_S under the SHA-256 of the ticket (a Redis
 * dump shows no usable ticket) and is taken with GETDEL, so two uses racing on any instances
 * get it once. Redeeming checks the credentials again as their own route would now: a token
 * revoked or a user disabled within those seconds gets nothing.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HYDRANT_TICKET_TTL_S 30
#define TICKET_KEY_PREFIX    "hydrant:rt:ticket:"
#define TICKET_KEY_LEN       (sizeof(TICKET_KEY_PREFIX) - 1 + AUTH_TOKEN_HASH_LEN + 1)

/* The Redis key of a ticket (sent or new) into key. */
static void ticket_key(const char *ticket, size_t len, char key[TICKET_KEY_LEN])
{
    char hash[AUTH_TOKEN_HASH_LEN + 1];
    auth_token_hash(ticket, len, hash);
    snprintf(key, TICKET_KEY_LEN, TICKET_KEY_PREFIX "%s", hash);
}

/* ------------------------------------------------------------- issuing ---- */

/* What the ticket stands for, as JSON text (malloc'd), or NULL. */
static char *ticket_value(http_request_t *r, const handlers_user_t *user)
{
    json_t *doc = NULL;
    if (user->claims.jti[0] != '\0') {
        const auth_claims_t *c = &user->claims;
        doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "sub", c->sub, "role", c->role, "jti", c->jti,
                        "sid", c->sid, "iat", (json_int_t)c->iat, "exp", (json_int_t)c->exp);
    } else {
        size_t len = 0;
        const char *key = http_header(r, "x-api-key", &len);
        char hash[AUTH_TOKEN_HASH_LEN + 1];
        if (key != NULL && handlers_api_key_hash(key, len, hash) == 0)
            doc = json_pack("{s:s}", "key", hash);
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

typedef struct {
    char ticket[AUTH_TOKEN_LEN + 1];
} ticket_issued_t;
_Static_assert(sizeof(ticket_issued_t) <= HTTP_ASYNC_DATA_MAX, "ticket_issued_t must fit http_redis_data");

static void ticket_stored(http_request_t *r, void *data, db_status_t status, redisReply *reply)
{
    const ticket_issued_t *t = data;
    if (status != DB_OK || reply == NULL || reply->type != REDIS_REPLY_STATUS) {
        http_respond_db_error(r, status != DB_OK ? status : DB_ERR_UNAVAILABLE);
        return;
    }
    http_respond_json(r, 201,
                      json_pack("{s:s, s:i}", "ticket", t->ticket, "expires_in", HYDRANT_TICKET_TTL_S));
}

static void ticket_issue_ok(http_request_t *r, handlers_user_t *user)
{
    ticket_issued_t t;
    char *value = ticket_value(r, user);
    if (value == NULL || auth_token_new(t.ticket) != 0) {
        free(value);
        http_respond_error(r, 500, "internal", "could not make a ticket", NULL);
        return;
    }
    char key[TICKET_KEY_LEN], ttl[16];
    ticket_key(t.ticket, AUTH_TOKEN_LEN, key);
    snprintf(ttl, sizeof(ttl), "%d", HYDRANT_TICKET_TTL_S);
    const char *argv[] = {"SET", key, value, "EX", ttl, "NX"};
    http_redis_data(r, 6, argv, NULL, ticket_stored, &t, sizeof(t));
    free(value);
}

static void ticket_issue(http_request_t *r)
{
    handlers_authenticate_or_key(r, ticket_issue_ok);
}

/* ----------------------------------------------------------- redeeming ---- */

/* The credentials of a ticket's stored value. 0, or -1 when it is not one of ours. */
static int ticket_parse(const char *text, size_t len, handlers_credentials_t *c)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    const char *key = json_string_value(json_object_get(doc, "key"));
    const char *sub = json_string_value(json_object_get(doc, "sub"));
    const char *role = json_string_value(json_object_get(doc, "role"));
    const char *jti = json_string_value(json_object_get(doc, "jti"));
    const char *sid = json_string_value(json_object_get(doc, "sid"));
    json_t *iat = json_object_get(doc, "iat"), *exp = json_object_get(doc, "exp");
    int rc = -1;
    memset(c, 0, sizeof(*c));
    if (key != NULL && strlen(key) == AUTH_TOKEN_HASH_LEN) {
        memcpy(c->key_hash, key, AUTH_TOKEN_HASH_LEN + 1);
        rc = 0;
    } else if (sub != NULL && role != NULL && jti != NULL && jti[0] != '\0' && sid != NULL &&
               json_is_integer(iat) && json_is_integer(exp) && strlen(sub) < sizeof(c->claims.sub) &&
               strlen(role) < sizeof(c->claims.role) && strlen(jti) < sizeof(c->claims.jti) &&
               strlen(sid) < sizeof(c->claims.sid)) {
        strcpy(c->claims.sub, sub);
        strcpy(c->claims.role, role);
        strcpy(c->claims.jti, jti);
        strcpy(c->claims.sid, sid);
        c->claims.iat = json_integer_value(iat);
        c->claims.exp = json_integer_value(exp);
        rc = 0;
    }
    json_decref(doc);
    return rc;
}

typedef struct {
    handlers_auth_ok_fn ok;
} ticket_redeem_t;

static void ticket_taken(http_request_t *r, void *data, db_status_t status, redisReply *reply)
{
    const ticket_redeem_t *t = data;
    const handlers_app_t *app = r->app;
    handlers_credentials_t c;
    if (status != DB_OK || reply == NULL || reply->type == REDIS_REPLY_ERROR)
        http_respond_db_error(r, status != DB_OK ? status : DB_ERR_UNAVAILABLE);
    else if (reply->type != REDIS_REPLY_STRING || ticket_parse(reply->str, reply->len, &c) != 0)
        http_respond_error(r, 401, "unauthorized", "the ticket is not valid (unknown, used or expired)",
                           NULL);
    else if (c.claims.jti[0] != '\0' && c.claims.exp + app->jwt.leeway_s < (int64_t)time(NULL))
        http_respond_error(r, 401, "token_expired", "the token that got the ticket has expired", NULL);
    else
        handlers_authenticate_credentials(r, &c, t->ok);
}

void handlers_authenticate_realtime(http_request_t *r, handlers_auth_ok_fn ok)
{
    char ticket[AUTH_TOKEN_LEN + 2];
    int n = http_query_param(r, "ticket", ticket, sizeof(ticket));
    if (n == -1) {
        handlers_authenticate_or_key(r, ok);
        return;
    }
    if (n != AUTH_TOKEN_LEN || !auth_token_plausible(ticket, (size_t)n)) {
        http_respond_error(r, 401, "unauthorized", "the ticket is not valid (unknown, used or expired)",
                           NULL);
        return;
    }
    ticket_redeem_t t = {.ok = ok};
    char key[TICKET_KEY_LEN];
    ticket_key(ticket, (size_t)n, key);
    const char *argv[] = {"GETDEL", key};
    http_redis_data(r, 2, argv, NULL, ticket_taken, &t, sizeof(t));
}

int handlers_realtime_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"POST", "/api/v1/realtime/ticket", ticket_issue, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
