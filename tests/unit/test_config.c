#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

static char err[CFG_ERR_LEN];

static int load(cfg_t *cfg, const char *yaml)
{
    cfg_init_defaults(cfg);
    err[0] = '\0';
    return cfg_load_string(cfg, "t.conf", yaml, strlen(yaml), err, sizeof(err));
}

static void expect_error(const char *yaml, const char *where, const char *key)
{
    cfg_t cfg;
    assert_int_equal(load(&cfg, yaml), -1);
    if (strstr(err, where) == NULL || strstr(err, key) == NULL)
        fprintf(stderr, "message was: %s\n", err);
    assert_non_null(strstr(err, where));
    assert_non_null(strstr(err, key));
    cfg_free(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    assert_int_equal(cfg.mode, CFG_MODE_DEVELOPMENT);
    assert_true(cfg.num_threads >= 1);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[0].port, 8443);
    assert_true(cfg.listen[0].tls);
    assert_int_equal(cfg.listen[1].port, 8080);
    assert_false(cfg.listen[1].tls);
    assert_int_equal(cfg.auth.access_ttl_s, 900);
    assert_int_equal(cfg.auth.limit_login_per_email, 10);
    assert_int_equal(cfg.uploads.max_size, 100 * 1024 * 1024);
    assert_null(cfg.auth.jwt_secret);
    cfg_free(&cfg);
}

static void test_full_file(void **state)
{
    (void)state;
    cfg_t cfg;
    assert_int_equal(load(&cfg, "mode: production\n"
                                "num-threads: 3\n"
                                "listen:\n"
                                "  - host: 127.0.0.1\n"
                                "    port: 9443\n"
                                "    ssl: {certificate-file: /c.pem, key-file: /k.pem}\n"
                                "trusted-proxies: [10.0.0.1, '::1']\n"
                                "database: {url: 'postgresql://x@db/y', pool-size: 4}\n"
                                "auth:\n"
                                "  jwt-secret: abc\n"
                                "  require-email-confirmation: false\n"
                                "  limits: {login-per-email: 0}\n"
                                "uploads: {max-size: 5M, user-quota: 2G}\n"
                                "limits: {max-body: 128K, json-max-depth: 8}\n"),
                     0);
    assert_int_equal(cfg.mode, CFG_MODE_PRODUCTION);
    assert_int_equal(cfg.num_threads, 3);
    assert_int_equal(cfg.nlisten, 1);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 9443);
    assert_string_equal(cfg.listen[0].cert_file, "/c.pem");
    assert_int_equal(cfg.ntrusted_proxies, 2);
    assert_string_equal(cfg.trusted_proxies[1], "::1");
    assert_string_equal(cfg.database.url, "postgresql://x@db/y");
    assert_int_equal(cfg.database.pool_size, 4);
    assert_string_equal(cfg.auth.jwt_secret, "abc");
    assert_int_equal(cfg.auth.require_email_confirmation, 0);
    assert_int_equal(cfg.auth.limit_login_per_email, 0);
    assert_int_equal(cfg.uploads.max_size, 5 * 1024 * 1024);
    assert_int_equal(cfg.uploads.user_quota, 2LL * 1024 * 1024 * 1024);
    assert_int_equal(cfg.limits.max_body, 128 * 1024);
    assert_int_equal(cfg.limits.json_max_depth, 8);
    assert_string_equal(cfg.source, "t.conf");
    cfg_free(&cfg);
}

static void test_errors_name_line_and_key(void **state)
{
    (void)state;
    expect_error("mode: development\nbogus: 1\n", "t.conf:2:", "'bogus'");
    expect_error("database:\n  url: x\n  pool-size: lots\n", "t.conf:3:", "'database.pool-size'");
    expect_error("database:\n  pool-size: 0\n", "t.conf:2:", "out of range");
    expect_error("database:\n  nope: 1\n", "t.conf:2:", "'database.nope'");
    expect_error("database: 5\n", "t.conf:1:", "'database'");
    expect_error("mode: staging\n", "t.conf:1:", "'mode'");
    expect_error("listen:\n  - host: a\n    port: 70000\n", "t.conf:3:", "'listen[0].port'");
    expect_error("listen:\n  - port: 1\n    ssl: {cert: x}\n", "t.conf:3:", "'listen[0].ssl.cert'");
    expect_error("num-threads: 2\nnum-threads: 3\n", "t.conf:2:", "'num-threads'");
    expect_error("auth:\n  limits:\n    login-per-email: [1]\n",
                 "t.conf:3:", "'auth.limits.login-per-email'");
    expect_error("trusted-proxies: [nope]\n", "t.conf:1:", "trusted-proxies");
    expect_error("uploads: {max-size: 5Q}\n", "t.conf:1:", "'uploads.max-size'");
    expect_error("mode: [unclosed\n", "t.conf:", "invalid YAML");
    expect_error("- a\n- b\n", "t.conf:1:", "expected a mapping");
}

static void test_missing_file(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    assert_int_equal(cfg_load_file(&cfg, "/nonexistent/h2o.conf", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/h2o.conf"));
    cfg_free(&cfg);
}

static const char *fake_env_values[64][2];

static const char *fake_getenv(const char *name)
{
    for (int i = 0; fake_env_values[i][0] != NULL; i++)
        if (strcmp(fake_env_values[i][0], name) == 0)
            return fake_env_values[i][1];
    return NULL;
}

static void set_env(int i, const char *name, const char *value)
{
    fake_env_values[i][0] = name;
    fake_env_values[i][1] = value;
    fake_env_values[i + 1][0] = NULL;
}

static void test_env_overrides(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    const char *pairs[][2] = {
        {"HYDRANT_MODE", "production"},
        {"HYDRANT_DATABASE_URL", "postgresql://a@b/c"},
        {"HYDRANT_REDIS_URL", "redis://r:1/2"},
        {"HYDRANT_SMTP_URL", "smtp://m:25"},
        {"HYDRANT_JWT_SECRET", "s3cret"},
        {"HYDRANT_PUBLIC_URL", "https://api.example"},
        {"HYDRANT_LISTEN_TLS", "127.0.0.1:9443"},
        {"HYDRANT_LISTEN_HTTP", "[::1]:9080"},
        {"HYDRANT_TLS_CERT", "/x/cert.pem"},
        {"HYDRANT_TLS_KEY", "/x/key.pem"},
        {"HYDRANT_THREADS", "5"},
        {"HYDRANT_UPLOAD_DIR", "/data/up"},
        {"HYDRANT_LIMIT_LOGIN_PER_EMAIL", "3"},
        {"HYDRANT_LIMIT_LOGIN_PER_ADDRESS", "4"},
        {"HYDRANT_LIMIT_EMAIL_REQUESTS_PER_ADDRESS", "5"},
        {"HYDRANT_LIMIT_EMAILS_PER_ADDRESS", "0"},
        {"HYDRANT_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2"},
    };
    int n = (int)(sizeof(pairs) / sizeof(pairs[0]));
    for (int i = 0; i < n; i++)
        set_env(i, pairs[i][0], pairs[i][1]);
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    assert_int_equal(cfg.mode, CFG_MODE_PRODUCTION);
    assert_string_equal(cfg.database.url, "postgresql://a@b/c");
    assert_string_equal(cfg.redis.url, "redis://r:1/2");
    assert_string_equal(cfg.smtp.url, "smtp://m:25");
    assert_string_equal(cfg.auth.jwt_secret, "s3cret");
    assert_string_equal(cfg.public_url, "https://api.example");
    assert_int_equal(cfg.nlisten, 2);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_int_equal(cfg.listen[0].port, 9443);
    assert_string_equal(cfg.listen[0].cert_file, "/x/cert.pem");
    assert_string_equal(cfg.listen[0].key_file, "/x/key.pem");
    assert_string_equal(cfg.listen[1].host, "::1");
    assert_int_equal(cfg.listen[1].port, 9080);
    assert_int_equal(cfg.num_threads, 5);
    assert_string_equal(cfg.uploads.dir, "/data/up");
    assert_int_equal(cfg.auth.limit_login_per_email, 3);
    assert_int_equal(cfg.auth.limit_login_per_address, 4);
    assert_int_equal(cfg.auth.limit_email_requests_per_address, 5);
    assert_int_equal(cfg.auth.limit_emails_per_address, 0);
    assert_int_equal(cfg.ntrusted_proxies, 2);
    cfg_free(&cfg);
}

/* Per-kind retry schedules: from the file's jobs.kinds, merged with HYDRANT_JOBS_KINDS, each
 * field left out taken from the jobs.* defaults; bad entries name their key. */
static void test_job_kind_schedules(void **state)
{
    (void)state;
    cfg_t cfg;
    assert_int_equal(load(&cfg, "jobs:\n"
                                "  max-attempts: 7\n"
                                "  retry-base-ms: 1000\n"
                                "  kinds:\n"
                                "    email.confirmation: {max-attempts: 30, retry-max-ms: 600000}\n"
                                "    file.process:\n"
                                "      retry-base-ms: 5000\n"),
                     0);
    cfg_job_kind_t s = cfg_job_schedule(&cfg, "email.confirmation");
    assert_int_equal(s.max_attempts, 30);
    assert_int_equal(s.retry_base_ms, 1000); /* jobs.retry-base-ms */
    assert_int_equal(s.retry_max_ms, 600000);
    s = cfg_job_schedule(&cfg, "file.process");
    assert_int_equal(s.max_attempts, 7);
    assert_int_equal(s.retry_base_ms, 5000);
    assert_int_equal(s.retry_max_ms, 15 * 60 * 1000);
    s = cfg_job_schedule(&cfg, "not.listed");
    assert_int_equal(s.max_attempts, 7);
    set_env(0, "HYDRANT_JOBS_KINDS", "{\"email.confirmation\": {\"retry-base-ms\": 250}, auth.purge: {}}");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    s = cfg_job_schedule(&cfg, "email.confirmation");
    assert_int_equal(s.max_attempts, 30); /* kept from the file */
    assert_int_equal(s.retry_base_ms, 250);
    assert_int_equal(cfg.jobs.nkinds, 3);
    set_env(0, "HYDRANT_JOBS_KINDS", "{email.confirmation: {max-attempts: 0}}");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HYDRANT_JOBS_KINDS"));
    assert_non_null(strstr(err, "'jobs.kinds.email.confirmation.max-attempts'"));
    set_env(0, NULL, NULL);
    cfg_free(&cfg);
    expect_error("jobs:\n  kinds:\n    Email: {max-attempts: 3}\n", "t.conf:3:", "'jobs.kinds.Email'");
    expect_error("jobs:\n  kinds:\n    a.b: {tries: 3}\n", "t.conf:3:", "'jobs.kinds.a.b.tries'");
    expect_error("jobs:\n  kinds:\n    a.b: 3\n", "t.conf:3:", "'jobs.kinds.a.b'");
    expect_error("jobs:\n  kinds: [a]\n", "t.conf:2:", "'jobs.kinds'");
    expect_error("jobs:\n  max-attempts: 101\n", "t.conf:2:", "out of range");
}

static void test_env_empty_disables_listener_and_errors(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    set_env(0, "HYDRANT_LISTEN_HTTP", "");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    assert_int_equal(cfg.nlisten, 1);
    assert_true(cfg.listen[0].tls);
    set_env(0, "HYDRANT_THREADS", "many");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HYDRANT_THREADS"));
    set_env(0, "HYDRANT_LISTEN_TLS", "nohostport");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "HYDRANT_LISTEN_TLS"));
    cfg_free(&cfg);
}

/* A self-signed certificate with the given CN, written by the openssl command line. */
static void make_cert(const char *dir, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=%s "
             "-keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
             cn, dir, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_production_refusals(void **state)
{
    (void)state;
    char dir[] = "/tmp/hydrant-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[256], key[256];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    cfg.mode = CFG_MODE_PRODUCTION;
    set_env(0, "HYDRANT_TLS_CERT", cert);
    set_env(1, "HYDRANT_TLS_KEY", key);
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    cfg_default_hosts(&cfg);
    make_cert(dir, "hydrant-dev");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1); /* no secret */
    assert_non_null(strstr(err, "auth.jwt-secret"));
    cfg.auth.jwt_secret = strdup("short");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    free(cfg.auth.jwt_secret);
    cfg.auth.jwt_secret = strdup("0123456789abcdef0123456789abcdef");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1); /* the dev certificate */
    assert_non_null(strstr(err, "development certificate"));
    make_cert(dir, "api.example.com");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0);
    cfg.mode = CFG_MODE_DEVELOPMENT;
    make_cert(dir, "hydrant-dev");
    free(cfg.auth.jwt_secret);
    cfg.auth.jwt_secret = NULL;
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0); /* fine for development */
    cfg_free(&cfg);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

static void test_repository_sample_loads(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    assert_int_equal(cfg_load_file(&cfg, HYDRANT_SOURCE_DIR "/h2o.conf", err, sizeof(err)), 0);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[0].port, 8443);
    assert_int_equal(cfg.database.pool_size, 2);
    /* development (make run, with its development certificate) listens on loopback only */
    cfg_default_hosts(&cfg);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_string_equal(cfg.listen[1].host, "127.0.0.1");
    cfg_free(&cfg);
}

/* Without a host a listener binds loopback in development, every interface in production;
 * a given host is kept. */
static void test_listen_host_by_mode(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    cfg_default_hosts(&cfg);
    assert_string_equal(cfg.listen[0].host, "127.0.0.1");
    assert_string_equal(cfg.listen[1].host, "127.0.0.1");
    cfg_free(&cfg);
    assert_int_equal(
        load(&cfg, "mode: production\nlisten:\n  - port: 8080\n  - host: 10.1.2.3\n    port: 8081\n"), 0);
    cfg_default_hosts(&cfg);
    assert_string_equal(cfg.listen[0].host, "0.0.0.0");
    assert_string_equal(cfg.listen[1].host, "10.1.2.3");
    cfg_free(&cfg);
}

/* HSTS: a year in production, off in development (self-signed localhost); a value from the
 * file or the environment is kept in either mode, 0 included; out of range is refused. */
static void test_hsts_max_age_by_mode(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    cfg_default_by_mode(&cfg);
    assert_int_equal(cfg.tls.hsts_max_age, 0);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, "mode: production\n"), 0);
    cfg_default_by_mode(&cfg);
    assert_int_equal(cfg.tls.hsts_max_age, 31536000);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, "mode: production\ntls:\n  hsts-max-age: 0\n"), 0);
    cfg_default_by_mode(&cfg);
    assert_int_equal(cfg.tls.hsts_max_age, 0);
    cfg_free(&cfg);
    cfg_init_defaults(&cfg);
    set_env(0, "HYDRANT_TLS_HSTS_MAX_AGE", "600");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    cfg_default_by_mode(&cfg);
    assert_int_equal(cfg.tls.hsts_max_age, 600);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, "tls:\n  hsts-max-age: -1\n"), -1);
    assert_non_null(strstr(err, "tls.hsts-max-age"));
    cfg_free(&cfg);
}

/* log.level and log.format: info and text by default, from the file or the environment,
 * and cfg_validate refuses names util_log does not know. */
static void test_log_settings(void **state)
{
    (void)state;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    cfg_default_hosts(&cfg);
    cfg.listen[0].tls = 0; /* no certificate to read here */
    assert_string_equal(cfg.log.level, "info");
    assert_string_equal(cfg.log.format, "text");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0);
    cfg_free(&cfg);
    assert_int_equal(load(&cfg, "log:\n  level: warn\n  format: json\n"), 0);
    cfg_default_hosts(&cfg);
    cfg.listen[0].tls = 0;
    assert_string_equal(cfg.log.level, "warn");
    assert_string_equal(cfg.log.format, "json");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), 0);
    set_env(0, "HYDRANT_LOG_LEVEL", "verbose");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "log.level"));
    set_env(0, "HYDRANT_LOG_LEVEL", "debug");
    set_env(1, "HYDRANT_LOG_FORMAT", "xml");
    assert_int_equal(cfg_apply_env(&cfg, fake_getenv, err, sizeof(err)), 0);
    assert_string_equal(cfg.log.level, "debug");
    assert_int_equal(cfg_validate(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "log.format"));
    cfg_free(&cfg);
    fake_env_values[0][0] = NULL;
}

/* The realtime.* settings from the file, as a mapping like every other section. */
static void test_realtime_section(void **state)
{
    (void)state;
    cfg_t cfg;
    assert_int_equal(load(&cfg, "realtime:\n  poll-ms: 20\n  heartbeat-ms: 500\n"), 0);
    assert_int_equal(cfg.realtime.poll_ms, 20);
    assert_int_equal(cfg.realtime.heartbeat_ms, 500);
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors_name_line_and_key),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_job_kind_schedules),
        cmocka_unit_test(test_env_empty_disables_listener_and_errors),
        cmocka_unit_test(test_production_refusals),
        cmocka_unit_test(test_repository_sample_loads),
        cmocka_unit_test(test_listen_host_by_mode),
        cmocka_unit_test(test_hsts_max_age_by_mode),
        cmocka_unit_test(test_log_settings),
        cmocka_unit_test(test_realtime_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
