/*
 * The kinds registry: maps a job's `kind` to the C function that runs it. Built once before
 * the pool starts and read-only afterwards, so workers read it without locks.
 */
#include "jobs/jobs_internal.h"

#include <stdlib.h>
#include <string.h>

jobs_registry_t *jobs_registry_new(void)
{
    return calloc(1, sizeof(jobs_registry_t));
}

void jobs_registry_free(jobs_registry_t *registry)
{
    free(registry);
}

int jobs_registry_find(const jobs_registry_t *registry, const char *kind)
{
    for (int i = 0; i < registry->nkinds; i++)
        if (strcmp(registry->kinds[i].kind, kind) == 0)
            return i;
    return -1;
}

int jobs_registry_add(jobs_registry_t *registry, const char *kind, jobs_handler_fn fn, void *data)
{
    size_t len = strlen(kind);
    if (registry->nkinds >= JOBS_MAX_KINDS || len == 0 || len > JOBS_KIND_MAX_LEN || fn == NULL ||
        jobs_registry_find(registry, kind) >= 0)
        return -1;
    jobs_kind_t *k = &registry->kinds[registry->nkinds++];
    memcpy(k->kind, kind, len + 1);
    k->fn = fn;
    k->data = data;
    return 0;
}

int jobs_registry_add_periodic(jobs_registry_t *registry, const char *kind, jobs_handler_fn fn, void *data,
                               int interval_s)
{
    if (interval_s < 1 || jobs_registry_add(registry, kind, fn, data) != 0)
        return -1;
    registry->kinds[registry->nkinds - 1].interval_s = interval_s;
    return 0;
}

int jobs_stopping(const jobs_run_t *run)
{
    return run->stopping != NULL && atomic_load_explicit(run->stopping, memory_order_relaxed);
}
