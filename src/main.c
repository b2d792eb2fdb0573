/*
 * hydrant's command line: serve, worker, jobs, migrate, version, help.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "config/config.h"
#include "db/db.h"
#include "jobs/jobs.h"
#include "server/server.h"

#define EXIT_USAGE 2

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
          "  version                         print the version\n"
          "  --help                          print this help\n"
          "\n"
          "options:\n"
          "  -c FILE    configuration file (default: $HYDRANT_CONFIG, else ./h2o.conf if present)\n"
          "  -m DIR     migrations directory (default: $HYDRANT_MIGRATIONS_DIR, else ./migrations)\n"
          "\n"
          "Every setting can be overridden by a HYDRANT_* environment variable; see README.md.\n",
          out);
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

/* Parses the options shared by every command. Returns 0, or -1 on a usage error. */
static int cli_parse(cli_t *cli, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char **value = cli_option(cli, argv[i]);
        if (strcmp(argv[i], "--unconfirmed") == 0) {
            cli->unconfirmed = 1;
        } else if (value != NULL) {
            if (i + 1 >= argc)
                return -1;
            *value = argv[++i];
        } else if (argv[i][0] == '-' || cli->nargs >= 3) {
            return -1;
        } else {
            cli->args[cli->nargs++] = argv[i];
        }
    }
    return 0;
}

static int load_config(cfg_t *cfg, const char *path)
{
    char err[CFG_ERR_LEN];
    if (cfg_load(cfg, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "hydrant: configuration error: %s\n", err);
        cfg_free(cfg);
        return -1;
    }
    return 0;
}

/* The job registry and pool for serve and worker. Returns 0, or -1 after printing why. */
static int start_jobs(const cfg_t *cfg, jobs_registry_t **registry, jobs_pool_t **pool)
{
    char err[256] = "out of memory";
    *pool = NULL;
    *registry = jobs_registry_new();
    if (*registry != NULL && jobs_register_builtin(*registry, cfg, err, sizeof(err)) == 0) {
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
    fprintf(stderr, "hydrant: %s\n", err);
    jobs_registry_free(*registry);
    *registry = NULL;
    return -1;
}

static int cmd_serve(const cli_t *cli)
{
    if (cli->nargs != 0)
        return EXIT_USAGE;
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    jobs_registry_t *registry = NULL;
    jobs_pool_t *pool = NULL;
    int rc = 1;
    if (!cfg.jobs.enabled || start_jobs(&cfg, &registry, &pool) == 0)
        rc = srv_run(&cfg, pool); /* stops the pool */
    jobs_registry_free(registry);
    cfg_free(&cfg);
    return rc;
}

/* Waits for SIGTERM or SIGINT; a second one ends the process at once. */
static void wait_for_stop_signal(const sigset_t *set)
{
    int signum = 0;
    sigwait(set, &signum);
    fprintf(stderr, "hydrant: signal %d, stopping the workers\n", signum);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
}

static int cmd_worker(const cli_t *cli)
{
    if (cli->nargs != 0)
        return EXIT_USAGE;
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    /* Blocked before the threads start, so that only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    jobs_registry_t *registry = NULL;
    jobs_pool_t *pool = NULL;
    int rc = 1;
    if (start_jobs(&cfg, &registry, &pool) == 0) {
        fprintf(stderr, "hydrant: worker %s running %d short, %d medium, %d long worker thread(s)\n",
                jobs_pool_owner(pool), cfg.jobs.workers_short, cfg.jobs.workers_medium,
                cfg.jobs.workers_long);
        wait_for_stop_signal(&set);
        jobs_pool_stop(pool);
        jobs_pool_free(pool);
        fprintf(stderr, "hydrant: stopped\n");
        rc = 0;
    }
    jobs_registry_free(registry);
    cfg_free(&cfg);
    return rc;
}

static int cmd_jobs(const cli_t *cli)
{
    if (cli->nargs < 1)
        return EXIT_USAGE;
    const char *action = cli->args[0];
    int list = strcmp(action, "list") == 0;
    /* retry by filter: `jobs retry --state S [--kind K] [--queue Q]` */
    int matching = strcmp(action, "retry") == 0 && cli->nargs == 1 && cli->state != NULL && !cli->limit;
    if (list ? cli->nargs != 1 || cli->kind
             : !matching && (cli->nargs != 2 || cli->state || cli->queue || cli->limit || cli->kind))
        return EXIT_USAGE;
    if (!list && strcmp(action, "retry") != 0 && strcmp(action, "cancel") != 0)
        return EXIT_USAGE;
    int limit = 50;
    if (cli->limit != NULL) {
        char *end = NULL;
        long n = strtol(cli->limit, &end, 10);
        if (end == cli->limit || *end != '\0' || n < 1 || n > 100000)
            return EXIT_USAGE;
        limit = (int)n;
    }
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    int rc;
    if (list)
        rc = jobs_cli_list(cfg.database.url, cli->state, cli->queue, limit, stdout, stderr);
    else if (matching)
        rc = jobs_cli_retry_matching(cfg.database.url, cli->state, cli->kind, cli->queue, stdout, stderr);
    else if (strcmp(action, "retry") == 0)
        rc = jobs_cli_retry(cfg.database.url, cli->args[1], stdout, stderr);
    else
        rc = jobs_cli_cancel(cfg.database.url, cli->args[1], stdout, stderr);
    cfg_free(&cfg);
    return rc;
}

static int parse_steps(const char *s)
{
    char *end = NULL;
    long n = strtol(s, &end, 10);
    return (end != s && *end == '\0' && n > 0 && n <= 10000) ? (int)n : -1;
}

static int cmd_migrate(const cli_t *cli)
{
    db_migrate_action_t action;
    int steps = 0;
    if (cli->nargs == 1 && strcmp(cli->args[0], "up") == 0)
        action = DB_MIGRATE_UP;
    else if (cli->nargs == 1 && strcmp(cli->args[0], "status") == 0)
        action = DB_MIGRATE_STATUS;
    else if (cli->nargs == 2 && strcmp(cli->args[0], "down") == 0 && (steps = parse_steps(cli->args[1])) > 0)
        action = DB_MIGRATE_DOWN;
    else
        return EXIT_USAGE;
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    const char *dir = cli->migrations_dir;
    if (dir == NULL)
        dir = getenv("HYDRANT_MIGRATIONS_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "migrations";
    char err[512];
    int rc = db_migrate(cfg.database.url, dir, action, steps, stdout, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "hydrant: migrate: %s\n", err);
    cfg_free(&cfg);
    return rc == 0 ? 0 : 1;
}

static int cmd_user(const cli_t *cli)
{
    const char *action = cli->nargs > 0 ? cli->args[0] : "";
    int create = strcmp(action, "create") == 0;
    if (create ? (cli->nargs != 1 || cli->email == NULL)
               : (cli->email != NULL || cli->role != NULL || cli->unconfirmed))
        return EXIT_USAGE;
    if (!create && !((strcmp(action, "set-role") == 0 && cli->nargs == 3) ||
                     (strcmp(action, "disable") == 0 && cli->nargs == 2) ||
                     (strcmp(action, "import") == 0 && cli->nargs == 2)))
        return EXIT_USAGE;
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    int rc;
    if (create) {
        auth_argon2_params_t params = {(uint32_t)cfg.auth.argon2_memory_kib,
                                       (uint32_t)cfg.auth.argon2_iterations,
                                       (uint32_t)cfg.auth.argon2_parallelism};
        rc = auth_cli_user_create(cfg.database.url, cli->email, cli->role != NULL ? cli->role : "user",
                                  !cli->unconfirmed, &params, stdin, stdout, stderr);
    } else if (strcmp(action, "import") == 0) {
        rc = auth_cli_user_import(cfg.database.url, cli->args[1], stdout, stderr);
    } else if (strcmp(action, "set-role") == 0) {
        rc = auth_cli_user_set_role(cfg.database.url, cli->args[1], cli->args[2], stdout, stderr);
    } else {
        rc = auth_cli_user_disable(cfg.database.url, cli->args[1], stdout, stderr);
    }
    cfg_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("hydrant %s\n", HYDRANT_VERSION);
        return 0;
    }
    cli_t cli = {0};
    int rc = EXIT_USAGE;
    /* Before any thread exists: libcurl's global setup is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "hydrant: cannot initialise libcurl\n");
        return 1;
    }
    if (cli_parse(&cli, argc - 2, argv + 2) == 0) {
        if (strcmp(command, "serve") == 0)
            rc = cmd_serve(&cli);
        else if (strcmp(command, "worker") == 0)
            rc = cmd_worker(&cli);
        else if (strcmp(command, "jobs") == 0)
            rc = cmd_jobs(&cli);
        else if (strcmp(command, "user") == 0)
            rc = cmd_user(&cli);
        else if (strcmp(command, "migrate") == 0)
            rc = cmd_migrate(&cli);
    }
    curl_global_cleanup();
    if (rc == EXIT_USAGE) {
        fprintf(stderr, "hydrant: invalid usage\n");
        usage(stderr);
    }
    return rc;
}
