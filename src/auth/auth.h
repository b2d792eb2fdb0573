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
/* The principal cache tells a token's jti from an API key's hash by length alone. */
_Static_assert(sizeof(((auth_claims_t *)0)->jti) <= AUTH_TOKEN_HASH_LEN,
               "a jti can never be as long as an API key's hash");

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

/* ---------------------------------------------------------- principal cache ---- */

/* What authenticating a user's access token and GET /api/v1/me need from the user's row. */
typedef struct {
    char user_id[40];
    char role[16];
    double tokens_valid_after; /* Unix seconds; NaN when never set */
    const char *user_json;     /* the contract's User (the cache keeps its own copy) */
} auth_principal_t;

/* A bounded LRU of principals by user id, one per event loop (not thread-safe). Each entry
 * also holds the credentials (at most AUTH_PCACHE_JTIS) that the database found valid: the
 * jtis of access tokens not revoked, and API keys' hashes (AUTH_TOKEN_HASH_LEN characters, a
 * length no jti of ours has). A credential is only answered from an entry that saw it
 * verified, and every invalidation of the user forgets the whole entry. */
#define AUTH_PCACHE_JTIS 4

typedef struct auth_pcache auth_pcache_t;

/* max_entries >= 1. NULL when out of memory. */
auth_pcache_t *auth_pcache_new(size_t max_entries);
void auth_pcache_free(auth_pcache_t *cache);
/* The principal of user_id if its entry has not expired at now_ms and saw jti verified; the
 * pointer is valid until the next call on the cache. A hit makes the entry most recent. */
const auth_principal_t *auth_pcache_get(auth_pcache_t *cache, const char *user_id, const char *jti,
                                        uint64_t now_ms);
/* Stores (or updates) the user's principal and adds jti to its verified set. An existing
 * entry keeps its expiry when that is earlier (its older jtis were verified earlier). The
 * least recently used entry goes when the cache is full. Returns 0, or -1 (nothing stored). */
int auth_pcache_put(auth_pcache_t *cache, const auth_principal_t *principal, const char *jti,
                    uint64_t expires_ms);
/* API keys name no user: a map, bounded by max_entries, from a key's hash to the user whose
 * entry holds it (and when this loop last had the key's last use written). The map needs no
 * invalidation of its own: it only says where to look, and a stale pair leads to an entry
 * without the hash (a miss). The principal of the key if the map names a user whose entry has
 * not expired and holds the hash; *touch is then 1 when this loop has not had the key's last
 * use written for touch_every_ms (the map now counts it as written at now_ms), else 0. */
const auth_principal_t *auth_pcache_get_key(auth_pcache_t *cache, const char *key_hash, uint64_t now_ms,
                                            uint64_t touch_every_ms, int *touch);
/* auth_pcache_put with the key's hash as the credential, and the map pointed at the user;
 * touched_ms: when the key's last use was written (or found recent). Returns 0, or -1. */
int auth_pcache_put_key(auth_pcache_t *cache, const auth_principal_t *principal, const char *key_hash,
                        uint64_t expires_ms, uint64_t touched_ms);
/* Keys the map holds, and pairs pushed out of it by another key (the bound) since made. */
size_t auth_pcache_key_count(const auth_pcache_t *cache);
uint64_t auth_pcache_key_evictions(const auth_pcache_t *cache);
/* Forgets the user's entry. Returns 1 when there was one. */
int auth_pcache_forget(auth_pcache_t *cache, const char *user_id);
/* Forgets everything; returns how many entries went. */
size_t auth_pcache_clear(auth_pcache_t *cache);
size_t auth_pcache_count(const auth_pcache_t *cache);
/* Entries pushed out by the size bound since the cache was made. */
uint64_t auth_pcache_evictions(const auth_pcache_t *cache);

/* The process's invalidations, shared by its loops: a ring of user ids (AUTH_PCACHE_ALL for
 * everyone) with a sequence number; each loop applies what was pushed since its own cursor
 * before it answers from its cache. Pushing and applying take a mutex; asking whether
 * anything is new is one atomic load. */
#define AUTH_PCACHE_ALL "*"

typedef struct auth_pcache_log auth_pcache_log_t;

auth_pcache_log_t *auth_pcache_log_new(size_t slots);
void auth_pcache_log_free(auth_pcache_log_t *log);
/* heard: 1 for what the database's notification said, 0 for what this process did itself;
 * at_ms: when (monotonic milliseconds). */
void auth_pcache_log_push(auth_pcache_log_t *log, const char *user_id, int heard, uint64_t at_ms);
/* The sequence number of the next push. */
uint64_t auth_pcache_log_head(const auth_pcache_log_t *log);
/* Forgets in cache every user pushed since *cursor (everyone when the ring has been
 * overwritten since, or AUTH_PCACHE_ALL was pushed) and moves *cursor to the head. Returns
 * the entries forgotten. */
size_t auth_pcache_log_apply(auth_pcache_log_t *log, uint64_t *cursor, auth_pcache_t *cache);
/* 1 when user_id (or everyone) was pushed at or after `since`, or when that part of the ring
 * is overwritten already: a principal read from the database before `since` may be stale. */
int auth_pcache_log_touched(auth_pcache_log_t *log, uint64_t since, const char *user_id);
/* Waits (at most timeout_ms) until a heard push for user_id (or everyone) at or after
 * since_ms is in the log. Returns 1 when there is one, 0 on timeout. Blocks: never on a loop. */
int auth_pcache_log_wait_heard(auth_pcache_log_t *log, const char *user_id, uint64_t since_ms,
                               int timeout_ms);

#endif
