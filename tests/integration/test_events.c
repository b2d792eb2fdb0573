/*
 * The events of jobs, files and revocations on the notification stream, against the real
 * server over HTTP/2 and HTTP/1.1, with jobs run by a separate `hydrant worker` process (the
 * server runs none, so that the test decides when a job may start): an upload's file and job
 * seen from queued to succeeded with the data GET shows; a failing job, retried through the
 * API between the worker's runs; jobs cancelled through the API and the command line; a job
 * released at a worker's shutdown, and one whose worker died and whose lease ran out; an
 * admin's and the command line's disabling, and the account's deletion, ending the user's
 * streams; the ordering guard dropping a late event; and a worker whose Redis is down
 * finishing its jobs, then publishing again (into the backlog) once Redis is back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db/db.h"
#include "harness.h"
#include "harness_sse.h"

#define PASSWORD "correct horse battery staple"

static harness_server_t server;
static harness_server_t worker; /* pid 0 when not running */
static PGconn *db;
static char upload_dir[256], upload_env[300];
static harness_account_t alice, admin;
static int revived_port; /* the Redis test_redis_down starts, stopped by the teardown too */

static const char *server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024",
                                   "HYDRANT_ARGON2_ITERATIONS=1",
                                   "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                   "HYDRANT_REALTIME_HEARTBEAT_MS=200",
                                   "HYDRANT_REALTIME_POLL_MS=20",
                                   "HYDRANT_JOBS_ENABLED=false", /* jobs run in `worker` */
                                   "HYDRANT_JOBS_POLL_INTERVAL_MS=100",
                                   "HYDRANT_TEST_JOBS=1",
                                   upload_env,
                                   NULL};

static void worker_start(void)
{
    assert_int_equal(harness_worker_start(&worker, server_env), 0);
}

static void worker_stop(void)
{
    if (worker.pid > 0)
        assert_int_equal(harness_server_stop(&worker), 0);
    worker.pid = 0;
}

/* method path as who over HTTP/2; the answer's JSON into *doc when doc is not NULL. */
static long call(const harness_account_t *who, const char *method, const char *path, const char *type,
                 const char *body, json_t **doc)
{
    char url[512], content_type[128];
    snprintf(url, sizeof(url), "%s%s", server.https_base, path);
    snprintf(content_type, sizeof(content_type), "Content-Type: %s", type);
    const char *headers[] = {who->auth, content_type, NULL};
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP2, method, url, headers, body, body != NULL ? strlen(body) : 0);
    if (doc != NULL)
        *doc = res.body != NULL ? json_loads(res.body, 0, NULL) : NULL;
    long status = res.status;
    harness_response_free(&res);
    return status;
}

static harness_sse_t *stream(int protocol, const harness_account_t *who, const char *last_id, int want)
{
    char header[64];
    if (last_id != NULL)
        snprintf(header, sizeof(header), "Last-Event-ID: %s", last_id);
    harness_sse_t *rd = harness_sse_open(&server, protocol, who->auth, last_id != NULL ? header : NULL, want);
    assert_non_null(rd);
    return rd;
}

/* Event i of rd: its name is want_name and its data's "state" want_state, about object id;
 * returns the data (json_decref it). */
static json_t *event_is(const harness_sse_t *rd, int i, const char *want_name, const char *id,
                        const char *want_state)
{
    assert_true(i < rd->nevents);
    assert_string_equal(rd->names[i], want_name);
    json_t *data = json_loads(rd->data[i], 0, NULL);
    assert_non_null(data);
    assert_string_equal(json_string_value(json_object_get(data, "id")), id);
    assert_string_equal(json_string_value(json_object_get(data, "state")), want_state);
    return data;
}

static void event_check(const harness_sse_t *rd, int i, const char *want_name, const char *id,
                        const char *want_state)
{
    json_decref(event_is(rd, i, want_name, id, want_state));
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(upload_dir, sizeof(upload_dir), "/tmp/hydrant-test-events.XXXXXX");
    if (mkdtemp(upload_dir) == NULL)
        return -1;
    snprintf(upload_env, sizeof(upload_env), "HYDRANT_UPLOAD_DIR=%s", upload_dir);
    if (harness_server_start_with_db(&server, server_env, &db) != 0 ||
        harness_account_create(&alice, &server, db, server_env, "events-alice", "user", PASSWORD) != 0 ||
        harness_account_create(&admin, &server, db, server_env, "events-admin", "admin", PASSWORD) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (worker.pid > 0 && harness_server_alive(&worker)) {
        kill(worker.pid, SIGKILL);
        waitpid(worker.pid, NULL, 0);
    }
    if (revived_port > 0)
        harness_system("redis-cli -p %d shutdown nosave >/dev/null 2>&1", revived_port);
    PQfinish(db);
    int rc = harness_server_stop(&server) == 0 ? 0 : -1;
    harness_system("rm -rf '%s'", upload_dir);
    return rc;
}

/* A job of alice's of kind with payload (JSON), due after `delay` (an interval), its id into
 * out; the workers are woken. */
static void insert_job(char out[40], const char *kind, const char *payload, const char *delay)
{
    const char *values[] = {alice.id, kind, payload, delay};
    PGresult *res =
        harness_sql(db,
                    "INSERT INTO jobs (kind, queue, payload, owner_id, max_attempts, run_at) VALUES "
                    "($2, 'short', $3::jsonb, $1::uuid, 3, now() + $4::interval) "
                    "RETURNING id, pg_notify('hydrant_jobs', 'short')",
                    4, values);
    snprintf(out, 40, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Waits (bounded) until the job is in state; 1 when it got there. */
static int job_reaches(const char *id, const char *state, int timeout_ms)
{
    const char *values[] = {id};
    for (long long deadline = harness_now_ms() + timeout_ms; harness_now_ms() < deadline; usleep(20000)) {
        PGresult *res = harness_sql(db, "SELECT state FROM jobs WHERE id = $1::uuid", 1, values);
        int there = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), state) == 0;
        PQclear(res);
        if (there)
            return 1;
    }
    return 0;
}

/* An upload's file and its file.process job: file.updated (processing) and job.updated
 * (queued) from the API server; with a worker started then, job.updated (running),
 * file.updated (ready), job.updated (succeeded) from the worker, resumed by Last-Event-ID; on
 * HTTP/1.1 and HTTP/2 streams alike, each the data GET shows. */
static void test_upload_life(void **state)
{
    (void)state;
    harness_sse_t *first[2] = {stream(HARNESS_HTTP1, &alice, NULL, 2),
                               stream(HARNESS_HTTP2, &alice, NULL, 2)};
    json_t *doc = NULL;
    assert_int_equal(call(&alice, "POST", "/api/v1/files?name=life.csv", "text/csv", "a,b\n1,2\n", &doc),
                     201);
    json_t *file = json_object_get(doc, "file");
    char file_id[40], job_id[40];
    snprintf(file_id, sizeof(file_id), "%s", json_string_value(json_object_get(file, "id")));
    snprintf(job_id, sizeof(job_id), "%s", json_string_value(json_object_get(file, "job_id")));
    json_decref(doc);
    long long last[2];
    for (int p = 0; p < 2; p++) {
        harness_sse_join(first[p]);
        assert_int_equal(first[p]->status, 200);
        assert_int_equal(first[p]->nevents, 2);
        /* the two objects' events may come in either order */
        int f = strcmp(first[p]->names[0], "file.updated") == 0 ? 0 : 1;
        event_check(first[p], f, "file.updated", file_id, "processing");
        event_check(first[p], 1 - f, "job.updated", job_id, "queued");
        last[p] = first[p]->ids[1];
        free(first[p]);
    }
    assert_int_equal(last[0], last[1]);

    char last_id[32];
    snprintf(last_id, sizeof(last_id), "%lld", last[0]);
    harness_sse_t *rest[2] = {stream(HARNESS_HTTP1, &alice, last_id, 3),
                              stream(HARNESS_HTTP2, &alice, last_id, 3)};
    worker_start();
    for (int p = 0; p < 2; p++) {
        harness_sse_join(rest[p]);
        assert_int_equal(rest[p]->nevents, 3);
        assert_int_equal(rest[p]->ids[0], last[0] + 1);
        event_check(rest[p], 0, "job.updated", job_id, "running");
        json_t *ready = event_is(rest[p], 1, "file.updated", file_id, "ready");
        assert_string_equal(json_string_value(json_object_get(json_object_get(ready, "analysis"), "format")),
                            "csv");
        json_decref(ready);
        json_t *done = event_is(rest[p], 2, "job.updated", job_id, "succeeded");
        /* the bare Job, as GET shows it */
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/jobs/%s", job_id);
        assert_int_equal(call(&alice, "GET", path, "application/json", NULL, &doc), 200);
        assert_true(json_equal(done, json_object_get(doc, "job")));
        json_decref(doc);
        json_decref(done);
        free(rest[p]);
    }
}

/* A job that fails for good: running, dead (with its error) from the worker; retried through
 * the API while no worker runs: queued from the API server; then running and dead again from
 * the next worker. */
static void test_failing_job(void **state)
{
    (void)state;
    if (worker.pid <= 0)
        worker_start();
    harness_sse_t *rd[2] = {stream(HARNESS_HTTP1, &alice, NULL, 2), stream(HARNESS_HTTP2, &alice, NULL, 2)};
    char job_id[40];
    insert_job(job_id, "test.fail", "{\"times\": 100, \"permanent\": true}", "0");
    long long last = 0;
    for (int p = 0; p < 2; p++) {
        harness_sse_join(rd[p]);
        assert_int_equal(rd[p]->nevents, 2);
        event_check(rd[p], 0, "job.updated", job_id, "running");
        json_t *dead = event_is(rd[p], 1, "job.updated", job_id, "dead");
        assert_string_equal(json_string_value(json_object_get(dead, "error")), "test failure on attempt 1");
        json_decref(dead);
        last = rd[p]->ids[1];
        free(rd[p]);
    }
    worker_stop();

    harness_sse_t *queued = stream(HARNESS_HTTP2, &alice, NULL, 1);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/admin/jobs/%s/retry", job_id);
    assert_int_equal(call(&admin, "POST", path, "application/json", NULL, NULL), 202);
    harness_sse_join(queued);
    assert_int_equal(queued->nevents, 1);
    event_check(queued, 0, "job.updated", job_id, "queued");
    assert_true(queued->ids[0] > last);
    char last_id[32];
    snprintf(last_id, sizeof(last_id), "%lld", queued->ids[0]);
    free(queued);

    harness_sse_t *again = stream(HARNESS_HTTP1, &alice, last_id, 2);
    worker_start();
    harness_sse_join(again);
    assert_int_equal(again->nevents, 2);
    event_check(again, 0, "job.updated", job_id, "running");
    event_check(again, 1, "job.updated", job_id, "dead");
    free(again);
}

/* Cancelled through the API by its owner, and by an operator with `hydrant jobs cancel`. */
static void test_cancelled(void **state)
{
    (void)state;
    char by_api[40], by_cli[40];
    insert_job(by_api, "test.noop", "{}", "1 day"); /* queued, not due */
    insert_job(by_cli, "test.noop", "{}", "1 day");
    harness_sse_t *rd = stream(HARNESS_HTTP1, &alice, NULL, 2);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/jobs/%s/cancel", by_api);
    assert_int_equal(call(&alice, "POST", path, "application/json", NULL, NULL), 202);
    char args[128], out[2048];
    snprintf(args, sizeof(args), "jobs cancel %s", by_cli);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 0);
    harness_sse_join(rd);
    assert_int_equal(rd->nevents, 2);
    event_check(rd, 0, "job.updated", by_api, "cancelled");
    event_check(rd, 1, "job.updated", by_cli, "cancelled");
    free(rd);
}

/* A job still running when its worker is told to stop goes back to the queue: running, then
 * queued again. */
static void test_released_on_shutdown(void **state)
{
    (void)state;
    worker_stop();
    const char *env[] = {"HYDRANT_TEST_JOBS=1", "HYDRANT_JOBS_SHUTDOWN_TIMEOUT_MS=200", upload_env, NULL};
    assert_int_equal(harness_worker_start(&worker, env), 0);
    harness_sse_t *rd = stream(HARNESS_HTTP2, &alice, NULL, 2);
    char job_id[40];
    insert_job(job_id, "test.sleep", "{\"ms\": 20000}", "0");
    assert_true(job_reaches(job_id, "running", 10000));
    worker_stop();
    harness_sse_join(rd);
    assert_int_equal(rd->nevents, 2);
    event_check(rd, 0, "job.updated", job_id, "running");
    event_check(rd, 1, "job.updated", job_id, "queued");
    free(rd);
    const char *id[] = {job_id};
    PQclear(harness_sql(db, "DELETE FROM jobs WHERE id = $1::uuid", 1, id)); /* no later worker runs it */
}

/* A job whose worker died: running; retrying once the lease keeper of another worker finds
 * its lease expired; then running and succeeded on that worker. */
static void test_lost_worker(void **state)
{
    (void)state;
    worker_stop();
    const char *env[] = {"HYDRANT_TEST_JOBS=1", "HYDRANT_JOBS_LEASE_SECONDS=1", upload_env, NULL};
    assert_int_equal(harness_worker_start(&worker, env), 0);
    harness_sse_t *rd = stream(HARNESS_HTTP1, &alice, NULL, 4);
    char job_id[40];
    insert_job(job_id, "test.sleep", "{\"ms\": 1500}", "0");
    assert_true(job_reaches(job_id, "running", 10000));
    kill(worker.pid, SIGKILL);
    waitpid(worker.pid, NULL, 0);
    worker.pid = 0;
    assert_int_equal(harness_worker_start(&worker, env), 0);
    harness_sse_join(rd);
    assert_int_equal(rd->nevents, 4);
    event_check(rd, 0, "job.updated", job_id, "running");
    json_t *lost = event_is(rd, 1, "job.updated", job_id, "retrying");
    assert_string_equal(json_string_value(json_object_get(lost, "error")),
                        "lease expired: the worker running it was lost");
    json_decref(lost);
    event_check(rd, 2, "job.updated", job_id, "running");
    event_check(rd, 3, "job.updated", job_id, "succeeded");
    free(rd);
    worker_stop();
}

/* The user's streams on both protocols end with session.revoked once they are disabled (by an
 * admin, by an operator) or their account is deleted. */
static void assert_streams_end(harness_sse_t *rd[2])
{
    for (int p = 0; p < 2; p++) {
        harness_sse_join(rd[p]);
        assert_int_equal(rd[p]->curl_code, CURLE_OK); /* ended by the server, not the 10 s limit */
        assert_int_equal(rd[p]->nevents, 1);
        assert_string_equal(rd[p]->names[0], "session.revoked");
        json_t *data = json_loads(rd[p]->data[0], 0, NULL);
        assert_non_null(json_string_value(json_object_get(data, "session_id")));
        json_decref(data);
        free(rd[p]);
    }
}

static void test_revocations_end_streams(void **state)
{
    (void)state;
    harness_account_t bob, carol, dave;
    assert_int_equal(harness_account_create(&bob, &server, db, server_env, "events-bob", "user", PASSWORD),
                     0);
    assert_int_equal(
        harness_account_create(&carol, &server, db, server_env, "events-carol", "user", PASSWORD), 0);
    assert_int_equal(harness_account_create(&dave, &server, db, server_env, "events-dave", "user", PASSWORD),
                     0);
    /* by an admin, through the API */
    harness_sse_t *rd[2] = {stream(HARNESS_HTTP1, &bob, NULL, HARNESS_SSE_MAX_EVENTS),
                            stream(HARNESS_HTTP2, &bob, NULL, HARNESS_SSE_MAX_EVENTS)};
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/admin/users/%s", bob.id);
    assert_int_equal(call(&admin, "PATCH", path, "application/json", "{\"disabled\":true}", NULL), 200);
    assert_streams_end(rd);
    /* by an operator, with `hydrant user disable` */
    rd[0] = stream(HARNESS_HTTP1, &carol, NULL, HARNESS_SSE_MAX_EVENTS);
    rd[1] = stream(HARNESS_HTTP2, &carol, NULL, HARNESS_SSE_MAX_EVENTS);
    char args[128], out[512];
    snprintf(args, sizeof(args), "user disable %s", carol.id);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), server_env, args), 0);
    assert_streams_end(rd);
    /* by the user, deleting the account */
    rd[0] = stream(HARNESS_HTTP1, &dave, NULL, HARNESS_SSE_MAX_EVENTS);
    rd[1] = stream(HARNESS_HTTP2, &dave, NULL, HARNESS_SSE_MAX_EVENTS);
    assert_int_equal(
        call(&dave, "DELETE", "/api/v1/me", "application/json", "{\"password\":\"" PASSWORD "\"}", NULL),
        204);
    assert_streams_end(rd);
}

/* An event older than one already published about its object is dropped; a newer one goes. */
static void test_ordering_guard(void **state)
{
    (void)state;
    db_events_pub_t *pub = db_events_pub_new(harness_env("HYDRANT_TEST_REDIS_URL"), 2000, "test_events");
    assert_non_null(pub);
    char object[64];
    snprintf(object, sizeof(object), "job:guard-%d", (int)getpid());
    const char *user = alice.id;
    harness_sse_t *rd = stream(HARNESS_HTTP2, &alice, NULL, 4);
    assert_int_equal(db_events_pub(pub, "job.updated", "{\"v\":5}", object, 5, &user, 1), 0);
    assert_int_equal(db_events_pub(pub, "job.updated", "{\"v\":3}", object, 3, &user, 1), 1);
    assert_int_equal(db_events_pub(pub, "job.updated", "{\"v\":6}", object, 6, &user, 1), 0);
    /* the same pipelined, as a worker sends a batch's events */
    assert_int_equal(db_events_pub_add(pub, "job.updated", "{\"v\":7}", object, 7, &user, 1), 0);
    assert_int_equal(db_events_pub_add(pub, "job.updated", "{\"v\":4}", object, 4, &user, 1), 0);
    assert_int_equal(db_events_pub_add(pub, "job.updated", "{\"v\":8}", object, 8, &user, 1), 0);
    assert_int_equal(db_events_pub_flush(pub), 1);
    harness_sse_join(rd);
    assert_int_equal(rd->nevents, 4);
    static const char *const sent[] = {"{\"v\":5}", "{\"v\":6}", "{\"v\":7}", "{\"v\":8}"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(rd->data[i], sent[i]);
        if (i > 0)
            assert_int_equal(rd->ids[i], rd->ids[i - 1] + 1); /* the dropped ones took no id */
    }
    free(rd);
    db_events_pub_free(pub);
}

/* How many times text occurs in the file at path. */
static int file_count(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    int count = 0;
    for (const char *p = strstr(buf, text); p != NULL; p = strstr(p + 1, text))
        count++;
    return count;
}

/* A worker whose Redis is down runs its jobs all the same (their events are lost), says so
 * once per outage and thread, and publishes again once Redis is back. */
static void test_redis_down(void **state)
{
    (void)state;
    worker_stop(); /* only the worker without Redis takes jobs */
    int port = revived_port = harness_free_port();
    char redis_env[128], pidfile[300];
    snprintf(redis_env, sizeof(redis_env), "HYDRANT_REDIS_URL=redis://127.0.0.1:%d/0", port);
    snprintf(pidfile, sizeof(pidfile), "%s/redis.pid", upload_dir);
    const char *env[] = {
        "HYDRANT_TEST_JOBS=1",          upload_env, redis_env, "HYDRANT_JOBS_POLL_INTERVAL_MS=100",
        "HYDRANT_JOBS_WORKERS_SHORT=1", NULL};
    harness_server_t down;
    assert_int_equal(harness_worker_start(&down, env), 0);
    char id[40];
    insert_job(id, "test.noop", "{}", "0");
    assert_true(job_reaches(id, "succeeded", 10000));
    assert_true(file_count(down.stderr_path, "cannot publish events") >= 1);
    insert_job(id, "test.noop", "{}", "0");
    assert_true(job_reaches(id, "succeeded", 10000));

    /* Redis comes back on that port: the worker publishes again once its backoff lets it try
     * (a few seconds at most) */
    assert_int_equal(harness_system("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no "
                                    "--daemonize yes --pidfile %s >/dev/null",
                                    port, pidfile),
                     0);
    for (int i = 0; i < 100 && harness_system("redis-cli -p %d ping >/dev/null 2>&1", port) != 0; i++)
        usleep(50000);
    /* the worker's next events land in that Redis's backlog of alice's */
    int published = 0;
    for (int i = 0; i < 40 && !published; i++) {
        insert_job(id, "test.noop", "{}", "0");
        assert_true(job_reaches(id, "succeeded", 10000));
        published =
            harness_system(
                "redis-cli -p %d XRANGE hydrant:rt:log:%s - + | grep -Eq '\"state\" ?: ?\"succeeded\"'", port,
                alice.id) == 0;
        if (!published)
            usleep(200000);
    }
    assert_true(published);
    assert_true(file_count(down.stderr_path, "publishes events again") >= 1);
    assert_int_equal(harness_server_stop(&down), 0);
    harness_system("redis-cli -p %d shutdown nosave >/dev/null 2>&1", port);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_life),    cmocka_unit_test(test_failing_job),
        cmocka_unit_test(test_cancelled),      cmocka_unit_test(test_released_on_shutdown),
        cmocka_unit_test(test_lost_worker),    cmocka_unit_test(test_revocations_end_streams),
        cmocka_unit_test(test_ordering_guard), cmocka_unit_test(test_redis_down),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
