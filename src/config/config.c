/*
 * Defaults, environment overrides, validation and the load pipeline used by main.
 */
#include "config/config_internal.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CFG_DEV_CERT "./.run/tls/cert.pem"
#define CFG_DEV_KEY  "./.run/tls/key.pem"
#define CFG_DEV_CN   "hydrant-dev"
/* One year: what the HSTS preload list asks for at least. */
#define CFG_HSTS_PRODUCTION 31536000

static char *cfg_dup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void cfg_set_listener(cfg_listen_t *l, const char *host, int port, int tls)
{
    cfg_listen_clear(l);
    l->host = cfg_dup(host);
    l->port = port;
    l->tls = tls;
    if (tls) {
        l->cert_file = cfg_dup(CFG_DEV_CERT);
        l->key_file = cfg_dup(CFG_DEV_KEY);
    }
}

void cfg_init_defaults(cfg_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->source = cfg_dup("(defaults)");
    cfg->mode = CFG_MODE_DEVELOPMENT;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->num_threads = cpus > 0 ? (int)cpus : 1;
    cfg->balance_connections = 1;
    cfg_set_listener(&cfg->listen[0], NULL, 8443, 1); /* hosts: cfg_default_hosts */
    cfg_set_listener(&cfg->listen[1], NULL, 8080, 0);
    cfg->nlisten = 2;
    cfg->public_url = cfg_dup("https://localhost:8443");
    cfg->openapi_file = cfg_dup("docs/openapi.yaml");
    cfg->access_log_buffer = 1024 * 1024;
    cfg->log = (cfg_log_t){cfg_dup("info"), cfg_dup("text")};
    cfg->database =
        (cfg_database_t){cfg_dup("postgresql://hydrant@127.0.0.1:54329/hydrant"), 2, 4096, 5000, 3000};
    cfg->redis = (cfg_redis_t){cfg_dup("redis://127.0.0.1:63799/0"), 1000, 1000};
    cfg->auth = (cfg_auth_t){
        .jwt_issuer = cfg_dup("hydrant"),
        .access_ttl_s = 900,
        .refresh_ttl_s = 30 * 86400,
        .refresh_retry_window_s = 30,
        .require_email_confirmation = 1,
        .argon2_memory_kib = 19456,
        .argon2_iterations = 2,
        .argon2_parallelism = 1,
        .limit_login_per_email = 10,
        .limit_login_per_address = 100,
        .limit_email_requests_per_address = 30,
        .limit_emails_per_address = 1,
        .principal_cache_entries = 10000,
        .principal_cache_ttl_ms = 30000,
        .api_key_last_used_interval_s = 60,
    };
    cfg->smtp = (cfg_smtp_t){cfg_dup("smtp://127.0.0.1:2525"),
                             cfg_dup("hydrant <no-reply@localhost>"),
                             10000,
                             cfg_dup("templates/email"),
                             1,
                             NULL};
    cfg->uploads =
        (cfg_uploads_t){cfg_dup("./.run/uploads"), 100LL * 1024 * 1024, 1024LL * 1024 * 1024, 3600, NULL};
    /* 18 attempts 2 s apart, doubling to a cap of 15 min: at least 68 min of retries even with
     * the lowest jitter (2 h 17 min on average), so an SMTP or network outage of an hour
     * does not make emails dead (docs/ARCHITECTURE.md, "Retries"). */
    cfg->jobs = (cfg_jobs_t){.workers_short = 2,
                             .workers_medium = 1,
                             .workers_long = 1,
                             .lease_s = 15, /* renewed every 5 s: a killed worker's jobs wait 10-20 s */
                             .enabled = 1,
                             .batch_size = 256,
                             .poll_ms = 1000,
                             .max_attempts = 18,
                             .retry_base_ms = 2000,
                             .retry_max_ms = 15 * 60 * 1000,
                             .shutdown_timeout_ms = 10000,
                             .retention_days = 14};
    cfg->limits = (cfg_limits_t){.max_body = 64 * 1024,
                                 .json_max_depth = 32,
                                 .json_max_string = 16 * 1024,
                                 .max_headers = 100,
                                 .max_header_bytes = 16 * 1024,
                                 .request_timeout_ms = 10000,
                                 .idle_timeout_ms = 60000,
                                 .shutdown_timeout_ms = 10000,
                                 .drain_delay_ms = 0,
                                 .max_connections = 20000,
                                 .max_connections_per_address = 1024,
                                 .new_connections_per_address = 500,
                                 .max_queries_per_connection = 256,
                                 .max_cpu_jobs_per_connection = 4,
                                 .max_body_bytes_per_connection = 128 * 1024 * 1024,
                                 .max_body_bytes_per_address = 256 * 1024 * 1024,
                                 .max_body_bytes_in_flight = 1024 * 1024 * 1024,
                                 .body_timeout_ms = 10000,
                                 .body_min_rate = 500,
                                 .send_timeout_ms = 10000,
                                 .send_min_rate = 500};
    cfg->tls.hsts_max_age = -1; /* by mode: cfg_default_by_mode */
    cfg->realtime = (cfg_realtime_t){
        .heartbeat_ms = 15000, .max_stream_s = 3600, .poll_ms = 50, .stream_queue = 64 * 1024};
}

void cfg_listen_clear(cfg_listen_t *l)
{
    free(l->host);
    free(l->cert_file);
    free(l->key_file);
    memset(l, 0, sizeof(*l));
}

void cfg_free(cfg_t *cfg)
{
    for (const cfg_setting_t *s = cfg_settings; s->path != NULL; s++) {
        if (s->type == CFG_T_STR) {
            char **field = (char **)((char *)cfg + s->offset);
            free(*field);
            *field = NULL;
        }
    }
    for (int i = 0; i < CFG_MAX_LISTENERS; i++)
        cfg_listen_clear(&cfg->listen[i]);
    for (int i = 0; i < cfg->ntrusted_proxies; i++)
        free(cfg->trusted_proxies[i]);
    for (int i = 0; i < cfg->jobs.nkinds; i++)
        free(cfg->jobs.kinds[i].kind);
    cfg->jobs.nkinds = 0;
    cfg->ntrusted_proxies = 0;
    cfg->nlisten = 0;
    free(cfg->source);
    cfg->source = NULL;
}

cfg_job_kind_t cfg_job_schedule(const cfg_t *cfg, const char *kind)
{
    cfg_job_kind_t schedule = {(char *)kind, 0, 0, 0};
    for (int i = 0; i < cfg->jobs.nkinds; i++)
        if (kind != NULL && strcmp(cfg->jobs.kinds[i].kind, kind) == 0)
            schedule = cfg->jobs.kinds[i];
    schedule.max_attempts = schedule.max_attempts > 0 ? schedule.max_attempts : cfg->jobs.max_attempts;
    schedule.retry_base_ms = schedule.retry_base_ms > 0 ? schedule.retry_base_ms : cfg->jobs.retry_base_ms;
    schedule.retry_max_ms = schedule.retry_max_ms > 0 ? schedule.retry_max_ms : cfg->jobs.retry_max_ms;
    return schedule;
}

int cfg_parse_host_port(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            return -1;
        hlen = (size_t)(colon - text);
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || hlen >= hostlen || end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int cfg_add_trusted_proxy(cfg_t *cfg, const char *address)
{
    if (cfg->ntrusted_proxies == CFG_MAX_TRUSTED_PROXY)
        return -1;
    cfg->trusted_proxies[cfg->ntrusted_proxies] = strdup(address);
    return cfg->trusted_proxies[cfg->ntrusted_proxies] != NULL ? (cfg->ntrusted_proxies++, 0) : -1;
}

/* ---------------------------------------------------------- environment ---- */

static int cfg_index_of_listener(const cfg_t *cfg, int tls)
{
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].tls == tls)
            return i;
    return -1;
}

static void cfg_remove_listener(cfg_t *cfg, int index)
{
    cfg_listen_clear(&cfg->listen[index]);
    memmove(&cfg->listen[index], &cfg->listen[index + 1],
            sizeof(cfg_listen_t) * (size_t)(cfg->nlisten - index - 1));
    memset(&cfg->listen[cfg->nlisten - 1], 0, sizeof(cfg_listen_t));
    cfg->nlisten--;
}

/* HYDRANT_LISTEN_TLS / _HTTP: replace (or add) the first listener of that kind, keeping a
 * TLS listener's files; an empty value removes every listener of that kind. */
static int cfg_env_listener(cfg_t *cfg, const char *name, const char *value, int tls, char *err,
                            size_t errlen)
{
    if (value[0] == '\0') {
        for (int i; (i = cfg_index_of_listener(cfg, tls)) >= 0;)
            cfg_remove_listener(cfg, i);
        return 0;
    }
    char host[256];
    int port;
    if (cfg_parse_host_port(value, host, sizeof(host), &port) != 0)
        return snprintf(err, errlen, "environment: %s: expected host:port, got \"%.64s\"", name, value), -1;
    int i = cfg_index_of_listener(cfg, tls);
    if (i < 0) {
        if (cfg->nlisten == CFG_MAX_LISTENERS)
            return snprintf(err, errlen, "environment: %s: too many listeners", name), -1;
        i = cfg->nlisten++;
        cfg_set_listener(&cfg->listen[i], host, port, tls);
        return 0;
    }
    free(cfg->listen[i].host);
    cfg->listen[i].host = cfg_dup(host);
    cfg->listen[i].port = port;
    return 0;
}

static int cfg_env_tls_file(cfg_t *cfg, const char *value, int key)
{
    for (int i = 0; i < cfg->nlisten; i++) {
        if (!cfg->listen[i].tls)
            continue;
        char **field = key ? &cfg->listen[i].key_file : &cfg->listen[i].cert_file;
        free(*field);
        *field = cfg_dup(value);
    }
    return 0;
}

static int cfg_env_trusted(cfg_t *cfg, const char *value, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->ntrusted_proxies; i++)
        free(cfg->trusted_proxies[i]);
    cfg->ntrusted_proxies = 0;
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", value);
    for (char *save = NULL, *tok = strtok_r(copy, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, tok, buf) != 1 && inet_pton(AF_INET6, tok, buf) != 1)
            return snprintf(err, errlen,
                            "environment: HYDRANT_TRUSTED_PROXIES: \"%.64s\" is not an IP address", tok),
                   -1;
        if (cfg_add_trusted_proxy(cfg, tok) != 0)
            return snprintf(err, errlen, "environment: HYDRANT_TRUSTED_PROXIES: too many entries"), -1;
    }
    return 0;
}

int cfg_apply_env(cfg_t *cfg, const char *(*getenv_fn)(const char *name), char *err, size_t errlen)
{
    char why[256];
    for (const cfg_setting_t *s = cfg_settings; s->path != NULL; s++) {
        const char *value = getenv_fn(s->env);
        if (value != NULL && cfg_setting_apply(cfg, s, value, why, sizeof(why)) != 0)
            return snprintf(err, errlen, "environment: %s: %s", s->env, why), -1;
    }
    const char *v;
    if ((v = getenv_fn("HYDRANT_LISTEN_TLS")) != NULL &&
        cfg_env_listener(cfg, "HYDRANT_LISTEN_TLS", v, 1, err, errlen))
        return -1;
    if ((v = getenv_fn("HYDRANT_LISTEN_HTTP")) != NULL &&
        cfg_env_listener(cfg, "HYDRANT_LISTEN_HTTP", v, 0, err, errlen))
        return -1;
    if ((v = getenv_fn("HYDRANT_TLS_CERT")) != NULL)
        cfg_env_tls_file(cfg, v, 0);
    if ((v = getenv_fn("HYDRANT_TLS_KEY")) != NULL)
        cfg_env_tls_file(cfg, v, 1);
    if ((v = getenv_fn("HYDRANT_TRUSTED_PROXIES")) != NULL && cfg_env_trusted(cfg, v, err, errlen) != 0)
        return -1;
    if ((v = getenv_fn("HYDRANT_JOBS_KINDS")) != NULL &&
        cfg_load_job_kinds(cfg, "environment: HYDRANT_JOBS_KINDS", v, err, errlen) != 0)
        return -1;
    return 0;
}

/* ----------------------------------------------------------- validation ---- */

/* The development certificate: the default path, or the CN the dev script writes. */
static int cfg_is_dev_certificate(const char *path)
{
    if (strcmp(path, CFG_DEV_CERT) == 0 || strcmp(path, CFG_DEV_CERT + 2) == 0)
        return 1;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL)
        return 0;
    char cn[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    X509_free(cert);
    return strcmp(cn, CFG_DEV_CN) == 0;
}

static int cfg_validate_listener(const cfg_t *cfg, const cfg_listen_t *l, int i, char *err, size_t errlen)
{
    if (l->host == NULL || l->port < 1 || l->port > 65535)
        return snprintf(err, errlen, "%s: key 'listen[%d]': needs host and port", cfg->source, i), -1;
    if (!l->tls)
        return 0;
    if (l->cert_file == NULL || l->key_file == NULL)
        return snprintf(err, errlen, "%s: key 'listen[%d].ssl': needs certificate-file and key-file",
                        cfg->source, i),
               -1;
    if (access(l->cert_file, R_OK) != 0 || access(l->key_file, R_OK) != 0)
        return snprintf(err, errlen, "%s: key 'listen[%d].ssl': cannot read the certificate %s or key %s",
                        cfg->source, i, l->cert_file, l->key_file),
               -1;
    if (cfg->mode == CFG_MODE_PRODUCTION && cfg_is_dev_certificate(l->cert_file))
        return snprintf(err, errlen,
                        "%s: key 'listen[%d].ssl.certificate-file': production mode refuses the development "
                        "certificate %s",
                        cfg->source, i, l->cert_file),
               -1;
    return 0;
}

int cfg_validate(const cfg_t *cfg, char *err, size_t errlen)
{
    if (cfg->nlisten == 0)
        return snprintf(err, errlen, "%s: key 'listen': at least one listener is needed", cfg->source), -1;
    if (cfg->mode == CFG_MODE_PRODUCTION &&
        (cfg->auth.jwt_secret == NULL || strlen(cfg->auth.jwt_secret) < 32))
        return snprintf(err, errlen,
                        "%s: key 'auth.jwt-secret': production mode needs a JWT secret of at least 32 bytes "
                        "(HYDRANT_JWT_SECRET)",
                        cfg->source),
               -1;
    if (cfg->database.url == NULL || cfg->database.url[0] == '\0')
        return snprintf(err, errlen, "%s: key 'database.url': is empty", cfg->source), -1;
    if (cfg->redis.url == NULL || strncmp(cfg->redis.url, "redis://", 8) != 0)
        return snprintf(err, errlen, "%s: key 'redis.url': expected redis://host[:port][/db]", cfg->source),
               -1;
    util_log_level_t level;
    util_log_encoding_t encoding;
    if (util_log_level_parse(cfg->log.level, &level) != 0)
        return snprintf(err, errlen, "%s: key 'log.level': expected debug, info, warn or error", cfg->source),
               -1;
    if (util_log_encoding_parse(cfg->log.format, &encoding) != 0)
        return snprintf(err, errlen, "%s: key 'log.format': expected text or json", cfg->source), -1;
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg_validate_listener(cfg, &cfg->listen[i], i, err, errlen) != 0)
            return -1;
    return 0;
}

static const char *cfg_real_getenv(const char *name)
{
    return getenv(name);
}

void cfg_default_hosts(cfg_t *cfg)
{
    const char *host = cfg->mode == CFG_MODE_PRODUCTION ? "0.0.0.0" : "127.0.0.1";
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].host == NULL)
            cfg->listen[i].host = cfg_dup(host);
}

void cfg_default_by_mode(cfg_t *cfg)
{
    if (cfg->tls.hsts_max_age < 0)
        cfg->tls.hsts_max_age = cfg->mode == CFG_MODE_PRODUCTION ? CFG_HSTS_PRODUCTION : 0;
}

int cfg_load(cfg_t *cfg, const char *path, char *err, size_t errlen)
{
    cfg_init_defaults(cfg);
    if (path == NULL) {
        const char *env = getenv("HYDRANT_CONFIG");
        if (env != NULL && env[0] != '\0')
            path = env;
        else if (access("h2o.conf", F_OK) == 0)
            path = "h2o.conf";
    }
    if (path != NULL && cfg_load_file(cfg, path, err, errlen) != 0)
        return -1;
    if (cfg_apply_env(cfg, cfg_real_getenv, err, errlen) != 0)
        return -1;
    cfg_default_hosts(cfg);
    cfg_default_by_mode(cfg);
    if (cfg->num_threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->num_threads = cpus > 0 ? (int)cpus : 1; /* 0 means one per core */
    }
    return cfg_validate(cfg, err, errlen);
}
