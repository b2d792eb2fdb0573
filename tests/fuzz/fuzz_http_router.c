/*
 * libFuzzer target for the router: http_router_match against the real route table (what
 * handlers_register adds), and http_router_add of fuzzed patterns into a router of their own.
 *
 * Input: one byte; when even, a method up to the first '\n' and the path to match against the
 * real table. When odd, lines of "METHOD PATTERN" to add, the last one a "METHOD PATH" to match.
 * Every match is checked: a found route takes the method (or GET for HEAD), and its pattern
 * with the parameters' values put back into it spells the path; a 405 has an Allow list. A
 * pattern that was added is found again when matched as a path, and cannot be added twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "handlers/handlers.h"

static http_router_t *real_router(void)
{
    static http_router_t *router;
    static cfg_t cfg;
    if (router == NULL) {
        char err[256];
        cfg_init_defaults(&cfg);
        router = http_router_new();
        fuzz_check(router != NULL && handlers_register(router, &cfg, err, sizeof(err)) == 0);
    }
    return router;
}

/* The found route's pattern with each {param} replaced by its value must be the path. */
static void check_spelling(const http_match_t *m, const char *path, size_t path_len)
{
    const char *p = m->route->pattern;
    size_t at = 0;
    int k = 0;
    while (*p != '\0') {
        size_t seg = strcspn(p + 1, "/") + 1; /* with its leading '/' */
        fuzz_check(at < path_len && path[at] == '/');
        if (p[1] == '{') {
            const http_param_t *param = &m->params[k++];
            fuzz_check(k <= m->nparams && param->value == path + at + 1 && param->value_len > 0 &&
                       memchr(param->value, '/', param->value_len) == NULL && param->name_len == seg - 3 &&
                       memcmp(param->name, p + 2, seg - 3) == 0);
            at += 1 + param->value_len;
        } else {
            fuzz_check(at + seg <= path_len && memcmp(path + at, p, seg) == 0);
            at += seg;
        }
        p += seg;
    }
    fuzz_check(k == m->nparams && at == path_len);
}

static void check_match(const http_router_t *router, const char *method, const char *path, size_t path_len,
                        http_match_t *m)
{
    size_t method_len = strlen(method);
    http_router_match(router, method, method_len, path, path_len, m);
    if (m->status == HTTP_MATCH_FOUND) {
        const http_route_t *route = m->route;
        fuzz_check(route != NULL && route == http_router_route(router, m->route_index));
        fuzz_check(strcmp(route->method, method) == 0 ||
                   (strcmp(route->method, "GET") == 0 && strcmp(method, "HEAD") == 0));
        fuzz_check(m->nparams >= 0 && m->nparams <= HTTP_MAX_PARAMS);
        check_spelling(m, path, path_len);
    } else if (m->status == HTTP_MATCH_METHOD_NOT_ALLOWED) {
        fuzz_check(m->allow[0] != '\0' && strlen(m->allow) < HTTP_ALLOW_LEN);
    } else {
        fuzz_check(m->status == HTTP_MATCH_NOT_FOUND);
    }
}

static void fuzz_real_table(const uint8_t *data, size_t size)
{
    size_t method_len;
    const uint8_t *method = fuzz_next(&data, &size, '\n', &method_len);
    char *m = fuzz_string(method, method_len), *path = fuzz_copy(data, size);
    http_match_t match;
    check_match(real_router(), m, path, size, &match);
    free(path);
    free(m);
}

static void add_line(http_router_t *router, const char *line)
{
    const char *space = strchr(line, ' ');
    if (space == NULL)
        return;
    char *method = fuzz_string(line, (size_t)(space - line));
    http_route_t route = {.method = method, .pattern = space + 1};
    char err[128];
    if (http_router_add(router, &route, err, sizeof(err)) == 0) {
        fuzz_check(http_router_add(router, &route, err, sizeof(err)) == -1);
        http_match_t match;
        check_match(router, method, route.pattern, strlen(route.pattern), &match);
        fuzz_check(match.status == HTTP_MATCH_FOUND || strlen(route.pattern) > 2048);
    }
    free(method);
}

static void fuzz_own_table(const uint8_t *data, size_t size)
{
    http_router_t *router = http_router_new();
    fuzz_check(router != NULL);
    while (size > 0) {
        size_t len;
        char *line = fuzz_string(fuzz_next(&data, &size, '\n', &len), len);
        if (size > 0) {
            add_line(router, line);
        } else if (strchr(line, ' ') != NULL) {
            char *space = strchr(line, ' ');
            *space = '\0';
            http_match_t match;
            check_match(router, line, space + 1, strlen(space + 1), &match);
        }
        free(line);
    }
    http_router_free(router);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_own_table(data + 1, size - 1);
    else
        fuzz_real_table(data + 1, size - 1);
    return 0;
}
