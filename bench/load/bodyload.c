/*
 * bodyload: a load generator that sends every line of a file once, as the body of a POST.
 *
 * h2load and wrk repeat one fixed body; POST /api/v1/auth/signup needs a new email and
 * POST /api/v1/auth/refresh a new (single-use) refresh token per request. bodyload reads one
 * request body per line and POSTs each line exactly once, with libcurl's multi interface:
 *
 *   bodyload --url https://127.0.0.1:PORT/api/v1/auth/signup --bodies FILE --concurrency C
 *            [--http1.1] [--connections N] [--header 'name: value']... [--log FILE]
 *            [--timeout-s S] [--rate R] [--requests N]
 *
 * Requests in flight: always C (closed loop), or with --rate R at most C (open loop).
 *   HTTP/2 (default): the C streams are multiplexed over N connections (--connections,
 *     default ceil(C / 8), like h2load -c N -m 8): CURLMOPT_MAX_HOST_CONNECTIONS = N and
 *     CURLMOPT_MAX_CONCURRENT_STREAMS = ceil(C / N), with CURLOPT_PIPEWAIT so that a transfer
 *     waits for a connection being set up (and then multiplexes on it) instead of opening
 *     one more. A transfer that finds every connection full waits in curl's pending queue.
 *   --http1.1: C keep-alive connections, one request each at a time (no pipelining).
 * The C easy handles are made once and reused: each takes the next line when its transfer
 * ends; curl keeps the connections in the multi handle's cache in between.
 *
 * Closed loop (no --rate): a request starts as soon as a handle is free; its latency runs
 * from then. Open loop (--rate R): request i is due at start + i / R and its latency runs
 * from its due time, not from when it could actually be sent, so a slow server (or all C
 * handles busy) shows up in the latency instead of slowing the schedule down (no coordinated
 * omission). The schedule has about 1 ms resolution (curl_multi_poll waits in milliseconds).
 * "late_starts" counts requests sent more than 1 ms after their due time: many of them (and a
 * large max_late_ms) mean C was too small for R times the latency.
 * Over http:// HTTP/2 means prior knowledge (h2c), which needs libcurl 8.0 or later.
 *
 * Loopback only: the URL's host must be 127.0.0.1, localhost or [::1], every socket curl
 * opens is checked to be a loopback address, proxies are off, redirects are not followed.
 * TLS certificates are not verified (like curl -k / h2load).
 *
 * Output: --log FILE gets one line per request in h2load's --log-file format, in completion
 * order, tab-separated: start time (microseconds since the epoch; the due time with --rate),
 * HTTP status (-1 for a transport error or a request still unanswered at --timeout-s) and
 * duration in microseconds. stdout gets a summary, one "name value" per line:
 *   requests (started), ok (2xx), errors (everything else: other statuses, transport errors,
 *   unanswered), elapsed_s (first start or due time to last answer), req_per_s (answers per
 *   elapsed second), p50_ms p90_ms p99_ms p99.9_ms (nearest rank, over the requests that got
 *   an HTTP answer, whatever its status), then status_NNN counts, connections (opened),
 *   and the HTTP version curl used.
 * Exit status 0 if every line was sent and answered 2xx, 1 otherwise, 2 on a usage error.
 *
 * Bounds: at most 10,000,000 lines and 1 GiB of bodies; the run ends when every line was
 * answered or after --timeout-s seconds (default 120), whichever comes first. Empty lines
 * are skipped; a trailing CR is dropped. Without a content-type header, bodies are sent as
 * "content-type: application/json".
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define BL_MAX_LINES              10000000u
#define BL_MAX_BYTES              (1024LL * 1024 * 1024)
#define BL_MAX_CONCURRENCY        4096
#define BL_MAX_TIMEOUT_S          86400
#define BL_STREAMS_PER_CONNECTION 8
#define BL_REPORTED_ERRORS        5
#define BL_SNIPPET                200

typedef struct {
    const char *url;
    const char *bodies;
    const char *log;
    struct curl_slist *headers;
    int has_content_type;
    int concurrency;
    int connections;
    int http1;
    double rate;
    long timeout_s;
    size_t requests;
} bl_options_t;

typedef struct {
    const char *data;
    size_t len;
} bl_body_t;

typedef struct {
    CURL *easy;
    size_t body;
    int64_t start_us; /* monotonic: started (closed loop) or due (open loop) */
    char error[CURL_ERROR_SIZE];
    char snippet[BL_SNIPPET + 1];
    size_t snippet_len;
    int busy;
} bl_slot_t;

typedef struct {
    size_t started, answered, ok, transport, unanswered, reported;
    size_t late_starts;
    int64_t max_late_us;
    int64_t last_end_us;
    long connections;
    size_t status[600];
    size_t other_status;
    size_t http2, http1x;
    int64_t *durations; /* of the answered requests */
} bl_stats_t;

static volatile sig_atomic_t bl_interrupted = 0;

static void bl_on_signal(int sig)
{
    (void)sig;
    bl_interrupted = 1;
}

static int64_t bl_clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void bl_usage(FILE *out)
{
    fprintf(out,
            "usage: bodyload --url URL --bodies FILE --concurrency C [options]\n"
            "  POSTs every non-empty line of FILE once as a request body, C requests in flight.\n"
            "  --url URL            http(s)://127.0.0.1|localhost|[::1][:PORT]/path (loopback only)\n"
            "  --bodies FILE        one body per line (at most %u lines, 1 GiB)\n"
            "  --concurrency C      requests in flight (1..%d)\n"
            "  --http1.1            HTTP/1.1 on C keep-alive connections (default HTTP/2)\n"
            "  --connections N      HTTP/2 connections (default ceil(C/%d))\n"
            "  --header 'N: V'      extra request header (repeatable; default content-type is\n"
            "                       application/json)\n"
            "  --log FILE           per-request log, h2load --log-file format\n"
            "  --timeout-s S        end the run after S seconds (default 120)\n"
            "  --rate R             open loop: request i is due at start + i/R, latency from then\n"
            "  --requests N         send only the first N bodies\n",
            BL_MAX_LINES, BL_MAX_CONCURRENCY, BL_STREAMS_PER_CONNECTION);
}

static int bl_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int bl_parse_options(int argc, char **argv, bl_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_s = 120;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bl_usage(stdout);
            exit(0);
        } else if (strcmp(a, "--http1.1") == 0) {
            o->http1 = 1;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "bodyload: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--url") == 0) {
            o->url = v;
        } else if (strcmp(a, "--bodies") == 0) {
            o->bodies = v;
        } else if (strcmp(a, "--log") == 0) {
            o->log = v;
        } else if (strcmp(a, "--concurrency") == 0 || strcmp(a, "-c") == 0) {
            if (bl_parse_long(v, 1, BL_MAX_CONCURRENCY, &n) != 0) {
                fprintf(stderr, "bodyload: --concurrency must be 1 to %d\n", BL_MAX_CONCURRENCY);
                return -1;
            }
            o->concurrency = (int)n;
        } else if (strcmp(a, "--connections") == 0) {
            if (bl_parse_long(v, 1, BL_MAX_CONCURRENCY, &n) != 0) {
                fprintf(stderr, "bodyload: --connections must be 1 to %d\n", BL_MAX_CONCURRENCY);
                return -1;
            }
            o->connections = (int)n;
        } else if (strcmp(a, "--timeout-s") == 0) {
            if (bl_parse_long(v, 1, BL_MAX_TIMEOUT_S, &o->timeout_s) != 0) {
                fprintf(stderr, "bodyload: --timeout-s must be 1 to %d\n", BL_MAX_TIMEOUT_S);
                return -1;
            }
        } else if (strcmp(a, "--requests") == 0) {
            if (bl_parse_long(v, 1, BL_MAX_LINES, &n) != 0) {
                fprintf(stderr, "bodyload: --requests must be 1 to %u\n", BL_MAX_LINES);
                return -1;
            }
            o->requests = (size_t)n;
        } else if (strcmp(a, "--rate") == 0) {
            char *end = NULL;
            errno = 0;
            o->rate = strtod(v, &end);
            if (errno != 0 || end == v || *end != '\0' || !(o->rate > 0) || o->rate > 1e7) {
                fprintf(stderr, "bodyload: --rate must be a number of requests per second, 0 to 1e7\n");
                return -1;
            }
        } else if (strcmp(a, "--header") == 0 || strcmp(a, "-H") == 0) {
            const char *colon = strchr(v, ':');
            if (colon == NULL || colon == v) {
                fprintf(stderr, "bodyload: --header must be 'name: value'\n");
                return -1;
            }
            if ((size_t)(colon - v) == strlen("content-type") && strncasecmp(v, "content-type", 12) == 0)
                o->has_content_type = 1;
            struct curl_slist *l = curl_slist_append(o->headers, v);
            if (l == NULL)
                return -1;
            o->headers = l;
        } else {
            fprintf(stderr, "bodyload: unknown option %s\n", a);
            return -1;
        }
    }
    if (o->url == NULL || o->bodies == NULL || o->concurrency == 0) {
        fprintf(stderr, "bodyload: --url, --bodies and --concurrency are required\n");
        return -1;
    }
    if (o->http1 && o->connections != 0 && o->connections != o->concurrency) {
        fprintf(stderr, "bodyload: with --http1.1 there is one connection per request in flight\n");
        return -1;
    }
    if (o->http1)
        o->connections = o->concurrency;
    else if (o->connections == 0)
        o->connections = (o->concurrency + BL_STREAMS_PER_CONNECTION - 1) / BL_STREAMS_PER_CONNECTION;
    if (o->connections > o->concurrency)
        o->connections = o->concurrency;
    return 0;
}

/* The URL must be http(s) to a loopback host; sets *https. */
static int bl_check_url(const char *url, int *https)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = 0;
    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        int scheme_ok = strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "http") == 0;
        int host_ok = strcmp(host, "127.0.0.1") == 0 || strcasecmp(host, "localhost") == 0 ||
                      strcmp(host, "[::1]") == 0;
        *https = strcasecmp(scheme, "https") == 0;
        if (!scheme_ok)
            fprintf(stderr, "bodyload: the URL must be http or https\n");
        else if (!host_ok)
            fprintf(stderr, "bodyload: refusing host %s: only 127.0.0.1, localhost and [::1]\n", host);
        ok = scheme_ok && host_ok;
    } else {
        fprintf(stderr, "bodyload: not a URL: %s\n", url);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

/* Every socket curl opens must go to a loopback address (whatever "localhost" resolves to). */
static curl_socket_t bl_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)arg;
    (void)purpose;
    int loopback = 0;
    if (a->family == AF_INET && a->addrlen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&a->addr;
        loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (a->family == AF_INET6 && a->addrlen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&a->addr;
        static const unsigned char one[16] = {[15] = 1};
        loopback = memcmp(&in6->sin6_addr, one, 16) == 0;
    }
    if (!loopback) {
        fprintf(stderr, "bodyload: refusing to connect to a non-loopback address\n");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* Reads the whole file and splits it into non-empty lines (the buffer is kept for the run). */
static int bl_read_bodies(const char *path, size_t limit, char **buffer, bl_body_t **bodies, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "bodyload: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > BL_MAX_BYTES) {
        fprintf(stderr, "bodyload: %s: not a regular file of at most 1 GiB\n", path);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (buf == NULL || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "bodyload: %s: could not read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += buf[i] == '\n';
    lines++; /* a last line without a newline */
    if (lines > BL_MAX_LINES + 1) {
        fprintf(stderr, "bodyload: %s: more than %u lines\n", path, BL_MAX_LINES);
        free(buf);
        return -1;
    }
    bl_body_t *b = malloc(lines * sizeof(*b));
    if (b == NULL) {
        free(buf);
        return -1;
    }
    size_t n = 0;
    for (size_t at = 0; at < size && n < limit;) {
        const char *nl = memchr(buf + at, '\n', size - at);
        size_t end = nl != NULL ? (size_t)(nl - buf) : size;
        size_t len = end - at;
        if (len > 0 && buf[at + len - 1] == '\r')
            len--;
        if (len > 0) {
            if (n == BL_MAX_LINES) {
                fprintf(stderr, "bodyload: %s: more than %u bodies\n", path, BL_MAX_LINES);
                free(b);
                free(buf);
                return -1;
            }
            b[n++] = (bl_body_t){buf + at, len};
        }
        at = end + 1;
    }
    if (n == 0) {
        fprintf(stderr, "bodyload: %s: no bodies\n", path);
        free(b);
        free(buf);
        return -1;
    }
    *buffer = buf;
    *bodies = b;
    *count = n;
    return 0;
}

/* Keeps the start of each answer, for the first few errors' report. */
static size_t bl_on_data(char *data, size_t size, size_t nmemb, void *arg)
{
    bl_slot_t *s = arg;
    size_t len = size * nmemb;
    size_t room = BL_SNIPPET - s->snippet_len;
    size_t take = len < room ? len : room;
    memcpy(s->snippet + s->snippet_len, data, take);
    s->snippet_len += take;
    return len;
}

static int bl_setup_easy(bl_slot_t *s, const bl_options_t *o, int https)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return -1;
    s->easy = e;
    long version = o->http1 ? CURL_HTTP_VERSION_1_1
                            : (https ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, o->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, bl_open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, o->http1 ? 0L : 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "bodyload") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, bl_on_data) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->error) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)s) != CURLE_OK;
    return bad ? -1 : 0;
}

static int bl_start(CURLM *multi, bl_slot_t *s, const bl_body_t *body, size_t index, int64_t start_us)
{
    s->body = index;
    s->start_us = start_us;
    s->error[0] = '\0';
    s->snippet_len = 0;
    s->busy = 1;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body->data);
    return curl_multi_add_handle(multi, s->easy) == CURLM_OK ? 0 : -1;
}

static void bl_log(FILE *log, int64_t wall_offset_us, int64_t start_us, long status, int64_t duration_us)
{
    if (log != NULL)
        fprintf(log, "%" PRId64 "\t%ld\t%" PRId64 "\n", start_us + wall_offset_us, status, duration_us);
}

/* One finished transfer: its figures, its log line, the first few errors on stderr. */
static void bl_finish(bl_stats_t *st, bl_slot_t *s, CURLcode result, int64_t end_us, FILE *log,
                      int64_t wall_offset_us)
{
    long status = -1;
    int64_t duration = end_us - s->start_us;
    if (result == CURLE_OK)
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status > 0) {
        st->durations[st->answered++] = duration;
        if (status >= 200 && status < 300)
            st->ok++;
        if (status < 600)
            st->status[status]++;
        else
            st->other_status++;
        long version = 0;
        curl_easy_getinfo(s->easy, CURLINFO_HTTP_VERSION, &version);
        if (version == CURL_HTTP_VERSION_2_0)
            st->http2++;
        else
            st->http1x++;
    } else {
        status = -1;
        st->transport++;
    }
    long connects = 0;
    curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
    st->connections += connects;
    if (end_us > st->last_end_us)
        st->last_end_us = end_us;
    if ((status < 200 || status >= 300) && st->reported < BL_REPORTED_ERRORS) {
        st->reported++;
        if (status < 0)
            fprintf(stderr, "bodyload: body %zu: %s\n", s->body + 1,
                    s->error[0] != '\0' ? s->error : curl_easy_strerror(result));
        else
            fprintf(stderr, "bodyload: body %zu: HTTP %ld %.*s\n", s->body + 1, status, (int)s->snippet_len,
                    s->snippet);
    }
    bl_log(log, wall_offset_us, s->start_us, status, duration);
}

static int bl_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least p of the values at or below it. */
static double bl_percentile_ms(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    double rank = p * (double)n;
    size_t k = (size_t)rank;
    if ((double)k < rank)
        k++;
    if (k == 0)
        k = 1;
    return (double)sorted[k - 1] / 1000.0;
}

int main(int argc, char **argv)
{
    bl_options_t o;
    int https = 0;
    if (bl_parse_options(argc, argv, &o) != 0) {
        bl_usage(stderr);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || bl_check_url(o.url, &https) != 0)
        return 2;
    /* libcurl before 8.0 breaks a reused h2c prior-knowledge connection (the second request
     * fails at once: curl/curl#10634); Debian 12 has 7.88. */
    if (!https && !o.http1 && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        fprintf(stderr,
                "bodyload: HTTP/2 over http:// needs libcurl 8.0 or later (this is %s); use https "
                "or --http1.1\n",
                curl_version_info(CURLVERSION_NOW)->version);
        return 2;
    }
    if (!o.has_content_type) {
        struct curl_slist *l = curl_slist_append(o.headers, "content-type: application/json");
        if (l == NULL)
            return 2;
        o.headers = l;
    }
    /* No "Expect: 100-continue" round trip for larger bodies over HTTP/1.1. */
    struct curl_slist *l = curl_slist_append(o.headers, "Expect:");
    if (l == NULL)
        return 2;
    o.headers = l;

    char *buffer = NULL;
    bl_body_t *bodies = NULL;
    size_t nbodies = 0;
    if (bl_read_bodies(o.bodies, o.requests > 0 ? o.requests : BL_MAX_LINES, &buffer, &bodies, &nbodies) != 0)
        return 2;

    FILE *log = NULL;
    if (o.log != NULL) {
        log = fopen(o.log, "w");
        if (log == NULL) {
            fprintf(stderr, "bodyload: %s: %s\n", o.log, strerror(errno));
            return 2;
        }
        setvbuf(log, NULL, _IOFBF, 1 << 20);
    }

    int streams = (o.concurrency + o.connections - 1) / o.connections;
    CURLM *multi = curl_multi_init();
    if (multi == NULL)
        return 2;
    curl_multi_setopt(multi, CURLMOPT_PIPELINING,
                      o.http1 ? (long)CURLPIPE_NOTHING : (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o.connections);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)o.connections);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o.connections);
    if (!o.http1)
        curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)streams);

    bl_slot_t *slots = calloc((size_t)o.concurrency, sizeof(*slots));
    bl_slot_t **idle = calloc((size_t)o.concurrency, sizeof(*idle));
    bl_stats_t st;
    memset(&st, 0, sizeof(st));
    st.durations = malloc(nbodies * sizeof(*st.durations));
    if (slots == NULL || idle == NULL || st.durations == NULL) {
        fprintf(stderr, "bodyload: out of memory\n");
        return 2;
    }
    int nidle = 0;
    for (int i = 0; i < o.concurrency; i++) {
        if (bl_setup_easy(&slots[i], &o, https) != 0) {
            fprintf(stderr, "bodyload: could not set up a curl handle\n");
            return 2;
        }
        idle[nidle++] = &slots[i];
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bl_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    printf("bodyload %s, %s, %d in flight on at most %d connection(s), %s, %zu bodies\n", o.url,
           o.http1 ? "HTTP/1.1" : "HTTP/2", o.concurrency, o.connections,
           o.rate > 0 ? "open loop" : "closed loop", nbodies);
    fflush(stdout);

    const int64_t t0 = bl_clock_us(CLOCK_MONOTONIC);
    const int64_t wall_offset = bl_clock_us(CLOCK_REALTIME) - t0;
    const int64_t deadline = t0 + (int64_t)o.timeout_s * 1000000;
    const double interval_us = o.rate > 0 ? 1e6 / o.rate : 0;
    size_t next = 0;
    int timed_out = 0, failed = 0;
    st.last_end_us = t0;
    while (!bl_interrupted) {
        int64_t now = bl_clock_us(CLOCK_MONOTONIC);
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        while (nidle > 0 && next < nbodies) {
            int64_t due = o.rate > 0 ? t0 + (int64_t)((double)next * interval_us) : now;
            if (due > now)
                break;
            if (now - due > 1000) {
                st.late_starts++;
                if (now - due > st.max_late_us)
                    st.max_late_us = now - due;
            }
            bl_slot_t *s = idle[--nidle];
            if (bl_start(multi, s, &bodies[next], next, due) != 0) {
                fprintf(stderr, "bodyload: curl_multi_add_handle failed\n");
                failed = 1;
                break;
            }
            next++;
            st.started++;
        }
        if (failed || (nidle == o.concurrency && next >= nbodies))
            break;
        int running = 0;
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            fprintf(stderr, "bodyload: curl_multi_perform failed\n");
            failed = 1;
            break;
        }
        int64_t end = bl_clock_us(CLOCK_MONOTONIC);
        int finished = 0;
        CURLMsg *m;
        int left = 0;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            bl_slot_t *s = (bl_slot_t *)(void *)priv;
            CURLcode result = m->data.result;
            curl_multi_remove_handle(multi, s->easy);
            s->busy = 0;
            bl_finish(&st, s, result, end, log, wall_offset);
            idle[nidle++] = s;
            finished++;
        }
        if (finished > 0)
            continue;
        int64_t wait = deadline - end;
        if (o.rate > 0 && next < nbodies && nidle > 0) {
            int64_t due = t0 + (int64_t)((double)next * interval_us);
            if (due - end < wait)
                wait = due - end;
        }
        if (wait > 100000) /* look at the signal flag now and then */
            wait = 100000;
        if (wait > 0)
            curl_multi_poll(multi, NULL, 0, (int)((wait + 999) / 1000), NULL);
    }

    /* Requests still in flight at the deadline (or on a signal): logged as -1. */
    int64_t stop = bl_clock_us(CLOCK_MONOTONIC);
    for (int i = 0; i < o.concurrency; i++) {
        if (slots[i].busy) {
            curl_multi_remove_handle(multi, slots[i].easy);
            st.unanswered++;
            bl_log(log, wall_offset, slots[i].start_us, -1, stop - slots[i].start_us);
        }
        curl_easy_cleanup(slots[i].easy);
    }
    curl_multi_cleanup(multi);
    if (log != NULL && fclose(log) != 0) {
        fprintf(stderr, "bodyload: %s: could not write\n", o.log);
        failed = 1;
    }

    size_t errors = st.started - st.ok;
    double elapsed = (double)((st.unanswered > 0 ? stop : st.last_end_us) - t0) / 1e6;
    qsort(st.durations, st.answered, sizeof(*st.durations), bl_cmp_i64);
    printf("requests %zu\n", st.started);
    printf("ok %zu\n", st.ok);
    printf("errors %zu\n", errors);
    printf("elapsed_s %.3f\n", elapsed);
    printf("req_per_s %.1f\n", elapsed > 0 ? (double)st.answered / elapsed : 0.0);
    printf("p50_ms %.3f\n", bl_percentile_ms(st.durations, st.answered, 0.50));
    printf("p90_ms %.3f\n", bl_percentile_ms(st.durations, st.answered, 0.90));
    printf("p99_ms %.3f\n", bl_percentile_ms(st.durations, st.answered, 0.99));
    printf("p99.9_ms %.3f\n", bl_percentile_ms(st.durations, st.answered, 0.999));
    printf("max_ms %.3f\n", st.answered > 0 ? (double)st.durations[st.answered - 1] / 1000.0 : 0.0);
    for (int code = 0; code < 600; code++)
        if (st.status[code] > 0)
            printf("status_%d %zu\n", code, st.status[code]);
    if (st.other_status > 0)
        printf("status_other %zu\n", st.other_status);
    if (st.transport > 0)
        printf("transport_errors %zu\n", st.transport);
    if (st.unanswered > 0)
        printf("unanswered %zu\n", st.unanswered);
    if (next < nbodies)
        printf("unsent %zu\n", nbodies - next);
    if (o.rate > 0)
        printf("late_starts %zu\nmax_late_ms %.3f\n", st.late_starts, (double)st.max_late_us / 1000.0);
    printf("connections %ld\n", st.connections);
    printf("http2 %zu\nhttp1 %zu\n", st.http2, st.http1x);
    if (timed_out)
        fprintf(stderr, "bodyload: stopped at --timeout-s %ld with %zu bodies unsent\n", o.timeout_s,
                nbodies - next);
    if (!o.http1 && st.http1x > 0)
        fprintf(stderr, "bodyload: %zu answers came over HTTP/1.x, not HTTP/2\n", st.http1x);

    curl_slist_free_all(o.headers);
    free(st.durations);
    free(idle);
    free(slots);
    free(bodies);
    free(buffer);
    curl_global_cleanup();
    return failed || errors > 0 || next < nbodies ? 1 : 0;
}
