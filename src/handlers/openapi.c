/*
 * docs/openapi.yaml is the one description of the API; /openapi.json serves the same
 * document as JSON, converted once at start-up with libyaml's document API.
 */
#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define OPENAPI_MAX_DEPTH 64
#define OPENAPI_MAX_NODES 200000 /* aliases may repeat a subtree; bound the expansion */

typedef struct {
    yaml_document_t *doc;
    long nodes;
    char *err;
    size_t errlen;
} openapi_conv_t;

static int openapi_is_number(const char *s, size_t len, int *is_integer)
{
    if (len == 0)
        return 0;
    char *end = NULL;
    strtod(s, &end);
    if (end != s + len)
        return 0;
    /* "inf", "nan", hex and the like are strings in YAML 1.2's core schema. */
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789+-.eE", s[i]))
            return 0;
    *is_integer = strpbrk(s, ".eE") == NULL;
    return 1;
}

static json_t *openapi_scalar(const yaml_node_t *node)
{
    const char *s = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_stringn(s, len);
    if (strcmp(s, "true") == 0)
        return json_true();
    if (strcmp(s, "false") == 0)
        return json_false();
    if (strcmp(s, "null") == 0 || strcmp(s, "~") == 0 || len == 0)
        return json_null();
    int is_integer = 0;
    if (openapi_is_number(s, len, &is_integer))
        return is_integer ? json_integer(strtoll(s, NULL, 10)) : json_real(strtod(s, NULL));
    return json_stringn(s, len);
}

static json_t *openapi_node(openapi_conv_t *c, yaml_node_t *node, int depth);

static json_t *openapi_mapping(openapi_conv_t *c, yaml_node_t *node, int depth)
{
    json_t *obj = json_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         obj != NULL && p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(c->doc, p->key);
        if (key == NULL || key->type != YAML_SCALAR_NODE) {
            snprintf(c->err, c->errlen, "line %zu: mapping keys must be scalars",
                     key != NULL ? key->start_mark.line + 1 : 0);
            json_decref(obj);
            return NULL;
        }
        json_t *value = openapi_node(c, yaml_document_get_node(c->doc, p->value), depth + 1);
        if (value == NULL || json_object_setn_new(obj, (const char *)key->data.scalar.value,
                                                  key->data.scalar.length, value) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *openapi_sequence(openapi_conv_t *c, yaml_node_t *node, int depth)
{
    json_t *arr = json_array();
    for (yaml_node_item_t *i = node->data.sequence.items.start;
         arr != NULL && i < node->data.sequence.items.top; i++) {
        json_t *value = openapi_node(c, yaml_document_get_node(c->doc, *i), depth + 1);
        if (value == NULL || json_array_append_new(arr, value) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *openapi_node(openapi_conv_t *c, yaml_node_t *node, int depth)
{
    if (node == NULL || depth > OPENAPI_MAX_DEPTH || ++c->nodes > OPENAPI_MAX_NODES) {
        if (c->err[0] == '\0')
            snprintf(c->err, c->errlen, "document too deep or too large");
        return NULL;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return openapi_scalar(node);
    case YAML_MAPPING_NODE:
        return openapi_mapping(c, node, depth);
    case YAML_SEQUENCE_NODE:
        return openapi_sequence(c, node, depth);
    default:
        snprintf(c->err, c->errlen, "empty document");
        return NULL;
    }
}

char *handlers_yaml_to_json(const char *yaml, size_t len, size_t *out_len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    char *text = NULL;
    err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "line %zu: %s", parser.problem_mark.line + 1,
                 parser.problem != NULL ? parser.problem : "invalid YAML");
        yaml_parser_delete(&parser);
        return NULL;
    }
    openapi_conv_t conv = {.doc = &doc, .err = err, .errlen = errlen};
    json_t *root = openapi_node(&conv, yaml_document_get_root_node(&doc), 0);
    if (root != NULL) {
        text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (text == NULL)
            snprintf(err, errlen, "cannot encode JSON");
        else
            *out_len = strlen(text);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return text;
}
