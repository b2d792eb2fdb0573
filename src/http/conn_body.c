/*
 * Request bodies in flight, per connection, per client address and per loop.
 *
 * libh2o 2.2 reads a request's whole body before it calls any handler: into memory, or past
 * 8 MiB into a spill file. An HTTP/2 client may keep 100 streams doing so at once, each up to
 * the largest body a route accepts, and libh2o extends the flow-control window as soon as it
 * has read a frame, so nothing holds a client back; and it has no deadline for a body that
 * stops coming (HTTP/1.1's request timeout covers its bodies). hydrant sees none of it: its
 * handler runs after the last byte.
 *
 * So hydrant's own read callback stands in front of libh2o's on every connection. libh2o's
 * socket layer decrypts what arrived into sock->input and then calls the read callback, the
 * read's new bytes being the last sock->bytes_read of that buffer. On an HTTP/2 connection,
 * hydrant reads the frame headers among them (never the payloads) and keeps, per stream with
 * a body under way, how much of it came and when the last byte did; on HTTP/1.1, one request
 * at a time, all bytes since its last request began. A request's body then counts until the
 * request is disposed. A connection that passes its budget, or whose address or loop passes
 * theirs (the loop cuts its largest), is cut; an HTTP/2 body without progress for
 * limits.body-timeout-ms cuts its connection too: libh2o 2.2 gives hydrant no way to reset
 * one stream.
 *
 * The first frames come with the TLS handshake's last step, which libh2o's own accept would
 * hand straight to its HTTP/2 reader: hydrant completes TLS connections itself
 * (server/loop.c) and reads them first (http_conn_body_start). libh2o replaces the read
 * callback when its reader takes the socket and, on HTTP/1.1, after each response; hydrant
 * puts its own back in front after each call, at each request and at the loop's tick. An
 * HTTP/1.1 connection may so pass up to a tick's worth of reads unseen after a response (its
 * body is bounded by max_entity and libh2o's request timeout anyway).
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

enum { FRAME_DATA = 0, FRAME_HEADERS = 1, FRAME_RST_STREAM = 3 };
enum { FLAG_END_STREAM = 0x1, FLAG_PADDED = 0x8 };

#define PREFACE_LEN 24  /* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" */
#define MAX_STREAMS 256 /* libh2o refuses a stream beyond 100 open ones */

typedef struct {
    uint32_t id;
    uint32_t gone;         /* libh2o refused it (longer than max_entity): its bytes are not counted */
    uint64_t bytes;        /* counted: what came, padding included */
    uint64_t data;         /* without padding, as libh2o counts it against max_entity */
    uint64_t window_ms;    /* its rate is judged over windows of limits.body-timeout-ms */
    uint64_t window_bytes; /* that came in the current one */
} http_body_stream_t;

struct http_body_frames {
    uint32_t preface_left;
    uint8_t head[9];
    uint8_t head_len;
    uint8_t type, flags;
    uint32_t stream_id;
    uint32_t payload_len, payload_left; /* of the current frame */
    uint8_t pad_unknown;                /* a padded DATA frame whose pad length is still to come */
    http_body_stream_t *streams;
    uint32_t nstreams, cap;
};

static http_conn_t *http_body_conn_of(h2o_socket_t *sock)
{
    uv_loop_t *uv = h2o_socket_get_loop(sock);
    return uv->data != NULL ? http_conn_find(uv->data, sock) : NULL;
}

static void http_body_on_read(h2o_socket_t *sock, const char *err);

/* ------------------------------------------------------------------- totals ---- */

/* Adds delta (signed) to the connection's, its address's and its loop's totals. */
static void http_body_add(http_conn_t *c, int64_t delta, uint64_t *counter)
{
    *counter += (uint64_t)delta;
    if (c->address_entry != NULL)
        *http_address_body_total(c->address_entry) += (uint64_t)delta;
    *http_conns_body_total(c->loop) += (uint64_t)delta;
    atomic_fetch_add_explicit(&c->loop->metrics->body_bytes, delta, memory_order_relaxed);
}

void http_conn_body_forget(http_conn_t *c)
{
    if (c->body_receiving > 0)
        http_body_add(c, -(int64_t)c->body_receiving, &c->body_receiving);
    if (c->body_delivered > 0)
        http_body_add(c, -(int64_t)c->body_delivered, &c->body_delivered);
    if (c->frames != NULL) {
        free(c->frames->streams);
        free(c->frames);
        c->frames = NULL;
    }
}

static void http_body_cut(http_conn_t *c, const char *why, atomic_uint_fast64_t *counter)
{
    if (c->cut)
        return;
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    http_conn_cut(c, why);
}

static void http_body_find_largest(http_conn_t *c, void *arg)
{
    http_conn_t **largest = arg;
    if (!c->cut && (*largest == NULL || c->body_receiving + c->body_delivered >
                                            (*largest)->body_receiving + (*largest)->body_delivered))
        *largest = c;
}

/* After c's bodies grew: the first budget passed decides whom to cut. */
static void http_body_enforce(http_conn_t *c)
{
    const http_server_t *server = c->loop->server;
    atomic_uint_fast64_t *counter = &c->loop->metrics->bodies_over_budget;
    if (c->cut)
        return;
    /* A trusted proxy's connection carries many clients: their limits live in the proxy, and
     * only the loop's budget, which bounds the process's memory, applies to it. */
    if (!c->trusted && server->body_max_per_connection > 0 &&
        c->body_receiving + c->body_delivered > server->body_max_per_connection) {
        http_body_cut(c, "cut: its request bodies in flight passed limits.max-body-bytes-per-connection",
                      counter);
        return;
    }
    if (!c->trusted && server->body_max_per_address > 0 && c->address_entry != NULL &&
        *http_address_body_total(c->address_entry) > server->body_max_per_address) {
        http_body_cut(c,
                      "cut: its address's request bodies in flight passed limits.max-body-bytes-per-address",
                      counter);
        return;
    }
    if (server->body_max_per_loop > 0 && *http_conns_body_total(c->loop) > server->body_max_per_loop) {
        http_conn_t *largest = NULL;
        http_conns_each(c->loop, http_body_find_largest, &largest);
        if (largest != NULL)
            http_body_cut(largest,
                          "cut: the largest request bodies in flight when the server's budget ran out",
                          counter);
    }
}

/* ------------------------------------------------------------ HTTP/2 frames ---- */

static http_body_stream_t *http_body_stream(struct http_body_frames *f, uint32_t id)
{
    for (uint32_t i = 0; i < f->nstreams; i++)
        if (f->streams[i].id == id)
            return &f->streams[i];
    return NULL;
}

/* A new stream with a body under way; NULL when the connection has more than any client may. */
static http_body_stream_t *http_body_stream_open(struct http_body_frames *f, uint32_t id, uint64_t now_ms)
{
    if (f->nstreams == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 8;
        if (cap > MAX_STREAMS)
            return NULL;
        http_body_stream_t *grown = realloc(f->streams, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        f->streams = grown;
        f->cap = cap;
    }
    http_body_stream_t *s = &f->streams[f->nstreams++];
    *s = (http_body_stream_t){.id = id, .window_ms = now_ms};
    return s;
}

static void http_body_stream_close(http_conn_t *c, http_body_stream_t *s)
{
    struct http_body_frames *f = c->frames;
    if (!s->gone && s->bytes > 0)
        http_body_add(c, -(int64_t)s->bytes, &c->body_receiving);
    *s = f->streams[--f->nstreams];
}

/* A DATA frame with len bytes of data: libh2o resets a stream whose body passes max_entity,
 * and counts no more of it. */
static void http_body_data_frame(http_conn_t *c, http_body_stream_t *s, uint32_t len)
{
    s->data += len;
    if (!s->gone && s->data > c->loop->server->max_entity) {
        http_body_add(c, -(int64_t)s->bytes, &c->body_receiving);
        s->gone = 1;
    }
}

static int http_body_frame_begins(http_conn_t *c, uint64_t now_ms)
{
    struct http_body_frames *f = c->frames;
    const uint8_t *h = f->head;
    f->payload_len = f->payload_left = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
    f->pad_unknown = 0;
    f->type = h[3];
    f->flags = h[4];
    f->stream_id =
        (((uint32_t)h[5] << 24) | ((uint32_t)h[6] << 16) | ((uint32_t)h[7] << 8) | h[8]) & 0x7fffffffu;
    http_body_stream_t *s = f->stream_id != 0 ? http_body_stream(f, f->stream_id) : NULL;
    switch (f->type) {
    case FRAME_HEADERS:
        if (s != NULL && (f->flags & FLAG_END_STREAM)) /* trailers */
            http_body_stream_close(c, s);
        else if (s == NULL && !(f->flags & FLAG_END_STREAM) &&
                 http_body_stream_open(f, f->stream_id, now_ms) == NULL)
            return -1;
        break;
    case FRAME_DATA:
        if (s == NULL && (s = http_body_stream_open(f, f->stream_id, now_ms)) == NULL)
            return -1;
        if ((f->flags & FLAG_PADDED) && f->payload_len > 0)
            f->pad_unknown = 1;
        else
            http_body_data_frame(c, s, f->payload_len);
        if (f->payload_left == 0 && (f->flags & FLAG_END_STREAM))
            http_body_stream_close(c, s);
        break;
    case FRAME_RST_STREAM:
        if (s != NULL)
            http_body_stream_close(c, s);
        break;
    default:
        break;
    }
    return 0;
}

/* n bytes of the current frame's payload came. */
static void http_body_payload(http_conn_t *c, const uint8_t *bytes, size_t n, uint64_t now_ms)
{
    struct http_body_frames *f = c->frames;
    f->payload_left -= (uint32_t)n;
    if (f->type != FRAME_DATA)
        return;
    http_body_stream_t *s = http_body_stream(f, f->stream_id);
    if (s == NULL)
        return;
    if (f->pad_unknown) { /* the first byte: the pad length (too long is libh2o's error to close on) */
        f->pad_unknown = 0;
        http_body_data_frame(c, s, 1u + bytes[0] < f->payload_len ? f->payload_len - 1u - bytes[0] : 0);
    }
    s->window_bytes += n;
    if (!s->gone) {
        s->bytes += n;
        http_body_add(c, (int64_t)n, &c->body_receiving);
    }
    if (f->payload_left == 0 && (f->flags & FLAG_END_STREAM))
        http_body_stream_close(c, s);
}

/* Reads the frame headers in bytes; -1 when the connection opened more streams than allowed. */
static int http_body_frames_feed(http_conn_t *c, const uint8_t *bytes, size_t len, uint64_t now_ms)
{
    struct http_body_frames *f = c->frames;
    size_t n = len < f->preface_left ? len : f->preface_left;
    f->preface_left -= (uint32_t)n;
    bytes += n;
    len -= n;
    while (len > 0) {
        if (f->head_len < sizeof(f->head) && f->payload_left == 0) {
            n = sizeof(f->head) - f->head_len;
            n = len < n ? len : n;
            memcpy(f->head + f->head_len, bytes, n);
            f->head_len += (uint8_t)n;
            bytes += n;
            len -= n;
            if (f->head_len < sizeof(f->head))
                break;
            if (http_body_frame_begins(c, now_ms) != 0)
                return -1;
            if (f->payload_left > 0)
                continue;
        } else {
            n = len < f->payload_left ? len : f->payload_left;
            http_body_payload(c, bytes, n, now_ms);
            bytes += n;
            len -= n;
            if (f->payload_left > 0)
                continue;
        }
        f->head_len = 0; /* the frame is over */
    }
    return 0;
}

/* --------------------------------------------------------------- the reads ---- */

/* The bytes this read brought: libh2o's socket layer has appended sock->bytes_read of them
 * to sock->input (in libh2o 2.2 the count is the last read's, not a total). */
static void http_body_observe(http_conn_t *c, h2o_socket_t *sock, uint64_t now_ms)
{
    size_t fresh = sock->bytes_read, size = sock->input->size;
    if (fresh == 0)
        return;
    if (c->frames == NULL) { /* HTTP/1.1: all it sends until its next request begins */
        http_body_add(c, (int64_t)fresh, &c->body_receiving);
        return;
    }
    fresh = fresh < size ? fresh : size;
    if (http_body_frames_feed(c, (const uint8_t *)sock->input->bytes + size - fresh, fresh, now_ms) != 0)
        http_conn_cut(c, "cut: more streams with request bodies than HTTP/2 lets it open");
}

/* Puts hydrant's read callback back in front of libh2o's, which libh2o may have replaced. */
static void http_body_rewrap(http_conn_t *c, h2o_socket_t *sock)
{
    if (c->upgraded) /* a WebSocket's frames are no request body (ws.c bounds them) */
        return;
    if (sock->_cb.read != NULL && sock->_cb.read != http_body_on_read) {
        c->h2o_read = sock->_cb.read;
        sock->_cb.read = http_body_on_read;
    }
}

static void http_body_on_read(h2o_socket_t *sock, const char *err)
{
    http_conn_t *c = http_body_conn_of(sock);
    /* Registered from accept until libuv's close callback, after which nothing reads. */
    h2o_socket_cb h2o_read = c->h2o_read;
    if (err == NULL && !c->cut && !c->upgraded) {
        uint64_t before = c->body_receiving;
        http_body_observe(c, sock, uv_now(c->loop->h2o_ctx.loop));
        if (c->body_receiving > before)
            http_body_enforce(c);
    }
    h2o_read(sock, err);
    /* The socket and c outlive this call even when libh2o closed it: both are freed from
     * libuv's close callback. */
    http_body_rewrap(c, sock);
}

void http_conn_body_start(http_conn_t *c, int http2)
{
    if (!http2 || c->sock == NULL || (c->frames = calloc(1, sizeof(*c->frames))) == NULL)
        return;
    c->frames->preface_left = PREFACE_LEN;
    h2o_socket_t *sock = c->sock;
    if (http_body_frames_feed(c, (const uint8_t *)sock->input->bytes, sock->input->size,
                              uv_now(c->loop->h2o_ctx.loop)) != 0)
        http_conn_cut(c, "cut: more streams with request bodies than HTTP/2 lets it open");
}

void http_conn_body_watch(http_conn_t *c)
{
    if (c->sock != NULL)
        http_body_rewrap(c, c->sock);
}

/* ------------------------------------------------------------ the requests ---- */

void http_conn_body_begin(http_conn_t *c, size_t len)
{
    if (c->sock != NULL)
        http_body_rewrap(c, c->sock);
    if (c->frames == NULL && c->body_receiving > 0) /* HTTP/1.1: the body is in, the request's now */
        http_body_add(c, -(int64_t)c->body_receiving, &c->body_receiving);
    if (len > 0 && !c->cut)
        http_body_add(c, (int64_t)len, &c->body_delivered);
}

void http_conn_body_end(http_conn_t *c, size_t len)
{
    if (len > 0 && !c->cut)
        http_body_add(c, -(int64_t)len, &c->body_delivered);
}

/* ------------------------------------------------------------- the ticks ---- */

void http_conn_body_check(http_conn_t *c, uint64_t now_ms)
{
    if (c->sock != NULL)
        http_body_rewrap(c, c->sock);
    uint64_t timeout = c->loop->server->body_timeout_ms, min_rate = c->loop->server->body_min_rate;
    if (c->frames == NULL || c->cut || c->trusted || timeout == 0)
        return;
    for (uint32_t i = 0; i < c->frames->nstreams;) {
        http_body_stream_t *s = &c->frames->streams[i];
        uint64_t elapsed = now_ms - s->window_ms;
        if (elapsed < timeout) {
            i++;
        } else if (s->gone) {
            http_body_stream_close(c, s); /* libh2o reset it long ago */
        } else if (s->window_bytes == 0 || s->window_bytes * 1000 < min_rate * elapsed) {
            http_body_cut(
                c, "cut: a request body came slower than limits.body-min-rate for limits.body-timeout-ms",
                &c->loop->metrics->bodies_stalled);
            return;
        } else {
            s->window_ms = now_ms;
            s->window_bytes = 0;
            i++;
        }
    }
}
