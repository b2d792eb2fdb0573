# The pipelined PostgreSQL pool on its own loop: pipelining, isolation, atomicity, limits,
# reconnects, timeouts, closing (tests/integration/test_pg_pool.c).
hydrant_add_integration_test(test_pg_pool hydrant_db ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_pool.c)
