/*
 * db_events_eval: the arguments of one EVAL of the events script (keys per user, the ordering
 * guard's key last and its version, the users), and what it refuses. The script itself runs
 * against Redis in integration.test_events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

static void test_without_guard(void **state)
{
    (void)state;
    db_events_eval_t e;
    const char *users[] = {"u1", "u2"};
    assert_int_equal(db_events_eval(&e, "room.message", "{}", NULL, 0, users, 2), 0);
    assert_int_equal(e.argc, 3 + 4 + 4 + 2);
    assert_string_equal(e.argv[0], "EVAL");
    assert_string_equal(e.argv[2], "4");
    assert_string_equal(e.argv[3], "hydrant:rt:seq:u1");
    assert_string_equal(e.argv[4], "hydrant:rt:log:u1");
    assert_string_equal(e.argv[5], "hydrant:rt:seq:u2");
    assert_string_equal(e.argv[6], "hydrant:rt:log:u2");
    assert_string_equal(e.argv[7], "room.message");
    assert_string_equal(e.argv[8], "{}");
    assert_string_equal(e.argv[9], "1000");
    assert_string_equal(e.argv[10], ""); /* no version: the script skips the guard */
    assert_string_equal(e.argv[11], "u1");
    assert_string_equal(e.argv[12], "u2");
}

static void test_with_guard(void **state)
{
    (void)state;
    db_events_eval_t e;
    const char *user = "u1";
    assert_int_equal(db_events_eval(&e, "job.updated", "{\"id\":1}", "job:j1", 42, &user, 1), 0);
    assert_int_equal(e.argc, 3 + 3 + 4 + 1);
    assert_string_equal(e.argv[2], "3");
    assert_string_equal(e.argv[5], "hydrant:rt:ver:job:j1"); /* after the users' keys */
    assert_string_equal(e.argv[9], "42");
    assert_string_equal(e.argv[10], "u1");
    /* version 0 is a version (a guard), not "none" */
    assert_int_equal(db_events_eval(&e, "job.updated", "{}", "job:j1", 0, &user, 1), 0);
    assert_string_equal(e.argv[9], "0");
}

static void test_refused(void **state)
{
    (void)state;
    db_events_eval_t e;
    const char *user = "u1";
    assert_int_equal(db_events_eval(&e, "job.updated", "{}", "job:j1", -1, &user, 1), -1);
    const char *many[DB_EVENTS_PER_EVAL + 1];
    for (int i = 0; i <= DB_EVENTS_PER_EVAL; i++)
        many[i] = "u";
    assert_int_equal(db_events_eval(&e, "x", "{}", NULL, 0, many, DB_EVENTS_PER_EVAL), 0);
    assert_int_equal(e.argc, 3 + 2 * DB_EVENTS_PER_EVAL + 4 + DB_EVENTS_PER_EVAL);
    assert_true((size_t)e.argc <= sizeof(e.argv) / sizeof(e.argv[0]));
    assert_int_equal(db_events_eval(&e, "x", "{}", NULL, 0, many, DB_EVENTS_PER_EVAL + 1), -1);
    assert_int_equal(db_events_eval(&e, "x", "{}", "job:j1", 1, many, DB_EVENTS_PER_EVAL), 0);
    assert_true((size_t)e.argc <= sizeof(e.argv) / sizeof(e.argv[0]));
    /* an id too long for a key is refused, not cut (a cut key would be another user's) */
    char longer[200];
    memset(longer, 'a', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    const char *bad = longer;
    assert_int_equal(db_events_eval(&e, "x", "{}", NULL, 0, &bad, 1), -1);
    assert_int_equal(db_events_eval(&e, "x", "{}", longer, 1, &user, 1), -1);
}

static void test_publisher_without_redis(void **state)
{
    (void)state;
    const char *user = "u1";
    /* no URL: publishing is off, every event lost without a word */
    db_events_pub_t *off = db_events_pub_new(NULL, 100, "test");
    assert_non_null(off);
    assert_int_equal(db_events_pub(off, "x", "{}", NULL, 0, &user, 1), -1);
    db_events_pub_free(off);
    assert_null(db_events_pub_new("http://nope", 100, "test")); /* malformed */
    assert_int_equal(db_events_pub(NULL, "x", "{}", NULL, 0, &user, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_guard),
        cmocka_unit_test(test_with_guard),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_publisher_without_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
