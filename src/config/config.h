/*
 * Configuration: h2o.conf (YAML, parsed with libyaml) overlaid by HYDRANT_* environment
 * variables, then validated. Every string in cfg_t is owned by the cfg_t and released by
 * cfg_free().
 */
#ifndef HYDRANT_CONFIG_H
#define HYDRANT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_MAX_LISTENERS     8
#define CFG_MAX_TRUSTED_PROXY 16
#define CFG_MAX_JOB_KINDS     16
#define CFG_ERR_LEN           512

typedef enum { CFG_MODE_DEVELOPMENT = 0, CFG_MODE_PRODUCTION } cfg_mode_t;

typedef struct {
    char *host;      /* "127.0.0.1", "0.0.0.0", "::" */
    int port;        /* 1..65535 */
    int tls;         /* 1 when an `ssl` block is present */
    char *cert_file; /* PEM, only with tls */
    char *key_file;  /* PEM, only with tls */
} cfg_listen_t;

typedef struct {
    char *url;              /* libpq conninfo or postgresql:// URL */
    int pool_size;          /* pipelined connections per event-loop thread (default 2) */
    int max_queue;          /* queries waiting per loop before 503 (default 4096) */
    int query_timeout_ms;   /* a query unanswered this long fails its callback (default 5000) */
    int connect_timeout_ms; /* default 3000 */
} cfg_database_t;

typedef struct {
    char *url;              /* redis://[:password@]host[:port][/db] */
    int command_timeout_ms; /* default 1000 */
    int connect_timeout_ms; /* default 1000 */
} cfg_redis_t;

typedef struct {
    char *jwt_secret;                     /* at least 32 bytes in production */
    char *jwt_issuer;                     /* default "hydrant" */
    int access_ttl_s;                     /* default 900 */
    int refresh_ttl_s;                    /* default 30 days */
    int refresh_reuse_grace_s;            /* default 0 */
    int refresh_retry_window_s;           /* default 30: an unanswered rotation may be retried */
    int require_email_confirmation;       /* default 1 */
    int argon2_memory_kib;                /* default 19456 */
    int argon2_iterations;                /* default 2 */
    int argon2_parallelism;               /* default 1 */
    int limit_login_per_email;            /* default 10 per 15 min */
    int limit_login_per_address;          /* default 100 per 15 min */
    int limit_email_requests_per_address; /* default 30 per 15 min */
    int limit_emails_per_address;         /* default 1 per minute */
    int principal_cache_entries;          /* per loop; 0 turns the cache off (default 10000) */
    int principal_cache_ttl_ms;           /* an entry's longest life (default 30000) */
    int api_key_last_used_interval_s;     /* an API key's last_used_at is written at most this often */
} cfg_auth_t;

typedef struct {
    char *url;           /* smtp://host:port, smtps://..., may carry user:pass@ */
    char *from;          /* default "hydrant <no-reply@localhost>" */
    int timeout_ms;      /* default 10000 */
    char *templates_dir; /* default "templates/email" */
    int starttls;        /* smtp:// only: 0 never, 1 when offered (default), 2 required */
    char *ca_file;       /* PEM bundle to verify the server with, or NULL for the system's */
} cfg_smtp_t;

typedef struct {
    char *dir;          /* default "./.run/uploads" */
    int64_t max_size;   /* bytes, default 100 MiB */
    int64_t user_quota; /* bytes, default 1 GiB */
    int sweep_grace_s;  /* temporaries and bytes without a row older than this are swept (1 h) */
    char *spill_dir;    /* where libh2o spills bodies above 8 MiB; NULL: <dir>/tmp */
} cfg_uploads_t;

/* One kind's retry schedule (jobs.kinds.<kind>, or HYDRANT_JOBS_KINDS); a field left 0 takes
 * the jobs.* default of the same name. */
typedef struct {
    char *kind;        /* "email.confirmation" */
    int max_attempts;  /* runs before the job is dead, 1..100 (the jobs table's bound) */
    int retry_base_ms; /* delay after the first failure; doubles per attempt, with jitter */
    int retry_max_ms;  /* cap of the delay before jitter */
} cfg_job_kind_t;

typedef struct {
    int workers_short;       /* default 2 */
    int workers_medium;      /* default 1 */
    int workers_long;        /* default 1 */
    int lease_s;             /* default 15; renewed every third of it */
    int enabled;             /* run workers inside `serve` (default 1) */
    int batch_size;          /* most jobs one worker claims at once (default 256) */
    int poll_ms;             /* fallback poll when no notification arrives (default 1000) */
    int max_attempts;        /* runs before a job is dead, unless its kind or enqueuer says (default 18) */
    int retry_base_ms;       /* first retry delay; doubles per attempt, with jitter (default 2000) */
    int retry_max_ms;        /* cap of the retry delay before jitter (default 15 minutes) */
    int shutdown_timeout_ms; /* how long running jobs may finish on shutdown (default 10000) */
    int retention_days; /* succeeded and cancelled jobs are deleted after this; 0 keeps them (default 14) */
    cfg_job_kind_t kinds[CFG_MAX_JOB_KINDS]; /* per-kind schedules */
    int nkinds;
} cfg_jobs_t;

typedef struct {
    int64_t max_body;                /* bytes, default JSON body limit 64 KiB */
    int json_max_depth;              /* default 32 */
    int64_t json_max_string;         /* bytes, default 16 KiB */
    int max_headers;                 /* per request, default 100 */
    int64_t max_header_bytes;        /* names and values of one request, default 16 KiB */
    int request_timeout_ms;          /* slow client / whole request, default 10000 */
    int idle_timeout_ms;             /* keep-alive idle, default 60000 */
    int shutdown_timeout_ms;         /* graceful drain bound, default 10000 */
    int drain_delay_ms;              /* not ready but serving after SIGTERM, default 0 */
    int max_connections;             /* per process, default 20000 */
    int max_connections_per_address; /* default 1024, 0: off */
    int new_connections_per_address; /* per second, default 500, 0: off */
    int max_queries_per_connection;  /* database queries in progress, default 256, 0: off */
    int max_cpu_jobs_per_connection; /* password hashing jobs in progress, default 4, 0: off */
    /* Request bodies in flight (read, or held by a request in progress), 0: off. The first
     * two are raised to the largest body a route accepts when lower. */
    int64_t max_body_bytes_per_connection; /* default 128 MiB */
    int64_t max_body_bytes_per_address;    /* default 256 MiB */
    int64_t max_body_bytes_in_flight;      /* per process, default 1 GiB */
    int body_timeout_ms;                   /* window of body_min_rate, default 10000, 0: off */
    int64_t body_min_rate;                 /* HTTP/2 body bytes per second, default 500 */
    int send_timeout_ms;                   /* window of send_min_rate, default 10000, 0: off */
    int64_t send_min_rate;                 /* answer bytes a client reads per second, default 500 */
} cfg_limits_t;

/* What the TLS listeners add to their answers. */
typedef struct {
    int hsts_max_age; /* Strict-Transport-Security max-age in seconds, 0 off; -1 until
                       * cfg_default_by_mode: 31536000 in production, 0 in development */
} cfg_tls_t;

/* Notification streams (src/handlers/notifications.c). */
typedef struct {
    int heartbeat_ms;     /* a comment line when nothing else was written this long, default 15000 */
    int max_stream_s;     /* a stream ends after this long (the client reconnects), default 3600 */
    int poll_ms;          /* how often a loop looks for its streams' new events, default 50 */
    int64_t stream_queue; /* bytes a stream may hold unsent before it is dropped, default 64 KiB */
} cfg_realtime_t;

typedef struct {
    char *level;  /* util_log's threshold: debug, info (default), warn or error */
    char *format; /* text (logfmt, default) or json */
} cfg_log_t;

typedef struct {
    char *source; /* path of the file read, or "(defaults)" */
    cfg_mode_t mode;
    int num_threads; /* default: number of online CPUs */
    /* A loop that accepts a connection while another holds fewer hands it over (default on):
     * SO_REUSEPORT's hash often puts a few long-lived connections on one loop. */
    int balance_connections;
    cfg_listen_t listen[CFG_MAX_LISTENERS];
    int nlisten;
    char *public_url;                             /* default "https://localhost:8443" */
    char *access_log;                             /* path, "-" or NULL for stdout, "off" to disable */
    int64_t access_log_buffer;                    /* bytes of lines waiting per event loop, default 1 MiB */
    char *openapi_file;                           /* default "docs/openapi.yaml" */
    char *trusted_proxies[CFG_MAX_TRUSTED_PROXY]; /* IP literals whose X-Forwarded-For we believe */
    int ntrusted_proxies;
    cfg_database_t database;
    cfg_redis_t redis;
    cfg_auth_t auth;
    cfg_smtp_t smtp;
    cfg_uploads_t uploads;
    cfg_jobs_t jobs;
    cfg_limits_t limits;
    cfg_tls_t tls;
    cfg_realtime_t realtime;
    cfg_log_t log;
} cfg_t;

/* The retry schedule of a job kind: its jobs.kinds entry, each field left 0 there taken from
 * jobs.max-attempts, jobs.retry-base-ms and jobs.retry-max-ms. */
cfg_job_kind_t cfg_job_schedule(const cfg_t *cfg, const char *kind);

/* Fills every field with its default. */
void cfg_init_defaults(cfg_t *cfg);

/* Reads a YAML file into cfg (on top of what is there). Unknown keys, wrong types and
 * unreadable files fail with "FILE:LINE: key 'a.b': reason" in err. Returns 0 or -1. */
int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errlen);

/* Same as cfg_load_file, from a string (the name is used in messages). */
int cfg_load_string(cfg_t *cfg, const char *name, const char *yaml, size_t len, char *err, size_t errlen);

/* Applies HYDRANT_* variables through getenv_fn (getenv in production, a fake in tests).
 * Returns 0 or -1 with "environment: HYDRANT_X: reason" in err. */
int cfg_apply_env(cfg_t *cfg, const char *(*getenv_fn)(const char *name), char *err, size_t errlen);

/* Cross-field checks (production needs a 32+ byte secret and a certificate, TLS listeners
 * need both files, ...). Returns 0 or -1 with a message. */
int cfg_validate(const cfg_t *cfg, char *err, size_t errlen);
/* Gives every listener without a host one by mode: 127.0.0.1 in development, where the
 * certificate is the development one and nothing outside the machine should reach the
 * server, 0.0.0.0 in production. cfg_load calls it after the file and the environment. */
void cfg_default_hosts(cfg_t *cfg);
/* Settings whose default depends on the mode and that neither the file nor the environment
 * set: tls.hsts-max-age (a year in production; off in development, where the certificate is
 * self-signed and HSTS on localhost would pin every local port to HTTPS). cfg_load calls it
 * after the file and the environment. */
void cfg_default_by_mode(cfg_t *cfg);

/* The whole pipeline used by main: defaults, file (path or HYDRANT_CONFIG or ./h2o.conf if
 * present), environment, validation. */
int cfg_load(cfg_t *cfg, const char *path, char *err, size_t errlen);

void cfg_free(cfg_t *cfg);

/* `hydrant settings`: every setting of the table (YAML name, environment variable, type,
 * default, bounds) as a Markdown table on out, the one in docs/SETTINGS.md
 * (settings_doc.c). Returns 0, or -1 with a message. */
int cfg_settings_print(FILE *out, char *err, size_t errlen);

#endif
