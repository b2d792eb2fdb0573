/*
 * Route handlers, one file per route family. Each family adds its routes to the router at
 * start-up; handlers read their start-up data from r->app (a handlers_app_t).
 */
#ifndef HYDRANT_HANDLERS_H
#define HYDRANT_HANDLERS_H

#include <stddef.h>

#include "config/config.h"
#include "http/http.h"
#include "jobs/jobs.h"

typedef struct {
    const cfg_t *cfg;
    char hostname[256];
    char *openapi_json; /* docs/openapi.yaml converted once to JSON */
    size_t openapi_len;
    const http_server_t *server; /* for process-wide views (metrics) */
    const jobs_pool_t *jobs;     /* this process's workers, or NULL (metrics) */
} handlers_app_t;

/* Loads what the handlers need (the OpenAPI document, the host name). */
int handlers_app_init(handlers_app_t *app, const cfg_t *cfg, char *err, size_t errlen);
void handlers_app_free(handlers_app_t *app);

/* Adds every route of every family. */
int handlers_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen);

/* Route families. */
int handlers_ops_register(http_router_t *router, char *err, size_t errlen);
/* Routes that exist only for the integration tests of the HTTP layer itself (a JSON echo),
 * enabled by HYDRANT_TEST_ROUTES=1 and refused in production mode. */
int handlers_diag_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen);

/* Converts a YAML document (the OpenAPI description) to compact JSON. Returns a malloc'd
 * string or NULL with a message. Scalars stay strings except plain true/false/null and
 * numbers, as YAML 1.2's core schema reads them. */
char *handlers_yaml_to_json(const char *yaml, size_t len, size_t *out_len, char *err, size_t errlen);

#endif
