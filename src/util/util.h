/*
 * Pure helpers that every module links (hydrant_util): nothing that knows about HTTP, the
 * database, the event loop or the configuration, and no I/O but the kernel's random bytes
 * and clock, and util_log's lines on stderr. Only util_buf_* allocate (the caller owns the
 * buffer). One copy of each: the modules call these rather than keep their own. Every name
 * starts with util_.
 */
#ifndef HYDRANT_UTIL_H
#define HYDRANT_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ----------------------------------------------------------------- email ---- */

#define UTIL_EMAIL_MAX       254 /* the contract's limit (RFC 5321's path less "<>") */
#define UTIL_EMAIL_LOCAL_MAX 64  /* RFC 5321 4.5.3.1.1 */
#define UTIL_EMAIL_LABEL_MAX 63  /* RFC 1035 */

enum {
    /* A domain of one label ("localhost") is fine: for the configured From address only,
     * never for an address a user gives. */
    UTIL_EMAIL_SINGLE_LABEL = 1 << 0,
};

/* The one rule for email addresses, for sign-up, imports, the command line and the mailer:
 * an RFC 5321 mailbox local@domain, ASCII only, at most UTIL_EMAIL_MAX bytes, whose local
 * part is a dot-atom (RFC 5322 atext: letters, digits and !#$%&'*+-/=?^_`{|}~, in runs
 * separated by single dots; no quoted local parts) of at most UTIL_EMAIL_LOCAL_MAX bytes, and
 * whose domain is at least two labels (one with UTIL_EMAIL_SINGLE_LABEL) of 1..63 letters,
 * digits and hyphens, not starting or ending with a hyphen. No spaces, controls or NUL.
 * Case is not looked at (normalising is util_email_normalize's job). Returns 1 or 0. */
int util_email_valid(const char *addr, size_t len, unsigned flags);

/* The contract's normal form: surrounding ASCII white space trimmed, ASCII letters
 * lower-cased, into out (NUL-terminated). Returns its length, or -1 when it is empty, longer
 * than UTIL_EMAIL_MAX or does not fit in out. It does not validate: this is also the form
 * an existing account is looked up by. */
long util_email_fold(const char *in, size_t len, char *out, size_t outlen);

/* util_email_fold, then util_email_valid (no flags). Returns 0, or -1 when invalid. */
int util_email_normalize(const char *in, size_t len, char *out, size_t outlen);

/* ---------------------------------------------------------------- buffer ---- */

/* A growing byte buffer, always NUL-terminated once anything was appended. Start it as
 * {0}; it owns data until util_buf_take or util_buf_free. A failed allocation is sticky:
 * every later append does nothing, so a writer checks `failed` once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} util_buf_t;

/* Room for n more bytes and the NUL (the first allocation is at least 512 bytes). 0, or -1
 * when it failed (now or before). */
int util_buf_reserve(util_buf_t *b, size_t n);
void util_buf_put(util_buf_t *b, const void *s, size_t n);
void util_buf_str(util_buf_t *b, const char *s);
void util_buf_printf(util_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text, now the caller's to free (NULL when an append failed or nothing was appended);
 * b is empty again. */
char *util_buf_take(util_buf_t *b, size_t *len);
void util_buf_free(util_buf_t *b);

/* ------------------------------------------------------------------ JSON ---- */

/* s[0..len) as the inside of a JSON string (no quotes), for the access log and util_log: '"'
 * and '\\' backslashed, control bytes and DEL as \\u00XX, bytes that are not valid UTF-8 (as
 * util_utf8_sequence: overlongs and surrogates included) as U+FFFD, so that a hostile value
 * can neither end the string nor the line. Writes whole escapes and characters only, at most
 * cap bytes and no NUL. Returns the bytes written; *used is how many bytes of s they stand for
 * (len when all of it fitted). */
size_t util_json_escape(char *out, size_t cap, const char *s, size_t len, size_t *used);

/* ------------------------------------------------------------------- hex ---- */

enum {
    UTIL_HEX_UPPER = 1 << 0, /* A-F (percent- and quoted-printable encoding), else a-f */
};

/* n bytes as 2n hex digits and a NUL: out holds 2n + 1 bytes. */
void util_hex_encode(const void *in, size_t n, char *out, unsigned flags);

/* The value (0..15) of a hex digit of either case, or -1. Inline: the multipart fuzzer
 * compiles its parser without this library. */
static inline int util_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#define UTIL_UUID_LEN 36 /* 8-4-4-4-12 hex digits */

/* 16 bytes in the UUID text form, lower case (out holds UTIL_UUID_LEN + 1 bytes). */
void util_uuid_format(const unsigned char bytes[16], char *out);

/* A random (version 4) UUID in text form. 0, or -1 when the kernel gave no random bytes. */
int util_uuid_v4(char out[UTIL_UUID_LEN + 1]);

/* The UUID text form, either case: 36 bytes, dashes at 8, 13, 18 and 23. 1 or 0. */
int util_uuid_valid(const char *s, size_t len);

/* ---------------------------------------------------------------- base64 ---- */

enum {
    UTIL_BASE64_URL = 1 << 0, /* RFC 4648 5, '-' and '_' (tokens, JWTs), else '+' and '/' */
    UTIL_BASE64_PAD = 1 << 1, /* '=' to a multiple of 4: written, and required when decoding */
};

/* The encoded length of n bytes, the NUL not included (at most this without padding). */
#define UTIL_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* n bytes as base64 with a NUL: out holds UTIL_BASE64_LEN(n) + 1 bytes. Returns the length. */
size_t util_base64_encode(const void *in, size_t n, char *out, unsigned flags);

/* The one decoder, strict: only the alphabet of flags, padding exactly as flags say (none
 * without UTIL_BASE64_PAD), and the bits of a last partial character zero, so every byte
 * string has one spelling (a flipped low bit must not decode to the same JWT signature).
 * Writes at most outlen bytes, no NUL. Returns the decoded length, or -1. */
long util_base64_decode(const char *in, size_t len, void *out, size_t outlen, unsigned flags);

/* The value (0..63) of c in the alphabet of flags, or -1. Inline: the JWT check runs it on
 * every byte of every token. */
static inline int util_base64_value(char c, unsigned flags)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (flags & UTIL_BASE64_URL)
        return c == '-' ? 62 : c == '_' ? 63 : -1;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* ----------------------------------------------------------------- UTF-8 ---- */

/* Length (1..4) of the valid UTF-8 sequence at s, where avail > 0 bytes are; 0 when it is
 * not valid: a stray continuation byte, an overlong form, a surrogate, a code point past
 * U+10FFFF, or a sequence cut short. NUL is a valid sequence of one byte. */
size_t util_utf8_sequence(const unsigned char *s, size_t avail);

/* Length in code points of s when it is all valid UTF-8 (as util_utf8_sequence), or -1. */
long util_utf8_length(const void *s, size_t len);

/* len, less the bytes of an incomplete sequence at the end: where to cut valid UTF-8 of
 * which only the first len bytes are kept, so that no character is split. */
size_t util_utf8_cut(const void *s, size_t len);

/* --------------------------------------------------------------- backoff ---- */

/* An exponential backoff: base_ms doubling up to max_ms, then scaled by a factor drawn
 * uniformly from [jitter_low, jitter_high), so that many clients that failed together do
 * not all retry together. */
typedef struct {
    int base_ms, max_ms;
    double jitter_low, jitter_high;
} util_backoff_t;

/* Reconnecting to PostgreSQL or Redis: 50 ms doubling to 2 s, plus up to 20%. */
#define UTIL_BACKOFF_RECONNECT ((util_backoff_t){50, 2000, 1.0, 1.2})

/* The delay in ms (at least 1) after `attempt` (1-based; less counts as 1) consecutive
 * failures: min(base_ms × 2^(attempt−1), max_ms) scaled by the factor at unit (in [0, 1),
 * util_random_unit(); outside it counts as 0.5). */
int64_t util_backoff_ms(const util_backoff_t *b, int attempt, double unit);

/* One more failure in a row: counts it in *failures (which stays 0 until the first and
 * stops growing past the cap) and returns util_backoff_ms for it with util_random_unit. */
int64_t util_backoff_next(const util_backoff_t *b, int *failures);

/* ---------------------------------------------------------------- random ---- */

/* The kernel's CSPRNG (getrandom), for secrets: salts, tokens, JWT ids, UUIDs. 0 or -1. */
int util_random_bytes(void *out, size_t len);

/* Fast numbers that are not secrets (request ids, jitter): xoshiro256** per thread, seeded
 * once from util_random_bytes, so different in every thread and process. */
uint64_t util_random_u64(void);

/* util_random_u64 as a double in [0, 1). */
double util_random_unit(void);

/* ------------------------------------------------------------------ time ---- */

/* CLOCK_MONOTONIC ms from now, for pthread_cond_timedwait on a condition variable whose
 * clock is CLOCK_MONOTONIC. */
struct timespec util_deadline_after_ms(int ms);
/* Wall-clock microseconds since the epoch: for times compared across processes and hosts. */
int64_t util_now_us(void);

#define UTIL_RFC3339_MS_LEN 24 /* "2026-11-22T11:02:28.123Z" */

/* unix_ms (< 0 counts as 0) as UTC RFC 3339 with milliseconds and a NUL. No gmtime_r: it
 * takes glibc's time-zone lock, which every thread shares. */
void util_rfc3339_ms(int64_t unix_ms, char out[UTIL_RFC3339_MS_LEN + 1]);

/* ------------------------------------------------------------------- log ---- */
/*
 * The process's diagnostics on stderr, one line per call through util_log, never through
 * stdio. Each line is formatted on the stack (no malloc, no lock) and written with one
 * write(2) of at most UTIL_LOG_LINE_MAX bytes, which a pipe takes whole (PIPE_BUF is 4096),
 * so lines of loops, workers and the log writer never interleave. A thread may set a sink
 * of its own (util_log_set_thread_sink): an event loop's lines then go to its ring of the log
 * writer (http.h) instead, so that a slow stderr never holds a loop, however often a
 * database notice or a reconnect logs. Per request lines are the access log's, not these.
 */

typedef enum { UTIL_LOG_DEBUG, UTIL_LOG_INFO, UTIL_LOG_WARN, UTIL_LOG_ERROR } util_log_level_t;
typedef enum { UTIL_LOG_TEXT, UTIL_LOG_JSON } util_log_encoding_t;

#define UTIL_LOG_LINE_MAX      2048 /* bytes of a line, its newline included */
#define UTIL_LOG_COMPONENT_MAX 32
#define UTIL_LOG_TRUNCATED     "...[truncated]" /* ends a message that did not fit */

/* The threshold (lines below it are not written; info until set) and the encoding (text
 * until set). Any thread, any time: main sets them once the configuration is read. */
void util_log_configure(util_log_level_t threshold, util_log_encoding_t encoding);
int util_log_enabled(util_log_level_t level);
util_log_encoding_t util_log_encoding(void);

/* "debug", "info", "warn" or "error". */
const char *util_log_level_name(util_log_level_t level);
/* A level's or an encoding's ("text", "json") name, any case. 0, or -1 when unknown. */
int util_log_level_parse(const char *name, util_log_level_t *out);
int util_log_encoding_parse(const char *name, util_log_encoding_t *out);

/* One line on stderr when level reaches the threshold: the time, level, component (a short
 * name: "postgres", "jobs"; bytes other than letters, digits and "_-./" become "_") and the
 * printf-formatted message, which may hold anything (a peer's error text, a URL): it is
 * escaped. A message longer than the line ends in UTIL_LOG_TRUNCATED. */
void util_log(util_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void util_vlog(util_log_level_t level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Where this thread's util_log lines go instead of stderr: fn(arg, line, len) with a whole
 * line (newline included), called on this thread; NULL again for stderr. For a thread that
 * must never wait on a write (an event loop); fn must not block or log. */
typedef void (*util_log_sink_fn)(void *arg, const char *line, size_t len);
void util_log_set_thread_sink(util_log_sink_fn fn, void *arg);

/* util_log's line, now, into buf (UTIL_LOG_LINE_MAX bytes) instead of onto stderr: for an
 * event loop, whose lines go through the log writer (http_loop_log). Returns its length; 0
 * when level is under the threshold. */
size_t util_log_vline(char *buf, util_log_level_t level, const char *component, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The line util_log writes, into buf (a NUL after it), from a message msg[0..len) that may
 * hold any bytes; truncated says it was already cut short (the marker is added). Text:
 *   ts=2026-11-22T11:02:28.123Z level=warn component=postgres msg="escaped message"\n
 * JSON: {"ts":"...","level":"warn","component":"postgres","msg":"escaped message"}\n
 * The message is escaped as a JSON string in both (a logfmt reader's quoted value reads JSON
 * escapes). Returns the length, newline included: the line is always whole, the message cut
 * to fit with the marker; 0 when cap cannot hold even a line with an empty cut message
 * (UTIL_LOG_LINE_MIN is always enough). */
#define UTIL_LOG_LINE_MIN 160
size_t util_log_format_line(char *buf, size_t cap, util_log_encoding_t encoding, int64_t unix_ms,
                            util_log_level_t level, const char *component, const char *msg, size_t len,
                            int truncated);

#endif
