/*
 * Analysis of Jupyter notebooks (job kind file.process). A notebook is one JSON document, so
 * it is read whole (refused above 64 MiB: jansson's tree takes a few times the file) and its
 * cells are counted by cell_type. nbformat 4 keeps them in "cells"; nbformat 3 in
 * "worksheets"[].cells, where "heading" cells count as markdown (nbconvert turns them into
 * markdown) and the language may only be on the code cells. Duplicate keys are accepted, the
 * last one winning, and so is \u0000 in strings, as Jupyter's own (Python) reader does.
 */
#include "jobs/jobs_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOTEBOOK_MAX_BYTES    (64 * 1024 * 1024)
#define NOTEBOOK_LANGUAGE_MAX 64
#define NOTEBOOK_PROBLEM_LEN  96

typedef struct {
    size_t cells, code, markdown;
    const char *cell_language; /* nbformat 3: of the first code cell that has one; borrowed */
} notebook_t;

/* ---------------------------------------------------------------- reading ---- */

/* Doubles buf up to one byte past the cap (enough to tell the file is too large); frees it
 * and returns NULL when memory runs out. */
static char *grow(char *buf, size_t *cap)
{
    size_t want = *cap * 2 > (size_t)NOTEBOOK_MAX_BYTES + 1 ? (size_t)NOTEBOOK_MAX_BYTES + 1 : *cap * 2;
    char *bigger = realloc(buf, want);
    if (bigger == NULL)
        free(buf);
    *cap = want;
    return bigger;
}

/* The whole file into *out (malloc'd), or *out NULL when it is larger than the cap. -1 with
 * err set on a read error or when memory runs out. The cap also holds for a file that grows
 * after fstat, since it is checked on the bytes read. */
static int read_capped(int fd, char **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    *out = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0) {
        jobs_set_err(err, errlen, "cannot read the file: %s", strerror(errno));
        return -1;
    }
    if (st.st_size > NOTEBOOK_MAX_BYTES)
        return 0;
    size_t cap = (size_t)st.st_size + 1; /* + 1: the read that sees the end fits */
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            errno = ENOMEM;
            jobs_set_err(err, errlen, "out of memory");
            return -1;
        }
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            jobs_set_err(err, errlen, "read failed: %s", strerror(errno));
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
        if (*len > NOTEBOOK_MAX_BYTES) {
            free(buf);
            *len = 0;
            return 0;
        }
        if (*len == cap)
            buf = grow(buf, &cap);
    }
    *out = buf;
    return 0;
}

/* A short reason without the file's bytes in it: jansson's own text quotes the offending
 * token, which may not even be valid UTF-8. */
static void json_problem(const json_error_t *jerr, char *problem, size_t size)
{
    switch (json_error_code(jerr)) {
    case json_error_premature_end_of_input:
        snprintf(problem, size, "not valid JSON: the file ends inside the document");
        break;
    case json_error_invalid_utf8:
        snprintf(problem, size, "not valid JSON: invalid UTF-8 on line %d", jerr->line);
        break;
    case json_error_end_of_input_expected:
        snprintf(problem, size, "not valid JSON: data after the document on line %d", jerr->line);
        break;
    default:
        snprintf(problem, size, "not valid JSON: syntax error on line %d, column %d", jerr->line,
                 jerr->column);
        break;
    }
}

/* --------------------------------------------------------------- counting ---- */

static void count_cells(notebook_t *nb, json_t *cells)
{
    size_t i;
    json_t *cell;
    json_array_foreach(cells, i, cell)
    {
        const char *type = json_string_value(json_object_get(cell, "cell_type"));
        nb->cells++;
        if (type == NULL)
            continue;
        if (strcmp(type, "code") == 0) {
            nb->code++;
            if (nb->cell_language == NULL)
                nb->cell_language = json_string_value(json_object_get(cell, "language"));
        } else if (strcmp(type, "markdown") == 0 || strcmp(type, "heading") == 0) {
            nb->markdown++;
        }
    }
}

/* -1 when the document has neither layout. */
static int find_cells(notebook_t *nb, const json_t *root)
{
    json_t *cells = json_object_get(root, "cells");
    if (json_is_array(cells)) {
        count_cells(nb, cells);
        return 0;
    }
    json_t *sheets = json_object_get(root, "worksheets");
    if (!json_is_array(sheets))
        return -1;
    size_t i;
    json_t *sheet;
    json_array_foreach(sheets, i, sheet)
    {
        cells = json_object_get(sheet, "cells");
        if (json_is_array(cells))
            count_cells(nb, cells);
    }
    return 0;
}

static const char *nonempty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* The kernel's language, else the one the kernel reported last, else (nbformat 3) the code
 * cells'. NULL when the notebook does not say. */
static const char *notebook_language(const json_t *root, const notebook_t *nb)
{
    const json_t *meta = json_object_get(root, "metadata");
    const char *lang =
        nonempty(json_string_value(json_object_get(json_object_get(meta, "kernelspec"), "language")));
    if (lang == NULL)
        lang = nonempty(json_string_value(json_object_get(json_object_get(meta, "language_info"), "name")));
    return lang != NULL ? lang : nonempty(nb->cell_language);
}

/* The language as it goes out: at most NOTEBOOK_LANGUAGE_MAX bytes, cut on a character
 * boundary (jansson has checked it is UTF-8), or null. */
static json_t *language_json(const char *lang)
{
    if (lang == NULL)
        return json_null();
    size_t len = strlen(lang);
    if (len > NOTEBOOK_LANGUAGE_MAX)
        len = util_utf8_cut(lang, NOTEBOOK_LANGUAGE_MAX);
    return json_stringn(lang, len);
}

/* The analysis of a parsed document, or NULL (problem set) when it is not a notebook. */
static json_t *notebook_json(const json_t *root, char *problem, size_t size)
{
    notebook_t nb = {0};
    if (!json_is_object(root)) {
        snprintf(problem, size, "not a notebook: the document is not a JSON object");
        return NULL;
    }
    if (find_cells(&nb, root) != 0) {
        snprintf(problem, size, "not a notebook: it has no cells");
        return NULL;
    }
    return json_pack("{s:s, s:I, s:I, s:I, s:o}", "format", "ipynb", "cells", (json_int_t)nb.cells,
                     "code_cells", (json_int_t)nb.code, "markdown_cells", (json_int_t)nb.markdown, "language",
                     language_json(notebook_language(root, &nb)));
}

/* ---------------------------------------------------------------- entry ---- */

static json_t *analyze_text(const char *text, size_t len)
{
    char problem[NOTEBOOK_PROBLEM_LEN] = "";
    json_t *doc = NULL;
    json_error_t jerr;
    json_t *root = text != NULL ? json_loadb(text, len, JSON_ALLOW_NUL, &jerr) : NULL;
    if (text == NULL)
        snprintf(problem, sizeof(problem), "notebook larger than %d MiB", NOTEBOOK_MAX_BYTES / (1024 * 1024));
    else if (len == 0)
        snprintf(problem, sizeof(problem), "empty file");
    else if (root == NULL)
        json_problem(&jerr, problem, sizeof(problem));
    else
        doc = notebook_json(root, problem, sizeof(problem));
    json_decref(root);
    if (problem[0] != '\0')
        doc = json_pack("{s:s, s:s}", "format", "ipynb", "error", problem);
    return doc;
}

char *jobs_file_analyze_notebook(int fd, char *err, size_t errlen)
{
    char *text;
    size_t len;
    if (read_capped(fd, &text, &len, err, errlen) != 0)
        return NULL;
    json_t *doc = analyze_text(text, len);
    free(text);
    char *out = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (out == NULL) {
        errno = ENOMEM;
        jobs_set_err(err, errlen, "out of memory");
    }
    return out;
}
