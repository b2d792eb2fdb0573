/*
 * Rate limits on Redis counters (contract: "Rate limits"). A counter key per limit and
 * subject; its window starts with its first count and ends when the key expires. A limit of
 * 0 is off. When Redis cannot be reached the request gets 503: limits fail closed.
 *
 * Every read or count of a window is one EVAL of limits_script: the count and the expiry of
 * a new counter are set by one command, atomically, so a counter never outlives its window
 * (an INCR followed by a separate EXPIRE left the counter forever whenever the second
 * command was lost: refused by a full queue, or cut off by a broken connection). EVAL rather
 * than EVALSHA: Redis caches the compiled script by its SHA1 either way, and EVAL has no
 * NOSCRIPT retry after a Redis restart or failover; the script is a few hundred bytes.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <string.h>

#define LIMITS_MAX_KEYS 2

/* KEYS: the counters. ARGV[1]: the window in ms; ARGV[2]: "1" counts one, "0" only reads.
 * Answers {count, ms left} per key (ms left < 0 when the key does not exist). A counter found
 * without an expiry (left by an older version) gets one. */
static const char limits_script[] = "local out = {}\n"
                                    "for i, key in ipairs(KEYS) do\n"
                                    "  local n\n"
                                    "  if ARGV[2] == '1' then n = redis.call('INCR', key)\n"
                                    "  else n = tonumber(redis.call('GET', key) or '0') end\n"
                                    "  local ttl = redis.call('PTTL', key)\n"
                                    "  if n > 0 and ttl < 0 then\n"
                                    "    ttl = tonumber(ARGV[1])\n"
                                    "    redis.call('PEXPIRE', key, ttl)\n"
                                    "  end\n"
                                    "  out[2 * i - 1] = n\n"
                                    "  out[2 * i] = ttl\n"
                                    "end\n"
                                    "return out\n";

/* What the reply needs, copied into the Redis call (http_redis_data): nothing to free. */
typedef struct {
    handlers_next_fn next;
    handlers_next_fn over; /* NULL: 429 */
    int limits[LIMITS_MAX_KEYS];
    int nkeys;
    int counting; /* the request itself was counted: over when past the limit, not at it */
} limits_call_t;

_Static_assert(sizeof(limits_call_t) <= HTTP_ASYNC_DATA_MAX, "limits_call_t must fit http_redis_data");

/* The EVAL's arguments; keys holds the counters' names. */
typedef struct {
    char keys[LIMITS_MAX_KEYS][320];
    char window[24];
    const char *argv[LIMITS_MAX_KEYS + 5];
    int argc;
} limits_eval_t;

/* Builds the EVAL of the enabled limits (their values go to call). Returns how many there are. */
static int limits_eval_build(limits_eval_t *e, limits_call_t *call, const handlers_limit_t *limits, int n,
                             int window_s, int count)
{
    int k = 0;
    for (int i = 0; i < n && i < LIMITS_MAX_KEYS; i++) {
        if (limits[i].limit <= 0)
            continue;
        snprintf(e->keys[k], sizeof(e->keys[k]), "hydrant:rl:%s:%s", limits[i].name, limits[i].subject);
        call->limits[k++] = limits[i].limit;
    }
    snprintf(e->window, sizeof(e->window), "%lld", (long long)window_s * 1000);
    static const char *const nkeys[LIMITS_MAX_KEYS + 1] = {"0", "1", "2"};
    e->argc = 0;
    e->argv[e->argc++] = "EVAL";
    e->argv[e->argc++] = limits_script;
    e->argv[e->argc++] = nkeys[k];
    for (int i = 0; i < k; i++)
        e->argv[e->argc++] = e->keys[i];
    e->argv[e->argc++] = e->window;
    e->argv[e->argc++] = count ? "1" : "0";
    call->nkeys = k;
    call->counting = count;
    return k;
}

static void limits_refuse(http_request_t *r, long long ms_left)
{
    char retry[24];
    snprintf(retry, sizeof(retry), "%lld", ms_left > 1000 ? (ms_left + 999) / 1000 : 1);
    http_add_header(r, "Retry-After", retry);
    http_respond_error(r, 429, "rate_limited", "too many requests; try again later", NULL);
}

/* Runs only while the client waits (http_redis_data's guard). */
static void limits_answered(http_request_t *r, void *data, db_status_t status, redisReply *reply)
{
    const limits_call_t *call = data;
    if (status != DB_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        (int)reply->elements != 2 * call->nkeys) {
        http_respond_db_error(r, status != DB_OK ? status : DB_ERR_UNAVAILABLE);
        return;
    }
    long long wait_ms = -1;
    for (int i = 0; i < call->nkeys; i++) {
        const redisReply *count = reply->element[2 * i], *left = reply->element[2 * i + 1];
        long long n = count->type == REDIS_REPLY_INTEGER ? count->integer : 0;
        long long ms_left = left->type == REDIS_REPLY_INTEGER ? left->integer : 1000;
        if ((call->counting ? n > call->limits[i] : n >= call->limits[i]) && ms_left > wait_ms)
            wait_ms = ms_left;
    }
    if (wait_ms < 0)
        call->next(r);
    else if (call->over != NULL)
        call->over(r);
    else
        limits_refuse(r, wait_ms);
}

/* Reads (count 0) or counts (1) the enabled limits, then answers through limits_answered. */
static void limits_run(http_request_t *r, const handlers_limit_t *limits, int n, int window_s, int count,
                       handlers_next_fn next, handlers_next_fn over)
{
    limits_call_t call = {.next = next, .over = over};
    limits_eval_t e;
    if (limits_eval_build(&e, &call, limits, n, window_s, count) == 0)
        next(r);
    else
        http_redis_data(r, e.argc, e.argv, NULL, limits_answered, &call, sizeof(call));
}

void handlers_limit_check(http_request_t *r, const handlers_limit_t *limits, int n, int window_s,
                          handlers_next_fn next)
{
    limits_run(r, limits, n, window_s, 0, next, NULL);
}

void handlers_limit_take(http_request_t *r, const handlers_limit_t *limit, int window_s,
                         handlers_next_fn next)
{
    limits_run(r, limit, 1, window_s, 1, next, NULL);
}

void handlers_limit_take_or(http_request_t *r, const handlers_limit_t *limit, int window_s,
                            handlers_next_fn next, handlers_next_fn over)
{
    limits_run(r, limit, 1, window_s, 1, next, over);
}

static void limits_ignore(void *data, db_status_t status, redisReply *reply)
{
}

/* Nobody waits for this count (the failed login is answered at once), so no guard: a count
 * that cannot be sent is lost like any other during a Redis outage. */
void handlers_limit_hit(http_request_t *r, const handlers_limit_t *limits, int n, int window_s)
{
    limits_call_t call = {0};
    limits_eval_t e;
    if (limits_eval_build(&e, &call, limits, n, window_s, 1) > 0 && r->loop->redis != NULL)
        db_redis_command(r->loop->redis, limits_ignore, NULL, e.argc, e.argv, NULL);
}
