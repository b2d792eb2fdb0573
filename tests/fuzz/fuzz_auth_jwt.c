/*
 * libFuzzer target for access tokens: auth_jwt_verify with a fixed secret and issuer.
 *
 * Input: one byte, then either the token as sent (bit 0 clear) or a header and a payload as
 * JSON text separated by the first '\n' (bit 0 set), which are encoded and signed here with
 * the secret, so that the header check and the claims reader are reached past the signature.
 * Bit 1 then changes one byte of the signed token, which must never verify. A token that
 * verifies gives the payload's own claims, verifies the same way again (from the cache), and
 * is expired once its exp is past the leeway.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "fuzz.h"

#define FUZZ_SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"
#define FUZZ_NOW    1700000000

static const auth_jwt_config_t config = {(const unsigned char *)FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1,
                                         "hydrant", 900, 5};

/* Unpadded base64url of len bytes, appended at out + *o. */
static void b64url(const unsigned char *in, size_t len, char *out, size_t *o)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[(*o)++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[(*o)++] = alphabet[(acc << (6 - bits)) & 63];
}

/* base64url(header) "." base64url(payload) "." base64url(HMAC-SHA256), malloc'd. */
static char *sign(const uint8_t *header, size_t hlen, const uint8_t *payload, size_t plen, size_t *len)
{
    char *token = malloc((hlen + plen) * 2 + 64);
    fuzz_check(token != NULL);
    size_t o = 0;
    b64url(header, hlen, token, &o);
    token[o++] = '.';
    b64url(payload, plen, token, &o);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    fuzz_check(HMAC(EVP_sha256(), config.secret, (int)config.secret_len, (const unsigned char *)token, o, mac,
                    &mac_len) != NULL);
    token[o++] = '.';
    b64url(mac, mac_len, token, &o);
    *len = o;
    return token;
}

static void check_claim(const json_t *payload, const char *name, const char *value)
{
    fuzz_check(value[0] != '\0' && strcmp(json_string_value(json_object_get(payload, name)), value) == 0);
}

/* A token that verified: again (cached), and once it has expired. */
static void check_verified(const char *token, size_t len, const auth_claims_t *claims)
{
    auth_claims_t again;
    fuzz_check(auth_jwt_verify(&config, token, len, FUZZ_NOW, &again) == AUTH_JWT_OK);
    fuzz_check(memcmp(&again, claims, sizeof(again)) == 0);
    if (claims->exp < INT64_MAX - config.leeway_s - 1)
        fuzz_check(auth_jwt_verify(&config, token, len, (time_t)(claims->exp + config.leeway_s + 1), NULL) ==
                   AUTH_JWT_EXPIRED);
}

static void fuzz_signed(uint8_t seed, const uint8_t *data, size_t size)
{
    size_t hlen, len;
    const uint8_t *header = fuzz_next(&data, &size, '\n', &hlen);
    char *token = sign(header, hlen, data, size, &len);
    if (seed & 2) {
        token[seed % len] ^= 1; /* still base64url: '-' <-> ',', so shape or bytes differ */
        fuzz_check(auth_jwt_verify(&config, token, len, FUZZ_NOW, NULL) != AUTH_JWT_OK);
        free(token);
        return;
    }
    auth_claims_t claims;
    if (auth_jwt_verify(&config, token, len, FUZZ_NOW, &claims) == AUTH_JWT_OK) {
        json_t *payload = json_loadb((const char *)data, size, 0, NULL);
        fuzz_check(payload != NULL);
        check_claim(payload, "sub", claims.sub);
        check_claim(payload, "role", claims.role);
        check_claim(payload, "jti", claims.jti);
        check_claim(payload, "sid", claims.sid);
        json_decref(payload);
        check_verified(token, len, &claims);
    }
    free(token);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        fuzz_signed(data[0], data + 1, size - 1);
        return 0;
    }
    char *token = fuzz_copy(data + 1, size - 1);
    auth_claims_t claims;
    auth_jwt_status_t st = auth_jwt_verify(&config, token, size - 1, FUZZ_NOW, &claims);
    fuzz_check(st == AUTH_JWT_OK || st == AUTH_JWT_INVALID || st == AUTH_JWT_EXPIRED);
    if (st == AUTH_JWT_OK)
        check_verified(token, size - 1, &claims);
    free(token);
    return 0;
}
