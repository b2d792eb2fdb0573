/*
 * libFuzzer target for the notebook analysis: jobs_file_analyze_notebook on a memfd holding
 * the input. It never fails on a readable file; its answer is a JSON object, either an
 * "error" or cell counts where code and markdown cells are among the cells.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "jobs/jobs.h"

static void check_analysis(const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    fuzz_check(json_is_object(doc));
    fuzz_check(strcmp(json_string_value(json_object_get(doc, "format")), "ipynb") == 0);
    if (json_object_get(doc, "error") == NULL) {
        json_int_t cells = json_integer_value(json_object_get(doc, "cells"));
        json_int_t code = json_integer_value(json_object_get(doc, "code_cells"));
        json_int_t markdown = json_integer_value(json_object_get(doc, "markdown_cells"));
        json_t *language = json_object_get(doc, "language");
        fuzz_check(code >= 0 && markdown >= 0 && code + markdown <= cells);
        fuzz_check(json_is_null(language) || json_is_string(language));
    }
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.ipynb", MFD_CLOEXEC);
    fuzz_check(fd >= 0 && (size == 0 || write(fd, data, size) == (ssize_t)size) &&
               lseek(fd, 0, SEEK_SET) == 0);
    char err[256] = "";
    char *text = jobs_file_analyze_notebook(fd, err, sizeof(err));
    close(fd);
    fuzz_check(text != NULL);
    check_analysis(text);
    free(text);
    return 0;
}
