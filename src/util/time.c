/*
 * Deadlines for the threads that wait on condition variables (the log writer, job workers),
 * the wall clock, and its RFC 3339 form for log lines.
 */
#include "util/util.h"

struct timespec util_deadline_after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int64_t util_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
 * civil_from_days). */
static void util_civil_date(int64_t days, int *year, unsigned *month, unsigned *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)((int64_t)yoe + era * 400 + (*month <= 2));
}

/* v in exactly width digits, zero-padded. */
static char *util_padded(char *out, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        out[i] = (char)('0' + v % 10);
    return out + width;
}

void util_rfc3339_ms(int64_t unix_ms, char out[UTIL_RFC3339_MS_LEN + 1])
{
    int64_t ms = unix_ms > 0 ? unix_ms : 0, secs = ms / 1000, of_day = secs % 86400;
    int year;
    unsigned month, day;
    util_civil_date(secs / 86400, &year, &month, &day);
    char *o = util_padded(out, (unsigned)year % 10000, 4);
    *o++ = '-';
    o = util_padded(o, month, 2);
    *o++ = '-';
    o = util_padded(o, day, 2);
    *o++ = 'T';
    o = util_padded(o, (unsigned)(of_day / 3600), 2);
    *o++ = ':';
    o = util_padded(o, (unsigned)(of_day / 60 % 60), 2);
    *o++ = ':';
    o = util_padded(o, (unsigned)(of_day % 60), 2);
    *o++ = '.';
    o = util_padded(o, (unsigned)(ms % 1000), 3);
    *o++ = 'Z';
    *o = '\0';
}
