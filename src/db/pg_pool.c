/*
 * Pipelined, nonblocking PostgreSQL connections driven by one libuv loop.
 *
 * Each connection sends many batches without waiting; a batch is its queries followed by
 * one Sync. PostgreSQL runs everything between two Syncs as one implicit transaction, so a
 * batch commits or fails as a whole, and a failing batch leaves the next one untouched.
 * Replies arrive in order, so each connection keeps its batches in a FIFO.
 *
 * Callbacks run from libuv callbacks only (never inside db_pg_submit). When a connection
 * breaks, its batches fail with DB_ERR_UNAVAILABLE and it reconnects with backoff; when a
 * batch waits longer than the query timeout, the connection is reset the same way.
 */
#include "db/db.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_WATCHDOG_MS 100
#define PG_BACKOFF_MIN 50
#define PG_BACKOFF_MAX 2000
#define PG_MESSAGE_LEN 256

typedef struct pg_batch {
    struct pg_batch *next;
    db_pg_cb cb;
    void *data;
    int nqueries;
    int ended; /* queries whose results are complete (a NULL from PQgetResult) */
    int nresults;
    PGresult *results[DB_PG_MAX_BATCH];
    int failed;
    char sqlstate[6];
    char message[PG_MESSAGE_LEN];
    uint64_t sent_at;
} pg_batch_t;

typedef enum { PG_DOWN, PG_RESOLVING, PG_CONNECTING, PG_PREPARING, PG_READY } pg_state_t;

typedef struct {
    db_pg_pool_t *pool;
    PGconn *conn;
    uv_poll_t *poll; /* heap: it may still be closing while a new one watches the new fd */
    int fd;
    int events;
    pg_state_t state;
    pg_batch_t *head, *tail;
    int inflight;
    int broken; /* reset pending, done by the pool's deferred timer */
    uint64_t connect_started;
    uv_timer_t retry;
    int backoff_ms;
    uv_getaddrinfo_t dns;
} pg_conn_t;

struct db_pg_pool {
    uv_loop_t *loop;
    db_pg_options_t options;
    char *conninfo;
    char *resolve_host; /* a host name to resolve asynchronously, or NULL */
    char resolve_port[16];
    pg_conn_t *conns;
    int nconns;
    int inflight;
    db_status_t last_error;
    uv_timer_t watchdog;
    uv_timer_t deferred;
    int open_handles;
    int pending_dns;
    int closing;
    void (*on_closed)(void *data);
    void *closed_data;
};

static void pg_conn_start(pg_conn_t *c);
static void pg_conn_reset(pg_conn_t *c, db_status_t why);
static void pg_mark_broken(pg_conn_t *c);

/* ------------------------------------------------------------- handles ---- */

static void pg_pool_maybe_finish(db_pg_pool_t *pool)
{
    if (!pool->closing || pool->open_handles > 0 || pool->pending_dns > 0)
        return;
    void (*on_closed)(void *) = pool->on_closed;
    void *data = pool->closed_data;
    free(pool->conns);
    free(pool->conninfo);
    free(pool->resolve_host);
    free(pool);
    if (on_closed != NULL)
        on_closed(data);
}

static void pg_on_handle_closed(uv_handle_t *handle)
{
    db_pg_pool_t *pool = handle->data;
    pool->open_handles--;
    pg_pool_maybe_finish(pool);
}

static void pg_on_poll_closed(uv_handle_t *handle)
{
    db_pg_pool_t *pool = handle->data;
    free(handle);
    pool->open_handles--;
    pg_pool_maybe_finish(pool);
}

static void pg_on_poll(uv_poll_t *handle, int status, int events);

/* Watches the connection's socket for `events`; re-creates the poll handle when libpq
 * moved to another socket (it does while trying several addresses). */
static int pg_conn_watch(pg_conn_t *c, int events)
{
    int fd = PQsocket(c->conn);
    if (fd < 0)
        return -1;
    if (c->poll != NULL && c->fd != fd) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, pg_on_poll_closed);
        c->poll = NULL;
    }
    if (c->poll == NULL) {
        c->poll = malloc(sizeof(*c->poll));
        if (c->poll == NULL || uv_poll_init(c->pool->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->poll->data = c;
        c->pool->open_handles++;
        c->fd = fd;
        c->events = 0;
    }
    if (events != c->events) {
        c->events = events;
        if (uv_poll_start(c->poll, events, pg_on_poll) != 0)
            return -1;
    }
    return 0;
}

static void pg_conn_unwatch(pg_conn_t *c)
{
    if (c->poll == NULL)
        return;
    uv_poll_stop(c->poll);
    /* The close callback needs the pool, not the connection: c may be reused first. */
    c->poll->data = c->pool;
    uv_close((uv_handle_t *)c->poll, pg_on_poll_closed);
    c->poll = NULL;
    c->fd = -1;
    c->events = 0;
}

/* -------------------------------------------------------------- batches ---- */

static void pg_batch_free(pg_batch_t *b)
{
    for (int i = 0; i < b->nresults; i++)
        PQclear(b->results[i]);
    free(b);
}

static void pg_batch_finish(db_pg_pool_t *pool, pg_batch_t *b, db_status_t status)
{
    db_reply_t reply = {.status = status};
    if (status == DB_OK && b->failed)
        reply.status = DB_ERR_QUERY;
    if (reply.status == DB_OK) {
        reply.results = b->results;
        reply.nresults = b->nresults;
    } else if (reply.status == DB_ERR_QUERY) {
        reply.sqlstate = b->sqlstate;
        reply.message = b->message;
    } else {
        reply.message = db_status_name(status);
    }
    pool->inflight--;
    if (b->cb != NULL)
        b->cb(b->data, &reply);
    pg_batch_free(b);
}

static pg_batch_t *pg_conn_pop(pg_conn_t *c)
{
    pg_batch_t *b = c->head;
    if (b != NULL) {
        c->head = b->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->inflight--;
    }
    return b;
}

static void pg_conn_push(pg_conn_t *c, pg_batch_t *b)
{
    b->next = NULL;
    if (c->tail != NULL)
        c->tail->next = b;
    else
        c->head = b;
    c->tail = b;
    c->inflight++;
    c->pool->inflight++;
}

/* ---------------------------------------------------------- connecting ---- */

static uint64_t pg_now(db_pg_pool_t *pool)
{
    return uv_now(pool->loop);
}

static void pg_on_retry(uv_timer_t *timer)
{
    pg_conn_start(timer->data);
}

static void pg_conn_schedule_retry(pg_conn_t *c)
{
    if (c->pool->closing)
        return;
    int base = c->backoff_ms > 0 ? c->backoff_ms : PG_BACKOFF_MIN;
    int jitter = base / 5 > 0 ? rand() % (base / 5 + 1) : 0; /* spreads reconnects of many loops */
    uv_timer_start(&c->retry, pg_on_retry, (uint64_t)(base + jitter), 0);
    c->backoff_ms = base * 2 > PG_BACKOFF_MAX ? PG_BACKOFF_MAX : base * 2;
}

/* The prepare step is an internal batch: its completion makes the connection ready. */
static void pg_on_prepared(void *data, const db_reply_t *reply)
{
    pg_conn_t *c = data;
    if (reply->status == DB_OK) {
        c->state = PG_READY;
        c->backoff_ms = 0;
    } else if (reply->status == DB_ERR_QUERY) {
        fprintf(stderr, "hydrant: postgres: preparing statements failed: %s\n", reply->message);
        pg_mark_broken(c);
    }
}

static int pg_conn_send_prepares(pg_conn_t *c)
{
    pg_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -1;
    for (int id = 0; id < DB_STMT__COUNT; id++) {
        const db_stmt_def_t *s = db_stmt_get((db_stmt_id_t)id);
        if (!PQsendPrepare(c->conn, s->name, s->sql, s->nparams, NULL)) {
            free(b);
            return -1;
        }
    }
    if (!PQpipelineSync(c->conn)) {
        free(b);
        return -1;
    }
    b->nqueries = DB_STMT__COUNT;
    b->cb = pg_on_prepared;
    b->data = c;
    b->sent_at = pg_now(c->pool);
    pg_conn_push(c, b);
    c->state = PG_PREPARING;
    return 0;
}

static void pg_conn_connected(pg_conn_t *c)
{
    if (PQsetnonblocking(c->conn, 1) != 0 || !PQenterPipelineMode(c->conn) || pg_conn_send_prepares(c) != 0) {
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        return;
    }
    int flushed = PQflush(c->conn);
    if (flushed < 0 || pg_conn_watch(c, UV_READABLE | (flushed == 1 ? UV_WRITABLE : 0)) != 0)
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
}

static void pg_conn_poll_connect(pg_conn_t *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        if (pg_conn_watch(c, UV_READABLE) != 0)
            pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        break;
    case PGRES_POLLING_WRITING:
        if (pg_conn_watch(c, UV_WRITABLE) != 0)
            pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        break;
    case PGRES_POLLING_OK:
        pg_conn_connected(c);
        break;
    default:
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        break;
    }
}

static void pg_conn_open(pg_conn_t *c, const char *hostaddr)
{
    const char *keys[] = {"dbname", "application_name", hostaddr != NULL ? "hostaddr" : NULL, NULL};
    const char *values[] = {c->pool->conninfo, "hydrant", hostaddr, NULL};
    c->conn = PQconnectStartParams(keys, values, 1);
    c->state = PG_CONNECTING;
    c->connect_started = pg_now(c->pool);
    if (c->conn == NULL || PQstatus(c->conn) == CONNECTION_BAD) {
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        return;
    }
    pg_conn_poll_connect(c);
}

static void pg_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pg_conn_t *c = req->data;
    db_pg_pool_t *pool = c->pool;
    pool->pending_dns--;
    char addr[INET6_ADDRSTRLEN] = "";
    if (status == 0)
        db_address_text(res, addr, sizeof(addr));
    uv_freeaddrinfo(res);
    if (pool->closing) {
        pg_pool_maybe_finish(pool);
        return;
    }
    if (addr[0] == '\0') {
        c->state = PG_DOWN;
        pg_conn_schedule_retry(c);
        return;
    }
    pg_conn_open(c, addr);
}

/* libpq resolves host names synchronously inside PQconnectPoll; to keep the loop free, a
 * host name is resolved here first (uv_getaddrinfo runs on libuv's thread pool) and
 * passed to libpq as hostaddr. */
static void pg_conn_start(pg_conn_t *c)
{
    db_pg_pool_t *pool = c->pool;
    if (pool->closing)
        return;
    c->broken = 0;
    c->connect_started = pg_now(pool);
    if (pool->resolve_host == NULL) {
        pg_conn_open(c, NULL);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->dns.data = c;
    c->state = PG_RESOLVING;
    if (uv_getaddrinfo(pool->loop, &c->dns, pg_on_resolved, pool->resolve_host, pool->resolve_port, &hints) !=
        0) {
        c->state = PG_DOWN;
        pg_conn_schedule_retry(c);
        return;
    }
    pool->pending_dns++;
}

/* Fails every batch of the connection, closes it, and schedules a reconnect. */
static void pg_conn_reset(pg_conn_t *c, db_status_t why)
{
    pg_batch_t *batches = c->head;
    c->head = c->tail = NULL;
    c->inflight = 0;
    c->broken = 0;
    pg_conn_unwatch(c);
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->state = PG_DOWN;
    pg_conn_schedule_retry(c);
    while (batches != NULL) {
        pg_batch_t *next = batches->next;
        pg_batch_finish(c->pool, batches, c->pool->closing ? DB_ERR_CLOSED : why);
        batches = next;
    }
}

/* ------------------------------------------------------------ traffic ---- */

/* Takes every complete result; returns -1 when the connection broke. */
static int pg_conn_read(pg_conn_t *c)
{
    if (!PQconsumeInput(c->conn))
        return -1;
    while (c->conn != NULL && !PQisBusy(c->conn)) {
        pg_batch_t *b = c->head;
        if (b == NULL)
            break; /* nothing expected: PQgetResult would return NULL forever */
        PGresult *res = PQgetResult(c->conn);
        if (res == NULL) {
            if (++b->ended > b->nqueries)
                return -1; /* out of step with the server: do not guess, reset */
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            pg_batch_finish(c->pool, pg_conn_pop(c), DB_OK);
            continue;
        }
        if ((st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED) && !b->failed) {
            const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            b->failed = 1;
            snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", code != NULL ? code : "");
            snprintf(b->message, sizeof(b->message), "%s", PQresultErrorMessage(res));
        }
        if (st == PGRES_FATAL_ERROR && PQstatus(c->conn) == CONNECTION_BAD) {
            PQclear(res);
            return -1;
        }
        if (b->nresults < b->nqueries)
            b->results[b->nresults++] = res;
        else
            PQclear(res);
    }
    return 0;
}

static int pg_conn_flush(pg_conn_t *c)
{
    int rc = PQflush(c->conn);
    if (rc < 0)
        return -1;
    return pg_conn_watch(c, UV_READABLE | (rc == 1 ? UV_WRITABLE : 0));
}

static void pg_on_poll(uv_poll_t *handle, int status, int events)
{
    pg_conn_t *c = handle->data;
    if (status < 0) {
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        return;
    }
    if (c->state == PG_CONNECTING) {
        pg_conn_poll_connect(c);
        return;
    }
    if ((events & UV_WRITABLE) && pg_conn_flush(c) != 0) {
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        return;
    }
    if ((events & UV_READABLE) && c->conn != NULL && pg_conn_read(c) != 0)
        pg_conn_reset(c, DB_ERR_UNAVAILABLE);
}

/* --------------------------------------------------------- timers ---- */

static void pg_on_deferred(uv_timer_t *timer)
{
    db_pg_pool_t *pool = timer->data;
    for (int i = 0; i < pool->nconns; i++)
        if (pool->conns[i].broken)
            pg_conn_reset(&pool->conns[i], DB_ERR_UNAVAILABLE);
}

static void pg_mark_broken(pg_conn_t *c)
{
    c->broken = 1;
    uv_timer_start(&c->pool->deferred, pg_on_deferred, 0, 0);
}

static void pg_on_watchdog(uv_timer_t *timer)
{
    db_pg_pool_t *pool = timer->data;
    uint64_t now = pg_now(pool);
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        int connecting = c->state == PG_CONNECTING || c->state == PG_PREPARING;
        if (connecting && now - c->connect_started > (uint64_t)pool->options.connect_timeout_ms)
            pg_conn_reset(c, DB_ERR_UNAVAILABLE);
        else if (c->state == PG_READY && c->head != NULL &&
                 now - c->head->sent_at > (uint64_t)pool->options.query_timeout_ms)
            pg_conn_reset(c, DB_ERR_TIMEOUT);
    }
}

/* ------------------------------------------------------------- public ---- */

/* Decides whether the host in the conninfo needs an asynchronous lookup. */
static int pg_pool_find_host(db_pg_pool_t *pool)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(pool->conninfo, &errmsg);
    if (opts == NULL) {
        fprintf(stderr, "hydrant: database url: %s", errmsg != NULL ? errmsg : "cannot parse\n");
        PQfreemem(errmsg);
        return -1;
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    unsigned char buf[16];
    int literal = host == NULL || host[0] == '/' || host[0] == '\0' || strchr(host, ',') != NULL ||
                  inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
    if (!literal && hostaddr == NULL) {
        pool->resolve_host = strdup(host);
        snprintf(pool->resolve_port, sizeof(pool->resolve_port), "%s",
                 port != NULL && strchr(port, ',') == NULL ? port : "5432");
    }
    PQconninfoFree(opts);
    return 0;
}

db_pg_pool_t *db_pg_pool_new(uv_loop_t *loop, const db_pg_options_t *options)
{
    db_pg_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pool->options = *options;
    pool->nconns = options->connections > 0 ? options->connections : 1;
    pool->conninfo = strdup(options->conninfo != NULL ? options->conninfo : "");
    pool->conns = calloc((size_t)pool->nconns, sizeof(pg_conn_t));
    if (pool->conninfo == NULL || pool->conns == NULL || pg_pool_find_host(pool) != 0) {
        free(pool->conninfo);
        free(pool->conns);
        free(pool->resolve_host);
        free(pool);
        return NULL;
    }
    pool->options.conninfo = pool->conninfo;
    uv_timer_init(loop, &pool->watchdog);
    uv_timer_init(loop, &pool->deferred);
    pool->watchdog.data = pool->deferred.data = pool;
    pool->open_handles = 2;
    uv_timer_start(&pool->watchdog, pg_on_watchdog, PG_WATCHDOG_MS, PG_WATCHDOG_MS);
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->fd = -1;
        uv_timer_init(loop, &c->retry);
        c->retry.data = c;
        pool->open_handles++;
        pg_conn_start(c);
    }
    return pool;
}

static pg_conn_t *pg_pool_pick(db_pg_pool_t *pool)
{
    pg_conn_t *best = NULL;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state == PG_READY && !c->broken && (best == NULL || c->inflight < best->inflight))
            best = c;
    }
    return best;
}

int db_pg_submit(db_pg_pool_t *pool, const db_query_t *queries, int nqueries, db_pg_cb cb, void *data)
{
    pg_conn_t *c = NULL;
    if (pool->closing)
        pool->last_error = DB_ERR_CLOSED;
    else if (pool->inflight >= pool->options.max_in_flight)
        pool->last_error = DB_ERR_OVERLOADED;
    else if (nqueries <= 0 || nqueries > DB_PG_MAX_BATCH || (c = pg_pool_pick(pool)) == NULL)
        pool->last_error = DB_ERR_UNAVAILABLE;
    pg_batch_t *b = c != NULL ? calloc(1, sizeof(*b)) : NULL;
    if (b == NULL)
        return -1;
    for (int i = 0; i < nqueries; i++) {
        const db_stmt_def_t *s = db_stmt_get(queries[i].stmt);
        if (s == NULL || queries[i].nparams != s->nparams) {
            /* A programming error, refused before anything is sent. */
            fprintf(stderr, "hydrant: postgres: bad query %d (statement %d)\n", i, (int)queries[i].stmt);
            free(b);
            pool->last_error = DB_ERR_UNAVAILABLE;
            return -1;
        }
    }
    for (int i = 0; i < nqueries; i++) {
        const db_stmt_def_t *s = db_stmt_get(queries[i].stmt);
        if (!PQsendQueryPrepared(c->conn, s->name, queries[i].nparams, queries[i].values, queries[i].lengths,
                                 NULL, 0))
            goto broken;
    }
    if (!PQpipelineSync(c->conn))
        goto broken;
    b->cb = cb;
    b->data = data;
    b->nqueries = nqueries;
    b->sent_at = pg_now(pool);
    pg_conn_push(c, b);
    if (pg_conn_flush(c) != 0)
        pg_mark_broken(c); /* the batch fails from the deferred timer, not from here */
    return 0;
broken:
    free(b);
    pg_mark_broken(c);
    pool->last_error = DB_ERR_UNAVAILABLE;
    return -1;
}

db_status_t db_pg_last_error(const db_pg_pool_t *pool)
{
    return pool->last_error;
}

int db_pg_ready_connections(const db_pg_pool_t *pool)
{
    int n = 0;
    for (int i = 0; i < pool->nconns; i++)
        n += pool->conns[i].state == PG_READY;
    return n;
}

int db_pg_total_connections(const db_pg_pool_t *pool)
{
    return pool->nconns;
}

void db_pg_pool_close(db_pg_pool_t *pool, void (*on_closed)(void *data), void *data)
{
    pool->closing = 1;
    pool->on_closed = on_closed;
    pool->closed_data = data;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state == PG_RESOLVING)
            uv_cancel((uv_req_t *)&c->dns);
        pg_conn_reset(c, DB_ERR_CLOSED);
        uv_close((uv_handle_t *)&c->retry, pg_on_handle_closed);
        c->retry.data = pool;
    }
    uv_close((uv_handle_t *)&pool->watchdog, pg_on_handle_closed);
    uv_close((uv_handle_t *)&pool->deferred, pg_on_handle_closed);
}
