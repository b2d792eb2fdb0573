/*
 * The statement registry (every SQL text prepared on each pipelined connection) and the
 * status names: pure tables, checked for the mistakes that would only show at connect time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

/* The highest $n placeholder in sql (0 when there is none). */
static int max_placeholder(const char *sql)
{
    int max = 0;
    for (const char *p = strchr(sql, '$'); p != NULL; p = strchr(p + 1, '$')) {
        if (!isdigit((unsigned char)p[1]))
            continue;
        int n = atoi(p + 1);
        if (n > max)
            max = n;
    }
    return max;
}

static void test_every_statement_is_complete(void **state)
{
    (void)state;
    for (int id = 0; id < DB_STMT__COUNT; id++) {
        const db_stmt_def_t *s = db_stmt_get((db_stmt_id_t)id);
        assert_non_null(s);
        assert_non_null(s->name);
        assert_non_null(s->sql);
        assert_true(strlen(s->name) > 0 && strlen(s->name) < 64); /* NAMEDATALEN */
        assert_true(strlen(s->sql) > 0);
        /* nparams is what libpq sends: it must match the placeholders. */
        assert_int_equal(s->nparams, max_placeholder(s->sql));
        assert_null(strchr(s->sql, ';')); /* one statement each */
    }
}

static void test_statement_names_are_unique(void **state)
{
    (void)state;
    for (int a = 0; a < DB_STMT__COUNT; a++)
        for (int b = a + 1; b < DB_STMT__COUNT; b++)
            assert_string_not_equal(db_stmt_get((db_stmt_id_t)a)->name, db_stmt_get((db_stmt_id_t)b)->name);
}

static void test_unknown_statements_are_null(void **state)
{
    (void)state;
    assert_null(db_stmt_get(DB_STMT__COUNT));
    assert_null(db_stmt_get((db_stmt_id_t)-1));
    assert_null(db_stmt_get((db_stmt_id_t)1000000));
    assert_string_equal(db_stmt_get(DB_STMT_PING)->sql, "SELECT 1");
}

static void test_status_names(void **state)
{
    (void)state;
    for (int a = DB_OK; a <= DB_ERR_CLOSED; a++) {
        assert_string_not_equal(db_status_name((db_status_t)a), "unknown");
        for (int b = a + 1; b <= DB_ERR_CLOSED; b++)
            assert_string_not_equal(db_status_name((db_status_t)a), db_status_name((db_status_t)b));
    }
    assert_string_equal(db_status_name(DB_OK), "ok");
    assert_string_equal(db_status_name((db_status_t)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_statement_is_complete),
        cmocka_unit_test(test_statement_names_are_unique),
        cmocka_unit_test(test_unknown_statements_are_null),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
