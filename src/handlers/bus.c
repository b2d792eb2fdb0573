/*
 * The realtime bus (handlers.h): one Redis subscriber per loop, on HANDLERS_EVENTS_CHANNEL,
 * handing each publication to the watchers of its key on this loop.
 *
 * Every loop of every instance hears every publication and keeps only what its watchers
 * want: one channel keeps the subscription fixed (no SUBSCRIBE per stream, nothing to
 * replay when it reconnects) at the price of parsing publications nobody here watches, which
 * is a few hundred bytes of work per event per loop.
 *
 * The subscriber is made for the first watch and closed with the last one. While it is not
 * subscribed, watchers poll (notifications.c); when it subscribes again every watcher is told
 * (msg NULL) that it may have missed publications. A connection that died without a word is
 * found by the loop's own heartbeat: every BUS_HEARTBEAT_MS the loop publishes "hb <time>" on the
 * channel with its command connection, so a subscriber that heard nothing at all for
 * BUS_SILENCE_MS is reconnected.
 *
 * Watchers may unwatch, and make new watches, from inside a callback: a dispatch marks
 * unwatched entries dead and frees them when it is over.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUS_BUCKETS      1024 /* a power of two */
#define BUS_KEY_MAX      80
#define BUS_EVENT_MAX    32
#define BUS_HEARTBEAT_MS 2000
#define BUS_SILENCE_MS   (3 * BUS_HEARTBEAT_MS)

typedef struct bus_loop bus_loop_t;

struct handlers_bus_watch {
    handlers_bus_watch_t *next; /* in its bucket */
    bus_loop_t *home;
    handlers_bus_fn fn;
    void *data;
    int dead;
    char key[BUS_KEY_MAX];
};

struct bus_loop {
    http_loop_t *loop;
    db_redis_t *subscriber;
    uv_timer_t heartbeat;
    uint64_t heard_ms;
    int watches;     /* live ones */
    int dispatching; /* nesting depth of dispatches */
    int dead;        /* dead entries waiting for the dispatch to end */
    int closing;
    int open; /* the subscriber and the timer, until both closed */
    handlers_bus_watch_t *buckets[BUS_BUCKETS];
};

static _Thread_local bus_loop_t *bus_here;

static uint32_t bus_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h & (BUS_BUCKETS - 1);
}

/* ------------------------------------------------------------ closing ---- */

static void bus_part_closed(bus_loop_t *bus)
{
    if (--bus->open == 0)
        free(bus);
}

static void bus_subscriber_closed(void *data)
{
    bus_part_closed(data);
}

static void bus_timer_closed(uv_handle_t *handle)
{
    bus_part_closed(handle->data);
}

static void bus_on_heartbeat(uv_timer_t *timer);

/* From the timer, never from inside the subscriber's own callbacks: closes the subscriber if
 * nothing watches still, else goes back to beating. */
static void bus_on_unused(uv_timer_t *timer)
{
    bus_loop_t *bus = timer->data;
    if (bus->watches > 0) {
        uv_timer_start(&bus->heartbeat, bus_on_heartbeat, BUS_HEARTBEAT_MS, BUS_HEARTBEAT_MS);
        return;
    }
    bus->closing = 1;
    atomic_store_explicit(&bus->loop->metrics->realtime.bus_live, 0, memory_order_relaxed);
    if (bus_here == bus)
        bus_here = NULL;
    uv_close((uv_handle_t *)&bus->heartbeat, bus_timer_closed);
    db_redis_close(bus->subscriber, bus_subscriber_closed, bus);
}

/* Once nothing watches (and no dispatch is running), the subscriber closes on the next turn
 * of the loop, unless a new watch comes first. */
static void bus_close_if_unused(bus_loop_t *bus)
{
    if (bus->watches > 0 || bus->dispatching > 0 || bus->closing)
        return;
    uv_timer_start(&bus->heartbeat, bus_on_unused, 0, 0);
}

/* Frees the entries unwatched during a dispatch. */
static void bus_sweep(bus_loop_t *bus)
{
    for (int b = 0; bus->dead > 0 && b < BUS_BUCKETS; b++) {
        for (handlers_bus_watch_t **at = &bus->buckets[b]; *at != NULL;) {
            handlers_bus_watch_t *w = *at;
            if (!w->dead) {
                at = &w->next;
                continue;
            }
            *at = w->next;
            free(w);
            bus->dead--;
        }
    }
}

/* ----------------------------------------------------------- dispatch ---- */

static void bus_dispatch_begin(bus_loop_t *bus)
{
    bus->dispatching++;
}

static void bus_dispatch_end(bus_loop_t *bus)
{
    if (--bus->dispatching > 0)
        return;
    if (bus->dead > 0)
        bus_sweep(bus);
    bus_close_if_unused(bus);
}

static void bus_deliver(bus_loop_t *bus, const char *key, size_t key_len, const handlers_bus_msg_t *msg)
{
    bus_dispatch_begin(bus);
    for (handlers_bus_watch_t *w = bus->buckets[bus_hash(key, key_len)]; w != NULL; w = w->next)
        if (!w->dead && strlen(w->key) == key_len && memcmp(w->key, key, key_len) == 0)
            w->fn(w->data, msg);
    bus_dispatch_end(bus);
}

/* Every watcher: the subscription is new, publications may have been missed. */
static void bus_resync(bus_loop_t *bus)
{
    bus_dispatch_begin(bus);
    for (int b = 0; b < BUS_BUCKETS; b++)
        for (handlers_bus_watch_t *w = bus->buckets[b]; w != NULL; w = w->next)
            if (!w->dead)
                w->fn(w->data, NULL);
    bus_dispatch_end(bus);
}

/* Splits off the text before the next space: its length, or -1 when there is no space. */
static long bus_field(const char *p, size_t len)
{
    const char *space = memchr(p, ' ', len);
    return space != NULL ? space - p : -1;
}

/* A loop's heartbeat, "hb <microseconds since the epoch when it was sent>": the way through
 * Redis to this loop is the fan-out's lag (hosts' clocks apart add to it). */
static void bus_heard_heartbeat(bus_loop_t *bus, const char *payload, size_t len)
{
    char text[24];
    if (len - 3 >= sizeof(text))
        return;
    memcpy(text, payload + 3, len - 3);
    text[len - 3] = '\0';
    long long sent = atoll(text), now = (long long)util_now_us();
    atomic_store_explicit(&bus->loop->metrics->realtime.bus_lag_us, now > sent ? now - sent : 0,
                          memory_order_relaxed);
}

/* "<user> <id> <event> <data>", "room:<id> <data>", or a heartbeat "hb <time>". */
static void bus_on_publication(void *data, const char *payload, size_t len)
{
    bus_loop_t *bus = data;
    http_metrics_realtime_t *m = &bus->loop->metrics->realtime;
    bus->heard_ms = uv_now(bus->loop->h2o_ctx.loop);
    if (payload == NULL) {
        HTTP_METRIC_ADD(m->bus_subscribed, 1);
        atomic_store_explicit(&m->bus_live, 1, memory_order_relaxed);
        bus_resync(bus);
        return;
    }
    HTTP_METRIC_ADD(m->publications_heard, 1);
    if (len > 3 && memcmp(payload, "hb ", 3) == 0) {
        bus_heard_heartbeat(bus, payload, len);
        return;
    }
    long key_len = bus_field(payload, len);
    if (key_len <= 0 || key_len >= BUS_KEY_MAX)
        return;
    const char *rest = payload + key_len + 1;
    size_t rest_len = len - (size_t)key_len - 1;
    handlers_bus_msg_t msg = {.event = ""};
    char event[BUS_EVENT_MAX + 1];
    if (strncmp(payload, HANDLERS_BUS_ROOM, sizeof(HANDLERS_BUS_ROOM) - 1) != 0) {
        long id_len = bus_field(rest, rest_len);
        if (id_len <= 0 || id_len > 18)
            return;
        long long id = 0;
        for (long i = 0; i < id_len; i++) {
            if (rest[i] < '0' || rest[i] > '9')
                return;
            id = id * 10 + (rest[i] - '0');
        }
        rest += id_len + 1;
        rest_len -= (size_t)id_len + 1;
        long event_len = bus_field(rest, rest_len);
        if (event_len <= 0 || event_len > BUS_EVENT_MAX)
            return;
        memcpy(event, rest, (size_t)event_len);
        event[event_len] = '\0';
        msg.id = id;
        msg.event = event;
        rest += event_len + 1;
        rest_len -= (size_t)event_len + 1;
    }
    msg.data = rest;
    msg.data_len = rest_len;
    bus_deliver(bus, payload, (size_t)key_len, &msg);
}

/* ---------------------------------------------------------- heartbeat ---- */

static void bus_published(void *data, db_status_t status, redisReply *reply)
{
    (void)data;
    (void)status;
    (void)reply;
}

static void bus_on_heartbeat(uv_timer_t *timer)
{
    bus_loop_t *bus = timer->data;
    uint64_t now = uv_now(timer->loop);
    atomic_store_explicit(&bus->loop->metrics->realtime.bus_live, db_redis_is_ready(bus->subscriber),
                          memory_order_relaxed);
    if (db_redis_is_ready(bus->subscriber) && now - bus->heard_ms > BUS_SILENCE_MS) {
        bus->heard_ms = now;
        db_redis_reconnect(bus->subscriber);
    }
    if (bus->loop->redis != NULL) {
        char beat[32];
        snprintf(beat, sizeof(beat), "hb %lld", (long long)util_now_us());
        const char *argv[] = {"PUBLISH", HANDLERS_EVENTS_CHANNEL, beat};
        db_redis_command(bus->loop->redis, bus_published, NULL, 3, argv, NULL);
    }
}

/* ------------------------------------------------------------- public ---- */

static bus_loop_t *bus_get(http_loop_t *loop)
{
    if (bus_here != NULL)
        return bus_here; /* a closing one is no longer here */
    if (loop->redis_options == NULL)
        return NULL;
    bus_loop_t *bus = calloc(1, sizeof(*bus));
    if (bus == NULL)
        return NULL;
    bus->loop = loop;
    bus->subscriber = db_redis_subscriber_new(loop->h2o_ctx.loop, loop->redis_options,
                                              HANDLERS_EVENTS_CHANNEL, bus_on_publication, bus);
    if (bus->subscriber == NULL) {
        free(bus);
        return NULL;
    }
    bus->open = 2;
    bus->heard_ms = uv_now(loop->h2o_ctx.loop);
    uv_timer_init(loop->h2o_ctx.loop, &bus->heartbeat);
    bus->heartbeat.data = bus;
    uv_timer_start(&bus->heartbeat, bus_on_heartbeat, BUS_HEARTBEAT_MS, BUS_HEARTBEAT_MS);
    bus_here = bus;
    return bus;
}

handlers_bus_watch_t *handlers_bus_watch(http_request_t *r, const char *key, handlers_bus_fn fn, void *data)
{
    size_t len = strlen(key);
    if (len == 0 || len >= BUS_KEY_MAX || memchr(key, ' ', len) != NULL)
        return NULL;
    bus_loop_t *bus = bus_get(r->loop);
    handlers_bus_watch_t *w = bus != NULL ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL) {
        if (bus != NULL)
            bus_close_if_unused(bus);
        return NULL;
    }
    memcpy(w->key, key, len + 1);
    w->home = bus;
    w->fn = fn;
    w->data = data;
    uint32_t b = bus_hash(key, len);
    w->next = bus->buckets[b];
    bus->buckets[b] = w;
    bus->watches++;
    return w;
}

void handlers_bus_unwatch(handlers_bus_watch_t *w)
{
    if (w == NULL || w->dead)
        return;
    bus_loop_t *bus = w->home;
    bus->watches--;
    if (bus->dispatching > 0) {
        w->dead = 1;
        bus->dead++;
        return;
    }
    handlers_bus_watch_t **at = &bus->buckets[bus_hash(w->key, strlen(w->key))];
    while (*at != w)
        at = &(*at)->next;
    *at = w->next;
    free(w);
    bus_close_if_unused(bus);
}

int handlers_bus_live(const http_loop_t *loop)
{
    return bus_here != NULL && bus_here->loop == loop && db_redis_is_ready(bus_here->subscriber);
}

void handlers_bus_publish_room(http_loop_t *loop, const char *room_id, const char *data)
{
    if (loop->redis == NULL)
        return;
    util_buf_t b = {0};
    util_buf_printf(&b, HANDLERS_BUS_ROOM "%s %s", room_id, data);
    if (!b.failed) {
        const char *argv[] = {"PUBLISH", HANDLERS_EVENTS_CHANNEL, b.data};
        const size_t lens[] = {7, sizeof(HANDLERS_EVENTS_CHANNEL) - 1, b.len};
        db_redis_command(loop->redis, bus_published, NULL, 3, argv, lens);
    }
    util_buf_free(&b);
}
