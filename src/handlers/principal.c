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

/* One loop's, alone on its cache lines: each loop writes its own on every lookup. */
typedef struct {
    _Alignas(64) _Atomic uint64_t hits;
    _Atomic uint64_t misses, bypassed, invalidated, evictions, entries;
} principal_counters_t;

struct handlers_principals {
    size_t max_entries;
    uint64_t ttl_ms;
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
    atomic_store_explicit(&pl->counters->entries, auth_pcache_count(pl->cache), memory_order_relaxed);
    atomic_store_explicit(&pl->counters->evictions, auth_pcache_evictions(pl->cache), memory_order_relaxed);
    return (*gen & 1) != 0;
}

static handlers_principals_t *principal_of(const http_request_t *r)
{
    return ((const handlers_app_t *)r->app)->principals;
}

int handlers_principal_lookup(http_request_t *r, const auth_claims_t *claims, handlers_user_t *user,
                              handlers_principal_ticket_t *ticket)
{
    handlers_principals_t *p = principal_of(r);
    memset(ticket, 0, sizeof(*ticket));
    principal_loop_t *pl = p != NULL ? principal_loop(p) : NULL;
    if (pl == NULL)
        return 0;
    uint64_t gen;
    if (!principal_sync(p, pl, &gen)) {
        principal_count(&pl->counters->bypassed, 1);
        return 0;
    }
    uint64_t now_ms = r->start_us / 1000;
    const auth_principal_t *hit = auth_pcache_get(pl->cache, claims->sub, claims->jti, now_ms);
    /* A token from before the user's tokens_valid_after goes to the database, which refuses it. */
    if (hit != NULL &&
        !(isfinite(hit->tokens_valid_after) && (double)claims->iat <= floor(hit->tokens_valid_after)) &&
        (user->user_json = strdup(hit->user_json)) != NULL) {
        /* Whole arrays, NUL-terminated by the cache: no printf on a hit (it showed in /me's
         * profile). */
        _Static_assert(sizeof(user->id) >= sizeof(hit->user_id) && sizeof(user->role) >= sizeof(hit->role),
                       "the cache's fields fit the user's");
        memcpy(user->id, hit->user_id, sizeof(hit->user_id));
        memcpy(user->role, hit->role, sizeof(hit->role));
        user->claims = *claims;
        principal_count(&pl->counters->hits, 1);
        return 1;
    }
    principal_count(&pl->counters->misses, 1);
    *ticket = (handlers_principal_ticket_t){
        .gen = gen, .head = auth_pcache_log_head(p->log), .asked_ms = now_ms, .usable = 1};
    return 0;
}

void handlers_principal_fill(http_request_t *r, const handlers_principal_ticket_t *ticket,
                             const auth_claims_t *claims, const char *role, double tokens_valid_after,
                             const char *user_json)
{
    handlers_principals_t *p = principal_of(r);
    principal_loop_t *pl = p != NULL && ticket->usable ? principal_loop(p) : NULL;
    uint64_t gen;
    if (pl == NULL || !principal_sync(p, pl, &gen) || gen != ticket->gen ||
        auth_pcache_log_touched(p->log, ticket->head, claims->sub))
        return;
    auth_principal_t principal = {.tokens_valid_after = tokens_valid_after, .user_json = user_json};
    size_t id_len = strlen(claims->sub);
    if (id_len >= sizeof(principal.user_id))
        return; /* not one of our ids (they are UUIDs): never a key that could be cut short */
    memcpy(principal.user_id, claims->sub, id_len + 1);
    snprintf(principal.role, sizeof(principal.role), "%s", role);
    /* The row was read no earlier than the request asked: expiry counts from then. */
    auth_pcache_put(pl->cache, &principal, claims->jti, ticket->asked_ms + p->ttl_ms);
    atomic_store_explicit(&pl->counters->entries, auth_pcache_count(pl->cache), memory_order_relaxed);
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
    char *user_json; /* NULL: no body */
} principal_echo_t;

static void principal_echo_wait(void *arg)
{
    principal_echo_t *e = arg;
    auth_pcache_log_wait_heard(e->log, e->user_id, e->since_ms, PRINCIPAL_ECHO_MS);
}

static void principal_echo_answer(http_request_t *r, int status, const char *user_json)
{
    if (user_json != NULL)
        handlers_respond_user(r, status, user_json);
    else
        http_respond_empty(r, status);
}

static void principal_echo_done(http_request_t *r, void *arg)
{
    principal_echo_t *e = arg;
    principal_echo_answer(r, e->status, e->user_json);
    free(e->user_json);
    free(e);
}

void handlers_principal_changed(http_request_t *r, const char *user_id, int status, const char *user_json)
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
    }
    /* Without a live listener (or memory, or room on the pool) there is nothing to wait for. */
    if (e == NULL || (user_json != NULL && e->user_json == NULL) ||
        http_cpu(r, principal_echo_wait, principal_echo_done, e) != 0) {
        if (e != NULL)
            free(e->user_json);
        free(e);
        principal_echo_answer(r, status, user_json);
    }
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
    uint64_t sum[6] = {0};
    int nslots = atomic_load(&p->nslots);
    for (int i = 0; i < (nslots < PRINCIPAL_SLOTS ? nslots : PRINCIPAL_SLOTS); i++) {
        const principal_counters_t *c = &p->slots[i];
        sum[0] += atomic_load_explicit(&c->hits, memory_order_relaxed);
        sum[1] += atomic_load_explicit(&c->misses, memory_order_relaxed);
        sum[2] += atomic_load_explicit(&c->bypassed, memory_order_relaxed);
        sum[3] += atomic_load_explicit(&c->invalidated, memory_order_relaxed);
        sum[4] += atomic_load_explicit(&c->evictions, memory_order_relaxed);
        sum[5] += atomic_load_explicit(&c->entries, memory_order_relaxed);
    }
    uint64_t since = atomic_load(&p->down_since_ms), now = principal_now_ms();
    uint64_t down_ms = atomic_load(&p->down_ms) + (since != 0 && now > since ? now - since : 0);
    static const char *const names[6][3] = {
        {"hits_total", "counter", "Authenticated requests answered from a loop's cache."},
        {"misses_total", "counter", "Authenticated requests that asked the database (and filled the cache)."},
        {"bypassed_total", "counter",
         "Authenticated requests that asked the database because the listener was down."},
        {"invalidations_total", "counter",
         "Entries forgotten for a notification, a revocation or a listener reconnect."},
        {"evictions_total", "counter", "Entries pushed out by auth.principal-cache-entries."},
        {"entries", "gauge", "Entries held, all loops together."},
    };
    for (int i = 0; i < 6; i++)
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
