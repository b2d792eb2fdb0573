/*
 * Data layer: a pipelined libpq pool and an async Redis client per event-loop thread, both
 * driven by the thread's libuv loop; blocking helpers for the command line (migrations).
 *
 * Ownership rules, shared by both clients:
 * - every call that returns 0 invokes its callback exactly once, on the loop thread, later
 *   (never from inside the submitting call);
 * - a call that returns -1 invokes nothing (the caller answers 503 at once);
 * - results handed to a callback are valid only during the callback.
 */
#ifndef HYDRANT_DB_H
#define HYDRANT_DB_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <hiredis/hiredis.h>
#include <uv.h>

typedef enum {
    DB_OK = 0,
    DB_ERR_UNAVAILABLE, /* no usable connection (server down, reconnecting) */
    DB_ERR_TIMEOUT,     /* no answer within the configured timeout */
    DB_ERR_QUERY,       /* the server refused the statement (see sqlstate) */
    DB_ERR_OVERLOADED,  /* too much work queued on this loop */
    DB_ERR_CLOSED,      /* the pool is shutting down */
    DB_ERR_INDOUBT,     /* a batch that writes was sent, then its connection broke or timed out
                           before the answer: it may or may not have committed */
    DB_ERR_CANCELLED,   /* never sent: its caller no longer wanted it (see db_pg_submit_if) */
} db_status_t;

const char *db_status_name(db_status_t status);

struct addrinfo;
/* The first (IPv4 preferred) address of a uv_getaddrinfo result as text (both clients resolve host names
 * on libuv's thread pool, since libpq and hiredis would resolve them blocking). Returns 0,
 * or -1 with out set to "". */
int db_address_text(const struct addrinfo *res, char *out, size_t len);

/* ---- statements: every SQL text the server runs lives in statements.c ---- */

/* The columns each statement returns: read results by these names (DB_COL_<STMT>_<NAME>). */
#include "db/columns.h"

typedef enum {
    DB_STMT_PING = 0, /* health checks */
    DB_STMT_ECHO_INT, /* SELECT $1::int: health probes and pipeline tests (a bad value fails) */
    DB_STMT_NOTIFY,   /* pg_notify(channel, payload): wakes listeners (job workers) once the
                         batch commits, never if it fails */
    /* the job queue (src/jobs); jobs.c documents the parameters of each */
    DB_STMT_JOB_ENQUEUE,        /* insert (in the caller's batch: commits with it), wakes workers */
    DB_STMT_JOB_CLAIM,          /* lease up to N due jobs of a queue, FOR UPDATE SKIP LOCKED */
    DB_STMT_JOB_FINISH,         /* record the outcomes of a batch of leased jobs */
    DB_STMT_JOB_EXTEND,         /* renew every lease of a process */
    DB_STMT_JOB_REAP,           /* return jobs with an expired lease to their queue */
    DB_STMT_JOB_NEXT_DUE,       /* milliseconds until the next job of a queue is due */
    DB_STMT_JOB_GET,            /* one job as the contract's Job JSON */
    DB_STMT_JOB_LIST,           /* a page of jobs, newest first, filtered */
    DB_STMT_JOB_CANCEL,         /* queued or retrying -> cancelled */
    DB_STMT_JOB_RETRY,          /* failed or dead -> queued with a fresh attempt count */
    DB_STMT_JOB_RETRY_MATCHING, /* the same for every failed or dead job of a kind and queue */
    DB_STMT_JOB_RELEASE,        /* every running job of a lease owner back to its queue */
    DB_STMT_JOB_DEPTH,          /* active jobs per queue and state (gauges) */
    DB_STMT_JOB_DEAD,           /* dead jobs per queue and kind (gauge) */
    DB_STMT_JOB_PURGE,          /* delete old succeeded and cancelled jobs (retention) */
    DB_STMT_AUTH_PURGE, /* delete expired sessions, one-time tokens and revocations (a periodic job) */
    /* accounts (src/handlers/auth.c, me.c) */
    DB_STMT_USER_CREATE,        /* a new user; the caller's batch adds its token and email */
    DB_STMT_EMAIL_TOKEN_CREATE, /* a confirmation or reset token (hash) */
    DB_STMT_USER_CONFIRM,       /* use a confirmation token: the user is confirmed */
    DB_STMT_USER_LOGIN_LOOKUP,  /* what a login needs, by email */
    DB_STMT_USER_SET_HASH,      /* a re-hashed password (stronger parameters) */
    DB_STMT_REFRESH_CREATE,     /* a refresh token of a family */
    DB_STMT_AUTH_EVENT,         /* one audit record */
    DB_STMT_USER_AUTH,          /* a token's user: role, disabled, tokens_valid_after, JSON, jti revoked */
    DB_STMT_REFRESH_USE,        /* rotate a refresh token, or detect its reuse */
    DB_STMT_TOKEN_REVOKE,       /* an access token's jti, until it expires */
    DB_STMT_FAMILY_REVOKE,      /* end one session (refresh family) */
    DB_STMT_USER_REVOKE_ALL,    /* end every session and access token of a user */
    DB_STMT_EMAIL_REQUEST,      /* a confirmation or reset token and its email, if the account qualifies */
    DB_STMT_PASSWORD_RESET,     /* spend a reset token: new hash, every session ended */
    DB_STMT_USER_PASSWORD_GET,  /* a user's stored hash */
    DB_STMT_USER_PASSWORD_SET,  /* a changed password: new hash, every session ended */
    DB_STMT_USER_PATCH,         /* username, display name, bio */
    DB_STMT_USER_DELETE,        /* an account and (by cascade) its sessions and keys */
    DB_STMT_API_KEY_SET,        /* make or replace a user's key */
    DB_STMT_API_KEY_GET,
    DB_STMT_API_KEY_DELETE,
    DB_STMT_API_KEY_AUTH,      /* the user of a key (and its last use, at most once an interval) */
    DB_STMT_API_KEY_TOUCH,     /* a key's last use, for a key answered from the principal cache */
    DB_STMT_ADMIN_USER_LIST,   /* a page of users, newest first, by email or username prefix */
    DB_STMT_ADMIN_USER_GET,    /* one user and its role */
    DB_STMT_ADMIN_USER_UPDATE, /* role and disabled; disabling ends every session */
    /* files (src/handlers/files.c, the file.process job) */
    DB_STMT_FILE_CREATE,        /* a stored upload's row and its file.process job, within the quota */
    DB_STMT_FILE_GET,           /* one file (JSON and what serving its bytes needs) */
    DB_STMT_FILE_LIST,          /* a page of a user's files, newest first */
    DB_STMT_FILE_DELETE,        /* a file's row */
    DB_STMT_FILE_PROCESSED,     /* a file's analysis and state */
    DB_STMT_FILES_REMOVE_QUEUE, /* a files.remove job for every file of a user (account deletion) */
    DB_STMT_FILES_WITHOUT_ROW,  /* which of some file ids have no row (files.sweep) */
    /* rooms (src/handlers/rooms.c) */
    DB_STMT_ROOM_CREATE,         /* a room and its creator as its first member */
    DB_STMT_ROOM_LIST,           /* a page of the rooms a user is a member of, newest first */
    DB_STMT_ROOM_MEMBER,         /* is a user a member of a room? */
    DB_STMT_ROOM_MEMBER_ADD,     /* a member adds a user */
    DB_STMT_ROOM_MEMBER_LEAVE,   /* a member leaves */
    DB_STMT_ROOM_MESSAGE_CREATE, /* a member's message */
    DB_STMT_ROOM_MESSAGE_LIST,   /* a page of a room's messages, newest first */
#ifdef HYDRANT_TEST_HOOKS        /* only in hydrant_db_testhooks, for test_pg_pool */
    DB_STMT_ECHO_INT_SHARED,     /* SELECT $1::int, sharing segments */
    DB_STMT_SLEEP_MS,            /* pg_sleep($1 ms): a slow statement */
#endif
    DB_STMT_DEADLINE, /* fails once $1 (Unix seconds) has passed: ends every batch that writes */
    /* Idempotency-Key (src/http/idempotency.c) */
    DB_STMT_IDEM_CLAIM,   /* claim a key, or find the claim or answer it holds */
    DB_STMT_IDEM_FENCE,   /* in each write of a request holding a key: still ours? */
    DB_STMT_IDEM_STORE,   /* the answer */
    DB_STMT_IDEM_RELEASE, /* let go of a claim that changed nothing */
    DB_STMT__COUNT
} db_stmt_id_t;

typedef struct {
    const char *name; /* prepared statement name */
    const char *sql;
    int nparams;
    /* A read-only statement whose one-query batches may share a pipeline segment (one Sync)
     * with others submitted in the same loop iteration: PostgreSQL then answers them with
     * one write. If one of them fails, the rest of the segment fails with
     * DB_ERR_UNAVAILABLE. */
    int shares_sync;
    /* Changes nothing (shares_sync implies it). A batch with any other statement ends with
     * DB_STMT_DEADLINE, see db_pg_submit. */
    int read_only;
} db_stmt_def_t;

const db_stmt_def_t *db_stmt_get(db_stmt_id_t id);

/* ---- pipelined PostgreSQL pool (one per loop thread) ---- */

/* A libpq notice receiver (PQsetNoticeReceiver) for every connection of the process: the
 * server's warnings, and its last word before closing a connection ("FATAL:  terminating
 * connection due to administrator command"), through util_log at the level of their
 * severity, instead of libpq's default, a raw line on stderr. arg is unused. */
void db_pg_log_notice(void *arg, const PGresult *res);

typedef struct db_pg_pool db_pg_pool_t;

/* A value <= 0 takes the default: 1 connection (at most 64), 10000 queries in flight,
 * 10000 ms query timeout, 5000 ms connect timeout.
 *
 * What a failure means for a batch that writes: PostgreSQL's own statement_timeout, and a
 * deadline checked as the batch's last statement, both at 3/4 of query_timeout_ms, abort the
 * batch on the server before this client gives up on it, so a batch that is still running
 * (or not even read yet: a stalled backend) when the client times out can no longer commit.
 * Hence DB_ERR_TIMEOUT, DB_ERR_UNAVAILABLE and DB_ERR_OVERLOADED mean that nothing was
 * committed, and only DB_ERR_INDOUBT (the answer was lost: the batch may have committed
 * before its deadline) leaves the outcome open. The deadline compares this host's clock with
 * the database's: they must agree within a quarter of the query timeout (NTP does). */
typedef struct {
    const char *conninfo; /* URL or key=value; application_name is forced to "hydrant" */
    int connections;      /* pipelined connections in this pool */
    int max_in_flight;    /* queries queued or in flight on this loop before DB_ERR_OVERLOADED */
    int query_timeout_ms; /* a batch unanswered this long fails and its connection is reset */
    int connect_timeout_ms;
} db_pg_options_t;

typedef struct {
    db_status_t status;
    PGresult *const *results; /* one per query of the batch, when status is DB_OK */
    int nresults;
    const char *sqlstate;   /* for DB_ERR_QUERY: the failing statement's SQLSTATE */
    const char *constraint; /* for DB_ERR_QUERY: the violated constraint or index, or "" */
    const char *message;    /* for logs only, never for clients */
} db_reply_t;

typedef void (*db_pg_cb)(void *data, const db_reply_t *reply);

typedef struct {
    db_stmt_id_t stmt;
    int nparams;
    const char *const *values; /* text format; NULL value is SQL NULL */
    const int *lengths;        /* byte lengths of values not NUL-terminated, or NULL for
                                  NUL-terminated text (a NUL byte inside refuses the batch) */
} db_query_t;

/* Does the batch have a statement that is not read_only (one that may change something)? */
int db_stmts_write(const db_query_t *queries, int nqueries);

db_pg_pool_t *db_pg_pool_new(uv_loop_t *loop, const db_pg_options_t *options);

#define DB_PG_MAX_BATCH 64

/* Sends a batch of 1..DB_PG_MAX_BATCH queries as one pipeline segment: the batch runs as
 * one implicit transaction (all statements commit or none does), and its callback gets
 * every result. Parameters are copied before return. A statement failing with SQLSTATE
 * class 08 or 57P (server gone) reports DB_ERR_UNAVAILABLE, 57014 (statement_timeout) or a
 * missed deadline DB_ERR_TIMEOUT, anything else DB_ERR_QUERY. A batch with a statement that
 * is not read_only gets a DB_STMT_DEADLINE query appended (not among the results); if its
 * connection breaks or times out before the answer, it fails with DB_ERR_INDOUBT. */
int db_pg_submit(db_pg_pool_t *pool, const db_query_t *queries, int nqueries, db_pg_cb cb, void *data);
/* The same, for work whose caller may go away: batches are sent at the end of the loop
 * iteration (with every other batch of it, in order), and one for which wanted(data) then
 * says 0 is not sent at all but answered DB_ERR_CANCELLED. A request whose stream was reset
 * in the same read as its HEADERS (Rapid Reset) so costs the database nothing. */
int db_pg_submit_if(db_pg_pool_t *pool, const db_query_t *queries, int nqueries, db_pg_cb cb, void *data,
                    int (*wanted)(void *data));

/* Why the last db_pg_submit on this pool returned -1: DB_ERR_UNAVAILABLE (no connection
 * ready), DB_ERR_OVERLOADED (max_in_flight reached), DB_ERR_CLOSED, or DB_ERR_QUERY (the
 * batch itself is invalid: unknown statement, wrong parameter count, NUL in a parameter). */
db_status_t db_pg_last_error(const db_pg_pool_t *pool);

/* Connections currently able to take queries (for /health and /metrics). */
int db_pg_ready_connections(const db_pg_pool_t *pool);
int db_pg_total_connections(const db_pg_pool_t *pool);

/* Closes connections and handles; then, from the loop, fails everything pending with
 * DB_ERR_CLOSED, frees the pool and calls on_closed. Later submits return -1. */
void db_pg_pool_close(db_pg_pool_t *pool, void (*on_closed)(void *data), void *data);

/* ---- async Redis (one per loop thread) ---- */

typedef struct db_redis db_redis_t;

typedef struct {
    const char *url; /* redis://[:password@]host[:port][/db] */
    int command_timeout_ms;
    int connect_timeout_ms;
    int max_pending; /* commands pending before DB_ERR_OVERLOADED */
} db_redis_options_t;

/* A redis:// URL's parts (db_redis_url_parse): both clients, async and blocking, read it. */
typedef struct {
    char host[256];
    int port; /* 6379 when not given */
    char password[256];
    int db;
} db_redis_url_t;
/* redis://[[user]:password@]host[:port][/db] into out. Returns 0, or -1 when malformed. */
int db_redis_url_parse(const char *url, db_redis_url_t *out);

/* reply is NULL unless status is DB_OK; a Redis error reply arrives as DB_OK with
 * reply->type == REDIS_REPLY_ERROR. */
typedef void (*db_redis_cb)(void *data, db_status_t status, redisReply *reply);

db_redis_t *db_redis_new(uv_loop_t *loop, const db_redis_options_t *options);
int db_redis_command(db_redis_t *redis, db_redis_cb cb, void *data, int argc, const char **argv,
                     const size_t *argvlen);
/* For a subscriber: 1 once its SUBSCRIBE is confirmed on the current connection. */
int db_redis_is_ready(const db_redis_t *redis);
/* A connection SUBSCRIBEd to one channel (and reconnected, and subscribed again, as the
 * others): on_message gets each publication's payload (len bytes, not NUL-terminated), and
 * (NULL, 0) whenever the subscription is (re)established: publications made while it was
 * not were missed. It takes no commands (db_redis_command returns -1). */
typedef void (*db_redis_message_fn)(void *data, const char *payload, size_t len);
db_redis_t *db_redis_subscriber_new(uv_loop_t *loop, const db_redis_options_t *options, const char *channel,
                                    db_redis_message_fn on_message, void *data);
/* Drops the connection (it reconnects with backoff): for an owner that finds it silent. */
void db_redis_reconnect(db_redis_t *redis);
void db_redis_close(db_redis_t *redis, void (*on_closed)(void *data), void *data);

/* ---- notification events (contract: Realtime), published on either side ----
 *
 * Each user has a backlog in Redis: a counter (hydrant:rt:seq:<user>) that gives the user's
 * events their increasing ids, and a stream (hydrant:rt:log:<user>) whose entry ids are those
 * ids ("<id>-0"), capped with MAXLEN ~ DB_EVENTS_BACKLOG (Redis trims whole nodes, so at least
 * that many stay) for Last-Event-ID resume; every event is also PUBLISHed on
 * DB_EVENTS_CHANNEL as "<user> <id> <event> <data>". One script (events.c) does it, run by
 * the event loops (async, src/handlers/events.c) and by job workers and the command line
 * (blocking, db_events_pub_t, events_pub.c): the script's text exists once.
 *
 * Events about one object (a job, a file) carry the object's version, a counter its row
 * bumps in the very UPDATE that changes it: the script keeps the newest version published per
 * object (hydrant:rt:ver:<object>, for an hour) and drops an event older than it, so that
 * the API server and a worker publishing about one job at once cannot deliver its changes out
 * of order. */
#define DB_EVENTS_BACKLOG  1000
#define DB_EVENTS_CHANNEL  "hydrant:rt:events"
#define DB_EVENTS_PER_EVAL 64 /* users per EVAL: bounds one script's time on Redis */
/* session.revoked's session_id when every session of the user ended */
#define DB_EVENTS_ALL_SESSIONS "*"
/* One EVAL's arguments, pointing into this struct and into the strings given. */
typedef struct {
    const char *argv[3 + 2 * DB_EVENTS_PER_EVAL + 1 + 4 + DB_EVENTS_PER_EVAL];
    int argc;
    char keys[2 * DB_EVENTS_PER_EVAL + 1][96];
    char nkeys[16], cap[16], version[24];
} db_events_eval_t;
/* The EVAL of event (name) with data (one JSON object) for users[0..n), n <=
 * DB_EVENTS_PER_EVAL; object (e.g. "job:<id>") NULL for no ordering guard, else its version
 * (>= 0). Ids longer than the keys allow make the call return -1. */
int db_events_eval(db_events_eval_t *e, const char *event, const char *data, const char *object,
                   long long version, const char *const *users, int n);

/* A blocking publisher for a thread that may block (a job worker, the command line): its own
 * hiredis connection, made on first use. Without Redis an event is lost (what it tells of
 * stands), the outage is logged once, and connecting is tried again with backoff, never more
 * often. One per thread. */
typedef struct db_events_pub db_events_pub_t;
/* NULL when out of memory or url (redis.url, may be NULL: publishing is then off) is
 * malformed. timeout_ms bounds connecting and each command. who names it in logs. */
db_events_pub_t *db_events_pub_new(const char *url, int timeout_ms, const char *who);
/* Publishes to every user, DB_EVENTS_PER_EVAL per EVAL. Returns 0; 1 when the ordering guard
 * dropped it (a newer version of the object was published); -1 when lost. */
int db_events_pub(db_events_pub_t *p, const char *event, const char *data, const char *object,
                  long long version, const char *const *users, int n);
/* The same in two steps, for a batch in one round trip: add queues an event (sent with the
 * next flush; -1 when it is lost already), flush sends what was added and reads the answers:
 * -1 when any was lost, else 1 when the guard dropped any, else 0. */
int db_events_pub_add(db_events_pub_t *p, const char *event, const char *data, const char *object,
                      long long version, const char *const *users, int n);
int db_events_pub_flush(db_events_pub_t *p);
void db_events_pub_free(db_events_pub_t *p);

/* ---- LISTEN on a thread of its own (one per process and channel) ---- */

typedef struct db_listener db_listener_t;

typedef struct {
    const char *conninfo;
    const char *application_name; /* how pg_stat_activity shows the connection */
    const char *channel;
    int connect_timeout_ms;
    /* Both run on the listener's thread. on_state(data, 1) once LISTEN is in place (after
     * every reconnect: notifications sent meanwhile are lost), on_state(data, 0) as soon as
     * the connection is found broken, before anything else is tried. */
    void (*on_notify)(void *data, const char *payload);
    void (*on_state)(void *data, int live);
    void *data;
} db_listener_options_t;

/* Starts the thread; it connects (nonblocking libpq driven by poll), LISTENs, reconnects with
 * backoff, and sends a keepalive query after 5 s of silence so that a connection that died
 * without a word is noticed. NULL with a message when the thread cannot start. */
db_listener_t *db_listener_start(const db_listener_options_t *options, char *err, size_t errlen);
/* Stops and joins the thread (on_state(data, 0) comes first if it was live), then frees. */
void db_listener_stop(db_listener_t *listener);

#endif
