/*
 * Pipelined, nonblocking PostgreSQL connections driven by one libuv loop (one pool per loop
 * thread; nothing here may be touched from another thread).
 *
 * A connection sends batches without waiting for earlier ones. A batch is its queries
 * followed by ONE Sync, and PostgreSQL runs everything between two Syncs as one implicit
 * transaction: the statements of a batch commit together or not at all (no BEGIN/COMMIT
 * needed), and a failing batch leaves the next one untouched. Replies come back in order,
 * so each connection keeps its batches in a FIFO (see pg_batch.c for the reply stream).
 *
 * Callbacks run from libuv callbacks only, never inside db_pg_submit or db_pg_pool_close:
 * a failure noticed inside a call marks the connection broken, and the pool's `deferred`
 * timer resets it on the next loop iteration. A broken connection fails its batches with
 * DB_ERR_UNAVAILABLE and reconnects after an exponential backoff; a batch unanswered for
 * query_timeout_ms fails with DB_ERR_TIMEOUT and resets its connection.
 *
 * libpq rules this file relies on (libpq 15): PQsocket() may change during PQconnectPoll;
 * a uv_poll handle is closed before PQfinish closes its fd; uv_poll is level-triggered, so
 * writable is watched only while PQflush reports unsent output; PQpipelineSync flushes
 * (PQsendPipelineSync is PostgreSQL 17).
 */
#include "db/db.h"
#include "util/util.h"
#include "db/pg_batch.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PG_WATCHDOG_MS           100
#define PG_MAX_CONNECTIONS       64
#define PG_DEFAULT_MAX_IN_FLIGHT 10000
#define PG_DEFAULT_QUERY_TIMEOUT 10000
#define PG_DEFAULT_CONN_TIMEOUT  5000
#define PG_BACKED_UP             32 /* queries in flight on a connection before the next takes work */
#define PG_SLOW_MS               3  /* ... or how long its oldest batch may wait */

typedef enum {
    PG_DOWN,       /* waiting for the retry timer */
    PG_RESOLVING,  /* uv_getaddrinfo running */
    PG_CONNECTING, /* PQconnectPoll steps */
    PG_PREPARING,  /* pipelined, preparing the statements */
    PG_READY,
} pg_state_t;

/* Whether a registry statement is prepared on a connection. */
enum { PG_STMT_MISSING = 0, PG_STMT_IN_FLIGHT, PG_STMT_PREPARED };

struct pg_conn;
/* Identifies one statement's preparation for its reply (no allocation needed). */
typedef struct {
    struct pg_conn *conn;
    int id;
    unsigned generation; /* of the connection it was sent on */
} pg_prepare_ref_t;

typedef struct pg_conn {
    db_pg_pool_t *pool;
    PGconn *conn;
    uv_poll_t *poll; /* heap: a replaced handle may still be closing while the next one runs */
    int fd;
    int events;
    pg_state_t state;
    int broken; /* a reset is due (done by the pool's deferred timer) */
    db_pg_batch_t *head, *tail;
    int queries; /* queries in flight here, for picking the least busy connection */
    uint64_t connect_started;
    int failures;    /* connect attempts failed in a row (the backoff's); 0 once connected */
    char error[160]; /* why the connection broke, when libpq said it in a result */
    uv_timer_t retry;
    uv_getaddrinfo_t dns;
    unsigned generation; /* bumped on every new session */
    int prepares_pending;
    int corked;                  /* TCP_CORK is on until the pool's check handle runs (see pg_conn_cork) */
    db_pg_batch_t *open_segment; /* last batch sent, its Sync not yet: others may join */
    unsigned char prepared[DB_STMT__COUNT];
    pg_prepare_ref_t prepare_refs[DB_STMT__COUNT];
} pg_conn_t;

struct db_pg_pool {
    uv_loop_t *loop;
    db_pg_options_t options;
    char *conninfo;
    char *resolve_host;      /* a host name to resolve off the loop, or NULL */
    char server_options[48]; /* "-c statement_timeout=N": the server gives up before we do */
    char resolve_port[16];
    pg_conn_t *conns;
    int nconns;
    int queries; /* user queries in flight on every connection */
    db_status_t last_error;
    uv_timer_t watchdog;
    uv_timer_t deferred;
    uv_check_t uncork; /* sends what waits, uncorks and flushes, once the iteration's I/O is done */
    uv_idle_t awake;   /* keeps the loop from sleeping in poll while something waits */
    struct pg_pending *pending, *pending_tail; /* submitted, not yet sent (see db_pg_submit_if) */
    int pending_queries;
    int open_handles;
    int pending_dns;
    int closing;
    unsigned char missing_logged[DB_STMT__COUNT];
    db_pg_batch_t *orphans; /* batches cut off by close, failed once every handle is closed */
    void (*on_closed)(void *data);
    void *closed_data;
};

static void pg_conn_start(pg_conn_t *c);
static void pg_conn_reset(pg_conn_t *c, db_status_t why, const char *reason, int with_detail);
static void pg_on_poll(uv_poll_t *handle, int status, int events);
static void pg_on_uncork(uv_check_t *check);
static void pg_pool_send_pending(db_pg_pool_t *pool);
static void pg_conn_mark_broken(pg_conn_t *c);

/* ----------------------------------------------------------------- batches ---- */

static void pg_conn_push(pg_conn_t *c, db_pg_batch_t *b)
{
    b->next = NULL;
    if (c->tail != NULL)
        c->tail->next = b;
    else
        c->head = b;
    c->tail = b;
    c->queries += b->nqueries;
    c->pool->queries += b->counted;
}

/* Detaches the connection's whole FIFO (for failing it). */
static db_pg_batch_t *pg_conn_take_all(pg_conn_t *c)
{
    db_pg_batch_t *list = c->head;
    for (db_pg_batch_t *b = list; b != NULL; b = b->next)
        c->pool->queries -= b->counted;
    c->head = c->tail = c->open_segment = NULL;
    c->queries = 0;
    return list;
}

static db_pg_batch_t *pg_conn_pop(pg_conn_t *c)
{
    db_pg_batch_t *b = c->head;
    c->head = b->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->queries -= b->nqueries;
    c->pool->queries -= b->counted;
    return b;
}

/* Calls the batch's callback, then frees it with its results. The batch is out of every
 * list by now, so the callback may submit or close freely. */
static void pg_batch_complete(db_pg_batch_t *b, const db_reply_t *reply)
{
    if (b->cb != NULL)
        b->cb(b->data, reply);
    db_pg_batch_free(b);
}

static void pg_batches_fail(db_pg_batch_t *list, db_status_t why)
{
    while (list != NULL) {
        db_pg_batch_t *next = list->next;
        db_status_t status = db_pg_batch_cut_status(list, why);
        db_reply_t reply = {.status = status, .message = db_status_name(status)};
        pg_batch_complete(list, &reply);
        list = next;
    }
}

/* ----------------------------------------------------------------- handles ---- */

static void pg_pool_free(db_pg_pool_t *pool)
{
    free(pool->conns);
    free(pool->conninfo);
    free(pool->resolve_host);
    free(pool);
}

static void pg_pool_maybe_finish(db_pg_pool_t *pool)
{
    if (!pool->closing || pool->open_handles > 0 || pool->pending_dns > 0)
        return;
    /* Callbacks of cut-off batches may call db_pg_submit (refused: closing) or close again
     * (ignored); neither touches the handles, so this runs once. */
    db_pg_batch_t *orphans = pool->orphans;
    pool->orphans = NULL;
    pg_batches_fail(orphans, DB_ERR_CLOSED);
    void (*on_closed)(void *) = pool->on_closed;
    void *data = pool->closed_data;
    pg_pool_free(pool);
    if (on_closed != NULL)
        on_closed(data);
}

static void pg_on_timer_closed(uv_handle_t *handle)
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

/* Stops and closes the poll handle; must run before libpq closes the socket. */
static void pg_conn_unwatch(pg_conn_t *c)
{
    if (c->poll == NULL)
        return;
    uv_poll_stop(c->poll);
    c->poll->data = c->pool; /* the close callback needs only the pool */
    uv_close((uv_handle_t *)c->poll, pg_on_poll_closed);
    c->poll = NULL;
    c->fd = -1;
    c->events = 0;
}

/* Watches libpq's current socket for `events`. A new socket gets a new handle. `restart`
 * re-arms even unchanged events: while connecting, libpq may close its socket and open
 * another that reuses the same fd number, which epoll forgot with the old one. */
static int pg_conn_watch(pg_conn_t *c, int events, int restart)
{
    int fd = PQsocket(c->conn);
    if (fd < 0)
        return -1;
    if (c->poll != NULL && c->fd != fd)
        pg_conn_unwatch(c);
    if (c->poll == NULL) {
        uv_poll_t *poll = malloc(sizeof(*poll));
        if (poll == NULL)
            return -1;
        if (uv_poll_init(c->pool->loop, poll, fd) != 0) {
            free(poll); /* uv_poll_init registers nothing when it fails */
            return -1;
        }
        poll->data = c;
        c->pool->open_handles++;
        c->poll = poll;
        c->fd = fd;
        restart = 1;
    }
    if (restart || events != c->events) {
        if (uv_poll_start(c->poll, events, pg_on_poll) != 0)
            return -1;
        c->events = events;
    }
    return 0;
}

/* Sends what libpq holds; watches writable only while some is left (level-triggered). */
static int pg_conn_flush(pg_conn_t *c)
{
    int rc = PQflush(c->conn);
    if (rc < 0)
        return -1;
    return pg_conn_watch(c, UV_READABLE | (rc == 1 ? UV_WRITABLE : 0), 0);
}

/*
 * Work submitted during one loop iteration leaves together once the iteration's I/O
 * callbacks are done (the pool's check handle), so that the backend reads it in one go and
 * answers it in one go:
 * - libpq 15's PQpipelineSync writes at once, so every batch would be a segment of its own
 *   on the wire and wake the backend on its own: the socket is corked meanwhile (a Unix
 *   socket refuses TCP_CORK and keeps writing per batch);
 * - PostgreSQL flushes its answers at every Sync: one-query batches of read-only statements
 *   (shares_sync) join one open segment, whose Sync is sent here.
 */
static void pg_on_awake(uv_idle_t *idle)
{
    (void)idle;
}

/* The check handle runs after the iteration's I/O; the idle handle makes an iteration whose
 * work came from a timer (before poll) go through poll without sleeping, so its batches are
 * not held until the next event. */
static void pg_pool_defer_flush(db_pg_pool_t *pool)
{
    if (!uv_is_active((uv_handle_t *)&pool->uncork)) {
        uv_check_start(&pool->uncork, pg_on_uncork);
        uv_idle_start(&pool->awake, pg_on_awake);
    }
}

static void pg_conn_cork(pg_conn_t *c)
{
    int on = 1;
    if (c->corked || c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) != 0)
        return;
    c->corked = 1;
    pg_pool_defer_flush(c->pool);
}

/* Sends the Sync of the open segment, if any. */
static int pg_conn_close_segment(pg_conn_t *c)
{
    if (c->open_segment == NULL)
        return 0;
    c->open_segment = NULL;
    return PQpipelineSync(c->conn) ? 0 : -1;
}

static void pg_on_uncork(uv_check_t *check)
{
    db_pg_pool_t *pool = check->data;
    uv_check_stop(check);
    uv_idle_stop(&pool->awake);
    pg_pool_send_pending(pool);
    int off = 0;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        int was_corked = c->corked;
        c->corked = 0;
        /* Only pipelined sessions: a connection still connecting has its own poll events. */
        if (c->fd < 0 || c->broken || c->conn == NULL || (c->state != PG_READY && c->state != PG_PREPARING))
            continue;
        if (pg_conn_close_segment(c) != 0 ||
            (was_corked && setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)) != 0) ||
            pg_conn_flush(c) != 0)
            pg_conn_mark_broken(c);
    }
}

/* ----------------------------------------------------------------- failure ---- */

static void pg_log(const pg_conn_t *c, util_log_level_t level, const char *what, int with_detail)
{
    const char *detail = !with_detail          ? ""
                         : c->error[0] != '\0' ? c->error
                         : c->conn != NULL     ? PQerrorMessage(c->conn)
                                               : "";
    int len = (int)strcspn(detail, "\n");
    util_log(level, "postgres", "connection %d: %s%s%.*s", (int)(c - c->pool->conns), what,
             len > 0 ? ": " : "", len, detail);
}

static void pg_on_retry(uv_timer_t *timer)
{
    pg_conn_start(timer->data);
}

/* 50 ms doubling to 2 s, plus up to 20% jitter so that many loops do not reconnect in step. */
static void pg_conn_schedule_retry(pg_conn_t *c)
{
    c->state = PG_DOWN;
    if (c->pool->closing)
        return;
    int64_t delay = util_backoff_next(&UTIL_BACKOFF_RECONNECT, &c->failures);
    uv_timer_start(&c->retry, pg_on_retry, (uint64_t)delay, 0);
}

/* Closes the connection and returns its batches (the caller fails them). */
static db_pg_batch_t *pg_conn_teardown(pg_conn_t *c)
{
    db_pg_batch_t *batches = pg_conn_take_all(c);
    c->broken = 0;
    c->error[0] = '\0';
    pg_conn_unwatch(c);
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->state = PG_DOWN;
    return batches;
}

/* Fails every batch of the connection with `why`, closes it and schedules a reconnect.
 * Runs only from loop callbacks, since it calls the batches' callbacks. `reason` is logged
 * once per outage: when a working connection breaks, or when the first attempt fails. */
static void pg_conn_reset(pg_conn_t *c, db_status_t why, const char *reason, int with_detail)
{
    if (c->state == PG_READY || (c->failures == 0 && !c->pool->closing))
        pg_log(c, UTIL_LOG_WARN, reason, with_detail);
    db_pg_batch_t *batches = pg_conn_teardown(c);
    pg_conn_schedule_retry(c);
    pg_batches_fail(batches, why);
}

static void pg_on_deferred(uv_timer_t *timer)
{
    db_pg_pool_t *pool = timer->data;
    for (int i = 0; i < pool->nconns && !pool->closing; i++)
        if (pool->conns[i].broken)
            pg_conn_reset(&pool->conns[i], DB_ERR_UNAVAILABLE, "connection failed", 1);
}

/* For failures noticed inside a user's call: the reset (and its callbacks) happens on the
 * next loop iteration, and the connection takes no more work meanwhile. */
static void pg_conn_mark_broken(pg_conn_t *c)
{
    if (c->pool->closing)
        return; /* everything is being torn down already */
    c->broken = 1;
    uv_timer_start(&c->pool->deferred, pg_on_deferred, 0, 0);
}

/* ----------------------------------------------------------------- reading ---- */

/* Hands every complete result to its batch and completes batches whose Sync arrived.
 * Returns -1 when the connection must be reset. */
static int pg_conn_drain(pg_conn_t *c)
{
    /* c->conn turns NULL if a callback closes the pool; c->head guards against PQgetResult's
     * endless NULLs when nothing is in flight. */
    while (c->conn != NULL && c->head != NULL && !PQisBusy(c->conn)) {
        PGresult *res = PQgetResult(c->conn);
        if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(c->conn) == CONNECTION_BAD) {
            /* The server's last word or libpq's "connection lost", not a statement's error. */
            snprintf(c->error, sizeof(c->error), "%s", PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        db_pg_batch_step_t step = db_pg_batch_take(c->head, res);
        if (step == DB_PG_BATCH_BROKEN) {
            snprintf(c->error, sizeof(c->error), "replies out of step with the pipeline");
            return -1;
        }
        if (step == DB_PG_BATCH_DONE) {
            db_pg_batch_t *b = pg_conn_pop(c);
            db_reply_t reply;
            db_pg_batch_reply(b, &reply);
            pg_batch_complete(b, &reply);
        }
    }
    return 0;
}

static int pg_conn_read(pg_conn_t *c)
{
    int consumed = PQconsumeInput(c->conn);
    /* Results already received are delivered even when the connection just broke. */
    if (pg_conn_drain(c) != 0)
        return -1;
    if (c->conn == NULL)
        return 0; /* closed by a callback */
    return consumed && PQstatus(c->conn) == CONNECTION_OK ? 0 : -1;
}

/* -------------------------------------------------------------- connecting ---- */

/* Each registry statement is prepared in a pipeline segment of its own, so that one the
 * server refuses (its table not migrated yet, say) fails alone: the connection becomes
 * ready when every preparation has answered, and a statement left unprepared is prepared
 * again in front of the next batch that uses it (until then those batches fail, the others
 * are served). */
static void pg_conn_ready(pg_conn_t *c)
{
    if (c->failures != 0)
        pg_log(c, UTIL_LOG_INFO, "connected", 0); /* the end of an outage that was logged */
    c->state = PG_READY;
    c->failures = 0;
}

static void pg_on_stmt_prepared(void *data, const db_reply_t *reply)
{
    pg_prepare_ref_t *ref = data;
    pg_conn_t *c = ref->conn;
    if (ref->generation != c->generation || c->conn == NULL)
        return; /* a reply from a session that has ended */
    db_pg_pool_t *pool = c->pool;
    c->prepared[ref->id] = reply->status == DB_OK ? PG_STMT_PREPARED : PG_STMT_MISSING;
    if (reply->status == DB_OK) {
        pool->missing_logged[ref->id] = 0;
    } else if (reply->status == DB_ERR_QUERY && !pool->missing_logged[ref->id]) {
        pool->missing_logged[ref->id] = 1;
        util_log(UTIL_LOG_ERROR, "postgres",
                 "statement %s cannot be prepared (queries using it fail until it can): %s",
                 db_stmt_get((db_stmt_id_t)ref->id)->name, reply->message);
    }
    if (c->state == PG_PREPARING && --c->prepares_pending == 0)
        pg_conn_ready(c);
}

/* Queues the preparation of one statement as its own segment. */
static int pg_conn_send_prepare(pg_conn_t *c, int id)
{
    const db_stmt_def_t *s = db_stmt_get((db_stmt_id_t)id);
    db_pg_batch_t *b = db_pg_batch_new(1);
    if (b == NULL)
        return -1;
    if (!PQsendPrepare(c->conn, s->name, s->sql, s->nparams, NULL) || !PQpipelineSync(c->conn)) {
        db_pg_batch_free(b);
        return -1;
    }
    c->prepare_refs[id] = (pg_prepare_ref_t){c, id, c->generation};
    c->prepared[id] = PG_STMT_IN_FLIGHT;
    b->cb = pg_on_stmt_prepared;
    b->data = &c->prepare_refs[id];
    b->sent_at = uv_now(c->pool->loop);
    pg_conn_push(c, b); /* counted = 0: not the users' work */
    return 0;
}

static int pg_conn_send_prepares(pg_conn_t *c)
{
    c->generation++;
    memset(c->prepared, PG_STMT_MISSING, sizeof(c->prepared));
    c->state = PG_PREPARING;
    c->prepares_pending = DB_STMT__COUNT;
    for (int id = 0; id < DB_STMT__COUNT; id++)
        if (pg_conn_send_prepare(c, id) != 0)
            return -1;
    return 0;
}

static void pg_conn_connected(pg_conn_t *c)
{
    if (PQsetnonblocking(c->conn, 1) != 0 || !PQenterPipelineMode(c->conn) || pg_conn_send_prepares(c) != 0 ||
        pg_conn_flush(c) != 0)
        pg_conn_reset(c, DB_ERR_UNAVAILABLE, "cannot set up the pipeline", 1);
}

static void pg_conn_connect_step(pg_conn_t *c)
{
    int rc;
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        rc = pg_conn_watch(c, UV_READABLE, 1);
        break;
    case PGRES_POLLING_WRITING:
        rc = pg_conn_watch(c, UV_WRITABLE, 1);
        break;
    case PGRES_POLLING_OK:
        pg_conn_connected(c);
        return;
    default:
        rc = -1;
        break;
    }
    if (rc != 0)
        pg_conn_reset(c, DB_ERR_UNAVAILABLE, "cannot connect", 1);
}

/* The level of a notice by its severity: the server's untranslated one (a server speaking
 * another language translates the text's first word), else, for libpq's own notices, the
 * text's first word ("WARNING:  ..."). */
static util_log_level_t pg_notice_level(const char *severity, const char *message)
{
    static const struct {
        const char *name;
        util_log_level_t level;
    } levels[] = {{"WARNING", UTIL_LOG_WARN},
                  {"ERROR", UTIL_LOG_ERROR},
                  {"FATAL", UTIL_LOG_ERROR},
                  {"PANIC", UTIL_LOG_ERROR},
                  {"DEBUG", UTIL_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        size_t n = strlen(levels[i].name);
        if (severity != NULL ? strncmp(severity, levels[i].name, n) == 0
                             : strncmp(message, levels[i].name, n) == 0 && message[n] == ':')
            return levels[i].level;
    }
    return UTIL_LOG_INFO; /* NOTICE, INFO, LOG */
}

void db_pg_log_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *message = PQresultErrorMessage(res);
    int len = (int)strcspn(message, "\n");
    util_log(pg_notice_level(PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED), message), "postgres",
             "%.*s", len, message);
}

static void pg_conn_open(pg_conn_t *c, const char *hostaddr)
{
    /* Keywords before the expanded dbname are defaults the URL may override; those after it
     * override the URL. Keepalives find a silently dead server while nothing is in flight. */
    const char *keys[] = {"keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "options",
                          "dbname",
                          "application_name",
                          hostaddr != NULL ? "hostaddr" : NULL,
                          NULL};
    const char *values[] = {"30",      "10",     "3", c->pool->server_options, c->pool->conninfo,
                            "hydrant", hostaddr, NULL};
    c->state = PG_CONNECTING;
    c->connect_started = uv_now(c->pool->loop);
    c->conn = PQconnectStartParams(keys, values, 1);
    if (c->conn == NULL) {
        pg_conn_schedule_retry(c);
        return;
    }
    PQsetNoticeReceiver(c->conn, db_pg_log_notice, NULL);
    /* As the libpq manual says: before the first PQconnectPoll, act as if it asked for
     * writable (the connect() in progress completes when the socket turns writable). */
    if (PQstatus(c->conn) == CONNECTION_BAD || pg_conn_watch(c, UV_WRITABLE, 1) != 0)
        pg_conn_reset(c, DB_ERR_UNAVAILABLE, "cannot connect", 1);
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
        if (c->failures == 0)
            util_log(UTIL_LOG_WARN, "postgres", "cannot resolve %s: %s", pool->resolve_host,
                     status != 0 ? uv_strerror(status) : "no address");
        pg_conn_schedule_retry(c);
        return;
    }
    pg_conn_open(c, addr);
}

/* libpq would resolve a host name synchronously inside PQconnectPoll; to keep the loop free
 * the name is resolved on libuv's thread pool and handed to libpq as hostaddr. */
static void pg_conn_start(pg_conn_t *c)
{
    db_pg_pool_t *pool = c->pool;
    if (pool->closing)
        return;
    c->broken = 0;
    c->connect_started = uv_now(pool->loop);
    if (pool->resolve_host == NULL) {
        pg_conn_open(c, NULL);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->dns.data = c;
    c->state = PG_RESOLVING;
    if (uv_getaddrinfo(pool->loop, &c->dns, pg_on_resolved, pool->resolve_host, pool->resolve_port, &hints) !=
        0) {
        pg_conn_schedule_retry(c);
        return;
    }
    pool->pending_dns++;
}

/* ------------------------------------------------------------------- loop ---- */

static void pg_on_poll(uv_poll_t *handle, int status, int events)
{
    pg_conn_t *c = handle->data;
    if (c->state == PG_CONNECTING) {
        /* Even on a poll error: PQconnectPoll finds out what failed (refused, reset) and
         * moves to the next address or gives up. */
        pg_conn_connect_step(c);
        return;
    }
    int ok = status == 0;
    if (ok && (events & UV_WRITABLE))
        ok = pg_conn_flush(c) == 0;
    /* Read even after writable alone: a flush that could not finish reads what the server
     * sent meanwhile into libpq's buffer, where no readable event would announce it. And
     * even after a poll error (a reset socket): replies that arrived before it still reach
     * their callers, and libpq learns why the connection ended. */
    if (pg_conn_read(c) != 0)
        ok = 0;
    if (ok || c->conn == NULL) /* c->conn is NULL if a callback closed the pool */
        return;
    if (status < 0 && c->error[0] == '\0' && PQstatus(c->conn) == CONNECTION_OK)
        snprintf(c->error, sizeof(c->error), "socket error (reset by the server?)"); /* libuv says EBADF */
    pg_conn_reset(c, DB_ERR_UNAVAILABLE, "connection lost", 1);
}

/* Abandons connect attempts and batches that take too long. */
static void pg_on_watchdog(uv_timer_t *timer)
{
    db_pg_pool_t *pool = timer->data;
    uint64_t now = uv_now(pool->loop);
    for (int i = 0; i < pool->nconns && !pool->closing; i++) {
        pg_conn_t *c = &pool->conns[i];
        int connecting = c->state == PG_CONNECTING || c->state == PG_PREPARING;
        if (connecting && now - c->connect_started >= (uint64_t)pool->options.connect_timeout_ms)
            pg_conn_reset(c, DB_ERR_UNAVAILABLE, "connect timeout", 0);
        else if (c->state == PG_READY && c->head != NULL &&
                 now - c->head->sent_at >= (uint64_t)pool->options.query_timeout_ms)
            pg_conn_reset(c, DB_ERR_TIMEOUT, "query timeout, resetting the connection", 0);
    }
}

/* ----------------------------------------------------------------- public ---- */

/* Decides whether the host of the conninfo needs an asynchronous lookup: a single host name
 * does; IP literals, socket directories and host lists (rare; libpq resolves those itself)
 * do not. */
static int pg_pool_find_host(db_pg_pool_t *pool)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(pool->conninfo, &errmsg);
    if (opts == NULL) {
        int len = errmsg != NULL ? (int)strcspn(errmsg, "\n") : 0;
        util_log(UTIL_LOG_ERROR, "postgres", "bad database url: %.*s", len, errmsg != NULL ? errmsg : "");
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
    unsigned char buf[sizeof(struct in6_addr)];
    int literal = host == NULL || host[0] == '/' || host[0] == '\0' || strchr(host, ',') != NULL ||
                  inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
    int rc = 0;
    if (!literal && (hostaddr == NULL || hostaddr[0] == '\0')) {
        pool->resolve_host = strdup(host);
        rc = pool->resolve_host != NULL ? 0 : -1;
        snprintf(pool->resolve_port, sizeof(pool->resolve_port), "%s",
                 port != NULL && port[0] != '\0' && strchr(port, ',') == NULL ? port : "5432");
    }
    PQconninfoFree(opts);
    return rc;
}

/* How long the server may work on a batch: a quarter of the query timeout is left for the
 * answer to travel and for clocks that disagree (see db.h). */
static int pg_server_deadline_ms(const db_pg_pool_t *pool)
{
    int ms = pool->options.query_timeout_ms - pool->options.query_timeout_ms / 4;
    return ms > 0 ? ms : 1;
}

static void pg_pool_set_options(db_pg_pool_t *pool, const db_pg_options_t *options)
{
    pool->options = *options;
    db_pg_options_t *o = &pool->options;
    o->connections = o->connections < 1                    ? 1
                     : o->connections > PG_MAX_CONNECTIONS ? PG_MAX_CONNECTIONS
                                                           : o->connections;
    if (o->max_in_flight <= 0)
        o->max_in_flight = PG_DEFAULT_MAX_IN_FLIGHT;
    if (o->query_timeout_ms <= 0)
        o->query_timeout_ms = PG_DEFAULT_QUERY_TIMEOUT;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = PG_DEFAULT_CONN_TIMEOUT;
    pool->nconns = o->connections;
    snprintf(pool->server_options, sizeof(pool->server_options), "-c statement_timeout=%d",
             pg_server_deadline_ms(pool));
}

db_pg_pool_t *db_pg_pool_new(uv_loop_t *loop, const db_pg_options_t *options)
{
    if (loop == NULL || options == NULL)
        return NULL;
    db_pg_pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pg_pool_set_options(pool, options);
    pool->conninfo = strdup(options->conninfo != NULL ? options->conninfo : "");
    pool->conns = calloc((size_t)pool->nconns, sizeof(pg_conn_t));
    if (pool->conninfo == NULL || pool->conns == NULL || pg_pool_find_host(pool) != 0) {
        pg_pool_free(pool);
        return NULL;
    }
    pool->options.conninfo = pool->conninfo;
    uv_timer_init(loop, &pool->watchdog);
    uv_timer_init(loop, &pool->deferred);
    uv_check_init(loop, &pool->uncork);
    uv_idle_init(loop, &pool->awake);
    pool->watchdog.data = pool->deferred.data = pool->uncork.data = pool->awake.data = pool;
    pool->open_handles = 4;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->fd = -1;
        uv_timer_init(loop, &c->retry);
        c->retry.data = c;
        pool->open_handles++;
    }
    uv_timer_start(&pool->watchdog, pg_on_watchdog, PG_WATCHDOG_MS, PG_WATCHDOG_MS);
    for (int i = 0; i < pool->nconns; i++)
        pg_conn_start(&pool->conns[i]);
    return pool;
}

static int pg_refuse(db_pg_pool_t *pool, db_status_t why)
{
    pool->last_error = why;
    return -1;
}

/* Checks a batch against the registry before anything is sent, so that a bad batch never
 * leaves half of itself in a pipeline. */
static int pg_batch_valid(const db_query_t *queries, int nqueries)
{
    if (queries == NULL || nqueries < 1 || nqueries > DB_PG_MAX_BATCH)
        return 0;
    for (int i = 0; i < nqueries; i++) {
        const db_query_t *q = &queries[i];
        const db_stmt_def_t *s = db_stmt_get(q->stmt);
        if (s == NULL || q->nparams != s->nparams)
            return 0;
        for (int p = 0; q->lengths != NULL && q->values != NULL && p < q->nparams; p++) {
            /* Text parameters travel NUL-terminated: a NUL inside cannot be sent (and
             * PostgreSQL text cannot hold one anyway). */
            if (q->values[p] != NULL &&
                (q->lengths[p] < 0 || memchr(q->values[p], '\0', (size_t)q->lengths[p])))
                return 0;
        }
    }
    return 1;
}

/* May a lone shares_sync query join the open segment? Not behind a batch that has already
 * been answered in full (PostgreSQL may send answers before a Sync when its buffer fills). */
static int pg_conn_may_join(const db_pg_batch_t *open)
{
    return open != NULL && open->ended < open->nqueries;
}

/* Queues the queries in libpq (which copies the parameters), then either a Sync or, for a
 * lone shares_sync query, nothing: its segment stays open for others until the check phase. */
static int pg_conn_send(pg_conn_t *c, db_pg_batch_t *b, const db_query_t *queries,
                        const char *const *const *values, int nqueries)
{
    int shares = nqueries == 1 && db_stmt_get(queries[0].stmt)->shares_sync &&
                 c->prepared[queries[0].stmt] == PG_STMT_PREPARED;
    db_pg_batch_t *open = c->open_segment;
    if (shares && pg_conn_may_join(open)) {
        open->sync_follows = 0;
    } else {
        /* A Sync is written here (PQpipelineSync flushes): corked, it still leaves with the
         * rest of the iteration. */
        if (open != NULL || !shares)
            pg_conn_cork(c);
        if (pg_conn_close_segment(c) != 0)
            return -1;
    }
    for (int i = 0; i < nqueries; i++)
        if (c->prepared[queries[i].stmt] == PG_STMT_MISSING && pg_conn_send_prepare(c, queries[i].stmt) != 0)
            return -1;
    for (int i = 0; i < nqueries; i++) {
        const db_stmt_def_t *s = db_stmt_get(queries[i].stmt);
        if (!PQsendQueryPrepared(c->conn, s->name, queries[i].nparams, values[i], NULL, NULL, 0))
            return -1;
    }
    if (shares) {
        c->open_segment = b;
        return 0;
    }
    return PQpipelineSync(c->conn) ? 0 : -1;
}

/* A connection with many queries in flight, or whose oldest batch has waited a while (a
 * slow statement: everything behind it in the pipeline waits too). */
static int pg_conn_backed_up(const pg_conn_t *c, uint64_t now)
{
    return c->queries >= PG_BACKED_UP || (c->head != NULL && now - c->head->sent_at >= PG_SLOW_MS);
}

/* The first ready connection that is not backed up, else the least busy one. Filling one
 * connection first puts more of a loop iteration's queries in one segment (one read and one
 * write for the backend, see pg_conn_cork); the next one takes over while a slow query holds
 * up the first. */
static pg_conn_t *pg_pool_pick(db_pg_pool_t *pool)
{
    pg_conn_t *best = NULL;
    uint64_t now = uv_now(pool->loop);
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state != PG_READY || c->broken)
            continue;
        if (!pg_conn_backed_up(c, now))
            return c;
        if (best == NULL || c->queries < best->queries)
            best = c;
    }
    return best;
}

/* A copy of a batch that writes with DB_STMT_DEADLINE appended, its parameter in deadline:
 * the server's clock must not have passed pg_server_deadline_ms from now when the batch's
 * last statement runs, or the batch rolls back. */
static const db_query_t *pg_guard_batch(const db_pg_pool_t *pool, const db_query_t *queries, int *nqueries,
                                        db_query_t *guarded, const char **deadline_value, char *deadline,
                                        size_t deadline_len)
{
    if (!db_stmts_write(queries, *nqueries))
        return queries;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + pg_server_deadline_ms(pool);
    snprintf(deadline, deadline_len, "%lld.%03lld", ms / 1000, ms % 1000);
    *deadline_value = deadline;
    memcpy(guarded, queries, (size_t)*nqueries * sizeof(*queries));
    guarded[*nqueries] = (db_query_t){.stmt = DB_STMT_DEADLINE, .nparams = 1, .values = deadline_value};
    (*nqueries)++;
    return guarded;
}

/* A batch waiting for the end of the loop iteration, with its own copy of every parameter
 * (NUL-terminated: pg_batch_valid refused NULs), so the caller's memory may go at once. */
typedef struct pg_pending {
    struct pg_pending *next;
    db_pg_batch_t *batch;
    int (*wanted)(void *data);
    int nqueries;
    db_query_t queries[];
} pg_pending_t;

static pg_pending_t *pg_pending_new(const db_query_t *queries, int nqueries)
{
    size_t slots = 0, bytes = 0;
    for (int i = 0; i < nqueries; i++) {
        slots += (size_t)queries[i].nparams;
        for (int p = 0; p < queries[i].nparams && queries[i].values != NULL; p++) {
            const char *v = queries[i].values[p];
            if (v != NULL)
                bytes += (queries[i].lengths != NULL ? (size_t)queries[i].lengths[p] : strlen(v)) + 1;
        }
    }
    pg_pending_t *pending = malloc(sizeof(*pending) + (size_t)nqueries * sizeof(db_query_t) +
                                   slots * sizeof(const char *) + bytes);
    if (pending == NULL)
        return NULL;
    pending->nqueries = nqueries;
    const char **slot = (const char **)(void *)(pending->queries + nqueries);
    char *text = (char *)(slot + slots);
    for (int i = 0; i < nqueries; i++) {
        pending->queries[i] =
            (db_query_t){.stmt = queries[i].stmt, .nparams = queries[i].nparams, .values = slot};
        for (int p = 0; p < queries[i].nparams; p++, slot++) {
            const char *v = queries[i].values != NULL ? queries[i].values[p] : NULL;
            if (v == NULL) {
                *slot = NULL;
                continue;
            }
            size_t len = queries[i].lengths != NULL ? (size_t)queries[i].lengths[p] : strlen(v);
            memcpy(text, v, len);
            text[len] = '\0';
            *slot = text;
            text += len + 1;
        }
    }
    return pending;
}

int db_pg_submit(db_pg_pool_t *pool, const db_query_t *queries, int nqueries, db_pg_cb cb, void *data)
{
    return db_pg_submit_if(pool, queries, nqueries, cb, data, NULL);
}

int db_pg_submit_if(db_pg_pool_t *pool, const db_query_t *queries, int nqueries, db_pg_cb cb, void *data,
                    int (*wanted)(void *data))
{
    if (pool->closing)
        return pg_refuse(pool, DB_ERR_CLOSED);
    if (!pg_batch_valid(queries, nqueries))
        return pg_refuse(pool, DB_ERR_QUERY);
    db_query_t guarded[DB_PG_MAX_BATCH + 1];
    const char *deadline_value;
    char deadline[32];
    int user_queries = nqueries;
    queries = pg_guard_batch(pool, queries, &nqueries, guarded, &deadline_value, deadline, sizeof(deadline));
    if (pool->queries + pool->pending_queries + nqueries > pool->options.max_in_flight)
        return pg_refuse(pool, DB_ERR_OVERLOADED);
    if (pg_pool_pick(pool) == NULL)
        return pg_refuse(pool, DB_ERR_UNAVAILABLE);
    pg_pending_t *pending = pg_pending_new(queries, nqueries);
    db_pg_batch_t *b = pending != NULL ? db_pg_batch_new(nqueries) : NULL;
    if (b == NULL) {
        free(pending);
        return pg_refuse(pool, DB_ERR_OVERLOADED); /* out of memory: shed load */
    }
    b->cb = cb;
    b->data = data;
    b->guarded = nqueries > user_queries;
    pending->batch = b;
    pending->wanted = wanted;
    pending->next = NULL;
    if (pool->pending_tail != NULL)
        pool->pending_tail->next = pending;
    else
        pool->pending = pending;
    pool->pending_tail = pending;
    pool->pending_queries += nqueries;
    pg_pool_defer_flush(pool);
    return 0;
}

/* Sends one waiting batch, or answers it: DB_ERR_CANCELLED when its caller no longer wants
 * it (a request whose client left: a reset stream costs no database work), DB_ERR_UNAVAILABLE
 * when no connection can take it (nothing was sent either way). */
static void pg_pending_send(db_pg_pool_t *pool, pg_pending_t *p)
{
    db_pg_batch_t *b = p->batch;
    pool->pending_queries -= p->nqueries;
    pg_conn_t *c = NULL;
    db_status_t refused = DB_ERR_CANCELLED;
    if (p->wanted == NULL || p->wanted(b->data)) {
        refused = DB_ERR_UNAVAILABLE;
        c = pg_pool_pick(pool);
    }
    if (c != NULL) {
        const char *const *views[DB_PG_MAX_BATCH + 1];
        for (int i = 0; i < p->nqueries; i++)
            views[i] = p->queries[i].values;
        if (pg_conn_send(c, b, p->queries, views, p->nqueries) != 0) {
            /* Part of the batch may sit in the pipeline without its Sync: the connection is
             * out of step for good, and its earlier batches fail from the loop. */
            pg_conn_mark_broken(c);
            c = NULL;
        }
    }
    if (c == NULL) {
        db_reply_t reply = {.status = refused, .message = db_status_name(refused)};
        free(p);
        pg_batch_complete(b, &reply);
        return;
    }
    b->sent_at = uv_now(pool->loop);
    b->counted = p->nqueries;
    free(p);
    pg_conn_push(c, b);
}

/* Everything submitted since the last check, in order; callbacks of refused batches may
 * submit more, which go out in the same pass. */
static void pg_pool_send_pending(db_pg_pool_t *pool)
{
    while (pool->pending != NULL && !pool->closing) {
        pg_pending_t *p = pool->pending;
        pool->pending = p->next;
        if (pool->pending == NULL)
            pool->pending_tail = NULL;
        pg_pending_send(pool, p);
    }
}

db_status_t db_pg_last_error(const db_pg_pool_t *pool)
{
    return pool->last_error;
}

int db_pg_ready_connections(const db_pg_pool_t *pool)
{
    int n = 0;
    for (int i = 0; i < pool->nconns; i++)
        n += pool->conns[i].state == PG_READY && !pool->conns[i].broken;
    return n;
}

int db_pg_total_connections(const db_pg_pool_t *pool)
{
    return pool->nconns;
}

void db_pg_pool_close(db_pg_pool_t *pool, void (*on_closed)(void *data), void *data)
{
    if (pool == NULL || pool->closing)
        return;
    pool->closing = 1;
    pool->on_closed = on_closed;
    pool->closed_data = data;
    uv_close((uv_handle_t *)&pool->watchdog, pg_on_timer_closed);
    uv_close((uv_handle_t *)&pool->deferred, pg_on_timer_closed);
    uv_close((uv_handle_t *)&pool->uncork, pg_on_timer_closed);
    uv_close((uv_handle_t *)&pool->awake, pg_on_timer_closed);
    /* Batches never sent are failed with the others, from the loop once every handle is
     * closed. */
    while (pool->pending != NULL) {
        struct pg_pending *p = pool->pending;
        pool->pending = p->next;
        p->batch->next = pool->orphans;
        pool->orphans = p->batch;
        free(p);
    }
    pool->pending_tail = NULL;
    pool->pending_queries = 0;
    for (int i = 0; i < pool->nconns; i++) {
        pg_conn_t *c = &pool->conns[i];
        if (c->state == PG_RESOLVING)
            uv_cancel((uv_req_t *)&c->dns); /* a lookup already running ends later; pending_dns waits */
        c->retry.data = pool;
        uv_close((uv_handle_t *)&c->retry, pg_on_timer_closed);
        /* The batches are failed from pg_pool_maybe_finish, once the loop has closed every
         * handle: never inside this call. */
        db_pg_batch_t *batches = pg_conn_teardown(c);
        if (batches != NULL) {
            db_pg_batch_t *last = batches;
            while (last->next != NULL)
                last = last->next;
            last->next = pool->orphans;
            pool->orphans = batches;
        }
    }
}
