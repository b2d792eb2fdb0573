#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/http.h"

static void test_envelope(void **state)
{
    (void)state;
    char *body = http_error_body("not_found", "no such route", NULL);
    assert_string_equal(body, "{\"error\":{\"code\":\"not_found\",\"message\":\"no such route\"}}");
    free(body);
    body = http_error_body("validation_failed", "bad \"input\"", json_pack("{s:s}", "password", "too short"));
    assert_string_equal(body, "{\"error\":{\"code\":\"validation_failed\",\"message\":\"bad \\\"input\\\"\","
                              "\"details\":{\"password\":\"too short\"}}}");
    free(body);
}

static void test_request_id_sanity(void **state)
{
    (void)state;
    char id[200];
    assert_false(http_request_id_is_sane("", 0));
    assert_true(http_request_id_is_sane("a", 1));
    memset(id, 'x', 129);
    assert_true(http_request_id_is_sane(id, 128));
    assert_false(http_request_id_is_sane(id, 129));
    const char *bad[] = {"a b", "a/b", "a\nb", "é", "a;b", "<x>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(http_request_id_is_sane(bad[i], strlen(bad[i])));
    assert_true(http_request_id_is_sane("Az09._-", 7));
}

static void test_generated_ids(void **state)
{
    (void)state;
    char a[33], b[33];
    http_request_id_generate(a);
    http_request_id_generate(b);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
    assert_true(http_request_id_is_sane(a, 32));
}

static char *const trusted[] = {"10.0.0.1", "10.0.0.2", "::1"};

static const char *client(const char *peer, const char *xff)
{
    static char out[64];
    http_client_address(peer, xff, xff != NULL ? strlen(xff) : 0, trusted, 3, out, sizeof(out));
    return out;
}

static void test_client_address(void **state)
{
    (void)state;
    /* An untrusted peer's header is ignored. */
    assert_string_equal(client("203.0.113.9", "1.2.3.4"), "203.0.113.9");
    /* A trusted proxy: the right-most untrusted entry. */
    assert_string_equal(client("10.0.0.1", "1.2.3.4"), "1.2.3.4");
    assert_string_equal(client("10.0.0.1", "6.6.6.6, 1.2.3.4"), "1.2.3.4");
    assert_string_equal(client("10.0.0.1", "1.2.3.4, 10.0.0.2"), "1.2.3.4");
    assert_string_equal(client("::1", "2001:db8::1"), "2001:db8::1");
    /* Garbage stops the walk at the last address we could trust. */
    assert_string_equal(client("10.0.0.1", "1.2.3.4, not-an-ip"), "10.0.0.1");
    assert_string_equal(client("10.0.0.1", NULL), "10.0.0.1");
    /* Everything trusted: the left-most hop. */
    assert_string_equal(client("10.0.0.1", "10.0.0.2"), "10.0.0.2");
    /* IPv4-mapped forms compare equal and print as IPv4. */
    assert_string_equal(client("::ffff:10.0.0.1", "1.2.3.4"), "1.2.3.4");
    char huge[5000];
    memset(huge, '1', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_string_equal(client("10.0.0.1", huge), "10.0.0.1");
}

/* A request whose client has gone (h2o NULL): answering it records the status only. */
static int pg_failed(db_status_t status, int *answered)
{
    http_loop_t loop;
    memset(&loop, 0, sizeof(loop));
    http_request_t r = {.loop = &loop, .refs = 1};
    db_reply_t reply = {.status = status};
    int failed = http_pg_failed(&r, &reply);
    *answered = r.responded ? r.status : 0;
    return failed;
}

static void test_pg_failed(void **state)
{
    int answered;
    assert_int_equal(pg_failed(DB_OK, &answered), 0);
    assert_int_equal(answered, 0); /* the caller answers */
    assert_int_equal(pg_failed(DB_ERR_UNAVAILABLE, &answered), 1);
    assert_int_equal(answered, 503);
    assert_int_equal(pg_failed(DB_ERR_OVERLOADED, &answered), 1);
    assert_int_equal(answered, 503);
    assert_int_equal(pg_failed(DB_ERR_QUERY, &answered), 1);
    assert_int_equal(answered, 500);
    assert_int_equal(pg_failed(DB_ERR_INDOUBT, &answered), 1);
    assert_int_equal(answered, 500); /* 503 would promise that nothing changed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope),      cmocka_unit_test(test_request_id_sanity),
        cmocka_unit_test(test_generated_ids), cmocka_unit_test(test_client_address),
        cmocka_unit_test(test_pg_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
