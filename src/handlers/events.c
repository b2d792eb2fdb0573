/*
 * Publishing notification events (contract: Realtime, GET /api/v1/notifications/stream).
 *
 * Each user has a backlog in Redis: a counter (hydrant:rt:seq:<user>) that gives the user's
 * events their increasing ids, and a stream (hydrant:rt:log:<user>) whose entry ids are those
 * ids ("<id>-0"), capped with MAXLEN ~ HANDLERS_EVENTS_BACKLOG (Redis trims whole nodes, so at
 * least that many stay), for Last-Event-ID resume; streams on every instance read it
 * (notifications.c). The same script PUBLISHes each event on HANDLERS_EVENTS_CHANNEL, which
 * nothing subscribes to yet: it is for the subscriber that is to wake only the streams an
 * event concerns instead of their polling. Id, backlog entry and
 * publication are one script, so they happen atomically and in one order: a reader that sees
 * event N published has N in the backlog, and events of one user are published in id order.
 *
 * Events are published after the change they tell of has committed (the caller's database
 * callback), so nobody hears of a message that was not stored. Publishing is fire and forget:
 * without Redis the event is lost (the change itself stands, and history routes show it).
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_PER_EVAL 64 /* users per EVAL: bounds one script's time on Redis (and the keys' stack) */

/* KEYS: per user its counter then its stream. ARGV[1] event, ARGV[2] data, ARGV[3] the cap,
 * ARGV[4], ... the user ids. The stream expires after 30 days without events; the counter
 * stays, so a user's ids never go back (an expired backlog then reads as a gap: reset). */
static const char events_script[] = "for i = 1, #KEYS / 2 do\n"
                                    "  local id = redis.call('INCR', KEYS[2 * i - 1])\n"
                                    "  redis.call('XADD', KEYS[2 * i], 'MAXLEN', '~', ARGV[3], id .. '-0', "
                                    "'event', ARGV[1], 'data', ARGV[2])\n"
                                    "  redis.call('EXPIRE', KEYS[2 * i], 2592000)\n"
                                    "  redis.call('PUBLISH', '" HANDLERS_EVENTS_CHANNEL
                                    "', ARGV[3 + i] .. ' ' .. id .. ' ' .. ARGV[1] .. ' ' .. "
                                    "ARGV[2])\n"
                                    "end\n"
                                    "return #KEYS / 2\n";

static void events_published(void *data, db_status_t status, redisReply *reply)
{
    (void)data;
    (void)status;
    (void)reply;
}

/* One EVAL for users[0..n), n <= EVENTS_PER_EVAL. */
static void events_eval(db_redis_t *redis, const char *event, const char *data, const char *const *users,
                        int n)
{
    enum { FIXED = 3, ARGS = 3 };
    char keys[2 * EVENTS_PER_EVAL][96];
    const char *argv[FIXED + 3 * EVENTS_PER_EVAL + ARGS];
    char nkeys[16], cap[16];
    snprintf(nkeys, sizeof(nkeys), "%d", 2 * n);
    snprintf(cap, sizeof(cap), "%d", HANDLERS_EVENTS_BACKLOG);
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = events_script;
    argv[argc++] = nkeys;
    for (int i = 0; i < n; i++) {
        snprintf(keys[2 * i], sizeof(keys[0]), "hydrant:rt:seq:%s", users[i]);
        snprintf(keys[2 * i + 1], sizeof(keys[0]), "hydrant:rt:log:%s", users[i]);
        argv[argc++] = keys[2 * i];
        argv[argc++] = keys[2 * i + 1];
    }
    argv[argc++] = event;
    argv[argc++] = data;
    argv[argc++] = cap;
    for (int i = 0; i < n; i++)
        argv[argc++] = users[i];
    /* hiredis copies the arguments into its output buffer before this returns. */
    db_redis_command(redis, events_published, NULL, argc, argv, NULL);
}

void handlers_events_publish(http_loop_t *loop, const char *event, const char *data, const char *const *users,
                             int nusers)
{
    if (loop->redis == NULL)
        return;
    for (int from = 0; from < nusers; from += EVENTS_PER_EVAL) {
        int n = nusers - from < EVENTS_PER_EVAL ? nusers - from : EVENTS_PER_EVAL;
        events_eval(loop->redis, event, data, users + from, n);
    }
}

void handlers_events_publish_json_users(http_loop_t *loop, const char *event, const char *data,
                                        const char *users_json)
{
    json_t *list = json_loads(users_json, 0, NULL);
    size_t n = json_array_size(list);
    const char **users = n > 0 ? calloc(n, sizeof(*users)) : NULL;
    int count = 0;
    for (size_t i = 0; users != NULL && i < n; i++)
        if (json_is_string(json_array_get(list, i)))
            users[count++] = json_string_value(json_array_get(list, i));
    handlers_events_publish(loop, event, data, users, count);
    free(users);
    json_decref(list);
}

void handlers_events_session_revoked(http_loop_t *loop, const char *user_id, const char *sid)
{
    json_t *doc = json_pack("{s:s}", "session_id", sid != NULL ? sid : HANDLERS_EVENTS_ALL_SESSIONS);
    char *data = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (data != NULL)
        handlers_events_publish(loop, "session.revoked", data, &user_id, 1);
    free(data);
    json_decref(doc);
}
