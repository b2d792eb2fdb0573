# Each registry statement's result columns, described by PostgreSQL on a freshly migrated
# database, against the DB_COLS_ lists of src/db/columns.h that code reads results by
# (test_db_columns.c; hydrant_cli for the migrator).
hydrant_add_integration_test(test_db_columns hydrant_cli ${CMAKE_CURRENT_SOURCE_DIR}/test_db_columns.c)
