/*
 * files.sweep (periodic: at a pool's start, then hourly): what a crash left in uploads.dir.
 * Temporary files of uploads last modified before the grace (uploads.sweep-grace-seconds,
 * default 1 h; an upload in progress is younger), and stored bytes older than the grace
 * whose row does not exist (a crash between the rename and the row's commit, or between a
 * row's deletion and its bytes'). Rows are looked up by id in batches; bytes whose row exists
 * are never touched, and nothing more is removed once the database fails to answer.
 * Blocking file I/O: a worker's, never an event loop's.
 */
#include "jobs/jobs_internal.h"

#include "files/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_INTERVAL_S 3600
#define SWEEP_BATCH      500
#define SWEEP_ID_LEN     36

typedef struct {
    jobs_run_t *run;
    char ids[SWEEP_BATCH][SWEEP_ID_LEN + 1]; /* old stored files not checked yet */
    int n;
    json_int_t checked, orphans;
} sweep_t;

/* The batch's ids as a PostgreSQL text array literal (ids need no quoting), or NULL. */
static char *sweep_array(const sweep_t *s)
{
    char *text = malloc((size_t)s->n * (SWEEP_ID_LEN + 1) + 3);
    if (text == NULL)
        return NULL;
    size_t len = 0;
    text[len++] = '{';
    for (int i = 0; i < s->n; i++) {
        if (i > 0)
            text[len++] = ',';
        memcpy(text + len, s->ids[i], SWEEP_ID_LEN);
        len += SWEEP_ID_LEN;
    }
    memcpy(text + len, "}", 2);
    return text;
}

/* Removes the bytes of the batch's files that have no row. 0, or -1 with run->error set. */
static int sweep_check(sweep_t *s)
{
    jobs_run_t *run = s->run;
    char *array = sweep_array(s);
    const char *values[] = {array};
    PGresult *res = array != NULL ? jobs_pg_exec(run->conn, DB_STMT_FILES_WITHOUT_ROW, values) : NULL;
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(run->error, sizeof(run->error), "cannot look the files' rows up: %.200s",
                 array != NULL ? PQerrorMessage(run->conn) : "out of memory");
    for (int i = 0; ok && i < PQntuples(res); i++)
        s->orphans +=
            files_remove(run->cfg->uploads.dir, PQgetvalue(res, i, DB_COL_FILES_WITHOUT_ROW_ID)) == 0;
    s->checked += ok ? s->n : 0;
    s->n = 0;
    PQclear(res);
    free(array);
    return ok ? 0 : -1;
}

static int sweep_visit(const char *id, void *arg)
{
    sweep_t *s = arg;
    memcpy(s->ids[s->n++], id, SWEEP_ID_LEN + 1);
    return s->n == SWEEP_BATCH ? sweep_check(s) : 0;
}

static jobs_outcome_t files_sweep(jobs_run_t *run)
{
    const char *dir = run->cfg->uploads.dir;
    time_t before = time(NULL) - run->cfg->uploads.sweep_grace_s;
    sweep_t *s = calloc(1, sizeof(*s));
    if (s != NULL)
        s->run = run;
    int temporaries = s != NULL ? files_sweep_tmp(dir, before) : (errno = ENOMEM, -1);
    int rc = temporaries < 0 ? -1 : files_walk_stored(dir, before, sweep_visit, s);
    if (rc == 0 && s->n > 0)
        rc = sweep_check(s);
    if (rc != 0 && run->error[0] == '\0')
        snprintf(run->error, sizeof(run->error), "cannot read uploads.dir: %s", strerror(errno));
    if (rc == 0) {
        run->result = json_pack("{s:i, s:I, s:I}", "temporaries", temporaries, "checked", s->checked,
                                "orphans", s->orphans);
        if (temporaries > 0 || s->orphans > 0)
            util_log(UTIL_LOG_INFO, "files.sweep",
                     "removed %d temporary file(s) and %lld file(s) without a row", temporaries,
                     (long long)s->orphans);
    }
    free(s);
    return rc == 0 ? JOBS_DONE : JOBS_RETRY;
}

int jobs_file_sweep_register(jobs_registry_t *registry)
{
    return jobs_registry_add_periodic(registry, "files.sweep", files_sweep, NULL, SWEEP_INTERVAL_S);
}
