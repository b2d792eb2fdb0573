# Realtime (issue 15): tickets and rooms over HTTP/2 and HTTP/1.1 (test_realtime.c).
hydrant_add_integration_test(test_realtime hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_realtime.c)
add_dependencies(test_realtime hydrant-test)

# The notification stream (SSE) over HTTP/2 and HTTP/1.1, on one and on two servers
# (test_notifications.c).
find_package(Threads REQUIRED)
hydrant_add_integration_test(test_notifications hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_notifications.c
                             ${CMAKE_CURRENT_SOURCE_DIR}/h2raw.c ${CMAKE_CURRENT_SOURCE_DIR}/harness_sse.c)
target_link_libraries(test_notifications PRIVATE Threads::Threads)
add_dependencies(test_notifications hydrant-test)

# Events of jobs, files and revocations on the notification stream (test_events.c).
hydrant_add_integration_test(test_events hydrant_db ${CMAKE_CURRENT_SOURCE_DIR}/test_events.c
                             ${CMAKE_CURRENT_SOURCE_DIR}/harness_sse.c)
target_link_libraries(test_events PRIVATE Threads::Threads)
add_dependencies(test_events hydrant-test)

# A room's WebSocket, on one and on two servers, with the tests' own client (test_websocket.c,
# wsclient.c).
hydrant_add_integration_test(test_websocket hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_websocket.c
                             ${CMAKE_CURRENT_SOURCE_DIR}/wsclient.c)
add_dependencies(test_websocket hydrant-test)
