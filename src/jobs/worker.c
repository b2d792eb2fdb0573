/*
 * One worker thread: claim a batch of due jobs of its queue, run each through the kinds
 * registry, record the outcomes of the batch in one statement; when nothing is due, sleep
 * until a notification, the next scheduled job or the fallback poll.
 */
#include "jobs/jobs_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Outcomes are recorded at least this often while a batch of slow jobs runs. */
#define WORKER_FLUSH_MS 50
/* A claim holds at most about WORKER_BATCH_BUDGET_MS of work: a batch starts at one job
 * after an idle spell, doubles while twice the last batch's time stays within the budget and
 * halves when a batch took longer (up to jobs.batch-size). Claimed jobs that have not started
 * are what a killed worker makes wait for its lease (and run again, an attempt spent), and
 * what a slow job holds up while other workers idle: so that is a few milliseconds of work
 * however quick the jobs, while a stream of quick ones still goes in large batches. Once a
 * batch has run past WORKER_SLOW_BATCH_MS (a slow job), its unstarted jobs go back to the
 * queue at once. */
#define WORKER_BATCH_BUDGET_MS 20
#define WORKER_SLOW_BATCH_MS   50
#define WORKER_FIRST_BATCH     1

typedef struct {
    jobs_worker_t *w;
    jobs_pool_t *pool;
    PGconn *conn;
    int batch;
    json_t *pending; /* outcomes not yet recorded, claimed under w->owner */
    uint64_t last_flush_ms;
    db_events_pub_t *events; /* job.updated of what this worker changes */
} worker_t;

/* util_log, the message prefixed with this worker's queue and number. */
__attribute__((format(printf, 3, 4))) static void worker_log(const worker_t *st, util_log_level_t level,
                                                             const char *fmt, ...)
{
    if (!util_log_enabled(level))
        return;
    char msg[UTIL_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    util_log(level, "jobs", "worker %s/%d: %s", jobs_queue_name(st->w->queue), st->w->index, msg);
}

static int worker_stopping(const worker_t *st)
{
    return atomic_load(&st->pool->stopping);
}

/* A new lease owner name, so that claims made on a lost connection (whose reply we never
 * saw) are no longer renewed and expire. Only when no outcome is waiting under the old one. */
static void worker_rotate_owner(worker_t *st)
{
    jobs_worker_t *w = st->w;
    pthread_mutex_lock(&st->pool->owners_mu);
    snprintf(w->owner, sizeof(w->owner), "%s:%s%d:%u", st->pool->owner, jobs_queue_name(w->queue), w->index,
             ++w->epoch);
    pthread_mutex_unlock(&st->pool->owners_mu);
}

static int worker_connect(worker_t *st)
{
    int failures = 0;
    while (!worker_stopping(st)) {
        char err[400];
        st->conn = jobs_pg_connect(st->pool->cfg->database.url, "hydrant-worker", err, sizeof(err));
        if (st->conn != NULL) {
            if (failures > 0)
                worker_log(st, UTIL_LOG_INFO, "connected again");
            if (json_array_size(st->pending) == 0)
                worker_rotate_owner(st);
            return 0;
        }
        if (failures == 0)
            worker_log(st, UTIL_LOG_WARN, "%s (retrying)", err);
        int64_t delay = util_backoff_next(&UTIL_BACKOFF_RECONNECT, &failures);
        uint64_t seen = jobs_wake_generation(st->pool, st->w->queue);
        jobs_wake_wait(st->pool, st->w->queue, seen, (int)delay);
    }
    return -1;
}

static void worker_disconnect(worker_t *st)
{
    PQfinish(st->conn);
    st->conn = NULL;
}

/* Records every pending outcome. On failure they stay pending for the next connection. */
static int worker_flush(worker_t *st)
{
    size_t n = json_array_size(st->pending);
    st->last_flush_ms = jobs_now_ms();
    if (n == 0)
        return 0;
    char *outcomes = json_dumps(st->pending, JSON_COMPACT);
    if (outcomes == NULL)
        return -1;
    const char *values[] = {st->w->owner, outcomes};
    PGresult *res = jobs_pg_exec(st->conn, DB_STMT_JOB_FINISH, values);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    jobs_events_publish_rows(st->events, res, DB_COL_JOB_FINISH_EVENT_ID);
    if (ok && (size_t)PQntuples(res) < n)
        worker_log(st, UTIL_LOG_WARN,
                   "some outcomes were not recorded: their lease had expired and they will run again");
    else if (!ok)
        worker_log(st, UTIL_LOG_WARN, "recording outcomes failed: %s", PQerrorMessage(st->conn));
    PQclear(res);
    free(outcomes);
    if (ok)
        json_array_clear(st->pending);
    return ok ? 0 : -1;
}

static void worker_set_error(json_t *outcome, const char *state, const char *error)
{
    json_object_set_new(outcome, "state", json_string(state));
    json_object_set_new(outcome, "error", json_string(error[0] != '\0' ? error : "failed"));
}

/* Runs a claimed job through its handler and fills its outcome; returns what was counted. */
static jobs_count_t worker_run_job(worker_t *st, jobs_run_t *run, int kind_index, json_t *outcome)
{
    const jobs_kind_t *kind = &st->pool->registry->kinds[kind_index];
    run->kind_data = kind->data;
    jobs_outcome_t result = kind->fn(run);
    run->error[sizeof(run->error) - 1] = '\0';
    switch (result) {
    case JOBS_DONE:
        json_object_set_new(outcome, "state", json_string("succeeded"));
        json_object_set_new(outcome, "result", run->result != NULL ? run->result : json_null());
        run->result = NULL;
        return JOBS_COUNT_SUCCEEDED;
    case JOBS_RELEASE:
        json_object_set_new(outcome, "state", json_string("queued"));
        return JOBS_COUNT_RELEASED;
    case JOBS_RETRY:
        if (run->attempt < run->max_attempts) {
            cfg_job_kind_t schedule = cfg_job_schedule(st->pool->cfg, run->kind);
            util_backoff_t backoff = jobs_retry_backoff(&schedule);
            int64_t delay = util_backoff_ms(&backoff, run->attempt, util_random_unit());
            worker_set_error(outcome, "retrying", run->error);
            json_object_set_new(outcome, "delay_ms", json_integer(delay));
            return JOBS_COUNT_RETRYING;
        }
        worker_set_error(outcome, "dead", run->error);
        return JOBS_COUNT_DEAD;
    case JOBS_PERMANENT:
    default:
        worker_set_error(outcome, "dead", run->error);
        return JOBS_COUNT_DEAD;
    }
}

static void worker_handle_row(worker_t *st, PGresult *res, int row, int release)
{
    jobs_queue_t queue = st->w->queue;
    jobs_run_t run = {
        .id = PQgetvalue(res, row, DB_COL_JOB_CLAIM_ID),
        .kind = PQgetvalue(res, row, DB_COL_JOB_CLAIM_KIND),
        .queue = queue,
        .attempt = atoi(PQgetvalue(res, row, DB_COL_JOB_CLAIM_ATTEMPT)),
        .max_attempts = atoi(PQgetvalue(res, row, DB_COL_JOB_CLAIM_MAX_ATTEMPTS)),
        .cfg = st->pool->cfg,
        .conn = st->conn,
        .events = st->events,
        .stopping = &st->pool->releasing,
    };
    json_t *outcome = json_pack("{s:s, s:i}", "id", run.id, "attempt", run.attempt);
    int kind_index = jobs_registry_find(st->pool->registry, run.kind);
    jobs_count_t counted;
    json_t *payload = NULL;
    if (release || worker_stopping(st)) {
        json_object_set_new(outcome, "state", json_string("queued"));
        jobs_metrics_count(&st->pool->metrics, kind_index, queue, JOBS_COUNT_RELEASED);
        json_array_append_new(st->pending, outcome);
        return;
    }
    jobs_metrics_delay(&st->pool->metrics, queue, atof(PQgetvalue(res, row, DB_COL_JOB_CLAIM_DELAY_S)));
    if (kind_index < 0) {
        worker_set_error(outcome, "failed", "no handler for this kind in this build of hydrant");
        counted = JOBS_COUNT_FAILED;
    } else if ((payload = json_loads(PQgetvalue(res, row, DB_COL_JOB_CLAIM_PAYLOAD), JSON_REJECT_DUPLICATES,
                                     NULL)) == NULL) {
        worker_set_error(outcome, "dead", "payload is not valid JSON");
        counted = JOBS_COUNT_DEAD;
    } else {
        run.payload = payload;
        counted = worker_run_job(st, &run, kind_index, outcome);
        if (counted != JOBS_COUNT_SUCCEEDED && counted != JOBS_COUNT_RELEASED)
            util_log(UTIL_LOG_WARN, "jobs", "job %s (%s) attempt %d: %s", run.id, run.kind, run.attempt,
                     run.error);
    }
    json_decref(run.result);
    json_decref(payload);
    jobs_metrics_count(&st->pool->metrics, kind_index, queue, counted);
    json_array_append_new(st->pending, outcome);
}

static PGresult *worker_claim(worker_t *st)
{
    char limit[16], lease[16];
    snprintf(limit, sizeof(limit), "%d", st->batch);
    snprintf(lease, sizeof(lease), "%d", st->pool->cfg->jobs.lease_s);
    const char *values[] = {jobs_queue_name(st->w->queue), limit, st->w->owner, lease};
    return jobs_pg_exec(st->conn, DB_STMT_JOB_CLAIM, values);
}

static void worker_adapt_batch(worker_t *st, int claimed, uint64_t elapsed_ms)
{
    int max = st->pool->cfg->jobs.batch_size;
    if (claimed == st->batch && elapsed_ms * 2 < WORKER_BATCH_BUDGET_MS)
        st->batch = st->batch * 2 > max ? max : st->batch * 2;
    else if (elapsed_ms > WORKER_BATCH_BUDGET_MS)
        st->batch = st->batch / 2 < 1 ? 1 : st->batch / 2;
}

/* Sleeps until woken, the next scheduled job of the queue, or the fallback poll. */
static void worker_idle(worker_t *st, uint64_t seen)
{
    int timeout = st->pool->cfg->jobs.poll_ms;
    const char *values[] = {jobs_queue_name(st->w->queue)};
    PGresult *res = jobs_pg_exec(st->conn, DB_STMT_JOB_NEXT_DUE, values);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        !PQgetisnull(res, 0, DB_COL_JOB_NEXT_DUE_DUE_MS)) {
        double due_ms = atof(PQgetvalue(res, 0, DB_COL_JOB_NEXT_DUE_DUE_MS));
        if (due_ms <= 0)
            timeout = timeout > 20 ? 20 : timeout; /* due but locked by a claim in progress */
        else if (due_ms < timeout)
            timeout = (int)due_ms + 1;
    }
    PQclear(res);
    jobs_wake_wait(st->pool, st->w->queue, seen, timeout);
}

/* One round: claim, run, record. Returns jobs claimed, or -1 when the database failed. */
static int worker_round(worker_t *st)
{
    uint64_t seen = jobs_wake_generation(st->pool, st->w->queue);
    PGresult *res = worker_claim(st);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        worker_log(st, UTIL_LOG_WARN, "claim failed: %s", PQerrorMessage(st->conn));
        PQclear(res);
        return -1;
    }
    int n = PQntuples(res);
    jobs_events_publish_rows(st->events, res, DB_COL_JOB_CLAIM_EVENT_ID);
    if (n == 0) {
        PQclear(res);
        st->batch = WORKER_FIRST_BATCH;
        worker_idle(st, seen);
        return 0;
    }
    uint64_t start = jobs_now_ms();
    st->last_flush_ms = start;
    for (int i = 0; i < n; i++) {
        worker_handle_row(st, res, i, jobs_now_ms() - start > WORKER_SLOW_BATCH_MS);
        if (jobs_now_ms() - st->last_flush_ms >= WORKER_FLUSH_MS)
            worker_flush(st);
    }
    PQclear(res);
    worker_adapt_batch(st, n, jobs_now_ms() - start);
    return worker_flush(st) == 0 ? n : -1;
}

static void worker_loop(worker_t *st)
{
    while (!worker_stopping(st)) {
        if (!jobs_pg_alive(st->conn)) {
            worker_disconnect(st);
            if (worker_connect(st) != 0)
                break;
        }
        if (json_array_size(st->pending) > 0 && worker_flush(st) != 0) {
            jobs_wake_wait(st->pool, st->w->queue, jobs_wake_generation(st->pool, st->w->queue), 200);
            continue;
        }
        if (worker_round(st) < 0 && jobs_pg_alive(st->conn)) {
            /* a statement failed on a healthy connection (schema not migrated?): do not spin */
            jobs_wake_wait(st->pool, st->w->queue, jobs_wake_generation(st->pool, st->w->queue), 1000);
        }
    }
    /* Released and finished outcomes still waiting are recorded if the connection allows;
     * otherwise the pool's final release (or the lease) takes care of them. */
    if (jobs_pg_alive(st->conn))
        worker_flush(st);
}

void *jobs_worker_main(void *arg)
{
    jobs_worker_t *w = arg;
    worker_t st = {
        .w = w,
        .pool = w->pool,
        .batch = WORKER_FIRST_BATCH,
        .pending = json_array(),
        .events = db_events_pub_new(w->pool->cfg->redis.url, w->pool->cfg->redis.command_timeout_ms,
                                    "the jobs worker"),
    };
    if (st.batch > st.pool->cfg->jobs.batch_size)
        st.batch = st.pool->cfg->jobs.batch_size;
    if (st.pending != NULL)
        worker_loop(&st);
    worker_disconnect(&st);
    db_events_pub_free(st.events);
    json_decref(st.pending);
    jobs_pool_thread_done(w->pool);
    return NULL;
}
