/*
 * util_backoff_ms (bounds, doubling, the cap, jitter, no overflow), the random source and
 * monotonic deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static void test_schedule(void **state)
{
    util_backoff_t jobs = {1000, 60000, 0.5, 1.5};
    assert_int_equal(util_backoff_ms(&jobs, 1, 0.5), 1000);
    assert_int_equal(util_backoff_ms(&jobs, 2, 0.5), 2000);
    assert_int_equal(util_backoff_ms(&jobs, 3, 0.5), 4000);
    assert_int_equal(util_backoff_ms(&jobs, 10, 0.5), 60000);      /* capped */
    assert_int_equal(util_backoff_ms(&jobs, 1000000, 0.5), 60000); /* no overflow */
    assert_int_equal(util_backoff_ms(&jobs, 0, 0.5), 1000);        /* attempt < 1 is the first */
    assert_int_equal(util_backoff_ms(&jobs, 1, 0.0), 500);         /* jitter 0.5x .. 1.5x */
    assert_true(util_backoff_ms(&jobs, 1, 0.999) >= 1498);
    assert_true(util_backoff_ms(&jobs, 1, 0.999) < 1500);
    assert_int_equal(util_backoff_ms(&jobs, 1, 1.0), 1000); /* outside [0, 1): the middle */
    assert_int_equal(util_backoff_ms(&jobs, 1, -0.1), 1000);
    util_backoff_t tiny = {0, 0, 0.5, 1.5};
    assert_int_equal(util_backoff_ms(&tiny, 3, 0.0), 1); /* at least 1 ms */
}

static void test_reconnect_bounds(void **state)
{
    util_backoff_t b = UTIL_BACKOFF_RECONNECT;
    const int64_t base[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
    for (int attempt = 1; attempt <= 9; attempt++) {
        int64_t lo = INT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t d = util_backoff_ms(&b, attempt, util_random_unit());
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        int64_t want = base[attempt - 1];
        assert_true(lo >= want);
        assert_true(hi < want + want / 5 + 1); /* at most 20% more */
        assert_true(hi > lo);                  /* and jittered */
    }
}

static void test_next_counts_failures(void **state)
{
    util_backoff_t b = {100, 100000, 1.0, 1.0 + 1e-9}; /* no jitter to speak of */
    int failures = 0;
    assert_int_equal(util_backoff_next(&b, &failures), 100);
    assert_int_equal(failures, 1);
    assert_int_equal(util_backoff_next(&b, &failures), 200);
    assert_int_equal(util_backoff_next(&b, &failures), 400);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(util_backoff_next(&b, &failures), i < 7 ? 800 << i : 100000);
    assert_true(failures > 0 && failures <= 1000); /* stops counting past the cap */
}

static void test_random(void **state)
{
    unsigned char a[32] = {0}, b[32] = {0}, zero[32] = {0};
    assert_int_equal(util_random_bytes(a, sizeof(a)), 0);
    assert_int_equal(util_random_bytes(b, sizeof(b)), 0);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    unsigned char big[4096];
    assert_int_equal(util_random_bytes(big, sizeof(big)), 0); /* past getrandom's 256 bytes */
    assert_int_equal(util_random_bytes(big, 0), 0);
    uint64_t x = util_random_u64(), y = util_random_u64();
    assert_true(x != 0 || y != 0);
    assert_true(x != y);
    double sum = 0;
    for (int i = 0; i < 10000; i++) {
        double u = util_random_unit();
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
    }
    assert_true(sum / 10000 > 0.45 && sum / 10000 < 0.55);
}

static void test_deadline(void **state)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct timespec d = util_deadline_after_ms(1500);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    int64_t diff_ms = (int64_t)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
    assert_true(diff_ms >= 1500 && diff_ms < 2500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_reconnect_bounds),
        cmocka_unit_test(test_next_counts_failures),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
