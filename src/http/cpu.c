/*
 * CPU-heavy work for a request (password hashing) off the event loop, on libuv's thread
 * pool, with the result handed back on the request's own loop. The number of such jobs
 * waiting or running in the process is bounded, so a flood of logins sheds load with 503
 * instead of queueing without end.
 */
#include "http/http.h"

#include <stdlib.h>

#define HTTP_CPU_MAX_PENDING 256

static atomic_int http_cpu_pending;

typedef struct http_cpu_job {
    uv_work_t work;
    http_request_t *r;
    http_cpu_work_fn fn;
    http_cpu_done_fn done;
    void *arg;
} http_cpu_job_t;

static void http_cpu_run(uv_work_t *work)
{
    http_cpu_job_t *job = work->data;
    job->fn(job->arg);
}

static void http_cpu_after(uv_work_t *work, int status)
{
    http_cpu_job_t *job = work->data;
    atomic_fetch_sub(&http_cpu_pending, 1);
    http_conn_put_cpu(job->r);
    if (job->r->cpu_job == job)
        job->r->cpu_job = NULL;
    if (status == UV_ECANCELED) /* dropped: its arg is the request's state, freed with it */
        atomic_fetch_add_explicit(&job->r->loop->metrics->dropped_cpu, 1, memory_order_relaxed);
    else
        job->done(job->r, job->arg);
    http_request_release(job->r);
    free(job);
}

void http_cpu_drop(http_request_t *r)
{
    if (r->cpu_job != NULL && !http_idempotency_pending(r))
        uv_cancel((uv_req_t *)&r->cpu_job->work); /* fails, harmlessly, once it has started */
}

static int http_cpu_submit(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg,
                           int droppable);

int http_cpu(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg)
{
    return http_cpu_submit(r, fn, done, arg, 0);
}

int http_cpu_droppable(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg)
{
    return http_cpu_submit(r, fn, done, arg, 1);
}

static int http_cpu_submit(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg,
                           int droppable)
{
    if (!http_conn_take_cpu(r))
        return -1; /* this connection's share of the pool is taken: 503 like a full pool */
    http_cpu_job_t *job = NULL;
    if (atomic_fetch_add(&http_cpu_pending, 1) >= HTTP_CPU_MAX_PENDING ||
        (job = malloc(sizeof(*job))) == NULL)
        goto refused;
    *job = (http_cpu_job_t){.r = r, .fn = fn, .done = done, .arg = arg};
    job->work.data = job;
    http_request_retain(r);
    if (uv_queue_work(r->loop->h2o_ctx.loop, &job->work, http_cpu_run, http_cpu_after) != 0) {
        http_request_release(r);
        goto refused;
    }
    if (droppable)
        r->cpu_job = job;
    return 0;
refused:
    atomic_fetch_sub(&http_cpu_pending, 1);
    http_conn_put_cpu(r);
    free(job);
    return -1;
}
