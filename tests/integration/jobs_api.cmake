# The jobs API (GET /api/v1/jobs, /jobs/{id}, cancel; admin list and retry) over HTTP/2 and
# HTTP/1.1 (test_jobs_api.c).
hydrant_add_integration_test(test_jobs_api hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_jobs_api.c)
add_dependencies(test_jobs_api hydrant-test)
