/*
 * Pure parts of the job queue: names, the enqueue statement's parameters, the retry
 * schedule, the kinds registry and the metrics text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_internal.h"

static void test_queue_and_state_names(void **state)
{
    assert_int_equal(jobs_queue_parse("short"), JOBS_QUEUE_SHORT);
    assert_int_equal(jobs_queue_parse("long"), JOBS_QUEUE_LONG);
    assert_int_equal(jobs_queue_parse("Long"), -1);
    assert_int_equal(jobs_queue_parse(""), -1);
    assert_int_equal(jobs_queue_parse(NULL), -1);
    assert_string_equal(jobs_queue_name(JOBS_QUEUE_MEDIUM), "medium");
    assert_string_equal(jobs_queue_name((jobs_queue_t)7), "unknown");
    const char *states[] = {"queued", "running", "succeeded", "retrying", "failed", "dead", "cancelled"};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        assert_true(jobs_state_valid(states[i]));
    assert_false(jobs_state_valid("done"));
    assert_false(jobs_state_valid("queued "));
    assert_false(jobs_state_valid(NULL));
}

static const char *kinds_env(const char *name)
{
    return strcmp(name, "HYDRANT_JOBS_KINDS") == 0 ? "{email.confirmation: {max-attempts: 40}}" : NULL;
}

static void test_enqueue_parameters(void **state)
{
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    jobs_enqueue_t job = {.kind = "email.confirmation", .payload = "{\"to\":\"a@b.c\"}"};
    db_query_t q;
    jobs_enqueue_query(&job, &cfg, &q);
    assert_int_equal(q.stmt, DB_STMT_JOB_ENQUEUE);
    assert_int_equal(q.nparams, db_stmt_get(DB_STMT_JOB_ENQUEUE)->nparams);
    assert_string_equal(q.values[0], "email.confirmation");
    assert_string_equal(q.values[1], "short"); /* default queue */
    assert_string_equal(q.values[2], "{\"to\":\"a@b.c\"}");
    for (int i = 3; i < 6; i++)
        assert_null(q.values[i]);           /* owner, unique key, run_at: defaults */
    assert_string_equal(q.values[6], "18"); /* the default schedule's attempts */
    assert_null(q.values[7]);               /* priority */
    jobs_enqueue_t full = {.kind = "file.process",
                           .queue = "long",
                           .owner_id = "u",
                           .unique_key = "k",
                           .run_at = "2030-01-01T00:00:00Z",
                           .max_attempts = 9,
                           .priority = -3};
    jobs_enqueue_query(&full, &cfg, &q);
    assert_string_equal(q.values[1], "long");
    assert_string_equal(q.values[2], "{}");
    assert_string_equal(q.values[3], "u");
    assert_string_equal(q.values[4], "k");
    assert_string_equal(q.values[5], "2030-01-01T00:00:00Z");
    assert_string_equal(q.values[6], "9");
    assert_string_equal(q.values[7], "-3");
    /* a kind's configured attempts */
    char err[CFG_ERR_LEN];
    assert_int_equal(cfg_apply_env(&cfg, kinds_env, err, sizeof(err)), 0);
    jobs_enqueue_query(&job, &cfg, &q);
    assert_string_equal(q.values[6], "40");
    cfg_free(&cfg);
}

/* The default schedule outlasts an hour's outage even with the lowest jitter, and each delay
 * stays within 0.5x..1.5x of the capped exponential. Issue 11 finding 13: five attempts
 * 2 s apart were spent within about 25 s of a 30 s SMTP outage. */
static void test_default_schedule_outlasts_an_hour(void **state)
{
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    const char *kinds[] = {"email.confirmation", "email.password_reset", "anything.else"};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        cfg_job_kind_t s = cfg_job_schedule(&cfg, kinds[k]);
        util_backoff_t backoff = jobs_retry_backoff(&s);
        int64_t least = 0, most = 0;
        for (int attempt = 1; attempt < s.max_attempts; attempt++) { /* the last attempt is not retried */
            int64_t nominal = (int64_t)s.retry_base_ms << (attempt - 1);
            nominal = nominal > s.retry_max_ms ? s.retry_max_ms : nominal;
            int64_t low = util_backoff_ms(&backoff, attempt, 0.0);
            int64_t high = util_backoff_ms(&backoff, attempt, 0.999999);
            assert_true(low >= nominal / 2 && low <= nominal / 2 + 1);
            assert_true(high < nominal * 3 / 2 && high >= nominal * 3 / 2 - 2);
            least += low;
            most += high;
        }
        assert_true(least >= 3600 * 1000);
        assert_true(most <= 6 * 3600 * 1000); /* and gives up within a working day */
    }
    cfg_free(&cfg);
}

static jobs_outcome_t handler(jobs_run_t *run)
{
    return JOBS_DONE;
}

static void test_registry(void **state)
{
    jobs_registry_t *r = jobs_registry_new();
    assert_int_equal(jobs_registry_add(r, "a.b", handler, NULL), 0);
    assert_int_equal(jobs_registry_add(r, "a.b", handler, NULL), -1); /* taken */
    assert_int_equal(jobs_registry_add(r, "", handler, NULL), -1);
    assert_int_equal(jobs_registry_add(r, "x", NULL, NULL), -1);
    char long_kind[JOBS_KIND_MAX_LEN + 2];
    memset(long_kind, 'k', sizeof(long_kind) - 1);
    long_kind[sizeof(long_kind) - 1] = '\0';
    assert_int_equal(jobs_registry_add(r, long_kind, handler, NULL), -1);
    long_kind[JOBS_KIND_MAX_LEN] = '\0';
    assert_int_equal(jobs_registry_add(r, long_kind, handler, NULL), 0);
    assert_int_equal(jobs_registry_find(r, "a.b"), 0);
    assert_int_equal(jobs_registry_find(r, long_kind), 1);
    assert_int_equal(jobs_registry_find(r, "a"), -1);
    char name[16];
    int added = 2;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        added += jobs_registry_add(r, name, handler, NULL) == 0;
    }
    assert_int_equal(added, JOBS_MAX_KINDS);
    jobs_registry_free(r);
}

static void test_metrics_text(void **state)
{
    jobs_registry_t *r = jobs_registry_new();
    assert_int_equal(jobs_registry_add(r, "email.confirmation", handler, NULL), 0);
    jobs_metrics_t *m = calloc(1, sizeof(*m));
    jobs_metrics_count(m, 0, JOBS_QUEUE_SHORT, JOBS_COUNT_SUCCEEDED);
    jobs_metrics_count(m, 0, JOBS_QUEUE_SHORT, JOBS_COUNT_SUCCEEDED);
    jobs_metrics_count(m, -1, JOBS_QUEUE_LONG, JOBS_COUNT_FAILED);
    jobs_metrics_delay(m, JOBS_QUEUE_SHORT, 0.003);
    jobs_metrics_delay(m, JOBS_QUEUE_SHORT, -1); /* clock skew counts as 0 */
    char *text = jobs_metrics_render(m, r);
    assert_non_null(strstr(text, "# TYPE hydrant_jobs_total counter\n"));
    assert_non_null(strstr(
        text, "hydrant_jobs_total{queue=\"short\",kind=\"email.confirmation\",state=\"succeeded\"} 2\n"));
    assert_non_null(
        strstr(text, "hydrant_jobs_total{queue=\"long\",kind=\"email.confirmation\",state=\"dead\"} 0\n"));
    assert_non_null(strstr(text, "hydrant_jobs_total{queue=\"long\",kind=\"unknown\",state=\"failed\"} 1\n"));
    assert_null(
        strstr(text, "kind=\"unknown\",state=\"succeeded\"")); /* zero rows of unknown kinds left out */
    assert_non_null(strstr(text, "hydrant_job_start_delay_seconds_bucket{queue=\"short\",le=\"0.001\"} 1\n"));
    assert_non_null(
        strstr(text, "hydrant_job_start_delay_seconds_bucket{queue=\"short\",le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(text, "hydrant_job_start_delay_seconds_bucket{queue=\"short\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "hydrant_job_start_delay_seconds_bucket{queue=\"short\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "hydrant_job_start_delay_seconds_sum{queue=\"short\"} 0.003000\n"));
    assert_non_null(strstr(text, "hydrant_job_start_delay_seconds_count{queue=\"medium\"} 0\n"));
    free(text);
    free(m);
    jobs_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_and_state_names),
        cmocka_unit_test(test_enqueue_parameters),
        cmocka_unit_test(test_default_schedule_outlasts_an_hour),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_metrics_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
