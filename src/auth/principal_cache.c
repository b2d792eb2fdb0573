/*
 * The per-loop principal cache: a hash table of entries chained per bucket, plus a doubly
 * linked list in use order for the LRU bound. One loop owns a cache; nothing here locks.
 *
 * Ownership: an entry owns its copy of the User JSON; auth_pcache_get hands out a pointer
 * into the entry, valid until the cache is next changed.
 *
 * The API-key map is direct-mapped (a key's slot is fixed by its hash, a newcomer pushes out
 * whoever held the slot): the hashes are SHA-256 of random keys, so slots fill evenly, and
 * a pushed-out key costs one database round trip, after which it is back.
 */
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

typedef struct pcache_entry {
    auth_principal_t p;
    char *json;                                           /* p.user_json points here */
    char jtis[AUTH_PCACHE_JTIS][AUTH_TOKEN_HASH_LEN + 1]; /* jtis and API keys' hashes */
    int njtis, next_jti; /* the verified set, replaced round-robin when full */
    uint64_t expires_ms;
    struct pcache_entry *chain;         /* the next of its bucket */
    struct pcache_entry *newer, *older; /* use order */
} pcache_entry_t;

typedef struct {
    char hash[AUTH_TOKEN_HASH_LEN + 1];
    char user_id[sizeof(((auth_principal_t *)0)->user_id)];
    uint64_t touched_ms; /* when this loop last had the key's last use written */
} pcache_key_t;

struct auth_pcache {
    pcache_entry_t **buckets;
    size_t nbuckets; /* a power of two, at least max_entries */
    size_t count, max;
    uint64_t evictions;
    pcache_entry_t *newest, *oldest;
    pcache_key_t **keys; /* max slots, made on the first key (most loops may never see one) */
    size_t nkeys;
    uint64_t key_evictions;
};

/* FNV-1a: user ids are UUIDs the server issued, so no adversary picks colliding keys. */
static size_t pcache_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

auth_pcache_t *auth_pcache_new(size_t max_entries)
{
    auth_pcache_t *c = calloc(1, sizeof(*c));
    size_t n = 16;
    while (n < max_entries)
        n <<= 1;
    if (c != NULL)
        c->buckets = calloc(n, sizeof(*c->buckets));
    if (c == NULL || c->buckets == NULL || max_entries == 0) {
        free(c != NULL ? c->buckets : NULL);
        free(c);
        return NULL;
    }
    c->nbuckets = n;
    c->max = max_entries;
    return c;
}

static pcache_entry_t **pcache_slot(auth_pcache_t *c, const char *user_id)
{
    pcache_entry_t **slot = &c->buckets[pcache_hash(user_id) & (c->nbuckets - 1)];
    while (*slot != NULL && strcmp((*slot)->p.user_id, user_id) != 0)
        slot = &(*slot)->chain;
    return slot;
}

static void pcache_unlink_use(auth_pcache_t *c, pcache_entry_t *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void pcache_link_newest(auth_pcache_t *c, pcache_entry_t *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest != NULL)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

/* Removes the entry at slot (from its bucket and the use order) and frees it. */
static void pcache_remove(auth_pcache_t *c, pcache_entry_t **slot)
{
    pcache_entry_t *e = *slot;
    *slot = e->chain;
    pcache_unlink_use(c, e);
    free(e->json);
    free(e);
    c->count--;
}

const auth_principal_t *auth_pcache_get(auth_pcache_t *c, const char *user_id, const char *jti,
                                        uint64_t now_ms)
{
    pcache_entry_t **slot = pcache_slot(c, user_id);
    pcache_entry_t *e = *slot;
    if (e == NULL)
        return NULL;
    if (now_ms >= e->expires_ms) {
        pcache_remove(c, slot);
        return NULL;
    }
    for (int i = 0; i < e->njtis; i++) {
        if (strcmp(e->jtis[i], jti) == 0) {
            pcache_unlink_use(c, e);
            pcache_link_newest(c, e);
            return &e->p;
        }
    }
    return NULL;
}

static pcache_key_t **pcache_key_slot(auth_pcache_t *c, const char *key_hash)
{
    return &c->keys[pcache_hash(key_hash) % c->max];
}

const auth_principal_t *auth_pcache_get_key(auth_pcache_t *c, const char *key_hash, uint64_t now_ms,
                                            uint64_t touch_every_ms, int *touch)
{
    *touch = 0;
    pcache_key_t *k = c->keys != NULL ? *pcache_key_slot(c, key_hash) : NULL;
    if (k == NULL || strcmp(k->hash, key_hash) != 0)
        return NULL;
    const auth_principal_t *p = auth_pcache_get(c, k->user_id, key_hash, now_ms);
    /* (a request may have started before the fill it now hits: no wrap-around) */
    if (p != NULL && now_ms >= k->touched_ms && now_ms - k->touched_ms >= touch_every_ms) {
        k->touched_ms = now_ms;
        *touch = 1;
    }
    return p;
}

static void pcache_add_jti(pcache_entry_t *e, const char *jti)
{
    for (int i = 0; i < e->njtis; i++)
        if (strcmp(e->jtis[i], jti) == 0)
            return;
    int at = e->njtis < AUTH_PCACHE_JTIS ? e->njtis++ : e->next_jti;
    e->next_jti = (at + 1) % AUTH_PCACHE_JTIS;
    strcpy(e->jtis[at], jti);
}

int auth_pcache_put(auth_pcache_t *c, const auth_principal_t *principal, const char *jti, uint64_t expires_ms)
{
    if (strlen(jti) >= sizeof(((pcache_entry_t *)0)->jtis[0]))
        return -1;
    char *json = strdup(principal->user_json);
    if (json == NULL)
        return -1;
    pcache_entry_t **slot = pcache_slot(c, principal->user_id);
    pcache_entry_t *e = *slot;
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            free(json);
            return -1;
        }
        if (c->count == c->max) {
            pcache_remove(c, pcache_slot(c, c->oldest->p.user_id));
            c->evictions++;
            slot = pcache_slot(c, principal->user_id); /* the evicted entry may have preceded it */
        }
        e->expires_ms = expires_ms;
        *slot = e;
        c->count++;
    } else {
        pcache_unlink_use(c, e);
        free(e->json);
        if (expires_ms < e->expires_ms)
            e->expires_ms = expires_ms;
    }
    e->p = *principal;
    e->json = json;
    e->p.user_json = json;
    pcache_add_jti(e, jti);
    pcache_link_newest(c, e);
    return 0;
}

int auth_pcache_put_key(auth_pcache_t *c, const auth_principal_t *principal, const char *key_hash,
                        uint64_t expires_ms, uint64_t touched_ms)
{
    if (strlen(key_hash) != AUTH_TOKEN_HASH_LEN || strlen(principal->user_id) >= sizeof(c->keys[0]->user_id))
        return -1;
    if (c->keys == NULL && (c->keys = calloc(c->max, sizeof(*c->keys))) == NULL)
        return -1;
    pcache_key_t **slot = pcache_key_slot(c, key_hash);
    if (*slot == NULL) {
        if ((*slot = calloc(1, sizeof(**slot))) == NULL)
            return -1;
        c->nkeys++;
    } else if (strcmp((*slot)->hash, key_hash) != 0) {
        c->key_evictions++;
    }
    memcpy((*slot)->hash, key_hash, AUTH_TOKEN_HASH_LEN + 1);
    memcpy((*slot)->user_id, principal->user_id, strlen(principal->user_id) + 1);
    (*slot)->touched_ms = touched_ms;
    return auth_pcache_put(c, principal, key_hash, expires_ms);
}

size_t auth_pcache_key_count(const auth_pcache_t *c)
{
    return c->nkeys;
}

uint64_t auth_pcache_key_evictions(const auth_pcache_t *c)
{
    return c->key_evictions;
}

int auth_pcache_forget(auth_pcache_t *c, const char *user_id)
{
    pcache_entry_t **slot = pcache_slot(c, user_id);
    if (*slot == NULL)
        return 0;
    pcache_remove(c, slot);
    return 1;
}

size_t auth_pcache_clear(auth_pcache_t *c)
{
    size_t n = c->count;
    while (c->oldest != NULL)
        pcache_remove(c, pcache_slot(c, c->oldest->p.user_id));
    return n;
}

size_t auth_pcache_count(const auth_pcache_t *c)
{
    return c->count;
}

uint64_t auth_pcache_evictions(const auth_pcache_t *c)
{
    return c->evictions;
}

void auth_pcache_free(auth_pcache_t *c)
{
    if (c == NULL)
        return;
    auth_pcache_clear(c);
    for (size_t i = 0; c->keys != NULL && i < c->max; i++)
        free(c->keys[i]);
    free(c->keys);
    free(c->buckets);
    free(c);
}
