/*
 * Access tokens: HS256 JWTs through libjwt, with the algorithm pinned by us. The header is
 * decoded and checked before libjwt sees the token, so `none` or any other algorithm is
 * refused whatever the library would accept.
 */
#include "auth/auth.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define AUTH_JWT_MAX_LEN    4096
#define AUTH_JWT_HEADER_MAX 512

char *auth_jwt_issue(const auth_jwt_config_t *config, const char *user_id, const char *role, const char *sid,
                     time_t now, auth_claims_t *claims)
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return NULL;
    char jti[33];
    for (int i = 0; i < 16; i++)
        snprintf(jti + 2 * i, 3, "%02x", raw[i]);
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

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes unpadded base64url into out (NUL-terminated). Returns the length or -1. */
static long b64url_decode(const char *in, size_t len, char *out, size_t outlen)
{
    if (len % 4 == 1 || len / 4 * 3 + 3 >= outlen)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return (long)o;
}

/* The header must be a JSON object naming HS256 (and, if it says, typ JWT). */
static int auth_jwt_header_ok(const char *token, size_t header_len)
{
    char header[AUTH_JWT_HEADER_MAX];
    long n = b64url_decode(token, header_len, header, sizeof(header));
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
        } else if (b64url_value(token[i]) < 0) {
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

/* Claims are read from the payload as JSON with their types checked (libjwt's getters turn
 * a string "iat" into 0 without complaint). */
static auth_jwt_status_t auth_jwt_check_claims(const auth_jwt_config_t *config, jwt_t *jwt, time_t now,
                                               auth_claims_t *claims)
{
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        return AUTH_JWT_INVALID;
    char *text = jwt_get_grants_json(jwt, NULL);
    json_t *doc = text != NULL ? json_loads(text, 0, NULL) : NULL;
    free(text);
    const char *iss = json_string_value(json_object_get(doc, "iss"));
    const char *typ = json_string_value(json_object_get(doc, "typ"));
    json_t *iat = json_object_get(doc, "iat"), *exp = json_object_get(doc, "exp");
    auth_claims_t c = {0};
    auth_jwt_status_t status = AUTH_JWT_INVALID;
    if (iss != NULL && strcmp(iss, config->issuer) == 0 && typ != NULL && strcmp(typ, "access") == 0 &&
        json_is_integer(iat) && json_is_integer(exp) &&
        auth_copy_claim(doc, "sub", c.sub, sizeof(c.sub)) == 0 &&
        auth_copy_claim(doc, "role", c.role, sizeof(c.role)) == 0 &&
        auth_copy_claim(doc, "jti", c.jti, sizeof(c.jti)) == 0 &&
        auth_copy_claim(doc, "sid", c.sid, sizeof(c.sid)) == 0) {
        c.iat = json_integer_value(iat);
        c.exp = json_integer_value(exp);
        if (c.iat > (int64_t)now + config->leeway_s)
            status = AUTH_JWT_INVALID;
        else if ((int64_t)now > c.exp + config->leeway_s)
            status = AUTH_JWT_EXPIRED;
        else
            status = AUTH_JWT_OK;
    }
    json_decref(doc);
    if (status == AUTH_JWT_OK && claims != NULL)
        *claims = c;
    return status;
}

auth_jwt_status_t auth_jwt_verify(const auth_jwt_config_t *config, const char *token, size_t len, time_t now,
                                  auth_claims_t *claims)
{
    if (len == 0 || len > AUTH_JWT_MAX_LEN)
        return AUTH_JWT_INVALID;
    size_t header_len = auth_jwt_shape(token, len);
    if (header_len == 0 || !auth_jwt_header_ok(token, header_len))
        return AUTH_JWT_INVALID;
    char *copy = strndup(token, len);
    jwt_t *jwt = NULL;
    auth_jwt_status_t status = AUTH_JWT_INVALID;
    if (copy != NULL && jwt_decode(&jwt, copy, config->secret, (int)config->secret_len) == 0)
        status = auth_jwt_check_claims(config, jwt, now, claims);
    jwt_free(jwt);
    free(copy);
    return status;
}
