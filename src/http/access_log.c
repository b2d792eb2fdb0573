/*
 * One JSON line per request, formatted without allocation into the caller's buffer.
 */
#include "http/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static void http_out_fmt(http_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void http_out_fmt(http_out_t *o, const char *fmt, ...)
{
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->overflow = 1;
    else
        o->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid. */
static size_t http_utf8_len(const unsigned char *s, size_t avail)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || n > avail || (n == 2 && s[0] < 0xc2) || (n == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A JSON string; control characters escaped, invalid UTF-8 bytes replaced by U+FFFD. */
static void http_out_string(http_out_t *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t left = strlen((const char *)p);
    http_out_bytes(o, "\"", 1);
    while (left > 0) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            http_out_bytes(o, esc, 2);
            p++, left--;
        } else if (*p < 0x20 || *p == 0x7f) {
            http_out_fmt(o, "\\u%04x", *p);
            p++, left--;
        } else {
            size_t n = http_utf8_len(p, left);
            if (n == 0) {
                http_out_bytes(o, "\xef\xbf\xbd", 3);
                n = 1;
            } else {
                http_out_bytes(o, (const char *)p, n);
            }
            p += n, left -= n;
        }
    }
    http_out_bytes(o, "\"", 1);
}

int http_log_format(const http_log_entry_t *e, char *buf, size_t buflen)
{
    http_out_t o = {.buf = buf, .cap = buflen};
    time_t secs = (time_t)(e->unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    http_out_fmt(&o, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"request_id\":", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(e->unix_ms % 1000));
    http_out_string(&o, e->request_id);
    http_out_bytes(&o, ",\"method\":", 10);
    http_out_string(&o, e->method);
    http_out_bytes(&o, ",\"route\":", 9);
    http_out_string(&o, e->route);
    http_out_fmt(&o, ",\"status\":%d,\"bytes\":%llu,\"duration_us\":%llu,\"protocol\":", e->status,
                 (unsigned long long)e->bytes, (unsigned long long)e->duration_us);
    http_out_string(&o, e->protocol);
    http_out_bytes(&o, ",\"client\":", 10);
    http_out_string(&o, e->client);
    http_out_bytes(&o, "}\n", 2);
    if (o.overflow)
        return -1;
    buf[o.len] = '\0';
    return (int)o.len;
}
