/*
 * libFuzzer target for a room socket's client messages: handlers_room_ws_parse, as
 * GET /api/v1/rooms/{id}/ws reads every message a client sends (after wslay has joined its
 * fragments and, for text frames, checked its UTF-8).
 *
 * Input: one byte (odd: a binary frame), then the message. Exactly one of the text and the
 * error frame comes back. A text is 1..4,000 characters of the message's "text" with no NUL;
 * an error frame is {"type":"error","error":{"code","message"}} and names one of the codes
 * the contract gives an invalid message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "handlers/handlers.h"

static void check_error(const char *frame)
{
    json_t *doc = json_loads(frame, 0, NULL);
    fuzz_check(doc != NULL);
    fuzz_check(strcmp(json_string_value(json_object_get(doc, "type")), "error") == 0);
    const json_t *error = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    fuzz_check(code != NULL && json_string_value(json_object_get(error, "message")) != NULL);
    fuzz_check(strcmp(code, "invalid_json") == 0 || strcmp(code, "validation_failed") == 0);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int binary = data[0] & 1;
    char *message = fuzz_copy(data + 1, size - 1);
    char *text = NULL, *error = NULL;
    int rc = handlers_room_ws_parse(message, size - 1, binary, &text, &error);
    if (rc == 0) {
        fuzz_check(text != NULL && error == NULL && !binary);
        long n = auth_utf8_length(text, strlen(text));
        fuzz_check(n >= 1 && n <= HANDLERS_ROOM_TEXT_MAX);
        fuzz_check(memmem(message, size - 1, "\"text\"", 6) != NULL || memmem(message, size - 1, "\\u", 2));
    } else {
        fuzz_check(rc == -1 && text == NULL && error != NULL);
        check_error(error);
    }
    free(text);
    free(error);
    free(message);
    return 0;
}
