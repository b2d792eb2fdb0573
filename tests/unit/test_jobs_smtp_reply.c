/*
 * The SMTP reply handling of email jobs (src/jobs/email_smtp.h): the first refusal kept from
 * curl's debug lines, the outcome of a result and a reply code, and an error text that jansson
 * takes (found by tests/fuzz/fuzz_jobs_smtp_reply.c: a Latin-1 reply or error buffer left the
 * job dead without its reason, since json_string refuses text that is not UTF-8).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "jobs/email_smtp.h"

static void line(email_upload_t *up, curl_infotype type, const char *text)
{
    jobs_email_debug(NULL, type, (char *)text, strlen(text), up);
}

static void test_first_refusal_kept(void **state)
{
    (void)state;
    email_upload_t up = {0};
    line(&up, CURLINFO_HEADER_IN, "220 mail.example ESMTP\r\n");
    line(&up, CURLINFO_TEXT, "550 not from the server\r\n");
    line(&up, CURLINFO_HEADER_IN, "550 5.1.1 <nobody@example.com>: no such user\r\n");
    line(&up, CURLINFO_HEADER_IN, "421 closing\r\n");
    assert_string_equal(up.reply, "550 5.1.1 <nobody@example.com>: no such user");
}

static void test_outcomes(void **state)
{
    (void)state;
    email_upload_t up = {0};
    jobs_run_t run = {0};
    assert_int_equal(jobs_email_outcome(&run, CURLE_OK, 250, &up, ""), JOBS_DONE);
    assert_int_equal(jobs_email_outcome(&run, CURLE_ABORTED_BY_CALLBACK, 0, &up, ""), JOBS_RELEASE);
    assert_int_equal(jobs_email_outcome(&run, CURLE_COULDNT_CONNECT, 0, &up, "refused"), JOBS_RETRY);
    assert_string_equal(run.error, "smtp 0: refused");
    line(&up, CURLINFO_HEADER_IN, "451 4.7.1 try later\r\n");
    assert_int_equal(jobs_email_outcome(&run, CURLE_RECV_ERROR, 451, &up, "RCPT failed: 451"), JOBS_RETRY);
    assert_string_equal(run.error, "smtp 451: 451 4.7.1 try later");
}

/* A reply in Latin-1 with a control character, and an error buffer with a cut UTF-8 sequence. */
static void test_error_is_printable_ascii(void **state)
{
    (void)state;
    email_upload_t up = {0};
    jobs_run_t run = {0};
    line(&up, CURLINFO_HEADER_IN, "550 Empf\xe4nger unbekannt\x1b[2J\r\n");
    assert_int_equal(jobs_email_outcome(&run, CURLE_SEND_ERROR, 550, &up, ""), JOBS_PERMANENT);
    assert_string_equal(run.error, "smtp 550: 550 Empf?nger unbekannt?[2J");
    email_upload_t none = {0};
    assert_int_equal(jobs_email_outcome(&run, CURLE_RECV_ERROR, 0, &none, "caf\xc3"), JOBS_RETRY);
    assert_string_equal(run.error, "smtp 0: caf?");
    json_t *s = json_string(run.error);
    assert_non_null(s);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_refusal_kept),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_error_is_printable_ascii),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
