/*
 * Shared helpers for integration tests: service URLs from the environment that the
 * `services` ctest fixture provides, a real hydrant process, and a libcurl client.
 */
#ifndef HYDRANT_TEST_HARNESS_H
#define HYDRANT_TEST_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <sys/types.h>

/* Value of a required environment variable; fails the test run when it is missing. */
const char *harness_env(const char *name);

/* The services fixture's port of "pg", "redis" or "smtp" (picked free when the fixture
 * started, recorded in its directory); 0 when unknown. */
int harness_service_port(const char *service);

/* Monotonic milliseconds. */
long long harness_now_ms(void);

/* A free TCP port on 127.0.0.1 (bound once, then released). */
int harness_free_port(void);

/* Runs a shell command; returns its exit status (or -1). */
int harness_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a parameterised statement on a test's own blocking connection; a failure fails the
 * test. PQclear the result. */
PGresult *harness_sql(PGconn *conn, const char *query, int nparams, const char *const *values);

/* ---- the SMTP sink of the services fixture ---- */

/* The newest message the sink stored for `to` (malloc'd, headers and body as received), or
 * NULL; dir NULL means the fixture's sink. Waits up to timeout_ms for it to arrive. */
char *harness_mail_find(const char *dir, const char *to, int timeout_ms);
/* How many messages the fixture's sink stored for `to`. */
int harness_mail_count(const char *to);
/* Undoes quoted-printable (soft breaks and =XX) in place. */
void harness_qp_decode(char *s);

/* ---- a hydrant process ---- */

typedef struct {
    pid_t pid;
    int tls_port;
    int http_port;
    char https_base[64]; /* "https://127.0.0.1:PORT" */
    char http_base[64];  /* "http://127.0.0.1:PORT" */
    char log_path[256];  /* the access log */
    char stderr_path[256];
} harness_server_t;

/* Starts build/hydrant serve against the test services with fresh ports, after applying
 * the migrations; extra_env is a NULL-terminated list of "NAME=value" (may be NULL).
 * Waits until /health/live answers. Returns 0 or -1. */
int harness_server_start(harness_server_t *s, const char *const *extra_env);
/* harness_server_start, then a blocking connection of the test's own to the test database
 * into *db. Returns 0 or -1. */
int harness_server_start_with_db(harness_server_t *s, const char *const *extra_env, PGconn **db);
/* Starts `hydrant worker` (job workers only) the same way, after the migrations; does not
 * wait for anything. Stop it with harness_server_stop. */
int harness_worker_start(harness_server_t *s, const char *const *extra_env);
/* SIGTERM, then waits (bounded). Returns the exit status, or -1 if it had to be killed or
 * died from a signal. */
int harness_server_stop(harness_server_t *s);
/* Waits (bounded) for a process that was already told to stop. Same result as stop. */
int harness_server_wait(harness_server_t *s);
/* Is the process still running? */
int harness_server_alive(harness_server_t *s);

/* Runs `hydrant ARGS...` with the test environment; returns its exit status and captures
 * stdout+stderr (truncated) into out when not NULL. */
int harness_run_hydrant(char *out, size_t outlen, const char *const *extra_env, const char *args);
/* The same, with input as the process's standard input. */
int harness_run_hydrant_input(char *out, size_t outlen, const char *const *extra_env, const char *args,
                              const char *input);

/* ---- accounts ---- */

typedef struct {
    char email[128];
    char id[40];
    char auth[1100]; /* "Authorization: Bearer <access token>" */
} harness_account_t;

/* A fresh account (unique email from tag) made with `hydrant user create --role role` with
 * the environment env, its id read through db, then logged in on s over HTTP/2. Returns 0, or
 * -1 with the reason on stderr. */
int harness_account_create(harness_account_t *a, const harness_server_t *s, PGconn *db,
                           const char *const *env, const char *tag, const char *role, const char *password);

/* ---- HTTP through libcurl ---- */

enum { HARNESS_HTTP1 = 1, HARNESS_HTTP2 = 2 };

typedef struct {
    long status;  /* 0 when the transfer failed */
    long version; /* 2 for HTTP/2, 11 for HTTP/1.1 */
    char *body;   /* NUL-terminated */
    size_t body_len;
    char *headers; /* raw header block(s) as received */
    int curl_code;
} harness_response_t;

/* A request to s with one credentials header (or none, when NULL) and an optional JSON body;
 * *doc gets the answer's JSON when doc is not NULL (json_decref it). Returns the status. */
long harness_call(const harness_server_t *s, int protocol, const char *method, const char *path,
                  const char *auth_header, const char *body, json_t **doc);
/* The contract's error envelope's code in doc, or NULL. */
const char *harness_error_code(const json_t *doc);

/* method: "GET", "POST", ...; headers: NULL-terminated "Name: value" list (may be NULL);
 * body may be NULL. Times out after 10 s. */
int harness_request(harness_response_t *res, int protocol, const char *method, const char *url,
                    const char *const *headers, const char *body, size_t body_len);
void harness_response_free(harness_response_t *res);
/* The value of one sample of s's /metrics ("name" or "name{labels}"), 0 when absent. */
double harness_metric(const harness_server_t *s, const char *sample);
/* The same, read from a /metrics text already fetched (text may be NULL). */
double harness_metric_in(const char *text, const char *sample);
/* Status of GET base+path over the protocol (0 when the transfer failed). */
long harness_get_status(int protocol, const char *base, const char *path);
/* Changes the timeout of later requests (default 10000 ms). */
void harness_set_timeout_ms(long timeout_ms);
/* Value of a response header (case-insensitive name) copied into buf, or NULL. */
const char *harness_header(const harness_response_t *res, const char *name, char *buf, size_t buflen);

#endif
