/*
 * The router: built once at start-up, read-only afterwards, so every loop thread shares it
 * without locks. Routes are few (tens), so matching walks a compact per-route list of
 * segments; literal segments outrank {params} at the same position, so `/users/me` wins over
 * `/users/{id}` whatever the order the routes were added in.
 */
#include "http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_MAX_SEGMENTS 16
#define HTTP_MAX_PATH     2048

typedef struct {
    const char *text; /* literal text, or the param name (without braces) */
    size_t len;
    int is_param;
} http_segment_t;

typedef struct {
    http_route_t route;
    char *pattern_copy;
    http_segment_t segments[HTTP_MAX_SEGMENTS];
    int nsegments;
} http_route_entry_t;

struct http_router {
    http_route_entry_t routes[HTTP_MAX_ROUTES];
    int nroutes;
};

/* The methods a route may have, in the order a 405's Allow lists them: Allow must name every
 * method of the path (RFC 9110), so a route with any other method is refused when added. */
static const char *const http_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
#define HTTP_NMETHODS (sizeof(http_methods) / sizeof(http_methods[0]))

static int http_method_known(const char *method)
{
    for (size_t m = 0; m < HTTP_NMETHODS; m++)
        if (strcmp(method, http_methods[m]) == 0)
            return 1;
    return 0;
}

http_router_t *http_router_new(void)
{
    return calloc(1, sizeof(http_router_t));
}

void http_router_free(http_router_t *router)
{
    if (router == NULL)
        return;
    for (int i = 0; i < router->nroutes; i++) {
        free(router->routes[i].pattern_copy);
        free((char *)router->routes[i].route.method);
    }
    free(router);
}

int http_router_count(const http_router_t *router)
{
    return router->nroutes;
}

const http_route_t *http_router_route(const http_router_t *router, int index)
{
    return (index >= 0 && index < router->nroutes) ? &router->routes[index].route : NULL;
}

/* Splits the pattern copy into segments in place. Returns 0 or -1 with a message. */
static int http_parse_pattern(http_route_entry_t *e, char *err, size_t errlen)
{
    const char *p = e->pattern_copy;
    int nparams = 0;
    if (p[0] != '/') {
        snprintf(err, errlen, "route %s: must start with '/'", p);
        return -1;
    }
    if (p[1] == '\0')
        return 0; /* "/" has no segments */
    for (const char *s = p + 1;;) {
        const char *end = strchr(s, '/');
        size_t len = end != NULL ? (size_t)(end - s) : strlen(s);
        if (len == 0 || e->nsegments == HTTP_MAX_SEGMENTS) {
            snprintf(err, errlen, "route %s: empty or too many segments", p);
            return -1;
        }
        http_segment_t *seg = &e->segments[e->nsegments++];
        int open = memchr(s, '{', len) != NULL, close = memchr(s, '}', len) != NULL;
        if (open || close) {
            if (s[0] != '{' || s[len - 1] != '}' || len < 3 || memchr(s + 1, '{', len - 2) != NULL ||
                memchr(s + 1, '}', len - 2) != NULL || ++nparams > HTTP_MAX_PARAMS) {
                snprintf(err, errlen, "route %s: malformed or too many {params}", p);
                return -1;
            }
            *seg = (http_segment_t){.text = s + 1, .len = len - 2, .is_param = 1};
        } else {
            *seg = (http_segment_t){.text = s, .len = len, .is_param = 0};
        }
        if (end == NULL)
            break;
        s = end + 1;
    }
    return 0;
}

int http_router_add(http_router_t *router, const http_route_t *route, char *err, size_t errlen)
{
    if (router->nroutes == HTTP_MAX_ROUTES) {
        snprintf(err, errlen, "route %s: too many routes", route->pattern);
        return -1;
    }
    if (!http_method_known(route->method)) {
        snprintf(err, errlen, "route %s %s: unknown method", route->method, route->pattern);
        return -1;
    }
    for (int i = 0; i < router->nroutes; i++) {
        const http_route_t *r = &router->routes[i].route;
        if (strcmp(r->method, route->method) == 0 && strcmp(r->pattern, route->pattern) == 0) {
            snprintf(err, errlen, "route %s %s: defined twice", route->method, route->pattern);
            return -1;
        }
    }
    http_route_entry_t *e = &router->routes[router->nroutes];
    memset(e, 0, sizeof(*e));
    e->pattern_copy = strdup(route->pattern);
    char *method = strdup(route->method);
    if (e->pattern_copy == NULL || method == NULL || http_parse_pattern(e, err, errlen) != 0) {
        if (e->pattern_copy == NULL || method == NULL)
            snprintf(err, errlen, "out of memory");
        free(e->pattern_copy);
        free(method);
        memset(e, 0, sizeof(*e));
        return -1;
    }
    e->route = *route;
    e->route.pattern = e->pattern_copy;
    e->route.method = method;
    router->nroutes++;
    return 0;
}

typedef struct {
    const char *text;
    size_t len;
} http_path_segment_t;

static int http_split_path(const char *path, size_t len, http_path_segment_t *out)
{
    int n = 0;
    if (len == 1)
        return 0;
    size_t start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i == len || path[i] == '/') {
            if (n == HTTP_MAX_SEGMENTS || i == start)
                return -1; /* too deep, or an empty segment ("//", trailing '/') */
            out[n++] = (http_path_segment_t){path + start, i - start};
            start = i + 1;
        }
    }
    return n;
}

/* Scores a route against the path: -1 for no match, else a rank where literal matches in
 * earlier segments weigh more, so the most specific route wins. */
static long http_route_score(const http_route_entry_t *e, const http_path_segment_t *segs, int nsegs)
{
    if (e->nsegments != nsegs)
        return -1;
    long score = 0;
    for (int i = 0; i < nsegs; i++) {
        const http_segment_t *s = &e->segments[i];
        score <<= 1;
        if (s->is_param)
            continue;
        if (s->len != segs[i].len || memcmp(s->text, segs[i].text, s->len) != 0)
            return -1;
        score |= 1;
    }
    return score;
}

static int http_method_matches(const char *route_method, const char *method, size_t method_len)
{
    size_t rlen = strlen(route_method);
    if (rlen == method_len && memcmp(route_method, method, rlen) == 0)
        return 1;
    return strcmp(route_method, "GET") == 0 && method_len == 4 && memcmp(method, "HEAD", 4) == 0;
}

static void http_append_allow(char *allow, const char *method)
{
    if (strstr(allow, method) != NULL) {
        /* exact token check: "GET" is not inside "GETX" */
        size_t mlen = strlen(method);
        for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen)
            if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
                return;
    }
    size_t used = strlen(allow);
    snprintf(allow + used, HTTP_ALLOW_LEN - used, "%s%s", used > 0 ? ", " : "", method);
}

void http_router_match(const http_router_t *router, const char *method, size_t method_len, const char *path,
                       size_t path_len, http_match_t *out)
{
    http_path_segment_t segs[HTTP_MAX_SEGMENTS];
    out->status = HTTP_MATCH_NOT_FOUND;
    out->route = NULL;
    out->nparams = 0;
    out->allow[0] = '\0';
    if (path_len == 0 || path_len > HTTP_MAX_PATH || path[0] != '/')
        return;
    int nsegs = http_split_path(path, path_len, segs);
    if (nsegs < 0)
        return;
    long best = -1;
    int best_index = -1;
    for (int i = 0; i < router->nroutes; i++) {
        const http_route_entry_t *e = &router->routes[i];
        long score = http_route_score(e, segs, nsegs);
        if (score < 0)
            continue;
        out->status = HTTP_MATCH_METHOD_NOT_ALLOWED;
        if (http_method_matches(e->route.method, method, method_len) && score > best) {
            best = score;
            best_index = i;
        }
    }
    if (best_index >= 0) {
        const http_route_entry_t *e = &router->routes[best_index];
        out->status = HTTP_MATCH_FOUND;
        out->route = &e->route;
        out->route_index = best_index;
        for (int i = 0; i < nsegs; i++) {
            if (!e->segments[i].is_param)
                continue;
            out->params[out->nparams++] =
                (http_param_t){e->segments[i].text, e->segments[i].len, segs[i].text, segs[i].len};
        }
        return;
    }
    if (out->status != HTTP_MATCH_METHOD_NOT_ALLOWED)
        return;
    /* Allow lists the methods of the routes that match the path, in a fixed order. */
    for (size_t m = 0; m < HTTP_NMETHODS; m++) {
        for (int i = 0; i < router->nroutes; i++) {
            const http_route_entry_t *e = &router->routes[i];
            if (http_route_score(e, segs, nsegs) < 0)
                continue;
            if (strcmp(e->route.method, http_methods[m]) == 0 ||
                (strcmp(http_methods[m], "HEAD") == 0 && strcmp(e->route.method, "GET") == 0))
                http_append_allow(out->allow, http_methods[m]);
        }
    }
}
