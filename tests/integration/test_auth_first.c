/*
 * Authentication before the body (contract v1.1): every route that docs/openapi.yaml says
 * needs credentials (bearer or API key) answers 401 unauthorized with WWW-Authenticate:
 * Bearer to a request without valid credentials, whatever its body: invalid JSON, another
 * Content-Type, an unknown field, \u0000, no body at all; without credentials, with a garbage
 * bearer token and with a garbage API key; over HTTP/2 and HTTP/1.1.
 *
 * The routes come from the document itself (libyaml), so a route added there is swept
 * without touching this test; a line scan of the same document counts the operations that
 * declare security, and the sweep fails when the two disagree (a route the walk missed).
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
#include <yaml.h>

#include "harness.h"

#define MAX_OPERATIONS 256

static harness_server_t server;

typedef struct {
    char method[8]; /* upper case */
    char path[256]; /* {params} replaced */
} operation_t;

static operation_t operations[MAX_OPERATIONS];
static int noperations;

/* ------------------------------------------------------- the document ---- */

static char *read_document(size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/openapi.yaml", harness_env("HYDRANT_SOURCE_DIR"));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 20];
    *len = fread(text, 1, sizeof(text) - 1, f);
    assert_true(feof(f)); /* read whole */
    fclose(f);
    text[*len] = '\0';
    return text;
}

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

/* A security requirement list with at least one entry ("security: []" opts out). */
static int secured(yaml_node_t *security)
{
    return security != NULL && security->type == YAML_SEQUENCE_NODE &&
           security->data.sequence.items.top > security->data.sequence.items.start;
}

/* The path with every {param} replaced by a fresh-looking UUID nobody owns. */
static void fill_params(const char *pattern, char *out, size_t outlen)
{
    size_t o = 0;
    for (const char *p = pattern; *p != '\0' && o + 40 < outlen;) {
        if (*p == '{') {
            o += (size_t)snprintf(out + o, outlen - o, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
            p = strchr(p, '}') != NULL ? strchr(p, '}') + 1 : p + strlen(p);
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static void collect_operations(void)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head", "options"};
    size_t len;
    char *text = read_document(&len);
    yaml_parser_t parser;
    yaml_document_t doc;
    assert_int_equal(yaml_parser_initialize(&parser), 1);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    assert_int_equal(yaml_parser_load(&parser, &doc), 1);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *global = map_get(&doc, root, "security");
    yaml_node_t *paths = map_get(&doc, root, "paths");
    assert_non_null(paths);
    assert_int_equal(paths->type, YAML_MAPPING_NODE);
    for (yaml_node_pair_t *p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top; p++) {
        const char *pattern = (const char *)yaml_document_get_node(&doc, p->key)->data.scalar.value;
        yaml_node_t *item = yaml_document_get_node(&doc, p->value);
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            yaml_node_t *op = map_get(&doc, item, methods[m]);
            yaml_node_t *security = map_get(&doc, op, "security");
            if (op == NULL || !secured(security != NULL ? security : global))
                continue;
            assert_true(noperations < MAX_OPERATIONS);
            operation_t *o = &operations[noperations++];
            for (size_t i = 0; i <= strlen(methods[m]); i++)
                o->method[i] = (char)(methods[m][i] >= 'a' ? methods[m][i] - 32 : methods[m][i]);
            fill_params(pattern, o->path, sizeof(o->path));
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

/* An independent count: lines "security: [...]" inside the paths section, not "[]". */
static int count_security_lines(void)
{
    size_t len;
    char *text = read_document(&len);
    int n = 0, in_paths = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] != ' ' && line[0] != '#')
            in_paths = strncmp(line, "paths:", 6) == 0;
        const char *s = line + strspn(line, " ");
        if (!in_paths || strncmp(s, "security:", 9) != 0)
            continue;
        s += 9 + strspn(s + 9, " ");
        n += strncmp(s, "[]", 2) != 0 || s[2 + strspn(s + 2, " ")] != '\0';
    }
    return n;
}

static int group_setup(void **state)
{
    collect_operations();
    return harness_server_start(&server, NULL);
}

static int group_teardown(void **state)
{
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the sweep ---- */

typedef struct {
    const char *name;
    const char *content_type; /* NULL: none sent */
    const char *body;         /* NULL: no body */
} body_case_t;

typedef struct {
    const char *name;
    const char *header; /* NULL: no credentials */
} credentials_t;

static void expect_unauthorized(const operation_t *o, int protocol, const credentials_t *c,
                                const body_case_t *b)
{
    char url[512], content_type[128];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? server.https_base : server.http_base,
             o->path);
    const char *headers[3] = {NULL, NULL, NULL};
    int n = 0;
    if (c->header != NULL)
        headers[n++] = c->header;
    if (b->content_type != NULL) {
        snprintf(content_type, sizeof(content_type), "Content-Type: %s", b->content_type);
        headers[n++] = content_type;
    }
    harness_response_t res;
    harness_request(&res, protocol, o->method, url, headers, b->body, b->body != NULL ? strlen(b->body) : 0);
    json_t *doc = json_loads(res.body != NULL ? res.body : "", 0, NULL);
    const char *code = json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
    char www[64];
    const char *challenge = harness_header(&res, "www-authenticate", www, sizeof(www));
    if (res.status != 401 || code == NULL || strcmp(code, "unauthorized") != 0 || challenge == NULL ||
        strncmp(challenge, "Bearer", 6) != 0)
        fail_msg("%s %s over %s, %s, %s: answered %ld %s (WWW-Authenticate %s)", o->method, o->path,
                 protocol == HARNESS_HTTP2 ? "HTTP/2" : "HTTP/1.1", c->name, b->name, res.status,
                 res.body != NULL ? res.body : "", challenge != NULL ? challenge : "missing");
    json_decref(doc);
    harness_response_free(&res);
}

static void test_every_secured_route_authenticates_first(void **state)
{
    /* the walk found what the document declares, and the routes this issue was about */
    assert_int_equal(noperations, count_security_lines());
    assert_true(noperations > 0);
    print_message("%d operations need credentials\n", noperations);
    int seen = 0;
    for (int i = 0; i < noperations; i++)
        seen +=
            (strcmp(operations[i].method, "DELETE") == 0 && strcmp(operations[i].path, "/api/v1/me") == 0) +
            (strcmp(operations[i].method, "PATCH") == 0 &&
             strncmp(operations[i].path, "/api/v1/admin/users/", 20) == 0);
    assert_int_equal(seen, 2);
    static const credentials_t credentials[] = {
        {"no credentials", NULL},
        {"a garbage bearer token", "Authorization: Bearer garbage.garbage.garbage"},
        {"a garbage API key", "X-API-Key: hk_garbage"},
    };
    static const body_case_t bodies[] = {
        {"invalid JSON", "application/json", "{\"password\":"},
        {"another Content-Type", "text/plain", "{\"password\":\"x\"}"},
        {"an unknown field", "application/json", "{\"no_such_field\":1}"},
        {"a wrong type", "application/json", "{\"password\":[],\"display_name\":7}"},
        {"a \\u0000", "application/json", "{\"password\":\"a\\u0000b\"}"},
        {"a JSON array", "application/json", "[]"},
        {"no body", NULL, NULL},
    };
    for (int i = 0; i < noperations; i++)
        for (int protocol = HARNESS_HTTP1; protocol <= HARNESS_HTTP2; protocol++)
            for (size_t c = 0; c < sizeof(credentials) / sizeof(credentials[0]); c++)
                for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
                    expect_unauthorized(&operations[i], protocol, &credentials[c], &bodies[b]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_secured_route_authenticates_first),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
