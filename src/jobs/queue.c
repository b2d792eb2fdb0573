/*
 * Names of queues and states, the enqueue statement's parameters, and the retry schedule.
 */
#include "jobs/jobs_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const jobs_queue_names[JOBS_NQUEUES] = {"short", "medium", "long"};

const char *jobs_queue_name(jobs_queue_t queue)
{
    return (queue >= 0 && queue < JOBS_NQUEUES) ? jobs_queue_names[queue] : "unknown";
}

int jobs_queue_parse(const char *name)
{
    for (int q = 0; q < JOBS_NQUEUES; q++)
        if (name != NULL && strcmp(name, jobs_queue_names[q]) == 0)
            return q;
    return -1;
}

int jobs_state_valid(const char *state)
{
    static const char *const states[] = {"queued", "running", "succeeded", "retrying",
                                         "failed", "dead",    "cancelled"};
    for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
        if (state != NULL && strcmp(state, states[i]) == 0)
            return 1;
    return 0;
}

void jobs_enqueue_query(jobs_enqueue_t *job, const cfg_t *cfg, db_query_t *query)
{
    const char *priority = NULL;
    int attempts = job->max_attempts > 0 ? job->max_attempts : cfg_job_schedule(cfg, job->kind).max_attempts;
    snprintf(job->max_attempts_text, sizeof(job->max_attempts_text), "%d", attempts);
    if (job->priority != 0) {
        snprintf(job->priority_text, sizeof(job->priority_text), "%d", job->priority);
        priority = job->priority_text;
    }
    job->values[0] = job->kind;
    job->values[1] = job->queue != NULL ? job->queue : "short";
    job->values[2] = job->payload != NULL ? job->payload : "{}";
    job->values[3] = job->owner_id;
    job->values[4] = job->unique_key;
    job->values[5] = job->run_at;
    job->values[6] = job->max_attempts_text;
    job->values[7] = priority;
    *query = (db_query_t){.stmt = DB_STMT_JOB_ENQUEUE, .nparams = 8, .values = job->values, .lengths = NULL};
}

util_backoff_t jobs_retry_backoff(const cfg_job_kind_t *schedule)
{
    return (util_backoff_t){schedule->retry_base_ms, schedule->retry_max_ms, 0.5, 1.5};
}
