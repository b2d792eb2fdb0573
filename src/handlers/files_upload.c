/*
 * POST /api/v1/files: an upload, as multipart/form-data (one part named "file") or as a raw
 * body with ?name=. libh2o 2.2 has the whole body before the handler runs (spilled to an
 * unlinked temporary file above a threshold, see src/server/server.c), and it frees that body
 * the moment the client goes away, so the body is only ever read on the loop:
 *
 *   1. pool:  a temporary file in uploads.dir with the body's size reserved, mapped;
 *   2. loop:  the body copied (raw) or parsed (multipart) into the mapping, 256 KiB per loop
 *             iteration, checking between slices that the client is still there;
 *   3. pool:  hashed, fsynced, renamed into place, directory fsynced (src/files);
 *   4. db:    the row and its file.process job in one statement (within the owner's quota),
 *             then their file.updated and job.updated;
 *   5. 201.
 * A failure at any step removes the bytes; once the row is committed the file is kept even if
 * the client is gone by then.
 */
#include "handlers/handlers.h"

#include "files/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILES_SLICE        (256 * 1024)
#define FILES_NAME_MAX     255
#define FILES_TYPE_MAX     255
#define FILES_PART_HEADERS 8192
#define FILES_MAX_PARTS    16
#define FILES_DEFAULT_TYPE "application/octet-stream"

typedef struct {
    http_request_t *r;
    uv_loop_t *loop;
    const char *dir;
    files_upload_t up;
    int up_open;
    http_multipart_t *mp;
    uv_timer_t slicer;
    size_t fed, capacity;
    int file_parts, in_file;
    const char *bad; /* why the body is refused (400), once known */
    int sys_errno;   /* of a failed storage step */
    char err[200];
    /* the answer to give once the bytes are removed (files_refuse) */
    int refuse_status;
    const char *refuse_code;
    char refuse_message[256];
    char id[37], owner[64], sha256[65];
    char name[FILES_NAME_MAX + 1];
    char content_type[FILES_TYPE_MAX + 1];
    long long quota;
} files_up_t;

/* ------------------------------------------------------------ clean-up ---- */

static void files_abort_work(uv_work_t *work)
{
    files_upload_abort(work->data);
}

static void files_abort_done(uv_work_t *work, int status)
{
    (void)status;
    free(work->data);
    free(work);
}

/* The temporary file is removed on the pool (an unlink may wait for the disk). */
static void files_up_discard(files_up_t *u)
{
    if (!u->up_open)
        return;
    u->up_open = 0;
    files_upload_t *copy = malloc(sizeof(*copy));
    uv_work_t *work = malloc(sizeof(*work));
    if (copy == NULL || work == NULL) {
        free(copy);
        free(work);
        files_upload_abort(&u->up); /* out of memory: better late here than a leaked file */
        return;
    }
    *copy = u->up;
    work->data = copy;
    if (uv_queue_work(u->loop, work, files_abort_work, files_abort_done) != 0) {
        files_upload_abort(copy);
        free(copy);
        free(work);
    }
}

static void files_up_free(void *p)
{
    files_up_t *u = p;
    files_up_discard(u);
    http_multipart_free(u->mp);
    free(u);
}

static void files_storage_error(http_request_t *r, int err)
{
    if (err == ENOSPC || err == EDQUOT) {
        http_respond_error(r, 503, "unavailable", "the upload storage is full", NULL);
    } else {
        http_respond_error(r, 500, "internal", "the upload could not be stored", NULL);
    }
}

/* ------------------------------------------------------------ validation ---- */

/* The contract's rule: 1..255 bytes, no '/', '\\' or control characters. */
static int files_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > FILES_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
            return 0;
    }
    return 1;
}

static int files_type_ok(const char *type, size_t len)
{
    if (len == 0 || len > FILES_TYPE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)type[i] < 0x20 || (unsigned char)type[i] >= 0x7f)
            return 0;
    return 1;
}

/* ------------------------------------------------------------ multipart ---- */

static int files_part_begin(void *user, const http_multipart_part_t *part)
{
    files_up_t *u = user;
    u->in_file = part->name_len == 4 && memcmp(part->name, "file", 4) == 0;
    if (!u->in_file)
        return 0;
    if (++u->file_parts > 1) {
        u->bad = "more than one part is named file";
        return 1;
    }
    if (part->filename == NULL || !files_name_ok(part->filename, part->filename_len)) {
        u->bad = "the file part needs a filename of 1 to 255 bytes without '/', '\\' or control characters";
        return 1;
    }
    memcpy(u->name, part->filename, part->filename_len + 1);
    const char *type = part->content_type != NULL && files_type_ok(part->content_type, part->content_type_len)
                           ? part->content_type
                           : FILES_DEFAULT_TYPE;
    snprintf(u->content_type, sizeof(u->content_type), "%s", type);
    return 0;
}

static int files_part_data(void *user, const char *data, size_t len)
{
    files_up_t *u = user;
    if (!u->in_file)
        return 0;
    memcpy(u->up.map + u->up.len, data, len); /* a part is never longer than the body */
    u->up.len += len;
    return 0;
}

static int files_part_end(void *user)
{
    ((files_up_t *)user)->in_file = 0;
    return 0;
}

/* ---------------------------------------------------------- the steps ---- */

static void files_committed(http_request_t *r, const db_reply_t *reply);

static void files_stored(http_request_t *r, void *arg)
{
    files_up_t *u = arg;
    if (u->sys_errno != 0) {
        files_storage_error(r, u->sys_errno);
        return;
    }
    char size[24], quota[24];
    snprintf(size, sizeof(size), "%zu", u->up.len);
    snprintf(quota, sizeof(quota), "%lld", u->quota);
    const char *values[] = {u->id, u->owner, u->name, u->content_type, size, u->sha256, quota};
    db_query_t q = {.stmt = DB_STMT_FILE_CREATE, .nparams = 7, .values = values};
    http_pg(r, &q, 1, files_committed);
}

static void files_store_work(void *arg)
{
    files_up_t *u = arg;
    /* commit finishes with the temporary file whatever happens */
    u->up_open = 0;
    if (files_upload_commit(&u->up, u->dir, u->id, u->sha256, u->err, sizeof(u->err)) != 0)
        u->sys_errno = errno != 0 ? errno : EIO;
}

/* Refusals answer only once the bytes are gone (the temporary file, or the stored file when
 * its row could not be committed), so that nothing is left behind when the client reads the
 * answer. */
static void files_refuse_work(void *arg)
{
    files_up_t *u = arg;
    if (u->up_open) {
        u->up_open = 0;
        files_upload_abort(&u->up);
    }
    if (u->sha256[0] != '\0')
        files_remove(u->dir, u->id);
}

static void files_refused(http_request_t *r, void *arg)
{
    files_up_t *u = arg;
    http_respond_error(r, u->refuse_status, u->refuse_code, u->refuse_message, NULL);
}

static void files_refuse(http_request_t *r, files_up_t *u, int status, const char *code, const char *message)
{
    u->refuse_status = status;
    u->refuse_code = code;
    snprintf(u->refuse_message, sizeof(u->refuse_message), "%s", message);
    if (http_cpu(r, files_refuse_work, files_refused, u) != 0) {
        files_refuse_work(u); /* the pool is saturated: one unlink here beats a leftover */
        files_refused(r, u);
    }
}

static void files_committed(http_request_t *r, const db_reply_t *reply)
{
    files_up_t *u = r->state;
    if (reply->status == DB_ERR_INDOUBT) {
        /* The row may have been committed: its bytes stay. If it was not, the sweep of bytes
         * without a row removes them later. */
        http_respond_db_error(r, reply->status);
        return;
    }
    if (reply->status != DB_OK) {
        int unavailable = reply->status != DB_ERR_QUERY;
        files_refuse(r, u, unavailable ? 503 : 500, unavailable ? "unavailable" : "internal",
                     unavailable ? "the database is unavailable; try again"
                                 : "the upload could not be recorded");
        return;
    }
    if (PQntuples(reply->results[0]) != 1) {
        files_refuse(r, u, 413, "payload_too_large", "the upload would exceed your storage quota");
        return;
    }
    const PGresult *row = reply->results[0];
    char object[64];
    snprintf(object, sizeof(object), "file:%s", u->id);
    handlers_events_publish_object(r->loop, "file.updated", PQgetvalue(row, 0, DB_COL_FILE_CREATE_FILE),
                                   object, atoll(PQgetvalue(row, 0, DB_COL_FILE_CREATE_VERSION)), u->owner);
    snprintf(object, sizeof(object), "job:%s", PQgetvalue(row, 0, DB_COL_FILE_CREATE_JOB_ID));
    handlers_events_publish_object(r->loop, "job.updated", PQgetvalue(row, 0, DB_COL_FILE_CREATE_JOB), object,
                                   atoll(PQgetvalue(row, 0, DB_COL_FILE_CREATE_JOB_VERSION)), u->owner);
    handlers_respond_wrapped(r, 201, "file", PQgetvalue(row, 0, DB_COL_FILE_CREATE_FILE));
}

/* After the last slice: a parsed multipart body must have ended well with its one file. */
static void files_body_done(files_up_t *u)
{
    http_request_t *r = u->r;
    if (u->mp != NULL && u->bad == NULL) {
        http_multipart_status_t st = http_multipart_finish(u->mp);
        if (st != HTTP_MULTIPART_OK)
            u->bad = http_multipart_status_name(st);
        else if (u->file_parts != 1)
            u->bad = "the body needs one part named file";
    }
    if (u->bad != NULL) {
        char message[256];
        snprintf(message, sizeof(message), "malformed multipart body: %s", u->bad);
        files_refuse(r, u, 400, "bad_request", message);
        return;
    }
    if (http_cpu(r, files_store_work, files_stored, u) != 0) {
        files_up_discard(u);
        http_respond_error(r, 503, "unavailable", "the server is busy; try again", NULL);
    }
}

static void files_slicer_closed(uv_handle_t *handle)
{
    files_up_t *u = handle->data;
    http_request_t *r = u->r;
    if (r->h2o != NULL)
        files_body_done(u);
    http_request_release(r); /* taken when the slicer started */
}

/* One slice of the body per loop iteration; between two, the client may have gone (and its
 * body with it). */
static void files_slice(uv_timer_t *timer)
{
    files_up_t *u = timer->data;
    h2o_req_t *req = u->r->h2o;
    if (req == NULL) {
        uv_close((uv_handle_t *)timer, files_slicer_closed);
        return;
    }
    size_t n = req->entity.len - u->fed;
    if (n > FILES_SLICE)
        n = FILES_SLICE;
    const char *slice = req->entity.base + u->fed;
    if (u->mp != NULL) {
        http_multipart_status_t st = http_multipart_feed(u->mp, slice, n);
        if (st != HTTP_MULTIPART_OK && u->bad == NULL)
            u->bad = http_multipart_status_name(st);
    } else if (n > 0) {
        memcpy(u->up.map + u->up.len, slice, n);
        u->up.len += n;
    }
    u->fed += n;
    if (u->fed < req->entity.len && u->bad == NULL)
        uv_timer_start(timer, files_slice, 0, 0);
    else
        uv_close((uv_handle_t *)timer, files_slicer_closed);
}

static void files_begun(http_request_t *r, void *arg)
{
    files_up_t *u = arg;
    if (u->sys_errno != 0) {
        files_storage_error(r, u->sys_errno);
        return;
    }
    u->up_open = 1;
    if (r->h2o == NULL)
        return; /* the state's free removes the temporary file */
    uv_timer_init(u->loop, &u->slicer);
    u->slicer.data = u;
    http_request_retain(r);
    files_slice(&u->slicer);
}

static void files_begin_work(void *arg)
{
    files_up_t *u = arg;
    if (files_upload_begin(&u->up, u->dir, u->capacity, u->err, sizeof(u->err)) != 0)
        u->sys_errno = errno != 0 ? errno : EIO;
}

/* ------------------------------------------------------------ the route ---- */

/* The body's shape from the headers and the query: multipart (a parser) or raw (a name). */
static int files_prepare(http_request_t *r, files_up_t *u)
{
    size_t len = 0;
    const char *type = http_header(r, "content-type", &len);
    char boundary[HTTP_MULTIPART_BOUNDARY_MAX + 1];
    if (type != NULL && len >= 19 && strncasecmp(type, "multipart/form-data", 19) == 0) {
        int blen = http_multipart_boundary(type, len, boundary, sizeof(boundary));
        if (blen < 0) {
            http_respond_error(r, 400, "bad_request", "malformed multipart body: no usable boundary", NULL);
            return -1;
        }
        http_multipart_limits_t limits = {FILES_PART_HEADERS, FILES_MAX_PARTS, 64 * 1024};
        http_multipart_callbacks_t cb = {files_part_begin, files_part_data, files_part_end};
        u->mp = http_multipart_new(boundary, (size_t)blen, &limits, &cb, u);
        if (u->mp == NULL) {
            http_respond_error(r, 500, "internal", "out of memory", NULL);
            return -1;
        }
        return 0;
    }
    int n = http_query_param(r, "name", u->name, sizeof(u->name));
    if (n < 0 || !files_name_ok(u->name, (size_t)n)) {
        http_respond_error(
            r, 400, "bad_request",
            "a raw upload needs ?name= of 1 to 255 bytes without '/', '\\' or control characters", NULL);
        return -1;
    }
    if (type != NULL && files_type_ok(type, len))
        snprintf(u->content_type, sizeof(u->content_type), "%.*s", (int)len, type);
    else
        snprintf(u->content_type, sizeof(u->content_type), "%s", FILES_DEFAULT_TYPE);
    return 0;
}

static void files_post_ok(http_request_t *r, handlers_user_t *user)
{
    const handlers_app_t *app = r->app;
    if (r->h2o->entity.len > (size_t)app->cfg->uploads.max_size) {
        http_respond_error(r, 413, "payload_too_large", "the upload is larger than the size limit", NULL);
        return;
    }
    char owner[64];
    snprintf(owner, sizeof(owner), "%s", user->id); /* user goes with the state it belongs to */
    files_up_t *u = handlers_state_replace(r, sizeof(*u), files_up_free);
    if (u == NULL)
        return;
    u->r = r;
    u->loop = r->loop->h2o_ctx.loop;
    u->dir = app->cfg->uploads.dir;
    u->quota = (long long)app->cfg->uploads.user_quota;
    u->capacity = r->h2o->entity.len; /* read here: the pool must not touch the request */
    memcpy(u->owner, owner, sizeof(u->owner));
    if (util_uuid_v4(u->id) != 0) {
        http_respond_error(r, 500, "internal", "could not name the file", NULL);
        return;
    }
    if (files_prepare(r, u) != 0)
        return;
    if (http_cpu(r, files_begin_work, files_begun, u) != 0)
        http_respond_error(r, 503, "unavailable", "the server is busy; try again", NULL);
}

void handlers_files_upload(http_request_t *r)
{
    handlers_authenticate_or_key(r, files_post_ok);
}
