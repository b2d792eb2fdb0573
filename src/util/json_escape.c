/*
 * The one JSON string escaper, shared by the access log (every request, so it copies runs of
 * plain ASCII with one memcpy: byte by byte, this was the log's largest cost in the
 * /health/live profile, bench/results/profiles) and util_log.
 */
#include "util/util.h"

#include <string.h>

/* Bytes a JSON string may carry as they are: printable ASCII but the quote and backslash. */
static int util_json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

size_t util_json_escape(char *out, size_t cap, const char *s, size_t len, size_t *used)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t in = 0, at = 0;
    while (in < len) {
        size_t run = 0;
        while (in + run < len && util_json_plain(p[in + run]))
            run++;
        if (run > 0) {
            size_t n = run < cap - at ? run : cap - at;
            memcpy(out + at, p + in, n);
            at += n, in += n;
            if (n < run)
                break;
            continue;
        }
        char esc[7];
        size_t n, take = 1;
        if (p[in] == '"' || p[in] == '\\') {
            esc[0] = '\\', esc[1] = (char)p[in];
            n = 2;
        } else if (p[in] < 0x20 || p[in] == 0x7f) {
            memcpy(esc, "\\u00", 4);
            util_hex_encode(p + in, 1, esc + 4, 0);
            n = 6;
        } else if ((take = util_utf8_sequence(p + in, len - in)) == 0) {
            memcpy(esc, "\xef\xbf\xbd", 3);
            n = 3, take = 1;
        } else if (take == 2 && p[in] == 0xc2 && p[in + 1] < 0xa0) {
            /* C1 controls (NEL, the 8-bit CSI): some readers split lines at NEL, some
             * terminals act on them */
            memcpy(esc, "\\u00", 4);
            util_hex_encode(p + in + 1, 1, esc + 4, 0);
            n = 6;
        } else if (take == 3 && p[in] == 0xe2 && p[in + 1] == 0x80 &&
                   (p[in + 2] == 0xa8 || p[in + 2] == 0xa9)) {
            /* U+2028 and U+2029, line and paragraph separators to some log readers */
            memcpy(esc, p[in + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            n = 6;
        } else {
            memcpy(esc, p + in, take);
            n = take;
        }
        if (n > cap - at)
            break;
        memcpy(out + at, esc, n);
        at += n, in += take;
    }
    *used = in;
    return at;
}
