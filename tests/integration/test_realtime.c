/*
 * Realtime routes over real HTTP/2 and HTTP/1.1 against the real server: tickets (issued for
 * a token or an API key, single use, checked again when used).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PASSWORD "correct horse battery staple"

static harness_server_t server;
static PGconn *db;

static const char *const server_env[] = {"HYDRANT_ARGON2_MEMORY_KIB=1024", "HYDRANT_ARGON2_ITERATIONS=1",
                                         "HYDRANT_LIMIT_LOGIN_PER_ADDRESS=1000000",
                                         "HYDRANT_JWT_SECRET=integration-test-secret-0123456789abcdef", NULL};

static harness_account_t alice, bob, carol;

/* A request with one credentials header (or none) and an optional JSON body; *doc gets the
 * answer's JSON when doc is not NULL. Returns the status. */
static long call(int protocol, const char *method, const char *path, const char *auth_header,
                 const char *body, json_t **doc)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base,
             path);
    const char *headers[] = {"Content-Type: application/json", auth_header, NULL};
    harness_response_t res;
    harness_request(&res, protocol, method, url, headers, body, body != NULL ? strlen(body) : 0);
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

static const char *error_code(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}

/* A fresh ticket for the credentials header into out (64 bytes). */
static void ticket_for(const char *auth_header, int protocol, char *out)
{
    json_t *doc = NULL;
    assert_int_equal(call(protocol, "POST", "/api/v1/realtime/ticket", auth_header, NULL, &doc), 201);
    const char *ticket = json_string_value(json_object_get(doc, "ticket"));
    assert_non_null(ticket);
    assert_int_equal(json_integer_value(json_object_get(doc, "expires_in")), 30);
    assert_true(strlen(ticket) >= 32 && strlen(ticket) < 64);
    snprintf(out, 64, "%s", ticket);
    json_decref(doc);
}

static int group_setup(void **state)
{
    (void)state;
    if (harness_server_start_with_db(&server, server_env, &db) != 0)
        return -1;
    if (harness_account_create(&alice, &server, db, server_env, "rt-alice", "user", PASSWORD) != 0 ||
        harness_account_create(&bob, &server, db, server_env, "rt-bob", "user", PASSWORD) != 0 ||
        harness_account_create(&carol, &server, db, server_env, "rt-carol", "user", PASSWORD) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(db);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

static void test_ticket_issued(void **state)
{
    (void)state;
    char a[64], b[64];
    for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++) {
        ticket_for(alice.auth, protocol, a);
        ticket_for(alice.auth, protocol, b);
        assert_string_not_equal(a, b);
    }
    json_t *doc = NULL;
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/realtime/ticket", NULL, NULL, &doc), 401);
    assert_string_equal(error_code(doc), "unauthorized");
    json_decref(doc);
    assert_int_equal(
        call(HARNESS_HTTP2, "POST", "/api/v1/realtime/ticket", "Authorization: Bearer nope", NULL, &doc),
        401);
    json_decref(doc);
    /* an API key gets one too */
    assert_int_equal(call(HARNESS_HTTP2, "POST", "/api/v1/me/api-key", bob.auth, NULL, &doc), 201);
    char key[256];
    snprintf(key, sizeof(key), "X-API-Key: %s", json_string_value(json_object_get(doc, "api_key")));
    json_decref(doc);
    ticket_for(key, HARNESS_HTTP2, a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ticket_issued),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
