/*
 * Bearer authentication for the routes that need a signed-in user, and the signed-in
 * user's own routes (contract: /api/v1/me).
 */
#include "handlers/handlers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    auth_claims_t claims;
    handlers_auth_ok_fn ok;
    handlers_user_t user;
    int min_rank;                           /* the least role the route needs (0: any signed-in user) */
    handlers_principal_ticket_t ticket;     /* a miss of the principal cache, to fill it */
    char key_hash[AUTH_TOKEN_HASH_LEN + 1]; /* for an API key */
} me_auth_t;

int handlers_role_rank(const char *role)
{
    if (strcmp(role, "admin") == 0)
        return 3;
    if (strcmp(role, "superuser") == 0)
        return 2;
    return strcmp(role, "user") == 0 ? 1 : 0;
}

/* Every route's role rule is applied here, once the user's current role is read from its
 * row (a demotion counts at once, whatever the token says). The body rules of an
 * HTTP_ROUTE_AUTHENTICATED route run here too, for every way of authenticating: only
 * accepted credentials get to hear what is wrong with a body. */
static void me_auth_proceed(http_request_t *r, void *arg)
{
    me_auth_t *a = arg;
    a->ok(r, &a->user);
}

static void me_auth_accept(http_request_t *r, me_auth_t *a)
{
    if (handlers_role_rank(a->user.role) < a->min_rank) {
        http_respond_error(r, 403, "forbidden", "this needs a higher role", NULL);
        return;
    }
    if (http_request_take_body(r) != 0)
        return;
    http_idempotency_begin(r, a->user.id, me_auth_proceed, a);
}

static void me_auth_free(void *p)
{
    me_auth_t *a = p;
    free(a->user.user_json);
    free(a);
}

const handlers_user_t *handlers_auth_user(const http_request_t *r)
{
    return r->state_free == me_auth_free ? &((const me_auth_t *)r->state)->user : NULL;
}

static void me_auth_refuse(http_request_t *r, const char *code, const char *message)
{
    http_respond_error(r, 401, code, message, NULL);
}

static void me_auth_user_found(http_request_t *r, const db_reply_t *reply)
{
    me_auth_t *a = r->state;
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) == 1 && PQgetvalue(res, 0, DB_COL_USER_AUTH_REVOKED)[0] == 't') {
        me_auth_refuse(r, "token_revoked", "the token was revoked");
        return;
    }
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, DB_COL_USER_AUTH_DISABLED)[0] == 't') {
        me_auth_refuse(r, "unauthorized", "the account no longer exists or is disabled");
        return;
    }
    /* Tokens issued before "sign out everywhere", a password change or reset, or disabling.
     * iat has whole seconds: a token from the same second as the revocation is refused too
     * (a login in that second gets a token that works a second later at worst). */
    double valid_after = atof(PQgetvalue(res, 0, DB_COL_USER_AUTH_TOKENS_VALID_AFTER));
    if (isfinite(valid_after) && (double)a->claims.iat <= floor(valid_after)) {
        me_auth_refuse(r, "token_revoked", "the token was revoked");
        return;
    }
    snprintf(a->user.id, sizeof(a->user.id), "%s", a->claims.sub);
    snprintf(a->user.role, sizeof(a->user.role), "%s", PQgetvalue(res, 0, DB_COL_USER_AUTH_ROLE));
    a->user.claims = a->claims;
    a->user.user_json = handlers_user_json_from_row(res, 0, DB_COL_USER_AUTH_USER_ID);
    if (a->user.user_json == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    handlers_principal_fill(r, &a->ticket, &a->claims, a->user.role, valid_after, a->user.user_json);
    me_auth_accept(r, a);
}

static me_auth_t *me_auth_new(http_request_t *r, handlers_auth_ok_fn ok)
{
    me_auth_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return NULL;
    }
    r->state = a;
    r->state_free = me_auth_free;
    a->ok = ok;
    return a;
}

static void me_auth_key_found(http_request_t *r, const db_reply_t *reply)
{
    me_auth_t *a = r->state;
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, DB_COL_API_KEY_AUTH_DISABLED)[0] == 't') {
        me_auth_refuse(r, "unauthorized", "the API key is not valid");
        return;
    }
    snprintf(a->user.role, sizeof(a->user.role), "%s", PQgetvalue(res, 0, DB_COL_API_KEY_AUTH_USER_ROLE));
    snprintf(a->user.id, sizeof(a->user.id), "%s", PQgetvalue(res, 0, DB_COL_API_KEY_AUTH_USER_ID));
    a->user.user_json = handlers_user_json_from_row(res, 0, DB_COL_API_KEY_AUTH_USER_ID);
    if (a->user.user_json == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    handlers_principal_fill_key(r, &a->ticket, a->key_hash, a->user.id, a->user.role,
                                atof(PQgetvalue(res, 0, DB_COL_API_KEY_AUTH_TOKENS_VALID_AFTER)),
                                a->user.user_json);
    me_auth_accept(r, a);
}

/* A key's user, by the key's hash (keys are stored only as hashes): this loop's principal
 * cache when warm, else the database. */
static void me_auth_key_hash(http_request_t *r, me_auth_t *a, const char *hash)
{
    snprintf(a->key_hash, sizeof(a->key_hash), "%s", hash);
    if (handlers_principal_lookup_key(r, a->key_hash, &a->user, &a->ticket)) {
        me_auth_accept(r, a);
        return;
    }
    char interval[24];
    snprintf(interval, sizeof(interval), "%d",
             ((const handlers_app_t *)r->app)->cfg->auth.api_key_last_used_interval_s);
    const char *values[] = {a->key_hash, interval};
    db_query_t q = {.stmt = DB_STMT_API_KEY_AUTH, .nparams = 2, .values = values};
    http_pg(r, &q, 1, me_auth_key_found);
}

int handlers_api_key_hash(const char *key, size_t len, char out[AUTH_TOKEN_HASH_LEN + 1])
{
    if (len < 16 || len > 256 || !auth_token_plausible(key + 3, len - 3) || strncmp(key, "hk_", 3) != 0)
        return -1;
    auth_token_hash(key, len, out);
    return 0;
}

static void me_auth_by_key(http_request_t *r, const char *key, size_t len, handlers_auth_ok_fn ok)
{
    char hash[AUTH_TOKEN_HASH_LEN + 1];
    if (handlers_api_key_hash(key, len, hash) != 0) {
        me_auth_refuse(r, "unauthorized", "the API key is not valid");
        return;
    }
    me_auth_t *a = me_auth_new(r, ok);
    if (a != NULL)
        me_auth_key_hash(r, a, hash);
}

void handlers_authenticate_or_key(http_request_t *r, handlers_auth_ok_fn ok)
{
    size_t len = 0;
    const char *key = http_header(r, "x-api-key", &len);
    if (key != NULL && http_header(r, "authorization", NULL) == NULL)
        me_auth_by_key(r, key, len, ok);
    else
        handlers_authenticate(r, ok);
}

static void me_authenticate(http_request_t *r, handlers_auth_ok_fn ok, int min_rank);
static void me_auth_claims(http_request_t *r, me_auth_t *a);

void handlers_authenticate_role(http_request_t *r, const char *min_role, handlers_auth_ok_fn ok)
{
    me_authenticate(r, ok, handlers_role_rank(min_role));
}

const char *handlers_bearer_token(const char *header, size_t len, size_t *token_len)
{
    if (header == NULL || len < 8 || strncasecmp(header, "Bearer ", 7) != 0)
        return NULL;
    *token_len = len - 7;
    return header + 7;
}

void handlers_authenticate(http_request_t *r, handlers_auth_ok_fn ok)
{
    me_authenticate(r, ok, 0);
}

/* The route's least role is set before anything can accept: a cache hit accepts at once. */
static void me_authenticate(http_request_t *r, handlers_auth_ok_fn ok, int min_rank)
{
    size_t len = 0, token_len = 0;
    const char *header = http_header(r, "authorization", &len);
    const char *token = handlers_bearer_token(header, len, &token_len);
    if (token == NULL) {
        me_auth_refuse(r, "unauthorized", "a Bearer access token is required");
        return;
    }
    me_auth_t *a = me_auth_new(r, ok);
    if (a == NULL)
        return;
    a->min_rank = min_rank;
    const handlers_app_t *app = r->app;
    auth_jwt_status_t st = auth_jwt_verify(&app->jwt, token, token_len, time(NULL), &a->claims);
    if (st != AUTH_JWT_OK) {
        me_auth_refuse(r, st == AUTH_JWT_EXPIRED ? "token_expired" : "unauthorized",
                       st == AUTH_JWT_EXPIRED ? "the token has expired" : "the token is not valid");
        return;
    }
    me_auth_claims(r, a);
}

/* Verified claims: is the token's user still allowed? Warm: this loop's principal cache
 * answers (kept exact by notifications, see principal.c); cold, or while the cache is
 * bypassed: the database. */
static void me_auth_claims(http_request_t *r, me_auth_t *a)
{
    if (handlers_principal_lookup(r, &a->claims, &a->user, &a->ticket)) {
        me_auth_accept(r, a);
        return;
    }
    const char *values[] = {a->claims.sub, a->claims.jti};
    db_query_t q = {.stmt = DB_STMT_USER_AUTH, .nparams = 2, .values = values};
    http_pg(r, &q, 1, me_auth_user_found);
}

void handlers_authenticate_credentials(http_request_t *r, const handlers_credentials_t *c,
                                       handlers_auth_ok_fn ok)
{
    me_auth_t *a = me_auth_new(r, ok);
    if (a == NULL)
        return;
    if (c->claims.jti[0] == '\0') {
        me_auth_key_hash(r, a, c->key_hash);
        return;
    }
    a->claims = c->claims;
    me_auth_claims(r, a);
}

/* -------------------------------------------------------------------- /me ---- */

static void me_get_ok(http_request_t *r, handlers_user_t *user)
{
    handlers_respond_user(r, 200, user->user_json);
}

static void me_get(http_request_t *r)
{
    handlers_authenticate_or_key(r, me_get_ok);
}

int handlers_me_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"GET", "/api/v1/me", me_get, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
