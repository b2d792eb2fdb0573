/*
 * Blocking libpq for job worker threads and the command line (never on an event loop).
 */
#include "jobs/jobs_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* libpq's own messages may quote the host but never the password; keep the first line. */
static void jobs_pg_message(char *err, size_t errlen, const char *what, PGconn *conn)
{
    const char *msg = conn != NULL ? PQerrorMessage(conn) : "out of memory";
    size_t n = strcspn(msg, "\n");
    snprintf(err, errlen, "%s: %.*s", what, (int)(n > 300 ? 300 : n), msg);
}

static int jobs_pg_prepare_all(PGconn *conn, char *err, size_t errlen)
{
    for (int id = DB_STMT_JOB_ENQUEUE; id <= DB_STMT_AUTH_PURGE; id++) {
        const db_stmt_def_t *def = db_stmt_get((db_stmt_id_t)id);
        PGresult *res = PQprepare(conn, def->name, def->sql, def->nparams, NULL);
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            jobs_pg_message(err, errlen, def->name, conn);
            return -1;
        }
    }
    return 0;
}

PGconn *jobs_pg_connect(const char *conninfo, const char *application_name, char *err, size_t errlen)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *values[] = {conninfo, application_name, "5", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn != NULL)
        PQsetNoticeReceiver(conn, db_pg_log_notice, NULL);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        jobs_pg_message(err, errlen, "cannot connect to PostgreSQL", conn);
        PQfinish(conn);
        return NULL;
    }
    if (jobs_pg_prepare_all(conn, err, errlen) != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* The queue's own statements are prepared on every worker connection; others (a kind's,
 * like file.process's) run unprepared: they are not hot, and a statement whose table a
 * migration has not made yet then fails alone instead of the connection. */
PGresult *jobs_pg_exec(PGconn *conn, db_stmt_id_t id, const char *const *values)
{
    const db_stmt_def_t *def = db_stmt_get(id);
    if (id >= DB_STMT_JOB_ENQUEUE && id <= DB_STMT_AUTH_PURGE)
        return PQexecPrepared(conn, def->name, def->nparams, values, NULL, NULL, 0);
    return PQexecParams(conn, def->sql, def->nparams, NULL, values, NULL, NULL, 0);
}

int jobs_pg_alive(PGconn *conn)
{
    return conn != NULL && PQstatus(conn) == CONNECTION_OK;
}

uint64_t jobs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
