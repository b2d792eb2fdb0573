/*
 * Shared by the files of src/jobs: the registry, the pool's structures, the blocking
 * PostgreSQL helpers and the metrics. Not part of the module's interface (jobs.h).
 */
#ifndef HYDRANT_JOBS_INTERNAL_H
#define HYDRANT_JOBS_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>

#include "jobs/jobs.h"

#define JOBS_MAX_KINDS      32
#define JOBS_KIND_MAX_LEN   64
#define JOBS_OWNER_LEN      160
#define JOBS_POOL_OWNER_LEN 96
#define JOBS_CHANNEL        "hydrant_jobs"

/* -------------------------------------------------------------- registry ---- */

typedef struct {
    char kind[JOBS_KIND_MAX_LEN + 1];
    jobs_handler_fn fn;
    void *data;
    int interval_s; /* > 0: enqueued that often by pools with periodic set */
} jobs_kind_t;

struct jobs_registry {
    jobs_kind_t kinds[JOBS_MAX_KINDS];
    int nkinds;
};

/* Index of kind in the registry, or -1. */
int jobs_registry_find(const jobs_registry_t *registry, const char *kind);

/* The shipped kinds (email.c, maintenance.c, file_process.c). */
int jobs_email_register(jobs_registry_t *registry);
int jobs_maintenance_register(jobs_registry_t *registry);
int jobs_file_process_register(jobs_registry_t *registry);
int jobs_file_sweep_register(jobs_registry_t *registry);
/* io.c: printf into err (may be NULL), errno kept, since callers tell a missing file by it;
 * and a read of up to cap bytes that is short only at the end of the file (or -1). */
void jobs_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
ssize_t jobs_read_full(int fd, void *buf, size_t cap);

/* ---------------------------------------------------------- blocking libpq ---- */

/* jobs_pg_connect and jobs_pg_exec are in jobs.h. */
/* 1 when the connection is still usable after a failed statement. */
int jobs_pg_alive(PGconn *conn);

/* ----------------------------------------------------------------- metrics ---- */

/* Final outcome of one run, as counted. */
typedef enum {
    JOBS_COUNT_SUCCEEDED,
    JOBS_COUNT_RETRYING,
    JOBS_COUNT_DEAD,
    JOBS_COUNT_FAILED,
    JOBS_COUNT_RELEASED,
    JOBS_NCOUNTS
} jobs_count_t;

#define JOBS_DELAY_BUCKETS 14

typedef struct {
    /* [kind index, JOBS_MAX_KINDS for kinds this build does not know][queue][outcome] */
    atomic_uint_fast64_t runs[JOBS_MAX_KINDS + 1][JOBS_NQUEUES][JOBS_NCOUNTS];
    /* start delay (run_at to claim) per queue: cumulative buckets, sum in microseconds */
    atomic_uint_fast64_t delay_buckets[JOBS_NQUEUES][JOBS_DELAY_BUCKETS];
    atomic_uint_fast64_t delay_count[JOBS_NQUEUES];
    atomic_uint_fast64_t delay_sum_us[JOBS_NQUEUES];
} jobs_metrics_t;

extern const double jobs_delay_bounds[JOBS_DELAY_BUCKETS]; /* seconds */

void jobs_metrics_count(jobs_metrics_t *m, int kind_index, jobs_queue_t queue, jobs_count_t outcome);
void jobs_metrics_delay(jobs_metrics_t *m, jobs_queue_t queue, double seconds);
char *jobs_metrics_render(const jobs_metrics_t *m, const jobs_registry_t *registry);

/* -------------------------------------------------------------------- pool ---- */

/* Wakes the idle workers of one queue: notifications bump the generation. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t generation;
} jobs_wake_t;

typedef struct jobs_worker {
    struct jobs_pool *pool;
    jobs_queue_t queue;
    int index;
    pthread_t thread;
    int started;
    /* the lease owner of this worker's claims; changes after a lost connection once nothing
     * it claimed is left unrecorded, so claims whose reply was lost stop being renewed */
    char owner[JOBS_OWNER_LEN];
    unsigned epoch;
} jobs_worker_t;

struct jobs_pool {
    const cfg_t *cfg;
    const jobs_registry_t *registry;
    char owner[JOBS_POOL_OWNER_LEN]; /* host:pid:random, the prefix of every worker's owner */
    atomic_int stopping;             /* no new claims; running jobs may finish */
    atomic_int releasing;            /* the shutdown timeout passed: running handlers should give up */
    jobs_wake_t wake[JOBS_NQUEUES];
    jobs_worker_t *workers;
    int nworkers;
    pthread_mutex_t owners_mu; /* guards workers[].owner for the lease renewal */
    pthread_t listener;
    int listener_started;
    int stop_pipe[2]; /* wakes the listener's poll() */
    pthread_mutex_t done_mu;
    pthread_cond_t done_cv;
    int live_threads;
    int abandoned; /* a thread outlived the shutdown timeout: never freed */
    int periodic;
    uint64_t periodic_next_ms[JOBS_MAX_KINDS];
    jobs_metrics_t metrics;
};

void jobs_wake_queue(jobs_pool_t *pool, jobs_queue_t queue);
void jobs_wake_all(jobs_pool_t *pool);
uint64_t jobs_wake_generation(jobs_pool_t *pool, jobs_queue_t queue);
/* Waits up to timeout_ms for the generation to move past `seen` or the pool to stop. */
void jobs_wake_wait(jobs_pool_t *pool, jobs_queue_t queue, uint64_t seen, int timeout_ms);

void *jobs_worker_main(void *arg);
void *jobs_listener_main(void *arg);
/* Called by every pool thread as it ends. */
void jobs_pool_thread_done(jobs_pool_t *pool);

uint64_t jobs_now_ms(void);

#endif
