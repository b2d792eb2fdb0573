/*
 * The command line as operators use it: usage errors exit 2, configuration errors name the
 * file, line and key, production mode refuses weak secrets, and migrate reports status.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char out[16384];

static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "frobnicate",
                         "serve extra",
                         "migrate",
                         "migrate sideways",
                         "migrate down",
                         "migrate down zero",
                         "serve -c",
                         "serve --bogus"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = harness_run_hydrant(out, sizeof(out), NULL, bad[i]);
        if (rc != 2)
            fprintf(stderr, "'hydrant %s' exited %d: %s\n", bad[i], rc, out);
        assert_int_equal(rc, 2);
        assert_non_null(strstr(out, "usage: hydrant"));
    }
}

static void test_help_and_version(void **state)
{
    (void)state;
    assert_int_equal(harness_run_hydrant(out, sizeof(out), NULL, "--help"), 0);
    assert_non_null(strstr(out, "migrate down N"));
    assert_int_equal(harness_run_hydrant(out, sizeof(out), NULL, "version"), 0);
    assert_non_null(strstr(out, "hydrant 0."));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_errors_name_file_line_key(void **state)
{
    (void)state;
    char path[256], env[300];
    snprintf(path, sizeof(path), "%s/bad-%d.conf", harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    write_file(path, "mode: development\n"
                     "database:\n"
                     "  pool-size: lots\n");
    snprintf(env, sizeof(env), "HYDRANT_CONFIG=%s", path);
    const char *const extra[] = {env, NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), extra, "serve"), 1);
    assert_non_null(strstr(out, path));
    assert_non_null(strstr(out, ":3:"));
    assert_non_null(strstr(out, "database.pool-size"));

    write_file(path, "mode: development\n"
                     "no-such-key: 1\n");
    assert_int_equal(harness_run_hydrant(out, sizeof(out), extra, "serve"), 1);
    assert_non_null(strstr(out, ":2:"));
    assert_non_null(strstr(out, "no-such-key"));
    unlink(path);

    const char *const missing[] = {"HYDRANT_CONFIG=/nonexistent/h2o.conf", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), missing, "serve"), 1);
    assert_non_null(strstr(out, "/nonexistent/h2o.conf"));
}

static void test_production_refuses_weak_secret(void **state)
{
    (void)state;
    const char *const weak[] = {"HYDRANT_MODE=production", "HYDRANT_JWT_SECRET=short", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), weak, "serve"), 1);
    assert_non_null(strstr(out, "secret"));
    /* A long secret still meets the development certificate, which production refuses. */
    assert_int_equal(harness_system("%s/scripts/dev-cert.sh %s/tls >/dev/null",
                                    harness_env("HYDRANT_SOURCE_DIR"),
                                    harness_env("HYDRANT_TEST_SERVICES_DIR")),
                     0);
    const char *const dev_cert[] = {"HYDRANT_MODE=production",
                                    "HYDRANT_JWT_SECRET=0123456789abcdef0123456789abcdef0123", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), dev_cert, "serve"), 1);
    assert_non_null(strstr(out, "certificate"));
}

static void test_migrate_status_lists_applied(void **state)
{
    (void)state;
    assert_int_equal(harness_run_hydrant(out, sizeof(out), NULL, "migrate up"), 0);
    assert_int_equal(harness_run_hydrant(out, sizeof(out), NULL, "migrate status"), 0);
    assert_non_null(strstr(out, "0001_users"));
    assert_non_null(strstr(out, "applied"));
    assert_null(strstr(out, "pending"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_config_errors_name_file_line_key),
        cmocka_unit_test(test_production_refuses_weak_secret),
        cmocka_unit_test(test_migrate_status_lists_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
