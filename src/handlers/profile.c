/*
 * The signed-in user's profile, account deletion and API key (contract: PATCH and DELETE
 * /api/v1/me, /api/v1/me/api-key). Bearer token or API key.
 */
#include "handlers/handlers.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_KEY_PREFIX  "hk_"
#define PROFILE_DISPLAY_MAX 100
#define PROFILE_BIO_MAX     2000

/* ----------------------------------------------------------------- PATCH /me ---- */

static void profile_patched(http_request_t *r, const db_reply_t *reply)
{
    const handlers_user_t *user = handlers_auth_user(r);
    if (user != NULL)
        handlers_principal_forget(r, user->id); /* also when in doubt: forgetting is always safe */
    if (reply->status == DB_ERR_QUERY && strcmp(reply->sqlstate, "23505") == 0) {
        http_respond_error(r, 409, "username_taken", "that username is taken", NULL);
        return;
    }
    if (reply->status != DB_OK) {
        http_respond_db_error(r, reply->status);
        return;
    }
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 401, "unauthorized", "the account no longer exists", NULL);
        return;
    }
    const char *json = PQgetvalue(reply->results[0], 0, DB_COL_USER_PATCH_USER);
    if (user != NULL)
        handlers_principal_changed(r, user->id, 200, json); /* /me shows it at the next request */
    else
        handlers_respond_user(r, 200, json);
}

/* Checks a text field's length in code points; adds a reason to details when wrong. */
static void profile_check_text(const json_t *body, const char *name, long max, json_t *details)
{
    json_t *v = json_object_get(body, name);
    if (!json_is_string(v))
        return;
    long n = auth_utf8_length(json_string_value(v), json_string_length(v));
    if (n < 0 || n > max) {
        char reason[64];
        snprintf(reason, sizeof(reason), "must be at most %ld characters", max);
        json_object_set_new(details, name, json_string(reason));
    }
}

/* The 422 details for a PATCH /me body, or NULL when it is fine. */
static json_t *profile_patch_invalid(const json_t *body)
{
    static const handlers_field_t fields[] = {
        {"username", JSON_STRING, 0, 1}, {"display_name", JSON_STRING, 0, 0}, {"bio", JSON_STRING, 0, 0}};
    json_t *details = handlers_check_fields(body, fields, 3);
    if (details == NULL)
        details = json_object();
    json_t *username = json_object_get(body, "username");
    if (json_is_string(username) &&
        !auth_username_valid(json_string_value(username), json_string_length(username)))
        json_object_set_new(details, "username",
                            json_string("must be 3 to 32 characters of A-Z a-z 0-9 _ . -"));
    profile_check_text(body, "display_name", PROFILE_DISPLAY_MAX, details);
    profile_check_text(body, "bio", PROFILE_BIO_MAX, details);
    if (json_object_size(details) == 0) {
        json_decref(details);
        return NULL;
    }
    return details;
}

static void profile_patch_ok(http_request_t *r, handlers_user_t *user)
{
    json_t *details = profile_patch_invalid(r->body);
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    json_t *username = json_object_get(r->body, "username");
    json_t *display = json_object_get(r->body, "display_name");
    json_t *bio = json_object_get(r->body, "bio");
    const char *values[] = {
        user->id,
        username != NULL ? "t" : "f",
        json_is_string(username) ? json_string_value(username) : NULL,
        display != NULL ? "t" : "f",
        json_string_value(display),
        bio != NULL ? "t" : "f",
        json_string_value(bio),
    };
    db_query_t q = {.stmt = DB_STMT_USER_PATCH, .nparams = 7, .values = values};
    http_pg(r, &q, 1, profile_patched);
}

static void profile_patch(http_request_t *r)
{
    handlers_authenticate_or_key(r, profile_patch_ok);
}

/* ---------------------------------------------------------------- DELETE /me ---- */

typedef struct {
    char *user_id;
    char *password;
    size_t password_len;
    char stored[AUTH_HASH_MAX];
    auth_verify_t verified;
} profile_delete_t;

static void profile_delete_free(void *p)
{
    profile_delete_t *d = p;
    handlers_secret_free(d->password, d->password_len);
    free(d->user_id);
    free(d);
}

static void profile_deleted(http_request_t *r, const db_reply_t *reply)
{
    const profile_delete_t *d = r->state;
    handlers_principal_forget(r, d->user_id);
    if (http_pg_failed(r, reply))
        return;
    handlers_events_session_revoked(r->loop, d->user_id, NULL); /* its streams end */
    handlers_principal_changed(r, d->user_id, 204, NULL);
}

static void profile_delete_verify(void *arg)
{
    profile_delete_t *d = arg;
    d->verified = auth_password_verify(d->password, d->password_len, d->stored);
}

/* The account goes with its sessions, tokens, key and files' rows (foreign keys cascade); its
 * jobs stay, without an owner. The files' bytes are removed by a files.remove job queued in
 * the same transaction. The audit record is kept, without the user. */
static void profile_delete_checked(http_request_t *r, void *arg)
{
    profile_delete_t *d = arg;
    if (d->verified != AUTH_VERIFY_MATCH) {
        http_respond_error(r, 401, "invalid_credentials", "the password is wrong", NULL);
        return;
    }
    const char *values[] = {d->user_id};
    const char *event[] = {NULL, "account_deleted", r->client, NULL};
    db_query_t batch[3] = {
        {.stmt = DB_STMT_FILES_REMOVE_QUEUE, .nparams = 1, .values = values},
        {.stmt = DB_STMT_USER_DELETE, .nparams = 1, .values = values},
        {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = event},
    };
    http_pg(r, batch, 3, profile_deleted);
}

static void profile_delete_found(http_request_t *r, const db_reply_t *reply)
{
    profile_delete_t *d = r->state;
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) != 1 ||
        strlen(PQgetvalue(res, 0, DB_COL_USER_PASSWORD_GET_PASSWORD_HASH)) >= sizeof(d->stored)) {
        http_respond_error(r, 401, "unauthorized", "the account no longer exists", NULL);
        return;
    }
    snprintf(d->stored, sizeof(d->stored), "%s", PQgetvalue(res, 0, DB_COL_USER_PASSWORD_GET_PASSWORD_HASH));
    if (http_cpu_droppable(r, profile_delete_verify, profile_delete_checked, d) != 0) {
        http_add_header(r, "Retry-After", "1");
        http_respond_error(r, 503, "unavailable", "the server is busy, try again", NULL);
    }
}

static void profile_delete_ok(http_request_t *r, handlers_user_t *user)
{
    static const handlers_field_t fields[] = {{"password", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 1);
    json_t *password = json_object_get(r->body, "password");
    if (details == NULL && (json_string_length(password) == 0 || json_string_length(password) > 1024))
        details = json_pack("{s:s}", "password", "must be 1 to 1024 bytes");
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    char *id = strdup(user->id);
    profile_delete_t *d = handlers_state_replace(r, sizeof(*d), profile_delete_free); /* user is gone now */
    if (d == NULL || id == NULL) {
        free(id);
        if (d != NULL)
            http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    d->user_id = id;
    d->password = handlers_secret_copy(password, &d->password_len);
    if (d->password == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    const char *values[] = {d->user_id};
    db_query_t q = {.stmt = DB_STMT_USER_PASSWORD_GET, .nparams = 1, .values = values};
    http_pg(r, &q, 1, profile_delete_found);
}

static void profile_delete(http_request_t *r)
{
    handlers_authenticate_or_key(r, profile_delete_ok);
}

/* ----------------------------------------------------------- /me/api-key ---- */

/* The key is shown this once; only its hash is stored. A replaced key is refused from the
 * next request on, here and (by migration 0011's notification) on every server. */
typedef struct {
    char user_id[64];
    char key[sizeof(PROFILE_KEY_PREFIX) + AUTH_TOKEN_LEN];
} profile_key_t;

static void profile_key_made(http_request_t *r, const db_reply_t *reply)
{
    const profile_key_t *k = r->state;
    handlers_principal_forget(r, k->user_id); /* also when in doubt: forgetting is always safe */
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    json_t *body = json_pack("{s:s, s:s, s:s}", "api_key", k->key, "prefix",
                             PQgetvalue(res, 0, DB_COL_API_KEY_SET_PREFIX), "created_at",
                             PQgetvalue(res, 0, DB_COL_API_KEY_SET_CREATED_AT));
    if (body == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    http_add_header(r, "Cache-Control", "no-store");
    handlers_principal_changed_json(r, k->user_id, 201, body);
}

static void profile_key_free(void *p)
{
    OPENSSL_cleanse(p, sizeof(profile_key_t));
    free(p);
}

static void profile_key_create_ok(http_request_t *r, handlers_user_t *user)
{
    char token[AUTH_TOKEN_LEN + 1];
    profile_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL || auth_token_new(token) != 0) {
        free(k);
        http_respond_error(r, 500, "internal", "could not make a key", NULL);
        return;
    }
    snprintf(k->key, sizeof(k->key), PROFILE_KEY_PREFIX "%s", token);
    OPENSSL_cleanse(token, sizeof(token));
    char hash[AUTH_TOKEN_HASH_LEN + 1], prefix[9];
    auth_token_hash(k->key, strlen(k->key), hash);
    snprintf(prefix, sizeof(prefix), "%.8s", k->key);
    snprintf(k->user_id, sizeof(k->user_id), "%s", user->id);
    if (r->state_free != NULL)
        r->state_free(r->state);
    r->state = k;
    r->state_free = profile_key_free;
    const char *values[] = {k->user_id, hash, prefix};
    db_query_t q = {.stmt = DB_STMT_API_KEY_SET, .nparams = 3, .values = values};
    http_pg(r, &q, 1, profile_key_made);
}

static void profile_key_shown(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) != 1) {
        http_respond_error(r, 404, "not_found", "no API key", NULL);
        return;
    }
    json_t *body = json_pack("{s:s, s:s}", "prefix", PQgetvalue(res, 0, DB_COL_API_KEY_GET_PREFIX),
                             "created_at", PQgetvalue(res, 0, DB_COL_API_KEY_GET_CREATED_AT));
    json_object_set_new(body, "last_used_at",
                        PQgetisnull(res, 0, DB_COL_API_KEY_GET_LAST_USED_AT)
                            ? json_null()
                            : json_string(PQgetvalue(res, 0, DB_COL_API_KEY_GET_LAST_USED_AT)));
    http_respond_json(r, 200, body);
}

static void profile_key_get_ok(http_request_t *r, handlers_user_t *user)
{
    const char *values[] = {user->id};
    db_query_t q = {.stmt = DB_STMT_API_KEY_GET, .nparams = 1, .values = values};
    http_pg(r, &q, 1, profile_key_shown);
}

/* The key is refused from the next request on, here and (by migration 0011's notification)
 * on every server. */
static void profile_key_deleted(http_request_t *r, const db_reply_t *reply)
{
    const handlers_user_t *user = handlers_auth_user(r);
    if (user != NULL)
        handlers_principal_forget(r, user->id); /* also when in doubt: forgetting is always safe */
    if (http_pg_failed(r, reply))
        return;
    /* No key, no notification to wait for. */
    if (user != NULL && strcmp(PQcmdTuples(reply->results[0]), "0") != 0)
        handlers_principal_changed(r, user->id, 204, NULL);
    else
        http_respond_empty(r, 204);
}

static void profile_key_delete_ok(http_request_t *r, handlers_user_t *user)
{
    const char *values[] = {user->id};
    db_query_t q = {.stmt = DB_STMT_API_KEY_DELETE, .nparams = 1, .values = values};
    http_pg(r, &q, 1, profile_key_deleted);
}

static void profile_key_get(http_request_t *r)
{
    handlers_authenticate_or_key(r, profile_key_get_ok);
}

static void profile_key_create(http_request_t *r)
{
    handlers_authenticate_or_key(r, profile_key_create_ok);
}

static void profile_key_delete(http_request_t *r)
{
    handlers_authenticate_or_key(r, profile_key_delete_ok);
}

int handlers_profile_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"PATCH", "/api/v1/me", profile_patch, 0, HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_AUTHENTICATED},
        {"DELETE", "/api/v1/me", profile_delete, 0, HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/me/api-key", profile_key_get, 0, HTTP_ROUTE_AUTHENTICATED},
        {"POST", "/api/v1/me/api-key", profile_key_create, 0, HTTP_ROUTE_AUTHENTICATED},
        {"DELETE", "/api/v1/me/api-key", profile_key_delete, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
