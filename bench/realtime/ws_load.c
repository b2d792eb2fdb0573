/*
 * bench/realtime/ws_load: room WebSockets (GET /api/v1/rooms/{id}/ws, HTTP/1.1 Upgrade) held
 * open, and messages sent through them at a fixed rate.
 *
 *   ws_load --port P [--port2 Q] --accounts FILE --rate MESSAGES_PER_S --seconds S [--pid PID]...
 *
 * FILE has one account a line, "<access token> <room id>" (each account a member of that
 * room; the rooms have several members). Socket i connects to P, or with --port2 every
 * second socket to Q, so that a room's members are spread over two instances. Steps, each
 * bounded in time:
 *   1. opens one socket per account (at most 256 handshakes in flight), waits for every 101;
 *      the servers' VmRSS before and after;
 *   2. for S seconds sends {"type":"message","text":"t=<ns>"} at RATE per second, from the
 *      sockets in turn (the server allows a socket 10 a second: RATE must stay under
 *      10 x sockets); every message frame read is timed from its send (message -> each
 *      member), and from its created_at (the write -> each member);
 *   3. waits up to 3 s for the last ones and prints one JSON object on stdout.
 * Pings are answered; presence frames are counted and otherwise ignored.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "load.h"

#define MAX_PIDS         4
#define HANDSHAKE_WINDOW 256
#define OPEN_TIMEOUT_NS  (120ull * 1000000000ull)
#define DRAIN_NS         (3ull * 1000000000ull)
#define BUF_SIZE         16384

enum { CONNECTING, HANDSHAKE, OPEN, FAILED };

typedef struct {
    int fd, state, account;
    char out[2048];
    size_t out_len, out_off;
    unsigned char in[BUF_SIZE];
    size_t in_len;
} sock_t;

static struct {
    int port, port2, rate, seconds, npids;
    int pids[MAX_PIDS];
    const char *accounts_path;
} opt;

static load_account_t *accounts;
static int naccounts, epfd;
static load_samples_t latency, from_write;
static long opened, failed, dropped, sent, send_errors, received, presence, closes;

static void sock_fail(sock_t *s)
{
    if (s->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    if (s->state == OPEN)
        dropped++;
    else if (s->state != FAILED)
        failed++;
    s->state = FAILED;
}

static void sock_want(sock_t *s, int writable)
{
    struct epoll_event ev = {.events = EPOLLIN | (writable ? EPOLLOUT : 0), .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void sock_flush(sock_t *s)
{
    while (s->out_off < s->out_len) {
        ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            sock_want(s, 1);
            return;
        }
        if (n <= 0) {
            sock_fail(s);
            return;
        }
        s->out_off += (size_t)n;
    }
    s->out_len = s->out_off = 0;
    sock_want(s, 0);
}

/* Appends a masked client frame (RFC 6455 5.3: a client masks every frame it sends). */
static int sock_frame(sock_t *s, int opcode, const char *payload, size_t len)
{
    if (len > 125 || s->out_len + len + 6 > sizeof(s->out))
        return -1;
    unsigned char *p = (unsigned char *)s->out + s->out_len;
    uint32_t key = (uint32_t)rand();
    p[0] = (unsigned char)(0x80 | opcode);
    p[1] = (unsigned char)(0x80 | len);
    memcpy(p + 2, &key, 4);
    for (size_t i = 0; i < len; i++)
        p[6 + i] = (unsigned char)payload[i] ^ p[2 + i % 4];
    s->out_len += len + 6;
    return 0;
}

static void sock_open(sock_t *s, int port, int account)
{
    s->account = account;
    s->fd = load_connect(port);
    if (s->fd < 0) {
        s->state = FAILED;
        failed++;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = s};
    epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev);
    s->state = HANDSHAKE;
    s->out_len =
        (size_t)snprintf(s->out, sizeof(s->out),
                         "GET /api/v1/rooms/%s/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: aHlkcmFudC1iZW5jaC1rZXk=\r\n"
                         "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                         accounts[account].room, accounts[account].token);
}

/* One whole server frame (never masked): a message is timed, a ping answered. */
static void sock_message(sock_t *s, int opcode, const unsigned char *payload, size_t len, uint64_t now)
{
    if (opcode == 0x9) {
        sock_frame(s, 0xA, (const char *)payload, len);
        sock_flush(s);
        return;
    }
    if (opcode == 0x8) {
        closes++;
        sock_fail(s);
        return;
    }
    if (opcode != 0x1)
        return;
    uint64_t t = load_sent_ns((const char *)payload, len);
    if (t == 0) {
        presence += memmem(payload, len, "presence", 8) != NULL;
        return;
    }
    received++;
    load_samples_push(&latency, now > t ? now - t : 0);
    uint64_t written = load_created_at_ns((const char *)payload, len);
    if (written != 0)
        load_samples_push(&from_write, now > written ? now - written : 0);
}

static void sock_frames(sock_t *s, uint64_t now)
{
    size_t at = 0;
    while (s->state == OPEN && s->in_len - at >= 2) {
        const unsigned char *p = s->in + at;
        size_t len = p[1] & 0x7f, head = 2;
        if (len == 126) {
            if (s->in_len - at < 4)
                break;
            len = (size_t)p[2] << 8 | p[3];
            head = 4;
        } else if (len == 127) {
            sock_fail(s); /* nothing we send is answered with 64 KiB */
            return;
        }
        if (head + len > sizeof(s->in)) {
            sock_fail(s);
            return;
        }
        if (s->in_len - at < head + len)
            break;
        sock_message(s, p[0] & 0x0f, p + head, len, now);
        at += head + len;
    }
    if (s->state == OPEN) {
        memmove(s->in, s->in + at, s->in_len - at);
        s->in_len -= at;
    }
}

static void sock_readable(sock_t *s)
{
    for (;;) {
        ssize_t n = read(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            sock_fail(s);
            return;
        }
        s->in_len += (size_t)n;
        if (s->state == HANDSHAKE) {
            unsigned char *end = memmem(s->in, s->in_len, "\r\n\r\n", 4);
            if (end == NULL)
                continue;
            if (s->in_len < 12 || memcmp(s->in + 9, "101", 3) != 0) {
                sock_fail(s);
                return;
            }
            s->state = OPEN;
            opened++;
            size_t used = (size_t)(end + 4 - s->in);
            memmove(s->in, s->in + used, s->in_len - used);
            s->in_len -= used;
        }
        sock_frames(s, load_now_ns());
        if (s->state == FAILED)
            return;
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event events[512];
    int n = epoll_wait(epfd, events, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        sock_t *s = events[i].data.ptr;
        if (s->state == FAILED)
            continue;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
            sock_fail(s);
            continue;
        }
        if (events[i].events & EPOLLOUT)
            sock_flush(s);
        if ((events[i].events & EPOLLIN) && s->state != FAILED)
            sock_readable(s);
    }
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(k, "--port2") == 0)
            opt.port2 = atoi(v);
        else if (strcmp(k, "--accounts") == 0)
            opt.accounts_path = v;
        else if (strcmp(k, "--rate") == 0)
            opt.rate = atoi(v);
        else if (strcmp(k, "--seconds") == 0)
            opt.seconds = atoi(v);
        else if (strcmp(k, "--pid") == 0 && opt.npids < MAX_PIDS)
            opt.pids[opt.npids++] = atoi(v);
        else
            return -1;
    }
    return opt.port > 0 && opt.accounts_path != NULL && opt.rate > 0 && opt.rate <= 100000 &&
                   opt.seconds > 0 && opt.seconds <= 600
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0 || (naccounts = load_accounts(opt.accounts_path, &accounts)) <= 0) {
        fprintf(stderr,
                "usage: ws_load --port P [--port2 Q] --accounts FILE --rate N --seconds S [--pid PID]...\n");
        return 2;
    }
    epfd = epoll_create1(0);
    sock_t *socks = calloc((size_t)naccounts, sizeof(*socks));
    if (socks == NULL)
        return 1;
    long rss_before = load_rss_kib(opt.pids, opt.npids);
    uint64_t t0 = load_now_ns();
    int next = 0;
    while (opened + failed < naccounts && load_now_ns() - t0 < OPEN_TIMEOUT_NS) {
        while (next < naccounts && next - opened - failed < HANDSHAKE_WINDOW) {
            int port = opt.port2 > 0 && next % 2 == 1 ? opt.port2 : opt.port;
            sock_open(&socks[next], port, next);
            next++;
        }
        poll_once(10);
    }
    double open_s = (double)(load_now_ns() - t0) / 1e9;
    for (uint64_t settle = load_now_ns(); load_now_ns() - settle < 1000000000ull;)
        poll_once(10); /* presence frames of the joins */
    long rss_open = load_rss_kib(opt.pids, opt.npids);

    uint64_t p0 = load_now_ns(), duration = (uint64_t)opt.seconds * 1000000000ull;
    int turn = 0;
    while (load_now_ns() - p0 < duration) {
        long due = (long)((double)(load_now_ns() - p0) / 1e9 * opt.rate) - sent;
        for (int tries = 0; due > 0 && tries < naccounts; tries++) {
            sock_t *s = &socks[turn++ % naccounts];
            if (s->state != OPEN)
                continue;
            char text[96];
            int len = snprintf(text, sizeof(text), "{\"type\":\"message\",\"text\":\"t=%llu\"}",
                               (unsigned long long)load_now_ns());
            if (sock_frame(s, 0x1, text, (size_t)len) != 0) {
                send_errors++;
                continue;
            }
            sock_flush(s);
            sent++;
            due--;
        }
        poll_once(1);
    }
    for (uint64_t d0 = load_now_ns(); load_now_ns() - d0 < DRAIN_NS;)
        poll_once(10);
    load_samples_sort(&latency);
    load_samples_sort(&from_write);
    printf("{\"sockets\": %d, \"opened\": %ld, \"failed\": %ld, \"dropped\": %ld, \"closes\": %ld, "
           "\"open_s\": %.2f, \"rss_before_kib\": %ld, \"rss_open_kib\": %ld, \"rss_per_socket_kib\": %.2f, "
           "\"rate\": %d, \"seconds\": %d, \"sent\": %ld, \"send_errors\": %ld, \"received\": %ld, "
           "\"presence\": %ld, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"fanout_p50_ms\": %.3f, \"fanout_p99_ms\": %.3f}\n",
           naccounts, opened, failed, dropped, closes, open_s, rss_before, rss_open,
           opened > 0 ? (double)(rss_open - rss_before) / (double)opened : 0.0, opt.rate, opt.seconds, sent,
           send_errors, received, presence, load_samples_ms(&latency, 0.5), load_samples_ms(&latency, 0.9),
           load_samples_ms(&latency, 0.99), load_samples_ms(&latency, 0.999), load_samples_ms(&latency, 1.0),
           load_samples_ms(&from_write, 0.5), load_samples_ms(&from_write, 0.99));
    for (int i = 0; i < next; i++)
        if (socks[i].state != FAILED)
            close(socks[i].fd);
    free(socks);
    free(accounts);
    load_samples_free(&latency);
    load_samples_free(&from_write);
    return 0;
}
