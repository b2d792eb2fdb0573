/*
 * The worker pool: its threads, how they are woken, and how it stops.
 *
 * Besides the workers, one listener thread holds a connection that LISTENs on the jobs
 * channel and wakes the workers of the queue a notification names; every third of a lease
 * it renews the leases of this process's live workers and returns jobs with an expired
 * lease (any process's) to their queue.
 */
#include "jobs/jobs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ waking ---- */

void jobs_wake_queue(jobs_pool_t *pool, jobs_queue_t queue)
{
    jobs_wake_t *wk = &pool->wake[queue];
    pthread_mutex_lock(&wk->mu);
    wk->generation++;
    pthread_cond_broadcast(&wk->cv);
    pthread_mutex_unlock(&wk->mu);
}

void jobs_wake_all(jobs_pool_t *pool)
{
    for (int q = 0; q < JOBS_NQUEUES; q++)
        jobs_wake_queue(pool, (jobs_queue_t)q);
}

uint64_t jobs_wake_generation(jobs_pool_t *pool, jobs_queue_t queue)
{
    jobs_wake_t *wk = &pool->wake[queue];
    pthread_mutex_lock(&wk->mu);
    uint64_t generation = wk->generation;
    pthread_mutex_unlock(&wk->mu);
    return generation;
}

void jobs_wake_wait(jobs_pool_t *pool, jobs_queue_t queue, uint64_t seen, int timeout_ms)
{
    jobs_wake_t *wk = &pool->wake[queue];
    struct timespec deadline = util_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&wk->mu);
    while (wk->generation == seen && !atomic_load(&pool->stopping))
        if (pthread_cond_timedwait(&wk->cv, &wk->mu, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&wk->mu);
}

void jobs_pool_thread_done(jobs_pool_t *pool)
{
    pthread_mutex_lock(&pool->done_mu);
    pool->live_threads--;
    pthread_cond_broadcast(&pool->done_cv);
    pthread_mutex_unlock(&pool->done_mu);
}

/* ---------------------------------------------------------------- listener ---- */

/* Retention runs this often, and again at once while it finds a full page to delete. */
#define LISTENER_PURGE_MS    60000
#define LISTENER_PURGE_PAGES 20

typedef struct {
    jobs_pool_t *pool;
    PGconn *conn;
    uint64_t next_maintenance_ms;
    uint64_t next_purge_ms;
    db_events_pub_t *events; /* job.updated of the jobs it requeues */
} listener_t;

static int listener_connect(listener_t *l)
{
    char err[400];
    l->conn = jobs_pg_connect(l->pool->cfg->database.url, "hydrant-jobs-listener", err, sizeof(err));
    if (l->conn == NULL)
        return -1;
    PGresult *res = PQexec(l->conn, "LISTEN " JOBS_CHANNEL);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        PQfinish(l->conn);
        l->conn = NULL;
        return -1;
    }
    /* Notifications sent while we were away are lost: let every worker look again. */
    jobs_wake_all(l->pool);
    return 0;
}

static void listener_drain_notifications(listener_t *l)
{
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        int q = jobs_queue_parse(n->extra);
        if (q >= 0)
            jobs_wake_queue(l->pool, (jobs_queue_t)q);
        PQfreemem(n);
    }
}

/* The owners of this process's live workers, as a PostgreSQL text array literal. Owner names
 * hold only [A-Za-z0-9.:_-], so they need no quoting. */
static char *listener_owner_array(jobs_pool_t *pool)
{
    size_t cap = (size_t)pool->nworkers * (JOBS_OWNER_LEN + 1) + 3;
    char *text = malloc(cap);
    if (text == NULL)
        return NULL;
    size_t len = 0;
    text[len++] = '{';
    pthread_mutex_lock(&pool->owners_mu);
    for (int i = 0; i < pool->nworkers; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%s", i > 0 ? "," : "", pool->workers[i].owner);
    pthread_mutex_unlock(&pool->owners_mu);
    snprintf(text + len, cap - len, "}");
    return text;
}

static int listener_maintain(listener_t *l)
{
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", l->pool->cfg->jobs.lease_s);
    char *owners = listener_owner_array(l->pool);
    const char *extend[] = {owners, lease};
    PGresult *res = jobs_pg_exec(l->conn, DB_STMT_JOB_EXTEND, extend);
    int ok = owners != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    free(owners);
    res = jobs_pg_exec(l->conn, DB_STMT_JOB_REAP, NULL);
    ok = ok && PQresultStatus(res) == PGRES_TUPLES_OK;
    for (int i = 0; ok && i < PQntuples(res); i++)
        if (!PQgetisnull(res, i, DB_COL_JOB_REAP_QUEUE))
            util_log(UTIL_LOG_WARN, "jobs", "%s job(s) of queue %s had an expired lease and were requeued",
                     PQgetvalue(res, i, DB_COL_JOB_REAP_COUNT), PQgetvalue(res, i, DB_COL_JOB_REAP_QUEUE));
    jobs_events_publish_rows(l->events, res, DB_COL_JOB_REAP_EVENT_ID);
    PQclear(res);
    listener_drain_notifications(l);
    return ok ? 0 : -1;
}

/* Deletes jobs past retention, a page at a time, at most LISTENER_PURGE_PAGES pages per
 * round so that lease renewal is never held up for long; a full last page brings the next
 * round forward. */
static void listener_purge(listener_t *l)
{
    int days = l->pool->cfg->jobs.retention_days;
    if (days <= 0 || jobs_now_ms() < l->next_purge_ms)
        return;
    char text[16];
    snprintf(text, sizeof(text), "%d", days);
    const char *values[] = {text};
    int full = 1;
    for (int page = 0; full && page < LISTENER_PURGE_PAGES && !atomic_load(&l->pool->stopping); page++) {
        PGresult *res = jobs_pg_exec(l->conn, DB_STMT_JOB_PURGE, values);
        full = PQresultStatus(res) == PGRES_COMMAND_OK && atoi(PQcmdTuples(res)) >= 1000;
        PQclear(res);
    }
    l->next_purge_ms = jobs_now_ms() + (full ? 0 : LISTENER_PURGE_MS);
}

/* Enqueues each periodic kind whose time has come, under a unique key per kind, so that a
 * run still pending or running anywhere is not doubled. */
static void listener_periodic(listener_t *l)
{
    jobs_pool_t *pool = l->pool;
    for (int k = 0; pool->periodic && k < pool->registry->nkinds; k++) {
        const jobs_kind_t *kind = &pool->registry->kinds[k];
        if (kind->interval_s <= 0 || jobs_now_ms() < pool->periodic_next_ms[k])
            continue;
        char key[JOBS_KIND_MAX_LEN + 16];
        snprintf(key, sizeof(key), "periodic:%s", kind->kind);
        jobs_enqueue_t job = {.kind = kind->kind, .queue = "medium", .unique_key = key};
        db_query_t q;
        jobs_enqueue_query(&job, pool->cfg, &q);
        PGresult *res = jobs_pg_exec(l->conn, DB_STMT_JOB_ENQUEUE, q.values);
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            pool->periodic_next_ms[k] = jobs_now_ms() + (uint64_t)kind->interval_s * 1000;
        PQclear(res);
    }
}

static int listener_interval_ms(const jobs_pool_t *pool)
{
    int ms = pool->cfg->jobs.lease_s * 1000 / 3;
    return ms < 100 ? 100 : ms > 10000 ? 10000 : ms;
}

/* Waits for a notification, the stop pipe or the next maintenance. Returns -1 when the
 * connection broke. */
static int listener_wait(listener_t *l)
{
    uint64_t now = jobs_now_ms();
    int timeout = l->next_maintenance_ms > now ? (int)(l->next_maintenance_ms - now) : 0;
    struct pollfd fds[2] = {{.fd = PQsocket(l->conn), .events = POLLIN},
                            {.fd = l->pool->stop_pipe[0], .events = POLLIN}};
    int rc = poll(fds, 2, timeout);
    if (rc > 0 && (fds[0].revents & (POLLIN | POLLERR | POLLHUP))) {
        if (!PQconsumeInput(l->conn))
            return -1;
        listener_drain_notifications(l);
    }
    return 0;
}

void *jobs_listener_main(void *arg)
{
    listener_t l = {.pool = arg};
    l.events = db_events_pub_new(l.pool->cfg->redis.url, l.pool->cfg->redis.command_timeout_ms,
                                 "the jobs lease keeper");
    int failures = 0;
    while (!atomic_load(&l.pool->stopping)) {
        if (l.conn == NULL && listener_connect(&l) != 0) {
            struct pollfd stop = {.fd = l.pool->stop_pipe[0], .events = POLLIN};
            poll(&stop, 1, (int)util_backoff_next(&UTIL_BACKOFF_RECONNECT, &failures));
            continue;
        }
        failures = 0;
        if (jobs_now_ms() >= l.next_maintenance_ms) {
            l.next_maintenance_ms = jobs_now_ms() + (uint64_t)listener_interval_ms(l.pool);
            if (listener_maintain(&l) != 0 && !jobs_pg_alive(l.conn)) {
                PQfinish(l.conn);
                l.conn = NULL;
                continue;
            }
            listener_purge(&l);
            listener_periodic(&l);
        }
        if (listener_wait(&l) != 0 || !jobs_pg_alive(l.conn)) {
            PQfinish(l.conn);
            l.conn = NULL;
        }
    }
    PQfinish(l.conn);
    db_events_pub_free(l.events);
    jobs_pool_thread_done(l.pool);
    return NULL;
}

/* ------------------------------------------------------------ start / stop ---- */

static void jobs_pool_name_owner(jobs_pool_t *pool)
{
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-'))
            *c = '_';
    unsigned int random = 0;
    if (util_random_bytes(&random, sizeof(random)) != 0)
        random = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    snprintf(pool->owner, sizeof(pool->owner), "%s:%d:%08x", host, (int)getpid(), random);
}

static int jobs_pool_init(jobs_pool_t *pool, const jobs_pool_options_t *options)
{
    pool->cfg = options->cfg;
    pool->registry = options->registry;
    pool->periodic = options->periodic;
    pool->stop_pipe[0] = pool->stop_pipe[1] = -1;
    jobs_pool_name_owner(pool);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    for (int q = 0; q < JOBS_NQUEUES; q++) {
        pthread_mutex_init(&pool->wake[q].mu, NULL);
        pthread_cond_init(&pool->wake[q].cv, &attr);
        pool->nworkers += options->workers[q] > 0 ? options->workers[q] : 0;
    }
    pthread_mutex_init(&pool->owners_mu, NULL);
    pthread_mutex_init(&pool->done_mu, NULL);
    pthread_cond_init(&pool->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    pool->workers = calloc((size_t)(pool->nworkers > 0 ? pool->nworkers : 1), sizeof(jobs_worker_t));
    if (pool->workers == NULL || pipe2(pool->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    int i = 0;
    for (int q = 0; q < JOBS_NQUEUES; q++)
        for (int k = 0; k < options->workers[q]; k++, i++)
            pool->workers[i] = (jobs_worker_t){.pool = pool, .queue = (jobs_queue_t)q, .index = k};
    return 0;
}

static void jobs_pool_destroy(jobs_pool_t *pool)
{
    for (int q = 0; q < JOBS_NQUEUES; q++) {
        pthread_mutex_destroy(&pool->wake[q].mu);
        pthread_cond_destroy(&pool->wake[q].cv);
    }
    pthread_mutex_destroy(&pool->owners_mu);
    pthread_mutex_destroy(&pool->done_mu);
    pthread_cond_destroy(&pool->done_cv);
    for (int i = 0; i < 2; i++)
        if (pool->stop_pipe[i] >= 0)
            close(pool->stop_pipe[i]);
    free(pool->workers);
    free(pool);
}

static int jobs_pool_spawn(jobs_pool_t *pool, pthread_t *thread, void *(*fn)(void *), void *arg)
{
    pthread_mutex_lock(&pool->done_mu);
    int rc = pthread_create(thread, NULL, fn, arg);
    if (rc == 0)
        pool->live_threads++;
    pthread_mutex_unlock(&pool->done_mu);
    return rc;
}

jobs_pool_t *jobs_pool_start(const jobs_pool_options_t *options, char *err, size_t errlen)
{
    jobs_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL || jobs_pool_init(pool, options) != 0) {
        snprintf(err, errlen, "jobs: out of memory");
        if (pool != NULL)
            jobs_pool_destroy(pool);
        return NULL;
    }
    if (jobs_pool_spawn(pool, &pool->listener, jobs_listener_main, pool) != 0) {
        snprintf(err, errlen, "jobs: cannot start the listener thread");
        jobs_pool_destroy(pool);
        return NULL;
    }
    pool->listener_started = 1;
    for (int i = 0; i < pool->nworkers; i++) {
        jobs_worker_t *w = &pool->workers[i];
        snprintf(w->owner, sizeof(w->owner), "%s:%s%d:0", pool->owner, jobs_queue_name(w->queue), w->index);
        if (jobs_pool_spawn(pool, &w->thread, jobs_worker_main, w) != 0) {
            snprintf(err, errlen, "jobs: cannot start worker thread %d", i);
            jobs_pool_stop(pool);
            jobs_pool_free(pool);
            return NULL;
        }
        w->started = 1;
    }
    return pool;
}

/* Gives every job this process still holds back to its queue, on a connection of its own
 * (the workers' may be stuck in a handler). */
static int jobs_pool_release_all(jobs_pool_t *pool)
{
    char err[400];
    PGconn *conn = jobs_pg_connect(pool->cfg->database.url, "hydrant-jobs-release", err, sizeof(err));
    if (conn == NULL) {
        util_log(UTIL_LOG_WARN, "jobs", "cannot release running jobs (%s); their lease will expire", err);
        return 0;
    }
    char prefix[JOBS_OWNER_LEN + 2];
    snprintf(prefix, sizeof(prefix), "%s:", pool->owner);
    const char *values[] = {prefix};
    PGresult *res = jobs_pg_exec(conn, DB_STMT_JOB_RELEASE, values);
    int released = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : 0;
    db_events_pub_t *events =
        released > 0
            ? db_events_pub_new(pool->cfg->redis.url, pool->cfg->redis.command_timeout_ms, "the jobs release")
            : NULL;
    jobs_events_publish_rows(events, res, DB_COL_JOB_RELEASE_EVENT_ID);
    db_events_pub_free(events);
    PQclear(res);
    PQfinish(conn);
    return released;
}

/* Waits for every thread to end, at most timeout_ms. Returns 1 when all ended. */
static int jobs_pool_wait_threads(jobs_pool_t *pool, int timeout_ms)
{
    struct timespec deadline = util_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&pool->done_mu);
    while (pool->live_threads > 0)
        if (pthread_cond_timedwait(&pool->done_cv, &pool->done_mu, &deadline) == ETIMEDOUT)
            break;
    int all = pool->live_threads == 0;
    pthread_mutex_unlock(&pool->done_mu);
    return all;
}

int jobs_pool_stop(jobs_pool_t *pool)
{
    if (pool == NULL)
        return 0;
    atomic_store(&pool->stopping, 1);
    jobs_wake_all(pool);
    ssize_t ignored = write(pool->stop_pipe[1], "x", 1);
    (void)ignored;
    int timeout_ms = pool->cfg->jobs.shutdown_timeout_ms;
    int all_ended = jobs_pool_wait_threads(pool, timeout_ms);
    if (!all_ended) {
        /* Handlers that watch jobs_stopping() now give their job back; a short grace lets
         * them record that themselves. */
        atomic_store(&pool->releasing, 1);
        all_ended = jobs_pool_wait_threads(pool, timeout_ms < 1000 ? timeout_ms : 1000);
    }
    int released = jobs_pool_release_all(pool);
    if (released > 0)
        util_log(UTIL_LOG_INFO, "jobs", "%d running job(s) released to their queue", released);
    if (!all_ended) {
        /* A handler ignored the stop request: its thread still uses the pool, so the pool
         * is left to the process's exit rather than freed under it. */
        util_log(UTIL_LOG_WARN, "jobs", "some workers did not stop within %d ms",
                 pool->cfg->jobs.shutdown_timeout_ms);
        pool->abandoned = 1;
        return released;
    }
    if (pool->listener_started)
        pthread_join(pool->listener, NULL);
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
    pool->listener_started = 0;
    for (int i = 0; i < pool->nworkers; i++)
        pool->workers[i].started = 0;
    return released;
}

void jobs_pool_free(jobs_pool_t *pool)
{
    if (pool != NULL && !pool->abandoned)
        jobs_pool_destroy(pool);
}

char *jobs_pool_metrics_text(const jobs_pool_t *pool)
{
    return pool != NULL ? jobs_metrics_render(&pool->metrics, pool->registry) : NULL;
}

const char *jobs_pool_owner(const jobs_pool_t *pool)
{
    return pool->owner;
}
