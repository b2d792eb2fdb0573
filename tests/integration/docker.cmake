# The runtime image's library packages match what the binary links.
add_test(NAME integration.dockerfile_libs
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/test_dockerfile_libs.sh $<TARGET_FILE:hydrant> ${PROJECT_SOURCE_DIR}/Dockerfile)
set_tests_properties(integration.dockerfile_libs PROPERTIES LABELS integration TIMEOUT 60)
