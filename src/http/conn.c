/*
 * hydrant's view of each client connection, beside libh2o's: what its requests cost.
 *
 * libh2o 2.2 dispatches a request as soon as its HEADERS frame is parsed, and a reset stream
 * (by the client: Rapid Reset, CVE-2023-44487; or by libh2o itself when a client breaks the
 * protocol on purpose: MadeYouReset, CVE-2025-8671) destroys the request while hydrant may
 * have started real work for it. Each connection therefore keeps a budget, as upstream h2o
 * does since 2023: a request disposed before it was answered spends one unit, an answered one
 * earns one back (up to the start value). A connection out of budget is throttled: its new
 * requests are answered 503 at once, without any work, and each of them spends a unit too; a
 * connection that goes on regardless is cut. Cutting is a shutdown() of the socket, which
 * libh2o sees as a read error and closes through its own path: hydrant never frees libh2o's
 * objects itself. Connections from trusted proxies carry many clients' requests and are left
 * alone.
 *
 * The connection's uv_tcp_t is the first member of http_conn_t, so libuv's close callback
 * finds the connection; requests find it through their h2o_socket_t, in a per-loop table.
 */
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* One client address's connections on this loop: how many are open, and how many were
 * opened in the current one-second window. Kept while it has connections or its window is
 * recent, so that closing a connection does not reset the rate. */
typedef struct http_address {
    struct http_address *next;
    uint64_t body_bytes; /* request bodies in flight on its connections (conn_body.c) */
    uint32_t open;
    uint32_t opened; /* in the window starting at window_ms */
    uint64_t window_ms;
    char text[46];
} http_address_t;

#define HTTP_ADDRESS_BUCKETS 4096

struct http_conns {
    http_conn_t **buckets;
    size_t mask;
    http_conn_t *cut_soon; /* connections to cut at the next tick, once their answer is out */
    uint64_t body_bytes;   /* request bodies in flight on the loop (conn_body.c) */
    uint64_t body_tick_ms; /* when stalled bodies were last looked for */
    http_address_t *addresses[HTTP_ADDRESS_BUCKETS];
};

/* FNV-1a of the address text. */
static size_t http_address_slot(const char *text)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % HTTP_ADDRESS_BUCKETS;
}

static http_address_t *http_address_find(struct http_conns *t, const char *text, int create)
{
    size_t slot = http_address_slot(text);
    for (http_address_t *a = t->addresses[slot]; a != NULL; a = a->next)
        if (strcmp(a->text, text) == 0)
            return a;
    if (!create)
        return NULL;
    http_address_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    snprintf(a->text, sizeof(a->text), "%s", text);
    a->next = t->addresses[slot];
    t->addresses[slot] = a;
    return a;
}

static size_t http_conns_slot(const struct http_conns *t, const h2o_socket_t *sock)
{
    uintptr_t p = (uintptr_t)sock;
    return (size_t)((p >> 4) ^ (p >> 13)) & t->mask;
}

int http_conns_init(http_loop_t *loop, int expected)
{
    size_t n = 64;
    while (n < (size_t)expected * 2 && n < (1u << 20))
        n <<= 1;
    struct http_conns *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->buckets = calloc(n, sizeof(*t->buckets))) == NULL) {
        free(t);
        return -1;
    }
    t->mask = n - 1;
    loop->conns = t;
    /* libh2o's read callbacks get a socket; its loop's data leads to hydrant's (conn_body.c). */
    loop->h2o_ctx.loop->data = loop;
    return 0;
}

void http_conns_free(http_loop_t *loop)
{
    if (loop->conns == NULL)
        return;
    for (size_t i = 0; i < HTTP_ADDRESS_BUCKETS; i++) {
        for (http_address_t *a = loop->conns->addresses[i], *next; a != NULL; a = next) {
            next = a->next;
            free(a);
        }
    }
    free(loop->conns->buckets);
    free(loop->conns);
    loop->conns = NULL;
}

http_conn_t *http_conn_new(http_loop_t *loop)
{
    http_conn_t *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->loop = loop;
        c->budget = HTTP_CONN_BUDGET;
    }
    return c;
}

void http_conn_register(http_conn_t *c, h2o_socket_t *sock, const char *address, int trusted, int counted)
{
    c->sock = sock;
    c->trusted = trusted != 0;
    c->counted = counted != 0;
    snprintf(c->address, sizeof(c->address), "%s", address);
    struct http_conns *t = c->loop->conns;
    c->address_entry = c->counted ? http_address_find(t, address, 0) : NULL;
    size_t slot = http_conns_slot(t, sock);
    c->next_in_bucket = t->buckets[slot];
    t->buckets[slot] = c;
}

void http_conn_unregister(http_conn_t *c)
{
    struct http_conns *t = c->loop->conns;
    if (c->sock == NULL || t == NULL)
        return;
    http_conn_body_forget(c);
    http_address_t *a = c->address_entry;
    if (a != NULL && a->open > 0)
        a->open--;
    c->address_entry = NULL;
    for (http_conn_t **p = &t->cut_soon; c->cut_pending && *p != NULL; p = &(*p)->next_cut) {
        if (*p == c) {
            *p = c->next_cut;
            break;
        }
    }
    for (http_conn_t **p = &t->buckets[http_conns_slot(t, c->sock)]; *p != NULL; p = &(*p)->next_in_bucket) {
        if (*p == c) {
            *p = c->next_in_bucket;
            break;
        }
    }
    c->sock = NULL;
}

http_conn_t *http_conn_find(http_loop_t *loop, h2o_socket_t *sock)
{
    if (loop->conns == NULL || sock == NULL)
        return NULL;
    for (http_conn_t *c = loop->conns->buckets[http_conns_slot(loop->conns, sock)]; c != NULL;
         c = c->next_in_bucket)
        if (c->sock == sock)
            return c;
    return NULL;
}

http_conn_t *http_conn_of(http_loop_t *loop, h2o_req_t *req)
{
    if (req->conn->callbacks->get_socket == NULL)
        return NULL;
    return http_conn_find(loop, req->conn->callbacks->get_socket(req->conn));
}

void http_conns_each(http_loop_t *loop, void (*fn)(http_conn_t *c, void *arg), void *arg)
{
    struct http_conns *t = loop->conns;
    for (size_t i = 0; t != NULL && i <= t->mask; i++) {
        for (http_conn_t *c = t->buckets[i], *next; c != NULL; c = next) {
            next = c->next_in_bucket; /* fn may cut c, which never unlinks it at once */
            fn(c, arg);
        }
    }
}

uint64_t *http_conns_body_total(http_loop_t *loop)
{
    return &loop->conns->body_bytes;
}

uint64_t *http_address_body_total(struct http_address *a)
{
    return &a->body_bytes;
}

/* One line per connection and event, through the requests' error log (never blocking). */
static void http_conn_log(http_conn_t *c, const char *what)
{
    http_loop_log(c->loop, UTIL_LOG_WARN, "http", "connection from %s %s (%llu requests abandoned)",
                  c->address, what, (unsigned long long)c->wasted);
}

void http_conn_cut(http_conn_t *c, const char *why)
{
    if (c->cut)
        return;
    c->cut = 1;
    http_conn_body_forget(c); /* libh2o frees them once it sees the socket fail */
    atomic_fetch_add_explicit(&c->loop->metrics->connections_cut, 1, memory_order_relaxed);
    http_conn_log(c, why);
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        shutdown(fd, SHUT_RDWR);
}

void http_conn_upgraded(http_conn_t *c)
{
    c->upgraded = 1;
    http_conn_body_forget(c);
}

void http_conn_cut_soon(http_conn_t *c, const char *why)
{
    if (c->cut || c->cut_pending)
        return;
    c->cut_pending = 1;
    c->cut_why = why;
    c->next_cut = c->loop->conns->cut_soon;
    c->loop->conns->cut_soon = c;
}

int http_conn_address_admit(http_loop_t *loop, const char *address, uint64_t now_ms)
{
    const http_server_t *server = loop->server;
    if (server->address_max_connections <= 0 && server->address_new_per_second <= 0)
        return 1;
    http_address_t *a = http_address_find(loop->conns, address, 1);
    if (a == NULL)
        return 0; /* out of memory: a new connection is the least we can afford */
    if (now_ms - a->window_ms >= 1000) {
        a->window_ms = now_ms;
        a->opened = 0;
    }
    if ((server->address_max_connections > 0 && a->open >= (uint32_t)server->address_max_connections) ||
        (server->address_new_per_second > 0 && a->opened >= (uint32_t)server->address_new_per_second)) {
        atomic_fetch_add_explicit(&loop->metrics->connections_refused, 1, memory_order_relaxed);
        return 0;
    }
    a->open++;
    a->opened++;
    return 1;
}

/* The address's entry goes once it has no connection and its window is over. */
static void http_conns_sweep_addresses(struct http_conns *t, uint64_t now_ms)
{
    for (size_t i = 0; i < HTTP_ADDRESS_BUCKETS; i++) {
        for (http_address_t **p = &t->addresses[i]; *p != NULL;) {
            http_address_t *a = *p;
            if (a->open == 0 && now_ms - a->window_ms >= 1000) {
                *p = a->next;
                free(a);
            } else {
                p = &a->next;
            }
        }
    }
}

/* Does c still owe its client part of an answer? Event streams are open-ended and judged by
 * their owners (sse.c); sock->bytes_written also counts heads and control frames, so owed
 * bytes beyond it are bodies not yet written. */
static int http_conn_sending(const http_conn_t *c)
{
    return c->answers_unsent > c->streams || (c->sock != NULL && c->bytes_owed > c->sock->bytes_written);
}

/* libh2o 2.2 keeps an answer that its client does not read (a zero flow-control window, or a
 * full TCP window) for as long as the connection lives: its stream stays open, which also
 * keeps the connection out of the idle timeout. Writing nothing (or a trickle: PING answers,
 * one-byte windows) while answers wait cuts the connection. */
static void http_conn_send_check(http_conn_t *c, uint64_t now_ms)
{
    const http_server_t *server = c->loop->server;
    if (c->cut || c->trusted || c->sock == NULL || server->send_timeout_ms == 0 || !http_conn_sending(c))
        return;
    uint64_t elapsed = now_ms - c->send_window_ms;
    if (elapsed < server->send_timeout_ms)
        return;
    size_t written = c->sock->bytes_written - c->send_window_written;
    if (written == 0 || written * 1000 < server->send_min_rate * elapsed) {
        atomic_fetch_add_explicit(&c->loop->metrics->answers_unread, 1, memory_order_relaxed);
        http_conn_cut(c, "cut: its answers were read slower than limits.send-min-rate");
        return;
    }
    c->send_window_ms = now_ms;
    c->send_window_written = c->sock->bytes_written;
}

/* A TLS handshake past its deadline is closed quietly, as libh2o's own accept would; a
 * stalled request body or an unread answer cuts its connection. */
static void http_conn_check_deadlines(http_conn_t *c, void *arg)
{
    uint64_t now_ms = *(uint64_t *)arg;
    if (c->handshake_deadline_ms != 0 && now_ms >= c->handshake_deadline_ms && c->sock != NULL) {
        /* The socket is still hydrant's (no protocol has it yet), and libh2o may not be
         * watching it (a handshake write its peer never reads): closed as libh2o's own
         * accept timeout does; its close callback frees c later. */
        c->handshake_deadline_ms = 0;
        h2o_socket_close(c->sock);
        return;
    }
    http_conn_body_check(c, now_ms);
    http_conn_send_check(c, now_ms);
}

void http_conns_tick(http_loop_t *loop)
{
    if (loop->conns == NULL)
        return;
    uint64_t now_ms = uv_now(loop->h2o_ctx.loop);
    http_conns_sweep_addresses(loop->conns, now_ms);
    if (now_ms - loop->conns->body_tick_ms >= 1000) {
        loop->conns->body_tick_ms = now_ms;
        http_conns_each(loop, http_conn_check_deadlines, &now_ms);
    }
    http_conn_t *list = loop->conns->cut_soon;
    loop->conns->cut_soon = NULL;
    for (http_conn_t *c = list, *next; c != NULL; c = next) {
        next = c->next_cut;
        c->cut_pending = 0;
        http_conn_cut(c, c->cut_why);
    }
}

/* Spends one unit of the budget; throttles, then cuts, a connection that runs out. */
static void http_conn_spend(http_conn_t *c)
{
    if (c->trusted)
        return;
    c->budget--;
    if (c->budget <= 0 && !c->throttled) {
        c->throttled = 1;
        atomic_fetch_add_explicit(&c->loop->metrics->connections_throttled, 1, memory_order_relaxed);
        http_conn_log(c, "throttled: it abandons too many requests");
    }
    if (c->budget <= -HTTP_CONN_BUDGET)
        http_conn_cut(c, "cut: it kept abandoning requests while throttled");
}

/* A request's shares are counted on it as well, so that a request disposed with work still
 * out gives them back to its connection at once (the work's completion then finds r->conn
 * NULL and gives nothing back twice). */
int http_conn_take_queries(http_request_t *r, int n)
{
    http_conn_t *c = r->conn;
    if (c == NULL)
        return 1;
    int share = c->loop->server->conn_max_queries;
    if (!c->trusted && share > 0 && c->queries + (uint32_t)n > (uint32_t)share)
        return 0;
    c->queries += (uint32_t)n;
    r->conn_queries += (uint32_t)n;
    return 1;
}

void http_conn_put_queries(http_request_t *r, int n)
{
    if (r->conn == NULL)
        return;
    r->conn->queries -= (uint32_t)n;
    r->conn_queries -= (uint32_t)n;
}

int http_conn_take_cpu(http_request_t *r)
{
    http_conn_t *c = r->conn;
    if (c == NULL)
        return 1;
    int share = c->loop->server->conn_max_cpu_jobs;
    if (!c->trusted && share > 0 && c->cpu_jobs >= (uint32_t)share)
        return 0;
    c->cpu_jobs++;
    r->conn_cpu++;
    return 1;
}

void http_conn_put_cpu(http_request_t *r)
{
    if (r->conn == NULL)
        return;
    r->conn->cpu_jobs--;
    r->conn_cpu--;
}

int http_conn_admit(http_conn_t *c)
{
    c->active++;
    if (!c->throttled)
        return 1;
    http_conn_spend(c); /* answered at once, but still a request it should not have sent */
    return 0;
}

void http_conn_answered(http_conn_t *c, size_t bytes)
{
    if (!http_conn_sending(c) && c->sock != NULL) {
        c->send_window_ms = uv_now(c->loop->h2o_ctx.loop);
        c->send_window_written = c->sock->bytes_written;
    }
    c->answers_unsent++;
    c->bytes_owed += bytes;
    if (!c->throttled && c->budget < HTTP_CONN_BUDGET)
        c->budget++;
}

void http_conn_stream(http_conn_t *c, int delta)
{
    c->streams = (uint32_t)((int)c->streams + delta);
}

void http_conn_disposed(http_conn_t *c, int answered)
{
    c->active--;
    if (answered) {
        c->answers_unsent--;
        return;
    }
    c->wasted++;
    atomic_fetch_add_explicit(&c->loop->metrics->requests_abandoned, 1, memory_order_relaxed);
    http_conn_spend(c);
}
