/*
 * The one email address rule (contract v1.1): what sign-up accepts is exactly what the
 * mailer can send to, so no account is made whose confirmation email could never leave.
 */
#include "util/util.h"

#include <string.h>

/* Locale-independent ASCII classes: an address is ASCII only. */
static int util_ascii_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext. */
static int util_atext(unsigned char c)
{
    return util_ascii_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5322 dot-atom-text: atext runs joined by single dots. */
static int util_dot_atom(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.' ? s[i - 1] == '.' : !util_atext((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* Letter-digit-hyphen labels of 1..63 bytes, joined by dots; at least two of them unless
 * flags allow one. */
static int util_domain(const char *s, size_t len, unsigned flags)
{
    int labels = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!util_ascii_alnum((unsigned char)s[i]) && s[i] != '-')
                return 0;
            continue;
        }
        size_t n = i - start;
        if (n == 0 || n > UTIL_EMAIL_LABEL_MAX || s[start] == '-' || s[i - 1] == '-')
            return 0;
        labels++;
        start = i + 1;
    }
    return labels >= 2 || (labels == 1 && (flags & UTIL_EMAIL_SINGLE_LABEL));
}

int util_email_valid(const char *addr, size_t len, unsigned flags)
{
    if (addr == NULL || len > UTIL_EMAIL_MAX)
        return 0;
    /* A dot-atom holds no '@', so the first one splits; a second lands in the domain and is
     * refused there. */
    const char *at = memchr(addr, '@', len);
    if (at == NULL)
        return 0;
    size_t local = (size_t)(at - addr);
    return local <= UTIL_EMAIL_LOCAL_MAX && util_dot_atom(addr, local) &&
           util_domain(at + 1, len - local - 1, flags);
}

static int util_ascii_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

long util_email_fold(const char *in, size_t len, char *out, size_t outlen)
{
    while (len > 0 && util_ascii_space(in[0]))
        in++, len--;
    while (len > 0 && util_ascii_space(in[len - 1]))
        len--;
    if (len == 0 || len > UTIL_EMAIL_MAX || len + 1 > outlen)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + ('a' - 'A') : in[i]);
    out[len] = '\0';
    return (long)len;
}

int util_email_normalize(const char *in, size_t len, char *out, size_t outlen)
{
    long n = util_email_fold(in, len, out, outlen);
    return n >= 0 && util_email_valid(out, (size_t)n, 0) ? 0 : -1;
}
