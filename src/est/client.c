/* EST client operations: fetch the CA certificates, bootstrap trust by root fingerprint
 * (RFC 7030 §4.1.1), and (re-)enroll a CSR. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "est/internal.h"
#include "tlsx/tlsx.h"
#include "util/cleanup.h"

/* The server's plain reason: first line of a text body, printable characters only. */
static void reason_of(const struct est_response *r, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len && r->body[i] != '\n' && n + 1 < cap && n < 200; i++)
        if (r->body[i] >= ' ' && r->body[i] < 127)
            out[n++] = (char)r->body[i];
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "no reason given");
}

static int status_error(const struct est_url *u, const char *what, const struct est_response *r,
                        struct tw_err *err)
{
    char reason[256];
    reason_of(r, reason, sizeof(reason));
    enum tw_errc code = r->status == 401   ? TW_ERR_VERIFY
                        : r->status == 403 ? TW_ERR_POLICY
                        : r->status == 400 ? TW_ERR_PKI
                                           : TW_ERR_IO;
    return tw_err_set(err, code, "%s %s: HTTP %d: %s", u->origin, what, r->status, reason);
}

/* A certs-only PKCS#7 body: base64 (as RFC 7030 sends it) or, leniently, raw DER. */
static STACK_OF(X509) * p7_body(const struct est_response *r, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(r->len > 0, err, TW_ERR_PKI, "%s: empty answer", label);
    if (r->body[0] == 0x30 && strcasecmp(r->transfer_encoding, "base64") != 0)
        return pki_p7_certs_parse(r->body, r->len, label, err);
    unsigned char *der = NULL;
    size_t len = 0;
    TW_GUARD_PTR(est_b64_decode(r->body, r->len, label, &der, &len, err));
    STACK_OF(X509) *certs = pki_p7_certs_parse(der, len, label, err);
    free(der);
    return certs;
}

static STACK_OF(X509) * get_cacerts(SSL_CTX *ctx, const struct est_url *u, int skip_name,
                                    STACK_OF(X509) * *peer_chain, struct tw_err *err)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/cacerts", u->est_base);
    struct est_response r;
    TW_GUARD_PTR(
        est_http_request(ctx, u, skip_name, "GET", path, NULL, NULL, NULL, 0, &r, peer_chain, err));
    STACK_OF(X509) *certs = NULL;
    if (r.status != 200)
        status_error(u, "cacerts", &r, err);
    else
        certs = p7_body(&r, "cacerts", err);
    est_response_clear(&r);
    return certs;
}

STACK_OF(X509) * est_client_cacerts(SSL_CTX *ctx, const struct est_url *u, struct tw_err *err)
{
    return get_cacerts(ctx, u, 0, NULL, err);
}

/* "AB:CD:..." or "abcd..." to 64 lower-case hex digits. */
static int normalize_fp(const char *in, char out[65], struct tw_err *err)
{
    size_t n = 0;
    for (const char *p = in; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        TW_ENSURE(isxdigit((unsigned char)*p) && n < 64, err, TW_ERR_USAGE,
                  "--ca-fingerprint '%s' is not a SHA-256 fingerprint (64 hex digits)", in);
        out[n++] = (char)tolower((unsigned char)*p);
    }
    TW_ENSURE(n == 64, err, TW_ERR_USAGE,
              "--ca-fingerprint '%s' is not a SHA-256 fingerprint (64 hex digits)", in);
    out[64] = '\0';
    return 0;
}

static X509 *find_root(STACK_OF(X509) * certs, const char *fp)
{
    for (int i = 0; i < sk_X509_num(certs); i++) {
        X509 *c = sk_X509_value(certs, i);
        char hex[65];
        if (X509_check_issued(c, c) == X509_V_OK && pki_cert_fingerprint(c, hex, NULL, NULL) == 0 &&
            strcmp(hex, fp) == 0)
            return c;
    }
    return NULL;
}

/* The TLS chain the server sent must lead to root, and name the host we dialled. */
static int verify_server(const struct est_url *u, X509 *root, STACK_OF(X509) * peer_chain,
                         STACK_OF(X509) * cacerts, struct tw_err *err)
{
    TW_ENSURE(sk_X509_num(peer_chain) > 0, err, TW_ERR_VERIFY, "%s sent no certificate", u->origin);
    TW_AUTO(X509_STORE) *store = X509_STORE_new();
    TW_AUTO(X509_STORE_CTX) *vctx = X509_STORE_CTX_new();
    TW_AUTO(X509_STACK) *untrusted = sk_X509_new_null();
    TW_ENSURE(store != NULL && vctx != NULL && untrusted != NULL &&
                  X509_STORE_add_cert(store, root) == 1,
              err, TW_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < sk_X509_num(peer_chain) + sk_X509_num(cacerts); i++) {
        X509 *c = i < sk_X509_num(peer_chain) ? sk_X509_value(peer_chain, i)
                                              : sk_X509_value(cacerts, i - sk_X509_num(peer_chain));
        TW_ENSURE(sk_X509_push(untrusted, c) > 0, err, TW_ERR_INTERNAL, "out of memory");
        X509_up_ref(c);
    }
    X509 *leaf = sk_X509_value(peer_chain, 0);
    TW_GUARD_OSSL(X509_STORE_CTX_init(vctx, store, leaf, untrusted), err, TW_ERR_INTERNAL,
                  "cannot verify the server chain");
    X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(vctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    char host[256];
    size_t n = strlen(u->host);
    snprintf(host, sizeof(host), "%.*s", u->host[0] == '[' ? (int)(n - 2) : (int)n,
             u->host + (u->host[0] == '[' ? 1 : 0));
    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
        ERR_clear_error();
        TW_GUARD_OSSL(X509_VERIFY_PARAM_set1_host(param, host, 0), err, TW_ERR_USAGE,
                      "bad host name %s", host);
    }
    int ok = X509_verify_cert(vctx);
    ERR_clear_error();
    TW_ENSURE(ok == 1, err, TW_ERR_VERIFY,
              "%s: the server's TLS certificate does not verify against the pinned root: %s",
              u->origin, X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
    return 0;
}

int est_client_bootstrap(const struct est_url *u, const char *fingerprint, X509 **root,
                         STACK_OF(X509) * *cacerts, struct tw_err *err)
{
    char fp[65];
    TW_GUARD(normalize_fp(fingerprint, fp, err));
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    /* Not trusted yet: this connection only reads public certificates, then is checked. */
    o.insecure_skip_verify = true;
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, err);
    if (ctx == NULL)
        return -1;
    STACK_OF(X509) *peer = NULL;
    TW_AUTO(X509_STACK) *certs = get_cacerts(ctx, u, 1, &peer, err);
    SSL_CTX_free(ctx);
    TW_AUTO(X509_STACK) *chain = peer;
    if (certs == NULL)
        return -1;
    X509 *found = find_root(certs, fp);
    TW_ENSURE(found != NULL, err, TW_ERR_VERIFY,
              "%s: no CA certificate with SHA-256 fingerprint %s; refusing to trust this server",
              u->origin, fp);
    TW_GUARD(verify_server(u, found, chain, certs, err));
    X509_up_ref(found);
    *root = found;
    *cacerts = TW_TAKE(certs);
    return 0;
}

static char *basic_auth(const char *user, const char *pass, struct tw_err *err)
{
    size_t ulen = strlen(user), plen = strlen(pass);
    char *raw = malloc(ulen + plen + 2);
    TW_ENSURE_PTR(raw != NULL, err, TW_ERR_INTERNAL, "out of memory");
    snprintf(raw, ulen + plen + 2, "%s:%s", user, pass);
    size_t blen = 0;
    char *b64 = est_b64_encode(raw, ulen + plen + 1, &blen, err);
    OPENSSL_cleanse(raw, ulen + plen + 1);
    free(raw);
    if (b64 == NULL)
        return NULL;
    while (blen > 0 && b64[blen - 1] == '\n')
        b64[--blen] = '\0';
    size_t cap = blen + 8;
    char *header = malloc(cap);
    if (header != NULL)
        snprintf(header, cap, "Basic %s", b64);
    OPENSSL_cleanse(b64, blen);
    free(b64);
    TW_ENSURE_PTR(header != NULL, err, TW_ERR_INTERNAL, "out of memory");
    return header;
}

static int post_csr(SSL_CTX *ctx, const struct est_url *u, const char *op, const char *auth,
                    const unsigned char *csr, size_t csr_len, struct est_response *r,
                    struct tw_err *err)
{
    size_t blen = 0;
    TW_AUTO(charp) *body = est_b64_encode(csr, csr_len, &blen, err);
    if (body == NULL)
        return -1;
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", u->est_base, op);
    return est_http_request(ctx, u, 0, "POST", path, auth, "application/pkcs10", body, blen, r,
                            NULL, err);
}

int est_client_enroll(SSL_CTX *ctx, const struct est_url *u, int reenroll, const char *user,
                      const char *pass, const unsigned char *csr, size_t csr_len, X509 **cert,
                      long *retry_after, struct tw_err *err)
{
    const char *op = reenroll ? "simplereenroll" : "simpleenroll";
    char *auth = NULL;
    if (user != NULL && (auth = basic_auth(user, pass, err)) == NULL)
        return -1;
    struct est_response r;
    int rc = post_csr(ctx, u, op, auth, csr, csr_len, &r, err);
    if (auth != NULL) {
        OPENSSL_cleanse(auth, strlen(auth));
        free(auth);
    }
    TW_GUARD(rc);
    if (retry_after != NULL)
        *retry_after = r.retry_after;
    rc = -1;
    if (r.status == 202) {
        /* RFC 7030 §4.2.3: accepted, waiting for approval; the body names the request. */
        char reason[200];
        reason_of(&r, reason, sizeof(reason));
        tw_err_set(err, TW_ERR_IO, "%s %s: HTTP 202 Accepted (held for approval): %s",
                   u->origin, op, reason);
    }
    else if (r.status != 200)
        status_error(u, op, &r, err);
    else {
        TW_AUTO(X509_STACK) *certs = p7_body(&r, op, err);
        if (certs != NULL) {
            *cert = sk_X509_shift(certs);
            rc = 0;
        }
    }
    est_response_clear(&r);
    return rc;
}
