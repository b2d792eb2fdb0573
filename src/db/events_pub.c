/*
 * The blocking publisher of notification events (db.h, db_events_pub_t): job workers, the
 * pool's lease keeper and the command line, on threads that may block, never a loop's
 * (build.loop_not_blocking checks who calls it). A connection of its own, made on first use;
 * after a failure no connect is tried before the backoff's delay, so an outage costs a worker
 * at most one timeout per delay, and it is logged once, at its start, and once at its end.
 * Events of one batch (a worker's claim or outcomes) are pipelined: appended, then their
 * answers read together, one round trip.
 */
#include "db/db.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

struct db_events_pub {
    db_redis_url_t url;
    int enabled;
    int timeout_ms;
    char who[64];
    redisContext *c;
    int failures;     /* connects failed in a row: the backoff's count */
    uint64_t next_ms; /* no connect before this (monotonic) */
    int down_logged;  /* this outage was logged */
    int pending;      /* EVALs appended, their answers not read yet */
    int lost;         /* of the events queued since the last flush: lost, or dropped by the guard */
    int dropped;
    db_events_eval_t eval;
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
        util_log(UTIL_LOG_WARN, "redis", "%s cannot publish events (%s); they are lost until it is back",
                 p->who, why);
    p->down_logged = 1;
    if (p->c != NULL)
        redisFree(p->c);
    p->c = NULL;
    p->lost += p->pending; /* their answers went with the connection */
    p->pending = 0;
    p->next_ms = pub_now_ms() + (uint64_t)util_backoff_next(&UTIL_BACKOFF_RECONNECT, &p->failures);
}

/* One command of the handshake; 0 when it got a reply that is no error. */
static int pub_command(db_events_pub_t *p, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(p->c, argc, argv, NULL);
    if (reply == NULL) {
        pub_down(p, p->c->errstr[0] != '\0' ? p->c->errstr : "no answer");
        return -1;
    }
    int ok = reply->type != REDIS_REPLY_ERROR;
    if (!ok)
        util_log(UTIL_LOG_WARN, "redis", "%s: %.200s", p->who, reply->str);
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
    if ((p->url.password[0] != '\0' && pub_command(p, 2, (const char *[]){"AUTH", p->url.password}) != 0) ||
        (p->url.db != 0 && pub_command(p, 2, (const char *[]){"SELECT", db}) != 0)) {
        if (p->c != NULL)
            pub_down(p, "refused the handshake");
        return -1;
    }
    if (p->down_logged)
        util_log(UTIL_LOG_INFO, "redis", "%s publishes events again", p->who);
    p->down_logged = 0;
    p->failures = 0;
    return 0;
}

int db_events_pub_add(db_events_pub_t *p, const char *event, const char *data, const char *object,
                      long long version, const char *const *users, int n)
{
    if (p == NULL || n <= 0)
        return n == 0 ? 0 : -1;
    if (!p->enabled || pub_connect(p) != 0) {
        p->lost++;
        return -1;
    }
    for (int from = 0; from < n; from += DB_EVENTS_PER_EVAL) {
        int count = n - from < DB_EVENTS_PER_EVAL ? n - from : DB_EVENTS_PER_EVAL;
        /* hiredis copies the command into its output buffer: the arguments may go */
        if (db_events_eval(&p->eval, event, data, object, version, users + from, count) != 0) {
            p->lost++;
            return -1;
        }
        if (redisAppendCommandArgv(p->c, p->eval.argc, p->eval.argv, NULL) != REDIS_OK) {
            pub_down(p, "out of memory");
            p->lost++;
            return -1;
        }
        p->pending++;
    }
    return 0;
}

int db_events_pub_flush(db_events_pub_t *p)
{
    if (p == NULL)
        return -1;
    while (p->pending > 0) {
        redisReply *reply = NULL;
        if (redisGetReply(p->c, (void **)&reply) != REDIS_OK || reply == NULL) {
            pub_down(p, p->c->errstr[0] != '\0' ? p->c->errstr : "no answer"); /* counts the rest lost */
            break;
        }
        p->pending--;
        if (reply->type == REDIS_REPLY_ERROR) {
            util_log(UTIL_LOG_WARN, "redis", "%s: %.200s", p->who, reply->str);
            p->lost++;
        } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer < 0) {
            p->dropped++; /* the guard: a newer version was published */
        }
        freeReplyObject(reply);
    }
    int rc = p->lost > 0 ? -1 : p->dropped > 0 ? 1 : 0;
    p->lost = p->dropped = 0;
    return rc;
}

int db_events_pub(db_events_pub_t *p, const char *event, const char *data, const char *object,
                  long long version, const char *const *users, int n)
{
    if (p == NULL || n <= 0)
        return n == 0 ? 0 : -1;
    db_events_pub_add(p, event, data, object, version, users, n);
    return db_events_pub_flush(p);
}

void db_events_pub_free(db_events_pub_t *p)
{
    if (p == NULL)
        return;
    if (p->c != NULL)
        redisFree(p->c);
    free(p);
}
