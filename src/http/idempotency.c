/*
 * Idempotency-Key (contract v1.1), kept in PostgreSQL so that a retry may reach any
 * instance. The life of a key, see http.h and migrations/0006_idempotency.up.sql:
 *
 *   claim ('started', a new attempt id) -> the request acts; each of its writes carries the
 *   fence, which turns the key 'committed' in the write's own transaction, or fails it when
 *   another attempt holds the key -> the answer is stored ('done', sealed) -> sent.
 *
 * A repeat finds the key: 'done' replays the answer; 'started' or 'committed' is 409 (in
 * progress, or took effect with its answer lost); another request under the key is 422. A
 * claim still 'started' after the takeover delay belongs to an attempt that died or whose
 * writes are in doubt: the fence makes taking it over safe, since the old attempt can no
 * longer commit anything.
 */
#include "http/http.h"
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_KEY_MAX  255
#define IDEM_HASH_LEN 45 /* SHA-256 in base64, and its NUL */
#define IDEM_NONCE    12
#define IDEM_TAG      16

struct http_idem {
    char scope[64];
    char route[200]; /* "POST /api/v1/auth/signup" */
    char key[IDEM_KEY_MAX + 1];
    char attempt[40];
    const char *fence_values[4]; /* scope, route, key, attempt */
    int claimed;                 /* this request holds the key */
    int finishing;               /* its answer is being stored, or its claim let go */
    http_idem_next_fn next;
    void *next_arg;
    /* the answer, while it is being stored */
    int status;
    char *content_type;
    char *body;
    size_t len;
};

void http_idempotency_free(struct http_idem *idem)
{
    if (idem == NULL)
        return;
    free(idem->content_type);
    free(idem->body);
    free(idem);
}

static int idem_key_valid(const char *v, size_t len)
{
    if (len < 1 || len > IDEM_KEY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == ':' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* What "the same request" means: the route, the path with its query, the content type and
 * the body, hashed. */
static int idem_request_hash(const http_request_t *r, const char *route, char out[IDEM_HASH_LEN])
{
    const h2o_req_t *req = r->h2o;
    size_t ctype_len = 0;
    const char *ctype = http_header(r, "content-type", &ctype_len);
    unsigned char md[32];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, route, strlen(route) + 1) &&
             EVP_DigestUpdate(ctx, req->path.base, req->path.len) && EVP_DigestUpdate(ctx, "\n", 1) &&
             EVP_DigestUpdate(ctx, ctype != NULL ? ctype : "", ctype_len) && EVP_DigestUpdate(ctx, "\n", 1) &&
             EVP_DigestUpdate(ctx, req->entity.base != NULL ? req->entity.base : "", req->entity.len) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    util_base64_encode(md, md_len, out, UTIL_BASE64_PAD);
    return 0;
}

/* ---------------------------------------------------------- sealed answers ---- */

/* The additional data binds a sealed answer to its key: a row copied under another key
 * does not open. */
static int idem_aad(const struct http_idem *idem, EVP_CIPHER_CTX *ctx)
{
    int n;
    return EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)idem->scope,
                            (int)strlen(idem->scope) + 1) &&
           EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)idem->route,
                            (int)strlen(idem->route) + 1) &&
           EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)idem->key, (int)strlen(idem->key));
}

/* AES-256-GCM of the body as base64 of nonce || ciphertext || tag (malloc'd), or NULL. */
static char *idem_seal(const unsigned char key[32], const struct http_idem *idem, const char *body,
                       size_t len)
{
    size_t raw_len = IDEM_NONCE + len + IDEM_TAG;
    unsigned char *raw = malloc(raw_len);
    char *out = raw != NULL ? malloc(UTIL_BASE64_LEN(raw_len) + 1) : NULL;
    EVP_CIPHER_CTX *ctx = out != NULL ? EVP_CIPHER_CTX_new() : NULL;
    int n = 0, fin = 0;
    int ok = ctx != NULL && len <= INT32_MAX && RAND_bytes(raw, IDEM_NONCE) == 1 &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) && idem_aad(idem, ctx) &&
             EVP_EncryptUpdate(ctx, raw + IDEM_NONCE, &n, (const unsigned char *)body, (int)len) &&
             EVP_EncryptFinal_ex(ctx, raw + IDEM_NONCE + n, &fin) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, IDEM_TAG, raw + IDEM_NONCE + len);
    EVP_CIPHER_CTX_free(ctx);
    if (ok)
        util_base64_encode(raw, raw_len, out, UTIL_BASE64_PAD);
    free(raw);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

/* The body of a sealed answer (malloc'd, *len set), or NULL when it does not open. */
static char *idem_open(const unsigned char key[32], const struct http_idem *idem, const char *sealed,
                       size_t *len)
{
    size_t b64_len = strlen(sealed);
    unsigned char *raw = malloc(b64_len / 4 * 3 + 1);
    if (raw == NULL)
        return NULL;
    long raw_len = util_base64_decode(sealed, b64_len, raw, b64_len / 4 * 3 + 1, UTIL_BASE64_PAD);
    char *body =
        raw_len >= IDEM_NONCE + IDEM_TAG ? malloc((size_t)raw_len - IDEM_NONCE - IDEM_TAG + 1) : NULL;
    EVP_CIPHER_CTX *ctx = body != NULL ? EVP_CIPHER_CTX_new() : NULL;
    int n = 0, fin = 0, text_len = (int)raw_len - IDEM_NONCE - IDEM_TAG;
    int ok = ctx != NULL && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) &&
             idem_aad(idem, ctx) &&
             EVP_DecryptUpdate(ctx, (unsigned char *)body, &n, raw + IDEM_NONCE, text_len) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, IDEM_TAG, raw + IDEM_NONCE + text_len) &&
             EVP_DecryptFinal_ex(ctx, (unsigned char *)body + n, &fin) > 0;
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok) {
        free(body);
        return NULL;
    }
    body[text_len] = '\0';
    *len = (size_t)text_len;
    return body;
}

/* --------------------------------------------------------------- the claim ---- */

static void idem_replay(http_request_t *r, const PGresult *res)
{
    size_t len = 0;
    char *body = idem_open(r->loop->server->idempotency_key, r->idem,
                           PQgetvalue(res, 0, DB_COL_IDEM_CLAIM_BODY), &len);
    if (body == NULL) {
        http_respond_error(r, 500, "internal", "the first answer to this Idempotency-Key cannot be read",
                           NULL);
        return;
    }
    http_add_header(r, "Idempotent-Replayed", "true");
    http_respond_raw(r, atoi(PQgetvalue(res, 0, DB_COL_IDEM_CLAIM_STATUS)),
                     PQgetisnull(res, 0, DB_COL_IDEM_CLAIM_CONTENT_TYPE)
                         ? NULL
                         : PQgetvalue(res, 0, DB_COL_IDEM_CLAIM_CONTENT_TYPE),
                     body, len);
    free(body);
}

static void idem_claimed(http_request_t *r, const db_reply_t *reply)
{
    struct http_idem *idem = r->idem;
    if (reply->status != DB_OK) {
        http_respond_db_error(r, reply->status);
        return;
    }
    const PGresult *res = reply->results[0];
    const char *state = PQntuples(res) == 1 ? PQgetvalue(res, 0, DB_COL_IDEM_CLAIM_STATE) : "started";
    if (strcmp(state, "claimed") == 0) {
        snprintf(idem->attempt, sizeof(idem->attempt), "%s", PQgetvalue(res, 0, DB_COL_IDEM_CLAIM_ATTEMPT));
        idem->fence_values[0] = idem->scope, idem->fence_values[1] = idem->route;
        idem->fence_values[2] = idem->key, idem->fence_values[3] = idem->attempt;
        idem->claimed = 1;
        idem->next(r, idem->next_arg);
    } else if (strcmp(state, "done") == 0) {
        idem_replay(r, res);
    } else if (strcmp(state, "mismatch") == 0) {
        http_respond_error(r, 422, "validation_failed", "this Idempotency-Key was used with another request",
                           json_pack("{s:s}", "Idempotency-Key", "was used with another request"));
    } else {
        http_respond_error(r, 409, "conflict",
                           strcmp(state, "committed") == 0
                               ? "the request with this Idempotency-Key took effect, but its answer was lost"
                               : "a request with this Idempotency-Key is still being processed",
                           NULL);
    }
}

void http_idempotency_begin(http_request_t *r, const char *scope, http_idem_next_fn next, void *arg)
{
    size_t len = 0;
    const char *key = r->h2o != NULL && r->h2o->method.len == 4 && memcmp(r->h2o->method.base, "POST", 4) == 0
                          ? http_header(r, "idempotency-key", &len)
                          : NULL;
    if (key == NULL) {
        next(r, arg);
        return;
    }
    if (!idem_key_valid(key, len)) {
        http_respond_error(r, 400, "bad_request",
                           "Idempotency-Key must be 1 to 255 characters of A-Z a-z 0-9 . _ : -", NULL);
        return;
    }
    struct http_idem *idem = calloc(1, sizeof(*idem));
    if (idem == NULL) {
        http_respond_error(r, 500, "internal", "out of memory", NULL);
        return;
    }
    http_idempotency_free(r->idem);
    r->idem = idem;
    snprintf(idem->scope, sizeof(idem->scope), "%s", scope);
    snprintf(idem->route, sizeof(idem->route), "%s %s", r->route->method, r->route->pattern);
    memcpy(idem->key, key, len);
    idem->next = next;
    idem->next_arg = arg;
    char hash[IDEM_HASH_LEN], ttl[16], takeover[16];
    if (idem_request_hash(r, idem->route, hash) != 0) {
        http_respond_error(r, 500, "internal", "could not hash the request", NULL);
        return;
    }
    snprintf(ttl, sizeof(ttl), "%d", HTTP_IDEMPOTENCY_TTL_S);
    snprintf(takeover, sizeof(takeover), "%d", r->loop->server->idempotency_takeover_s);
    const char *values[] = {idem->scope, idem->route, idem->key, hash, ttl, takeover};
    db_query_t q = {.stmt = DB_STMT_IDEM_CLAIM, .nparams = 6, .values = values};
    http_pg(r, &q, 1, idem_claimed);
}

/* --------------------------------------------------------------- the fence ---- */

int http_idempotency_pending(const http_request_t *r)
{
    return r->idem != NULL && r->idem->claimed && !r->idem->finishing && !r->responded;
}

const db_query_t *http_idempotency_fence(const http_request_t *r, const db_query_t *queries, int *nqueries,
                                         db_query_t *out)
{
    const struct http_idem *idem = r->idem;
    if (idem == NULL || !idem->claimed || idem->finishing || !db_stmts_write(queries, *nqueries))
        return queries;
    if (*nqueries >= DB_PG_MAX_BATCH)
        return NULL;
    memcpy(out, queries, (size_t)*nqueries * sizeof(*queries));
    out[*nqueries] = (db_query_t){.stmt = DB_STMT_IDEM_FENCE, .nparams = 4, .values = idem->fence_values};
    (*nqueries)++;
    return out;
}

/* -------------------------------------------------------------- the answer ---- */

typedef struct {
    http_request_t *r;
} idem_store_t;

static void idem_send(http_request_t *r)
{
    struct http_idem *idem = r->idem;
    http_respond_raw(r, idem->status, idem->content_type, idem->body != NULL ? idem->body : "", idem->len);
}

/* The answer is sent whether or not it could be kept: the request's work is done either way.
 * A repeat then finds the key 'committed' (409) or 'started' (taken over later). */
static void idem_stored(void *data, const db_reply_t *reply)
{
    http_request_t *r = data;
    idem_send(r);
    http_request_release(r);
}

/* Keeps what a repeat must see again; lets go of a claim whose request changed nothing. */
static int idem_keeps(int status)
{
    return status < 500 && status != 429;
}

int http_idempotency_intercept(http_request_t *r, int status, const char *content_type, const char *body,
                               size_t len)
{
    struct http_idem *idem = r->idem;
    if (idem == NULL || !idem->claimed || idem->finishing)
        return 0;
    idem->finishing = 1;
    if (r->indoubt)
        return 0; /* neither kept nor let go: taken over once stale */
    idem->status = status;
    idem->len = len;
    idem->content_type = content_type != NULL ? strdup(content_type) : NULL;
    idem->body = malloc(len + 1);
    char *sealed = NULL;
    if (idem->body == NULL || (content_type != NULL && idem->content_type == NULL))
        return 0;
    memcpy(idem->body, body != NULL ? body : "", len);
    char status_text[16];
    snprintf(status_text, sizeof(status_text), "%d", status);
    const char *values[] = {idem->scope, idem->route,  idem->key, idem->attempt,
                            status_text, content_type, NULL};
    db_query_t q = {.stmt = DB_STMT_IDEM_RELEASE, .nparams = 4, .values = values};
    if (idem_keeps(status)) {
        sealed = idem_seal(r->loop->server->idempotency_key, idem, idem->body, len);
        if (sealed == NULL)
            return 0;
        values[6] = sealed;
        q = (db_query_t){.stmt = DB_STMT_IDEM_STORE, .nparams = 7, .values = values};
    }
    http_request_retain(r);
    int rc = r->loop->pg != NULL ? db_pg_submit(r->loop->pg, &q, 1, idem_stored, r) : -1;
    free(sealed);
    if (rc != 0) {
        http_request_release(r);
        return 0;
    }
    return 1;
}
