/*
 * h2open: an open-loop HTTP/2-over-TLS load client that times every request from its
 * scheduled start (no coordinated omission).
 *
 *   h2open --url https://127.0.0.1:PORT/path --rate R [--duration-s S | --requests N]
 *          [--connections C] [--max-streams M] [--queue Q] [--warmup-s W]
 *          [--timeout-ms T] [--max-time-s H] [--tick-us K] [--header "name: value"]...
 *
 * Request i is due at start + i/R whatever happened before it, and goes to connection
 * i mod C. Its latency runs from that due time to the end of its response, so a stalled
 * server, a late client wake-up, or a request that waited for a free stream (at most
 * min(M, the server's SETTINGS_MAX_CONCURRENT_STREAMS) in flight per connection) all count
 * against it. Requests that find their connection's streams full wait in a ring of Q per
 * connection; when it is full they are counted as errors (queue) rather than held without
 * bound. Requests due in the first W seconds warm the connections up and are not in the
 * figures (their errors are). After the last due time the client waits up to T ms for the
 * requests still out, then counts them as errors (timeout). H bounds the whole run.
 * Defaults: C 4, M 64, Q 4096, W 1, T 5000, S 10, K 100, H the planned time + T + 10 s.
 *
 * Output: one JSON object on stdout: offered and achieved rate, request and error counts,
 * p50/p90/p99/p99.9/max latency in ms (latency_hist.h: under 0.4% error; -1 when nothing
 * was measured), and the send lag (due time to the moment the request was handed
 * to nghttp2: the client's late wake-ups, plus any wait for a free stream). With streams to
 * spare, a lag near the latency says the client, not the server, was late.
 *
 * One thread, level-triggered epoll, one periodic timerfd (the request interval, or the
 * tick K when that is longer: requests due within a tick share a wake-up, see arm_timer).
 * Nothing is allocated per request by this file: stream slots and queues are sized at start
 * (nghttp2 allocates its own stream state). TLS 1.3 only, ALPN h2.
 * Certificates are not verified (a load generator for a development certificate).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "latency_hist.h"

#define MAX_HEADERS 16
#define OUT_CHUNK   16384

/* ------------------------------------------------------------------ state ---- */

typedef struct conn conn_t;

typedef struct {
    uint64_t due_ns;
    int status;
    uint32_t next_free;
} slot_t;

enum conn_state { C_CONNECTING, C_HANDSHAKE, C_READY, C_DEAD };

struct conn {
    int fd;
    SSL *ssl;
    nghttp2_session *h2;
    enum conn_state state;
    bool got_settings, goaway, out_armed, dirty;
    slot_t *slots;
    uint32_t free_head, in_flight, limit;
    uint64_t *queue; /* due times of requests waiting for a stream */
    uint32_t q_head, q_len;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
};

typedef struct {
    const char *host, *port, *path, *authority;
    nghttp2_nv nv[4 + MAX_HEADERS];
    size_t nnv;
    double rate, duration_s, warmup_s, max_time_s;
    long long requests;
    uint32_t conns, max_streams, queue_cap;
    long timeout_ms;
    uint64_t tick_ns;
} opts_t;

typedef struct {
    opts_t o;
    SSL_CTX *tls;
    int ep, tfd;
    conn_t *c;
    uint64_t start_ns, measure_ns, period_ns;
    uint64_t sent, ok, measured_ok, last_done_ns;
    uint64_t err_status, err_reset, err_timeout, err_queue, err_conn;
    lat_hist_t lat, lag;
} run_t;

static run_t R;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Due times are whole multiples of one period in ns, so the periodic timer that wakes the
 * loop (see arm_timer) fires exactly on them. */
static uint64_t due_of(uint64_t i)
{
    return R.start_ns + i * R.period_ns;
}

static void die(const char *what)
{
    fprintf(stderr, "h2open: %s\n", what);
    exit(2);
}

/* ------------------------------------------------------------------ requests ---- */

static void conn_start(conn_t *c, uint64_t due, uint64_t now)
{
    uint32_t i = c->free_head;
    slot_t *s = &c->slots[i];
    c->free_head = s->next_free;
    s->due_ns = due;
    s->status = 0;
    if (nghttp2_submit_request(c->h2, NULL, R.o.nv, R.o.nnv, NULL, s) < 0) {
        s->next_free = c->free_head;
        c->free_head = i;
        R.err_reset++;
        return;
    }
    c->in_flight++;
    c->dirty = true;
    R.sent++;
    if (due >= R.measure_ns)
        lat_hist_add(&R.lag, now - due);
}

/* Queued requests take the streams completions freed, oldest first. */
static void conn_pump(conn_t *c, uint64_t now)
{
    while (c->q_len > 0 && c->in_flight < c->limit && c->state == C_READY && !c->goaway) {
        conn_start(c, c->queue[c->q_head], now);
        c->q_head = (c->q_head + 1) % R.o.queue_cap;
        c->q_len--;
    }
}

static void dispatch(uint64_t i, uint64_t now)
{
    conn_t *c = &R.c[i % R.o.conns];
    uint64_t due = due_of(i);
    if (c->state != C_READY || c->goaway)
        R.err_conn++;
    else if (c->in_flight < c->limit && c->q_len == 0)
        conn_start(c, due, now);
    else if (c->q_len < R.o.queue_cap)
        c->queue[(c->q_head + c->q_len++) % R.o.queue_cap] = due;
    else
        R.err_queue++;
}

/* ------------------------------------------------------------------ nghttp2 ---- */

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    slot_t *s = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (s && valuelen == 3)
        s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
    conn_t *c = user;
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        uint32_t peer = nghttp2_session_get_remote_settings(h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        c->limit = peer < R.o.max_streams ? peer : R.o.max_streams;
        c->got_settings = true;
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* no new streams; those below its last stream id still finish, and the queued
         * ones will never be sent: connection errors now, not timeouts at the end */
        c->goaway = true;
        R.err_conn += c->q_len;
        c->q_len = 0;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
    conn_t *c = user;
    slot_t *s = nghttp2_session_get_stream_user_data(h2, stream_id);
    if (!s || c->state == C_DEAD)
        return 0;
    uint64_t now = now_ns();
    if (error_code != NGHTTP2_NO_ERROR || s->status == 0) {
        R.err_reset++;
    } else if (s->status < 200 || s->status > 299) {
        R.err_status++;
    } else {
        R.ok++;
        if (s->due_ns >= R.measure_ns) {
            lat_hist_add(&R.lat, now - s->due_ns);
            R.measured_ok++;
            R.last_done_ns = now;
        }
    }
    uint32_t i = (uint32_t)(s - c->slots);
    s->next_free = c->free_head;
    c->free_head = i;
    c->in_flight--;
    return 0;
}

/* ------------------------------------------------------------------ connections ---- */

static void conn_arm(conn_t *c, bool out)
{
    if (c->out_armed == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(R.ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->out_armed = out;
}

static void conn_fail(conn_t *c, const char *why)
{
    if (c->state == C_DEAD)
        return;
    fprintf(stderr, "h2open: connection %ld: %s\n", (long)(c - R.c), why);
    c->state = C_DEAD;
    R.err_conn += c->in_flight + c->q_len;
    c->in_flight = c->q_len = 0;
    epoll_ctl(R.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Frames go out in batches of up to OUT_CHUNK bytes per SSL_write, one TLS record for many
 * requests. The buffer is refilled only once empty, so a retried SSL_write sees the same
 * bytes, as OpenSSL requires. */
static int conn_flush(conn_t *c)
{
    for (;;) {
        if (c->out_off == c->out_len) {
            c->out_off = c->out_len = 0;
            while (c->out_len < OUT_CHUNK) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(c->h2, &data);
                if (n < 0)
                    return -1;
                if (n == 0)
                    break;
                if (c->out_len + (size_t)n > c->out_cap) { /* rare: only a large frame */
                    size_t cap = c->out_len + (size_t)n;
                    uint8_t *grown = realloc(c->out, cap);
                    if (!grown)
                        return -1;
                    c->out = grown;
                    c->out_cap = cap;
                }
                memcpy(c->out + c->out_len, data, (size_t)n);
                c->out_len += (size_t)n;
            }
            if (c->out_len == 0) {
                conn_arm(c, false);
                return 0;
            }
        }
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE) {
            conn_arm(c, true);
            return 0;
        }
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        return -1;
    }
}

static int conn_read(conn_t *c)
{
    uint8_t buf[16384];
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, sizeof buf);
        if (n > 0) {
            if (nghttp2_session_mem_recv(c->h2, buf, (size_t)n) < 0)
                return -1;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        return -1;
    }
}

static int conn_session(conn_t *c)
{
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)
        return -1;
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    int rv = nghttp2_session_client_new(&c->h2, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                         {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    if (nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, settings, 2) != 0)
        return -1;
    c->state = C_READY;
    /* OpenSSL may already hold the server's first records, read along with the handshake:
     * the socket would not signal them again. */
    if (conn_read(c) != 0)
        return -1;
    return conn_flush(c);
}

static void conn_handshake(conn_t *c)
{
    ERR_clear_error();
    int n = SSL_connect(c->ssl);
    if (n == 1) {
        if (conn_session(c) != 0)
            conn_fail(c, "no HTTP/2 session (ALPN h2 refused?)");
        return;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
        conn_arm(c, false);
    else if (e == SSL_ERROR_WANT_WRITE)
        conn_arm(c, true);
    else
        conn_fail(c, "TLS handshake failed");
}

static void conn_event(conn_t *c, uint32_t events)
{
    if (c->state == C_DEAD)
        return;
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            conn_fail(c, strerror(err));
            return;
        }
        c->state = C_HANDSHAKE;
    }
    if (c->state == C_HANDSHAKE) {
        conn_handshake(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && conn_read(c) != 0) {
        conn_fail(c, "read failed or closed by the server");
        return;
    }
    conn_pump(c, now_ns());
    if (conn_flush(c) != 0)
        conn_fail(c, "write failed");
}

static void conn_open(conn_t *c, const struct addrinfo *ai)
{
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        die("connect");
    c->ssl = SSL_new(R.tls);
    if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
        die("SSL_new");
    SSL_set_tlsext_host_name(c->ssl, R.o.host);
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    c->state = C_CONNECTING;
    c->limit = R.o.max_streams;
    c->slots = calloc(R.o.max_streams, sizeof *c->slots);
    c->queue = calloc(R.o.queue_cap, sizeof *c->queue);
    c->out_cap = OUT_CHUNK + 1024;
    c->out = malloc(c->out_cap);
    if (!c->slots || !c->queue || !c->out)
        die("out of memory");
    for (uint32_t i = 0; i < R.o.max_streams; i++)
        c->slots[i].next_free = i + 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(R.ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        die("epoll_ctl");
    c->out_armed = true;
}

/* ------------------------------------------------------------------ main loop ---- */

static void wait_events(int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(R.ep, evs, 64, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            uint64_t ticks;
            if (read(R.tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
                die("timerfd");
            continue;
        }
        conn_event(evs[i].data.ptr, evs[i].events);
    }
}

/* One periodic timer for the whole schedule, set once: re-arming a one-shot timer for every
 * due time cost more CPU than the requests (a timerfd_settime reprograms the VM's timer).
 * The period is the request interval, or the tick when that is longer: then the requests due
 * within a tick share one wake-up (and one TLS record). They are still timed from their own
 * due times, so the tick counts against the figures (at most one tick), never for them. */
static void arm_timer(uint64_t first_ns, uint64_t interval_ns)
{
    struct itimerspec it = {.it_value = {.tv_sec = (time_t)(first_ns / 1000000000ull),
                                         .tv_nsec = (long)(first_ns % 1000000000ull)},
                            .it_interval = {.tv_sec = (time_t)(interval_ns / 1000000000ull),
                                            .tv_nsec = (long)(interval_ns % 1000000000ull)}};
    if (timerfd_settime(R.tfd, TFD_TIMER_ABSTIME, &it, NULL) != 0)
        die("timerfd_settime");
}

static void flush_dirty(void)
{
    for (uint32_t i = 0; i < R.o.conns; i++) {
        conn_t *c = &R.c[i];
        if (c->dirty && c->state == C_READY) {
            c->dirty = false;
            if (conn_flush(c) != 0)
                conn_fail(c, "write failed");
        }
    }
}

static uint64_t outstanding(void)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < R.o.conns; i++)
        n += R.c[i].in_flight + R.c[i].q_len;
    return n;
}

static void setup(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(R.o.host, R.o.port, &hints, &ai) != 0)
        die("cannot resolve the host");
    R.tls = SSL_CTX_new(TLS_client_method());
    if (!R.tls)
        die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(R.tls, TLS1_3_VERSION);
    SSL_CTX_set_verify(R.tls, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_alpn_protos(R.tls, (const unsigned char *)"\x02h2", 3);
    /* One read() for all the records that are there, not two per record (header, body). */
    SSL_CTX_set_read_ahead(R.tls, 1);
    SSL_CTX_set_default_read_buffer_len(R.tls, 65536);
    R.ep = epoll_create1(EPOLL_CLOEXEC);
    R.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (R.ep < 0 || R.tfd < 0 || epoll_ctl(R.ep, EPOLL_CTL_ADD, R.tfd, &ev) != 0)
        die("epoll/timerfd");
    R.c = calloc(R.o.conns, sizeof *R.c);
    if (!R.c)
        die("out of memory");
    for (uint32_t i = 0; i < R.o.conns; i++)
        conn_open(&R.c[i], ai);
    freeaddrinfo(ai);
    /* All connections up and the server's SETTINGS read (its stream limit) before the
     * schedule starts, so handshakes are not timed. */
    uint64_t deadline = now_ns() + 10000000000ull;
    for (;;) {
        uint32_t ready = 0;
        for (uint32_t i = 0; i < R.o.conns; i++) {
            if (R.c[i].state == C_DEAD)
                die("a connection failed during set-up");
            ready += R.c[i].state == C_READY && R.c[i].got_settings;
        }
        if (ready == R.o.conns)
            return;
        uint64_t now = now_ns();
        if (now > deadline)
            die("connections not ready within 10 s");
        wait_events(100);
    }
}

static void run(void)
{
    uint64_t warm = (uint64_t)llround(R.o.warmup_s * R.o.rate);
    uint64_t total = R.o.requests > 0 ? warm + (uint64_t)R.o.requests
                                      : warm + (uint64_t)llround(R.o.duration_s * R.o.rate);
    R.period_ns = (uint64_t)llround(1e9 / R.o.rate);
    if (R.period_ns == 0)
        R.period_ns = 1;
    R.start_ns = now_ns() + 1000000ull;
    R.measure_ns = due_of(warm);
    uint64_t hard = R.start_ns + (uint64_t)(R.o.max_time_s * 1e9);
    uint64_t drain = due_of(total) + (uint64_t)R.o.timeout_ms * 1000000ull;
    uint64_t next = 0;
    bool draining = false;
    arm_timer(R.start_ns, R.o.tick_ns > R.period_ns ? R.o.tick_ns : R.period_ns);
    for (;;) {
        uint64_t now = now_ns();
        if (now >= hard) {
            fprintf(stderr, "h2open: the hard time limit (%.0f s) ended the run\n", R.o.max_time_s);
            break;
        }
        while (next < total && due_of(next) <= now)
            dispatch(next++, now);
        flush_dirty();
        if (next == total) {
            if (outstanding() == 0 || now >= drain)
                break;
            if (!draining)
                arm_timer(0, 0); /* disarmed: the drain needs no more ticks */
            draining = true;
        }
        wait_events(next < total ? 100 : 10);
    }
    R.err_timeout = outstanding() + (total - next); /* still out, or never due before the limit */
}

static void report(void)
{
    double window_s = R.o.requests > 0 ? (double)R.o.requests / R.o.rate : R.o.duration_s;
    if (R.last_done_ns > R.measure_ns && (double)(R.last_done_ns - R.measure_ns) / 1e9 > window_s)
        window_s = (double)(R.last_done_ns - R.measure_ns) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                 (double)ru.ru_stime.tv_usec / 1e6;
    uint64_t errors = R.err_status + R.err_reset + R.err_timeout + R.err_queue + R.err_conn;
    printf("{\"offered_rps\": %.1f, \"achieved_rps\": %.1f, \"connections\": %u, \"max_streams\": %u, "
           "\"requests\": %llu, \"requests_total\": %llu, \"ok\": %llu, \"errors\": %llu, "
           "\"errors_by\": {\"status\": %llu, \"reset\": %llu, \"timeout\": %llu, \"queue\": %llu, "
           "\"connection\": %llu}, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, "
           "\"mean_ms\": %.3f, \"lag_p99_ms\": %.3f, \"lag_max_ms\": %.3f, \"client_cpu_s\": %.3f}\n",
           1e9 / (double)R.period_ns, (double)R.measured_ok / window_s, R.o.conns, R.o.max_streams,
           (unsigned long long)R.lat.n, (unsigned long long)R.sent, (unsigned long long)R.ok,
           (unsigned long long)errors, (unsigned long long)R.err_status, (unsigned long long)R.err_reset,
           (unsigned long long)R.err_timeout, (unsigned long long)R.err_queue, (unsigned long long)R.err_conn,
           lat_hist_ms(&R.lat, 0.5), lat_hist_ms(&R.lat, 0.9), lat_hist_ms(&R.lat, 0.99),
           lat_hist_ms(&R.lat, 0.999), R.lat.n ? (double)R.lat.max_ns / 1e6 : -1.0,
           R.lat.n ? R.lat.sum_ns / (double)R.lat.n / 1e6 : -1.0, lat_hist_ms(&R.lag, 0.99),
           (double)R.lag.max_ns / 1e6, cpu);
}

/* ------------------------------------------------------------------ options ---- */

static void add_nv(const char *name, const char *value)
{
    if (R.o.nnv >= sizeof R.o.nv / sizeof R.o.nv[0])
        die("too many headers");
    R.o.nv[R.o.nnv++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                                     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

/* "name: value" -> a lower-case name (HTTP/2 requires it) and the trimmed value. */
static void add_header(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line)
        die("a header is \"name: value\"");
    char *name = strndup(line, (size_t)(colon - line));
    if (!name)
        die("out of memory");
    for (char *p = name; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    add_nv(name, value);
}

/* https://HOST[:PORT][/PATH]; [v6] literals are not needed for a loopback bench. */
static void parse_url(const char *url)
{
    if (strncmp(url, "https://", 8) != 0)
        die("the URL must start with https://");
    const char *host = url + 8, *slash = strchr(host, '/');
    const char *end = slash ? slash : host + strlen(host);
    char *authority = strndup(host, (size_t)(end - host));
    if (!authority || !*authority)
        die("no host in the URL");
    R.o.authority = authority;
    char *colon = strchr(authority, ':');
    R.o.host = colon ? strndup(authority, (size_t)(colon - authority)) : authority;
    R.o.port = colon ? colon + 1 : "443";
    R.o.path = slash ? slash : "/";
}

static void usage(void)
{
    fprintf(stderr, "usage: h2open --url https://HOST:PORT/PATH --rate R [--duration-s S | --requests N]\n"
                    "  [--connections C] [--max-streams M] [--queue Q] [--warmup-s W] [--timeout-ms T]\n"
                    "  [--max-time-s H] [--tick-us K] [--header 'name: value']...\n");
    exit(2);
}

static double number(const char *text, double lo, double hi)
{
    char *end;
    double v = strtod(text, &end);
    if (*end != '\0' || !(v >= lo && v <= hi))
        usage();
    return v;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"url", required_argument, 0, 'u'},
                                          {"rate", required_argument, 0, 'r'},
                                          {"duration-s", required_argument, 0, 'd'},
                                          {"requests", required_argument, 0, 'n'},
                                          {"connections", required_argument, 0, 'c'},
                                          {"max-streams", required_argument, 0, 'm'},
                                          {"queue", required_argument, 0, 'q'},
                                          {"warmup-s", required_argument, 0, 'w'},
                                          {"timeout-ms", required_argument, 0, 't'},
                                          {"max-time-s", required_argument, 0, 'T'},
                                          {"header", required_argument, 0, 'H'},
                                          {"tick-us", required_argument, 0, 'k'},
                                          {0, 0, 0, 0}};
    const char *url = NULL, *headers[MAX_HEADERS];
    size_t nheaders = 0;
    R.o = (opts_t){.duration_s = 10,
                   .warmup_s = 1,
                   .conns = 4,
                   .max_streams = 64,
                   .queue_cap = 4096,
                   .timeout_ms = 5000,
                   .max_time_s = 0,
                   .tick_ns = 100000};
    int opt;
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (opt) {
        case 'u':
            url = optarg;
            break;
        case 'r':
            R.o.rate = number(optarg, 1, 1e7);
            break;
        case 'd':
            R.o.duration_s = number(optarg, 0.01, 3600);
            break;
        case 'n':
            R.o.requests = (long long)number(optarg, 1, 1e9);
            break;
        case 'c':
            R.o.conns = (uint32_t)number(optarg, 1, 1024);
            break;
        case 'm':
            R.o.max_streams = (uint32_t)number(optarg, 1, 1024);
            break;
        case 'q':
            R.o.queue_cap = (uint32_t)number(optarg, 1, 1 << 20);
            break;
        case 'w':
            R.o.warmup_s = number(optarg, 0, 600);
            break;
        case 't':
            R.o.timeout_ms = (long)number(optarg, 1, 600000);
            break;
        case 'k':
            R.o.tick_ns = (uint64_t)(number(optarg, 0, 100000) * 1000);
            break;
        case 'T':
            R.o.max_time_s = number(optarg, 1, 7200);
            break;
        case 'H':
            if (nheaders == MAX_HEADERS)
                die("too many headers");
            headers[nheaders++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (!url || R.o.rate <= 0 || optind != argc)
        usage();
    parse_url(url);
    add_nv(":method", "GET");
    add_nv(":scheme", "https");
    add_nv(":authority", R.o.authority);
    add_nv(":path", R.o.path);
    for (size_t i = 0; i < nheaders; i++)
        add_header(headers[i]);
    double planned = R.o.warmup_s + (R.o.requests > 0 ? (double)R.o.requests / R.o.rate : R.o.duration_s);
    if (R.o.max_time_s == 0)
        R.o.max_time_s = planned + (double)R.o.timeout_ms / 1000.0 + 10;
    signal(SIGPIPE, SIG_IGN);
    /* The default 50 us of timer slack would add up to 50 us to every due time. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    setup();
    run();
    report();
    return 0;
}
