/*
 * How one pipeline segment's stream of PQgetResult values becomes one reply
 * (src/db/pg_batch.c), driven with results made by PQmakeEmptyPGresult (no server).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db/pg_batch.h"

static PGresult *result(ExecStatusType status)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, status);
    assert_non_null(res);
    return res;
}

static void test_sizes_are_bounded(void **state)
{
    (void)state;
    assert_null(db_pg_batch_new(0));
    assert_null(db_pg_batch_new(-1));
    assert_null(db_pg_batch_new(DB_PG_MAX_BATCH + 2));
    db_pg_batch_t *b = db_pg_batch_new(DB_PG_MAX_BATCH + 1); /* the largest batch and its deadline */
    assert_non_null(b);
    assert_int_equal(b->nqueries, DB_PG_MAX_BATCH + 1);
    db_pg_batch_free(b);
    db_pg_batch_free(NULL);
}

static void test_successful_batch(void **state)
{
    (void)state;
    db_pg_batch_t *b = db_pg_batch_new(2);
    PGresult *first = result(PGRES_TUPLES_OK), *second = result(PGRES_COMMAND_OK);
    assert_int_equal(db_pg_batch_take(b, first), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, second), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_SYNC)), DB_PG_BATCH_DONE);
    db_reply_t reply;
    db_pg_batch_reply(b, &reply);
    assert_int_equal(reply.status, DB_OK);
    assert_int_equal(reply.nresults, 2);
    assert_ptr_equal(reply.results[0], first); /* in query order */
    assert_ptr_equal(reply.results[1], second);
    db_pg_batch_free(b); /* frees the results too (ASan checks) */
}

static void test_failed_batch_reports_the_failing_statement(void **state)
{
    (void)state;
    db_pg_batch_t *b = db_pg_batch_new(3);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_TUPLES_OK)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_FATAL_ERROR)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_ABORTED)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_SYNC)), DB_PG_BATCH_DONE);
    db_reply_t reply;
    db_pg_batch_reply(b, &reply);
    assert_int_equal(reply.status, DB_ERR_QUERY);
    assert_null(reply.results); /* results only for DB_OK */
    assert_non_null(reply.sqlstate);
    assert_string_equal(reply.sqlstate, ""); /* made-up results carry no SQLSTATE */
    /* The failing statement explains the batch, not the aborted one after it (made-up
     * results carry no message, so the status name stands in). */
    assert_string_equal(reply.message, "PGRES_FATAL_ERROR");
    db_pg_batch_free(b);
}

/* Feeds one result per query, each followed by its NULL, then the Sync. */
static void feed(db_pg_batch_t *b, PGresult *const *results, int n)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(db_pg_batch_take(b, results[i]), DB_PG_BATCH_MORE);
        assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    }
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_SYNC)), DB_PG_BATCH_DONE);
}

static void test_guarded_batch_hides_its_deadline(void **state)
{
    (void)state;
    db_pg_batch_t *b = db_pg_batch_new(2);
    b->guarded = 1;
    PGresult *mine = result(PGRES_COMMAND_OK);
    feed(b, (PGresult *[]){mine, result(PGRES_TUPLES_OK)}, 2);
    db_reply_t reply;
    db_pg_batch_reply(b, &reply);
    assert_int_equal(reply.status, DB_OK);
    assert_int_equal(reply.nresults, 1); /* the caller's query only */
    assert_ptr_equal(reply.results[0], mine);
    db_pg_batch_free(b);
}

static void test_missed_deadline_is_a_timeout(void **state)
{
    (void)state;
    /* Every statement of the caller ran; the deadline failed, so the batch rolled back: the
     * caller may answer 503, since nothing was committed. */
    db_pg_batch_t *b = db_pg_batch_new(3);
    b->guarded = 1;
    feed(b, (PGresult *[]){result(PGRES_COMMAND_OK), result(PGRES_COMMAND_OK), result(PGRES_FATAL_ERROR)}, 3);
    db_reply_t reply;
    db_pg_batch_reply(b, &reply);
    assert_int_equal(reply.status, DB_ERR_TIMEOUT);
    db_pg_batch_free(b);
    /* The caller's own failure stays its own, aborting the deadline behind it. */
    b = db_pg_batch_new(2);
    b->guarded = 1;
    feed(b, (PGresult *[]){result(PGRES_FATAL_ERROR), result(PGRES_PIPELINE_ABORTED)}, 2);
    db_pg_batch_reply(b, &reply);
    assert_int_equal(reply.status, DB_ERR_QUERY);
    db_pg_batch_free(b);
}

static void test_cut_off_writes_are_in_doubt(void **state)
{
    (void)state;
    db_pg_batch_t *b = db_pg_batch_new(1);
    assert_int_equal(db_pg_batch_cut_status(b, DB_ERR_UNAVAILABLE), DB_ERR_UNAVAILABLE);
    assert_int_equal(db_pg_batch_cut_status(b, DB_ERR_TIMEOUT), DB_ERR_TIMEOUT);
    b->guarded = 1;
    assert_int_equal(db_pg_batch_cut_status(b, DB_ERR_UNAVAILABLE), DB_ERR_INDOUBT);
    assert_int_equal(db_pg_batch_cut_status(b, DB_ERR_TIMEOUT), DB_ERR_INDOUBT);
    assert_int_equal(db_pg_batch_cut_status(b, DB_ERR_CLOSED), DB_ERR_INDOUBT);
    db_pg_batch_free(b);
}

static void test_out_of_step_streams_are_broken(void **state)
{
    (void)state;
    /* A Sync before every query ended. */
    db_pg_batch_t *b = db_pg_batch_new(2);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_TUPLES_OK)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_SYNC)), DB_PG_BATCH_BROKEN);
    db_pg_batch_free(b);
    /* A NULL with no result before it. */
    b = db_pg_batch_new(1);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_BROKEN);
    db_pg_batch_free(b);
    /* A result after every query ended, before the Sync. */
    b = db_pg_batch_new(1);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_TUPLES_OK)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_TUPLES_OK)), DB_PG_BATCH_BROKEN);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_BROKEN);
    db_pg_batch_free(b);
}

static void test_second_result_of_a_statement_is_dropped(void **state)
{
    (void)state;
    db_pg_batch_t *b = db_pg_batch_new(1);
    PGresult *first = result(PGRES_TUPLES_OK);
    assert_int_equal(db_pg_batch_take(b, first), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_TUPLES_OK)), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, NULL), DB_PG_BATCH_MORE);
    assert_int_equal(db_pg_batch_take(b, result(PGRES_PIPELINE_SYNC)), DB_PG_BATCH_DONE);
    db_reply_t reply;
    db_pg_batch_reply(b, &reply);
    assert_ptr_equal(reply.results[0], first);
    db_pg_batch_free(b);
}

static void test_sqlstate_classes(void **state)
{
    (void)state;
    assert_int_equal(db_pg_sqlstate_status("57P01"), DB_ERR_UNAVAILABLE); /* admin_shutdown */
    assert_int_equal(db_pg_sqlstate_status("57P02"), DB_ERR_UNAVAILABLE); /* crash_shutdown */
    assert_int_equal(db_pg_sqlstate_status("57P03"), DB_ERR_UNAVAILABLE); /* cannot_connect_now */
    assert_int_equal(db_pg_sqlstate_status("08006"), DB_ERR_UNAVAILABLE); /* connection_failure */
    assert_int_equal(db_pg_sqlstate_status("57014"), DB_ERR_TIMEOUT);     /* query_canceled */
    assert_int_equal(db_pg_sqlstate_status("22P02"), DB_ERR_QUERY);
    assert_int_equal(db_pg_sqlstate_status("23505"), DB_ERR_QUERY); /* unique_violation */
    assert_int_equal(db_pg_sqlstate_status("40001"), DB_ERR_QUERY); /* serialization_failure */
    assert_int_equal(db_pg_sqlstate_status(""), DB_ERR_QUERY);
    assert_int_equal(db_pg_sqlstate_status("5"), DB_ERR_QUERY);
    assert_int_equal(db_pg_sqlstate_status(NULL), DB_ERR_QUERY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_are_bounded),
        cmocka_unit_test(test_successful_batch),
        cmocka_unit_test(test_failed_batch_reports_the_failing_statement),
        cmocka_unit_test(test_guarded_batch_hides_its_deadline),
        cmocka_unit_test(test_missed_deadline_is_a_timeout),
        cmocka_unit_test(test_cut_off_writes_are_in_doubt),
        cmocka_unit_test(test_out_of_step_streams_are_broken),
        cmocka_unit_test(test_second_result_of_a_statement_is_dropped),
        cmocka_unit_test(test_sqlstate_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
