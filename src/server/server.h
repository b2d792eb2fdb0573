/*
 * The server process: listeners, TLS, one libuv loop + libh2o context per thread, the
 * per-loop PostgreSQL and Redis clients, signals and graceful shutdown.
 */
#ifndef HYDRANT_SERVER_H
#define HYDRANT_SERVER_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "config/config.h"
#include "http/http.h"
#include "jobs/jobs.h"

/* The process-wide settings the server needs (the size of libuv's thread pool). Call before
 * any thread starts, job workers included: setenv races every getenv on other threads (libpq
 * reads PG* variables when a worker connects). */
void srv_process_init(void);

/* Adds routes to the router besides every family of handlers_register: the test binary's
 * hooks (src/testhooks). Returns 0, or -1 with a message. */
typedef int (*srv_routes_fn)(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen);

/* Runs the server until SIGTERM/SIGINT and a graceful drain. Returns the process exit code
 * (0 after a clean shutdown). Start-up failures are logged (util_log). jobs (may be NULL) is
 * this process's worker pool: its metrics are served, and it is stopped (and freed) together
 * with the loops. extra_routes may be NULL. */
int srv_run(const cfg_t *cfg, jobs_pool_t *jobs, srv_routes_fn extra_routes);

/* A listening TCP socket bound to host:port, with SO_REUSEPORT so that every loop thread
 * can own one. Returns the fd or -1 with a message. */
int srv_listen_socket(const char *host, int port, char *err, size_t errlen);

/* A server TLS context: TLS 1.2+, the certificate chain and key, ALPN h2 and http/1.1,
 * session tickets and a session cache for resumption. NULL with a message on failure. */
SSL_CTX *srv_tls_context_new(const char *cert_file, const char *key_file, char *err, size_t errlen);

/* ---- internals shared by the files of src/server ---- */

typedef struct srv_loop srv_loop_t;

typedef struct {
    uv_tcp_t handle;
    h2o_accept_ctx_t accept;
    srv_loop_t *loop;
} srv_listener_t;

struct srv_loop {
    int index;
    pthread_t thread;
    uv_loop_t uv;
    http_loop_t http; /* the libh2o context and this loop's clients */
    http_metrics_shard_t metrics;
    srv_listener_t listeners[CFG_MAX_LISTENERS];
    int nlisteners;
    uv_async_t wakeup; /* shutdown requests from the main thread */
    uv_timer_t tick;   /* gauges, shutdown progress */
    atomic_int connections;
    int max_connections;
    int shutdown_timeout_ms;
    uint64_t shutdown_deadline;
    int shutting_down, finished, h2o_disposed;
};

typedef struct {
    int fd;
    SSL_CTX *ssl_ctx; /* NULL for plain HTTP */
} srv_loop_listener_t;

typedef struct {
    int index;
    h2o_globalconf_t *globalconf;
    const http_server_t *server;
    const db_pg_options_t *pg_options;
    const db_redis_options_t *redis_options;
    const srv_loop_listener_t *listeners; /* this thread's sockets */
    int nlisteners;
    int max_connections;
    int shutdown_timeout_ms;
} srv_loop_config_t;

/* Runs on the main thread before the loop's thread starts. */
int srv_loop_init(srv_loop_t *loop, const srv_loop_config_t *config, char *err, size_t errlen);
int srv_loop_start(srv_loop_t *loop);
/* Thread-safe: asks the loop to stop accepting, drain and close. */
void srv_loop_request_shutdown(srv_loop_t *loop);
void srv_loop_join(srv_loop_t *loop);
void srv_loop_dispose(srv_loop_t *loop);

#endif
