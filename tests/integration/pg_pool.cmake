# The pipelined PostgreSQL pool on its own loop: pipelining, isolation, atomicity, limits,
# reconnects, timeouts, closing (tests/integration/test_pg_pool.c); with the test statements
# (a shared-segment echo, a slow one) that only hydrant_db_testhooks has.
hydrant_add_integration_test(test_pg_pool hydrant_db_testhooks ${CMAKE_CURRENT_SOURCE_DIR}/test_pg_pool.c)
