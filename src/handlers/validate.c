/*
 * Request-object checks shared by the route families: unknown fields, missing fields and
 * wrong types, reported per field as the contract's 422 details.
 */
#include "handlers/handlers.h"

#include <string.h>

static const char *handlers_type_reason(json_type type)
{
    switch (type) {
    case JSON_STRING:
        return "must be a string";
    case JSON_TRUE:
        return "must be a boolean";
    case JSON_INTEGER:
        return "must be an integer";
    default:
        return "has the wrong type";
    }
}

static int handlers_type_matches(const json_t *value, json_type type)
{
    if (type == JSON_TRUE)
        return json_is_boolean(value);
    return json_typeof(value) == type;
}

json_t *handlers_check_fields(const json_t *body, const handlers_field_t *fields, int nfields)
{
    json_t *details = json_object();
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)body, key, value)
    {
        int known = 0;
        for (int i = 0; i < nfields && !known; i++)
            known = strcmp(fields[i].name, key) == 0;
        if (!known && json_object_size(details) < 16)
            json_object_set_new(details, key, json_string("unknown field"));
    }
    for (int i = 0; i < nfields; i++) {
        json_t *v = json_object_get(body, fields[i].name);
        if (v == NULL) {
            if (fields[i].required)
                json_object_set_new(details, fields[i].name, json_string("is required"));
        } else if (!(json_is_null(v) && fields[i].nullable) && !handlers_type_matches(v, fields[i].type)) {
            json_object_set_new(details, fields[i].name, json_string(handlers_type_reason(fields[i].type)));
        }
    }
    if (json_object_size(details) == 0) {
        json_decref(details);
        return NULL;
    }
    return details;
}

void handlers_respond_invalid(http_request_t *r, json_t *details)
{
    http_respond_error(r, 422, "validation_failed", "the request is not valid", details);
}
