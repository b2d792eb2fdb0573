/*
 * Access tokens: HS256 JWTs, signed by libjwt and verified here with the algorithm pinned:
 * the header is decoded and checked first, so `none` or any other algorithm is refused.
 */
#include "auth/auth.h"

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_JWT_MAX_LEN    4096
#define AUTH_JWT_HEADER_MAX 512

char *auth_jwt_issue(const auth_jwt_config_t *config, const char *user_id, const char *role, const char *sid,
                     time_t now, auth_claims_t *claims)
{
    unsigned char raw[16];
    char jti[2 * sizeof(raw) + 1];
    if (util_random_bytes(raw, sizeof(raw)) != 0)
        return NULL;
    util_hex_encode(raw, sizeof(raw), jti, 0);
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "iss", config->issuer) == 0 &&
        jwt_add_grant(jwt, "sub", user_id) == 0 && jwt_add_grant(jwt, "role", role) == 0 &&
        jwt_add_grant(jwt, "typ", "access") == 0 && jwt_add_grant(jwt, "jti", jti) == 0 &&
        jwt_add_grant(jwt, "sid", sid) == 0 && jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)now + config->ttl_s) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, config->secret, (int)config->secret_len) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (token != NULL && claims != NULL) {
        memset(claims, 0, sizeof(*claims));
        snprintf(claims->sub, sizeof(claims->sub), "%s", user_id);
        snprintf(claims->role, sizeof(claims->role), "%s", role);
        snprintf(claims->jti, sizeof(claims->jti), "%s", jti);
        snprintf(claims->sid, sizeof(claims->sid), "%s", sid);
        claims->iat = now;
        claims->exp = now + config->ttl_s;
    }
    return token;
}

/* The header must be a JSON object naming HS256 (and, if it says, typ JWT). The one that
 * libjwt and PyJWT write, {"alg":"HS256","typ":"JWT"}, is known good without parsing. */
static int auth_jwt_header_ok(const char *token, size_t header_len)
{
    static const char usual[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    if (header_len == sizeof(usual) - 1 && memcmp(token, usual, header_len) == 0)
        return 1;
    char header[AUTH_JWT_HEADER_MAX];
    long n = util_base64_decode(token, header_len, header, sizeof(header), UTIL_BASE64_URL);
    if (n <= 0 || memchr(header, '\0', (size_t)n) != NULL)
        return 0;
    json_t *doc = json_loadb(header, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
    const char *alg = json_string_value(json_object_get(doc, "alg"));
    json_t *typ = json_object_get(doc, "typ");
    int ok = json_is_object(doc) && alg != NULL && strcmp(alg, "HS256") == 0 &&
             (typ == NULL || (json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0));
    json_decref(doc);
    return ok;
}

/* The token's shape: three non-empty base64url parts. Returns the header's length or 0. */
static size_t auth_jwt_shape(const char *token, size_t len)
{
    size_t dots[2], ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 2)
                return 0;
            dots[ndots++] = i;
        } else if (util_base64_value(token[i], UTIL_BASE64_URL) < 0) {
            return 0;
        }
    }
    if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1 || dots[1] + 1 == len)
        return 0;
    return dots[0];
}

static int auth_copy_claim(const json_t *claims, const char *name, char *out, size_t outlen)
{
    const json_t *v = json_object_get(claims, name);
    size_t len = json_string_length(v);
    if (!json_is_string(v) || len == 0 || len >= outlen || strlen(json_string_value(v)) != len)
        return -1;
    memcpy(out, json_string_value(v), len + 1);
    return 0;
}

/* a > b + margin for any int64 values: the claims are the sender's and may sit at either end
 * of the range, and so may a clock the caller passes in (margin >= 0). */
static int auth_later_by(int64_t a, int64_t b, int64_t margin)
{
    return a > b && (uint64_t)a - (uint64_t)b > (uint64_t)margin;
}

static auth_jwt_status_t auth_jwt_times_ok(const auth_jwt_config_t *config, const auth_claims_t *c,
                                           time_t now)
{
    if (auth_later_by(c->iat, (int64_t)now, config->leeway_s))
        return AUTH_JWT_INVALID;
    if (auth_later_by((int64_t)now, c->exp, config->leeway_s))
        return AUTH_JWT_EXPIRED;
    return AUTH_JWT_OK;
}

/* Claims are read from the payload as JSON with their types checked (a string "iat" is not
 * a time). */
static auth_jwt_status_t auth_jwt_check_claims(const auth_jwt_config_t *config, const char *payload,
                                               size_t payload_len, time_t now, auth_claims_t *claims)
{
    json_t *doc = json_loadb(payload, payload_len, JSON_REJECT_DUPLICATES, NULL);
    const char *iss = json_string_value(json_object_get(doc, "iss"));
    const char *typ = json_string_value(json_object_get(doc, "typ"));
    json_t *iat = json_object_get(doc, "iat"), *exp = json_object_get(doc, "exp");
    auth_claims_t c = {0};
    auth_jwt_status_t status = AUTH_JWT_INVALID;
    if (json_is_object(doc) && iss != NULL && strcmp(iss, config->issuer) == 0 && typ != NULL &&
        strcmp(typ, "access") == 0 && json_is_integer(iat) && json_is_integer(exp) &&
        auth_copy_claim(doc, "sub", c.sub, sizeof(c.sub)) == 0 &&
        auth_copy_claim(doc, "role", c.role, sizeof(c.role)) == 0 &&
        auth_copy_claim(doc, "jti", c.jti, sizeof(c.jti)) == 0 &&
        auth_copy_claim(doc, "sid", c.sid, sizeof(c.sid)) == 0) {
        c.iat = json_integer_value(iat);
        c.exp = json_integer_value(exp);
        status = auth_jwt_times_ok(config, &c, now);
    }
    json_decref(doc);
    if (status == AUTH_JWT_OK && claims != NULL)
        *claims = c;
    return status;
}

/* HMAC-SHA256 over "header.payload", compared in constant time with the decoded signature. */
static int auth_jwt_signature_ok(const auth_jwt_config_t *config, const char *token, size_t signed_len,
                                 const char *signature, size_t signature_len)
{
    unsigned char given[32]; /* one spelling only: the decoder refuses spare bits set */
    long n = util_base64_decode(signature, signature_len, given, sizeof(given), UTIL_BASE64_URL);
    unsigned char expected[EVP_MAX_MD_SIZE];
    unsigned int expected_len = 0;
    if (n != 32 || HMAC(EVP_sha256(), config->secret, (int)config->secret_len, (const unsigned char *)token,
                        signed_len, expected, &expected_len) == NULL)
        return 0;
    return expected_len == 32 && CRYPTO_memcmp(expected, given, 32) == 0;
}

/*
 * Tokens already verified, per thread: a client sends the same access token with every
 * request for as long as it lives, and re-checking the signature and re-parsing the payload
 * of identical bytes was most of what an authenticated request cost the loop (the HMAC and
 * jansson, in profiles of GET /api/v1/me: bench/README.md). A hit needs the whole
 * token, byte for byte, under the same configuration, so it decides exactly as verifying
 * again would; the time-dependent checks are repeated on every use. Fixed-size and static, so
 * there is nothing to free when a loop thread ends.
 */
#define AUTH_JWT_CACHE_SLOTS     64
#define AUTH_JWT_CACHE_TOKEN_MAX 768

typedef struct {
    auth_jwt_config_t config; /* the configuration it was verified under */
    size_t len;
    char token[AUTH_JWT_CACHE_TOKEN_MAX];
    auth_claims_t claims;
} auth_jwt_cached_t;

static _Thread_local auth_jwt_cached_t auth_jwt_cache[AUTH_JWT_CACHE_SLOTS];

static auth_jwt_cached_t *auth_jwt_cache_slot(const char *token, size_t len)
{
    /* The signature's last characters are as good a hash as any (HMAC output is uniform). */
    uint32_t h = 2166136261u;
    for (size_t i = len > 8 ? len - 8 : 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    return &auth_jwt_cache[h % AUTH_JWT_CACHE_SLOTS];
}

static auth_jwt_status_t auth_jwt_verify_uncached(const auth_jwt_config_t *config, const char *token,
                                                  size_t len, time_t now, auth_claims_t *claims);

static int auth_jwt_same_config(const auth_jwt_config_t *a, const auth_jwt_config_t *b)
{
    return a->secret_len == b->secret_len && a->leeway_s == b->leeway_s && a->secret != NULL &&
           memcmp(a->secret, b->secret, a->secret_len) == 0 && a->issuer != NULL && b->issuer != NULL &&
           strcmp(a->issuer, b->issuer) == 0;
}

auth_jwt_status_t auth_jwt_verify(const auth_jwt_config_t *config, const char *token, size_t len, time_t now,
                                  auth_claims_t *claims)
{
    auth_jwt_cached_t *slot = auth_jwt_cache_slot(token, len);
    if (slot->len == len && auth_jwt_same_config(&slot->config, config) &&
        memcmp(slot->token, token, len) == 0) {
        auth_jwt_status_t status = auth_jwt_times_ok(config, &slot->claims, now);
        if (status == AUTH_JWT_OK && claims != NULL)
            *claims = slot->claims;
        return status;
    }
    auth_claims_t c;
    auth_jwt_status_t status = auth_jwt_verify_uncached(config, token, len, now, &c);
    if (status != AUTH_JWT_OK)
        return status;
    if (len <= sizeof(slot->token)) {
        slot->config = *config;
        slot->len = len;
        memcpy(slot->token, token, len);
        slot->claims = c;
    }
    if (claims != NULL)
        *claims = c;
    return AUTH_JWT_OK;
}

/* Verification is done here rather than by libjwt: its decode parses the header and the
 * payload with jansson and reading typed claims back out needs a dump and a second parse,
 * which a profile of GET /api/v1/me showed as the largest share of the loop's own work.
 * Order: shape, header (algorithm pinned), signature, and only then the payload. */
static auth_jwt_status_t auth_jwt_verify_uncached(const auth_jwt_config_t *config, const char *token,
                                                  size_t len, time_t now, auth_claims_t *claims)
{
    if (len == 0 || len > AUTH_JWT_MAX_LEN)
        return AUTH_JWT_INVALID;
    size_t header_len = auth_jwt_shape(token, len);
    if (header_len == 0 || !auth_jwt_header_ok(token, header_len))
        return AUTH_JWT_INVALID;
    const char *payload = token + header_len + 1;
    const char *dot = memchr(payload, '.', len - header_len - 1);
    size_t signed_len = (size_t)(dot - token);
    if (!auth_jwt_signature_ok(config, token, signed_len, dot + 1, len - signed_len - 1))
        return AUTH_JWT_INVALID;
    char decoded[AUTH_JWT_MAX_LEN];
    long n = util_base64_decode(payload, (size_t)(dot - payload), decoded, sizeof(decoded), UTIL_BASE64_URL);
    if (n <= 0 || memchr(decoded, '\0', (size_t)n) != NULL)
        return AUTH_JWT_INVALID;
    return auth_jwt_check_claims(config, decoded, (size_t)n, now, claims);
}
