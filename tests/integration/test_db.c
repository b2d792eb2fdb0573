/*
 * The data layer against real PostgreSQL and Redis, on a libuv loop of the test's own:
 * pipelining, batch isolation and atomicity, reconnection after the server drops us, fast
 * refusals when nothing listens, timeouts, and closing with no handle left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "harness.h"

typedef struct {
    int done;
    int ok;
    int failed_query;
    int unavailable;
    int timeouts;
    long sum;
    char sqlstate[6];
} tally_t;

static uv_loop_t loop;

static void run_until(int *counter, int target, int bound_ms)
{
    long long deadline = harness_now_ms() + bound_ms;
    while (*counter < target && harness_now_ms() < deadline)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_timer(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop for ms milliseconds. */
static void spin(int ms)
{
    uv_timer_t t;
    int fired = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_timer, (uint64_t)ms, 0);
    run_until(&fired, 1, ms + 5000);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_closed(void *data)
{
    *(int *)data = 1;
}

static int setup(void **state)
{
    (void)state;
    return uv_loop_init(&loop);
}

/* Every handle must be closed by the end of a test; a test that failed half-way may leave
 * some open, and then this fails instead of waiting forever. */
static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 1000 && uv_loop_alive(&loop); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* ----------------------------------------------------------------- PostgreSQL ---- */

static db_pg_pool_t *pool_for(const char *conninfo, int connections)
{
    db_pg_options_t options = {
        .conninfo = conninfo,
        .connections = connections,
        .max_in_flight = 100000,
        .query_timeout_ms = 2000,
        .connect_timeout_ms = 2000,
    };
    db_pg_pool_t *pool = db_pg_pool_new(&loop, &options);
    assert_non_null(pool);
    for (long long deadline = harness_now_ms() + 5000;
         db_pg_ready_connections(pool) < connections && harness_now_ms() < deadline;)
        spin(10);
    return pool;
}

static void close_pool(db_pg_pool_t *pool)
{
    int closed = 0;
    db_pg_pool_close(pool, on_closed, &closed);
    run_until(&closed, 1, 5000);
    assert_int_equal(closed, 1);
}

static void on_echo(void *data, const db_reply_t *reply)
{
    tally_t *t = data;
    t->done++;
    if (reply->status == DB_OK) {
        t->ok++;
        for (int i = 0; i < reply->nresults; i++)
            if (PQresultStatus(reply->results[i]) == PGRES_TUPLES_OK)
                t->sum += atol(PQgetvalue(reply->results[i], 0, 0));
    } else if (reply->status == DB_ERR_QUERY) {
        t->failed_query++;
        snprintf(t->sqlstate, sizeof(t->sqlstate), "%s", reply->sqlstate);
    } else if (reply->status == DB_ERR_TIMEOUT) {
        t->timeouts++;
    } else {
        t->unavailable++;
    }
}

static int echo(db_pg_pool_t *pool, const char *value, tally_t *t)
{
    const char *values[] = {value};
    db_query_t q = {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = values};
    return db_pg_submit(pool, &q, 1, on_echo, t);
}

static void test_pg_pipelines_many_batches(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_for(harness_env("HYDRANT_TEST_DATABASE_URL"), 2);
    assert_int_equal(db_pg_ready_connections(pool), 2);
    tally_t t = {0};
    long expected = 0;
    for (int i = 1; i <= 2000; i++) {
        char v[16];
        snprintf(v, sizeof(v), "%d", i);
        assert_int_equal(echo(pool, v, &t), 0);
        expected += i;
    }
    /* Callbacks never run inside submit. */
    assert_int_equal(t.done, 0);
    run_until(&t.done, 2000, 20000);
    assert_int_equal(t.ok, 2000);
    assert_int_equal(t.sum, expected);
    close_pool(pool);
}

static void test_pg_failing_batch_is_isolated(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_for(harness_env("HYDRANT_TEST_DATABASE_URL"), 1);
    tally_t before = {0}, bad = {0}, after = {0};
    assert_int_equal(echo(pool, "1", &before), 0);
    assert_int_equal(echo(pool, "not a number", &bad), 0);
    assert_int_equal(echo(pool, "2", &after), 0);
    run_until(&after.done, 1, 5000);
    assert_int_equal(before.ok, 1);
    assert_int_equal(bad.failed_query, 1);
    assert_string_equal(bad.sqlstate, "22P02"); /* invalid_text_representation */
    assert_int_equal(after.ok, 1);
    assert_int_equal(after.sum, 2);
    close_pool(pool);
}

static void test_pg_batch_fails_as_a_whole(void **state)
{
    (void)state;
    /* One failing statement fails the whole batch (one sync segment): the callback gets
     * DB_ERR_QUERY, never the good statements' results as a success. */
    db_pg_pool_t *pool = pool_for(harness_env("HYDRANT_TEST_DATABASE_URL"), 1);
    const char *good[] = {"7"}, *bad[] = {"x"};
    db_query_t batch[] = {
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = good},
        {.stmt = DB_STMT_ECHO_INT, .nparams = 1, .values = bad},
        {.stmt = DB_STMT_PING},
    };
    tally_t t = {0};
    assert_int_equal(db_pg_submit(pool, batch, 3, on_echo, &t), 0);
    run_until(&t.done, 1, 5000);
    assert_int_equal(t.failed_query, 1);
    assert_int_equal(t.ok, 0);
    /* A well-formed three-query batch answers all three. */
    batch[1].values = good;
    tally_t t2 = {0};
    assert_int_equal(db_pg_submit(pool, batch, 3, on_echo, &t2), 0);
    run_until(&t2.done, 1, 5000);
    assert_int_equal(t2.ok, 1);
    assert_int_equal(t2.sum, 7 + 7 + 1);
    close_pool(pool);
}

static void test_pg_reconnects_after_being_killed(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_for(harness_env("HYDRANT_TEST_DATABASE_URL"), 2);
    PGconn *admin = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    tally_t t = {0};
    for (int i = 0; i < 50; i++)
        assert_int_equal(echo(pool, "1", &t), 0);
    PGresult *res = PQexec(admin, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE application_name = 'hydrant' AND pid <> pg_backend_pid()");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_true(atoi(PQgetvalue(res, 0, 0)) >= 2);
    PQclear(res);
    run_until(&t.done, 50, 10000);
    assert_int_equal(t.done, 50); /* every batch answered: some ok, the rest unavailable */
    /* Service comes back by itself. */
    tally_t later = {0};
    for (long long deadline = harness_now_ms() + 5000; later.ok == 0 && harness_now_ms() < deadline;) {
        spin(20);
        if (db_pg_ready_connections(pool) > 0 && echo(pool, "5", &later) == 0)
            run_until(&later.done, later.done + 1, 5000);
    }
    assert_int_equal(later.ok, 1);
    PQfinish(admin);
    close_pool(pool);
}

/* A host name is resolved off the loop (uv_getaddrinfo) before libpq connects. */
static void test_pg_resolves_host_names(void **state)
{
    (void)state;
    char url[256];
    snprintf(url, sizeof(url), "postgresql://hydrant@localhost:%s/hydrant",
             harness_env("HYDRANT_TEST_PG_PORT"));
    db_pg_pool_t *pool = pool_for(url, 1);
    assert_int_equal(db_pg_ready_connections(pool), 1);
    tally_t t = {0};
    assert_int_equal(echo(pool, "3", &t), 0);
    run_until(&t.done, 1, 5000);
    assert_int_equal(t.sum, 3);
    close_pool(pool);
}

static void test_pg_refuses_fast_when_down(void **state)
{
    (void)state;
    db_pg_pool_t *pool = pool_for("postgresql://hydrant@127.0.0.1:1/hydrant", 1);
    assert_int_equal(db_pg_ready_connections(pool), 0);
    tally_t t = {0};
    long long start = harness_now_ms();
    assert_int_equal(echo(pool, "1", &t), -1);
    assert_int_equal(db_pg_last_error(pool), DB_ERR_UNAVAILABLE);
    assert_true(harness_now_ms() - start < 100);
    close_pool(pool);
}

static void test_pg_query_timeout(void **state)
{
    (void)state;
    /* A server process that stops answering (SIGSTOP on our backend) must not hang the
     * caller: the batch fails with DB_ERR_TIMEOUT and the connection is reset. */
    db_pg_pool_t *pool = pool_for(harness_env("HYDRANT_TEST_DATABASE_URL"), 1);
    PGconn *admin = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    PGresult *res = PQexec(admin, "SELECT pid FROM pg_stat_activity WHERE application_name = 'hydrant' "
                                  "ORDER BY backend_start DESC LIMIT 1");
    assert_int_equal(PQntuples(res), 1);
    char pid[32];
    snprintf(pid, sizeof(pid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    assert_int_equal(harness_system("kill -STOP %s", pid), 0);
    tally_t t = {0};
    long long start = harness_now_ms();
    assert_int_equal(echo(pool, "1", &t), 0);
    run_until(&t.done, 1, 10000);
    long long took = harness_now_ms() - start;
    harness_system("kill -CONT %s", pid);
    assert_int_equal(t.timeouts, 1);
    assert_true(took >= 1500); /* the 2 s timeout, checked every 100 ms */
    PQfinish(admin);
    close_pool(pool);
}

/* ---------------------------------------------------------------------- Redis ---- */

static db_redis_t *redis_for(const char *url, int timeout_ms)
{
    db_redis_options_t options = {.url = url, .command_timeout_ms = timeout_ms, .connect_timeout_ms = 1000};
    db_redis_t *r = db_redis_new(&loop, &options);
    assert_non_null(r);
    for (long long deadline = harness_now_ms() + 3000; !db_redis_is_ready(r) && harness_now_ms() < deadline;)
        spin(10);
    return r;
}

static void close_redis(db_redis_t *r)
{
    int closed = 0;
    db_redis_close(r, on_closed, &closed);
    run_until(&closed, 1, 5000);
    assert_int_equal(closed, 1);
}

static void on_redis(void *data, db_status_t status, redisReply *reply)
{
    tally_t *t = data;
    t->done++;
    if (status == DB_OK && reply->type == REDIS_REPLY_INTEGER) {
        t->ok++;
        t->sum += reply->integer;
    } else if (status == DB_OK && reply->type == REDIS_REPLY_ERROR) {
        t->failed_query++;
    } else if (status == DB_OK) {
        t->ok++;
    } else if (status == DB_ERR_TIMEOUT) {
        t->timeouts++;
    } else {
        t->unavailable++;
    }
}

static int redis_cmd(db_redis_t *r, tally_t *t, int argc, const char **argv)
{
    return db_redis_command(r, on_redis, t, argc, argv, NULL);
}

static void test_redis_round_trips_in_order(void **state)
{
    (void)state;
    db_redis_t *r = redis_for(harness_env("HYDRANT_TEST_REDIS_URL"), 1000);
    assert_true(db_redis_is_ready(r));
    tally_t t = {0};
    assert_int_equal(redis_cmd(r, &t, 2, (const char *[]){"DEL", "hydrant:test:counter"}), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(redis_cmd(r, &t, 2, (const char *[]){"INCR", "hydrant:test:counter"}), 0);
    run_until(&t.done, 1001, 10000);
    assert_int_equal(t.done, 1001);
    /* INCR answers 1..1000: the sum proves every one arrived once (DEL adds 0 or 1). */
    assert_true(t.sum == 500500 || t.sum == 500501);
    tally_t e = {0};
    assert_int_equal(redis_cmd(r, &e, 1, (const char *[]){"NOSUCHCOMMAND"}), 0);
    run_until(&e.done, 1, 5000);
    assert_int_equal(e.failed_query, 1);
    close_redis(r);
}

static void test_redis_reconnects_after_kill(void **state)
{
    (void)state;
    db_redis_t *r = redis_for(harness_env("HYDRANT_TEST_REDIS_URL"), 1000);
    redisContext *admin = redisConnect("127.0.0.1", harness_service_port("redis"));
    assert_non_null(admin);
    assert_int_equal(admin->err, 0);
    redisReply *rep = redisCommand(admin, "CLIENT KILL TYPE normal SKIPME yes");
    assert_non_null(rep);
    freeReplyObject(rep);
    tally_t later = {0};
    for (long long deadline = harness_now_ms() + 5000; later.ok == 0 && harness_now_ms() < deadline;) {
        spin(20);
        if (redis_cmd(r, &later, 1, (const char *[]){"PING"}) == 0)
            run_until(&later.done, later.done + 1, 3000);
    }
    assert_int_equal(later.ok, 1);
    redisFree(admin);
    close_redis(r);
}

static void test_redis_command_timeout(void **state)
{
    (void)state;
    /* CLIENT PAUSE from another connection holds our command for a second. */
    db_redis_t *r = redis_for(harness_env("HYDRANT_TEST_REDIS_URL"), 300);
    redisContext *admin = redisConnect("127.0.0.1", harness_service_port("redis"));
    assert_non_null(admin);
    redisReply *rep = redisCommand(admin, "CLIENT PAUSE 1000 ALL");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(admin);
    tally_t t = {0};
    long long start = harness_now_ms();
    assert_int_equal(redis_cmd(r, &t, 1, (const char *[]){"PING"}), 0);
    run_until(&t.done, 1, 5000);
    assert_int_equal(t.timeouts, 1);
    assert_true(harness_now_ms() - start < 900);
    spin(1200); /* the server wakes; the client has reconnected or will */
    close_redis(r);
}

static void test_redis_resolves_host_names(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "redis://localhost:%d/1", harness_service_port("redis"));
    db_redis_t *r = redis_for(url, 1000);
    assert_true(db_redis_is_ready(r)); /* also proves SELECT 1 went through */
    close_redis(r);
}

static void test_redis_refuses_fast_when_down(void **state)
{
    (void)state;
    db_redis_t *r = redis_for("redis://127.0.0.1:1/0", 500);
    tally_t t = {0};
    assert_false(db_redis_is_ready(r));
    assert_int_equal(redis_cmd(r, &t, 1, (const char *[]){"PING"}), -1);
    close_redis(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pg_pipelines_many_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_failing_batch_is_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_batch_fails_as_a_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnects_after_being_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_resolves_host_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_refuses_fast_when_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_query_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_round_trips_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_reconnects_after_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_command_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_resolves_host_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_refuses_fast_when_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
