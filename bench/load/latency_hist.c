#include "latency_hist.h"

size_t lat_hist_index(uint64_t v)
{
    if (v < LAT_HIST_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v);
    if (e > LAT_HIST_MAX_EXP) {
        e = LAT_HIST_MAX_EXP;
        v = (2ull << LAT_HIST_MAX_EXP) - 1;
    }
    uint64_t m = v >> (e - LAT_HIST_SUB_BITS); /* the top 8 bits: [128, 256) */
    return LAT_HIST_SUB + (size_t)(e - LAT_HIST_SUB_BITS) * LAT_HIST_SUB + (size_t)(m - LAT_HIST_SUB);
}

/* The middle of a bucket, so the error is at most half a bucket's width. */
uint64_t lat_hist_value(size_t i)
{
    if (i < LAT_HIST_SUB)
        return i;
    size_t shift = (i - LAT_HIST_SUB) / LAT_HIST_SUB;
    uint64_t m = (i - LAT_HIST_SUB) % LAT_HIST_SUB + LAT_HIST_SUB;
    return (m << shift) + ((1ull << shift) >> 1);
}

void lat_hist_add(lat_hist_t *h, uint64_t v)
{
    h->counts[lat_hist_index(v)]++;
    h->n++;
    h->sum_ns += (double)v;
    if (v > h->max_ns)
        h->max_ns = v;
}

double lat_hist_ms(const lat_hist_t *h, double q)
{
    if (h->n == 0)
        return -1;
    uint64_t rank = (uint64_t)((double)h->n * q) + 1, seen = 0;
    if (rank > h->n)
        rank = h->n;
    for (size_t i = 0; i < LAT_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = lat_hist_value(i);
            return (double)(v < h->max_ns ? v : h->max_ns) / 1e6;
        }
    }
    return (double)h->max_ns / 1e6;
}
