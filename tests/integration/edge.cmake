# The HTTP/2 edge (issue 12): a raw frame client (h2raw.c) as an attacker would send them.
hydrant_add_integration_test(test_edge hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_edge.c
                             ${CMAKE_CURRENT_SOURCE_DIR}/h2raw.c)
add_dependencies(test_edge hydrant-test)
