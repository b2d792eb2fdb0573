/*
 * The table of settings: one row per setting, shared by the YAML reader and the
 * environment overrides, so a new setting is one line here.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define F(field) offsetof(cfg_t, field)
#define KIB      1024LL
#define GIB      (1024LL * 1024 * 1024)

const cfg_setting_t cfg_settings[] = {
    {"mode", "HYDRANT_MODE", CFG_T_MODE, F(mode), 0, 0},
    {"num-threads", "HYDRANT_THREADS", CFG_T_INT, F(num_threads), 0, 256},
    {"balance-connections", "HYDRANT_BALANCE_CONNECTIONS", CFG_T_BOOL, F(balance_connections), 0, 1},
    {"public-url", "HYDRANT_PUBLIC_URL", CFG_T_STR, F(public_url), 0, 0},
    {"access-log", "HYDRANT_ACCESS_LOG", CFG_T_STR, F(access_log), 0, 0},
    {"access-log-buffer", "HYDRANT_ACCESS_LOG_BUFFER", CFG_T_SIZE, F(access_log_buffer), 4 * KIB, GIB},
    {"openapi-file", "HYDRANT_OPENAPI_FILE", CFG_T_STR, F(openapi_file), 0, 0},
    {"database.url", "HYDRANT_DATABASE_URL", CFG_T_STR, F(database.url), 0, 0},
    {"database.pool-size", "HYDRANT_DATABASE_POOL_SIZE", CFG_T_INT, F(database.pool_size), 1, 64},
    {"database.max-queue", "HYDRANT_DATABASE_MAX_QUEUE", CFG_T_INT, F(database.max_queue), 1, 1000000},
    {"database.query-timeout-ms", "HYDRANT_DATABASE_QUERY_TIMEOUT_MS", CFG_T_INT,
     F(database.query_timeout_ms), 1, 600000},
    {"database.connect-timeout-ms", "HYDRANT_DATABASE_CONNECT_TIMEOUT_MS", CFG_T_INT,
     F(database.connect_timeout_ms), 1, 600000},
    {"redis.url", "HYDRANT_REDIS_URL", CFG_T_STR, F(redis.url), 0, 0},
    {"redis.command-timeout-ms", "HYDRANT_REDIS_COMMAND_TIMEOUT_MS", CFG_T_INT, F(redis.command_timeout_ms),
     1, 600000},
    {"redis.connect-timeout-ms", "HYDRANT_REDIS_CONNECT_TIMEOUT_MS", CFG_T_INT, F(redis.connect_timeout_ms),
     1, 600000},
    {"auth.jwt-secret", "HYDRANT_JWT_SECRET", CFG_T_STR, F(auth.jwt_secret), 0, 0},
    {"auth.jwt-issuer", "HYDRANT_JWT_ISSUER", CFG_T_STR, F(auth.jwt_issuer), 0, 0},
    {"auth.access-ttl", "HYDRANT_ACCESS_TTL", CFG_T_INT, F(auth.access_ttl_s), 1, 86400},
    {"auth.refresh-ttl", "HYDRANT_REFRESH_TTL", CFG_T_INT, F(auth.refresh_ttl_s), 1, 366 * 86400},
    {"auth.refresh-reuse-grace", "HYDRANT_REFRESH_REUSE_GRACE", CFG_T_INT, F(auth.refresh_reuse_grace_s), 0,
     3600},
    {"auth.refresh-retry-window", "HYDRANT_REFRESH_RETRY_WINDOW", CFG_T_INT, F(auth.refresh_retry_window_s),
     0, 3600},
    {"auth.require-email-confirmation", "HYDRANT_REQUIRE_EMAIL_CONFIRMATION", CFG_T_BOOL,
     F(auth.require_email_confirmation), 0, 1},
    {"auth.argon2-memory-kib", "HYDRANT_ARGON2_MEMORY_KIB", CFG_T_INT, F(auth.argon2_memory_kib), 8, 4194304},
    {"auth.argon2-iterations", "HYDRANT_ARGON2_ITERATIONS", CFG_T_INT, F(auth.argon2_iterations), 1, 100},
    {"auth.argon2-parallelism", "HYDRANT_ARGON2_PARALLELISM", CFG_T_INT, F(auth.argon2_parallelism), 1, 64},
    {"auth.principal-cache-entries", "HYDRANT_PRINCIPAL_CACHE_ENTRIES", CFG_T_INT,
     F(auth.principal_cache_entries), 0, 10000000},
    {"auth.principal-cache-ttl-ms", "HYDRANT_PRINCIPAL_CACHE_TTL_MS", CFG_T_INT,
     F(auth.principal_cache_ttl_ms), 1, 3600000},
    {"auth.api-key-last-used-interval", "HYDRANT_API_KEY_LAST_USED_INTERVAL", CFG_T_INT,
     F(auth.api_key_last_used_interval_s), 1, 86400},
    {"auth.limits.login-per-email", "HYDRANT_LIMIT_LOGIN_PER_EMAIL", CFG_T_INT, F(auth.limit_login_per_email),
     0, 1000000},
    {"auth.limits.login-per-address", "HYDRANT_LIMIT_LOGIN_PER_ADDRESS", CFG_T_INT,
     F(auth.limit_login_per_address), 0, 1000000},
    {"auth.limits.email-requests-per-address", "HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS", CFG_T_INT,
     F(auth.limit_email_requests_per_address), 0, 1000000},
    {"auth.limits.emails-per-address", "HYDRANT_LIMIT_EMAILS_PER_ADDRESS", CFG_T_INT,
     F(auth.limit_emails_per_address), 0, 1000000},
    {"smtp.url", "HYDRANT_SMTP_URL", CFG_T_STR, F(smtp.url), 0, 0},
    {"smtp.from", "HYDRANT_SMTP_FROM", CFG_T_STR, F(smtp.from), 0, 0},
    {"smtp.timeout-ms", "HYDRANT_SMTP_TIMEOUT_MS", CFG_T_INT, F(smtp.timeout_ms), 1, 600000},
    {"smtp.templates-dir", "HYDRANT_SMTP_TEMPLATES_DIR", CFG_T_STR, F(smtp.templates_dir), 0, 0},
    {"smtp.starttls", "HYDRANT_SMTP_STARTTLS", CFG_T_INT, F(smtp.starttls), 0, 2},
    {"smtp.ca-file", "HYDRANT_SMTP_CA_FILE", CFG_T_STR, F(smtp.ca_file), 0, 0},
    {"uploads.dir", "HYDRANT_UPLOAD_DIR", CFG_T_STR, F(uploads.dir), 0, 0},
    {"uploads.max-size", "HYDRANT_UPLOAD_MAX_SIZE", CFG_T_SIZE, F(uploads.max_size), 1, 64 * GIB},
    {"uploads.sweep-grace-seconds", "HYDRANT_UPLOAD_SWEEP_GRACE_SECONDS", CFG_T_INT, F(uploads.sweep_grace_s),
     60, 30 * 86400},
    {"uploads.spill-dir", "HYDRANT_UPLOAD_SPILL_DIR", CFG_T_STR, F(uploads.spill_dir), 0, 0},
    {"uploads.user-quota", "HYDRANT_UPLOAD_USER_QUOTA", CFG_T_SIZE, F(uploads.user_quota), 0, 1024 * GIB},
    {"jobs.workers-short", "HYDRANT_JOBS_WORKERS_SHORT", CFG_T_INT, F(jobs.workers_short), 0, 256},
    {"jobs.workers-medium", "HYDRANT_JOBS_WORKERS_MEDIUM", CFG_T_INT, F(jobs.workers_medium), 0, 256},
    {"jobs.workers-long", "HYDRANT_JOBS_WORKERS_LONG", CFG_T_INT, F(jobs.workers_long), 0, 256},
    {"jobs.lease-seconds", "HYDRANT_JOBS_LEASE_SECONDS", CFG_T_INT, F(jobs.lease_s), 1, 86400},
    {"jobs.enabled", "HYDRANT_JOBS_ENABLED", CFG_T_BOOL, F(jobs.enabled), 0, 1},
    {"jobs.batch-size", "HYDRANT_JOBS_BATCH_SIZE", CFG_T_INT, F(jobs.batch_size), 1, 1000},
    {"jobs.poll-interval-ms", "HYDRANT_JOBS_POLL_INTERVAL_MS", CFG_T_INT, F(jobs.poll_ms), 10, 3600000},
    {"jobs.max-attempts", "HYDRANT_JOBS_MAX_ATTEMPTS", CFG_T_INT, F(jobs.max_attempts), 1, 100},
    {"jobs.retry-base-ms", "HYDRANT_JOBS_RETRY_BASE_MS", CFG_T_INT, F(jobs.retry_base_ms), 1, 3600000},
    {"jobs.retry-max-ms", "HYDRANT_JOBS_RETRY_MAX_MS", CFG_T_INT, F(jobs.retry_max_ms), 1, 86400000},
    {"jobs.retention-days", "HYDRANT_JOBS_RETENTION_DAYS", CFG_T_INT, F(jobs.retention_days), 0, 36500},
    {"jobs.shutdown-timeout-ms", "HYDRANT_JOBS_SHUTDOWN_TIMEOUT_MS", CFG_T_INT, F(jobs.shutdown_timeout_ms),
     1, 86400000},
    {"limits.max-body", "HYDRANT_MAX_BODY", CFG_T_SIZE, F(limits.max_body), 64, GIB},
    {"limits.json-max-depth", "HYDRANT_JSON_MAX_DEPTH", CFG_T_INT, F(limits.json_max_depth), 1, 1000},
    {"limits.json-max-string", "HYDRANT_JSON_MAX_STRING", CFG_T_SIZE, F(limits.json_max_string), 1, GIB},
    {"limits.max-headers", "HYDRANT_MAX_HEADERS", CFG_T_INT, F(limits.max_headers), 1, 10000},
    {"limits.max-header-bytes", "HYDRANT_MAX_HEADER_BYTES", CFG_T_SIZE, F(limits.max_header_bytes), 256,
     1024 * 1024},
    {"limits.request-timeout-ms", "HYDRANT_REQUEST_TIMEOUT_MS", CFG_T_INT, F(limits.request_timeout_ms), 1,
     3600000},
    {"limits.idle-timeout-ms", "HYDRANT_IDLE_TIMEOUT_MS", CFG_T_INT, F(limits.idle_timeout_ms), 1, 3600000},
    {"limits.shutdown-timeout-ms", "HYDRANT_SHUTDOWN_TIMEOUT_MS", CFG_T_INT, F(limits.shutdown_timeout_ms), 1,
     3600000},
    /* Behind a load balancer: at least its checks' fall x inter plus a margin (README, "Deploying"). */
    {"limits.drain-delay-ms", "HYDRANT_DRAIN_DELAY_MS", CFG_T_INT, F(limits.drain_delay_ms), 0, 600000},
    {"limits.max-connections", "HYDRANT_MAX_CONNECTIONS", CFG_T_INT, F(limits.max_connections), 1, 10000000},
    {"limits.max-connections-per-address", "HYDRANT_MAX_CONNECTIONS_PER_ADDRESS", CFG_T_INT,
     F(limits.max_connections_per_address), 0, 10000000},
    {"limits.new-connections-per-address", "HYDRANT_NEW_CONNECTIONS_PER_ADDRESS", CFG_T_INT,
     F(limits.new_connections_per_address), 0, 10000000},
    {"limits.max-queries-per-connection", "HYDRANT_MAX_QUERIES_PER_CONNECTION", CFG_T_INT,
     F(limits.max_queries_per_connection), 0, 1000000},
    {"limits.max-cpu-jobs-per-connection", "HYDRANT_MAX_CPU_JOBS_PER_CONNECTION", CFG_T_INT,
     F(limits.max_cpu_jobs_per_connection), 0, 10000},
    {"limits.max-body-bytes-per-connection", "HYDRANT_MAX_BODY_BYTES_PER_CONNECTION", CFG_T_SIZE,
     F(limits.max_body_bytes_per_connection), 0, 64 * GIB},
    {"limits.max-body-bytes-per-address", "HYDRANT_MAX_BODY_BYTES_PER_ADDRESS", CFG_T_SIZE,
     F(limits.max_body_bytes_per_address), 0, 64 * GIB},
    {"limits.max-body-bytes-in-flight", "HYDRANT_MAX_BODY_BYTES_IN_FLIGHT", CFG_T_SIZE,
     F(limits.max_body_bytes_in_flight), 0, 1024 * GIB},
    {"limits.body-timeout-ms", "HYDRANT_BODY_TIMEOUT_MS", CFG_T_INT, F(limits.body_timeout_ms), 0, 3600000},
    {"limits.body-min-rate", "HYDRANT_BODY_MIN_RATE", CFG_T_SIZE, F(limits.body_min_rate), 0, GIB},
    {"limits.send-timeout-ms", "HYDRANT_SEND_TIMEOUT_MS", CFG_T_INT, F(limits.send_timeout_ms), 0, 3600000},
    {"limits.send-min-rate", "HYDRANT_SEND_MIN_RATE", CFG_T_SIZE, F(limits.send_min_rate), 0, GIB},
    /* Up to two years, the value Mozilla's generated configurations use. */
    {"tls.hsts-max-age", "HYDRANT_TLS_HSTS_MAX_AGE", CFG_T_INT, F(tls.hsts_max_age), 0, 63072000},
    {"realtime.heartbeat-ms", "HYDRANT_REALTIME_HEARTBEAT_MS", CFG_T_INT, F(realtime.heartbeat_ms), 10,
     60000},
    {"realtime.max-stream-seconds", "HYDRANT_REALTIME_MAX_STREAM_SECONDS", CFG_T_INT,
     F(realtime.max_stream_s), 1, 86400},
    {"realtime.poll-ms", "HYDRANT_REALTIME_POLL_MS", CFG_T_INT, F(realtime.poll_ms), 5, 10000},
    {"realtime.stream-queue", "HYDRANT_REALTIME_STREAM_QUEUE", CFG_T_SIZE, F(realtime.stream_queue), 4 * KIB,
     64 * 1024 * KIB},
    {"log.level", "HYDRANT_LOG_LEVEL", CFG_T_STR, F(log.level), 0, 0},
    {"log.format", "HYDRANT_LOG_FORMAT", CFG_T_STR, F(log.format), 0, 0},
    {NULL, NULL, 0, 0, 0, 0},
};

#define K(field) offsetof(cfg_job_kind_t, field)

const cfg_setting_t cfg_job_kind_settings[] = {
    {"max-attempts", NULL, CFG_T_INT, K(max_attempts), 1, 100},
    {"retry-base-ms", NULL, CFG_T_INT, K(retry_base_ms), 1, 3600000},
    {"retry-max-ms", NULL, CFG_T_INT, K(retry_max_ms), 1, 86400000},
    {NULL, NULL, 0, 0, 0, 0},
};

/* Sections that hold settings but are not settings themselves. */
static const char *const cfg_sections[] = {"database", "redis",  "auth", "auth.limits", "smtp", "uploads",
                                           "jobs",     "limits", "tls",  "realtime",    "log",  NULL};

const cfg_setting_t *cfg_setting_find(const char *path)
{
    for (const cfg_setting_t *s = cfg_settings; s->path != NULL; s++)
        if (strcmp(s->path, path) == 0)
            return s;
    return NULL;
}

int cfg_is_section(const char *path)
{
    for (const char *const *s = cfg_sections; *s != NULL; s++)
        if (strcmp(*s, path) == 0)
            return 1;
    return 0;
}

static int cfg_parse_integer(const char *text, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Sizes: a plain number of bytes, or with K, M or G (binary multiples). */
static int cfg_parse_size(const char *text, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || v < 0)
        return -1;
    long long unit = 1;
    if (*end != '\0') {
        if (strcasecmp(end, "K") == 0 || strcasecmp(end, "KB") == 0 || strcasecmp(end, "KiB") == 0)
            unit = KIB;
        else if (strcasecmp(end, "M") == 0 || strcasecmp(end, "MB") == 0 || strcasecmp(end, "MiB") == 0)
            unit = KIB * KIB;
        else if (strcasecmp(end, "G") == 0 || strcasecmp(end, "GB") == 0 || strcasecmp(end, "GiB") == 0)
            unit = GIB;
        else
            return -1;
    }
    if (v > (long long)(INT64_MAX / unit))
        return -1;
    *out = v * unit;
    return 0;
}

static int cfg_parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL}, *const no[] = {"false", "no", "off",
                                                                                      "0", NULL};
    for (int i = 0; yes[i] != NULL; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(text, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

int cfg_setting_apply(void *base, const cfg_setting_t *s, const char *text, char *why, size_t whylen)
{
    void *field = (char *)base + s->offset;
    long long v = 0;
    switch (s->type) {
    case CFG_T_STR: {
        char *copy = strdup(text);
        if (copy == NULL)
            return snprintf(why, whylen, "out of memory"), -1;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case CFG_T_MODE:
        if (strcmp(text, "development") == 0)
            *(cfg_mode_t *)field = CFG_MODE_DEVELOPMENT;
        else if (strcmp(text, "production") == 0)
            *(cfg_mode_t *)field = CFG_MODE_PRODUCTION;
        else
            return snprintf(why, whylen, "expected development or production, got \"%.64s\"", text), -1;
        return 0;
    case CFG_T_BOOL:
        if (cfg_parse_bool(text, (int *)field) != 0)
            return snprintf(why, whylen, "expected true or false, got \"%.64s\"", text), -1;
        return 0;
    case CFG_T_INT:
    case CFG_T_SIZE:
        if ((s->type == CFG_T_INT ? cfg_parse_integer(text, &v) : cfg_parse_size(text, &v)) != 0)
            return snprintf(why, whylen, "expected %s, got \"%.64s\"",
                            s->type == CFG_T_INT ? "an integer" : "a size (bytes, or with K/M/G)", text),
                   -1;
        if (v < s->min || v > s->max)
            return snprintf(why, whylen, "%lld is out of range %lld..%lld", v, s->min, s->max), -1;
        if (s->type == CFG_T_INT)
            *(int *)field = (int)v;
        else
            *(int64_t *)field = (int64_t)v;
        return 0;
    }
    return -1;
}
