/*
 * The email-driven flows and password changes (contract: /api/v1/auth/confirm/resend,
 * /password/forgot, /password/reset, PUT /api/v1/me/password).
 *
 * Requests that could tell whether an address has an account (resend, forgot) always answer
 * 202 {}. At most `auth.limits.emails-per-address` such emails leave per address and minute
 * (a Redis counter); later requests still answer 202 and send nothing.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_CONFIRM_TTL_S 86400
#define PASSWORD_RESET_TTL_S   3600

typedef struct {
    char email[256];
    const char *purpose; /* confirm or reset */
    const char *kind;    /* the email job */
    int ttl_s;
    char token[AUTH_TOKEN_LEN + 1];
    char token_hash[AUTH_TOKEN_HASH_LEN + 1];
    char *password, *current; /* copies, wiped when the state goes */
    size_t password_len, current_len;
    char stored[AUTH_HASH_MAX];
    char hash[AUTH_HASH_MAX];
    char user_id[64];
    auth_argon2_params_t params;
    auth_verify_t verified;
    int failed;
} password_state_t;

static void password_state_free(void *p)
{
    password_state_t *s = p;
    handlers_secret_free(s->password, s->password_len);
    handlers_secret_free(s->current, s->current_len);
    free(s);
}

static password_state_t *password_state_new(http_request_t *r)
{
    password_state_t *s = handlers_state_replace(r, sizeof(*s), password_state_free);
    if (s != NULL)
        s->params = ((const handlers_app_t *)r->app)->argon2;
    return s;
}

static void password_busy(http_request_t *r)
{
    http_add_header(r, "Retry-After", "1");
    http_respond_error(r, 503, "unavailable", "the server is busy, try again", NULL);
}

/* ------------------------------------------------ resend and forgot (emails) ---- */

static void password_email_queued(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    http_respond_json(r, 202, json_object());
}

/* Within the emails-per-address limit: the token, and the email job in the same batch. */
static void password_email_send(http_request_t *r)
{
    password_state_t *s = r->state;
    const handlers_app_t *app = r->app;
    char ttl[16], attempts[16];
    snprintf(ttl, sizeof(ttl), "%d", s->ttl_s);
    snprintf(attempts, sizeof(attempts), "%d", cfg_job_schedule(app->cfg, s->kind).max_attempts);
    const char *values[] = {s->email, s->token_hash, s->token, s->purpose, ttl, s->kind, attempts};
    db_query_t q = {.stmt = DB_STMT_EMAIL_REQUEST, .nparams = 7, .values = values};
    http_pg(r, &q, 1, password_email_queued);
}

static void password_email_skipped(http_request_t *r)
{
    http_respond_json(r, 202, json_object()); /* over the limit: the same answer, no email */
}

/* A one-minute window per address and purpose (limits.c, "emails-confirm", "emails-reset"). */
static void password_email_request(http_request_t *r, const char *purpose, const char *limit_name,
                                   const char *kind, int ttl_s)
{
    static const handlers_field_t fields[] = {{"email", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 1);
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    password_state_t *s = password_state_new(r);
    if (s == NULL)
        return;
    json_t *email = json_object_get(r->body, "email");
    if (util_email_normalize(json_string_value(email), json_string_length(email), s->email,
                             sizeof(s->email)) != 0) {
        handlers_respond_invalid(r, json_pack("{s:s}", "email", "must be a valid email address"));
        return;
    }
    s->purpose = purpose;
    s->kind = kind;
    s->ttl_s = ttl_s;
    if (auth_token_new(s->token) != 0) {
        http_respond_error(r, 500, "internal", "could not make a token", NULL);
        return;
    }
    auth_token_hash(s->token, strlen(s->token), s->token_hash);
    const handlers_app_t *app = r->app;
    handlers_limit_t limit = {limit_name, s->email, app->cfg->auth.limit_emails_per_address};
    handlers_limit_take_or(r, &limit, 60, password_email_send, password_email_skipped);
}

static void password_resend_allowed(http_request_t *r)
{
    password_email_request(r, "confirm", "emails-confirm", "email.confirmation", PASSWORD_CONFIRM_TTL_S);
}

static void password_forgot_allowed(http_request_t *r)
{
    password_email_request(r, "reset", "emails-reset", "email.password_reset", PASSWORD_RESET_TTL_S);
}

/* Both count against the per-address limit on email-sending requests. */
static void password_limited(http_request_t *r, handlers_next_fn next)
{
    const handlers_app_t *app = r->app;
    handlers_limit_t limit = {"email-requests", r->client, app->cfg->auth.limit_email_requests_per_address};
    handlers_limit_take(r, &limit, 900, next);
}

static void password_resend(http_request_t *r)
{
    password_limited(r, password_resend_allowed);
}

static void password_forgot(http_request_t *r)
{
    password_limited(r, password_forgot_allowed);
}

/* -------------------------------------------------------------------- reset ---- */

static void password_reset_done(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 400, "invalid_token", "the token is unknown, used or expired", NULL);
        return;
    }
    handlers_events_session_revoked(r->loop, PQgetvalue(reply->results[0], 0, DB_COL_PASSWORD_RESET_ID),
                                    NULL);
    handlers_principal_changed(r, PQgetvalue(reply->results[0], 0, DB_COL_PASSWORD_RESET_ID), 204, NULL);
}

static void password_hash_new(void *arg)
{
    password_state_t *s = arg;
    s->failed = auth_password_hash(s->password, s->password_len, &s->params, s->hash, sizeof(s->hash)) != 0;
}

static void password_reset_hashed(http_request_t *r, void *arg)
{
    password_state_t *s = arg;
    if (s->failed) {
        http_respond_error(r, 500, "internal", "could not hash the password", NULL);
        return;
    }
    const char *values[] = {s->token_hash, s->hash, r->client};
    db_query_t q = {.stmt = DB_STMT_PASSWORD_RESET, .nparams = 3, .values = values};
    http_pg(r, &q, 1, password_reset_done);
}

static void password_reset(http_request_t *r)
{
    static const handlers_field_t fields[] = {{"token", JSON_STRING, 1, 0}, {"password", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(r->body, fields, 2);
    json_t *password = json_object_get(r->body, "password"), *token = json_object_get(r->body, "token");
    if (details == NULL &&
        !auth_password_acceptable(json_string_value(password), json_string_length(password)))
        details = json_pack("{s:s}", "password", "must be 8 to 256 characters");
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    if (!auth_token_plausible(json_string_value(token), json_string_length(token))) {
        http_respond_error(r, 400, "invalid_token", "the token is unknown, used or expired", NULL);
        return;
    }
    password_state_t *s = password_state_new(r);
    if (s == NULL)
        return;
    auth_token_hash(json_string_value(token), json_string_length(token), s->token_hash);
    s->password = handlers_secret_copy(password, &s->password_len);
    if (s->password == NULL || http_cpu_droppable(r, password_hash_new, password_reset_hashed, s) != 0)
        password_busy(r);
}

/* --------------------------------------------------------- PUT /me/password ---- */

static void password_changed(http_request_t *r, const db_reply_t *reply)
{
    const password_state_t *s = r->state;
    handlers_principal_forget(r, s->user_id); /* whatever the outcome: forgetting is always safe */
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 409, "conflict", "the password changed meanwhile; try again", NULL);
        return;
    }
    handlers_events_session_revoked(r->loop, s->user_id, NULL);
    handlers_principal_changed(r, s->user_id, 204, NULL);
}

static void password_change_verify(void *arg)
{
    password_state_t *s = arg;
    s->verified = auth_password_verify(s->current, s->current_len, s->stored);
    if (s->verified == AUTH_VERIFY_MATCH)
        password_hash_new(s);
}

static void password_change_checked(http_request_t *r, void *arg)
{
    password_state_t *s = arg;
    if (s->verified != AUTH_VERIFY_MATCH) {
        http_respond_error(r, 401, "invalid_credentials", "the current password is wrong", NULL);
        return;
    }
    if (s->failed) {
        http_respond_error(r, 500, "internal", "could not hash the password", NULL);
        return;
    }
    const char *values[] = {s->user_id, s->hash, s->stored};
    const char *event[] = {s->user_id, "password_change", r->client, NULL};
    db_query_t batch[2] = {
        {.stmt = DB_STMT_USER_PASSWORD_SET, .nparams = 3, .values = values},
        {.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = event},
    };
    http_pg(r, batch, 2, password_changed);
}

static void password_change_found(http_request_t *r, const db_reply_t *reply)
{
    password_state_t *s = r->state;
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) != 1 ||
        strlen(PQgetvalue(res, 0, DB_COL_USER_PASSWORD_GET_PASSWORD_HASH)) >= sizeof(s->stored)) {
        http_respond_error(r, 401, "unauthorized", "the account no longer exists", NULL);
        return;
    }
    snprintf(s->stored, sizeof(s->stored), "%s", PQgetvalue(res, 0, DB_COL_USER_PASSWORD_GET_PASSWORD_HASH));
    if (http_cpu_droppable(r, password_change_verify, password_change_checked, s) != 0)
        password_busy(r);
}

/* The 422 details for a password change body, or NULL when it is fine. */
static json_t *password_change_invalid(const json_t *body)
{
    static const handlers_field_t fields[] = {{"current_password", JSON_STRING, 1, 0},
                                              {"new_password", JSON_STRING, 1, 0}};
    json_t *details = handlers_check_fields(body, fields, 2);
    json_t *current = json_object_get(body, "current_password");
    json_t *fresh = json_object_get(body, "new_password");
    if (details == NULL && !auth_password_acceptable(json_string_value(fresh), json_string_length(fresh)))
        details = json_pack("{s:s}", "new_password", "must be 8 to 256 characters");
    if (details == NULL && (json_string_length(current) == 0 || json_string_length(current) > 1024))
        details = json_pack("{s:s}", "current_password", "must be 1 to 1024 bytes");
    return details;
}

/* Runs once authenticated (the body is checked only then): the request's state now belongs
 * to the password change. */
static void password_change_ok(http_request_t *r, handlers_user_t *user)
{
    json_t *details = password_change_invalid(r->body);
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    json_t *current = json_object_get(r->body, "current_password");
    json_t *fresh = json_object_get(r->body, "new_password");
    char user_id[64];
    snprintf(user_id, sizeof(user_id), "%s", user->id);
    password_state_t *s = password_state_new(r); /* frees the authentication's state, user included */
    if (s == NULL)
        return;
    snprintf(s->user_id, sizeof(s->user_id), "%s", user_id);
    s->current = handlers_secret_copy(current, &s->current_len);
    s->password = handlers_secret_copy(fresh, &s->password_len);
    if (s->current == NULL || s->password == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    const char *values[] = {s->user_id};
    db_query_t q = {.stmt = DB_STMT_USER_PASSWORD_GET, .nparams = 1, .values = values};
    http_pg(r, &q, 1, password_change_found);
}

static void password_change(http_request_t *r)
{
    handlers_authenticate(r, password_change_ok);
}

int handlers_password_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"POST", "/api/v1/auth/confirm/resend", password_resend, 0, HTTP_ROUTE_JSON_BODY},
        {"POST", "/api/v1/auth/password/forgot", password_forgot, 0, HTTP_ROUTE_JSON_BODY},
        {"POST", "/api/v1/auth/password/reset", password_reset, 0, HTTP_ROUTE_JSON_BODY},
        {"PUT", "/api/v1/me/password", password_change, 0, HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
