/*
 * Rate limits on Redis counters (contract: "Rate limits"). Fixed windows: a counter key per
 * subject and window, INCR'd, with an expiry set when it is created. A limit of 0 is off.
 * When Redis cannot be reached the request gets 503: limits fail closed.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIMITS_MAX_KEYS 2

typedef struct {
    http_request_t *r;
    handlers_next_fn next;
    int limits[LIMITS_MAX_KEYS];
    int nkeys;
    int window_s;
} limits_check_t;

static void limits_ignore(void *data, db_status_t status, redisReply *reply)
{
}

/* key = "hydrant:rl:<name>:<subject>:<window number>", so a window ends by itself. */
static void limits_key(char *out, size_t len, const char *name, const char *subject, int window_s)
{
    snprintf(out, len, "hydrant:rl:%s:%s:%lld", name, subject, (long long)(time(NULL) / window_s));
}

static void limits_refuse(http_request_t *r, int window_s)
{
    char retry[16];
    long long left = window_s - (long long)(time(NULL) % window_s);
    snprintf(retry, sizeof(retry), "%lld", left > 0 ? left : 1);
    http_add_header(r, "Retry-After", retry);
    http_respond_error(r, 429, "rate_limited", "too many requests; try again later", NULL);
}

static void limits_checked(void *data, db_status_t status, redisReply *reply)
{
    limits_check_t *c = data;
    http_request_t *r = c->r;
    if (status != DB_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        (int)reply->elements != c->nkeys) {
        http_respond_db_error(r, status != DB_OK ? status : DB_ERR_UNAVAILABLE);
    } else {
        int over = 0;
        for (int i = 0; i < c->nkeys; i++) {
            redisReply *e = reply->element[i];
            long long n = e->type == REDIS_REPLY_STRING ? atoll(e->str) : 0;
            over |= c->limits[i] > 0 && n >= c->limits[i];
        }
        if (over)
            limits_refuse(r, c->window_s);
        else
            c->next(r);
    }
    http_request_release(r);
    free(c);
}

void handlers_limit_check(http_request_t *r, const handlers_limit_t *limits, int n, int window_s,
                          handlers_next_fn next)
{
    limits_check_t *c = calloc(1, sizeof(*c));
    char keys[LIMITS_MAX_KEYS][320];
    const char *argv[LIMITS_MAX_KEYS + 1] = {"MGET"};
    if (c == NULL || n < 1 || n > LIMITS_MAX_KEYS) {
        free(c);
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    *c = (limits_check_t){.r = r, .next = next, .nkeys = n, .window_s = window_s};
    for (int i = 0; i < n; i++) {
        limits_key(keys[i], sizeof(keys[i]), limits[i].name, limits[i].subject, window_s);
        argv[i + 1] = keys[i];
        c->limits[i] = limits[i].limit;
    }
    http_request_retain(r);
    if (r->loop->redis == NULL ||
        db_redis_command(r->loop->redis, limits_checked, c, n + 1, argv, NULL) != 0) {
        http_request_release(r);
        free(c);
        http_respond_db_error(r, DB_ERR_UNAVAILABLE);
    }
}

void handlers_limit_hit(http_request_t *r, const handlers_limit_t *limits, int n, int window_s)
{
    char window[16];
    snprintf(window, sizeof(window), "%d", window_s * 2);
    for (int i = 0; i < n && r->loop->redis != NULL; i++) {
        if (limits[i].limit <= 0)
            continue;
        char key[320];
        limits_key(key, sizeof(key), limits[i].name, limits[i].subject, window_s);
        const char *incr[] = {"INCR", key};
        const char *expire[] = {"EXPIRE", key, window, "NX"};
        db_redis_command(r->loop->redis, limits_ignore, NULL, 2, incr, NULL);
        db_redis_command(r->loop->redis, limits_ignore, NULL, 4, expire, NULL);
    }
}

/* Counts the request itself, then checks: INCR answers with the count including it. */
typedef struct {
    http_request_t *r;
    handlers_next_fn next;
    int limit;
    int window_s;
} limits_take_t;

static void limits_taken(void *data, db_status_t status, redisReply *reply)
{
    limits_take_t *t = data;
    http_request_t *r = t->r;
    if (status != DB_OK || reply == NULL || reply->type != REDIS_REPLY_INTEGER)
        http_respond_db_error(r, status != DB_OK ? status : DB_ERR_UNAVAILABLE);
    else if (reply->integer > t->limit)
        limits_refuse(r, t->window_s);
    else
        t->next(r);
    http_request_release(r);
    free(t);
}

void handlers_limit_take(http_request_t *r, const handlers_limit_t *limit, int window_s,
                         handlers_next_fn next)
{
    if (limit->limit <= 0) {
        next(r);
        return;
    }
    limits_take_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    *t = (limits_take_t){r, next, limit->limit, window_s};
    char key[320], window[16];
    limits_key(key, sizeof(key), limit->name, limit->subject, window_s);
    snprintf(window, sizeof(window), "%d", window_s * 2);
    const char *incr[] = {"INCR", key};
    const char *expire[] = {"EXPIRE", key, window, "NX"};
    http_request_retain(r);
    if (r->loop->redis == NULL || db_redis_command(r->loop->redis, limits_taken, t, 2, incr, NULL) != 0) {
        http_request_release(r);
        free(t);
        http_respond_db_error(r, DB_ERR_UNAVAILABLE);
        return;
    }
    db_redis_command(r->loop->redis, limits_ignore, NULL, 4, expire, NULL);
}
