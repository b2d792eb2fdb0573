/*
 * Operations routes (contract, "Operations"): health checks, host name, Prometheus metrics
 * and the OpenAPI document. None needs authentication.
 */
#include "handlers/handlers.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ /health ---- */

typedef struct {
    int pending;
    int pg_ok;
    int redis_ok;
    int ready; /* /health/ready: {"status":"ready"} alone when both are up */
} ops_health_t;

static void ops_health_answer(http_request_t *r)
{
    ops_health_t *h = r->state;
    if (--h->pending > 0)
        return;
    int ok = h->pg_ok && h->redis_ok;
    if (ok && h->ready) {
        static const char body[] = "{\"status\":\"ready\"}";
        http_respond_raw(r, 200, "application/json; charset=utf-8", body, sizeof(body) - 1);
        return;
    }
    json_t *checks =
        json_pack("{s:s, s:s}", "postgres", h->pg_ok ? "ok" : "down", "redis", h->redis_ok ? "ok" : "down");
    json_t *body = json_pack("{s:s, s:o}", "status", ok ? "ok" : "degraded", "checks", checks);
    if (!ok)
        http_add_header(r, "Retry-After", "1");
    http_respond_json(r, ok ? 200 : 503, body);
}

static void ops_health_pg_done(void *data, const db_reply_t *reply)
{
    http_request_t *r = data;
    ops_health_t *h = r->state;
    h->pg_ok = reply->status == DB_OK;
    ops_health_answer(r);
    http_request_release(r);
}

static void ops_health_redis_done(void *data, db_status_t status, redisReply *reply)
{
    http_request_t *r = data;
    ops_health_t *h = r->state;
    h->redis_ok = status == DB_OK && reply != NULL && reply->type == REDIS_REPLY_STATUS;
    ops_health_answer(r);
    http_request_release(r);
}

/* Both checks run at once; a check that cannot even be submitted counts as down. */
static void ops_health_check(http_request_t *r, int ready)
{
    ops_health_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    h->ready = ready;
    r->state = h;
    r->state_free = free;
    h->pending = 3; /* two checks, plus this function's own hold until both are sent */
    db_query_t ping = {.stmt = DB_STMT_PING};
    http_request_retain(r);
    if (r->loop->pg == NULL || db_pg_submit(r->loop->pg, &ping, 1, ops_health_pg_done, r) != 0) {
        http_request_release(r);
        h->pending--;
    }
    const char *argv[] = {"PING"};
    http_request_retain(r);
    if (r->loop->redis == NULL ||
        db_redis_command(r->loop->redis, ops_health_redis_done, r, 1, argv, NULL) != 0) {
        http_request_release(r);
        h->pending--;
    }
    ops_health_answer(r);
}

static void ops_health(http_request_t *r)
{
    ops_health_check(r, 0);
}

/* Load balancers stop sending new work on the first 503: from SIGTERM on (the instance still
 * serves for limits.drain-delay-ms so that their checks notice), or while a backend is down. */
static void ops_health_ready(http_request_t *r)
{
    const handlers_app_t *app = r->app;
    if (atomic_load(&app->draining)) {
        static const char body[] = "{\"status\":\"draining\"}";
        http_add_header(r, "Retry-After", "1");
        http_respond_raw(r, 503, "application/json; charset=utf-8", body, sizeof(body) - 1);
        return;
    }
    ops_health_check(r, 1);
}

static void ops_health_live(http_request_t *r)
{
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond_raw(r, 200, "application/json; charset=utf-8", body, sizeof(body) - 1);
}

static void ops_hostname(http_request_t *r)
{
    const handlers_app_t *app = r->app;
    http_respond_json(r, 200, json_pack("{s:s}", "hostname", app->hostname));
}

static void ops_openapi(http_request_t *r)
{
    const handlers_app_t *app = r->app;
    http_respond_static(r, 200, "application/json; charset=utf-8", app->openapi_json, app->openapi_len);
}

/* ----------------------------------------------------------------- /metrics ---- */

static void ops_render_backends(util_buf_t *out, const http_server_t *server)
{
    long pg_ready = 0, pg_total = 0, redis_ready = 0;
    for (int i = 0; i < server->nloops; i++) {
        pg_ready += atomic_load(&server->loops[i]->pg_ready);
        pg_total += atomic_load(&server->loops[i]->pg_total);
        redis_ready += atomic_load(&server->loops[i]->redis_ready);
    }
    util_buf_printf(out,
                    "# HELP hydrant_db_connections PostgreSQL connections of the event loops.\n"
                    "# TYPE hydrant_db_connections gauge\n"
                    "hydrant_db_connections{state=\"ready\"} %ld\n"
                    "hydrant_db_connections{state=\"configured\"} %ld\n"
                    "# HELP hydrant_redis_connections Redis connections of the event loops.\n"
                    "# TYPE hydrant_redis_connections gauge\n"
                    "hydrant_redis_connections{state=\"ready\"} %ld\n"
                    "hydrant_redis_connections{state=\"configured\"} %d\n"
                    "# HELP hydrant_event_loops Event-loop threads serving HTTP.\n"
                    "# TYPE hydrant_event_loops gauge\n"
                    "hydrant_event_loops %d\n",
                    pg_ready, pg_total, redis_ready, server->nloops, server->nloops);
}

/* Lines the log writer could not take in time (http.h, "the log writer"). */
static void ops_render_log(util_buf_t *out, const http_server_t *server)
{
    if (server->log_writer == NULL)
        return;
    util_buf_printf(
        out,
        "# HELP hydrant_access_log_dropped_total Access-log lines dropped: the log's reader was too slow.\n"
        "# TYPE hydrant_access_log_dropped_total counter\n"
        "hydrant_access_log_dropped_total %llu\n"
        "# HELP hydrant_error_log_dropped_total Request error lines dropped: stderr's reader was too slow.\n"
        "# TYPE hydrant_error_log_dropped_total counter\n"
        "hydrant_error_log_dropped_total %llu\n",
        (unsigned long long)http_log_writer_dropped(server->log_writer, HTTP_LOG_ACCESS),
        (unsigned long long)http_log_writer_dropped(server->log_writer, HTTP_LOG_ERROR));
}

/* Queue depth from the shared database, so the gauges are right whichever process runs the
 * workers. reply is NULL (or failed) when the database cannot answer: the gauges are left
 * out and the rest is still served. */
static void ops_render_job_depth(util_buf_t *out, const db_reply_t *reply)
{
    static const char *const states[] = {"queued", "retrying", "running"};
    long depth[JOBS_NQUEUES][3] = {{0}};
    if (reply == NULL || reply->status != DB_OK)
        return;
    PGresult *res = reply->results[0];
    for (int i = 0; i < PQntuples(res); i++) {
        int q = jobs_queue_parse(PQgetvalue(res, i, DB_COL_JOB_DEPTH_QUEUE));
        for (int s = 0; s < 3 && q >= 0; s++)
            if (strcmp(PQgetvalue(res, i, DB_COL_JOB_DEPTH_STATE), states[s]) == 0)
                depth[q][s] = atol(PQgetvalue(res, i, DB_COL_JOB_DEPTH_COUNT));
    }
    util_buf_printf(out,
                    "# HELP hydrant_jobs_depth Jobs waiting or running, by queue and state (all processes).\n"
                    "# TYPE hydrant_jobs_depth gauge\n");
    for (int q = 0; q < JOBS_NQUEUES; q++)
        for (int s = 0; s < 3; s++)
            util_buf_printf(out, "hydrant_jobs_depth{queue=\"%s\",state=\"%s\"} %ld\n",
                            jobs_queue_name((jobs_queue_t)q), states[s], depth[q][s]);
}

/* Dead jobs per queue and kind, from the database: what an outage cost, whichever process
 * ran (or reaped) them; `hydrant jobs retry --state dead --kind K` queues them again. */
static void ops_render_jobs_dead(util_buf_t *out, const db_reply_t *reply)
{
    if (reply == NULL || reply->status != DB_OK)
        return;
    PGresult *res = reply->results[1];
    util_buf_printf(out, "# HELP hydrant_jobs_dead Dead jobs kept in the queue, by queue and kind (all "
                         "processes).\n"
                         "# TYPE hydrant_jobs_dead gauge\n");
    for (int i = 0; i < PQntuples(res); i++)
        util_buf_printf(out, "hydrant_jobs_dead{queue=\"%s\",kind=\"%s\"} %s\n",
                        PQgetvalue(res, i, DB_COL_JOB_DEAD_QUEUE), PQgetvalue(res, i, DB_COL_JOB_DEAD_KIND),
                        PQgetvalue(res, i, DB_COL_JOB_DEAD_COUNT));
}

static void ops_metrics_answer(http_request_t *r, const db_reply_t *reply)
{
    const handlers_app_t *app = r->app;
    const http_server_t *server = app->server;
    http_metrics_shard_t *shards[server->nloops > 0 ? server->nloops : 1];
    for (int i = 0; i < server->nloops; i++)
        shards[i] = server->loops[i]->metrics;
    util_buf_t out = {0};
    http_metrics_render(&out, server->router, shards, server->nloops);
    ops_render_backends(&out, server);
    ops_render_log(&out, server);
    ops_render_job_depth(&out, reply);
    ops_render_jobs_dead(&out, reply);
    char *jobs = jobs_pool_metrics_text(app->jobs);
    if (jobs != NULL)
        util_buf_str(&out, jobs);
    free(jobs);
    char *principals = handlers_principal_metrics_text(app);
    if (principals != NULL)
        util_buf_str(&out, principals);
    free(principals);
    if (out.failed || out.data == NULL) {
        util_buf_free(&out);
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    http_respond_raw(r, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    util_buf_free(&out);
}

static void ops_metrics_depth_done(void *data, const db_reply_t *reply)
{
    http_request_t *r = data;
    ops_metrics_answer(r, reply);
    http_request_release(r);
}

static void ops_metrics(http_request_t *r)
{
    db_query_t queries[2] = {{.stmt = DB_STMT_JOB_DEPTH}, {.stmt = DB_STMT_JOB_DEAD}};
    http_request_retain(r);
    if (r->loop->pg == NULL || db_pg_submit(r->loop->pg, queries, 2, ops_metrics_depth_done, r) != 0) {
        http_request_release(r);
        ops_metrics_answer(r, NULL);
    }
}

int handlers_ops_register(http_router_t *router, char *err, size_t errlen)
{
    static const http_route_t routes[] = {
        {"GET", "/health", ops_health, 0, 0},
        {"GET", "/health/live", ops_health_live, 0, 0},
        {"GET", "/health/ready", ops_health_ready, 0, 0},
        {"GET", "/hostname", ops_hostname, 0, 0},
        {"GET", "/metrics", ops_metrics, 0, 0},
        {"GET", "/openapi.json", ops_openapi, 0, 0},
    };
    return handlers_add_routes(router, routes, sizeof(routes) / sizeof(routes[0]), err, errlen);
}
