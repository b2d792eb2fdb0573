/*
 * Streaming multipart/form-data (RFC 7578, RFC 2046), for uploads that do not fit in memory.
 *
 * Content is matched against the delimiter CRLF "--" boundary one byte at a time. A partial
 * match is not copied anywhere: the bytes matched so far are, by definition, the
 * delimiter's own first bytes, so when the match fails they are handed out from the
 * parser's copy of the delimiter. That is what lets a delimiter straddle chunks at any
 * byte with no carry-over buffer. Since a boundary cannot contain CR, CR occurs in the
 * delimiter only at its first byte, so after a mismatch no shorter match can be pending and
 * the mismatching byte is simply examined again as a possible start.
 */
#include "http/http.h"

#include <stdlib.h>
#include <string.h>

typedef enum {
    HTTP_MP_PREAMBLE,
    HTTP_MP_DELIM_AFTER, /* the delimiter matched: "--", padding or CRLF must follow */
    HTTP_MP_DELIM_DASH,  /* one '-' of a close delimiter */
    HTTP_MP_DELIM_PAD,   /* transport padding (LWSP) before the CRLF */
    HTTP_MP_DELIM_CR,
    HTTP_MP_HEADERS,
    HTTP_MP_BODY,
    HTTP_MP_EPILOGUE,
} http_mp_state_t;

struct http_multipart {
    http_multipart_callbacks_t cb;
    void *user;
    http_multipart_limits_t limits;
    http_mp_state_t state;
    http_multipart_status_t status;
    char delim[4 + HTTP_MULTIPART_BOUNDARY_MAX]; /* CRLF "--" boundary */
    size_t dlen;
    size_t matched; /* bytes of delim matched so far */
    /* The first `phantom` matched bytes were never in the body: the CRLF before a
     * dash-boundary at the very start of the body, or the header block's last CRLF, which
     * RFC 2046 lets double as the delimiter's CRLF of an empty part. They are not content. */
    size_t phantom;
    size_t preamble;
    int seen_delimiter;
    int in_part;
    int nparts;
    size_t hlen;
    char *hbuf; /* max_header_bytes: the raw header block of the current part */
    size_t olen, ocap;
    char *out; /* the decoded strings handed to part_begin, NUL-terminated */
    char storage[];
};

typedef struct {
    const char *s, *end;
} http_mp_cursor_t;

typedef struct {
    const char *name, *value; /* value: the token, or the inside of the quotes, escapes kept */
    size_t name_len, value_len;
    int quoted;
} http_mp_param_t;

/* --------------------------------------------------------------- characters ---- */

static int http_mp_is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int http_mp_is_tchar(unsigned char c)
{
    return http_mp_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int http_mp_is_bchar(unsigned char c)
{
    return http_mp_is_alnum(c) || (c != '\0' && strchr("'()+_,-./:=? ", c) != NULL);
}

/* RFC 5987 attr-char: what filename* may carry without percent-encoding. */
static int http_mp_is_attr_char(unsigned char c)
{
    return http_mp_is_alnum(c) || (c != '\0' && strchr("!#$&+-.^_`|~", c) != NULL);
}

/* RFC 7230 field-value bytes: no control characters but HTAB. */
static int http_mp_is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int http_mp_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int http_mp_equal_ci(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x - 'A' + 'a');
        if (x != y)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------- header value syntax ---- */

static void http_mp_skip_ows(http_mp_cursor_t *c)
{
    while (c->s < c->end && http_mp_is_ows((unsigned char)*c->s))
        c->s++;
}

static size_t http_mp_token(http_mp_cursor_t *c)
{
    const char *start = c->s;
    while (c->s < c->end && http_mp_is_tchar((unsigned char)*c->s))
        c->s++;
    return (size_t)(c->s - start);
}

/* The inside of a quoted-string, the opening quote already consumed. Header lines were
 * checked for control characters before, so only the structure is left to check. */
static int http_mp_quoted(http_mp_cursor_t *c, http_mp_param_t *param)
{
    param->value = c->s;
    while (c->s < c->end && *c->s != '"') {
        if (*c->s == '\\' && ++c->s == c->end)
            return -1;
        c->s++;
    }
    if (c->s == c->end)
        return -1;
    param->value_len = (size_t)(c->s - param->value);
    param->quoted = 1;
    c->s++;
    return 0;
}

/* One `; name=value` (RFC 7231 parameter, with OWS around '=' as RFC 6266 allows).
 * Returns 1 with a parameter, 0 at the end of the value, -1 when malformed. */
static int http_mp_next_param(http_mp_cursor_t *c, http_mp_param_t *param)
{
    http_mp_skip_ows(c);
    if (c->s == c->end)
        return 0;
    if (*c->s++ != ';')
        return -1;
    http_mp_skip_ows(c);
    param->name = c->s;
    if ((param->name_len = http_mp_token(c)) == 0)
        return -1;
    http_mp_skip_ows(c);
    if (c->s == c->end || *c->s++ != '=')
        return -1;
    http_mp_skip_ows(c);
    if (c->s < c->end && *c->s == '"') {
        c->s++;
        return http_mp_quoted(c, param) == 0 ? 1 : -1;
    }
    param->value = c->s;
    param->quoted = 0;
    return (param->value_len = http_mp_token(c)) > 0 ? 1 : -1;
}

/* Writes a parameter's value without quotes and escapes, at most cap bytes. */
static int http_mp_unquote(const http_mp_param_t *param, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < param->value_len; i++) {
        if (param->quoted && param->value[i] == '\\')
            i++;
        if (n == cap)
            return -1;
        out[n++] = param->value[i];
    }
    *len = n;
    return 0;
}

/* ------------------------------------------------------ boundary extraction ---- */

static int http_mp_boundary_ok(const char *b, size_t len)
{
    if (len == 0 || len > HTTP_MULTIPART_BOUNDARY_MAX || b[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!http_mp_is_bchar((unsigned char)b[i]))
            return 0;
    return 1;
}

static int http_mp_is_form_data_type(http_mp_cursor_t *c)
{
    http_mp_skip_ows(c);
    const char *type = c->s;
    size_t type_len = http_mp_token(c);
    if (c->s == c->end || *c->s++ != '/')
        return 0;
    const char *subtype = c->s;
    size_t subtype_len = http_mp_token(c);
    return http_mp_equal_ci(type, type_len, "multipart") &&
           http_mp_equal_ci(subtype, subtype_len, "form-data");
}

int http_multipart_boundary(const char *content_type, size_t len, char *out, size_t outlen)
{
    http_mp_cursor_t c = {content_type, content_type + len};
    if (!http_mp_is_form_data_type(&c))
        return -1;
    http_mp_param_t param, boundary = {0};
    int found = 0, more;
    while ((more = http_mp_next_param(&c, &param)) == 1) {
        if (!http_mp_equal_ci(param.name, param.name_len, "boundary"))
            continue;
        if (found++)
            return -1; /* two boundaries: which one the sender meant is a guess */
        boundary = param;
    }
    size_t n;
    if (more < 0 || !found || outlen == 0 || http_mp_unquote(&boundary, out, outlen - 1, &n) != 0)
        return -1;
    out[n] = '\0';
    return http_mp_boundary_ok(out, n) ? (int)n : -1;
}

/* ---------------------------------------------------------- part headers ---- */

/* A header field or a decoded parameter, and whether the part had it at all. */
typedef struct {
    const char *value;
    size_t len;
    int seen;
} http_mp_field_t;

typedef struct {
    http_mp_field_t disposition, content_type;
} http_mp_fields_t;

/* Reserves room for a decoded string of at most max bytes and its NUL. The output area is
 * as large as the header block plus one NUL per string, and no decoded string is longer
 * than its source in the block, so this only fails if that reasoning is broken. */
static char *http_mp_reserve(http_multipart_t *p, size_t max)
{
    return p->ocap - p->olen > max ? p->out + p->olen : NULL;
}

static const char *http_mp_commit(http_multipart_t *p, size_t n, size_t *len)
{
    char *s = p->out + p->olen;
    s[n] = '\0';
    p->olen += n + 1;
    *len = n;
    return s;
}

static http_multipart_status_t http_mp_store_plain(http_multipart_t *p, const http_mp_param_t *param,
                                                   const char **dst, size_t *len)
{
    char *out = http_mp_reserve(p, param->value_len);
    size_t n;
    if (out == NULL || http_mp_unquote(param, out, param->value_len, &n) != 0)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    *dst = http_mp_commit(p, n, len);
    return HTTP_MULTIPART_OK;
}

/* RFC 5987 ext-value: charset "'" [language] "'" percent-encoded bytes. Only UTF-8 is
 * taken: ISO-8859-1 names would need converting, and no client in use sends them. */
static http_multipart_status_t http_mp_store_ext(http_multipart_t *p, const http_mp_param_t *param,
                                                 const char **dst, size_t *len)
{
    const char *s = param->value, *end = s + param->value_len;
    const char *quote = param->quoted ? NULL : memchr(s, '\'', param->value_len);
    if (quote == NULL || !http_mp_equal_ci(s, (size_t)(quote - s), "utf-8"))
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    for (s = quote + 1; s < end && (http_mp_is_alnum((unsigned char)*s) || *s == '-'); s++)
        ;
    if (s == end || *s++ != '\'')
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    char *out = http_mp_reserve(p, (size_t)(end - s));
    if (out == NULL)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    size_t n = 0;
    for (; s < end; s++) {
        if (*s != '%') {
            if (!http_mp_is_attr_char((unsigned char)*s))
                return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
            out[n++] = *s;
            continue;
        }
        int hi = end - s > 2 ? util_hex_value((unsigned char)s[1]) : -1;
        int lo = hi >= 0 ? util_hex_value((unsigned char)s[2]) : -1;
        if (lo < 0)
            return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
        if (hi == 0 && lo == 0)
            return HTTP_MULTIPART_ERR_NUL_IN_NAME;
        out[n++] = (char)(hi << 4 | lo);
        s += 2;
    }
    *dst = http_mp_commit(p, n, len);
    return HTTP_MULTIPART_OK;
}

/* Decodes one Content-Disposition parameter we care about into its slot; a repeated one
 * is malformed, since picking either copy would let two readers of the body disagree. */
static http_multipart_status_t http_mp_disposition_param(http_multipart_t *p, const http_mp_param_t *param,
                                                         http_mp_field_t *name, http_mp_field_t *filename,
                                                         http_mp_field_t *filename_ext)
{
    http_mp_field_t *slot = NULL;
    if (http_mp_equal_ci(param->name, param->name_len, "name"))
        slot = name;
    else if (http_mp_equal_ci(param->name, param->name_len, "filename"))
        slot = filename;
    else if (http_mp_equal_ci(param->name, param->name_len, "filename*"))
        slot = filename_ext;
    if (slot == NULL)
        return HTTP_MULTIPART_OK;
    if (slot->seen++)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    if (slot == filename_ext)
        return http_mp_store_ext(p, param, &slot->value, &slot->len);
    return http_mp_store_plain(p, param, &slot->value, &slot->len);
}

static http_multipart_status_t http_mp_disposition(http_multipart_t *p, const http_mp_field_t *field,
                                                   http_multipart_part_t *part)
{
    if (!field->seen)
        return HTTP_MULTIPART_ERR_NOT_FORM_DATA;
    http_mp_cursor_t c = {field->value, field->value + field->len};
    const char *type = c.s;
    size_t type_len = http_mp_token(&c);
    if (!http_mp_equal_ci(type, type_len, "form-data"))
        return HTTP_MULTIPART_ERR_NOT_FORM_DATA;
    http_mp_field_t name = {0}, filename = {0}, filename_ext = {0};
    http_mp_param_t param;
    int more;
    while ((more = http_mp_next_param(&c, &param)) == 1) {
        http_multipart_status_t st = http_mp_disposition_param(p, &param, &name, &filename, &filename_ext);
        if (st != HTTP_MULTIPART_OK)
            return st;
    }
    if (more < 0)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    if (name.len == 0)
        return HTTP_MULTIPART_ERR_NO_NAME;
    const http_mp_field_t *chosen = filename_ext.seen ? &filename_ext : &filename;
    part->name = name.value;
    part->name_len = name.len;
    part->filename = chosen->seen ? chosen->value : NULL;
    part->filename_len = chosen->len;
    return HTTP_MULTIPART_OK;
}

/* "Name: value" with no space before the colon (RFC 7230) and no folding. */
static http_multipart_status_t http_mp_header_line(const char *line, size_t len, http_mp_fields_t *fields)
{
    http_mp_cursor_t c = {line, line + len};
    size_t name_len = http_mp_token(&c);
    if (name_len == 0 || c.s == c.end || *c.s++ != ':')
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    for (const char *q = c.s; q < c.end; q++)
        if (!http_mp_is_field_char((unsigned char)*q))
            return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    http_mp_skip_ows(&c);
    while (c.end > c.s && http_mp_is_ows((unsigned char)c.end[-1]))
        c.end--;
    http_mp_field_t *field = NULL;
    if (http_mp_equal_ci(line, name_len, "content-disposition"))
        field = &fields->disposition;
    else if (http_mp_equal_ci(line, name_len, "content-type"))
        field = &fields->content_type;
    if (field == NULL)
        return HTTP_MULTIPART_OK;
    if (field->seen++)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    field->value = c.s;
    field->len = (size_t)(c.end - c.s);
    return HTTP_MULTIPART_OK;
}

/* The block holds CRLF-terminated lines and the blank line: the feeder let no bare CR or
 * LF in, so every CR found here is followed by LF. */
static http_multipart_status_t http_mp_parse_headers(http_multipart_t *p, http_multipart_part_t *part)
{
    http_mp_fields_t fields = {{0}, {0}};
    const char *s = p->hbuf, *end = p->hbuf + p->hlen - 2;
    while (s < end) {
        const char *cr = memchr(s, '\r', (size_t)(end - s));
        http_multipart_status_t st = http_mp_header_line(s, (size_t)(cr - s), &fields);
        if (st != HTTP_MULTIPART_OK)
            return st;
        s = cr + 2;
    }
    p->olen = 0;
    http_multipart_status_t st = http_mp_disposition(p, &fields.disposition, part);
    if (st != HTTP_MULTIPART_OK || !fields.content_type.seen)
        return st;
    char *out = http_mp_reserve(p, fields.content_type.len);
    if (out == NULL)
        return HTTP_MULTIPART_ERR_HEADER_MALFORMED;
    memcpy(out, fields.content_type.value, fields.content_type.len);
    part->content_type = http_mp_commit(p, fields.content_type.len, &part->content_type_len);
    return HTTP_MULTIPART_OK;
}

/* ------------------------------------------------------------- the feeder ---- */

static void http_mp_fail(http_multipart_t *p, http_multipart_status_t status)
{
    if (p->status == HTTP_MULTIPART_OK)
        p->status = status;
}

static void http_mp_content(http_multipart_t *p, const char *data, size_t len)
{
    if (len == 0)
        return;
    if (p->state == HTTP_MP_PREAMBLE) {
        p->preamble += len;
        if (p->limits.max_preamble != 0 && p->preamble > p->limits.max_preamble)
            http_mp_fail(p, HTTP_MULTIPART_ERR_NO_DELIMITER);
        return;
    }
    if (p->cb.part_data != NULL && p->cb.part_data(p->user, data, len) != 0)
        http_mp_fail(p, HTTP_MULTIPART_ERR_ABORTED);
}

/* A partial match turned out to be content. */
static void http_mp_release_match(http_multipart_t *p)
{
    size_t phantom = p->phantom;
    size_t matched = p->matched;
    p->matched = p->phantom = 0;
    if (matched > phantom)
        http_mp_content(p, p->delim + phantom, matched - phantom);
}

static const char *http_mp_scan_content(http_multipart_t *p, const char *pos, const char *end)
{
    while (pos < end && p->status == HTTP_MULTIPART_OK) {
        if (p->matched == 0) {
            /* The common case: everything up to the next CR is content, from the caller's
             * chunk, in one call. */
            const char *cr = memchr(pos, '\r', (size_t)(end - pos));
            http_mp_content(p, pos, (size_t)((cr != NULL ? cr : end) - pos));
            if (cr == NULL)
                return end;
            p->matched = 1;
            pos = cr + 1;
        } else if (*pos == p->delim[p->matched]) {
            pos++;
            if (++p->matched == p->dlen) {
                p->matched = p->phantom = 0;
                p->seen_delimiter = 1;
                p->state = HTTP_MP_DELIM_AFTER;
                return pos;
            }
        } else {
            http_mp_release_match(p);
        }
    }
    return pos;
}

static void http_mp_end_part(http_multipart_t *p)
{
    if (!p->in_part)
        return;
    p->in_part = 0;
    if (p->cb.part_end != NULL && p->cb.part_end(p->user) != 0)
        http_mp_fail(p, HTTP_MULTIPART_ERR_ABORTED);
}

static void http_mp_next_part(http_multipart_t *p)
{
    http_mp_end_part(p);
    if (p->nparts == p->limits.max_parts) {
        http_mp_fail(p, HTTP_MULTIPART_ERR_TOO_MANY_PARTS);
        return;
    }
    p->state = HTTP_MP_HEADERS;
    p->hlen = 0;
}

static void http_mp_begin_part(http_multipart_t *p)
{
    http_multipart_part_t part = {.index = p->nparts};
    http_multipart_status_t st = http_mp_parse_headers(p, &part);
    if (st != HTTP_MULTIPART_OK) {
        http_mp_fail(p, st);
        return;
    }
    p->nparts++;
    p->in_part = 1;
    p->state = HTTP_MP_BODY;
    p->matched = p->phantom = 2;
    if (p->cb.part_begin != NULL && p->cb.part_begin(p->user, &part) != 0)
        http_mp_fail(p, HTTP_MULTIPART_ERR_ABORTED);
}

/* The rest of a delimiter line: "--" (close), or transport padding and CRLF. */
static void http_mp_delimiter_line(http_multipart_t *p, char c)
{
    int pad = c == ' ' || c == '\t';
    switch (p->state) {
    case HTTP_MP_DELIM_AFTER:
        if (c == '-')
            p->state = HTTP_MP_DELIM_DASH;
        else if (c == '\r')
            p->state = HTTP_MP_DELIM_CR;
        else if (pad)
            p->state = HTTP_MP_DELIM_PAD;
        else
            http_mp_fail(p, HTTP_MULTIPART_ERR_BOUNDARY_LINE);
        return;
    case HTTP_MP_DELIM_DASH:
        if (c != '-') {
            http_mp_fail(p, HTTP_MULTIPART_ERR_BOUNDARY_LINE);
            return;
        }
        http_mp_end_part(p);
        p->state = HTTP_MP_EPILOGUE;
        return;
    case HTTP_MP_DELIM_PAD:
        if (c == '\r')
            p->state = HTTP_MP_DELIM_CR;
        else if (!pad)
            http_mp_fail(p, HTTP_MULTIPART_ERR_BOUNDARY_LINE);
        return;
    default:
        if (c == '\n')
            http_mp_next_part(p);
        else
            http_mp_fail(p, HTTP_MULTIPART_ERR_BOUNDARY_LINE);
        return;
    }
}

/* Collects the header block up to its blank line; CR must be followed by LF and LF
 * preceded by CR, so a block with bare line ends fails here rather than running into the
 * size limit. */
static const char *http_mp_scan_headers(http_multipart_t *p, const char *pos, const char *end)
{
    while (pos < end) {
        char c = *pos++;
        int after_cr = p->hlen > 0 && p->hbuf[p->hlen - 1] == '\r';
        if (p->hlen == p->limits.max_header_bytes) {
            http_mp_fail(p, HTTP_MULTIPART_ERR_HEADER_TOO_LONG);
            return pos;
        }
        if ((c == '\n') != after_cr) {
            http_mp_fail(p, HTTP_MULTIPART_ERR_HEADER_MALFORMED);
            return pos;
        }
        p->hbuf[p->hlen++] = c;
        if (c == '\n' && (p->hlen == 2 || (p->hlen >= 4 && p->hbuf[p->hlen - 3] == '\n'))) {
            http_mp_begin_part(p);
            return pos;
        }
    }
    return pos;
}

http_multipart_status_t http_multipart_feed(http_multipart_t *p, const char *data, size_t len)
{
    const char *pos = data, *end = data + len;
    while (p->status == HTTP_MULTIPART_OK && pos < end) {
        switch (p->state) {
        case HTTP_MP_PREAMBLE:
        case HTTP_MP_BODY:
            pos = http_mp_scan_content(p, pos, end);
            break;
        case HTTP_MP_HEADERS:
            pos = http_mp_scan_headers(p, pos, end);
            break;
        case HTTP_MP_EPILOGUE:
            pos = end;
            break;
        default:
            http_mp_delimiter_line(p, *pos++);
            break;
        }
    }
    return p->status;
}

http_multipart_status_t http_multipart_finish(http_multipart_t *p)
{
    if (p->state != HTTP_MP_EPILOGUE)
        http_mp_fail(p, p->seen_delimiter ? HTTP_MULTIPART_ERR_TRUNCATED : HTTP_MULTIPART_ERR_NO_DELIMITER);
    return p->status;
}

/* --------------------------------------------------------------- lifetime ---- */

http_multipart_t *http_multipart_new(const char *boundary, size_t len, const http_multipart_limits_t *limits,
                                     const http_multipart_callbacks_t *callbacks, void *user)
{
    if (!http_mp_boundary_ok(boundary, len) || limits->max_parts < 1 || limits->max_header_bytes < 1 ||
        limits->max_header_bytes > HTTP_MULTIPART_HEADER_MAX_CAP)
        return NULL;
    /* Decoded strings: name, filename, filename*, content type, each with a NUL. */
    size_t ocap = limits->max_header_bytes + 4;
    http_multipart_t *p = calloc(1, sizeof(*p) + limits->max_header_bytes + ocap);
    if (p == NULL)
        return NULL;
    if (callbacks != NULL)
        p->cb = *callbacks;
    p->user = user;
    p->limits = *limits;
    memcpy(p->delim, "\r\n--", 4);
    memcpy(p->delim + 4, boundary, len);
    p->dlen = len + 4;
    /* The body may open with the dash-boundary itself, as if after a CRLF. */
    p->matched = p->phantom = 2;
    p->hbuf = p->storage;
    p->out = p->storage + limits->max_header_bytes;
    p->ocap = ocap;
    return p;
}

void http_multipart_free(http_multipart_t *p)
{
    free(p);
}

const char *http_multipart_status_name(http_multipart_status_t status)
{
    switch (status) {
    case HTTP_MULTIPART_OK:
        return "ok";
    case HTTP_MULTIPART_ERR_NO_DELIMITER:
        return "no_delimiter";
    case HTTP_MULTIPART_ERR_BOUNDARY_LINE:
        return "bad_boundary_line";
    case HTTP_MULTIPART_ERR_HEADER_TOO_LONG:
        return "header_too_long";
    case HTTP_MULTIPART_ERR_HEADER_MALFORMED:
        return "malformed_header";
    case HTTP_MULTIPART_ERR_NOT_FORM_DATA:
        return "not_form_data";
    case HTTP_MULTIPART_ERR_NO_NAME:
        return "missing_name";
    case HTTP_MULTIPART_ERR_NUL_IN_NAME:
        return "nul_in_name";
    case HTTP_MULTIPART_ERR_TOO_MANY_PARTS:
        return "too_many_parts";
    case HTTP_MULTIPART_ERR_TRUNCATED:
        return "truncated";
    case HTTP_MULTIPART_ERR_ABORTED:
        return "aborted";
    }
    return "unknown";
}
