/*
 * A notification stream (GET /api/v1/notifications/stream) read by a thread of its own
 * through libcurl, for the tests of the realtime routes (test_notifications, test_events).
 */
#ifndef HYDRANT_TEST_HARNESS_SSE_H
#define HYDRANT_TEST_HARNESS_SSE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "harness.h"

#define HARNESS_SSE_MAX_EVENTS 32
#define HARNESS_SSE_DATA_MAX   4096

/* Reads until it has `want` events, the stream ends, or 10 s pass. */
typedef struct {
    pthread_t thread;
    char url[512];
    const char *headers[3];
    int protocol, want;
    char buf[131072];
    size_t len;
    atomic_int started, finished;
    int nevents; /* the complete events read (comments skipped) */
    long long ids[HARNESS_SSE_MAX_EVENTS];
    char names[HARNESS_SSE_MAX_EVENTS][32];
    char data[HARNESS_SSE_MAX_EVENTS][HARNESS_SSE_DATA_MAX];
    int curl_code;
    long status;
} harness_sse_t;

/* Opens the stream of server s over protocol with the credentials header auth ("Authorization:
 * Bearer ...") and one extra header (or NULL); waits (bounded) for its first bytes. Returns
 * the reader (free it after harness_sse_join), or NULL when nothing came. */
harness_sse_t *harness_sse_open(const harness_server_t *s, int protocol, const char *auth, const char *extra,
                                int want);
/* Waits for the reader's end (it stops itself at `want` events or after 10 s). */
void harness_sse_join(harness_sse_t *rd);

#endif
