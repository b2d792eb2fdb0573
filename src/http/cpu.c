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

typedef struct {
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
    job->done(job->r, job->arg);
    http_request_release(job->r);
    free(job);
}

int http_cpu(http_request_t *r, http_cpu_work_fn fn, http_cpu_done_fn done, void *arg)
{
    if (atomic_fetch_add(&http_cpu_pending, 1) >= HTTP_CPU_MAX_PENDING) {
        atomic_fetch_sub(&http_cpu_pending, 1);
        return -1;
    }
    http_cpu_job_t *job = malloc(sizeof(*job));
    if (job == NULL) {
        atomic_fetch_sub(&http_cpu_pending, 1);
        return -1;
    }
    *job = (http_cpu_job_t){.r = r, .fn = fn, .done = done, .arg = arg};
    job->work.data = job;
    http_request_retain(r);
    if (uv_queue_work(r->loop->h2o_ctx.loop, &job->work, http_cpu_run, http_cpu_after) != 0) {
        http_request_release(r);
        atomic_fetch_sub(&http_cpu_pending, 1);
        free(job);
        return -1;
    }
    return 0;
}
