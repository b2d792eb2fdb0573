/*
 * Opaque tokens (refresh, email confirmation, password reset, API keys): 256 bits from the
 * OS CSPRNG, shown to the client once, stored only as their SHA-256.
 */
#include "auth/auth.h"

#include <openssl/evp.h>
#include <string.h>
#include <sys/random.h>

static const char auth_b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding; out must hold 4 * ceil(len / 3) + 1 bytes. */
static void auth_base64url(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        size_t chars = i + 2 < len ? 4 : (i + 1 < len ? 3 : 2);
        for (size_t k = 0; k < chars; k++)
            out[o++] = auth_b64url[(v >> (18 - 6 * k)) & 0x3f];
    }
    out[o] = '\0';
}

int auth_token_new(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    auth_base64url(raw, sizeof(raw), out);
    return 0;
}

void auth_token_hash(const char *token, size_t len, char out[AUTH_TOKEN_HASH_LEN + 1])
{
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_Digest(token, len, digest, &n, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    out[AUTH_TOKEN_HASH_LEN] = '\0';
}

int auth_token_plausible(const char *token, size_t len)
{
    if (len < 16 || len > 256)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (token[i] == '\0' || strchr(auth_b64url, token[i]) == NULL)
            return 0;
    return 1;
}
