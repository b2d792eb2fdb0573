#include "server/server.h"

#include <h2o.h>
#include <openssl/err.h>
#include <stdio.h>

static void srv_tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    char reason[256];
    ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
    snprintf(err, errlen, "tls: %s %s: %s", what, file, reason);
    ERR_clear_error();
}

SSL_CTX *srv_tls_context_new(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        srv_tls_error(err, errlen, "cannot create a context for", cert_file);
        return NULL;
    }
    /* Mozilla's "intermediate" profile (docs/SECURITY.md; checked by the ctest
     * integration.test_tls with sslscan): TLS 1.2 and 1.3 only; for TLS 1.2 forward-secret
     * AEAD suites only (the profile's ECDHE subset), TLS 1.3 suites are all fine; its three
     * groups. The order is the server's (docs/PERFORMANCE.md, "TLS", has the figures):
     * AES-128-GCM first, as AES-256-GCM costs more on every size measured for no gain a
     * 128-bit suite lacks, and OpenSSL-based clients offer AES-256 first; ChaCha20-Poly1305
     * for a client that puts it first (one without AES instructions: PRIORITIZE_CHACHA). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                                     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384") != 1 ||
        SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                                      "TLS_AES_256_GCM_SHA384") != 1) {
        srv_tls_error(err, errlen, "cannot set the cipher suites for", cert_file);
        goto fail;
    }
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
        srv_tls_error(err, errlen, "cannot set the key exchange groups for", cert_file);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    /* Resumption: stateless tickets (keys private to this process) plus the internal cache,
     * which OpenSSL locks itself, so all loop threads may share one context. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, 20000);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hydrant", 7);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        srv_tls_error(err, errlen, "cannot load the certificate", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        srv_tls_error(err, errlen, "cannot load the key", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        srv_tls_error(err, errlen, "the key does not match the certificate", cert_file);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
