#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANDLERS_MAX_OPENAPI (4 * 1024 * 1024)

int handlers_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen)
{
    if (handlers_ops_register(router, err, errlen) != 0)
        return -1;
    return handlers_diag_register(router, cfg, err, errlen);
}

static char *handlers_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (f == NULL || fstat(fileno(f), &st) != 0 || st.st_size < 0 || (size_t)st.st_size > max) {
        snprintf(err, errlen, "openapi-file %s: cannot read it (missing, unreadable or over %zu bytes)", path,
                 max);
        if (f != NULL)
            fclose(f);
        return NULL;
    }
    char *data = malloc((size_t)st.st_size + 1);
    if (data == NULL || fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, errlen, "openapi-file %s: read failed", path);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    data[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return data;
}

int handlers_app_init(handlers_app_t *app, const cfg_t *cfg, char *err, size_t errlen)
{
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    if (gethostname(app->hostname, sizeof(app->hostname) - 1) != 0)
        strcpy(app->hostname, "unknown");
    size_t len = 0;
    char *yaml = handlers_read_file(cfg->openapi_file, HANDLERS_MAX_OPENAPI, &len, err, errlen);
    if (yaml == NULL)
        return -1;
    char why[256];
    app->openapi_json = handlers_yaml_to_json(yaml, len, &app->openapi_len, why, sizeof(why));
    free(yaml);
    if (app->openapi_json == NULL) {
        snprintf(err, errlen, "openapi-file %s: %s", cfg->openapi_file, why);
        return -1;
    }
    return 0;
}

void handlers_app_free(handlers_app_t *app)
{
    free(app->openapi_json);
    app->openapi_json = NULL;
}
