/*
 * libFuzzer target for the CSV/TSV analysis: jobs_file_analyze_csv on a memfd holding the
 * input, and jobs_file_kind on its first line (as a name and as a content type).
 *
 * Input: one byte, then the file. Bits 0-2 choose the delimiter (sniffed, tab, or one that
 * the caller should not pass: '"', CR, LF or any byte). In the fuzz build the analysis reads
 * through a 256-byte buffer (tests/fuzz/CMakeLists.txt), so quotes, CRLF and UTF-8 in names
 * are cut at its edges. The analysis never fails on a readable file, and is a JSON object
 * whose counts add up.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "jobs/jobs.h"

static int memfd_of(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.csv", MFD_CLOEXEC);
    fuzz_check(fd >= 0 && (size == 0 || write(fd, data, size) == (ssize_t)size) &&
               lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

static void check_column(const json_t *col, json_int_t rows)
{
    static const char *const types[] = {"empty", "integer", "number", "boolean", "string"};
    const char *type = json_string_value(json_object_get(col, "type"));
    json_t *missing = json_object_get(col, "missing");
    fuzz_check(json_is_string(json_object_get(col, "name")) && type != NULL && json_is_integer(missing));
    int known = 0;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        known |= strcmp(type, types[i]) == 0;
    json_int_t m = json_integer_value(missing);
    fuzz_check(known && m >= 0 && m <= rows && (strcmp(type, "empty") != 0 || m == rows));
}

static void check_analysis(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    fuzz_check(json_is_object(doc) && json_is_string(json_object_get(doc, "format")));
    if (json_object_get(doc, "error") == NULL) {
        json_t *columns = json_object_get(doc, "columns");
        json_int_t rows = json_integer_value(json_object_get(doc, "rows"));
        json_int_t ragged = json_integer_value(json_object_get(doc, "ragged_rows"));
        fuzz_check(json_is_array(columns) && json_array_size(columns) <= 4096 && rows >= 0 && ragged >= 0 &&
                   ragged <= rows);
        size_t i;
        json_t *col;
        json_array_foreach(columns, i, col) check_column(col, rows);
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char delimiters[] = {0, '\t', ',', ';', '"', '\r', '\n'};
    uint8_t seed = data[0];
    char delimiter = (seed & 7) < 7 ? delimiters[seed & 7] : (char)(seed >> 4);
    data++, size--;

    const uint8_t *rest = data;
    size_t left = size, line_len;
    char *line = fuzz_string(fuzz_next(&rest, &left, '\n', &line_len), line_len);
    jobs_file_kind_t kind = jobs_file_kind(line, line);
    fuzz_check(kind >= JOBS_FILE_BINARY && kind <= JOBS_FILE_NOTEBOOK);
    free(line);

    int fd = memfd_of(data, size);
    char err[256] = "";
    char *text = jobs_file_analyze_csv(fd, delimiter, err, sizeof(err));
    close(fd);
    fuzz_check(text != NULL);
    check_analysis(text);
    free(text);
    return 0;
}
