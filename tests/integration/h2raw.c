/*
 * A raw HTTP/2 client over TLS for the tests of hydrant's edge: it sends frames the way an
 * attacker would (a request and its reset in one write, thousands of them) and reads back
 * only what those tests look at: which streams got a response, and whether the server closed
 * the connection. Requests are encoded with HPACK literals and static-table indexes only;
 * responses are not decoded (their header blocks are counted, not read).
 */
#include "h2raw.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

enum { H2_DATA = 0, H2_HEADERS = 1, H2_RST_STREAM = 3, H2_SETTINGS = 4, H2_GOAWAY = 7, H2_WINDOW_UPDATE = 8 };

struct h2raw {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    unsigned char *out;
    size_t out_len, out_cap;
    unsigned char in[1 << 16];
    size_t in_len;
    int closed;
    int responses; /* HEADERS frames received on streams (response heads) */
    int goaway;
};

static int h2raw_put(h2raw_t *h, const void *p, size_t n)
{
    if (h->out_len + n > h->out_cap) {
        size_t cap = h->out_cap ? h->out_cap * 2 : 65536;
        while (cap < h->out_len + n)
            cap *= 2;
        unsigned char *grown = realloc(h->out, cap);
        if (grown == NULL)
            return -1;
        h->out = grown;
        h->out_cap = cap;
    }
    memcpy(h->out + h->out_len, p, n);
    h->out_len += n;
    return 0;
}

static int h2raw_frame(h2raw_t *h, int type, int flags, uint32_t stream, const void *payload, size_t len)
{
    unsigned char head[9] = {
        (unsigned char)(len >> 16),    (unsigned char)(len >> 8),    (unsigned char)len,
        (unsigned char)type,           (unsigned char)flags,         (unsigned char)(stream >> 24),
        (unsigned char)(stream >> 16), (unsigned char)(stream >> 8), (unsigned char)stream};
    return h2raw_put(h, head, 9) || (len > 0 && h2raw_put(h, payload, len)) ? -1 : 0;
}

/* HPACK: a literal without indexing, either with a static-table name index or a new name;
 * lengths here stay below 127 except values, which use the multi-byte integer form. */
static size_t hpack_int(unsigned char *out, unsigned prefix_bits, unsigned first, size_t value)
{
    size_t max = (1u << prefix_bits) - 1, n = 0;
    if (value < max) {
        out[n++] = (unsigned char)(first | value);
        return n;
    }
    out[n++] = (unsigned char)(first | max);
    value -= max;
    while (value >= 128) {
        out[n++] = (unsigned char)(value % 128 + 128);
        value /= 128;
    }
    out[n++] = (unsigned char)value;
    return n;
}

static size_t hpack_literal(unsigned char *out, int name_index, const char *name, const char *value)
{
    size_t n = hpack_int(out, 4, 0x00, (size_t)name_index);
    if (name_index == 0) {
        n += hpack_int(out + n, 7, 0x00, strlen(name));
        memcpy(out + n, name, strlen(name));
        n += strlen(name);
    }
    n += hpack_int(out + n, 7, 0x00, strlen(value));
    memcpy(out + n, value, strlen(value));
    return n + strlen(value);
}

static h2raw_t *h2raw_open(int port, const unsigned char *settings, size_t settings_len);

h2raw_t *h2raw_connect(int port)
{
    return h2raw_open(port, NULL, 0);
}

h2raw_t *h2raw_connect_window(int port, uint32_t window)
{
    const unsigned char settings[6] = {0,
                                       4,
                                       (unsigned char)(window >> 24),
                                       (unsigned char)(window >> 16),
                                       (unsigned char)(window >> 8),
                                       (unsigned char)window};
    h2raw_t *h = h2raw_open(port, settings, sizeof(settings));
    const unsigned char increment[4] = {0x40, 0, 0, 0};
    if (h != NULL && window > 65535 &&
        (h2raw_frame(h, H2_WINDOW_UPDATE, 0, 0, increment, sizeof(increment)) != 0 || h2raw_flush(h) != 0)) {
        h2raw_close(h);
        return NULL;
    }
    return h;
}

static h2raw_t *h2raw_open(int port, const unsigned char *settings, size_t settings_len)
{
    h2raw_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int on = 1;
    setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    static const unsigned char alpn[] = {2, 'h', '2'};
    h->ctx = SSL_CTX_new(TLS_client_method());
    if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || h->ctx == NULL ||
        SSL_CTX_set_alpn_protos(h->ctx, alpn, sizeof(alpn)) != 0 || (h->ssl = SSL_new(h->ctx)) == NULL ||
        SSL_set_fd(h->ssl, h->fd) != 1 || SSL_connect(h->ssl) != 1) {
        h2raw_close(h);
        return NULL;
    }
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (h2raw_put(h, preface, sizeof(preface) - 1) != 0 ||
        h2raw_frame(h, H2_SETTINGS, 0, 0, settings, settings_len) != 0 || h2raw_flush(h) != 0) {
        h2raw_close(h);
        return NULL;
    }
    return h;
}

/* The pseudo-headers of a request: :method (0x82 GET, 0x83 POST from the static table),
 * :scheme https, :path, :authority. Returns the bytes written (path under 1 KiB). */
static size_t hpack_request_line(unsigned char *block, unsigned char method, const char *path)
{
    size_t n = 0;
    block[n++] = method;
    block[n++] = 0x87;
    n += hpack_literal(block + n, 4, NULL, path);
    return n + hpack_literal(block + n, 1, NULL, "127.0.0.1");
}

int h2raw_request(h2raw_t *h, uint32_t stream, const char *path, const char *authorization, int reset)
{
    unsigned char block[2048];
    size_t n = hpack_request_line(block, 0x82, path);
    if (authorization != NULL && strlen(authorization) < 1500)
        n += hpack_literal(block + n, 0, "authorization", authorization);
    if (h2raw_frame(h, H2_HEADERS, 0x1 | 0x4, stream, block, n) != 0) /* END_STREAM | END_HEADERS */
        return -1;
    if (!reset)
        return 0;
    static const unsigned char cancel[4] = {0, 0, 0, 8};
    return h2raw_frame(h, H2_RST_STREAM, 0, stream, cancel, sizeof(cancel));
}

int h2raw_post_head(h2raw_t *h, uint32_t stream, const char *path)
{
    unsigned char block[2048];
    size_t n = hpack_request_line(block, 0x83, path);
    n += hpack_literal(block + n, 31, NULL, "application/octet-stream"); /* content-type */
    return h2raw_frame(h, H2_HEADERS, 0x4, stream, block, n);            /* END_HEADERS */
}

int h2raw_post_data(h2raw_t *h, uint32_t stream, size_t len, int end)
{
    static unsigned char chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    do {
        size_t n = len < sizeof(chunk) ? len : sizeof(chunk);
        len -= n;
        if (h2raw_frame(h, H2_DATA, end && len == 0 ? 0x1 : 0, stream, chunk, n) != 0)
            return -1;
    } while (len > 0);
    return 0;
}

int h2raw_flush(h2raw_t *h)
{
    size_t off = 0;
    while (off < h->out_len) {
        int n = SSL_write(h->ssl, h->out + off, (int)(h->out_len - off));
        if (n <= 0) {
            h->closed = 1;
            h->out_len = 0;
            return -1;
        }
        off += (size_t)n;
    }
    h->out_len = 0;
    return 0;
}

/* Handles the frames complete in the input buffer: counts response heads, acknowledges the
 * server's SETTINGS, notes GOAWAY. */
static void h2raw_consume(h2raw_t *h)
{
    size_t off = 0;
    while (h->in_len - off >= 9) {
        const unsigned char *f = h->in + off;
        size_t len = ((size_t)f[0] << 16) | ((size_t)f[1] << 8) | f[2];
        if (h->in_len - off < 9 + len)
            break;
        int type = f[3], flags = f[4];
        if (type == H2_HEADERS)
            h->responses++;
        else if (type == H2_SETTINGS && !(flags & 1))
            h2raw_frame(h, H2_SETTINGS, 1, 0, NULL, 0);
        else if (type == H2_GOAWAY)
            h->goaway = 1;
        off += 9 + len;
    }
    memmove(h->in, h->in + off, h->in_len - off);
    h->in_len -= off;
}

int h2raw_pump(h2raw_t *h, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (!h->closed) {
        if (SSL_pending(h->ssl) == 0) {
            long long left = deadline - harness_now_ms();
            struct pollfd p = {.fd = h->fd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                break;
        }
        int n = SSL_read(h->ssl, h->in + h->in_len, (int)(sizeof(h->in) - h->in_len));
        if (n <= 0) {
            h->closed = 1;
            break;
        }
        h->in_len += (size_t)n;
        h2raw_consume(h);
        if (h->in_len == sizeof(h->in))
            h->in_len = 0; /* a frame larger than the buffer: not one these tests expect */
    }
    if (!h->closed)
        h2raw_flush(h); /* the SETTINGS acknowledgements */
    return h->closed;
}

int h2raw_responses(const h2raw_t *h)
{
    return h->responses;
}

int h2raw_closed(const h2raw_t *h)
{
    return h->closed;
}

void h2raw_close(h2raw_t *h)
{
    if (h == NULL)
        return;
    if (h->ssl != NULL)
        SSL_free(h->ssl);
    if (h->ctx != NULL)
        SSL_CTX_free(h->ctx);
    if (h->fd >= 0)
        close(h->fd);
    free(h->out);
    free(h);
}
