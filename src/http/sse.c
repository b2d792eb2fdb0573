/*
 * Server-sent event bodies (text/event-stream) over HTTP/2 and HTTP/1.1.
 *
 * libh2o's generator protocol allows one h2o_send in flight: the next only after `proceed`.
 * Bytes written meanwhile wait in a queue bounded by max_queued; a write that does not fit
 * fails, and the caller drops the stream: a client that does not read costs at most that much
 * memory. The buffer handed to h2o_send stays untouched until proceed (or the request's end).
 *
 * Lifetime: the state is freed by the request pool's dispose callback, which first calls the
 * owner's `gone` (exactly once, whatever ended the stream: the client, a cut connection, or
 * http_sse_end's final send). The owner forgets the stream in `gone` and never touches it
 * after. An open stream is an answer that takes as long as it likes: it is left out of the
 * connection's unread-answer check (conn.c), and its owner judges it by http_sse_stalled_ms.
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

struct http_sse {
    h2o_generator_t generator; /* first: libh2o hands it back to the callbacks */
    h2o_req_t *req;            /* NULL once disposed */
    http_conn_t *conn;         /* its connection (it outlives its requests), or NULL */
    util_buf_t sending;        /* given to h2o_send, waiting for proceed */
    util_buf_t queued;
    size_t max_queued;
    uint64_t sent_at_ms; /* when the send in flight began */
    int in_flight, ending, finished;
    http_sse_gone_fn gone;
    void *data;
};

static void http_sse_flush(http_sse_t *s)
{
    if (s->in_flight || s->finished || s->req == NULL)
        return;
    util_buf_t done = s->sending;
    s->sending = s->queued;
    s->queued = done;
    s->queued.len = 0;
    if (s->sending.len == 0 && !s->ending)
        return;
    h2o_iovec_t chunk = h2o_iovec_init(s->sending.data, s->sending.len);
    s->in_flight = 1;
    s->sent_at_ms = uv_now(s->req->conn->ctx->loop);
    if (s->ending) {
        /* may dispose of the request (and free s) before it returns */
        s->finished = 1;
        h2o_send(s->req, &chunk, s->sending.len > 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
        return;
    }
    h2o_send(s->req, &chunk, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void http_sse_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    http_sse_t *s = (http_sse_t *)generator;
    s->in_flight = 0;
    s->sending.len = 0;
    http_sse_flush(s);
}

static void http_sse_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    /* The client is gone; the pool's dispose callback, which follows, tells the owner. */
    (void)generator;
    (void)req;
}

static void http_sse_disposed(void *p)
{
    http_sse_t *s = *(http_sse_t **)p;
    s->req = NULL;
    if (s->conn != NULL)
        http_conn_stream(s->conn, -1);
    s->gone(s->data);
    util_buf_free(&s->sending);
    util_buf_free(&s->queued);
    free(s);
}

http_sse_t *http_sse_begin(http_request_t *r, size_t max_queued, http_sse_gone_fn gone, void *data)
{
    http_sse_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        http_respond_error(r, 503, "unavailable", "out of memory", NULL);
        return NULL;
    }
    h2o_req_t *req = http_response_begin(r, 200, "text/event-stream", 0);
    if (req == NULL) {
        free(s);
        return NULL;
    }
    *s = (http_sse_t){.generator = {http_sse_proceed, http_sse_stop},
                      .req = req,
                      .conn = r->conn,
                      .max_queued = max_queued,
                      .gone = gone,
                      .data = data};
    if (s->conn != NULL)
        http_conn_stream(s->conn, 1);
    http_sse_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof(*hook), http_sse_disposed);
    *hook = s;
    req->compress_hint = H2O_COMPRESS_HINT_DISABLE;
    h2o_start_response(req, &s->generator);
    return s;
}

int http_sse_write(http_sse_t *s, const char *bytes, size_t len)
{
    if (s->ending || s->req == NULL || s->queued.len + s->sending.len + len > s->max_queued)
        return -1;
    util_buf_put(&s->queued, bytes, len);
    if (s->queued.failed)
        return -1;
    http_sse_flush(s);
    return 0;
}

void http_sse_end(http_sse_t *s)
{
    if (s->ending)
        return;
    s->ending = 1;
    http_sse_flush(s);
}

uint64_t http_sse_stalled_ms(const http_sse_t *s, uint64_t now_ms)
{
    return s->in_flight && !s->finished && now_ms > s->sent_at_ms ? now_ms - s->sent_at_ms : 0;
}

void http_sse_cut(http_sse_t *s, const char *why)
{
    if (s->conn != NULL)
        http_conn_cut(s->conn, why);
}
