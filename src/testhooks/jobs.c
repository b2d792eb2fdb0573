/*
 * Kinds for the test suite, registered only outside production when HYDRANT_TEST_JOBS=1. Each appends one
 * line per event ("<event> <job id> <attempt>") to the file named by HYDRANT_TEST_JOBS_LOG, so a test in
 * another process can see what ran, how often and in which order. One write() of a short line with O_APPEND
 * stays whole.
 *
 * test.noop                          succeeds at once
 * test.sleep {"ms": N}               sleeps N ms in steps of at most 10, released when the pool stops
 * test.fail  {"times": K, "permanent": bool}
 *                                    fails its first K attempts (transient unless permanent)
 */
#include "testhooks/testhooks.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void test_log(const jobs_run_t *run, const char *event)
{
    const char *path = getenv("HYDRANT_TEST_JOBS_LOG");
    if (path == NULL || *path == '\0')
        return;
    char line[160];
    int n = snprintf(line, sizeof(line), "%s %s %d\n", event, run->id, run->attempt);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ssize_t written = write(fd, line, (size_t)n);
    (void)written;
    close(fd);
}

static jobs_outcome_t test_noop(jobs_run_t *run)
{
    test_log(run, "run");
    return JOBS_DONE;
}

static jobs_outcome_t test_sleep(jobs_run_t *run)
{
    json_int_t ms = json_integer_value(json_object_get(run->payload, "ms"));
    test_log(run, "start");
    for (json_int_t slept = 0, step_ms; slept < ms; slept += step_ms) {
        if (jobs_stopping(run)) {
            test_log(run, "released");
            return JOBS_RELEASE;
        }
        step_ms = ms - slept < 10 ? ms - slept : 10;
        struct timespec step = {0, (long)step_ms * 1000000L};
        nanosleep(&step, NULL);
    }
    test_log(run, "done");
    run->result = json_pack("{s:I}", "slept_ms", ms);
    return JOBS_DONE;
}

static jobs_outcome_t test_fail(jobs_run_t *run)
{
    json_int_t times = json_integer_value(json_object_get(run->payload, "times"));
    int permanent = json_is_true(json_object_get(run->payload, "permanent"));
    if (run->attempt <= times) {
        test_log(run, "fail");
        snprintf(run->error, sizeof(run->error), "test failure on attempt %d", run->attempt);
        return permanent ? JOBS_PERMANENT : JOBS_RETRY;
    }
    test_log(run, "run");
    return JOBS_DONE;
}

int testhooks_jobs_register(jobs_registry_t *registry, const cfg_t *cfg, char *err, size_t errlen)
{
    const char *flag = getenv("HYDRANT_TEST_JOBS");
    if (flag == NULL || strcmp(flag, "1") != 0)
        return 0;
    if (cfg->mode == CFG_MODE_PRODUCTION) {
        snprintf(err, errlen, "HYDRANT_TEST_JOBS is refused in production mode");
        return -1;
    }
    if (jobs_registry_add(registry, "test.noop", test_noop, NULL) != 0 ||
        jobs_registry_add(registry, "test.sleep", test_sleep, NULL) != 0 ||
        jobs_registry_add(registry, "test.fail", test_fail, NULL) != 0) {
        snprintf(err, errlen, "jobs: cannot register the test kinds");
        return -1;
    }
    return 0;
}
