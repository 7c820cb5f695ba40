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

STACK_OF(X509) * est_certs_body_parse(const unsigned char *body, size_t len, const char *cte,
                                      const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(len > 0, err, TW_ERR_PKI, "%s: empty answer", label);
    if (body[0] == 0x30 && strcasecmp(cte, "base64") != 0)
        return pki_p7_certs_parse(body, len, label, err);
    unsigned char *der = NULL;
    size_t dlen = 0;
    TW_GUARD_PTR(est_b64_decode(body, len, label, &der, &dlen, err));
    STACK_OF(X509) *certs = pki_p7_certs_parse(der, dlen, label, err);
    free(der);
    return certs;
}

static STACK_OF(X509) * get_cacerts(const struct tlsx_client_opts *tls, const struct est_url *u,
                                    int skip_name, STACK_OF(X509) * *peer_chain,
                                    struct tw_err *err)
{
    const struct est_http_req req = {.method = "GET", .op = "cacerts"};
    struct est_response r;
    TW_GUARD_PTR(est_http_request(tls, u, skip_name, &req, &r, peer_chain, err));
    STACK_OF(X509) *certs = NULL;
    if (r.status != 200)
        status_error(u, "cacerts", &r, err);
    else
        certs = est_certs_body_parse(r.body, r.len, r.transfer_encoding, "cacerts", err);
    est_response_clear(&r);
    return certs;
}

STACK_OF(X509) * est_client_cacerts(const struct tlsx_client_opts *tls, const struct est_url *u,
                                    struct tw_err *err)
{
    return get_cacerts(tls, u, 0, NULL, err);
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
    STACK_OF(X509) *peer = NULL;
    TW_AUTO(X509_STACK) *certs = get_cacerts(&o, u, 1, &peer, err);
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

int est_client_enroll(const struct tlsx_client_opts *tls, const struct est_url *u, int reenroll,
                      const char *user, const char *pass, const unsigned char *csr,
                      size_t csr_len, X509 **cert, long *retry_after, struct tw_err *err)
{
    const char *op = reenroll ? "simplereenroll" : "simpleenroll";
    size_t blen = 0;
    TW_AUTO(charp) *body = est_b64_encode(csr, csr_len, &blen, err);
    if (body == NULL)
        return -1;
    const struct est_http_req req = {.method = "POST",
                                     .op = op,
                                     .content_type = "application/pkcs10",
                                     .body = body,
                                     .len = blen,
                                     .user = user,
                                     .pass = user != NULL ? pass : NULL};
    struct est_response r;
    TW_GUARD(est_http_request(tls, u, 0, &req, &r, NULL, err));
    if (retry_after != NULL)
        *retry_after = r.retry_after;
    int rc = -1;
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
        TW_AUTO(X509_STACK) *certs =
            est_certs_body_parse(r.body, r.len, r.transfer_encoding, op, err);
        if (certs != NULL) {
            *cert = sk_X509_shift(certs);
            rc = 0;
        }
    }
    est_response_clear(&r);
    return rc;
}
