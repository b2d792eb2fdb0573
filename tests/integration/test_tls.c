/*
 * The TLS listener against Mozilla's "intermediate" profile (docs/SECURITY.md, "TLS"):
 * Debian's sslscan enumerates what the server accepts (protocols, suites, groups, the
 * certificate's key, renegotiation, Heartbleed) and this test refuses anything outside the
 * profile. sslscan cannot test TLS compression with Debian's OpenSSL (built without zlib),
 * so a hand-made TLS 1.2 ClientHello offers DEFLATE and the secure renegotiation extension
 * and reads the ServerHello's answer to both. OCSP stapling is not checked: the development
 * certificate is self-signed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static harness_server_t server;
static char *scan; /* sslscan's XML report */

/* ------------------------------------------------------------ the XML report ---- */

/* The value of attribute name in one XML element (start..end), copied into out; NULL if absent. */
static const char *xml_attr(const char *start, const char *end, const char *name, char *out, size_t outlen)
{
    char key[64];
    snprintf(key, sizeof(key), " %s=\"", name);
    const char *p = strstr(start, key);
    if (p == NULL || p >= end)
        return NULL;
    p += strlen(key);
    const char *q = strchr(p, '"');
    if (q == NULL || q > end || (size_t)(q - p) >= outlen)
        return NULL;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return out;
}

typedef void (*element_fn)(const char *start, const char *end, void *data);

/* Calls fn for every element <tag ...> of the report; returns how many there were. */
static int xml_each(const char *tag, element_fn fn, void *data)
{
    char open[64];
    snprintf(open, sizeof(open), "<%s ", tag);
    int n = 0;
    for (const char *p = strstr(scan, open); p != NULL; p = strstr(p + 1, open)) {
        const char *end = strchr(p, '>');
        assert_non_null(end);
        fn(p, end, data);
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ the checks ---- */

typedef struct {
    int tls12, tls13;
} protocols_t;

static void check_protocol(const char *start, const char *end, void *data)
{
    protocols_t *seen = data;
    char type[16], version[16], enabled[8];
    assert_non_null(xml_attr(start, end, "type", type, sizeof(type)));
    assert_non_null(xml_attr(start, end, "version", version, sizeof(version)));
    assert_non_null(xml_attr(start, end, "enabled", enabled, sizeof(enabled)));
    int modern = strcmp(type, "tls") == 0 && (strcmp(version, "1.2") == 0 || strcmp(version, "1.3") == 0);
    if (!modern && strcmp(enabled, "0") != 0)
        fail_msg("the profile forbids %s %s, and the server accepts it", type, version);
    if (modern && strcmp(enabled, "1") != 0)
        fail_msg("the profile asks for TLS %s, and the server refuses it", version);
    seen->tls12 |= modern && strcmp(version, "1.2") == 0;
    seen->tls13 |= modern && strcmp(version, "1.3") == 0;
}

/* The profile's TLS 1.2 suites with ECDHE (its DHE ones are not offered: a forward-secret key
 * exchange on elliptic curves only), and all its TLS 1.3 ones. */
static int suite_allowed(const char *version, const char *suite)
{
    static const char *const tls12[] = {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        NULL,
    };
    static const char *const tls13[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                        "TLS_CHACHA20_POLY1305_SHA256", NULL};
    const char *const *allowed = strcmp(version, "TLSv1.2") == 0   ? tls12
                                 : strcmp(version, "TLSv1.3") == 0 ? tls13
                                                                   : NULL;
    for (int i = 0; allowed != NULL && allowed[i] != NULL; i++)
        if (strcmp(suite, allowed[i]) == 0)
            return 1;
    return 0;
}

typedef struct {
    int tls12, tls13;
} suites_t;

static void check_cipher(const char *start, const char *end, void *data)
{
    suites_t *seen = data;
    char version[16], suite[96], strength[32];
    assert_non_null(xml_attr(start, end, "sslversion", version, sizeof(version)));
    assert_non_null(xml_attr(start, end, "cipher", suite, sizeof(suite)));
    if (!suite_allowed(version, suite))
        fail_msg("%s suite %s is outside the profile (CBC, RSA key exchange, DHE or weaker)", version, suite);
    /* sslscan's own verdict as a second opinion: weak, medium, null or anonymous never */
    if (xml_attr(start, end, "strength", strength, sizeof(strength)) != NULL &&
        strcmp(strength, "strong") != 0 && strcmp(strength, "acceptable") != 0)
        fail_msg("%s suite %s: sslscan rates it %s", version, suite, strength);
    seen->tls12 += strcmp(version, "TLSv1.2") == 0;
    seen->tls13 += strcmp(version, "TLSv1.3") == 0;
}

static void check_group(const char *start, const char *end, void *data)
{
    (void)data;
    char name[64];
    assert_non_null(xml_attr(start, end, "name", name, sizeof(name)));
    if (strcmp(name, "x25519") != 0 && strncmp(name, "secp256r1", 9) != 0 &&
        strncmp(name, "secp384r1", 9) != 0)
        fail_msg("key exchange group %s is outside the profile (X25519, P-256, P-384)", name);
}

/* ECDSA on P-256 (the profile's recommendation; P-384 is as good), or RSA of 2048 bits or more. */
static void check_key(const char *start, const char *end, void *data)
{
    (void)data;
    char error[8], type[16], curve[32], bits[16];
    assert_non_null(xml_attr(start, end, "error", error, sizeof(error)));
    assert_string_equal(error, "false");
    assert_non_null(xml_attr(start, end, "type", type, sizeof(type)));
    if (strcmp(type, "EC") == 0) {
        assert_non_null(xml_attr(start, end, "curve_name", curve, sizeof(curve)));
        if (strcmp(curve, "prime256v1") != 0 && strcmp(curve, "secp384r1") != 0)
            fail_msg("the certificate's key is on curve %s", curve);
    } else if (strcmp(type, "RSA") == 0) {
        assert_non_null(xml_attr(start, end, "bits", bits, sizeof(bits)));
        if (atoi(bits) < 2048)
            fail_msg("the certificate's RSA key has %s bits", bits);
    } else {
        fail_msg("the certificate's key is %s, neither ECDSA nor RSA", type);
    }
}

/* Client-initiated renegotiation is refused (SSL_OP_NO_RENEGOTIATION); never an insecure one. */
static void check_renegotiation(const char *start, const char *end, void *data)
{
    (void)data;
    char supported[8], secure[8];
    assert_non_null(xml_attr(start, end, "supported", supported, sizeof(supported)));
    assert_non_null(xml_attr(start, end, "secure", secure, sizeof(secure)));
    if (strcmp(supported, "1") == 0 && strcmp(secure, "1") != 0)
        fail_msg("the server accepts insecure renegotiation");
}

static void check_heartbleed(const char *start, const char *end, void *data)
{
    (void)data;
    char vulnerable[8];
    assert_non_null(xml_attr(start, end, "vulnerable", vulnerable, sizeof(vulnerable)));
    assert_string_equal(vulnerable, "0");
}

/* ------------------------------------------------------------ the raw probe ---- */

/* A TLS 1.2 ClientHello offering DEFLATE besides null compression and the empty
 * renegotiation_info extension (RFC 5746), with the profile's ECDHE suites. */
static size_t client_hello(unsigned char *out)
{
    static const unsigned char suites[] = {0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x2c,
                                           0xc0, 0x30, 0xcc, 0xa9, 0xcc, 0xa8};
    static const unsigned char extensions[] = {
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, /* groups: X25519, P-256 */
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00,                         /* point formats: uncompressed */
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, /* signature algorithms */
        0xff, 0x01, 0x00, 0x01, 0x00, /* renegotiation_info, empty */
    };
    unsigned char body[256];
    size_t n = 0;
    body[n++] = 0x03, body[n++] = 0x03; /* TLS 1.2 */
    for (int i = 0; i < 32; i++)
        body[n++] = (unsigned char)(i * 7 + 1); /* client random: any */
    body[n++] = 0;                              /* no session id */
    body[n++] = 0, body[n++] = sizeof(suites);
    memcpy(body + n, suites, sizeof(suites)), n += sizeof(suites);
    body[n++] = 2, body[n++] = 1, body[n++] = 0; /* compression: DEFLATE, null */
    body[n++] = 0, body[n++] = sizeof(extensions);
    memcpy(body + n, extensions, sizeof(extensions)), n += sizeof(extensions);
    size_t m = 0;
    out[m++] = 0x16, out[m++] = 0x03, out[m++] = 0x01; /* handshake record */
    out[m++] = (unsigned char)((n + 4) >> 8), out[m++] = (unsigned char)(n + 4);
    out[m++] = 0x01, out[m++] = 0, out[m++] = (unsigned char)(n >> 8), out[m++] = (unsigned char)n;
    memcpy(out + m, body, n);
    return m + n;
}

/* Reads the first record (the ServerHello) into buf; returns its body's length. */
static size_t read_first_record(int fd, unsigned char *buf, size_t buflen)
{
    size_t have = 0, want = 5;
    long long deadline = harness_now_ms() + 5000;
    while (have < want && harness_now_ms() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t r = read(fd, buf + have, buflen - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        if (have >= 5)
            want = 5 + ((size_t)buf[3] << 8 | buf[4]);
        assert_true(want <= buflen);
    }
    assert_true(have >= want && want > 5);
    assert_int_equal(buf[0], 0x16); /* a handshake record, not an alert */
    return want - 5;
}

static void test_hello_compression_and_renegotiation_info(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server.tls_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    unsigned char hello[512], rec[16384 + 5];
    size_t len = client_hello(hello);
    assert_int_equal(write(fd, hello, len), (ssize_t)len);
    size_t n = read_first_record(fd, rec, sizeof(rec));
    close(fd);
    const unsigned char *h = rec + 5, *end = h + n;
    assert_int_equal(h[0], 0x02);              /* ServerHello */
    assert_true(h[4] == 0x03 && h[5] == 0x03); /* TLS 1.2 */
    const unsigned char *p = h + 4 + 2 + 32;
    p += 1 + p[0]; /* session id */
    p += 2;        /* the suite */
    assert_true(p < end);
    if (*p != 0)
        fail_msg("the server chose compression method %d (CRIME)", *p);
    p++;
    int renegotiation_info = 0;
    const unsigned char *ext_end = p + 2 <= end ? p + 2 + (p[0] << 8 | p[1]) : p;
    for (p += 2; p + 4 <= ext_end && ext_end <= end; p += 4 + (p[2] << 8 | p[3]))
        renegotiation_info |= p[0] == 0xff && p[1] == 0x01 && p[2] == 0 && p[3] == 1 && p[4] == 0;
    if (!renegotiation_info)
        fail_msg("the ServerHello has no empty renegotiation_info: no secure renegotiation (RFC 5746)");
}

static void test_sslscan_intermediate_profile(void **state)
{
    (void)state;
    protocols_t protocols = {0, 0};
    assert_int_equal(xml_each("protocol", check_protocol, &protocols), 6); /* SSLv2 .. TLS 1.3 */
    assert_true(protocols.tls12 && protocols.tls13);
    suites_t suites = {0, 0};
    xml_each("cipher", check_cipher, &suites);
    assert_true(suites.tls12 > 0 && suites.tls13 > 0);
    assert_true(xml_each("group", check_group, NULL) > 0);
    assert_int_equal(xml_each("pk", check_key, NULL), 1);
    assert_int_equal(xml_each("renegotiation", check_renegotiation, NULL), 1);
    assert_true(xml_each("heartbleed", check_heartbleed, NULL) > 0);
}

/* ------------------------------------------------------------------- set-up ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char chunk[4096];
    for (size_t n; (n = fread(chunk, 1, sizeof(chunk), f)) > 0;)
        fwrite(chunk, 1, n, mem);
    fclose(mem);
    fclose(f);
    return text;
}

static int start(void **state)
{
    (void)state;
    if (harness_system("command -v sslscan >/dev/null") != 0) {
        fprintf(stderr, "test_tls: sslscan is not installed (scripts/deps.sh test installs it)\n");
        return -1;
    }
    if (harness_server_start(&server, NULL) != 0)
        return -1;
    char path[512];
    snprintf(path, sizeof(path), "%s/sslscan-%d.xml", harness_env("HYDRANT_TEST_SERVICES_DIR"), getpid());
    if (harness_system("sslscan --no-colour --xml=%s 127.0.0.1:%d >/dev/null 2>&1", path, server.tls_port) !=
            0 ||
        (scan = read_file(path)) == NULL) {
        fprintf(stderr, "test_tls: sslscan failed\n");
        return -1;
    }
    unlink(path);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    free(scan);
    return harness_server_stop(&server) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sslscan_intermediate_profile),
        cmocka_unit_test(test_hello_compression_and_renegotiation_info),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
