/*
 * One event-loop thread: its libuv loop, libh2o context, listeners, database and Redis
 * clients, and its part of the graceful shutdown. Everything here is touched only by the
 * loop's own thread once it runs, except `wakeup` (uv_async_send is thread-safe) and the
 * atomics.
 */
#include "server/server.h"

#include <fcntl.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SRV_TICK_MS 200

static srv_loop_t *srv_loop_of_uv(uv_loop_t *uv)
{
    return H2O_STRUCT_FROM_MEMBER(srv_loop_t, uv, uv);
}

/* ------------------------------------------------------------- connections ---- */

static void srv_on_socket_closed(uv_handle_t *handle)
{
    srv_loop_t *loop = srv_loop_of_uv(handle->loop);
    http_conn_t *c = (http_conn_t *)handle;
    http_conn_unregister(c);
    atomic_fetch_sub(&loop->connections, 1);
    atomic_fetch_sub_explicit(&loop->metrics.connections_open, 1, memory_order_relaxed);
    free(c);
}

/* The peer's address as text ("unknown" when the socket cannot say). */
static void srv_peer_address(uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    snprintf(out, len, "unknown");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, out, len);
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, out, len);
}

static void srv_on_refused_closed(uv_handle_t *handle)
{
    free(handle);
}

/* The TLS handshake is over: the protocol its ALPN chose reads the socket from now on, once
 * hydrant has read the frames that came along (http/conn_body.c). */
static void srv_on_handshake(h2o_socket_t *sock, const char *err)
{
    http_conn_t *c = sock->data;
    sock->data = NULL;
    /* Over either way: the loop's tick must not close a socket that is closing already. */
    c->handshake_deadline_ms = 0;
    if (err != NULL) {
        h2o_socket_close(sock);
        return;
    }
    h2o_iovec_t proto = h2o_socket_ssl_get_selected_protocol(sock);
    int http2 = 0;
    for (const h2o_iovec_t *p = h2o_http2_alpn_protocols; p->len != 0 && !http2; p++)
        http2 = proto.len == p->len && memcmp(proto.base, p->base, p->len) == 0;
    http_conn_body_start(c, http2);
    h2o_accept_ctx_t *accept = c->accept;
    if (http2)
        h2o_http2_accept(accept, sock, c->connected_at);
    else
        h2o_http1_accept(accept, sock, c->connected_at);
    http_conn_body_watch(c);
}

/* What h2o_accept does for TLS, with hydrant's own completion (srv_on_handshake) and its
 * handshake deadline kept by the loop's tick (http_conns_tick). */
static void srv_accept_tls(srv_listener_t *listener, http_conn_t *c, h2o_socket_t *sock)
{
    h2o_context_t *ctx = listener->accept.ctx;
    c->accept = &listener->accept;
    c->connected_at = *h2o_get_timestamp(ctx, NULL, NULL);
    c->handshake_deadline_ms = uv_now(ctx->loop) + ctx->globalconf->handshake_timeout;
    sock->data = c;
    h2o_socket_ssl_handshake(sock, listener->accept.ssl_ctx, NULL, srv_on_handshake);
    http_conn_body_watch(c);
}

/* The one admission path of every connection this loop serves, whether its own listener
 * accepted it or another loop handed it over: c->tcp is open on the accepted socket. */
static void srv_admit(srv_listener_t *listener, http_conn_t *c)
{
    srv_loop_t *loop = listener->loop;
    uv_tcp_t *conn = &c->tcp;
    /* Over the per-thread share of max-connections: close at once rather than queue work
     * we cannot afford. */
    if (atomic_load(&loop->connections) >= loop->max_connections) {
        uv_close((uv_handle_t *)conn, srv_on_refused_closed);
        return;
    }
    /* An address over its share of connections (or of new ones this second) is closed at
     * once, so that reaching the process-wide cap takes many addresses; trusted proxies
     * speak for many clients and are not counted. */
    char address[46];
    srv_peer_address(conn, address, sizeof(address));
    const http_server_t *http = loop->http.server;
    int trusted = http_address_is_trusted(address, http->trusted_proxies, http->ntrusted_proxies);
    if (!trusted && !http_conn_address_admit(&loop->http, address, uv_now(&loop->uv))) {
        uv_close((uv_handle_t *)conn, srv_on_refused_closed);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    atomic_fetch_add(&loop->connections, 1);
    atomic_fetch_add_explicit(&loop->metrics.connections_open, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&loop->metrics.connections_total, 1, memory_order_relaxed);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, srv_on_socket_closed);
    http_conn_register(c, sock, address, trusted, !trusted);
    /* (behind a PROXY line libh2o's own accept reads it first, and the first frames pass
     * unseen) */
    if (listener->accept.ssl_ctx != NULL && !listener->accept.expect_proxy_line) {
        srv_accept_tls(listener, c, sock);
        return;
    }
    h2o_accept(&listener->accept, sock);
    http_conn_body_watch(c);
}

/* Admits a socket accepted elsewhere (a hand-off) on this loop's listener of that index. */
static void srv_admit_fd(srv_loop_t *loop, int listener, int fd)
{
    http_conn_t *c = http_conn_new(&loop->http);
    if (c == NULL) {
        close(fd);
        return;
    }
    uv_tcp_init(&loop->uv, &c->tcp);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd); /* not the handle's: its open failed */
        uv_close((uv_handle_t *)&c->tcp, srv_on_refused_closed);
        return;
    }
    srv_admit(&loop->listeners[listener], c);
}

/* Takes the connection waiting on server out of libuv as a socket of its own, for another
 * loop: the temporary handle's fd is registered with this loop's libuv, so it is duplicated
 * and the handle closed. Returns the fd, or -1. */
static int srv_accept_fd(uv_stream_t *server)
{
    uv_tcp_t *tmp = malloc(sizeof(*tmp));
    if (tmp == NULL)
        return -1;
    uv_tcp_init(server->loop, tmp);
    uv_os_fd_t accepted;
    int fd = -1;
    if (uv_accept(server, (uv_stream_t *)tmp) == 0 && uv_fileno((uv_handle_t *)tmp, &accepted) == 0)
        fd = fcntl(accepted, F_DUPFD_CLOEXEC, 0);
    uv_close((uv_handle_t *)tmp, srv_on_refused_closed);
    return fd;
}

/* Passes the connection waiting on listener to target, or serves it here when target
 * refuses it. */
static void srv_hand_over(srv_listener_t *listener, srv_loop_t *target)
{
    srv_loop_t *loop = listener->loop;
    int index = (int)(listener - loop->listeners);
    int fd = srv_accept_fd((uv_stream_t *)&listener->handle);
    if (fd < 0)
        return;
    if (srv_handoff_push(&target->handoffs, &target->handoff_wakeup, fd, index) != 0) {
        /* The target stopped or is swamped: serving it here beats waiting for it. */
        srv_admit_fd(loop, index, fd);
        return;
    }
    HTTP_METRIC_ADD(loop->metrics.connections_handed_over, 1);
}

static void srv_on_connection(uv_stream_t *server, int status)
{
    srv_listener_t *listener = server->data;
    srv_loop_t *loop = listener->loop;
    if (status != 0)
        return;
    srv_loop_t *target = srv_handoff_target(loop);
    if (target != NULL) {
        srv_hand_over(listener, target);
        return;
    }
    http_conn_t *c = http_conn_new(&loop->http);
    if (c == NULL)
        return;
    uv_tcp_init(&loop->uv, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, srv_on_refused_closed);
        return;
    }
    srv_admit(listener, c);
}

/* Other loops handed this one connections (handoff.c). */
static void srv_on_handoff(uv_async_t *async)
{
    srv_loop_t *loop = async->data;
    srv_handoff_t batch[SRV_HANDOFF_CAPACITY];
    int n = srv_handoff_take(&loop->handoffs, batch, SRV_HANDOFF_CAPACITY);
    for (int i = 0; i < n; i++)
        srv_admit_fd(loop, batch[i].listener, batch[i].fd);
}

/* ----------------------------------------------------------------- shutdown ---- */

static void srv_on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void srv_on_pg_closed(void *data)
{
    srv_loop_t *loop = data;
    loop->http.pg = NULL;
}

static void srv_on_redis_closed(void *data)
{
    srv_loop_t *loop = data;
    loop->http.redis = NULL;
}

/* The last step: everything that keeps the loop alive is closed, so uv_run returns. */
static void srv_loop_finish(srv_loop_t *loop)
{
    loop->finished = 1;
    uv_close((uv_handle_t *)&loop->tick, srv_on_handle_closed);
    uv_close((uv_handle_t *)&loop->wakeup, srv_on_handle_closed);
    if (loop->http.pg != NULL)
        db_pg_pool_close(loop->http.pg, srv_on_pg_closed, loop);
    if (loop->http.redis != NULL)
        db_redis_close(loop->http.redis, srv_on_redis_closed, loop);
    if (atomic_load(&loop->connections) == 0) {
        /* The HTTP/2 graceful-shutdown timer stays linked after the last connection went;
         * libh2o asserts that every timeout list is empty when the context is disposed. */
        h2o_context_t *ctx = &loop->http.h2o_ctx;
        if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
            h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
        h2o_context_dispose(ctx);
        loop->h2o_disposed = 1;
    } else {
        /* Connections outlived the drain deadline: libh2o offers no safe way to free
         * them, so the loop is abandoned and the process exits with them open. */
        util_log(UTIL_LOG_WARN, "server", "thread %d: %d connection(s) still open at the shutdown deadline",
                 loop->index, (int)atomic_load(&loop->connections));
        uv_stop(&loop->uv);
    }
}

/* libh2o 2.2 has no shutdown hook for HTTP/1 (WebSockets have their own, http_ws_shutdown): a keep-alive
 * connection waiting for its next request would linger until the request timeout. One is idle when no request
 * of it is dispatched, nothing of a next one has been read (libh2o keeps a partial request, body included, in
 * the socket's input) or waits in the kernel, and nothing is being written. HTTP/2 connections that pass the
 * same test have sent their GOAWAY and have no stream left. Closing is the same shutdown() as a cut
 * (http_conn_t): libh2o closes through its own path. */
static void srv_close_if_idle(uv_handle_t *handle, void *arg)
{
    srv_loop_t *loop = arg;
    if (handle->type != UV_TCP || uv_is_closing(handle))
        return;
    for (int i = 0; i < loop->nlisteners; i++)
        if (handle == (uv_handle_t *)&loop->listeners[i].handle)
            return;
    http_conn_t *c = (http_conn_t *)handle;
    if (c->sock == NULL || c->upgraded || c->active != 0 || c->sock->input->size != 0 ||
        h2o_socket_is_writing(c->sock))
        return;
    int fd = -1, pending = 0;
    if (uv_fileno(handle, &fd) != 0 || ioctl(fd, FIONREAD, &pending) != 0 || pending != 0)
        return;
    shutdown(fd, SHUT_RDWR);
}

static void srv_loop_begin_shutdown(srv_loop_t *loop)
{
    if (loop->shutting_down)
        return;
    loop->shutting_down = 1;
    loop->shutdown_deadline = uv_now(&loop->uv) + (uint64_t)loop->shutdown_timeout_ms;
    for (int i = 0; i < loop->nlisteners; i++)
        uv_close((uv_handle_t *)&loop->listeners[i].handle, srv_on_handle_closed);
    /* A stopping loop takes no hand-offs: the other loops serve what they accept (until
     * they stop too), and what was queued for this one is closed. */
    srv_handoff_close(&loop->handoffs);
    uv_close((uv_handle_t *)&loop->handoff_wakeup, srv_on_handle_closed);
    h2o_context_request_shutdown(&loop->http.h2o_ctx);
    http_ws_shutdown(&loop->http); /* 1001, then their closing handshakes end them */
}

static void srv_on_wakeup(uv_async_t *async)
{
    srv_loop_begin_shutdown(async->data);
}

static void srv_publish_gauges(srv_loop_t *loop)
{
    http_loop_t *h = &loop->http;
    atomic_store(&h->pg_ready, h->pg != NULL ? db_pg_ready_connections(h->pg) : 0);
    atomic_store(&h->pg_total, h->pg != NULL ? db_pg_total_connections(h->pg) : 0);
    atomic_store(&h->redis_ready, h->redis != NULL ? db_redis_is_ready(h->redis) : 0);
}

static void srv_on_tick(uv_timer_t *timer)
{
    srv_loop_t *loop = timer->data;
    srv_publish_gauges(loop);
    http_conns_tick(&loop->http);
    if (!loop->shutting_down || loop->finished)
        return;
    uv_walk(&loop->uv, srv_close_if_idle, loop);
    if (atomic_load(&loop->connections) == 0 || uv_now(&loop->uv) >= loop->shutdown_deadline)
        srv_loop_finish(loop);
}

/* ------------------------------------------------------------------ set-up ---- */

int srv_loop_init(srv_loop_t *loop, const srv_loop_config_t *config, char *err, size_t errlen)
{
    loop->index = config->index;
    loop->max_connections = config->max_connections;
    loop->shutdown_timeout_ms = config->shutdown_timeout_ms;
    atomic_init(&loop->connections, 0);
    if (uv_loop_init(&loop->uv) != 0) {
        snprintf(err, errlen, "thread %d: cannot create an event loop", loop->index);
        return -1;
    }
    h2o_context_init(&loop->http.h2o_ctx, &loop->uv, config->globalconf);
    loop->http.server = config->server;
    loop->http.access_log = http_log_writer_ring(config->server->log_writer, loop->index, HTTP_LOG_ACCESS);
    loop->http.error_log = http_log_writer_ring(config->server->log_writer, loop->index, HTTP_LOG_ERROR);
    loop->http.metrics = &loop->metrics;
    if (http_conns_init(&loop->http, loop->max_connections) != 0) {
        snprintf(err, errlen, "thread %d: out of memory", loop->index);
        return -1;
    }
    loop->http.pg = db_pg_pool_new(&loop->uv, config->pg_options);
    loop->http.redis = db_redis_new(&loop->uv, config->redis_options);
    loop->http.redis_options = config->redis_options;
    if (loop->http.pg == NULL || loop->http.redis == NULL) {
        snprintf(err, errlen, "thread %d: cannot create the database clients (check the URLs)", loop->index);
        return -1;
    }
    for (int i = 0; i < config->nlisteners; i++) {
        srv_listener_t *l = &loop->listeners[i];
        l->loop = loop;
        l->accept.ctx = &loop->http.h2o_ctx;
        l->accept.hosts = config->globalconf->hosts;
        l->accept.ssl_ctx = config->listeners[i].ssl_ctx;
        uv_tcp_init(&loop->uv, &l->handle);
        l->handle.data = l;
        if (uv_tcp_open(&l->handle, config->listeners[i].fd) != 0 ||
            uv_listen((uv_stream_t *)&l->handle, 4096, srv_on_connection) != 0) {
            snprintf(err, errlen, "thread %d: cannot listen on socket %d", loop->index,
                     config->listeners[i].fd);
            return -1;
        }
        loop->nlisteners++;
    }
    uv_async_init(&loop->uv, &loop->wakeup, srv_on_wakeup);
    loop->wakeup.data = loop;
    srv_handoff_init(&loop->handoffs);
    uv_async_init(&loop->uv, &loop->handoff_wakeup, srv_on_handoff);
    loop->handoff_wakeup.data = loop;
    loop->peers = config->npeers > 1 ? config->peers : NULL;
    loop->npeers = config->npeers;
    uv_timer_init(&loop->uv, &loop->tick);
    loop->tick.data = loop;
    uv_timer_start(&loop->tick, srv_on_tick, SRV_TICK_MS, SRV_TICK_MS);
    return 0;
}

/* The loop's util_log lines (its database and Redis clients' among them) go to its error
 * ring: a slow stderr holds the log writer, never the loop. */
static void srv_loop_log_sink(void *arg, const char *line, size_t len)
{
    http_log_ring_append(arg, line, len);
}

static void *srv_loop_main(void *arg)
{
    srv_loop_t *loop = arg;
    pthread_setname_np(pthread_self(), "hydrant-loop"); /* for top -H and perf's per-thread split */
    if (loop->http.error_log != NULL)
        util_log_set_thread_sink(srv_loop_log_sink, loop->http.error_log);
    srv_handoff_open(&loop->handoffs);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    util_log_set_thread_sink(NULL, NULL);
    return NULL;
}

int srv_loop_start(srv_loop_t *loop)
{
    return pthread_create(&loop->thread, NULL, srv_loop_main, loop);
}

void srv_loop_request_shutdown(srv_loop_t *loop)
{
    uv_async_send(&loop->wakeup);
}

void srv_loop_join(srv_loop_t *loop)
{
    pthread_join(loop->thread, NULL);
}

void srv_loop_dispose(srv_loop_t *loop)
{
    if (!loop->h2o_disposed)
        return; /* abandoned at the deadline: its memory is reclaimed by the exit */
    http_conns_free(&loop->http);
    srv_handoff_dispose(&loop->handoffs);
    uv_loop_close(&loop->uv);
}
