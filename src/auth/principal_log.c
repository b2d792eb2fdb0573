/*
 * The process's invalidation log (auth.h): a ring of user ids written by the notification
 * listener's thread and by handlers that revoke something, read by every loop. The head is
 * an atomic so that a loop with nothing new to apply pays one load per lookup; slots are
 * read and written under the mutex.
 */
#include "auth/auth.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char user_id[40];
    int heard;
    uint64_t at_ms;
} pcache_log_slot_t;

struct auth_pcache_log {
    pthread_mutex_t mu;
    pthread_cond_t pushed; /* for auth_pcache_log_wait_heard (CLOCK_MONOTONIC) */
    _Atomic uint64_t head; /* the sequence number of the next push */
    size_t nslots;
    pcache_log_slot_t *slots;
};

auth_pcache_log_t *auth_pcache_log_new(size_t slots)
{
    auth_pcache_log_t *log = calloc(1, sizeof(*log));
    if (log != NULL && slots > 0)
        log->slots = calloc(slots, sizeof(*log->slots));
    if (log == NULL || log->slots == NULL) {
        free(log);
        return NULL;
    }
    log->nslots = slots;
    pthread_mutex_init(&log->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&log->pushed, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&log->head, 0);
    return log;
}

void auth_pcache_log_free(auth_pcache_log_t *log)
{
    if (log == NULL)
        return;
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->pushed);
    free(log->slots);
    free(log);
}

void auth_pcache_log_push(auth_pcache_log_t *log, const char *user_id, int heard, uint64_t at_ms)
{
    /* A payload that is no user id of ours (too long) can only be honoured as "everyone". */
    if (strlen(user_id) >= sizeof(log->slots[0].user_id))
        user_id = AUTH_PCACHE_ALL;
    pthread_mutex_lock(&log->mu);
    uint64_t head = atomic_load_explicit(&log->head, memory_order_relaxed);
    pcache_log_slot_t *slot = &log->slots[head % log->nslots];
    strcpy(slot->user_id, user_id);
    slot->heard = heard;
    slot->at_ms = at_ms;
    atomic_store_explicit(&log->head, head + 1, memory_order_release);
    if (heard)
        pthread_cond_broadcast(&log->pushed);
    pthread_mutex_unlock(&log->mu);
}

uint64_t auth_pcache_log_head(const auth_pcache_log_t *log)
{
    return atomic_load_explicit(&((auth_pcache_log_t *)log)->head, memory_order_acquire);
}

size_t auth_pcache_log_apply(auth_pcache_log_t *log, uint64_t *cursor, auth_pcache_t *cache)
{
    if (auth_pcache_log_head(log) == *cursor)
        return 0;
    size_t forgotten = 0;
    pthread_mutex_lock(&log->mu);
    uint64_t head = atomic_load_explicit(&log->head, memory_order_relaxed);
    if (head - *cursor > log->nslots) {
        forgotten = auth_pcache_clear(cache);
    } else {
        for (uint64_t seq = *cursor; seq < head; seq++) {
            const char *id = log->slots[seq % log->nslots].user_id;
            if (strcmp(id, AUTH_PCACHE_ALL) == 0)
                forgotten += auth_pcache_clear(cache);
            else
                forgotten += (size_t)auth_pcache_forget(cache, id);
        }
    }
    *cursor = head;
    pthread_mutex_unlock(&log->mu);
    return forgotten;
}

int auth_pcache_log_touched(auth_pcache_log_t *log, uint64_t since, const char *user_id)
{
    if (auth_pcache_log_head(log) == since)
        return 0;
    int touched = 0;
    pthread_mutex_lock(&log->mu);
    uint64_t head = atomic_load_explicit(&log->head, memory_order_relaxed);
    if (head - since > log->nslots)
        touched = 1;
    for (uint64_t seq = since; !touched && seq < head; seq++) {
        const char *id = log->slots[seq % log->nslots].user_id;
        touched = strcmp(id, user_id) == 0 || strcmp(id, AUTH_PCACHE_ALL) == 0;
    }
    pthread_mutex_unlock(&log->mu);
    return touched;
}

/* Under the mutex: a heard push for user_id (or everyone) at or after since_ms, among the
 * slots still in the ring, newest first. */
static int pcache_log_heard(const auth_pcache_log_t *log, const char *user_id, uint64_t since_ms)
{
    uint64_t head = atomic_load_explicit(&((auth_pcache_log_t *)log)->head, memory_order_relaxed);
    for (uint64_t n = 0; n < head && n < log->nslots; n++) {
        const pcache_log_slot_t *slot = &log->slots[(head - 1 - n) % log->nslots];
        if (slot->at_ms < since_ms)
            break;
        if (slot->heard &&
            (strcmp(slot->user_id, user_id) == 0 || strcmp(slot->user_id, AUTH_PCACHE_ALL) == 0))
            return 1;
    }
    return 0;
}

int auth_pcache_log_wait_heard(auth_pcache_log_t *log, const char *user_id, uint64_t since_ms, int timeout_ms)
{
    struct timespec deadline = util_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&log->mu);
    int heard = pcache_log_heard(log, user_id, since_ms);
    while (!heard && pthread_cond_timedwait(&log->pushed, &log->mu, &deadline) == 0)
        heard = pcache_log_heard(log, user_id, since_ms);
    if (!heard)
        heard = pcache_log_heard(log, user_id, since_ms);
    pthread_mutex_unlock(&log->mu);
    return heard;
}
