/*
 * Durable background jobs: a queue in PostgreSQL (the `jobs` table) worked by a pool of
 * threads, each with its own blocking libpq connection (these are not event-loop threads).
 *
 * - Enqueueing is one statement (DB_STMT_JOB_ENQUEUE) that a handler puts in its own batch,
 *   so a job commits or rolls back with the rows it belongs to; its NOTIFY is delivered on
 *   commit and wakes an idle worker at once. Polling is only the fallback.
 * - A worker claims due jobs of its queue with FOR UPDATE SKIP LOCKED, in batches whose
 *   size adapts to how long the jobs take, runs them, and records the outcomes of the batch
 *   in one statement. Claims hold a lease that the pool renews while the process lives; a
 *   job whose worker died is taken again once its lease expires (at-least-once).
 * - Transient failures are retried with exponential backoff and jitter; after max_attempts
 *   (or on a permanent failure) the job is `dead`, kept with its error.
 * - On shutdown workers stop claiming, running jobs get a bounded time to finish, the rest
 *   are released to the queue with their attempt given back.
 */
#ifndef HYDRANT_JOBS_H
#define HYDRANT_JOBS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "config/config.h"
#include "db/db.h"
#include "util/util.h"

/* ------------------------------------------------------------------ queues ---- */

typedef enum { JOBS_QUEUE_SHORT, JOBS_QUEUE_MEDIUM, JOBS_QUEUE_LONG, JOBS_NQUEUES } jobs_queue_t;

const char *jobs_queue_name(jobs_queue_t queue);
/* -1 for an unknown name. */
int jobs_queue_parse(const char *name);

/* The contract's job states; 1 for a known one. */
int jobs_state_valid(const char *state);

/* ----------------------------------------------------------------- enqueue ---- */

/* Fills a DB_STMT_JOB_ENQUEUE query for the caller's batch. The struct owns the parameter
 * array the query points into, so it must outlive the db_pg_submit call (which copies).
 * NULL fields take the defaults (queue short, no owner, no unique key, now); max_attempts 0
 * takes the kind's configured schedule (cfg_job_schedule). */
typedef struct {
    const char *kind;
    const char *queue;
    const char *payload; /* JSON object text */
    const char *owner_id;
    const char *unique_key;
    const char *run_at; /* RFC 3339 */
    int max_attempts;   /* 0: the kind's configured attempts */
    int priority;       /* higher first */
    char max_attempts_text[16];
    char priority_text[16];
    const char *values[8];
} jobs_enqueue_t;

void jobs_enqueue_query(jobs_enqueue_t *job, const cfg_t *cfg, db_query_t *query);

/* ---------------------------------------------------------- kinds registry ---- */

typedef enum {
    JOBS_DONE,      /* succeeded; run->result (optional) is kept */
    JOBS_RETRY,     /* transient failure: retried with backoff while attempts remain */
    JOBS_PERMANENT, /* permanent failure: dead at once */
    JOBS_RELEASE,   /* not run (shutting down): back to the queue, the attempt given back */
} jobs_outcome_t;

typedef struct {
    const char *id;
    const char *kind;
    jobs_queue_t queue;
    const json_t *payload;
    int attempt; /* 1 for the first run */
    int max_attempts;
    const cfg_t *cfg;
    PGconn *conn;            /* the worker's own blocking connection, for handlers that need the database */
    db_events_pub_t *events; /* the worker's publisher, for events about what a handler changed */
    void *kind_data;
    const atomic_int *stopping; /* read through jobs_stopping() */
    json_t *result;             /* set by the handler (a reference it gives away), or NULL */
    char error[512];            /* set by the handler on failure; stored in the job, so no secrets */
} jobs_run_t;

/* 1 once the pool is stopping and the shutdown timeout has passed: long handlers check it
 * and return JOBS_RELEASE (their job goes back to the queue, the attempt given back). */
int jobs_stopping(const jobs_run_t *run);

typedef jobs_outcome_t (*jobs_handler_fn)(jobs_run_t *run);

typedef struct jobs_registry jobs_registry_t;

jobs_registry_t *jobs_registry_new(void);
void jobs_registry_free(jobs_registry_t *registry);
/* Registers a handler for `kind` (copied). Returns 0, or -1 when full or already taken. */
int jobs_registry_add(jobs_registry_t *registry, const char *kind, jobs_handler_fn fn, void *data);
/* The same, and pools with `periodic` set enqueue it every interval_s seconds (once per key:
 * a run still pending or running is not doubled, whichever process enqueued it). */
int jobs_registry_add_periodic(jobs_registry_t *registry, const char *kind, jobs_handler_fn fn, void *data,
                               int interval_s);

/* The kinds hydrant ships: email.confirmation and email.password_reset (libcurl SMTP),
 * auth.purge (hourly: expired sessions, one-time tokens, revocations), file.process (an
 * upload's analysis), files.remove (a deleted account's bytes), files.sweep (hourly and at
 * start: temporaries and bytes without a row that a crash left in uploads.dir). The test
 * suite's kinds are in src/testhooks. */
int jobs_register_builtin(jobs_registry_t *registry, const cfg_t *cfg, char *err, size_t errlen);

/* The retry delays of a kind's schedule (cfg_job_schedule), for util_backoff_ms with the
 * failed attempt (1-based): base * 2^(attempt-1), capped at max, then scaled by jitter in
 * [0.5, 1.5) so that retries of a burst spread out. */
util_backoff_t jobs_retry_backoff(const cfg_job_kind_t *schedule);

/* -------------------------------------------------------------------- pool ---- */

typedef struct jobs_pool jobs_pool_t;

typedef struct {
    const cfg_t *cfg;                /* database url, jobs and smtp settings; outlives the pool */
    const jobs_registry_t *registry; /* outlives the pool */
    int workers[JOBS_NQUEUES];       /* threads per queue */
    int periodic;                    /* enqueue the registry's periodic kinds (serve and worker do) */
} jobs_pool_options_t;

/* Starts the workers and the pool's listener (notifications, lease renewal, reaping). The
 * database may be down: threads connect and reconnect with backoff. NULL with a message when
 * threads cannot be created. */
jobs_pool_t *jobs_pool_start(const jobs_pool_options_t *options, char *err, size_t errlen);

/* Stops claiming, lets running jobs finish for at most the shutdown timeout, and releases
 * what is left to the queue. Returns the number of jobs released. Metrics stay readable
 * until jobs_pool_free. */
int jobs_pool_stop(jobs_pool_t *pool);
/* Frees a stopped pool (unless a worker outlived the timeout: then the process's exit does). */
void jobs_pool_free(jobs_pool_t *pool);

/* Prometheus text for this process's job counters and start-delay histogram (malloc'd, NUL
 * terminated), or NULL. Safe from any thread while the pool runs. */
char *jobs_pool_metrics_text(const jobs_pool_t *pool);

/* The lease owner name of this pool (host:pid:random), for logs and tests. */
const char *jobs_pool_owner(const jobs_pool_t *pool);

/* ---------------------------------------------------------- file analysis ---- */

/* The analysis of an uploaded file (kind file.process, queue long): pure code that reads the
 * file once, front to back, and returns the File's `analysis` as compact JSON text:
 *   csv/tsv  {"format":"csv"|"tsv","delimiter":",","rows":N,"ragged_rows":N,
 *             "columns":[{"name":"...","type":"integer"|"number"|"boolean"|"string"|"empty",
 *                         "missing":N}, ...]}        ("columns_omitted":N past 4096 columns)
 *   ipynb    {"format":"ipynb","cells":N,"code_cells":N,"markdown_cells":N,"language":"python"|null}
 *   other    {"format":"binary"}
 * A file that does not parse as its kind is still analysed: {"format":...,"error":"why"}.
 * The rules (types, delimiter sniffing, ragged rows) are in file_analysis.c. */

typedef enum { JOBS_FILE_BINARY, JOBS_FILE_CSV, JOBS_FILE_TSV, JOBS_FILE_NOTEBOOK } jobs_file_kind_t;

/* The kind a file is analysed as: a specific content type decides (text/csv, text/tab-separated-
 * values, application/x-ipynb+json, ...); with a generic one (none, application/octet-stream,
 * text/plain, application/json, application/vnd.ms-excel: what browsers send for .csv on
 * Windows) the name's extension does (.csv, .tsv, .tab, .ipynb, case-insensitive). Both may
 * be NULL. */
jobs_file_kind_t jobs_file_kind(const char *name, const char *content_type);

/* The analysis JSON (malloc'd, the caller frees), or NULL with err set when the file cannot be
 * read (missing, e.g. deleted while processing; unreadable; not a regular file) or memory
 * runs out; errno then says which (ENOENT: the file does not exist, ENOMEM, EISDIR, or the
 * failed open's or read's). err never holds the path. CSV streams through a 64 KiB buffer: memory does not
 * grow with the file. */
char *jobs_file_analyze(const char *path, const char *name, const char *content_type, char *err,
                        size_t errlen);

/* The same for one kind, on an open file read from its current offset (not closed here).
 * delimiter 0 (or '"', CR, LF): sniffed among , \t ; | from the start of the file. */
char *jobs_file_analyze_csv(int fd, char delimiter, char *err, size_t errlen);
char *jobs_file_analyze_notebook(int fd, char *err, size_t errlen);

/* ---------------------------------------------------------- blocking libpq ---- */

/* A blocking connection for a worker thread or the command line (src/cli), with every job
 * statement prepared. NULL with a message (no secret: the URL's password is not echoed). */
PGconn *jobs_pg_connect(const char *conninfo, const char *application_name, char *err, size_t errlen);
/* Runs a prepared registry statement. Always returns a result (PQclear it); NULL values are
 * SQL NULL. */
PGresult *jobs_pg_exec(PGconn *conn, db_stmt_id_t id, const char *const *values);

/* ------------------------------------------------------- job.updated events ---- */

/* job.updated with the Job JSON job to the owner (NULL or "": nobody), guarded by the row's
 * version (text, as PostgreSQL returns it). Lost without Redis. */
void jobs_events_publish(db_events_pub_t *pub, const char *id, const char *owner, const char *version,
                         const char *job);
/* The same for each row of a statement's result that changed jobs, reading the event's
 * columns (DB_COLS_JOB_EVENT) from column `at` on. */
void jobs_events_publish_rows(db_events_pub_t *pub, const PGresult *res, int at);

#endif
