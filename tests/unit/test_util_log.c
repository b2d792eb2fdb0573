/*
 * util_log's line (util_log_format_line): fields, escaping of hostile messages, the
 * truncation marker; the threshold; and util_log itself writing one line to fd 2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define T_MS 1795345348123LL /* 2026-11-22T11:02:28.123Z */

static size_t line(char *buf, size_t cap, util_log_encoding_t enc, const char *component, const char *msg,
                   int truncated)
{
    return util_log_format_line(buf, cap, enc, T_MS, UTIL_LOG_WARN, component, msg, strlen(msg), truncated);
}

/* A text line read back: the fields before msg as written, then msg's quoted value with JSON
 * escapes, which must end the line. Fails the test when the line is not exactly one such
 * line. Returns the unescaped message (only \" \\ and \u00XX below 0x80 are decoded). */
static void parse_text(const char *l, size_t len, const char *prefix, char *msg, size_t msgcap)
{
    assert_int_equal(len, strlen(l));
    assert_true(len > 0 && l[len - 1] == '\n');
    assert_ptr_equal(strchr(l, '\n'), l + len - 1); /* one line */
    assert_int_equal(strncmp(l, prefix, strlen(prefix)), 0);
    const char *p = l + strlen(prefix);
    size_t n = 0;
    for (; *p != '"'; p++) {
        assert_true(*p != '\0' && (unsigned char)*p >= 0x20 && *p != 0x7f);
        char c = *p;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                char hex[5] = {p[1], p[2], p[3], p[4], 0};
                c = (char)strtol(hex, NULL, 16);
                p += 4;
            } else {
                assert_true(*p == '"' || *p == '\\');
                c = *p;
            }
        }
        assert_true(n + 1 < msgcap);
        msg[n++] = c;
    }
    msg[n] = '\0';
    assert_string_equal(p, "\"\n"); /* the closing quote ends the line */
}

static void test_text_line(void **state)
{
    (void)state;
    char buf[512];
    size_t n = line(buf, sizeof(buf), UTIL_LOG_TEXT, "postgres", "connection 0: cannot connect", 0);
    assert_string_equal(buf, "ts=2026-11-22T11:02:28.123Z level=warn component=postgres "
                             "msg=\"connection 0: cannot connect\"\n");
    assert_int_equal(n, strlen(buf));
    n = util_log_format_line(buf, sizeof(buf), UTIL_LOG_TEXT, T_MS, UTIL_LOG_DEBUG, "jobs", "", 0, 0);
    assert_string_equal(buf, "ts=2026-11-22T11:02:28.123Z level=debug component=jobs msg=\"\"\n");
    util_log_format_line(buf, sizeof(buf), UTIL_LOG_TEXT, T_MS, UTIL_LOG_ERROR, "x", NULL, 5, 0);
    assert_string_equal(buf, "ts=2026-11-22T11:02:28.123Z level=error component=x msg=\"\"\n");
}

static void test_json_line(void **state)
{
    (void)state;
    char buf[512];
    line(buf, sizeof(buf), UTIL_LOG_JSON, "redis", "a \"b\"\n", 0);
    assert_string_equal(buf,
                        "{\"ts\":\"2026-11-22T11:02:28.123Z\",\"level\":\"warn\",\"component\":\"redis\","
                        "\"msg\":\"a \\\"b\\\"\\u000a\"}\n");
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[512], msg[512];
    const char *prefix = "ts=2026-11-22T11:02:28.123Z level=warn component=redis msg=\"";
    /* A Redis error or URL that tries to close the value and start a line of its own. */
    const char *hostile = "ERR x\" level=error component=auth msg=\"forged\nts=2026-01-01T00:00:00.000Z "
                          "level=error msg=\"second\"\r\t\x01\x1b[31m\x7f back\\slash";
    size_t n = line(buf, sizeof(buf), UTIL_LOG_TEXT, "redis", hostile, 0);
    parse_text(buf, n, prefix, msg, sizeof(msg));
    assert_string_equal(msg, hostile); /* all of it, recoverable */
    assert_non_null(strstr(buf, "\\\" level=error"));
    assert_non_null(strstr(buf, "\\u000ats="));
    assert_non_null(strstr(buf, "\\u000d\\u0009\\u0001\\u001b[31m\\u007f back\\\\slash\"\n"));
    /* Valid UTF-8 as it is; a stray byte, an overlong and a surrogate as U+FFFD. */
    line(buf, sizeof(buf), UTIL_LOG_TEXT, "redis", "caf\xc3\xa9 \xff \xc0\xaf \xed\xa0\x80", 0);
    assert_non_null(strstr(buf, "msg=\"caf\xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
                                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"\n"));
    /* A NUL inside the message is a byte like any other. */
    n = util_log_format_line(buf, sizeof(buf), UTIL_LOG_TEXT, T_MS, UTIL_LOG_WARN, "redis", "a\0b", 3, 0);
    assert_string_equal(buf, "ts=2026-11-22T11:02:28.123Z level=warn component=redis msg=\"a\\u0000b\"\n");
}

static void test_component(void **state)
{
    (void)state;
    char buf[512];
    line(buf, sizeof(buf), UTIL_LOG_TEXT, "files.sweep", "m", 0);
    assert_non_null(strstr(buf, " component=files.sweep msg="));
    line(buf, sizeof(buf), UTIL_LOG_TEXT, "a b=\"c\n", "m", 0);
    assert_non_null(strstr(buf, " component=a_b__c_ msg="));
    line(buf, sizeof(buf), UTIL_LOG_TEXT, NULL, "m", 0);
    assert_non_null(strstr(buf, " component=hydrant msg="));
    line(buf, sizeof(buf), UTIL_LOG_TEXT, "", "m", 0);
    assert_non_null(strstr(buf, " component=hydrant msg="));
    char longname[100];
    memset(longname, 'c', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    line(buf, sizeof(buf), UTIL_LOG_TEXT, longname, "m", 0);
    char expect[UTIL_LOG_COMPONENT_MAX + 32];
    snprintf(expect, sizeof(expect), " component=%.*s msg=", UTIL_LOG_COMPONENT_MAX, longname);
    assert_non_null(strstr(buf, expect));
}

static void test_truncation(void **state)
{
    (void)state;
    char buf[UTIL_LOG_LINE_MAX], msg[UTIL_LOG_LINE_MAX];
    const char *prefix = "ts=2026-11-22T11:02:28.123Z level=warn component=c msg=\"";
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    /* Too long for the buffer: cut, marked, still one whole line that fits. */
    size_t n = line(buf, 256, UTIL_LOG_TEXT, "c", big, 0);
    assert_true(n > 0 && n < 256);
    parse_text(buf, n, prefix, msg, sizeof(msg));
    size_t mlen = strlen(msg), marker = strlen(UTIL_LOG_TRUNCATED);
    assert_string_equal(msg + mlen - marker, UTIL_LOG_TRUNCATED);
    assert_true(mlen > marker + 100); /* the room was used */
    /* Quotes escape to two bytes each: the cut never splits an escape. */
    memset(big, '"', 4999);
    for (size_t cap = UTIL_LOG_LINE_MIN; cap < 300; cap++) {
        n = line(buf, cap, UTIL_LOG_TEXT, "c", big, 0);
        assert_true(n > 0 && n < cap);
        parse_text(buf, n, prefix, msg, sizeof(msg));
        mlen = strlen(msg);
        assert_string_equal(msg + mlen - marker, UTIL_LOG_TRUNCATED);
        for (size_t i = 0; i < mlen - marker; i++)
            assert_int_equal(msg[i], '"');
    }
    /* JSON: the closing brace is kept. */
    n = line(buf, 200, UTIL_LOG_JSON, "c", big, 0);
    assert_true(n > 0 && n < 200);
    assert_string_equal(buf + n - strlen(UTIL_LOG_TRUNCATED "\"}\n"), UTIL_LOG_TRUNCATED "\"}\n");
    free(big);
    /* Already cut by the caller: marked although it fits. */
    line(buf, sizeof(buf), UTIL_LOG_TEXT, "c", "head", 1);
    assert_non_null(strstr(buf, "msg=\"head" UTIL_LOG_TRUNCATED "\"\n"));
    /* A buffer that cannot hold a line at all. */
    assert_int_equal(line(buf, 40, UTIL_LOG_TEXT, "c", "m", 0), 0);
}

static void test_levels(void **state)
{
    (void)state;
    util_log_level_t level;
    util_log_encoding_t enc;
    const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(util_log_level_name((util_log_level_t)i), names[i]);
        assert_int_equal(util_log_level_parse(names[i], &level), 0);
        assert_int_equal(level, i);
    }
    assert_int_equal(util_log_level_parse("WARN", &level), 0);
    assert_int_equal(level, UTIL_LOG_WARN);
    assert_int_equal(util_log_level_parse("warning", &level), -1);
    assert_int_equal(util_log_level_parse("", &level), -1);
    assert_int_equal(util_log_level_parse(NULL, &level), -1);
    assert_int_equal(util_log_encoding_parse("json", &enc), 0);
    assert_int_equal(enc, UTIL_LOG_JSON);
    assert_int_equal(util_log_encoding_parse("Text", &enc), 0);
    assert_int_equal(enc, UTIL_LOG_TEXT);
    assert_int_equal(util_log_encoding_parse("logfmt", &enc), -1);

    assert_true(util_log_enabled(UTIL_LOG_INFO)); /* the default threshold */
    assert_false(util_log_enabled(UTIL_LOG_DEBUG));
    util_log_configure(UTIL_LOG_WARN, UTIL_LOG_JSON);
    assert_false(util_log_enabled(UTIL_LOG_DEBUG));
    assert_false(util_log_enabled(UTIL_LOG_INFO));
    assert_true(util_log_enabled(UTIL_LOG_WARN));
    assert_true(util_log_enabled(UTIL_LOG_ERROR));
    assert_int_equal(util_log_encoding(), UTIL_LOG_JSON);
    util_log_configure(UTIL_LOG_DEBUG, UTIL_LOG_TEXT);
    assert_true(util_log_enabled(UTIL_LOG_DEBUG));
    util_log_configure(UTIL_LOG_INFO, UTIL_LOG_TEXT);
}

/* fd 2 onto a fresh temporary file (returned) until stderr_read_back; *saved keeps the
 * real one. */
static int stderr_to_temp(int *saved)
{
    char path[] = "/tmp/test_util_log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    *saved = dup(2);
    assert_true(*saved >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    return fd;
}

/* fd 2 back, and what was written to it meanwhile into out (NUL-terminated). */
static void stderr_read_back(int fd, int saved, char *out, size_t cap)
{
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    ssize_t got = pread(fd, out, cap - 1, 0);
    close(fd);
    assert_true(got > 0);
    out[got] = '\0';
}

/* util_log itself, with fd 2 on a file: the lines under the threshold are not written, each
 * other is one line, a long message is cut to UTIL_LOG_LINE_MAX. */
static void test_util_log_writes(void **state)
{
    (void)state;
    int saved, fd = stderr_to_temp(&saved);
    util_log_configure(UTIL_LOG_WARN, UTIL_LOG_TEXT);
    util_log(UTIL_LOG_INFO, "test", "not %s", "written");
    util_log(UTIL_LOG_WARN, "test", "connection %d: %s", 3, "lost\n"); /* a trailing newline goes */
    char big[3 * UTIL_LOG_LINE_MAX];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    util_log(UTIL_LOG_ERROR, "test", "%s", big);
    util_log_configure(UTIL_LOG_INFO, UTIL_LOG_TEXT);
    char out[4 * UTIL_LOG_LINE_MAX];
    stderr_read_back(fd, saved, out, sizeof(out));
    assert_null(strstr(out, "not written"));
    char *second = strchr(out, '\n');
    assert_non_null(second);
    second++;
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    assert_non_null(strstr(out, " level=warn component=test msg=\"connection 3: lost\"\n"));
    size_t len2 = strlen(second);
    assert_true(len2 <= UTIL_LOG_LINE_MAX);
    assert_ptr_equal(strchr(second, '\n'), second + len2 - 1);
    assert_non_null(strstr(second, " level=error component=test msg=\"xxx"));
    assert_non_null(strstr(second, "x" UTIL_LOG_TRUNCATED "\"\n"));
}

typedef struct {
    char line[UTIL_LOG_LINE_MAX + 1];
    int calls;
} captured_t;

static void capture(void *arg, const char *line, size_t len)
{
    captured_t *c = arg;
    memcpy(c->line, line, len);
    c->line[len] = '\0';
    c->calls++;
}

/* A thread's sink (an event loop's ring) takes its lines instead of fd 2, and only that
 * thread's; NULL gives fd 2 back. */
static void *log_from_another_thread(void *arg)
{
    (void)arg;
    util_log(UTIL_LOG_WARN, "other", "from elsewhere");
    return NULL;
}

static void test_thread_sink(void **state)
{
    (void)state;
    int saved, fd = stderr_to_temp(&saved);
    captured_t c = {.calls = 0};
    util_log_set_thread_sink(capture, &c);
    util_log(UTIL_LOG_WARN, "loop", "notice %d", 7);
    util_log(UTIL_LOG_DEBUG, "loop", "under the threshold");
    pthread_t other;
    assert_int_equal(pthread_create(&other, NULL, log_from_another_thread, NULL), 0);
    pthread_join(other, NULL);
    util_log_set_thread_sink(NULL, NULL);
    util_log(UTIL_LOG_WARN, "loop", "back on stderr");
    char out[4 * UTIL_LOG_LINE_MAX];
    stderr_read_back(fd, saved, out, sizeof(out));
    assert_int_equal(c.calls, 1);
    assert_non_null(strstr(c.line, " level=warn component=loop msg=\"notice 7\"\n"));
    assert_null(strstr(out, "notice 7"));
    assert_non_null(strstr(out, "msg=\"from elsewhere\""));
    assert_non_null(strstr(out, "msg=\"back on stderr\""));
}

static size_t vline(char *buf, util_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_log_vline(buf, level, "loop", fmt, ap);
    va_end(ap);
    return n;
}

/* The line for an event loop's ring: util_log's, or nothing under the threshold. */
static void test_vline(void **state)
{
    (void)state;
    char buf[UTIL_LOG_LINE_MAX];
    util_log_configure(UTIL_LOG_WARN, UTIL_LOG_JSON);
    assert_int_equal(vline(buf, UTIL_LOG_INFO, "%s", "quiet"), 0);
    size_t n = vline(buf, UTIL_LOG_ERROR, "connection from %s cut", "10.0.0.1\n");
    util_log_configure(UTIL_LOG_INFO, UTIL_LOG_TEXT);
    assert_int_equal(n, strlen(buf));
    assert_int_equal(strncmp(buf, "{\"ts\":\"", 7), 0);
    assert_non_null(strstr(buf, "\"level\":\"error\",\"component\":\"loop\","
                                "\"msg\":\"connection from 10.0.0.1\\u000a cut\"}\n"));
}

static void test_rfc3339(void **state)
{
    (void)state;
    char ts[UTIL_RFC3339_MS_LEN + 1];
    util_rfc3339_ms(T_MS, ts);
    assert_string_equal(ts, "2026-11-22T11:02:28.123Z");
    util_rfc3339_ms(0, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    util_rfc3339_ms(-5, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    util_rfc3339_ms(951782400999LL, ts); /* a leap day of a century divisible by 400 */
    assert_string_equal(ts, "2000-02-29T00:00:00.999Z");
}

static void test_json_escape_bounded(void **state)
{
    (void)state;
    char out[16];
    size_t used;
    /* "a\"b": 4 bytes escaped; with room for 2 the escape is not split. */
    assert_int_equal(util_json_escape(out, 2, "a\"b", 3, &used), 1);
    assert_int_equal(used, 1);
    assert_int_equal(util_json_escape(out, 7, "\x01\x02", 2, &used), 6);
    assert_int_equal(used, 1);
    assert_int_equal(util_json_escape(out, 2, "\xc3\xa9", 2, &used), 2);
    assert_int_equal(used, 2);
    assert_int_equal(util_json_escape(out, 1, "\xc3\xa9", 2, &used), 0);
    assert_int_equal(used, 0);
    assert_int_equal(util_json_escape(out, sizeof(out), "plain", 5, &used), 5);
    assert_int_equal(used, 5);
    assert_memory_equal(out, "plain", 5);
}

/* Valid UTF-8 that some log readers take as a line break (NEL, U+2028, U+2029) or terminals
 * as a control (the C1 range) is escaped; other characters pass as they are. */
static void test_json_escape_separators(void **state)
{
    (void)state;
    char out[64];
    size_t used;
    const char in[] = "a\xc2\x85"
                      "b\xc2\x9b[c\xe2\x80\xa8"
                      "d\xe2\x80\xa9"
                      "e\xc2\xa0"
                      "f\xe2\x80\xa6";
    size_t n = util_json_escape(out, sizeof(out), in, sizeof(in) - 1, &used);
    assert_int_equal(used, sizeof(in) - 1);
    const char want[] = "a\\u0085b\\u009b[c\\u2028d\\u2029e\xc2\xa0"
                        "f\xe2\x80\xa6";
    assert_int_equal(n, sizeof(want) - 1);
    assert_memory_equal(out, want, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line),
        cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_component),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_util_log_writes),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_vline),
        cmocka_unit_test(test_json_escape_bounded),
        cmocka_unit_test(test_json_escape_separators),
        cmocka_unit_test(test_thread_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
