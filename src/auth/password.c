/*
 * Password hashes: Argon2id (libargon2) in the PHC string format, so that other
 * implementations (argon2-cffi, libsodium) read them, and legacy bcrypt hashes brought by
 * migrating users, verified through libxcrypt (crypt_rn) and then replaced by Argon2id.
 * CPU-heavy by design: call from a worker thread only.
 */
#include "auth/auth.h"

#include <argon2.h>
#include <crypt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32

int auth_password_hash(const char *password, size_t len, const auth_argon2_params_t *params, char *out,
                       size_t outlen)
{
    unsigned char salt[AUTH_SALT_LEN];
    if (util_random_bytes(salt, sizeof(salt)) != 0)
        return -1;
    size_t need = argon2_encodedlen(params->iterations, params->memory_kib, params->parallelism,
                                    AUTH_SALT_LEN, AUTH_HASH_LEN, Argon2_id);
    if (need > outlen)
        return -1;
    int rc = argon2id_hash_encoded(params->iterations, params->memory_kib, params->parallelism, password, len,
                                   salt, sizeof(salt), AUTH_HASH_LEN, out, outlen);
    return rc == ARGON2_OK ? 0 : -1;
}

static int auth_is_bcrypt(const char *stored)
{
    return strncmp(stored, "$2a$", 4) == 0 || strncmp(stored, "$2b$", 4) == 0 ||
           strncmp(stored, "$2y$", 4) == 0;
}

static auth_verify_t auth_verify_bcrypt(const char *password, size_t len, const char *stored)
{
    /* crypt_r reads a NUL-terminated key; bcrypt uses at most 72 bytes of it anyway. */
    if (memchr(password, '\0', len) != NULL)
        return AUTH_VERIFY_MISMATCH;
    char *key = strndup(password, len);
    struct crypt_data *data = calloc(1, sizeof(*data));
    auth_verify_t result = AUTH_VERIFY_UNSUPPORTED;
    if (key != NULL && data != NULL) {
        /* crypt_rn, not crypt_r: same function, but sanitizers intercept crypt_r assuming
         * glibc's much smaller struct crypt_data. */
        const char *computed = crypt_rn(key, stored, data, (int)sizeof(*data));
        size_t n = strlen(stored);
        if (computed != NULL && computed[0] != '*' && strlen(computed) == n)
            result = CRYPTO_memcmp(computed, stored, n) == 0 ? AUTH_VERIFY_MATCH : AUTH_VERIFY_MISMATCH;
    }
    if (key != NULL)
        OPENSSL_cleanse(key, len);
    free(key);
    free(data);
    return result;
}

auth_verify_t auth_password_verify(const char *password, size_t len, const char *stored)
{
    argon2_type type;
    if (strncmp(stored, "$argon2id$", 10) == 0)
        type = Argon2_id;
    else if (strncmp(stored, "$argon2i$", 9) == 0)
        type = Argon2_i;
    else if (strncmp(stored, "$argon2d$", 9) == 0)
        type = Argon2_d;
    else if (auth_is_bcrypt(stored))
        return auth_verify_bcrypt(password, len, stored);
    else
        return AUTH_VERIFY_UNSUPPORTED;
    int rc = argon2_verify(stored, password, len, type);
    if (rc == ARGON2_OK)
        return AUTH_VERIFY_MATCH;
    return rc == ARGON2_VERIFY_MISMATCH ? AUTH_VERIFY_MISMATCH : AUTH_VERIFY_UNSUPPORTED;
}

int auth_password_needs_rehash(const char *stored, const auth_argon2_params_t *params)
{
    unsigned int m = 0, t = 0, p = 0;
    if (sscanf(stored, "$argon2id$v=19$m=%u,t=%u,p=%u$", &m, &t, &p) != 3)
        return 1;
    return m < params->memory_kib || t < params->iterations || p < params->parallelism;
}
