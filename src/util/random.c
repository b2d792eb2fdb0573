/*
 * The one random source: the kernel's CSPRNG for secrets, and a fast per-thread generator
 * seeded from it for what only has to differ (request ids, jitter).
 */
#include "util/util.h"

#include <errno.h>
#include <sys/random.h>

int util_random_bytes(void *out, size_t len)
{
    unsigned char *p = out;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* xoshiro256** (Blackman and Vigna): four words of state per thread, no locking. */
static _Thread_local uint64_t util_rng_state[4];
static _Thread_local int util_rng_seeded;

static uint64_t util_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* Without the kernel's bytes (never seen on Linux 3.17+), the clock and a stack address:
 * still different per thread and process, which is all these numbers promise. */
static void util_rng_seed(void)
{
    if (util_random_bytes(util_rng_state, sizeof(util_rng_state)) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        util_rng_state[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
        util_rng_state[1] = (uint64_t)(uintptr_t)&ts;
        util_rng_state[2] = 0x9e3779b97f4a7c15u;
        util_rng_state[3] = 0xbf58476d1ce4e5b9u;
    }
    util_rng_seeded = 1;
}

uint64_t util_random_u64(void)
{
    if (!util_rng_seeded)
        util_rng_seed();
    uint64_t *s = util_rng_state;
    uint64_t result = util_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = util_rotl(s[3], 45);
    return result;
}

double util_random_unit(void)
{
    return (double)(util_random_u64() >> 11) * 0x1.0p-53;
}
