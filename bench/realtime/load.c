/* Shared by the realtime load clients (load.h). */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t load_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

long load_rss_kib(const int *pids, int npids)
{
    long sum = 0;
    for (int i = 0; i < npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", pids[i]);
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "VmRSS:", 6) == 0)
                sum += atol(line + 6);
        if (f != NULL)
            fclose(f);
    }
    return sum;
}

void load_samples_push(load_samples_t *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t grown = s->cap != 0 ? s->cap * 2 : 65536;
        uint32_t *more = realloc(s->us, grown * sizeof(*s->us));
        if (more == NULL)
            return;
        s->us = more;
        s->cap = grown;
    }
    uint64_t us = ns / 1000;
    s->us[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int load_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void load_samples_sort(load_samples_t *s)
{
    if (s->n > 0)
        qsort(s->us, s->n, sizeof(*s->us), load_cmp_u32);
}

double load_samples_ms(const load_samples_t *s, double q)
{
    if (s->n == 0)
        return -1;
    size_t i = (size_t)(q * (double)s->n);
    return (i >= s->n ? s->us[s->n - 1] : s->us[i]) / 1000.0;
}

void load_samples_free(load_samples_t *s)
{
    free(s->us);
    *s = (load_samples_t){0};
}

int load_accounts(const char *path, load_account_t **out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = 0, cap = 1024;
    load_account_t *a = malloc((size_t)cap * sizeof(*a));
    char line[1024];
    while (a != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (n == cap) {
            load_account_t *more = realloc(a, (size_t)cap * 2 * sizeof(*a));
            if (more == NULL)
                break;
            a = more;
            cap *= 2;
        }
        if (sscanf(line, "%599s %39s", a[n].token, a[n].room) == 2)
            n++;
    }
    fclose(f);
    if (a == NULL || n == 0) {
        free(a);
        return -1;
    }
    *out = a;
    return n;
}

int load_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

uint64_t load_created_at_ns(const char *text, size_t len)
{
    static const char key[] = "\"created_at\"";
    const char *at = memmem(text, len, key, sizeof(key) - 1);
    if (at == NULL)
        return 0;
    const char *after = at + sizeof(key) - 1;
    const char *quote = memchr(after, '"', len - (size_t)(after - text));
    struct tm tm = {0};
    int ms = 0;
    if (quote == NULL || sscanf(quote + 1, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                                &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t)timegm(&tm) * 1000000000ull + (uint64_t)ms * 1000000ull;
}

uint64_t load_sent_ns(const char *text, size_t len)
{
    static const char marker[] = "\"t="; /* the text's start, however the JSON is spaced */
    const char *at = memmem(text, len, marker, sizeof(marker) - 1);
    return at != NULL ? strtoull(at + sizeof(marker) - 1, NULL, 10) : 0;
}
