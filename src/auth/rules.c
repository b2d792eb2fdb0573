/*
 * The contract's input rules for passwords and usernames (emails: util_email_normalize).
 */
#include "auth/auth.h"

#include <ctype.h>
#include <string.h>

#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 256
/* A password of 256 code points takes at most 4 bytes each. */
#define AUTH_PASSWORD_BYTES (AUTH_PASSWORD_MAX * 4)

int auth_password_acceptable(const char *password, size_t len)
{
    if (len < AUTH_PASSWORD_MIN || len > AUTH_PASSWORD_BYTES || memchr(password, '\0', len) != NULL)
        return 0;
    long n = util_utf8_length(password, len);
    return n >= AUTH_PASSWORD_MIN && n <= AUTH_PASSWORD_MAX;
}

long auth_utf8_length(const char *s, size_t len)
{
    if (memchr(s, '\0', len) != NULL)
        return -1;
    return util_utf8_length(s, len);
}

int auth_username_valid(const char *username, size_t len)
{
    if (len < 3 || len > 32)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)username[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return 0;
    }
    return 1;
}
