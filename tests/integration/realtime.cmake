# Realtime (issue 15): tickets and rooms over HTTP/2 and HTTP/1.1 (test_realtime.c).
hydrant_add_integration_test(test_realtime hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_realtime.c)
add_dependencies(test_realtime hydrant-test)
