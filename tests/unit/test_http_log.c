#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/http.h"

static http_log_entry_t entry(void)
{
    return (http_log_entry_t){.request_id = "abc",
                              .method = "GET",
                              .route = "/files/{id}",
                              .status = 200,
                              .bytes = 12,
                              .duration_us = 345,
                              .protocol = "HTTP/2",
                              .client = "127.0.0.1",
                              .unix_ms = 1795345348123LL};
}

static void test_exact_line(void **state)
{
    (void)state;
    char buf[512];
    http_log_entry_t e = entry();
    int n = http_log_format(&e, buf, sizeof(buf));
    const char *want = "{\"time\":\"2026-11-22T11:02:28.123Z\",\"request_id\":\"abc\",\"method\":\"GET\","
                       "\"route\":\"/files/{id}\",\"status\":200,\"bytes\":12,\"duration_us\":345,"
                       "\"protocol\":\"HTTP/2\",\"client\":\"127.0.0.1\"}\n";
    assert_string_equal(buf, want);
    assert_int_equal(n, (int)strlen(want));
}

static void test_escaping(void **state)
{
    (void)state;
    char buf[512];
    http_log_entry_t e = entry();
    e.method = "G\"E\\T\n\x01";
    e.client = "bad\xff\xfe";
    assert_true(http_log_format(&e, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"method\":\"G\\\"E\\\\T\\u000a\\u0001\""));
    assert_non_null(strstr(buf, "\"client\":\"bad\xef\xbf\xbd\xef\xbf\xbd\""));
    json_error_t err;
    json_t *doc = json_loads(buf, 0, &err);
    assert_non_null(doc);
    json_decref(doc);
    /* a surrogate and an overlong form are not UTF-8 either: a byte each, still valid JSON */
    e.client = "s\xed\xa0\x80o\xe0\x80\xaf\xc3\xa9";
    assert_true(http_log_format(&e, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(
        buf,
        "\"client\":\"s\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdo\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9\""));
    doc = json_loads(buf, 0, &err);
    assert_non_null(doc);
    json_decref(doc);
}

static void test_too_small(void **state)
{
    (void)state;
    char buf[40];
    http_log_entry_t e = entry();
    assert_int_equal(http_log_format(&e, buf, sizeof(buf)), -1);
}

/* The formatter's own calendar (no gmtime on the loops) agrees with gmtime_r, leap days,
 * century years and the last millisecond of a day included. */
static void test_time_matches_gmtime(void **state)
{
    (void)state;
    const int64_t samples[] = {0,
                               951782400000LL,  /* 2000-02-29 */
                               951868800000LL,  /* 2000-03-01 */
                               1709164800123LL, /* 2024-02-29 */
                               1735689599999LL, /* 2024-12-31T23:59:59.999 */
                               4107542399999LL, /* 2100-02-28T23:59:59.999 */
                               4107542400000LL, /* 2100-03-01 */
                               1795345348123LL};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        http_log_entry_t e = entry();
        e.unix_ms = samples[i];
        char buf[512], want[64];
        assert_true(http_log_format(&e, buf, sizeof(buf)) > 0);
        time_t secs = (time_t)(samples[i] / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        size_t n = strftime(want, sizeof(want), "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want + n, sizeof(want) - n, ".%03dZ\"", (int)(samples[i] % 1000));
        assert_memory_equal(buf, want, strlen(want));
    }
}

/* The date-time is kept per second: lines of one second share it, and any other second
 * (later or earlier: clocks step) gets its own. */
static void test_time_across_seconds(void **state)
{
    (void)state;
    const struct {
        int64_t ms;
        const char *want;
    } lines[] = {
        {1795345348123LL, "{\"time\":\"2026-11-22T11:02:28.123Z\""},
        {1795345348999LL, "{\"time\":\"2026-11-22T11:02:28.999Z\""},
        {1795345349000LL, "{\"time\":\"2026-11-22T11:02:29.000Z\""},
        {1795345348001LL, "{\"time\":\"2026-11-22T11:02:28.001Z\""},
        {1795345348001LL + 86400000LL, "{\"time\":\"2026-11-23T11:02:28.001Z\""},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        http_log_entry_t e = entry();
        e.unix_ms = lines[i].ms;
        char buf[512];
        assert_true(http_log_format(&e, buf, sizeof(buf)) > 0);
        assert_memory_equal(buf, lines[i].want, strlen(lines[i].want));
    }
}

/* Plain runs and escapes interleaved: each escape lands where its byte was. */
static void test_runs_and_escapes(void **state)
{
    (void)state;
    char buf[512];
    http_log_entry_t e = entry();
    e.method = "ab\"cd\\ef\tgh\x7fij\xc3\xa9kl";
    assert_true(http_log_format(&e, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"method\":\"ab\\\"cd\\\\ef\\u0009gh\\u007fij\xc3\xa9kl\","));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_line),          cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_too_small),           cmocka_unit_test(test_time_matches_gmtime),
        cmocka_unit_test(test_time_across_seconds), cmocka_unit_test(test_runs_and_escapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
