/*
 * One asynchronous Redis connection per loop, on hiredis 0.14's async API and our own
 * libuv adapter (the bundled one ignores poll errors, so a broken socket could hang).
 *
 * hiredis 0.14 has no timeouts: every command is wrapped in a record kept in our own FIFO
 * (Redis answers in order), and a watchdog fails commands that waited too long, then drops
 * the connection. A dropped or refused connection is retried with backoff. hiredis frees
 * its context after the disconnect callback (or, for a failed connect, after the connect
 * callback, without calling the disconnect one): both paths clear r->ac.
 *
 * A subscriber (db_redis_subscriber_new) is the same connection that, once ready, SUBSCRIBEs
 * to one channel and takes no commands. hiredis 0.14 hands a reply in subscribed mode to the
 * oldest pending command before it looks at subscriptions, so a PING would swallow a
 * publication: a subscriber is never pinged; its owner proves it alive by what it hears
 * (and TCP keepalive finds a dead peer).
 */
#include "db/db.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_WATCHDOG_MS  50
#define REDIS_IDLE_PING_MS 5000

typedef struct redis_cmd {
    struct redis_cmd *next;
    db_redis_cb cb; /* NULL for internal commands (handshake, ping) */
    void *data;
    uint64_t sent_at;
    int answered; /* the user callback already ran (timeout) */
    int handshake;
} redis_cmd_t;

typedef enum { REDIS_DOWN, REDIS_RESOLVING, REDIS_CONNECTING, REDIS_HANDSHAKE, REDIS_READY } redis_state_t;

struct db_redis {
    uv_loop_t *loop;
    db_redis_options_t options;
    db_redis_url_t url;
    redisAsyncContext *ac;
    redis_state_t state;
    uv_poll_t *poll;
    int events;
    redis_cmd_t *head, *tail;
    int pending;
    int handshake_left;
    uint64_t connect_started, last_activity;
    uv_timer_t watchdog, retry, deferred;
    uv_getaddrinfo_t dns;
    int failures; /* connect attempts failed in a row (the backoff's); 0 once connected */
    int drop_requested;
    int open_handles, pending_dns, closing;
    void (*on_closed)(void *data);
    void *closed_data;
    char *channel; /* a subscriber's channel, else NULL */
    db_redis_message_fn on_message;
    void *message_data;
    int subscribed; /* the SUBSCRIBE was confirmed on the current connection */
};

static void redis_connect(db_redis_t *r, const char *ip);
static void redis_start(db_redis_t *r);
static void redis_request_drop(db_redis_t *r);

/* --------------------------------------------------------------- URL ---- */

int db_redis_url_parse(const char *url, db_redis_url_t *r)
{
    static const char scheme[] = "redis://";
    memset(r, 0, sizeof(*r));
    if (url == NULL || strncmp(url, scheme, sizeof(scheme) - 1) != 0 || strlen(url) > 1024)
        return -1;
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon != NULL ? colon + 1 : p; /* "user:pass@" or "pass@" */
        if ((size_t)(at - pw) >= sizeof(r->password))
            return -1;
        memcpy(r->password, pw, (size_t)(at - pw));
        r->password[at - pw] = '\0';
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (host_end == NULL)
            return -1;
        p++;
    } else {
        host_end = p + strcspn(p, ":/");
    }
    size_t hlen = (size_t)(host_end - p);
    if (hlen == 0 || hlen >= sizeof(r->host))
        return -1;
    memcpy(r->host, p, hlen);
    r->host[hlen] = '\0';
    p = host_end + (*host_end == ']');
    r->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            return -1;
        r->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (end == p + 1 || *end != '\0' || db < 0 || db > 1000)
            return -1;
        r->db = (int)db;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------ libuv adapter ---- */

static void redis_finish_if_closed(db_redis_t *r)
{
    if (!r->closing || r->open_handles > 0 || r->pending_dns > 0)
        return;
    void (*on_closed)(void *) = r->on_closed;
    void *data = r->closed_data;
    free(r->channel);
    free(r);
    if (on_closed != NULL)
        on_closed(data);
}

static void redis_on_handle_closed(uv_handle_t *handle)
{
    db_redis_t *r = handle->data;
    r->open_handles--;
    redis_finish_if_closed(r);
}

static void redis_on_poll_closed(uv_handle_t *handle)
{
    db_redis_t *r = handle->data;
    free(handle);
    r->open_handles--;
    redis_finish_if_closed(r);
}

static void redis_on_poll(uv_poll_t *handle, int status, int events);

static void redis_update_poll(db_redis_t *r, int events)
{
    if (r->ac == NULL)
        return;
    if (r->poll == NULL) {
        r->poll = malloc(sizeof(*r->poll));
        if (r->poll == NULL || uv_poll_init(r->loop, r->poll, r->ac->c.fd) != 0) {
            free(r->poll);
            r->poll = NULL;
            redis_request_drop(r);
            return;
        }
        r->poll->data = r;
        r->open_handles++;
        r->events = 0;
    }
    if (events == r->events)
        return;
    r->events = events;
    if (events == 0)
        uv_poll_stop(r->poll);
    else
        uv_poll_start(r->poll, events, redis_on_poll);
}

static void redis_add_read(void *p)
{
    db_redis_t *r = p;
    redis_update_poll(r, r->events | UV_READABLE);
}

static void redis_del_read(void *p)
{
    db_redis_t *r = p;
    redis_update_poll(r, r->events & ~UV_READABLE);
}

static void redis_add_write(void *p)
{
    db_redis_t *r = p;
    redis_update_poll(r, r->events | UV_WRITABLE);
}

static void redis_del_write(void *p)
{
    db_redis_t *r = p;
    redis_update_poll(r, r->events & ~UV_WRITABLE);
}

static void redis_cleanup(void *p)
{
    db_redis_t *r = p;
    if (r->poll == NULL)
        return;
    uv_poll_stop(r->poll);
    uv_close((uv_handle_t *)r->poll, redis_on_poll_closed);
    r->poll = NULL;
    r->events = 0;
}

/* -------------------------------------------------------- connection ---- */

static void redis_on_retry(uv_timer_t *timer)
{
    redis_start(timer->data);
}

/* 50 ms doubling to 2 s, plus up to 20% jitter so that many loops do not reconnect in step. */
static void redis_schedule_retry(db_redis_t *r)
{
    if (r->closing)
        return;
    int64_t delay = util_backoff_next(&UTIL_BACKOFF_RECONNECT, &r->failures);
    uv_timer_start(&r->retry, redis_on_retry, (uint64_t)delay, 0);
}

/* Drops the connection now: hiredis runs every pending callback with a NULL reply (our
 * wrappers turn that into DB_ERR_UNAVAILABLE). Never called from inside a hiredis callback. */
static void redis_drop(db_redis_t *r)
{
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->state = REDIS_DOWN;
    r->subscribed = 0;
    r->drop_requested = 0;
    if (ac != NULL)
        redisAsyncFree(ac);
    redis_cleanup(r);
    redis_schedule_retry(r);
}

static void redis_on_deferred(uv_timer_t *timer)
{
    db_redis_t *r = timer->data;
    if (r->drop_requested)
        redis_drop(r);
}

static void redis_request_drop(db_redis_t *r)
{
    r->drop_requested = 1;
    uv_timer_start(&r->deferred, redis_on_deferred, 0, 0);
}

static void redis_on_poll(uv_poll_t *handle, int status, int events)
{
    db_redis_t *r = handle->data;
    redisAsyncContext *ac = r->ac;
    if (ac == NULL)
        return;
    if (status < 0) {
        redis_drop(r);
        return;
    }
    if (events & UV_READABLE)
        redisAsyncHandleRead(ac);
    /* The read may have freed the context (error or remote close). */
    if ((events & UV_WRITABLE) && r->ac == ac)
        redisAsyncHandleWrite(ac);
}

static redis_cmd_t *redis_pop(db_redis_t *r)
{
    redis_cmd_t *cmd = r->head;
    if (cmd != NULL) {
        r->head = cmd->next;
        if (r->head == NULL)
            r->tail = NULL;
        r->pending--;
    }
    return cmd;
}

/* A subscriber's every publication, and the SUBSCRIBE's confirmation (which tells its owner
 * that what was published while it was away is lost to it). NULL when the context is freed. */
static void redis_on_publication(redisAsyncContext *ac, void *reply, void *privdata)
{
    db_redis_t *r = privdata;
    redisReply *rep = reply;
    if (rep == NULL || r->ac != ac || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        return;
    r->last_activity = uv_now(r->loop);
    const char *kind = rep->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        r->subscribed = 1;
        r->on_message(r->message_data, NULL, 0);
    } else if (strcmp(kind, "message") == 0 && rep->element[2]->type == REDIS_REPLY_STRING) {
        r->on_message(r->message_data, rep->element[2]->str, rep->element[2]->len);
    }
}

static void redis_ready(db_redis_t *r)
{
    r->state = REDIS_READY;
    r->failures = 0;
    if (r->channel == NULL)
        return;
    const char *argv[] = {"SUBSCRIBE", r->channel};
    if (redisAsyncCommandArgv(r->ac, redis_on_publication, r, 2, argv, NULL) != REDIS_OK)
        redis_request_drop(r);
}

/* hiredis calls this once per command, with NULL when the connection failed. */
static void redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    db_redis_t *r = ac->data;
    redis_cmd_t *cmd = privdata;
    redis_cmd_t *popped = redis_pop(r);
    (void)popped; /* replies come in order, so it is cmd */
    r->last_activity = uv_now(r->loop);
    redisReply *rep = reply;
    if (cmd->handshake) {
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            util_log(UTIL_LOG_WARN, "redis", "handshake refused: %.200s",
                     rep != NULL ? rep->str : "no reply");
            redis_request_drop(r);
        } else if (--r->handshake_left == 0 && r->state == REDIS_HANDSHAKE) {
            redis_ready(r);
        }
    } else if (cmd->cb != NULL && !cmd->answered) {
        cmd->cb(cmd->data, rep != NULL ? DB_OK : (r->closing ? DB_ERR_CLOSED : DB_ERR_UNAVAILABLE), rep);
    }
    free(cmd);
}

static int redis_send(db_redis_t *r, redis_cmd_t *cmd, int argc, const char **argv, const size_t *argvlen)
{
    if (redisAsyncCommandArgv(r->ac, redis_on_reply, cmd, argc, argv, argvlen) != REDIS_OK)
        return -1;
    cmd->sent_at = uv_now(r->loop);
    cmd->next = NULL;
    if (r->tail != NULL)
        r->tail->next = cmd;
    else
        r->head = cmd;
    r->tail = cmd;
    r->pending++;
    return 0;
}

static void redis_send_internal(db_redis_t *r, int handshake, int argc, const char **argv)
{
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL || (cmd->handshake = handshake, redis_send(r, cmd, argc, argv, NULL)) != 0) {
        free(cmd);
        redis_request_drop(r);
    }
}

static void redis_on_connect(const redisAsyncContext *ac, int status)
{
    db_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees this context after we return, without a disconnect callback. */
        if (r->ac == ac) {
            r->ac = NULL;
            r->state = REDIS_DOWN;
            redis_schedule_retry(r);
        }
        return;
    }
    r->state = REDIS_HANDSHAKE;
    r->handshake_left = 0;
    redisEnableKeepAlive(&r->ac->c);
    char db[16];
    snprintf(db, sizeof(db), "%d", r->url.db);
    if (r->url.password[0] != '\0') {
        r->handshake_left++;
        redis_send_internal(r, 1, 2, (const char *[]){"AUTH", r->url.password});
    }
    if (r->url.db != 0) {
        r->handshake_left++;
        redis_send_internal(r, 1, 2, (const char *[]){"SELECT", db});
    }
    if (r->handshake_left == 0)
        redis_ready(r);
}

static void redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    db_redis_t *r = ac->data;
    (void)status;
    if (r->ac != ac)
        return; /* we dropped it ourselves */
    r->ac = NULL;
    r->state = REDIS_DOWN;
    r->subscribed = 0;
    redis_schedule_retry(r);
}

static void redis_connect(db_redis_t *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->url.port);
    r->connect_started = uv_now(r->loop);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        r->state = REDIS_DOWN;
        redis_schedule_retry(r);
        return;
    }
    r->ac = ac;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = redis_add_read;
    ac->ev.delRead = redis_del_read;
    ac->ev.addWrite = redis_add_write;
    ac->ev.delWrite = redis_del_write;
    ac->ev.cleanup = redis_cleanup;
    r->state = REDIS_CONNECTING;
    redisAsyncSetConnectCallback(ac, redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
    /* The connect completes when the socket turns writable. */
    redis_add_write(r);
}

static void redis_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    db_redis_t *r = req->data;
    r->pending_dns--;
    char ip[INET6_ADDRSTRLEN] = "";
    if (status == 0)
        db_address_text(res, ip, sizeof(ip));
    uv_freeaddrinfo(res);
    if (r->closing) {
        redis_finish_if_closed(r);
    } else if (ip[0] == '\0') {
        r->state = REDIS_DOWN;
        redis_schedule_retry(r);
    } else {
        redis_connect(r, ip);
    }
}

/* Host names are resolved on libuv's thread pool; hiredis would resolve them blocking. */
static void redis_start(db_redis_t *r)
{
    unsigned char buf[16];
    if (r->closing)
        return;
    r->connect_started = uv_now(r->loop);
    if (inet_pton(AF_INET, r->url.host, buf) == 1 || inet_pton(AF_INET6, r->url.host, buf) == 1) {
        redis_connect(r, r->url.host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    r->dns.data = r;
    r->state = REDIS_RESOLVING;
    if (uv_getaddrinfo(r->loop, &r->dns, redis_on_resolved, r->url.host, NULL, &hints) != 0) {
        r->state = REDIS_DOWN;
        redis_schedule_retry(r);
        return;
    }
    r->pending_dns++;
}

/* Fails commands that waited too long, abandons slow connects, pings idle connections. */
static void redis_on_watchdog(uv_timer_t *timer)
{
    db_redis_t *r = timer->data;
    uint64_t now = uv_now(r->loop);
    int stuck = 0;
    for (redis_cmd_t *cmd = r->head; cmd != NULL; cmd = cmd->next) {
        if (now - cmd->sent_at <= (uint64_t)r->options.command_timeout_ms)
            break; /* younger ones follow */
        if (!cmd->answered && cmd->cb != NULL)
            cmd->cb(cmd->data, DB_ERR_TIMEOUT, NULL);
        cmd->answered = 1;
        stuck = 1;
    }
    int connecting = r->state == REDIS_CONNECTING || r->state == REDIS_HANDSHAKE;
    if (stuck || (connecting && now - r->connect_started > (uint64_t)r->options.connect_timeout_ms)) {
        redis_drop(r);
        return;
    }
    if (r->channel == NULL && r->state == REDIS_READY && r->head == NULL &&
        now - r->last_activity > REDIS_IDLE_PING_MS) {
        r->last_activity = now;
        redis_send_internal(r, 0, 1, (const char *[]){"PING"});
    }
}

/* ------------------------------------------------------------- public ---- */

static db_redis_t *redis_new(uv_loop_t *loop, const db_redis_options_t *options, const char *channel,
                             db_redis_message_fn on_message, void *data)
{
    db_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (db_redis_url_parse(options->url, &r->url) != 0) {
        util_log(UTIL_LOG_ERROR, "redis", "redis url is not redis://[:password@]host[:port][/db]");
        free(r);
        return NULL;
    }
    if (channel != NULL && (r->channel = strdup(channel)) == NULL) {
        free(r);
        return NULL;
    }
    r->on_message = on_message;
    r->message_data = data;
    r->loop = loop;
    r->options = *options;
    r->options.url = NULL; /* not kept: the parts are */
    if (r->options.max_pending <= 0)
        r->options.max_pending = 4096;
    uv_timer_init(loop, &r->watchdog);
    uv_timer_init(loop, &r->retry);
    uv_timer_init(loop, &r->deferred);
    r->watchdog.data = r->retry.data = r->deferred.data = r;
    r->open_handles = 3;
    r->last_activity = uv_now(loop);
    uv_timer_start(&r->watchdog, redis_on_watchdog, REDIS_WATCHDOG_MS, REDIS_WATCHDOG_MS);
    redis_start(r);
    return r;
}

db_redis_t *db_redis_new(uv_loop_t *loop, const db_redis_options_t *options)
{
    return redis_new(loop, options, NULL, NULL, NULL);
}

db_redis_t *db_redis_subscriber_new(uv_loop_t *loop, const db_redis_options_t *options, const char *channel,
                                    db_redis_message_fn on_message, void *data)
{
    return redis_new(loop, options, channel, on_message, data);
}

void db_redis_reconnect(db_redis_t *r)
{
    if (r->ac != NULL && !r->closing)
        redis_request_drop(r);
}

int db_redis_command(db_redis_t *r, db_redis_cb cb, void *data, int argc, const char **argv,
                     const size_t *argvlen)
{
    if (r->state != REDIS_READY || r->ac == NULL || r->closing || r->channel != NULL ||
        r->pending >= r->options.max_pending)
        return -1;
    redis_cmd_t *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return -1;
    cmd->cb = cb;
    cmd->data = data;
    if (redis_send(r, cmd, argc, argv, argvlen) != 0) {
        free(cmd);
        return -1;
    }
    return 0;
}

int db_redis_is_ready(const db_redis_t *r)
{
    return r->state == REDIS_READY && (r->channel == NULL || r->subscribed);
}

void db_redis_close(db_redis_t *r, void (*on_closed)(void *data), void *data)
{
    r->closing = 1;
    r->on_closed = on_closed;
    r->closed_data = data;
    if (r->state == REDIS_RESOLVING)
        uv_cancel((uv_req_t *)&r->dns);
    redis_drop(r);
    uv_close((uv_handle_t *)&r->watchdog, redis_on_handle_closed);
    uv_close((uv_handle_t *)&r->retry, redis_on_handle_closed);
    uv_close((uv_handle_t *)&r->deferred, redis_on_handle_closed);
}
