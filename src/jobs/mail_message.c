/*
 * Composing the message: address checks, headers (RFC 5322, RFC 2047 encoded-words) and a
 * multipart/alternative body in quoted-printable (RFC 2045). Everything that reaches a header
 * is validated here because the recipient comes from a job payload and the sender from
 * configuration: neither may smuggle in a line break.
 */
#include "jobs/jobs_internal.h"
#include "jobs/mail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer From settings are refused: with the address this keeps the header far below the
 * 998-byte line limit. */
#define FROM_MAX_LEN 512
/* RFC 2045 limit on an encoded line, the soft-break '=' included. */
#define QP_LINE_MAX 76
/* Recommended header line length (RFC 5322 2.1.1). */
#define HEADER_LINE_MAX 78
/* Bytes of text per encoded-word: 52 base64 characters, a 64-character word, so "Subject: "
 * plus one word stays within 76 as RFC 2047 asks. */
#define WORD_BYTES 39

#define set_err jobs_set_err

/* ----------------------------------------------------------------- buffer ---- */

/* Length of the line being written, to decide where to fold. */
static size_t buf_col(const util_buf_t *b)
{
    size_t i = b->len;
    while (i > 0 && b->data[i - 1] != '\n')
        i--;
    return b->len - i;
}

/* -------------------------------------------------------------- addresses ---- */

/* The From setting split into its display name (a slice of the setting) and address. */
typedef struct {
    const char *name;
    size_t name_len;
    char addr[JOBS_MAIL_ADDRESS_MAX + 1];
} from_t;

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static int has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Drops the quotes of a quoted display name. '"' and '\' are refused anywhere in it so the
 * name can be re-quoted without escaping. */
static int unquote(const char **s, size_t *len)
{
    if (*len > 0 && (*s)[0] == '"') {
        if (*len < 2 || (*s)[*len - 1] != '"')
            return -1;
        (*s)++;
        *len -= 2;
        trim(s, len);
    }
    for (size_t i = 0; i < *len; i++)
        if ((*s)[i] == '"' || (*s)[i] == '\\')
            return -1;
    return 0;
}

static int parse_from(const char *from, from_t *f)
{
    if (from == NULL || strnlen(from, FROM_MAX_LEN + 1) > FROM_MAX_LEN || has_control(from))
        return -1;
    const char *addr = from;
    size_t addr_len = strlen(from);
    f->name = "";
    f->name_len = 0;
    const char *lt = strrchr(from, '<');
    if (lt != NULL) {
        const char *gt = strchr(lt, '>');
        if (gt == NULL || gt[1 + strspn(gt + 1, " \t")] != '\0')
            return -1;
        addr = lt + 1;
        addr_len = (size_t)(gt - addr);
        f->name = from;
        f->name_len = (size_t)(lt - from);
        trim(&f->name, &f->name_len);
        if (unquote(&f->name, &f->name_len) != 0)
            return -1;
    }
    trim(&addr, &addr_len);
    if (addr_len > JOBS_MAIL_ADDRESS_MAX)
        return -1;
    memcpy(f->addr, addr, addr_len);
    f->addr[addr_len] = '\0';
    /* Our own configured address may be on a one-label domain ("no-reply@localhost"). */
    return util_email_valid(f->addr, addr_len, UTIL_EMAIL_SINGLE_LABEL) ? 0 : -1;
}

int jobs_mail_from_address(const char *from, char *out, size_t outlen)
{
    from_t f;
    if (parse_from(from, &f) != 0)
        return -1;
    size_t len = strlen(f.addr);
    if (out == NULL || len >= outlen)
        return -1;
    memcpy(out, f.addr, len + 1);
    return 0;
}

/* ---------------------------------------------------------------- headers ---- */

/* Bytes of s to put in the next encoded-word: RFC 2047 forbids splitting a character across
 * words, so a character cut at WORD_BYTES goes whole into the next one. */
static size_t word_chunk(const unsigned char *s, size_t n)
{
    return n <= WORD_BYTES ? n : util_utf8_cut(s, WORD_BYTES);
}

/* s as "=?UTF-8?B?...?=" words, one per folded line. */
static void put_encoded_words(util_buf_t *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t off = 0; off < n;) {
        size_t k = word_chunk(u + off, n - off);
        if (off > 0)
            util_buf_str(b, "\r\n ");
        util_buf_str(b, "=?UTF-8?B?");
        char word[UTIL_BASE64_LEN(WORD_BYTES) + 1];
        util_buf_put(b, word, util_base64_encode(u + off, k, word, UTIL_BASE64_PAD));
        util_buf_str(b, "?=");
        off += k;
    }
}

/* Printable ASCII that cannot be mistaken for an encoded-word ("=?") may go out as is. */
static int plain_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return memmem(s, n, "=?", 2) == NULL;
}

static int atoms_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~ ", c) != NULL);
        if (!atext)
            return 0;
    }
    return 1;
}

/* A display name as atoms, a quoted-string (unquote() ruled out '"' and '\') or encoded-words. */
static void put_phrase(util_buf_t *b, const char *s, size_t n)
{
    if (!plain_ascii(s, n)) {
        put_encoded_words(b, s, n);
    } else if (atoms_only(s, n)) {
        util_buf_put(b, s, n);
    } else {
        util_buf_str(b, "\"");
        util_buf_put(b, s, n);
        util_buf_str(b, "\"");
    }
}

static void put_from(util_buf_t *b, const from_t *f)
{
    util_buf_str(b, "From: ");
    if (f->name_len > 0) {
        put_phrase(b, f->name, f->name_len);
        if (buf_col(b) + strlen(f->addr) + 3 > HEADER_LINE_MAX)
            util_buf_str(b, "\r\n");
        util_buf_str(b, " <");
    }
    util_buf_str(b, f->addr);
    util_buf_str(b, f->name_len > 0 ? ">\r\n" : "\r\n");
}

static void put_subject(util_buf_t *b, const char *subject)
{
    size_t n = strlen(subject);
    util_buf_str(b, n > 0 ? "Subject: " : "Subject:");
    if (plain_ascii(subject, n) && n + strlen("Subject: ") <= HEADER_LINE_MAX)
        util_buf_put(b, subject, n);
    else
        put_encoded_words(b, subject, n);
    util_buf_str(b, "\r\n");
}

/* Built by hand because strftime's names follow the locale and the header's must not. */
static int put_date(util_buf_t *b, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year < 0 || tm.tm_year > 9999 - 1900)
        return -1;
    util_buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
                    months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return 0;
}

/* ------------------------------------------------------- quoted-printable ---- */

static int line_break_at(const char *p)
{
    return p[0] == '\n' || (p[0] == '\r' && p[1] == '\n');
}

static int line_ends_after(const char *p)
{
    return p[1] == '\0' || line_break_at(p + 1);
}

/* Whether the byte at p, written at column col, may go out as itself. A '.' or "From " at the
 * start of a line is encoded too: some relays mishandle leading dots despite dot-stuffing, and
 * mbox-based stores rewrite "From " to ">From ". */
static int qp_literal(const char *p, size_t col)
{
    unsigned char c = (unsigned char)*p;
    if (c == ' ' || c == '\t')
        return !line_ends_after(p);
    if (c < 33 || c > 126 || c == '=')
        return 0;
    return col > 0 || (c != '.' && strncmp(p, "From ", 5) != 0);
}

static size_t qp_emit(util_buf_t *b, const char *p, size_t col)
{
    if (qp_literal(p, col)) {
        util_buf_put(b, p, 1);
        return 1;
    }
    char enc[4] = "=";
    util_hex_encode(p, 1, enc + 1, UTIL_HEX_UPPER);
    util_buf_put(b, enc, 3);
    return 3;
}

/* Line breaks (LF or CRLF) become CRLF; a bare CR is data and is encoded. Lines are cut with
 * a soft break so that, the '=' included, none exceeds QP_LINE_MAX. */
static void put_qp(util_buf_t *b, const char *s)
{
    size_t col = 0;
    const char *p = s;
    while (*p != '\0') {
        if (line_break_at(p)) {
            util_buf_str(b, "\r\n");
            col = 0;
            p += p[0] == '\r' ? 2 : 1;
            continue;
        }
        size_t limit = line_ends_after(p) ? QP_LINE_MAX : QP_LINE_MAX - 1;
        if (col + (qp_literal(p, col) ? 1 : 3) > limit) {
            util_buf_str(b, "=\r\n");
            col = 0;
        }
        col += qp_emit(b, p, col);
        p++;
    }
}

/* --------------------------------------------------------------- message ---- */

static int check_message(const jobs_mail_message_t *m, from_t *f, char *err, size_t errlen)
{
    if (m == NULL || m->subject == NULL || m->text == NULL || m->html == NULL || m->random == NULL) {
        set_err(err, errlen, "incomplete message");
        return -1;
    }
    if (parse_from(m->from, f) != 0) {
        set_err(err, errlen, "invalid From setting");
        return -1;
    }
    if (m->to == NULL || !util_email_valid(m->to, strlen(m->to), 0)) {
        set_err(err, errlen, "invalid recipient address");
        return -1;
    }
    if (strpbrk(m->subject, "\r\n") != NULL) {
        set_err(err, errlen, "line break in the subject");
        return -1;
    }
    return 0;
}

static void put_part(util_buf_t *b, const char *boundary, const char *type, const char *body)
{
    util_buf_printf(b,
                    "--%s\r\n"
                    "Content-Type: %s; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n"
                    "\r\n",
                    boundary, type);
    put_qp(b, body);
    util_buf_str(b, "\r\n"); /* belongs to the delimiter that follows (RFC 2046 5.1.1) */
}

/* The boundary starts with "=_", which quoted-printable output can never contain ('=' is only
 * followed by hex digits or a line break), so no body can collide with it. */
static int put_message(util_buf_t *b, const jobs_mail_message_t *m, const from_t *f)
{
    char hex[2 * JOBS_MAIL_RANDOM_LEN + 1];
    util_hex_encode(m->random, JOBS_MAIL_RANDOM_LEN, hex, 0);
    char boundary[sizeof(hex) + 16];
    snprintf(boundary, sizeof(boundary), "=_hydrant_%s", hex);
    if (put_date(b, m->date) != 0)
        return -1;
    put_from(b, f);
    util_buf_printf(b, "To: %s\r\n", m->to);
    put_subject(b, m->subject);
    util_buf_printf(b, "Message-ID: <%s@%s>\r\n", hex, strchr(f->addr, '@') + 1);
    util_buf_str(b, "MIME-Version: 1.0\r\n"
                    "Auto-Submitted: auto-generated\r\n");
    util_buf_printf(b, "Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n", boundary);
    put_part(b, boundary, "text/plain", m->text);
    put_part(b, boundary, "text/html", m->html);
    util_buf_printf(b, "--%s--\r\n", boundary);
    return 0;
}

char *jobs_mail_compose(const jobs_mail_message_t *m, size_t *len, char *err, size_t errlen)
{
    from_t f;
    if (check_message(m, &f, err, errlen) != 0)
        return NULL;
    util_buf_t b = {0};
    if (put_message(&b, m, &f) != 0) {
        util_buf_free(&b);
        set_err(err, errlen, "date out of range");
        return NULL;
    }
    char *text = util_buf_take(&b, len);
    if (text == NULL)
        set_err(err, errlen, "out of memory");
    return text;
}
