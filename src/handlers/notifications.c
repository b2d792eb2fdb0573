/*
 * GET /api/v1/notifications/stream (contract: Realtime): the caller's events (events.c) as
 * server-sent events over HTTP/2 or HTTP/1.1.
 *
 * Each loop keeps its open streams in a list (thread-local: only the loop's thread touches
 * them). A stream watches its user on the realtime bus (bus.c): an event published with the
 * id after the last one the stream wrote is written at once from the publication; any other
 * id, a publication that comes while a read is in flight, and a bus that (re)subscribed make
 * the stream read its user's Redis backlog: the events after the last one it wrote, with one
 * script that also tells a gap (the stream then gets `event: reset` with the newest id and
 * goes on from there). The backlog is the truth and the bus only says when to look, so
 * events from every instance arrive in id order, with no loss between a resume and the live
 * events. While the loop's subscriber is not subscribed (Redis away, the bus starting) every
 * stream reads its backlog each realtime.poll-ms instead.
 *
 * The same tick writes a comment line to a stream quiet for realtime.heartbeat-ms (so that a
 * departed HTTP/1.1 client shows: libh2o stops reading it after the request), cuts the
 * connection of a stream whose send has waited for the client over two heartbeats or whose
 * queue (realtime.stream-queue) is full, ends streams older than realtime.max-stream-seconds
 * (the client reconnects with Last-Event-ID), and ends every stream once the server is asked
 * to shut down, so that the drain does not wait for them. A stream opened with an access token
 * (or a ticket of one) belongs to that token's session: session.revoked about it is written
 * and the stream ends.
 */
#include "handlers/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOTIF_READ_PAGE  100 /* events per read of a backlog */
#define NOTIF_READ_COUNT "100"

typedef struct notif_stream {
    struct notif_stream *next, *prev;
    struct notif_loop *home;
    http_sse_t *sse; /* NULL once the request is gone */
    char user[64];
    char sid[64];   /* the session of the access token that opened it; "" for an API key */
    long long last; /* the last id written; -1: start from the newest */
    uint64_t opened_ms, written_ms;
    int reading; /* a backlog read in flight: the stream lives until it answers */
    int reread;  /* something was published during that read: read again after it */
    int stale;   /* a read could not be sent: the next tick reads */
    int held;    /* inside a callback that may end the request: freed only after it */
    int ending;
    handlers_bus_watch_t *watch;
} notif_stream_t;

typedef struct notif_loop {
    uv_timer_t timer;
    notif_stream_t *head;
    db_redis_t *redis;
    http_loop_t *loop;
    h2o_context_t *ctx;
    cfg_realtime_t cfg;
    int ticking; /* a tick walks the list: streams it lets go are freed after it */
} notif_loop_t;

static _Thread_local notif_loop_t *notif_here;

/* KEYS: the user's counter and backlog. ARGV[1]: the last id the client has, or "" for none;
 * ARGV[2]: how many to read. Answers {newest id, 1 when the events after ARGV[1] are no
 * longer all in the backlog (a gap: reset), the entries after ARGV[1]}. */
static const char notif_script[] =
    "local seq = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if ARGV[1] == '' then return {seq, 0, {}} end\n"
    "local last = tonumber(ARGV[1])\n"
    "if last > seq then return {seq, 1, {}} end\n"
    "if last == seq then return {seq, 0, {}} end\n"
    "local entries = redis.call('XRANGE', KEYS[2], '(' .. last .. '-0', '+', 'COUNT', ARGV[2])\n"
    "local first = entries[1]\n"
    "if first == nil or tonumber(string.match(first[1], '^(%d+)')) ~= last + 1 then return {seq, 1, {}} end\n"
    "return {seq, 0, entries}\n";

static void notif_timer_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* Frees s once nothing refers to it any more; the loop's state goes with its last stream. */
static void notif_release(notif_stream_t *s)
{
    if (s->sse != NULL || s->reading || s->held || s->home->ticking)
        return;
    notif_loop_t *home = s->home;
    handlers_bus_unwatch(s->watch);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        home->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
    if (home->head == NULL) {
        if (notif_here == home)
            notif_here = NULL;
        uv_timer_stop(&home->timer);
        uv_close((uv_handle_t *)&home->timer, notif_timer_closed);
    }
}

static void notif_gone(void *data)
{
    notif_stream_t *s = data;
    s->sse = NULL;
    HTTP_METRIC_ADD(s->home->loop->metrics->realtime.streams_open, -1);
    notif_release(s);
}

/* Writes bytes, or cuts a client that has let its queue fill. */
static void notif_write(notif_stream_t *s, const char *bytes, size_t len)
{
    if (s->sse == NULL || s->ending)
        return;
    if (http_sse_write(s->sse, bytes, len) != 0) {
        HTTP_METRIC_ADD(s->home->loop->metrics->realtime.streams_cut, 1);
        http_sse_cut(s->sse, "cut: its event stream's queue was full (realtime.stream-queue)");
        return;
    }
    s->written_ms = uv_now(s->home->ctx->loop);
}

/* One event; a data value with line breaks goes out as several data lines (SSE joins them). */
static void notif_event(notif_stream_t *s, long long id, const char *event, const char *data, size_t len)
{
    util_buf_t b = {0};
    util_buf_printf(&b, "id: %lld\nevent: %s\n", id, event);
    for (size_t at = 0; at <= len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t n = nl != NULL ? (size_t)(nl - (data + at)) : len - at;
        util_buf_str(&b, "data: ");
        util_buf_put(&b, data + at, n);
        util_buf_str(&b, "\n");
        at += n + 1;
    }
    util_buf_str(&b, "\n");
    if (!b.failed)
        notif_write(s, b.data, b.len);
    util_buf_free(&b);
}

/* An event name as events.c writes them: [a-z.], 1..32. */
static int notif_event_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 32)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)name[i]) && name[i] != '.')
            return 0;
    return 1;
}

/* A session.revoked event about this stream's session (its own, or every one: "*" then
 * shows as its own): written with its session's id, and the stream ends. Other sessions'
 * revocations pass as plain events. Returns 1 when it ended the stream. */
static int notif_revoked(notif_stream_t *s, long long id, const char *data, size_t len)
{
    json_t *doc = json_loadb(data, len, 0, NULL);
    const char *sid = json_string_value(json_object_get(doc, "session_id"));
    int mine = s->sid[0] != '\0' && sid != NULL &&
               (strcmp(sid, s->sid) == 0 || strcmp(sid, HANDLERS_EVENTS_ALL_SESSIONS) == 0);
    json_decref(doc);
    if (!mine)
        return 0;
    json_t *own = json_pack("{s:s}", "session_id", s->sid);
    char *text = own != NULL ? json_dumps(own, JSON_COMPACT) : NULL;
    if (text != NULL)
        notif_event(s, id, "session.revoked", text, strlen(text));
    free(text);
    json_decref(own);
    s->last = id;
    s->ending = 1;
    http_sse_end(s->sse); /* may dispose of the request: s->sse is then NULL */
    return 1;
}

/* Event id of the user's: written, and the stream's last. Returns 1 when written. */
static int notif_deliver(notif_stream_t *s, long long id, const char *event, const char *data, size_t len)
{
    if (id <= s->last || !notif_event_name_ok(event, strlen(event)))
        return 0;
    if (strcmp(event, "session.revoked") != 0 || !notif_revoked(s, id, data, len))
        notif_event(s, id, event, data, len);
    s->last = id;
    return 1;
}

/* One backlog entry {"<id>-0", {"event", e, "data", d}}. */
static void notif_entry(notif_stream_t *s, const redisReply *entry)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING || entry->element[1]->type != REDIS_REPLY_ARRAY ||
        entry->element[1]->elements != 4)
        return;
    const redisReply *fields = entry->element[1];
    if (fields->element[1]->type != REDIS_REPLY_STRING || fields->element[3]->type != REDIS_REPLY_STRING)
        return;
    if (notif_deliver(s, atoll(entry->element[0]->str), fields->element[1]->str, fields->element[3]->str,
                      fields->element[3]->len))
        HTTP_METRIC_ADD(s->home->loop->metrics->realtime.events_from_backlog, 1);
}

static void notif_read(notif_stream_t *s);

static void notif_read_done(void *data, db_status_t status, redisReply *reply)
{
    notif_stream_t *s = data;
    /* s->reading stays set while the entries are written: ending the stream may dispose of
     * the request at once, and s must outlive that until the last line here. */
    if (s->sse != NULL && status == DB_OK && reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 3 && reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_INTEGER && reply->element[2]->type == REDIS_REPLY_ARRAY) {
        long long newest = reply->element[0]->integer;
        if (s->last < 0) {
            s->last = newest;
        } else if (reply->element[1]->integer == 1) {
            char line[96];
            int n = snprintf(line, sizeof(line), "id: %lld\nevent: reset\ndata: {}\n\n", newest);
            notif_write(s, line, (size_t)n);
            s->last = newest;
        }
        for (size_t i = 0; i < reply->element[2]->elements && s->sse != NULL && !s->ending; i++)
            notif_entry(s, reply->element[2]->element[i]);
        /* A full page: there may be more (a long resume). */
        if (reply->element[2]->elements == NOTIF_READ_PAGE)
            s->reread = 1;
    } else {
        s->stale = 1;
    }
    s->reading = 0;
    if (s->reread && s->sse != NULL && !s->ending) {
        s->reread = 0;
        notif_read(s);
    }
    notif_release(s);
}

static void notif_read(notif_stream_t *s)
{
    char seq_key[96], log_key[96], last[24] = "";
    snprintf(seq_key, sizeof(seq_key), "hydrant:rt:seq:%s", s->user);
    snprintf(log_key, sizeof(log_key), "hydrant:rt:log:%s", s->user);
    if (s->last >= 0)
        snprintf(last, sizeof(last), "%lld", s->last);
    const char *argv[] = {"EVAL", notif_script, "2", seq_key, log_key, last, NOTIF_READ_COUNT};
    s->stale = db_redis_command(s->home->redis, notif_read_done, s, 7, argv, NULL) != 0;
    s->reading = !s->stale;
    if (s->reading)
        HTTP_METRIC_ADD(s->home->loop->metrics->realtime.backlog_reads, 1);
}

/* A publication of the stream's user's, or (msg NULL) the bus subscribed anew. */
static void notif_on_bus(void *data, const handlers_bus_msg_t *msg)
{
    notif_stream_t *s = data;
    if (s->sse == NULL || s->ending)
        return;
    s->held = 1;
    if (s->reading) {
        s->reread = 1;
    } else if (msg != NULL && s->last >= 0 && msg->id == s->last + 1) {
        if (notif_deliver(s, msg->id, msg->event, msg->data, msg->data_len))
            HTTP_METRIC_ADD(s->home->loop->metrics->realtime.events_from_bus, 1);
    } else if (msg == NULL || msg->id > s->last) {
        notif_read(s);
    }
    s->held = 0;
    notif_release(s);
}

/* What one tick does to one stream (see the top of the file). */
static void notif_check(notif_stream_t *s, uint64_t now)
{
    const cfg_realtime_t *cfg = &s->home->cfg;
    if (s->sse == NULL || s->ending)
        return;
    if (s->home->ctx->shutdown_requested || now - s->opened_ms >= (uint64_t)cfg->max_stream_s * 1000) {
        s->ending = 1;
        http_sse_end(s->sse); /* may dispose of the request: s->sse is then NULL */
        return;
    }
    if (http_sse_stalled_ms(s->sse, now) > 2 * (uint64_t)cfg->heartbeat_ms) {
        HTTP_METRIC_ADD(s->home->loop->metrics->realtime.streams_cut, 1);
        http_sse_cut(s->sse, "cut: its event stream was not read");
        return;
    }
    if (now - s->written_ms >= (uint64_t)cfg->heartbeat_ms)
        notif_write(s, ":\n\n", 3);
    if (!s->reading && s->sse != NULL && (s->stale || !handlers_bus_live(s->home->loop)))
        notif_read(s);
}

static void notif_tick(uv_timer_t *timer)
{
    notif_loop_t *home = timer->data;
    uint64_t now = uv_now(timer->loop);
    /* A check may end requests (cutting a connection ends all its streams): nothing is
     * freed during the walk, and what was let go is freed after it. The loop's state itself
     * outlives the tick (its timer closes, and frees it, later). */
    home->ticking = 1;
    for (notif_stream_t *s = home->head; s != NULL; s = s->next)
        notif_check(s, now);
    home->ticking = 0;
    for (notif_stream_t *s = home->head, *next; s != NULL; s = next) {
        next = s->next;
        notif_release(s);
    }
}

static notif_loop_t *notif_loop_get(http_request_t *r)
{
    if (notif_here != NULL)
        return notif_here;
    const handlers_app_t *app = r->app;
    notif_loop_t *home = calloc(1, sizeof(*home));
    if (home == NULL)
        return NULL;
    home->redis = r->loop->redis;
    home->loop = r->loop;
    home->ctx = &r->loop->h2o_ctx;
    home->cfg = app->cfg->realtime;
    uv_timer_init(home->ctx->loop, &home->timer);
    home->timer.data = home;
    uv_timer_start(&home->timer, notif_tick, (uint64_t)home->cfg.poll_ms, (uint64_t)home->cfg.poll_ms);
    notif_here = home;
    return home;
}

/* Last-Event-ID: 1..18 digits, else none. */
static long long notif_last_event_id(http_request_t *r)
{
    size_t len = 0;
    const char *v = http_header(r, "last-event-id", &len);
    if (v == NULL || len == 0 || len > 18)
        return -1;
    long long id = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)v[i]))
            return -1;
        id = id * 10 + (v[i] - '0');
    }
    return id;
}

static void notif_open_ok(http_request_t *r, handlers_user_t *user)
{
    if (r->loop->redis == NULL || !db_redis_is_ready(r->loop->redis)) {
        http_respond_error(r, 503, "unavailable", "the event backlog is unavailable", NULL);
        return;
    }
    notif_loop_t *home = notif_loop_get(r);
    notif_stream_t *s = home != NULL ? calloc(1, sizeof(*s)) : NULL;
    if (s == NULL) {
        http_respond_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    s->home = home;
    snprintf(s->user, sizeof(s->user), "%s", user->id);
    snprintf(s->sid, sizeof(s->sid), "%s", user->claims.sid);
    s->last = notif_last_event_id(r);
    s->opened_ms = s->written_ms = uv_now(home->ctx->loop);
    s->next = home->head;
    if (home->head != NULL)
        home->head->prev = s;
    home->head = s;
    s->sse = http_sse_begin(r, (size_t)home->cfg.stream_queue, notif_gone, s);
    if (s->sse == NULL) {
        notif_release(s);
        return;
    }
    HTTP_METRIC_ADD(home->loop->metrics->realtime.streams_open, 1);
    /* Watched before the first read, so that what is published meanwhile reads again. */
    s->watch = handlers_bus_watch(r, s->user, notif_on_bus, s);
    notif_write(s, ": hydrant\n\n", 11); /* the headers and a first line leave at once */
    notif_read(s);
}

static void notif_open(http_request_t *r)
{
    handlers_authenticate_realtime(r, notif_open_ok);
}

int handlers_notifications_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"GET", "/api/v1/notifications/stream", notif_open, 0, HTTP_ROUTE_AUTHENTICATED},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
