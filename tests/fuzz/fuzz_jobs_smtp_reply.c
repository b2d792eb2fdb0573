/*
 * libFuzzer target for the SMTP reply handling of email jobs. libcurl speaks SMTP; hydrant
 * keeps the server's first refusal from what curl passes to its debug callback
 * (jobs_email_debug) and maps curl's result and the reply code to the job's outcome and
 * error (jobs_email_outcome). That is what is fuzzed: the server's reply lines and curl's
 * error text, with any result and code.
 *
 * Input: 4 bytes (curl's result, the reply code's two bytes, one choosing the lines' info
 * types), then the lines curl would pass, separated by '\n' (each kept with its "\r\n"), the
 * last one curl's error buffer. The kept reply is the first 4xx/5xx line; the outcome follows
 * the code; the error, which is stored in the job (JSON) and logged, is valid UTF-8 on one line.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "jobs/email_smtp.h"

static jobs_outcome_t expected(CURLcode rc, long code)
{
    if (rc == CURLE_OK && code >= 200 && code < 400)
        return JOBS_DONE;
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return JOBS_RELEASE;
    return code >= 500 && code < 600 ? JOBS_PERMANENT : JOBS_RETRY;
}

static void check_error_text(const char *error, size_t size)
{
    fuzz_check(memchr(error, '\0', size) != NULL);
    json_t *s = json_string(error); /* NULL when not UTF-8: the job's error would be lost */
    fuzz_check(s != NULL);
    json_decref(s);
    for (const unsigned char *p = (const unsigned char *)error; *p != '\0'; p++)
        fuzz_check(*p >= 0x20 && *p != 0x7f);
}

/* Feeds one line as curl would (with its CRLF, in a buffer of exactly its size). */
static void feed(email_upload_t *up, curl_infotype type, const uint8_t *line, size_t len)
{
    char *copy = malloc(len + 2);
    fuzz_check(copy != NULL);
    memcpy(copy, line, len);
    memcpy(copy + len, "\r\n", 2);
    char before[sizeof(up->reply)];
    memcpy(before, up->reply, sizeof(before));
    fuzz_check(jobs_email_debug(NULL, type, copy, len + 2, up) == 0);
    if (before[0] != '\0') { /* the first refusal stays */
        fuzz_check(memcmp(before, up->reply, sizeof(before)) == 0);
    } else if (up->reply[0] != '\0') {
        fuzz_check(type == CURLINFO_HEADER_IN && (line[0] == '4' || line[0] == '5'));
        fuzz_check(strlen(up->reply) < sizeof(up->reply) && strpbrk(up->reply, "\r\n") == NULL);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    CURLcode rc = (CURLcode)(data[0] % (CURL_LAST + 1));
    long code = (long)(data[1] << 8 | data[2]) % 1000;
    uint8_t types = data[3];
    data += 4, size -= 4;
    const uint8_t *last = memrchr(data, '\n', size);
    const uint8_t *err_text = last != NULL ? last + 1 : data;
    size_t lines = last != NULL ? (size_t)(last - data) : 0, err_len = size - (size_t)(err_text - data);
    email_upload_t up = {0};
    for (int i = 0; lines > 0; i++) {
        size_t len;
        const uint8_t *line = fuzz_next(&data, &lines, '\n', &len);
        feed(&up, (types >> (i % 8)) & 1 ? CURLINFO_TEXT : CURLINFO_HEADER_IN, line, len);
    }
    char errbuf[CURL_ERROR_SIZE];
    size_t n = err_len < sizeof(errbuf) - 1 ? err_len : sizeof(errbuf) - 1;
    memcpy(errbuf, err_text, n);
    errbuf[n] = '\0';
    jobs_run_t run = {0};
    fuzz_check(jobs_email_outcome(&run, rc, code, &up, errbuf) == expected(rc, code));
    if (expected(rc, code) == JOBS_PERMANENT || expected(rc, code) == JOBS_RETRY)
        check_error_text(run.error, sizeof(run.error));
    return 0;
}
