/*
 * hydrant's command line: serve, migrate, version, help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "db/db.h"
#include "server/server.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
    fputs("usage: hydrant <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve [-c FILE]                 serve HTTP/2 over TLS and HTTP/1.1 until SIGTERM/SIGINT\n"
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
    const char *args[3]; /* positional arguments after the command */
    int nargs;
} cli_t;

/* Parses the options shared by every command. Returns 0, or -1 on a usage error. */
static int cli_parse(cli_t *cli, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-m") == 0) {
            if (i + 1 >= argc)
                return -1;
            if (argv[i][1] == 'c')
                cli->config_file = argv[++i];
            else
                cli->migrations_dir = argv[++i];
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

static int cmd_serve(const cli_t *cli)
{
    if (cli->nargs != 0)
        return EXIT_USAGE;
    cfg_t cfg;
    if (load_config(&cfg, cli->config_file) != 0)
        return 1;
    int rc = srv_run(&cfg);
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
    if (cli_parse(&cli, argc - 2, argv + 2) == 0) {
        if (strcmp(command, "serve") == 0)
            rc = cmd_serve(&cli);
        else if (strcmp(command, "migrate") == 0)
            rc = cmd_migrate(&cli);
    }
    if (rc == EXIT_USAGE) {
        fprintf(stderr, "hydrant: invalid usage\n");
        usage(stderr);
    }
    return rc;
}
