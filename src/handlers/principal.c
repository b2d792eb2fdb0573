/*
 * The principal cache's process side (docs/ARCHITECTURE.md, "The principal cache"): one
 * LISTEN connection per process on channel hydrant_principal, whose notifications (sent by
 * migration 0007's trigger on users, and by logout for a revoked jti) go into the process's
 * invalidation log; one cache per loop thread, created on the thread's first authenticated
 * request and freed when the thread ends.
 *
 * Fail closed: the caches are used only while the listener is live. Its state is a
 * generation number, odd while live: a loop that sees it change empties its cache, and a
 * fill is kept only when the generation it was asked under is still the current one and no
 * invalidation of that user was pushed since (the database may have answered with the row
 * as it was before a revocation whose notification arrived first).
 *
 * API keys (docs/PERFORMANCE.md, section 6) go through the same entries: a key's hash is one
 * of its user's verified credentials, found through the loop's key map, and migration 0011's
 * trigger on api_keys notifies the user when a key is made, replaced or deleted. A hit skips
 * the statement that writes the key's last use, so it sends that write itself (without
 * waiting for it) when its loop has not for auth.api-key-last-used-interval.
 */
#include "handlers/handlers.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PRINCIPAL_CHANNEL   "hydrant_principal"
#define PRINCIPAL_LOG_SLOTS 4096 /* invalidations a loop may fall behind before it empties its cache */
#define PRINCIPAL_SLOTS     64   /* loops with counters of their own (more share the last) */
#define PRINCIPAL_ECHO_MS   50   /* the longest a change's answer waits to hear its notification */
#define PRINCIPAL_METRICS   9    /* summed over the loops' counters */

/* One loop's, alone on its cache lines: each loop writes its own on every lookup. */
typedef struct {
    _Alignas(64) _Atomic uint64_t hits;
    _Atomic uint64_t misses, bypassed, invalidated, evictions, entries, keys, key_evictions, key_touches;
} principal_counters_t;

struct handlers_principals {
    size_t max_entries;
    uint64_t ttl_ms;
    uint64_t touch_ms; /* auth.api-key-last-used-interval */
    auth_pcache_log_t *log;
    db_listener_t *listener;
    _Atomic uint64_t gen;           /* odd while the listener is live */
    _Atomic uint64_t down_since_ms; /* when it went down (monotonic), 0 while live */
    _Atomic uint64_t down_ms;       /* bypass time before down_since_ms */
    _Atomic uint64_t notifications;
    pthread_key_t key; /* frees a loop thread's principal_loop_t when the thread ends */
    atomic_int nslots;
    principal_counters_t slots[PRINCIPAL_SLOTS];
};

/* One loop thread's cache and where it is in the log; only that thread touches it. */
typedef struct {
    handlers_principals_t *owner;
    auth_pcache_t *cache;
    uint64_t cursor, gen;
    principal_counters_t *counters;
} principal_loop_t;

static _Thread_local principal_loop_t *principal_tl;

static uint64_t principal_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void principal_count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* ---------------------------------------------------------- listener thread ---- */

static void principal_on_notify(void *data, const char *payload)
{
    handlers_principals_t *p = data;
    principal_count(&p->notifications, 1);
    auth_pcache_log_push(p->log, payload[0] != '\0' ? payload : AUTH_PCACHE_ALL, 1, principal_now_ms());
}

static void principal_on_state(void *data, int live)
{
    handlers_principals_t *p = data;
    uint64_t now = principal_now_ms();
    if (live) {
        uint64_t since = atomic_exchange(&p->down_since_ms, 0);
        principal_count(&p->down_ms, since != 0 && now > since ? now - since : 0);
    } else {
        atomic_store(&p->down_since_ms, now);
        /* Requests waiting to hear of their change will not: let them answer now. */
        auth_pcache_log_push(p->log, AUTH_PCACHE_ALL, 1, now);
    }
    /* Release: a loop that sees the new generation sees everything pushed before it. */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
}

/* ------------------------------------------------------------- loop side ---- */

static void principal_loop_free(void *arg)
{
    principal_loop_t *pl = arg;
    auth_pcache_free(pl->cache);
    free(pl);
}

static principal_loop_t *principal_loop(handlers_principals_t *p)
{
    if (principal_tl != NULL && principal_tl->owner == p)
        return principal_tl;
    principal_loop_t *pl = calloc(1, sizeof(*pl));
    if (pl == NULL || (pl->cache = auth_pcache_new(p->max_entries)) == NULL) {
        free(pl);
        return NULL;
    }
    pl->owner = p;
    pl->cursor = auth_pcache_log_head(p->log);
    pl->gen = atomic_load_explicit(&p->gen, memory_order_acquire);
    int slot = atomic_fetch_add(&p->nslots, 1);
    pl->counters = &p->slots[slot < PRINCIPAL_SLOTS ? slot : PRINCIPAL_SLOTS - 1];
    pthread_setspecific(p->key, pl);
    principal_tl = pl;
    return pl;
}

/* What the metrics show of the loop's cache's size. */
static void principal_gauges(principal_loop_t *pl)
{
    principal_counters_t *c = pl->counters;
    atomic_store_explicit(&c->entries, auth_pcache_count(pl->cache), memory_order_relaxed);
    atomic_store_explicit(&c->evictions, auth_pcache_evictions(pl->cache), memory_order_relaxed);
    atomic_store_explicit(&c->keys, auth_pcache_key_count(pl->cache), memory_order_relaxed);
    atomic_store_explicit(&c->key_evictions, auth_pcache_key_evictions(pl->cache), memory_order_relaxed);
}

/* Applies what happened since the loop last looked. Returns 1 when the cache may be used
 * (the listener is live), and the generation in *gen. */
static int principal_sync(handlers_principals_t *p, principal_loop_t *pl, uint64_t *gen)
{
    *gen = atomic_load_explicit(&p->gen, memory_order_acquire);
    size_t forgotten = 0;
    if (*gen != pl->gen) {
        forgotten += auth_pcache_clear(pl->cache);
        pl->gen = *gen;
    }
    forgotten += auth_pcache_log_apply(p->log, &pl->cursor, pl->cache);
    if (forgotten > 0)
        principal_count(&pl->counters->invalidated, forgotten);
    principal_gauges(pl);
    return (*gen & 1) != 0;
}

static handlers_principals_t *principal_of(const http_request_t *r)
{
    return ((const handlers_app_t *)r->app)->principals;
}

/* The loop's cache, synced, when it may answer; NULL (counted as a bypass when the listener
 * is down) when the caller must ask the database, and may not keep its answer. */
static principal_loop_t *principal_begin(http_request_t *r, handlers_principal_ticket_t *ticket)
{
    handlers_principals_t *p = principal_of(r);
    memset(ticket, 0, sizeof(*ticket));
    principal_loop_t *pl = p != NULL ? principal_loop(p) : NULL;
    if (pl == NULL)
        return NULL;
    if (!principal_sync(p, pl, &ticket->gen)) {
        principal_count(&pl->counters->bypassed, 1);
        return NULL;
    }
    ticket->head = auth_pcache_log_head(p->log);
    ticket->asked_ms = r->start_us / 1000;
    return pl;
}

/* A hit into user (claims zeroed: a key's; the caller sets a token's). 0 when out of memory. */
static int principal_hit(principal_loop_t *pl, const auth_principal_t *hit, handlers_user_t *user)
{
    if ((user->user_json = strdup(hit->user_json)) == NULL)
        return 0;
    /* Whole arrays, NUL-terminated by the cache: no printf on a hit (it showed in /me's
     * profile). */
    _Static_assert(sizeof(user->id) >= sizeof(hit->user_id) && sizeof(user->role) >= sizeof(hit->role),
                   "the cache's fields fit the user's");
    memcpy(user->id, hit->user_id, sizeof(hit->user_id));
    memcpy(user->role, hit->role, sizeof(hit->role));
    memset(&user->claims, 0, sizeof(user->claims));
    principal_count(&pl->counters->hits, 1);
    return 1;
}

static int principal_miss(principal_loop_t *pl, handlers_principal_ticket_t *ticket)
{
    principal_count(&pl->counters->misses, 1);
    ticket->usable = 1;
    return 0;
}

int handlers_principal_lookup(http_request_t *r, const auth_claims_t *claims, handlers_user_t *user,
                              handlers_principal_ticket_t *ticket)
{
    principal_loop_t *pl = principal_begin(r, ticket);
    if (pl == NULL)
        return 0;
    const auth_principal_t *hit = auth_pcache_get(pl->cache, claims->sub, claims->jti, ticket->asked_ms);
    /* A token from before the user's tokens_valid_after goes to the database, which refuses it. */
    if (hit != NULL &&
        !(isfinite(hit->tokens_valid_after) && (double)claims->iat <= floor(hit->tokens_valid_after)) &&
        principal_hit(pl, hit, user)) {
        user->claims = *claims;
        return 1;
    }
    return principal_miss(pl, ticket);
}

static void principal_touched(void *data, const db_reply_t *reply)
{
    (void)data;
    (void)reply; /* lost: the next hit after the interval, or the next miss, writes it */
}

int handlers_principal_lookup_key(http_request_t *r, const char *key_hash, handlers_user_t *user,
                                  handlers_principal_ticket_t *ticket)
{
    principal_loop_t *pl = principal_begin(r, ticket);
    if (pl == NULL)
        return 0;
    int touch = 0;
    const auth_principal_t *hit =
        auth_pcache_get_key(pl->cache, key_hash, ticket->asked_ms, pl->owner->touch_ms, &touch);
    if (hit == NULL || !principal_hit(pl, hit, user))
        return principal_miss(pl, ticket);
    if (touch && r->loop->pg != NULL) {
        char interval[24];
        snprintf(interval, sizeof(interval), "%llu", (unsigned long long)(pl->owner->touch_ms / 1000));
        const char *values[] = {key_hash, interval};
        db_query_t q = {.stmt = DB_STMT_API_KEY_TOUCH, .nparams = 2, .values = values};
        if (db_pg_submit(r->loop->pg, &q, 1, principal_touched, NULL) == 0)
            principal_count(&pl->counters->key_touches, 1);
    }
    return 1;
}

/* The loop's cache when an answer asked under ticket may be kept: the listener has stayed live
 * and nothing about user_id was pushed since. The principal is filled but for its credential. */
static principal_loop_t *principal_keep(http_request_t *r, const handlers_principal_ticket_t *ticket,
                                        const char *user_id, const char *role, double tokens_valid_after,
                                        const char *user_json, auth_principal_t *principal)
{
    handlers_principals_t *p = principal_of(r);
    principal_loop_t *pl = p != NULL && ticket->usable ? principal_loop(p) : NULL;
    uint64_t gen;
    if (pl == NULL || !principal_sync(p, pl, &gen) || gen != ticket->gen ||
        auth_pcache_log_touched(p->log, ticket->head, user_id))
        return NULL;
    *principal = (auth_principal_t){.tokens_valid_after = tokens_valid_after, .user_json = user_json};
    size_t id_len = strlen(user_id);
    if (id_len >= sizeof(principal->user_id))
        return NULL; /* not one of our ids (they are UUIDs): never a key that could be cut short */
    memcpy(principal->user_id, user_id, id_len + 1);
    snprintf(principal->role, sizeof(principal->role), "%s", role);
    return pl;
}

void handlers_principal_fill(http_request_t *r, const handlers_principal_ticket_t *ticket,
                             const auth_claims_t *claims, const char *role, double tokens_valid_after,
                             const char *user_json)
{
    auth_principal_t principal;
    principal_loop_t *pl =
        principal_keep(r, ticket, claims->sub, role, tokens_valid_after, user_json, &principal);
    if (pl == NULL)
        return;
    /* The row was read no earlier than the request asked: expiry counts from then. */
    auth_pcache_put(pl->cache, &principal, claims->jti, ticket->asked_ms + pl->owner->ttl_ms);
    principal_gauges(pl);
}

void handlers_principal_fill_key(http_request_t *r, const handlers_principal_ticket_t *ticket,
                                 const char *key_hash, const char *user_id, const char *role,
                                 double tokens_valid_after, const char *user_json)
{
    auth_principal_t principal;
    principal_loop_t *pl =
        principal_keep(r, ticket, user_id, role, tokens_valid_after, user_json, &principal);
    if (pl == NULL)
        return;
    /* The statement wrote the key's last use, or found it written within the interval. */
    auth_pcache_put_key(pl->cache, &principal, key_hash, ticket->asked_ms + pl->owner->ttl_ms,
                        ticket->asked_ms);
    principal_gauges(pl);
}

void handlers_principal_forget(http_request_t *r, const char *user_id)
{
    handlers_principals_t *p = principal_of(r);
    if (p != NULL)
        auth_pcache_log_push(p->log, user_id, 0, principal_now_ms());
}

/* A change's answer, held until this process's listener hears the change's notification. */
typedef struct {
    auth_pcache_log_t *log;
    char user_id[40];
    uint64_t since_ms;
    int status;
    char *user_json; /* {"user": user_json}; NULL: body, or no body when that is NULL too */
    json_t *body;
} principal_echo_t;

static void principal_echo_wait(void *arg)
{
    principal_echo_t *e = arg;
    auth_pcache_log_wait_heard(e->log, e->user_id, e->since_ms, PRINCIPAL_ECHO_MS);
}

/* Answers, and frees body (stolen). */
static void principal_echo_answer(http_request_t *r, int status, const char *user_json, json_t *body)
{
    if (user_json != NULL)
        handlers_respond_user(r, status, user_json);
    else if (body != NULL)
        http_respond_json(r, status, body);
    else
        http_respond_empty(r, status);
}

static void principal_echo_done(http_request_t *r, void *arg)
{
    principal_echo_t *e = arg;
    principal_echo_answer(r, e->status, e->user_json, e->body);
    free(e->user_json);
    free(e);
}

static void principal_changed(http_request_t *r, const char *user_id, int status, const char *user_json,
                              json_t *body)
{
    handlers_principals_t *p = principal_of(r);
    handlers_principal_forget(r, user_id);
    principal_echo_t *e = NULL;
    if (p != NULL && (atomic_load(&p->gen) & 1) && strlen(user_id) < sizeof(e->user_id))
        e = calloc(1, sizeof(*e));
    if (e != NULL) {
        e->log = p->log;
        memcpy(e->user_id, user_id, strlen(user_id) + 1);
        e->since_ms = r->start_us / 1000;
        e->status = status;
        e->user_json = user_json != NULL ? strdup(user_json) : NULL;
        e->body = body;
    }
    /* Without a live listener (or memory, or room on the pool) there is nothing to wait for. */
    if (e == NULL || (user_json != NULL && e->user_json == NULL) ||
        http_cpu(r, principal_echo_wait, principal_echo_done, e) != 0) {
        if (e != NULL)
            free(e->user_json);
        free(e);
        principal_echo_answer(r, status, user_json, body);
    }
}

void handlers_principal_changed(http_request_t *r, const char *user_id, int status, const char *user_json)
{
    principal_changed(r, user_id, status, user_json, NULL);
}

void handlers_principal_changed_json(http_request_t *r, const char *user_id, int status, json_t *body)
{
    principal_changed(r, user_id, status, NULL, body);
}

/* ------------------------------------------------------------ the process ---- */

int handlers_principals_start(handlers_app_t *app, char *err, size_t errlen)
{
    const cfg_t *cfg = app->cfg;
    if (cfg->auth.principal_cache_entries <= 0)
        return 0; /* off: every request asks the database */
    /* Aligned for the counters' cache lines (calloc promises less). */
    size_t size = (sizeof(handlers_principals_t) + 63) / 64 * 64;
    handlers_principals_t *p = aligned_alloc(64, size);
    if (p != NULL)
        memset(p, 0, size);
    if (p == NULL || (p->log = auth_pcache_log_new(PRINCIPAL_LOG_SLOTS)) == NULL) {
        free(p);
        snprintf(err, errlen, "principal cache: out of memory");
        return -1;
    }
    p->max_entries = (size_t)cfg->auth.principal_cache_entries;
    p->ttl_ms = (uint64_t)cfg->auth.principal_cache_ttl_ms;
    p->touch_ms = (uint64_t)cfg->auth.api_key_last_used_interval_s * 1000;
    atomic_init(&p->gen, 0);
    atomic_init(&p->down_since_ms, principal_now_ms());
    pthread_key_create(&p->key, principal_loop_free);
    char name[64];
    snprintf(name, sizeof(name), "hydrant-principals:%ld", (long)getpid());
    db_listener_options_t o = {.conninfo = cfg->database.url,
                               .application_name = name,
                               .channel = PRINCIPAL_CHANNEL,
                               .connect_timeout_ms = cfg->database.connect_timeout_ms,
                               .on_notify = principal_on_notify,
                               .on_state = principal_on_state,
                               .data = p};
    app->principals = p;
    p->listener = db_listener_start(&o, err, errlen);
    if (p->listener == NULL) {
        handlers_principals_stop(app);
        return -1;
    }
    return 0;
}

void handlers_principals_stop(handlers_app_t *app)
{
    handlers_principals_t *p = app->principals;
    if (p == NULL)
        return;
    db_listener_stop(p->listener);
    pthread_key_delete(p->key);
    auth_pcache_log_free(p->log);
    free(p);
    app->principals = NULL;
}

char *handlers_principal_metrics_text(const handlers_app_t *app)
{
    handlers_principals_t *p = app->principals;
    util_buf_t out = {0};
    util_buf_printf(
        &out,
        "# HELP hydrant_principal_cache_enabled Whether auth.principal-cache-entries is above 0.\n"
        "# TYPE hydrant_principal_cache_enabled gauge\nhydrant_principal_cache_enabled %d\n",
        p != NULL);
    if (p == NULL)
        return util_buf_take(&out, NULL);
    uint64_t sum[PRINCIPAL_METRICS] = {0};
    int nslots = atomic_load(&p->nslots);
    for (int i = 0; i < (nslots < PRINCIPAL_SLOTS ? nslots : PRINCIPAL_SLOTS); i++) {
        const principal_counters_t *c = &p->slots[i];
        sum[0] += atomic_load_explicit(&c->hits, memory_order_relaxed);
        sum[1] += atomic_load_explicit(&c->misses, memory_order_relaxed);
        sum[2] += atomic_load_explicit(&c->bypassed, memory_order_relaxed);
        sum[3] += atomic_load_explicit(&c->invalidated, memory_order_relaxed);
        sum[4] += atomic_load_explicit(&c->evictions, memory_order_relaxed);
        sum[5] += atomic_load_explicit(&c->entries, memory_order_relaxed);
        sum[6] += atomic_load_explicit(&c->keys, memory_order_relaxed);
        sum[7] += atomic_load_explicit(&c->key_evictions, memory_order_relaxed);
        sum[8] += atomic_load_explicit(&c->key_touches, memory_order_relaxed);
    }
    uint64_t since = atomic_load(&p->down_since_ms), now = principal_now_ms();
    uint64_t down_ms = atomic_load(&p->down_ms) + (since != 0 && now > since ? now - since : 0);
    static const char *const names[PRINCIPAL_METRICS][3] = {
        {"hits_total", "counter", "Authenticated requests answered from a loop's cache."},
        {"misses_total", "counter", "Authenticated requests that asked the database (and filled the cache)."},
        {"bypassed_total", "counter",
         "Authenticated requests that asked the database because the listener was down."},
        {"invalidations_total", "counter",
         "Entries forgotten for a notification, a revocation or a listener reconnect."},
        {"evictions_total", "counter", "Entries pushed out by auth.principal-cache-entries."},
        {"entries", "gauge", "Entries held, all loops together."},
        {"keys", "gauge",
         "Slots of the loops' API key maps in use, all loops together (a slot whose user was forgotten "
         "stays until reused: it only leads to a miss)."},
        {"key_evictions_total", "counter", "API keys pushed out of a key map by another key (its bound)."},
        {"key_touches_total", "counter",
         "Writes of an API key's last use sent by cache hits (a hit skips the statement that writes it)."},
    };
    for (int i = 0; i < PRINCIPAL_METRICS; i++)
        util_buf_printf(&out,
                        "# HELP hydrant_principal_cache_%s %s\n# TYPE hydrant_principal_cache_%s %s\n"
                        "hydrant_principal_cache_%s %llu\n",
                        names[i][0], names[i][2], names[i][0], names[i][1], names[i][0],
                        (unsigned long long)sum[i]);
    util_buf_printf(
        &out,
        "# HELP hydrant_principal_cache_listening Whether the invalidation listener is live (else the "
        "caches are bypassed).\n# TYPE hydrant_principal_cache_listening gauge\n"
        "hydrant_principal_cache_listening %d\n"
        "# HELP hydrant_principal_cache_notifications_total Invalidations received by the listener.\n"
        "# TYPE hydrant_principal_cache_notifications_total counter\n"
        "hydrant_principal_cache_notifications_total %llu\n"
        "# HELP hydrant_principal_cache_bypass_seconds_total Time the listener was down.\n"
        "# TYPE hydrant_principal_cache_bypass_seconds_total counter\n"
        "hydrant_principal_cache_bypass_seconds_total %.3f\n",
        (int)(atomic_load(&p->gen) & 1), (unsigned long long)atomic_load(&p->notifications),
        (double)down_ms / 1000.0);
    return util_buf_take(&out, NULL);
}
