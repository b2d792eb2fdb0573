/*
 * `hydrant settings`: the settings table (settings.c) with the defaults of cfg_init_defaults,
 * as the Markdown table of docs/SETTINGS.md, so the documented names, types, defaults and
 * bounds are the code's (scripts/settings-doc.sh --check fails when the document differs).
 */
#include "config/config_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Defaults that are not a plain value: the text shown instead. */
static const struct {
    const char *path;
    const char *text;
} cfg_default_texts[] = {
    {"num-threads", "`0`: one per CPU core"}, /* cfg_init_defaults counts this machine's */
    {"access-log", "stdout (`-`); `off` disables"},
    {"auth.jwt-secret", "none: a random one per process (production refuses to start)"},
    {"smtp.ca-file", "none: the system's CAs"},
    {"uploads.spill-dir", "`<uploads.dir>/tmp`"},
    {"tls.hsts-max-age", "`31536000` in production, `0` (off) in development"}, /* cfg_default_by_mode */
};

static const char *const cfg_type_names[] = {
    [CFG_T_STR] = "string",   [CFG_T_INT] = "integer", [CFG_T_SIZE] = "size",
    [CFG_T_BOOL] = "boolean", [CFG_T_MODE] = "mode",
};

/* A size as it would be written in h2o.conf: 1M rather than 1048576. */
static void cfg_size_text(long long v, char *out, size_t outlen)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        long long unit = 1LL << (10 * (3 - i));
        if (v != 0 && v % unit == 0) {
            snprintf(out, outlen, "%lld%c", v / unit, units[i]);
            return;
        }
    }
    snprintf(out, outlen, "%lld", v);
}

static const char *cfg_default_text(const char *path)
{
    for (size_t i = 0; i < sizeof(cfg_default_texts) / sizeof(cfg_default_texts[0]); i++)
        if (strcmp(cfg_default_texts[i].path, path) == 0)
            return cfg_default_texts[i].text;
    return NULL;
}

/* The default column: the value cfg_init_defaults gives the field. */
static void cfg_default_column(const cfg_t *defaults, const cfg_setting_t *s, char *out, size_t outlen)
{
    const void *field = (const char *)defaults + s->offset;
    char value[256];
    const char *text = cfg_default_text(s->path);
    if (text != NULL) {
        snprintf(out, outlen, "%s", text);
        return;
    }
    switch (s->type) {
    case CFG_T_STR:
        if (*(char *const *)field == NULL) {
            snprintf(out, outlen, "none");
            return;
        }
        snprintf(value, sizeof(value), "%s", *(char *const *)field);
        break;
    case CFG_T_INT:
        snprintf(value, sizeof(value), "%d", *(const int *)field);
        break;
    case CFG_T_SIZE:
        cfg_size_text(*(const int64_t *)field, value, sizeof(value));
        break;
    case CFG_T_BOOL:
        snprintf(value, sizeof(value), "%s", *(const int *)field ? "true" : "false");
        break;
    case CFG_T_MODE:
        snprintf(value, sizeof(value), "%s",
                 *(const cfg_mode_t *)field == CFG_MODE_PRODUCTION ? "production" : "development");
        break;
    }
    snprintf(out, outlen, "`%s`", value);
}

static void cfg_range_column(const cfg_setting_t *s, char *out, size_t outlen)
{
    char min[32], max[32];
    out[0] = '\0';
    if (s->type == CFG_T_MODE)
        snprintf(out, outlen, "`development`, `production`");
    else if (s->type == CFG_T_INT)
        snprintf(out, outlen, "%lld..%lld", s->min, s->max);
    else if (s->type == CFG_T_SIZE) {
        cfg_size_text(s->min, min, sizeof(min));
        cfg_size_text(s->max, max, sizeof(max));
        snprintf(out, outlen, "%s..%s", min, max);
    }
}

static void cfg_print_row(FILE *out, const char *path, const char *env, const cfg_setting_t *s,
                          const char *default_text)
{
    char range[96];
    cfg_range_column(s, range, sizeof(range));
    fprintf(out, "| `%s` | %s | %s | %s | %s |\n", path, env, cfg_type_names[s->type], default_text, range);
}

int cfg_settings_print(FILE *out, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof(cfg_default_texts) / sizeof(cfg_default_texts[0]); i++)
        if (cfg_setting_find(cfg_default_texts[i].path) == NULL)
            return snprintf(err, errlen, "settings: no setting %s", cfg_default_texts[i].path), -1;
    cfg_t defaults;
    cfg_init_defaults(&defaults);
    char env[96], value[320], path[96];
    fprintf(out, "| setting | environment | type | default | range |\n|---|---|---|---|---|\n");
    for (const cfg_setting_t *s = cfg_settings; s->path != NULL; s++) {
        snprintf(env, sizeof(env), "`%s`", s->env);
        cfg_default_column(&defaults, s, value, sizeof(value));
        cfg_print_row(out, s->path, env, s, value);
    }
    /* jobs.kinds.<kind>: a field left out takes the jobs.* setting of the same name. */
    for (const cfg_setting_t *s = cfg_job_kind_settings; s->path != NULL; s++) {
        snprintf(path, sizeof(path), "jobs.kinds.<kind>.%s", s->path);
        snprintf(value, sizeof(value), "`jobs.%s`", s->path);
        cfg_print_row(out, path, "`HYDRANT_JOBS_KINDS` (JSON)", s, value);
    }
    cfg_free(&defaults);
    return 0;
}
