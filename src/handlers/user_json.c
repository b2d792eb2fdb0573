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

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} user_json_buf_t;

static void user_json_append(user_json_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap == 0 ? 512 : b->cap;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void user_json_string(user_json_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    user_json_append(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        user_json_append(b, run, (size_t)(p - run));
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\')
            user_json_append(b, (char[]){'\\', (char)c}, 2);
        else
            user_json_append(b, esc, sizeof(esc));
        run = p + 1;
    }
    user_json_append(b, run, strlen(run));
    user_json_append(b, "\"", 1);
}

/* to_json(ts AT TIME ZONE 'UTC') is "YYYY-MM-DDTHH:MM:SS[.ffffff]" with its quotes: the
 * contract's form is milliseconds (truncated, as to_char's MS) and a Z. */
static void user_json_time(user_json_buf_t *b, const char *json)
{
    size_t len = strlen(json);
    if (len < 21 || json[0] != '"' || json[len - 1] != '"' || json[11] != 'T') {
        user_json_append(b, "null", 4);
        return;
    }
    char out[32] = "";
    const char *frac = len > 22 && json[20] == '.' ? json + 21 : "";
    snprintf(out, sizeof(out), "\"%.19s.%c%c%cZ\"", json + 1, frac[0] ? frac[0] : '0',
             frac[0] && frac[1] != '"' ? frac[1] : '0',
             frac[0] && frac[1] != '"' && frac[2] != '"' ? frac[2] : '0');
    user_json_append(b, out, strlen(out));
}

static void user_json_field(user_json_buf_t *b, const char *name, const PGresult *res, int row, int col,
                            char kind)
{
    user_json_append(b, name, strlen(name));
    if (PQgetisnull(res, row, col))
        user_json_append(b, "null", 4);
    else if (kind == 's')
        user_json_string(b, PQgetvalue(res, row, col));
    else if (kind == 'b')
        user_json_append(b, PQgetvalue(res, row, col)[0] == 't' ? "true" : "false",
                         PQgetvalue(res, row, col)[0] == 't' ? 4 : 5);
    else
        user_json_time(b, PQgetvalue(res, row, col));
}

char *handlers_user_json_from_row(const PGresult *res, int row, int col)
{
    user_json_buf_t b = {0};
    user_json_field(&b, "{\"id\":", res, row, col, 's');
    user_json_field(&b, ",\"email\":", res, row, col + 1, 's');
    user_json_field(&b, ",\"username\":", res, row, col + 2, 's');
    user_json_field(&b, ",\"display_name\":", res, row, col + 3, 's');
    user_json_field(&b, ",\"bio\":", res, row, col + 4, 's');
    user_json_field(&b, ",\"role\":", res, row, col + 5, 's');
    user_json_field(&b, ",\"email_confirmed\":", res, row, col + 6, 'b');
    user_json_field(&b, ",\"disabled\":", res, row, col + 7, 'b');
    user_json_field(&b, ",\"created_at\":", res, row, col + 8, 't');
    user_json_field(&b, ",\"updated_at\":", res, row, col + 9, 't');
    user_json_append(&b, "}", 1);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
