/*
 * Periodic housekeeping kinds. auth.purge deletes what can no longer be used: refresh-token
 * families whose newest token expired, spent or expired one-time tokens, and revocations of
 * access tokens that have expired anyway, and Idempotency-Key answers past their 24 hours.
 */
#include "jobs/jobs_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define MAINTENANCE_AUTH_PURGE_S 3600

static jobs_outcome_t maintenance_auth_purge(jobs_run_t *run)
{
    PGresult *res = jobs_pg_exec(run->conn, DB_STMT_AUTH_PURGE, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(run->error, sizeof(run->error), "purge failed: %.200s", PQerrorMessage(run->conn));
        PQclear(res);
        return JOBS_RETRY;
    }
    run->result =
        json_pack("{s:I, s:I, s:I, s:I}", "refresh_tokens",
                  (json_int_t)atoll(PQgetvalue(res, 0, DB_COL_AUTH_PURGE_REFRESH_TOKENS)), "email_tokens",
                  (json_int_t)atoll(PQgetvalue(res, 0, DB_COL_AUTH_PURGE_EMAIL_TOKENS)), "revoked_tokens",
                  (json_int_t)atoll(PQgetvalue(res, 0, DB_COL_AUTH_PURGE_REVOKED_TOKENS)), "idempotency_keys",
                  (json_int_t)atoll(PQgetvalue(res, 0, DB_COL_AUTH_PURGE_IDEMPOTENCY_KEYS)));
    PQclear(res);
    return JOBS_DONE;
}

int jobs_maintenance_register(jobs_registry_t *registry)
{
    return jobs_registry_add_periodic(registry, "auth.purge", maintenance_auth_purge, NULL,
                                      MAINTENANCE_AUTH_PURGE_S);
}
