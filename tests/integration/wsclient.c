/*
 * The tests' WebSocket client (wsclient.h).
 */
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int wsc_handshake(wsc_t *c, int port, const char *path, const char *header);

static long long wsc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wsc_write_all(wsc_t *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = c->ssl != NULL ? SSL_write(c->ssl, p, (int)len) : send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into c->in, waiting until deadline. 0, or -1 on timeout or end. */
static int wsc_fill(wsc_t *c, long long deadline)
{
    long long left = deadline - wsc_now_ms();
    if (left <= 0)
        return -1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if ((c->ssl == NULL || SSL_pending(c->ssl) == 0) && poll(&p, 1, (int)left) <= 0)
        return -1;
    if (c->in_cap - c->in_len < 65536) {
        size_t cap = c->in_cap * 2 + 65536;
        unsigned char *grown = realloc(c->in, cap);
        if (grown == NULL)
            return -1;
        c->in = grown;
        c->in_cap = cap;
    }
    ssize_t n;
    if (c->ssl != NULL) {
        n = SSL_read(c->ssl, c->in + c->in_len, (int)(c->in_cap - c->in_len));
        if (n <= 0 && SSL_get_error(c->ssl, (int)n) == SSL_ERROR_WANT_READ)
            return 0; /* a TLS record not complete yet (or a session ticket): read on */
    } else {
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    }
    if (n <= 0)
        return -1;
    c->in_len += (size_t)n;
    return 0;
}

static void wsc_consume(wsc_t *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

static int wsc_connect(wsc_t *c, int port, int tls)
{
    memset(c, 0, sizeof(*c));
    c->answer_pings = 1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    if (!tls)
        return 0;
    signal(SIGPIPE, SIG_IGN); /* SSL_write to a closed socket */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    c->ssl_ctx = ctx;
    if (ctx == NULL || SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
        return -1;
    SSL *ssl = SSL_new(ctx);
    c->ssl = ssl;
    if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1 || SSL_connect(ssl) != 1)
        return -1;
    return 0;
}

int wsc_open_tls(wsc_t *c, int port, const char *path, const char *header)
{
    if (wsc_connect(c, port, 1) != 0)
        return -1;
    return wsc_handshake(c, port, path, header);
}

int wsc_open(wsc_t *c, int port, const char *path, const char *header)
{
    if (wsc_connect(c, port, 0) != 0)
        return -1;
    return wsc_handshake(c, port, path, header);
}

static int wsc_handshake(wsc_t *c, int port, const char *path, const char *header)
{
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
                     path, port, header != NULL ? header : "", header != NULL ? "\r\n" : "");
    if (wsc_write_all(c, req, (size_t)n) != 0)
        return -1;
    long long deadline = wsc_now_ms() + 10000;
    unsigned char *end = NULL;
    while ((end = c->in_len >= 4 ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL) == NULL)
        if (wsc_fill(c, deadline) != 0)
            return -1;
    size_t head_len = (size_t)(end - c->in) + 4;
    if (sscanf((const char *)c->in, "HTTP/1.1 %d", &c->status) != 1)
        return -1;
    if (c->status != 101) {
        /* the body: Content-Length bytes */
        const char *cl = memmem(c->in, head_len, "content-length:", 15);
        size_t body_len = cl != NULL ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        while (c->in_len < head_len + body_len && wsc_fill(c, deadline) == 0)
            ;
        size_t copy = c->in_len - head_len < sizeof(c->body) - 1 ? c->in_len - head_len : sizeof(c->body) - 1;
        memcpy(c->body, c->in + head_len, copy);
        c->body[copy] = '\0';
    }
    wsc_consume(c, head_len);
    return c->status;
}

int wsc_send_frame(wsc_t *c, int opcode, int fin, const void *data, size_t len)
{
    unsigned char head[14];
    size_t h = 0;
    head[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        head[h++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        head[h++] = 0x80 | 126;
        head[h++] = (unsigned char)(len >> 8);
        head[h++] = (unsigned char)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            head[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    static const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(head + h, mask, 4);
    h += 4;
    unsigned char *frame = malloc(h + len);
    if (frame == NULL)
        return -1;
    memcpy(frame, head, h);
    for (size_t i = 0; i < len; i++)
        frame[h + i] = ((const unsigned char *)data)[i] ^ mask[i % 4];
    int rc = wsc_write_all(c, frame, h + len);
    free(frame);
    return rc;
}

int wsc_send_text(wsc_t *c, const char *text)
{
    return wsc_send_frame(c, WSC_TEXT, 1, text, strlen(text));
}

int wsc_recv(wsc_t *c, char **data, size_t *len, int timeout_ms)
{
    long long deadline = wsc_now_ms() + timeout_ms;
    for (;;) {
        size_t need = 2;
        while (c->in_len < need)
            if (wsc_fill(c, deadline) != 0)
                return -1;
        int opcode = c->in[0] & 0x0f;
        uint64_t plen = c->in[1] & 0x7f;
        if (plen == 126)
            need = 4;
        else if (plen == 127)
            need = 10;
        while (c->in_len < need)
            if (wsc_fill(c, deadline) != 0)
                return -1;
        if (plen == 126)
            plen = (uint64_t)c->in[2] << 8 | c->in[3];
        else if (plen == 127)
            for (int i = 0; i < 8; i++)
                plen = (i == 0 ? 0 : plen << 8) | c->in[2 + i];
        if (plen > (1u << 24))
            return -1;
        while (c->in_len < need + plen)
            if (wsc_fill(c, deadline) != 0)
                return -1;
        char *payload = malloc(plen + 1);
        if (payload == NULL)
            return -1;
        memcpy(payload, c->in + need, plen);
        payload[plen] = '\0';
        wsc_consume(c, need + plen);
        if (opcode == WSC_PING) {
            c->pings_seen++;
            if (c->answer_pings)
                wsc_send_frame(c, WSC_PONG, 1, payload, plen);
        }
        *data = payload;
        *len = plen;
        return opcode;
    }
}

json_t *wsc_next(wsc_t *c, const char *type, int timeout_ms, int *close_code)
{
    long long deadline = wsc_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - wsc_now_ms();
        char *data = NULL;
        size_t len = 0;
        int opcode = left > 0 ? wsc_recv(c, &data, &len, (int)left) : -1;
        if (opcode < 0)
            return NULL;
        if (opcode == WSC_CLOSE) {
            if (close_code != NULL)
                *close_code = len >= 2 ? ((unsigned char)data[0] << 8 | (unsigned char)data[1]) : 1005;
            free(data);
            return NULL;
        }
        json_t *doc = opcode == WSC_TEXT ? json_loadb(data, len, 0, NULL) : NULL;
        free(data);
        const char *t = json_string_value(json_object_get(doc, "type"));
        if (t != NULL && strcmp(t, type) == 0)
            return doc;
        json_decref(doc);
    }
}

int wsc_wait_close(wsc_t *c, int timeout_ms)
{
    int code = -1;
    json_t *doc = NULL;
    /* a type no frame has: skips everything up to the close */
    while ((doc = wsc_next(c, "\x01", timeout_ms, &code)) != NULL)
        json_decref(doc);
    return code;
}

void wsc_close(wsc_t *c, int code)
{
    if (c->fd >= 0) {
        unsigned char payload[2] = {(unsigned char)(code >> 8), (unsigned char)code};
        wsc_send_frame(c, WSC_CLOSE, 1, payload, code > 0 ? 2 : 0);
        close(c->fd);
    }
    SSL_free(c->ssl);
    SSL_CTX_free(c->ssl_ctx);
    c->ssl = c->ssl_ctx = NULL;
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}
