/*
 * Every SQL statement the server runs on its event loops, in one table. Each is prepared
 * on every pipelined connection when it connects, and referred to by its id.
 */
#include "db/db.h"

static const db_stmt_def_t db_statements[DB_STMT__COUNT] = {
    [DB_STMT_PING] = {"ping", "SELECT 1", 0},
    [DB_STMT_ECHO_INT] = {"echo_int", "SELECT $1::int", 1},
    [DB_STMT_NOTIFY] = {"notify", "SELECT pg_notify($1, $2)", 2},
};

const db_stmt_def_t *db_stmt_get(db_stmt_id_t id)
{
    return (id >= 0 && id < DB_STMT__COUNT) ? &db_statements[id] : NULL;
}
