#include "handlers/handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HANDLERS_MAX_OPENAPI (4 * 1024 * 1024)

const handlers_family_t handlers_families[] = {
    {"ops", handlers_ops_register},
    {"auth", handlers_auth_register},
    {"me", handlers_me_register},
    {"password", handlers_password_register},
    {"profile", handlers_profile_register},
    {"admin", handlers_admin_register},
    {"jobs", handlers_jobs_register},
    {"files", handlers_files_register},
    {"realtime", handlers_realtime_register},
    {"rooms", handlers_rooms_register},
    {"notifications", handlers_notifications_register},
    {NULL, NULL},
};

int handlers_register(http_router_t *router, const cfg_t *cfg, char *err, size_t errlen)
{
    for (const handlers_family_t *f = handlers_families; f->name != NULL; f++)
        if (f->add(router, err, errlen) != 0)
            return -1;
    return 0;
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

static int handlers_app_init_auth(handlers_app_t *app, const cfg_t *cfg, char *err, size_t errlen);

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
    if (handlers_app_init_auth(app, cfg, err, errlen) != 0)
        return -1;
    return handlers_principals_start(app, err, errlen);
}

/* Access-token settings; without a configured secret (development only: production refuses
 * to start) a random one, so tokens die with the process. */
static int handlers_app_init_auth(handlers_app_t *app, const cfg_t *cfg, char *err, size_t errlen)
{
    const char *secret = cfg->auth.jwt_secret;
    app->jwt =
        (auth_jwt_config_t){.issuer = cfg->auth.jwt_issuer, .ttl_s = cfg->auth.access_ttl_s, .leeway_s = 5};
    if (secret != NULL && secret[0] != '\0') {
        app->jwt.secret = (const unsigned char *)secret;
        app->jwt.secret_len = strlen(secret);
    } else {
        if (util_random_bytes(app->jwt_secret, sizeof(app->jwt_secret)) != 0) {
            snprintf(err, errlen, "cannot draw a random JWT secret");
            return -1;
        }
        util_log(UTIL_LOG_WARN, "auth",
                 "no auth.jwt-secret configured: using a random one (tokens end with the process)");
        app->jwt.secret = app->jwt_secret;
        app->jwt.secret_len = sizeof(app->jwt_secret);
    }
    app->argon2 =
        (auth_argon2_params_t){(uint32_t)cfg->auth.argon2_memory_kib, (uint32_t)cfg->auth.argon2_iterations,
                               (uint32_t)cfg->auth.argon2_parallelism};
    char random[AUTH_TOKEN_LEN + 1];
    if (auth_token_new(random) != 0 || auth_password_hash(random, strlen(random), &app->argon2,
                                                          app->dummy_hash, sizeof(app->dummy_hash)) != 0) {
        snprintf(err, errlen, "cannot make the dummy password hash");
        return -1;
    }
    return 0;
}

void handlers_app_free(handlers_app_t *app)
{
    handlers_principals_stop(app);
    free(app->openapi_json);
    app->openapi_json = NULL;
}
