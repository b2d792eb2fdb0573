/*
 * Migrations against a fresh database each: order, idempotence, down, status, a failing
 * migration that rolls back and stops, bad file names, and two runners at once (the
 * advisory lock lets each migration apply exactly once). Also the repository's own
 * migrations, up and down.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "harness.h"

static char dbname[64], conninfo[256], dir[256];

static PGconn *admin(void)
{
    PGconn *c = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
    assert_true(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK);
    PQclear(res);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    static int n;
    snprintf(dbname, sizeof(dbname), "hydrant_migrate_%d_%d", getpid(), ++n);
    PGconn *c = admin();
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    exec_ok(c, sql);
    PQfinish(c);
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%s user=hydrant dbname=%s",
             harness_env("HYDRANT_TEST_PG_PORT"), dbname);
    snprintf(dir, sizeof(dir), "%s/migrations-%s", harness_env("HYDRANT_TEST_SERVICES_DIR"), dbname);
    harness_system("rm -rf %s && mkdir -p %s", dir, dir);
    write_file("0001_first.up.sql", "CREATE TABLE t1 (id int);");
    write_file("0001_first.down.sql", "DROP TABLE t1;");
    write_file("0002_second.up.sql", "CREATE TABLE t2 (id int); INSERT INTO t2 VALUES (1), (2);");
    write_file("0002_second.down.sql", "DROP TABLE t2;");
    write_file("README.md", "not a migration");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PGconn *c = admin();
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    exec_ok(c, sql);
    PQfinish(c);
    harness_system("rm -rf %s", dir);
    return 0;
}

static long count(const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *res = PQexec(c, sql);
    long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atol(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    PQfinish(c);
    return n;
}

static int migrate(cli_migrate_action_t action, int steps, char *out, size_t outlen, char *err)
{
    memset(out, 0, outlen);
    FILE *f = fmemopen(out, outlen, "w");
    int rc = cli_migrate(conninfo, dir, action, steps, f, err, 512);
    fclose(f);
    return rc;
}

static void test_up_down_status(void **state)
{
    (void)state;
    char out[4096], err[512];
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), 0);
    assert_string_equal(out, "applied 0001_first\napplied 0002_second\n");
    assert_int_equal(count("SELECT count(*) FROM t2"), 2);
    assert_int_equal(count("SELECT count(*) FROM schema_migrations"), 2);
    /* Again: nothing to do. */
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), 0);
    assert_string_equal(out, "");
    assert_int_equal(migrate(CLI_MIGRATE_DOWN, 1, out, sizeof(out), err), 0);
    assert_string_equal(out, "reverted 0002_second\n");
    assert_int_equal(count("SELECT count(*) FROM pg_tables WHERE tablename = 't2'"), 0);
    assert_int_equal(migrate(CLI_MIGRATE_STATUS, 0, out, sizeof(out), err), 0);
    assert_non_null(strstr(out, "applied  0001_first"));
    assert_non_null(strstr(out, "pending  0002_second"));
}

static void test_failing_migration_rolls_back_and_stops(void **state)
{
    (void)state;
    write_file("0003_broken.up.sql", "CREATE TABLE t3 (id int); SELECT no_such_function();");
    write_file("0004_after.up.sql", "CREATE TABLE t4 (id int);");
    char out[4096], err[512];
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), CLI_EXIT_FAILURE);
    assert_non_null(strstr(err, "0003_broken"));
    assert_non_null(strstr(err, "no_such_function"));
    assert_int_equal(count("SELECT count(*) FROM schema_migrations"), 2);
    assert_int_equal(count("SELECT count(*) FROM pg_tables WHERE tablename IN ('t3', 't4')"), 0);
}

static void test_bad_names_and_missing_down(void **state)
{
    (void)state;
    char out[4096], err[512];
    write_file("5_short.up.sql", "SELECT 1;");
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), CLI_EXIT_INPUT);
    assert_non_null(strstr(err, "5_short.up.sql"));
    harness_system("rm %s/5_short.up.sql", dir);
    write_file("0003_Upper.up.sql", "SELECT 1;");
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), CLI_EXIT_INPUT);
    harness_system("rm %s/0003_Upper.up.sql", dir);
    write_file("0003_nodown.up.sql", "CREATE TABLE t5 (id int);");
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), 0);
    /* Down refuses before touching anything when a file is missing. */
    assert_int_equal(migrate(CLI_MIGRATE_DOWN, 3, out, sizeof(out), err), CLI_EXIT_INPUT);
    assert_non_null(strstr(err, "0003_nodown"));
    assert_int_equal(count("SELECT count(*) FROM schema_migrations"), 3);
}

static void *run_up(void *arg)
{
    char err[512];
    *(int *)arg = cli_migrate(conninfo, dir, CLI_MIGRATE_UP, 0, NULL, err, sizeof(err));
    return NULL;
}

static void test_concurrent_runners_apply_once(void **state)
{
    (void)state;
    /* Slow enough that the runners overlap. */
    write_file("0003_slow.up.sql", "SELECT pg_sleep(0.5); CREATE TABLE t6 (id int);");
    pthread_t threads[3];
    int rcs[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&threads[i], NULL, run_up, &rcs[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(rcs[i], 0);
    }
    assert_int_equal(count("SELECT count(*) FROM schema_migrations"), 3);
}

static void test_repository_migrations(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s/migrations", harness_env("HYDRANT_SOURCE_DIR"));
    char out[4096], err[512];
    assert_int_equal(migrate(CLI_MIGRATE_UP, 0, out, sizeof(out), err), 0);
    assert_int_equal(count("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), 1);
    long applied = count("SELECT count(*) FROM schema_migrations");
    assert_true(applied >= 1);
    assert_int_equal(migrate(CLI_MIGRATE_DOWN, (int)applied, out, sizeof(out), err), 0);
    assert_int_equal(count("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), 0);
    assert_int_equal(count("SELECT count(*) FROM schema_migrations"), 0);
    snprintf(dir, sizeof(dir), "%s/migrations-%s", harness_env("HYDRANT_TEST_SERVICES_DIR"), dbname);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_down_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_migration_rolls_back_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names_and_missing_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_runners_apply_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repository_migrations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
