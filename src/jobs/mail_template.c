/*
 * Email templates: loading the .txt/.html pair of a kind from disk and substituting {{name}}
 * placeholders. Rendering runs in two passes over the template (measure, then write) so the
 * result is allocated once at its exact size.
 */
#include "jobs/jobs_internal.h"
#include "jobs/mail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIND_MAX_LEN 64

#define set_err jobs_set_err

/* ---------------------------------------------------------------- loading ---- */

/* The kind becomes part of a path, so only a plain file-name alphabet is accepted. */
static int kind_valid(const char *kind)
{
    size_t len = kind != NULL ? strlen(kind) : 0;
    if (len == 0 || len > KIND_MAX_LEN || kind[0] == '.' || strstr(kind, "..") != NULL)
        return 0;
    for (const char *p = kind; *p != '\0'; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '.' || *p == '_' || *p == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* O_NONBLOCK keeps a FIFO planted at the path from blocking the worker in open(). */
static int open_regular(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int check_content(const char *path, const char *buf, size_t len, char *err, size_t errlen)
{
    if (len > JOBS_MAIL_TEMPLATE_MAX) {
        set_err(err, errlen, "%s: larger than %d bytes", path, JOBS_MAIL_TEMPLATE_MAX);
        return -1;
    }
    if (memchr(buf, '\0', len) != NULL) {
        set_err(err, errlen, "%s: contains a NUL byte", path);
        return -1;
    }
    /* The message declares charset=utf-8, so a template saved in another encoding is caught
     * here rather than reaching recipients as mojibake. */
    if (util_utf8_length(buf, len) < 0) {
        set_err(err, errlen, "%s: not valid UTF-8", path);
        return -1;
    }
    return 0;
}

/* Returns the whole file as a malloc'd string, or NULL with a message. */
static char *read_template_file(const char *path, char *err, size_t errlen)
{
    int fd = open_regular(path, err, errlen);
    if (fd < 0)
        return NULL;
    char *buf = malloc(JOBS_MAIL_TEMPLATE_MAX + 2);
    ssize_t n = buf != NULL ? jobs_read_full(fd, buf, JOBS_MAIL_TEMPLATE_MAX + 1) : -1;
    int saved = errno;
    close(fd);
    if (n < 0) {
        set_err(err, errlen, "%s: %s", path, buf != NULL ? strerror(saved) : "out of memory");
        free(buf);
        return NULL;
    }
    if (check_content(path, buf, (size_t)n, err, errlen) != 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Length of the line at s without its terminator (LF or CRLF), and where the next line starts
 * (NULL when s has no LF). */
static size_t line_at(const char *s, const char **next)
{
    const char *lf = strchr(s, '\n');
    *next = lf != NULL ? lf + 1 : NULL;
    size_t len = lf != NULL ? (size_t)(lf - s) : strlen(s);
    if (len > 0 && s[len - 1] == '\r')
        len--;
    return len;
}

static char *dup_trimmed(const char *s, size_t len)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return strndup(s, len);
}

/* Caught at load time so a bad template fails with its path rather than at compose time. */
static int has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Splits "Subject: ...\n\nbody" into t->subject and t->text. */
static int parse_text_file(jobs_mail_template_t *t, const char *path, const char *buf, char *err,
                           size_t errlen)
{
    static const char prefix[] = "Subject:";
    const char *blank, *body;
    size_t len = line_at(buf, &blank);
    if (strncmp(buf, prefix, sizeof(prefix) - 1) != 0 || blank == NULL) {
        set_err(err, errlen, "%s: must start with a \"Subject: ...\" line", path);
        return -1;
    }
    if (line_at(blank, &body) != 0 || body == NULL) {
        set_err(err, errlen, "%s: the Subject line must be followed by an empty line", path);
        return -1;
    }
    t->subject = dup_trimmed(buf + sizeof(prefix) - 1, len - (sizeof(prefix) - 1));
    t->text = strdup(body);
    if (t->subject == NULL || t->text == NULL) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if (t->subject[0] == '\0' || t->text[0] == '\0') {
        set_err(err, errlen, "%s: empty %s", path, t->subject[0] == '\0' ? "subject" : "body");
        return -1;
    }
    if (has_control(t->subject)) {
        set_err(err, errlen, "%s: control character in the subject", path);
        return -1;
    }
    return 0;
}

static int load_pair(jobs_mail_template_t *t, const char *dir, const char *kind, char *err, size_t errlen)
{
    char path[4096];
    /* The .html path is the longer of the two, so checking it covers both. */
    if (snprintf(path, sizeof(path), "%s/%s.html", dir, kind) >= (int)sizeof(path)) {
        set_err(err, errlen, "template directory path too long");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s.txt", dir, kind);
    char *text = read_template_file(path, err, errlen);
    if (text == NULL)
        return -1;
    int rc = parse_text_file(t, path, text, err, errlen);
    free(text);
    if (rc != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/%s.html", dir, kind);
    t->html = read_template_file(path, err, errlen);
    if (t->html == NULL)
        return -1;
    if (t->html[0] == '\0') {
        set_err(err, errlen, "%s: empty", path);
        return -1;
    }
    return 0;
}

int jobs_mail_template_load(jobs_mail_template_t *t, const char *dir, const char *kind, char *err,
                            size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (dir == NULL || dir[0] == '\0') {
        set_err(err, errlen, "no template directory");
        return -1;
    }
    if (!kind_valid(kind)) {
        set_err(err, errlen, "invalid template kind \"%.*s\"", KIND_MAX_LEN, kind != NULL ? kind : "");
        return -1;
    }
    if (load_pair(t, dir, kind, err, errlen) != 0) {
        jobs_mail_template_free(t);
        return -1;
    }
    return 0;
}

void jobs_mail_template_free(jobs_mail_template_t *t)
{
    if (t == NULL)
        return;
    free(t->subject);
    free(t->text);
    free(t->html);
    memset(t, 0, sizeof(*t));
}

/* -------------------------------------------------------------- rendering ---- */

/* Where the rendered bytes go: out == NULL only counts them (the measuring pass). */
typedef struct {
    char *out;
    size_t len;
    int overflow;
} sink_t;

static void sink_put(sink_t *s, const char *p, size_t n)
{
    if (n > SIZE_MAX - 1 - s->len) {
        s->overflow = 1;
        return;
    }
    if (s->out != NULL)
        memcpy(s->out + s->len, p, n);
    s->len += n;
}

static const char *html_entity(char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '"':
        return "&quot;";
    case '\'':
        return "&#39;";
    default:
        return NULL;
    }
}

static void sink_value(sink_t *s, const char *value, int html_escape)
{
    if (!html_escape) {
        sink_put(s, value, strlen(value));
        return;
    }
    for (const char *p = value; *p != '\0'; p++) {
        const char *entity = html_entity(*p);
        if (entity != NULL)
            sink_put(s, entity, strlen(entity));
        else
            sink_put(s, p, 1);
    }
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const jobs_mail_var_t *find_var(const jobs_mail_var_t *vars, int nvars, const char *name, size_t len)
{
    for (int i = 0; i < nvars; i++)
        if (vars[i].name != NULL && strncmp(vars[i].name, name, len) == 0 && vars[i].name[len] == '\0')
            return &vars[i];
    return NULL;
}

/* Line number of position p in tmpl, for messages that point at the template's mistake. */
static int line_of(const char *tmpl, const char *p)
{
    int line = 1;
    for (const char *q = tmpl; q < p; q++)
        line += *q == '\n';
    return line;
}

/* Parses the placeholder opening at open ("{{"): its name in *name and *len, and the position
 * after its "}}" as the return value, or NULL with a message. */
static const char *parse_placeholder(const char *tmpl, const char *open, const char **name, size_t *len,
                                     char *err, size_t errlen)
{
    const char *p = open + 2;
    while (name_char(*p))
        p++;
    *name = open + 2;
    *len = (size_t)(p - *name);
    if (*len > 0 && p[0] == '}' && p[1] == '}')
        return p + 2;
    if (strstr(open + 2, "}}") == NULL)
        set_err(err, errlen, "line %d: unterminated \"{{\"", line_of(tmpl, open));
    else
        set_err(err, errlen, "line %d: malformed placeholder (names are letters, digits and '_')",
                line_of(tmpl, open));
    return NULL;
}

/* One pass over the template into s. Returns 0, or -1 with a message. */
static int render_pass(sink_t *s, const char *tmpl, const jobs_mail_var_t *vars, int nvars, int html_escape,
                       char *err, size_t errlen)
{
    const char *p = tmpl;
    const char *open;
    while ((open = strstr(p, "{{")) != NULL) {
        sink_put(s, p, (size_t)(open - p));
        const char *name;
        size_t len;
        p = parse_placeholder(tmpl, open, &name, &len, err, errlen);
        if (p == NULL)
            return -1;
        const jobs_mail_var_t *var = find_var(vars, nvars, name, len);
        if (var == NULL || var->value == NULL) {
            set_err(err, errlen, "line %d: %s placeholder {{%.*s}}", line_of(tmpl, open),
                    var == NULL ? "unknown" : "no value for", (int)(len > 64 ? 64 : len), name);
            return -1;
        }
        sink_value(s, var->value, html_escape);
    }
    sink_put(s, p, strlen(p));
    if (s->overflow) {
        set_err(err, errlen, "rendered template too large");
        return -1;
    }
    return 0;
}

char *jobs_mail_render(const char *tmpl, const jobs_mail_var_t *vars, int nvars, int html_escape, char *err,
                       size_t errlen)
{
    if (tmpl == NULL || (vars == NULL && nvars > 0)) {
        set_err(err, errlen, "no template or no variables");
        return NULL;
    }
    sink_t measure = {0};
    if (render_pass(&measure, tmpl, vars, nvars, html_escape, err, errlen) != 0)
        return NULL;
    sink_t s = {.out = malloc(measure.len + 1)};
    if (s.out == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    render_pass(&s, tmpl, vars, nvars, html_escape, err, errlen); /* cannot fail: same input */
    s.out[s.len] = '\0';
    return s.out;
}
