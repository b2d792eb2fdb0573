/*
 * Background jobs over HTTP (contract: /api/v1/jobs for their owners, /api/v1/admin/jobs for
 * superusers and admins). Jobs are the contract's Job JSON as PostgreSQL builds it. Another
 * user's job is 404, never 403: its existence is not told. Ids are time-ordered (UUIDv7), so
 * a page's cursor is simply the last id it showed.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int limit;
    char state[16];
    char queue[16];
    char cursor[37];
    char owner[64];
    int has_state, has_queue, has_cursor, has_owner;
} jobs_list_t;

static int jobs_one_of(const char *value, const char *const *allowed)
{
    for (; *allowed != NULL; allowed++)
        if (strcmp(value, *allowed) == 0)
            return 1;
    return 0;
}

/* A query parameter that, when present, must be one of `allowed` (NULL-terminated). */
static int jobs_enum_param(http_request_t *r, const char *name, const char *const *allowed, char *out,
                           size_t outlen, int *present)
{
    int n = http_query_param(r, name, out, outlen);
    *present = n >= 0;
    return n == -1 || (n > 0 && jobs_one_of(out, allowed)) ? 0 : -1;
}

static int jobs_parse_list(http_request_t *r, jobs_list_t *l, int with_queue)
{
    static const char *const states[] = {"queued", "running", "succeeded", "retrying",
                                         "failed", "dead",    "cancelled", NULL};
    static const char *const queues[] = {"short", "medium", "long", NULL};
    char buf[64];
    if (handlers_parse_limit(r, &l->limit) != 0)
        return -1;
    int n = http_query_param(r, "cursor", l->cursor, sizeof(l->cursor));
    l->has_cursor = n >= 0;
    if (n == -2 || (n >= 0 && !util_uuid_valid(l->cursor, (size_t)n)))
        return -1;
    if (jobs_enum_param(r, "state", states, l->state, sizeof(l->state), &l->has_state) != 0)
        return -1;
    if (!with_queue)
        return http_query_param(r, "queue", buf, sizeof(buf)) == -1 ? 0 : -1;
    return jobs_enum_param(r, "queue", queues, l->queue, sizeof(l->queue), &l->has_queue);
}

static void jobs_list_page(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_page(r, reply, ((jobs_list_t *)r->state)->limit, DB_COL_JOB_LIST_JOB, DB_COL_JOB_LIST_ID,
                          -1);
}

static void jobs_list_for(http_request_t *r, const char *owner, int with_queue)
{
    jobs_list_t list = {0};
    if (jobs_parse_list(r, &list, with_queue) != 0) {
        http_respond_error(r, 400, "bad_request",
                           with_queue ? "limit is 1 to 100; state, queue and cursor must be as given"
                                      : "limit is 1 to 100; state and cursor must be as given",
                           NULL);
        return;
    }
    if (owner != NULL) {
        snprintf(list.owner, sizeof(list.owner), "%s", owner);
        list.has_owner = 1;
    }
    jobs_list_t *l = handlers_state_replace(r, sizeof(*l), free);
    if (l == NULL)
        return;
    *l = list;
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", l->limit + 1);
    const char *values[] = {l->has_state ? l->state : NULL, l->has_queue ? l->queue : NULL,
                            l->has_owner ? l->owner : NULL, limit, l->has_cursor ? l->cursor : NULL};
    db_query_t q = {.stmt = DB_STMT_JOB_LIST, .nparams = 5, .values = values};
    http_pg(r, &q, 1, jobs_list_page);
}

static void jobs_list_own(http_request_t *r, handlers_user_t *user)
{
    jobs_list_for(r, user->id, 0);
}

static void jobs_list(http_request_t *r)
{
    handlers_authenticate_or_key(r, jobs_list_own);
}

static void jobs_admin_list_ok(http_request_t *r, handlers_user_t *user)
{
    (void)user;
    jobs_list_for(r, NULL, 1);
}

static void jobs_admin_list(http_request_t *r)
{
    handlers_authenticate_role(r, "superuser", jobs_admin_list_ok);
}

/* -------------------------------------------------------------- one job ---- */

/* The job's id from the path, or 404 (an id that is no UUID names no job). */
static int jobs_target(http_request_t *r, char out[37])
{
    return handlers_path_id(r, "no such job", out);
}

/* Superusers and admins see every job; a user only their own. */
static const char *jobs_owner_filter(const handlers_user_t *user)
{
    return handlers_role_rank(user->role) >= 2 ? NULL : user->id;
}

static void jobs_shown(http_request_t *r, const db_reply_t *reply)
{
    handlers_respond_row(r, reply, DB_COL_JOB_GET_JOB, 200, "job", "no such job");
}

static void jobs_get_ok(http_request_t *r, handlers_user_t *user)
{
    char id[37];
    if (jobs_target(r, id) != 0)
        return;
    const char *values[] = {id, jobs_owner_filter(user)};
    db_query_t q = {.stmt = DB_STMT_JOB_GET, .nparams = 2, .values = values};
    http_pg(r, &q, 1, jobs_shown);
}

static void jobs_get(http_request_t *r)
{
    handlers_authenticate_or_key(r, jobs_get_ok);
}

/* The job's JSON in a change's row: one column for both changes, so that one callback reads
 * either. */
enum {
    JOBS_CHANGED_JOB = DB_COL_JOB_CANCEL_JOB,
    JOBS_CHANGED_OWNER = DB_COL_JOB_CANCEL_OWNER_ID,
    JOBS_CHANGED_VERSION = DB_COL_JOB_CANCEL_VERSION,
};
_Static_assert((int)DB_COL_JOB_RETRY_JOB == (int)JOBS_CHANGED_JOB,
               "job_cancel and job_retry return the job alike");
_Static_assert((int)DB_COL_JOB_RETRY_OWNER_ID == (int)DB_COL_JOB_CANCEL_OWNER_ID &&
                   (int)DB_COL_JOB_RETRY_VERSION == (int)DB_COL_JOB_CANCEL_VERSION,
               "job_cancel and job_retry return the owner and version alike");

/* A change (cancel, retry) and the job as it then is, in one batch: the change's row means
 * 202 and job.updated to the job's owner; otherwise the job exists in a state that does not allow it (409) or
 * not at all (404). */
static void jobs_changed(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    PGresult *changed = reply->results[0], *now = reply->results[1];
    if (PQntuples(changed) == 1) {
        char object[64];
        snprintf(object, sizeof(object), "job:%s", (const char *)r->state);
        handlers_events_publish_object(r->loop, "job.updated", PQgetvalue(changed, 0, JOBS_CHANGED_JOB),
                                       object, atoll(PQgetvalue(changed, 0, JOBS_CHANGED_VERSION)),
                                       PQgetvalue(changed, 0, JOBS_CHANGED_OWNER));
        handlers_respond_wrapped(r, 202, "job", PQgetvalue(changed, 0, JOBS_CHANGED_JOB));
        return;
    }
    if (PQntuples(now) != 1) {
        http_respond_error(r, 404, "not_found", "no such job", NULL);
        return;
    }
    json_t *job = json_loads(PQgetvalue(now, 0, DB_COL_JOB_GET_JOB), 0, NULL);
    char message[96];
    snprintf(message, sizeof(message), "the job is %s", json_string_value(json_object_get(job, "state")));
    json_decref(job);
    http_respond_error(r, 409, "conflict", message, NULL);
}

static void jobs_change(http_request_t *r, db_stmt_id_t stmt, int nparams, const char *owner)
{
    char id[37], filter[64];
    if (jobs_target(r, id) != 0)
        return;
    snprintf(filter, sizeof(filter), "%s", owner != NULL ? owner : ""); /* owner is in the state replaced */
    char *kept = handlers_state_replace(r, sizeof(id), free); /* the job.updated's object, once committed */
    if (kept == NULL)
        return;
    memcpy(kept, id, sizeof(id));
    const char *values[] = {id, owner != NULL ? filter : NULL};
    db_query_t batch[2] = {
        {.stmt = stmt, .nparams = nparams, .values = values},
        {.stmt = DB_STMT_JOB_GET, .nparams = 2, .values = values},
    };
    http_pg(r, batch, 2, jobs_changed);
}

static void jobs_cancel_ok(http_request_t *r, handlers_user_t *user)
{
    jobs_change(r, DB_STMT_JOB_CANCEL, 2, jobs_owner_filter(user));
}

static void jobs_cancel(http_request_t *r)
{
    handlers_authenticate_or_key(r, jobs_cancel_ok);
}

static void jobs_retry_ok(http_request_t *r, handlers_user_t *user)
{
    (void)user;
    jobs_change(r, DB_STMT_JOB_RETRY, 1, NULL);
}

static void jobs_retry(http_request_t *r)
{
    handlers_authenticate_role(r, "superuser", jobs_retry_ok);
}

int handlers_jobs_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"GET", "/api/v1/jobs", jobs_list, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/jobs/{id}", jobs_get, 0, HTTP_ROUTE_AUTHENTICATED},
        {"POST", "/api/v1/jobs/{id}/cancel", jobs_cancel, 0, HTTP_ROUTE_AUTHENTICATED},
        {"GET", "/api/v1/admin/jobs", jobs_admin_list, 0, HTTP_ROUTE_AUTHENTICATED},
        {"POST", "/api/v1/admin/jobs/{id}/retry", jobs_retry, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
