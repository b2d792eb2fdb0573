/*
 * WebSockets (RFC 6455) over libh2o 2.2's websocket support (wslay underneath), with what
 * libh2o leaves out: a per-socket timer (pings, idle sockets, a bounded closing handshake),
 * a cap on a received message (wslay's default is 2 GiB; past it wslay itself closes with
 * 1009), a rate of messages per socket (past it: 1008), a cap on what waits to be sent (a
 * client that does not read is cut, never allowed to grow memory), and close 1001 for every
 * socket when the server shuts down (libh2o's graceful shutdown does not touch upgraded
 * sockets).
 *
 * HTTP/1.1 only: h2o_upgrade_to_websocket asserts on HTTP/2, so callers ask
 * http_ws_is_handshake first (it says no for HTTP/2).
 *
 * Re-entrancy: libh2o calls back from inside wslay (h2o_websocket_proceed -> wslay_event_recv
 * -> the message callback). Messages and closes queued from inside that callback are only
 * queued: the proceed loop that is running writes them. From outside, the queueing call runs
 * proceed itself. A socket that ends is told to its owner from the timer's close callback, a
 * loop iteration later, so that neither its owner's state nor the http_ws_t vanish under a
 * caller that is still using them.
 *
 * After a close that wslay sent on its own (1009, 1002, 1007), it stops reading; closing the
 * TCP socket at once while the client is still sending would make the kernel answer with a
 * reset, which may destroy the close frame before the client reads it. Such a socket lingers:
 * its write side is shut, what arrives is discarded, and it is closed at the client's end of
 * stream or after the closing grace.
 */
#include "http/http.h"

#include <h2o/websocket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_WS_CLOSE_GRACE_MS 1000         /* a closing handshake the client does not finish */
#define HTTP_WS_LINGER_MAX     (256 * 1024) /* bytes discarded while lingering, then closed */

struct http_ws {
    struct http_ws *next, *prev; /* the loop's sockets (loop->ws_head) */
    http_loop_t *loop;
    h2o_websocket_conn_t *conn; /* NULL once libh2o's side is closed */
    h2o_socket_t *linger;       /* the socket while it lingers (see the top of the file) */
    http_conn_t *hc;            /* its connection, while the socket is open */
    uv_timer_t timer;
    http_ws_limits_t limits;
    http_ws_callbacks_t cb;
    void *data;
    uint64_t received_ms, pinged_ms, close_deadline_ms;
    uint64_t recent[HTTP_WS_MAX_RATE]; /* when the last messages came, a ring */
    unsigned nrecent, at;
    size_t lingered;
    uint16_t close_code; /* for the metrics: the code it closed with, 1006 when cut */
    unsigned in_callback : 1, closing : 1, ended : 1;
};

static uint64_t http_ws_now(const http_ws_t *ws)
{
    return uv_now(ws->loop->h2o_ctx.loop);
}

static void http_ws_count_close(http_ws_t *ws)
{
    http_metrics_shard_t *m = ws->loop->metrics;
    int slot;
    switch (ws->close_code) {
    case 1000:
        slot = HTTP_WS_CLOSE_NORMAL;
        break;
    case 1001:
        slot = HTTP_WS_CLOSE_GOING_AWAY;
        break;
    case 1008:
        slot = HTTP_WS_CLOSE_POLICY;
        break;
    case 1009:
        slot = HTTP_WS_CLOSE_TOO_BIG;
        break;
    case 1006:
        slot = HTTP_WS_CLOSE_ABNORMAL;
        break;
    default:
        slot = HTTP_WS_CLOSE_OTHER;
        break;
    }
    atomic_fetch_add_explicit(&m->ws_closes[slot], 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&m->ws_open, 1, memory_order_relaxed);
}

/* The timer's close callback: the last of the socket. Its owner hears of it here. */
static void http_ws_freed(uv_handle_t *handle)
{
    http_ws_t *ws = handle->data;
    ws->cb.gone(ws->data);
    free(ws);
}

/* Both libh2o's side and the linger are over: the socket leaves its loop. */
static void http_ws_end(http_ws_t *ws)
{
    if (ws->ended)
        return;
    ws->ended = 1;
    ws->hc = NULL;
    if (ws->prev != NULL)
        ws->prev->next = ws->next;
    else
        ws->loop->ws_head = ws->next;
    if (ws->next != NULL)
        ws->next->prev = ws->prev;
    http_ws_count_close(ws);
    uv_timer_stop(&ws->timer);
    uv_close((uv_handle_t *)&ws->timer, http_ws_freed);
}

static void http_ws_linger_read(h2o_socket_t *sock, const char *err)
{
    http_ws_t *ws = sock->data;
    if (err == NULL) {
        ws->lingered += sock->input->size;
        h2o_buffer_consume(&sock->input, sock->input->size);
        if (ws->lingered <= HTTP_WS_LINGER_MAX)
            return;
    }
    ws->linger = NULL;
    h2o_socket_close(sock);
    http_ws_end(ws);
}

/* libh2o's side is over (arg NULL in the message callback): see the top of the file. */
static void http_ws_closed(http_ws_t *ws)
{
    h2o_websocket_conn_t *conn = ws->conn;
    ws->conn = NULL;
    h2o_socket_t *sock = conn->sock;
    int linger = sock != NULL && ws->hc != NULL && !ws->hc->cut && wslay_event_get_close_sent(conn->ws_ctx) &&
                 !wslay_event_get_close_received(conn->ws_ctx);
    if (ws->close_code == 0)
        ws->close_code =
            wslay_event_get_close_sent(conn->ws_ctx) ? wslay_event_get_status_code_sent(conn->ws_ctx) : 1006;
    if (!linger) {
        h2o_websocket_close(conn);
        http_ws_end(ws);
        return;
    }
    conn->sock = NULL; /* h2o_websocket_close then frees only wslay's side */
    h2o_websocket_close(conn);
    ws->linger = sock;
    sock->data = ws;
    ws->close_deadline_ms = http_ws_now(ws) + HTTP_WS_CLOSE_GRACE_MS;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&ws->hc->tcp, &fd) == 0)
        shutdown(fd, SHUT_WR);
    h2o_socket_read_start(sock, http_ws_linger_read);
}

/* Sends what is queued, unless the proceed loop that called us back will. */
static void http_ws_flush(http_ws_t *ws)
{
    if (ws->conn != NULL && ws->conn->sock != NULL && !ws->in_callback)
        h2o_websocket_proceed(ws->conn);
}

/* The client sent more than limits.max_per_second messages within one second? Counts this one. */
static int http_ws_over_rate(http_ws_t *ws, uint64_t now)
{
    unsigned max = ws->limits.max_per_second;
    if (max == 0 || max > HTTP_WS_MAX_RATE)
        max = HTTP_WS_MAX_RATE;
    if (ws->nrecent >= max && now - ws->recent[ws->at] < 1000)
        return 1;
    ws->recent[ws->at] = now;
    ws->at = (ws->at + 1) % max;
    if (ws->nrecent < max)
        ws->nrecent++;
    return 0;
}

static void http_ws_on_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    http_ws_t *ws = conn->data;
    if (arg == NULL) {
        http_ws_closed(ws);
        return;
    }
    uint64_t now = http_ws_now(ws);
    ws->received_ms = now;
    if (ws->closing || (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME))
        return; /* pings are answered by wslay, closes too; nothing is read once closing */
    atomic_fetch_add_explicit(&ws->loop->metrics->ws_messages_in, 1, memory_order_relaxed);
    ws->in_callback = 1;
    if (http_ws_over_rate(ws, now))
        http_ws_close(ws, 1008, "more messages per second than allowed");
    else
        ws->cb.message(ws->data, arg->opcode == WSLAY_BINARY_FRAME, (const char *)arg->msg, arg->msg_length);
    ws->in_callback = 0;
}

/* Cuts the connection (libh2o then closes the socket through its own error path). */
static void http_ws_cut(http_ws_t *ws, const char *why)
{
    if (ws->close_code == 0 || ws->close_code == 1000)
        ws->close_code = 1006;
    if (ws->linger != NULL) {
        h2o_socket_t *sock = ws->linger;
        ws->linger = NULL;
        h2o_socket_close(sock);
        http_ws_end(ws);
        return;
    }
    if (ws->hc != NULL)
        http_conn_cut(ws->hc, why);
}

static void http_ws_tick(uv_timer_t *timer)
{
    http_ws_t *ws = timer->data;
    uint64_t now = uv_now(timer->loop);
    if (ws->ended)
        return;
    if (ws->closing || ws->linger != NULL) {
        if (now >= ws->close_deadline_ms)
            http_ws_cut(ws, "cut: its WebSocket did not finish the closing handshake");
        return;
    }
    if (ws->loop->h2o_ctx.shutdown_requested) {
        http_ws_close(ws, 1001, "the server is shutting down");
        return;
    }
    uint64_t ping = ws->limits.ping_ms;
    if (now - ws->received_ms >= 2 * ping) {
        /* a ping went unanswered for as long again */
        http_ws_close(ws, 1000, "idle: pings were not answered");
    } else if (now - ws->received_ms >= ping && now - ws->pinged_ms >= ping && ws->conn != NULL) {
        struct wslay_event_msg msg = {.opcode = WSLAY_PING, .msg = (const uint8_t *)"", .msg_length = 0};
        if (wslay_event_queue_msg(ws->conn->ws_ctx, &msg) == 0) {
            ws->pinged_ms = now;
            http_ws_flush(ws);
        }
    }
}

int http_ws_is_handshake(http_request_t *r)
{
    const char *key = NULL;
    if (r->h2o == NULL || r->h2o->version >= 0x200)
        return 0;
    if (h2o_is_websocket_handshake(r->h2o, &key) != 0)
        return -1;
    return key != NULL;
}

http_ws_t *http_ws_accept(http_request_t *r, const http_ws_limits_t *limits, const http_ws_callbacks_t *cb,
                          void *data)
{
    const char *key = NULL;
    if (r->h2o == NULL || r->responded || r->h2o->version >= 0x200 || r->conn == NULL ||
        h2o_is_websocket_handshake(r->h2o, &key) != 0 || key == NULL) {
        http_respond_error(r, 400, "bad_request", "not a WebSocket handshake", NULL);
        return NULL;
    }
    if (r->loop->h2o_ctx.shutdown_requested) {
        http_respond_error(r, 503, "unavailable", "the server is shutting down", NULL);
        return NULL;
    }
    http_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        http_respond_error(r, 503, "unavailable", "out of memory", NULL);
        return NULL;
    }
    ws->loop = r->loop;
    ws->limits = *limits;
    if (ws->limits.ping_ms == 0)
        ws->limits.ping_ms = 15000;
    ws->cb = *cb;
    ws->data = data;
    ws->hc = r->conn;
    /* From now on the connection's bytes are the socket's, not a request body's, and the
     * shutdown's idle sweep leaves it to http_ws_shutdown. */
    http_conn_upgraded(r->conn);
    h2o_req_t *req = http_response_begin(r, 101, NULL, 0);
    ws->received_ms = ws->pinged_ms = http_ws_now(ws);
    uv_timer_init(ws->loop->h2o_ctx.loop, &ws->timer);
    ws->timer.data = ws;
    uint64_t every = ws->limits.ping_ms / 4;
    every = every < 20 ? 20 : every > 1000 ? 1000 : every;
    uv_timer_start(&ws->timer, http_ws_tick, every, every);
    ws->next = ws->loop->ws_head;
    if (ws->next != NULL)
        ws->next->prev = ws;
    ws->loop->ws_head = ws;
    atomic_fetch_add_explicit(&ws->loop->metrics->ws_open, 1, memory_order_relaxed);
    ws->conn = h2o_upgrade_to_websocket(req, key, ws, http_ws_on_message);
    wslay_event_config_set_max_recv_msg_length(ws->conn->ws_ctx, ws->limits.max_message);
    return ws;
}

int http_ws_send_text(http_ws_t *ws, const char *text, size_t len)
{
    if (ws->conn == NULL || ws->closing)
        return -1;
    wslay_event_context_ptr ctx = ws->conn->ws_ctx;
    if (wslay_event_get_queued_msg_length(ctx) + len > ws->limits.max_queued) {
        http_ws_cut(ws, "cut: its WebSocket's queue was full (realtime.stream-queue)");
        return -1;
    }
    struct wslay_event_msg msg = {
        .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
    if (wslay_event_queue_msg(ctx, &msg) != 0)
        return -1;
    atomic_fetch_add_explicit(&ws->loop->metrics->ws_messages_out, 1, memory_order_relaxed);
    http_ws_flush(ws);
    return 0;
}

void http_ws_close(http_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws->conn == NULL || ws->closing)
        return;
    ws->closing = 1;
    ws->close_code = code;
    ws->close_deadline_ms = http_ws_now(ws) + HTTP_WS_CLOSE_GRACE_MS;
    size_t len = reason != NULL ? strlen(reason) : 0;
    if (wslay_event_queue_close(ws->conn->ws_ctx, code, (const uint8_t *)reason, len > 123 ? 123 : len) !=
        0) {
        http_ws_cut(ws, "cut: its WebSocket could not be closed");
        return;
    }
    http_ws_flush(ws);
}

void http_ws_shutdown(http_loop_t *loop)
{
    /* A socket may end while it is closed (a write error): take next first. */
    for (http_ws_t *ws = loop->ws_head, *next; ws != NULL; ws = next) {
        next = ws->next;
        http_ws_close(ws, 1001, "the server is shutting down");
    }
}
