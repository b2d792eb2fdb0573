/*
 * A raw HTTP/2-over-TLS client for edge tests (h2raw.c): frames as an attacker sends them.
 */
#ifndef HYDRANT_TEST_H2RAW_H
#define HYDRANT_TEST_H2RAW_H

#include <stdint.h>

typedef struct h2raw h2raw_t;

/* TLS to 127.0.0.1:port with ALPN h2, the preface and an empty SETTINGS sent. NULL on failure. */
h2raw_t *h2raw_connect(int port);
/* Queues a GET of path on stream (odd, increasing) with an optional Authorization value,
 * ending the stream; with reset, a RST_STREAM (CANCEL) right behind it. 0 or -1. */
int h2raw_request(h2raw_t *h, uint32_t stream, const char *path, const char *authorization, int reset);
/* Writes what is queued. 0, or -1 when the connection is gone. */
int h2raw_flush(h2raw_t *h);
/* Reads for up to timeout_ms (until the server closes the connection). Returns whether it
 * is closed. */
int h2raw_pump(h2raw_t *h, int timeout_ms);
/* Response heads (HEADERS frames) received so far. */
int h2raw_responses(const h2raw_t *h);
int h2raw_closed(const h2raw_t *h);
void h2raw_close(h2raw_t *h);

#endif
