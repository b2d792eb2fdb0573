#include "db/db.h"

const char *db_status_name(db_status_t status)
{
    switch (status) {
    case DB_OK:
        return "ok";
    case DB_ERR_UNAVAILABLE:
        return "unavailable";
    case DB_ERR_TIMEOUT:
        return "timeout";
    case DB_ERR_QUERY:
        return "query failed";
    case DB_ERR_OVERLOADED:
        return "overloaded";
    case DB_ERR_CLOSED:
        return "closed";
    case DB_ERR_INDOUBT:
        return "outcome unknown";
    case DB_ERR_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}
