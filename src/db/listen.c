/*
 * A LISTEN connection on a thread of its own (db.h, db_listener_*). It never runs on an
 * event loop; it still uses only libpq's nonblocking calls (PQconnectStart/PQconnectPoll,
 * PQsendQuery) with poll(), so that a stop request or a dead server is noticed within its
 * poll interval instead of inside a blocking call.
 *
 * State changes are reported in order: live after LISTEN succeeded, down as soon as the
 * connection is found broken (or a keepalive query goes unanswered), before any reconnect.
 */
#include "db/db.h"
#include "util/util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LISTEN_KEEPALIVE_MS 5000 /* a SELECT 1 after this much silence ... */
#define LISTEN_ANSWER_MS    5000 /* ... that must be answered this soon */

struct db_listener {
    db_listener_options_t o; /* strings copied below */
    char *conninfo, *application_name, *channel;
    pthread_t thread;
    int stop_pipe[2];
    atomic_int stopping;
    PGconn *conn;
};

static uint64_t listen_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for events on the connection's socket (or the stop pipe) until deadline_ms. Returns
 * the socket's revents, 0 on timeout, -1 when stopping. */
static int listen_wait(db_listener_t *l, short events, uint64_t deadline_ms)
{
    uint64_t now = listen_now_ms();
    int timeout = deadline_ms > now ? (int)(deadline_ms - now) : 0;
    struct pollfd fds[2] = {{.fd = PQsocket(l->conn), .events = events},
                            {.fd = l->stop_pipe[0], .events = POLLIN}};
    int rc = poll(fds, 2, timeout);
    if (atomic_load(&l->stopping) || (rc > 0 && fds[1].revents != 0))
        return -1;
    if (rc < 0)
        return errno == EINTR ? 0 : POLLERR;
    return rc > 0 ? fds[0].revents : 0;
}

/* Sends what libpq holds, waiting for the socket while it is full. 0 or -1. */
static int listen_flush(db_listener_t *l, uint64_t deadline_ms)
{
    int rc;
    while ((rc = PQflush(l->conn)) == 1) {
        int ev = listen_wait(l, POLLOUT, deadline_ms);
        if (ev < 0 || (ev == 0 && listen_now_ms() >= deadline_ms))
            return -1;
    }
    return rc == 0 ? 0 : -1;
}

static int listen_connect(db_listener_t *l)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {l->conninfo, l->application_name, NULL};
    l->conn = PQconnectStartParams(keys, values, 1);
    if (l->conn == NULL || PQstatus(l->conn) == CONNECTION_BAD)
        return -1;
    PQsetNoticeReceiver(l->conn, db_pg_log_notice, NULL);
    uint64_t deadline = listen_now_ms() + (uint64_t)l->o.connect_timeout_ms;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED || listen_now_ms() >= deadline)
            return -1;
        if (listen_wait(l, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline) < 0)
            return -1;
        st = PQconnectPoll(l->conn);
    }
    return PQsetnonblocking(l->conn, 1);
}

static void listen_deliver(db_listener_t *l)
{
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        l->o.on_notify(l->o.data, n->extra);
        PQfreemem(n);
    }
}

/* Reads until the pending query's results are all in; notifications that arrive meanwhile
 * are delivered. Returns 0 when every result had status ok, -1 otherwise. */
static int listen_read_results(db_listener_t *l, ExecStatusType ok, uint64_t deadline_ms)
{
    int status = 0;
    for (;;) {
        while (PQisBusy(l->conn)) {
            int ev = listen_wait(l, POLLIN, deadline_ms);
            if (ev < 0 || (ev == 0 && listen_now_ms() >= deadline_ms) || !PQconsumeInput(l->conn))
                return -1;
            listen_deliver(l);
        }
        PGresult *res = PQgetResult(l->conn);
        if (res == NULL)
            return status;
        if (PQresultStatus(res) != ok)
            status = -1;
        PQclear(res);
    }
}

static int listen_query(db_listener_t *l, const char *sql, ExecStatusType ok)
{
    uint64_t deadline = listen_now_ms() + LISTEN_ANSWER_MS;
    if (!PQsendQuery(l->conn, sql) || listen_flush(l, deadline) != 0)
        return -1;
    return listen_read_results(l, ok, deadline);
}

/* Connected and listening: delivers notifications until the connection breaks or the
 * listener stops. */
static void listen_serve(db_listener_t *l)
{
    uint64_t quiet_since = listen_now_ms();
    while (!atomic_load(&l->stopping)) {
        int ev = listen_wait(l, POLLIN, quiet_since + LISTEN_KEEPALIVE_MS);
        if (ev < 0)
            return;
        if (ev == 0) {
            /* A connection that died without a word (a host gone, a partition) shows only
             * when something is asked of it. */
            if (listen_query(l, "SELECT 1", PGRES_TUPLES_OK) != 0)
                return;
        } else if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK) {
            return;
        }
        listen_deliver(l);
        quiet_since = listen_now_ms();
    }
}

static void *listen_main(void *arg)
{
    db_listener_t *l = arg;
    int failures = 0;
    while (!atomic_load(&l->stopping)) {
        char sql[200];
        char *channel = NULL;
        if (listen_connect(l) == 0 &&
            (channel = PQescapeIdentifier(l->conn, l->channel, strlen(l->channel))) != NULL &&
            snprintf(sql, sizeof(sql), "LISTEN %s", channel) < (int)sizeof(sql) &&
            listen_query(l, sql, PGRES_COMMAND_OK) == 0) {
            failures = 0;
            l->o.on_state(l->o.data, 1);
            listen_serve(l);
            l->o.on_state(l->o.data, 0);
            if (!atomic_load(&l->stopping))
                util_log(UTIL_LOG_WARN, "postgres", "the %s listener lost its connection, reconnecting",
                         l->channel);
        } else if (!atomic_load(&l->stopping) && failures == 0) {
            const char *msg = l->conn != NULL ? PQerrorMessage(l->conn) : "out of memory";
            util_log(UTIL_LOG_WARN, "postgres", "the %s listener cannot connect: %.*s", l->channel,
                     (int)strcspn(msg, "\n"), msg);
        }
        PQfreemem(channel);
        PQfinish(l->conn);
        l->conn = NULL;
        struct pollfd stop = {.fd = l->stop_pipe[0], .events = POLLIN};
        if (!atomic_load(&l->stopping))
            poll(&stop, 1, (int)util_backoff_next(&UTIL_BACKOFF_RECONNECT, &failures));
    }
    return NULL;
}

static void listen_free(db_listener_t *l)
{
    free(l->conninfo);
    free(l->application_name);
    free(l->channel);
    if (l->stop_pipe[0] >= 0)
        close(l->stop_pipe[0]);
    if (l->stop_pipe[1] >= 0)
        close(l->stop_pipe[1]);
    free(l);
}

db_listener_t *db_listener_start(const db_listener_options_t *options, char *err, size_t errlen)
{
    db_listener_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "listener: out of memory");
        return NULL;
    }
    l->o = *options;
    if (l->o.connect_timeout_ms <= 0)
        l->o.connect_timeout_ms = 5000;
    l->stop_pipe[0] = l->stop_pipe[1] = -1;
    l->conninfo = strdup(options->conninfo);
    l->application_name = strdup(options->application_name);
    l->channel = strdup(options->channel);
    atomic_init(&l->stopping, 0);
    if (l->conninfo == NULL || l->application_name == NULL || l->channel == NULL || pipe(l->stop_pipe) != 0 ||
        pthread_create(&l->thread, NULL, listen_main, l) != 0) {
        snprintf(err, errlen, "listener: cannot start its thread");
        listen_free(l);
        return NULL;
    }
    return l;
}

void db_listener_stop(db_listener_t *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stopping, 1);
    ssize_t w = write(l->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(l->thread, NULL);
    listen_free(l);
}
