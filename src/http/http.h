/*
 * The HTTP layer between libh2o and the handlers: routing, request limits and JSON bodies,
 * the contract's error envelope, request ids, client addresses, metrics and the access log.
 *
 * A handler receives an http_request_t and answers it exactly once with http_respond_*()
 * (possibly later, from a database or Redis callback on the same loop thread). The request
 * object outlives the client: when the client goes away, r->h2o becomes NULL and responding
 * becomes a no-op, so late callbacks never touch freed libh2o memory.
 */
#ifndef HYDRANT_HTTP_H
#define HYDRANT_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <jansson.h>

#include "db/db.h"
#include "util/util.h"

/* ---------------------------------------------------------------- router (pure) ---- */

#define HTTP_MAX_PARAMS 8
#define HTTP_MAX_ROUTES 128
#define HTTP_ALLOW_LEN  64

struct http_request;
typedef void (*http_handler_fn)(struct http_request *r);

enum {
    HTTP_ROUTE_JSON_BODY = 1 << 0,     /* body must be application/json and parse to an object */
    HTTP_ROUTE_OPTIONAL_BODY = 1 << 1, /* with JSON_BODY: an empty body is allowed */
    /* The handler authenticates first (contract v1.1: no credentials is 401 whatever the
     * body), so the body rules wait until it calls http_request_take_body. */
    HTTP_ROUTE_AUTHENTICATED = 1 << 2,
};

typedef struct {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/v1/files/{id}/content" */
    http_handler_fn handler;
    size_t max_body; /* 0: the server's default JSON limit */
    unsigned flags;
} http_route_t;

typedef struct {
    const char *name; /* points into the route's pattern storage */
    size_t name_len;
    const char *value; /* points into the matched path */
    size_t value_len;
} http_param_t;

typedef enum { HTTP_MATCH_FOUND, HTTP_MATCH_NOT_FOUND, HTTP_MATCH_METHOD_NOT_ALLOWED } http_match_status_t;

typedef struct {
    http_match_status_t status;
    const http_route_t *route; /* when FOUND */
    int route_index;           /* when FOUND: index for metrics */
    http_param_t params[HTTP_MAX_PARAMS];
    int nparams;
    char allow[HTTP_ALLOW_LEN]; /* when METHOD_NOT_ALLOWED: "GET, POST" */
} http_match_t;

typedef struct http_router http_router_t;

http_router_t *http_router_new(void);
/* Copies the route. Fails (-1, message in err) on a malformed pattern, a duplicate
 * method+pattern or too many routes. */
int http_router_add(http_router_t *router, const http_route_t *route, char *err, size_t errlen);
/* path excludes the query string. A GET route also answers HEAD. */
void http_router_match(const http_router_t *router, const char *method, size_t method_len, const char *path,
                       size_t path_len, http_match_t *out);
int http_router_count(const http_router_t *router);
const http_route_t *http_router_route(const http_router_t *router, int index);
void http_router_free(http_router_t *router);

/* ------------------------------------------------------------ JSON bodies (pure) ---- */

typedef struct {
    size_t max_bytes;
    int max_depth;
    size_t max_string;
} http_json_limits_t;

typedef enum {
    HTTP_JSON_OK = 0,
    HTTP_JSON_INVALID,         /* not JSON, or not an object: 400 invalid_json */
    HTTP_JSON_TOO_LARGE,       /* 413 payload_too_large */
    HTTP_JSON_TOO_DEEP,        /* 400 invalid_json with a reason */
    HTTP_JSON_STRING_TOO_LONG, /* 413 */
    HTTP_JSON_NUL,             /* valid JSON, but a string holds \u0000: 422 validation_failed */
} http_json_status_t;

/* Parses an object body into *out. Depth is checked before jansson builds anything, so a
 * hostile "[[[[..." costs nothing. A \u0000 inside a string is valid JSON, but no field
 * keeps one (PostgreSQL text and jsonb refuse NUL, and a C string would end at it):
 * HTTP_JSON_NUL, and *out is then the 422 details instead of the body, naming each such
 * string by its path ("bio", "a.b", "list[2]", at most 16) and a field name holding one as
 * it was sent. */
http_json_status_t http_json_parse_object(const char *body, size_t len, const http_json_limits_t *limits,
                                          json_t **out);

/* Does the Content-Type say JSON ("application/json" with optional parameters)? */
int http_is_json_content_type(const char *value, size_t len);

/* ------------------------------------------------- errors, ids, addresses (pure) ---- */

/* Builds {"error":{"code":..,"message":..,"details":..}}; details may be NULL (it is
 * consumed when not NULL). Returns a malloc'd string. */
char *http_error_body(const char *code, const char *message, json_t *details);

/* A client's X-Request-Id is kept when 1..128 chars of [A-Za-z0-9._-]. */
int http_request_id_is_sane(const char *value, size_t len);
/* 32 hex chars from a per-thread CSPRNG-seeded generator; buf must hold 33 bytes. */
void http_request_id_generate(char *buf);

/* The client's address: the peer, or the right-most X-Forwarded-For entry that is not a
 * trusted proxy, when the peer itself is trusted. out must hold 46 bytes. */
void http_client_address(const char *peer, const char *xff, size_t xff_len, char *const *trusted,
                         int ntrusted, char *out, size_t outlen);
/* Is the address literal one of the trusted proxies? */
int http_address_is_trusted(const char *text, char *const *trusted, int ntrusted);

/* ------------------------------------------------------------------ metrics ---- */

#define HTTP_METRICS_BUCKETS        14
#define HTTP_METRICS_STATUS_CLASSES 64

/* WebSocket closes by code, for the metrics (ws.c). */
typedef enum {
    HTTP_WS_CLOSE_NORMAL,     /* 1000 */
    HTTP_WS_CLOSE_GOING_AWAY, /* 1001 */
    HTTP_WS_CLOSE_POLICY,     /* 1008 */
    HTTP_WS_CLOSE_TOO_BIG,    /* 1009 */
    HTTP_WS_CLOSE_ABNORMAL,   /* 1006: no closing handshake (cut, or the client left) */
    HTTP_WS_CLOSE_OTHER,
    HTTP_WS_CLOSE_SLOTS
} http_ws_close_slot_t;
/* Notification streams and the realtime bus (src/handlers: notifications.c, bus.c). */
typedef struct {
    atomic_int_fast64_t streams_open;
    atomic_int_fast64_t events_from_bus;     /* written straight from a publication */
    atomic_int_fast64_t events_from_backlog; /* written from a backlog read */
    atomic_int_fast64_t backlog_reads;
    atomic_int_fast64_t streams_cut; /* clients that did not read (queue full, send stalled) */
    atomic_int_fast64_t publications_heard;
    atomic_int_fast64_t bus_subscribed; /* subscriptions (re)established: each one a resync */
    atomic_int_fast64_t bus_live;       /* 1 while this loop's subscriber is subscribed */
    atomic_int_fast64_t bus_lag_us;     /* the last heartbeat's way through Redis to this loop */
} http_metrics_realtime_t;

/* Per-loop-thread shard; written by its own thread only (relaxed atomics), summed on scrape. */
typedef struct {
    struct {
        atomic_uint_fast64_t count_by_status[HTTP_METRICS_STATUS_CLASSES]; /* see http_metrics_status_slot */
        atomic_uint_fast64_t buckets[HTTP_METRICS_BUCKETS];                /* non-cumulative */
        atomic_uint_fast64_t sum_us;
        atomic_uint_fast64_t count;
    } routes[HTTP_MAX_ROUTES + 2]; /* +2: unmatched (404/405) and internal */
    atomic_int_fast64_t connections_open;
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t connections_handed_over; /* accepted here, served by another loop */
    atomic_uint_fast64_t requests_abandoned;      /* disposed before an answer (conn.c) */
    atomic_uint_fast64_t connections_throttled;   /* out of budget */
    atomic_uint_fast64_t connections_cut;         /* closed by hydrant */
    atomic_uint_fast64_t dropped_db, dropped_cpu; /* work of departed requests never started */
    atomic_uint_fast64_t connections_refused;     /* over a per-address limit */
    atomic_int_fast64_t body_bytes;               /* request bodies in flight (conn_body.c) */
    atomic_uint_fast64_t bodies_over_budget;      /* connections cut for their bodies' bytes */
    atomic_uint_fast64_t bodies_stalled;          /* connections cut for a body that stopped */
    atomic_uint_fast64_t answers_unread;          /* connections cut for answers left unread */
    atomic_int_fast64_t ws_open;                  /* WebSockets (ws.c) */
    atomic_uint_fast64_t ws_messages_in, ws_messages_out;
    atomic_uint_fast64_t ws_closes[HTTP_WS_CLOSE_SLOTS]; /* by code, see http_ws_close_slot_t */
    http_metrics_realtime_t realtime;
} http_metrics_shard_t;

/* Adds n to a counter of the calling loop's own shard (relaxed: only its thread writes). */
#define HTTP_METRIC_ADD(counter, n) atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed)

#define HTTP_METRICS_ROUTE_UNMATCHED HTTP_MAX_ROUTES
#define HTTP_METRICS_ROUTE_OTHER     (HTTP_MAX_ROUTES + 1)

extern const double http_metrics_bucket_bounds[HTTP_METRICS_BUCKETS]; /* seconds, upper bounds */

void http_metrics_observe(http_metrics_shard_t *shard, int route_index, int status, uint64_t duration_us);

/* Appends Prometheus text for the HTTP families to out. Gauges from other subsystems are
 * appended by their owners. */
void http_metrics_render(util_buf_t *out, const http_router_t *router, http_metrics_shard_t *const *shards,
                         int nshards);

/* ---------------------------------------------------------------- access log ---- */

typedef struct {
    const char *request_id;
    const char *method;
    const char *route; /* the template, or "unmatched" */
    int status;
    uint64_t bytes;
    uint64_t duration_us;
    const char *protocol; /* "HTTP/2", "HTTP/1.1" */
    const char *client;
    int64_t unix_ms;
} http_log_entry_t;

/* One JSON line, newline-terminated, into buf. Returns the length or -1 if it does not fit.
 * No printf and no gmtime: it runs for every request on the loops. */
int http_log_format(const http_log_entry_t *entry, char *buf, size_t buflen);
struct http_loop;
/* util_log for an event loop: the line goes to the loop's error ring and the log writer
 * writes it to stderr (never blocking the loop; dropped and counted when the ring is full). */
void http_loop_log(struct http_loop *loop, util_log_level_t level, const char *component, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------- the log writer ---- */
/*
 * Log lines leave the loops through bounded buffers and are written by one thread per
 * process, so a slow reader of the access log or of stderr never stalls a loop. Each loop has
 * a ring per stream (one producer: the loop; one consumer: the writer). A line that does not
 * fit is dropped and counted; appending never blocks and makes no system call.
 */

typedef enum { HTTP_LOG_ACCESS, HTTP_LOG_ERROR, HTTP_LOG_NSTREAMS } http_log_stream_t;
typedef struct http_log_ring http_log_ring_t;
typedef struct http_log_writer http_log_writer_t;

/* Starts the writer thread: per loop an access ring of access_bytes writing to access_fd and
 * an error ring of error_bytes writing to error_fd (a stream whose fd is < 0 has no rings).
 * The writer writes whatever the rings hold, and sleeps at most 100 ms when they are empty.
 * The fds stay the caller's. NULL when out of memory or threads. */
http_log_writer_t *http_log_writer_start(int access_fd, int error_fd, int nloops, size_t access_bytes,
                                         size_t error_bytes);
/* The ring of a loop and stream, or NULL (no such stream). */
http_log_ring_t *http_log_writer_ring(http_log_writer_t *w, int loop, http_log_stream_t stream);
/* Lines of a stream dropped so far, all loops (full rings, or a sink whose write failed). */
uint64_t http_log_writer_dropped(const http_log_writer_t *w, http_log_stream_t stream);
/* Once nothing appends any more: writes out everything the rings hold, stops the thread and
 * frees w. Returns 0, or -1 when a sink still blocked after timeout_ms: the thread then frees
 * w itself if its write ever returns, and the fds must stay open. */
int http_log_writer_stop(http_log_writer_t *w, int timeout_ms);

/* Appends one whole line; only the ring's loop thread calls this. Returns 0, or -1 when the
 * line does not fit (it is dropped and counted). Never blocks. */
int http_log_ring_append(http_log_ring_t *ring, const char *line, size_t len);
/* Counts a line the caller chose not to write (as one that did not fit). */
void http_log_ring_drop(http_log_ring_t *ring);

/* ------------------------------------------- requests (bound to libh2o, loop thread) ---- */

typedef struct http_request {
    h2o_req_t *h2o; /* NULL once the client went away */
    struct http_loop *loop;
    const void *app;           /* http_server_t.app */
    const http_route_t *route; /* NULL when unmatched */
    int route_index;
    http_param_t params[HTTP_MAX_PARAMS];
    int nparams;
    json_t *body; /* parsed JSON object for HTTP_ROUTE_JSON_BODY routes (owned) */
    char request_id[129];
    char client[46];
    uint64_t start_us;
    void *state; /* the handler's own state, freed with state_free */
    void (*state_free)(void *state);
    int refs;
    int responded;
    int status;
    unsigned has_retry_after : 1;
    unsigned body_taken : 1;         /* the route's body rules have run */
    unsigned indoubt : 1;            /* answered DB_ERR_INDOUBT: a write may or may not have committed */
    struct http_conn *conn;          /* the client's connection while the request lives, else NULL */
    struct http_cpu_job *cpu_job;    /* its droppable CPU job waiting or running (cpu.c), or NULL */
    uint32_t conn_queries, conn_cpu; /* what it holds of its connection's shares (conn.c) */
    size_t conn_body;                /* its body's bytes, in its connection's bodies in flight */
    struct http_idem *idem;          /* the Idempotency-Key this request holds, or NULL (idempotency.c) */
} http_request_t;

/* Keeps r alive across an asynchronous step; every retain needs one release. */
void http_request_retain(http_request_t *r);
void http_request_release(http_request_t *r);

/* Applies the route's body rules (HTTP_ROUTE_JSON_BODY: 415, 413, 400 invalid_json, 422 for
 * \u0000) and sets r->body, once per request; a no-op for routes without a JSON body. For an
 * HTTP_ROUTE_AUTHENTICATED route, call it once the credentials are accepted. Returns 0 when
 * the handler may go on, or -1 when r was answered (or nobody is left to answer). */
int http_request_take_body(http_request_t *r);

/* Value of a {param} of the matched route, or NULL. */
const char *http_param(const http_request_t *r, const char *name, size_t *len);
/* Decoded value of a query-string parameter into buf. Returns its length, -1 when absent,
 * -2 when malformed or longer than buflen-1. */
int http_query_param(const http_request_t *r, const char *name, char *buf, size_t buflen);
/* A request header, or NULL. */
const char *http_header(const http_request_t *r, const char *lowercase_name, size_t *len);

/* Adds a response header (copied). Must precede the respond call. */
void http_add_header(http_request_t *r, const char *name, const char *value);
/* Sends a JSON body (stolen). */
void http_respond_json(http_request_t *r, int status, json_t *body);
/* Sends the contract's error envelope; details (stolen) may be NULL. Adds Retry-After for
 * 429/503 and WWW-Authenticate for 401. */
void http_respond_error(http_request_t *r, int status, const char *code, const char *message,
                        json_t *details);
void http_respond_raw(http_request_t *r, int status, const char *content_type, const char *body, size_t len);
/* The same for a body that outlives every request (start-up data): sent by reference, not
 * copied per request. */
void http_respond_static(http_request_t *r, int status, const char *content_type, const char *body,
                         size_t len);
/* Sends `len` bytes of the open file fd from `offset` as the body (fd is taken and closed).
 * The bytes are read on libuv's thread pool, one chunk in flight, the next one only when
 * libh2o has sent the last (a slow client holds one chunk, not the file). Headers added
 * with http_add_header before are sent. */
void http_respond_file(http_request_t *r, int status, const char *content_type, int fd, uint64_t offset,
                       uint64_t len);
/* The security headers every answer carries, after X-Request-Id and Content-Type (then
 * Cache-Control and, over TLS when configured, HSTS). bench/ceiling sends the same. */
typedef struct {
    h2o_iovec_t name, value;
} http_fixed_header_t;
#define HTTP_NSECURITY_HEADERS 4
extern const http_fixed_header_t http_security_headers[HTTP_NSECURITY_HEADERS];
/* For the http module's own senders: status, reason, X-Request-Id and Content-Type set, the
 * metrics and the access log recorded. Returns libh2o's request, or NULL when there is nobody
 * to answer or it was answered already. */
h2o_req_t *http_response_begin(http_request_t *r, int status, const char *content_type, size_t bytes);
void http_respond_empty(http_request_t *r, int status);
/* Maps a data-layer failure to 503 unavailable, which promises that nothing was changed, or
 * to 500 internal for a refused query and for a write whose outcome is unknown
 * (DB_ERR_INDOUBT, with HTTP_INDOUBT_MESSAGE). */
#define HTTP_INDOUBT_MESSAGE                                                                                 \
    "the database did not confirm in time: the request may or may not have taken effect; repeat it "         \
    "with the same Idempotency-Key, or check before repeating it"
void http_respond_db_error(http_request_t *r, db_status_t status);
/* The one "database failed" check of a reply: when the batch failed, answers it as
 * http_respond_db_error does and returns 1 (the caller returns); 0 when it succeeded. Sites
 * that treat some failures their own way (a sqlstate, DB_ERR_INDOUBT) check those first. */
int http_pg_failed(http_request_t *r, const db_reply_t *reply);

/* ------------------------------------------------ the libh2o binding (loop threads) ---- */

/* Read-only after start-up; shared by every loop thread. */
typedef struct {
    http_router_t *router;
    http_json_limits_t json_limits;
    char *const *trusted_proxies;
    int ntrusted_proxies;
    int access_log_fd;              /* -1: no access log */
    http_log_writer_t *log_writer;  /* the access log and the requests' error lines */
    int max_headers;                /* request header fields beyond this answer 431 */
    size_t max_header_bytes;        /* request header bytes (names and values) beyond this: 431 */
    void *app;                      /* the handlers' own start-up data */
    struct http_loop *const *loops; /* every loop, for process-wide views such as /metrics */
    int nloops;
    int conn_max_queries;        /* per connection, 0: no limit */
    int conn_max_cpu_jobs;       /* per connection, 0: no limit */
    int address_max_connections; /* per client address and loop, 0: no limit */
    int address_new_per_second;  /* per client address and loop, 0: no limit */
    /* Request bodies in flight (received, or held by a request in progress), in bytes; 0: no
     * limit. The loop's is its share of limits.max-body-bytes-in-flight. */
    uint64_t body_max_per_connection, body_max_per_address, body_max_per_loop;
    size_t max_entity;                 /* libh2o's max_request_entity_size: it refuses a longer body */
    uint64_t body_timeout_ms;          /* an HTTP/2 body slower than body_min_rate (bytes per second) */
    uint64_t body_min_rate;            /* over this long cuts its connection; 0: off */
    uint64_t send_timeout_ms;          /* answers read slower than send_min_rate (bytes per second) */
    uint64_t send_min_rate;            /* over this long cut their connection; 0: off */
    unsigned char idempotency_key[32]; /* seals stored answers (they may carry tokens) */
    int idempotency_takeover_s;        /* a claim older than this may be taken over */
    /* Strict-Transport-Security for answers on TLS connections, formatted once at start-up
     * ("max-age=N; includeSubDomains"); hsts_len 0: none (tls.hsts-max-age 0). */
    char hsts[64];
    size_t hsts_len;
} http_server_t;

/* Per loop thread. The libh2o context lives inside, so a request finds its loop through
 * req->conn->ctx. */
typedef struct http_loop {
    h2o_context_t h2o_ctx;
    const http_server_t *server;
    db_pg_pool_t *pg;
    db_redis_t *redis;
    const db_redis_options_t *redis_options; /* for connections of its own (the realtime bus) */
    http_metrics_shard_t *metrics;
    http_log_ring_t *access_log; /* this loop's access-log lines (NULL: no access log) */
    http_log_ring_t *error_log;  /* this loop's requests' error lines, for stderr */
    struct http_conns *conns;    /* this loop's client connections by socket (conn.c) */
    uint64_t error_second;       /* requests' error lines: the current second, and how many */
    uint32_t error_lines;        /* were written in it (HTTP_ERROR_LINES_PER_SECOND) */
    struct http_ws *ws_head;     /* this loop's WebSockets (ws.c) */
    /* Published by the loop's own timer so that other threads may read them. */
    atomic_int pg_ready, pg_total, redis_ready;
} http_loop_t;

/* ------------------------------------------------ client connections (conn.c) ---- */

/* Requests a connection may abandon (net of those it lets finish) before it is throttled,
 * and as many again before it is cut. */
#define HTTP_CONN_BUDGET 100

/* The HTTP/2 frames a connection has sent, as far as its request bodies go (conn_body.c). */
struct http_body_frames;

typedef struct http_conn {
    uv_tcp_t tcp; /* first: libuv's close callback gets this handle */
    h2o_socket_t *sock;
    http_loop_t *loop;
    struct http_conn *next_in_bucket;
    struct http_address *address_entry; /* its address's counts on this loop (counted ones) */
    /* Request bodies in flight (conn_body.c): hydrant's read callback runs before libh2o's. */
    h2o_socket_cb h2o_read;          /* libh2o's read callback, which hydrant's wraps */
    uint64_t body_receiving;         /* bytes of request bodies not complete yet */
    uint64_t body_delivered;         /* bodies held by its requests in progress */
    struct http_body_frames *frames; /* HTTP/2 connections only */
    uint64_t handshake_deadline_ms;  /* a TLS handshake not over by then is closed; 0: over */
    /* Answers given, not yet sent whole: the client must read them at send_min_rate, judged
     * over windows of send_timeout_ms. libh2o may dispose a request whose whole body it took
     * before the body is written, so the bytes owed count as well as the requests. */
    uint32_t answers_unsent;
    uint32_t streams;    /* of them, event streams (sse.c): open-ended, judged by their owners */
    uint64_t bytes_owed; /* body bytes of every answer so far, against sock->bytes_written */
    uint64_t send_window_ms;
    size_t send_window_written; /* sock->bytes_written (a total) when the window began */
    h2o_accept_ctx_t *accept;   /* TLS: its listener's, for the protocol's accept */
    struct timeval connected_at;
    uint32_t active; /* requests dispatched, not yet disposed */
    int budget;
    uint64_t wasted;   /* requests abandoned so far */
    uint32_t queries;  /* database queries of its requests, queued or in flight */
    uint32_t cpu_jobs; /* CPU-pool jobs of its requests, waiting or running */
    unsigned trusted : 1, throttled : 1, cut : 1, cut_pending : 1, counted : 1;
    unsigned upgraded : 1; /* a WebSocket now (ws.c): no more requests or bodies */
    const char *cut_why;
    struct http_conn *next_cut;
    char address[46]; /* the peer */
} http_conn_t;

/* The loop's table of connections, sized for about `expected` of them. 0 or -1. */
int http_conns_init(http_loop_t *loop, int expected);
void http_conns_free(http_loop_t *loop);
/* A zeroed connection of the loop with a full budget (its tcp handle is the caller's to init). */
http_conn_t *http_conn_new(http_loop_t *loop);
/* Once libh2o has its socket: findable by its requests. trusted: a trusted proxy's;
 * counted: admitted by http_conn_address_admit (its address's count drops when it closes). */
void http_conn_register(http_conn_t *c, h2o_socket_t *sock, const char *address, int trusted, int counted);
/* May one more connection from address open on this loop (its share of
 * limits.max-connections-per-address and of limits.new-connections-per-address per second)?
 * 1 counts it; 0 refuses it (counted in /metrics). Trusted proxies are not asked. */
int http_conn_address_admit(http_loop_t *loop, const char *address, uint64_t now_ms);
/* Fairness: may c's requests hold n more database queries (limits.max-queries-per-connection)
 * or one more CPU job (limits.max-cpu-jobs-per-connection)? 1 counts them; give them back
 * with http_conn_put_queries / http_conn_put_cpu. */
int http_conn_take_queries(http_request_t *r, int n);
int http_conn_take_cpu(http_request_t *r);
void http_conn_put_queries(http_request_t *r, int n);
void http_conn_put_cpu(http_request_t *r);
/* From the handle's close callback, before the connection is freed. */
void http_conn_unregister(http_conn_t *c);
/* The connection of a request, or NULL. */
http_conn_t *http_conn_of(http_loop_t *loop, h2o_req_t *req);
/* A new request on c: 1 to serve it, 0 when c is throttled (answer 503 with no work). */
int http_conn_admit(http_conn_t *c);
/* A request of c got its answer, with a body of bytes. */
void http_conn_answered(http_conn_t *c, size_t bytes);
/* A request of c was disposed; answered says whether it had its answer by then. */
void http_conn_disposed(http_conn_t *c, int answered);
/* An event stream of c began (+1) or ended (-1). While c's unsent answers are all streams,
 * the unread-answer check leaves c alone: a quiet stream writes nothing for a while, and its
 * owner bounds what an unread one holds (sse.c). */
void http_conn_stream(http_conn_t *c, int delta);
/* c becomes a WebSocket: what it sends from now on is no request body, and the shutdown's
 * idle sweep leaves it to http_ws_shutdown. */
void http_conn_upgraded(http_conn_t *c);
/* Closes c through libh2o's own path (shutdown of the socket); logged once, counted. */
void http_conn_cut(http_conn_t *c, const char *why);
/* The same at the loop's next tick, so that an answer written meanwhile leaves first. */
void http_conn_cut_soon(http_conn_t *c, const char *why);
/* The loop's periodic timer: cuts what is due. */
void http_conns_tick(http_loop_t *loop);

/* Request bodies in flight (conn_body.c). libh2o 2.2 reads a whole body into memory (or a
 * spill file) before any handler runs, and says nothing of it meanwhile; hydrant's read
 * callback runs before libh2o's, reads the HTTP/2 frame headers it passes on (and for
 * HTTP/1.1 the bytes since the last request began), and cuts a connection whose bodies pass
 * the per-connection, per-address or per-loop budget, or whose HTTP/2 body stalls. */
/* Once the protocol is known, before libh2o's HTTP/2 or HTTP/1.1 reader takes the socket: an
 * HTTP/2 connection's frames are read from the start (those that came with the TLS
 * handshake's last step included). */
void http_conn_body_start(http_conn_t *c, int http2);
/* After libh2o's reader took the socket: hydrant's read callback in front of libh2o's. */
void http_conn_body_watch(http_conn_t *c);
/* A request of c begins with a body of len bytes, which it holds until it is disposed. */
void http_conn_body_begin(http_conn_t *c, size_t len);
void http_conn_body_end(http_conn_t *c, size_t len);
/* From http_conn_unregister and http_conn_cut: c's bytes leave the totals. */
void http_conn_body_forget(http_conn_t *c);
/* Once a second: cuts c if one of its HTTP/2 bodies stalled. */
void http_conn_body_check(http_conn_t *c, uint64_t now_ms);
/* The loop's table and its total of body bytes, for conn_body.c. */
uint64_t *http_conns_body_total(http_loop_t *loop);
uint64_t *http_address_body_total(struct http_address *a);
/* Calls fn for every connection of the loop. */
void http_conns_each(http_loop_t *loop, void (*fn)(http_conn_t *c, void *arg), void *arg);
/* The connection of a socket on its loop, or NULL. */
http_conn_t *http_conn_find(http_loop_t *loop, h2o_socket_t *sock);

/* Registers hydrant's request handler on a libh2o path configuration. */
void http_install(h2o_pathconf_t *pathconf);

/* A text/event-stream answer (sse.c): 200 and its headers at once, then the body as the
 * owner writes it, one h2o_send in flight, at most max_queued bytes waiting. gone(data) runs
 * exactly once when the request is disposed (client gone, connection cut, or after
 * http_sse_end); the stream must not be touched after. NULL when r was answered instead. */
typedef struct http_sse http_sse_t;
typedef void (*http_sse_gone_fn)(void *data);
http_sse_t *http_sse_begin(http_request_t *r, size_t max_queued, http_sse_gone_fn gone, void *data);
/* 0, or -1 when the bytes do not fit in the queue (or the stream is ending). */
int http_sse_write(http_sse_t *s, const char *bytes, size_t len);
/* Ends the body once what is queued has been sent. */
void http_sse_end(http_sse_t *s);
/* How long the send in flight has waited for the client (0 when none waits). */
uint64_t http_sse_stalled_ms(const http_sse_t *s, uint64_t now_ms);
/* Cuts the stream's connection (a client that stopped reading). */
void http_sse_cut(http_sse_t *s, const char *why);

/* WebSockets (ws.c), HTTP/1.1 only (libh2o 2.2). A socket belongs to the loop that accepted
 * it; every call below runs on that loop. */
#define HTTP_WS_MAX_RATE 64 /* the largest max_per_second */
typedef struct http_ws http_ws_t;
typedef struct {
    size_t max_message;      /* a received message (fragments joined) over this closes with 1009 */
    unsigned max_per_second; /* more messages within any one second close with 1008 (<= HTTP_WS_MAX_RATE) */
    size_t max_queued;       /* bytes waiting to be sent; past it the socket is cut */
    uint64_t ping_ms;        /* a client silent this long is pinged, twice this long closed */
} http_ws_limits_t;
typedef struct {
    /* One whole message from the client (binary: not a text frame). Calls to http_ws_send_text
     * and http_ws_close from here are fine. */
    void (*message)(void *data, int binary, const char *bytes, size_t len);
    /* The socket is over (closed, cut, or the client left): exactly once, a loop iteration
     * after the end; ws must not be used any more. */
    void (*gone)(void *data);
} http_ws_callbacks_t;
/* 1 when r is an HTTP/1.1 WebSocket handshake (GET, Upgrade: websocket, a key), 0 when it is
 * not (HTTP/2 never is), -1 when it tries and is malformed. */
int http_ws_is_handshake(http_request_t *r);
/* Answers 101 and takes the connection; NULL when r was answered instead (400, or 503 while
 * shutting down). */
http_ws_t *http_ws_accept(http_request_t *r, const http_ws_limits_t *limits, const http_ws_callbacks_t *cb,
                          void *data);
/* Queues a text message: 0, or -1 when closing or gone, or when the queue is full (the
 * socket is then cut). */
int http_ws_send_text(http_ws_t *ws, const char *text, size_t len);
/* The closing handshake with code and reason (<= 123 bytes); cut if the client does not
 * finish it within a second. Messages received meanwhile are dropped. */
void http_ws_close(http_ws_t *ws, uint16_t code, const char *reason);
/* Closes every WebSocket of the loop with 1001 (the server's shutdown). */
void http_ws_shutdown(http_loop_t *loop);

/* Runs a pipelined batch for r. cb runs only if the client is still there; on a submit
 * failure r is answered with 503 at once and cb never runs. */
typedef void (*http_pg_cb)(http_request_t *r, const db_reply_t *reply);
void http_pg(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb);
/* The same, but cb runs also when the client went away meanwhile (r->h2o is then NULL and
 * responding a no-op): for handlers that must note that an outcome was never delivered. */
void http_pg_always(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb);
typedef void (*http_redis_cb)(http_request_t *r, db_status_t status, redisReply *reply);
void http_redis(http_request_t *r, int argc, const char **argv, const size_t *argvlen, http_redis_cb cb);
/* The same with len bytes of the caller's data (at most HTTP_ASYNC_DATA_MAX), copied: cb gets
 * the copy, which lives until cb returns, so nothing is left to free when cb is skipped. */
#define HTTP_ASYNC_DATA_MAX 64
typedef void (*http_redis_data_cb)(http_request_t *r, void *data, db_status_t status, redisReply *reply);
void http_redis_data(http_request_t *r, int argc, const char **argv, const size_t *argvlen,
                     http_redis_data_cb cb, const void *data, size_t len);

/* ---------------------------------------------- Idempotency-Key (idempotency.c) ---- */
/*
 * Contract v1.1: a POST may carry `Idempotency-Key` (1..255 of [A-Za-z0-9._:-]); a repeat by
 * the same caller with the same key and request within 24 hours gets the first answer again
 * without acting twice, 409 while the first is in progress, 422 with another request. The
 * key is claimed in PostgreSQL before the request acts, every write of the request carries a
 * fence in its own transaction (so a write commits only while this request holds the key),
 * and the answer is stored, sealed, before it is sent. Answers that changed nothing (429,
 * 503, 500 for a refused statement) let the claim go so that a retry acts; an answer whose
 * writes are in doubt leaves the claim to be taken over once it is stale.
 */
#define HTTP_IDEMPOTENCY_TTL_S 86400

typedef void (*http_idem_next_fn)(http_request_t *r, void *arg);
/* scope is the caller: a user id, or "" for a route without credentials. Calls next(r, arg)
 * when r may act (no key, not a POST, or the key claimed); otherwise r is answered. */
void http_idempotency_begin(http_request_t *r, const char *scope, http_idem_next_fn next, void *arg);
/* For http_pg: the batch to send, with the fence appended to a write of a request holding a
 * key (into out, room for DB_PG_MAX_BATCH queries); NULL when the batch has no room for it. */
const db_query_t *http_idempotency_fence(const http_request_t *r, const db_query_t *queries, int *nqueries,
                                         db_query_t *out);
/* For http_send: 1 when the module takes the answer (stores it or lets the claim go, then
 * sends it), 0 when it is to be sent now. */
int http_idempotency_intercept(http_request_t *r, int status, const char *content_type, const char *body,
                               size_t len);
/* Is r holding a claimed key and not answered yet? Its callbacks then run even if the client
 * left, so that the answer is stored for the client's retry. */
int http_idempotency_pending(const http_request_t *r);
void http_idempotency_free(struct http_idem *idem);

/* Runs fn(arg) on libuv's thread pool (it must touch nothing but arg), then done(r, arg)
 * on r's loop, even if the client went away meanwhile (responding is then a no-op; done
 * still owns arg). Returns -1 when too much CPU work is pending: answer 503. */
typedef void (*http_cpu_work_fn)(void *arg);
typedef void (*http_cpu_done_fn)(http_request_t *r, void *arg);
int http_cpu(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg);
/* The same for work whose arg is r's own state (freed with r) and which is pointless once
 * the client left (hashing a password for nobody): if the client leaves before a pool thread
 * takes the job, neither fn nor done runs. */
int http_cpu_droppable(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg);
/* From the request's disposal: drops its droppable job if it has not started. */
void http_cpu_drop(http_request_t *r);

/* -------------------------------------------- multipart/form-data uploads (pure) ---- */
/*
 * A streaming parser for multipart/form-data (RFC 7578 over RFC 2046), fed the request body
 * in chunks as they arrive. A part's content is never buffered: bytes that cannot begin a
 * delimiter go to part_data at once, from the caller's chunk. Only a part's header block is
 * held, up to max_header_bytes. The delimiter may be split across chunks at any byte, and
 * the callbacks, status and data are the same however the body is cut.
 *
 * Line endings are CRLF only, in headers as in delimiter lines: a bare CR or LF in a header
 * block is malformed (content must be split on CRLF "--boundary" anyway, and browsers, curl
 * and the usual client libraries all send CRLF). Folded header lines are malformed. The
 * preamble and the epilogue are ignored; a body whose first delimiter is the close
 * delimiter has no parts and is well-formed (the caller decides what it needs).
 */

#define HTTP_MULTIPART_BOUNDARY_MAX   70 /* RFC 2046 */
#define HTTP_MULTIPART_HEADER_MAX_CAP 65536

/* The boundary parameter of a Content-Type value "multipart/form-data; boundary=..." (type
 * and parameter names case-insensitive, value a token or a quoted string), when it is 1..70
 * characters of RFC 2046's set without a trailing space. Writes it NUL-terminated to out.
 * Returns its length, or -1 (not form-data, no or two boundaries, bad value, outlen short). */
int http_multipart_boundary(const char *content_type, size_t len, char *out, size_t outlen);

typedef enum {
    HTTP_MULTIPART_OK = 0,
    HTTP_MULTIPART_ERR_NO_DELIMITER,     /* no delimiter line in the body, or past max_preamble */
    HTTP_MULTIPART_ERR_BOUNDARY_LINE,    /* a delimiter followed by other than "--" or padding CRLF */
    HTTP_MULTIPART_ERR_HEADER_TOO_LONG,  /* a part's header block exceeds max_header_bytes */
    HTTP_MULTIPART_ERR_HEADER_MALFORMED, /* a bad header line, parameter or escape; a repeated field */
    HTTP_MULTIPART_ERR_NOT_FORM_DATA,    /* no Content-Disposition, or not "form-data" */
    HTTP_MULTIPART_ERR_NO_NAME,          /* Content-Disposition without a non-empty name */
    HTTP_MULTIPART_ERR_NUL_IN_NAME,      /* filename* decodes to a NUL (a raw NUL is malformed) */
    HTTP_MULTIPART_ERR_TOO_MANY_PARTS,   /* more than max_parts */
    HTTP_MULTIPART_ERR_TRUNCATED,        /* from finish: the body ended before the close delimiter */
    HTTP_MULTIPART_ERR_ABORTED,          /* a callback returned non-zero */
} http_multipart_status_t;

/* A stable snake_case word for logs and 400 messages ("header_too_long"). */
const char *http_multipart_status_name(http_multipart_status_t status);

typedef struct {
    size_t max_header_bytes; /* per part, every header line and CRLF with the blank line: 1..CAP */
    int max_parts;           /* >= 1 */
    size_t max_preamble;     /* bytes before the first delimiter; 0: no limit */
} http_multipart_limits_t;

/* Valid during part_begin only: copy what must outlive it. Strings are NUL-terminated and
 * hold no NUL; filename is decoded (filename* preferred over filename) but not validated. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *filename; /* NULL when absent; "" when sent empty */
    size_t filename_len;
    const char *content_type; /* NULL when absent; the header value, trimmed */
    size_t content_type_len;
    int index; /* 0 for the first part */
} http_multipart_part_t;

/* Each may be NULL. A non-zero return stops the parse with HTTP_MULTIPART_ERR_ABORTED.
 * part_data gets a part's content in pieces of any size (never empty); part_end runs once
 * the part's closing delimiter line is complete, so a part without part_end is unfinished. */
typedef struct {
    int (*part_begin)(void *user, const http_multipart_part_t *part);
    int (*part_data)(void *user, const char *data, size_t len);
    int (*part_end)(void *user);
} http_multipart_callbacks_t;

typedef struct http_multipart http_multipart_t;

/* One allocation, about twice max_header_bytes; nothing is allocated while feeding.
 * boundary is the value from http_multipart_boundary (copied); limits and callbacks are
 * copied (callbacks may be NULL). NULL on a bad boundary or limits, or out of memory. */
http_multipart_t *http_multipart_new(const char *boundary, size_t len, const http_multipart_limits_t *limits,
                                     const http_multipart_callbacks_t *callbacks, void *user);
/* Parses the next bytes of the body. The first error is final: later calls return it and
 * run no callback. Data after the close delimiter (the epilogue) is ignored. */
http_multipart_status_t http_multipart_feed(http_multipart_t *p, const char *data, size_t len);
/* The body has ended: OK only if the close delimiter was seen and nothing failed. */
http_multipart_status_t http_multipart_finish(http_multipart_t *p);
void http_multipart_free(http_multipart_t *p);

#endif
