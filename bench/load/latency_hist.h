/*
 * A log-linear latency histogram for the load clients (bench/load/h2open.c): 128 buckets per
 * power of two of nanoseconds, so any value is known to within half a bucket (under 0.4%)
 * in a fixed 40 KiB, without keeping one sample per request.
 */
#ifndef BENCH_LATENCY_HIST_H
#define BENCH_LATENCY_HIST_H

#include <stddef.h>
#include <stdint.h>

#define LAT_HIST_SUB_BITS 7
#define LAT_HIST_SUB      (1u << LAT_HIST_SUB_BITS)
#define LAT_HIST_MAX_EXP  44 /* 2^45 ns is about 10 hours: beyond any bounded run */
#define LAT_HIST_BUCKETS  (LAT_HIST_SUB + (LAT_HIST_MAX_EXP - LAT_HIST_SUB_BITS + 1) * LAT_HIST_SUB)

typedef struct {
    uint64_t counts[LAT_HIST_BUCKETS];
    uint64_t n, max_ns;
    double sum_ns;
} lat_hist_t;

/* The bucket of a value, and the value a bucket stands for (its middle). */
size_t lat_hist_index(uint64_t ns);
uint64_t lat_hist_value(size_t index);

void lat_hist_add(lat_hist_t *h, uint64_t ns);

/* The q-quantile in ms with the rank bench/api/run's percentiles() uses (the sorted value at
 * index floor(n*q)), never above the largest value seen; -1 when empty. */
double lat_hist_ms(const lat_hist_t *h, double q);

#endif
