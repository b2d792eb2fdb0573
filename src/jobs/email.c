/*
 * Email jobs (kinds email.confirmation and email.password_reset): the message is built from
 * the kind's templates with a link under public-url and sent with libcurl over SMTP.
 *
 * Payload: {"to": "address", "token": "one-time token"}. A connection failure or a 4xx reply
 * is transient (retried); a 5xx reply is permanent (dead, with the server's reply). Neither
 * the token nor the message body is ever logged or stored in the job's error.
 */
#include "jobs/jobs_internal.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/email_smtp.h"
#include "jobs/mail.h"

typedef struct {
    const char *kind;
    const char *link_path; /* appended to public-url, then the URL-encoded token */
    const char *expires;
} email_kind_t;

static const email_kind_t email_kinds[] = {
    {"email.confirmation", "/api/v1/auth/confirm?token=", "24 hours"},
    {"email.password_reset", "/reset-password?token=", "1 hour"},
};

static size_t email_read(char *buffer, size_t size, size_t nitems, void *arg)
{
    email_upload_t *up = arg;
    size_t room = size * nitems, left = up->len - up->sent;
    size_t n = left < room ? left : room;
    memcpy(buffer, up->data + up->sent, n);
    up->sent += n;
    return n;
}

/* Keeps the server's first refusal (e.g. "550 5.1.1 no such user") for the job's error;
 * later lines (the reply to QUIT) would hide it. */
int jobs_email_debug(CURL *curl, curl_infotype type, char *data, size_t size, void *arg)
{
    email_upload_t *up = arg;
    if (type != CURLINFO_HEADER_IN || size < 3 || up->reply[0] != '\0' || (data[0] != '4' && data[0] != '5'))
        return 0;
    size_t n = size < sizeof(up->reply) - 1 ? size : sizeof(up->reply) - 1;
    memcpy(up->reply, data, n);
    up->reply[n] = '\0';
    up->reply[strcspn(up->reply, "\r\n")] = '\0';
    return 0;
}

/* Refuses to go on while the pool stops: the job is released and sent by someone else. */
static int email_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    return jobs_stopping(arg) ? 1 : 0;
}

/* Builds the message from the templates. Returns a malloc'd message, or NULL with a
 * permanent reason in run->error. */
static char *email_build(jobs_run_t *run, const email_kind_t *kind, const char *to, const char *token,
                         size_t *len)
{
    const cfg_t *cfg = run->cfg;
    jobs_mail_template_t t = {0};
    char err[256];
    if (jobs_mail_template_load(&t, cfg->smtp.templates_dir, kind->kind, err, sizeof(err)) != 0) {
        snprintf(run->error, sizeof(run->error), "template: %s", err);
        return NULL;
    }
    char *escaped = curl_easy_escape(NULL, token, 0);
    size_t link_len = strlen(cfg->public_url) + strlen(kind->link_path) + (escaped ? strlen(escaped) : 0) + 1;
    char *link = malloc(link_len);
    char *message = NULL, *subject = NULL, *text = NULL, *html = NULL;
    if (escaped != NULL && link != NULL) {
        snprintf(link, link_len, "%s%s%s", cfg->public_url, kind->link_path, escaped);
        jobs_mail_var_t vars[] = {
            {"link", link}, {"email", to}, {"app", "hydrant"}, {"expires", kind->expires}};
        subject = jobs_mail_render(t.subject, vars, 4, 0, err, sizeof(err));
        text = jobs_mail_render(t.text, vars, 4, 0, err, sizeof(err));
        html = jobs_mail_render(t.html, vars, 4, 1, err, sizeof(err));
        unsigned char random[16];
        if (subject != NULL && text != NULL && html != NULL &&
            util_random_bytes(random, sizeof(random)) == 0) {
            jobs_mail_message_t m = {cfg->smtp.from, to, subject, text, html, time(NULL), random};
            message = jobs_mail_compose(&m, len, err, sizeof(err));
        }
        if (message == NULL)
            snprintf(run->error, sizeof(run->error), "composing the message: %s", err);
    } else {
        snprintf(run->error, sizeof(run->error), "out of memory");
    }
    free(subject);
    free(text);
    free(html);
    free(link);
    curl_free(escaped);
    jobs_mail_template_free(&t);
    return message;
}

static void email_configure(CURL *curl, const cfg_smtp_t *smtp, const char *from, struct curl_slist *rcpt,
                            email_upload_t *up, jobs_run_t *run, char *errbuf)
{
    curl_easy_setopt(curl, CURLOPT_URL, smtp->url);
    curl_easy_setopt(curl, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, email_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, up);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->len);
    curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, jobs_email_debug);
    curl_easy_setopt(curl, CURLOPT_DEBUGDATA, up);
    curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L); /* feeds jobs_email_debug only; nothing is printed */
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, email_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, run);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)smtp->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)smtp->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    static const long use_ssl[] = {CURLUSESSL_NONE, CURLUSESSL_TRY, CURLUSESSL_ALL};
    if (strncmp(smtp->url, "smtp://", 7) == 0)
        curl_easy_setopt(curl, CURLOPT_USE_SSL, use_ssl[smtp->starttls]);
    if (smtp->ca_file != NULL && smtp->ca_file[0] != '\0')
        curl_easy_setopt(curl, CURLOPT_CAINFO, smtp->ca_file);
}

/* The job's error is stored as JSON and logged on one line: a byte that is not printable
 * ASCII (a Latin-1 server's umlaut, a control character, a UTF-8 sequence cut at 255 bytes)
 * becomes '?', or jansson would refuse the text and the job would be dead without a reason. */
static void email_printable(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

/* Maps curl's result and the SMTP reply code to an outcome, with the reply in the error. */
jobs_outcome_t jobs_email_outcome(jobs_run_t *run, CURLcode rc, long code, const email_upload_t *up,
                                  const char *errbuf)
{
    if (rc == CURLE_OK && code >= 200 && code < 400)
        return JOBS_DONE;
    if (rc == CURLE_ABORTED_BY_CALLBACK)
        return JOBS_RELEASE;
    const char *detail =
        up->reply[0] != '\0' ? up->reply : (errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    snprintf(run->error, sizeof(run->error), "smtp %ld: %s", code, detail);
    email_printable(run->error);
    return code >= 500 && code < 600 ? JOBS_PERMANENT : JOBS_RETRY;
}

static jobs_outcome_t email_send(jobs_run_t *run, const char *to, const char *message, size_t len)
{
    const cfg_smtp_t *smtp = &run->cfg->smtp;
    char from[256];
    if (jobs_mail_from_address(smtp->from, from, sizeof(from)) != 0) {
        snprintf(run->error, sizeof(run->error), "smtp.from is not a valid sender");
        return JOBS_PERMANENT;
    }
    CURL *curl = curl_easy_init();
    char rcpt_line[300];
    snprintf(rcpt_line, sizeof(rcpt_line), "<%s>", to);
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_line);
    if (curl == NULL || rcpt == NULL) {
        curl_easy_cleanup(curl);
        curl_slist_free_all(rcpt);
        snprintf(run->error, sizeof(run->error), "out of memory");
        return JOBS_RETRY;
    }
    email_upload_t up = {.data = message, .len = len};
    char errbuf[CURL_ERROR_SIZE] = "";
    char from_line[300];
    snprintf(from_line, sizeof(from_line), "<%s>", from);
    email_configure(curl, smtp, from_line, rcpt, &up, run, errbuf);
    CURLcode rc = curl_easy_perform(curl);
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    jobs_outcome_t outcome = jobs_email_outcome(run, rc, code, &up, errbuf);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(curl);
    return outcome;
}

static jobs_outcome_t email_handler(jobs_run_t *run)
{
    const email_kind_t *kind = run->kind_data;
    const char *to = json_string_value(json_object_get(run->payload, "to"));
    const char *token = json_string_value(json_object_get(run->payload, "token"));
    if (to == NULL || !util_email_valid(to, strlen(to), 0) || token == NULL || token[0] == '\0' ||
        strlen(token) > 512) {
        snprintf(run->error, sizeof(run->error), "payload needs a valid \"to\" address and a \"token\"");
        return JOBS_PERMANENT;
    }
    size_t len = 0;
    char *message = email_build(run, kind, to, token, &len);
    if (message == NULL)
        return JOBS_PERMANENT;
    jobs_outcome_t outcome = email_send(run, to, message, len);
    free(message);
    if (outcome == JOBS_DONE)
        run->result = json_pack("{s:s}", "to", to);
    return outcome;
}

int jobs_email_register(jobs_registry_t *registry)
{
    for (size_t i = 0; i < sizeof(email_kinds) / sizeof(email_kinds[0]); i++)
        if (jobs_registry_add(registry, email_kinds[i].kind, email_handler, (void *)&email_kinds[i]) != 0)
            return -1;
    return 0;
}
