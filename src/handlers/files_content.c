/*
 * GET /api/v1/files/{id}/content: the stored bytes, streamed from disk off the loop
 * (http_respond_file). The ETag is the content's SHA-256, so If-None-Match needs no disk
 * access; one byte range (RFC 9110) gives 206, several are answered whole (allowed, and rare);
 * Content-Disposition carries the name both as a plain ASCII fallback and as RFC 8187
 * UTF-8 (RFC 6266 filename*), never letting the name break out of the header.
 */
#include "handlers/handlers.h"

#include "files/files.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Starts with the file reference (handlers_file_lookup). fd belongs to the state only between
 * files_content_open and files_content_opened, which always runs. */
typedef struct {
    handlers_file_ref_t ref;
    char content_type[256];
    char sha256[65];
    uint64_t size, offset, len;
    int status; /* 200 or 206 */
    int fd;
    int open_errno;
} files_content_t;

/* ------------------------------------------------------------ headers (pure) ---- */

/* Does an If-None-Match value name this ETag (or "*")? Weak tags compare equal too. */
int handlers_etag_matches(const char *header, size_t len, const char *etag)
{
    size_t elen = strlen(etag);
    for (size_t i = 0; i < len;) {
        while (i < len && (header[i] == ' ' || header[i] == '\t' || header[i] == ','))
            i++;
        size_t start = i;
        while (i < len && header[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (header[end - 1] == ' ' || header[end - 1] == '\t'))
            end--;
        const char *tag = header + start;
        size_t tlen = end - start;
        if (tlen == 1 && tag[0] == '*')
            return 1;
        if (tlen > 2 && tag[0] == 'W' && tag[1] == '/') {
            tag += 2;
            tlen -= 2;
        }
        if (tlen == elen && memcmp(tag, etag, elen) == 0)
            return 1;
    }
    return 0;
}

static int handlers_range_number(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* One "bytes=first-last", "bytes=first-" or "bytes=-suffix" against a size. Returns 1 with
 * offset and len for a satisfiable range, 0 to ignore the header (malformed, or several
 * ranges: the whole content is sent), -1 when unsatisfiable (416). */
int handlers_parse_range(const char *header, size_t len, uint64_t size, uint64_t *offset, uint64_t *count)
{
    if (len < 7 || strncmp(header, "bytes=", 6) != 0 || memchr(header, ',', len) != NULL)
        return 0;
    const char *spec = header + 6;
    size_t slen = len - 6;
    const char *dash = memchr(spec, '-', slen);
    if (dash == NULL)
        return 0;
    size_t flen = (size_t)(dash - spec), llen = slen - flen - 1;
    uint64_t first = 0, last = 0;
    if (flen == 0) { /* the last `suffix` bytes */
        if (handlers_range_number(dash + 1, llen, &last) != 0)
            return 0;
        if (last == 0 || size == 0)
            return -1;
        *count = last < size ? last : size;
        *offset = size - *count;
        return 1;
    }
    if (handlers_range_number(spec, flen, &first) != 0 ||
        (llen > 0 && handlers_range_number(dash + 1, llen, &last) != 0))
        return 0;
    if (llen > 0 && last < first)
        return 0;
    if (first >= size)
        return -1;
    if (llen == 0 || last >= size)
        last = size - 1;
    *offset = first;
    *count = last - first + 1;
    return 1;
}

/* attachment; filename="<ASCII, with anything else as '_'>"; filename*=UTF-8''<percent-encoded> */
int handlers_content_disposition(const char *name, char *out, size_t outlen)
{
    size_t o = 0, n = strlen(name);
    int w = snprintf(out, outlen, "attachment; filename=\"");
    if (w < 0 || (size_t)w >= outlen)
        return -1;
    o = (size_t)w;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)name[i];
        out[o++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' ? (char)c : '_';
    }
    w = snprintf(out + o, outlen - o, "\"; filename*=UTF-8''");
    if (w < 0 || o + (size_t)w >= outlen)
        return -1;
    o += (size_t)w;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        /* RFC 8187 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~" */
        int plain = isalnum(c) || (c != 0 && strchr("!#$&+-.^_`|~", c) != NULL);
        if (o + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            util_hex_encode(&c, 1, out + o, UTIL_HEX_UPPER); /* and a NUL: room checked above */
            o += 2;
        }
    }
    out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------ the route ---- */

static void files_content_open(void *arg)
{
    files_content_t *c = arg;
    char path[PATH_MAX];
    struct stat st;
    c->fd = -1;
    if (files_path(c->ref.dir, c->ref.id, path, sizeof(path)) != 0) {
        c->open_errno = ENOENT;
        return;
    }
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0 || fstat(c->fd, &st) != 0 || (uint64_t)st.st_size != c->size) {
        c->open_errno = c->fd < 0 ? errno : EIO; /* missing, or not the bytes the row describes */
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
    }
}

static void files_content_opened(http_request_t *r, void *arg)
{
    files_content_t *c = arg;
    if (c->fd < 0) {
        if (c->open_errno == ENOENT)
            http_respond_error(r, 404, "not_found", "the file's bytes are gone", NULL);
        else
            http_respond_error(r, 500, "internal", "the file cannot be read", NULL);
        return;
    }
    int fd = c->fd;
    c->fd = -1;
    http_respond_file(r, c->status, c->content_type, fd, c->offset, c->len);
}

/* Headers that depend only on the row; then 304, 416, or the bytes (opened on the pool). */
static void files_content_found(http_request_t *r, const db_reply_t *reply)
{
    if (http_pg_failed(r, reply))
        return;
    PGresult *res = reply->results[0];
    if (PQntuples(res) != 1) {
        http_respond_error(r, 404, "not_found", "no such file", NULL);
        return;
    }
    files_content_t *c = r->state;
    snprintf(c->content_type, sizeof(c->content_type), "%s",
             PQgetvalue(res, 0, DB_COL_FILE_GET_CONTENT_TYPE));
    c->size = strtoull(PQgetvalue(res, 0, DB_COL_FILE_GET_SIZE), NULL, 10);
    snprintf(c->sha256, sizeof(c->sha256), "%s", PQgetvalue(res, 0, DB_COL_FILE_GET_SHA256));
    char etag[70], disposition[1200];
    snprintf(etag, sizeof(etag), "\"%s\"", c->sha256);
    http_add_header(r, "ETag", etag);
    http_add_header(r, "Accept-Ranges", "bytes");
    /* A user's bytes: never in a shared cache, and a client's own copy is checked by ETag each
     * time, so a deleted file or lost access shows (nosniff and the CSP: request.c, for all). */
    http_add_header(r, "Cache-Control", "private, no-cache");
    size_t len = 0;
    const char *inm = http_header(r, "if-none-match", &len);
    if (inm != NULL && handlers_etag_matches(inm, len, etag)) {
        http_respond_empty(r, 304);
        return;
    }
    if (handlers_content_disposition(PQgetvalue(res, 0, DB_COL_FILE_GET_NAME), disposition,
                                     sizeof(disposition)) == 0)
        http_add_header(r, "Content-Disposition", disposition);
    c->status = 200;
    c->offset = 0;
    c->len = c->size;
    const char *range = http_header(r, "range", &len);
    int ranged = range != NULL ? handlers_parse_range(range, len, c->size, &c->offset, &c->len) : 0;
    char content_range[80];
    if (ranged < 0) {
        snprintf(content_range, sizeof(content_range), "bytes */%" PRIu64, c->size);
        http_add_header(r, "Content-Range", content_range);
        http_respond_error(r, 416, "bad_request", "the range is outside the file", NULL);
        return;
    }
    if (ranged > 0) {
        c->status = 206;
        snprintf(content_range, sizeof(content_range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, c->offset,
                 c->offset + c->len - 1, c->size);
        http_add_header(r, "Content-Range", content_range);
    }
    if (http_cpu(r, files_content_open, files_content_opened, c) != 0)
        http_respond_error(r, 503, "unavailable", "the server is busy; try again", NULL);
}

static void files_content_ok(http_request_t *r, handlers_user_t *user)
{
    handlers_file_lookup(r, user, sizeof(files_content_t), free, DB_STMT_FILE_GET, files_content_found);
}

void handlers_files_content(http_request_t *r)
{
    handlers_authenticate_or_key(r, files_content_ok);
}
