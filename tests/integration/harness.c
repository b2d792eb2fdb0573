#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int harness_service_port(const char *service)
{
    const char *dir = getenv("HYDRANT_TEST_SERVICES_DIR");
    char path[512];
    int port = 0;
    if (dir == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/%s/port", dir, service);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

/* The service addresses are not known when ctest is configured (the fixture picks free
 * ports when it starts): derive them from its port files once, into the environment. */
static void harness_service_env(const char *name)
{
    char value[256];
    int port;
    if (strcmp(name, "HYDRANT_TEST_DATABASE_URL") == 0 && (port = harness_service_port("pg")) > 0)
        snprintf(value, sizeof(value), "postgresql://hydrant@127.0.0.1:%d/hydrant", port);
    else if (strcmp(name, "HYDRANT_TEST_PG_PORT") == 0 && (port = harness_service_port("pg")) > 0)
        snprintf(value, sizeof(value), "%d", port);
    else if (strcmp(name, "HYDRANT_TEST_REDIS_URL") == 0 && (port = harness_service_port("redis")) > 0)
        snprintf(value, sizeof(value), "redis://127.0.0.1:%d/0", port);
    else if (strcmp(name, "HYDRANT_TEST_SMTP_URL") == 0 && (port = harness_service_port("smtp")) > 0)
        snprintf(value, sizeof(value), "smtp://127.0.0.1:%d", port);
    else
        return;
    setenv(name, value, 0);
}

const char *harness_env(const char *name)
{
    if (getenv(name) == NULL)
        harness_service_env(name);
    const char *value = getenv(name);
    if (value == NULL || *value == '\0') {
        fprintf(stderr, "harness: %s is not set (run the tests through ctest)\n", name);
        exit(1);
    }
    return value;
}

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int harness_system(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
}

/* ------------------------------------------------------------- the process ---- */

static const char *harness_tls_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/tls", harness_env("HYDRANT_TEST_SERVICES_DIR"));
    return buf;
}

/* The environment every hydrant started by a test gets; extra entries come last so they
 * override. Returned strings live in a static arena: tests are single-threaded. */
static char **harness_build_env(const harness_server_t *s, const char *const *extra_env)
{
    static char arena[32][512];
    static char *envp[64];
    int n = 0;
    char tls[256];
    harness_tls_dir(tls, sizeof(tls));
    const char *src = harness_env("HYDRANT_SOURCE_DIR");
#define HARNESS_SET(...) snprintf(arena[n], sizeof(arena[n]), __VA_ARGS__), envp[n] = arena[n], n++
    HARNESS_SET("PATH=%s", getenv("PATH") != NULL ? getenv("PATH") : "/usr/bin:/bin");
    HARNESS_SET("HYDRANT_CONFIG=%s/tests/integration/test.conf", src);
    HARNESS_SET("HYDRANT_DATABASE_URL=%s", harness_env("HYDRANT_TEST_DATABASE_URL"));
    HARNESS_SET("HYDRANT_REDIS_URL=%s", harness_env("HYDRANT_TEST_REDIS_URL"));
    HARNESS_SET("HYDRANT_SMTP_URL=%s", harness_env("HYDRANT_TEST_SMTP_URL"));
    HARNESS_SET("HYDRANT_TLS_CERT=%s/cert.pem", tls);
    HARNESS_SET("HYDRANT_TLS_KEY=%s/key.pem", tls);
    HARNESS_SET("HYDRANT_OPENAPI_FILE=%s/docs/openapi.yaml", src);
    HARNESS_SET("HYDRANT_MIGRATIONS_DIR=%s/migrations", src);
    HARNESS_SET("HYDRANT_SMTP_TEMPLATES_DIR=%s/templates/email", src);
    HARNESS_SET("HYDRANT_JWT_SECRET=integration-test-secret-0123456789abcdef");
    if (s != NULL && s->tls_port > 0) {
        HARNESS_SET("HYDRANT_LISTEN_TLS=127.0.0.1:%d", s->tls_port);
        HARNESS_SET("HYDRANT_LISTEN_HTTP=127.0.0.1:%d", s->http_port);
        HARNESS_SET("HYDRANT_ACCESS_LOG=%s", s->log_path);
    }
    for (const char *getenv_names[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", NULL},
                    **name = getenv_names;
         *name != NULL; name++)
        if (getenv(*name) != NULL)
            HARNESS_SET("%s=%s", *name, getenv(*name));
#undef HARNESS_SET
    /* Extra entries replace defaults of the same name (getenv takes the first match). */
    for (int i = 0; extra_env != NULL && extra_env[i] != NULL && n < 63; i++) {
        size_t name_len = strcspn(extra_env[i], "=");
        int j = 0;
        while (j < n && !(strncmp(envp[j], extra_env[i], name_len + 1) == 0))
            j++;
        envp[j] = (char *)extra_env[i];
        if (j == n)
            n++;
    }
    envp[n] = NULL;
    return envp;
}

/* When set, the next spawned process reads its standard input from this file. */
static char harness_stdin_path[300];

static pid_t harness_spawn(char **envp, const char *args, const char *out_path)
{
    char *argv[16];
    char copy[512];
    int argc = 0;
    argv[argc++] = (char *)harness_env("HYDRANT_TEST_BINARY");
    snprintf(copy, sizeof(copy), "%s", args);
    for (char *save = NULL, *tok = strtok_r(copy, " ", &save); tok != NULL && argc < 15;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        /* A test that dies (a failed assertion aborts it) takes its servers along: a server
         * left running would keep taking the next runs' jobs from the shared database. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        int in = harness_stdin_path[0] != '\0' ? open(harness_stdin_path, O_RDONLY) : -1;
        if (in >= 0)
            dup2(in, STDIN_FILENO);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

static int harness_wait(pid_t pid, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    int status = 0;
    while (harness_now_ms() < deadline) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(20 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* The configuration names a certificate even for commands that do not serve: make the
 * development one (once; dev-cert.sh keeps an existing one). */
static int harness_ensure_cert(void)
{
    char tls[256];
    return harness_system("%s/scripts/dev-cert.sh %s >/dev/null", harness_env("HYDRANT_SOURCE_DIR"),
                          harness_tls_dir(tls, sizeof(tls)));
}

int harness_run_hydrant_input(char *out, size_t outlen, const char *const *extra_env, const char *args,
                              const char *input)
{
    snprintf(harness_stdin_path, sizeof(harness_stdin_path), "%s/hydrant-stdin-%d",
             harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    FILE *f = fopen(harness_stdin_path, "w");
    if (f == NULL)
        return -1;
    fputs(input, f);
    fclose(f);
    int rc = harness_run_hydrant(out, outlen, extra_env, args);
    unlink(harness_stdin_path);
    harness_stdin_path[0] = '\0';
    return rc;
}

int harness_run_hydrant(char *out, size_t outlen, const char *const *extra_env, const char *args)
{
    if (harness_ensure_cert() != 0)
        return -1;
    char path[256];
    snprintf(path, sizeof(path), "%s/hydrant-cli-%d.out", harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    pid_t pid = harness_spawn(harness_build_env(NULL, extra_env), args, path);
    int rc = pid > 0 ? harness_wait(pid, 60000) : -1;
    if (out != NULL && outlen > 0) {
        out[0] = '\0';
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(out, 1, outlen - 1, f);
            out[n] = '\0';
            fclose(f);
        }
    }
    unlink(path);
    return rc;
}

static long harness_gauge(const char *metrics, const char *name)
{
    const char *at = strstr(metrics, name);
    return at != NULL ? strtol(at + strlen(name), NULL, 10) : -1;
}

/* The loops answer before their PostgreSQL and Redis connections are ready: give those a
 * moment (tests that start a server with a service down go on after it). Every loop's, as
 * /metrics sums them: one /health answers for one loop only. */
static void harness_wait_backends(const harness_server_t *s)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/metrics", s->http_base);
    for (long long deadline = harness_now_ms() + 5000; harness_now_ms() < deadline; usleep(20 * 1000)) {
        harness_response_t res;
        harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
        int ready = res.status == 200 && res.body != NULL &&
                    harness_gauge(res.body, "hydrant_db_connections{state=\"ready\"} ") ==
                        harness_gauge(res.body, "hydrant_db_connections{state=\"configured\"} ") &&
                    harness_gauge(res.body, "hydrant_redis_connections{state=\"ready\"} ") ==
                        harness_gauge(res.body, "hydrant_redis_connections{state=\"configured\"} ") &&
                    harness_gauge(res.body, "hydrant_db_connections{state=\"ready\"} ") > 0;
        harness_response_free(&res);
        if (ready)
            return;
    }
}

int harness_server_start(harness_server_t *s, const char *const *extra_env)
{
    memset(s, 0, sizeof(*s));
    const char *dir = harness_env("HYDRANT_TEST_SERVICES_DIR");
    if (harness_run_hydrant(NULL, 0, extra_env, "migrate up") != 0)
        return -1;
    s->tls_port = harness_free_port();
    s->http_port = harness_free_port();
    snprintf(s->https_base, sizeof(s->https_base), "https://127.0.0.1:%d", s->tls_port);
    snprintf(s->http_base, sizeof(s->http_base), "http://127.0.0.1:%d", s->http_port);
    snprintf(s->log_path, sizeof(s->log_path), "%s/access-%d-%d.log", dir, getpid(), s->http_port);
    snprintf(s->stderr_path, sizeof(s->stderr_path), "%s/hydrant-%d-%d.err", dir, getpid(), s->http_port);
    s->pid = harness_spawn(harness_build_env(s, extra_env), "serve", s->stderr_path);
    if (s->pid <= 0)
        return -1;
    char url[128];
    snprintf(url, sizeof(url), "%s/health/live", s->http_base);
    for (long long deadline = harness_now_ms() + 20000; harness_now_ms() < deadline;) {
        harness_response_t res;
        harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
        long status = res.status;
        harness_response_free(&res);
        if (status == 200) {
            harness_wait_backends(s);
            return 0;
        }
        if (!harness_server_alive(s))
            break;
        usleep(50 * 1000);
    }
    harness_system("cat %s >&2", s->stderr_path);
    harness_server_stop(s);
    return -1;
}

PGresult *harness_sql(PGconn *conn, const char *query, int nparams, const char *const *values)
{
    PGresult *res = PQexecParams(conn, query, nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", query, PQerrorMessage(conn));
        abort(); /* cmocka reports the test as failed */
    }
    return res;
}

static char *harness_mail_scan(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    char *found = NULL;
    char best[256] = "";
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, best) <= 0)
            continue; /* names start with the time: keep the newest */
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        char *text = calloc(1, 256 * 1024);
        size_t n = f != NULL && text != NULL ? fread(text, 1, 256 * 1024 - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        if (text != NULL && n > 0 && strstr(text, needle) != NULL) {
            free(found);
            found = text;
            snprintf(best, sizeof(best), "%s", e->d_name);
        } else {
            free(text);
        }
    }
    if (d != NULL)
        closedir(d);
    return found;
}

char *harness_mail_find(const char *dir, const char *to, int timeout_ms)
{
    char fixture[512], needle[300];
    if (dir == NULL) {
        snprintf(fixture, sizeof(fixture), "%s/smtp/mail", harness_env("HYDRANT_TEST_SERVICES_DIR"));
        dir = fixture;
    }
    snprintf(needle, sizeof(needle), "X-Envelope-To: %s\r\n", to);
    for (long long deadline = harness_now_ms() + timeout_ms;; usleep(50 * 1000)) {
        char *found = harness_mail_scan(dir, needle);
        if (found != NULL || harness_now_ms() >= deadline)
            return found;
    }
}

int harness_mail_count(const char *to)
{
    char cmd[1024], out[32];
    snprintf(cmd, sizeof(cmd), "grep -l -F 'X-Envelope-To: %s' %s/smtp/mail/*.eml 2>/dev/null | wc -l", to,
             harness_env("HYDRANT_TEST_SERVICES_DIR"));
    FILE *p = popen(cmd, "r");
    int n = (p != NULL && fgets(out, sizeof(out), p) != NULL) ? atoi(out) : -1;
    if (p != NULL)
        pclose(p);
    return n;
}

void harness_qp_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '=' && r[1] == '\r' && r[2] == '\n') {
            r += 3;
        } else if (r[0] == '=' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

int harness_server_start_with_db(harness_server_t *s, const char *const *extra_env, PGconn **db)
{
    if (harness_server_start(s, extra_env) != 0)
        return -1;
    *db = PQconnectdb(harness_env("HYDRANT_TEST_DATABASE_URL"));
    return PQstatus(*db) == CONNECTION_OK ? 0 : -1;
}

int harness_worker_start(harness_server_t *s, const char *const *extra_env)
{
    memset(s, 0, sizeof(*s));
    const char *dir = harness_env("HYDRANT_TEST_SERVICES_DIR");
    if (harness_run_hydrant(NULL, 0, extra_env, "migrate up") != 0)
        return -1;
    static int count;
    snprintf(s->stderr_path, sizeof(s->stderr_path), "%s/worker-%d-%d.err", dir, getpid(), ++count);
    s->pid = harness_spawn(harness_build_env(s, extra_env), "worker", s->stderr_path);
    return s->pid > 0 ? 0 : -1;
}

int harness_server_alive(harness_server_t *s)
{
    int status;
    return s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == 0;
}

int harness_server_stop(harness_server_t *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    return harness_server_wait(s);
}

int harness_server_wait(harness_server_t *s)
{
    if (s->pid <= 0)
        return -1;
    int rc = harness_wait(s->pid, 30000);
    s->pid = 0;
    if (rc != 0)
        harness_system("tail -n 40 %s >&2", s->stderr_path);
    return rc;
}

/* ------------------------------------------------------------------ libcurl ---- */

typedef struct {
    char *data;
    size_t len;
} harness_sink_t;

static long harness_timeout_ms = 10000;

void harness_set_timeout_ms(long timeout_ms)
{
    harness_timeout_ms = timeout_ms;
}

static size_t harness_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    harness_sink_t *sink = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(sink->data, sink->len + n + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + sink->len, ptr, n);
    sink->data = grown;
    sink->len += n;
    sink->data[sink->len] = '\0';
    return n;
}

int harness_request(harness_response_t *res, int protocol, const char *method, const char *url,
                    const char *const *headers, const char *body, size_t body_len)
{
    memset(res, 0, sizeof(*res));
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return -1;
    harness_sink_t body_sink = {0}, header_sink = {0};
    struct curl_slist *list = NULL;
    for (int i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
                     protocol == HARNESS_HTTP2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, harness_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, harness_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body_sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, harness_collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &header_sink);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    res->curl_code = (int)curl_easy_perform(curl);
    if (res->curl_code == CURLE_OK) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
        long v = 0;
        curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &v);
        res->version = v == CURL_HTTP_VERSION_2_0 ? 2 : v == CURL_HTTP_VERSION_1_1 ? 11 : 10;
    }
    res->body = body_sink.data != NULL ? body_sink.data : strdup("");
    res->body_len = body_sink.len;
    res->headers = header_sink.data != NULL ? header_sink.data : strdup("");
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return res->curl_code == CURLE_OK ? 0 : -1;
}

long harness_get_status(int protocol, const char *base, const char *path)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    harness_response_t res;
    harness_request(&res, protocol, "GET", url, NULL, NULL, 0);
    long status = res.status;
    harness_response_free(&res);
    return status;
}

void harness_response_free(harness_response_t *res)
{
    free(res->body);
    free(res->headers);
    memset(res, 0, sizeof(*res));
}

const char *harness_header(const harness_response_t *res, const char *name, char *buf, size_t buflen)
{
    size_t name_len = strlen(name);
    for (const char *line = res->headers; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            if (n >= buflen)
                n = buflen - 1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            return buf;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ accounts ---- */

static int harness_account_login(harness_account_t *a, const harness_server_t *s, const char *password)
{
    char url[256], body[512];
    snprintf(url, sizeof(url), "%s/api/v1/auth/login", s->https_base);
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", a->email, password);
    const char *headers[] = {"Content-Type: application/json", NULL};
    harness_response_t r;
    harness_request(&r, HARNESS_HTTP2, "POST", url, headers, body, strlen(body));
    const char *start = r.status == 200 ? strstr(r.body, "\"access_token\":\"") : NULL;
    const char *end = start != NULL ? strchr(start + 16, '"') : NULL;
    int ok = end != NULL && (size_t)(end - start - 16) < sizeof(a->auth) - 32;
    if (ok)
        snprintf(a->auth, sizeof(a->auth), "Authorization: Bearer %.*s", (int)(end - start - 16), start + 16);
    else
        fprintf(stderr, "login of %s: status %ld, %s\n", a->email, r.status, r.body);
    harness_response_free(&r);
    return ok ? 0 : -1;
}

int harness_account_create(harness_account_t *a, const harness_server_t *s, PGconn *db,
                           const char *const *env, const char *tag, const char *role, const char *password)
{
    static int seq;
    snprintf(a->email, sizeof(a->email), "%s-%d-%d-%lld@example.com", tag, getpid(), ++seq, harness_now_ms());
    char args[256], out[512], input[300];
    snprintf(args, sizeof(args), "user create --email %s --role %s", a->email, role);
    snprintf(input, sizeof(input), "%s\n", password);
    if (harness_run_hydrant_input(out, sizeof(out), env, args, input) != 0) {
        fprintf(stderr, "hydrant %s: %s\n", args, out);
        return -1;
    }
    const char *values[] = {a->email};
    PGresult *res = harness_sql(db, "SELECT id FROM users WHERE email = $1", 1, values);
    snprintf(a->id, sizeof(a->id), "%s", PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return a->id[0] != '\0' ? harness_account_login(a, s, password) : -1;
}

double harness_metric_in(const char *text, const char *sample)
{
    size_t len = strlen(sample);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, sample, len) == 0 && p[len] == ' ')
            return atof(p + len + 1);
    return 0;
}

double harness_metric(const harness_server_t *s, const char *sample)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/metrics", s->http_base);
    harness_response_t res;
    harness_request(&res, HARNESS_HTTP1, "GET", url, NULL, NULL, 0);
    double value = harness_metric_in(res.body, sample);
    harness_response_free(&res);
    return value;
}

long harness_call(const harness_server_t *s, int protocol, const char *method, const char *path,
                  const char *auth_header, const char *body, json_t **doc)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", protocol == HARNESS_HTTP2 ? s->https_base : s->http_base, path);
    const char *headers[] = {"Content-Type: application/json", auth_header, NULL};
    harness_response_t res;
    harness_request(&res, protocol, method, url, headers, body, body != NULL ? strlen(body) : 0);
    long status = res.status;
    if (doc != NULL)
        *doc = json_loads(res.body, 0, NULL);
    harness_response_free(&res);
    return status;
}

const char *harness_error_code(const json_t *doc)
{
    return json_string_value(json_object_get(json_object_get(doc, "error"), "code"));
}
