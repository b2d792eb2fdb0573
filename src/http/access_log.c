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

/* Bytes a JSON string may carry as they are: printable ASCII but the quote and backslash. */
static int http_out_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* A JSON string; control characters escaped, bytes that are not valid UTF-8 (as
 * util_utf8_sequence: overlongs and surrogates included, so the line stays valid JSON)
 * replaced by U+FFFD. Runs of plain ASCII (every field of a usual line: ids, routes, methods,
 * addresses) are copied with one memcpy: byte by byte, this was the log's largest cost in the
 * /health/live profile (bench/results/profiles). */
static void http_out_string(http_out_t *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t left = strlen((const char *)p);
    http_out_bytes(o, "\"", 1);
    while (left > 0) {
        size_t run = 0;
        while (run < left && http_out_plain(p[run]))
            run++;
        if (run > 0) {
            http_out_bytes(o, (const char *)p, run);
            p += run, left -= run;
            continue;
        }
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            http_out_bytes(o, esc, 2);
            p++, left--;
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[7] = "\\u00";
            util_hex_encode(p, 1, esc + 4, 0);
            http_out_bytes(o, esc, 6);
            p++, left--;
        } else {
            size_t n = util_utf8_sequence(p, left);
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

/* The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
 * civil_from_days). gmtime_r would take glibc's time-zone lock, which every loop shares, on
 * every request. */
static void http_civil_date(int64_t days, int *year, unsigned *month, unsigned *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)((int64_t)yoe + era * 400 + (*month <= 2));
}

/* "2026-11-22T11:02:28.123Z". The date and time up to the second are kept per thread: lines
 * of one second share them. */
static void http_out_time(http_out_t *o, int64_t unix_ms)
{
    static _Thread_local int64_t cached_secs = -1;
    static _Thread_local char cached[20]; /* "2026-11-22T11:02:28." */
    int64_t ms = unix_ms > 0 ? unix_ms : 0, secs = ms / 1000;
    if (secs != cached_secs) {
        int64_t of_day = secs % 86400;
        int year;
        unsigned month, day;
        http_civil_date(secs / 86400, &year, &month, &day);
        http_out_t c = {.buf = cached, .cap = sizeof(cached) + 1}; /* no NUL is written */
        http_out_padded(&c, (unsigned)year, 4);
        http_out_bytes(&c, "-", 1);
        http_out_padded(&c, month, 2);
        http_out_bytes(&c, "-", 1);
        http_out_padded(&c, day, 2);
        http_out_bytes(&c, "T", 1);
        http_out_padded(&c, (unsigned)(of_day / 3600), 2);
        http_out_bytes(&c, ":", 1);
        http_out_padded(&c, (unsigned)(of_day / 60 % 60), 2);
        http_out_bytes(&c, ":", 1);
        http_out_padded(&c, (unsigned)(of_day % 60), 2);
        http_out_bytes(&c, ".", 1);
        cached_secs = secs;
    }
    http_out_bytes(o, cached, sizeof(cached));
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

int http_log_format_error(char *buf, size_t buflen, const char *request_id, const char *route, int status,
                          const char *code, const char *message)
{
    http_out_t o = {.buf = buf, .cap = buflen};
    http_out_text(&o, "hydrant: request ");
    http_out_text(&o, request_id);
    http_out_text(&o, " ");
    http_out_text(&o, route);
    http_out_text(&o, ": ");
    http_out_uint(&o, status > 0 ? (uint64_t)status : 0);
    http_out_text(&o, " ");
    http_out_text(&o, code);
    http_out_text(&o, ": ");
    http_out_text(&o, message);
    http_out_text(&o, "\n");
    return http_out_end(&o);
}
