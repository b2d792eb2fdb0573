/*
 * job.updated events from the blocking side (contract: Realtime): job workers, the pool's
 * lease keeper and the command line publish each change they made, once its statement has
 * committed, to the job's owner, with the shared script (db.h, "notification events") on a
 * Redis connection of their own. Jobs without an owner (system jobs) tell nobody.
 */
#include "jobs/jobs_internal.h"

#include <stdlib.h>

void jobs_events_publish(db_events_pub_t *pub, const char *id, const char *owner, const char *version,
                         const char *job)
{
    if (pub == NULL || owner == NULL || owner[0] == '\0' || job == NULL || job[0] == '\0')
        return;
    char object[64];
    snprintf(object, sizeof(object), "job:%s", id);
    db_events_pub(pub, "job.updated", job, object, atoll(version), &owner, 1);
}

void jobs_events_publish_rows(db_events_pub_t *pub, const PGresult *res, int at)
{
    if (pub == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, at + DB_COL_JOB_EVENT_OWNER))
            continue;
        jobs_events_publish(pub, PQgetvalue(res, i, at + DB_COL_JOB_EVENT_ID),
                            PQgetvalue(res, i, at + DB_COL_JOB_EVENT_OWNER),
                            PQgetvalue(res, i, at + DB_COL_JOB_EVENT_VERSION),
                            PQgetvalue(res, i, at + DB_COL_JOB_EVENT_JOB));
    }
}
