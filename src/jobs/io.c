/*
 * Small pieces the job kinds share (email templates, file analysis): error text and whole
 * reads.
 */
#include "jobs/jobs_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void jobs_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    int saved = errno; /* callers tell a missing file by errno */
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    errno = saved;
}

ssize_t jobs_read_full(int fd, void *buf, size_t cap)
{
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, (char *)buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    return (ssize_t)len;
}
