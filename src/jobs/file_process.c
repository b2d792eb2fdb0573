/*
 * file.process (queue long): the analysis of an uploaded file (file_analysis.c), stored on its
 * row, which then turns ready (file.updated to its owner). A file deleted before or while it is processed is
 * no failure: the job ends with nothing to do. A row whose bytes are missing turns failed. When the bytes
 * cannot be read, the job is retried; after its last attempt the file turns failed, so that it
 * does not stay "processing" for ever.
 */
#include "jobs/jobs_internal.h"

#include "files/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jobs_outcome_t file_process_gone(jobs_run_t *run, const char *id)
{
    run->result = json_pack("{s:s, s:s}", "file_id", id, "skipped", "the file was deleted");
    return JOBS_DONE;
}

/* Stores the analysis and the state; no row means the file was deleted meanwhile. */
static jobs_outcome_t file_process_store(jobs_run_t *run, const char *id, const char *state,
                                         const char *analysis)
{
    const char *values[] = {id, state, analysis};
    PGresult *res = jobs_pg_exec(run->conn, DB_STMT_FILE_PROCESSED, values);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(run->error, sizeof(run->error), "cannot record the analysis: %.200s",
                 PQerrorMessage(run->conn));
        PQclear(res);
        return JOBS_RETRY;
    }
    int stored = PQntuples(res) == 1;
    if (stored) {
        char object[64];
        snprintf(object, sizeof(object), "file:%s", id);
        const char *owner = PQgetvalue(res, 0, DB_COL_FILE_PROCESSED_OWNER_ID);
        db_events_pub(run->events, "file.updated", PQgetvalue(res, 0, DB_COL_FILE_PROCESSED_FILE), object,
                      atoll(PQgetvalue(res, 0, DB_COL_FILE_PROCESSED_VERSION)), &owner, 1);
    }
    PQclear(res);
    if (!stored)
        return file_process_gone(run, id);
    json_t *doc = json_loads(analysis, 0, NULL);
    run->result =
        json_pack("{s:s, s:s, s:O}", "file_id", id, "state", state, "format",
                  json_object_get(doc, "format") != NULL ? json_object_get(doc, "format") : json_null());
    json_decref(doc);
    return JOBS_DONE;
}

/* The bytes could not be read: retried, and on the last attempt the file is marked failed. */
static jobs_outcome_t file_process_unreadable(jobs_run_t *run, const char *id, const char *why)
{
    snprintf(run->error, sizeof(run->error), "cannot read the file: %.400s", why);
    if (run->attempt < run->max_attempts)
        return JOBS_RETRY;
    json_t *doc = json_pack("{s:s}", "error", "the stored bytes could not be read");
    char *analysis = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    jobs_outcome_t out = file_process_store(run, id, "failed", analysis != NULL ? analysis : "{}");
    free(analysis);
    return out == JOBS_DONE ? JOBS_PERMANENT : out;
}

static jobs_outcome_t file_process(jobs_run_t *run)
{
    const char *id = json_string_value(json_object_get(run->payload, "file_id"));
    char path[PATH_MAX];
    if (id == NULL || files_path(run->cfg->uploads.dir, id, path, sizeof(path)) != 0) {
        snprintf(run->error, sizeof(run->error), "the payload has no valid file_id");
        return JOBS_PERMANENT;
    }
    const char *values[] = {id, NULL};
    PGresult *res = jobs_pg_exec(run->conn, DB_STMT_FILE_GET, values);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(run->error, sizeof(run->error), "cannot read the file's row: %.200s",
                 PQerrorMessage(run->conn));
        PQclear(res);
        return JOBS_RETRY;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return file_process_gone(run, id);
    }
    char err[256] = "";
    errno = 0;
    char *analysis = jobs_file_analyze(path, PQgetvalue(res, 0, DB_COL_FILE_GET_NAME),
                                       PQgetvalue(res, 0, DB_COL_FILE_GET_CONTENT_TYPE), err, sizeof(err));
    int missing = analysis == NULL && errno == ENOENT;
    PQclear(res);
    if (missing) /* deleted since the row was read (then no row is left), or lost */
        return file_process_store(run, id, "failed", "{\"error\":\"the stored bytes are missing\"}");
    if (analysis == NULL)
        return file_process_unreadable(run, id, err);
    jobs_outcome_t out = file_process_store(run, id, "ready", analysis);
    free(analysis);
    return out;
}

/* files.remove: the bytes of files whose rows are gone (an account deleted). Removing is
 * idempotent, so a retry after a partial run is harmless. */
static jobs_outcome_t files_remove_all(jobs_run_t *run)
{
    json_t *ids = json_object_get(run->payload, "file_ids");
    if (!json_is_array(ids)) {
        snprintf(run->error, sizeof(run->error), "the payload has no file_ids array");
        return JOBS_PERMANENT;
    }
    size_t i, failed = 0;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        const char *s = json_string_value(id);
        if (s == NULL || files_remove(run->cfg->uploads.dir, s) != 0)
            failed++;
    }
    if (failed > 0) {
        snprintf(run->error, sizeof(run->error), "%zu of %zu files could not be removed", failed,
                 json_array_size(ids));
        return JOBS_RETRY;
    }
    run->result = json_pack("{s:I}", "removed", (json_int_t)json_array_size(ids));
    return JOBS_DONE;
}

int jobs_file_process_register(jobs_registry_t *registry)
{
    if (jobs_registry_add(registry, "files.remove", files_remove_all, NULL) != 0)
        return -1;
    return jobs_registry_add(registry, "file.process", file_process, NULL);
}
