/*
 * The notification events' script (db.h, "notification events") and the arguments of its EVAL,
 * for both publishers: the async one of the loops (src/handlers/events.c) and the blocking
 * one of threads that may block (events_pub.c).
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

#include <stdio.h>

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
