/*
 * The open-loop client's latency histogram (bench/load/latency_hist.c): every value lands in
 * a bucket whose middle is within 0.4% of it, buckets are ordered like the values, and the
 * quantiles use the same rank as bench/api/run's percentiles() on a sorted array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "latency_hist.h"

static void test_error_bound_and_order(void **state)
{
    (void)state;
    size_t last = 0;
    double worst = 0;
    /* 1 ns to about 18 minutes, stepping by 0.1% so every bucket is visited */
    for (uint64_t v = 1; v < (1ull << 40); v += 1 + v / 1000) {
        size_t i = lat_hist_index(v);
        assert_true(i < LAT_HIST_BUCKETS);
        assert_true(i >= last);
        last = i;
        double err = fabs((double)lat_hist_value(i) - (double)v) / (double)v;
        if (err > worst)
            worst = err;
    }
    assert_true(worst < 0.004);
    assert_true(lat_hist_index(UINT64_MAX) == LAT_HIST_BUCKETS - 1); /* clamped, not past the end */
}

static void test_exact_below_128_ns(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 256; v++)
        assert_int_equal(lat_hist_value(lat_hist_index(v)), v);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_quantiles_match_the_sorted_array(void **state)
{
    (void)state;
    enum { N = 10007 };
    static uint64_t values[N];
    static lat_hist_t h;
    uint64_t x = 88172645463325252ull; /* xorshift: spread over 1 us .. 1 s, no clock involved */
    for (size_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        values[i] = 1000 + x % 1000000000ull;
        lat_hist_add(&h, values[i]);
    }
    qsort(values, N, sizeof values[0], cmp_u64);
    const double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t at = (size_t)(N * qs[k]);
        double want = (double)values[at < N ? at : N - 1] / 1e6;
        double got = lat_hist_ms(&h, qs[k]);
        assert_true(fabs(got - want) <= want * 0.004);
    }
    assert_true(lat_hist_ms(&h, 1.0) <= (double)values[N - 1] / 1e6); /* never above the max */
    assert_int_equal(h.n, N);
}

static void test_empty(void **state)
{
    (void)state;
    static lat_hist_t h;
    assert_true(lat_hist_ms(&h, 0.99) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_bound_and_order),
        cmocka_unit_test(test_exact_below_128_ns),
        cmocka_unit_test(test_quantiles_match_the_sorted_array),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
