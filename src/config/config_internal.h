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

const cfg_setting_t *cfg_setting_find(const char *path);
int cfg_is_section(const char *path);
/* Parses text for the setting and stores it; returns 0, or -1 with a reason in why. */
int cfg_setting_apply(cfg_t *cfg, const cfg_setting_t *s, const char *text, char *why, size_t whylen);

/* Listeners. */
void cfg_listen_clear(cfg_listen_t *l);
/* "host:port" or "[v6]:port" into host/port; returns 0 or -1. */
int cfg_parse_host_port(const char *text, char *host, size_t hostlen, int *port);
/* Appends a list entry (a copy); returns 0 or -1 when full. */
int cfg_add_trusted_proxy(cfg_t *cfg, const char *address);

#endif
