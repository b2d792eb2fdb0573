/*
 * The notification events' script (db.h, "notification events"), and the blocking publisher
 * of threads that may block. The async side is src/handlers/events.c.
 *
 * Id, backlog entry and publication are one script, so they happen atomically and in one
 * order: a reader that sees event N published has N in the backlog, and events of one user
 * are published in id order.
 *
 * The ordering guard compares versions that PostgreSQL gave the object's row in the UPDATE
 * whose RETURNING is the event's data (a counter bumped under the row's lock, so two changes
 * of one row always get increasing versions in commit order: a timestamp would not, since
 * now() is the transaction's start and clock_timestamp() may step back). An event older than
 * the newest published about its object is dropped: it arrived late, and the stream already
 * shows a newer state. An equal version passes (the same change, for the next users of a
 * long list). The guard lives an hour: a publisher is late by at most a command timeout.
 */
#include "db/db.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* KEYS: per user its counter then its stream, then the object's guard when ARGV[4] is not
 * ''. ARGV[1] event, ARGV[2] data, ARGV[3] the cap, ARGV[4] the object's version or '',
 * ARGV[5], ... the user ids. Returns how many users got the event, or -1 when the guard
 * dropped it. The stream expires after 30 days without events; the counter stays, so a
 * user's ids never go back (an expired backlog then reads as a gap: reset). */
static const char events_script[] = "local n = #ARGV - 4\n"
                                    "if ARGV[4] ~= '' then\n"
                                    "  local guard = KEYS[2 * n + 1]\n"
                                    "  local seen = tonumber(redis.call('GET', guard) or '-1')\n"
                                    "  if tonumber(ARGV[4]) < seen then return -1 end\n"
                                    "  redis.call('SET', guard, ARGV[4], 'EX', 3600)\n"
                                    "end\n"
                                    "for i = 1, n do\n"
                                    "  local id = redis.call('INCR', KEYS[2 * i - 1])\n"
                                    "  redis.call('XADD', KEYS[2 * i], 'MAXLEN', '~', ARGV[3], id .. '-0', "
                                    "'event', ARGV[1], 'data', ARGV[2])\n"
                                    "  redis.call('EXPIRE', KEYS[2 * i], 2592000)\n"
                                    "  redis.call('PUBLISH', '" DB_EVENTS_CHANNEL
                                    "', ARGV[4 + i] .. ' ' .. id .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])\n"
                                    "end\n"
                                    "return n\n";

int db_events_eval(db_events_eval_t *e, const char *event, const char *data, const char *object,
                   long long version, const char *const *users, int n)
{
    if (n < 0 || n > DB_EVENTS_PER_EVAL || (object != NULL && version < 0))
        return -1;
    int nkeys = 2 * n + (object != NULL);
    snprintf(e->nkeys, sizeof(e->nkeys), "%d", nkeys);
    snprintf(e->cap, sizeof(e->cap), "%d", DB_EVENTS_BACKLOG);
    if (object != NULL)
        snprintf(e->version, sizeof(e->version), "%lld", version);
    else
        e->version[0] = '\0';
    e->argc = 0;
    e->argv[e->argc++] = "EVAL";
    e->argv[e->argc++] = events_script;
    e->argv[e->argc++] = e->nkeys;
    for (int i = 0; i < n; i++) {
        size_t cap = sizeof(e->keys[0]);
        if ((size_t)snprintf(e->keys[2 * i], cap, "hydrant:rt:seq:%s", users[i]) >= cap ||
            (size_t)snprintf(e->keys[2 * i + 1], cap, "hydrant:rt:log:%s", users[i]) >= cap)
            return -1;
        e->argv[e->argc++] = e->keys[2 * i];
        e->argv[e->argc++] = e->keys[2 * i + 1];
    }
    if (object != NULL) {
        size_t cap = sizeof(e->keys[0]);
        if ((size_t)snprintf(e->keys[2 * n], cap, "hydrant:rt:ver:%s", object) >= cap)
            return -1;
        e->argv[e->argc++] = e->keys[2 * n];
    }
    e->argv[e->argc++] = event;
    e->argv[e->argc++] = data;
    e->argv[e->argc++] = e->cap;
    e->argv[e->argc++] = e->version;
    for (int i = 0; i < n; i++)
        e->argv[e->argc++] = users[i];
    return 0;
}

/* ------------------------------------------------------------ blocking ---- */

struct db_events_pub {
    db_redis_url_t url;
    int enabled;
    int timeout_ms;
    char who[64];
    redisContext *c;
    int failures;     /* connects failed in a row: the backoff's count */
    uint64_t next_ms; /* no connect before this (monotonic) */
    int down_logged;  /* this outage was logged */
};

static uint64_t pub_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

db_events_pub_t *db_events_pub_new(const char *url, int timeout_ms, const char *who)
{
    db_events_pub_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->enabled = url != NULL && url[0] != '\0';
    if (p->enabled && db_redis_url_parse(url, &p->url) != 0) {
        free(p);
        return NULL;
    }
    p->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    snprintf(p->who, sizeof(p->who), "%s", who);
    return p;
}

static void pub_down(db_events_pub_t *p, const char *why)
{
    if (!p->down_logged)
        fprintf(stderr, "hydrant: redis: %s cannot publish events (%s); they are lost until it is back\n",
                p->who, why);
    p->down_logged = 1;
    if (p->c != NULL)
        redisFree(p->c);
    p->c = NULL;
    p->next_ms = pub_now_ms() + (uint64_t)util_backoff_next(&UTIL_BACKOFF_RECONNECT, &p->failures);
}

/* One command; 0 when it got a reply that is no error, and then its integer in *value. */
static int pub_command(db_events_pub_t *p, int argc, const char **argv, long long *value)
{
    redisReply *reply = redisCommandArgv(p->c, argc, argv, NULL);
    if (reply == NULL) {
        pub_down(p, p->c->errstr[0] != '\0' ? p->c->errstr : "no answer");
        return -1;
    }
    int ok = reply->type != REDIS_REPLY_ERROR;
    if (value != NULL)
        *value = reply->type == REDIS_REPLY_INTEGER ? reply->integer : 0;
    if (!ok)
        fprintf(stderr, "hydrant: redis: %s: %.200s\n", p->who, reply->str);
    freeReplyObject(reply);
    return ok ? 0 : -1;
}

static int pub_connect(db_events_pub_t *p)
{
    if (p->c != NULL)
        return 0;
    if (pub_now_ms() < p->next_ms)
        return -1;
    struct timeval tv = {p->timeout_ms / 1000, (p->timeout_ms % 1000) * 1000};
    p->c = redisConnectWithTimeout(p->url.host, p->url.port, tv);
    if (p->c == NULL || p->c->err) {
        pub_down(p, p->c != NULL ? p->c->errstr : "out of memory");
        return -1;
    }
    redisSetTimeout(p->c, tv);
    char db[16];
    snprintf(db, sizeof(db), "%d", p->url.db);
    if ((p->url.password[0] != '\0' &&
         pub_command(p, 2, (const char *[]){"AUTH", p->url.password}, NULL) != 0) ||
        (p->url.db != 0 && pub_command(p, 2, (const char *[]){"SELECT", db}, NULL) != 0)) {
        if (p->c != NULL)
            pub_down(p, "refused the handshake");
        return -1;
    }
    if (p->down_logged)
        fprintf(stderr, "hydrant: redis: %s publishes events again\n", p->who);
    p->down_logged = 0;
    p->failures = 0;
    return 0;
}

int db_events_pub(db_events_pub_t *p, const char *event, const char *data, const char *object,
                  long long version, const char *const *users, int n)
{
    if (p == NULL || !p->enabled || n <= 0)
        return n == 0 ? 0 : -1;
    db_events_eval_t *e = malloc(sizeof(*e)); /* 13 KiB: not on a worker's stack */
    int rc = e != NULL && pub_connect(p) == 0 ? 0 : -1;
    for (int from = 0; rc == 0 && from < n; from += DB_EVENTS_PER_EVAL) {
        int count = n - from < DB_EVENTS_PER_EVAL ? n - from : DB_EVENTS_PER_EVAL;
        long long sent = 0;
        if (db_events_eval(e, event, data, object, version, users + from, count) != 0 ||
            pub_command(p, e->argc, e->argv, &sent) != 0)
            rc = -1;
        else if (sent < 0)
            rc = 1; /* the guard: a newer version was published */
    }
    free(e);
    return rc;
}

void db_events_pub_free(db_events_pub_t *p)
{
    if (p == NULL)
        return;
    if (p->c != NULL)
        redisFree(p->c);
    free(p);
}
