/*
 * Plumbing shared by the route families: route tables, the {"user": User} answer, replacing
 * a request's state (the authentication's, once it has handed over the user) and secrets
 * copied from a body, wiped when they go.
 */
#include "handlers/handlers.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

void *handlers_state_replace(http_request_t *r, size_t size, void (*free_fn)(void *))
{
    if (r->state_free != NULL)
        r->state_free(r->state);
    r->state = calloc(1, size);
    r->state_free = r->state != NULL ? free_fn : NULL;
    if (r->state == NULL)
        http_respond_error(r, 500, "internal", "out of memory", NULL);
    return r->state;
}

char *handlers_secret_copy(const json_t *value, size_t *len)
{
    *len = json_string_length(value);
    char *copy = malloc(*len + 1);
    if (copy != NULL)
        memcpy(copy, json_string_value(value), *len + 1);
    return copy;
}

void handlers_secret_free(char *secret, size_t len)
{
    if (secret != NULL)
        OPENSSL_cleanse(secret, len);
    free(secret);
}

int handlers_add_routes(http_router_t *router, const http_route_t *routes, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (http_router_add(router, &routes[i], err, errlen) != 0)
            return -1;
    return 0;
}

void handlers_respond_wrapped(http_request_t *r, int status, const char *name, const char *json)
{
    size_t len = strlen(json), name_len = strlen(name);
    char *body = malloc(len + name_len + 6);
    if (body == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    /* {"name":json} by copies: this answers every GET /me, where printf showed in profiles. */
    size_t head = 0;
    body[head++] = '{';
    body[head++] = '"';
    memcpy(body + head, name, name_len);
    head += name_len;
    body[head++] = '"';
    body[head++] = ':';
    memcpy(body + head, json, len);
    body[head + len] = '}';
    http_respond_raw(r, status, "application/json; charset=utf-8", body, head + len + 1);
    free(body);
}

void handlers_respond_user(http_request_t *r, int status, const char *user_json)
{
    handlers_respond_wrapped(r, status, "user", user_json);
}
