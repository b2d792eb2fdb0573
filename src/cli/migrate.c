/*
 * Schema migrations: migrations/NNNN_name.up.sql and NNNN_name.down.sql, applied in order,
 * each in its own transaction, recorded in schema_migrations, under an advisory lock so
 * that several instances starting together apply each migration once. Blocking libpq: this
 * runs from the command line only, never on an event loop.
 */
#include "cli/cli.h"

#include <libpq-fe.h>

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MIGRATE_MAX      1000
#define MIGRATE_FILE_MAX (1024 * 1024)
#define MIGRATE_LOCK_KEY "7248615948616342" /* "hydrant migrations", any fixed 64-bit value */

typedef struct {
    int version;
    char name[96];
    int has_up, has_down;
    int applied;
    char applied_at[64];
} migration_t;

typedef struct {
    migration_t items[MIGRATE_MAX];
    int count;
} migration_set_t;

/* A problem with the migration files: the message, and the exit code for bad input. */
static int migrate_fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return CLI_EXIT_INPUT;
}

/* NNNN_name.up.sql / .down.sql with name in [a-z0-9_]. Returns 1 for up, 2 for down, 0 for
 * a file that is not a migration, -1 for a malformed name. */
static int migrate_parse_name(const char *file, int *version, char *name, size_t namelen)
{
    size_t len = strlen(file);
    int kind = 0;
    if (len > 7 && strcmp(file + len - 7, ".up.sql") == 0)
        kind = 1, len -= 7;
    else if (len > 9 && strcmp(file + len - 9, ".down.sql") == 0)
        kind = 2, len -= 9;
    else
        return strstr(file, ".sql") != NULL ? -1 : 0;
    if (len < 6 || file[4] != '_' || len - 5 >= namelen)
        return -1;
    for (int i = 0; i < 4; i++)
        if (file[i] < '0' || file[i] > '9')
            return -1;
    for (size_t i = 5; i < len; i++)
        if (!((file[i] >= 'a' && file[i] <= 'z') || (file[i] >= '0' && file[i] <= '9') || file[i] == '_'))
            return -1;
    *version = atoi(file);
    memcpy(name, file, len);
    name[len] = '\0';
    return kind;
}

static migration_t *migrate_find(migration_set_t *set, int version)
{
    for (int i = 0; i < set->count; i++)
        if (set->items[i].version == version)
            return &set->items[i];
    return NULL;
}

static int migrate_compare(const void *a, const void *b)
{
    return ((const migration_t *)a)->version - ((const migration_t *)b)->version;
}

static int migrate_scan(const char *dir, migration_set_t *set, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return migrate_fail(err, errlen, "cannot open the migrations directory %s%s", dir, "");
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        int version;
        char name[96];
        int kind = migrate_parse_name(e->d_name, &version, name, sizeof(name));
        if (kind == 0)
            continue;
        if (kind < 0) {
            rc = migrate_fail(err, errlen, "bad migration file name %s (want NNNN_name.up.sql)%s", e->d_name,
                              "");
            break;
        }
        migration_t *m = migrate_find(set, version);
        if (m == NULL && set->count == MIGRATE_MAX) {
            rc = migrate_fail(err, errlen, "too many migrations in %s%s", dir, "");
            break;
        }
        if (m == NULL) {
            m = &set->items[set->count++];
            memset(m, 0, sizeof(*m));
            m->version = version;
            snprintf(m->name, sizeof(m->name), "%s", name);
        } else if (strcmp(m->name, name) != 0) {
            rc = migrate_fail(err, errlen, "two migrations share a version: %s and %s", m->name, name);
            break;
        }
        if ((kind == 1 && m->has_up) || (kind == 2 && m->has_down))
            rc = migrate_fail(err, errlen, "duplicate migration file %s%s", e->d_name, "");
        m->has_up |= kind == 1;
        m->has_down |= kind == 2;
    }
    closedir(d);
    for (int i = 0; rc == 0 && i < set->count; i++)
        if (!set->items[i].has_up)
            rc = migrate_fail(err, errlen, "migration %s has no .up.sql file%s", set->items[i].name, "");
    qsort(set->items, (size_t)set->count, sizeof(migration_t), migrate_compare);
    return rc;
}

static char *migrate_read(const char *dir, const char *name, const char *suffix, char *err, size_t errlen)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || st.st_size > MIGRATE_FILE_MAX) {
        if (f != NULL)
            fclose(f);
        migrate_fail(err, errlen, "cannot read %s (missing or over 1 MiB)%s", path, "");
        return NULL;
    }
    char *sql = malloc((size_t)st.st_size + 1);
    size_t n = sql != NULL ? fread(sql, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (sql == NULL || n != (size_t)st.st_size) {
        free(sql);
        migrate_fail(err, errlen, "cannot read %s%s", path, "");
        return NULL;
    }
    sql[n] = '\0';
    return sql;
}

/* Runs one statement (or script) and reports the server's message on failure. */
static int migrate_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
    if (!ok)
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : CLI_EXIT_FAILURE;
}

/* The columns of migrate_load_applied's SELECT, in order (not a registry statement: the
 * migrator runs before the tables the registry's statements need exist). */
enum { MIGRATE_COL_VERSION, MIGRATE_COL_NAME, MIGRATE_COL_APPLIED_AT };

static int migrate_load_applied(PGconn *conn, migration_set_t *set, FILE *out, char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', "
                                 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(res));
        PQclear(res);
        return CLI_EXIT_FAILURE;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        migration_t *m = migrate_find(set, atoi(PQgetvalue(res, i, MIGRATE_COL_VERSION)));
        if (m == NULL) {
            if (out != NULL)
                fprintf(out, "warning: applied migration %s has no file\n",
                        PQgetvalue(res, i, MIGRATE_COL_NAME));
            continue;
        }
        m->applied = 1;
        snprintf(m->applied_at, sizeof(m->applied_at), "%s", PQgetvalue(res, i, MIGRATE_COL_APPLIED_AT));
    }
    PQclear(res);
    return 0;
}

/* BEGIN; script; record; COMMIT — or ROLLBACK with the server's message. */
static int migrate_step(PGconn *conn, const char *dir, const migration_t *m, int up, FILE *out, char *err,
                        size_t errlen)
{
    char *sql = migrate_read(dir, m->name, up ? ".up.sql" : ".down.sql", err, errlen);
    if (sql == NULL)
        return CLI_EXIT_INPUT;
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name};
    int rc = migrate_exec(conn, "BEGIN", err, errlen);
    if (rc == 0)
        rc = migrate_exec(conn, sql, err, errlen);
    if (rc == 0) {
        PGresult *res =
            up ? PQexecParams(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                              params, NULL, NULL, 0)
               : PQexecParams(conn, "DELETE FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL,
                              NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(res));
            rc = CLI_EXIT_FAILURE;
        }
        PQclear(res);
    }
    if (rc == 0)
        rc = migrate_exec(conn, "COMMIT", err, errlen);
    if (rc != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        char ignored[64];
        migrate_exec(conn, "ROLLBACK", ignored, sizeof(ignored));
        snprintf(err, errlen, "%s %s: %s", up ? "applying" : "reverting", m->name, why);
    } else if (out != NULL) {
        fprintf(out, "%s %s\n", up ? "applied" : "reverted", m->name);
    }
    free(sql);
    return rc;
}

static int migrate_run(PGconn *conn, const char *dir, migration_set_t *set, cli_migrate_action_t action,
                       int steps, FILE *out, char *err, size_t errlen)
{
    int rc = migrate_load_applied(conn, set, out, err, errlen);
    if (rc != 0)
        return rc;
    if (action == CLI_MIGRATE_STATUS) {
        for (int i = 0; i < set->count; i++)
            fprintf(out, "%-8s %s %s\n", set->items[i].applied ? "applied" : "pending", set->items[i].name,
                    set->items[i].applied_at);
        return 0;
    }
    if (action == CLI_MIGRATE_UP) {
        for (int i = 0; i < set->count; i++)
            if (!set->items[i].applied &&
                (rc = migrate_step(conn, dir, &set->items[i], 1, out, err, errlen)) != 0)
                return rc;
        return 0;
    }
    /* down: check every file first, so a missing one stops before anything changes */
    int todo[MIGRATE_MAX], n = 0;
    for (int i = set->count - 1; i >= 0 && n < steps; i--) {
        if (!set->items[i].applied)
            continue;
        if (!set->items[i].has_down)
            return migrate_fail(err, errlen, "migration %s has no .down.sql file%s", set->items[i].name, "");
        todo[n++] = i;
    }
    for (int k = 0; k < n && rc == 0; k++)
        rc = migrate_step(conn, dir, &set->items[todo[k]], 0, out, err, errlen);
    return rc;
}

int cli_migrate(const char *conninfo, const char *dir, cli_migrate_action_t action, int steps, FILE *out,
                char *err, size_t errlen)
{
    migration_set_t *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        snprintf(err, errlen, "out of memory");
        return CLI_EXIT_FAILURE;
    }
    int rc = migrate_scan(dir, set, err, errlen);
    PGconn *conn = NULL;
    if (rc == 0) {
        conn = PQconnectdb(conninfo);
        if (PQstatus(conn) != CONNECTION_OK) {
            snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(conn));
            rc = CLI_EXIT_FAILURE;
        }
    }
    if (rc == 0) {
        /* Quiet "relation already exists" notices from CREATE TABLE IF NOT EXISTS. */
        char ignored[64];
        migrate_exec(conn, "SET client_min_messages = warning", ignored, sizeof(ignored));
        rc = migrate_exec(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", err, errlen);
        if (rc == 0) {
            rc = migrate_exec(conn,
                              "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                              "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                              err, errlen);
            if (rc == 0)
                rc = migrate_run(conn, dir, set, action, steps, out, err, errlen);
            migrate_exec(conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", ignored, sizeof(ignored));
        }
    }
    PQfinish(conn);
    free(set);
    return rc;
}
