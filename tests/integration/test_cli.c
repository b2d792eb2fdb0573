/*
 * The command line as operators use it: the exit codes (0 ok, 1 runtime failure, 2 usage
 * error with a one-line hint, 3 bad input), configuration errors that name the file, line
 * and key, production mode refusing weak secrets, migrate reporting status, and `hydrant
 * routes` listing exactly the operations of docs/openapi.yaml.
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

/* Runs `hydrant args` and checks its exit status, printing its output when it differs. */
static void assert_exit(const char *const *env, const char *args, int expected)
{
    int rc = harness_run_hydrant(out, sizeof(out), env, args);
    if (rc != expected)
        fail_msg("'hydrant %s' exited %d, not %d: %s", args, rc, expected, out);
}

/* The command line's words: one line saying what is wrong, not the whole help. */
static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "frobnicate",
                         "serve extra",
                         "worker extra",
                         "routes extra",
                         "settings extra",
                         "migrate",
                         "migrate sideways",
                         "migrate down",
                         "serve -c",
                         "serve --bogus",
                         "jobs",
                         "jobs frobnicate",
                         "jobs retry",
                         "jobs list extra",
                         "user",
                         "user create",
                         "user disable",
                         "user set-role 00000000-0000-4000-8000-000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_exit(NULL, bad[i], 2);
        assert_null(strstr(out, "usage: hydrant"));
        assert_non_null(strstr(out, "'hydrant --help'"));
        assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
    }
}

/* Well-formed commands whose values are refused: 3, with the reason. */
static void test_bad_input_exits_3(void **state)
{
    (void)state;
    assert_exit(NULL, "migrate up", 0); /* the tables the commands look in */
    const char *bad[] = {"migrate down zero",
                         "migrate up -m /nonexistent/migrations",
                         "jobs list --limit 0",
                         "jobs list --limit x",
                         "jobs list --state nonsense",
                         "jobs cancel not-a-job-id",
                         "jobs retry 00000000-0000-4000-8000-000000000000",
                         "user set-role not-a-uuid admin",
                         "user set-role 00000000-0000-4000-8000-000000000000 root",
                         "user disable 00000000-0000-4000-8000-000000000000",
                         "user import /nonexistent/users.csv"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_exit(NULL, bad[i], 3);
        assert_null(strstr(out, "'hydrant --help'"));
    }
    assert_int_equal(harness_run_hydrant_input(out, sizeof(out), NULL, "user create --email not-an-email",
                                               "a long passphrase\n"),
                     3);
    assert_int_equal(
        harness_run_hydrant_input(out, sizeof(out), NULL, "user create --email short@example.com", "short\n"),
        3);
}

/* The database unreachable: 1, for every command that needs it. */
static void test_runtime_failure_exits_1(void **state)
{
    (void)state;
    const char *const down[] = {
        "HYDRANT_DATABASE_URL=postgresql://hydrant@127.0.0.1:1/hydrant?connect_timeout=2", NULL};
    const char *commands[] = {"migrate status", "jobs list",
                              "jobs retry 00000000-0000-4000-8000-000000000000",
                              "user disable 00000000-0000-4000-8000-000000000000"};
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        assert_exit(down, commands[i], 1);
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
    assert_int_equal(harness_run_hydrant(out, sizeof(out), extra, "serve"), 3);
    assert_non_null(strstr(out, path));
    assert_non_null(strstr(out, ":3:"));
    assert_non_null(strstr(out, "database.pool-size"));

    write_file(path, "mode: development\n"
                     "no-such-key: 1\n");
    assert_int_equal(harness_run_hydrant(out, sizeof(out), extra, "serve"), 3);
    assert_non_null(strstr(out, ":2:"));
    assert_non_null(strstr(out, "no-such-key"));
    unlink(path);

    const char *const missing[] = {"HYDRANT_CONFIG=/nonexistent/h2o.conf", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), missing, "serve"), 3);
    assert_non_null(strstr(out, "/nonexistent/h2o.conf"));
}

static void test_production_refuses_weak_secret(void **state)
{
    (void)state;
    const char *const weak[] = {"HYDRANT_MODE=production", "HYDRANT_JWT_SECRET=short", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), weak, "serve"), 3);
    assert_non_null(strstr(out, "secret"));
    /* A long secret still meets the development certificate, which production refuses. */
    assert_int_equal(harness_system("%s/scripts/dev-cert.sh %s/tls >/dev/null",
                                    harness_env("HYDRANT_SOURCE_DIR"),
                                    harness_env("HYDRANT_TEST_SERVICES_DIR")),
                     0);
    const char *const dev_cert[] = {"HYDRANT_MODE=production",
                                    "HYDRANT_JWT_SECRET=0123456789abcdef0123456789abcdef0123", NULL};
    assert_int_equal(harness_run_hydrant(out, sizeof(out), dev_cert, "serve"), 3);
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

#define CLI_MAX_OPERATIONS 128

typedef struct {
    char names[CLI_MAX_OPERATIONS][300]; /* "GET /api/v1/me" */
    int n;
} cli_operations_t;

static void operations_add(cli_operations_t *ops, const char *method, const char *path)
{
    assert_true(ops->n < CLI_MAX_OPERATIONS);
    char *name = ops->names[ops->n++];
    snprintf(name, sizeof(ops->names[0]), "%s %s", method, path);
    for (char *c = name; *c != ' '; c++)
        *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
}

static int operations_has(const cli_operations_t *ops, const char *name)
{
    for (int i = 0; i < ops->n; i++)
        if (strcmp(ops->names[i], name) == 0)
            return 1;
    return 0;
}

/* The operations of docs/openapi.yaml: "  /path:" lines under paths:, then "    get:" etc. */
static void openapi_operations(cli_operations_t *ops)
{
    char path[512], line[512], current[256] = "";
    snprintf(path, sizeof(path), "%s/docs/openapi.yaml", harness_env("HYDRANT_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static const char *const methods[] = {"get", "put", "post", "patch", "delete", "head", "options"};
    int in_paths = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] != ' ' && line[0] != '\0' && line[0] != '#')
            in_paths = strcmp(line, "paths:") == 0;
        else if (in_paths && strncmp(line, "  /", 3) == 0 && line[strlen(line) - 1] == ':')
            snprintf(current, sizeof(current), "%.*s", (int)strlen(line) - 3, line + 2);
        for (size_t m = 0; in_paths && current[0] != '\0' && m < sizeof(methods) / sizeof(methods[0]); m++)
            if (strncmp(line, "    ", 4) == 0 && strncmp(line + 4, methods[m], strlen(methods[m])) == 0 &&
                strcmp(line + 4 + strlen(methods[m]), ":") == 0)
                operations_add(ops, methods[m], current);
    }
    fclose(f);
}

/* `hydrant routes` is built from the route tables the server registers; every operation it
 * lists is documented in docs/openapi.yaml and every documented one is served (the test
 * binary's own routes, family testhooks, aside). */
static void test_routes_match_openapi(void **state)
{
    (void)state;
    const char *const hooks[] = {"HYDRANT_TEST_ROUTES=1", NULL};
    assert_exit(hooks, "routes", 0);
    static cli_operations_t served, documented;
    served.n = documented.n = 0;
    int hook_routes = 0;
    for (char *save = NULL, *row = strtok_r(out, "\n", &save); row != NULL;
         row = strtok_r(NULL, "\n", &save)) {
        char method[16], path[256], family[32];
        assert_int_equal(sscanf(row, "%15s %255s %31s", method, path, family), 3);
        if (strcmp(method, "method") == 0)
            continue; /* the header */
        if (strcmp(family, "testhooks") == 0)
            hook_routes++;
        else
            operations_add(&served, method, path);
    }
    assert_true(hook_routes > 0);
    openapi_operations(&documented);
    assert_true(served.n > 20);
    int missing = 0;
    for (int i = 0; i < served.n; i++)
        if (!operations_has(&documented, served.names[i]))
            missing++, fprintf(stderr, "served but not in docs/openapi.yaml: %s\n", served.names[i]);
    for (int i = 0; i < documented.n; i++)
        if (!operations_has(&served, documented.names[i]))
            missing++, fprintf(stderr, "in docs/openapi.yaml but not served: %s\n", documented.names[i]);
    assert_int_equal(missing, 0);
}

/* `hydrant settings`: one row per setting, with its environment variable and default. */
static void test_settings_lists_every_setting(void **state)
{
    (void)state;
    assert_exit(NULL, "settings", 0);
    assert_non_null(
        strstr(out, "| `database.pool-size` | `HYDRANT_DATABASE_POOL_SIZE` | integer | `2` | 1..64 |"));
    assert_non_null(strstr(out, "| `uploads.max-size` | `HYDRANT_UPLOAD_MAX_SIZE` | size | `100M` |"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_bad_input_exits_3),
        cmocka_unit_test(test_runtime_failure_exits_1),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_config_errors_name_file_line_key),
        cmocka_unit_test(test_production_refuses_weak_secret),
        cmocka_unit_test(test_migrate_status_lists_applied),
        cmocka_unit_test(test_routes_match_openapi),
        cmocka_unit_test(test_settings_lists_every_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
