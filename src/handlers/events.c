/*
 * Publishing notification events (contract: Realtime, GET /api/v1/notifications/stream).
 *
 * The backlog, the ids, the channel and the ordering guard are the shared script's (db.h,
 * "notification events"; src/db/events.c); here it runs on the loop's async Redis connection.
 *
 * Events are published after the change they tell of has committed (the caller's database
 * callback), so nobody hears of a message that was not stored. Publishing is fire and forget:
 * without Redis the event is lost (the change itself stands, and history routes show it).
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void events_published(void *data, db_status_t status, redisReply *reply)
{
    (void)data;
    (void)status;
    (void)reply;
}

static void events_publish(http_loop_t *loop, const char *event, const char *data, const char *object,
                           long long version, const char *const *users, int nusers)
{
    if (loop->redis == NULL)
        return;
    db_events_eval_t *e = malloc(sizeof(*e));
    for (int from = 0; e != NULL && from < nusers; from += DB_EVENTS_PER_EVAL) {
        int n = nusers - from < DB_EVENTS_PER_EVAL ? nusers - from : DB_EVENTS_PER_EVAL;
        /* hiredis copies the arguments into its output buffer before this returns. */
        if (db_events_eval(e, event, data, object, version, users + from, n) == 0)
            db_redis_command(loop->redis, events_published, NULL, e->argc, e->argv, NULL);
    }
    free(e);
}

void handlers_events_publish(http_loop_t *loop, const char *event, const char *data, const char *const *users,
                             int nusers)
{
    events_publish(loop, event, data, NULL, 0, users, nusers);
}

void handlers_events_publish_object(http_loop_t *loop, const char *event, const char *data,
                                    const char *object, long long version, const char *user)
{
    if (user != NULL && user[0] != '\0')
        events_publish(loop, event, data, object, version, &user, 1);
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
