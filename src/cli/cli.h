/*
 * The operators' commands over blocking libpq: migrations, `hydrant user ...` (create,
 * set-role, disable, import) and `hydrant jobs ...`. Linked only by the hydrant executables
 * (main.c), never by the loop libraries, so no event loop can call them; the build checks
 * that the loop libraries reference no blocking libpq call (tests/check_loop_not_blocking.sh).
 * Each command prints its result to out and its problems to err, and returns the process
 * exit code.
 */
#ifndef HYDRANT_CLI_H
#define HYDRANT_CLI_H

#include <stdio.h>

#include "auth/auth.h"

/* The process exit codes of every command (README's table, `hydrant --help`). */
enum {
    CLI_EXIT_OK = 0,
    /* at run time: the database unreachable or refusing, the server unable to start or stop
     * cleanly (a port taken, a certificate unreadable) */
    CLI_EXIT_FAILURE = 1,
    /* the command line's words: an unknown command or option, a missing or extra argument
     * (one line on stderr; `hydrant --help` has the rest) */
    CLI_EXIT_USAGE = 2,
    /* the values given: an invalid configuration or setting, an invalid email, role,
     * password, id, number or state, an unreadable or malformed file (migrations, import),
     * import rows rejected, an account that exists, a user or job that does not exist (or is
     * not in a state that allows the action) */
    CLI_EXIT_INPUT = 3,
};

/* ------------------------------------------------------------- migrations ---- */

typedef enum { CLI_MIGRATE_UP, CLI_MIGRATE_DOWN, CLI_MIGRATE_STATUS } cli_migrate_action_t;

/* Applies (up), reverts the last `steps` (down) or lists (status) the migrations found in
 * `dir` (NNNN_name.up.sql / NNNN_name.down.sql), each in its own transaction, under a
 * PostgreSQL advisory lock, recording them in schema_migrations. Progress goes to `out`.
 * Returns 0, or with a message in err CLI_EXIT_INPUT for the files (no directory, a bad
 * name, a missing or unreadable file) and CLI_EXIT_FAILURE for the database (unreachable,
 * or refusing a migration). */
int cli_migrate(const char *conninfo, const char *dir, cli_migrate_action_t action, int steps, FILE *out,
                char *err, size_t errlen);

/* ------------------------------------------------------------------ users ---- */

/* `hydrant user ...`, returning the exit code (CLI_EXIT_INPUT for an invalid email, role,
 * password or id, an email taken, no such user). create reads the password (one line) from
 * in and prints the new id. */
int cli_user_create(const char *conninfo, const char *email, const char *role, int confirmed,
                    const auth_argon2_params_t *params, FILE *in, FILE *out, FILE *err);
int cli_user_set_role(const char *conninfo, const char *id, const char *role, FILE *out, FILE *err);
/* disable also publishes session.revoked (every session) on redis_url (NULL: no Redis), so
 * that the user's notification streams end. */
int cli_user_disable(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err);
/* Imports users from CSV (header row) or JSON lines; rejected rows are reported on err by
 * line number. 0 when every row went in; CLI_EXIT_INPUT when some were rejected (the rest
 * went in), the header is unusable or the file unreadable. */
int cli_user_import(const char *conninfo, const char *path, FILE *out, FILE *err);

/* ------------------------------------------------------------------- jobs ---- */

/* `hydrant jobs list|retry|cancel`. Output (one JSON job per line) goes to out. Returns the
 * exit code (CLI_EXIT_INPUT for an invalid state, queue, limit or id, or a job that does not
 * exist or is not in a state that allows the action). */
int cli_jobs_list(const char *conninfo, const char *state, const char *queue, int limit, FILE *out,
                  FILE *err);
int cli_jobs_retry(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err);
/* Every job in `state` (failed or dead), of `kind` and `queue` when not NULL, queued again:
 * each printed, their count on err. 0 also when none matched; 3 for a bad state or queue. */
int cli_jobs_retry_matching(const char *conninfo, const char *redis_url, const char *state, const char *kind,
                            const char *queue, FILE *out, FILE *err);
int cli_jobs_cancel(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err);

#endif
