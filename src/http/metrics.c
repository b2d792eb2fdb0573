/*
 * Request metrics: each loop writes its own shard with relaxed atomics (no contention);
 * a scrape sums the shards and renders the Prometheus text format.
 */
#include "http/http.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const double http_metrics_bucket_bounds[HTTP_METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* The statuses the contract uses get their own slot; anything else shares slot 0 and is
 * rendered by class ("2xx", ...) would lose information, so it renders as "other". */
static const int http_status_slots[] = {0,   101, 200, 201, 202, 204, 206, 301, 302, 304, 400,
                                        401, 403, 404, 405, 408, 409, 411, 413, 414, 415, 416,
                                        422, 426, 429, 431, 500, 501, 502, 503, 504, 507};
#define HTTP_STATUS_SLOT_COUNT (sizeof(http_status_slots) / sizeof(http_status_slots[0]))

static int http_metrics_status_slot(int status)
{
    for (size_t i = 1; i < HTTP_STATUS_SLOT_COUNT; i++)
        if (http_status_slots[i] == status)
            return (int)i;
    return 0;
}

void http_metrics_observe(http_metrics_shard_t *shard, int route_index, int status, uint64_t duration_us)
{
    if (route_index < 0 || route_index >= HTTP_MAX_ROUTES + 2)
        route_index = HTTP_METRICS_ROUTE_OTHER;
    __typeof__(shard->routes[0]) *r = &shard->routes[route_index];
    atomic_fetch_add_explicit(&r->count_by_status[http_metrics_status_slot(status)], 1, memory_order_relaxed);
    double seconds = (double)duration_us / 1e6;
    int b = 0;
    while (b < HTTP_METRICS_BUCKETS && seconds > http_metrics_bucket_bounds[b])
        b++;
    if (b < HTTP_METRICS_BUCKETS)
        atomic_fetch_add_explicit(&r->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, duration_us, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
}

/* Label values are route templates and methods; escape them anyway. */
static void http_label_escape(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *in != '\0' && o + 3 < outlen; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

typedef struct {
    uint64_t by_status[HTTP_METRICS_STATUS_CLASSES];
    uint64_t buckets[HTTP_METRICS_BUCKETS];
    uint64_t sum_us, count;
} http_route_totals_t;

static void http_sum_route(http_metrics_shard_t *const *shards, int nshards, int route,
                           http_route_totals_t *t)
{
    memset(t, 0, sizeof(*t));
    for (int s = 0; s < nshards; s++) {
        __typeof__(shards[s]->routes[0]) *r = &shards[s]->routes[route];
        for (size_t i = 0; i < HTTP_STATUS_SLOT_COUNT; i++)
            t->by_status[i] += atomic_load_explicit(&r->count_by_status[i], memory_order_relaxed);
        for (int b = 0; b < HTTP_METRICS_BUCKETS; b++)
            t->buckets[b] += atomic_load_explicit(&r->buckets[b], memory_order_relaxed);
        t->sum_us += atomic_load_explicit(&r->sum_us, memory_order_relaxed);
        t->count += atomic_load_explicit(&r->count, memory_order_relaxed);
    }
}

static void http_route_labels(const http_router_t *router, int route, char *method, char *pattern, size_t len)
{
    const http_route_t *r = http_router_route(router, route);
    if (r != NULL) {
        http_label_escape(r->method, method, len);
        http_label_escape(r->pattern, pattern, len);
    } else {
        snprintf(method, len, "ANY");
        snprintf(pattern, len, "%s", route == HTTP_METRICS_ROUTE_UNMATCHED ? "unmatched" : "other");
    }
}

static void http_render_counters(util_buf_t *out, const char *method, const char *pattern,
                                 const http_route_totals_t *t)
{
    for (size_t i = 0; i < HTTP_STATUS_SLOT_COUNT; i++) {
        if (t->by_status[i] == 0)
            continue;
        char status[16];
        if (i == 0)
            snprintf(status, sizeof(status), "other");
        else
            snprintf(status, sizeof(status), "%d", http_status_slots[i]);
        util_buf_printf(out, "http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n", method,
                        pattern, status, (unsigned long long)t->by_status[i]);
    }
}

/* WebSockets (ws.c): open sockets, messages each way, closes by code. */
static void http_render_ws(util_buf_t *out, http_metrics_shard_t *const *shards, int nshards)
{
    static const char *const codes[HTTP_WS_CLOSE_SLOTS] = {"1000", "1001", "1008", "1009", "1006", "other"};
    long long open = 0;
    unsigned long long in = 0, sent = 0, closes[HTTP_WS_CLOSE_SLOTS] = {0};
    for (int s = 0; s < nshards; s++) {
        open += (long long)atomic_load_explicit(&shards[s]->ws_open, memory_order_relaxed);
        in += atomic_load_explicit(&shards[s]->ws_messages_in, memory_order_relaxed);
        sent += atomic_load_explicit(&shards[s]->ws_messages_out, memory_order_relaxed);
        for (int i = 0; i < HTTP_WS_CLOSE_SLOTS; i++)
            closes[i] += atomic_load_explicit(&shards[s]->ws_closes[i], memory_order_relaxed);
    }
    util_buf_printf(out,
                    "# HELP hydrant_ws_open WebSockets currently open.\n"
                    "# TYPE hydrant_ws_open gauge\n"
                    "hydrant_ws_open %lld\n"
                    "# HELP hydrant_ws_messages_total WebSocket messages received from clients (in) and "
                    "queued to them (out).\n"
                    "# TYPE hydrant_ws_messages_total counter\n"
                    "hydrant_ws_messages_total{direction=\"in\"} %llu\n"
                    "hydrant_ws_messages_total{direction=\"out\"} %llu\n"
                    "# HELP hydrant_ws_closes_total WebSockets ended, by close code (1006: without a closing "
                    "handshake).\n"
                    "# TYPE hydrant_ws_closes_total counter\n",
                    open, in, sent);
    for (int i = 0; i < HTTP_WS_CLOSE_SLOTS; i++)
        util_buf_printf(out, "hydrant_ws_closes_total{code=\"%s\"} %llu\n", codes[i], closes[i]);
}

static void http_render_histogram(util_buf_t *out, const char *pattern, const http_route_totals_t *t)
{
    uint64_t cumulative = 0;
    for (int b = 0; b < HTTP_METRICS_BUCKETS; b++) {
        cumulative += t->buckets[b];
        util_buf_printf(out, "http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", pattern,
                        http_metrics_bucket_bounds[b], (unsigned long long)cumulative);
    }
    util_buf_printf(out, "http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", pattern,
                    (unsigned long long)t->count);
    util_buf_printf(out, "http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", pattern,
                    (double)t->sum_us / 1e6);
    util_buf_printf(out, "http_request_duration_seconds_count{route=\"%s\"} %llu\n", pattern,
                    (unsigned long long)t->count);
}

/* The sum over the shards of the atomic 64-bit counter at offset in each. */
static long long http_sum(http_metrics_shard_t *const *shards, int nshards, size_t offset)
{
    long long sum = 0;
    for (int i = 0; i < nshards; i++)
        sum += (long long)atomic_load_explicit((atomic_int_fast64_t *)((char *)shards[i] + offset),
                                               memory_order_relaxed);
    return sum;
}
/* The largest over the shards of the atomic 64-bit gauge at offset in each. */
static long long http_max(http_metrics_shard_t *const *shards, int nshards, size_t offset)
{
    long long max = 0;
    for (int i = 0; i < nshards; i++) {
        long long v = (long long)atomic_load_explicit((atomic_int_fast64_t *)((char *)shards[i] + offset),
                                                      memory_order_relaxed);
        max = v > max ? v : max;
    }
    return max;
}
#define HTTP_SUM(field) http_sum(shards, nshards, offsetof(http_metrics_shard_t, field))

static void http_render_realtime(util_buf_t *out, http_metrics_shard_t *const *shards, int nshards)
{
    util_buf_printf(
        out,
        "# HELP hydrant_realtime_streams_open Notification streams open.\n"
        "# TYPE hydrant_realtime_streams_open gauge\n"
        "hydrant_realtime_streams_open %lld\n"
        "# HELP hydrant_realtime_events_delivered_total Events written to streams, by where they were read: "
        "straight from the bus's publication, or from the user's backlog.\n"
        "# TYPE hydrant_realtime_events_delivered_total counter\n"
        "hydrant_realtime_events_delivered_total{source=\"bus\"} %lld\n"
        "hydrant_realtime_events_delivered_total{source=\"backlog\"} %lld\n"
        "# HELP hydrant_realtime_backlog_reads_total Reads of users' backlogs (resumes, gaps, polling).\n"
        "# TYPE hydrant_realtime_backlog_reads_total counter\n"
        "hydrant_realtime_backlog_reads_total %lld\n"
        "# HELP hydrant_realtime_streams_cut_total Streams cut because their client did not read them.\n"
        "# TYPE hydrant_realtime_streams_cut_total counter\n"
        "hydrant_realtime_streams_cut_total %lld\n"
        "# HELP hydrant_realtime_publications_total Publications the loops' subscribers heard.\n"
        "# TYPE hydrant_realtime_publications_total counter\n"
        "hydrant_realtime_publications_total %lld\n"
        "# HELP hydrant_realtime_bus_subscriptions_total Times a loop's subscriber (re)subscribed.\n"
        "# TYPE hydrant_realtime_bus_subscriptions_total counter\n"
        "hydrant_realtime_bus_subscriptions_total %lld\n"
        "# HELP hydrant_realtime_bus_live Loops whose subscriber is subscribed (the others poll).\n"
        "# TYPE hydrant_realtime_bus_live gauge\n"
        "hydrant_realtime_bus_live %lld\n"
        "# HELP hydrant_realtime_bus_lag_seconds The slowest loop's last heartbeat through Redis "
        "(publication "
        "to its subscriber: the fan-out's lag).\n"
        "# TYPE hydrant_realtime_bus_lag_seconds gauge\n"
        "hydrant_realtime_bus_lag_seconds %.6f\n",
        HTTP_SUM(realtime.streams_open), HTTP_SUM(realtime.events_from_bus),
        HTTP_SUM(realtime.events_from_backlog), HTTP_SUM(realtime.backlog_reads),
        HTTP_SUM(realtime.streams_cut), HTTP_SUM(realtime.publications_heard),
        HTTP_SUM(realtime.bus_subscribed), HTTP_SUM(realtime.bus_live),
        (double)http_max(shards, nshards, offsetof(http_metrics_shard_t, realtime.bus_lag_us)) / 1e6);
}

/* Each loop's open connections (a shard's index is its loop's), and the hand-offs that keep
 * them level when SO_REUSEPORT's hash does not (src/server/handoff.c). */
static void http_render_loops(util_buf_t *out, http_metrics_shard_t *const *shards, int nshards)
{
    util_buf_printf(out, "# HELP hydrant_loop_connections_open Client connections currently open, by event "
                         "loop.\n"
                         "# TYPE hydrant_loop_connections_open gauge\n");
    for (int s = 0; s < nshards; s++)
        util_buf_printf(out, "hydrant_loop_connections_open{loop=\"%d\"} %lld\n", s,
                        (long long)atomic_load_explicit(&shards[s]->connections_open, memory_order_relaxed));
    util_buf_printf(out,
                    "# HELP hydrant_connections_handed_over_total Connections accepted by one event loop "
                    "and handed to a less loaded one.\n"
                    "# TYPE hydrant_connections_handed_over_total counter\n"
                    "hydrant_connections_handed_over_total %lld\n",
                    HTTP_SUM(connections_handed_over));
}

void http_metrics_render(util_buf_t *out, const http_router_t *router, http_metrics_shard_t *const *shards,
                         int nshards)
{
    int nroutes = http_router_count(router);
    int indexes[HTTP_MAX_ROUTES + 2], n = 0;
    for (int i = 0; i < nroutes; i++)
        indexes[n++] = i;
    indexes[n++] = HTTP_METRICS_ROUTE_UNMATCHED;
    indexes[n++] = HTTP_METRICS_ROUTE_OTHER;
    http_route_totals_t *totals = calloc((size_t)n, sizeof(*totals));
    if (totals == NULL)
        return;
    for (int i = 0; i < n; i++)
        http_sum_route(shards, nshards, indexes[i], &totals[i]);
    char method[64], pattern[512];
    util_buf_printf(out, "# HELP http_requests_total HTTP requests answered, by route template and status.\n"
                         "# TYPE http_requests_total counter\n");
    for (int i = 0; i < n; i++) {
        http_route_labels(router, indexes[i], method, pattern, sizeof(pattern));
        http_render_counters(out, method, pattern, &totals[i]);
    }
    util_buf_printf(out,
                    "# HELP http_request_duration_seconds Time from request to response, by route template.\n"
                    "# TYPE http_request_duration_seconds histogram\n");
    for (int i = 0; i < n; i++) {
        if (totals[i].count == 0)
            continue;
        http_route_labels(router, indexes[i], method, pattern, sizeof(pattern));
        http_render_histogram(out, pattern, &totals[i]);
    }
    free(totals);
    long long open = 0;
    unsigned long long total = 0, abandoned = 0, throttled = 0, cut = 0, dropped_db = 0, dropped_cpu = 0,
                       refused = 0, over_budget = 0, stalled = 0, unread = 0;
    long long body_bytes = 0;
    for (int s = 0; s < nshards; s++) {
        open += (long long)atomic_load_explicit(&shards[s]->connections_open, memory_order_relaxed);
        total +=
            (unsigned long long)atomic_load_explicit(&shards[s]->connections_total, memory_order_relaxed);
        abandoned += atomic_load_explicit(&shards[s]->requests_abandoned, memory_order_relaxed);
        throttled += atomic_load_explicit(&shards[s]->connections_throttled, memory_order_relaxed);
        cut += atomic_load_explicit(&shards[s]->connections_cut, memory_order_relaxed);
        dropped_db += atomic_load_explicit(&shards[s]->dropped_db, memory_order_relaxed);
        dropped_cpu += atomic_load_explicit(&shards[s]->dropped_cpu, memory_order_relaxed);
        refused += atomic_load_explicit(&shards[s]->connections_refused, memory_order_relaxed);
        body_bytes += (long long)atomic_load_explicit(&shards[s]->body_bytes, memory_order_relaxed);
        over_budget += atomic_load_explicit(&shards[s]->bodies_over_budget, memory_order_relaxed);
        stalled += atomic_load_explicit(&shards[s]->bodies_stalled, memory_order_relaxed);
        unread += atomic_load_explicit(&shards[s]->answers_unread, memory_order_relaxed);
    }
    util_buf_printf(
        out,
        "# HELP http_connections_open Client connections currently open.\n"
        "# TYPE http_connections_open gauge\n"
        "http_connections_open %lld\n"
        "# HELP http_connections_total Client connections accepted since start.\n"
        "# TYPE http_connections_total counter\n"
        "http_connections_total %llu\n"
        "# HELP hydrant_http_requests_abandoned_total Requests disposed before they were answered "
        "(streams reset by the client, or by libh2o for a client's protocol error).\n"
        "# TYPE hydrant_http_requests_abandoned_total counter\n"
        "hydrant_http_requests_abandoned_total %llu\n"
        "# HELP hydrant_http_connections_throttled_total Connections whose new requests were "
        "refused after they abandoned too many.\n"
        "# TYPE hydrant_http_connections_throttled_total counter\n"
        "hydrant_http_connections_throttled_total %llu\n"
        "# HELP hydrant_http_connections_cut_total Connections closed by hydrant for abuse.\n"
        "# TYPE hydrant_http_connections_cut_total counter\n"
        "hydrant_http_connections_cut_total %llu\n"
        "# HELP hydrant_http_work_dropped_total Work of requests whose client had left, dropped before it "
        "started.\n"
        "# TYPE hydrant_http_work_dropped_total counter\n"
        "hydrant_http_work_dropped_total{kind=\"database\"} %llu\n"
        "hydrant_http_work_dropped_total{kind=\"cpu\"} %llu\n"
        "# HELP hydrant_http_connections_refused_total Connections closed at once: their address was over "
        "its share.\n"
        "# TYPE hydrant_http_connections_refused_total counter\n"
        "hydrant_http_connections_refused_total %llu\n"
        "# HELP hydrant_http_request_body_bytes Request bodies in flight: being read, or held by a "
        "request in progress.\n"
        "# TYPE hydrant_http_request_body_bytes gauge\n"
        "hydrant_http_request_body_bytes %lld\n"
        "# HELP hydrant_http_bodies_cut_total Connections cut for their request bodies (also counted in "
        "hydrant_http_connections_cut_total).\n"
        "# TYPE hydrant_http_bodies_cut_total counter\n"
        "hydrant_http_bodies_cut_total{reason=\"budget\"} %llu\n"
        "hydrant_http_bodies_cut_total{reason=\"stalled\"} %llu\n"
        "# HELP hydrant_http_answers_unread_total Connections cut because they did not read their answers "
        "(limits.send-min-rate over limits.send-timeout-ms).\n"
        "# TYPE hydrant_http_answers_unread_total counter\n"
        "hydrant_http_answers_unread_total %llu\n",
        open, total, abandoned, throttled, cut, dropped_db, dropped_cpu, refused, body_bytes, over_budget,
        stalled, unread);
    http_render_loops(out, shards, nshards);
    http_render_realtime(out, shards, nshards);
    http_render_ws(out, shards, nshards);
}
