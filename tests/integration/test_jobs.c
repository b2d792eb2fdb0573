/*
 * The job queue and its worker pool, in this process, against the test PostgreSQL and SMTP
 * sink: exactly-once under concurrency, retries, dead jobs, cancellation, scheduling, unique
 * keys, wake-up by notification, shutdown, email delivery and SMTP failures, and enqueueing
 * inside a pipelined batch that commits or fails as a whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness.h"
#include "jobs/jobs.h"
#include "testhooks/testhooks.h"

#define COUNT_JOBS 1000

static cfg_t cfg;
static PGconn *db;
static atomic_int count_runs[COUNT_JOBS];

/* ------------------------------------------------------------- helpers ---- */

static PGresult *sql(const char *query, int nparams, const char *const *values)
{
    return harness_sql(db, query, nparams, values);
}

static void sql_exec(const char *query)
{
    PQclear(sql(query, 0, NULL));
}

/* One value of one job (a fresh string), or NULL when the job or value is missing. */
static char *job_value(const char *id, const char *column)
{
    char query[256];
    snprintf(query, sizeof(query), "SELECT %s::text FROM jobs WHERE id = $1", column);
    const char *values[] = {id};
    PGresult *res = sql(query, 1, values);
    char *value = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return value;
}

static long long sql_count(const char *query)
{
    PGresult *res = sql(query, 0, NULL);
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

/* Enqueues through jobs_enqueue_query on a given connection; returns the id or NULL when
 * the unique key was taken. */
static char *enqueue_on(PGconn *conn, jobs_enqueue_t *job)
{
    db_query_t q;
    jobs_enqueue_query(job, &cfg, &q);
    const db_stmt_def_t *def = db_stmt_get(q.stmt);
    PGresult *res = PQexecParams(conn, def->sql, q.nparams, NULL, q.values, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("enqueue: %s", PQerrorMessage(conn));
    char *id = PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return id;
}

static char *enqueue(const char *kind, const char *payload)
{
    jobs_enqueue_t job = {.kind = kind, .payload = payload};
    return enqueue_on(db, &job);
}

/* Waits (bounded) until the job reaches `state`; returns 1 if it did. */
static int wait_state(const char *id, const char *state, int timeout_ms)
{
    for (long long deadline = harness_now_ms() + timeout_ms; harness_now_ms() < deadline;) {
        char *now = job_value(id, "state");
        int done = now != NULL && strcmp(now, state) == 0;
        free(now);
        if (done)
            return 1;
        usleep(20 * 1000);
    }
    return 0;
}

static void assert_job(const char *id, const char *column, const char *expected)
{
    char *value = job_value(id, column);
    if (value == NULL || strcmp(value, expected) != 0)
        fail_msg("job %s: %s is '%s', expected '%s'", id, column, value ? value : "(null)", expected);
    free(value);
}

static jobs_outcome_t kind_count(jobs_run_t *run)
{
    json_int_t n = json_integer_value(json_object_get(run->payload, "n"));
    if (n < 0 || n >= COUNT_JOBS) {
        snprintf(run->error, sizeof(run->error), "n out of range");
        return JOBS_PERMANENT;
    }
    atomic_fetch_add(&count_runs[n], 1);
    return JOBS_DONE;
}

static jobs_registry_t *registry_new(void)
{
    jobs_registry_t *registry = jobs_registry_new();
    char err[256];
    assert_int_equal(jobs_register_builtin(registry, &cfg, err, sizeof(err)), 0);
    assert_int_equal(testhooks_jobs_register(registry, &cfg, err, sizeof(err)), 0);
    assert_int_equal(jobs_registry_add(registry, "t.count", kind_count, NULL), 0);
    assert_int_equal(jobs_registry_add(registry, "t.count", kind_count, NULL), -1); /* taken */
    return registry;
}

static jobs_pool_t *pool_start(const jobs_registry_t *registry, int short_workers, int medium,
                               int long_workers)
{
    char err[256];
    jobs_pool_options_t options = {
        .cfg = &cfg, .registry = registry, .workers = {short_workers, medium, long_workers}};
    jobs_pool_t *pool = jobs_pool_start(&options, err, sizeof(err));
    if (pool == NULL)
        fail_msg("pool: %s", err);
    return pool;
}

static void pool_finish(jobs_pool_t *pool)
{
    jobs_pool_stop(pool);
    jobs_pool_free(pool);
}

/* ------------------------------------------------------------- fixtures ---- */

static int group_setup(void **state)
{
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
    cfg_init_defaults(&cfg);
    free(cfg.database.url);
    cfg.database.url = strdup(harness_env("HYDRANT_TEST_DATABASE_URL"));
    free(cfg.smtp.url);
    cfg.smtp.url = strdup(harness_env("HYDRANT_TEST_SMTP_URL"));
    free(cfg.smtp.templates_dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/templates/email", src);
    cfg.smtp.templates_dir = strdup(path);
    free(cfg.public_url);
    cfg.public_url = strdup("https://hydrant.test");
    cfg.smtp.timeout_ms = 3000;
    cfg.smtp.starttls = 0;
    setenv("HYDRANT_TEST_JOBS", "1", 1);
    snprintf(path, sizeof(path), "%s/migrations", src);
    char err[512];
    if (cli_migrate(cfg.database.url, path, CLI_MIGRATE_UP, 0, stderr, err, sizeof(err)) != 0)
        fail_msg("migrate: %s", err);
    db = PQconnectdb(cfg.database.url);
    return PQstatus(db) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    PQfinish(db);
    cfg_free(&cfg);
    return 0;
}

/* Every test starts from an empty queue and quick, test-sized settings. */
static int setup(void **state)
{
    sql_exec("DELETE FROM jobs");
    for (int i = 0; i < COUNT_JOBS; i++)
        atomic_store(&count_runs[i], 0);
    cfg.jobs.lease_s = 30;
    cfg.jobs.poll_ms = 200;
    cfg.jobs.retry_base_ms = 50;
    cfg.jobs.retry_max_ms = 200;
    cfg.jobs.shutdown_timeout_ms = 3000;
    cfg.jobs.batch_size = 64;
    cfg.jobs.retention_days = 0;
    cfg.jobs.max_attempts = 18;
    for (int i = 0; i < cfg.jobs.nkinds; i++)
        free(cfg.jobs.kinds[i].kind);
    cfg.jobs.nkinds = 0;
    harness_system("rm -f %s/smtp/mail/mode", harness_env("HYDRANT_TEST_SERVICES_DIR"));
    return 0;
}

/* --------------------------------------------------------------- queue ---- */

typedef struct {
    int first, count;
} enqueue_range_t;

static void *enqueue_thread(void *arg)
{
    enqueue_range_t *range = arg;
    PGconn *conn = PQconnectdb(cfg.database.url);
    for (int n = range->first; n < range->first + range->count; n++) {
        char payload[32];
        snprintf(payload, sizeof(payload), "{\"n\":%d}", n);
        jobs_enqueue_t job = {.kind = "t.count", .payload = payload, .queue = n % 2 ? "short" : "medium"};
        free(enqueue_on(conn, &job));
    }
    PQfinish(conn);
    return NULL;
}

/* 1,000 jobs enqueued from 8 connections while 4 workers claim them: each runs once. */
static void test_thousand_jobs_run_exactly_once(void **state)
{
    jobs_registry_t *registry = registry_new();
    cfg.jobs.batch_size = 16;
    jobs_pool_t *pool = pool_start(registry, 2, 2, 0);
    pthread_t threads[8];
    enqueue_range_t ranges[8];
    for (int t = 0; t < 8; t++) {
        ranges[t] = (enqueue_range_t){t * (COUNT_JOBS / 8), COUNT_JOBS / 8};
        pthread_create(&threads[t], NULL, enqueue_thread, &ranges[t]);
    }
    for (int t = 0; t < 8; t++)
        pthread_join(threads[t], NULL);
    long long succeeded = 0;
    for (long long deadline = harness_now_ms() + 60000; harness_now_ms() < deadline && succeeded < COUNT_JOBS;
         usleep(50 * 1000))
        succeeded = sql_count("SELECT count(*) FROM jobs WHERE state = 'succeeded'");
    pool_finish(pool);
    assert_int_equal(succeeded, COUNT_JOBS);
    for (int n = 0; n < COUNT_JOBS; n++)
        if (atomic_load(&count_runs[n]) != 1)
            fail_msg("job %d ran %d times", n, atomic_load(&count_runs[n]));
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE attempt <> 1 OR lease_owner IS NOT NULL "
                               "OR finished_at IS NULL OR started_at IS NULL"),
                     0);
    jobs_registry_free(registry);
}

/* Transient failures are retried after a delay; the attempt count and error are kept. */
static void test_retry_then_succeed(void **state)
{
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char *id = enqueue("test.fail", "{\"times\":2}");
    assert_true(wait_state(id, "succeeded", 20000));
    pool_finish(pool);
    assert_job(id, "attempt", "3");
    /* the run_at of the last attempt was pushed back by the backoff */
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE run_at > created_at"), 1);
    free(id);
    jobs_registry_free(registry);
}

static void test_dead_after_max_attempts_and_permanent(void **state)
{
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    jobs_enqueue_t flaky = {.kind = "test.fail", .payload = "{\"times\":100}", .max_attempts = 3};
    char *dead = enqueue_on(db, &flaky);
    char *permanent = enqueue("test.fail", "{\"times\":1,\"permanent\":true}");
    char *unknown = enqueue("nobody.knows.this", "{}");
    assert_true(wait_state(dead, "dead", 20000));
    assert_true(wait_state(permanent, "dead", 20000));
    assert_true(wait_state(unknown, "failed", 20000));
    char *metrics = jobs_pool_metrics_text(pool);
    pool_finish(pool);
    assert_job(dead, "attempt", "3");
    assert_job(dead, "error", "test failure on attempt 3");
    assert_job(permanent, "attempt", "1");
    assert_job(unknown, "error", "no handler for this kind in this build of hydrant");
    char *finished = job_value(dead, "finished_at");
    assert_non_null(finished);
    free(finished);
    assert_non_null(
        strstr(metrics, "hydrant_jobs_total{queue=\"short\",kind=\"test.fail\",state=\"dead\"} 2\n"));
    assert_non_null(
        strstr(metrics, "hydrant_jobs_total{queue=\"short\",kind=\"test.fail\",state=\"retrying\"} 2\n"));
    assert_non_null(
        strstr(metrics, "hydrant_jobs_total{queue=\"short\",kind=\"unknown\",state=\"failed\"} 1\n"));
    assert_non_null(strstr(metrics, "hydrant_job_start_delay_seconds_count{queue=\"short\"} 5\n"));
    free(metrics);
    free(dead);
    free(permanent);
    free(unknown);
    jobs_registry_free(registry);
}

/* CLI-style transitions through the registry statements: cancel and retry. */
static void test_cancel_and_retry(void **state)
{
    jobs_enqueue_t later = {.kind = "t.count", .payload = "{\"n\":1}", .run_at = "2999-01-01T00:00:00Z"};
    char *id = enqueue_on(db, &later);
    const db_stmt_def_t *cancel = db_stmt_get(DB_STMT_JOB_CANCEL);
    const char *values[] = {id, NULL};
    PGresult *res = sql(cancel->sql, 2, values);
    assert_int_equal(PQntuples(res), 1);
    json_t *job = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "cancelled");
    assert_string_equal(json_string_value(json_object_get(job, "run_at")), "2999-01-01T00:00:00.000Z");
    assert_true(json_is_null(json_object_get(job, "started_at")));
    json_decref(job);
    PQclear(res);
    res = sql(cancel->sql, 2, values); /* not cancellable twice */
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    /* a cancelled job is never run, and retry refuses it (only failed or dead) */
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    const db_stmt_def_t *retry = db_stmt_get(DB_STMT_JOB_RETRY);
    res = sql(retry->sql, 1, values);
    assert_int_equal(PQntuples(res), 0);
    PQclear(res);
    sql_exec("UPDATE jobs SET state = 'dead', attempt = 5, run_at = now(), error = 'x'");
    res = sql(retry->sql, 1, values);
    assert_int_equal(PQntuples(res), 1);
    PQclear(res);
    assert_true(wait_state(id, "succeeded", 10000));
    pool_finish(pool);
    assert_job(id, "attempt", "1");
    assert_int_equal(atomic_load(&count_runs[1]), 1);
    free(id);
    jobs_registry_free(registry);
}

/* A job scheduled in the future does not start before its run_at. */
static void test_scheduled_job(void **state)
{
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    PGresult *res = sql("SELECT to_char((now() + interval '1500 milliseconds') AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                        0, NULL);
    jobs_enqueue_t job = {.kind = "t.count", .payload = "{\"n\":7}", .run_at = PQgetvalue(res, 0, 0)};
    char *id = enqueue_on(db, &job);
    PQclear(res);
    assert_true(wait_state(id, "succeeded", 15000));
    pool_finish(pool);
    assert_int_equal(
        sql_count("SELECT count(*) FROM jobs WHERE started_at >= run_at AND run_at > created_at"), 1);
    assert_int_equal(atomic_load(&count_runs[7]), 1);
    free(id);
    jobs_registry_free(registry);
}

/* A unique key admits one pending job; once it finished, the key is free again. */
static void test_unique_key(void **state)
{
    jobs_enqueue_t job = {
        .kind = "t.count", .payload = "{\"n\":3}", .unique_key = "email:someone@example.com"};
    char *first = enqueue_on(db, &job);
    assert_non_null(first);
    assert_null(enqueue_on(db, &job)); /* the double click */
    assert_int_equal(sql_count("SELECT count(*) FROM jobs"), 1);
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    assert_true(wait_state(first, "succeeded", 10000));
    char *second = enqueue_on(db, &job);
    assert_non_null(second);
    assert_true(wait_state(second, "succeeded", 10000));
    pool_finish(pool);
    assert_int_equal(atomic_load(&count_runs[3]), 2);
    free(first);
    free(second);
    jobs_registry_free(registry);
}

/* With the fallback poll an hour away, only the notification can start the job. */
static void test_notification_wakes_idle_worker(void **state)
{
    jobs_registry_t *registry = registry_new();
    cfg.jobs.poll_ms = 3600 * 1000;
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    usleep(300 * 1000); /* the worker has looked once and sleeps */
    char *id = enqueue("t.count", "{\"n\":9}");
    int ran = wait_state(id, "succeeded", 15000);
    pool_finish(pool);
    assert_true(ran);
    free(id);
    jobs_registry_free(registry);
}

/* Stopping: a job that can finish in time does; one that cannot is released, its attempt
 * given back; a job on a queue with no worker is left alone. */
static void test_shutdown_releases_running_jobs(void **state)
{
    jobs_registry_t *registry = registry_new();
    cfg.jobs.shutdown_timeout_ms = 5000;
    jobs_pool_t *pool = pool_start(registry, 1, 1, 0);
    jobs_enqueue_t endless = {.kind = "test.sleep", .payload = "{\"ms\":600000}", .queue = "short"};
    jobs_enqueue_t brief = {.kind = "test.sleep", .payload = "{\"ms\":400}", .queue = "medium"};
    char *long_id = enqueue_on(db, &endless);
    assert_true(wait_state(long_id, "running", 10000));
    char *brief_id = enqueue_on(db, &brief);
    assert_true(wait_state(brief_id, "running", 10000));
    assert_int_equal(jobs_pool_stop(pool), 0); /* nothing left for the final sweep */
    jobs_pool_free(pool);
    assert_job(long_id, "state", "queued");
    assert_job(long_id, "attempt", "0");
    assert_null(job_value(long_id, "lease_owner"));
    assert_job(brief_id, "state", "succeeded");
    assert_job(brief_id, "result", "{\"slept_ms\": 400}");
    free(long_id);
    free(brief_id);
    jobs_registry_free(registry);
}

/* Succeeded and cancelled jobs past retention are deleted; dead ones and recent ones stay. */
static void test_retention_purges_old_finished_jobs(void **state)
{
    sql_exec("INSERT INTO jobs (id, kind, state, finished_at) VALUES "
             "(hydrant_uuid_v7_floor(now() - interval '30 days'), 'old.succeeded', 'succeeded', now()), "
             "(hydrant_uuid_v7_floor(now() - interval '29 days'), 'old.cancelled', 'cancelled', now()), "
             "(hydrant_uuid_v7_floor(now() - interval '28 days'), 'old.dead', 'dead', now()), "
             "(hydrant_uuid_v7_floor(now() - interval '3 days'), 'recent.succeeded', 'succeeded', now())");
    cfg.jobs.retention_days = 14;
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    long long left = 4;
    for (long long deadline = harness_now_ms() + 10000; left > 2 && harness_now_ms() < deadline;
         usleep(20 * 1000))
        left = sql_count("SELECT count(*) FROM jobs");
    pool_finish(pool);
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE kind IN ('old.dead', 'recent.succeeded')"),
                     2);
    assert_int_equal(sql_count("SELECT count(*) FROM jobs"), 2);
    /* ids are time-ordered: a fresh one sorts after every id made earlier */
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE hydrant_uuid_v7() < id"), 0);
    jobs_registry_free(registry);
}

/* PostgreSQL restarts under an idle pool whose fallback poll is an hour away: the listener
 * reconnects and LISTENs again, the workers reconnect, and a new job still starts. */
static void test_database_restart_recovers(void **state)
{
    const char *dir = harness_env("HYDRANT_TEST_SERVICES_DIR");
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
    jobs_registry_t *registry = registry_new();
    cfg.jobs.poll_ms = 3600 * 1000;
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    usleep(300 * 1000);
    assert_int_equal(harness_system("%s/scripts/services.sh pg-stop %s >/dev/null", src, dir), 0);
    usleep(500 * 1000);
    assert_int_equal(harness_system("%s/scripts/services.sh pg-start %s >/dev/null", src, dir), 0);
    PQreset(db);
    assert_int_equal(PQstatus(db), CONNECTION_OK);
    char *id = enqueue("t.count", "{\"n\":11}");
    int ran = wait_state(id, "succeeded", 20000);
    pool_finish(pool);
    assert_true(ran);
    assert_int_equal(atomic_load(&count_runs[11]), 1);
    free(id);
    jobs_registry_free(registry);
}

/* The periodic auth.purge: whole expired refresh families go, a family whose burnt row
 * expired but whose child lives stays (else the child would come back to life), expired
 * one-time tokens and revocations go, live ones stay. */
static void test_periodic_auth_purge(void **state)
{
    char email[128];
    snprintf(email, sizeof(email), "purge-%d-%lld@example.com", getpid(), harness_now_ms());
    const char *values[] = {email};
    PGresult *res = sql("INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id", 1, values);
    char user[64];
    snprintf(user, sizeof(user), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *u[] = {user};
    PQclear(sql(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at, revoked_at) VALUES "
        "(repeat('a', 64), '00000000-0000-4000-8000-00000000000a', $1, now() - interval '2 days', NULL), "
        "(repeat('b', 64), '00000000-0000-4000-8000-00000000000a', $1, now() - interval '3 days', NULL), "
        "(repeat('c', 64), '00000000-0000-4000-8000-00000000000b', $1, now() - interval '2 days', now()), "
        "(repeat('d', 64), '00000000-0000-4000-8000-00000000000b', $1, now() + interval '2 days', NULL)",
        1, u));
    PQclear(sql(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, expires_at) VALUES (repeat('e', 64), $1, "
        "'reset', now() - interval '2 days'), (repeat('f', 64), $1, 'confirm', now() + interval '1 day')",
        1, u));
    sql_exec(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ('purge-old', now() - interval '1 minute'), "
        "('purge-live', now() + interval '10 minutes') ON CONFLICT DO NOTHING");
    jobs_registry_t *registry = registry_new();
    char err[256];
    jobs_pool_options_t options = {.cfg = &cfg, .registry = registry, .workers = {0, 1, 0}, .periodic = 1};
    jobs_pool_t *pool = jobs_pool_start(&options, err, sizeof(err));
    assert_non_null(pool);
    long long done = 0;
    for (long long deadline = harness_now_ms() + 15000; done < 1 && harness_now_ms() < deadline;
         usleep(20 * 1000))
        done = sql_count("SELECT count(*) FROM jobs WHERE kind = 'auth.purge' AND state = 'succeeded'");
    pool_finish(pool);
    assert_int_equal(done, 1);
    res = sql("SELECT string_agg(left(token_hash, 1), '' ORDER BY token_hash) FROM refresh_tokens WHERE "
              "user_id = $1",
              1, u);
    assert_string_equal(PQgetvalue(res, 0, 0), "cd");
    PQclear(res);
    res = sql("SELECT string_agg(left(token_hash, 1), '') FROM email_tokens WHERE user_id = $1", 1, u);
    assert_string_equal(PQgetvalue(res, 0, 0), "f");
    PQclear(res);
    assert_int_equal(sql_count("SELECT count(*) FROM revoked_tokens WHERE jti LIKE 'purge-%'"), 1);
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE kind = 'auth.purge' AND unique_key = "
                               "'periodic:auth.purge' AND result->>'refresh_tokens' = '2'"),
                     1);
    sql_exec("DELETE FROM revoked_tokens WHERE jti LIKE 'purge-%'");
    PQclear(sql("DELETE FROM users WHERE id = $1", 1, u));
    jobs_registry_free(registry);
}

/* ------------------------------------------------------------- batches ---- */

typedef struct {
    uv_loop_t *loop;
    db_status_t status;
    int done;
} batch_wait_t;

static void on_batch(void *data, const db_reply_t *reply)
{
    batch_wait_t *w = data;
    w->status = reply->status;
    w->done = 1;
}

static db_status_t run_batch(db_pg_pool_t *pool, uv_loop_t *loop, const db_query_t *queries, int n)
{
    batch_wait_t w = {.loop = loop};
    for (long long deadline = harness_now_ms() + 10000;
         !db_pg_ready_connections(pool) && harness_now_ms() < deadline;)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(db_pg_submit(pool, queries, n, on_batch, &w), 0);
    while (!w.done)
        uv_run(loop, UV_RUN_ONCE);
    return w.status;
}

static void on_pool_closed(void *data)
{
    *(int *)data = 1;
}

/* The enqueue statement inside a pipelined batch commits with it or not at all. */
static void test_enqueue_commits_with_its_batch(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    db_pg_options_t options = {.conninfo = cfg.database.url, .connections = 1};
    db_pg_pool_t *pool = db_pg_pool_new(&loop, &options);
    jobs_enqueue_t job = {.kind = "t.count", .payload = "{\"n\":5}", .unique_key = "batch-test"};
    db_query_t queries[2];
    jobs_enqueue_query(&job, &cfg, &queries[0]);
    const char *bad[] = {"not a number"};
    queries[1] = (db_query_t){.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = bad};
    assert_int_equal(run_batch(pool, &loop, queries, 2), DB_ERR_QUERY);
    assert_int_equal(sql_count("SELECT count(*) FROM jobs"), 0);
    const char *good[] = {"1"};
    queries[1].values = good;
    assert_int_equal(run_batch(pool, &loop, queries, 2), DB_OK);
    assert_int_equal(sql_count("SELECT count(*) FROM jobs WHERE unique_key = 'batch-test'"), 1);
    int closed = 0;
    db_pg_pool_close(pool, on_pool_closed, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* --------------------------------------------------------------- email ---- */

static char *find_message_in(const char *dir, const char *to)
{
    return harness_mail_find(dir, to, 0);
}

static char *find_message(const char *to)
{
    return harness_mail_find(NULL, to, 0);
}

static int count_messages(const char *to)
{
    return harness_mail_count(to);
}

static void qp_decode(char *s)
{
    harness_qp_decode(s);
}

static char *unique_address(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "%s-%d-%lld@example.com", tag, getpid(), harness_now_ms());
    return buf;
}

static char *enqueue_email(const char *kind, const char *to, const char *token)
{
    char payload[512];
    snprintf(payload, sizeof(payload), "{\"to\":\"%s\",\"token\":\"%s\"}", to, token);
    return enqueue(kind, payload);
}

static void assert_header_once(const char *message, const char *header)
{
    const char *first = strstr(message, header);
    if (first == NULL || strstr(first + 1, header) != NULL)
        fail_msg("header '%s' not present exactly once", header);
}

static void assert_well_formed(char *message, const char *to, const char *link)
{
    char to_header[200];
    snprintf(to_header, sizeof(to_header), "\r\nTo: %s\r\n", to);
    assert_header_once(message, to_header);
    assert_header_once(message, "\r\nFrom: hydrant <no-reply@localhost>\r\n");
    assert_header_once(message, "\r\nDate: ");
    assert_header_once(message, "\r\nMessage-ID: <");
    assert_header_once(message, "\r\nSubject: ");
    assert_header_once(message, "\r\nMIME-Version: 1.0\r\n");
    assert_header_once(message, "Content-Type: multipart/alternative;");
    assert_header_once(message, "Content-Type: text/plain; charset=utf-8");
    assert_header_once(message, "Content-Type: text/html; charset=utf-8");
    for (const char *p = message; (p = strchr(p, '\n')) != NULL; p++)
        if (p == message || p[-1] != '\r')
            fail_msg("bare LF in the message");
    qp_decode(message);
    /* the link in the plain-text part and as an href in the HTML part */
    const char *first = strstr(message, link);
    assert_non_null(first);
    char href[300];
    snprintf(href, sizeof(href), "href=\"%s\"", link);
    assert_non_null(strstr(message, href));
}

static void test_email_delivered_well_formed(void **state)
{
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char to[128], reset_to[128];
    unique_address(to, sizeof(to), "confirm");
    unique_address(reset_to, sizeof(reset_to), "reset");
    char *id = enqueue_email("email.confirmation", to, "tok_ABC-123");
    char *reset_id = enqueue_email("email.password_reset", reset_to, "resetTOKEN");
    assert_true(wait_state(id, "succeeded", 20000));
    assert_true(wait_state(reset_id, "succeeded", 20000));
    pool_finish(pool);
    char *message = find_message(to);
    assert_non_null(message);
    assert_well_formed(message, to, "https://hydrant.test/api/v1/auth/confirm?token=tok_ABC-123");
    free(message);
    message = find_message(reset_to);
    assert_non_null(message);
    assert_well_formed(message, reset_to, "https://hydrant.test/reset-password?token=resetTOKEN");
    free(message);
    /* the one-time token does not outlive the delivery in the database */
    char scrubbed[200];
    snprintf(scrubbed, sizeof(scrubbed), "{\"to\": \"%s\"}", to);
    assert_job(id, "payload", scrubbed);
    free(id);
    free(reset_id);
    jobs_registry_free(registry);
}

static void set_sink_mode(const char *mode)
{
    harness_system("echo %s > %s/smtp/mail/mode", mode, harness_env("HYDRANT_TEST_SERVICES_DIR"));
}

/* A 4xx reply is retried, and the message is delivered once the server takes it. */
static void test_email_tempfail_retried_then_delivered_once(void **state)
{
    char to[128];
    unique_address(to, sizeof(to), "tempfail");
    set_sink_mode("tempfail");
    jobs_registry_t *registry = registry_new();
    cfg.jobs.retry_base_ms = 300;
    cfg.jobs.retry_max_ms = 300;
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char *id = enqueue_email("email.confirmation", to, "t1");
    assert_true(wait_state(id, "retrying", 20000));
    char *error = job_value(id, "error");
    assert_non_null(error);
    assert_non_null(strstr(error, "451"));
    free(error);
    set_sink_mode("accept");
    assert_true(wait_state(id, "succeeded", 20000));
    pool_finish(pool);
    assert_int_equal(count_messages(to), 1);
    free(id);
    jobs_registry_free(registry);
}

/* SMTP server gone: retried (connection failures are transient), then delivered once. */
static void test_email_server_down_then_up(void **state)
{
    const char *dir = harness_env("HYDRANT_TEST_SERVICES_DIR");
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
    char to[128];
    unique_address(to, sizeof(to), "down");
    assert_int_equal(harness_system("%s/scripts/services.sh smtp-stop %s", src, dir), 0);
    jobs_registry_t *registry = registry_new();
    cfg.jobs.retry_base_ms = 300;
    cfg.jobs.retry_max_ms = 300;
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char *id = enqueue_email("email.password_reset", to, "t2");
    assert_true(wait_state(id, "retrying", 20000));
    assert_int_equal(harness_system("%s/scripts/services.sh smtp-start %s >/dev/null", src, dir), 0);
    assert_true(wait_state(id, "succeeded", 30000));
    pool_finish(pool);
    assert_int_equal(count_messages(to), 1);
    free(id);
    jobs_registry_free(registry);
}

/* Waits (bounded) until the job's attempt count reaches `attempt`; returns 1 if it did. */
static int wait_attempt(const char *id, int attempt, int timeout_ms)
{
    for (long long deadline = harness_now_ms() + timeout_ms; harness_now_ms() < deadline; usleep(20 * 1000)) {
        char *now = job_value(id, "attempt");
        int reached = now != NULL && atoi(now) >= attempt;
        free(now);
        if (reached)
            return 1;
    }
    return 0;
}

/* HYDRANT_JOBS_KINDS alone, as cfg_apply_env reads it. */
static const char *outage_kinds_env(const char *name)
{
    return strcmp(name, "HYDRANT_JOBS_KINDS") == 0
               ? "{email.confirmation: {max-attempts: 60, retry-base-ms: 50, retry-max-ms: 250}}"
               : NULL;
}

/* Issue 11 finding 13: an SMTP outage longer than five attempts made confirmation emails
 * dead. The kind's own schedule (jobs.kinds) is honoured: its attempts at enqueue, its
 * backoff when retried (the jobs.* defaults here would wait a minute after the first
 * failure, and allow five attempts); the email outlives the outage and is delivered once. */
static void test_email_outlives_outage_with_kind_schedule(void **state)
{
    const char *dir = harness_env("HYDRANT_TEST_SERVICES_DIR");
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
    char to[128];
    unique_address(to, sizeof(to), "outage");
    cfg.jobs.max_attempts = 5;
    cfg.jobs.retry_base_ms = 60000;
    cfg.jobs.retry_max_ms = 60000;
    char err[CFG_ERR_LEN];
    assert_int_equal(cfg_apply_env(&cfg, outage_kinds_env, err, sizeof(err)), 0);
    assert_int_equal(harness_system("%s/scripts/services.sh smtp-stop %s", src, dir), 0);
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char *id = enqueue_email("email.confirmation", to, "t-outage");
    assert_job(id, "max_attempts", "60");
    int outlived = wait_attempt(id, 7, 20000); /* two attempts past the old five, still trying */
    char *state_now = job_value(id, "state");
    assert_int_equal(harness_system("%s/scripts/services.sh smtp-start %s >/dev/null", src, dir), 0);
    int delivered = wait_state(id, "succeeded", 30000);
    pool_finish(pool);
    assert_true(outlived);
    assert_true(strcmp(state_now, "retrying") == 0 || strcmp(state_now, "running") == 0);
    assert_true(delivered);
    assert_int_equal(count_messages(to), 1);
    free(state_now);
    free(id);
    jobs_registry_free(registry);
}

/* A 5xx reply is permanent: dead at once, with the server's reply in the error. */
static void test_email_permfail_dead_with_reply(void **state)
{
    char to[128];
    unique_address(to, sizeof(to), "permfail");
    set_sink_mode("permfail");
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char *id = enqueue_email("email.confirmation", to, "t3");
    char *bad = enqueue_email("email.confirmation", "bad\\r\\nBcc: x@y.z", "t4");
    assert_true(wait_state(id, "dead", 20000));
    assert_true(wait_state(bad, "dead", 20000));
    pool_finish(pool);
    set_sink_mode("accept");
    assert_job(id, "attempt", "1");
    char *error = job_value(id, "error");
    assert_non_null(error);
    assert_non_null(strstr(error, "550 5.1.1 sink says no such user"));
    assert_null(strstr(error, "t3"));
    free(error);
    assert_int_equal(count_messages(to), 0);
    free(id);
    free(bad);
    jobs_registry_free(registry);
}

/* A sink of the test's own that requires STARTTLS and a login: the message goes through
 * with the right password (server verified against the development certificate), and a
 * refused login (535) is permanent. */
static void test_email_starttls_and_auth(void **state)
{
    const char *services = harness_env("HYDRANT_TEST_SERVICES_DIR");
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
    char tls[512], mail[512];
    snprintf(tls, sizeof(tls), "%s/tls", services);
    snprintf(mail, sizeof(mail), "%s/smtp-tls-%d", services, getpid());
    assert_int_equal(harness_system("%s/scripts/dev-cert.sh %s >/dev/null && rm -rf %s && mkdir -p %s", src,
                                    tls, mail, mail),
                     0);
    int port = harness_free_port();
    assert_int_equal(harness_system("/usr/bin/python3 %s/scripts/smtp_sink.py --port %d --dir %s --tls-cert "
                                    "%s/cert.pem --tls-key %s/key.pem --auth mailer:s3cret >%s/log 2>&1 & "
                                    "echo $! > %s/pid",
                                    src, port, mail, tls, tls, mail, mail),
                     0);
    int up = 0;
    for (long long deadline = harness_now_ms() + 10000; !up && harness_now_ms() < deadline; usleep(50 * 1000))
        up = harness_system("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", port) == 0;
    assert_true(up);
    char url[256], ca[600];
    snprintf(url, sizeof(url), "smtp://mailer:s3cret@127.0.0.1:%d", port);
    snprintf(ca, sizeof(ca), "%s/cert.pem", tls);
    char *saved_url = cfg.smtp.url;
    cfg.smtp.url = url;
    cfg.smtp.starttls = 2;
    cfg.smtp.ca_file = ca;
    jobs_registry_t *registry = registry_new();
    jobs_pool_t *pool = pool_start(registry, 1, 0, 0);
    char to[128];
    unique_address(to, sizeof(to), "tls");
    char *id = enqueue_email("email.confirmation", to, "tls-token");
    int delivered = wait_state(id, "succeeded", 20000);
    pool_finish(pool);
    snprintf(url, sizeof(url), "smtp://mailer:wrong@127.0.0.1:%d", port);
    pool = pool_start(registry, 1, 0, 0);
    char *refused = enqueue_email("email.confirmation", to, "tls-token-2");
    int dead = wait_state(refused, "dead", 20000);
    pool_finish(pool);
    cfg.smtp.url = saved_url;
    cfg.smtp.starttls = 0;
    cfg.smtp.ca_file = NULL;
    char *message = find_message_in(mail, to);
    char *error = job_value(refused, "error");
    harness_system("kill $(cat %s/pid) 2>/dev/null", mail);
    assert_true(delivered);
    assert_non_null(message);
    assert_non_null(strstr(message, "tls-token"));
    assert_true(dead);
    assert_non_null(error);
    assert_non_null(strstr(error, "535"));
    assert_null(strstr(error, "wrong"));
    free(message);
    free(error);
    free(id);
    free(refused);
    jobs_registry_free(registry);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_thousand_jobs_run_exactly_once, setup),
        cmocka_unit_test_setup(test_retry_then_succeed, setup),
        cmocka_unit_test_setup(test_dead_after_max_attempts_and_permanent, setup),
        cmocka_unit_test_setup(test_cancel_and_retry, setup),
        cmocka_unit_test_setup(test_scheduled_job, setup),
        cmocka_unit_test_setup(test_unique_key, setup),
        cmocka_unit_test_setup(test_notification_wakes_idle_worker, setup),
        cmocka_unit_test_setup(test_shutdown_releases_running_jobs, setup),
        cmocka_unit_test_setup(test_enqueue_commits_with_its_batch, setup),
        cmocka_unit_test_setup(test_retention_purges_old_finished_jobs, setup),
        cmocka_unit_test_setup(test_database_restart_recovers, setup),
        cmocka_unit_test_setup(test_periodic_auth_purge, setup),
        cmocka_unit_test_setup(test_email_delivered_well_formed, setup),
        cmocka_unit_test_setup(test_email_tempfail_retried_then_delivered_once, setup),
        cmocka_unit_test_setup(test_email_server_down_then_up, setup),
        cmocka_unit_test_setup(test_email_outlives_outage_with_kind_schedule, setup),
        cmocka_unit_test_setup(test_email_permfail_dead_with_reply, setup),
        cmocka_unit_test_setup(test_email_starttls_and_auth, setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
