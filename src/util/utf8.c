/*
 * UTF-8 (RFC 3629), strictly: what passwords and names are counted in, what templates must
 * be, and what the access log and the CSV analysis replace with U+FFFD when it is not.
 */
#include "util/util.h"

size_t util_utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char b = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (b < 0x80)
        return 1;
    /* The second byte's range is what refuses overlong forms (C0, C1, E0 80..9F, F0
     * 80..8F), surrogates (ED A0..BF) and code points past U+10FFFF (F4 90.., F5..). */
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        lo = b == 0xE0 ? 0xA0 : lo;
        hi = b == 0xED ? 0x9F : hi;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        lo = b == 0xF0 ? 0x90 : lo;
        hi = b == 0xF4 ? 0x8F : hi;
    } else {
        return 0;
    }
    if (avail < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return len;
}

long util_utf8_length(const void *s, size_t len)
{
    const unsigned char *p = s;
    long count = 0;
    for (size_t i = 0; i < len; count++) {
        size_t n = util_utf8_sequence(p + i, len - i);
        if (n == 0)
            return -1;
        i += n;
    }
    return count;
}

size_t util_utf8_cut(const void *s, size_t len)
{
    const unsigned char *p = s;
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char b = p[len - back];
        if ((b & 0xC0) == 0x80)
            continue;
        size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        return need > back ? len - back : len;
    }
    return len;
}
