/*
 * The HTTP ceiling of this machine for bench/: a minimal libh2o server with hydrant's TLS
 * settings (the same srv_tls_context_new) and thread layout (one libuv loop per thread, one
 * SO_REUSEPORT socket each), answering every request with a fixed small JSON body. What
 * hydrant's GET /health/live reaches is reported as a ratio of what this reaches in the same
 * run: the difference is hydrant's own request handling.
 *
 * GET /same-headers answers with the headers hydrant sends on every answer (a fresh
 * X-Request-Id, the security headers, Cache-Control; no HSTS, as bench/ runs hydrant in
 * development mode): against it, hydrant's own work is measured apart from what libh2o's
 * HPACK encoder spends on those headers.
 *
 * usage: ceiling TLS_PORT HTTP_PORT THREADS CERT KEY    (listens on 127.0.0.1; SIGTERM stops)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "server/server.h"
#include "util/util.h"

#define CEILING_MAX_THREADS 64

static const char ceiling_body[] = "{\"status\":\"ok\"}";
/* GET /bulk: 64 KiB, for the TLS suites' bulk cost (bench/api/tls_suites). */
static char ceiling_bulk[64 * 1024];

typedef struct {
    uv_loop_t uv;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept[2];
    uv_tcp_t listeners[2];
    pthread_t thread;
} ceiling_loop_t;

/* The headers hydrant's http_response_begin adds, in its order, with its values. */
static void ceiling_add_hydrant_headers(h2o_req_t *req)
{
    char *id = h2o_mem_alloc_pool(&req->pool, 33);
    uint64_t bits[2] = {util_random_u64(), util_random_u64()};
    util_hex_encode(bits, sizeof(bits), id, 0);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id, 32);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json; charset=utf-8"));
    for (size_t i = 0; i < HTTP_NSECURITY_HEADERS; i++) {
        const http_fixed_header_t *h = &http_security_headers[i];
        h2o_add_header_by_str(&req->pool, &req->res.headers, h->name.base, h->name.len, 0, NULL,
                              h->value.base, h->value.len);
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
}

static int ceiling_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    req->res.status = 200;
    req->res.reason = "OK";
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/bulk"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/octet-stream"));
        h2o_send_inline(req, ceiling_bulk, sizeof(ceiling_bulk));
        return 0;
    }
    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/same-headers"))) {
        ceiling_add_hydrant_headers(req);
        h2o_send_inline(req, ceiling_body, sizeof(ceiling_body) - 1);
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json; charset=utf-8"));
    h2o_send_inline(req, ceiling_body, sizeof(ceiling_body) - 1);
    return 0;
}

static void ceiling_on_closed(uv_handle_t *handle)
{
    free(handle);
}

static void ceiling_on_connection(uv_stream_t *server, int status)
{
    h2o_accept_ctx_t *accept = server->data;
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (status != 0 || conn == NULL) {
        free(conn);
        return;
    }
    uv_tcp_init(server->loop, conn);
    if (uv_accept(server, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, ceiling_on_closed);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_accept(accept, h2o_uv_socket_create((uv_stream_t *)conn, ceiling_on_closed));
}

static void *ceiling_run(void *arg)
{
    ceiling_loop_t *loop = arg;
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    return NULL;
}

static int ceiling_listen(ceiling_loop_t *loop, int i, int port, SSL_CTX *ssl, h2o_globalconf_t *config)
{
    char err[256];
    int fd = srv_listen_socket("127.0.0.1", port, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "ceiling: %s\n", err);
        return -1;
    }
    loop->accept[i] = (h2o_accept_ctx_t){.ctx = &loop->ctx, .hosts = config->hosts, .ssl_ctx = ssl};
    uv_tcp_init(&loop->uv, &loop->listeners[i]);
    loop->listeners[i].data = &loop->accept[i];
    if (uv_tcp_open(&loop->listeners[i], fd) != 0 ||
        uv_listen((uv_stream_t *)&loop->listeners[i], 4096, ceiling_on_connection) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    int tls_port = atoi(argv[1]), http_port = atoi(argv[2]), nthreads = atoi(argv[3]);
    if (nthreads < 1 || nthreads > CEILING_MAX_THREADS)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    memset(ceiling_bulk, 'x', sizeof(ceiling_bulk));
    char err[256];
    SSL_CTX *ssl = srv_tls_context_new(argv[4], argv[5], err, sizeof(err));
    if (ssl == NULL) {
        fprintf(stderr, "ceiling: %s\n", err);
        return 1;
    }
    static h2o_globalconf_t config;
    h2o_config_init(&config);
    h2o_hostconf_t *host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(path, sizeof(h2o_handler_t))->on_req = ceiling_on_req;
    static ceiling_loop_t loops[CEILING_MAX_THREADS];
    for (int t = 0; t < nthreads; t++) {
        uv_loop_init(&loops[t].uv);
        h2o_context_init(&loops[t].ctx, &loops[t].uv, &config);
        if (ceiling_listen(&loops[t], 0, tls_port, ssl, &config) != 0 ||
            ceiling_listen(&loops[t], 1, http_port, NULL, &config) != 0)
            return 1;
    }
    /* Signals are taken by the main thread only; the loops run until the process ends. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    for (int t = 0; t < nthreads; t++)
        pthread_create(&loops[t].thread, NULL, ceiling_run, &loops[t]);
    fprintf(stderr, "ceiling: listening on 127.0.0.1:%d (TLS) and :%d, %d threads\n", tls_port, http_port,
            nthreads);
    int signum;
    sigwait(&set, &signum);
    return 0;
}
