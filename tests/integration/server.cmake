# The real server over HTTP/2 and HTTP/1.1 (tests/integration/test_server.c).
hydrant_add_integration_test(test_server hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_server.c)
add_dependencies(test_server hydrant-test)

# PostgreSQL and Redis stopped and started under a running server (test_faults.c).
hydrant_add_integration_test(test_faults hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_faults.c)
add_dependencies(test_faults hydrant-test)

# The command line: usage, configuration errors, production refusals, migrate status.
hydrant_add_integration_test(test_cli hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.c)
add_dependencies(test_cli hydrant-test)

# The data layer on its own loop: pipelines, isolation, reconnects, timeouts (test_db.c).
hydrant_add_integration_test(test_db hydrant_db ${CMAKE_CURRENT_SOURCE_DIR}/test_db.c)

# Clients leaving mid-query, and SIGTERM with requests in flight (test_lifecycle.c).
hydrant_add_integration_test(test_lifecycle hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_lifecycle.c)
add_dependencies(test_lifecycle hydrant-test)

# Migrations on fresh databases (test_migrate.c).
hydrant_add_integration_test(test_migrate hydrant_cli ${CMAKE_CURRENT_SOURCE_DIR}/test_migrate.c)

# A stalled PostgreSQL backend (SIGSTOP, so root: skipped otherwise) never commits what was
# answered with an error (test_stall.c).
hydrant_add_integration_test(test_stall hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_stall.c)
add_dependencies(test_stall hydrant-test)
set_tests_properties(integration.test_stall PROPERTIES SKIP_RETURN_CODE 77)

# Idempotency-Key: replays, conflicts, takeover, scopes, sealed answers (test_idempotency.c).
hydrant_add_integration_test(test_idempotency hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_idempotency.c)
add_dependencies(test_idempotency hydrant-test)

# The TLS listener against Mozilla's "intermediate" profile, with Debian's sslscan (test_tls.c).
hydrant_add_integration_test(test_tls hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_tls.c)
add_dependencies(test_tls hydrant-test)
