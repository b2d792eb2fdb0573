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

/* ------------------------------------------------------------- migrations ---- */

typedef enum { CLI_MIGRATE_UP, CLI_MIGRATE_DOWN, CLI_MIGRATE_STATUS } cli_migrate_action_t;

/* Applies (up), reverts the last `steps` (down) or lists (status) the migrations found in
 * `dir` (NNNN_name.up.sql / NNNN_name.down.sql), each in its own transaction, under a
 * PostgreSQL advisory lock, recording them in schema_migrations. Progress goes to `out`.
 * Returns 0, or -1 with a message in err. */
int cli_migrate(const char *conninfo, const char *dir, cli_migrate_action_t action, int steps, FILE *out,
                char *err, size_t errlen);

/* ------------------------------------------------------------------ users ---- */

/* `hydrant user ...`. Exit codes: 0, 1 failure, 2 bad input, 3 no such user. create reads the
 * password (one line) from in and prints the new id. */
int cli_user_create(const char *conninfo, const char *email, const char *role, int confirmed,
                    const auth_argon2_params_t *params, FILE *in, FILE *out, FILE *err);
int cli_user_set_role(const char *conninfo, const char *id, const char *role, FILE *out, FILE *err);
int cli_user_disable(const char *conninfo, const char *id, FILE *out, FILE *err);
/* Imports users from CSV (header row) or JSON lines; rejected rows are reported on err by
 * line number. 0 when every row went in, 1 when some were rejected, 2 unreadable file. */
int cli_user_import(const char *conninfo, const char *path, FILE *out, FILE *err);

/* ------------------------------------------------------------------- jobs ---- */

/* `hydrant jobs list|retry|cancel`. Output (one JSON job per line) goes to out. Exit codes:
 * 0, 1 on failure, 3 when the job does not exist or is not in a state that allows the
 * action. */
int cli_jobs_list(const char *conninfo, const char *state, const char *queue, int limit, FILE *out,
                  FILE *err);
int cli_jobs_retry(const char *conninfo, const char *id, FILE *out, FILE *err);
int cli_jobs_cancel(const char *conninfo, const char *id, FILE *out, FILE *err);

#endif
