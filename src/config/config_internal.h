/*
 * Private to src/config: the settings table and helpers shared by its files.
 */
#ifndef HYDRANT_CONFIG_INTERNAL_H
#define HYDRANT_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config/config.h"

typedef enum { CFG_T_STR, CFG_T_INT, CFG_T_SIZE, CFG_T_BOOL, CFG_T_MODE } cfg_type_t;

typedef struct {
    const char *path; /* dotted YAML path: "database.pool-size" */
    const char *env;  /* HYDRANT_* name */
    cfg_type_t type;
    size_t offset; /* into cfg_t */
    long long min, max;
} cfg_setting_t;

extern const cfg_setting_t cfg_settings[]; /* ends with a NULL path */
/* The fields of one jobs.kinds entry (offsets into cfg_job_kind_t, no environment names). */
extern const cfg_setting_t cfg_job_kind_settings[];

const cfg_setting_t *cfg_setting_find(const char *path);
int cfg_is_section(const char *path);
/* Parses text for the setting and stores it at base + s->offset (base: the cfg_t, or the
 * cfg_job_kind_t of cfg_job_kind_settings); returns 0, or -1 with a reason in why. */
int cfg_setting_apply(void *base, const cfg_setting_t *s, const char *text, char *why, size_t whylen);

/* HYDRANT_JOBS_KINDS: the same mapping as the file's jobs.kinds, in YAML flow (or JSON) text,
 * merged over the file's entries. Returns 0, or -1 with "name:line: key '...': why". */
int cfg_load_job_kinds(cfg_t *cfg, const char *name, const char *text, char *err, size_t errlen);

/* Listeners. */
void cfg_listen_clear(cfg_listen_t *l);
/* "host:port" or "[v6]:port" into host/port; returns 0 or -1. */
int cfg_parse_host_port(const char *text, char *host, size_t hostlen, int *port);
/* Appends a list entry (a copy); returns 0 or -1 when full. */
int cfg_add_trusted_proxy(cfg_t *cfg, const char *address);

#endif
