/*
 * Administration of users (contract: /api/v1/admin/users), for superusers and admins.
 * Changing a role needs an admin; a superuser may disable only plain users. Lists are
 * newest first with an opaque cursor: "<created_at in Unix microseconds>.<id>".
 */
#include "handlers/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    handlers_page_t page;
    char q[256 * 2 + 1]; /* escaped for LIKE */
    int has_q;
} admin_list_t;

/* Lower-cases and escapes LIKE's metacharacters, so q only ever matches as a prefix. */
static int admin_parse_q(admin_list_t *l, const char *q, size_t len)
{
    if (len == 0 || len > 254)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c < ' ')
            return -1;
        if (c == '%' || c == '_' || c == '\\')
            l->q[o++] = '\\';
        l->q[o++] = (char)tolower(c);
    }
    l->q[o] = '\0';
    l->has_q = 1;
    return 0;
}

static int admin_parse_list(http_request_t *r, admin_list_t *l)
{
    char buf[600];
    if (handlers_parse_page(r, &l->page) != 0)
        return -1;
    int n = http_query_param(r, "q", buf, sizeof(buf));
    return n == -2 || (n >= 0 && admin_parse_q(l, buf, (size_t)n) != 0) ? -1 : 0;
}

static void admin_list_page(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_page(r, reply, ((admin_list_t *)r->state)->page.limit, DB_COL_ADMIN_USER_LIST_USER,
                          DB_COL_ADMIN_USER_LIST_CURSOR_US, DB_COL_ADMIN_USER_LIST_ID);
}

static void admin_list_ok(http_request_t *r, handlers_user_t *user)
{
    admin_list_t list = {0};
    if (admin_parse_list(r, &list) != 0) {
        http_respond_error(r, 400, "bad_request", "limit is 1 to 100; cursor and q must be as given", NULL);
        return;
    }
    admin_list_t *l = handlers_state_replace(r, sizeof(*l), free);
    if (l == NULL)
        return;
    *l = list;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", l->page.limit + 1);
    const char *values[] = {l->has_q ? l->q : NULL, limit, l->page.has_cursor ? l->page.cursor_us : NULL,
                            l->page.has_cursor ? l->page.cursor_id : NULL};
    db_query_t q = {.stmt = DB_STMT_ADMIN_USER_LIST, .nparams = 4, .values = values};
    http_pg(r, &q, 1, admin_list_page);
}

static void admin_list(http_request_t *r)
{
    handlers_authenticate_role(r, "superuser", admin_list_ok);
}

/* ------------------------------------------------------------- one user ---- */

static int admin_target(http_request_t *r, char out[37])
{
    return handlers_path_id(r, "no such user", out);
}

/* The User in the row of a read or an update: one column for both, so that one callback
 * answers either. */
enum { ADMIN_USER_SHOWN_USER = DB_COL_ADMIN_USER_GET_USER };
_Static_assert((int)DB_COL_ADMIN_USER_UPDATE_USER == (int)ADMIN_USER_SHOWN_USER,
               "admin_user_get and admin_user_update return the user alike");

static void admin_user_shown(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_row(r, reply, ADMIN_USER_SHOWN_USER, 200, "user", "no such user");
}

static void admin_get_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (admin_target(r, id) != 0)
        return;
    const char *values[] = {id};
    db_query_t q = {.stmt = DB_STMT_ADMIN_USER_GET, .nparams = 1, .values = values};
    http_pg(r, &q, 1, admin_user_shown);
}

static void admin_get(http_request_t *r)
{
    handlers_authenticate_role(r, "superuser", admin_get_ok);
}

/* ---------------------------------------------------------------- PATCH ---- */

typedef struct {
    char id[37];
    char actor[64];
    int actor_rank;
    int disabling; /* the change disables the user: session.revoked once committed */
} admin_patch_t;

/* An audit record's detail: {"by": actor} and the new role when given (malloc'd, or NULL). */
static char *admin_event_detail(const char *actor, const json_t *role)
{
    json_t *detail = json_pack("{s:s}", "by", actor);
    if (detail != NULL && role != NULL)
        json_object_set(detail, "role", (json_t *)role);
    char *text = detail != NULL ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    return text;
}

/* The update and one audit record per change, as `hydrant user set-role|disable` writes
 * them (role_change {role, by}, disabled or enabled {by}) with the acting admin's id and
 * the client's address, in one batch: they commit together or not at all. */
/* A role or disabled flag counts at the target's next request on this server too. */
static void admin_user_updated(http_request_t *r, const db_reply_t *reply)
{
    const admin_patch_t *p = r->state;
    handlers_principal_forget(r, p->id);
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 404, "not_found", "no such user", NULL);
        return;
    }
    /* Disabling ends every session (a role change ends none: the new role counts at the next
     * request): the user's streams end too. */
    if (p->disabling)
        handlers_events_session_revoked(r->loop, p->id, NULL);
    handlers_principal_changed(r, p->id, 200,
                               PQgetvalue(reply->results[0], 0, DB_COL_ADMIN_USER_UPDATE_USER));
}

static void admin_patch_write(http_request_t *r, const json_t *role, const json_t *disabled)
{
    admin_patch_t *p = r->state;
    p->disabling = json_is_true(disabled);
    const char *values[] = {p->id, json_string_value(role),
                            disabled == NULL         ? NULL
                            : json_is_true(disabled) ? "true"
                                                     : "false"};
    char *role_detail = admin_event_detail(p->actor, role);
    char *by_detail = admin_event_detail(p->actor, NULL);
    const char *role_event[] = {p->id, "role_change", r->client, role_detail};
    const char *disabled_event[] = {p->id, json_is_true(disabled) ? "disabled" : "enabled", r->client,
                                    by_detail};
    db_query_t batch[3] = {{.stmt = DB_STMT_ADMIN_USER_UPDATE, .nparams = 3, .values = values}};
    int n = 1;
    if (role != NULL)
        batch[n++] = (db_query_t){.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = role_event};
    if (disabled != NULL)
        batch[n++] = (db_query_t){.stmt = DB_STMT_AUTH_EVENT, .nparams = 4, .values = disabled_event};
    if (role_detail == NULL || by_detail == NULL)
        http_respond_error(r, 500, "internal", "out of memory", NULL);
    else
        http_pg(r, batch, n, admin_user_updated);
    free(role_detail);
    free(by_detail);
}

static void admin_patch_found(http_request_t *r, const db_reply_t *reply)
{
    admin_patch_t *p = r->state;
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 404, "not_found", "no such user", NULL);
        return;
    }
    json_t *role = json_object_get(r->body, "role"), *disabled = json_object_get(r->body, "disabled");
    int target_rank = handlers_role_rank(PQgetvalue(reply->results[0], 0, DB_COL_ADMIN_USER_GET_ROLE));
    if ((role != NULL && p->actor_rank < 3) || (disabled != NULL && p->actor_rank < 3 && target_rank > 1)) {
        http_respond_error(r, 403, "forbidden",
                           "changing roles needs an admin; a superuser may disable only users", NULL);
        return;
    }
    admin_patch_write(r, role, disabled);
}

/* The 422 details for a PATCH of a user, or NULL when it is fine. */
static json_t *admin_patch_invalid(const json_t *body)
{
    static const handlers_field_t fields[] = {{"role", JSON_STRING, 0, 0}, {"disabled", JSON_TRUE, 0, 0}};
    json_t *details = handlers_check_fields(body, fields, 2);
    json_t *role = json_object_get(body, "role");
    if (details == NULL && role != NULL && handlers_role_rank(json_string_value(role)) == 0)
        details = json_pack("{s:s}", "role", "must be user, superuser or admin");
    return details;
}

/* The body is checked once the caller is known to be a superuser or admin. */
static void admin_patch_ok(http_request_t *r, handlers_user_t *user)
{
    json_t *details = admin_patch_invalid(r->body);
    if (details != NULL) {
        handlers_respond_invalid(r, details);
        return;
    }
    admin_patch_t patch = {.actor_rank = handlers_role_rank(user->role)};
    snprintf(patch.actor, sizeof(patch.actor), "%s", user->id);
    if (admin_target(r, patch.id) != 0)
        return;
    admin_patch_t *p = handlers_state_replace(r, sizeof(*p), free);
    if (p == NULL)
        return;
    *p = patch;
    const char *values[] = {p->id};
    db_query_t q = {.stmt = DB_STMT_ADMIN_USER_GET, .nparams = 1, .values = values};
    http_pg(r, &q, 1, admin_patch_found);
}

static void admin_patch(http_request_t *r)
{
    handlers_authenticate_role(r, "superuser", admin_patch_ok);
}

int handlers_admin_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"GET", "/api/v1/admin/users", admin_list, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/admin/users/{id}", admin_get, 0, HTTP_ROUTE_AUTHENTICATED},
        {"PATCH", "/api/v1/admin/users/{id}", admin_patch, 0,
         HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
