/*
 * `hydrant user import FILE`: users from a seed backend, with the password hashes they have
 * (Argon2 or bcrypt; bcrypt ones become Argon2id at their first login). CSV with a header
 * row (email, password_hash, and optionally role, confirmed, created_at, in any order) or
 * JSON lines with the same keys. Every row is checked and inserted on its own; rejected
 * rows are reported by line number and the rest still go in.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "util/util.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define IMPORT_MAX_FIELDS 16

enum { COL_EMAIL, COL_HASH, COL_ROLE, COL_CONFIRMED, COL_CREATED, NCOLS };
static const char *const import_columns[NCOLS] = {"email", "password_hash", "role", "confirmed",
                                                  "created_at"};

typedef struct {
    const char *value[NCOLS]; /* NULL when absent */
} import_row_t;

typedef struct {
    PGconn *conn;
    FILE *err;
    long imported, rejected;
} import_t;

static int import_hash_supported(const char *hash)
{
    static const char *const prefixes[] = {"$argon2id$", "$argon2i$", "$argon2d$", "$2a$", "$2b$", "$2y$"};
    if (hash == NULL || strlen(hash) >= AUTH_HASH_MAX)
        return 0;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

/* "true"/"false" (and 1/0, yes/no); absent means confirmed: imported accounts exist already. */
static int import_bool(const char *text, const char **out)
{
    if (text == NULL || *text == '\0') {
        *out = "true";
        return 0;
    }
    if (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes"))
        *out = "true";
    else if (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no"))
        *out = "false";
    else
        return -1;
    return 0;
}

static void import_reject(import_t *im, long line, const char *why)
{
    im->rejected++;
    fprintf(im->err, "line %ld: %s\n", line, why);
}

static void import_row(import_t *im, long line, const import_row_t *row)
{
    char email[256];
    const char *role =
        row->value[COL_ROLE] != NULL && row->value[COL_ROLE][0] != '\0' ? row->value[COL_ROLE] : "user";
    const char *confirmed = NULL;
    const char *raw = row->value[COL_EMAIL];
    if (raw == NULL || util_email_normalize(raw, strlen(raw), email, sizeof(email)) != 0) {
        import_reject(im, line, "not a valid email");
        return;
    }
    if (!import_hash_supported(row->value[COL_HASH])) {
        import_reject(im, line, "password_hash is not an Argon2 or bcrypt hash");
        return;
    }
    if (strcmp(role, "user") != 0 && strcmp(role, "superuser") != 0 && strcmp(role, "admin") != 0) {
        import_reject(im, line, "role must be user, superuser or admin");
        return;
    }
    if (import_bool(row->value[COL_CONFIRMED], &confirmed) != 0) {
        import_reject(im, line, "confirmed must be true or false");
        return;
    }
    const char *created = row->value[COL_CREATED] != NULL && row->value[COL_CREATED][0] != '\0'
                              ? row->value[COL_CREATED]
                              : NULL;
    const char *values[] = {email, row->value[COL_HASH], role, confirmed, created};
    PGresult *res =
        PQexecParams(im->conn,
                     "INSERT INTO users (email, password_hash, role, email_confirmed, created_at, "
                     "updated_at) VALUES ($1, $2, $3, $4::boolean, coalesce($5::timestamptz, now()), "
                     "coalesce($5::timestamptz, now()))",
                     5, NULL, values, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (PQresultStatus(res) == PGRES_COMMAND_OK)
        im->imported++;
    else if (state != NULL && strcmp(state, "23505") == 0)
        import_reject(im, line, "an account with that email exists");
    else if (state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        import_reject(im, line, "created_at is not a timestamp, or a value is out of range");
    else
        import_reject(im, line, "the database refused the row");
    PQclear(res);
}

/* ------------------------------------------------------------------- CSV ---- */

/* Splits one CSV record in place (RFC 4180 quoting; no newlines inside fields). */
static int import_csv_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        char *out = p, *start = p;
        if (*p == '"') {
            for (p++;; p++) {
                if (*p == '\0')
                    return -1; /* unterminated quote */
                if (*p == '"' && p[1] == '"')
                    *out++ = '"', p++;
                else if (*p == '"')
                    break;
                else
                    *out++ = *p;
            }
            p++;
            if (*p != ',' && *p != '\0')
                return -1;
        } else {
            while (*p != ',' && *p != '\0')
                *out++ = *p++;
        }
        int last = *p == '\0';
        *out = '\0';
        fields[n++] = start;
        if (last)
            return n;
        p++;
    }
    return -1;
}

static int import_csv_header(char *line, int *map, FILE *err)
{
    char *fields[IMPORT_MAX_FIELDS];
    int n = import_csv_split(line, fields, IMPORT_MAX_FIELDS);
    int seen[NCOLS] = {0};
    for (int i = 0; i < n; i++) {
        map[i] = -1;
        for (int c = 0; c < NCOLS; c++)
            if (strcmp(fields[i], import_columns[c]) == 0)
                map[i] = c, seen[c]++;
    }
    if (n < 0 || seen[COL_EMAIL] != 1 || seen[COL_HASH] != 1) {
        fprintf(err, "line 1: the header must name the columns, email and password_hash at least\n");
        return -1;
    }
    return n;
}

static void import_csv_line(import_t *im, long line, char *text, const int *map, int ncols)
{
    char *fields[IMPORT_MAX_FIELDS];
    int n = import_csv_split(text, fields, IMPORT_MAX_FIELDS);
    if (n != ncols) {
        import_reject(im, line, "not as many fields as the header, or a broken quote");
        return;
    }
    import_row_t row = {0};
    for (int i = 0; i < n; i++)
        if (map[i] >= 0)
            row.value[map[i]] = fields[i];
    import_row(im, line, &row);
}

/* ----------------------------------------------------------- JSON lines ---- */

static void import_json_line(import_t *im, long line, const char *text)
{
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        {
            import_reject(im, line, "not a JSON object");
            return;
        }
    }
    import_row_t row = {0};
    char confirmed[8] = "";
    json_t *c = json_object_get(doc, "confirmed");
    if (json_is_boolean(c))
        snprintf(confirmed, sizeof(confirmed), "%s", json_is_true(c) ? "true" : "false");
    for (int col = 0; col < NCOLS; col++)
        row.value[col] = json_string_value(json_object_get(doc, import_columns[col]));
    if (c != NULL)
        row.value[COL_CONFIRMED] = json_is_boolean(c) ? confirmed : "invalid";
    import_row(im, line, &row);
    json_decref(doc);
}

int cli_user_import(const char *conninfo, const char *path, FILE *out, FILE *err)
{
    FILE *in = fopen(path, "r");
    if (in == NULL) {
        fprintf(err, "hydrant: user import: cannot read %s\n", path);
        return CLI_EXIT_INPUT;
    }
    import_t im = {.err = err};
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {conninfo, "hydrant-import", NULL};
    im.conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(im.conn) != CONNECTION_OK) {
        fprintf(err, "hydrant: cannot connect to PostgreSQL: %s", PQerrorMessage(im.conn));
        PQfinish(im.conn);
        fclose(in);
        return CLI_EXIT_FAILURE;
    }
    PQsetNoticeReceiver(im.conn, db_pg_log_notice, NULL);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long number = 0;
    int csv = -1, map[IMPORT_MAX_FIELDS], ncols = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if ((size_t)len != strlen(line)) {
            if (csv < 0)
                csv = 1; /* a header with a NUL byte cannot be read */
            import_reject(&im, number, "a NUL byte in the line");
            continue;
        }
        if (csv < 0) { /* the first line decides: JSON lines start with '{' */
            csv = line[0] != '{';
            if (csv && (ncols = import_csv_header(line, map, err)) < 0)
                break;
            if (csv)
                continue;
        }
        if (csv)
            import_csv_line(&im, number, line, map, ncols);
        else
            import_json_line(&im, number, line);
    }
    free(line);
    fclose(in);
    PQfinish(im.conn);
    fprintf(out, "imported %ld, rejected %ld\n", im.imported, im.rejected);
    return (csv == 1 && ncols < 0) || im.rejected > 0 ? CLI_EXIT_INPUT : CLI_EXIT_OK;
}
