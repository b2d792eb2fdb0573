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

typedef struct {
    char token[600];
    char room[40];
} account_t;

static struct {
    int stream_port, publish_port, per_user, rate, seconds, posters;
    int pids[MAX_PIDS], npids;
    int idle;
    const char *accounts_path;
} opt = {.posters = 8};

static account_t *accounts;
static int naccounts;
static int epfd;
static uint32_t *lat_us; /* delivery latencies, microseconds */
static size_t nlat, lat_cap;
static uint32_t *fanout_us; /* from the message's created_at (its write) to delivery */
static size_t nfanout, fanout_cap;
static uint32_t *post_us;
static size_t npost, post_cap;
static long opened, failed, dropped, published, publish_errors, delivered, bad_events;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f != NULL)
        fclose(f);
    return kib;
}

static long rss_total(void)
{
    long sum = 0;
    for (int i = 0; i < opt.npids; i++)
        sum += rss_kib(opt.pids[i]);
    return sum;
}

static void push(uint32_t **arr, size_t *n, size_t *cap, uint64_t value_ns)
{
    if (*n == *cap) {
        size_t grown = *cap != 0 ? *cap * 2 : 65536;
        uint32_t *more = realloc(*arr, grown * sizeof(**arr));
        if (more == NULL)
            return;
        *arr = more;
        *cap = grown;
    }
    uint64_t us = value_ns / 1000;
    (*arr)[(*n)++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(uint32_t *arr, size_t n, double q)
{
    if (n == 0)
        return -1;
    size_t i = (size_t)(q * (double)n);
    return (i >= n ? arr[n - 1] : arr[i]) / 1000.0;
}

static int load_accounts(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int cap = 1024;
    accounts = malloc((size_t)cap * sizeof(*accounts));
    char line[1024];
    while (accounts != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (naccounts == cap) {
            cap *= 2;
            account_t *more = realloc(accounts, (size_t)cap * sizeof(*accounts));
            if (more == NULL)
                break;
            accounts = more;
        }
        account_t *a = &accounts[naccounts];
        if (sscanf(line, "%599s %39s", a->token, a->room) == 2)
            naccounts++;
    }
    fclose(f);
    return naccounts > 0 ? 0 : -1;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

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
    c->fd = connect_to(port);
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

/* The Message's created_at ("YYYY-MM-DDTHH:MM:SS.mmmZ", the database's clock at the write,
 * truncated to the millisecond) in nanoseconds since the epoch; 0 when absent. */
static uint64_t created_at_ns(const char *line, size_t len)
{
    static const char key[] = "\"created_at\"";
    const char *at = memmem(line, len, key, sizeof(key) - 1);
    const char *quote =
        at != NULL ? memchr(at + sizeof(key) - 1, '"', len - (size_t)(at + sizeof(key) - 1 - line)) : NULL;
    struct tm tm = {0};
    int ms = 0;
    if (quote == NULL || sscanf(quote + 1, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                                &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t)timegm(&tm) * 1000000000ull + (uint64_t)ms * 1000000ull;
}

/* An event's data line: the Message's text "t=<ns>" gives when its POST was written. */
static void stream_line(const char *line, size_t len, uint64_t now)
{
    static const char marker[] = "\"t="; /* the text's start, however the JSON is spaced */
    if (len < 6 || memcmp(line, "data: ", 6) != 0)
        return;
    const char *at = memmem(line, len, marker, sizeof(marker) - 1);
    if (at == NULL) {
        bad_events++;
        return;
    }
    uint64_t sent = strtoull(at + sizeof(marker) - 1, NULL, 10);
    delivered++;
    push(&lat_us, &nlat, &lat_cap, now > sent ? now - sent : 0);
    uint64_t written = created_at_ns(line, len);
    if (written != 0)
        push(&fanout_us, &nfanout, &fanout_cap, now > written ? now - written : 0);
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
            push(&post_us, &npost, &post_cap, now - c->post_sent_ns);
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
        uint64_t now = now_ns();
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
    uint64_t t = now_ns();
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
    if (parse_args(argc, argv) != 0 || load_accounts(opt.accounts_path) != 0) {
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
    long rss_before = rss_total();

    uint64_t t0 = now_ns();
    long next = 0;
    while ((opened + failed < nstreams) && now_ns() - t0 < OPEN_TIMEOUT_NS) {
        while (next < nstreams && next - opened - failed < CONNECT_WINDOW) {
            conn_open(&streams[next], STREAM, opt.stream_port, (int)(next % naccounts));
            if (streams[next].state == FAILED)
                failed++;
            next++;
        }
        poll_once(10);
    }
    double open_s = (double)(now_ns() - t0) / 1e9;
    for (uint64_t settle = now_ns(); now_ns() - settle < 1000000000ull;)
        poll_once(10);
    long rss_open = rss_total();

    for (int i = 0; i < opt.posters && !opt.idle; i++)
        conn_open(&posters[i], POSTER, opt.publish_port, 0);
    for (uint64_t settle = now_ns(); now_ns() - settle < 200000000ull;)
        poll_once(10); /* the posters' connects complete */
    uint64_t p0 = now_ns(), dur = opt.idle ? 0 : (uint64_t)opt.seconds * 1000000000ull;
    long sent = 0, behind = 0, account = 0;
    while (now_ns() - p0 < dur) {
        uint64_t elapsed = now_ns() - p0;
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
    for (uint64_t d0 = now_ns(); !opt.idle && now_ns() - d0 < DRAIN_NS;) {
        poll_once(10);
        int busy = 0;
        for (int i = 0; i < opt.posters; i++)
            busy |= posters[i].state != IDLE && posters[i].state != FAILED;
        if (!busy && delivered >= published * opt.per_user)
            break;
    }
    long expected = published * opt.per_user;
    qsort(lat_us, nlat, sizeof(*lat_us), cmp_u32);
    qsort(post_us, npost, sizeof(*post_us), cmp_u32);
    qsort(fanout_us, nfanout, sizeof(*fanout_us), cmp_u32);
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
        expected > delivered ? expected - delivered : 0, bad_events, pct_ms(lat_us, nlat, 0.5),
        pct_ms(lat_us, nlat, 0.9), pct_ms(lat_us, nlat, 0.99), pct_ms(lat_us, nlat, 0.999),
        nlat > 0 ? lat_us[nlat - 1] / 1000.0 : -1, pct_ms(post_us, npost, 0.5), pct_ms(post_us, npost, 0.99),
        pct_ms(fanout_us, nfanout, 0.5), pct_ms(fanout_us, nfanout, 0.99));
    for (long i = 0; i < nstreams; i++)
        if (streams[i].fd >= 0 && streams[i].state != FAILED)
            close(streams[i].fd);
    for (int i = 0; i < opt.posters; i++)
        if (posters[i].fd >= 0 && posters[i].state != FAILED)
            close(posters[i].fd);
    free(streams);
    free(posters);
    free(accounts);
    free(lat_us);
    free(post_us);
    free(fanout_us);
    return 0;
}
