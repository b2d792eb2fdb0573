/*
 * A small WebSocket client for the integration tests (RFC 6455 over a plain TCP socket to
 * 127.0.0.1): the HTTP/1.1 upgrade, masked frames out (optionally fragmented), frames in,
 * pings answered. Every wait is bounded by a timeout.
 */
#ifndef HYDRANT_TEST_WSCLIENT_H
#define HYDRANT_TEST_WSCLIENT_H

#include <stddef.h>
#include <jansson.h>

enum { WSC_TEXT = 1, WSC_BINARY = 2, WSC_CLOSE = 8, WSC_PING = 9, WSC_PONG = 10 };

typedef struct {
    int fd;
    int status;        /* the handshake's HTTP status */
    char body[4096];   /* the answer's body when the status is not 101 */
    unsigned char *in; /* bytes read, not consumed yet */
    size_t in_len, in_cap;
    void *ssl; /* an SSL * over TLS, else NULL */
    void *ssl_ctx;
    int answer_pings; /* default 1 */
    int pings_seen;
} wsc_t;

/* Connects to 127.0.0.1:port and asks to upgrade path; header is one more "Name: value" line
 * or NULL. Returns the HTTP status (101 when upgraded), or -1 when the connection failed. */
int wsc_open(wsc_t *c, int port, const char *path, const char *header);
/* The same over TLS (ALPN http/1.1, as browsers open WebSockets; the certificate is not
 * checked). */
int wsc_open_tls(wsc_t *c, int port, const char *path, const char *header);
/* One frame (masked), fin set or not: 0 or -1. */
int wsc_send_frame(wsc_t *c, int opcode, int fin, const void *data, size_t len);
int wsc_send_text(wsc_t *c, const char *text);
/* The next frame within timeout_ms: its opcode, *data (malloc'd, NUL-terminated) and *len;
 * pings are answered (unless answer_pings is 0) and returned too. -1 on timeout or end of
 * stream. */
int wsc_recv(wsc_t *c, char **data, size_t *len, int timeout_ms);
/* The next text frame that is a JSON object whose "type" is type (others skipped), within
 * timeout_ms; NULL otherwise (also when a close frame comes first: its code then goes into
 * *close_code when not NULL). */
json_t *wsc_next(wsc_t *c, const char *type, int timeout_ms, int *close_code);
/* Reads until a close frame: its code (1005 when it has none), or -1 on timeout / end of
 * stream without one. */
int wsc_wait_close(wsc_t *c, int timeout_ms);
/* Sends a close frame (code) and closes the socket. */
void wsc_close(wsc_t *c, int code);

#endif
