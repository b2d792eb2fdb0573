/*
 * Base64 (RFC 4648): opaque tokens (url, unpadded), MIME encoded-words (standard, padded),
 * and the one strict decoder, which the JWT verifier relies on.
 */
#include "util/util.h"

size_t util_base64_encode(const void *in, size_t n, char *out, unsigned flags)
{
    const char *alphabet = (flags & UTIL_BASE64_URL)
                               ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                               : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t k = 0; k < 4; k++) {
            if (k < chars)
                out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
            else if (flags & UTIL_BASE64_PAD)
                out[o++] = '=';
        }
    }
    out[o] = '\0';
    return o;
}

/* The characters left once padding is taken off, or -1 when padding is wrong: with
 * UTIL_BASE64_PAD a multiple of 4 ending in at most two '='; without it, none at all (an '='
 * then fails as a character outside the alphabet). */
static long util_base64_unpadded(const char *in, size_t len, unsigned flags)
{
    if (!(flags & UTIL_BASE64_PAD))
        return (long)len;
    if (len % 4 != 0)
        return -1;
    for (int pad = 0; pad < 2 && len > 0 && in[len - 1] == '='; pad++)
        len--;
    return (long)len;
}

long util_base64_decode(const char *in, size_t len, void *out, size_t outlen, unsigned flags)
{
    long chars = util_base64_unpadded(in, len, flags);
    if (chars < 0 || chars % 4 == 1)
        return -1;
    size_t n = (size_t)chars, decoded = n / 4 * 3 + (n % 4 != 0 ? n % 4 - 1 : 0);
    if (decoded > outlen)
        return -1;
    unsigned char *o = out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = util_base64_value(in[i], flags);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    /* One spelling per byte string: the bits past the last byte must be zero. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)decoded;
}
