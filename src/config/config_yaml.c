/*
 * h2o.conf reader: libyaml's document API, then a walk that maps dotted paths to the
 * settings table. Every error names the file, the line and the key.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define CFG_MAX_FILE  (1024 * 1024)
#define CFG_MAX_DEPTH 16

typedef struct {
    cfg_t *cfg;
    yaml_document_t *doc;
    const char *name;
    char *err;
    size_t errlen;
} cfg_reader_t;

static int cfg_error(cfg_reader_t *r, const yaml_node_t *node, const char *key, const char *fmt,
                     const char *arg)
{
    char why[256];
    snprintf(why, sizeof(why), fmt, arg);
    snprintf(r->err, r->errlen, "%s:%zu: key '%s': %s", r->name, node != NULL ? node->start_mark.line + 1 : 0,
             key, why);
    return -1;
}

static const char *cfg_node_type_name(const yaml_node_t *node)
{
    return node->type == YAML_MAPPING_NODE    ? "a mapping"
           : node->type == YAML_SEQUENCE_NODE ? "a list"
                                              : "a scalar";
}

static const char *cfg_scalar(const yaml_node_t *node)
{
    return node != NULL && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* Refuses a key that appears twice in one mapping (libyaml keeps both). */
static int cfg_check_duplicates(cfg_reader_t *r, yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top; a++) {
        const char *ka = cfg_scalar(yaml_document_get_node(r->doc, a->key));
        for (yaml_node_pair_t *b = a + 1; ka != NULL && b < map->data.mapping.pairs.top; b++) {
            yaml_node_t *kb_node = yaml_document_get_node(r->doc, b->key);
            const char *kb = cfg_scalar(kb_node);
            if (kb != NULL && strcmp(ka, kb) == 0) {
                char key[256];
                snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", kb);
                return cfg_error(r, kb_node, key, "appears twice%s", "");
            }
        }
    }
    return 0;
}

static int cfg_read_ssl(cfg_reader_t *r, yaml_node_t *node, cfg_listen_t *l, const char *key)
{
    if (node->type != YAML_MAPPING_NODE)
        return cfg_error(r, node, key, "expected a mapping, got %s", cfg_node_type_name(node));
    if (cfg_check_duplicates(r, node, key) != 0)
        return -1;
    l->tls = 1;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key),
                    *v = yaml_document_get_node(r->doc, p->value);
        const char *name = cfg_scalar(k), *value = cfg_scalar(v);
        char full[256];
        snprintf(full, sizeof(full), "%s.%s", key, name != NULL ? name : "?");
        char **field = name == NULL                            ? NULL
                       : strcmp(name, "certificate-file") == 0 ? &l->cert_file
                       : strcmp(name, "key-file") == 0         ? &l->key_file
                                                               : NULL;
        if (field == NULL)
            return cfg_error(r, k, full, "unknown key%s", "");
        if (value == NULL)
            return cfg_error(r, v, full, "expected a file name, got %s", cfg_node_type_name(v));
        free(*field);
        *field = strdup(value);
    }
    return 0;
}

static int cfg_read_listener(cfg_reader_t *r, yaml_node_t *node, int index)
{
    char key[64];
    snprintf(key, sizeof(key), "listen[%d]", index);
    if (index >= CFG_MAX_LISTENERS)
        return cfg_error(r, node, key, "at most %s listeners", "8");
    if (node->type != YAML_MAPPING_NODE)
        return cfg_error(r, node, key, "expected a mapping with host and port, got %s",
                         cfg_node_type_name(node));
    if (cfg_check_duplicates(r, node, key) != 0)
        return -1;
    cfg_listen_t *l = &r->cfg->listen[index];
    cfg_listen_clear(l); /* no host: cfg_default_hosts picks one by mode */
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key),
                    *v = yaml_document_get_node(r->doc, p->value);
        const char *name = cfg_scalar(k), *value = cfg_scalar(v);
        char full[128];
        snprintf(full, sizeof(full), "%s.%s", key, name != NULL ? name : "?");
        if (name != NULL && strcmp(name, "ssl") == 0) {
            if (cfg_read_ssl(r, v, l, full) != 0)
                return -1;
        } else if (name != NULL && strcmp(name, "host") == 0 && value != NULL) {
            free(l->host);
            l->host = strdup(value);
        } else if (name != NULL && strcmp(name, "port") == 0 && value != NULL) {
            char *end;
            long port = strtol(value, &end, 10);
            if (end == value || *end != '\0' || port < 1 || port > 65535)
                return cfg_error(r, v, full, "expected a port 1..65535, got \"%.64s\"", value);
            l->port = (int)port;
        } else {
            return cfg_error(r, name != NULL && value == NULL ? v : k, full,
                             name != NULL && (strcmp(name, "host") == 0 || strcmp(name, "port") == 0)
                                 ? "expected a scalar%s"
                                 : "unknown key%s",
                             "");
        }
    }
    if (l->port == 0)
        return cfg_error(r, node, key, "needs a port%s", "");
    return 0;
}

static int cfg_read_listen(cfg_reader_t *r, yaml_node_t *node)
{
    for (int i = 0; i < CFG_MAX_LISTENERS; i++)
        cfg_listen_clear(&r->cfg->listen[i]);
    r->cfg->nlisten = 0;
    if (node->type == YAML_MAPPING_NODE) {
        r->cfg->nlisten = 1;
        return cfg_read_listener(r, node, 0);
    }
    if (node->type != YAML_SEQUENCE_NODE)
        return cfg_error(r, node, "listen", "expected a list of listeners, got %s", cfg_node_type_name(node));
    for (yaml_node_item_t *i = node->data.sequence.items.start; i < node->data.sequence.items.top; i++) {
        int index = (int)(i - node->data.sequence.items.start);
        if (cfg_read_listener(r, yaml_document_get_node(r->doc, *i), index) != 0)
            return -1;
        r->cfg->nlisten = index + 1;
    }
    return 0;
}

static int cfg_read_trusted(cfg_reader_t *r, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE)
        return cfg_error(r, node, "trusted-proxies", "expected a list of addresses, got %s",
                         cfg_node_type_name(node));
    for (yaml_node_item_t *i = node->data.sequence.items.start; i < node->data.sequence.items.top; i++) {
        yaml_node_t *item = yaml_document_get_node(r->doc, *i);
        const char *value = cfg_scalar(item);
        unsigned char buf[16];
        if (value == NULL || (inet_pton(AF_INET, value, buf) != 1 && inet_pton(AF_INET6, value, buf) != 1))
            return cfg_error(r, item, "trusted-proxies", "expected an IP address, got \"%.64s\"",
                             value != NULL ? value : "a non-scalar");
        if (cfg_add_trusted_proxy(r->cfg, value) != 0)
            return cfg_error(r, item, "trusted-proxies", "at most %s entries", "16");
    }
    return 0;
}

/* A kind name as the jobs table's check allows it: [a-z0-9_] words joined by dots. */
static int cfg_job_kind_valid(const char *kind)
{
    size_t len = strlen(kind);
    if (len == 0 || len > 64 || kind[0] == '.' || kind[len - 1] == '.' || strstr(kind, "..") != NULL)
        return 0;
    return strspn(kind, "abcdefghijklmnopqrstuvwxyz0123456789_.") == len;
}

/* The entry of a kind, made (empty) when it has none yet; NULL when the table is full. */
static cfg_job_kind_t *cfg_job_kind_slot(cfg_t *cfg, const char *kind)
{
    for (int i = 0; i < cfg->jobs.nkinds; i++)
        if (strcmp(cfg->jobs.kinds[i].kind, kind) == 0)
            return &cfg->jobs.kinds[i];
    if (cfg->jobs.nkinds == CFG_MAX_JOB_KINDS)
        return NULL;
    cfg_job_kind_t *slot = &cfg->jobs.kinds[cfg->jobs.nkinds];
    *slot = (cfg_job_kind_t){.kind = strdup(kind)};
    if (slot->kind == NULL)
        return NULL;
    cfg->jobs.nkinds++;
    return slot;
}

/* One kind's schedule: a mapping of cfg_job_kind_settings. */
static int cfg_read_job_kind(cfg_reader_t *r, yaml_node_t *node, cfg_job_kind_t *slot, const char *key)
{
    if (node->type != YAML_MAPPING_NODE)
        return cfg_error(r, node, key, "expected a mapping, got %s", cfg_node_type_name(node));
    if (cfg_check_duplicates(r, node, key) != 0)
        return -1;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key),
                    *v = yaml_document_get_node(r->doc, p->value);
        const char *name = cfg_scalar(k), *value = cfg_scalar(v);
        char full[256], why[200];
        snprintf(full, sizeof(full), "%s.%s", key, name != NULL ? name : "?");
        const cfg_setting_t *s = cfg_job_kind_settings;
        while (s->path != NULL && (name == NULL || strcmp(s->path, name) != 0))
            s++;
        if (s->path == NULL)
            return cfg_error(r, k, full, "unknown key%s", "");
        if (value == NULL)
            return cfg_error(r, v, full, "expected a value, got %s", cfg_node_type_name(v));
        if (cfg_setting_apply(slot, s, value, why, sizeof(why)) != 0)
            return cfg_error(r, v, full, "%s", why);
    }
    return 0;
}

/* jobs.kinds: kind name -> schedule. Entries merge into those read before (file, then
 * environment). */
static int cfg_read_job_kinds(cfg_reader_t *r, yaml_node_t *node)
{
    if (node->type != YAML_MAPPING_NODE)
        return cfg_error(r, node, "jobs.kinds", "expected a mapping of kinds, got %s",
                         cfg_node_type_name(node));
    if (cfg_check_duplicates(r, node, "jobs.kinds") != 0)
        return -1;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        const char *kind = cfg_scalar(k);
        char key[128];
        snprintf(key, sizeof(key), "jobs.kinds.%.64s", kind != NULL ? kind : "?");
        if (kind == NULL || !cfg_job_kind_valid(kind))
            return cfg_error(r, k, key, "expected a job kind (a-z, 0-9, _ and dots, at most 64)%s", "");
        cfg_job_kind_t *slot = cfg_job_kind_slot(r->cfg, kind);
        if (slot == NULL)
            return cfg_error(r, k, key, "at most %s kinds", "16");
        if (cfg_read_job_kind(r, yaml_document_get_node(r->doc, p->value), slot, key) != 0)
            return -1;
    }
    return 0;
}

static int cfg_read_mapping(cfg_reader_t *r, yaml_node_t *map, const char *prefix, int depth)
{
    if (depth > CFG_MAX_DEPTH)
        return cfg_error(r, map, prefix, "nested too deeply%s", "");
    if (cfg_check_duplicates(r, map, prefix) != 0)
        return -1;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key),
                    *v = yaml_document_get_node(r->doc, p->value);
        const char *name = cfg_scalar(k);
        if (name == NULL)
            return cfg_error(r, k, prefix, "keys must be plain names%s", "");
        char path[256];
        snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", name);
        const cfg_setting_t *s = cfg_setting_find(path);
        int rc;
        if (depth == 0 && strcmp(path, "listen") == 0)
            rc = cfg_read_listen(r, v);
        else if (depth == 0 && strcmp(path, "trusted-proxies") == 0)
            rc = cfg_read_trusted(r, v);
        else if (strcmp(path, "jobs.kinds") == 0)
            rc = cfg_read_job_kinds(r, v);
        else if (cfg_is_section(path))
            rc = v->type == YAML_MAPPING_NODE
                     ? cfg_read_mapping(r, v, path, depth + 1)
                     : cfg_error(r, v, path, "expected a mapping, got %s", cfg_node_type_name(v));
        else if (s == NULL)
            rc = cfg_error(r, k, path, "unknown key%s", "");
        else if (v->type != YAML_SCALAR_NODE)
            rc = cfg_error(r, v, path, "expected a value, got %s", cfg_node_type_name(v));
        else {
            char why[200];
            rc = cfg_setting_apply(r->cfg, s, cfg_scalar(v), why, sizeof(why)) == 0
                     ? 0
                     : cfg_error(r, v, path, "%s", why);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int cfg_read_root(cfg_reader_t *r, yaml_node_t *root)
{
    if (root->type != YAML_MAPPING_NODE)
        return cfg_error(r, root, "(top)", "expected a mapping, got %s", cfg_node_type_name(root));
    return cfg_read_mapping(r, root, "", 0);
}

/* Parses YAML text and hands its root (if any) to read. */
static int cfg_parse(cfg_t *cfg, const char *name, const char *yaml, size_t len,
                     int (*read)(cfg_reader_t *r, yaml_node_t *root), char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (len > CFG_MAX_FILE)
        return snprintf(err, errlen, "%s: larger than 1 MiB", name), -1;
    if (!yaml_parser_initialize(&parser))
        return snprintf(err, errlen, "%s: out of memory", name), -1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu: invalid YAML: %s", name, parser.problem_mark.line + 1,
                 parser.problem != NULL ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cfg_reader_t reader = {cfg, &doc, name, err, errlen};
    int rc = root != NULL ? read(&reader, root) : 0;
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int cfg_load_string(cfg_t *cfg, const char *name, const char *yaml, size_t len, char *err, size_t errlen)
{
    int rc = cfg_parse(cfg, name, yaml, len, cfg_read_root, err, errlen);
    if (rc == 0) {
        free(cfg->source);
        cfg->source = strdup(name);
    }
    return rc;
}

int cfg_load_job_kinds(cfg_t *cfg, const char *name, const char *text, char *err, size_t errlen)
{
    return cfg_parse(cfg, name, text, strlen(text), cfg_read_job_kinds, err, errlen);
}

int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL)
        return snprintf(err, errlen, "%s: cannot open the configuration file", path), -1;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CFG_MAX_FILE) {
        fclose(f);
        return snprintf(err, errlen, "%s: not a regular file of at most 1 MiB", path), -1;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text != NULL ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (text == NULL || n != (size_t)st.st_size) {
        free(text);
        return snprintf(err, errlen, "%s: read failed", path), -1;
    }
    int rc = cfg_load_string(cfg, path, text, n, err, errlen);
    free(text);
    return rc;
}
