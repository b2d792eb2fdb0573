/*
 * The log writer: one thread per process writes the lines the loops leave in their rings
 * (http.h, "the log writer"). A write to stdout or a pipe may block for as long as its reader
 * pleases; here it blocks this thread only, and the loops' rings fill up and drop lines
 * (counted) instead of stalling requests. O_NONBLOCK on the fds is not an option: stdout may
 * be a pipe shared with other processes, which would see the flag too.
 *
 * A ring is a byte buffer with two monotonic counters: head (bytes appended, written by the
 * loop) and tail (bytes taken, written by the writer). The loop copies a line in and then
 * publishes head (release); the writer reads head (acquire), writes the bytes out and then
 * publishes tail (release), after which the loop may reuse them.
 */
#include "http/http.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HTTP_LOG_FLUSH_MS 100

struct http_log_ring {
    char *data;
    size_t cap;      /* a power of two */
    int fd;          /* -1: no such stream */
    int whole_lines; /* written a whole line at a time (log_ring_piece) */
    http_log_writer_t *writer;
    atomic_uint_fast64_t dropped;
    atomic_size_t head;
    char apart[64]; /* head and tail on cache lines of their own */
    atomic_size_t tail;
};

struct http_log_writer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;               /* the writer sleeps on it */
    pthread_cond_t done;               /* the stopper waits on it */
    int stopping, finished, abandoned; /* under lock */
    int nrings;
    http_log_ring_t *rings; /* [loop * HTTP_LOG_NSTREAMS + stream] */
};

/* ------------------------------------------------------------- the loop's side ---- */

void http_log_ring_drop(http_log_ring_t *ring)
{
    atomic_fetch_add_explicit(&ring->dropped, 1, memory_order_relaxed);
}

int http_log_ring_append(http_log_ring_t *ring, const char *line, size_t len)
{
    size_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    size_t used = head - atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (len > ring->cap - used) {
        atomic_fetch_add_explicit(&ring->dropped, 1, memory_order_relaxed);
        return -1;
    }
    size_t at = head & (ring->cap - 1);
    size_t first = ring->cap - at < len ? ring->cap - at : len;
    memcpy(ring->data + at, line, first);
    memcpy(ring->data, line + first, len - first);
    atomic_store_explicit(&ring->head, head + len, memory_order_release);
    /* Half full: wake the writer now rather than at its next round. A signal without the
     * lock may be missed; that costs a round (100 ms), never a line. */
    if (used < ring->cap / 2 && used + len >= ring->cap / 2)
        pthread_cond_signal(&ring->writer->wake);
    return 0;
}

/* ------------------------------------------------------------ the writer's side ---- */

static uint64_t log_count_lines(const char *p, size_t len)
{
    uint64_t n = 0;
    for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        n++;
    return n;
}

/* The next piece of the ring to write, from tail: all that is contiguous; or, for a ring of
 * whole lines (stderr's, which util_log's lines from other threads share), whole lines of at
 * most PIPE_BUF bytes, which a pipe takes in one piece, a line that wraps around the end
 * gathered into scratch, so that no other writer's line can land inside one. */
static const char *log_ring_piece(const http_log_ring_t *ring, size_t tail, size_t head, char *scratch,
                                  size_t *len)
{
    size_t at = tail & (ring->cap - 1);
    size_t contiguous = head - tail < ring->cap - at ? head - tail : ring->cap - at;
    const char *p = ring->data + at;
    *len = contiguous;
    if (!ring->whole_lines)
        return p;
    size_t n = contiguous < PIPE_BUF ? contiguous : PIPE_BUF;
    const char *nl = memrchr(p, '\n', n);
    if (nl != NULL) {
        *len = (size_t)(nl - p) + 1;
        return p;
    }
    size_t wrapped = head - tail - contiguous; /* bytes at the start of the ring */
    if (wrapped == 0 || contiguous >= PIPE_BUF) {
        *len = n; /* a line longer than PIPE_BUF goes as it comes */
        return p;
    }
    size_t more = PIPE_BUF - contiguous < wrapped ? PIPE_BUF - contiguous : wrapped;
    const char *end = memchr(ring->data, '\n', more);
    size_t second = end != NULL ? (size_t)(end - ring->data) + 1 : more;
    memcpy(scratch, p, contiguous);
    memcpy(scratch + contiguous, ring->data, second);
    *len = contiguous + second;
    return scratch;
}

/* Writes out what the ring holds now. Returns the bytes taken (written, or lost to a sink
 * that fails: those lines are counted as dropped, as the loop cannot be told). */
static size_t log_ring_drain(http_log_ring_t *ring)
{
    size_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    size_t taken = 0;
    char scratch[PIPE_BUF];
    while (tail != head) {
        size_t len;
        const char *piece = log_ring_piece(ring, tail, head, scratch, &len);
        ssize_t n = write(ring->fd, piece, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            atomic_fetch_add_explicit(&ring->dropped, log_count_lines(piece, len), memory_order_relaxed);
            n = (ssize_t)len;
        }
        tail += (size_t)n;
        taken += (size_t)n;
        atomic_store_explicit(&ring->tail, tail, memory_order_release);
    }
    return taken;
}

/* Rounds of writing everything there is; a round that found nothing sleeps until woken or
 * 100 ms. Once stopping, the first round that finds nothing ends it: the loops appended
 * their last lines before the stop. */
static void log_writer_free(http_log_writer_t *w);

static void *log_writer_main(void *arg)
{
    http_log_writer_t *w = arg;
    pthread_setname_np(pthread_self(), "hydrant-log");
    pthread_mutex_lock(&w->lock);
    for (;;) {
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->lock);
        size_t taken = 0;
        for (int i = 0; i < w->nrings; i++)
            if (w->rings[i].fd >= 0)
                taken += log_ring_drain(&w->rings[i]);
        pthread_mutex_lock(&w->lock);
        if (stopping && taken == 0)
            break;
        if (taken == 0 && !w->stopping) {
            struct timespec until = util_deadline_after_ms(HTTP_LOG_FLUSH_MS);
            pthread_cond_timedwait(&w->wake, &w->lock, &until);
        }
    }
    w->finished = 1;
    pthread_cond_signal(&w->done);
    int abandoned = w->abandoned;
    pthread_mutex_unlock(&w->lock);
    if (abandoned) { /* the stop gave up waiting: nobody joins this thread or frees w */
        pthread_detach(pthread_self());
        log_writer_free(w);
    }
    return NULL;
}

/* ------------------------------------------------------------------ lifetime ---- */

static void log_writer_free(http_log_writer_t *w)
{
    for (int i = 0; i < w->nrings; i++)
        free(w->rings[i].data);
    free(w->rings);
    pthread_cond_destroy(&w->wake);
    pthread_cond_destroy(&w->done);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static size_t log_power_of_two(size_t bytes)
{
    size_t cap = 4096;
    while (cap < bytes && cap < SIZE_MAX / 2)
        cap *= 2;
    return cap;
}

static int log_rings_init(http_log_writer_t *w, const int fds[HTTP_LOG_NSTREAMS],
                          const size_t bytes[HTTP_LOG_NSTREAMS])
{
    for (int i = 0; i < w->nrings; i++) {
        http_log_ring_t *ring = &w->rings[i];
        int stream = i % HTTP_LOG_NSTREAMS;
        ring->writer = w;
        ring->fd = fds[stream];
        ring->whole_lines = stream == HTTP_LOG_ERROR;
        atomic_init(&ring->head, 0);
        atomic_init(&ring->tail, 0);
        atomic_init(&ring->dropped, 0);
        if (ring->fd < 0)
            continue;
        ring->cap = log_power_of_two(bytes[stream]);
        if ((ring->data = malloc(ring->cap)) == NULL)
            return -1;
    }
    return 0;
}

http_log_writer_t *http_log_writer_start(int access_fd, int error_fd, int nloops, size_t access_bytes,
                                         size_t error_bytes)
{
    http_log_writer_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, &attr);
    pthread_cond_init(&w->done, &attr);
    pthread_condattr_destroy(&attr);
    const int fds[HTTP_LOG_NSTREAMS] = {access_fd, error_fd};
    const size_t bytes[HTTP_LOG_NSTREAMS] = {access_bytes, error_bytes};
    w->nrings = nloops * HTTP_LOG_NSTREAMS;
    w->rings = calloc((size_t)w->nrings, sizeof(*w->rings));
    if (w->rings == NULL || log_rings_init(w, fds, bytes) != 0 ||
        pthread_create(&w->thread, NULL, log_writer_main, w) != 0) {
        log_writer_free(w);
        return NULL;
    }
    return w;
}

http_log_ring_t *http_log_writer_ring(http_log_writer_t *w, int loop, http_log_stream_t stream)
{
    http_log_ring_t *ring = &w->rings[loop * HTTP_LOG_NSTREAMS + (int)stream];
    return ring->fd >= 0 ? ring : NULL;
}

uint64_t http_log_writer_dropped(const http_log_writer_t *w, http_log_stream_t stream)
{
    uint64_t n = 0;
    for (int i = (int)stream; i < w->nrings; i += HTTP_LOG_NSTREAMS)
        n += atomic_load_explicit(&w->rings[i].dropped, memory_order_relaxed);
    return n;
}

int http_log_writer_stop(http_log_writer_t *w, int timeout_ms)
{
    struct timespec until = util_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_cond_signal(&w->wake);
    while (!w->finished && pthread_cond_timedwait(&w->done, &w->lock, &until) != ETIMEDOUT)
        ;
    int finished = w->finished;
    w->abandoned = !finished; /* blocked in a write: the thread frees w if it ever ends */
    pthread_mutex_unlock(&w->lock);
    if (!finished)
        return -1;
    pthread_join(w->thread, NULL);
    log_writer_free(w);
    return 0;
}
