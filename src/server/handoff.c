/*
 * Balancing connections over the loops. SO_REUSEPORT hashes each connection's addresses to
 * one loop's socket: many short connections spread evenly, but a few long-lived ones (HTTP/2
 * clients, a load balancer's pooled connections) often share a loop while another idles.
 * The loop that accepts a connection while another loop holds fewer passes the socket to
 * the least loaded one through that loop's queue here; the receiver admits it as if it had
 * accepted it itself (loop.c). No loop ever waits for another: a full queue, or a receiver
 * that stopped, means the accepting loop serves the connection itself.
 */
#include "server/server.h"

#include <unistd.h>

/* Hand over only when the accepting loop holds more than the least loaded one by over a
 * thirty-second of its own connections: exact balance up to 31 connections a loop, where
 * the placement of each matters most, while many short connections, whose counts differ by
 * a few all the time, do not each pay for a hand-off (a dup, a wake-up, a second
 * registration). */
#define SRV_HANDOFF_SLACK_DIVISOR 32

void srv_handoff_init(srv_handoff_queue_t *q)
{
    pthread_mutex_init(&q->lock, NULL);
    atomic_init(&q->open, 0);
    atomic_init(&q->queued, 0);
    q->head = 0;
}

void srv_handoff_open(srv_handoff_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    atomic_store(&q->open, 1);
    pthread_mutex_unlock(&q->lock);
}

int srv_handoff_push(srv_handoff_queue_t *q, uv_async_t *wakeup, int fd, int listener)
{
    int rc = -1;
    pthread_mutex_lock(&q->lock);
    int queued = atomic_load(&q->queued);
    if (atomic_load(&q->open) && queued < SRV_HANDOFF_CAPACITY) {
        q->items[(q->head + queued) % SRV_HANDOFF_CAPACITY] = (srv_handoff_t){.fd = fd, .listener = listener};
        atomic_store(&q->queued, queued + 1);
        /* Under the lock: srv_handoff_close, which precedes the handle's uv_close, cannot
         * slip in between the check of open and this send. */
        uv_async_send(wakeup);
        rc = 0;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

int srv_handoff_take(srv_handoff_queue_t *q, srv_handoff_t *out, int max)
{
    pthread_mutex_lock(&q->lock);
    int queued = atomic_load(&q->queued);
    int n = queued < max ? queued : max;
    for (int i = 0; i < n; i++)
        out[i] = q->items[(q->head + i) % SRV_HANDOFF_CAPACITY];
    q->head = (q->head + n) % SRV_HANDOFF_CAPACITY;
    atomic_store(&q->queued, queued - n);
    pthread_mutex_unlock(&q->lock);
    return n;
}

void srv_handoff_close(srv_handoff_queue_t *q)
{
    srv_handoff_t left[SRV_HANDOFF_CAPACITY];
    pthread_mutex_lock(&q->lock);
    atomic_store(&q->open, 0);
    pthread_mutex_unlock(&q->lock);
    /* Nothing can be pushed any more: what is queued is closed, never leaked. The clients
     * see their connection closed, as they would from a listener that stopped. */
    int n = srv_handoff_take(q, left, SRV_HANDOFF_CAPACITY);
    for (int i = 0; i < n; i++)
        close(left[i].fd);
}

void srv_handoff_dispose(srv_handoff_queue_t *q)
{
    srv_handoff_close(q);
    pthread_mutex_destroy(&q->lock);
}

/* What a loop holds: the connections it serves and those handed to it and not yet taken,
 * so that a burst of accepts does not send every one of them to the same idle loop. */
static int srv_loop_load(srv_loop_t *loop)
{
    return atomic_load_explicit(&loop->connections, memory_order_relaxed) +
           atomic_load_explicit(&loop->handoffs.queued, memory_order_relaxed);
}

srv_loop_t *srv_handoff_target(srv_loop_t *self)
{
    if (self->peers == NULL)
        return NULL;
    int mine = srv_loop_load(self);
    srv_loop_t *best = NULL;
    int least = mine;
    for (int i = 0; i < self->npeers; i++) {
        srv_loop_t *peer = &self->peers[i];
        /* open is only a hint here (push checks it again under the lock); a loop whose thread
         * never started is never open, and its queue is never touched. */
        if (peer == self || !atomic_load_explicit(&peer->handoffs.open, memory_order_relaxed))
            continue;
        int load = srv_loop_load(peer);
        if (load < least) {
            least = load;
            best = peer;
        }
    }
    return best != NULL && mine > least + mine / SRV_HANDOFF_SLACK_DIVISOR ? best : NULL;
}
