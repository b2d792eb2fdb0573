/*
 * job.updated events from the blocking side (contract: Realtime): job workers, the pool's
 * lease keeper and the command line publish each change they made, once its statement has
 * committed, to the job's owner, with the shared script (db.h, "notification events") on a
 * Redis connection of their own. Jobs without an owner (system jobs) tell nobody.
 */
#include "jobs/jobs_internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Queues one job.updated (sent with the publisher's next flush). */
static void jobs_events_add(db_events_pub_t *pub, const char *id, const char *owner, const char *version,
                            const char *job)
{
    if (pub == NULL || owner == NULL || owner[0] == '\0' || job == NULL || job[0] == '\0')
        return;
    char object[64];
    snprintf(object, sizeof(object), "job:%s", id);
    db_events_pub_add(pub, "job.updated", job, object, atoll(version), &owner, 1);
}

void jobs_events_publish(db_events_pub_t *pub, const char *id, const char *owner, const char *version,
                         const char *job)
{
    jobs_events_add(pub, id, owner, version, job);
    if (pub != NULL)
        db_events_pub_flush(pub);
}

void jobs_events_publish_rows(db_events_pub_t *pub, const PGresult *res, int at)
{
    if (pub == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
        return;
    int added = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, at + DB_COL_JOB_EVENT_OWNER))
            continue;
        jobs_events_add(pub, PQgetvalue(res, i, at + DB_COL_JOB_EVENT_ID),
                        PQgetvalue(res, i, at + DB_COL_JOB_EVENT_OWNER),
                        PQgetvalue(res, i, at + DB_COL_JOB_EVENT_VERSION),
                        PQgetvalue(res, i, at + DB_COL_JOB_EVENT_JOB));
        added++;
    }
    if (added > 0)
        db_events_pub_flush(pub); /* the batch's events in one round trip */
}
