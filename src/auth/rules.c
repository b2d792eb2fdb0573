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

/* Length in code points of valid UTF-8 (no overlongs, surrogates or values past U+10FFFF),
 * or -1. */
static long utf8_code_points(const unsigned char *s, size_t len)
{
    long n = 0;
    for (size_t i = 0; i < len; n++) {
        unsigned char c = s[i];
        size_t extra;
        unsigned int cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, cp = c & 0x07;
        } else {
            return -1;
        }
        if (i + extra >= len)
            return -1; /* truncated sequence */
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const unsigned int min_for_extra[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for_extra[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        i += extra + 1;
    }
    return n;
}

int auth_password_acceptable(const char *password, size_t len)
{
    if (len < AUTH_PASSWORD_MIN || len > AUTH_PASSWORD_BYTES || memchr(password, '\0', len) != NULL)
        return 0;
    long n = utf8_code_points((const unsigned char *)password, len);
    return n >= AUTH_PASSWORD_MIN && n <= AUTH_PASSWORD_MAX;
}

long auth_utf8_length(const char *s, size_t len)
{
    if (memchr(s, '\0', len) != NULL)
        return -1;
    return utf8_code_points((const unsigned char *)s, len);
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
