/*
 * srv_run: builds the read-only parts shared by every loop (router, libh2o configuration,
 * TLS contexts, listening sockets), starts one loop thread per configured thread, then
 * waits on the main thread for SIGTERM/SIGINT and drives the graceful shutdown.
 */
#include "server/server.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <unistd.h>

#include "handlers/handlers.h"

#define SRV_ERR_LEN 512
/* Per loop, for the requests' error lines on stderr: a few hundred lines of an outage. */
#define SRV_ERROR_LOG_BYTES (64 * 1024)

typedef struct {
    const cfg_t *cfg;
    h2o_globalconf_t globalconf;
    http_server_t http;
    handlers_app_t app;
    SSL_CTX *ssl[CFG_MAX_LISTENERS];
    int *fds; /* [thread][listener] */
    srv_loop_t *loops;
    http_loop_t **http_loops;
    int nloops;
    int nstarted;
    db_pg_options_t pg_options;
    db_redis_options_t redis_options;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_delay; /* from the signal to the loops' drain */
    jobs_pool_t *jobs;
    srv_routes_fn extra_routes;
} srv_t;

static void srv_configure_h2o(srv_t *srv)
{
    const cfg_limits_t *limits = &srv->cfg->limits;
    h2o_globalconf_t *g = &srv->globalconf;
    h2o_config_init(g);
    g->server_name = h2o_iovec_init(H2O_STRLIT("hydrant"));
    /* libh2o 2.2 buffers whole bodies before the handler runs; the largest route limit bounds
     * what it will read, and each route then applies its own. */
    g->max_request_entity_size = (size_t)limits->max_body;
    /* The slack lets a multipart body carry a file of exactly the limit, and a raw body just
     * over it reach the route, which answers with the contract's 413 (libh2o's own is text). */
    size_t uploads = (size_t)srv->cfg->uploads.max_size + 64 * 1024;
    if (uploads > g->max_request_entity_size)
        g->max_request_entity_size = uploads;
    /* http1.req_timeout bounds the wait for a complete request (slowloris) and for the next
     * request on an idle keep-alive connection. */
    g->http1.req_timeout = (uint64_t)limits->request_timeout_ms;
    g->http2.idle_timeout = (uint64_t)limits->idle_timeout_ms;
    g->http2.graceful_shutdown_timeout = (uint64_t)limits->shutdown_timeout_ms;
    g->handshake_timeout = (uint64_t)limits->request_timeout_ms;
    h2o_hostconf_t *host = h2o_config_register_host(g, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    http_install(path);
}

/* mkdir -p */
static int srv_mkdirs(const char *path)
{
    char buf[FILENAME_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0750) != 0 && errno != EEXIST ? -1 : 0;
}

/* Request bodies above 8 MiB go to unlinked temporary files instead of memory (libh2o 2.2
 * reads a body whole before the handler runs), in uploads.dir/tmp rather than /tmp: on the
 * uploads' own disk, which is sized for them, where /tmp may be a RAM disk. The directory is
 * made here, at start-up, where blocking is fine. When that spill fails (a full disk), libh2o
 * resets the stream or closes the connection without calling us, so no 503 can be sent:
 * uploads.spill-dir moves it to a disk that uploads do not fill, and then a full uploads.dir
 * is hydrant's own clean 503 (docs/ARCHITECTURE.md, "Known limits"). */
static int srv_configure_spill(const cfg_t *cfg, char *err, size_t errlen)
{
    h2o_buffer_mmap_settings_t *spill = &h2o_socket_buffer_mmap_settings;
    char tmp[FILENAME_MAX];
    int n = cfg->uploads.spill_dir != NULL && cfg->uploads.spill_dir[0] != '\0'
                ? snprintf(tmp, sizeof(tmp), "%s", cfg->uploads.spill_dir)
                : snprintf(tmp, sizeof(tmp), "%s/tmp", cfg->uploads.dir);
    if (n >= (int)sizeof(tmp) || snprintf(spill->fn_template, sizeof(spill->fn_template), "%s/body.XXXXXX",
                                          tmp) >= (int)sizeof(spill->fn_template)) {
        snprintf(err, errlen, "uploads.dir: the path is too long");
        return -1;
    }
    if (srv_mkdirs(tmp) != 0) {
        snprintf(err, errlen, "uploads spill directory %.200s: cannot create it: %s", tmp, strerror(errno));
        return -1;
    }
    spill->threshold = 8 * 1024 * 1024;
    return 0;
}

static int srv_open_access_log(const cfg_t *cfg, char *err, size_t errlen)
{
    const char *target = cfg->access_log;
    if (target == NULL || strcmp(target, "-") == 0)
        return dup(STDOUT_FILENO);
    if (strcmp(target, "off") == 0)
        return -1;
    int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "access-log %s: cannot open", target);
    return fd;
}

/* Stored Idempotency-Key answers are sealed under a key derived from the access tokens'
 * secret, the same on every instance; a claim may be taken over once no write of the
 * request that made it can still commit (a request's time, and a batch's deadline after it). */
static int srv_idempotency_setup(srv_t *srv)
{
    static const char label[] = "hydrant idempotency-key answers v1";
    unsigned int len = 0;
    const auth_jwt_config_t *jwt = &srv->app.jwt;
    if (HMAC(EVP_sha256(), jwt->secret, (int)jwt->secret_len, (const unsigned char *)label, sizeof(label) - 1,
             srv->http.idempotency_key, &len) == NULL ||
        len != sizeof(srv->http.idempotency_key))
        return -1;
    const cfg_t *cfg = srv->cfg;
    long long ms = (long long)cfg->limits.request_timeout_ms + 2LL * cfg->database.query_timeout_ms;
    srv->http.idempotency_takeover_s = (int)(ms / 1000 + 1);
    return 0;
}

/* A loop's share of a process-wide limit: at least 1 unless the limit is off (0). */
static int srv_share(int limit, int nloops)
{
    return limit <= 0 ? 0 : limit / nloops > 0 ? limit / nloops : 1;
}

/* Budgets of request bodies in flight (http/conn_body.c). A connection, and an address on
 * one loop, must at least be able to send the largest body a route accepts; SO_REUSEPORT
 * spreads an address's connections over the loops, so each loop has its share. */
static void srv_body_limits_setup(srv_t *srv)
{
    const cfg_limits_t *limits = &srv->cfg->limits;
    http_server_t *http = &srv->http;
    uint64_t floor = srv->globalconf.max_request_entity_size;
    uint64_t per_connection = (uint64_t)limits->max_body_bytes_per_connection;
    uint64_t per_address = (uint64_t)limits->max_body_bytes_per_address / (uint64_t)srv->nloops;
    http->max_entity = srv->globalconf.max_request_entity_size;
    http->body_max_per_connection = per_connection > 0 && per_connection < floor ? floor : per_connection;
    http->body_max_per_address = per_address > 0 && per_address < floor ? floor : per_address;
    http->body_max_per_loop = (uint64_t)limits->max_body_bytes_in_flight / (uint64_t)srv->nloops;
    http->body_timeout_ms = (uint64_t)limits->body_timeout_ms;
    http->body_min_rate = (uint64_t)limits->body_min_rate;
    http->send_timeout_ms = (uint64_t)limits->send_timeout_ms;
    http->send_min_rate = (uint64_t)limits->send_min_rate;
}

/* The header's text once, so that answers only point at it. */
static void srv_hsts_setup(http_server_t *http, int max_age)
{
    int n =
        max_age > 0 ? snprintf(http->hsts, sizeof(http->hsts), "max-age=%d; includeSubDomains", max_age) : 0;
    http->hsts_len = n > 0 && (size_t)n < sizeof(http->hsts) ? (size_t)n : 0;
}

static int srv_build_shared(srv_t *srv, char *err, size_t errlen)
{
    const cfg_t *cfg = srv->cfg;
    srv->http.router = http_router_new();
    if (srv->http.router == NULL || handlers_register(srv->http.router, cfg, err, errlen) != 0 ||
        (srv->extra_routes != NULL && srv->extra_routes(srv->http.router, cfg, err, errlen) != 0))
        return -1;
    if (handlers_app_init(&srv->app, cfg, err, errlen) != 0)
        return -1;
    srv->app.server = &srv->http;
    srv->app.jobs = srv->jobs;
    srv->http.app = &srv->app;
    srv->http.json_limits = (http_json_limits_t){
        .max_bytes = (size_t)cfg->limits.max_body,
        .max_depth = cfg->limits.json_max_depth,
        .max_string = (size_t)cfg->limits.json_max_string,
    };
    srv->http.max_headers = cfg->limits.max_headers;
    srv->http.max_header_bytes = (size_t)cfg->limits.max_header_bytes;
    srv->http.conn_max_queries = cfg->limits.max_queries_per_connection;
    srv->http.conn_max_cpu_jobs = cfg->limits.max_cpu_jobs_per_connection;
    /* Per loop: SO_REUSEPORT spreads an address's connections over the loops. */
    srv->http.address_max_connections = srv_share(cfg->limits.max_connections_per_address, srv->nloops);
    srv->http.address_new_per_second = srv_share(cfg->limits.new_connections_per_address, srv->nloops);
    srv_hsts_setup(&srv->http, cfg->tls.hsts_max_age);
    if (srv_idempotency_setup(srv) != 0) {
        snprintf(err, errlen, "cannot derive the key for Idempotency-Key answers");
        return -1;
    }
    srv->http.trusted_proxies = cfg->trusted_proxies;
    srv->http.ntrusted_proxies = cfg->ntrusted_proxies;
    srv->http.access_log_fd = -1;
    if (cfg->access_log == NULL || strcmp(cfg->access_log, "off") != 0) {
        srv->http.access_log_fd = srv_open_access_log(cfg, err, errlen);
        if (srv->http.access_log_fd < 0)
            return -1;
    }
    srv->http.log_writer = http_log_writer_start(srv->http.access_log_fd, STDERR_FILENO, srv->nloops,
                                                 (size_t)cfg->access_log_buffer, SRV_ERROR_LOG_BYTES);
    if (srv->http.log_writer == NULL) {
        snprintf(err, errlen, "cannot start the log writer");
        return -1;
    }
    srv_configure_h2o(srv);
    srv_body_limits_setup(srv);
    if (srv_configure_spill(cfg, err, errlen) != 0)
        return -1;
    for (int i = 0; i < cfg->nlisten; i++) {
        if (!cfg->listen[i].tls)
            continue;
        srv->ssl[i] = srv_tls_context_new(cfg->listen[i].cert_file, cfg->listen[i].key_file, err, errlen);
        if (srv->ssl[i] == NULL)
            return -1;
    }
    srv->pg_options = (db_pg_options_t){
        .conninfo = cfg->database.url,
        .connections = cfg->database.pool_size,
        .max_in_flight = cfg->database.max_queue,
        .query_timeout_ms = cfg->database.query_timeout_ms,
        .connect_timeout_ms = cfg->database.connect_timeout_ms,
    };
    srv->redis_options = (db_redis_options_t){
        .url = cfg->redis.url,
        .command_timeout_ms = cfg->redis.command_timeout_ms,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms,
        .max_pending = cfg->database.max_queue,
    };
    return 0;
}

/* One SO_REUSEPORT socket per listener per thread, so the kernel spreads connections. */
static int srv_open_sockets(srv_t *srv, char *err, size_t errlen)
{
    const cfg_t *cfg = srv->cfg;
    size_t n = (size_t)srv->nloops * (size_t)cfg->nlisten;
    srv->fds = malloc(sizeof(int) * (n > 0 ? n : 1));
    if (srv->fds == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        srv->fds[i] = -1;
    for (int t = 0; t < srv->nloops; t++) {
        for (int l = 0; l < cfg->nlisten; l++) {
            int fd = srv_listen_socket(cfg->listen[l].host, cfg->listen[l].port, err, errlen);
            if (fd < 0)
                return -1;
            srv->fds[t * cfg->nlisten + l] = fd;
        }
    }
    return 0;
}

static int srv_start_loops(srv_t *srv, char *err, size_t errlen)
{
    const cfg_t *cfg = srv->cfg;
    int per_thread_connections = cfg->limits.max_connections / srv->nloops;
    for (int t = 0; t < srv->nloops; t++) {
        srv_loop_listener_t listeners[CFG_MAX_LISTENERS];
        for (int l = 0; l < cfg->nlisten; l++) {
            listeners[l].fd = srv->fds[t * cfg->nlisten + l];
            listeners[l].ssl_ctx = srv->ssl[l];
            srv->fds[t * cfg->nlisten + l] = -1; /* now owned by the loop's handle */
        }
        srv_loop_config_t lc = {
            .index = t,
            .globalconf = &srv->globalconf,
            .server = &srv->http,
            .pg_options = &srv->pg_options,
            .redis_options = &srv->redis_options,
            .listeners = listeners,
            .nlisteners = cfg->nlisten,
            .max_connections = per_thread_connections > 0 ? per_thread_connections : 1,
            .shutdown_timeout_ms = cfg->limits.shutdown_timeout_ms,
            .peers = cfg->balance_connections ? srv->loops : NULL,
            .npeers = cfg->balance_connections ? srv->nloops : 0,
        };
        if (srv_loop_init(&srv->loops[t], &lc, err, errlen) != 0)
            return -1;
    }
    for (int t = 0; t < srv->nloops; t++) {
        if (srv_loop_start(&srv->loops[t]) != 0) {
            snprintf(err, errlen, "cannot start thread %d", t);
            return -1;
        }
        srv->nstarted++;
    }
    return 0;
}

static void srv_begin_drain(uv_timer_t *timer)
{
    srv_t *srv = timer->data;
    util_log(UTIL_LOG_INFO, "server", "draining (at most %d ms)", srv->cfg->limits.shutdown_timeout_ms);
    for (int t = 0; t < srv->nstarted; t++)
        srv_loop_request_shutdown(&srv->loops[t]);
    uv_close((uv_handle_t *)timer, NULL);
}

/* Not ready at once, so that load balancers stop sending new work, but still serving what
 * they send until their checks have noticed (limits.drain-delay-ms); then the drain. */
static void srv_on_signal(uv_signal_t *handle, int signum)
{
    srv_t *srv = handle->data;
    int delay = srv->cfg->limits.drain_delay_ms;
    atomic_store(&srv->app.draining, 1);
    util_log(UTIL_LOG_INFO, "server", "signal %d, not ready; draining in %d ms", signum, delay);
    uv_timer_init(handle->loop, &srv->drain_delay);
    srv->drain_delay.data = srv;
    uv_timer_start(&srv->drain_delay, srv_begin_drain, (uint64_t)delay, 0);
    /* With no watcher left libuv restores the default action, so a second signal ends the
     * process at once; once the timer has run too, the main loop returns. */
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

static void srv_wait_for_signal(srv_t *srv, uv_loop_t *main_loop)
{
    uv_signal_init(main_loop, &srv->sigterm);
    uv_signal_init(main_loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, srv_on_signal, SIGTERM);
    uv_signal_start(&srv->sigint, srv_on_signal, SIGINT);
    uv_run(main_loop, UV_RUN_DEFAULT);
}

static void srv_print_banner(const srv_t *srv)
{
    const cfg_t *cfg = srv->cfg;
    for (int i = 0; i < cfg->nlisten; i++)
        util_log(UTIL_LOG_INFO, "server", "listening on %s://%s:%d (%d threads)",
                 cfg->listen[i].tls ? "https" : "http", cfg->listen[i].host, cfg->listen[i].port,
                 srv->nloops);
}

static void srv_cleanup(srv_t *srv)
{
    /* The loops have stopped: the writer writes out what they left, unless its sink stays
     * blocked past the drain deadline (then the thread, its buffers and the fd are left to
     * the exit). */
    int log_stuck = srv->http.log_writer != NULL &&
                    http_log_writer_stop(srv->http.log_writer, srv->cfg->limits.shutdown_timeout_ms) != 0;
    int clean = 1;
    for (int t = 0; t < srv->nloops; t++) {
        clean &= srv->loops[t].h2o_disposed || t >= srv->nstarted;
        if (t < srv->nstarted)
            srv_loop_dispose(&srv->loops[t]);
    }
    if (srv->fds != NULL) {
        for (int i = 0; i < srv->nloops * srv->cfg->nlisten; i++)
            if (srv->fds[i] >= 0)
                close(srv->fds[i]);
        free(srv->fds);
    }
    if (clean) {
        /* Loops that were abandoned at the deadline still reference these. */
        free(srv->loops);
        free(srv->http_loops);
        for (int i = 0; i < CFG_MAX_LISTENERS; i++)
            if (srv->ssl[i] != NULL)
                SSL_CTX_free(srv->ssl[i]);
        if (srv->globalconf.hosts != NULL)
            h2o_config_dispose(&srv->globalconf);
        handlers_app_free(&srv->app);
        if (srv->http.router != NULL)
            http_router_free(srv->http.router);
    }
    if (srv->http.access_log_fd >= 0 && !log_stuck)
        close(srv->http.access_log_fd);
}

void srv_process_init(void)
{
    /* libuv's thread pool runs password hashing (http_cpu) and name resolution: one thread per
     * core, read by libuv when the pool first starts. An explicit setting wins. */
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        char threads[24];
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(threads, sizeof(threads), "%ld", cpus > 2 ? cpus : 2);
        setenv("UV_THREADPOOL_SIZE", threads, 0);
    }
}

int srv_run(const cfg_t *cfg, jobs_pool_t *jobs, srv_routes_fn extra_routes)
{
    srv_t *srv = calloc(1, sizeof(*srv));
    char err[SRV_ERR_LEN] = "out of memory";
    int rc = 1;
    if (srv == NULL) {
        util_log(UTIL_LOG_ERROR, "server", "%s", err);
        jobs_pool_stop(jobs);
        jobs_pool_free(jobs);
        return 1;
    }
    srv->jobs = jobs;
    srv->extra_routes = extra_routes;
    signal(SIGPIPE, SIG_IGN);
    srv->cfg = cfg;
    srv->nloops = cfg->num_threads > 0 ? cfg->num_threads : 1;
    srv->loops = calloc((size_t)srv->nloops, sizeof(srv_loop_t));
    srv->http_loops = calloc((size_t)srv->nloops, sizeof(http_loop_t *));
    srv->http.access_log_fd = -1;
    if (srv->loops == NULL || srv->http_loops == NULL) {
        jobs_pool_stop(jobs);
        goto out;
    }
    for (int t = 0; t < srv->nloops; t++)
        srv->http_loops[t] = &srv->loops[t].http;
    srv->http.loops = srv->http_loops;
    srv->http.nloops = srv->nloops;
    if (srv_build_shared(srv, err, sizeof(err)) != 0 || srv_open_sockets(srv, err, sizeof(err)) != 0 ||
        srv_start_loops(srv, err, sizeof(err)) != 0) {
        util_log(UTIL_LOG_ERROR, "server", "%s", err);
        for (int t = 0; t < srv->nstarted; t++)
            srv_loop_request_shutdown(&srv->loops[t]);
    } else {
        srv_print_banner(srv);
        uv_loop_t main_loop;
        uv_loop_init(&main_loop);
        srv_wait_for_signal(srv, &main_loop);
        uv_loop_close(&main_loop);
        rc = 0;
    }
    /* The loops drain on their threads meanwhile. */
    jobs_pool_stop(jobs);
    for (int t = 0; t < srv->nstarted; t++)
        srv_loop_join(&srv->loops[t]);
    util_log(UTIL_LOG_INFO, "server", "stopped");
out:
    jobs_pool_free(jobs);
    srv_cleanup(srv);
    free(srv);
    return rc;
}
