#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* A string literal and its length, so that bodies may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

#define B "AaB03x"

static const http_multipart_limits_t default_limits = {.max_header_bytes = 8192, .max_parts = 16};

/* Every callback is written to one log: "[name|filename|type]" with '-' for an absent
 * value, the content bytes as they are, "[/]" at a part's end. Content arrives in pieces
 * of any size, so the log of a body is the same however it was cut. */
typedef struct {
    char log[8192];
    size_t len;
    int in_part;
    int abort_begin, abort_data, abort_end; /* return non-zero from that callback */
    size_t data_calls;
} rec_t;

static void rec_append(rec_t *r, const char *data, size_t len)
{
    assert_true(r->len + len <= sizeof(r->log));
    memcpy(r->log + r->len, data, len);
    r->len += len;
}

static void rec_string(rec_t *r, const char *s, size_t len)
{
    if (s == NULL) {
        rec_append(r, "-", 1);
        return;
    }
    /* The strings must be C strings of exactly the length given. */
    assert_int_equal(strlen(s), len);
    rec_append(r, s, len);
}

static int rec_begin(void *user, const http_multipart_part_t *part)
{
    rec_t *r = user;
    assert_false(r->in_part);
    assert_non_null(part->name);
    r->in_part = 1;
    rec_append(r, "[", 1);
    rec_string(r, part->name, part->name_len);
    rec_append(r, "|", 1);
    rec_string(r, part->filename, part->filename_len);
    rec_append(r, "|", 1);
    rec_string(r, part->content_type, part->content_type_len);
    rec_append(r, "]", 1);
    return r->abort_begin;
}

static int rec_data(void *user, const char *data, size_t len)
{
    rec_t *r = user;
    assert_true(r->in_part);
    assert_true(len > 0);
    rec_append(r, data, len);
    r->data_calls++;
    return r->abort_data;
}

static int rec_end(void *user)
{
    rec_t *r = user;
    assert_true(r->in_part);
    r->in_part = 0;
    rec_append(r, "[/]", 3);
    return r->abort_end;
}

static const http_multipart_callbacks_t rec_callbacks = {rec_begin, rec_data, rec_end};

/* Feeds body cut at the given offsets (ascending), each chunk in its own allocation so
 * that AddressSanitizer sees any read past a chunk, then finishes. Returns the first
 * error or finish's answer. */
static http_multipart_status_t run_cuts(const char *body, size_t len, const size_t *cuts, size_t ncuts,
                                        const http_multipart_limits_t *limits, rec_t *r)
{
    http_multipart_t *p = http_multipart_new(S(B), limits, &rec_callbacks, r);
    assert_non_null(p);
    http_multipart_status_t st = HTTP_MULTIPART_OK;
    size_t from = 0;
    for (size_t i = 0; i <= ncuts && st == HTTP_MULTIPART_OK; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        char *chunk = malloc(to - from + 1);
        assert_non_null(chunk);
        memcpy(chunk, body + from, to - from);
        st = http_multipart_feed(p, chunk, to - from);
        free(chunk);
        from = to;
    }
    if (st == HTTP_MULTIPART_OK)
        st = http_multipart_finish(p);
    /* The first error is final, and later bytes reach no callback. */
    size_t logged = r->len;
    assert_int_equal(http_multipart_feed(p, S("\r\n--" B "\r\n\r\n")), st);
    assert_int_equal(http_multipart_finish(p), st);
    assert_int_equal(r->len, logged);
    http_multipart_free(p);
    return st;
}

static void expect_same(const char *what, size_t at, http_multipart_status_t st, const rec_t *r,
                        http_multipart_status_t want, const char *want_log, size_t loglen)
{
    if (st != want || r->len != loglen || memcmp(r->log, want_log, loglen) != 0) {
        print_error("%s (cut at %zu): status %s, want %s; log %zu bytes '%.*s', want %zu bytes '%.*s'\n",
                    what, at, http_multipart_status_name(st), http_multipart_status_name(want), r->len,
                    (int)r->len, r->log, loglen, (int)loglen, want_log);
        fail();
    }
}

/* The body must give status and log in one chunk, byte by byte, and cut in two at every
 * offset. */
static void expect_limits(const char *body, size_t len, const http_multipart_limits_t *limits,
                          http_multipart_status_t want, const char *want_log, size_t loglen)
{
    rec_t r = {0};
    expect_same("one chunk", 0, run_cuts(body, len, NULL, 0, limits, &r), &r, want, want_log, loglen);

    size_t *every = malloc((len + 1) * sizeof(*every));
    assert_non_null(every);
    for (size_t i = 0; i < len; i++)
        every[i] = i + 1;
    memset(&r, 0, sizeof(r));
    expect_same("byte by byte", 1, run_cuts(body, len, every, len > 0 ? len - 1 : 0, limits, &r), &r, want,
                want_log, loglen);
    free(every);

    for (size_t cut = 0; cut <= len; cut++) {
        memset(&r, 0, sizeof(r));
        expect_same("two chunks", cut, run_cuts(body, len, &cut, 1, limits, &r), &r, want, want_log, loglen);
    }
}

static void expect(const char *body, size_t len, http_multipart_status_t want, const char *want_log,
                   size_t loglen)
{
    expect_limits(body, len, &default_limits, want, want_log, loglen);
}

#define EXPECT_OK(body, log)      expect(S(body), HTTP_MULTIPART_OK, S(log))
#define EXPECT_ERR(body, st, log) expect(S(body), st, S(log))
#define DISP(name)                "Content-Disposition: form-data; name=\"" name "\""
#define PART(headers, content)    "--" B "\r\n" headers "\r\n\r\n" content "\r\n"
#define CLOSE                     "--" B "--\r\n"

/* ------------------------------------------------------------ well-formed ---- */

static void test_one_part(void **state)
{
    (void)state;
    EXPECT_OK(PART(DISP("file") "; filename=\"a.txt\"\r\nContent-Type: text/plain", "hello") CLOSE,
              "[file|a.txt|text/plain]hello[/]");
}

static void test_several_parts(void **state)
{
    (void)state;
    /* Header names in any case, unknown headers ignored, a token name, an empty part, a
     * part whose content is only a CRLF. */
    EXPECT_OK(PART("content-disposition: form-data; name=title", "A title")
                  PART("CONTENT-TYPE:  image/png \r\nContent-Transfer-Encoding: binary\r\n"
                       "X-Other: anything; \"here\"\r\n" DISP("file") "; filename=\"x.png\"",
                       "\x89PNG") PART(DISP("empty"), "") PART(DISP("crlf"), "\r\n") CLOSE,
              "[title|-|-]A title[/][file|x.png|image/png]\x89PNG[/][empty|-|-][/][crlf|-|-]\r\n[/]");
    /* Two parts with the same name are both reported: the caller decides. */
    EXPECT_OK(PART(DISP("file") "; filename=a", "1") PART(DISP("file") "; filename=b", "2") CLOSE,
              "[file|a|-]1[/][file|b|-]2[/]");
}

static void test_binary_content(void **state)
{
    (void)state;
    /* Everything that looks like the start of a delimiter but is not one is content:
     * CRLFs, dashes, the boundary without its CRLF, a partial delimiter, a delimiter with
     * another last character, CR CR, NUL and high bytes. */
#define BINARY "\r\n--\r\n-\r--" B "\r\n--AaB03\r\n--AaB03y\r\r\n--A\r\n\r\nx\0y\xff\r\n--B\r"
    EXPECT_OK(PART(DISP("file"), BINARY) CLOSE, "[file|-|-]" BINARY "[/]");
#undef BINARY
}

static void test_delimiter_forms(void **state)
{
    (void)state;
    /* Transport padding after a delimiter; the close delimiter without its CRLF. */
    EXPECT_OK("--" B " \t \r\n" DISP("a") "\r\n\r\nx\r\n--" B "\t\r\n" DISP("b") "\r\n\r\ny\r\n--" B "--",
              "[a|-|-]x[/][b|-|-]y[/]");
    /* RFC 2046 lets the header block's CRLF be the delimiter's: an empty part. */
    EXPECT_OK("--" B "\r\n" DISP("a") "\r\n\r\n--" B "--", "[a|-|-][/]");
    /* That CRLF is never content, even when a dash or a partial delimiter follows. */
    EXPECT_OK("--" B "\r\n" DISP("a") "\r\n\r\n-x\r\n--" B "--", "[a|-|-]-x[/]");
    EXPECT_OK("--" B "\r\n" DISP("a") "\r\n\r\n--AaB03\r\n--" B "--", "[a|-|-]--AaB03[/]");
    /* A body with no part is well-formed (the caller asks for what it needs). */
    EXPECT_OK("--" B "--\r\n", "");
}

static void test_preamble_and_epilogue(void **state)
{
    (void)state;
    EXPECT_OK("This is the preamble, with --" B " not at a line start.\r\n-\r\n--AaB03\r\n"
              "\r\n" PART(DISP("a"), "x") "--" B "--\r\n"
                                          "The epilogue: \r\n--" B
                                          "\r\n" DISP("b") "\r\n\r\nnot a part\r\n--" B "--\r\n--" B "junk",
              "[a|-|-]x[/]");
    /* Past max_preamble, the body fails at once instead of when it ends. */
    http_multipart_limits_t limits = default_limits;
    limits.max_preamble = 8;
    expect_limits(S("12345678\r\n" PART(DISP("a"), "x") CLOSE), &limits, HTTP_MULTIPART_OK, S("[a|-|-]x[/]"));
    expect_limits(S("123456789\r\n" PART(DISP("a"), "x") CLOSE), &limits, HTTP_MULTIPART_ERR_NO_DELIMITER,
                  S(""));
}

/* -------------------------------------------------------------- filenames ---- */

static void test_filenames(void **state)
{
    (void)state;
    /* Backslash escapes in a quoted string; raw UTF-8 as browsers send it. */
    EXPECT_OK(PART(DISP("file") "; filename=\"a \\\"q\\\" \\\\ b\\c.txt\"", "") CLOSE,
              "[file|a \"q\" \\ bc.txt|-][/]");
    EXPECT_OK(PART(DISP("file") "; filename=\"r\xc3\xa9sum\xc3\xa9.pdf\"", "") CLOSE,
              "[file|r\xc3\xa9sum\xc3\xa9.pdf|-][/]");
    /* RFC 5987, with and without a language, charset in any case. */
    EXPECT_OK(PART(DISP("file") "; filename*=UTF-8''%e2%82%AC%20rates.txt", "") CLOSE,
              "[file|\xe2\x82\xac rates.txt|-][/]");
    EXPECT_OK(PART(DISP("file") "; filename*=utf-8'en-GB'a.b", "") CLOSE, "[file|a.b|-][/]");
    /* filename* wins over filename, whichever comes first. */
    EXPECT_OK(PART(DISP("file") "; filename=\"plain.txt\"; filename*=UTF-8''ext.txt", "") CLOSE,
              "[file|ext.txt|-][/]");
    EXPECT_OK(PART(DISP("file") "; filename*=UTF-8''ext.txt; filename=\"plain.txt\"", "") CLOSE,
              "[file|ext.txt|-][/]");
    /* Sent empty is not absent; names are not validated here. */
    EXPECT_OK(PART(DISP("file") "; filename=\"\"", "") CLOSE, "[file||-][/]");
    EXPECT_OK(PART(DISP("file") "; filename=\"../../etc/passwd\"", "") CLOSE, "[file|../../etc/passwd|-][/]");
    /* Parameter names in any case, spaces around '=', unknown parameters ignored. */
    EXPECT_OK(PART("Content-Disposition: Form-Data ; NAME = \"file\" ;x=\"y\"; FileName=z.txt", "") CLOSE,
              "[file|z.txt|-][/]");
}

/* ------------------------------------------------------- boundary extraction ---- */

static int boundary(const char *ct, char *out, size_t outlen)
{
    return http_multipart_boundary(ct, strlen(ct), out, outlen);
}

static void expect_boundary(const char *ct, const char *want)
{
    char out[128];
    memset(out, 'x', sizeof(out));
    int n = boundary(ct, out, sizeof(out));
    if (want == NULL) {
        if (n != -1) {
            print_error("'%s': got '%s', want -1\n", ct, out);
            fail();
        }
        return;
    }
    if (n != (int)strlen(want) || strcmp(out, want) != 0) {
        print_error("'%s': got %d, want '%s'\n", ct, n, want);
        fail();
    }
}

static void test_boundary(void **state)
{
    (void)state;
    expect_boundary("multipart/form-data; boundary=AaB03x", "AaB03x");
    expect_boundary("Multipart/Form-Data;BOUNDARY=AaB03x", "AaB03x");
    expect_boundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                    "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    expect_boundary(" multipart/form-data ; charset=utf-8; boundary = \"a b:c=d?(),./+_'\" ; x=y ",
                    "a b:c=d?(),./+_'");
    expect_boundary("multipart/form-data; boundary=\"a\\bc\"", "abc");
    char seventy[128];
    snprintf(seventy, sizeof(seventy), "multipart/form-data; boundary=%070d", 7);
    expect_boundary(seventy, seventy + strlen("multipart/form-data; boundary="));

    char long_one[128];
    snprintf(long_one, sizeof(long_one), "multipart/form-data; boundary=%071d", 7);
    expect_boundary(long_one, NULL);
    expect_boundary("multipart/form-data", NULL);
    expect_boundary("multipart/form-data;", NULL);
    expect_boundary("multipart/form-data; charset=utf-8", NULL);
    expect_boundary("multipart/form-data; boundary=", NULL);
    expect_boundary("multipart/form-data; boundary=\"\"", NULL);
    expect_boundary("multipart/form-data; boundary=\"ab \"", NULL); /* trailing space */
    expect_boundary("multipart/form-data; boundary=\"a@b\"", NULL); /* not in RFC 2046's set */
    expect_boundary("multipart/form-data; boundary=a!b", NULL);
    expect_boundary("multipart/form-data; boundary=\"a\\\"b\"", NULL);
    expect_boundary("multipart/form-data; boundary=\"ab", NULL); /* unterminated */
    expect_boundary("multipart/form-data; boundary=a; boundary=b", NULL);
    expect_boundary("multipart/form-data; boundary=a b", NULL);
    expect_boundary("multipart/mixed; boundary=a", NULL);
    expect_boundary("text/plain; boundary=a", NULL);
    expect_boundary("multipart/form-data-x; boundary=a", NULL);
    expect_boundary("application/json", NULL);
    expect_boundary("", NULL);

    /* out must hold the NUL too; the value need not be NUL-terminated. */
    char out[8];
    assert_int_equal(boundary("multipart/form-data; boundary=AaB03x", out, 6), -1);
    assert_int_equal(boundary("multipart/form-data; boundary=AaB03x", out, 7), 6);
    assert_string_equal(out, "AaB03x");
    assert_int_equal(http_multipart_boundary("multipart/form-data; boundary=abcdef", 33, out, sizeof(out)),
                     3);
    assert_string_equal(out, "abc");
}

/* ----------------------------------------------------------------- errors ---- */

static void test_missing_delimiter(void **state)
{
    (void)state;
    EXPECT_ERR("just some bytes\r\n", HTTP_MULTIPART_ERR_NO_DELIMITER, "");
    EXPECT_ERR("", HTTP_MULTIPART_ERR_NO_DELIMITER, "");
    EXPECT_ERR("--AaB03", HTTP_MULTIPART_ERR_NO_DELIMITER, "");
    EXPECT_ERR("--other\r\n" DISP("a") "\r\n\r\nx\r\n--other--\r\n", HTTP_MULTIPART_ERR_NO_DELIMITER, "");
    EXPECT_ERR(" --" B "\r\n" DISP("a") "\r\n\r\n", HTTP_MULTIPART_ERR_NO_DELIMITER, "");
}

static void test_bad_boundary_line(void **state)
{
    (void)state;
    EXPECT_ERR("--" B "junk\r\n" DISP("a") "\r\n\r\nx\r\n" CLOSE, HTTP_MULTIPART_ERR_BOUNDARY_LINE, "");
    EXPECT_ERR("--" B "-x", HTTP_MULTIPART_ERR_BOUNDARY_LINE, "");
    EXPECT_ERR("--" B " x\r\n", HTTP_MULTIPART_ERR_BOUNDARY_LINE, "");
    EXPECT_ERR("--" B "\rx", HTTP_MULTIPART_ERR_BOUNDARY_LINE, "");
    EXPECT_ERR("--" B "\n" DISP("a") "\r\n\r\nx\r\n" CLOSE, HTTP_MULTIPART_ERR_BOUNDARY_LINE, "");
    /* The delimiter inside content followed by other bytes: the content so far was
     * delivered, the part never ended. */
    EXPECT_ERR(PART(DISP("a"), "abc") "--" B "d\r\n", HTTP_MULTIPART_ERR_BOUNDARY_LINE, "[a|-|-]abc");
}

static void test_truncated(void **state)
{
    (void)state;
    EXPECT_ERR(PART(DISP("a"), "abc"), HTTP_MULTIPART_ERR_TRUNCATED, "[a|-|-]abc");
    /* What might still be a delimiter is held back, not delivered. */
    EXPECT_ERR("--" B "\r\n" DISP("a") "\r\n\r\nabc\r\n--Aa", HTTP_MULTIPART_ERR_TRUNCATED, "[a|-|-]abc");
    EXPECT_ERR("--" B "\r\n" DISP("a") "\r\n\r\nabc\r\n--" B, HTTP_MULTIPART_ERR_TRUNCATED, "[a|-|-]abc");
    EXPECT_ERR("--" B "\r\n" DISP("a") "\r\n\r\nabc\r\n--" B "-", HTTP_MULTIPART_ERR_TRUNCATED, "[a|-|-]abc");
    EXPECT_ERR("--" B "\r\n" DISP("a") "\r\n", HTTP_MULTIPART_ERR_TRUNCATED, "");
    EXPECT_ERR("--" B, HTTP_MULTIPART_ERR_TRUNCATED, "");
    EXPECT_ERR("--" B "\r\n", HTTP_MULTIPART_ERR_TRUNCATED, "");
}

/* A part whose header block is exactly n bytes long. */
static size_t sized_part(char *buf, size_t n)
{
    const char *head = "--" B "\r\n";
    const char *disp = DISP("a") "\r\nX: ";
    size_t fixed = strlen(disp) + strlen("\r\n\r\n");
    assert_true(n >= fixed);
    size_t len = (size_t)sprintf(buf, "%s%s", head, disp);
    memset(buf + len, 'v', n - fixed);
    len += n - fixed;
    len += (size_t)sprintf(buf + len, "\r\n\r\nx\r\n--" B "--");
    return len;
}

static void test_header_limit(void **state)
{
    (void)state;
    http_multipart_limits_t limits = default_limits;
    limits.max_header_bytes = 64;
    char body[256];
    size_t len = sized_part(body, 64);
    expect_limits(body, len, &limits, HTTP_MULTIPART_OK, S("[a|-|-]x[/]"));
    len = sized_part(body, 65);
    expect_limits(body, len, &limits, HTTP_MULTIPART_ERR_HEADER_TOO_LONG, S(""));
    /* The limit is per part, not per body. */
    char two[512];
    size_t first = sized_part(two, 64) - strlen("--" B "--");
    size_t second = sized_part(two + first, 64);
    expect_limits(two, first + second, &limits, HTTP_MULTIPART_OK, S("[a|-|-]x[/][a|-|-]x[/]"));
}

static void test_malformed_headers(void **state)
{
    (void)state;
    const char *bad[] = {
        "Content-Disposition form-data; name=a\r\n",       /* no colon */
        "Content-Disposition : form-data; name=a\r\n",     /* space before the colon */
        ": form-data; name=a\r\n",                         /* no name */
        DISP("a") "\r\n folded: continuation\r\n",         /* obsolete folding */
        DISP("a") "\n",                                    /* bare LF */
        DISP("a") "\r\r\n",                                /* bare CR */
        DISP("a") "\r\nX: a\x01z\r\n",                     /* a control character */
        DISP("a") "\r\nX: a\x7fz\r\n",                     /* DEL */
        "Content-Disposition: form-data; name=\"a\r\n",    /* unterminated quote */
        "Content-Disposition: form-data; name=\r\n",       /* empty value */
        "Content-Disposition: form-data; name=\"a\"x\r\n", /* junk after a value */
        "Content-Disposition: form-data; name=\"a\\\r\n",  /* an escape at the very end */
        "Content-Disposition: form-data; name\r\n",        /* no '=' */
        "Content-Disposition: form-data name=a\r\n",       /* no ';' */
        "Content-Disposition: form-data; name=a;\r\n",     /* dangling ';' */
        "Content-Disposition: form-data; name=a b\r\n",
        "Content-Disposition: form-data; name=a; name=b\r\n",
        "Content-Disposition: form-data; name=a; filename=b; FILENAME=c\r\n",
        DISP("a") "\r\n" DISP("b") "\r\n",
        DISP("a") "\r\nContent-Type: text/plain\r\ncontent-type: text/html\r\n",
        DISP("a") "; filename*=ISO-8859-1''a.txt\r\n",
        DISP("a") "; filename*=UTF-8'a.txt\r\n",
        DISP("a") "; filename*=\"UTF-8''a.txt\"\r\n",
        DISP("a") "; filename*=UTF-8''%zz\r\n",
        DISP("a") "; filename*=UTF-8''%4\r\n",
        DISP("a") "; filename*=UTF-8''a'b\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char body[512];
        int len = snprintf(body, sizeof(body), "--" B "\r\n%s\r\nx\r\n--" B "--", bad[i]);
        expect(body, (size_t)len, HTTP_MULTIPART_ERR_HEADER_MALFORMED, S(""));
    }
    /* A raw NUL is a control character like any other. */
    EXPECT_ERR(PART(DISP("a") "; filename=\"a\0b\"", "x") CLOSE, HTTP_MULTIPART_ERR_HEADER_MALFORMED, "");
}

static void test_disposition_errors(void **state)
{
    (void)state;
    EXPECT_ERR(PART("Content-Type: text/plain", "x") CLOSE, HTTP_MULTIPART_ERR_NOT_FORM_DATA, "");
    EXPECT_ERR(PART("Content-Dispositiom: form-data; name=a", "x") CLOSE, HTTP_MULTIPART_ERR_NOT_FORM_DATA,
               "");
    EXPECT_ERR(PART("Content-Disposition: attachment; name=a", "x") CLOSE, HTTP_MULTIPART_ERR_NOT_FORM_DATA,
               "");
    EXPECT_ERR("--" B "\r\n\r\nx\r\n" CLOSE, HTTP_MULTIPART_ERR_NOT_FORM_DATA, "");
    EXPECT_ERR(PART("Content-Disposition: form-data; filename=\"a.txt\"", "x") CLOSE,
               HTTP_MULTIPART_ERR_NO_NAME, "");
    EXPECT_ERR(PART("Content-Disposition: form-data", "x") CLOSE, HTTP_MULTIPART_ERR_NO_NAME, "");
    EXPECT_ERR(PART(DISP(""), "x") CLOSE, HTTP_MULTIPART_ERR_NO_NAME, "");
    EXPECT_ERR(PART(DISP("file") "; filename*=UTF-8''a%00b", "x") CLOSE, HTTP_MULTIPART_ERR_NUL_IN_NAME, "");
    /* The first part was fine and is reported whole. */
    EXPECT_ERR(PART(DISP("a"), "1") PART(DISP(""), "2") CLOSE, HTTP_MULTIPART_ERR_NO_NAME, "[a|-|-]1[/]");
}

static void test_too_many_parts(void **state)
{
    (void)state;
    http_multipart_limits_t limits = default_limits;
    limits.max_parts = 2;
    expect_limits(S(PART(DISP("a"), "1") PART(DISP("b"), "2") CLOSE), &limits, HTTP_MULTIPART_OK,
                  S("[a|-|-]1[/][b|-|-]2[/]"));
    expect_limits(S(PART(DISP("a"), "1") PART(DISP("b"), "2") PART(DISP("c"), "3") CLOSE), &limits,
                  HTTP_MULTIPART_ERR_TOO_MANY_PARTS, S("[a|-|-]1[/][b|-|-]2[/]"));
}

static void test_aborts(void **state)
{
    (void)state;
    const char body[] = PART(DISP("a"), "12345") PART(DISP("b"), "6") CLOSE;
    rec_t r = {.abort_begin = 1};
    assert_int_equal(run_cuts(S(body), NULL, 0, &default_limits, &r), HTTP_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.len, strlen("[a|-|-]"));

    size_t cut = strlen("--" B "\r\n" DISP("a") "\r\n\r\n12");
    memset(&r, 0, sizeof(r));
    r.abort_data = 1;
    assert_int_equal(run_cuts(S(body), &cut, 1, &default_limits, &r), HTTP_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.data_calls, 1);
    assert_int_equal(r.len, strlen("[a|-|-]12"));
    assert_memory_equal(r.log, "[a|-|-]12", r.len);

    memset(&r, 0, sizeof(r));
    r.abort_end = 1;
    assert_int_equal(run_cuts(S(body), NULL, 0, &default_limits, &r), HTTP_MULTIPART_ERR_ABORTED);
    assert_int_equal(r.len, strlen("[a|-|-]12345[/]"));
    assert_memory_equal(r.log, "[a|-|-]12345[/]", r.len);
}

/* ---------------------------------------------------------- streaming ---- */

typedef struct {
    size_t bytes;
    uint64_t sum;
} count_t;

static int count_data(void *user, const char *data, size_t len)
{
    count_t *c = user;
    c->bytes += len;
    for (size_t i = 0; i < len; i++)
        c->sum = c->sum * 31 + (unsigned char)data[i];
    return 0;
}

/* Content is handed out as soon as it cannot be a delimiter: only a possible delimiter's
 * first bytes are ever held back. */
static void test_streaming(void **state)
{
    (void)state;
    const http_multipart_callbacks_t cb = {NULL, count_data, NULL};
    count_t c = {0};
    http_multipart_t *p = http_multipart_new(S(B), &default_limits, &cb, &c);
    assert_non_null(p);
    assert_int_equal(http_multipart_feed(p, S("--" B "\r\n" DISP("file") "\r\n\r\n")), HTTP_MULTIPART_OK);
    char *chunk = malloc(65536);
    assert_non_null(chunk);
    uint64_t want = 0;
    for (int i = 0; i < 64; i++) {
        for (size_t j = 0; j < 65536; j++) {
            chunk[j] = (char)((i * 7 + j * 13) % 251);
            if (chunk[j] == '\r')
                chunk[j] = '\n';
            want = want * 31 + (unsigned char)chunk[j];
        }
        assert_int_equal(http_multipart_feed(p, chunk, 65536), HTTP_MULTIPART_OK);
        assert_int_equal(c.bytes, (size_t)(i + 1) * 65536);
    }
    free(chunk);
    assert_int_equal(c.sum, want);
    /* A possible delimiter is held back until it is decided. */
    assert_int_equal(http_multipart_feed(p, S("z\r\n--AaB0")), HTTP_MULTIPART_OK);
    assert_int_equal(c.bytes, 64 * 65536 + 1);
    assert_int_equal(http_multipart_feed(p, S("4")), HTTP_MULTIPART_OK);
    assert_int_equal(c.bytes, 64 * 65536 + 1 + 9);
    assert_int_equal(http_multipart_feed(p, S("\r\n--" B "--")), HTTP_MULTIPART_OK);
    assert_int_equal(http_multipart_finish(p), HTTP_MULTIPART_OK);
    http_multipart_free(p);
}

static void test_new_and_names(void **state)
{
    (void)state;
    http_multipart_limits_t limits = default_limits;
    assert_null(http_multipart_new("", 0, &limits, NULL, NULL));
    assert_null(http_multipart_new(S("a b "), &limits, NULL, NULL));
    assert_null(http_multipart_new(S("a@b"), &limits, NULL, NULL));
    char seventy_one[72];
    memset(seventy_one, 'a', sizeof(seventy_one));
    assert_null(http_multipart_new(seventy_one, 71, &limits, NULL, NULL));
    http_multipart_t *p = http_multipart_new(seventy_one, 70, &limits, NULL, NULL);
    assert_non_null(p);
    /* No callbacks at all is allowed. */
    assert_int_equal(http_multipart_feed(p, S("--")), HTTP_MULTIPART_OK);
    http_multipart_free(p);
    limits.max_parts = 0;
    assert_null(http_multipart_new(S(B), &limits, NULL, NULL));
    limits = default_limits;
    limits.max_header_bytes = 0;
    assert_null(http_multipart_new(S(B), &limits, NULL, NULL));
    limits.max_header_bytes = HTTP_MULTIPART_HEADER_MAX_CAP + 1;
    assert_null(http_multipart_new(S(B), &limits, NULL, NULL));

    for (int a = HTTP_MULTIPART_OK; a <= HTTP_MULTIPART_ERR_ABORTED; a++) {
        assert_string_not_equal(http_multipart_status_name((http_multipart_status_t)a), "unknown");
        for (int b = a + 1; b <= HTTP_MULTIPART_ERR_ABORTED; b++)
            assert_string_not_equal(http_multipart_status_name((http_multipart_status_t)a),
                                    http_multipart_status_name((http_multipart_status_t)b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_part),
        cmocka_unit_test(test_several_parts),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_delimiter_forms),
        cmocka_unit_test(test_preamble_and_epilogue),
        cmocka_unit_test(test_filenames),
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_missing_delimiter),
        cmocka_unit_test(test_bad_boundary_line),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_disposition_errors),
        cmocka_unit_test(test_too_many_parts),
        cmocka_unit_test(test_aborts),
        cmocka_unit_test(test_streaming),
        cmocka_unit_test(test_new_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
