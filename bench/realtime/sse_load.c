/*
 * bench/realtime/sse_load: many notification streams held open at once, and events published
 * into them at a fixed rate, over plain HTTP/1.1 (one connection per stream, as a browser's
 * EventSource behind a proxy holds them).
 *
 *   sse_load --stream-port P --publish-port Q --accounts FILE --streams-per-user K
 *            --rate EVENTS_PER_S --seconds S [--pid PID]... [--posters C] [--idle 1]
 *
 * FILE has one account a line: "<access token> <room id>", the room's only member being the
 * token's user. Steps, each bounded in time:
 *   1. the servers' VmRSS (each --pid);
 *   2. opens users x K streams (GET /api/v1/notifications/stream, at most 256 connects in
 *      flight), waits until every one has answered 200 (or failed), 1 s more, VmRSS again:
 *      the memory each open stream costs;
 *   3. for S seconds POSTs {"text":"t=<ns>"} to /api/v1/rooms/<room>/messages at RATE per
 *      second on C keep-alive connections to the publishing server (users in turn, so the
 *      events spread over every stream), each message a room.message event to its user's K
 *      streams; every event read is timed from the moment its POST was written (the same
 *      clock: client and servers share the machine);
 *   4. waits up to 3 s for the last events, then prints one JSON object on stdout.
 * With --idle 1 the connections ask GET /health/live instead and are held idle after the
 * answer, and nothing is published: what a kept-alive HTTP/1.1 connection costs the server,
 * the baseline a stream's own cost is read against.
 * Latency here is the whole path a client sees: the POST's request and its database write,
 * the publication, and the fan-out to the K streams.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define MAX_PIDS        4
#define CONNECT_WINDOW  256
#define OPEN_TIMEOUT_NS (120ull * 1000000000ull)
#define DRAIN_NS        (3ull * 1000000000ull)
#define BUF_SIZE        8192

enum { STREAM, POSTER };
enum { CONNECTING, SENDING, HEADERS, BODY, IDLE, DONE, FAILED };

typedef struct {
    int fd, kind, state, account;
    char req[1024];
    size_t req_len, req_off;
    char buf[BUF_SIZE];
    size_t len;
    uint64_t post_sent_ns;
    long body_left; /* a poster's response body still to read */
} conn_t;

static struct {
    int stream_port, publish_port, per_user, rate, seconds, posters;
    int pids[MAX_PIDS], npids;
    int idle;
    const char *accounts_path;
} opt = {.posters = 8};

static load_account_t *accounts;
static int naccounts;
static int epfd;
static load_samples_t latency; /* from the POST's write to delivery */
static load_samples_t fanout;  /* from the message's created_at (its write) to delivery */
static load_samples_t posts;   /* the POSTs' own answer times */
static long opened, failed, dropped, published, publish_errors, delivered, bad_events;

static void conn_fail(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    if (c->kind == STREAM && c->state == BODY)
        dropped++;
    else if (c->kind == STREAM && c->state != DONE && c->state != FAILED)
        failed++;
    if (c->kind == POSTER && c->state != IDLE)
        publish_errors++;
    c->state = FAILED;
}

static int conn_open(conn_t *c, int kind, int port, int account)
{
    c->fd = load_connect(port);
    c->kind = kind;
    c->account = account;
    c->len = c->req_off = 0;
    if (c->fd < 0) {
        c->state = FAILED;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    c->state = kind == STREAM ? SENDING : IDLE;
    if (kind == STREAM)
        c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                      "Authorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
                                      opt.idle ? "/health/live" : "/api/v1/notifications/stream",
                                      accounts[account].token);
    return 0;
}

static void conn_send(conn_t *c)
{
    while (c->req_off < c->req_len) {
        ssize_t n = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(c);
            return;
        }
        c->req_off += (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    if (c->kind == STREAM)
        c->state = HEADERS;
}

/* An event's data line: the Message's text "t=<ns>" gives when its POST was written. */
static void stream_line(const char *line, size_t len, uint64_t now)
{
    if (len < 6 || memcmp(line, "data: ", 6) != 0)
        return;
    uint64_t sent = load_sent_ns(line, len);
    if (sent == 0) {
        bad_events++;
        return;
    }
    delivered++;
    load_samples_push(&latency, now > sent ? now - sent : 0);
    uint64_t written = load_created_at_ns(line, len);
    if (written != 0)
        load_samples_push(&fanout, now > written ? now - written : 0);
}

static void stream_bytes(conn_t *c, uint64_t now)
{
    if (c->state == HEADERS) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (c->len == sizeof(c->buf))
                conn_fail(c);
            return;
        }
        if (c->len < 12 || memcmp(c->buf + 9, "200", 3) != 0) {
            conn_fail(c);
            return;
        }
        opened++;
        c->state = BODY;
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
    }
    if (opt.idle) {
        c->len = 0; /* the rest of /health/live's answer */
        return;
    }
    /* whole lines only; chunk-size lines of the chunked encoding are not data lines */
    size_t start = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->buf[i] != '\n')
            continue;
        stream_line(c->buf + start, i - start, now);
        start = i + 1;
    }
    if (start == 0 && c->len == sizeof(c->buf))
        start = c->len; /* a line longer than the buffer: not ours */
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
}

/* A poster's answer: status line, Content-Length, the body; then it is idle again. */
static void poster_bytes(conn_t *c, uint64_t now)
{
    if (c->state == SENDING || c->state == HEADERS) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        int ok = c->len >= 12 && memcmp(c->buf + 9, "201", 3) == 0;
        const char *cl = memmem(c->buf, (size_t)(end - c->buf), "content-length: ", 16);
        if (cl == NULL)
            cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length: ", 16);
        c->body_left = cl != NULL ? atol(cl + 16) : 0;
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, c->buf + used, c->len - used);
        c->len -= used;
        c->state = BODY;
        if (ok) {
            published++;
            load_samples_push(&posts, now - c->post_sent_ns);
        } else {
            publish_errors++;
        }
    }
    if (c->state == BODY) {
        size_t take = (size_t)c->body_left < c->len ? (size_t)c->body_left : c->len;
        memmove(c->buf, c->buf + take, c->len - take);
        c->len -= take;
        c->body_left -= (long)take;
        if (c->body_left == 0)
            c->state = IDLE;
    }
}

static void conn_readable(conn_t *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_fail(c);
            return;
        }
        c->len += (size_t)n;
        uint64_t now = load_now_ns();
        if (c->kind == STREAM)
            stream_bytes(c, now);
        else
            poster_bytes(c, now);
        if (c->state == FAILED)
            return;
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event events[512];
    int n = epoll_wait(epfd, events, 512, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = events[i].data.ptr;
        if (c->state == FAILED)
            continue;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) {
            conn_fail(c);
            continue;
        }
        if ((events[i].events & EPOLLOUT) && c->req_off < c->req_len)
            conn_send(c);
        else if (events[i].events & EPOLLOUT) {
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        }
        if ((events[i].events & EPOLLIN) && c->state != FAILED)
            conn_readable(c);
    }
}

static void poster_post(conn_t *c, int account)
{
    uint64_t t = load_now_ns();
    char body[64];
    int blen = snprintf(body, sizeof(body), "{\"text\":\"t=%llu\"}", (unsigned long long)t);
    c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
                                  "POST /api/v1/rooms/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %d\r\n\r\n%s",
                                  accounts[account].room, accounts[account].token, blen, body);
    c->req_off = 0;
    c->post_sent_ns = t;
    c->state = SENDING;
    conn_send(c);
    if (c->state == SENDING && c->req_off == c->req_len)
        c->state = HEADERS;
    if (c->req_off < c->req_len && c->state != FAILED) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--stream-port") == 0)
            opt.stream_port = atoi(v);
        else if (strcmp(k, "--publish-port") == 0)
            opt.publish_port = atoi(v);
        else if (strcmp(k, "--accounts") == 0)
            opt.accounts_path = v;
        else if (strcmp(k, "--streams-per-user") == 0)
            opt.per_user = atoi(v);
        else if (strcmp(k, "--rate") == 0)
            opt.rate = atoi(v);
        else if (strcmp(k, "--seconds") == 0)
            opt.seconds = atoi(v);
        else if (strcmp(k, "--posters") == 0)
            opt.posters = atoi(v);
        else if (strcmp(k, "--idle") == 0)
            opt.idle = atoi(v) != 0;
        else if (strcmp(k, "--pid") == 0 && opt.npids < MAX_PIDS)
            opt.pids[opt.npids++] = atoi(v);
        else
            return -1;
    }
    return opt.stream_port > 0 && opt.publish_port > 0 && opt.accounts_path != NULL && opt.per_user > 0 &&
                   opt.per_user <= 1000 && opt.rate > 0 && opt.rate <= 100000 && opt.seconds > 0 &&
                   opt.seconds <= 600 && opt.posters > 0 && opt.posters <= 256
               ? 0
               : -1;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0 || (naccounts = load_accounts(opt.accounts_path, &accounts)) <= 0) {
        fprintf(stderr,
                "usage: sse_load --stream-port P --publish-port Q --accounts FILE --streams-per-user K "
                "--rate N --seconds S [--posters C] [--pid PID]...\n");
        return 2;
    }
    epfd = epoll_create1(0);
    long nstreams = (long)naccounts * opt.per_user;
    conn_t *streams = calloc((size_t)nstreams, sizeof(*streams));
    conn_t *posters = calloc((size_t)opt.posters, sizeof(*posters));
    if (streams == NULL || posters == NULL)
        return 1;
    long rss_before = load_rss_kib(opt.pids, opt.npids);

    uint64_t t0 = load_now_ns();
    long next = 0;
    while ((opened + failed < nstreams) && load_now_ns() - t0 < OPEN_TIMEOUT_NS) {
        while (next < nstreams && next - opened - failed < CONNECT_WINDOW) {
            conn_open(&streams[next], STREAM, opt.stream_port, (int)(next % naccounts));
            if (streams[next].state == FAILED)
                failed++;
            next++;
        }
        poll_once(10);
    }
    double open_s = (double)(load_now_ns() - t0) / 1e9;
    for (uint64_t settle = load_now_ns(); load_now_ns() - settle < 1000000000ull;)
        poll_once(10);
    long rss_open = load_rss_kib(opt.pids, opt.npids);

    for (int i = 0; i < opt.posters && !opt.idle; i++)
        conn_open(&posters[i], POSTER, opt.publish_port, 0);
    for (uint64_t settle = load_now_ns(); load_now_ns() - settle < 200000000ull;)
        poll_once(10); /* the posters' connects complete */
    uint64_t p0 = load_now_ns(), dur = opt.idle ? 0 : (uint64_t)opt.seconds * 1000000000ull;
    long sent = 0, behind = 0, account = 0;
    while (load_now_ns() - p0 < dur) {
        uint64_t elapsed = load_now_ns() - p0;
        long due = (long)((double)elapsed / 1e9 * opt.rate) - sent;
        for (int i = 0; i < opt.posters && due > 0; i++) {
            if (posters[i].state != IDLE)
                continue;
            poster_post(&posters[i], (int)(account++ % naccounts));
            sent++;
            due--;
        }
        if (due > 1)
            behind++;
        poll_once(1);
    }
    for (uint64_t d0 = load_now_ns(); !opt.idle && load_now_ns() - d0 < DRAIN_NS;) {
        poll_once(10);
        int busy = 0;
        for (int i = 0; i < opt.posters; i++)
            busy |= posters[i].state != IDLE && posters[i].state != FAILED;
        if (!busy && delivered >= published * opt.per_user)
            break;
    }
    long expected = published * opt.per_user;
    load_samples_sort(&latency);
    load_samples_sort(&posts);
    load_samples_sort(&fanout);
    printf(
        "{\"streams\": %ld, \"opened\": %ld, \"failed\": %ld, \"dropped\": %ld, \"open_s\": %.2f, "
        "\"rss_before_kib\": %ld, \"rss_open_kib\": %ld, \"rss_per_stream_kib\": %.2f, "
        "\"rate\": %d, \"seconds\": %d, \"sent\": %ld, \"published\": %ld, \"publish_errors\": %ld, "
        "\"ticks_behind\": %ld, \"expected\": %ld, \"delivered\": %ld, \"lost\": %ld, \"bad_events\": %ld, "
        "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
        "\"post_p50_ms\": %.3f, \"post_p99_ms\": %.3f, \"fanout_p50_ms\": %.3f, \"fanout_p99_ms\": %.3f}\n",
        nstreams, opened, failed, dropped, open_s, rss_before, rss_open,
        opened > 0 ? (double)(rss_open - rss_before) / (double)opened : 0.0, opt.rate, opt.seconds, sent,
        published, publish_errors, behind, expected, delivered,
        expected > delivered ? expected - delivered : 0, bad_events, load_samples_ms(&latency, 0.5),
        load_samples_ms(&latency, 0.9), load_samples_ms(&latency, 0.99), load_samples_ms(&latency, 0.999),
        load_samples_ms(&latency, 1.0), load_samples_ms(&posts, 0.5), load_samples_ms(&posts, 0.99),
        load_samples_ms(&fanout, 0.5), load_samples_ms(&fanout, 0.99));
    for (long i = 0; i < nstreams; i++)
        if (streams[i].fd >= 0 && streams[i].state != FAILED)
            close(streams[i].fd);
    for (int i = 0; i < opt.posters; i++)
        if (posters[i].fd >= 0 && posters[i].state != FAILED)
            close(posters[i].fd);
    free(streams);
    free(posters);
    free(accounts);
    load_samples_free(&latency);
    load_samples_free(&posts);
    load_samples_free(&fanout);
    return 0;
}
