/*
 * Analysis of uploaded files (job kind file.process): choosing the kind of a file, and the
 * CSV/TSV analysis. Notebooks are in file_notebook.c.
 *
 * CSV is read once, front to back, through one 64 KiB buffer; only the header names and
 * each column's counts are kept, so memory does not grow with the file. The rules (RFC 4180, lenient where
 * real files are not):
 * - Records end at LF, CRLF or a lone CR outside quotes. A leading UTF-8 BOM is skipped. A
 *   line without a single byte is skipped, so a final newline adds no row.
 * - A field that starts with '"' is quoted: delimiters, CR and LF inside are data, "" is one
 *   quote. Bytes after the closing quote are data too (`"a"b` reads as ab) and a quote inside
 *   an unquoted field is data; only a quote still open at the end of the file is an error.
 * - The first record is the header: empty names become column_N (1-based), names are cut at
 *   256 bytes, invalid UTF-8 in them becomes U+FFFD. Columns past 4096 are not analysed
 *   (counted in columns_omitted). rows does not count the header.
 * - A row with another number of fields than the header is ragged (counted): fields past the
 *   header's are ignored, absent ones are missing.
 * - Cell types, on the unquoted value, spaces and tabs around it ignored:
 *     missing  empty or only spaces/tabs ("" too)
 *     integer  [+-]?[0-9]+ within int64
 *     number   [+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?, and integers past int64
 *     boolean  true or false in any case; 0/1 are integers and yes/no strings, because a
 *              column of 0/1 flags cannot be told from a column of counts
 *     string   anything else (nan, inf, 1,000, 0x1f, ...)
 *   A column has the type of all its non-missing cells: integer with number is number, any
 *   other mix is string; "empty" when every cell is missing.
 * - Delimiter: tab for TSV. For CSV it is sniffed from the first 64 KiB among , \t ; | (in
 *   that order of preference): the one that splits the header into at least 2 fields and
 *   the most of the first records into the header's count wins, comma when none does, so
 *   the semicolon files of spreadsheets in decimal-comma locales are read right even when
 *   they are sent as text/csv. "format" is "tsv" for a tab, "csv" otherwise.
 * - An empty file (or only a BOM and blank lines) is rows 0, columns []. A NUL byte or a
 *   UTF-16 BOM in the first 64 KiB gives the "error" form: that is not CSV text.
 */
#include "jobs/jobs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The read buffer. tests/fuzz builds it small, so that short inputs reach every chunk edge. */
#ifndef CSV_BUF_SIZE
#define CSV_BUF_SIZE (64 * 1024)
#endif
#define CSV_MAX_COLUMNS  4096
#define CSV_NAME_MAX     256
#define CSV_PROBLEM_LEN  96
#define SNIFF_RECORDS    64
#define COLUMN_NAME_SIZE 32

/* ------------------------------------------------------------------ kinds ---- */

static const char *const CSV_TYPES[] = {"text/csv", "application/csv", "text/x-csv",
                                        "text/comma-separated-values", NULL};
static const char *const TSV_TYPES[] = {"text/tab-separated-values", "text/tsv", NULL};
static const char *const NOTEBOOK_TYPES[] = {"application/x-ipynb+json", NULL};
/* Types that say nothing about the content: what clients send when they do not know
 * (browsers on Windows send .csv files as application/vnd.ms-excel). */
static const char *const GENERIC_TYPES[] = {
    "",           "application/octet-stream", "binary/octet-stream",
    "text/plain", "application/json",         "application/vnd.ms-excel",
    NULL};

/* Whether the media type of content_type (parameters, blanks and case ignored) is in types. */
static int type_in(const char *content_type, const char *const *types)
{
    const char *s = content_type != NULL ? content_type : "";
    s += strspn(s, " \t");
    size_t n = strcspn(s, ";");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (; *types != NULL; types++)
        if (strlen(*types) == n && strncasecmp(s, *types, n) == 0)
            return 1;
    return 0;
}

static jobs_file_kind_t kind_of_name(const char *name)
{
    const char *dot = name != NULL ? strrchr(name, '.') : NULL;
    if (dot == NULL)
        return JOBS_FILE_BINARY;
    if (strcasecmp(dot, ".csv") == 0)
        return JOBS_FILE_CSV;
    if (strcasecmp(dot, ".tsv") == 0 || strcasecmp(dot, ".tab") == 0)
        return JOBS_FILE_TSV;
    if (strcasecmp(dot, ".ipynb") == 0)
        return JOBS_FILE_NOTEBOOK;
    return JOBS_FILE_BINARY;
}

jobs_file_kind_t jobs_file_kind(const char *name, const char *content_type)
{
    if (type_in(content_type, CSV_TYPES))
        return JOBS_FILE_CSV;
    if (type_in(content_type, TSV_TYPES))
        return JOBS_FILE_TSV;
    if (type_in(content_type, NOTEBOOK_TYPES))
        return JOBS_FILE_NOTEBOOK;
    return type_in(content_type, GENERIC_TYPES) ? kind_of_name(name) : JOBS_FILE_BINARY;
}

/* ------------------------------------------------------------------ cells ---- */

typedef enum { T_EMPTY, T_INTEGER, T_NUMBER, T_BOOLEAN, T_STRING } csv_type_t;

static const char *const TYPE_NAMES[] = {"empty", "integer", "number", "boolean", "string"};

/* Where the classifier of the current cell is in the grammar of the rules above. */
typedef enum {
    C_LEAD,      /* only blanks so far */
    C_SIGN,      /* + or - */
    C_INT,       /* digits */
    C_DOT_LEAD,  /* a '.' with no digit before it */
    C_FRAC,      /* digits then '.', then maybe more digits */
    C_EXP,       /* e or E */
    C_EXP_SIGN,  /* the exponent's sign */
    C_EXP_DIGIT, /* the exponent's digits */
    C_WORD,      /* a prefix of true or false */
    C_TRAIL,     /* blanks after a complete value of type `done` */
    C_TEXT,      /* a string: nothing more to learn */
    C_TEXT_LEAD, /* the column is already string: only whether the cell is missing matters */
} cell_state_t;

typedef struct {
    cell_state_t state;
    csv_type_t done;
    int negative;
    int overflow;
    const char *word;
    size_t pos;
    uint64_t value;
} cell_t;

static int is_blank(unsigned char b)
{
    return b == ' ' || b == '\t';
}

static int is_digit(unsigned char b)
{
    return b >= '0' && b <= '9';
}

static void cell_reset(cell_t *c, int column_is_string)
{
    *c = (cell_t){.state = column_is_string ? C_TEXT_LEAD : C_LEAD};
}

static void cell_trail(cell_t *c, csv_type_t done)
{
    c->state = C_TRAIL;
    c->done = done;
}

static void cell_first(cell_t *c, unsigned char b)
{
    if (is_blank(b))
        return;
    if (b == '+' || b == '-') {
        c->negative = b == '-';
        c->state = C_SIGN;
    } else if (b == 't' || b == 'T' || b == 'f' || b == 'F') {
        c->word = b == 't' || b == 'T' ? "true" : "false";
        c->pos = 1;
        c->state = C_WORD;
    } else if (b == '.') {
        c->state = C_DOT_LEAD;
    } else if (is_digit(b)) {
        c->state = C_INT;
        c->value = b - '0';
    } else {
        c->state = C_TEXT;
    }
}

/* Integers are tracked by value only to tell which fit in int64 (-2^63 .. 2^63-1). */
static void cell_digit(cell_t *c, unsigned char b)
{
    uint64_t limit = c->negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, d = b - '0';
    if (c->value > (limit - d) / 10)
        c->overflow = 1;
    else
        c->value = c->value * 10 + d;
}

static void cell_int(cell_t *c, unsigned char b)
{
    if (is_digit(b)) {
        if (!c->overflow)
            cell_digit(c, b);
    } else if (b == '.') {
        c->state = C_FRAC;
    } else if (b == 'e' || b == 'E') {
        c->state = C_EXP;
    } else if (is_blank(b)) {
        cell_trail(c, c->overflow ? T_NUMBER : T_INTEGER);
    } else {
        c->state = C_TEXT;
    }
}

static void cell_fraction(cell_t *c, unsigned char b)
{
    if (b == 'e' || b == 'E')
        c->state = C_EXP;
    else if (is_blank(b))
        cell_trail(c, T_NUMBER);
    else if (!is_digit(b))
        c->state = C_TEXT;
}

static void cell_word(cell_t *c, unsigned char b)
{
    unsigned char lower = b >= 'A' && b <= 'Z' ? (unsigned char)(b + 32) : b;
    if (c->word[c->pos] != '\0' && lower == (unsigned char)c->word[c->pos])
        c->pos++;
    else if (c->word[c->pos] == '\0' && is_blank(b))
        cell_trail(c, T_BOOLEAN);
    else
        c->state = C_TEXT;
}

static void cell_step(cell_t *c, unsigned char b)
{
    switch (c->state) {
    case C_LEAD:
        cell_first(c, b);
        break;
    case C_SIGN:
        c->state = is_digit(b) ? C_INT : b == '.' ? C_DOT_LEAD : C_TEXT;
        if (is_digit(b))
            c->value = b - '0';
        break;
    case C_INT:
        cell_int(c, b);
        break;
    case C_DOT_LEAD:
        c->state = is_digit(b) ? C_FRAC : C_TEXT;
        break;
    case C_FRAC:
        cell_fraction(c, b);
        break;
    case C_EXP:
        c->state = is_digit(b) ? C_EXP_DIGIT : b == '+' || b == '-' ? C_EXP_SIGN : C_TEXT;
        break;
    case C_EXP_SIGN:
    case C_EXP_DIGIT:
        if (is_digit(b))
            c->state = C_EXP_DIGIT;
        else if (c->state == C_EXP_DIGIT && is_blank(b))
            cell_trail(c, T_NUMBER);
        else
            c->state = C_TEXT;
        break;
    case C_WORD:
        cell_word(c, b);
        break;
    case C_TRAIL:
    case C_TEXT_LEAD:
        if (!is_blank(b))
            c->state = C_TEXT;
        break;
    case C_TEXT:
        break;
    }
}

static void cell_feed(cell_t *c, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && c->state != C_TEXT; i++)
        cell_step(c, p[i]);
}

static csv_type_t cell_type(const cell_t *c)
{
    switch (c->state) {
    case C_LEAD:
    case C_TEXT_LEAD:
        return T_EMPTY;
    case C_INT:
        return c->overflow ? T_NUMBER : T_INTEGER;
    case C_FRAC:
    case C_EXP_DIGIT:
        return T_NUMBER;
    case C_WORD:
        return c->word[c->pos] == '\0' ? T_BOOLEAN : T_STRING;
    case C_TRAIL:
        return c->done;
    default:
        return T_STRING;
    }
}

static csv_type_t type_widen(csv_type_t column, csv_type_t cell)
{
    if (column == T_EMPTY || column == cell)
        return cell;
    if ((column == T_INTEGER && cell == T_NUMBER) || (column == T_NUMBER && cell == T_INTEGER))
        return T_NUMBER;
    return T_STRING;
}

/* ----------------------------------------------------------------- parser ---- */

typedef struct {
    char *name; /* raw bytes as in the file, at most CSV_NAME_MAX; owned */
    size_t name_len;
    csv_type_t type;
    int64_t missing;
} csv_column_t;

typedef enum {
    P_FIELD,    /* at the start of a field */
    P_UNQUOTED, /* inside an unquoted field */
    P_QUOTED,   /* inside a quoted field */
    P_QUOTE,    /* just after a quote inside a quoted field: closing, or the first of "" */
    P_CR,       /* just after a CR that ended a record: an LF here belongs to it */
} parse_state_t;

typedef struct {
    unsigned char delim;
    unsigned char stop[256]; /* 1 for the bytes that end an unquoted run: delimiter, CR, LF */
    parse_state_t state;
    int in_header;
    int record_started; /* a byte of this record was seen: lines without one are skipped */
    size_t field;       /* index of the current field in its record */
    size_t header_fields;
    csv_column_t *cols; /* the first CSV_MAX_COLUMNS columns of the header; owned */
    size_t ncols, cap;
    unsigned char name[CSV_NAME_MAX]; /* the header field being read */
    size_t name_len;
    int name_cut;
    cell_t cell;
    int64_t rows, ragged, line, quote_line;
    int oom;
    char problem[CSV_PROBLEM_LEN]; /* why the file is not CSV, or empty */
} csv_t;

static void csv_init(csv_t *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->in_header = 1;
    cs->line = 1;
}

static void csv_free(csv_t *cs)
{
    for (size_t i = 0; i < cs->ncols; i++)
        free(cs->cols[i].name);
    free(cs->cols);
}

static void csv_set_delimiter(csv_t *cs, unsigned char delim)
{
    cs->delim = delim;
    cs->stop[delim] = cs->stop['\r'] = cs->stop['\n'] = 1;
}

static void name_append(csv_t *cs, const unsigned char *p, size_t n)
{
    size_t room = CSV_NAME_MAX - cs->name_len, take = n < room ? n : room;
    memcpy(cs->name + cs->name_len, p, take);
    cs->name_len += take;
    if (take < n)
        cs->name_cut = 1;
}

static int columns_grow(csv_t *cs)
{
    size_t cap = cs->cap == 0 ? 16 : cs->cap * 2;
    csv_column_t *cols = realloc(cs->cols, cap * sizeof(*cols));
    if (cols == NULL)
        return -1;
    cs->cols = cols;
    cs->cap = cap;
    return 0;
}

static void header_field_end(csv_t *cs)
{
    /* A name cut at CSV_NAME_MAX loses the partial UTF-8 sequence at its end rather than
     * showing it as U+FFFD. */
    size_t len = cs->name_cut ? util_utf8_cut(cs->name, cs->name_len) : cs->name_len;
    cs->name_len = 0;
    cs->name_cut = 0;
    if (cs->ncols == CSV_MAX_COLUMNS || cs->oom)
        return;
    char *name = malloc(len + 1);
    if (name == NULL || (cs->ncols == cs->cap && columns_grow(cs) != 0)) {
        free(name);
        cs->oom = 1;
        return;
    }
    memcpy(name, cs->name, len);
    name[len] = '\0';
    cs->cols[cs->ncols++] = (csv_column_t){.name = name, .name_len = len, .type = T_EMPTY};
}

static void field_data(csv_t *cs, const unsigned char *p, size_t n)
{
    if (cs->in_header)
        name_append(cs, p, n);
    else if (cs->field < cs->ncols)
        cell_feed(&cs->cell, p, n);
}

static void next_cell(csv_t *cs)
{
    cell_reset(&cs->cell, cs->field < cs->ncols && cs->cols[cs->field].type == T_STRING);
}

static void field_end(csv_t *cs)
{
    if (cs->in_header) {
        header_field_end(cs);
    } else if (cs->field < cs->ncols) {
        csv_column_t *col = &cs->cols[cs->field];
        csv_type_t type = cell_type(&cs->cell);
        if (type == T_EMPTY)
            col->missing++;
        else
            col->type = type_widen(col->type, type);
    }
    cs->field++;
    next_cell(cs);
}

static void record_end(csv_t *cs)
{
    field_end(cs);
    if (cs->in_header) {
        cs->in_header = 0;
        cs->header_fields = cs->field;
    } else {
        cs->rows++;
        if (cs->field != cs->header_fields)
            cs->ragged++;
        for (size_t i = cs->field; i < cs->ncols; i++)
            cs->cols[i].missing++;
    }
    cs->field = 0;
    cs->record_started = 0;
    next_cell(cs);
}

/* A delimiter, CR or LF outside quotes. */
static void stop_byte(csv_t *cs, unsigned char b)
{
    if (b == cs->delim) {
        cs->record_started = 1;
        field_end(cs);
        cs->state = P_FIELD;
        return;
    }
    cs->state = b == '\r' ? P_CR : P_FIELD;
    cs->line++;
    if (cs->record_started)
        record_end(cs);
}

static const unsigned char *scan_unquoted(csv_t *cs, const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = p;
    while (q < end && !cs->stop[*q])
        q++;
    if (q > p) {
        cs->record_started = 1;
        field_data(cs, p, (size_t)(q - p));
    }
    if (q == end)
        return end;
    stop_byte(cs, *q);
    return q + 1;
}

static const unsigned char *field_start(csv_t *cs, const unsigned char *p, const unsigned char *end)
{
    if (*p != '"') {
        cs->state = P_UNQUOTED;
        return scan_unquoted(cs, p, end);
    }
    cs->state = P_QUOTED;
    cs->record_started = 1;
    cs->quote_line = cs->line;
    return p + 1;
}

static int64_t count_lf(const unsigned char *p, const unsigned char *end)
{
    int64_t n = 0;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static const unsigned char *scan_quoted(csv_t *cs, const unsigned char *p, const unsigned char *end)
{
    const unsigned char *quote = memchr(p, '"', (size_t)(end - p));
    const unsigned char *stop = quote != NULL ? quote : end;
    cs->line += count_lf(p, stop);
    field_data(cs, p, (size_t)(stop - p));
    if (quote == NULL)
        return end;
    cs->state = P_QUOTE;
    return quote + 1;
}

static const unsigned char *after_quote(csv_t *cs, const unsigned char *p)
{
    if (*p == '"') {
        field_data(cs, p, 1);
        cs->state = P_QUOTED;
        return p + 1;
    }
    cs->state = P_UNQUOTED;
    return p;
}

static void csv_chunk(csv_t *cs, const unsigned char *p, const unsigned char *end)
{
    while (p < end) {
        switch (cs->state) {
        case P_FIELD:
            p = field_start(cs, p, end);
            break;
        case P_UNQUOTED:
            p = scan_unquoted(cs, p, end);
            break;
        case P_QUOTED:
            p = scan_quoted(cs, p, end);
            break;
        case P_QUOTE:
            p = after_quote(cs, p);
            break;
        case P_CR:
            cs->state = P_FIELD;
            p += *p == '\n';
            break;
        }
    }
}

static void csv_finish(csv_t *cs)
{
    if (cs->state == P_QUOTED)
        snprintf(cs->problem, sizeof(cs->problem), "unterminated quoted field on line %lld",
                 (long long)cs->quote_line);
    else if (cs->record_started)
        record_end(cs);
}

/* --------------------------------------------------------------- sniffing ---- */

/* How many of the first records of p split into as many fields as the first one, or 0 when
 * the first has fewer than 2. Quotes are only toggled ("" toggles twice): close enough to
 * count fields. */
static size_t sniff_score(const unsigned char *p, size_t n, unsigned char delim)
{
    size_t fields = 1, header = 0, score = 0, records = 0;
    int quoted = 0, started = 0;
    for (size_t i = 0; i <= n && records < SNIFF_RECORDS; i++) {
        unsigned char b = i < n ? p[i] : '\n';
        if (b == '"')
            quoted = !quoted;
        if (quoted || (b != '\n' && b != '\r')) {
            fields += !quoted && b == delim;
            started = 1;
            continue;
        }
        if (!started)
            continue;
        if (records++ == 0)
            header = fields;
        score += fields == header;
        fields = 1;
        started = 0;
    }
    return header >= 2 ? score : 0;
}

static unsigned char sniff_delimiter(const unsigned char *p, size_t n)
{
    static const unsigned char candidates[] = {',', '\t', ';', '|'};
    unsigned char best = ',';
    size_t best_score = 0;
    for (size_t i = 0; i < sizeof(candidates); i++) {
        size_t score = sniff_score(p, n, candidates[i]);
        if (score > best_score) {
            best = candidates[i];
            best_score = score;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- reading ---- */

/* The first buffer also decides what the file is: its encoding and its delimiter. */
static void csv_first_chunk(csv_t *cs, const unsigned char *p, size_t n, char delimiter)
{
    if (n >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) || (p[0] == 0xFE && p[1] == 0xFF))) {
        snprintf(cs->problem, sizeof(cs->problem), "UTF-16 text is not supported: save the file as UTF-8");
        return;
    }
    if (memchr(p, '\0', n) != NULL) {
        snprintf(cs->problem, sizeof(cs->problem), "not a text file: it holds NUL bytes");
        return;
    }
    size_t bom = n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    int given = delimiter != '\0' && delimiter != '"' && delimiter != '\r' && delimiter != '\n';
    csv_set_delimiter(cs, given ? (unsigned char)delimiter : sniff_delimiter(p + bom, n - bom));
    csv_chunk(cs, p + bom, p + n);
}

/* 0 once the file is read to its end or known not to be CSV (cs->problem), -1 with err set
 * on a read error or when memory runs out. */
static int csv_read(csv_t *cs, int fd, char delimiter, unsigned char *buf, char *err, size_t errlen)
{
    int first = 1;
    while (cs->problem[0] == '\0' && !cs->oom) {
        ssize_t got = jobs_read_full(fd, buf, CSV_BUF_SIZE);
        if (got < 0) {
            jobs_set_err(err, errlen, "read failed: %s", strerror(errno));
            return -1;
        }
        size_t n = (size_t)got;
        if (first)
            csv_first_chunk(cs, buf, n, delimiter);
        else
            csv_chunk(cs, buf, buf + n);
        first = 0;
        if (n < CSV_BUF_SIZE && cs->problem[0] == '\0') {
            csv_finish(cs);
            break;
        }
    }
    if (cs->oom) {
        errno = ENOMEM;
        jobs_set_err(err, errlen, "out of memory");
    }
    return cs->oom ? -1 : 0;
}

/* ----------------------------------------------------------------- output ---- */

/* jansson refuses invalid UTF-8 (and the file's encoding is anybody's guess): every byte that
 * does not start a valid sequence becomes U+FFFD, as does NUL. */
static json_t *utf8_string(const char *s, size_t len)
{
    char *out = malloc(len * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s[i] != '\0' ? util_utf8_sequence((const unsigned char *)s + i, len - i) : 0;
        if (n == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
        }
    }
    json_t *str = json_stringn(out, o);
    free(out);
    return str;
}

static json_t *column_json(const csv_column_t *col, size_t index)
{
    char fallback[COLUMN_NAME_SIZE];
    json_t *name;
    if (col->name_len == 0) {
        snprintf(fallback, sizeof(fallback), "column_%zu", index + 1);
        name = json_string(fallback);
    } else {
        name = utf8_string(col->name, col->name_len);
    }
    return json_pack("{s:o, s:s, s:I}", "name", name, "type", TYPE_NAMES[col->type], "missing",
                     (json_int_t)col->missing);
}

static const char *format_name(unsigned char delim)
{
    return delim == '\t' ? "tsv" : "csv";
}

static json_t *csv_json(const csv_t *cs)
{
    if (cs->problem[0] != '\0')
        return json_pack("{s:s, s:s}", "format", format_name(cs->delim), "error", cs->problem);
    json_t *columns = json_array();
    for (size_t i = 0; columns != NULL && i < cs->ncols; i++)
        if (json_array_append_new(columns, column_json(&cs->cols[i], i)) != 0) {
            json_decref(columns);
            columns = NULL;
        }
    char delim[2] = {(char)cs->delim, '\0'};
    json_t *doc =
        json_pack("{s:s, s:s, s:I, s:I, s:o}", "format", format_name(cs->delim), "delimiter", delim, "rows",
                  (json_int_t)cs->rows, "ragged_rows", (json_int_t)cs->ragged, "columns", columns);
    if (doc != NULL && cs->header_fields > cs->ncols &&
        json_object_set_new(doc, "columns_omitted",
                            json_integer((json_int_t)(cs->header_fields - cs->ncols))) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

/* Takes doc (NULL when building it ran out of memory). */
static char *dump(json_t *doc, char *err, size_t errlen)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        errno = ENOMEM;
        jobs_set_err(err, errlen, "out of memory");
    }
    return text;
}

char *jobs_file_analyze_csv(int fd, char delimiter, char *err, size_t errlen)
{
    unsigned char *buf = malloc(CSV_BUF_SIZE);
    if (buf == NULL) {
        errno = ENOMEM;
        jobs_set_err(err, errlen, "out of memory");
        return NULL;
    }
    csv_t cs;
    csv_init(&cs);
    cs.delim = delimiter == '\t' ? '\t' : ',';
    char *text = NULL;
    if (csv_read(&cs, fd, delimiter, buf, err, errlen) == 0)
        text = dump(csv_json(&cs), err, errlen);
    csv_free(&cs);
    free(buf);
    return text;
}

/* --------------------------------------------------------------- dispatch ---- */

/* O_NONBLOCK so that a FIFO put in the file's place cannot hang the worker in open(). */
static int open_regular(const char *path, char *err, size_t errlen)
{
    if (path == NULL) {
        errno = EINVAL;
        jobs_set_err(err, errlen, "no file path");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT)
            jobs_set_err(err, errlen, "file not found");
        else
            jobs_set_err(err, errlen, "cannot open the file: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int why = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        errno = why;
        jobs_set_err(err, errlen, "not a regular file");
        return -1;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

char *jobs_file_analyze(const char *path, const char *name, const char *content_type, char *err,
                        size_t errlen)
{
    int fd = open_regular(path, err, errlen);
    if (fd < 0)
        return NULL;
    char *text;
    switch (jobs_file_kind(name, content_type)) {
    case JOBS_FILE_CSV:
        text = jobs_file_analyze_csv(fd, 0, err, errlen);
        break;
    case JOBS_FILE_TSV:
        text = jobs_file_analyze_csv(fd, '\t', err, errlen);
        break;
    case JOBS_FILE_NOTEBOOK:
        text = jobs_file_analyze_notebook(fd, err, errlen);
        break;
    default:
        text = dump(json_pack("{s:s}", "format", "binary"), err, errlen);
        break;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return text;
}
