/*
 * The one retry schedule: reconnecting to PostgreSQL and Redis, the job threads'
 * connections, and the delay before a failed job runs again.
 */
#include "util/util.h"

#include <math.h>

/* Doubling 50 ms this often is past any cap: counting further changes nothing. */
#define UTIL_BACKOFF_FAILURES_MAX 40

int64_t util_backoff_ms(const util_backoff_t *b, int attempt, double unit)
{
    if (attempt < 1)
        attempt = 1;
    double base = b->base_ms < 1 ? 1 : (double)b->base_ms;
    /* 2^40 times any int is past every int cap, and ldexp is exact up to there. */
    double delay =
        base * ldexp(1.0, attempt > UTIL_BACKOFF_FAILURES_MAX ? UTIL_BACKOFF_FAILURES_MAX : attempt - 1);
    if (delay > (double)b->max_ms)
        delay = (double)b->max_ms;
    if (!(unit >= 0 && unit < 1))
        unit = 0.5;
    delay *= b->jitter_low + (b->jitter_high - b->jitter_low) * unit;
    return delay < 1 ? 1 : (int64_t)delay;
}

int64_t util_backoff_next(const util_backoff_t *b, int *failures)
{
    if (*failures < UTIL_BACKOFF_FAILURES_MAX)
        (*failures)++;
    return util_backoff_ms(b, *failures, util_random_unit());
}
