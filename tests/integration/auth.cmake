# Accounts over HTTP/2 and HTTP/1.1: sign-up, confirmation by email, login, /me, bad tokens,
# legacy hashes (test_auth.c).
hydrant_add_integration_test(test_auth hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_auth.c)
add_dependencies(test_auth hydrant-test)

# Every route docs/openapi.yaml says needs credentials answers 401 before looking at its body
# (test_auth_first.c); reads the document with libyaml.
hydrant_add_integration_test(test_auth_first hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_auth_first.c)
add_dependencies(test_auth_first hydrant-test)

# The principal cache: warm hits, every revocation path on the same and on a second server,
# a cut LISTEN connection (test_principal_cache.c).
hydrant_add_integration_test(test_principal_cache hydrant_config ${CMAKE_CURRENT_SOURCE_DIR}/test_principal_cache.c)
add_dependencies(test_principal_cache hydrant-test)
