# Files: uploads (raw and multipart), listing, reading, deleting, bad input, limits
# (test_files.c).
hydrant_add_integration_test(test_files hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_files.c)
add_dependencies(test_files hydrant-test)
