#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/mail.h"

#ifndef HYDRANT_SOURCE_DIR
#error "HYDRANT_SOURCE_DIR must name the source root"
#endif

#define REPO_TEMPLATES HYDRANT_SOURCE_DIR "/templates/email"

static char err[256];

static const unsigned char RANDOM[JOBS_MAIL_RANDOM_LEN] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                                           0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff};
#define RANDOM_HEX "000102030405060708090a0b0c0d0eff"

/* -------------------------------------------------------------- helpers ---- */

static char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    assert_non_null(p);
    return p;
}

static size_t count_occurrences(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Strict quoted-printable decoder: fails the test on anything RFC 2045 does not allow in our
 * output (lowercase hex, bare '=', trailing whitespace, 8-bit bytes, bare CR or LF). Hard
 * line breaks come back as LF. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    fail_msg("bad hex digit '%c' in quoted-printable", c);
    return -1;
}

static char *qp_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            assert_false(i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'));
            out[o++] = '\n';
            i++;
        } else if (c == '=') {
            assert_true(i + 2 < n);
            if (s[i + 1] == '\r') {
                assert_int_equal(s[i + 2], '\n');
                i += 2;
            } else {
                out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                i += 2;
            }
        } else {
            assert_true(c == ' ' || c == '\t' || (c >= 33 && c <= 126));
            out[o++] = (char)c;
        }
    }
    assert_false(n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'));
    out[o] = '\0';
    return out;
}

static char *crlf_to_lf(const char *s)
{
    char *out = xstrndup(s, strlen(s));
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++)
        if (!(s[i] == '\r' && s[i + 1] == '\n'))
            out[o++] = s[i];
    out[o] = '\0';
    return out;
}

static char *lf_to_crlf(const char *s)
{
    char *out = malloc(2 * strlen(s) + 1);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '\n')
            out[o++] = '\r';
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c != '\0' ? strchr(tab, c) : NULL;
    assert_non_null(p);
    return (int)(p - tab);
}

/* Appends the base64 text s[0..n) decoded to out. */
static size_t b64_decode(const char *s, size_t n, unsigned char *out)
{
    assert_int_equal(n % 4, 0);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = (uint32_t)b64val(s[i]) << 18 | (uint32_t)b64val(s[i + 1]) << 12;
        out[o++] = (unsigned char)(v >> 16);
        if (s[i + 2] == '=')
            break;
        v |= (uint32_t)b64val(s[i + 2]) << 6;
        out[o++] = (unsigned char)(v >> 8 & 0xff);
        if (s[i + 3] == '=')
            break;
        v |= (uint32_t)b64val(s[i + 3]);
        out[o++] = (unsigned char)(v & 0xff);
    }
    return o;
}

/* Decodes a header value made only of "=?UTF-8?B?...?=" words separated by folding
 * whitespace. Each word must be at most 75 characters and not start with a UTF-8
 * continuation byte (RFC 2047: words hold whole characters). */
static char *decode_words(const char *value)
{
    unsigned char *out = calloc(1, strlen(value) + 1);
    assert_non_null(out);
    size_t o = 0;
    const char *p = value;
    while (*p != '\0') {
        p += strspn(p, " \t\r\n");
        if (*p == '\0')
            break;
        assert_int_equal(strncmp(p, "=?UTF-8?B?", 10), 0);
        const char *end = strstr(p + 10, "?=");
        assert_non_null(end);
        assert_true(end + 2 - p <= 75);
        size_t start = o;
        o += b64_decode(p + 10, (size_t)(end - (p + 10)), out + o);
        assert_true(o > start);
        assert_int_not_equal(out[start] & 0xC0, 0x80);
        p = end + 2;
    }
    out[o] = '\0';
    return (char *)out;
}

/* The header block of a message, NUL-terminated, without the final empty line. */
static char *header_block(const char *msg)
{
    const char *end = strstr(msg, "\r\n\r\n");
    assert_non_null(end);
    return xstrndup(msg, (size_t)(end - msg) + 2);
}

/* Counts header fields called name (case-insensitive, as mail software compares them). */
static int count_header(const char *headers, const char *name)
{
    int n = 0;
    size_t len = strlen(name);
    for (const char *line = headers; *line != '\0'; line = strstr(line, "\r\n") + 2)
        if (strncasecmp(line, name, len) == 0 && line[len] == ':')
            n++;
    return n;
}

/* The value of a header field with its folding undone, or NULL. */
static char *header_value(const char *headers, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = headers; *line != '\0'; line = strstr(line, "\r\n") + 2) {
        if (strncmp(line, name, len) != 0 || line[len] != ':')
            continue;
        const char *v = line + len + 1;
        v += strspn(v, " ");
        const char *end = v;
        while (!(end[0] == '\r' && end[1] == '\n' && end[2] != ' ' && end[2] != '\t'))
            end++;
        char *raw = xstrndup(v, (size_t)(end - v));
        char *unfolded = crlf_to_lf(raw);
        free(raw);
        size_t o = 0;
        for (size_t i = 0; unfolded[i] != '\0'; i++)
            if (unfolded[i] != '\n')
                unfolded[o++] = unfolded[i];
        unfolded[o] = '\0';
        return unfolded;
    }
    return NULL;
}

/* Every line break is CRLF; no line is longer than max_header in the header block or
 * max_body after it (RFC 5322 2.1.1 and RFC 2045 6.7). */
static void check_lines(const char *msg, size_t len, size_t max_header, size_t max_body)
{
    assert_int_equal(strlen(msg), len);
    assert_true(len >= 2 && msg[len - 2] == '\r' && msg[len - 1] == '\n');
    const char *body = strstr(msg, "\r\n\r\n");
    if (body == NULL)
        body = msg + len;
    size_t line_start = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\r')
            assert_true(i + 1 < len && msg[i + 1] == '\n');
        if (msg[i] != '\n')
            continue;
        assert_true(i > 0 && msg[i - 1] == '\r');
        size_t line_len = i - 1 - line_start;
        size_t max = msg + line_start <= body ? max_header : max_body;
        if (line_len > max)
            fail_msg("line too long (%zu > %zu): %.*s", line_len, max, (int)line_len, msg + line_start);
        assert_true(line_len <= 998);
        line_start = i + 1;
    }
}

static const char *FROM = "Hydrant <noreply@example.com>";

static char *compose(const char *from, const char *to, const char *subject, const char *text,
                     const char *html, time_t date, size_t *len)
{
    jobs_mail_message_t m = {from, to, subject, text, html, date, RANDOM};
    err[0] = '\0';
    return jobs_mail_compose(&m, len, err, sizeof(err));
}

static char *compose_ok(const char *from, const char *subject, const char *text, const char *html,
                        size_t *len)
{
    char *msg = compose(from, "user@example.org", subject, text, html, 1795372649, len);
    if (msg == NULL)
        fail_msg("compose failed: %s", err);
    check_lines(msg, *len, 998, 76);
    return msg;
}

static char *boundary_of(const char *msg)
{
    char *headers = header_block(msg);
    char *ct = header_value(headers, "Content-Type");
    free(headers);
    assert_non_null(ct);
    assert_int_equal(strncmp(ct, "multipart/alternative;", 22), 0);
    const char *b = strstr(ct, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const char *end = strchr(b, '"');
    assert_non_null(end);
    char *boundary = xstrndup(b, (size_t)(end - b));
    free(ct);
    assert_true(strlen(boundary) >= 1 && strlen(boundary) <= 70);
    return boundary;
}

/* The decoded body of the index-th part, after checking its headers. */
static char *part_body(const char *msg, const char *boundary, int index, const char *type)
{
    char delim[128];
    snprintf(delim, sizeof(delim), "\r\n--%s\r\n", boundary);
    const char *p = strstr(msg, delim);
    assert_non_null(p);
    for (int i = 0; i < index; i++) {
        p = strstr(p + 1, delim);
        assert_non_null(p);
    }
    p += strlen(delim);
    snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    const char *end = strstr(p, delim);
    assert_non_null(end);
    const char *body = strstr(p, "\r\n\r\n");
    assert_non_null(body);
    assert_true(body + 4 <= end + 2);
    char *headers = xstrndup(p, (size_t)(body - p) + 2);
    char want[128];
    snprintf(want, sizeof(want), "%s; charset=utf-8", type);
    char *ct = header_value(headers, "Content-Type");
    char *cte = header_value(headers, "Content-Transfer-Encoding");
    assert_non_null(ct);
    assert_non_null(cte);
    assert_string_equal(ct, want);
    assert_string_equal(cte, "quoted-printable");
    free(ct);
    free(cte);
    free(headers);
    body += 4;
    /* The body is empty when its headers' blank line is directly followed by the delimiter. */
    return body > end ? xstrndup("", 0) : qp_decode(body, (size_t)(end - body));
}

/* ------------------------------------------------------------ rendering ---- */

static const jobs_mail_var_t VARS[] = {
    {"link", "https://example.com/confirm?token=a&b=<c>"},
    {"email", "o'brien@example.com"},
    {"app", "hydrant"},
    {"expires", "24 hours"},
    {"quote", "say \"hi\""},
    {"braces", "{{app}}"},
};
#define NVARS ((int)(sizeof(VARS) / sizeof(VARS[0])))

static char *render(const char *tmpl, int html)
{
    err[0] = '\0';
    return jobs_mail_render(tmpl, VARS, NVARS, html, err, sizeof(err));
}

static void test_render_substitutes(void **state)
{
    (void)state;
    char *out = render("Hi {{email}}, welcome to {{app}}!{{app}}{{expires}}.", 0);
    assert_non_null(out);
    assert_string_equal(out, "Hi o'brien@example.com, welcome to hydrant!hydrant24 hours.");
    free(out);

    out = render("", 0);
    assert_string_equal(out, "");
    free(out);

    out = render("no placeholders { } }} {x}", 0);
    assert_string_equal(out, "no placeholders { } }} {x}");
    free(out);

    /* values are inserted verbatim, never expanded again */
    out = render("[{{braces}}]", 0);
    assert_string_equal(out, "[{{app}}]");
    free(out);
}

static void test_render_html_escape(void **state)
{
    (void)state;
    char *out = render("<a href=\"{{link}}\">{{email}}</a> {{quote}} {{app}}", 1);
    assert_non_null(out);
    assert_string_equal(out, "<a href=\"https://example.com/confirm?token=a&amp;b=&lt;c&gt;\">"
                             "o&#39;brien@example.com</a> say &quot;hi&quot; hydrant");
    free(out);

    out = render("{{link}} {{quote}}", 0);
    assert_string_equal(out, "https://example.com/confirm?token=a&b=<c> say \"hi\"");
    free(out);
}

static void test_render_errors(void **state)
{
    (void)state;
    assert_null(render("Hello {{nobody}}!", 0));
    assert_non_null(strstr(err, "nobody"));
    assert_non_null(strstr(err, "unknown"));

    assert_null(render("line one\nHello {{app", 0));
    assert_non_null(strstr(err, "unterminated"));
    assert_non_null(strstr(err, "line 2"));

    assert_null(render("trailing {{", 0));
    assert_non_null(strstr(err, "unterminated"));

    assert_null(render("{{app}} and {{ app }}", 0));
    assert_non_null(strstr(err, "malformed"));

    assert_null(render("{{}}", 0));
    assert_non_null(strstr(err, "malformed"));
    assert_null(render("{{a-b}}", 0));
    assert_null(render("{{app}", 0));

    /* a prefix of a known name is not that name */
    assert_null(render("{{ap}}", 0));
    assert_null(render("{{apps}}", 0));

    jobs_mail_var_t null_value[] = {{"x", NULL}};
    assert_null(jobs_mail_render("{{x}}", null_value, 1, 0, err, sizeof(err)));

    /* no variables at all */
    char *out = jobs_mail_render("plain", NULL, 0, 0, err, sizeof(err));
    assert_string_equal(out, "plain");
    free(out);
    assert_null(jobs_mail_render("{{x}}", NULL, 0, 0, err, sizeof(err)));
}

/* ----------------------------------------------------- repo's templates ---- */

static void check_repo_template(const char *kind)
{
    jobs_mail_template_t t;
    err[0] = '\0';
    if (jobs_mail_template_load(&t, REPO_TEMPLATES, kind, err, sizeof(err)) != 0)
        fail_msg("%s: %s", kind, err);
    assert_true(strlen(t.subject) > 0);
    assert_null(strpbrk(t.subject, "\r\n"));
    assert_non_null(strstr(t.text, "{{link}}"));
    assert_non_null(strstr(t.html, "<a href=\"{{link}}\">{{link}}</a>"));
    assert_int_equal(strncmp(t.html, "<!DOCTYPE html>", 15), 0);
    assert_non_null(strstr(t.html, "</html>"));
    assert_non_null(strstr(t.html, "<title>"));

    /* every placeholder the templates use is one the email job supplies */
    jobs_mail_var_t vars[] = {{"link", "https://example.com/x?token=abc&y=1"},
                              {"email", "user@example.org"},
                              {"app", "hydrant"},
                              {"expires", "1 hour"}};
    char *subject = jobs_mail_render(t.subject, vars, 4, 0, err, sizeof(err));
    char *text = jobs_mail_render(t.text, vars, 4, 0, err, sizeof(err));
    char *html = jobs_mail_render(t.html, vars, 4, 1, err, sizeof(err));
    assert_non_null(subject);
    assert_non_null(text);
    assert_non_null(html);
    assert_non_null(strstr(text, "https://example.com/x?token=abc&y=1"));
    assert_non_null(strstr(html, "href=\"https://example.com/x?token=abc&amp;y=1\""));
    assert_null(strstr(text, "{{"));
    assert_null(strstr(html, "{{"));

    size_t len;
    char *msg = compose_ok(FROM, subject, text, html, &len);
    char *boundary = boundary_of(msg);
    char *got = part_body(msg, boundary, 0, "text/plain");
    assert_string_equal(got, text);
    free(got);
    free(boundary);
    free(msg);
    free(subject);
    free(text);
    free(html);
    jobs_mail_template_free(&t);
    assert_null(t.subject);
}

static void test_repo_templates(void **state)
{
    (void)state;
    check_repo_template("email.confirmation");
    check_repo_template("email.password_reset");
}

static void expect_kind_refused(const char *dir, const char *kind)
{
    jobs_mail_template_t t;
    err[0] = '\0';
    if (jobs_mail_template_load(&t, dir, kind, err, sizeof(err)) != -1)
        fail_msg("kind \"%s\" was accepted", kind);
    /* refused for its name, before any file is opened */
    if (strstr(err, "invalid template kind") == NULL)
        fail_msg("kind \"%s\": %s", kind, err);
    assert_null(t.subject);
    assert_null(t.text);
    assert_null(t.html);
}

static void test_template_bad_kind(void **state)
{
    (void)state;
    /* these name real files: only the kind check stops them */
    expect_kind_refused(REPO_TEMPLATES, "../email/email.confirmation");
    expect_kind_refused(HYDRANT_SOURCE_DIR "/templates", "email/email.confirmation");
    expect_kind_refused(HYDRANT_SOURCE_DIR "/templates/email/x", "..");
    expect_kind_refused(HYDRANT_SOURCE_DIR "/templates/email/x", "../email.confirmation");
    const char *bad[] = {"",
                         ".hidden",
                         "a..b",
                         "email..confirmation",
                         "a\\b",
                         "a b",
                         "email.confirmation\n",
                         "/etc/passwd",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_kind_refused(REPO_TEMPLATES, bad[i]);
    expect_kind_refused(REPO_TEMPLATES, NULL);

    jobs_mail_template_t t;
    assert_int_equal(jobs_mail_template_load(&t, REPO_TEMPLATES, "email.nonexistent", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "email.nonexistent.txt"));
    jobs_mail_template_free(&t);
}

/* ------------------------------------------------------ temp templates ---- */

typedef struct {
    char dir[64];
} tmp_t;

static int tmp_setup(void **state)
{
    tmp_t *tmp = calloc(1, sizeof(*tmp));
    if (tmp == NULL)
        return -1;
    snprintf(tmp->dir, sizeof(tmp->dir), "/tmp/hydrant_mail_XXXXXX");
    if (mkdtemp(tmp->dir) == NULL) {
        free(tmp);
        return -1;
    }
    *state = tmp;
    return 0;
}

static int tmp_teardown(void **state)
{
    tmp_t *tmp = *state;
    DIR *d = opendir(tmp->dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmp->dir, e->d_name);
        if (e->d_name[0] != '.')
            (void)(unlink(path) == 0 || rmdir(path) == 0);
    }
    if (d != NULL)
        closedir(d);
    rmdir(tmp->dir);
    free(tmp);
    return 0;
}

static void put_file(const tmp_t *tmp, const char *name, const char *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp->dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void put_str(const tmp_t *tmp, const char *name, const char *data)
{
    put_file(tmp, name, data, strlen(data));
}

static int load_tmp(const tmp_t *tmp, jobs_mail_template_t *t, const char *kind)
{
    err[0] = '\0';
    int rc = jobs_mail_template_load(t, tmp->dir, kind, err, sizeof(err));
    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_true(strlen(err) > 0);
        assert_null(t->subject);
        assert_null(t->text);
        assert_null(t->html);
    }
    return rc;
}

static void expect_txt_refused(const tmp_t *tmp, const char *txt, const char *why)
{
    put_str(tmp, "k.txt", txt);
    jobs_mail_template_t t;
    if (load_tmp(tmp, &t, "k") != -1)
        fail_msg("accepted .txt \"%s\"", txt);
    if (strstr(err, why) == NULL)
        fail_msg("message \"%s\" does not mention \"%s\"", err, why);
}

static void test_template_parse(void **state)
{
    tmp_t *tmp = *state;
    jobs_mail_template_t t;
    put_str(tmp, "k.txt", "Subject:   Hello {{app}}  \r\n\r\nBody line\r\n\r\nsecond\r\n");
    put_str(tmp, "k.html", "<p>{{app}}</p>\n");
    assert_int_equal(load_tmp(tmp, &t, "k"), 0);
    assert_string_equal(t.subject, "Hello {{app}}");
    assert_string_equal(t.text, "Body line\r\n\r\nsecond\r\n");
    assert_string_equal(t.html, "<p>{{app}}</p>\n");
    jobs_mail_template_free(&t);
    jobs_mail_template_free(&t); /* idempotent */

    put_str(tmp, "k.txt", "Subject: x\n\nno trailing newline");
    assert_int_equal(load_tmp(tmp, &t, "k"), 0);
    assert_string_equal(t.subject, "x");
    assert_string_equal(t.text, "no trailing newline");
    jobs_mail_template_free(&t);

    expect_txt_refused(tmp, "Hello\n\nbody\n", "Subject");
    expect_txt_refused(tmp, "subject: lower case\n\nbody\n", "Subject");
    expect_txt_refused(tmp, " Subject: x\n\nbody\n", "Subject");
    expect_txt_refused(tmp, "Subject: x\nbody right away\n", "empty line");
    expect_txt_refused(tmp, "Subject: x", "Subject");
    expect_txt_refused(tmp, "Subject: x\n", "empty line");
    expect_txt_refused(tmp, "Subject:   \n\nbody\n", "empty subject");
    expect_txt_refused(tmp, "Subject: x\n\n", "empty body");
    expect_txt_refused(tmp, "Subject: a\rb\n\nbody\n", "control");
    expect_txt_refused(tmp, "", "Subject");
}

static void test_template_files(void **state)
{
    tmp_t *tmp = *state;
    jobs_mail_template_t t;

    put_str(tmp, "only_txt.txt", "Subject: x\n\nbody\n");
    assert_int_equal(load_tmp(tmp, &t, "only_txt"), -1);
    assert_non_null(strstr(err, "only_txt.html"));

    put_str(tmp, "only_html.html", "<p>x</p>");
    assert_int_equal(load_tmp(tmp, &t, "only_html"), -1);
    assert_non_null(strstr(err, "only_html.txt"));

    put_str(tmp, "empty_html.txt", "Subject: x\n\nbody\n");
    put_str(tmp, "empty_html.html", "");
    assert_int_equal(load_tmp(tmp, &t, "empty_html"), -1);

    /* a directory where the file should be */
    put_str(tmp, "dir.txt", "Subject: x\n\nbody\n");
    char path[512];
    snprintf(path, sizeof(path), "%s/dir.html", tmp->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(load_tmp(tmp, &t, "dir"), -1);
    assert_non_null(strstr(err, "regular"));

    assert_int_equal(jobs_mail_template_load(&t, "", "k", err, sizeof(err)), -1);
    assert_int_equal(jobs_mail_template_load(&t, NULL, "k", err, sizeof(err)), -1);
}

static void test_template_size_limit(void **state)
{
    tmp_t *tmp = *state;
    jobs_mail_template_t t;
    char *big = malloc(JOBS_MAIL_TEMPLATE_MAX + 2);
    assert_non_null(big);
    memset(big, 'a', JOBS_MAIL_TEMPLATE_MAX + 1);
    put_str(tmp, "big.txt", "Subject: x\n\nbody\n");

    put_file(tmp, "big.html", big, JOBS_MAIL_TEMPLATE_MAX);
    assert_int_equal(load_tmp(tmp, &t, "big"), 0);
    assert_int_equal(strlen(t.html), JOBS_MAIL_TEMPLATE_MAX);
    jobs_mail_template_free(&t);

    put_file(tmp, "big.html", big, JOBS_MAIL_TEMPLATE_MAX + 1);
    assert_int_equal(load_tmp(tmp, &t, "big"), -1);
    assert_non_null(strstr(err, "larger"));

    memcpy(big, "Subject: x\n\n", 12);
    put_file(tmp, "big.txt", big, JOBS_MAIL_TEMPLATE_MAX + 1);
    put_str(tmp, "big.html", "<p>x</p>");
    assert_int_equal(load_tmp(tmp, &t, "big"), -1);
    assert_non_null(strstr(err, "larger"));
    free(big);
}

static void test_template_encoding(void **state)
{
    tmp_t *tmp = *state;
    jobs_mail_template_t t;
    put_str(tmp, "enc.txt", "Subject: Caf\xc3\xa9 \xe2\x82\xac\n\n\xf0\x9d\x84\x9e ok\n");
    put_str(tmp, "enc.html", "<p>\xc3\xa9</p>");
    assert_int_equal(load_tmp(tmp, &t, "enc"), 0);
    assert_string_equal(t.subject, "Caf\xc3\xa9 \xe2\x82\xac");
    jobs_mail_template_free(&t);

    const char *bad[] = {"<p>\xff</p>",             /* never valid */
                         "<p>caf\xe9</p>",          /* Latin-1 */
                         "<p>\xc0\xaf</p>",         /* overlong '/' */
                         "<p>\xe0\x80\xaf</p>",     /* overlong '/' in three bytes */
                         "<p>\xf0\x80\x80\xaf</p>", /* overlong '/' in four bytes */
                         "<p>\xed\xa0\x80</p>",     /* surrogate */
                         "<p>\xf4\x90\x80\x80</p>", /* above U+10FFFF */
                         "<p>\xe2\x82</p>",         /* truncated */
                         "<p>\xc3"};                /* truncated at end of file */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put_str(tmp, "enc.html", bad[i]);
        assert_int_equal(load_tmp(tmp, &t, "enc"), -1);
        assert_non_null(strstr(err, "UTF-8"));
    }

    put_file(tmp, "enc.html", "<p>\0</p>", 8);
    assert_int_equal(load_tmp(tmp, &t, "enc"), -1);
    assert_non_null(strstr(err, "NUL"));
}

/* ------------------------------------------------------------ addresses ---- */

static void test_from_address(void **state)
{
    (void)state;
    char out[JOBS_MAIL_ADDRESS_MAX + 1];
    struct {
        const char *from;
        const char *addr;
    } good[] = {
        {"noreply@example.com", "noreply@example.com"},
        {"  noreply@example.com ", "noreply@example.com"},
        {"Hydrant <noreply@example.com>", "noreply@example.com"},
        {"\"Hydrant, Inc.\" <noreply@example.com>", "noreply@example.com"},
        {"<noreply@example.com>", "noreply@example.com"},
        {"Hydr\xc3\xa5nt <n@localhost>  ", "n@localhost"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(out, 'x', sizeof(out));
        if (jobs_mail_from_address(good[i].from, out, sizeof(out)) != 0)
            fail_msg("rejected From \"%s\"", good[i].from);
        assert_string_equal(out, good[i].addr);
    }
    const char *bad[] = {"",
                         "Hydrant",
                         "Hydrant <bad>",
                         "Hydrant <a@b.c",
                         "Hydrant <a@b.c> trailing",
                         "Hydrant <a@b.c>\r\nBcc: x@y.z",
                         "Hydrant\r\n <a@b.c>",
                         "Hy\"drant <a@b.c>",
                         "\"Hydrant <a@b.c>",
                         "Hydrant <a b@c.d>",
                         "Hydrant <a..b@c.d>",
                         "Hydrant <a(b)@c.d>",
                         "Hydrant <\"a\"@c.d>",
                         "Hydrant <a@-c.d>",
                         "a@b.c\n",
                         "Hydrant <>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (jobs_mail_from_address(bad[i], out, sizeof(out)) == 0)
            fail_msg("accepted From \"%s\"", bad[i]);
    assert_int_equal(jobs_mail_from_address(NULL, out, sizeof(out)), -1);
    char small[8];
    assert_int_equal(jobs_mail_from_address("noreply@example.com", small, sizeof(small)), -1);
    assert_int_equal(jobs_mail_from_address("a@b.c", small, 6), 0);
    assert_string_equal(small, "a@b.c");
    assert_int_equal(jobs_mail_from_address("a@b.c", small, 5), -1);
}

/* --------------------------------------------------------------- compose ---- */

/* Builds a text that exercises the encoder: UTF-8, a 200-character line, '=', trailing
 * whitespace, leading dots, "From ", a bare CR and no final newline. */
static char *sample_text(void)
{
    char line200[201];
    for (int i = 0; i < 200; i++)
        line200[i] = (char)('a' + i % 26);
    line200[200] = '\0';
    line200[75] = ' ';
    line200[150] = '=';
    char e_line[2 * 100 + 1]; /* 100 times "é": encoded tokens must not be split by soft breaks */
    for (int i = 0; i < 100; i++)
        memcpy(e_line + 2 * i, "\xc3\xa9", 2);
    e_line[200] = '\0';
    const char *rest = "Caf\xc3\xa9 cr\xc3\xa8me br\xc3\xbbl\xc3\xa9\n"
                       "trailing spaces   \n"
                       "trailing tab\t\n"
                       "a=b =3D =\n"
                       ".\n"
                       ".leading dot\n"
                       "From the team\n"
                       "\n"
                       "  indented\n"
                       "bare\rcr\n"
                       "no final newline \xc3\xa9";
    size_t n = strlen(line200) + strlen(e_line) + strlen(rest) + 3;
    char *text = malloc(n);
    assert_non_null(text);
    snprintf(text, n, "%s\n%s\n%s", line200, e_line, rest);
    return text;
}

static void test_compose_structure(void **state)
{
    (void)state;
    char *text = sample_text();
    const char *html =
        "<!DOCTYPE html>\n<html><body><p>Caf\xc3\xa9 <a href=\"https://x.example/?a=1&amp;b=2\">"
        "link</a></p></body></html>\n";
    size_t len;
    char *msg = compose_ok(FROM, "Confirm your email address", text, html, &len);
    char *headers = header_block(msg);
    check_lines(headers, strlen(headers), 78, 78);

    const char *once[] = {"Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"};
    for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
        if (count_header(headers, once[i]) != 1)
            fail_msg("header %s appears %d times", once[i], count_header(headers, once[i]));
    assert_int_equal(count_header(headers, "Bcc"), 0);
    assert_int_equal(count_header(headers, "Content-Transfer-Encoding"), 0);

    const char *expect[][2] = {{"Date", "Sun, 22 Nov 2026 18:37:29 +0000"},
                               {"From", "Hydrant <noreply@example.com>"},
                               {"To", "user@example.org"},
                               {"Subject", "Confirm your email address"},
                               {"Message-ID", "<" RANDOM_HEX "@example.com>"},
                               {"MIME-Version", "1.0"}};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        char *v = header_value(headers, expect[i][0]);
        assert_non_null(v);
        assert_string_equal(v, expect[i][1]);
        free(v);
    }

    char *boundary = boundary_of(msg);
    /* delimiters: two opening lines, one closing line that ends the message */
    char line[128];
    snprintf(line, sizeof(line), "\r\n--%s\r\n", boundary);
    assert_int_equal(count_occurrences(msg, line), 2);
    snprintf(line, sizeof(line), "\r\n--%s--\r\n", boundary);
    assert_int_equal(count_occurrences(msg, line), 1);
    assert_int_equal(strcmp(msg + len - strlen(line), line), 0);
    assert_int_equal(count_occurrences(msg, boundary), 4); /* Content-Type + 3 delimiters */

    char *plain = part_body(msg, boundary, 0, "text/plain");
    assert_string_equal(plain, text);
    char *rich = part_body(msg, boundary, 1, "text/html");
    assert_string_equal(rich, html);

    /* text/plain comes first */
    assert_true(strstr(msg, "text/plain") < strstr(msg, "text/html"));
    /* nothing in the bodies starts a line with '.' (robust against sloppy SMTP relays) */
    assert_null(strstr(msg, "\r\n."));
    assert_null(strstr(msg, "\r\nFrom "));

    free(plain);
    free(rich);
    free(boundary);
    free(headers);
    free(msg);
    free(text);
}

static void test_compose_crlf_input(void **state)
{
    (void)state;
    char *text = sample_text();
    const char *html = "<p>one</p>\n<p>two</p>\n";
    char *text_crlf = lf_to_crlf(text);
    char *html_crlf = lf_to_crlf(html);
    size_t len1, len2;
    char *a = compose_ok(FROM, "s", text, html, &len1);
    char *b = compose_ok(FROM, "s", text_crlf, html_crlf, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(a, b, len1);
    free(a);
    free(b);
    free(text);
    free(text_crlf);
    free(html_crlf);
}

static void test_compose_qp_edges(void **state)
{
    (void)state;
    /* lines whose length sits around the 76 limit, made of plain and encoded characters */
    for (int n = 70; n <= 80; n++) {
        for (int kind = 0; kind < 4; kind++) {
            char text[512];
            int o = 0;
            for (int i = 0; i < n; i++) {
                if (kind == 1 && i % 3 == 0)
                    text[o++] = '=';
                else if (kind == 2 && i == n - 1)
                    text[o++] = ' ';
                else if (kind == 3)
                    o += snprintf(text + o, sizeof(text) - (size_t)o, "\xc3\xa9");
                else
                    text[o++] = 'x';
            }
            text[o] = '\0';
            size_t len;
            char *msg = compose_ok(FROM, "s", text, "", &len);
            char *boundary = boundary_of(msg);
            char *plain = part_body(msg, boundary, 0, "text/plain");
            assert_string_equal(plain, text);
            char *rich = part_body(msg, boundary, 1, "text/html");
            assert_string_equal(rich, "");
            free(plain);
            free(rich);
            free(boundary);
            free(msg);
        }
    }
}

static void test_compose_date(void **state)
{
    (void)state;
    /* names must not follow the locale; only matters where such a locale is installed */
    setlocale(LC_ALL, "fr_FR.UTF-8");
    struct {
        time_t t;
        const char *date;
    } cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 +0000"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 +0000"},
        {951868799, "Tue, 29 Feb 2000 23:59:59 +0000"},
        {1795372649, "Sun, 22 Nov 2026 18:37:29 +0000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *msg = compose(FROM, "user@example.org", "s", "t", "h", cases[i].t, &len);
        assert_non_null(msg);
        char *headers = header_block(msg);
        char *date = header_value(headers, "Date");
        assert_string_equal(date, cases[i].date);
        free(date);
        free(headers);
        free(msg);
    }
    setlocale(LC_ALL, "C");
}

static void check_subject_roundtrip(const char *subject, int encoded)
{
    size_t len;
    char *msg = compose_ok(FROM, subject, "t", "h", &len);
    char *headers = header_block(msg);
    check_lines(headers, strlen(headers), 76, 76);
    assert_int_equal(count_header(headers, "Subject"), 1);
    char *value = header_value(headers, "Subject");
    assert_non_null(value);
    if (encoded) {
        assert_int_equal(strncmp(value, "=?UTF-8?B?", 10), 0);
        char *decoded = decode_words(value);
        assert_string_equal(decoded, subject);
        free(decoded);
    } else {
        assert_string_equal(value, subject);
    }
    free(value);
    free(headers);
    free(msg);
}

static void test_compose_subject(void **state)
{
    (void)state;
    check_subject_roundtrip("Plain ASCII subject", 0);
    check_subject_roundtrip("R\xc3\xa9initialisez votre mot de passe", 1);
    check_subject_roundtrip("\xe2\x9c\x89 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x94\x91", 1);
    /* long: several words, none splitting a character */
    char longs[512] = "";
    for (int i = 0; i < 40; i++)
        strcat(longs, i % 2 ? "\xc3\xa9" : "\xe2\x82\xac");
    strcat(longs, " and some ASCII at the end to mix widths \xf0\x9f\x94\x91\xf0\x9f\x94\x91");
    check_subject_roundtrip(longs, 1);
    /* ASCII that would exceed the recommended line length, or looks like an encoded-word */
    check_subject_roundtrip("A very long subject line that goes on and on well past seventy-eight characters",
                            1);
    check_subject_roundtrip("=?UTF-8?B?aGk=?=", 1);
    check_subject_roundtrip("tab\there", 1);
}

static void test_compose_from(void **state)
{
    (void)state;
    struct {
        const char *from;
        const char *header;
        const char *domain;
    } cases[] = {
        {"noreply@example.com", "noreply@example.com", "example.com"},
        {"Hydrant Team <noreply@mail.example.com>", "Hydrant Team <noreply@mail.example.com>",
         "mail.example.com"},
        {"\"Hydrant, Inc.\" <noreply@example.com>", "\"Hydrant, Inc.\" <noreply@example.com>", "example.com"},
        {"Hydrant, Inc. <noreply@example.com>", "\"Hydrant, Inc.\" <noreply@example.com>", "example.com"},
        {"<app@localhost>", "app@localhost", "localhost"},
        {"\"Hydrant <team>\" <noreply@example.com>", "\"Hydrant <team>\" <noreply@example.com>",
         "example.com"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *msg = compose_ok(cases[i].from, "s", "t", "h", &len);
        char *headers = header_block(msg);
        char *from = header_value(headers, "From");
        assert_string_equal(from, cases[i].header);
        char *id = header_value(headers, "Message-ID");
        char want[128];
        snprintf(want, sizeof(want), "<%s@%s>", RANDOM_HEX, cases[i].domain);
        assert_string_equal(id, want);
        free(id);
        free(from);
        free(headers);
        free(msg);
    }

    /* a non-ASCII display name is encoded, the address left readable */
    size_t len;
    char *msg = compose_ok("Hydr\xc3\xa5nt <noreply@example.com>", "s", "t", "h", &len);
    char *headers = header_block(msg);
    check_lines(headers, strlen(headers), 78, 78);
    char *from = header_value(headers, "From");
    const char *addr = strstr(from, " <noreply@example.com>");
    assert_non_null(addr);
    assert_string_equal(addr, " <noreply@example.com>");
    char *name = xstrndup(from, (size_t)(addr - from));
    char *decoded = decode_words(name);
    assert_string_equal(decoded, "Hydr\xc3\xa5nt");
    free(decoded);
    free(name);
    free(from);
    free(headers);
    free(msg);
}

static void test_compose_from_folded(void **state)
{
    (void)state;
    const char *from =
        "Hydrant Notifications Service of Example Corporation <notifications@mail.example.com>";
    size_t len;
    char *msg = compose_ok(from, "s", "t", "h", &len);
    char *headers = header_block(msg);
    check_lines(headers, strlen(headers), 78, 78);
    char *value = header_value(headers, "From");
    assert_string_equal(value, from);
    free(value);
    free(headers);
    free(msg);
}

static void test_compose_date_range(void **state)
{
    (void)state;
    size_t len;
    /* RFC 5322 years have four digits and start at 1900 */
    char *msg = compose(FROM, "user@example.org", "s", "t", "h", (time_t)-2208988800, &len);
    assert_non_null(msg);
    char *headers = header_block(msg);
    char *date = header_value(headers, "Date");
    assert_string_equal(date, "Mon, 01 Jan 1900 00:00:00 +0000");
    free(date);
    free(headers);
    free(msg);
    assert_null(compose(FROM, "user@example.org", "s", "t", "h", (time_t)-2208988801, &len));
    assert_non_null(strstr(err, "date"));
    assert_null(compose(FROM, "user@example.org", "s", "t", "h", (time_t)253402300800, &len));
    assert_null(compose(FROM, "user@example.org", "s", "t", "h", (time_t)INT64_MAX, &len));
}

static void expect_refused(const char *from, const char *to, const char *subject, const char *text,
                           const char *html)
{
    size_t len = 12345;
    char *msg = compose(from, to, subject, text, html, 1795372649, &len);
    if (msg != NULL) {
        free(msg);
        fail_msg("composed with from=\"%s\" to=\"%s\" subject=\"%s\"", from ? from : "(null)",
                 to ? to : "(null)", subject ? subject : "(null)");
    }
    assert_true(strlen(err) > 0);
    assert_int_equal(len, 12345);
}

static void test_compose_refused(void **state)
{
    (void)state;
    expect_refused(FROM, "user@example.org", "Hello\r\nBcc: x@y.z", "t", "h");
    assert_non_null(strstr(err, "subject"));
    expect_refused(FROM, "user@example.org", "Hello\rthere", "t", "h");
    expect_refused(FROM, "user@example.org", "Hello\n", "t", "h");
    expect_refused(FROM, "a@b.c\r\nBcc: x@y.z", "s", "t", "h");
    assert_non_null(strstr(err, "recipient"));
    expect_refused(FROM, "Someone <a@b.c>", "s", "t", "h");
    expect_refused(FROM, "not-an-address", "s", "t", "h");
    /* what sign-up refuses (util_email_valid): the mailer never meets it */
    expect_refused(FROM, "a(b)@x.com", "s", "t", "h");
    expect_refused(FROM, "a@b..com", "s", "t", "h");
    expect_refused(FROM, "\xc3\xbc@x.com", "s", "t", "h");
    expect_refused(FROM, "user@localhost", "s", "t", "h"); /* one label: the From address only */
    expect_refused(FROM, "", "s", "t", "h");
    expect_refused(FROM, NULL, "s", "t", "h");
    expect_refused("Hydrant <bad>", "user@example.org", "s", "t", "h");
    assert_non_null(strstr(err, "From"));
    expect_refused("Hydrant <a@b.c>\r\nBcc: x@y.z", "user@example.org", "s", "t", "h");
    expect_refused(NULL, "user@example.org", "s", "t", "h");
    expect_refused(FROM, "user@example.org", NULL, "t", "h");
    expect_refused(FROM, "user@example.org", "s", NULL, "h");
    expect_refused(FROM, "user@example.org", "s", "t", NULL);

    jobs_mail_message_t m = {FROM, "user@example.org", "s", "t", "h", 0, NULL};
    size_t len;
    assert_null(jobs_mail_compose(&m, &len, err, sizeof(err)));
    assert_null(jobs_mail_compose(NULL, &len, err, sizeof(err)));
    /* a zero-length error buffer is never written */
    assert_null(jobs_mail_compose(&m, &len, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_substitutes),
        cmocka_unit_test(test_render_html_escape),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_repo_templates),
        cmocka_unit_test(test_template_bad_kind),
        cmocka_unit_test_setup_teardown(test_template_parse, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_template_files, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_template_size_limit, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_template_encoding, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_from_address),
        cmocka_unit_test(test_compose_structure),
        cmocka_unit_test(test_compose_crlf_input),
        cmocka_unit_test(test_compose_qp_edges),
        cmocka_unit_test(test_compose_date),
        cmocka_unit_test(test_compose_subject),
        cmocka_unit_test(test_compose_from),
        cmocka_unit_test(test_compose_from_folded),
        cmocka_unit_test(test_compose_date_range),
        cmocka_unit_test(test_compose_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
