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

/* Connections handed from one loop to another (handoff.c). SO_REUSEPORT hashes each
 * connection to a loop, so a few long-lived connections (HTTP/2 clients, a load balancer's
 * pool) often land on one loop while the others idle; the loop that accepts a connection
 * while another holds fewer passes its socket over. */
#define SRV_HANDOFF_CAPACITY 1024

typedef struct {
    int fd;
    int listener; /* the index of the listener that accepted it: the same on every loop */
} srv_handoff_t;

/* A bounded queue of accepted sockets waiting for their loop. Any loop pushes; only the
 * owner takes. The lock is held for a few stores, never across I/O. */
typedef struct {
    pthread_mutex_t lock;
    atomic_int open;   /* 1 while the owner serves hand-offs; written under lock */
    atomic_int queued; /* count, written under lock, read without it as part of a load */
    int head;
    srv_handoff_t items[SRV_HANDOFF_CAPACITY];
} srv_handoff_queue_t;

void srv_handoff_init(srv_handoff_queue_t *q);
/* Called by the owner's thread when it starts serving: before, pushes are refused. */
void srv_handoff_open(srv_handoff_queue_t *q);
/* Queues fd for the queue's owner and wakes it (wakeup: the owner's async handle, sent
 * under the lock so that it is never sent after srv_handoff_close). Returns 0, or -1 when
 * the owner is not serving hand-offs or the queue is full: the caller keeps fd. */
int srv_handoff_push(srv_handoff_queue_t *q, uv_async_t *wakeup, int fd, int listener);
/* Moves the queued hand-offs to out (at most max). Returns how many. */
int srv_handoff_take(srv_handoff_queue_t *q, srv_handoff_t *out, int max);
/* Refuses later pushes and closes the sockets still queued (the owner is stopping). */
void srv_handoff_close(srv_handoff_queue_t *q);
void srv_handoff_dispose(srv_handoff_queue_t *q);
/* The loop that should serve a connection self just accepted: the least loaded other loop
 * when self holds clearly more, else NULL (serve it here). */
srv_loop_t *srv_handoff_target(srv_loop_t *self);

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
    /* Hand-offs (handoff.c): the sockets other loops accepted for this one, and its wake-up. */
    srv_handoff_queue_t handoffs;
    uv_async_t handoff_wakeup;
    srv_loop_t *peers; /* every loop of the process, this one included; NULL: no balancing */
    int npeers;
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
    srv_loop_t *peers; /* every loop, to balance connections over; NULL: no balancing */
    int npeers;
} srv_loop_config_t;

/* Runs on the main thread before the loop's thread starts. */
int srv_loop_init(srv_loop_t *loop, const srv_loop_config_t *config, char *err, size_t errlen);
int srv_loop_start(srv_loop_t *loop);
/* Thread-safe: asks the loop to stop accepting, drain and close. */
void srv_loop_request_shutdown(srv_loop_t *loop);
void srv_loop_join(srv_loop_t *loop);
void srv_loop_dispose(srv_loop_t *loop);

#endif
