/*
 * The pipelined PostgreSQL pool (src/db/pg_pool.c) against a real server, on a libuv loop
 * of the test's own: many batches at once, results going to the right caller, a failing
 * batch isolated from its neighbours, all-or-nothing batches, limits, reconnection after the
 * server kills us, stuck connections timing out, and closing with no handle left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db/db.h"
#include "harness.h"

static uv_loop_t loop;

/* The pools connect to a database of this test's own, so that killing or stopping "their"
 * backends never touches another client of the test server. */
#define TEST_DB "hydrant_pg_pool_test"
static char test_url[512];

/* ------------------------------------------------------------------ helpers ---- */

/* Runs the loop until *counter reaches target or bound_ms passes (never forever). */
static void run_until(const int *counter, int target, int bound_ms)
{
    long long deadline = harness_now_ms() + bound_ms;
    while (*counter < target && harness_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
}

static void on_spin_timer(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop for about ms milliseconds. */
static void spin(int ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_spin_timer, (uint64_t)ms, 0);
    run_until(&fired, 1, ms + 5000);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

/* Creates TEST_DB (once per server) and derives its URL from the fixture's. */
static int group_setup(void **state)
{
    (void)state;
    const char *url = harness_env("HYDRANT_TEST_DATABASE_URL");
    const char *slash = strrchr(url, '/');
    if (slash == NULL || strchr(slash, '?') != NULL)
        return -1;
    snprintf(test_url, sizeof(test_url), "%.*s/%s", (int)(slash - url), url, TEST_DB);
    PGconn *admin = PQconnectdb(url);
    PGresult *res = PQexec(admin, "CREATE DATABASE " TEST_DB);
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || (sqlstate != NULL && strcmp(sqlstate, "42P04") == 0);
    if (!ok)
        fprintf(stderr, "CREATE DATABASE: %s", PQerrorMessage(admin));
    PQclear(res);
    PQfinish(admin);
    return ok ? 0 : -1;
}

static int setup(void **state)
{
    (void)state;
    return uv_loop_init(&loop);
}

/* Every handle must be closed by the end of a test: uv_loop_close fails otherwise. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static db_pg_pool_t *pool_with(const char *conninfo, int connections, int max_in_flight, int query_timeout_ms,
                               int connect_timeout_ms)
{
    db_pg_options_t options = {
        .conninfo = conninfo,
        .connections = connections,
        .max_in_flight = max_in_flight,
        .query_timeout_ms = query_timeout_ms,
        .connect_timeout_ms = connect_timeout_ms,
    };
    db_pg_pool_t *pool = db_pg_pool_new(&loop, &options);
    assert_non_null(pool);
    return pool;
}

static void wait_ready(db_pg_pool_t *pool, int connections)
{
    for (long long deadline = harness_now_ms() + 10000;
         db_pg_ready_connections(pool) < connections && harness_now_ms() < deadline;)
        spin(10);
    assert_int_equal(db_pg_ready_connections(pool), connections);
}

static db_pg_pool_t *ready_pool(int connections)
{
    db_pg_pool_t *pool = pool_with(test_url, connections, 100000, 5000, 5000);
    wait_ready(pool, connections);
    return pool;
}

static void close_pool(db_pg_pool_t *pool)
{
    int closed = 0;
    db_pg_pool_close(pool, on_closed, &closed);
    assert_int_equal(closed, 0); /* from the loop, not from inside the call */
    run_until(&closed, 1, 5000);
    assert_int_equal(closed, 1);
}

/* A blocking connection of the test's own, not named "hydrant". */
static PGconn *admin_connect(void)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {test_url, "pg_pool_test", NULL};
    PGconn *admin = PQconnectdbParams(keys, values, 1);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    return admin;
}

static void admin_exec(PGconn *admin, const char *sql)
{
    PGresult *res = PQexec(admin, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(admin));
    PQclear(res);
}

/* Backend pids of the pool's connections (application_name is forced to "hydrant", the
 * database is this test's), once
 * exactly `expected` exist: backends of pools closed by earlier tests may take a moment to
 * go away. */
static void hydrant_pids(PGconn *admin, int *pids, int expected)
{
    int n = -1;
    for (long long deadline = harness_now_ms() + 5000; n != expected && harness_now_ms() < deadline;) {
        PGresult *res = PQexec(
            admin,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'hydrant' AND datname = '" TEST_DB
            "'");
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        n = PQntuples(res);
        for (int i = 0; i < n && i < expected; i++)
            pids[i] = atoi(PQgetvalue(res, i, 0));
        PQclear(res);
        if (n != expected)
            usleep(20 * 1000);
    }
    assert_int_equal(n, expected);
}

/* ---------------------------------------------------------------- callbacks ---- */

typedef struct {
    int done;
    int by_status[DB_ERR_CLOSED + 1];
    int nresults;
    char values[DB_PG_MAX_BATCH][16]; /* first column of the first row of each result */
    char sqlstate[6];
    char message[256];
} reply_t;

static void on_reply(void *data, const db_reply_t *reply)
{
    reply_t *r = data;
    r->done++;
    r->by_status[reply->status]++;
    if (reply->status == DB_OK) {
        r->nresults = reply->nresults;
        for (int i = 0; i < reply->nresults && i < DB_PG_MAX_BATCH; i++) {
            const PGresult *res = reply->results[i];
            const char *v =
                PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "?";
            snprintf(r->values[i], sizeof(r->values[i]), "%s", v);
        }
    } else {
        snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", reply->sqlstate != NULL ? reply->sqlstate : "");
        snprintf(r->message, sizeof(r->message), "%s", reply->message != NULL ? reply->message : "");
    }
}

static int submit_one(db_pg_pool_t *pool, db_stmt_id_t stmt, const char *value, reply_t *r)
{
    const char *values[] = {value};
    db_query_t q = {.stmt = stmt, .nparams = 1, .values = values};
    return db_pg_submit(pool, &q, 1, on_reply, r);
}

static int submit_echo(db_pg_pool_t *pool, const char *value, reply_t *r)
{
    return submit_one(pool, DB_STMT_ECHO_INT, value, r);
}

/* ------------------------------------------------------------------- basics ---- */

static void test_ping(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(2);
    assert_int_equal(db_pg_total_connections(pool), 2);
    reply_t r = {0};
    db_query_t ping = {.stmt = DB_STMT_PING};
    assert_int_equal(db_pg_submit(pool, &ping, 1, on_reply, &r), 0);
    assert_int_equal(r.done, 0); /* never inside submit */
    run_until(&r.done, 1, 5000);
    assert_int_equal(r.by_status[DB_OK], 1);
    assert_int_equal(r.nresults, 1);
    assert_string_equal(r.values[0], "1");
    close_pool(pool);
}

/* This database has no migrations: statements on missing tables fail alone, the others
 * are served, and once the table exists the statement is prepared at its next use. */
static void test_statement_on_missing_table_fails_alone(void **state)
{
    (void)state;
    PGconn *admin = admin_connect();
    admin_exec(admin, "DROP TABLE IF EXISTS jobs");
    db_pg_pool_t *pool = ready_pool(1);
    db_query_t depth = {.stmt = DB_STMT_JOB_DEPTH};
    db_query_t ping = {.stmt = DB_STMT_PING};
    reply_t failed = {0}, ok = {0};
    assert_int_equal(db_pg_submit(pool, &depth, 1, on_reply, &failed), 0);
    assert_int_equal(db_pg_submit(pool, &ping, 1, on_reply, &ok), 0);
    run_until(&ok.done, 1, 5000);
    run_until(&failed.done, 1, 5000);
    assert_int_equal(failed.by_status[DB_ERR_QUERY], 1);
    assert_string_equal(failed.sqlstate, "26000"); /* prepared statement does not exist */
    assert_int_equal(ok.by_status[DB_OK], 1);
    admin_exec(admin, "CREATE TABLE jobs (queue text, state text)");
    admin_exec(admin, "INSERT INTO jobs VALUES ('short', 'queued')");
    reply_t later = {0};
    assert_int_equal(db_pg_submit(pool, &depth, 1, on_reply, &later), 0);
    run_until(&later.done, 1, 5000);
    assert_int_equal(later.by_status[DB_OK], 1);
    assert_string_equal(later.values[0], "short");
    close_pool(pool);
    admin_exec(admin, "DROP TABLE jobs");
    PQfinish(admin);
}

static void test_batch_results_in_order(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(1);
    const char *seven[] = {"7"}, *nine[] = {"9"};
    db_query_t batch[] = {
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = seven},
        {.stmt = DB_STMT_PING},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = nine},
    };
    reply_t r = {0};
    assert_int_equal(db_pg_submit(pool, batch, 3, on_reply, &r), 0);
    run_until(&r.done, 1, 5000);
    assert_int_equal(r.by_status[DB_OK], 1);
    assert_int_equal(r.nresults, 3);
    assert_string_equal(r.values[0], "7");
    assert_string_equal(r.values[1], "1");
    assert_string_equal(r.values[2], "9");
    close_pool(pool);
}

/* Parameters given with lengths need not be NUL-terminated; a NUL inside is refused. */
static void test_parameters_with_lengths(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(1);
    char digits[] = {'4', '2', '9', '9'}; /* "42" is meant, no terminator after it */
    const char *values[] = {digits};
    int lengths[] = {2};
    db_query_t q = {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = values, .lengths = lengths};
    reply_t r = {0};
    assert_int_equal(db_pg_submit(pool, &q, 1, on_reply, &r), 0);
    run_until(&r.done, 1, 5000);
    assert_int_equal(r.by_status[DB_OK], 1);
    assert_string_equal(r.values[0], "42");

    const char *with_nul[] = {"4\0"
                              "2"};
    int three[] = {3};
    db_query_t bad = {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = with_nul, .lengths = three};
    assert_int_equal(db_pg_submit(pool, &bad, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_QUERY);
    spin(20);
    assert_int_equal(r.done, 1); /* a refused batch never calls back */
    close_pool(pool);
}

/* --------------------------------------------------------------- pipelining ---- */

/* Many requests, each with its own batch of 1..4 queries, all submitted before the loop
 * runs once: every one gets exactly its own results. */
typedef struct {
    reply_t reply;
    int n;
    char params[4][16];
    const char *values[4][1];
    db_query_t queries[4];
} request_t;

static void test_thousand_batches_at_once(void **state)
{
    (void)state;
    enum { NREQ = 1000 };
    db_pg_pool_t *pool = ready_pool(4);
    request_t *reqs = calloc(NREQ, sizeof(*reqs));
    assert_non_null(reqs);
    for (int i = 0; i < NREQ; i++) {
        request_t *q = &reqs[i];
        q->n = 1 + i % 4;
        for (int k = 0; k < q->n; k++) {
            snprintf(q->params[k], sizeof(q->params[k]), "%d", i * 10 + k);
            q->values[k][0] = q->params[k];
            q->queries[k] = (db_query_t){.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = q->values[k]};
        }
        assert_int_equal(db_pg_submit(pool, q->queries, q->n, on_reply, &q->reply), 0);
    }
    int done = 0;
    for (long long deadline = harness_now_ms() + 30000; done < NREQ && harness_now_ms() < deadline;) {
        uv_run(&loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < NREQ; i++)
            done += reqs[i].reply.done;
    }
    for (int i = 0; i < NREQ; i++) {
        request_t *q = &reqs[i];
        assert_int_equal(q->reply.done, 1);
        assert_int_equal(q->reply.by_status[DB_OK], 1);
        assert_int_equal(q->reply.nresults, q->n);
        for (int k = 0; k < q->n; k++)
            assert_string_equal(q->reply.values[k], q->params[k]);
    }
    free(reqs);
    close_pool(pool);
}

/* Batches far larger than the socket buffers: libpq cannot send them at once, so the pool
 * must watch for writable until they are out (and still read replies meanwhile). */
static void test_large_batches_are_flushed(void **state)
{
    (void)state;
    enum { NBATCH = 8, PAD = 1 << 20 };
    db_pg_pool_t *pool = ready_pool(1);
    char *params[NBATCH];
    reply_t replies[NBATCH];
    memset(replies, 0, sizeof(replies));
    for (int i = 0; i < NBATCH; i++) {
        /* int4 input skips leading spaces: a megabyte that still reads as one number. */
        params[i] = malloc(PAD + 16);
        assert_non_null(params[i]);
        memset(params[i], ' ', PAD);
        snprintf(params[i] + PAD, 16, "%d", 100 + i);
        assert_int_equal(submit_echo(pool, params[i], &replies[i]), 0);
    }
    for (int i = 0; i < NBATCH; i++)
        free(params[i]); /* copied by libpq before submit returned */
    run_until(&replies[NBATCH - 1].done, 1, 30000);
    for (int i = 0; i < NBATCH; i++) {
        char expected[16];
        snprintf(expected, sizeof(expected), "%d", 100 + i);
        assert_int_equal(replies[i].by_status[DB_OK], 1);
        assert_string_equal(replies[i].values[0], expected);
    }
    close_pool(pool);
}

/* Callbacks may submit again: a chain of 200 batches, each sent from the previous reply. */
typedef struct {
    db_pg_pool_t *pool;
    int done;
    int failed;
    long sum;
} chain_t;

static void on_chain(void *data, const db_reply_t *reply)
{
    chain_t *c = data;
    c->done++;
    if (reply->status != DB_OK) {
        c->failed++;
        return;
    }
    c->sum += atol(PQgetvalue(reply->results[0], 0, 0));
    if (c->done < 200) {
        char v[16];
        snprintf(v, sizeof(v), "%d", c->done + 1);
        const char *values[] = {v};
        db_query_t q = {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = values};
        if (db_pg_submit(c->pool, &q, 1, on_chain, c) != 0)
            c->failed++;
    }
}

static void test_submit_from_callback(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(2);
    chain_t c = {.pool = pool};
    const char *values[] = {"1"};
    db_query_t q = {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = values};
    assert_int_equal(db_pg_submit(pool, &q, 1, on_chain, &c), 0);
    run_until(&c.done, 200, 20000);
    assert_int_equal(c.done, 200);
    assert_int_equal(c.failed, 0);
    assert_int_equal(c.sum, 200 * 201 / 2);
    close_pool(pool);
}

/* ------------------------------------------------------- batch = transaction ---- */

static void test_failing_batch_is_isolated(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(1); /* one connection: the three share a pipeline */
    reply_t before = {0}, bad = {0}, after = {0};
    assert_int_equal(submit_echo(pool, "1", &before), 0);
    assert_int_equal(submit_echo(pool, "not a number", &bad), 0);
    assert_int_equal(submit_echo(pool, "2", &after), 0);
    run_until(&after.done, 1, 5000);
    assert_int_equal(before.by_status[DB_OK], 1);
    assert_string_equal(before.values[0], "1");
    assert_int_equal(bad.by_status[DB_ERR_QUERY], 1);
    assert_string_equal(bad.sqlstate, "22P02"); /* invalid_text_representation */
    assert_non_null(strstr(bad.message, "invalid input syntax"));
    assert_int_equal(after.by_status[DB_OK], 1);
    assert_string_equal(after.values[0], "2");
    close_pool(pool);
}

static int submit_shared(db_pg_pool_t *pool, const char *value, reply_t *r)
{
    return submit_one(pool, DB_STMT_ECHO_INT_SHARED, value, r);
}

/* Read-only one-query batches submitted in one loop iteration share one Sync: each gets its
 * own answer, in order; a failure fails its own batch and aborts the rest of its segment
 * (503-style), and a batch with a Sync of its own closes the segment. */
static void test_shared_segments(void **state)
{
    (void)state;
    enum { NSHARED = 300 };
    db_pg_pool_t *pool = ready_pool(1);
    reply_t *many = calloc(NSHARED, sizeof(*many));
    char(*params)[16] = calloc(NSHARED, sizeof(*params));
    assert_non_null(many);
    assert_non_null(params);
    for (int i = 0; i < NSHARED; i++) {
        snprintf(params[i], sizeof(params[i]), "%d", i);
        assert_int_equal(submit_shared(pool, params[i], &many[i]), 0);
    }
    run_until(&many[NSHARED - 1].done, 1, 10000);
    for (int i = 0; i < NSHARED; i++) {
        assert_int_equal(many[i].done, 1);
        assert_int_equal(many[i].by_status[DB_OK], 1);
        assert_string_equal(many[i].values[0], params[i]);
    }
    reply_t one = {0}, bad = {0}, aborted = {0}, own = {0}, next = {0}, later = {0};
    assert_int_equal(submit_shared(pool, "1", &one), 0);
    assert_int_equal(submit_shared(pool, "x", &bad), 0);
    assert_int_equal(submit_shared(pool, "3", &aborted), 0);
    assert_int_equal(submit_echo(pool, "4", &own), 0);
    assert_int_equal(submit_shared(pool, "5", &next), 0);
    run_until(&next.done, 1, 5000);
    assert_int_equal(one.by_status[DB_OK], 1);
    assert_string_equal(one.values[0], "1");
    assert_int_equal(bad.by_status[DB_ERR_QUERY], 1);
    assert_string_equal(bad.sqlstate, "22P02");
    assert_int_equal(aborted.by_status[DB_ERR_UNAVAILABLE], 1);
    assert_int_equal(own.by_status[DB_OK], 1);
    assert_string_equal(own.values[0], "4");
    assert_int_equal(next.by_status[DB_OK], 1);
    assert_string_equal(next.values[0], "5");
    assert_int_equal(submit_shared(pool, "6", &later), 0);
    run_until(&later.done, 1, 5000);
    assert_int_equal(later.by_status[DB_OK], 1);
    assert_string_equal(later.values[0], "6");
    free(params);
    free(many);
    close_pool(pool);
}

/* A slow statement holds up what is queued behind it on its connection: once it has waited a
 * few milliseconds, new work goes to the other connection instead. */
static void test_slow_statement_is_not_waited_behind(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(2);
    reply_t slow = {0}, quick = {0};
    assert_int_equal(submit_one(pool, DB_STMT_SLEEP_MS, "1500", &slow), 0);
    spin(50);
    assert_int_equal(submit_echo(pool, "7", &quick), 0);
    run_until(&quick.done, 1, 5000);
    assert_int_equal(quick.by_status[DB_OK], 1);
    assert_string_equal(quick.values[0], "7");
    assert_int_equal(slow.done, 0); /* answered long before the slow one */
    run_until(&slow.done, 1, 5000);
    assert_int_equal(slow.by_status[DB_OK], 1);
    close_pool(pool);
}

/* The failing statement's error explains the batch, not the aborted ones after it. */
static void test_batch_fails_as_a_whole(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(1);
    const char *good[] = {"7"}, *bad[] = {"x"};
    db_query_t batch[] = {
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = good},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = bad},
        {.stmt = DB_STMT_PING},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = good},
    };
    reply_t r = {0};
    assert_int_equal(db_pg_submit(pool, batch, 4, on_reply, &r), 0);
    run_until(&r.done, 1, 5000);
    assert_int_equal(r.by_status[DB_ERR_QUERY], 1);
    assert_string_equal(r.sqlstate, "22P02");
    close_pool(pool);
}

/* Reads notifications on the admin connection until `payload` arrives (bounded); returns
 * 1 if it arrived, and counts in *others every other payload seen before it. */
static int wait_notification(PGconn *admin, const char *payload, int *others)
{
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline;) {
        struct pollfd pfd = {.fd = PQsocket(admin), .events = POLLIN};
        poll(&pfd, 1, 100);
        assert_int_equal(PQconsumeInput(admin), 1);
        for (PGnotify *n = PQnotifies(admin); n != NULL; n = PQnotifies(admin)) {
            int found = strcmp(n->extra, payload) == 0;
            if (!found)
                (*others)++;
            PQfreemem(n);
            if (found)
                return 1;
        }
    }
    return 0;
}

/* A batch is one transaction: when its last statement fails, the effect of its first one
 * (a notification, which PostgreSQL delivers only on commit) is rolled back; the same batch
 * without the failure commits. */
static void test_batch_is_atomic(void **state)
{
    (void)state;
    PGconn *admin = admin_connect();
    admin_exec(admin, "LISTEN hydrant_pg_pool_test");
    db_pg_pool_t *pool = ready_pool(1);
    const char *rolled_back[] = {"hydrant_pg_pool_test", "rolled-back"};
    const char *committed[] = {"hydrant_pg_pool_test", "committed"};
    const char *bad[] = {"not a number"}, *good[] = {"1"};
    db_query_t failing[] = {
        {.stmt = DB_STMT_NOTIFY, .nparams = 2, .values = rolled_back},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = bad},
    };
    db_query_t passing[] = {
        {.stmt = DB_STMT_NOTIFY, .nparams = 2, .values = committed},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = good},
    };
    reply_t r1 = {0}, r2 = {0};
    assert_int_equal(db_pg_submit(pool, failing, 2, on_reply, &r1), 0);
    assert_int_equal(db_pg_submit(pool, passing, 2, on_reply, &r2), 0);
    run_until(&r2.done, 1, 5000);
    assert_int_equal(r1.by_status[DB_ERR_QUERY], 1);
    assert_int_equal(r2.by_status[DB_OK], 1);
    /* Notifications arrive in commit order: had the first batch committed, its payload
     * would come before "committed". */
    int others = 0;
    assert_int_equal(wait_notification(admin, "committed", &others), 1);
    assert_int_equal(others, 0);
    PQfinish(admin);
    close_pool(pool);
}

/* ------------------------------------------------------------------- limits ---- */

static void test_invalid_batches_are_refused(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(1);
    reply_t r = {0};
    db_query_t many[DB_PG_MAX_BATCH + 1];
    for (int i = 0; i <= DB_PG_MAX_BATCH; i++)
        many[i] = (db_query_t){.stmt = DB_STMT_PING};
    const char *one[] = {"1"};
    db_query_t wrong_count = {.stmt = DB_STMT_ECHO_INT, .nparams = 0};
    db_query_t extra_param = {.stmt = DB_STMT_PING, .nparams = 1, .values = one};
    db_query_t unknown = {.stmt = DB_STMT__COUNT};
    db_query_t negative = {.stmt = (db_stmt_id_t)-1};

    assert_int_equal(db_pg_submit(pool, many, 0, on_reply, &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_QUERY);
    assert_int_equal(db_pg_submit(pool, many, DB_PG_MAX_BATCH + 1, on_reply, &r), -1);
    assert_int_equal(db_pg_submit(pool, &wrong_count, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_submit(pool, &extra_param, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_submit(pool, &unknown, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_submit(pool, &negative, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_QUERY);

    /* A full batch is fine, and nothing above disturbed the connection. */
    assert_int_equal(db_pg_submit(pool, many, DB_PG_MAX_BATCH, on_reply, &r), 0);
    run_until(&r.done, 1, 5000);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.by_status[DB_OK], 1);
    assert_int_equal(r.nresults, DB_PG_MAX_BATCH);
    close_pool(pool);
}

/* max_in_flight counts queries, not batches, and frees up as replies arrive. */
static void test_overload_is_refused(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_with(test_url, 2, 4, 5000, 5000);
    wait_ready(pool, 2);
    reply_t r = {0};
    db_query_t pings[3] = {{.stmt = DB_STMT_PING}, {.stmt = DB_STMT_PING}, {.stmt = DB_STMT_PING}};
    assert_int_equal(db_pg_submit(pool, pings, 3, on_reply, &r), 0);
    assert_int_equal(db_pg_submit(pool, pings, 2, on_reply, &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_OVERLOADED);
    assert_int_equal(db_pg_submit(pool, pings, 1, on_reply, &r), 0);
    assert_int_equal(db_pg_submit(pool, pings, 1, on_reply, &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_OVERLOADED);
    run_until(&r.done, 2, 5000);
    assert_int_equal(r.by_status[DB_OK], 2);
    assert_int_equal(db_pg_submit(pool, pings, 3, on_reply, &r), 0);
    run_until(&r.done, 3, 5000);
    assert_int_equal(r.by_status[DB_OK], 3);
    close_pool(pool);
}

/* ------------------------------------------------------------------ failures ---- */

/* Nothing listens on port 1: connects are refused at once, so submits are refused at once
 * (and the pool keeps retrying with backoff until closed). */
static void test_refuses_when_server_is_down(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_with("postgresql://hydrant@127.0.0.1:1/hydrant", 2, 100, 1000, 1000);
    spin(300); /* several attempts, all refused */
    assert_int_equal(db_pg_ready_connections(pool), 0);
    assert_int_equal(db_pg_total_connections(pool), 2);
    reply_t r = {0};
    assert_int_equal(submit_echo(pool, "1", &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_UNAVAILABLE);
    spin(20);
    assert_int_equal(r.done, 0);
    close_pool(pool);
}

/* A server that accepts the TCP connection and then says nothing: each attempt is abandoned
 * after connect_timeout_ms and a new one is made. */
static void test_connect_timeout_retries(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 64), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    char url[128];
    snprintf(url, sizeof(url), "postgresql://hydrant@127.0.0.1:%d/hydrant?sslmode=disable",
             ntohs(sa.sin_port));
    db_pg_pool_t *pool = pool_with(url, 1, 100, 1000, 200);
    spin(1500);
    assert_int_equal(db_pg_ready_connections(pool), 0);
    reply_t r = {0};
    assert_int_equal(submit_echo(pool, "1", &r), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_UNAVAILABLE);
    close_pool(pool);
    /* Count the attempts: every one is waiting in the backlog. */
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    int attempts = 0;
    for (int fd; (fd = accept(lfd, NULL, NULL)) >= 0; attempts++)
        close(fd);
    close(lfd);
    assert_true(attempts >= 2);
}

/* The server kills every connection of the pool while batches are in flight: those batches
 * fail with DB_ERR_UNAVAILABLE (none is lost, none succeeds twice), and the pool is back by
 * itself. The backends are stopped first so that the batches are surely unanswered when the
 * termination lands. */
static void test_reconnects_after_backends_are_killed(void **state)
{
    (void)state;
    PGconn *admin = admin_connect();
    db_pg_pool_t *pool = ready_pool(2);
    enum { npids = 2 };
    int pids[npids];
    hydrant_pids(admin, pids, npids);
    for (int i = 0; i < npids; i++)
        assert_int_equal(harness_system("kill -STOP %d", pids[i]), 0);
    enum { N = 40 };
    reply_t r = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(submit_echo(pool, "3", &r), 0);
    spin(50);
    admin_exec(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'hydrant' AND datname = '" TEST_DB "'");
    for (int i = 0; i < npids; i++)
        harness_system("kill -CONT %d", pids[i]);
    run_until(&r.done, N, 10000);
    assert_int_equal(r.done, N);
    assert_true(r.by_status[DB_ERR_UNAVAILABLE] >= 1);
    assert_int_equal(r.by_status[DB_OK] + r.by_status[DB_ERR_UNAVAILABLE], N);

    /* Back within a few seconds (backoff starts at 50 ms). */
    reply_t later = {0};
    for (long long deadline = harness_now_ms() + 10000;
         later.by_status[DB_OK] == 0 && harness_now_ms() < deadline;) {
        spin(20);
        if (submit_echo(pool, "5", &later) == 0)
            run_until(&later.done, later.done + 1, 5000);
    }
    assert_int_equal(later.by_status[DB_OK], 1);
    assert_string_equal(later.values[0], "5");
    wait_ready(pool, 2);
    PQfinish(admin);
    close_pool(pool);
}

static int services(const char *action)
{
    return harness_system("%s/scripts/services.sh %s %s >/dev/null", harness_env("HYDRANT_SOURCE_DIR"),
                          action, harness_env("HYDRANT_TEST_SERVICES_DIR"));
}

/* The whole server stops with batches in flight and comes back: every batch is answered
 * once, submits are refused at once while it is down, and the pool recovers by itself. */
static void test_survives_a_server_restart(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(2);
    enum { N = 20 };
    reply_t r = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(submit_echo(pool, "4", &r), 0);
    assert_int_equal(services("pg-stop"), 0);
    run_until(&r.done, N, 10000);
    assert_int_equal(r.done, N);
    assert_int_equal(r.by_status[DB_OK] + r.by_status[DB_ERR_UNAVAILABLE], N);
    for (long long deadline = harness_now_ms() + 5000;
         db_pg_ready_connections(pool) > 0 && harness_now_ms() < deadline;)
        spin(10);
    assert_int_equal(db_pg_ready_connections(pool), 0);
    reply_t down = {0};
    assert_int_equal(submit_echo(pool, "1", &down), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_UNAVAILABLE);
    spin(500); /* reconnect attempts against a closed port, with backoff */

    assert_int_equal(services("pg-start"), 0);
    wait_ready(pool, 2);
    reply_t later = {0};
    assert_int_equal(submit_echo(pool, "9", &later), 0);
    run_until(&later.done, 1, 5000);
    assert_int_equal(later.by_status[DB_OK], 1);
    assert_string_equal(later.values[0], "9");
    close_pool(pool);
}

/* A backend that stops answering must not hang its callers: the batch fails with
 * DB_ERR_TIMEOUT, the connection is replaced, and later batches work. */
static void test_stuck_connection_times_out(void **state)
{
    (void)state;
    PGconn *admin = admin_connect();
    db_pg_pool_t *pool = pool_with(test_url, 1, 100, 400, 2000);
    wait_ready(pool, 1);
    int pid;
    hydrant_pids(admin, &pid, 1);
    assert_int_equal(harness_system("kill -STOP %d", pid), 0);
    reply_t r = {0};
    assert_int_equal(submit_echo(pool, "1", &r), 0);
    assert_int_equal(submit_echo(pool, "2", &r), 0);
    run_until(&r.done, 2, 10000);
    harness_system("kill -CONT %d", pid);
    assert_int_equal(r.by_status[DB_ERR_TIMEOUT], 2);
    wait_ready(pool, 1);
    reply_t later = {0};
    assert_int_equal(submit_echo(pool, "6", &later), 0);
    run_until(&later.done, 1, 5000);
    assert_int_equal(later.by_status[DB_OK], 1);
    assert_string_equal(later.values[0], "6");
    PQfinish(admin);
    close_pool(pool);
}

/* ------------------------------------------------------------------ closing ---- */

typedef struct {
    db_pg_pool_t *pool;
    int done;
    int closed_status;
    int resubmit_refused;
    int pool_closed;
} closing_t;

static void on_closing_reply(void *data, const db_reply_t *reply)
{
    closing_t *c = data;
    c->done++;
    c->closed_status += reply->status == DB_ERR_CLOSED;
    assert_int_equal(c->pool_closed, 0); /* every callback comes before on_closed */
    db_query_t ping = {.stmt = DB_STMT_PING};
    if (db_pg_submit(c->pool, &ping, 1, on_closing_reply, c) == -1 &&
        db_pg_last_error(c->pool) == DB_ERR_CLOSED)
        c->resubmit_refused++;
}

static void test_close_fails_pending_batches(void **state)
{
    (void)state;
    db_pg_pool_t *pool = ready_pool(2);
    closing_t c = {.pool = pool};
    db_query_t ping = {.stmt = DB_STMT_PING};
    for (int i = 0; i < 10; i++)
        assert_int_equal(db_pg_submit(pool, &ping, 1, on_closing_reply, &c), 0);
    db_pg_pool_close(pool, on_closed, &c.pool_closed);
    assert_int_equal(c.done, 0); /* not from inside close */
    run_until(&c.pool_closed, 1, 5000);
    assert_int_equal(c.pool_closed, 1);
    assert_int_equal(c.done, 10);
    assert_int_equal(c.closed_status, 10);
    assert_int_equal(c.resubmit_refused, 10);
    /* teardown checks that uv_loop_close succeeds: no handle left */
}

/* Closing while connections are still being made (here: never made). */
static void test_close_while_connecting(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_with(test_url, 3, 100, 1000, 1000);
    close_pool(pool);
    db_pg_pool_t *down = pool_with("postgresql://hydrant@127.0.0.1:1/hydrant", 2, 100, 1000, 1000);
    spin(60);
    close_pool(down);
    /* ...and while a host name is still being resolved. */
    char url[256];
    snprintf(url, sizeof(url), "postgresql://hydrant@localhost:%s/" TEST_DB,
             harness_env("HYDRANT_TEST_PG_PORT"));
    db_pg_pool_t *resolving = pool_with(url, 2, 100, 1000, 1000);
    close_pool(resolving);
}

/* A host name is resolved off the loop before libpq connects. */
static void test_resolves_host_names(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof(url), "postgresql://hydrant@localhost:%s/" TEST_DB,
             harness_env("HYDRANT_TEST_PG_PORT"));
    db_pg_pool_t *pool = pool_with(url, 1, 100, 5000, 5000);
    wait_ready(pool, 1);
    reply_t r = {0};
    assert_int_equal(submit_echo(pool, "8", &r), 0);
    run_until(&r.done, 1, 5000);
    assert_string_equal(r.values[0], "8");
    close_pool(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_on_missing_table_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_results_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parameters_with_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thousand_batches_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_batches_are_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_batch_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_fails_as_a_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_statement_is_not_waited_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_batches_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overload_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_when_server_is_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_after_backends_are_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_connection_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_a_server_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_fails_pending_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_connecting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolves_host_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
