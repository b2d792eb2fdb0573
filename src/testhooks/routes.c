/*
 * Test-only routes: the HTTP layer's body handling (content type, size, depth, JSON
 * validity) is shared by every JSON route, and the integration tests of that layer need a
 * route that does nothing else. Off unless HYDRANT_TEST_ROUTES=1; never in production.
 */
#include "testhooks/testhooks.h"

#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void diag_echo(http_request_t *r)
{
    json_t *body = r->body;
    r->body = NULL; /* ownership moves into the response */
    http_respond_json(r, 200, json_pack("{s:o}", "echo", body != NULL ? body : json_null()));
}

int testhooks_routes_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen)
{
    const char *flag = getenv("HYDRANT_TEST_ROUTES");
    if (flag == NULL || strcmp(flag, "1") != 0)
        return 0;
    if (cfg->mode == CFG_MODE_PRODUCTION) {
        snprintf(err, errlen, "HYDRANT_TEST_ROUTES is refused in production mode");
        return -1;
    }
    static const http_route_t routes[] = {
        {"POST", "/internal/test/echo", diag_echo, 0, HTTP_ROUTE_JSON_BODY},
        {"POST", "/internal/test/echo-small", diag_echo, 1024, HTTP_ROUTE_JSON_BODY},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
