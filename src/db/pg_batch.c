/*
 * The replies of one pipeline segment. For a batch of n queries libpq hands out, in order:
 * query 1's result, NULL, ..., query n's result, NULL, then PGRES_PIPELINE_SYNC (unless the
 * next batch shares the segment: then this one ends with its last NULL). After a
 * failing query (PGRES_FATAL_ERROR) the rest of the segment comes back as
 * PGRES_PIPELINE_ABORTED, each followed by NULL as well. Anything else means the pool and
 * the connection disagree about what is in flight, and guessing would hand one request's
 * rows to another: the caller resets the connection instead.
 */
#include "db/pg_batch.h"

#include <stdlib.h>
#include <string.h>

db_pg_batch_t *db_pg_batch_new(int nqueries)
{
    if (nqueries < 1 || nqueries > DB_PG_MAX_BATCH + 1) /* + 1: a deadline */
        return NULL;
    db_pg_batch_t *b = calloc(1, sizeof(*b) + (size_t)nqueries * sizeof(b->results[0]));
    if (b != NULL) {
        b->nqueries = nqueries;
        b->sync_follows = 1;
    }
    return b;
}

static db_pg_batch_step_t pg_batch_take_sync(db_pg_batch_t *b, PGresult *res)
{
    PQclear(res);
    return b->ended == b->nqueries ? DB_PG_BATCH_DONE : DB_PG_BATCH_BROKEN;
}

db_pg_batch_step_t db_pg_batch_take(db_pg_batch_t *b, PGresult *res)
{
    if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC)
        return pg_batch_take_sync(b, res);
    if (b->ended >= b->nqueries) {
        PQclear(res); /* more than the batch asked for */
        return DB_PG_BATCH_BROKEN;
    }
    if (res == NULL) {
        /* Every query yields at least one result before its NULL. */
        if (b->results[b->ended] == NULL)
            return DB_PG_BATCH_BROKEN;
        b->ended++;
        return b->ended == b->nqueries && !b->sync_follows ? DB_PG_BATCH_DONE : DB_PG_BATCH_MORE;
    }
    if (b->results[b->ended] != NULL) {
        /* A second result for one statement (only COPY or multi-statement text would do
         * that, and prepared statements are single): keep the first. */
        PQclear(res);
        return DB_PG_BATCH_MORE;
    }
    b->results[b->ended] = res;
    return DB_PG_BATCH_MORE;
}

db_status_t db_pg_sqlstate_status(const char *sqlstate)
{
    if (sqlstate == NULL)
        return DB_ERR_QUERY;
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0)
        return DB_ERR_UNAVAILABLE;
    if (strcmp(sqlstate, "57014") == 0)
        return DB_ERR_TIMEOUT;
    return DB_ERR_QUERY;
}

void db_pg_batch_reply(const db_pg_batch_t *b, db_reply_t *reply)
{
    *reply = (db_reply_t){.status = DB_OK, .results = b->results, .nresults = b->nqueries - b->guarded};
    /* The failing statement explains the batch; the aborted ones after it do not. */
    const PGresult *failed = NULL, *aborted = NULL;
    int failed_at = -1;
    for (int i = 0; i < b->nqueries && failed == NULL; i++) {
        ExecStatusType st = PQresultStatus(b->results[i]);
        if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR)
            failed = b->results[i], failed_at = i;
        else if (st == PGRES_PIPELINE_ABORTED && aborted == NULL)
            aborted = b->results[i];
    }
    const PGresult *first = failed != NULL ? failed : aborted;
    if (first == NULL)
        return;
    if (failed == NULL) {
        /* Aborted by another batch's failure in a shared segment: nothing of this one ran. */
        *reply = (db_reply_t){.status = DB_ERR_UNAVAILABLE,
                              .sqlstate = "",
                              .constraint = "",
                              .message = "aborted by another statement of its pipeline segment"};
        return;
    }
    if (b->guarded && failed_at == b->nqueries - 1) {
        /* Everything else ran, the deadline had passed: rolled back, as the client may have
         * answered by now. */
        *reply = (db_reply_t){.status = DB_ERR_TIMEOUT,
                              .sqlstate = "",
                              .constraint = "",
                              .message = "the batch missed its deadline; nothing was committed"};
        return;
    }
    const char *sqlstate = PQresultErrorField(first, PG_DIAG_SQLSTATE);
    const char *constraint = PQresultErrorField(first, PG_DIAG_CONSTRAINT_NAME);
    const char *message = PQresultErrorMessage(first);
    *reply = (db_reply_t){
        .status = db_pg_sqlstate_status(sqlstate),
        .sqlstate = sqlstate != NULL ? sqlstate : "",
        .constraint = constraint != NULL ? constraint : "",
        .message = message[0] != '\0' ? message : PQresStatus(PQresultStatus(first)),
    };
}

db_status_t db_pg_batch_cut_status(const db_pg_batch_t *b, db_status_t why)
{
    /* A statement that failed aborted the batch's transaction: whatever came after, nothing
     * of it committed (a terminated backend says so before it closes the connection). */
    for (int i = 0; i < b->nqueries; i++) {
        if (b->results[i] != NULL && PQresultStatus(b->results[i]) == PGRES_FATAL_ERROR) {
            db_status_t st = db_pg_sqlstate_status(PQresultErrorField(b->results[i], PG_DIAG_SQLSTATE));
            return st == DB_ERR_QUERY ? DB_ERR_UNAVAILABLE : st;
        }
    }
    return b->guarded ? DB_ERR_INDOUBT : why;
}

void db_pg_batch_free(db_pg_batch_t *b)
{
    if (b == NULL)
        return;
    for (int i = 0; i < b->nqueries; i++)
        PQclear(b->results[i]);
    free(b);
}
