/*
 * bench/jobs: throughput and idle start delay of hydrant's job queue, in one process with
 * the real worker pool against a real PostgreSQL (started by bench/jobs/run).
 *
 * 1. Throughput: N no-op jobs are inserted up front (one INSERT ... generate_series), then
 *    the pool works them; the clock stops when PostgreSQL has every job `succeeded`, so
 *    claiming, running and recording are all inside the figure.
 * 2. Idle start delay: with the pool idle, one job at a time is enqueued (insert + notify,
 *    committed); the delay is from just before the INSERT is sent to the moment its handler
 *    starts.
 * Both check that every job ran exactly once. Each phase runs `runs` times; the medians are
 * reported, with every run's figure, as text and as one JSON line.
 *
 * usage: bench_jobs DATABASE_URL [jobs=100000] [workers=2] [batch=256] [runs=3] [probes=500]
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/jobs.h"

#define MAX_RUNS 9

static atomic_uint_fast64_t *runs_per_job; /* indexed by the payload's n */
static atomic_uint_fast64_t *start_ns;     /* when job n started (probe phase) */
static int njobs_max;
static atomic_uint_fast64_t handled; /* handler calls of the current run */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static jobs_outcome_t bench_noop(jobs_run_t *run)
{
    json_int_t n = json_integer_value(json_object_get(run->payload, "n"));
    if (n < 0 || n >= njobs_max)
        return JOBS_PERMANENT;
    atomic_store(&start_ns[n], now_ns());
    atomic_fetch_add(&runs_per_job[n], 1);
    atomic_fetch_add(&handled, 1);
    return JOBS_DONE;
}

static void exec_or_die(PGconn *db, const char *sql)
{
    PGresult *res = PQexec(db, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_jobs: %s: %s", sql, PQerrorMessage(db));
        exit(1);
    }
    PQclear(res);
}

static long long count_succeeded(PGconn *db)
{
    PGresult *res = PQexec(db, "SELECT count(*) FROM jobs WHERE kind = 'bench.noop' AND state = 'succeeded'");
    long long n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoll(PQgetvalue(res, 0, 0)) : -1;
    PQclear(res);
    return n;
}

static void reset(PGconn *db, int n)
{
    exec_or_die(db, "DELETE FROM jobs WHERE kind = 'bench.noop'");
    exec_or_die(db, "VACUUM ANALYZE jobs");
    atomic_store(&handled, 0);
    for (int i = 0; i < n; i++) {
        atomic_store(&runs_per_job[i], 0);
        atomic_store(&start_ns[i], 0);
    }
}

/* Jobs not run exactly once; prints them. */
static int check_exactly_once(int n)
{
    int wrong = 0;
    for (int i = 0; i < n; i++)
        if (atomic_load(&runs_per_job[i]) != 1 && wrong++ < 5)
            fprintf(stderr, "bench_jobs: job %d ran %llu times\n", i,
                    (unsigned long long)atomic_load(&runs_per_job[i]));
    return wrong;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), compare_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static jobs_pool_t *start_pool(const cfg_t *cfg, const jobs_registry_t *registry, int workers)
{
    char err[256];
    jobs_pool_options_t options = {.cfg = cfg, .registry = registry, .workers = {workers, 0, 0}};
    jobs_pool_t *pool = jobs_pool_start(&options, err, sizeof(err));
    if (pool == NULL) {
        fprintf(stderr, "bench_jobs: %s\n", err);
        exit(1);
    }
    return pool;
}

/* One throughput run: jobs/s from pool start to the last job recorded as succeeded. */
static double throughput_run(PGconn *db, const cfg_t *cfg, const jobs_registry_t *registry, int n,
                             int workers, int *wrong)
{
    reset(db, n);
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "INSERT INTO jobs (kind, queue, payload) SELECT 'bench.noop', 'short', jsonb_build_object('n', g) "
        "FROM generate_series(0, %d) g",
        n - 1);
    exec_or_die(db, sql);
    exec_or_die(db, "ANALYZE jobs");
    uint64_t t0 = now_ns();
    jobs_pool_t *pool = start_pool(cfg, registry, workers);
    uint64_t deadline = t0 + 300ULL * 1000000000ULL;
    while (atomic_load(&handled) < (uint64_t)n && now_ns() < deadline)
        usleep(1000);
    /* Every job has run; stopping records the outcomes still pending, so the clock stops
     * only once PostgreSQL has all of them (counted below, outside the clock). */
    jobs_pool_stop(pool);
    double seconds = (double)(now_ns() - t0) / 1e9;
    jobs_pool_free(pool);
    long long recorded = count_succeeded(db);
    if (recorded != n) {
        fprintf(stderr, "bench_jobs: %lld of %d jobs recorded as succeeded\n", recorded, n);
        *wrong += n - (int)recorded;
    }
    *wrong += check_exactly_once(n);
    return n / seconds;
}

/* One idle-delay run: p50 and p99 in ms over `probes` jobs enqueued one at a time. */
static void delay_run(PGconn *db, const cfg_t *cfg, const jobs_registry_t *registry, int probes, int workers,
                      double *p50, double *p99, int *wrong)
{
    reset(db, probes);
    jobs_pool_t *pool = start_pool(cfg, registry, workers);
    usleep(500 * 1000); /* connected and idle */
    double *delays = calloc((size_t)probes, sizeof(double));
    const db_stmt_def_t *enqueue = db_stmt_get(DB_STMT_JOB_ENQUEUE);
    for (int i = 0; i < probes; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
        jobs_enqueue_t job = {.kind = "bench.noop", .payload = payload};
        db_query_t q;
        jobs_enqueue_query(&job, cfg, &q);
        uint64_t t0 = now_ns();
        PGresult *res = PQexecParams(db, enqueue->sql, q.nparams, NULL, q.values, NULL, NULL, 0);
        PQclear(res);
        uint64_t limit = t0 + 5ULL * 1000000000ULL;
        while (atomic_load(&start_ns[i]) == 0 && now_ns() < limit)
            usleep(50);
        uint64_t started = atomic_load(&start_ns[i]);
        delays[i] = started > t0 ? (double)(started - t0) / 1e6 : 0;
        usleep(3000); /* let the worker finish recording and go idle again */
    }
    usleep(300 * 1000);
    jobs_pool_stop(pool);
    jobs_pool_free(pool);
    *wrong += check_exactly_once(probes);
    qsort(delays, (size_t)probes, sizeof(double), compare_double);
    *p50 = delays[probes / 2];
    *p99 = delays[(int)(probes * 0.99)];
    free(delays);
}

static void print_list(const char *name, const double *v, int n)
{
    printf("\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf("%s%.2f", i ? "," : "", v[i]);
    printf("],");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_jobs DATABASE_URL [jobs] [workers] [batch] [runs] [probes]\n");
        return 2;
    }
    int njobs = argc > 2 ? atoi(argv[2]) : 100000;
    int workers = argc > 3 ? atoi(argv[3]) : 2;
    int batch = argc > 4 ? atoi(argv[4]) : 256;
    int nruns = argc > 5 ? atoi(argv[5]) : 3;
    int probes = argc > 6 ? atoi(argv[6]) : 500;
    if (njobs < 1 || workers < 1 || batch < 1 || nruns < 1 || nruns > MAX_RUNS || probes < 10)
        return 2;
    njobs_max = njobs > probes ? njobs : probes;
    runs_per_job = calloc((size_t)njobs_max, sizeof(*runs_per_job));
    start_ns = calloc((size_t)njobs_max, sizeof(*start_ns));

    cfg_t cfg;
    cfg_init_defaults(&cfg);
    free(cfg.database.url);
    cfg.database.url = strdup(argv[1]);
    cfg.jobs.batch_size = batch;
    cfg.jobs.poll_ms = 1000;
    jobs_registry_t *registry = jobs_registry_new();
    jobs_registry_add(registry, "bench.noop", bench_noop, NULL);
    PGconn *db = PQconnectdb(argv[1]);
    if (PQstatus(db) != CONNECTION_OK) {
        fprintf(stderr, "bench_jobs: %s", PQerrorMessage(db));
        return 1;
    }

    double tput[MAX_RUNS], p50[MAX_RUNS], p99[MAX_RUNS];
    int wrong = 0;
    for (int r = 0; r < nruns; r++) {
        tput[r] = throughput_run(db, &cfg, registry, njobs, workers, &wrong);
        fprintf(stderr, "run %d: %.0f jobs/s\n", r + 1, tput[r]);
    }
    for (int r = 0; r < nruns; r++) {
        delay_run(db, &cfg, registry, probes, workers, &p50[r], &p99[r], &wrong);
        fprintf(stderr, "run %d: start delay p50 %.2f ms, p99 %.2f ms\n", r + 1, p50[r], p99[r]);
    }
    reset(db, 0);
    printf("{\"bench\":\"jobs\",\"jobs\":%d,\"workers\":%d,\"batch\":%d,\"runs\":%d,\"probes\":%d,", njobs,
           workers, batch, nruns, probes);
    print_list("jobs_per_s", tput, nruns);
    print_list("start_delay_p50_ms", p50, nruns);
    print_list("start_delay_p99_ms", p99, nruns);
    double m_tput = median(tput, nruns), m_p50 = median(p50, nruns), m_p99 = median(p99, nruns);
    printf("\"median_jobs_per_s\":%.0f,\"median_start_delay_p50_ms\":%.2f,\"median_start_delay_p99_ms\":%.2f,"
           "\"not_exactly_once\":%d}\n",
           m_tput, m_p50, m_p99, wrong);
    fprintf(stderr, "\nthroughput: median %.0f jobs/s (%d pre-inserted no-op jobs, %d workers, batch %d)\n",
            m_tput, njobs, workers, batch);
    fprintf(stderr, "idle start delay: median p50 %.2f ms, median p99 %.2f ms (%d probes per run)\n", m_p50,
            m_p99, probes);
    fprintf(stderr, "jobs not run exactly once: %d\n", wrong);
    PQfinish(db);
    jobs_registry_free(registry);
    cfg_free(&cfg);
    free(runs_per_job);
    free(start_ns);
    return wrong == 0 ? 0 : 1;
}
