/*
 * The analysis of uploaded files (file.process): the kind chosen from content type and name,
 * the CSV/TSV column types, quoting and line endings across the read buffer, the sniffed
 * delimiter, ragged rows and the error forms, the notebook counts, and the I/O failures.
 * Files are written into a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/jobs.h"

static char dir[64];
static char err[256];

/* -------------------------------------------------------------- helpers ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/hydrant-analysis-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    return nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes into dir/name and returns the path (static, overwritten by the next call). */
static const char *write_bytes(const char *name, const char *bytes, size_t len)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_text(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

/* The analysis of a file as JSON (the caller decrefs); fails the test when there is none. */
static json_t *analyze(const char *path, const char *name, const char *content_type)
{
    err[0] = '\0';
    char *text = jobs_file_analyze(path, name, content_type, err, sizeof(err));
    if (text == NULL)
        fail_msg("no analysis: %s", err);
    assert_string_equal(err, ""); /* untouched on success */
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (doc == NULL)
        fail_msg("analysis is not JSON: %s", text);
    free(text);
    return doc;
}

static json_t *analyze_csv_text(const char *text)
{
    return analyze(write_text("data.csv", text), "data.csv", "text/csv");
}

static const char *str_at(const json_t *doc, const char *key)
{
    const char *s = json_string_value(json_object_get(doc, key));
    if (s == NULL)
        fail_msg("no string \"%s\"", key);
    return s;
}

static json_int_t int_at(const json_t *doc, const char *key)
{
    const json_t *v = json_object_get(doc, key);
    if (!json_is_integer(v))
        fail_msg("no integer \"%s\"", key);
    return json_integer_value(v);
}

static const json_t *column(const json_t *doc, size_t i)
{
    const json_t *col = json_array_get(json_object_get(doc, "columns"), i);
    if (col == NULL)
        fail_msg("no column %zu", i);
    return col;
}

static void assert_column(const json_t *doc, size_t i, const char *name, const char *type, json_int_t missing)
{
    const json_t *col = column(doc, i);
    assert_string_equal(str_at(col, "name"), name);
    assert_string_equal(str_at(col, "type"), type);
    assert_int_equal(int_at(col, "missing"), missing);
}

static size_t ncolumns(const json_t *doc)
{
    const json_t *cols = json_object_get(doc, "columns");
    assert_true(json_is_array(cols));
    return json_array_size(cols);
}

/* The type of a one-column CSV whose only cell is `cell` (written as is: quote it yourself). */
static char *type_of(const char *cell)
{
    char text[256];
    snprintf(text, sizeof(text), "v\n%s\n", cell);
    json_t *doc = analyze_csv_text(text);
    assert_int_equal(int_at(doc, "rows"), 1);
    char *type = strdup(str_at(column(doc, 0), "type"));
    json_decref(doc);
    return type;
}

static void assert_type_of(const char *cell, const char *type)
{
    char *got = type_of(cell);
    if (strcmp(got, type) != 0)
        fail_msg("cell [%s]: type %s, expected %s", cell, got, type);
    free(got);
}

/* ------------------------------------------------------------------ kinds ---- */

static void test_kind_from_type_and_name(void **state)
{
    assert_int_equal(jobs_file_kind("a.bin", "text/csv"), JOBS_FILE_CSV);
    assert_int_equal(jobs_file_kind(NULL, " Text/CSV ; charset=utf-8"), JOBS_FILE_CSV);
    assert_int_equal(jobs_file_kind("a.txt", "text/tab-separated-values"), JOBS_FILE_TSV);
    assert_int_equal(jobs_file_kind("a", "application/x-ipynb+json"), JOBS_FILE_NOTEBOOK);
    assert_int_equal(jobs_file_kind("a.ipynb", "application/json"), JOBS_FILE_NOTEBOOK);
    assert_int_equal(jobs_file_kind("A.CSV", "text/plain"), JOBS_FILE_CSV);
    assert_int_equal(jobs_file_kind("x.csv", "application/vnd.ms-excel"), JOBS_FILE_CSV);
    assert_int_equal(jobs_file_kind("x.tab", NULL), JOBS_FILE_TSV);
    assert_int_equal(jobs_file_kind("x.tsv", ""), JOBS_FILE_TSV);
    assert_int_equal(jobs_file_kind("x.csv", "application/octet-stream"), JOBS_FILE_CSV);
    /* a specific type that is not ours wins over the name */
    assert_int_equal(jobs_file_kind("x.csv", "image/png"), JOBS_FILE_BINARY);
    assert_int_equal(jobs_file_kind("x.json", "application/json"), JOBS_FILE_BINARY);
    assert_int_equal(jobs_file_kind("csv", NULL), JOBS_FILE_BINARY);
    assert_int_equal(jobs_file_kind(NULL, NULL), JOBS_FILE_BINARY);
    assert_int_equal(jobs_file_kind("x.csv.gz", "application/octet-stream"), JOBS_FILE_BINARY);
}

/* -------------------------------------------------------------------- csv ---- */

static void test_csv_column_types_and_missing(void **state)
{
    json_t *doc = analyze_csv_text("id,price,ok,label,blank,mixed,ratio,flag_or_n\n"
                                   "1,2.5,true,a,,1,1,true\n"
                                   "2,,FALSE,b,,x,2.5,1\n"
                                   ",3,,,,2,-3e2,\n"
                                   "-4,1e-3,True,d,  ,3,+7,false\n");
    assert_string_equal(str_at(doc, "format"), "csv");
    assert_string_equal(str_at(doc, "delimiter"), ",");
    assert_int_equal(int_at(doc, "rows"), 4);
    assert_int_equal(int_at(doc, "ragged_rows"), 0);
    assert_int_equal(ncolumns(doc), 8);
    assert_column(doc, 0, "id", "integer", 1);
    assert_column(doc, 1, "price", "number", 1);
    assert_column(doc, 2, "ok", "boolean", 1);
    assert_column(doc, 3, "label", "string", 1);
    assert_column(doc, 4, "blank", "empty", 4);
    assert_column(doc, 5, "mixed", "string", 0);
    assert_column(doc, 6, "ratio", "number", 0);
    assert_column(doc, 7, "flag_or_n", "string", 1);
    assert_null(json_object_get(doc, "error"));
    assert_null(json_object_get(doc, "columns_omitted"));
    json_decref(doc);
}

static void test_csv_cell_grammar(void **state)
{
    assert_type_of("42", "integer");
    assert_type_of("+42", "integer");
    assert_type_of("-0", "integer");
    assert_type_of("007", "integer");
    assert_type_of("0", "integer");
    assert_type_of("1", "integer");
    assert_type_of(" 42 ", "integer");
    assert_type_of("\"42\"", "integer");
    assert_type_of("9223372036854775807", "integer");
    assert_type_of("-9223372036854775808", "integer");
    assert_type_of("9223372036854775808", "number");
    assert_type_of("-9223372036854775809", "number");
    assert_type_of("00000000000000000000000000001", "integer");
    assert_type_of("1.5", "number");
    assert_type_of("-.5", "number");
    assert_type_of("5.", "number");
    assert_type_of("1e10", "number");
    assert_type_of("1.5E-3", "number");
    assert_type_of("2e+8 ", "number");
    assert_type_of(".", "string");
    assert_type_of("-", "string");
    assert_type_of("1e", "string");
    assert_type_of("1e+", "string");
    assert_type_of("1e+ ", "string");
    assert_type_of("1.2.3", "string");
    assert_type_of("\"1,000\"", "string");
    assert_type_of("4 2", "string");
    assert_type_of("0x1f", "string");
    assert_type_of("nan", "string");
    assert_type_of("inf", "string");
    assert_type_of("true", "boolean");
    assert_type_of("TRUE", "boolean");
    assert_type_of(" False\t", "boolean");
    assert_type_of("\"true\"", "boolean");
    assert_type_of("t", "string");
    assert_type_of("tru", "string");
    assert_type_of("truex", "string");
    assert_type_of("yes", "string");
    assert_type_of("fals e", "string");
    assert_type_of("\"\"", "empty");
    assert_type_of("\" \"", "empty");
    assert_type_of("\"a\"\"b\"", "string");
}

static void test_csv_quoting(void **state)
{
    json_t *doc = analyze_csv_text("\"name, full\",\"quote \"\"q\"\"\",n\n"
                                   "\"Smith, Jane\",\"she said \"\"hi\"\"\",\"1\"\n"
                                   "\"multi\nline\",\"crlf\r\ninside\",2\n"
                                   "\"cr\ronly\",\"\",3\n"
                                   "plain,\"a\"b,4\n");
    assert_int_equal(int_at(doc, "rows"), 4);
    assert_int_equal(int_at(doc, "ragged_rows"), 0);
    assert_int_equal(ncolumns(doc), 3);
    assert_column(doc, 0, "name, full", "string", 0);
    assert_column(doc, 1, "quote \"q\"", "string", 1);
    assert_column(doc, 2, "n", "integer", 0);
    json_decref(doc);

    /* a newline inside a quoted header name stays in the name */
    doc = analyze_csv_text("\"a\nb\",c\n1,2\n");
    assert_column(doc, 0, "a\nb", "integer", 0);
    assert_int_equal(int_at(doc, "rows"), 1);
    json_decref(doc);
}

static void test_csv_line_endings(void **state)
{
    const char *variants[] = {
        "a,b\n1,x\n2,y\n", "a,b\r\n1,x\r\n2,y\r\n",   "a,b\r1,x\r2,y\r",
        "a,b\n1,x\r\n2,y", "a,b\n\n1,x\n\n\n2,y\n\n", "a,b\r\n\r\n1,x\r\n2,y\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        json_t *doc = analyze_csv_text(variants[i]);
        assert_int_equal(int_at(doc, "rows"), 2);
        assert_int_equal(int_at(doc, "ragged_rows"), 0);
        assert_int_equal(ncolumns(doc), 2);
        assert_column(doc, 0, "a", "integer", 0);
        assert_column(doc, 1, "b", "string", 0);
        json_decref(doc);
    }
}

static void test_csv_bom(void **state)
{
    json_t *doc = analyze_csv_text("\xEF\xBB\xBFid,v\n1,2\n");
    assert_column(doc, 0, "id", "integer", 0);
    assert_int_equal(int_at(doc, "rows"), 1);
    json_decref(doc);

    doc = analyze(write_bytes("u16.csv", "\xFF\xFEi\0d\0\n\0", 8), "u16.csv", "text/csv");
    assert_string_equal(str_at(doc, "format"), "csv");
    assert_non_null(strstr(str_at(doc, "error"), "UTF-16"));
    assert_null(json_object_get(doc, "rows"));
    json_decref(doc);
}

static void test_tsv_by_type_and_extension(void **state)
{
    const char *text = "city\tpop\tnote\nParis, FR\t2100000\ta;b\nOslo\t700000\tc,d\n";
    const char *path = write_text("cities.txt", text);
    json_t *doc = analyze(path, "cities.txt", "text/tab-separated-values");
    assert_string_equal(str_at(doc, "format"), "tsv");
    assert_string_equal(str_at(doc, "delimiter"), "\t");
    assert_int_equal(int_at(doc, "rows"), 2);
    assert_column(doc, 0, "city", "string", 0);
    assert_column(doc, 1, "pop", "integer", 0);
    assert_column(doc, 2, "note", "string", 0);
    json_decref(doc);

    const char *names[] = {"cities.tsv", "CITIES.TAB"};
    for (size_t i = 0; i < 2; i++) {
        path = write_text(names[i], text);
        doc = analyze(path, names[i], "application/octet-stream");
        assert_string_equal(str_at(doc, "format"), "tsv");
        assert_int_equal(ncolumns(doc), 3);
        assert_column(doc, 1, "pop", "integer", 0);
        json_decref(doc);
    }

    /* TSV is not sniffed: a single-column TSV with commas stays one column */
    path = write_text("one.tsv", "a,b\n1,2\n");
    doc = analyze(path, "one.tsv", NULL);
    assert_int_equal(ncolumns(doc), 1);
    assert_column(doc, 0, "a,b", "string", 0);
    json_decref(doc);
}

static void test_csv_delimiter_sniffing(void **state)
{
    const char *text = "name;amount;when\nx;\"1,5\";2024\n\"a;b\";2;2025\n";
    const char *types[] = {"text/plain", "text/csv", NULL};
    for (size_t i = 0; i < 3; i++) {
        json_t *doc = analyze(write_text("semi.csv", text), "semi.csv", types[i]);
        assert_string_equal(str_at(doc, "format"), "csv");
        assert_string_equal(str_at(doc, "delimiter"), ";");
        assert_int_equal(int_at(doc, "rows"), 2);
        assert_int_equal(ncolumns(doc), 3);
        assert_column(doc, 0, "name", "string", 0);
        assert_column(doc, 1, "amount", "string", 0); /* 1,5 is not a number */
        assert_column(doc, 2, "when", "integer", 0);
        json_decref(doc);
    }

    json_t *doc = analyze_csv_text("a|b|c\n1|2|3\n");
    assert_string_equal(str_at(doc, "delimiter"), "|");
    assert_int_equal(ncolumns(doc), 3);
    json_decref(doc);

    /* semicolons inside comma-separated values do not fool it */
    doc = analyze_csv_text("id,tags\n1,a;b;c\n2,d;e;f\n");
    assert_string_equal(str_at(doc, "delimiter"), ",");
    assert_int_equal(ncolumns(doc), 2);
    json_decref(doc);

    /* a tab-separated .csv is reported as tsv */
    doc = analyze_csv_text("a\tb\n1\t2\n");
    assert_string_equal(str_at(doc, "format"), "tsv");
    assert_string_equal(str_at(doc, "delimiter"), "\t");
    json_decref(doc);

    /* one column: comma by default */
    doc = analyze_csv_text("word\nhello\nworld\n");
    assert_string_equal(str_at(doc, "delimiter"), ",");
    assert_int_equal(ncolumns(doc), 1);
    assert_int_equal(int_at(doc, "rows"), 2);
    json_decref(doc);
}

static void test_csv_ragged_rows(void **state)
{
    json_t *doc = analyze_csv_text("a,b,c\n"
                                   "1,2,3\n"
                                   "4,5\n"
                                   "6,7,8,extra,more\n"
                                   "9\n");
    assert_int_equal(int_at(doc, "rows"), 4);
    assert_int_equal(int_at(doc, "ragged_rows"), 3);
    assert_column(doc, 0, "a", "integer", 0);
    assert_column(doc, 1, "b", "integer", 1);
    assert_column(doc, 2, "c", "integer", 2); /* "extra" is past the header: ignored */
    assert_int_equal(ncolumns(doc), 3);
    json_decref(doc);

    /* a trailing delimiter is one more (empty) field */
    doc = analyze_csv_text("a,b\n1,2,\n");
    assert_int_equal(int_at(doc, "ragged_rows"), 1);
    json_decref(doc);
}

static void test_csv_unterminated_quote(void **state)
{
    const char *path = write_text("bad.csv", "a,b\n1,2\n3,\"oops\n4,5\n6,7\n");
    char *text = jobs_file_analyze(path, "bad.csv", "text/csv", err, sizeof(err));
    assert_non_null(text);
    assert_string_equal(text, "{\"format\":\"csv\",\"error\":\"unterminated quoted field on line 3\"}");
    free(text);

    json_t *doc = analyze_csv_text("\"x\ny\",\"b\n1,2\n");
    assert_string_equal(str_at(doc, "error"), "unterminated quoted field on line 2");
    json_decref(doc);

    /* CRLF is one line end, and so is a lone CR */
    doc = analyze_csv_text("a,b\r\n1,2\r\n\r\n3,\"x\r\n");
    assert_string_equal(str_at(doc, "error"), "unterminated quoted field on line 4");
    json_decref(doc);
    doc = analyze_csv_text("a,b\r1,2\r\"x\r\n");
    assert_string_equal(str_at(doc, "error"), "unterminated quoted field on line 3");
    json_decref(doc);
}

static void test_csv_empty_and_header_only(void **state)
{
    const char *empty[] = {"", "\xEF\xBB\xBF", "\n\n\r\n"};
    for (size_t i = 0; i < 3; i++) {
        const char *path = write_text("empty.csv", empty[i]);
        char *text = jobs_file_analyze(path, "empty.csv", NULL, err, sizeof(err));
        assert_non_null(text);
        assert_string_equal(
            text, "{\"format\":\"csv\",\"delimiter\":\",\",\"rows\":0,\"ragged_rows\":0,\"columns\":[]}");
        free(text);
    }

    json_t *doc = analyze_csv_text("a,b\n");
    assert_int_equal(int_at(doc, "rows"), 0);
    assert_column(doc, 0, "a", "empty", 0);
    assert_column(doc, 1, "b", "empty", 0);
    json_decref(doc);
}

static void test_csv_header_names(void **state)
{
    char text[2048];
    char longname[400];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    /* 255 ASCII bytes then a 3-byte character: the cut at 256 must not keep half of it */
    char cut[300];
    memset(cut, 'c', 255);
    memcpy(cut + 255, "\xE2\x82\xAC\xE2\x82\xAC", 7);
    /* overlong (E0 80 80) and surrogate (ED A0 80) forms are invalid too */
    snprintf(text, sizeof(text),
             ",x,,%s,caf\xC3\xA9,bad\xFF\xC3,%s,\xE0\x80\x80\xED\xA0\x80\n1,2,3,4,5,6,7,8\n", longname, cut);
    json_t *doc = analyze_csv_text(text);
    assert_int_equal(ncolumns(doc), 8);
    assert_column(doc, 0, "column_1", "integer", 0);
    assert_column(doc, 1, "x", "integer", 0);
    assert_column(doc, 2, "column_3", "integer", 0);
    assert_int_equal(strlen(str_at(column(doc, 3), "name")), 256);
    assert_column(doc, 4, "caf\xC3\xA9", "integer", 0);
    assert_column(doc, 5, "bad\xEF\xBF\xBD\xEF\xBF\xBD", "integer", 0);
    const char *name6 = str_at(column(doc, 6), "name");
    assert_int_equal(strlen(name6), 255);
    assert_int_equal(name6[254], 'c');
    char replaced[19] = "";
    for (int i = 0; i < 6; i++)
        strcat(replaced, "\xEF\xBF\xBD");
    assert_column(doc, 7, replaced, "integer", 0);
    json_decref(doc);
}

static void test_csv_column_limit(void **state)
{
    size_t n = 5000, cap = n * 8 + 64, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len, "%sc%zu", i > 0 ? "," : "", i);
    len += (size_t)snprintf(text + len, cap - len, "\n1,2\n");
    json_t *doc = analyze(write_bytes("wide.csv", text, len), "wide.csv", "text/csv");
    free(text);
    assert_int_equal(ncolumns(doc), 4096);
    assert_int_equal(int_at(doc, "columns_omitted"), 904);
    assert_column(doc, 4095, "c4095", "empty", 1);
    assert_column(doc, 1, "c1", "integer", 0);
    assert_int_equal(int_at(doc, "ragged_rows"), 1);
    json_decref(doc);
}

/* Rows crossing the 64 KiB read buffer at every offset: quotes, "" escapes, CRLF split in
 * two reads, and a last row without a newline at the very end of a buffer. */
static void test_csv_across_buffers(void **state)
{
    const char *row = "123,\"x,\r\n\"\"y\",4.5,true\r\n";
    size_t rowlen = strlen(row), rows = 20000, cap = 64 + rowlen * rows, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "n,s,x,b\r\n");
    for (size_t i = 0; i < rows; i++) {
        memcpy(text + len, row, rowlen);
        len += rowlen;
    }
    json_t *doc = analyze(write_bytes("big.csv", text, len), "big.csv", "text/csv");
    assert_int_equal(int_at(doc, "rows"), (json_int_t)rows);
    assert_int_equal(int_at(doc, "ragged_rows"), 0);
    assert_column(doc, 0, "n", "integer", 0);
    assert_column(doc, 1, "s", "string", 0);
    assert_column(doc, 2, "x", "number", 0);
    assert_column(doc, 3, "b", "boolean", 0);
    json_decref(doc);

    /* exactly 64 KiB with no final newline: the last row still counts */
    len = (size_t)snprintf(text, cap, "k\n");
    size_t rows_written = 0;
    while (len + 2 <= 65536) {
        memcpy(text + len, "7\n", 2);
        len += 2;
        rows_written++;
    }
    text[len - 1] = '8'; /* the last row becomes "78", ending the file without a newline */
    assert_int_equal(len, 65536);
    doc = analyze(write_bytes("exact.csv", text, len), "exact.csv", "text/csv");
    assert_int_equal(int_at(doc, "rows"), (json_int_t)rows_written);
    assert_column(doc, 0, "k", "integer", 0);
    json_decref(doc);

    /* an unterminated quote far into the file reports its line */
    len = (size_t)snprintf(text, cap, "k\n");
    for (size_t i = 0; i < 30000; i++)
        len += (size_t)snprintf(text + len, cap - len, "\"a\nb\"\n");
    len += (size_t)snprintf(text + len, cap - len, "\"open\n");
    doc = analyze(write_bytes("late.csv", text, len), "late.csv", "text/csv");
    assert_string_equal(str_at(doc, "error"), "unterminated quoted field on line 60002");
    json_decref(doc);
    free(text);
}

static void test_csv_not_text(void **state)
{
    json_t *doc = analyze(write_bytes("zip.csv", "PK\3\4\0\0\1\2", 8), "zip.csv", "text/csv");
    assert_string_equal(str_at(doc, "format"), "csv");
    assert_string_equal(str_at(doc, "error"), "not a text file: it holds NUL bytes");
    json_decref(doc);
}

/* -------------------------------------------------------------- notebooks ---- */

static const char NOTEBOOK_V4[] =
    "{\"nbformat\":4,\"nbformat_minor\":5,"
    "\"metadata\":{\"kernelspec\":{\"name\":\"ir\",\"display_name\":\"R\",\"language\":\"R\"},"
    "\"language_info\":{\"name\":\"python\"}},"
    "\"cells\":[{\"cell_type\":\"markdown\",\"source\":\"# Title\"},"
    "{\"cell_type\":\"code\",\"source\":\"1+1\",\"outputs\":[]},"
    "{\"cell_type\":\"code\",\"source\":[],\"outputs\":[]},"
    "{\"cell_type\":\"raw\",\"source\":\"x\"},"
    "{\"cell_type\":\"markdown\",\"source\":[]},"
    "{\"cell_type\":\"code\",\"source\":\"\",\"outputs\":[]}]}";

static void test_notebook_counts_and_language(void **state)
{
    const char *path = write_text("nb.ipynb", NOTEBOOK_V4);
    char *text = jobs_file_analyze(path, "nb.ipynb", "application/x-ipynb+json", err, sizeof(err));
    assert_non_null(text);
    assert_string_equal(
        text, "{\"format\":\"ipynb\",\"cells\":6,\"code_cells\":3,\"markdown_cells\":2,\"language\":\"R\"}");
    free(text);

    /* by name with a generic type; language from language_info when the kernelspec has none */
    path = write_text("b.ipynb", "{\"metadata\":{\"language_info\":{\"name\":\"julia\"}},\"nbformat\":4,"
                                 "\"cells\":[{\"cell_type\":\"code\"},{\"cell_type\":\"raw\"}]}");
    json_t *doc = analyze(path, "b.ipynb", "application/json");
    assert_int_equal(int_at(doc, "cells"), 2);
    assert_int_equal(int_at(doc, "code_cells"), 1);
    assert_int_equal(int_at(doc, "markdown_cells"), 0);
    assert_string_equal(str_at(doc, "language"), "julia");
    json_decref(doc);

    /* no language anywhere: null; no cells at all is a valid empty notebook */
    path = write_text("c.ipynb", "{\"metadata\":{},\"nbformat\":4,\"cells\":[]}");
    doc = analyze(path, "c.ipynb", NULL);
    assert_int_equal(int_at(doc, "cells"), 0);
    assert_true(json_is_null(json_object_get(doc, "language")));
    json_decref(doc);
}

static void test_notebook_v3(void **state)
{
    const char *path =
        write_text("old.ipynb", "{\"nbformat\":3,\"metadata\":{\"name\":\"old\"},\"worksheets\":["
                                "{\"cells\":[{\"cell_type\":\"heading\",\"level\":1},"
                                "{\"cell_type\":\"code\",\"language\":\"python\"},"
                                "{\"cell_type\":\"markdown\"}]},"
                                "{\"cells\":[{\"cell_type\":\"code\",\"language\":\"ruby\"}]}]}");
    json_t *doc = analyze(path, "old.ipynb", NULL);
    assert_int_equal(int_at(doc, "cells"), 4);
    assert_int_equal(int_at(doc, "code_cells"), 2);
    assert_int_equal(int_at(doc, "markdown_cells"), 2);
    assert_string_equal(str_at(doc, "language"), "python");
    json_decref(doc);
}

static void test_notebook_errors(void **state)
{
    struct {
        const char *text, *error;
    } cases[] = {
        {"this is not json", "not valid JSON: syntax error on line 1, column 4"},
        {"{\"cells\": [", "not valid JSON: the file ends inside the document"},
        {"{\"cells\":[]} trailing", "not valid JSON: data after the document on line 1"},
        {"[1,2,3]", "not a notebook: the document is not a JSON object"},
        {"{\"metadata\":{}}", "not a notebook: it has no cells"},
        {"{\"cells\":\"nope\"}", "not a notebook: it has no cells"},
        {"", "empty file"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *doc = analyze(write_text("bad.ipynb", cases[i].text), "bad.ipynb", NULL);
        assert_string_equal(str_at(doc, "format"), "ipynb");
        assert_string_equal(str_at(doc, "error"), cases[i].error);
        assert_null(json_object_get(doc, "cells"));
        json_decref(doc);
    }
    /* invalid UTF-8 inside a string: the reason must not quote the bytes */
    json_t *doc = analyze(write_text("bad.ipynb", "{\"cells\":[],\"x\":\"\xFF\"}"), "bad.ipynb", NULL);
    assert_string_equal(str_at(doc, "error"), "not valid JSON: invalid UTF-8 on line 1");
    json_decref(doc);
}

/* ------------------------------------------------------- binary and I/O ---- */

static void test_binary(void **state)
{
    const char *path = write_bytes("img.png", "\x89PNG\r\n\x1a\n\0\0", 10);
    char *text = jobs_file_analyze(path, "img.png", "image/png", err, sizeof(err));
    assert_non_null(text);
    assert_string_equal(text, "{\"format\":\"binary\"}");
    free(text);
    text = jobs_file_analyze(path, NULL, NULL, err, sizeof(err));
    assert_non_null(text);
    assert_string_equal(text, "{\"format\":\"binary\"}");
    free(text);
}

static void test_io_failures(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/does-not-exist.csv", dir);
    err[0] = '\0';
    errno = 0;
    assert_null(jobs_file_analyze(path, "x.csv", "text/csv", err, sizeof(err)));
    assert_int_equal(errno, ENOENT); /* how file.process tells a file deleted meanwhile */
    assert_string_equal(err, "file not found");
    assert_null(strstr(err, dir));

    err[0] = '\0';
    assert_null(jobs_file_analyze(dir, "x.png", "image/png", err, sizeof(err)));
    assert_int_equal(errno, EISDIR);
    assert_string_equal(err, "not a regular file");

    err[0] = '\0';
    assert_null(jobs_file_analyze(NULL, "x.csv", "text/csv", err, sizeof(err)));
    assert_int_equal(errno, EINVAL);
    assert_string_equal(err, "no file path");

    /* a regular file whose read fails: /proc/self/mem at offset 0 gives EIO */
    const char *kinds[][2] = {{"x.csv", "text/csv"}, {"x.ipynb", NULL}};
    for (size_t i = 0; i < 2; i++) {
        err[0] = '\0';
        assert_null(jobs_file_analyze("/proc/self/mem", kinds[i][0], kinds[i][1], err, sizeof(err)));
        assert_int_equal(errno, EIO);
        assert_string_equal(err, "read failed: Input/output error");
    }

    if (geteuid() != 0) { /* root reads anything */
        const char *locked = write_text("locked.csv", "a\n1\n");
        assert_int_equal(chmod(locked, 0), 0);
        err[0] = '\0';
        assert_null(jobs_file_analyze(locked, "locked.csv", "text/csv", err, sizeof(err)));
        assert_string_equal(err, "cannot open the file: Permission denied");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_from_type_and_name),
        cmocka_unit_test(test_csv_column_types_and_missing),
        cmocka_unit_test(test_csv_cell_grammar),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_csv_line_endings),
        cmocka_unit_test(test_csv_bom),
        cmocka_unit_test(test_tsv_by_type_and_extension),
        cmocka_unit_test(test_csv_delimiter_sniffing),
        cmocka_unit_test(test_csv_ragged_rows),
        cmocka_unit_test(test_csv_unterminated_quote),
        cmocka_unit_test(test_csv_empty_and_header_only),
        cmocka_unit_test(test_csv_header_names),
        cmocka_unit_test(test_csv_column_limit),
        cmocka_unit_test(test_csv_across_buffers),
        cmocka_unit_test(test_csv_not_text),
        cmocka_unit_test(test_notebook_counts_and_language),
        cmocka_unit_test(test_notebook_v3),
        cmocka_unit_test(test_notebook_errors),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_io_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
