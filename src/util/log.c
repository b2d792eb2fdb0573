/*
 * util_log: the process's one levelled, structured log function (util.h).
 *
 * Lines are logfmt by default (ts=... level=... component=... msg="..."): one line per event
 * that a person reads in `journalctl` or `docker logs` as easily as a grep or a log shipper
 * parses it, and the fields before msg are never escaped, so a grep for "level=error" or
 * "component=postgres" is exact. log.format: json gives JSON lines, the access log's form, for
 * a pipeline that wants one parser. The message is escaped as a JSON string in both: logfmt
 * readers (go-logfmt's decoder among them) take JSON escapes in a quoted value, and one
 * escaper serves the access log too.
 */
#include "util/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static atomic_int util_log_threshold = UTIL_LOG_INFO;
static atomic_int util_log_enc = UTIL_LOG_TEXT;

static const char *const util_log_levels[] = {"debug", "info", "warn", "error"};
static const char *const util_log_encodings[] = {"text", "json"};

void util_log_configure(util_log_level_t threshold, util_log_encoding_t encoding)
{
    atomic_store_explicit(&util_log_threshold, (int)threshold, memory_order_relaxed);
    atomic_store_explicit(&util_log_enc, (int)encoding, memory_order_relaxed);
}

int util_log_enabled(util_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&util_log_threshold, memory_order_relaxed);
}

util_log_encoding_t util_log_encoding(void)
{
    return (util_log_encoding_t)atomic_load_explicit(&util_log_enc, memory_order_relaxed);
}

const char *util_log_level_name(util_log_level_t level)
{
    return level >= UTIL_LOG_DEBUG && level <= UTIL_LOG_ERROR ? util_log_levels[level] : "error";
}

static int util_log_lookup(const char *name, const char *const *names, int n)
{
    for (int i = 0; name != NULL && i < n; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

int util_log_level_parse(const char *name, util_log_level_t *out)
{
    int i = util_log_lookup(name, util_log_levels, 4);
    if (i < 0)
        return -1;
    *out = (util_log_level_t)i;
    return 0;
}

int util_log_encoding_parse(const char *name, util_log_encoding_t *out)
{
    int i = util_log_lookup(name, util_log_encodings, 2);
    if (i < 0)
        return -1;
    *out = (util_log_encoding_t)i;
    return 0;
}

/* The component as a bare logfmt value: it is written unquoted, so nothing may end it. */
static void util_log_component(const char *component, char out[UTIL_LOG_COMPONENT_MAX + 1])
{
    const char *c = component != NULL && component[0] != '\0' ? component : "hydrant";
    size_t n = 0;
    for (; c[n] != '\0' && n < UTIL_LOG_COMPONENT_MAX; n++) {
        unsigned char b = (unsigned char)c[n];
        int ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
                 strchr("_-./", b) != NULL;
        out[n] = ok ? (char)b : '_';
    }
    out[n] = '\0';
}

size_t util_log_format_line(char *buf, size_t cap, util_log_encoding_t encoding, int64_t unix_ms,
                            util_log_level_t level, const char *component, const char *msg, size_t len,
                            int truncated)
{
    static const char marker[] = UTIL_LOG_TRUNCATED;
    if (msg == NULL)
        msg = "", len = 0;
    const size_t marker_len = sizeof(marker) - 1;
    char ts[UTIL_RFC3339_MS_LEN + 1], comp[UTIL_LOG_COMPONENT_MAX + 1];
    util_rfc3339_ms(unix_ms, ts);
    util_log_component(component, comp);
    const char *name = util_log_level_name(level);
    int json = encoding == UTIL_LOG_JSON;
    char head[128];
    int h = snprintf(head, sizeof(head),
                     json ? "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\""
                          : "ts=%s level=%s component=%s msg=\"",
                     ts, name, comp);
    const char *tail = json ? "\"}\n" : "\"\n";
    size_t tail_len = strlen(tail);
    if (h < 0 || (size_t)h >= sizeof(head) || cap < (size_t)h + marker_len + tail_len + 1)
        return 0;
    memcpy(buf, head, (size_t)h);
    size_t at = (size_t)h, room = cap - at - tail_len - 1, used;
    size_t n = util_json_escape(buf + at, room, msg, len, &used);
    if (truncated || used < len) {
        /* Again with room for the marker: escapes are whole, so this cuts between characters. */
        n = util_json_escape(buf + at, room - marker_len, msg, len, &used);
        memcpy(buf + at + n, marker, marker_len);
        n += marker_len;
    }
    at += n;
    memcpy(buf + at, tail, tail_len);
    at += tail_len;
    buf[at] = '\0';
    return at;
}

/* The whole line at once: a line of at most PIPE_BUF bytes reaches a pipe in one piece. A
 * file or terminal may take part of it; the rest follows, a few tries at most. */
static void util_log_write(const char *line, size_t len)
{
    for (int tries = 0; len > 0 && tries < 8; tries++) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno != EINTR)
            return;
        if (n > 0)
            line += n, len -= (size_t)n;
    }
}

size_t util_log_vline(char *buf, util_log_level_t level, const char *component, const char *fmt, va_list ap)
{
    if (!util_log_enabled(level))
        return 0;
    char msg[UTIL_LOG_LINE_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t len = n > 0 ? (size_t)n : 0;
    int truncated = len >= sizeof(msg);
    if (truncated)
        len = util_utf8_cut(msg, sizeof(msg) - 1); /* no character split by the cut */
    while (len > 0 && msg[len - 1] == '\n')        /* a peer's message may end in one (libpq's do) */
        len--;
    return util_log_format_line(buf, UTIL_LOG_LINE_MAX, util_log_encoding(), util_now_us() / 1000, level,
                                component, msg, len, truncated);
}

static _Thread_local util_log_sink_fn util_log_sink;
static _Thread_local void *util_log_sink_arg;

void util_log_set_thread_sink(util_log_sink_fn fn, void *arg)
{
    util_log_sink = fn;
    util_log_sink_arg = arg;
}

void util_vlog(util_log_level_t level, const char *component, const char *fmt, va_list ap)
{
    if (!util_log_enabled(level))
        return;
    int saved_errno = errno; /* callers may log between a failure and reading errno */
    char line[UTIL_LOG_LINE_MAX];
    size_t n = util_log_vline(line, level, component, fmt, ap);
    if (util_log_sink != NULL && n > 0)
        util_log_sink(util_log_sink_arg, line, n);
    else
        util_log_write(line, n);
    errno = saved_errno;
}

void util_log(util_log_level_t level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    util_vlog(level, component, fmt, ap);
    va_end(ap);
}
