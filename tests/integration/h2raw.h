/*
 * A raw HTTP/2-over-TLS client for edge tests (h2raw.c): frames as an attacker sends them.
 */
#ifndef HYDRANT_TEST_H2RAW_H
#define HYDRANT_TEST_H2RAW_H

#include <stddef.h>
#include <stdint.h>

typedef struct h2raw h2raw_t;

/* TLS to 127.0.0.1:port with ALPN h2, the preface and an empty SETTINGS sent. NULL on failure. */
h2raw_t *h2raw_connect(int port);
/* The same with SETTINGS_INITIAL_WINDOW_SIZE = window: 0 is a client that reads nothing;
 * above 65,535 the connection's window is opened to 1 GiB too, a client that reads all. */
h2raw_t *h2raw_connect_window(int port, uint32_t window);
/* Queues a GET of path on stream (odd, increasing) with an optional Authorization value,
 * ending the stream; with reset, a RST_STREAM (CANCEL) right behind it. 0 or -1. */
int h2raw_request(h2raw_t *h, uint32_t stream, const char *path, const char *authorization, int reset);
/* Queues the head of a POST of path on stream with a body to come (no END_STREAM). 0 or -1. */
int h2raw_post_head(h2raw_t *h, uint32_t stream, const char *path);
/* Queues len bytes ('x') of body on stream in DATA frames of at most 16 KiB, the last one
 * ending the stream when end is set. 0 or -1. */
int h2raw_post_data(h2raw_t *h, uint32_t stream, size_t len, int end);
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
