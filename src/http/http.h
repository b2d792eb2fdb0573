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

/* ---------------------------------------------------------------- router (pure) ---- */

#define HTTP_MAX_PARAMS 8
#define HTTP_MAX_ROUTES 128
#define HTTP_ALLOW_LEN  64

struct http_request;
typedef void (*http_handler_fn)(struct http_request *r);

enum {
    HTTP_ROUTE_JSON_BODY = 1 << 0,     /* body must be application/json and parse to an object */
    HTTP_ROUTE_OPTIONAL_BODY = 1 << 1, /* with JSON_BODY: an empty body is allowed */
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
} http_json_status_t;

/* Parses an object body. Depth is checked before jansson builds anything, so a hostile
 * "[[[[..." costs nothing. NUL bytes inside strings are refused. */
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

/* ------------------------------------------------------------------ metrics ---- */

#define HTTP_METRICS_BUCKETS        14
#define HTTP_METRICS_STATUS_CLASSES 64

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
} http_metrics_shard_t;

#define HTTP_METRICS_ROUTE_UNMATCHED HTTP_MAX_ROUTES
#define HTTP_METRICS_ROUTE_OTHER     (HTTP_MAX_ROUTES + 1)

extern const double http_metrics_bucket_bounds[HTTP_METRICS_BUCKETS]; /* seconds, upper bounds */

void http_metrics_observe(http_metrics_shard_t *shard, int route_index, int status, uint64_t duration_us);

/* Appends Prometheus text for the HTTP families to out (a growing buffer). Gauges from
 * other subsystems are appended by their owners. */
typedef struct {
    char *data;
    size_t len, cap;
} http_buf_t;
void http_buf_printf(http_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void http_buf_free(http_buf_t *b);

void http_metrics_render(http_buf_t *out, const http_router_t *router, http_metrics_shard_t *const *shards,
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

/* One JSON line, newline-terminated, into buf. Returns the length or -1 if it does not fit. */
int http_log_format(const http_log_entry_t *entry, char *buf, size_t buflen);

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
} http_request_t;

/* Keeps r alive across an asynchronous step; every retain needs one release. */
void http_request_retain(http_request_t *r);
void http_request_release(http_request_t *r);

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
void http_respond_empty(http_request_t *r, int status);
/* Maps a data-layer failure to 503 unavailable (or 500 internal for a refused query). */
void http_respond_db_error(http_request_t *r, db_status_t status);

/* ------------------------------------------------ the libh2o binding (loop threads) ---- */

/* Read-only after start-up; shared by every loop thread. */
typedef struct {
    http_router_t *router;
    http_json_limits_t json_limits;
    char *const *trusted_proxies;
    int ntrusted_proxies;
    int access_log_fd;              /* -1: no access log */
    int max_headers;                /* request headers beyond this answer 400 */
    void *app;                      /* the handlers' own start-up data */
    struct http_loop *const *loops; /* every loop, for process-wide views such as /metrics */
    int nloops;
} http_server_t;

/* Per loop thread. The libh2o context lives inside, so a request finds its loop through
 * req->conn->ctx. */
typedef struct http_loop {
    h2o_context_t h2o_ctx;
    const http_server_t *server;
    db_pg_pool_t *pg;
    db_redis_t *redis;
    http_metrics_shard_t *metrics;
    http_buf_t log_buf; /* access-log lines waiting for the next flush */
    /* Published by the loop's own timer so that other threads may read them. */
    atomic_int pg_ready, pg_total, redis_ready;
} http_loop_t;

/* Registers hydrant's request handler on a libh2o path configuration. */
void http_install(h2o_pathconf_t *pathconf);
/* Writes buffered access-log lines; called by the loop's periodic timer and at shutdown. */
void http_loop_flush_log(http_loop_t *loop);

/* Runs a pipelined batch for r. cb runs only if the client is still there; on a submit
 * failure r is answered with 503 at once and cb never runs. */
typedef void (*http_pg_cb)(http_request_t *r, const db_reply_t *reply);
void http_pg(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb);
typedef void (*http_redis_cb)(http_request_t *r, db_status_t status, redisReply *reply);
void http_redis(http_request_t *r, int argc, const char **argv, const size_t *argvlen, http_redis_cb cb);

/* Runs fn(arg) on libuv's thread pool (it must touch nothing but arg), then done(r, arg)
 * on r's loop, even if the client went away meanwhile (responding is then a no-op; done
 * still owns arg). Returns -1 when too much CPU work is pending: answer 503. */
typedef void (*http_cpu_work_fn)(void *arg);
typedef void (*http_cpu_done_fn)(http_request_t *r, void *arg);
int http_cpu(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg);

#endif
