/*
 * The kinds hydrant ships with.
 */
#include "jobs/jobs_internal.h"

#include <stdio.h>

int jobs_register_builtin(jobs_registry_t *registry, const cfg_t *cfg, char *err, size_t errlen)
{
    if (jobs_email_register(registry) != 0 || jobs_maintenance_register(registry) != 0 ||
        jobs_file_process_register(registry) != 0 || jobs_file_sweep_register(registry) != 0) {
        snprintf(err, errlen, "jobs: cannot register the built-in kinds");
        return -1;
    }
    return 0;
}
