/*
 * What every list and every "one thing by id" route shares (contract: Lists; 404 for what
 * the caller may not see): ?limit=, the opaque time cursor, the page answer, the {id} of the
 * path and the one-row answer.
 */
#include "handlers/handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDLERS_LIMIT_DEFAULT 20
#define HANDLERS_LIMIT_MAX     100

int handlers_parse_limit(http_request_t *r, int *limit)
{
    char buf[32];
    int n = http_query_param(r, "limit", buf, sizeof(buf));
    *limit = HANDLERS_LIMIT_DEFAULT;
    if (n == -1)
        return 0;
    char *end = NULL;
    long v = n > 0 ? strtol(buf, &end, 10) : 0;
    if (n <= 0 || *end != '\0' || v < 1 || v > HANDLERS_LIMIT_MAX)
        return -1;
    *limit = (int)v;
    return 0;
}

/* "<created_at in Unix microseconds>.<id>", as handlers_respond_page writes it for lists
 * ordered by (created_at, id). 18 digits at most: within bigint. */
int handlers_parse_time_cursor(http_request_t *r, handlers_page_t *page)
{
    char buf[96];
    int n = http_query_param(r, "cursor", buf, sizeof(buf));
    page->has_cursor = 0;
    if (n == -1)
        return 0;
    const char *dot = n > 0 ? memchr(buf, '.', (size_t)n) : NULL;
    size_t digits = dot != NULL ? (size_t)(dot - buf) : 0;
    if (digits == 0 || digits > 18 || !util_uuid_valid(dot + 1, (size_t)n - digits - 1))
        return -1;
    for (size_t i = 0; i < digits; i++)
        if (!isdigit((unsigned char)buf[i]))
            return -1;
    memcpy(page->cursor_us, buf, digits);
    page->cursor_us[digits] = '\0';
    memcpy(page->cursor_id, dot + 1, 36);
    page->cursor_id[36] = '\0';
    page->has_cursor = 1;
    return 0;
}

int handlers_parse_page(http_request_t *r, handlers_page_t *page)
{
    return handlers_parse_limit(r, &page->limit) == 0 && handlers_parse_time_cursor(r, page) == 0 ? 0 : -1;
}

void handlers_respond_page(http_request_t *r, const db_reply_t *reply, int limit, int json_col,
                           int cursor_col, int id_col)
{
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    int rows = PQntuples(res), shown = rows > limit ? limit : rows;
    json_t *items = json_array();
    for (int i = 0; i < shown; i++) {
        json_t *item = json_loads(PQgetvalue(res, i, json_col), 0, NULL);
        json_array_append_new(items, item != NULL ? item : json_null());
    }
    json_t *next = json_null();
    if (rows > limit) { /* the statement was asked for one row more: there is a next page */
        char cursor[128];
        if (id_col >= 0)
            snprintf(cursor, sizeof(cursor), "%s.%s", PQgetvalue(res, shown - 1, cursor_col),
                     PQgetvalue(res, shown - 1, id_col));
        else
            snprintf(cursor, sizeof(cursor), "%s", PQgetvalue(res, shown - 1, cursor_col));
        next = json_string(cursor);
    }
    http_respond_json(r, 200, json_pack("{s:o, s:o}", "items", items, "next_cursor", next));
}

int handlers_path_id(http_request_t *r, const char *not_found, char out[37])
{
    size_t len = 0;
    const char *id = http_param(r, "id", &len);
    if (id == NULL || !util_uuid_valid(id, len)) {
        http_respond_error(r, 404, "not_found", not_found, NULL);
        return -1;
    }
    memcpy(out, id, 36);
    out[36] = '\0';
    return 0;
}

void handlers_respond_row(http_request_t *r, const db_reply_t *reply, int col, int status, const char *name,
                          const char *not_found)
{
    if (http_pg_failed(r, reply))
        return;
    if (PQntuples(reply->results[0]) != 1) {
        http_respond_error(r, 404, "not_found", not_found, NULL);
        return;
    }
    handlers_respond_wrapped(r, status, name, PQgetvalue(reply->results[0], 0, col));
}
