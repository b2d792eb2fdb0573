/*
 * One JSON line per request, formatted without allocation into the caller's buffer, and
 * without printf or gmtime: this runs for every request on the loops.
 */
#include "http/http.h"

#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
    int overflow;
} http_out_t;

static void http_out_bytes(http_out_t *o, const char *s, size_t n)
{
    if (o->overflow || o->len + n >= o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

/* Decimal digits of v. */
static void http_out_uint(http_out_t *o, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    http_out_bytes(o, digits + sizeof(digits) - n, n);
}

/* v in exactly width digits, zero-padded. */
static void http_out_padded(http_out_t *o, unsigned v, int width)
{
    char digits[4];
    for (int i = width - 1; i >= 0; i--, v /= 10)
        digits[i] = (char)('0' + v % 10);
    http_out_bytes(o, digits, (size_t)width);
}

/* A JSON string (util_json_escape). */
static void http_out_string(http_out_t *o, const char *s)
{
    const char *text = s != NULL ? s : "";
    size_t len = strlen(text), used;
    http_out_bytes(o, "\"", 1);
    if (!o->overflow) {
        o->len += util_json_escape(o->buf + o->len, o->cap - o->len - 1, text, len, &used);
        if (used < len)
            o->overflow = 1;
    }
    http_out_bytes(o, "\"", 1);
}

/* "2026-11-22T11:02:28.123Z". The date and time up to the second are kept per thread: lines
 * of one second share them. */
static void http_out_time(http_out_t *o, int64_t unix_ms)
{
    static _Thread_local int64_t cached_secs = -1;
    static _Thread_local char cached[UTIL_RFC3339_MS_LEN + 1]; /* "2026-11-22T11:02:28." used */
    int64_t ms = unix_ms > 0 ? unix_ms : 0, secs = ms / 1000;
    if (secs != cached_secs) {
        util_rfc3339_ms(secs * 1000, cached);
        cached_secs = secs;
    }
    http_out_bytes(o, cached, 20);
    http_out_padded(o, (unsigned)(ms % 1000), 3);
    http_out_bytes(o, "Z", 1);
}

static void http_out_text(http_out_t *o, const char *s)
{
    http_out_bytes(o, s, strlen(s));
}

static int http_out_end(http_out_t *o)
{
    if (o->overflow)
        return -1;
    o->buf[o->len] = '\0';
    return (int)o->len;
}

int http_log_format(const http_log_entry_t *e, char *buf, size_t buflen)
{
    http_out_t o = {.buf = buf, .cap = buflen};
    http_out_text(&o, "{\"time\":\"");
    http_out_time(&o, e->unix_ms);
    http_out_text(&o, "\",\"request_id\":");
    http_out_string(&o, e->request_id);
    http_out_text(&o, ",\"method\":");
    http_out_string(&o, e->method);
    http_out_text(&o, ",\"route\":");
    http_out_string(&o, e->route);
    http_out_text(&o, ",\"status\":");
    http_out_uint(&o, e->status > 0 ? (uint64_t)e->status : 0);
    http_out_text(&o, ",\"bytes\":");
    http_out_uint(&o, e->bytes);
    http_out_text(&o, ",\"duration_us\":");
    http_out_uint(&o, e->duration_us);
    http_out_text(&o, ",\"protocol\":");
    http_out_string(&o, e->protocol);
    http_out_text(&o, ",\"client\":");
    http_out_string(&o, e->client);
    http_out_text(&o, "}\n");
    return http_out_end(&o);
}
