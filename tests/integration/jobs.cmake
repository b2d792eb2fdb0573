# The job queue and worker pool in-process: exactly once, retries, cancellation, scheduling,
# unique keys, notifications, shutdown, email through the SMTP sink (test_jobs.c); the test
# kinds come from hydrant_testhooks.
hydrant_add_integration_test(test_jobs hydrant_testhooks ${CMAKE_CURRENT_SOURCE_DIR}/test_jobs.c)
target_link_libraries(test_jobs PRIVATE hydrant_cli) # its migrations

# `hydrant worker` processes killed and stopped mid-job, `serve` with workers and their
# metrics, and the `hydrant jobs` commands (test_jobs_process.c).
hydrant_add_integration_test(test_jobs_process hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_jobs_process.c)
add_dependencies(test_jobs_process hydrant-test)
