/*
 * libFuzzer target for the Authorization header: handlers_bearer_token, then auth_jwt_verify
 * of what it finds, as handlers_authenticate does (fixed secret and issuer; the corpus holds
 * tokens signed with them, so that mutations start from tokens that verify).
 *
 * Input: the header's value. The token is the value past "Bearer " (any case) or nothing; a
 * token that verifies verifies again, with the same claims, each a non-empty C string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "handlers/handlers.h"

#define FUZZ_SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"
#define FUZZ_NOW    1700000000

static const auth_jwt_config_t config = {(const unsigned char *)FUZZ_SECRET, sizeof(FUZZ_SECRET) - 1,
                                         "hydrant", 900, 5};

static void check_claims(const auth_claims_t *c)
{
    fuzz_check(c->sub[0] != '\0' && memchr(c->sub, '\0', sizeof(c->sub)) != NULL);
    fuzz_check(c->role[0] != '\0' && memchr(c->role, '\0', sizeof(c->role)) != NULL);
    fuzz_check(c->jti[0] != '\0' && memchr(c->jti, '\0', sizeof(c->jti)) != NULL);
    fuzz_check(c->sid[0] != '\0' && memchr(c->sid, '\0', sizeof(c->sid)) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *header = fuzz_copy(data, size);
    size_t len = (size_t)-1;
    const char *token = handlers_bearer_token(size > 0 ? header : NULL, size, &len);
    int bearer = size >= 8 && strncasecmp(header, "bearer ", 7) == 0;
    fuzz_check(bearer ? token == header + 7 && len == size - 7 : token == NULL);
    if (token != NULL) {
        auth_claims_t claims, again;
        auth_jwt_status_t st = auth_jwt_verify(&config, token, len, FUZZ_NOW, &claims);
        fuzz_check(st == AUTH_JWT_OK || st == AUTH_JWT_INVALID || st == AUTH_JWT_EXPIRED);
        if (st == AUTH_JWT_OK) {
            check_claims(&claims);
            fuzz_check(auth_jwt_verify(&config, token, len, FUZZ_NOW, &again) == AUTH_JWT_OK &&
                       memcmp(&claims, &again, sizeof(claims)) == 0);
        }
    }
    free(header);
    return 0;
}
