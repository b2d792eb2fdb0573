/*
 * This process's job counters and start-delay histogram, updated by worker threads with
 * relaxed atomics and rendered in Prometheus text format for /metrics.
 */
#include "jobs/jobs_internal.h"

#include <stdio.h>
#include <stdlib.h>

const double jobs_delay_bounds[JOBS_DELAY_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1,     2.5,  10,    60,   300};

static const char *const jobs_count_names[JOBS_NCOUNTS] = {"succeeded", "retrying", "dead", "failed",
                                                           "released"};

void jobs_metrics_count(jobs_metrics_t *m, int kind_index, jobs_queue_t queue, jobs_count_t outcome)
{
    if (kind_index < 0 || kind_index > JOBS_MAX_KINDS)
        kind_index = JOBS_MAX_KINDS;
    atomic_fetch_add_explicit(&m->runs[kind_index][queue][outcome], 1, memory_order_relaxed);
}

void jobs_metrics_delay(jobs_metrics_t *m, jobs_queue_t queue, double seconds)
{
    if (seconds < 0)
        seconds = 0; /* clocks of the database and of run_at's writer may disagree slightly */
    for (int b = 0; b < JOBS_DELAY_BUCKETS; b++)
        if (seconds <= jobs_delay_bounds[b])
            atomic_fetch_add_explicit(&m->delay_buckets[queue][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->delay_count[queue], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->delay_sum_us[queue], (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

static uint64_t load(const atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void jobs_metrics_render_runs(FILE *out, const jobs_metrics_t *m, const jobs_registry_t *registry)
{
    fputs("# HELP hydrant_jobs_total Job runs finished by this process, by queue, kind and outcome.\n"
          "# TYPE hydrant_jobs_total counter\n",
          out);
    for (int k = 0; k <= JOBS_MAX_KINDS; k++) {
        if (k < JOBS_MAX_KINDS && k >= registry->nkinds)
            continue;
        const char *kind = k < JOBS_MAX_KINDS ? registry->kinds[k].kind : "unknown";
        for (int q = 0; q < JOBS_NQUEUES; q++)
            for (int o = 0; o < JOBS_NCOUNTS; o++) {
                uint64_t v = load(&m->runs[k][q][o]);
                if (v > 0 || k < registry->nkinds)
                    fprintf(out, "hydrant_jobs_total{queue=\"%s\",kind=\"%s\",state=\"%s\"} %llu\n",
                            jobs_queue_name((jobs_queue_t)q), kind, jobs_count_names[o],
                            (unsigned long long)v);
            }
    }
}

static void jobs_metrics_render_delay(FILE *out, const jobs_metrics_t *m)
{
    fputs("# HELP hydrant_job_start_delay_seconds Delay from a job's run_at to its start.\n"
          "# TYPE hydrant_job_start_delay_seconds histogram\n",
          out);
    for (int q = 0; q < JOBS_NQUEUES; q++) {
        const char *queue = jobs_queue_name((jobs_queue_t)q);
        for (int b = 0; b < JOBS_DELAY_BUCKETS; b++)
            fprintf(out, "hydrant_job_start_delay_seconds_bucket{queue=\"%s\",le=\"%g\"} %llu\n", queue,
                    jobs_delay_bounds[b], (unsigned long long)load(&m->delay_buckets[q][b]));
        unsigned long long count = load(&m->delay_count[q]);
        fprintf(out, "hydrant_job_start_delay_seconds_bucket{queue=\"%s\",le=\"+Inf\"} %llu\n", queue, count);
        fprintf(out, "hydrant_job_start_delay_seconds_sum{queue=\"%s\"} %.6f\n", queue,
                (double)load(&m->delay_sum_us[q]) / 1e6);
        fprintf(out, "hydrant_job_start_delay_seconds_count{queue=\"%s\"} %llu\n", queue, count);
    }
}

char *jobs_metrics_render(const jobs_metrics_t *m, const jobs_registry_t *registry)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (out == NULL)
        return NULL;
    jobs_metrics_render_runs(out, m, registry);
    jobs_metrics_render_delay(out, m);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
