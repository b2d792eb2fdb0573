/*
 * libFuzzer target for the Cookie header: handlers_cookie_value, as POST /auth/refresh reads
 * the refresh token (then auth_token_plausible, as it does).
 *
 * Input: one byte; when odd, a cookie name up to the first '\n' (else "refresh_token"), then
 * the header's value. A value found lies inside the header, right after "name=" where a pair
 * starts (the header's start, or after ' ' or ';'), and runs up to the next ';' or the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "handlers/handlers.h"

static void check_found(const char *cookie, size_t len, const char *name, const char *value, size_t n)
{
    size_t name_len = strlen(name);
    fuzz_check(value >= cookie + name_len + 1 && value + n <= cookie + len);
    const char *pair = value - name_len - 1;
    fuzz_check(memcmp(pair, name, name_len) == 0 && value[-1] == '=');
    fuzz_check(pair == cookie || pair[-1] == ' ' || pair[-1] == ';');
    fuzz_check(memchr(value, ';', n) == NULL && (value + n == cookie + len || value[n] == ';'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int own_name = data[0] & 1;
    data++, size--;
    size_t name_len = 0;
    const uint8_t *name_bytes = own_name ? fuzz_next(&data, &size, '\n', &name_len) : NULL;
    char *name = own_name ? fuzz_string(name_bytes, name_len) : fuzz_string("refresh_token", 13);
    char *cookie = fuzz_copy(data, size);
    const char *value = NULL;
    size_t n = handlers_cookie_value(cookie, size, name, &value);
    if (value != NULL)
        check_found(cookie, size, name, value, n);
    else
        fuzz_check(n == 0);
    if (n > 0)
        auth_token_plausible(value, n);
    free(cookie);
    free(name);
    return 0;
}
