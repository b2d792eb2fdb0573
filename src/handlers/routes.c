/*
 * `hydrant routes`: the router as the server builds it, printed. Each family adds its routes
 * to a router of its own making here, exactly as handlers_register does, so a route added to
 * a table shows up without anyone updating a list (tests/integration/test_cli.c compares the
 * listing with docs/openapi.yaml).
 */
#include "handlers/handlers.h"

#include <stdio.h>

#define ROUTES_FORMAT "%-7s %-34s %-10s %s\n"

/* "authenticated,json-body,..." or "-": the flags the request layer acts on (outlen >= 64). */
static void routes_flags(const http_route_t *route, char *out, size_t outlen)
{
    const char *auth = route->flags & HTTP_ROUTE_AUTHENTICATED ? "authenticated" : "";
    const char *body = !(route->flags & HTTP_ROUTE_JSON_BODY)    ? ""
                       : route->flags & HTTP_ROUTE_OPTIONAL_BODY ? "json-body-optional"
                                                                 : "json-body";
    int n = snprintf(out, outlen, "%s%s%s", auth, auth[0] && body[0] ? "," : "", body);
    if (route->max_body > 0)
        n += snprintf(out + n, outlen - (size_t)n, "%smax-body=%zu", n > 0 ? "," : "", route->max_body);
    if (n == 0)
        snprintf(out, outlen, "-");
}

/* Prints the routes from index `from` on, naming them with family. */
static void routes_print_from(FILE *out, const http_router_t *router, int from, const char *family)
{
    char flags[128];
    for (int i = from; i < http_router_count(router); i++) {
        const http_route_t *route = http_router_route(router, i);
        routes_flags(route, flags, sizeof(flags));
        fprintf(out, ROUTES_FORMAT, route->method, route->pattern, family, flags);
    }
}

int handlers_routes_print(FILE *out, const cfg_t *cfg,
                          int (*extra)(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen),
                          char *err, size_t errlen)
{
    http_router_t *router = http_router_new();
    if (router == NULL)
        return snprintf(err, errlen, "out of memory"), -1;
    fprintf(out, ROUTES_FORMAT, "method", "path", "family", "flags");
    int rc = 0;
    for (const handlers_family_t *f = handlers_families; rc == 0 && f->name != NULL; f++) {
        int from = http_router_count(router);
        rc = f->add(router, err, errlen);
        routes_print_from(out, router, from, f->name);
    }
    if (rc == 0 && extra != NULL) {
        int from = http_router_count(router);
        rc = extra(router, cfg, err, errlen);
        routes_print_from(out, router, from, "testhooks");
    }
    http_router_free(router);
    return rc;
}
