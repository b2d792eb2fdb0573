/*
 * idle_conns: holds many idle HTTP/2-over-TLS connections open against a local server.
 *
 *   idle_conns [-n CONNECTIONS] [-p PORT] [-a 127.0.0.1] [-c IN_FLIGHT] [-d DEADLINE_S]
 *
 * Opens CONNECTIONS (default 10000) TLS connections to 127.0.0.1:PORT (default 58110) with
 * ALPN "h2", at most IN_FLIGHT (default 500) of them connecting or handshaking at a time so
 * the server's accept queue is never overrun. On each it sends the HTTP/2 connection preface
 * and an empty SETTINGS frame, reads until the server's SETTINGS arrive and answers them with
 * a SETTINGS ACK; from then on the connection is "established" and stays idle (PING frames
 * are answered, everything else is read and ignored).
 *
 * Output: progress on stderr; once every connection is either established or failed, one
 * line "ready N" on stdout (N = established), then "failed F". At the end
 * "stopped held H lost L" (L = established connections the server closed meanwhile).
 *
 * Stopping: SIGTERM or SIGINT ends it (exit status 0). It always ends by itself after the
 * overall deadline DEADLINE_S (default 120 s, exit status 3). Only 127.0.0.1 is accepted as
 * the address. One thread, nonblocking sockets, level-triggered epoll; no certificate
 * verification (it is a load generator for a development certificate).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SETUP_TIMEOUT_MS 15000 /* one connection's connect + handshake + SETTINGS */
#define OUTBUF_SIZE      96
#define SIGNAL_TAG       UINT64_MAX

enum conn_state {
    ST_UNUSED = 0, /* not started yet */
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_SETTINGS, /* preface sent, waiting for the server's SETTINGS */
    ST_IDLE,     /* established */
    ST_FAILED,   /* never established */
    ST_LOST,     /* established, then closed by the server */
};

typedef struct {
    int fd;
    uint8_t state;
    uint8_t hdr_have; /* bytes of the current frame header read */
    uint8_t goaway;
    uint32_t events;     /* epoll interest currently registered */
    uint32_t skip;       /* payload bytes still to skip in the current frame */
    uint32_t frame_len;  /* payload length of the current frame */
    uint16_t out_len;    /* bytes pending in out[] */
    uint16_t out_flight; /* length of an SSL_write that must be retried as is, else 0 */
    uint8_t hdr[9];
    uint8_t ping[8];
    uint8_t want_write; /* the last TLS operation wants the socket writable */
    SSL *ssl;
    uint64_t started_ms;
    uint8_t out[OUTBUF_SIZE];
} conn_t;

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* empty SETTINGS */
static const uint8_t settings_ack[9] = {0, 0, 0, 0x04, 0x01, 0, 0, 0, 0};

static conn_t *conns;
static int nconns;
static int epfd;
static SSL_CTX *ssl_ctx;
static struct sockaddr_in target;
static int in_flight, next_conn, established, failed, lost, resolved;
static int verbose_errors = 10; /* the first few failures and losses are explained */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: idle_conns [-n CONNECTIONS] [-p PORT] [-a 127.0.0.1] [-c IN_FLIGHT] [-d DEADLINE_S]\n");
    exit(2);
}

static int parse_int(const char *s, int min, int max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        usage();
    return (int)v;
}

static void set_events(conn_t *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)(c - conns)};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = events;
}

/* Frees the connection's resources and records how it ended. */
static void conn_end(conn_t *c, const char *why)
{
    int was_established = c->state == ST_IDLE;
    if (!was_established) {
        in_flight--;
        failed++;
        resolved++;
    } else {
        established--;
        lost++;
    }
    if (verbose_errors > 0) {
        verbose_errors--;
        unsigned long e = ERR_peek_last_error();
        char reason[160] = "";
        if (e != 0)
            ERR_error_string_n(e, reason, sizeof(reason));
        fprintf(stderr, "idle_conns: connection %d %s: %s%s%s%s\n", (int)(c - conns),
                was_established ? "lost" : "failed", why, c->goaway ? " (after GOAWAY)" : "",
                e != 0 ? ": " : "", reason);
    }
    ERR_clear_error();
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = was_established ? ST_LOST : ST_FAILED;
}

static int queue_out(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->out_len + n > sizeof(c->out))
        return -1;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint16_t)n;
    return 0;
}

/* 0: nothing or everything written or waiting for the socket; -1: the connection failed. */
static int flush_out(conn_t *c)
{
    while (c->out_len > 0) {
        int len = c->out_flight != 0 ? c->out_flight : c->out_len;
        int n = SSL_write(c->ssl, c->out, len);
        if (n > 0) {
            memmove(c->out, c->out + n, (size_t)(c->out_len - n));
            c->out_len -= (uint16_t)n;
            c->out_flight = 0;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);
        if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
            c->out_flight = (uint16_t)len;
            c->want_write = err == SSL_ERROR_WANT_WRITE;
            return 0;
        }
        return -1;
    }
    return 0;
}

/* Consumes p[0..n) frame by frame; acts on SETTINGS, PING and GOAWAY, skips the rest. */
static int on_bytes(conn_t *c, const uint8_t *p, size_t n)
{
    for (;;) {
        if (c->hdr_have < 9) {
            if (n == 0)
                return 0;
            size_t take = 9u - c->hdr_have < n ? 9u - c->hdr_have : n;
            memcpy(c->hdr + c->hdr_have, p, take);
            c->hdr_have += (uint8_t)take;
            p += take;
            n -= take;
            if (c->hdr_have < 9)
                return 0;
            c->frame_len = (uint32_t)c->hdr[0] << 16 | (uint32_t)c->hdr[1] << 8 | c->hdr[2];
            c->skip = c->frame_len;
        }
        uint8_t type = c->hdr[3], flags = c->hdr[4];
        int is_ping = type == 0x06 && c->frame_len == 8 && !(flags & 0x01);
        if (c->skip > 0) {
            if (n == 0)
                return 0;
            size_t take = c->skip < n ? c->skip : n;
            if (is_ping)
                memcpy(c->ping + (8 - c->skip), p, take);
            c->skip -= (uint32_t)take;
            p += take;
            n -= take;
            if (c->skip > 0)
                return 0;
        }
        /* the frame is complete */
        if (type == 0x04 && !(flags & 0x01)) { /* SETTINGS */
            if (queue_out(c, settings_ack, sizeof(settings_ack)) != 0)
                return -1;
            if (c->state == ST_SETTINGS) {
                c->state = ST_IDLE;
                in_flight--;
                established++;
                resolved++;
            }
        } else if (is_ping) {
            uint8_t ack[17] = {0, 0, 8, 0x06, 0x01, 0, 0, 0, 0};
            memcpy(ack + 9, c->ping, 8);
            if (queue_out(c, ack, sizeof(ack)) != 0)
                return -1;
        } else if (type == 0x07) { /* GOAWAY: the server is closing; read until it does */
            c->goaway = 1;
        }
        c->hdr_have = 0;
    }
}

static void update_interest(conn_t *c)
{
    uint32_t ev = EPOLLIN;
    if (c->want_write)
        ev |= EPOLLOUT;
    set_events(c, ev);
}

/* Everything a readable or writable socket allows, for a connection past the TCP connect. */
static void conn_drive(conn_t *c)
{
    c->want_write = 0;
    if (c->state == ST_HANDSHAKE) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc != 1) {
            int err = SSL_get_error(c->ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                c->want_write = err == SSL_ERROR_WANT_WRITE;
                update_interest(c);
                return;
            }
            conn_end(c, "TLS handshake");
            return;
        }
        const unsigned char *alpn = NULL;
        unsigned int alpn_len = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
        if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
            conn_end(c, "the server did not select ALPN h2");
            return;
        }
        c->state = ST_SETTINGS;
        queue_out(c, preface, sizeof(preface) - 1);
    }
    if (flush_out(c) != 0) {
        conn_end(c, "TLS write");
        return;
    }
    if (c->out_flight == 0) {
        uint8_t buf[16384];
        for (;;) {
            int n = SSL_read(c->ssl, buf, sizeof(buf));
            if (n > 0) {
                if (on_bytes(c, buf, (size_t)n) != 0) {
                    conn_end(c, "output buffer overflow");
                    return;
                }
                continue;
            }
            int err = SSL_get_error(c->ssl, n);
            if (err == SSL_ERROR_WANT_READ)
                break;
            if (err == SSL_ERROR_WANT_WRITE) {
                c->want_write = 1;
                break;
            }
            conn_end(c, err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL ? "closed by the server"
                                                                                 : "TLS read");
            return;
        }
        if (flush_out(c) != 0) {
            conn_end(c, "TLS write");
            return;
        }
    }
    update_interest(c);
}

static void conn_on_connected(conn_t *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
        errno = soerr;
        conn_end(c, soerr == ECONNREFUSED ? "connection refused" : "connect");
        return;
    }
    c->ssl = SSL_new(ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        conn_end(c, "SSL_new");
        return;
    }
    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;
    conn_drive(c);
}

static void conn_start(conn_t *c)
{
    c->started_ms = now_ms();
    in_flight++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_end(c, "socket (out of file descriptors?)");
        return;
    }
    int on = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    c->state = ST_CONNECTING;
    int rc = connect(c->fd, (struct sockaddr *)&target, sizeof(target));
    if (rc != 0 && errno != EINPROGRESS) {
        conn_end(c, "connect");
        return;
    }
    c->events = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)(c - conns)};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_end(c, "epoll_ctl");
        return;
    }
}

static void on_event(conn_t *c, uint32_t events)
{
    if (c->fd < 0)
        return;
    if (c->state == ST_CONNECTING) {
        conn_on_connected(c);
        return;
    }
    (void)events;
    conn_drive(c);
}

static void expire_slow_setups(uint64_t now)
{
    for (int i = 0; i < next_conn; i++) {
        conn_t *c = &conns[i];
        if ((c->state == ST_CONNECTING || c->state == ST_HANDSHAKE || c->state == ST_SETTINGS) &&
            now - c->started_ms > SETUP_TIMEOUT_MS)
            conn_end(c, "timed out before the server's SETTINGS");
    }
}

static int check_fd_limit(int n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rlim_t need = (rlim_t)n + 64;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max >= need || rl.rlim_max == RLIM_INFINITY) {
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return 0;
    }
    fprintf(stderr,
            "idle_conns: %d connections need %lu file descriptors, the limit is %lu (hard %lu); raise ulimit "
            "-n\n",
            n, (unsigned long)need, (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_max);
    return -1;
}

int main(int argc, char **argv)
{
    int port = 58110, max_in_flight = 500, deadline_s = 120;
    nconns = 10000;
    int opt;
    while ((opt = getopt(argc, argv, "n:p:a:c:d:")) != -1) {
        switch (opt) {
        case 'n':
            nconns = parse_int(optarg, 1, 1000000);
            break;
        case 'p':
            port = parse_int(optarg, 1, 65535);
            break;
        case 'a': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1 || a.s_addr != htonl(INADDR_LOOPBACK)) {
                fprintf(stderr, "idle_conns: refusing address %s: only 127.0.0.1 is allowed\n", optarg);
                return 2;
            }
            break;
        }
        case 'c':
            max_in_flight = parse_int(optarg, 1, 100000);
            break;
        case 'd':
            deadline_s = parse_int(optarg, 1, 86400);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if (check_fd_limit(nconns) != 0)
        return 1;

    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* never anything else */

    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (ssl_ctx == NULL) {
        fprintf(stderr, "idle_conns: SSL_CTX_new failed\n");
        return 1;
    }
    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    /* Idle client connections keep no TLS record buffers; this is the client's memory, not
     * the server's, but keeps 10,000 connections cheap on a shared machine. */
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ssl_ctx, alpn, sizeof(alpn)) != 0) {
        fprintf(stderr, "idle_conns: cannot set ALPN\n");
        return 1;
    }

    conns = calloc((size_t)nconns, sizeof(conn_t));
    if (conns == NULL) {
        fprintf(stderr, "idle_conns: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nconns; i++)
        conns[i].fd = -1;

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || epfd < 0) {
        fprintf(stderr, "idle_conns: cannot create signalfd/epoll: %s\n", strerror(errno));
        return 1;
    }
    struct epoll_event sev = {.events = EPOLLIN, .data.u64 = SIGNAL_TAG};
    epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &sev);

    uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)deadline_s * 1000, last_progress = t0, last_expire = t0;
    int ready_printed = 0, stop = 0, exit_code = 0;
    fprintf(stderr,
            "idle_conns: opening %d connections to 127.0.0.1:%d (at most %d in flight, deadline %d s)\n",
            nconns, port, max_in_flight, deadline_s);
    struct epoll_event events[256];
    while (!stop) {
        while (next_conn < nconns && in_flight < max_in_flight)
            conn_start(&conns[next_conn++]);
        uint64_t now = now_ms();
        if (!ready_printed && resolved == nconns) {
            fprintf(stderr, "idle_conns: %d established, %d failed in %.2f s; holding them idle\n",
                    established, failed, (double)(now - t0) / 1000.0);
            printf("ready %d\nfailed %d\n", established, failed);
            fflush(stdout);
            ready_printed = 1;
        }
        if (now >= deadline) {
            fprintf(stderr, "idle_conns: deadline of %d s reached, exiting\n", deadline_s);
            exit_code = 3;
            break;
        }
        int timeout = (int)(deadline - now < 200 ? deadline - now : 200);
        int n = epoll_wait(epfd, events, (int)(sizeof(events) / sizeof(events[0])), timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "idle_conns: epoll_wait: %s\n", strerror(errno));
            exit_code = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 == SIGNAL_TAG) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                    fprintf(stderr, "idle_conns: signal %u, stopping\n", si.ssi_signo);
                stop = 1;
                continue;
            }
            on_event(&conns[events[i].data.u64], events[i].events);
        }
        now = now_ms();
        if (now - last_expire >= 1000) {
            expire_slow_setups(now);
            last_expire = now;
        }
        if (!ready_printed && now - last_progress >= 1000) {
            fprintf(stderr, "idle_conns: %.0f s: %d established, %d failed, %d in flight\n",
                    (double)(now - t0) / 1000.0, established, failed, in_flight);
            last_progress = now;
        }
    }
    if (!ready_printed)
        fprintf(stderr,
                "idle_conns: stopped before every connection was set up (%d established, %d failed, %d in "
                "flight)\n",
                established, failed, in_flight);
    fprintf(stderr, "idle_conns: held %d, lost %d (closed by the server after set-up), failed %d\n",
            established, lost, failed);
    printf("stopped held %d lost %d\n", established, lost);
    fflush(stdout);
    /* The kernel closes the sockets at exit; SSL objects go with the process. */
    return exit_code;
}
