/*
 * The SMTP sender's handling of the server's replies (email.c), declared apart so that
 * tests/fuzz reaches it: libcurl speaks the protocol, hydrant only keeps the first 4xx/5xx
 * reply line that curl passes to its debug callback and maps curl's result and the reply code
 * to the job's outcome. Internal to src/jobs.
 */
#ifndef HYDRANT_JOBS_EMAIL_SMTP_H
#define HYDRANT_JOBS_EMAIL_SMTP_H

#include <curl/curl.h>

#include "jobs/jobs_internal.h"

/* The message being uploaded to curl, and the server's first refusal. */
typedef struct {
    const char *data;
    size_t len, sent;
    char reply[256];
} email_upload_t;

/* CURLOPT_DEBUGFUNCTION with arg an email_upload_t: keeps the first incoming reply line that
 * starts with 4 or 5 (CR/LF cut, at most 255 bytes). Always returns 0. */
int jobs_email_debug(CURL *curl, curl_infotype type, char *data, size_t size, void *arg);
/* DONE for a 2xx/3xx with CURLE_OK, RELEASE when the progress callback aborted, else
 * PERMANENT for a 5xx and RETRY otherwise, with "smtp CODE: reply" in run->error. */
jobs_outcome_t jobs_email_outcome(jobs_run_t *run, CURLcode rc, long code, const email_upload_t *up,
                                  const char *errbuf);

#endif
