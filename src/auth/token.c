/*
 * Opaque tokens (refresh, email confirmation, password reset, API keys): 256 bits from the
 * OS CSPRNG, shown to the client once, stored only as their SHA-256.
 */
#include "auth/auth.h"

#include <openssl/evp.h>
#include <string.h>

int auth_token_new(char out[AUTH_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    if (util_random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    util_base64_encode(raw, sizeof(raw), out, UTIL_BASE64_URL);
    return 0;
}

void auth_token_hash(const char *token, size_t len, char out[AUTH_TOKEN_HASH_LEN + 1])
{
    unsigned char digest[32];
    unsigned int n = 0;
    EVP_Digest(token, len, digest, &n, EVP_sha256(), NULL);
    util_hex_encode(digest, sizeof(digest), out, 0);
}

int auth_token_plausible(const char *token, size_t len)
{
    if (len < 16 || len > 256)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (util_base64_value(token[i], UTIL_BASE64_URL) < 0)
            return 0;
    return 1;
}
