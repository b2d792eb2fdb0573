/*
 * Accounts and sessions (contract: /api/v1/auth): sign-up, email confirmation and login.
 *
 * Password hashing and verifying run on the CPU pool (http_cpu), never on the loop. A
 * sign-up writes the user, its confirmation token and the email job in one batch, so they
 * commit together or not at all. A login for an unknown email still verifies against a
 * dummy hash, so both failures cost the same.
 */
#include "handlers/handlers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AUTH_CONFIRM_TTL_S      86400
#define AUTH_LOGIN_PASSWORD_MAX 1024 /* bytes; longer is refused before any hashing */
#define AUTH_LIMIT_WINDOW_S     900  /* the contract's 15 minutes */

typedef struct {
    char email[256];
    char username[33];
    int has_username;
    char *password; /* copied, wiped when the state goes */
    size_t password_len;
    auth_argon2_params_t params;
    char hash[AUTH_HASH_MAX];
    char stored[AUTH_HASH_MAX]; /* login: the user's current hash */
    char token[AUTH_TOKEN_LEN + 1];
    char token_hash[AUTH_TOKEN_HASH_LEN + 1];
    char presented[AUTH_TOKEN_HASH_LEN + 1]; /* refresh: the hash of the token presented */
    int retrying;                            /* refresh: its last rotation went unanswered */
    char user_id[64];
    char family_id[37]; /* login: the new refresh family */
    char role[16];
    int confirmed, disabled, known;
    double valid_after; /* the user's tokens_valid_after (Unix seconds, may be -inf) */
    char *user_json;
    auth_verify_t verified;
    int rehashed; /* login: hash holds a stronger hash of the password */
    int failed;   /* the CPU step could not do its work */
} auth_state_t;

static void auth_state_free(void *p)
{
    auth_state_t *s = p;
    handlers_secret_free(s->password, s->password_len);
    free(s->user_json);
    free(s);
}

static auth_state_t *auth_state_new(http_request_t *r)
{
    auth_state_t *s = handlers_state_replace(r, sizeof(*s), auth_state_free);
    if (s != NULL)
        s->params = ((const handlers_app_t *)r->app)->argon2;
    return s;
}

static int auth_copy_password(auth_state_t *s, const json_t *value)
{
    s->password = handlers_secret_copy(value, &s->password_len);
    return s->password != NULL ? 0 : -1;
}

/* ------------------------------------------------------------------ sign-up ---- */

static void auth_signup_stored(http_request_t *r, const db_reply_t *reply)
{
    if (reply->status == DB_ERR_QUERY && strcmp(reply->sqlstate, "23505") == 0) {
        int username = strcmp(reply->constraint, "users_username_key") == 0;
        http_respond_error(r, 409, username ? "username_taken" : "email_taken",
                           username ? "that username is taken" : "an account with that email exists", NULL);
        return;
    }
    if (reply->status != DB_OK) {
        http_respond_db_error(r, reply->status);
        return;
    }
    handlers_respond_user(r, 201, PQgetvalue(reply->results[0], 0, DB_COL_USER_CREATE_USER));
}

static void auth_signup_hash(void *arg)
{
    auth_state_t *s = arg;
    s->failed = auth_password_hash(s->password, s->password_len, &s->params, s->hash, sizeof(s->hash)) != 0 ||
                auth_token_new(s->token) != 0 || util_uuid_v4(s->user_id) != 0;
    if (!s->failed)
        auth_token_hash(s->token, strlen(s->token), s->token_hash);
}

char *handlers_email_payload(const char *to, const char *token)
{
    json_t *doc = json_pack("{s:s, s:s}", "to", to, "token", token);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* One transaction: the user, its confirmation token, the email that carries the token. A
 * payload that could not be built fails the sign-up before anything is stored: a job
 * queued without one would only die. */
static void auth_signup_hashed(http_request_t *r, void *arg)
{
    auth_state_t *s = arg;
    char *payload = s->failed ? NULL : handlers_email_payload(s->email, s->token);
    if (payload == NULL) {
        http_respond_error(r, 500, "internal",
                           s->failed ? "could not hash the password" : "could not build the email", NULL);
        return;
    }
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", AUTH_CONFIRM_TTL_S);
    char unique[80];
    snprintf(unique, sizeof(unique), "confirm:%s", s->user_id);
    const char *user[] = {s->user_id, s->email, s->has_username ? s->username : NULL, s->hash};
    const char *token[] = {s->token_hash, s->user_id, "confirm", ttl};
    jobs_enqueue_t email = {
        .kind = "email.confirmation", .payload = payload, .owner_id = s->user_id, .unique_key = unique};
    const char *event[] = {s->user_id, "signup", r->client, NULL};
    db_query_t batch[4] = {
        {.stmt = DB_STMT_USER_CREATE, .nparams = 4, .values = user},
        {.stmt = DB_STMT_EMAIL_TOKEN_CREATE, .nparams = 4, .values = token},
        {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = event},
    };
    jobs_enqueue_query(&email, ((const handlers_app_t *)r->app)->cfg, &batch[3]);
    http_pg(r, batch, 4, auth_signup_stored);
    free(payload);
}

static void auth_signup_checked(http_request_t *r)
{
    static const handlers_field_t fields[] = {
        {"email", JSON_STRING, 1, 0}, {"password", JSON_STRING, 1, 0}, {"username", JSON_STRING, 0, 1}};
    json_t *details = handlers_check_fields(r->body, fields, 3);
    auth_state_t *s = details == NULL ? auth_state_new(r) : NULL;
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    if (s == NULL)
        return;
    json_t *email = json_object_get(r->body, "email"), *password = json_object_get(r->body, "password");
    json_t *username = json_object_get(r->body, "username");
    details = json_object();
    if (util_email_normalize(json_string_value(email), json_string_length(email), s->email,
                             sizeof(s->email)) != 0)
        json_object_set_new(details, "email", json_string("must be a valid email address"));
    if (!auth_password_acceptable(json_string_value(password), json_string_length(password)))
        json_object_set_new(details, "password", json_string("must be 8 to 256 characters"));
    if (json_is_string(username)) {
        size_t len = json_string_length(username);
        if (!auth_username_valid(json_string_value(username), len))
            json_object_set_new(details, "username",
                                json_string("must be 3 to 32 characters of A-Z a-z 0-9 _ . -"));
        else
            memcpy(s->username, json_string_value(username), len + 1), s->has_username = 1;
    }
    if (json_object_size(details) > 0) {
        handlers_respond_invalid(r, details);
        return;
    }
    json_decref(details);
    if (auth_copy_password(s, password) != 0 ||
        http_cpu_droppable(r, auth_signup_hash, auth_signup_hashed, s) != 0) {
        http_add_header(r, "Retry-After", "1");
        http_respond_error(r, 503, "unavailable", "the server is busy, try again", NULL);
    }
}

/* Sign-ups count against the per-address limit on email-sending requests. */
static void auth_signup(http_request_t *r)
{
    const handlers_app_t *app = r->app;
    handlers_limit_t limit = {"email-requests", r->client, app->cfg->auth.limit_email_requests_per_address};
    handlers_limit_take(r, &limit, AUTH_LIMIT_WINDOW_S, auth_signup_checked);
}

/* ------------------------------------------------------------------ confirm ---- */

static void auth_confirmed(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 400, "invalid_token", "the token is unknown, used or expired", NULL);
        return;
    }
    /* email_confirmed is in the User that /me shows from the principal cache. */
    const char *user_json = PQgetvalue(reply->results[0], 0, DB_COL_USER_CONFIRM_USER);
    json_t *user = json_loads(user_json, 0, NULL);
    const char *id = json_string_value(json_object_get(user, "id"));
    if (id != NULL)
        handlers_principal_changed(r, id, 200, user_json);
    else
        handlers_respond_user(r, 200, user_json);
    json_decref(user);
}

static void auth_confirm_token(http_request_t *r, const char *token, size_t len)
{
    if (token == NULL || !auth_token_plausible(token, len)) {
        http_respond_error(r, 400, "invalid_token", "the token is unknown, used or expired", NULL);
        return;
    }
    char hash[AUTH_TOKEN_HASH_LEN + 1];
    auth_token_hash(token, len, hash);
    const char *values[] = {hash};
    db_query_t q = {.stmt = DB_STMT_USER_CONFIRM, .nparams = 1, .values = values};
    http_pg(r, &q, 1, auth_confirmed);
}

static void auth_confirm_post(http_request_t *r)
{
    static const handlers_field_t fields[] = {{"token", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 1);
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    json_t *token = json_object_get(r->body, "token");
    auth_confirm_token(r, json_string_value(token), json_string_length(token));
}

static void auth_confirm_get(http_request_t *r)
{
    char token[260];
    int len = http_query_param(r, "token", token, sizeof(token));
    auth_confirm_token(r, len > 0 ? token : NULL, len > 0 ? (size_t)len : 0);
}

/* -------------------------------------------------------------------- login ---- */

/* An unknown email is verified against app->dummy_hash (copied into stored by
 * auth_login_check), so the answer takes as long as a wrong password. */
static void auth_login_verify(void *arg)
{
    auth_state_t *s = arg;
    if (!s->known) {
        auth_password_verify(s->password, s->password_len, s->stored);
        s->verified = AUTH_VERIFY_MISMATCH;
        return;
    }
    s->verified = auth_password_verify(s->password, s->password_len, s->stored);
    if (s->verified == AUTH_VERIFY_MATCH && auth_password_needs_rehash(s->stored, &s->params))
        s->rehashed =
            auth_password_hash(s->password, s->password_len, &s->params, s->hash, sizeof(s->hash)) == 0;
    s->failed = auth_token_new(s->token) != 0;
    if (!s->failed)
        auth_token_hash(s->token, strlen(s->token), s->token_hash);
}

/* The contract's token response, with the refresh token also as the cookie. An access token
 * must postdate the user's last revocation by a whole second (iat has seconds, and tokens
 * from that second are refused), so right after one its iat is the next second. */
static void auth_respond_tokens(http_request_t *r, const char *user_id, const char *role,
                                const char *family_id, const char *refresh_token, const char *user_json,
                                double valid_after)
{
    const handlers_app_t *app = r->app;
    time_t iat = time(NULL);
    if (isfinite(valid_after) && (double)iat <= floor(valid_after))
        iat = (time_t)floor(valid_after) + 1;
    char *access = auth_jwt_issue(&app->jwt, user_id, role, family_id, iat, NULL);
    json_t *user = json_loads(user_json, 0, NULL);
    if (access == NULL || user == NULL) {
        free(access);
        json_decref(user);
        http_respond_error(r, 500, "internal", "could not issue tokens", NULL);
        return;
    }
    char cookie[256];
    snprintf(cookie, sizeof(cookie),
             "refresh_token=%s; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=%d",
             refresh_token, app->cfg->auth.refresh_ttl_s);
    http_add_header(r, "Set-Cookie", cookie);
    http_add_header(r, "Cache-Control", "no-store");
    http_respond_json(r, 200,
                      json_pack("{s:s, s:s, s:i, s:s, s:o}", "access_token", access, "token_type", "Bearer",
                                "expires_in", app->jwt.ttl_s, "refresh_token", refresh_token, "user", user));
    free(access);
}

static void auth_login_done(http_request_t *r, const db_reply_t *reply)
{
    auth_state_t *s = r->state;
    if (http_pg_failed(r, reply))
        return;
    auth_respond_tokens(r, s->user_id, s->role, s->family_id, s->token, s->user_json, s->valid_after);
}

/* data is the loop: its error lines go through the log writer like the requests' (one per
 * failed login while PostgreSQL is down). */
static void auth_event_recorded(void *data, const db_reply_t *reply)
{
    http_loop_t *loop = data;
    if (reply->status != DB_OK)
        http_loop_log(loop, UTIL_LOG_ERROR, "auth", "audit record not written: %s",
                      db_status_name(reply->status));
}

/* An audit record that no answer waits for (a failed login is answered at once). */
static void auth_record_event(http_request_t *r, const char *user_id, const char *kind)
{
    const char *values[] = {user_id, kind, r->client, NULL};
    db_query_t q = {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = values};
    if (r->loop->pg != NULL)
        db_pg_submit(r->loop->pg, &q, 1, auth_event_recorded, r->loop);
}

/* The two failure counters of a login: per email (when it is one) and per client address. */
static int auth_login_limits(http_request_t *r, handlers_limit_t limits[2])
{
    auth_state_t *s = r->state;
    const cfg_auth_t *auth = &((const handlers_app_t *)r->app)->cfg->auth;
    int n = 0;
    limits[n++] = (handlers_limit_t){"login-address", r->client, auth->limit_login_per_address};
    if (s->email[0] != '\0')
        limits[n++] = (handlers_limit_t){"login-email", s->email, auth->limit_login_per_email};
    return n;
}

static void auth_login_verified(http_request_t *r, void *arg)
{
    auth_state_t *s = arg;
    const handlers_app_t *app = r->app;
    if (s->verified != AUTH_VERIFY_MATCH) {
        handlers_limit_t limits[2];
        handlers_limit_hit(r, limits, auth_login_limits(r, limits), AUTH_LIMIT_WINDOW_S);
        auth_record_event(r, s->known ? s->user_id : NULL, "login_failed");
        http_respond_error(r, 401, "invalid_credentials", "wrong email or password", NULL);
        return;
    }
    if (s->disabled) {
        http_respond_error(r, 403, "account_disabled", "this account is disabled", NULL);
        return;
    }
    if (!s->confirmed && app->cfg->auth.require_email_confirmation) {
        http_respond_error(r, 403, "email_not_confirmed", "confirm your email address first", NULL);
        return;
    }
    if (s->failed || util_uuid_v4(s->family_id) != 0) {
        http_respond_error(r, 500, "internal", "could not issue tokens", NULL);
        return;
    }
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", app->cfg->auth.refresh_ttl_s);
    const char *refresh[] = {s->token_hash, s->family_id, s->user_id, ttl};
    const char *event[] = {s->user_id, "login", r->client, NULL};
    const char *rehash[] = {s->user_id, s->hash, s->stored};
    db_query_t batch[3] = {
        {.stmt = DB_STMT_REFRESH_CREATE, .nparams = 4, .values = refresh},
        {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = event},
        {.stmt = DB_STMT_USER_SET_HASH, .nparams = 3, .values = rehash},
    };
    http_pg(r, batch, s->rehashed ? 3 : 2, auth_login_done);
}

static void auth_login_check(http_request_t *r, auth_state_t *s)
{
    if (!s->known)
        snprintf(s->stored, sizeof(s->stored), "%s", ((const handlers_app_t *)r->app)->dummy_hash);
    if (http_cpu_droppable(r, auth_login_verify, auth_login_verified, s) != 0) {
        http_add_header(r, "Retry-After", "1");
        http_respond_error(r, 503, "unavailable", "the server is busy, try again", NULL);
    }
}

static void auth_login_found(http_request_t *r, const db_reply_t *reply)
{
    auth_state_t *s = r->state;
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) == 1 &&
        strlen(PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_PASSWORD_HASH)) < sizeof(s->stored)) {
        s->known = 1;
        snprintf(s->user_id, sizeof(s->user_id), "%s", PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_ID));
        snprintf(s->stored, sizeof(s->stored), "%s",
                 PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_PASSWORD_HASH));
        snprintf(s->role, sizeof(s->role), "%s", PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_ROLE));
        s->confirmed = PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_EMAIL_CONFIRMED)[0] == 't';
        s->disabled = PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_DISABLED)[0] == 't';
        s->user_json = strdup(PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_USER));
        s->valid_after = atof(PQgetvalue(res, 0, DB_COL_USER_LOGIN_LOOKUP_TOKENS_VALID_AFTER));
    }
    auth_login_check(r, s);
}

static void auth_login_allowed(http_request_t *r)
{
    auth_state_t *s = r->state;
    if (s->email[0] == '\0') {
        auth_login_check(r, s);
        return;
    }
    const char *values[] = {s->email};
    db_query_t q = {.stmt = DB_STMT_USER_LOGIN_LOOKUP, .nparams = 1, .values = values};
    http_pg(r, &q, 1, auth_login_found);
}

static void auth_login(http_request_t *r)
{
    static const handlers_field_t fields[] = {{"email", JSON_STRING, 1, 0}, {"password", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 2);
    json_t *password = json_object_get(r->body, "password");
    if (details == NULL &&
        (json_string_length(password) == 0 || json_string_length(password) > AUTH_LOGIN_PASSWORD_MAX))
        details = json_pack("{s:s}", "password", "must be 1 to 1024 bytes");
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    auth_state_t *s = auth_state_new(r);
    if (s == NULL || auth_copy_password(s, password) != 0)
        return;
    json_t *email = json_object_get(r->body, "email");
    /* Looked up by the normal form only, without the validity rule: an account made under an
     * older, looser rule still signs in. */
    if (util_email_fold(json_string_value(email), json_string_length(email), s->email, sizeof(s->email)) < 0)
        s->email[0] = '\0'; /* no such account can exist: the same answer after the same work */
    handlers_limit_t limits[2];
    handlers_limit_check(r, limits, auth_login_limits(r, limits), AUTH_LIMIT_WINDOW_S, auth_login_allowed);
}

/* ------------------------------------------------------------------ refresh ---- */
/*
 * A rotation whose answer never reached the client (the database's answer was lost, or the
 * client left first) would turn the client's retry with the same token into a reuse that
 * revokes its own session. Such rotations are noted in Redis for auth.refresh-retry-window
 * seconds (Redis, so that the retry may reach any instance), and a retry within the window
 * rotates the same family again (contract v1.1).
 */

static void auth_unanswered_key(char *out, size_t len, const char *presented)
{
    snprintf(out, len, "hydrant:refresh:unanswered:%s", presented);
}

static void auth_redis_ignore(void *data, db_status_t status, redisReply *reply)
{
}

/* Fire and forget: the note only helps a retry, and nothing waits for it. */
static void auth_unanswered_note(http_request_t *r, const auth_state_t *s, int set)
{
    int window = ((const handlers_app_t *)r->app)->cfg->auth.refresh_retry_window_s;
    if (window <= 0 || r->loop->redis == NULL)
        return;
    char key[96], ttl[16];
    auth_unanswered_key(key, sizeof(key), s->presented);
    snprintf(ttl, sizeof(ttl), "%d", window);
    const char *set_argv[] = {"SET", key, "1", "EX", ttl};
    const char *del_argv[] = {"DEL", key};
    db_redis_command(r->loop->redis, auth_redis_ignore, NULL, set ? 5 : 2, set ? set_argv : del_argv, NULL);
}

static void auth_refreshed(http_request_t *r, const db_reply_t *reply)
{
    auth_state_t *s = r->state;
    if (reply->status == DB_ERR_INDOUBT)
        auth_unanswered_note(r, s, 1);
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    const char *verdict = PQgetvalue(res, 0, DB_COL_REFRESH_USE_VERDICT);
    if (strcmp(verdict, "ok") == 0 && !PQgetisnull(res, 0, DB_COL_REFRESH_USE_ID) &&
        PQgetvalue(res, 0, DB_COL_REFRESH_USE_DISABLED)[0] != 't') {
        if (r->h2o == NULL)
            auth_unanswered_note(r, s, 1); /* rotated, and the client left before the answer */
        else if (s->retrying)
            auth_unanswered_note(r, s, 0);
        auth_respond_tokens(r, PQgetvalue(res, 0, DB_COL_REFRESH_USE_ID),
                            PQgetvalue(res, 0, DB_COL_REFRESH_USE_ROLE),
                            PQgetvalue(res, 0, DB_COL_REFRESH_USE_FAMILY_ID), s->token,
                            PQgetvalue(res, 0, DB_COL_REFRESH_USE_USER),
                            atof(PQgetvalue(res, 0, DB_COL_REFRESH_USE_TOKENS_VALID_AFTER)));
        return;
    }
    if (strcmp(verdict, "reused") == 0)
        http_respond_error(r, 401, "token_reused",
                           "the refresh token was already used; the session is revoked", NULL);
    else if (strcmp(verdict, "expired") == 0)
        http_respond_error(r, 401, "token_expired", "the refresh token has expired", NULL);
    else
        http_respond_error(r, 401, "invalid_token", "the refresh token is not valid", NULL);
}

static void auth_refresh_rotate(http_request_t *r)
{
    auth_state_t *s = r->state;
    const cfg_auth_t *auth = &((const handlers_app_t *)r->app)->cfg->auth;
    char ttl[16], grace[16];
    snprintf(ttl, sizeof(ttl), "%d", auth->refresh_ttl_s);
    int grace_s = auth->refresh_reuse_grace_s;
    if (s->retrying && auth->refresh_retry_window_s > grace_s)
        grace_s = auth->refresh_retry_window_s;
    snprintf(grace, sizeof(grace), "%d", grace_s);
    const char *values[] = {s->presented, s->token_hash, ttl, grace};
    db_query_t q = {.stmt = DB_STMT_REFRESH_USE, .nparams = 4, .values = values};
    http_pg_always(r, &q, 1, auth_refreshed);
}

/* Without Redis the retry is not recognised: the token counts as reused, as before. */
static void auth_refresh_noted(http_request_t *r, db_status_t status, redisReply *reply)
{
    auth_state_t *s = r->state;
    s->retrying = status == DB_OK && reply != NULL && reply->type == REDIS_REPLY_STRING;
    auth_refresh_rotate(r);
}

size_t handlers_cookie_value(const char *cookie, size_t len, const char *name, const char **value)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i + name_len < len; i++) {
        if ((i == 0 || cookie[i - 1] == ' ' || cookie[i - 1] == ';') &&
            memcmp(cookie + i, name, name_len) == 0 && cookie[i + name_len] == '=') {
            size_t at = i + name_len + 1, n = 0;
            while (at + n < len && cookie[at + n] != ';')
                n++;
            *value = cookie + at;
            return n;
        }
    }
    return 0;
}

/* The refresh token from the JSON body, else from the cookie. Returns its length or 0. */
static size_t auth_refresh_token_of(http_request_t *r, const char **token)
{
    json_t *value = r->body != NULL ? json_object_get(r->body, "refresh_token") : NULL;
    if (json_is_string(value)) {
        *token = json_string_value(value);
        return json_string_length(value);
    }
    size_t len = 0;
    const char *cookie = http_header(r, "cookie", &len);
    return cookie != NULL ? handlers_cookie_value(cookie, len, "refresh_token", token) : 0;
}

static void auth_refresh(http_request_t *r)
{
    static const handlers_field_t fields[] = {{"refresh_token", JSON_STRING, 0, 0}};
    json_t *details = r->body != NULL ? handlers_check_fields(r->body, fields, 1) : NULL;
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    const char *token = NULL;
    size_t len = auth_refresh_token_of(r, &token);
    if (len == 0 || !auth_token_plausible(token, len)) {
        http_respond_error(r, 401, "invalid_token", "the refresh token is not valid", NULL);
        return;
    }
    auth_state_t *s = auth_state_new(r);
    if (s == NULL)
        return;
    if (auth_token_new(s->token) != 0) {
        http_respond_error(r, 500, "internal", "could not issue tokens", NULL);
        return;
    }
    auth_token_hash(token, len, s->presented);
    auth_token_hash(s->token, strlen(s->token), s->token_hash);
    if (((const handlers_app_t *)r->app)->cfg->auth.refresh_retry_window_s <= 0 || r->loop->redis == NULL ||
        !db_redis_is_ready(r->loop->redis)) {
        auth_refresh_rotate(r);
        return;
    }
    char key[96];
    auth_unanswered_key(key, sizeof(key), s->presented);
    const char *argv[] = {"GET", key};
    http_redis(r, 2, argv, NULL, auth_refresh_noted);
}

/* ------------------------------------------------------------------- logout ---- */

static void auth_logged_out(http_request_t *r, const db_reply_t *reply)
{
    const handlers_user_t *user = handlers_auth_user(r);
    if (user != NULL)
        handlers_principal_forget(r, user->id); /* also when in doubt: forgetting is always safe */
    if (http_pg_failed(r, reply))
        return;
    if (user == NULL) {
        http_respond_empty(r, 204);
        return;
    }
    json_t *all = r->body != NULL ? json_object_get(r->body, "all") : NULL;
    handlers_events_session_revoked(r->loop, user->id, json_is_true(all) ? NULL : user->claims.sid);
    handlers_principal_changed(r, user->id, 204, NULL);
}

/* This access token is revoked and this session's refresh family ended; with all, every
 * session and every access token of the user. */
static void auth_logout_ok(http_request_t *r, handlers_user_t *user)
{
    static const handlers_field_t fields[] = {{"all", JSON_TRUE, 0, 0}};
    json_t *details = r->body != NULL ? handlers_check_fields(r->body, fields, 1) : NULL;
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    json_t *all = r->body != NULL ? json_object_get(r->body, "all") : NULL;
    char exp[24];
    snprintf(exp, sizeof(exp), "%lld", (long long)user->claims.exp);
    const char *revoke[] = {user->claims.jti, exp};
    const char *family[] = {user->claims.sid, user->id};
    const char *everything[] = {user->id};
    const char *event[] = {user->id, json_is_true(all) ? "logout_all" : "logout", r->client, NULL};
    /* A revoked jti is no change to the user's row, so no trigger tells the other servers'
     * principal caches (migration 0007): the batch does, on commit. */
    const char *notify[] = {"hydrant_principal", user->id};
    db_query_t batch[4] = {
        {.stmt = DB_STMT_TOKEN_REVOKE, .nparams = 2, .values = revoke},
        {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = event},
        json_is_true(all) ? (db_query_t){.stmt = DB_STMT_USER_REVOKE_ALL, .nparams = 1, .values = everything}
                          : (db_query_t){.stmt = DB_STMT_FAMILY_REVOKE, .nparams = 2, .values = family},
        {.stmt = DB_STMT_NOTIFY, .nparams = 2, .values = notify},
    };
    http_pg(r, batch, 4, auth_logged_out);
}

static void auth_logout(http_request_t *r)
{
    handlers_authenticate(r, auth_logout_ok);
}

int handlers_auth_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"POST", "/api/v1/auth/signup", auth_signup, 0, HTTP_ROUTE_JSON_BODY},
        {"POST", "/api/v1/auth/confirm", auth_confirm_post, 0, HTTP_ROUTE_JSON_BODY},
        {"GET", "/api/v1/auth/confirm", auth_confirm_get, 0, 0},
        {"POST", "/api/v1/auth/login", auth_login, 0, HTTP_ROUTE_JSON_BODY},
        {"POST", "/api/v1/auth/refresh", auth_refresh, 0, HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_OPTIONAL_BODY},
        {"POST", "/api/v1/auth/logout", auth_logout, 0,
         HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_OPTIONAL_BODY | HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
