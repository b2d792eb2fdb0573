/*
 * Hex digits and the UUID text form: digests, token hashes, JWT ids, request ids, escapes.
 */
#include "util/util.h"

void util_hex_encode(const void *in, size_t n, char *out, unsigned flags)
{
    const char *digits = (flags & UTIL_HEX_UPPER) ? "0123456789ABCDEF" : "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Where the groups of the text form start in the bytes: 4, 2, 2, 2 and 6 bytes. */
static const unsigned char util_uuid_groups[] = {0, 4, 6, 8, 10, 16};

void util_uuid_format(const unsigned char bytes[16], char *out)
{
    char *o = out;
    for (int g = 0; g < 5; g++) {
        if (g > 0)
            *o++ = '-';
        size_t n = (size_t)(util_uuid_groups[g + 1] - util_uuid_groups[g]);
        util_hex_encode(bytes + util_uuid_groups[g], n, o, 0);
        o += 2 * n;
    }
}

int util_uuid_v4(char out[UTIL_UUID_LEN + 1])
{
    unsigned char b[16];
    if (util_random_bytes(b, sizeof(b)) != 0)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    util_uuid_format(b, out);
    return 0;
}

int util_uuid_valid(const char *s, size_t len)
{
    if (len != UTIL_UUID_LEN)
        return 0;
    for (size_t i = 0; i < UTIL_UUID_LEN; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return 0;
    }
    return 1;
}
