/*
 * Test hooks: job kinds and routes that exist only for the test suite. This module is built
 * only when the tests are (HYDRANT_TESTS), into the test binary `hydrant-test` and the tests
 * that link it, never into `hydrant`: the production binary has none of their code, routes
 * or kinds (tests/check_no_test_hooks.sh checks it). Even in `hydrant-test` each is off
 * unless its environment switch is set, and refused in production mode.
 */
#ifndef HYDRANT_TESTHOOKS_H
#define HYDRANT_TESTHOOKS_H

#include <stddef.h>

#include "config/config.h"
#include "http/http.h"
#include "jobs/jobs.h"

/* With HYDRANT_TEST_JOBS=1, the test.* kinds (jobs.c): test.noop, test.sleep, test.fail.
 * Returns 0, or -1 with a message. */
int testhooks_jobs_register(jobs_registry_t *registry, const cfg_t *cfg, char *err, size_t errlen);

/* With HYDRANT_TEST_ROUTES=1, a JSON echo for the tests of the HTTP layer itself (routes.c):
 * POST /internal/test/echo and /internal/test/echo-small. Returns 0, or -1 with a message. */
int testhooks_routes_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen);

#endif
