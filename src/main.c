/*
 * hydrant's command line: serve, worker, jobs, user, migrate, routes, settings, version, help.
 * The exit codes (0 ok, 1 runtime failure, 2 usage error, 3 bad input) are defined in cli/cli.h.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "handlers/handlers.h"
#include "jobs/jobs.h"
#include "server/server.h"
#include "util/util.h"
/* The test suite's binary, hydrant-test, is this file compiled with HYDRANT_TEST_HOOKS and
 * linked with src/testhooks (test job kinds and routes); hydrant has none of them. */
#ifdef HYDRANT_TEST_HOOKS
#include "testhooks/testhooks.h"
#define TEST_JOBS(registry, cfg, err, len) testhooks_jobs_register(registry, cfg, err, len)
#define TEST_ROUTES                        testhooks_routes_register
#else
#define TEST_JOBS(registry, cfg, err, len) 0
#define TEST_ROUTES                        NULL
#endif

static void usage(FILE *out)
{
    fputs("usage: hydrant <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [-c FILE]                 serve HTTP/2 over TLS and HTTP/1.1 until SIGTERM/SIGINT,\n"
          "                                  with the job workers unless jobs.enabled is false\n"
          "  worker [-c FILE]                run only the job workers until SIGTERM/SIGINT\n"
          "  jobs list [--state S] [--queue Q] [--limit N]\n"
          "                                  print jobs, newest first, one JSON object per line\n"
          "  jobs retry ID                   queue a failed or dead job again\n"
          "  jobs retry --state S [--kind K] [--queue Q]\n"
          "                                  queue every failed or dead job (of kind K) again\n"
          "  jobs cancel ID                  cancel a queued or retrying job\n"
          "  user create --email E [--role R] [--unconfirmed]\n"
          "                                  make an account (role user, superuser or admin; the\n"
          "                                  password is read from standard input)\n"
          "  user set-role ID R              change a user's role\n"
          "  user disable ID                 disable a user and end every session\n"
          "  user import FILE                users with their hashes from CSV or JSON lines\n"
          "  migrate up [-c FILE]            apply every pending migration\n"
          "  migrate down N [-c FILE]        revert the last N migrations\n"
          "  migrate status [-c FILE]        list applied and pending migrations\n"
          "  routes                          print every route: method, path, family (the handlers\n"
          "                                  file, docs/ARCHITECTURE.md \"Routes\") and flags\n"
          "  settings                        print every setting: YAML name, environment variable,\n"
          "                                  type, default and range (docs/SETTINGS.md)\n"
          "  version                         print the version\n"
          "  --help                          print this help\n"
          "\n"
          "options:\n"
          "  -c FILE    configuration file (default: $HYDRANT_CONFIG, else ./h2o.conf if present)\n"
          "  -m DIR     migrations directory (default: $HYDRANT_MIGRATIONS_DIR, else ./migrations)\n"
          "\n"
          "Every setting can be overridden by a HYDRANT_* environment variable; see 'hydrant settings'.\n"
          "\n"
          "exit codes:\n"
          "  0  success\n"
          "  1  runtime failure: the database unreachable or refusing, the server unable to start\n"
          "  2  usage error: an unknown command or option, a missing or extra argument\n"
          "  3  bad input: an invalid configuration or value (email, role, password, id, number),\n"
          "     an unreadable or malformed file, import rows rejected, an email taken, no such\n"
          "     user or job (or not in a state that allows the action)\n",
          out);
}

/* A usage error: one line saying what is wrong, not the whole help. This and input_error
 * answer the person who typed the command, so they are plain text; the program's own
 * diagnostics go through util_log. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hydrant: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; 'hydrant --help' lists the commands\n", stderr);
    return CLI_EXIT_USAGE;
}

/* A value the command cannot take. */
__attribute__((format(printf, 1, 2))) static int input_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hydrant: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_INPUT;
}

typedef struct {
    const char *config_file;
    const char *migrations_dir;
    const char *state, *queue, *limit, *kind; /* jobs list and retry filters */
    const char *email, *role;                 /* user create */
    int unconfirmed;
    const char *args[3]; /* positional arguments after the command */
    int nargs;
} cli_t;

/* The option taking a value named `name`, or NULL. */
static const char **cli_option(cli_t *cli, const char *name)
{
    if (strcmp(name, "-c") == 0)
        return &cli->config_file;
    if (strcmp(name, "-m") == 0)
        return &cli->migrations_dir;
    if (strcmp(name, "--state") == 0)
        return &cli->state;
    if (strcmp(name, "--queue") == 0)
        return &cli->queue;
    if (strcmp(name, "--limit") == 0)
        return &cli->limit;
    if (strcmp(name, "--kind") == 0)
        return &cli->kind;
    if (strcmp(name, "--email") == 0)
        return &cli->email;
    if (strcmp(name, "--role") == 0)
        return &cli->role;
    return NULL;
}

/* Parses the options shared by every command. Returns 0, or CLI_EXIT_USAGE after saying why. */
static int cli_parse(cli_t *cli, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char **value = cli_option(cli, argv[i]);
        if (strcmp(argv[i], "--unconfirmed") == 0) {
            cli->unconfirmed = 1;
        } else if (value != NULL) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", argv[i]);
            *value = argv[++i];
        } else if (argv[i][0] == '-') {
            return usage_error("unknown option %s", argv[i]);
        } else if (cli->nargs >= 3) {
            return usage_error("unexpected argument %s", argv[i]);
        } else {
            cli->args[cli->nargs++] = argv[i];
        }
    }
    return 0;
}

/* Returns 0, or CLI_EXIT_INPUT after logging why. Sets util_log's threshold and format from
 * log.level and log.format (cfg_load has checked them). */
static int load_config(cfg_t *cfg, const char *path)
{
    char err[CFG_ERR_LEN];
    if (cfg_load(cfg, path, err, sizeof(err)) != 0) {
        util_log(UTIL_LOG_ERROR, "config", "configuration error: %s", err);
        cfg_free(cfg);
        return CLI_EXIT_INPUT;
    }
    util_log_level_t level = UTIL_LOG_INFO;
    util_log_encoding_t encoding = UTIL_LOG_TEXT;
    util_log_level_parse(cfg->log.level, &level);
    util_log_encoding_parse(cfg->log.format, &encoding);
    util_log_configure(level, encoding);
    return 0;
}

/* The job registry and pool for serve and worker. Returns 0, or -1 after printing why. */
static int start_jobs(const cfg_t *cfg, jobs_registry_t **registry, jobs_pool_t **pool)
{
    char err[256] = "out of memory";
    *pool = NULL;
    *registry = jobs_registry_new();
    if (*registry != NULL && jobs_register_builtin(*registry, cfg, err, sizeof(err)) == 0 &&
        TEST_JOBS(*registry, cfg, err, sizeof(err)) == 0) {
        jobs_pool_options_t options = {
            .cfg = cfg,
            .registry = *registry,
            .workers = {cfg->jobs.workers_short, cfg->jobs.workers_medium, cfg->jobs.workers_long},
            .periodic = 1,
        };
        *pool = jobs_pool_start(&options, err, sizeof(err));
    }
    if (*pool != NULL)
        return 0;
    util_log(UTIL_LOG_ERROR, "jobs", "%s", err);
    jobs_registry_free(*registry);
    *registry = NULL;
    return -1;
}

/* Any argument is a usage error for serve and worker. */
static int no_arguments(const cli_t *cli, const char *command)
{
    return cli->nargs == 0 ? 0 : usage_error("%s takes no argument, got %s", command, cli->args[0]);
}

static int cmd_serve(const cli_t *cli)
{
    cfg_t cfg;
    int rc = no_arguments(cli, "serve");
    if (rc != 0 || (rc = load_config(&cfg, cli->config_file)) != 0)
        return rc;
    srv_process_init(); /* before the job workers start */
    jobs_registry_t *registry = NULL;
    jobs_pool_t *pool = NULL;
    rc = CLI_EXIT_FAILURE;
    if (!cfg.jobs.enabled || start_jobs(&cfg, &registry, &pool) == 0)
        rc = srv_run(&cfg, pool, TEST_ROUTES); /* stops the pool */
    jobs_registry_free(registry);
    cfg_free(&cfg);
    return rc;
}

/* Waits for SIGTERM or SIGINT; a second one ends the process at once. */
static void wait_for_stop_signal(const sigset_t *set)
{
    int signum = 0;
    sigwait(set, &signum);
    util_log(UTIL_LOG_INFO, "worker", "signal %d, stopping the workers", signum);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
}

static int cmd_worker(const cli_t *cli)
{
    cfg_t cfg;
    int rc = no_arguments(cli, "worker");
    if (rc != 0 || (rc = load_config(&cfg, cli->config_file)) != 0)
        return rc;
    /* Blocked before the threads start, so that only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    jobs_registry_t *registry = NULL;
    jobs_pool_t *pool = NULL;
    rc = CLI_EXIT_FAILURE;
    if (start_jobs(&cfg, &registry, &pool) == 0) {
        util_log(UTIL_LOG_INFO, "worker", "worker %s running %d short, %d medium, %d long worker thread(s)",
                 jobs_pool_owner(pool), cfg.jobs.workers_short, cfg.jobs.workers_medium,
                 cfg.jobs.workers_long);
        wait_for_stop_signal(&set);
        jobs_pool_stop(pool);
        jobs_pool_free(pool);
        util_log(UTIL_LOG_INFO, "worker", "stopped");
        rc = CLI_EXIT_OK;
    }
    jobs_registry_free(registry);
    cfg_free(&cfg);
    return rc;
}

/* A whole decimal number in [min, max], or -1. */
static long parse_number(const char *s, long min, long max)
{
    char *end = NULL;
    long n = strtol(s, &end, 10);
    return end != s && *end == '\0' && n >= min && n <= max ? n : -1;
}

static int cmd_jobs(const cli_t *cli)
{
    const char *action = cli->nargs > 0 ? cli->args[0] : "";
    int list = strcmp(action, "list") == 0;
    /* retry by filter: `jobs retry --state S [--kind K] [--queue Q]` */
    int matching = strcmp(action, "retry") == 0 && cli->nargs == 1 && cli->state != NULL && !cli->limit;
    if (!list && strcmp(action, "retry") != 0 && strcmp(action, "cancel") != 0)
        return usage_error("jobs needs list, retry ID or cancel ID");
    if (list ? cli->nargs != 1 || cli->kind
             : !matching && (cli->nargs != 2 || cli->state || cli->queue || cli->limit || cli->kind))
        return usage_error("jobs %s", list ? "list takes only --state, --queue and --limit"
                                           : "retry and cancel take one job id and no option, or retry "
                                             "--state dead|failed [--kind K] [--queue Q]");
    long limit = cli->limit != NULL ? parse_number(cli->limit, 1, 100000) : 50;
    if (limit < 0)
        return input_error("jobs list: --limit is a number from 1 to 100000");
    cfg_t cfg;
    int rc = load_config(&cfg, cli->config_file);
    if (rc != 0)
        return rc;
    if (list)
        rc = cli_jobs_list(cfg.database.url, cli->state, cli->queue, (int)limit, stdout, stderr);
    else if (matching)
        rc = cli_jobs_retry_matching(cfg.database.url, cfg.redis.url, cli->state, cli->kind, cli->queue,
                                     stdout, stderr);
    else if (strcmp(action, "retry") == 0)
        rc = cli_jobs_retry(cfg.database.url, cfg.redis.url, cli->args[1], stdout, stderr);
    else
        rc = cli_jobs_cancel(cfg.database.url, cfg.redis.url, cli->args[1], stdout, stderr);
    cfg_free(&cfg);
    return rc;
}

static int cmd_migrate(const cli_t *cli)
{
    cli_migrate_action_t action;
    long steps = 0;
    if (cli->nargs == 1 && strcmp(cli->args[0], "up") == 0)
        action = CLI_MIGRATE_UP;
    else if (cli->nargs == 1 && strcmp(cli->args[0], "status") == 0)
        action = CLI_MIGRATE_STATUS;
    else if (cli->nargs == 2 && strcmp(cli->args[0], "down") == 0)
        action = CLI_MIGRATE_DOWN;
    else
        return usage_error("migrate needs up, down N or status");
    if (action == CLI_MIGRATE_DOWN && (steps = parse_number(cli->args[1], 1, 10000)) < 0)
        return input_error("migrate down: N is a number from 1 to 10000");
    cfg_t cfg;
    int rc = load_config(&cfg, cli->config_file);
    if (rc != 0)
        return rc;
    const char *dir = cli->migrations_dir;
    if (dir == NULL)
        dir = getenv("HYDRANT_MIGRATIONS_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "migrations";
    char err[512];
    rc = cli_migrate(cfg.database.url, dir, action, (int)steps, stdout, err, sizeof(err));
    if (rc != 0)
        util_log(UTIL_LOG_ERROR, "migrate", "%s", err);
    cfg_free(&cfg);
    return rc;
}

static int cmd_user(const cli_t *cli)
{
    const char *action = cli->nargs > 0 ? cli->args[0] : "";
    int create = strcmp(action, "create") == 0;
    int shape = create ? cli->nargs == 1 && cli->email != NULL
                       : cli->email == NULL && cli->role == NULL && !cli->unconfirmed &&
                             ((strcmp(action, "set-role") == 0 && cli->nargs == 3) ||
                              (strcmp(action, "disable") == 0 && cli->nargs == 2) ||
                              (strcmp(action, "import") == 0 && cli->nargs == 2));
    if (!shape)
        return usage_error("user needs create --email E [--role R] [--unconfirmed], set-role ID ROLE, "
                           "disable ID or import FILE");
    cfg_t cfg;
    int rc = load_config(&cfg, cli->config_file);
    if (rc != 0)
        return rc;
    if (create) {
        auth_argon2_params_t params = {(uint32_t)cfg.auth.argon2_memory_kib,
                                       (uint32_t)cfg.auth.argon2_iterations,
                                       (uint32_t)cfg.auth.argon2_parallelism};
        rc = cli_user_create(cfg.database.url, cli->email, cli->role != NULL ? cli->role : "user",
                             !cli->unconfirmed, &params, stdin, stdout, stderr);
    } else if (strcmp(action, "import") == 0) {
        rc = cli_user_import(cfg.database.url, cli->args[1], stdout, stderr);
    } else if (strcmp(action, "set-role") == 0) {
        rc = cli_user_set_role(cfg.database.url, cli->args[1], cli->args[2], stdout, stderr);
    } else {
        rc = cli_user_disable(cfg.database.url, cfg.redis.url, cli->args[1], stdout, stderr);
    }
    cfg_free(&cfg);
    return rc;
}

/* The router as serve builds it (hydrant-test's hooks included when switched on). */
static int cmd_routes(const cli_t *cli)
{
    int rc = no_arguments(cli, "routes");
    if (rc != 0)
        return rc;
    cfg_t cfg; /* the defaults: no route depends on the configuration */
    cfg_init_defaults(&cfg);
    char err[256];
    rc = handlers_routes_print(stdout, &cfg, TEST_ROUTES, err, sizeof(err));
    cfg_free(&cfg);
    if (rc != 0)
        util_log(UTIL_LOG_ERROR, "routes", "%s", err);
    return rc != 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int cmd_settings(const cli_t *cli)
{
    int rc = no_arguments(cli, "settings");
    if (rc != 0)
        return rc;
    char err[256];
    if (cfg_settings_print(stdout, err, sizeof(err)) == 0)
        return CLI_EXIT_OK;
    util_log(UTIL_LOG_ERROR, "config", "%s", err);
    return CLI_EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command given");
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("hydrant %s\n", HYDRANT_VERSION);
        return CLI_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*run)(const cli_t *cli);
    } commands[] = {{"serve", cmd_serve},      {"worker", cmd_worker},   {"jobs", cmd_jobs},
                    {"user", cmd_user},        {"migrate", cmd_migrate}, {"routes", cmd_routes},
                    {"settings", cmd_settings}};
    int (*run)(const cli_t *cli) = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(command, commands[i].name) == 0)
            run = commands[i].run;
    if (run == NULL)
        return usage_error("unknown command %s", command);
    /* Before any thread exists: libcurl's global setup is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        util_log(UTIL_LOG_ERROR, "hydrant", "cannot initialise libcurl");
        return CLI_EXIT_FAILURE;
    }
    cli_t cli = {0};
    int rc = cli_parse(&cli, argc - 2, argv + 2);
    if (rc == 0)
        rc = run(&cli);
    curl_global_cleanup();
    return rc;
}
