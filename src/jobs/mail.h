/*
 * The pure part of sending email from background jobs: templates on disk, placeholder
 * substitution and an RFC 5322 / MIME composer. Nothing here touches the network, so the
 * SMTP sender only has to hand the composed bytes over (dot-stuffing stays its job).
 * Internal to src/jobs; every name starts with jobs_mail_.
 */
#ifndef HYDRANT_JOBS_MAIL_H
#define HYDRANT_JOBS_MAIL_H

#include <stddef.h>
#include <time.h>

#include "util/util.h"

/* Template files above this size are refused: they are ours, and a bigger one is a mistake. */
#define JOBS_MAIL_TEMPLATE_MAX (64 * 1024)
/* RFC 5321 path limit; also the size of the buffer jobs_mail_from_address needs (+1). */
#define JOBS_MAIL_ADDRESS_MAX UTIL_EMAIL_MAX
/* Number of random bytes jobs_mail_message_t.random must point to. */
#define JOBS_MAIL_RANDOM_LEN 16

typedef struct {
    const char *name;
    const char *value;
} jobs_mail_var_t;

/* A loaded template pair: templates/email/<kind>.txt and <kind>.html. The .txt file starts with
 * a line "Subject: ..." followed by one empty line, then the plain-text body; the .html file is
 * the HTML body. Placeholders are {{name}} (letters, digits, underscore). */
typedef struct {
    char *subject;
    char *text;
    char *html;
} jobs_mail_template_t;

/* Loads <dir>/<kind>.txt and <dir>/<kind>.html. kind is limited to letters, digits, '.', '_'
 * and '-', without "..", so it cannot leave dir. Files larger than JOBS_MAIL_TEMPLATE_MAX, not
 * UTF-8, containing NUL bytes, or with an empty body are refused. Returns 0, or -1 with a
 * message in err and *t left empty (jobs_mail_template_free is safe either way). */
int jobs_mail_template_load(jobs_mail_template_t *t, const char *dir, const char *kind, char *err,
                            size_t errlen);
void jobs_mail_template_free(jobs_mail_template_t *t);

/* Substitutes {{name}} placeholders from vars (the first matching name wins; values are not
 * expanded again). html_escape: escape & < > " ' in values. An unknown placeholder, a
 * malformed one, a NULL value or an unterminated "{{" is an error (NULL with a message).
 * Returns a malloc'd string. */
char *jobs_mail_render(const char *tmpl, const jobs_mail_var_t *vars, int nvars, int html_escape, char *err,
                       size_t errlen);

/* The bare address of the From setting ("Display Name <addr@domain>" or "addr@domain"), for
 * SMTP MAIL FROM. The address must pass util_email_valid, where a one-label domain
 * ("localhost") is allowed. outlen should be at least JOBS_MAIL_ADDRESS_MAX + 1. Returns 0, or -1 when
 * the setting is malformed, the address invalid or out too small. */
int jobs_mail_from_address(const char *from, char *out, size_t outlen);

typedef struct {
    const char *from;            /* "Display Name <addr@domain>" or "addr@domain" (configuration) */
    const char *to;              /* bare address, must pass util_email_valid (no flags) */
    const char *subject;         /* UTF-8, one line */
    const char *text;            /* UTF-8 plain-text body */
    const char *html;            /* UTF-8 HTML body */
    time_t date;                 /* the Date header, rendered in UTC */
    const unsigned char *random; /* JOBS_MAIL_RANDOM_LEN bytes for Message-ID and boundary */
} jobs_mail_message_t;

/* Composes an RFC 5322 message with CRLF line endings: Date, From, To, Subject (RFC 2047
 * encoded when it is not short printable ASCII), Message-ID <hex@from-domain>, MIME-Version,
 * Auto-Submitted and a multipart/alternative body with a text/plain then a text/html part,
 * both UTF-8 and quoted-printable. Returns a malloc'd NUL-terminated message and its length in
 * *len, or NULL with a message in err (missing field, invalid To/From, CR/LF in the subject,
 * out of memory). */
char *jobs_mail_compose(const jobs_mail_message_t *m, size_t *len, char *err, size_t errlen);

#endif
