/*
 * `hydrant user create | set-role | disable`: the operators' way to make the first admin
 * and to act on accounts, over a blocking connection (the command line, never a loop).
 */
#include "cli/cli.h"
#include "db/db.h"
#include "util/util.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

static PGconn *auth_cli_connect(const char *conninfo, FILE *err)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *values[] = {conninfo, "hydrant-cli", "5", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(err, "hydrant: cannot connect to PostgreSQL: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeReceiver(conn, db_pg_log_notice, NULL);
    return conn;
}

static int auth_cli_role_valid(const char *role)
{
    return strcmp(role, "user") == 0 || strcmp(role, "superuser") == 0 || strcmp(role, "admin") == 0;
}

/* One line from in, without its newline; the whole line must fit. Returns its length or -1. */
static long auth_cli_read_password(FILE *in, char *buf, size_t len)
{
    if (fgets(buf, (int)len, in) == NULL)
        return -1;
    size_t n = strcspn(buf, "\r\n");
    if (buf[n] == '\0' && n == len - 1)
        return -1; /* longer than the buffer */
    buf[n] = '\0';
    return (long)n;
}

int cli_user_create(const char *conninfo, const char *email_in, const char *role, int confirmed,
                    const auth_argon2_params_t *params, FILE *in, FILE *out, FILE *err)
{
    char email[256], password[1100], hash[AUTH_HASH_MAX];
    if (util_email_normalize(email_in, strlen(email_in), email, sizeof(email)) != 0 ||
        !auth_cli_role_valid(role)) {
        fprintf(
            err,
            "hydrant: user create: a valid --email and a --role of user, superuser or admin are needed\n");
        return CLI_EXIT_INPUT;
    }
    long len = auth_cli_read_password(in, password, sizeof(password));
    int ok = len >= 0 && auth_password_acceptable(password, (size_t)len) &&
             auth_password_hash(password, (size_t)len, params, hash, sizeof(hash)) == 0;
    OPENSSL_cleanse(password, sizeof(password));
    if (!ok) {
        fprintf(err, "hydrant: user create: give the password (8 to 256 characters) on standard input\n");
        return CLI_EXIT_INPUT;
    }
    PGconn *conn = auth_cli_connect(conninfo, err);
    if (conn == NULL)
        return CLI_EXIT_FAILURE;
    const char *values[] = {email, hash, role, confirmed ? "t" : "f"};
    PGresult *res =
        PQexecParams(conn,
                     "INSERT INTO users (email, password_hash, role, email_confirmed) VALUES ($1, $2, $3, "
                     "$4::boolean) RETURNING id",
                     4, NULL, values, NULL, NULL, 0);
    int rc = CLI_EXIT_FAILURE;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        fprintf(out, "%s\n", PQgetvalue(res, 0, 0)); /* the one column: RETURNING id */
        rc = 0;
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        int taken = state != NULL && strcmp(state, "23505") == 0;
        fprintf(err, "hydrant: user create: %s",
                taken ? "an account with that email exists\n" : PQerrorMessage(conn));
        rc = taken ? CLI_EXIT_INPUT : CLI_EXIT_FAILURE;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* One UPDATE on a user by id; prints the id when it matched. */
static int auth_cli_update(const char *conninfo, const char *sql, const char *const *values, int nvalues,
                           const char *what, FILE *out, FILE *err)
{
    PGconn *conn = auth_cli_connect(conninfo, err);
    if (conn == NULL)
        return CLI_EXIT_FAILURE;
    PGresult *res = PQexecParams(conn, sql, nvalues, NULL, values, NULL, NULL, 0);
    int rc = CLI_EXIT_FAILURE;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "22P02") == 0) {
            fprintf(err, "hydrant: user %s: '%s' is not a user id\n", what, values[0]);
            rc = CLI_EXIT_INPUT;
        } else {
            fprintf(err, "hydrant: user %s: %s", what, PQerrorMessage(conn));
        }
    } else if (PQntuples(res) == 0) {
        fprintf(err, "hydrant: user %s: no user %s\n", what, values[0]);
        rc = CLI_EXIT_INPUT;
    } else {
        /* the one column: every caller's SQL ends RETURNING id */
        fprintf(out, "%s\n", PQgetvalue(res, 0, 0));
        rc = 0;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int cli_user_set_role(const char *conninfo, const char *id, const char *role, FILE *out, FILE *err)
{
    if (!auth_cli_role_valid(role)) {
        fprintf(err, "hydrant: user set-role: the role is user, superuser or admin\n");
        return CLI_EXIT_INPUT;
    }
    const char *values[] = {id, role};
    return auth_cli_update(
        conninfo,
        "WITH e AS (INSERT INTO auth_events (user_id, kind, detail) SELECT id, 'role_change', "
        "jsonb_build_object('role', $2::text, 'by', 'cli') FROM users WHERE id = $1::uuid) "
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1::uuid RETURNING id",
        values, 2, "set-role", out, err);
}

int cli_user_disable(const char *conninfo, const char *redis_url, const char *id, FILE *out, FILE *err)
{
    const char *values[] = {id};
    int rc = auth_cli_update(
        conninfo,
        "WITH f AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1::uuid AND "
        "revoked_at IS NULL), e AS (INSERT INTO auth_events (user_id, kind, detail) SELECT id, "
        "'disabled', '{\"by\": \"cli\"}' FROM users WHERE id = $1::uuid) UPDATE users SET disabled "
        "= true, tokens_valid_after = now(), updated_at = now() WHERE id = $1::uuid RETURNING id",
        values, 1, "disable", out, err);
    if (rc == 0) {
        /* the user's streams end, as when an admin disables them through the API; without
         * Redis the event is lost, the disabling stands */
        db_events_pub_t *pub = db_events_pub_new(redis_url, 1000, "hydrant user disable");
        db_events_pub(pub, "session.revoked", "{\"session_id\":\"" DB_EVENTS_ALL_SESSIONS "\"}", NULL, 0, &id,
                      1);
        db_events_pub_free(pub);
    }
    return rc;
}
