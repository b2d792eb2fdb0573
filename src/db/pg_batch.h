/*
 * Private to src/db: one batch of the pipelined pool (its queries, then one Sync) and the
 * bookkeeping that turns the stream of PQgetResult values into one reply. Pure: it looks
 * only at the PGresults handed to it, so unit tests can drive it with made-up results.
 */
#ifndef HYDRANT_DB_PG_BATCH_H
#define HYDRANT_DB_PG_BATCH_H

#include "db/db.h"

typedef struct db_pg_batch {
    struct db_pg_batch *next; /* the connection's FIFO */
    db_pg_cb cb;
    void *data;
    uint64_t sent_at; /* uv_now() when sent, for the query timeout */
    int counted;      /* queries counted against the pool's max_in_flight */
    int nqueries;
    int ended;           /* queries whose results are complete (PQgetResult gave NULL) */
    int sync_follows;    /* 1: a Sync ends the segment after these queries; 0: the next batch
                          * shares the segment, so this one is done when its queries are */
    int guarded;         /* 1: the last query is the batch's DB_STMT_DEADLINE, not the caller's */
    PGresult *results[]; /* nqueries slots, results[i] for query i */
} db_pg_batch_t;

typedef enum {
    DB_PG_BATCH_MORE,   /* keep reading */
    DB_PG_BATCH_DONE,   /* the Sync arrived: the reply is ready */
    DB_PG_BATCH_BROKEN, /* the stream does not match the batch: reset the connection */
} db_pg_batch_step_t;

/* A batch of nqueries (1..DB_PG_MAX_BATCH, + 1 for a deadline) with no results yet,
 * followed by a Sync, or NULL. */
db_pg_batch_t *db_pg_batch_new(int nqueries);

/* Takes the next value of PQgetResult (NULL ends the current query's results) and owns it. */
db_pg_batch_step_t db_pg_batch_take(db_pg_batch_t *batch, PGresult *res);

/* The reply of a DONE batch: DB_OK with every result (of the caller's queries: a guarded
 * batch's deadline is not among them), or the first error; a failed deadline is
 * DB_ERR_TIMEOUT. The pointers in reply stay valid until the batch is freed. */
void db_pg_batch_reply(const db_pg_batch_t *batch, db_reply_t *reply);

/* How a statement's SQLSTATE reaches the caller: DB_ERR_UNAVAILABLE when the server or the
 * connection went away (class 08, 57P: shutdown, crash, terminated backend), DB_ERR_TIMEOUT
 * for 57014 (statement_timeout), DB_ERR_QUERY otherwise. */
db_status_t db_pg_sqlstate_status(const char *sqlstate);

/* What a batch cut off without its answer (connection lost, timed out, pool closed) tells
 * its caller: the status of a statement that already failed (the batch rolled back), else
 * DB_ERR_INDOUBT for a guarded batch (it may have committed), else why. */
db_status_t db_pg_batch_cut_status(const db_pg_batch_t *batch, db_status_t why);

void db_pg_batch_free(db_pg_batch_t *batch);

#endif
