/*
 * The contract's error envelope, request ids and the client's address.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *http_error_body(const char *code, const char *message, json_t *details)
{
    json_t *error = json_pack("{s:s, s:s}", "code", code, "message", message);
    if (error != NULL && details != NULL)
        json_object_set_new(error, "details", details);
    else if (details != NULL)
        json_decref(details);
    json_t *doc = error != NULL ? json_pack("{s:o}", "error", error) : NULL;
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    /* Out of memory: still answer in the envelope rather than with nothing. */
    return text != NULL ? text : strdup("{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}");
}

int http_request_id_is_sane(const char *value, size_t len)
{
    if (len == 0 || len > 128)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int http_pg_failed(http_request_t *r, const db_reply_t *reply)
{
    if (reply->status == DB_OK)
        return 0;
    http_respond_db_error(r, reply->status);
    return 1;
}

/* 128 bits of util_random_u64 (fast, per thread, seeded from the kernel): request ids are
 * correlation handles, not secrets. */
void http_request_id_generate(char *buf)
{
    uint64_t bits[2] = {util_random_u64(), util_random_u64()};
    util_hex_encode(bits, sizeof(bits), buf, 0);
}

/* Parses an address literal into 16 bytes (IPv4 as IPv4-mapped IPv6) for comparison. */
static int http_parse_address(const char *text, size_t len, unsigned char out[16])
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct in_addr v4;
    if (inet_pton(AF_INET, buf, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

static int http_is_trusted(const unsigned char addr[16], char *const *trusted, int ntrusted)
{
    for (int i = 0; i < ntrusted; i++) {
        unsigned char t[16];
        if (http_parse_address(trusted[i], strlen(trusted[i]), t) == 0 && memcmp(t, addr, 16) == 0)
            return 1;
    }
    return 0;
}

int http_address_is_trusted(const char *text, char *const *trusted, int ntrusted)
{
    unsigned char addr[16];
    return ntrusted > 0 && http_parse_address(text, strlen(text), addr) == 0 &&
           http_is_trusted(addr, trusted, ntrusted);
}

static void http_copy_address(const char *text, size_t len, char *out, size_t outlen)
{
    unsigned char bytes[16];
    char canonical[INET6_ADDRSTRLEN];
    if (http_parse_address(text, len, bytes) == 0) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(bytes, mapped, 12) == 0)
            inet_ntop(AF_INET, bytes + 12, canonical, sizeof(canonical));
        else
            inet_ntop(AF_INET6, bytes, canonical, sizeof(canonical));
        snprintf(out, outlen, "%s", canonical);
    } else {
        snprintf(out, outlen, "%.*s", (int)len, text);
    }
}

/* X-Forwarded-For is believed only from a trusted peer, and read from the right: each hop
 * appends, so the right-most entry that is not one of our proxies is the first address we
 * did not add ourselves. A malformed entry ends the walk: the last trusted hop's peer is
 * the best we know. */
/* A dotted IPv4 address is already canonical: copied as it is (the common case, on every
 * request, without a parse and a printf). */
static int http_is_dotted_ipv4(const char *text, size_t len)
{
    if (len < 7 || len > 15)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || text[i] == '.'))
            return 0;
    return 1;
}

void http_client_address(const char *peer, const char *xff, size_t xff_len, char *const *trusted,
                         int ntrusted, char *out, size_t outlen)
{
    unsigned char addr[16];
    size_t peer_len = strlen(peer);
    if (http_is_dotted_ipv4(peer, peer_len) && peer_len < outlen)
        memcpy(out, peer, peer_len + 1);
    else
        http_copy_address(peer, peer_len, out, outlen);
    if (xff == NULL || xff_len == 0 || xff_len > 4096 || ntrusted == 0 ||
        http_parse_address(peer, peer_len, addr) != 0 || !http_is_trusted(addr, trusted, ntrusted))
        return;
    size_t end = xff_len;
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t a = start, b = end;
        while (a < b && (xff[a] == ' ' || xff[a] == '\t'))
            a++;
        while (b > a && (xff[b - 1] == ' ' || xff[b - 1] == '\t'))
            b--;
        if (http_parse_address(xff + a, b - a, addr) != 0)
            return;
        http_copy_address(xff + a, b - a, out, outlen);
        if (!http_is_trusted(addr, trusted, ntrusted))
            return;
        end = start > 0 ? start - 1 : 0;
    }
}
