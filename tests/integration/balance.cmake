# Connections balanced over the event loops by hand-offs (test_server_balance.c).
hydrant_add_integration_test(test_server_balance hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_server_balance.c)
add_dependencies(test_server_balance hydrant-test)
