/*
 * The notification stream reader of the realtime tests (harness_sse.h).
 */
#include "harness_sse.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses the complete events in buf (blocks ending with a blank line; comments skipped). */
static void sse_parse(harness_sse_t *rd)
{
    rd->nevents = 0;
    char *copy = strndup(rd->buf, rd->len), *save = NULL;
    if (copy == NULL)
        return;
    char *end = strstr(copy, "\n\n");
    for (char *block = copy; end != NULL && rd->nevents < HARNESS_SSE_MAX_EVENTS;
         block = end + 2, end = strstr(block, "\n\n")) {
        *end = '\0';
        long long id = -1;
        char name[32] = "", data[HARNESS_SSE_DATA_MAX] = "";
        for (char *line = strtok_r(block, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "id: ", 4) == 0)
                id = atoll(line + 4);
            else if (strncmp(line, "event: ", 7) == 0)
                snprintf(name, sizeof(name), "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                snprintf(data, sizeof(data), "%s", line + 6);
        }
        if (name[0] == '\0')
            continue; /* a comment (heartbeat) */
        rd->ids[rd->nevents] = id;
        snprintf(rd->names[rd->nevents], sizeof(rd->names[0]), "%s", name);
        snprintf(rd->data[rd->nevents++], sizeof(rd->data[0]), "%s", data);
    }
    free(copy);
}

static size_t sse_write(char *ptr, size_t size, size_t n, void *arg)
{
    harness_sse_t *rd = arg;
    size_t len = size * n;
    if (rd->len + len >= sizeof(rd->buf))
        return 0;
    memcpy(rd->buf + rd->len, ptr, len);
    rd->len += len;
    atomic_store(&rd->started, 1);
    sse_parse(rd);
    return rd->nevents >= rd->want ? 0 : len; /* 0 ends the transfer */
}

static void *sse_main(void *arg)
{
    harness_sse_t *rd = arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    for (int i = 0; rd->headers[i] != NULL; i++)
        list = curl_slist_append(list, rd->headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, rd->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                     rd->protocol == HARNESS_HTTP2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sse_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, rd);
    rd->curl_code = (int)curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rd->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    atomic_store(&rd->finished, 1);
    return NULL;
}

harness_sse_t *harness_sse_open(const harness_server_t *s, int protocol, const char *auth, const char *extra,
                                int want)
{
    harness_sse_t *rd = calloc(1, sizeof(*rd));
    if (rd == NULL)
        return NULL;
    snprintf(rd->url, sizeof(rd->url), "%s/api/v1/notifications/stream",
             protocol == HARNESS_HTTP2 ? s->https_base : s->http_base);
    rd->headers[0] = auth;
    rd->headers[1] = extra;
    rd->protocol = protocol;
    rd->want = want;
    if (pthread_create(&rd->thread, NULL, sse_main, rd) != 0) {
        free(rd);
        return NULL;
    }
    for (int i = 0; i < 500 && !atomic_load(&rd->started) && !atomic_load(&rd->finished); i++)
        usleep(10000);
    if (!atomic_load(&rd->started)) {
        pthread_join(rd->thread, NULL);
        free(rd);
        return NULL;
    }
    return rd;
}

void harness_sse_join(harness_sse_t *rd)
{
    pthread_join(rd->thread, NULL);
}
