/*
 * Files (contract: /api/v1/files): the upload is files_upload.c; here the listing, one
 * file's record and its deletion. Another user's file is 404, never 403; superusers and
 * admins may read anybody's. Lists are newest first (listing.c's time cursor).
 */
#include "handlers/handlers.h"

#include "files/files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void files_list_page(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_page(r, reply, ((handlers_page_t *)r->state)->limit, DB_COL_FILE_LIST_FILE,
                          DB_COL_FILE_LIST_CURSOR_US, DB_COL_FILE_LIST_ID);
}

static void files_list_ok(http_request_t *r, handlers_user_t *user)
{
    handlers_page_t page = {0};
    if (handlers_parse_page(r, &page) != 0) {
        http_respond_error(r, 400, "bad_request", "limit is 1 to 100; cursor must be as given", NULL);
        return;
    }
    char owner[64];
    snprintf(owner, sizeof(owner), "%s", user->id);
    handlers_page_t *l = handlers_state_replace(r, sizeof(*l), free);
    if (l == NULL)
        return;
    *l = page;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", l->limit + 1);
    const char *values[] = {owner, limit, l->has_cursor ? l->cursor_us : NULL,
                            l->has_cursor ? l->cursor_id : NULL};
    db_query_t q = {.stmt = DB_STMT_FILE_LIST, .nparams = 4, .values = values};
    http_pg(r, &q, 1, files_list_page);
}

static void files_list(http_request_t *r)
{
    handlers_authenticate_or_key(r, files_list_ok);
}

/* ------------------------------------------------------------ one file ---- */

int handlers_file_target(http_request_t *r, char out[37])
{
    return handlers_path_id(r, "no such file", out);
}

const char *handlers_file_owner_filter(const handlers_user_t *user)
{
    return handlers_role_rank(user->role) >= 2 ? NULL : user->id;
}

static void files_shown(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_row(r, reply, DB_COL_FILE_GET_FILE, 200, "file", "no such file");
}

static void files_get_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (handlers_file_target(r, id) != 0)
        return;
    const char *values[] = {id, handlers_file_owner_filter(user)};
    db_query_t q = {.stmt = DB_STMT_FILE_GET, .nparams = 2, .values = values};
    http_pg(r, &q, 1, files_shown);
}

static void files_get(http_request_t *r)
{
    handlers_authenticate_or_key(r, files_get_ok);
}

/* -------------------------------------------------------------- delete ---- */

typedef handlers_file_ref_t files_delete_t;

static void files_unlink_work(void *arg)
{
    files_delete_t *d = arg;
    files_remove(d->dir, d->id);
}

static void files_unlinked(http_request_t *r, void *arg)
{
    (void)arg;
    http_respond_empty(r, 204);
}

/* The row goes first: once it is gone nobody can be served the bytes, which then go too (a
 * crash in between leaves bytes without a row, never a row without bytes). */
static void files_deleted(http_request_t *r, const db_reply_t *reply)
{
    files_delete_t *d = r->state;
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 404, "not_found", "no such file", NULL);
        return;
    }
    if (http_cpu(r, files_unlink_work, files_unlinked, d) != 0) {
        files_remove(d->dir, d->id); /* the pool is saturated: one unlink here beats a leak */
        http_respond_empty(r, 204);
    }
}

void *handlers_file_lookup(http_request_t *r, const handlers_user_t *user, size_t size,
                           void (*free_fn)(void *), db_stmt_id_t stmt, http_pg_cb cb)
{
    char id[37], owner[64];
    if (handlers_file_target(r, id) != 0)
        return NULL;
    const char *filter = handlers_file_owner_filter(user);
    if (filter != NULL)
        snprintf(owner, sizeof(owner), "%s", filter); /* user goes with the state replaced */
    handlers_file_ref_t *ref = handlers_state_replace(r, size, free_fn);
    if (ref == NULL)
        return NULL;
    ref->dir = ((const handlers_app_t *)r->app)->cfg->uploads.dir;
    memcpy(ref->id, id, sizeof(ref->id));
    const char *values[] = {ref->id, filter != NULL ? owner : NULL};
    db_query_t q = {.stmt = stmt, .nparams = 2, .values = values};
    http_pg(r, &q, 1, cb);
    return ref;
}

static void files_delete_ok(http_request_t *r, handlers_user_t *user)
{
    handlers_file_lookup(r, user, sizeof(files_delete_t), free, DB_STMT_FILE_DELETE, files_deleted);
}

static void files_delete(http_request_t *r)
{
    handlers_authenticate_or_key(r, files_delete_ok);
}

int handlers_files_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"POST", "/api/v1/files", handlers_files_upload, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/files", files_list, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/files/{id}", files_get, 0, HTTP_ROUTE_AUTHENTICATED},
        {"DELETE", "/api/v1/files/{id}", files_delete, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/files/{id}/content", handlers_files_content, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
