/*
 * Pure helpers that every module links (hydrant_util): no allocation, no I/O, nothing that
 * knows about HTTP, the database or the configuration. Every name starts with util_.
 */
#ifndef HYDRANT_UTIL_H
#define HYDRANT_UTIL_H

#include <stddef.h>

/* ----------------------------------------------------------------- email ---- */

#define UTIL_EMAIL_MAX       254 /* the contract's limit (RFC 5321's path less "<>") */
#define UTIL_EMAIL_LOCAL_MAX 64  /* RFC 5321 4.5.3.1.1 */
#define UTIL_EMAIL_LABEL_MAX 63  /* RFC 1035 */

enum {
    /* A domain of one label ("localhost") is fine: for the configured From address only,
     * never for an address a user gives. */
    UTIL_EMAIL_SINGLE_LABEL = 1 << 0,
};

/* The one rule for email addresses, for sign-up, imports, the command line and the mailer:
 * an RFC 5321 mailbox local@domain, ASCII only, at most UTIL_EMAIL_MAX bytes, whose local
 * part is a dot-atom (RFC 5322 atext: letters, digits and !#$%&'*+-/=?^_`{|}~, in runs
 * separated by single dots; no quoted local parts) of at most UTIL_EMAIL_LOCAL_MAX bytes, and
 * whose domain is at least two labels (one with UTIL_EMAIL_SINGLE_LABEL) of 1..63 letters,
 * digits and hyphens, not starting or ending with a hyphen. No spaces, controls or NUL.
 * Case is not looked at (normalising is util_email_normalize's job). Returns 1 or 0. */
int util_email_valid(const char *addr, size_t len, unsigned flags);

/* The contract's normal form: surrounding ASCII white space trimmed, ASCII letters
 * lower-cased, into out (NUL-terminated). Returns its length, or -1 when it is empty, longer
 * than UTIL_EMAIL_MAX or does not fit in out. It does not validate: this is also the form
 * an existing account is looked up by. */
long util_email_fold(const char *in, size_t len, char *out, size_t outlen);

/* util_email_fold, then util_email_valid (no flags). Returns 0, or -1 when invalid. */
int util_email_normalize(const char *in, size_t len, char *out, size_t outlen);

#endif
