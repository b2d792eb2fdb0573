/*
 * The libh2o binding: turns an h2o_req_t into an http_request_t, applies the route's limits,
 * calls the handler, and sends its answer with the contract's headers, metrics and log line.
 *
 * Lifetime: an http_request_t is reference counted. libh2o's request holds one reference
 * through a guard object allocated in the request's memory pool; when libh2o destroys the
 * request (response sent, stream reset, client gone), the guard's dispose callback clears
 * r->h2o and drops that reference. Asynchronous steps hold their own references, so a late
 * database reply finds r->h2o == NULL and answers nobody.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_DEFAULT_RETRY_AFTER    "1"
#define HTTP_ERROR_LINES_PER_SECOND 100 /* per loop */

static uint64_t http_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int64_t http_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static http_loop_t *http_loop_from_req(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(http_loop_t, h2o_ctx, req->conn->ctx);
}

/* ------------------------------------------------------------------ lifetime ---- */

void http_request_retain(http_request_t *r)
{
    r->refs++;
}

void http_request_release(http_request_t *r)
{
    if (--r->refs > 0)
        return;
    if (r->state_free != NULL && r->state != NULL)
        r->state_free(r->state);
    if (r->body != NULL)
        json_decref(r->body);
    http_idempotency_free(r->idem);
    free(r);
}

static void http_guard_dispose(void *p)
{
    http_request_t *r = *(http_request_t **)p;
    r->h2o = NULL;
    http_cpu_drop(r);
    if (r->conn != NULL) {
        r->conn->queries -= r->conn_queries;
        r->conn->cpu_jobs -= r->conn_cpu;
        http_conn_body_end(r->conn, r->conn_body);
        http_conn_disposed(r->conn, r->responded);
        r->conn = NULL; /* the connection may be freed before r */
    }
    http_request_release(r);
}

/* ------------------------------------------------------------- request data ---- */

const char *http_param(const http_request_t *r, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    for (int i = 0; i < r->nparams; i++) {
        const http_param_t *p = &r->params[i];
        if (p->name_len == name_len && memcmp(p->name, name, name_len) == 0) {
            if (len != NULL)
                *len = p->value_len;
            return p->value;
        }
    }
    return NULL;
}

const char *http_header(const http_request_t *r, const char *lowercase_name, size_t *len)
{
    if (r->h2o == NULL)
        return NULL;
    ssize_t i = h2o_find_header_by_str(&r->h2o->headers, lowercase_name, strlen(lowercase_name), -1);
    if (i < 0)
        return NULL;
    const h2o_header_t *h = &r->h2o->headers.entries[i];
    if (len != NULL)
        *len = h->value.len;
    return h->value.base;
}

/* Percent-decodes src into buf ('+' is a space in query strings). */
static int http_query_decode(const char *src, size_t len, char *buf, size_t buflen)
{
    size_t out = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -2;
            int hi = util_hex_value(src[i + 1]), lo = util_hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -2;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0' || out + 1 >= buflen)
            return -2;
        buf[out++] = c;
    }
    buf[out] = '\0';
    return (int)out;
}

int http_query_param(const http_request_t *r, const char *name, char *buf, size_t buflen)
{
    if (r->h2o == NULL || r->h2o->query_at == SIZE_MAX || buflen == 0)
        return -1;
    const char *q = r->h2o->path.base + r->h2o->query_at + 1;
    const char *end = r->h2o->path.base + r->h2o->path.len;
    size_t name_len = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(pair_end - q));
        const char *key_end = eq != NULL ? eq : pair_end;
        if ((size_t)(key_end - q) == name_len && memcmp(q, name, name_len) == 0) {
            const char *v = eq != NULL ? eq + 1 : pair_end;
            return http_query_decode(v, (size_t)(pair_end - v), buf, buflen);
        }
        q = pair_end + 1;
    }
    return -1;
}

/* ----------------------------------------------------------------- responses ---- */

void http_add_header(http_request_t *r, const char *name, const char *value)
{
    if (r->h2o == NULL || r->responded)
        return;
    size_t name_len = strlen(name);
    if (name_len == 11 && strcasecmp(name, "retry-after") == 0)
        r->has_retry_after = 1;
    h2o_iovec_t v = h2o_strdup(&r->h2o->pool, value, SIZE_MAX);
    char *lname = h2o_mem_alloc_pool(&r->h2o->pool, name_len + 1);
    for (size_t i = 0; i <= name_len; i++)
        lname[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    const h2o_token_t *token = h2o_lookup_token(lname, name_len);
    if (token != NULL)
        h2o_add_header(&r->h2o->pool, &r->h2o->res.headers, token, NULL, v.base, v.len);
    else
        h2o_add_header_by_str(&r->h2o->pool, &r->h2o->res.headers, lname, name_len, 0, NULL, v.base, v.len);
}

static const char *http_protocol_name(int version)
{
    switch (version) {
    case 0x200:
        return "HTTP/2";
    case 0x101:
        return "HTTP/1.1";
    case 0x100:
        return "HTTP/1.0";
    default:
        return "HTTP";
    }
}

static void http_record(http_request_t *r, int status, size_t bytes)
{
    http_loop_t *loop = r->loop;
    uint64_t duration = http_now_us() - r->start_us;
    int route_index = r->route != NULL ? r->route_index : HTTP_METRICS_ROUTE_UNMATCHED;
    http_metrics_observe(loop->metrics, route_index, status, duration);
    if (loop->access_log == NULL)
        return;
    char method[16];
    size_t mlen = r->h2o->method.len < sizeof(method) - 1 ? r->h2o->method.len : sizeof(method) - 1;
    memcpy(method, r->h2o->method.base, mlen);
    method[mlen] = '\0';
    http_log_entry_t entry = {
        .request_id = r->request_id,
        .method = method,
        .route = r->route != NULL ? r->route->pattern : "unmatched",
        .status = status,
        .bytes = bytes,
        .duration_us = duration,
        .protocol = http_protocol_name(r->h2o->version),
        .client = r->client,
        .unix_ms = http_wall_ms(),
    };
    char line[1024];
    int n = http_log_format(&entry, line, sizeof(line));
    if (n > 0)
        http_log_ring_append(loop->access_log, line, (size_t)n); /* the log writer writes it */
}

/* Whether the answer leaves over TLS. The connection's socket says so; req->scheme does not:
 * over HTTP/2 it is the client's own :scheme (libh2o 2.2, lib/http2/hpack.c), which a
 * cleartext h2c client may set to https. */
static int http_over_tls(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock != NULL && sock->ssl != NULL;
}

/* The browser-facing defences every answer carries (docs/SECURITY.md, "Response headers"):
 * nothing is sniffed, framed, referred or run; nothing is stored by a cache unless the handler
 * chose its own Cache-Control first (file bytes revalidated by ETag, public documents); HSTS
 * on TLS connections. Static strings that libh2o points at, no formatting: HPACK sends each
 * as an index after a connection's first answer. */
const http_fixed_header_t http_security_headers[HTTP_NSECURITY_HEADERS] = {
    {{H2O_STRLIT("x-content-type-options")}, {H2O_STRLIT("nosniff")}},
    {{H2O_STRLIT("content-security-policy")}, {H2O_STRLIT("default-src 'none'; frame-ancestors 'none'")}},
    {{H2O_STRLIT("x-frame-options")}, {H2O_STRLIT("DENY")}}, /* frame-ancestors for older browsers */
    {{H2O_STRLIT("referrer-policy")}, {H2O_STRLIT("no-referrer")}},
};

static void http_add_security_headers(const http_request_t *r, h2o_req_t *req)
{
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + HTTP_NSECURITY_HEADERS + 2);
    for (size_t i = 0; i < HTTP_NSECURITY_HEADERS; i++) {
        const http_fixed_header_t *h = &http_security_headers[i];
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name.base, h->name.len, 0, NULL,
                              h->value.base, h->value.len);
    }
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) < 0)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    const http_server_t *server = r->loop->server;
    if (server->hsts_len > 0 && http_over_tls(req))
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL, server->hsts,
                       server->hsts_len);
}

/* Status, reason and the common headers of every response; the metrics and log record.
 * Returns libh2o's request, or NULL when there is nobody to answer (or it was answered). */
h2o_req_t *http_response_begin(http_request_t *r, int status, const char *content_type, size_t bytes)
{
    if (r->responded)
        return NULL;
    r->responded = 1;
    r->status = status;
    h2o_req_t *req = r->h2o;
    if (req == NULL)
        return NULL;
    static const char *const reasons[600] = {
        [200] = "OK",
        [201] = "Created",
        [202] = "Accepted",
        [204] = "No Content",
        [206] = "Partial Content",
        [304] = "Not Modified",
        [416] = "Range Not Satisfiable",
        [400] = "Bad Request",
        [401] = "Unauthorized",
        [403] = "Forbidden",
        [404] = "Not Found",
        [405] = "Method Not Allowed",
        [409] = "Conflict",
        [413] = "Payload Too Large",
        [415] = "Unsupported Media Type",
        [422] = "Unprocessable Entity",
        [429] = "Too Many Requests",
        [431] = "Request Header Fields Too Large",
        [500] = "Internal Server Error",
        [503] = "Service Unavailable",
        [507] = "Insufficient Storage",
    };
    /* the body bytes it will write: none for HEAD, 204 or 304 */
    int bodiless =
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")) || status == 204 || status == 304;
    if (r->conn != NULL)
        http_conn_answered(r->conn, bodiless ? 0 : bytes);
    req->res.status = status;
    req->res.reason =
        (status >= 100 && status < 600 && reasons[status] != NULL) ? reasons[status] : "Unknown";
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, r->request_id,
                          strlen(r->request_id));
    if (content_type != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    http_add_security_headers(r, req);
    http_record(r, status, bytes);
    return req;
}

/* Every response leaves through here: one place for the common headers, metrics and log. */
static void http_send(http_request_t *r, int status, const char *content_type, const char *body, size_t len)
{
    if (r->responded || http_idempotency_intercept(r, status, content_type, body, len))
        return; /* answered already, or kept for the Idempotency-Key first, then sent */
    h2o_req_t *req = http_response_begin(r, status, content_type, len);
    if (req == NULL)
        return;
    /* h2o_send_inline copies the body; the final send may destroy req (and drop libh2o's
     * reference to r) before it returns, hence the extra reference. */
    http_request_retain(r);
    if (status == 204 || status == 304) {
        h2o_send_inline(req, NULL, 0);
    } else {
        /* Without a length libh2o 2.2 frames only a 200 as chunked over HTTP/1.1: any other
         * status would end its body by closing a keep-alive connection. HTTP/2 frames every
         * body itself, and the header would cost an HPACK lookup per response. */
        if (req->version < 0x200)
            req->res.content_length = len;
        h2o_send_inline(req, body, len);
    }
    http_request_release(r);
}

/* A body that lives as long as the process (the OpenAPI document) goes out by reference:
 * h2o_send_inline would copy it into every request's pool, so that thousands of streams a
 * client never reads would each hold their own copy. */
void http_respond_static(http_request_t *r, int status, const char *content_type, const char *body,
                         size_t len)
{
    static h2o_generator_t generator = {NULL, NULL}; /* one final send: nothing to proceed or stop */
    if (r->responded)
        return;
    h2o_req_t *req = http_response_begin(r, status, content_type, len);
    if (req == NULL)
        return;
    if (req->version < 0x200)
        req->res.content_length = len;
    http_request_retain(r); /* the final send may dispose of req, and with it libh2o's reference */
    h2o_start_response(req, &generator);
    h2o_iovec_t iov = h2o_iovec_init(body, len);
    h2o_send(req, &iov, 1, H2O_SEND_STATE_FINAL);
    http_request_release(r);
}

void http_respond_raw(http_request_t *r, int status, const char *content_type, const char *body, size_t len)
{
    http_send(r, status, content_type, body, len);
}

void http_respond_empty(http_request_t *r, int status)
{
    if (status == 204 || status == 304)
        http_send(r, status, NULL, NULL, 0);
    else
        http_send(r, status, "application/json; charset=utf-8", "{}", 2);
}

void http_respond_json(http_request_t *r, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body != NULL)
        json_decref(body);
    if (text == NULL) {
        http_respond_error(r, 500, "internal", "could not encode the response", NULL);
        return;
    }
    http_send(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
}

void http_loop_log(http_loop_t *loop, util_log_level_t level, const char *component, const char *fmt, ...)
{
    if (loop->error_log == NULL || !util_log_enabled(level))
        return;
    char line[UTIL_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_log_vline(line, level, component, fmt, ap);
    va_end(ap);
    if (n > 0)
        http_log_ring_append(loop->error_log, line, n);
}

/* A server error's line for stderr, through the log writer: during an outage every request
 * has one, and stderr may be a pipe as slow as the access log's. */
static void http_log_error(http_request_t *r, int status, const char *code, const char *message)
{
    /* An outage or a flood gives every request an error: past a rate, lines are only counted
     * (hydrant_error_log_dropped_total), so stderr carries the pattern, not a copy per request. */
    http_loop_t *loop = r->loop;
    if (loop->error_log == NULL || !util_log_enabled(UTIL_LOG_ERROR))
        return;
    uint64_t second = r->start_us / 1000000; /* the request's own start: no clock read */
    if (second != loop->error_second) {
        loop->error_second = second;
        loop->error_lines = 0;
    }
    if (++loop->error_lines > HTTP_ERROR_LINES_PER_SECOND) {
        http_log_ring_drop(loop->error_log);
        return;
    }
    http_loop_log(loop, UTIL_LOG_ERROR, "http", "request %s %s: %d %s: %s", r->request_id,
                  r->route != NULL ? r->route->pattern : "unmatched", status, code, message);
}

void http_respond_error(http_request_t *r, int status, const char *code, const char *message, json_t *details)
{
    char *text = http_error_body(code, message, details);
    if (status >= 500 && !r->responded)
        http_log_error(r, status, code, message);
    if (status == 401)
        http_add_header(r, "WWW-Authenticate", "Bearer");
    if ((status == 503 || status == 429) && !r->has_retry_after)
        http_add_header(r, "Retry-After", HTTP_DEFAULT_RETRY_AFTER);
    http_send(r, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
}

void http_respond_db_error(http_request_t *r, db_status_t status)
{
    if (status == DB_ERR_QUERY)
        http_respond_error(r, 500, "internal", "internal error", NULL);
    else if (status == DB_ERR_INDOUBT) { /* 503 promises that nothing changed: not here */
        r->indoubt = 1;
        http_respond_error(r, 500, "internal", HTTP_INDOUBT_MESSAGE, NULL);
    } else
        http_respond_error(r, 503, "unavailable", "a backing service is unavailable, retry shortly", NULL);
}

/* ------------------------------------------------------ asynchronous helpers ---- */

typedef struct {
    http_request_t *r;
    union {
        http_pg_cb pg;
        http_redis_data_cb redis;
    } cb;
    int always;  /* call back even when nobody is left to answer */
    int queries; /* of the connection's share (http_conn_take_queries) */
    _Alignas(max_align_t) unsigned char data[HTTP_ASYNC_DATA_MAX]; /* the caller's, copied */
} http_async_t;

/* The one guard of every asynchronous step: a reply is wanted only while the client is there
 * and nobody has answered it. */
static int http_async_wanted(const http_request_t *r)
{
    return r->h2o != NULL && !r->responded;
}

static void http_pg_done(void *data, const db_reply_t *reply)
{
    http_async_t *a = data;
    http_conn_put_queries(a->r, a->queries);
    if (reply->status == DB_ERR_CANCELLED)
        atomic_fetch_add_explicit(&a->r->loop->metrics->dropped_db, 1, memory_order_relaxed);
    if (a->always || http_async_wanted(a->r) || http_idempotency_pending(a->r))
        a->cb.pg(a->r, reply);
    http_request_release(a->r);
    free(a);
}

/* Just before a batch is sent: still somebody to answer, or an answer to keep? */
static int http_pg_wanted(void *data)
{
    const http_async_t *a = data;
    return http_async_wanted(a->r) || http_idempotency_pending(a->r);
}

static void http_pg_submit(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb,
                           int always)
{
    http_async_t *a = malloc(sizeof(*a));
    if (a == NULL || r->loop->pg == NULL) {
        free(a);
        http_respond_db_error(r, DB_ERR_UNAVAILABLE);
        return;
    }
    db_query_t fenced[DB_PG_MAX_BATCH];
    queries = http_idempotency_fence(r, queries, &nqueries, fenced);
    if (queries == NULL) {
        free(a);
        http_respond_error(r, 500, "internal", "the batch has no room for its Idempotency-Key", NULL);
        return;
    }
    if (!http_conn_take_queries(r, nqueries)) {
        free(a);
        http_respond_error(r, 503, "unavailable",
                           "this connection has too many queries in progress; retry shortly", NULL);
        return;
    }
    a->r = r;
    a->cb.pg = cb;
    a->always = always;
    a->queries = nqueries;
    http_request_retain(r);
    if (db_pg_submit_if(r->loop->pg, queries, nqueries, http_pg_done, a, http_pg_wanted) != 0) {
        http_conn_put_queries(r, nqueries);
        http_request_release(r);
        free(a);
        http_respond_db_error(
            r, db_pg_last_error(r->loop->pg)); /* overloaded or down: 503; invalid batch: 500 */
    }
}

void http_pg(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb)
{
    http_pg_submit(r, queries, nqueries, cb, 0);
}

void http_pg_always(http_request_t *r, const db_query_t *queries, int nqueries, http_pg_cb cb)
{
    http_pg_submit(r, queries, nqueries, cb, 1);
}

static void http_redis_done(void *data, db_status_t status, redisReply *reply)
{
    http_async_t *a = data;
    if (http_async_wanted(a->r) || http_idempotency_pending(a->r))
        a->cb.redis(a->r, a->data, status, reply);
    http_request_release(a->r);
    free(a);
}

void http_redis_data(http_request_t *r, int argc, const char **argv, const size_t *argvlen,
                     http_redis_data_cb cb, const void *data, size_t len)
{
    http_async_t *a = len <= HTTP_ASYNC_DATA_MAX ? malloc(sizeof(*a)) : NULL;
    if (a == NULL || r->loop->redis == NULL) {
        free(a);
        http_respond_db_error(r, DB_ERR_UNAVAILABLE);
        return;
    }
    a->r = r;
    a->cb.redis = cb;
    a->always = 0;
    memcpy(a->data, data, len);
    http_request_retain(r);
    if (db_redis_command(r->loop->redis, http_redis_done, a, argc, argv, argvlen) != 0) {
        http_request_release(r);
        free(a);
        http_respond_db_error(r, DB_ERR_UNAVAILABLE);
    }
}

/* http_redis is http_redis_data with the callback as the data. */
static void http_redis_plain(http_request_t *r, void *data, db_status_t status, redisReply *reply)
{
    http_redis_cb cb;
    memcpy(&cb, data, sizeof(cb));
    cb(r, status, reply);
}

void http_redis(http_request_t *r, int argc, const char **argv, const size_t *argvlen, http_redis_cb cb)
{
    http_redis_data(r, argc, argv, argvlen, http_redis_plain, &cb, sizeof(cb));
}

/* ------------------------------------------------------------- the handler ---- */

static void http_set_request_id(http_request_t *r, h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        const h2o_iovec_t *v = &req->headers.entries[i].value;
        if (http_request_id_is_sane(v->base, v->len)) {
            memcpy(r->request_id, v->base, v->len);
            r->request_id[v->len] = '\0';
            return;
        }
    }
    http_request_id_generate(r->request_id);
}

/* Dotted decimal without inet_ntop, whose printf shows in profiles at this rate. */
static void http_format_ipv4(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

static void http_set_client(http_request_t *r, h2o_req_t *req, const http_server_t *server)
{
    struct sockaddr_storage ss;
    char peer[INET6_ADDRSTRLEN] = "unknown";
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sl > 0 && ss.ss_family == AF_INET)
        http_format_ipv4(&((struct sockaddr_in *)&ss)->sin_addr, peer);
    else if (sl > 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
    const char *xff = NULL;
    size_t xff_len = 0;
    if (server->ntrusted_proxies > 0) {
        ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, -1);
        if (i >= 0) {
            xff = req->headers.entries[i].value.base;
            xff_len = req->headers.entries[i].value.len;
        }
    }
    http_client_address(peer, xff, xff_len, server->trusted_proxies, server->ntrusted_proxies, r->client,
                        sizeof(r->client));
}

/* Content-Type and JSON checks for routes that take a JSON object. Returns 0 when the
 * handler may run, or answers the request and returns -1. */
static int http_take_json_body(http_request_t *r, h2o_req_t *req, const http_server_t *server)
{
    size_t limit = r->route->max_body != 0 ? r->route->max_body : server->json_limits.max_bytes;
    if (req->entity.base == NULL || req->entity.len == 0) {
        if (r->route->flags & HTTP_ROUTE_OPTIONAL_BODY)
            return 0;
        http_respond_error(r, 400, "invalid_json", "a JSON object body is required", NULL);
        return -1;
    }
    if (req->entity.len > limit) {
        http_respond_error(r, 413, "payload_too_large", "the request body is too large", NULL);
        return -1;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0 ||
        !http_is_json_content_type(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        http_respond_error(r, 415, "unsupported_media_type", "the body must be application/json", NULL);
        return -1;
    }
    http_json_limits_t limits = server->json_limits;
    limits.max_bytes = limit;
    switch (http_json_parse_object(req->entity.base, req->entity.len, &limits, &r->body)) {
    case HTTP_JSON_OK:
        return 0;
    case HTTP_JSON_TOO_LARGE:
    case HTTP_JSON_STRING_TOO_LONG:
        http_respond_error(r, 413, "payload_too_large", "the request body is too large", NULL);
        return -1;
    case HTTP_JSON_TOO_DEEP:
        http_respond_error(r, 400, "invalid_json", "the JSON body is nested too deeply", NULL);
        return -1;
    case HTTP_JSON_NUL: {
        json_t *details = r->body;
        r->body = NULL;
        http_respond_error(r, 422, "validation_failed", "the request is not valid", details);
        return -1;
    }
    default:
        http_respond_error(r, 400, "invalid_json", "the body is not a valid JSON object", NULL);
        return -1;
    }
}

int http_request_take_body(http_request_t *r)
{
    if (r->body_taken || r->route == NULL || !(r->route->flags & HTTP_ROUTE_JSON_BODY))
        return 0;
    r->body_taken = 1;
    if (r->h2o == NULL)
        return -1;
    return http_take_json_body(r, r->h2o, r->loop->server);
}

/* A throttled connection's request: no work, and no error line (an attacker would write
 * them by the thousand). */
static void http_respond_throttled(http_request_t *r)
{
    static const char body[] = "{\"error\":{\"code\":\"unavailable\",\"message\":\"this connection abandons "
                               "too many requests\"}}";
    http_add_header(r, "Retry-After", HTTP_DEFAULT_RETRY_AFTER);
    http_send(r, 503, "application/json; charset=utf-8", body, sizeof(body) - 1);
}

/* More header fields or bytes than allowed: 431, and the connection that sent them is closed
 * once the answer is out (libh2o has decoded them all by now: a connection that sends such
 * blocks costs memory for every one of its streams). */
static int http_headers_over_limit(http_request_t *r, const h2o_req_t *req, const http_server_t *server)
{
    size_t bytes = 0;
    for (size_t i = 0; i < req->headers.size; i++)
        bytes += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    if (req->headers.size <= (size_t)server->max_headers && bytes <= server->max_header_bytes)
        return 0;
    if (r->conn != NULL)
        http_conn_cut_soon(r->conn, "cut: too many or too large request headers");
    http_respond_error(r, 431, "bad_request", "too many or too large request headers", NULL);
    return 1;
}

static void http_dispatch_handler(http_request_t *r, void *unused)
{
    r->route->handler(r);
}

static void http_dispatch(http_request_t *r, h2o_req_t *req, const http_server_t *server)
{
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    http_match_t match;
    if (r->conn != NULL && !http_conn_admit(r->conn)) {
        http_respond_throttled(r);
        return;
    }
    if (http_headers_over_limit(r, req, server))
        return;
    if (path_len == 0 || req->path.base[0] != '/') {
        http_respond_error(r, 400, "bad_request", "the request path must be absolute", NULL);
        return;
    }
    http_router_match(server->router, req->method.base, req->method.len, req->path.base, path_len, &match);
    if (match.status == HTTP_MATCH_NOT_FOUND) {
        http_respond_error(r, 404, "not_found", "no such route", NULL);
        return;
    }
    if (match.status == HTTP_MATCH_METHOD_NOT_ALLOWED) {
        http_add_header(r, "Allow", match.allow);
        http_respond_error(r, 405, "method_not_allowed", "this method is not allowed on this route", NULL);
        return;
    }
    r->route = match.route;
    r->route_index = match.route_index;
    r->nparams = match.nparams;
    memcpy(r->params, match.params, sizeof(match.params[0]) * (size_t)match.nparams);
    /* Authenticated routes take their body after their credentials (http_request_take_body). */
    if ((r->route->flags & (HTTP_ROUTE_JSON_BODY | HTTP_ROUTE_AUTHENTICATED)) == HTTP_ROUTE_JSON_BODY &&
        http_request_take_body(r) != 0)
        return;
    /* A POST without credentials claims its Idempotency-Key now; an authenticated one once
     * its caller is known (handlers' me_auth_accept). */
    if (!(r->route->flags & HTTP_ROUTE_AUTHENTICATED) && strcmp(r->route->method, "POST") == 0)
        http_idempotency_begin(r, "", http_dispatch_handler, NULL);
    else
        r->route->handler(r);
}

static int http_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_loop_t *loop = http_loop_from_req(req);
    const http_server_t *server = loop->server;
    http_request_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1; /* libh2o answers 404 itself; nothing better is possible without memory */
    http_request_t **guard = h2o_mem_alloc_shared(&req->pool, sizeof(*guard), http_guard_dispose);
    *guard = r;
    r->refs = 1;
    r->h2o = req;
    r->loop = loop;
    r->app = server->app;
    r->route_index = HTTP_METRICS_ROUTE_UNMATCHED;
    r->start_us = http_now_us();
    http_set_request_id(r, req);
    http_set_client(r, req, server);
    /* The dispatch may finish the request synchronously; keep r valid until it returns. */
    http_request_retain(r);
    r->conn = http_conn_of(loop, req);
    if (r->conn != NULL) {
        r->conn_body = req->entity.len;
        http_conn_body_begin(r->conn, r->conn_body);
    }
    http_dispatch(r, req, server);
    http_request_release(r);
    return 0;
}

void http_install(h2o_pathconf_t *pathconf)
{
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = http_on_req;
}
