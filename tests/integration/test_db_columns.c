/*
 * Every registry statement's result columns as PostgreSQL describes them, on a fresh
 * database with the repository's migrations, against the lists in db/columns.h that code
 * reads results by: the same number of columns, in the same order, with the same names. A
 * reordered, added or removed SELECT item fails here instead of handing one column's value
 * to another field. A statement that returns columns must have a list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "db/db.h"
#include "harness.h"

typedef struct {
    db_stmt_id_t id;
    const char *stmt; /* the DB_STMT_ suffix, for messages */
    int count;        /* DB_COL_<STMT>__COUNT */
    const char *const *names;
} expected_t;

/* From the same X-macro lists as the enums: the names and count cannot drift from them. */
#define EXPECTED_NAME(s, name, fname) fname,
#define EXPECTED_ENTRY(s)                                                                                    \
    {DB_STMT_##s, #s, DB_COL_##s##__COUNT, (const char *const[]){DB_COLS_##s(EXPECTED_NAME, s)}},
static const expected_t expected[] = {DB_COLUMN_STATEMENTS(EXPECTED_ENTRY)};
#define NEXPECTED ((int)(sizeof(expected) / sizeof(expected[0])))

static char dbname[64], conninfo[256];

static PGconn *admin(void)
{
    PGconn *c = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void admin_exec(const char *sql)
{
    PGconn *c = admin();
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(res));
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(c);
}

/* A database of its own, migrated with the repository's migrations. */
static int setup(void **state)
{
    (void)state;
    snprintf(dbname, sizeof(dbname), "hydrant_columns_%d", getpid());
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
    admin_exec(sql);
    snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%s user=hydrant dbname=%s",
             harness_env("HYDRANT_TEST_PG_PORT"), dbname);
    char dir[512], err[512] = "";
    snprintf(dir, sizeof(dir), "%s/migrations", harness_env("HYDRANT_SOURCE_DIR"));
    if (cli_migrate(conninfo, dir, CLI_MIGRATE_UP, 0, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate up: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    admin_exec(sql);
    return 0;
}

static const expected_t *expected_for(db_stmt_id_t id)
{
    for (int i = 0; i < NEXPECTED; i++)
        if (expected[i].id == id)
            return &expected[i];
    return NULL;
}

/* Every mismatch is printed before the test fails, so one run shows them all. */
static void test_columns_match_the_lists(void **state)
{
    (void)state;
    PGconn *conn = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    int failures = 0, described = 0;
    for (int id = 0; id < DB_STMT__COUNT; id++) {
        const db_stmt_def_t *def = db_stmt_get((db_stmt_id_t)id);
        const expected_t *want = expected_for((db_stmt_id_t)id);
        PGresult *res = PQprepare(conn, def->name, def->sql, def->nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "%s: cannot be prepared: %s", def->name, PQresultErrorMessage(res));
            failures++;
            PQclear(res);
            continue;
        }
        PQclear(res);
        res = PQdescribePrepared(conn, def->name);
        assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
        int n = PQnfields(res);
        if (want == NULL) {
            if (n != 0) {
                fprintf(stderr, "%s: returns %d column(s) but has no DB_COLS_ list in db/columns.h\n",
                        def->name, n);
                failures++;
            }
        } else if (n != want->count) {
            fprintf(stderr, "%s: PostgreSQL reports %d column(s), DB_COLS_%s lists %d\n", def->name, n,
                    want->stmt, want->count);
            failures++;
        } else {
            described++;
            for (int c = 0; c < n; c++)
                if (strcmp(PQfname(res, c), want->names[c]) != 0) {
                    fprintf(stderr, "%s: column %d is \"%s\", DB_COLS_%s lists \"%s\"\n", def->name, c,
                            PQfname(res, c), want->stmt, want->names[c]);
                    failures++;
                }
        }
        PQclear(res);
    }
    PQfinish(conn);
    assert_int_equal(failures, 0);
    assert_int_equal(described, NEXPECTED);
}

/* The lists themselves: one per statement, and the embedded User block where the readers of
 * handlers_user_json_from_row expect it. */
static void test_lists_are_consistent(void **state)
{
    (void)state;
    for (int i = 0; i < NEXPECTED; i++) {
        assert_non_null(db_stmt_get(expected[i].id));
        assert_true(expected[i].count > 0);
        for (int j = i + 1; j < NEXPECTED; j++)
            assert_int_not_equal(expected[i].id, expected[j].id);
    }
    assert_int_equal(DB_COL_USER_AUTH__COUNT - DB_COL_USER_AUTH_USER_ID, DB_COL_USER_ROW__COUNT);
    const expected_t *auth = expected_for(DB_STMT_USER_AUTH);
    static const char *const user_row[] = {DB_COLS_USER_ROW(EXPECTED_NAME, USER_ROW)};
    for (int c = 0; c < DB_COL_USER_ROW__COUNT; c++)
        assert_string_equal(auth->names[DB_COL_USER_AUTH_USER_ID + c], user_row[c]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_are_consistent),
        cmocka_unit_test_setup_teardown(test_columns_match_the_lists, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
