/*
 * File bodies (GET /api/v1/files/{id}/content): libh2o pulls the body through a generator,
 * asking for more (proceed) once it has sent what it was given. Each chunk is read with
 * pread on libuv's thread pool, so neither a cold disk nor a big file holds up the loop.
 *
 * Lifetime: libh2o may drop the request at any moment (client gone, stream reset), and a
 * read may be in flight then; a buffer given to h2o_send must stay valid until proceed or
 * the request's end. So the state is freed by whichever comes last: the request's pool
 * dispose callback, or the completion of the read in flight.
 */
#include "http/http.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define HTTP_FILE_CHUNK (256 * 1024)

typedef struct {
    h2o_generator_t generator; /* first: libh2o hands it back to the callbacks */
    uv_work_t work;
    h2o_req_t *req;
    int fd;
    uint64_t offset, left;
    size_t got;
    int read_errno;
    int reading;  /* a pread is in flight on the pool */
    int disposed; /* the request is gone */
    char buf[HTTP_FILE_CHUNK];
} http_file_t;

static void http_file_free(http_file_t *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

static void http_file_disposed(void *p)
{
    http_file_t *f = *(http_file_t **)p;
    f->disposed = 1;
    f->req = NULL;
    if (!f->reading)
        http_file_free(f);
}

static void http_file_read(uv_work_t *work)
{
    http_file_t *f = work->data;
    size_t want = f->left < HTTP_FILE_CHUNK ? (size_t)f->left : HTTP_FILE_CHUNK;
    f->got = 0;
    f->read_errno = 0;
    while (f->got < want) {
        ssize_t n = pread(f->fd, f->buf + f->got, want - f->got, (off_t)(f->offset + f->got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            f->read_errno = n < 0 ? errno : EIO; /* shorter than its row says: truncated */
            return;
        }
        f->got += (size_t)n;
    }
}

static void http_file_read_done(uv_work_t *work, int status)
{
    http_file_t *f = work->data;
    f->reading = 0;
    if (f->disposed) {
        http_file_free(f);
        return;
    }
    if (status != 0 || f->read_errno != 0) {
        /* The headers are out: all that is left is to cut the response short. */
        h2o_send(f->req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    f->offset += f->got;
    f->left -= f->got;
    h2o_iovec_t chunk = h2o_iovec_init(f->buf, f->got);
    h2o_send(f->req, &chunk, 1, f->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void http_file_next(http_file_t *f)
{
    f->reading = 1;
    f->work.data = f;
    if (uv_queue_work(f->req->conn->ctx->loop, &f->work, http_file_read, http_file_read_done) != 0) {
        f->reading = 0;
        h2o_send(f->req, NULL, 0, H2O_SEND_STATE_ERROR);
    }
}

static void http_file_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    http_file_next((http_file_t *)generator);
}

static void http_file_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    /* Nothing to do yet: the pool's dispose callback, which follows, frees the state. */
    (void)generator;
    (void)req;
}

void http_respond_file(http_request_t *r, int status, const char *content_type, int fd, uint64_t offset,
                       uint64_t len)
{
    http_file_t *f = len > 0 ? malloc(sizeof(*f)) : NULL;
    if (len > 0 && f == NULL) {
        close(fd);
        http_respond_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    h2o_req_t *req = http_response_begin(r, status, content_type, (size_t)len);
    if (req == NULL || f == NULL) {
        close(fd);
        free(f);
        if (req != NULL) {
            req->res.content_length = 0;
            h2o_send_inline(req, "", 0); /* an empty body: nothing to stream */
        }
        return;
    }
    *f = (http_file_t){.generator = {http_file_proceed, http_file_stop},
                       .req = req,
                       .fd = fd,
                       .offset = offset,
                       .left = len};
    http_file_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof(*hook), http_file_disposed);
    *hook = f;
    req->res.content_length = (size_t)len;
    h2o_start_response(req, &f->generator);
    http_file_next(f);
}
