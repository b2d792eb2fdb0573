/*
 * The contract's User object written from plain columns. PostgreSQL can build it
 * (json_build_object, to_char), but on the path every authenticated request takes that was
 * a large share of the backend's time per query (bench/README.md); the loop writes it for
 * less.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void user_json_string(util_buf_t *b, const char *s)
{
    util_buf_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        util_buf_put(b, run, (size_t)(p - run));
        if (c == '"' || c == '\\') {
            util_buf_put(b, (char[]){'\\', (char)c}, 2);
        } else {
            char esc[7] = "\\u00";
            util_hex_encode(&c, 1, esc + 4, 0);
            util_buf_put(b, esc, 6);
        }
        run = p + 1;
    }
    util_buf_put(b, run, strlen(run));
    util_buf_put(b, "\"", 1);
}

/* to_json(ts AT TIME ZONE 'UTC') is "YYYY-MM-DDTHH:MM:SS[.ffffff]" with its quotes: the
 * contract's form is milliseconds (truncated, as to_char's MS) and a Z. */
static void user_json_time(util_buf_t *b, const char *json)
{
    size_t len = strlen(json);
    if (len < 21 || json[0] != '"' || json[len - 1] != '"' || json[11] != 'T') {
        util_buf_put(b, "null", 4);
        return;
    }
    char out[32] = "";
    const char *frac = len > 22 && json[20] == '.' ? json + 21 : "";
    snprintf(out, sizeof(out), "\"%.19s.%c%c%cZ\"", json + 1, frac[0] ? frac[0] : '0',
             frac[0] && frac[1] != '"' ? frac[1] : '0',
             frac[0] && frac[1] != '"' && frac[2] != '"' ? frac[2] : '0');
    util_buf_put(b, out, strlen(out));
}

static void user_json_field(util_buf_t *b, const char *name, const PGresult *res, int row, int col, char kind)
{
    util_buf_put(b, name, strlen(name));
    if (PQgetisnull(res, row, col))
        util_buf_put(b, "null", 4);
    else if (kind == 's')
        user_json_string(b, PQgetvalue(res, row, col));
    else if (kind == 'b')
        util_buf_put(b, PQgetvalue(res, row, col)[0] == 't' ? "true" : "false",
                     PQgetvalue(res, row, col)[0] == 't' ? 4 : 5);
    else
        user_json_time(b, PQgetvalue(res, row, col));
}

char *handlers_user_json_from_row(const PGresult *res, int row, int col)
{
    util_buf_t b = {0};
    user_json_field(&b, "{\"id\":", res, row, col + DB_COL_USER_ROW_ID, 's');
    user_json_field(&b, ",\"email\":", res, row, col + DB_COL_USER_ROW_EMAIL, 's');
    user_json_field(&b, ",\"username\":", res, row, col + DB_COL_USER_ROW_USERNAME, 's');
    user_json_field(&b, ",\"display_name\":", res, row, col + DB_COL_USER_ROW_DISPLAY_NAME, 's');
    user_json_field(&b, ",\"bio\":", res, row, col + DB_COL_USER_ROW_BIO, 's');
    user_json_field(&b, ",\"role\":", res, row, col + DB_COL_USER_ROW_ROLE, 's');
    user_json_field(&b, ",\"email_confirmed\":", res, row, col + DB_COL_USER_ROW_EMAIL_CONFIRMED, 'b');
    user_json_field(&b, ",\"disabled\":", res, row, col + DB_COL_USER_ROW_DISABLED, 'b');
    user_json_field(&b, ",\"created_at\":", res, row, col + DB_COL_USER_ROW_CREATED_AT, 't');
    user_json_field(&b, ",\"updated_at\":", res, row, col + DB_COL_USER_ROW_UPDATED_AT, 't');
    util_buf_put(&b, "}", 1);
    return util_buf_take(&b, NULL);
}
