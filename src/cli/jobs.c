/*
 * `hydrant jobs list | retry | cancel`: operators' view of the queue, over a blocking
 * connection (the command line, never a loop). Jobs are printed as the contract's Job JSON,
 * one per line, so the output pipes into jq. `retry --state dead --kind K` queues every
 * matching job again in one statement (after an outage).
 */
#include "cli/cli.h"

#include "jobs/jobs.h"

#include <stdio.h>
#include <string.h>

static PGconn *cli_jobs_connect(const char *conninfo, FILE *err)
{
    char msg[400];
    PGconn *conn = jobs_pg_connect(conninfo, "hydrant-cli", msg, sizeof(msg));
    if (conn == NULL)
        fprintf(err, "hydrant: %s\n", msg);
    return conn;
}

int cli_jobs_list(const char *conninfo, const char *state, const char *queue, int limit, FILE *out, FILE *err)
{
    if ((state != NULL && !jobs_state_valid(state)) || (queue != NULL && jobs_queue_parse(queue) < 0) ||
        limit < 1 || limit > 100000) {
        fprintf(err, "hydrant: jobs list: unknown state or queue, or limit outside 1..100000\n");
        return CLI_EXIT_INPUT;
    }
    PGconn *conn = cli_jobs_connect(conninfo, err);
    if (conn == NULL)
        return CLI_EXIT_FAILURE;
    char limit_text[16];
    snprintf(limit_text, sizeof(limit_text), "%d", limit);
    const char *values[] = {state, queue, NULL, limit_text, NULL};
    PGresult *res = jobs_pg_exec(conn, DB_STMT_JOB_LIST, values);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (rc != 0)
        fprintf(err, "hydrant: jobs list: %s", PQerrorMessage(conn));
    for (int i = 0; rc == 0 && i < PQntuples(res); i++)
        fprintf(out, "%s\n", PQgetvalue(res, i, DB_COL_JOB_LIST_JOB));
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* The job's JSON in the row of either transition. */
enum {
    CLI_JOBS_TRANSITION_JOB = DB_COL_JOB_RETRY_JOB,
    CLI_JOBS_TRANSITION_OWNER = DB_COL_JOB_RETRY_OWNER_ID,
    CLI_JOBS_TRANSITION_VERSION = DB_COL_JOB_RETRY_VERSION,
};
_Static_assert((int)DB_COL_JOB_CANCEL_JOB == (int)CLI_JOBS_TRANSITION_JOB &&
                   (int)DB_COL_JOB_CANCEL_OWNER_ID == (int)CLI_JOBS_TRANSITION_OWNER &&
                   (int)DB_COL_JOB_CANCEL_VERSION == (int)CLI_JOBS_TRANSITION_VERSION,
               "job_cancel and job_retry return the job alike");

/* retry and cancel: one UPDATE that returns the job when the transition was allowed. */
static int cli_jobs_transition(const char *conninfo, const char *redis_url, const char *id, db_stmt_id_t stmt,
                               const char *what, const char *allowed, FILE *out, FILE *err)
{
    if (!util_uuid_valid(id, strlen(id))) { /* refused before it reaches SQL */
        fprintf(err, "hydrant: jobs %s: '%s' is not a job id\n", what, id);
        return CLI_EXIT_INPUT;
    }
    PGconn *conn = cli_jobs_connect(conninfo, err);
    if (conn == NULL)
        return CLI_EXIT_FAILURE;
    const char *values[] = {id, NULL};
    PGresult *res = jobs_pg_exec(conn, stmt, values);
    int rc = CLI_EXIT_FAILURE;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(err, "hydrant: jobs %s: %s", what, PQerrorMessage(conn));
    } else if (PQntuples(res) == 1) {
        fprintf(out, "%s\n", PQgetvalue(res, 0, CLI_JOBS_TRANSITION_JOB));
        db_events_pub_t *pub = db_events_pub_new(redis_url, 1000, "hydrant jobs");
        jobs_events_publish(pub, id, PQgetvalue(res, 0, CLI_JOBS_TRANSITION_OWNER),
                            PQgetvalue(res, 0, CLI_JOBS_TRANSITION_VERSION),
                            PQgetvalue(res, 0, CLI_JOBS_TRANSITION_JOB));
        db_events_pub_free(pub);
        rc = 0;
    } else {
        fprintf(err, "hydrant: jobs %s: no job %s that is %s\n", what, id, allowed);
        rc = CLI_EXIT_INPUT;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int cli_jobs_retry(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err)
{
    return cli_jobs_transition(conninfo, redis_url, id, DB_STMT_JOB_RETRY, "retry", "failed or dead", out,
                               err);
}

int cli_jobs_cancel(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err)
{
    return cli_jobs_transition(conninfo, redis_url, id, DB_STMT_JOB_CANCEL, "cancel", "queued or retrying",
                               out, err);
}

int cli_jobs_retry_matching(const char *conninfo, const char *redis_url, const char *state, const char *kind,
                            const char *queue, FILE *out, FILE *err)
{
    if (state == NULL || (strcmp(state, "dead") != 0 && strcmp(state, "failed") != 0) ||
        (queue != NULL && jobs_queue_parse(queue) < 0)) {
        fprintf(err, "hydrant: jobs retry: --state must be dead or failed, --queue short, medium or long\n");
        return CLI_EXIT_INPUT;
    }
    PGconn *conn = cli_jobs_connect(conninfo, err);
    if (conn == NULL)
        return CLI_EXIT_FAILURE;
    const char *values[] = {state, kind, queue};
    PGresult *res = jobs_pg_exec(conn, DB_STMT_JOB_RETRY_MATCHING, values);
    int rc = PQresultStatus(res) == PGRES_TUPLES_OK ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (rc != 0)
        fprintf(err, "hydrant: jobs retry: %s", PQerrorMessage(conn));
    db_events_pub_t *pub =
        rc == 0 && PQntuples(res) > 0 ? db_events_pub_new(redis_url, 1000, "hydrant jobs") : NULL;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *job = PQgetvalue(res, i, DB_COL_JOB_RETRY_MATCHING_JOB);
        fprintf(out, "%s\n", job);
        json_t *doc = json_loads(job, 0, NULL); /* its id, for the event's ordering guard */
        const char *id = json_string_value(json_object_get(doc, "id"));
        if (id != NULL)
            jobs_events_publish(pub, id, PQgetvalue(res, i, DB_COL_JOB_RETRY_MATCHING_OWNER_ID),
                                PQgetvalue(res, i, DB_COL_JOB_RETRY_MATCHING_VERSION), job);
        json_decref(doc);
    }
    db_events_pub_free(pub);
    if (rc == 0)
        fprintf(err, "hydrant: jobs retry: %d %s job(s) queued again\n", PQntuples(res), state);
    PQclear(res);
    PQfinish(conn);
    return rc;
}
