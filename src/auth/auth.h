/*
 * Accounts and sessions: passwords (Argon2id, legacy bcrypt), access tokens (JWT), opaque
 * tokens (refresh, confirmation, reset, API keys) and the contract's input rules.
 *
 * Everything here is pure or CPU-bound: password hashing and verifying are slow on purpose
 * and must run on a worker thread, never on an event loop.
 */
#ifndef HYDRANT_AUTH_H
#define HYDRANT_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util.h"

/* ---------------------------------------------------------------- input rules ---- */

/* Emails: util_email_normalize (src/util/util.h), the one rule the mailer also applies. */

/* Passwords: 8 to 256 Unicode code points of valid UTF-8 without NUL. Longer inputs are
 * refused before any hashing (a 10 KB password costs nothing). */
int auth_password_acceptable(const char *password, size_t len);

/* Length in Unicode code points of valid UTF-8 without NUL, or -1. */
long auth_utf8_length(const char *s, size_t len);

/* Usernames: 3 to 32 characters of [A-Za-z0-9_.-]. */
int auth_username_valid(const char *username, size_t len);

/* ------------------------------------------------------------------ passwords ---- */

typedef struct {
    uint32_t memory_kib;
    uint32_t iterations;
    uint32_t parallelism;
} auth_argon2_params_t;

#define AUTH_HASH_MAX 160 /* an Argon2id PHC string with our parameters fits easily */

/* Argon2id in the PHC string format ($argon2id$v=19$m=..,t=..,p=..$salt$hash) with a
 * random 16-byte salt and a 32-byte hash. Returns 0, or -1. */
int auth_password_hash(const char *password, size_t len, const auth_argon2_params_t *params, char *out,
                       size_t outlen);

typedef enum {
    AUTH_VERIFY_MATCH,
    AUTH_VERIFY_MISMATCH,
    AUTH_VERIFY_UNSUPPORTED, /* not a hash this build reads */
} auth_verify_t;

/* Verifies against an Argon2 (id, i, d) PHC string or a bcrypt ($2a$, $2b$, $2y$) hash. */
auth_verify_t auth_password_verify(const char *password, size_t len, const char *stored);

/* 1 when a stored hash should be replaced after a successful login: not Argon2id, or
 * weaker than params in memory, iterations or parallelism. */
int auth_password_needs_rehash(const char *stored, const auth_argon2_params_t *params);

/* --------------------------------------------------------------- opaque tokens ---- */

#define AUTH_TOKEN_LEN      43 /* 32 random bytes, base64url without padding */
#define AUTH_TOKEN_HASH_LEN 64 /* SHA-256 in hex */

/* 256 bits from the OS CSPRNG as base64url (AUTH_TOKEN_LEN chars + NUL). 0 or -1. */
int auth_token_new(char out[AUTH_TOKEN_LEN + 1]);

/* SHA-256 of the token as lower-case hex: what is stored, never the token itself. */
void auth_token_hash(const char *token, size_t len, char out[AUTH_TOKEN_HASH_LEN + 1]);

/* A token as a client may send it: 16..256 characters of base64url. */
int auth_token_plausible(const char *token, size_t len);

/* ------------------------------------------------------------- access tokens ---- */

typedef struct {
    const unsigned char *secret;
    size_t secret_len;
    const char *issuer;
    int ttl_s;
    int leeway_s; /* tolerated clock skew on exp and iat */
} auth_jwt_config_t;

typedef struct {
    char sub[64];  /* user id */
    char role[16]; /* user, superuser, admin */
    char jti[64];
    char sid[64]; /* the session: the refresh-token family the token came from */
    int64_t iat, exp;
} auth_claims_t;

/* Signs an access token (HS256) for the user and session (the contract's claims plus
 * `sid`, which logout uses to end the session's refresh family). The jti is fresh (random);
 * the claims used are returned in claims when not NULL. Returns a malloc'd token, or NULL. */
char *auth_jwt_issue(const auth_jwt_config_t *config, const char *user_id, const char *role, const char *sid,
                     time_t now, auth_claims_t *claims);

typedef enum {
    AUTH_JWT_OK,
    AUTH_JWT_INVALID, /* malformed, wrong algorithm, bad signature, wrong issuer or type */
    AUTH_JWT_EXPIRED,
} auth_jwt_status_t;

/* Verifies a token: the header must name HS256 (anything else, `none` included, is refused
 * before the signature is looked at), the signature must match, iss must be ours, typ must
 * be "access", exp must be in the future (within the leeway). */
auth_jwt_status_t auth_jwt_verify(const auth_jwt_config_t *config, const char *token, size_t len, time_t now,
                                  auth_claims_t *claims);

#endif
