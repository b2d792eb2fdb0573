/*
 * What the realtime load clients (sse_load.c, ws_load.c) share: the clock, the servers'
 * memory, latency samples, the accounts file, loopback connects, and reading a Message's
 * created_at.
 */
#ifndef HYDRANT_BENCH_REALTIME_LOAD_H
#define HYDRANT_BENCH_REALTIME_LOAD_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_REALTIME in nanoseconds: the servers' timestamps use the same clock. */
uint64_t load_now_ns(void);

/* The sum of VmRSS (KiB) of the given processes. */
long load_rss_kib(const int *pids, int npids);

/* Latencies in microseconds (saturating at UINT32_MAX). */
typedef struct {
    uint32_t *us;
    size_t n, cap;
} load_samples_t;
void load_samples_push(load_samples_t *s, uint64_t ns);
void load_samples_sort(load_samples_t *s);
/* The q-quantile of sorted samples in milliseconds; -1 when there are none. */
double load_samples_ms(const load_samples_t *s, double q);
void load_samples_free(load_samples_t *s);

/* One account a line: "<access token> <room id>". */
typedef struct {
    char token[600];
    char room[40];
} load_account_t;
/* Reads them into *out (malloc'd); returns how many, or -1. */
int load_accounts(const char *path, load_account_t **out);

/* A nonblocking TCP connect to 127.0.0.1:port (TCP_NODELAY); -1 on failure. */
int load_connect(int port);

/* The first "created_at" of a Message's JSON in text[0..len) ("YYYY-MM-DDTHH:MM:SS.mmmZ", the
 * database's clock at its write, to the millisecond) in nanoseconds; 0 when absent. */
uint64_t load_created_at_ns(const char *text, size_t len);

/* The number after the first `"t=` in text (the client's send time its message carries);
 * 0 when absent. */
uint64_t load_sent_ns(const char *text, size_t len);

#endif
