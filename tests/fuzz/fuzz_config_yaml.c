/*
 * libFuzzer target for the configuration: cfg_load_string (the h2o.conf reader),
 * cfg_load_job_kinds (HYDRANT_JOBS_KINDS) and cfg_apply_env (every HYDRANT_* variable), each
 * on top of the defaults, then cfg_default_hosts and cfg_free (LeakSanitizer sees the rest).
 * cfg_validate is left out: it opens the certificate's path, which a fuzzed file names.
 *
 * Input: one byte, then the text. Bits 0-1: 0 and 1 a YAML file, 2 HYDRANT_JOBS_KINDS, 3 an
 * environment of lines whose first byte picks the variable and whose rest is its value. A
 * failure always says why, naming the file or the variable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "fuzz.h"

#define FUZZ_MAX_VARS 16

static const char *const extra_names[] = {"HYDRANT_LISTEN_TLS",      "HYDRANT_LISTEN_HTTP",
                                          "HYDRANT_TLS_CERT",        "HYDRANT_TLS_KEY",
                                          "HYDRANT_TRUSTED_PROXIES", "HYDRANT_JOBS_KINDS"};

/* The fuzzed environment, for fake_getenv (cfg_apply_env takes no user data). */
static struct {
    const char *name;
    char *value;
} vars[FUZZ_MAX_VARS];
static int nvars;

static const char *fake_getenv(const char *name)
{
    for (int i = nvars - 1; i >= 0; i--)
        if (strcmp(vars[i].name, name) == 0)
            return vars[i].value;
    return NULL;
}

static const char *variable_name(uint8_t pick)
{
    size_t nsettings = 0;
    while (cfg_settings[nsettings].path != NULL)
        nsettings++;
    size_t n = pick % (nsettings + sizeof(extra_names) / sizeof(extra_names[0]));
    return n < nsettings ? cfg_settings[n].env : extra_names[n - nsettings];
}

static int apply_env(cfg_t *cfg, const uint8_t *data, size_t size, char *err, size_t errlen)
{
    nvars = 0;
    while (size > 0 && nvars < FUZZ_MAX_VARS) {
        size_t len;
        const uint8_t *line = fuzz_next(&data, &size, '\n', &len);
        if (len == 0)
            continue;
        vars[nvars].name = variable_name(line[0]);
        vars[nvars++].value = fuzz_string(line + 1, len - 1);
    }
    int rc = cfg_apply_env(cfg, fake_getenv, err, errlen);
    fuzz_check(rc == 0 || strncmp(err, "environment: HYDRANT_", 21) == 0);
    for (int i = 0; i < nvars; i++)
        free(vars[i].value);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    data++, size--;
    cfg_t cfg;
    cfg_init_defaults(&cfg);
    char err[512] = "";
    int rc;
    if (mode < 2) {
        char *yaml = fuzz_copy(data, size);
        rc = cfg_load_string(&cfg, "fuzz.yaml", yaml, size, err, sizeof(err));
        fuzz_check(rc == 0 ? strcmp(cfg.source, "fuzz.yaml") == 0 : strncmp(err, "fuzz.yaml:", 10) == 0);
        free(yaml);
    } else if (mode == 2) {
        char *text = fuzz_string(data, size);
        rc = cfg_load_job_kinds(&cfg, "kinds", text, err, sizeof(err));
        fuzz_check(rc == 0 || strncmp(err, "kinds:", 6) == 0);
        free(text);
    } else {
        rc = apply_env(&cfg, data, size, err, sizeof(err));
    }
    fuzz_check(rc == 0 || rc == -1);
    if (rc == 0)
        cfg_default_hosts(&cfg);
    cfg_free(&cfg);
    return 0;
}
