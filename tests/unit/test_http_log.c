#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

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
}

static void test_too_small(void **state)
{
    (void)state;
    char buf[40];
    http_log_entry_t e = entry();
    assert_int_equal(http_log_format(&e, buf, sizeof(buf)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_line),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_too_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
