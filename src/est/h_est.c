/* EST operations (RFC 7030 §4): cacerts, simpleenroll (token over HTTP Basic),
 * simplereenroll (the current certificate over mTLS) and csrattrs. Requests carry a base64
 * PKCS#10; answers are base64 certs-only PKCS#7 with Content-Transfer-Encoding: base64 for the
 * older clients that want it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "est/internal.h"
#include "util/cleanup.h"
#include "util/log.h"

static const char p7_type[] = "application/pkcs7-mime; smime-type=certs-only";
static const char *const p7_headers[] = {"Content-Transfer-Encoding", "base64", NULL};

static int certs_b64(STACK_OF(X509) * certs, char **out, size_t *len, struct tw_err *err)
{
    unsigned char *der = NULL;
    size_t dlen = 0;
    TW_GUARD(pki_p7_certs_only(certs, &der, &dlen, err));
    *out = est_b64_encode(der, dlen, len, err);
    OPENSSL_free(der);
    return *out != NULL ? 0 : -1;
}

int est_cacerts_build(struct est_server *srv, struct tw_err *err)
{
    /* RFC 7030 §4.1.3: the current CA certificates; the root is what a client pins. */
    TW_AUTO(X509_STACK) *chain = pki_ca_chain(srv->opts->ca, err);
    if (chain == NULL)
        return -1;
    char *b64 = NULL;
    TW_GUARD(certs_b64(chain, &b64, &srv->cacerts_len, err));
    srv->cacerts_b64 = (unsigned char *)b64;
    return 0;
}

void est_h_cacerts(struct est_req *r)
{
    est_reply(r, 200, p7_type, r->srv->cacerts_b64, r->srv->cacerts_len, p7_headers);
}

/* RFC 7030 §4.5.2: the attributes a CSR for this profile should have (200, base64 DER
 * CsrAttrs). 204 would be allowed, but some clients treat it as an error, and the key types,
 * curves and SAN requirement spare a client a refused request. */
void est_h_csrattrs(struct est_req *r)
{
    struct tw_err err;
    unsigned char *der = NULL;
    size_t dlen = 0, blen = 0;
    /* A token is taken unless --approval manual lets requests without one wait. */
    int tokens = !r->srv->opts->approval_manual;
    if (pki_csrattrs_der(r->label, tokens, &der, &dlen, &err) != 0) {
        est_fail(r, &err, 500);
        return;
    }
    char *b64 = est_b64_encode(der, dlen, &blen, &err);
    OPENSSL_free(der);
    if (b64 == NULL) {
        est_fail(r, &err, 500);
        return;
    }
    est_reply(r, 200, "application/csrattrs", b64, blen, p7_headers);
    free(b64);
}

/* HTTP status for a failure of the enrollment functions. */
static int status_for(const struct tw_err *err, int auth_status)
{
    switch (err->code) {
    case TW_ERR_VERIFY:
        return auth_status;
    case TW_ERR_POLICY:
        return 403;
    case TW_ERR_PKI:
        return 400;
    case TW_ERR_USAGE:
        return 400;
    case TW_ERR_STORE: /* the inventory (e.g. PostgreSQL) is down: nothing was issued */
        return 503;
    default:
        return 500;
    }
}

void est_fail(struct est_req *r, const struct tw_err *err, int auth_status)
{
    int status = status_for(err, auth_status);
    snprintf(r->detail, sizeof(r->detail), "%s", err->msg);
    if (status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "WWW-Authenticate",
                          "Basic realm=\"twoway est\"");
    if (status == 503) {
        log_warnx("ca serve: %s from %s: inventory unavailable: %s", r->path, r->peer, err->msg);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After",
                          EST_STORE_RETRY_AFTER);
        est_reply_text(r, 503, "the CA's inventory is unavailable; try again later");
        return;
    }
    if (status == 500) {
        log_warnx("ca serve: %s from %s failed: %s", r->path, r->peer, err->msg);
        est_reply_text(r, 500, "internal error (see the server log)");
        return;
    }
    est_reply_text(r, status, err->msg);
}

void est_send_cert(struct est_req *r, X509 *cert)
{
    struct tw_err err;
    TW_AUTO(X509_STACK) *one = sk_X509_new_null();
    char *b64 = NULL;
    size_t len = 0;
    if (one == NULL || sk_X509_push(one, cert) <= 0) {
        tw_err_set(&err, TW_ERR_INTERNAL, "out of memory");
        est_fail(r, &err, 401);
        return;
    }
    X509_up_ref(cert);
    if (certs_b64(one, &b64, &len, &err) != 0) {
        est_fail(r, &err, 401);
        return;
    }
    char serial[STORE_SERIAL_MAX] = "?";
    if (pki_cert_serial_hex(cert, serial, sizeof(serial), NULL) != 0)
        serial[0] = '?';
    snprintf(r->detail, sizeof(r->detail), "issued %s", serial);
    est_reply(r, 200, p7_type, b64, len, p7_headers);
    free(b64);
}

/* The CSR of the request body, parsed and its signature checked; NULL after answering 400. */
static struct pki_csr *read_csr(struct est_req *r, X509_NAME **subject)
{
    struct tw_err err;
    size_t len = 0;
    TW_AUTO(charp) *body = (char *)est_body(r, &len);
    const char *cte =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Transfer-Encoding");
    unsigned char *der = NULL;
    size_t dlen = 0;
    struct pki_csr *csr = NULL;
    if (body == NULL)
        tw_err_set(&err, TW_ERR_INTERNAL, "out of memory");
    else if (est_csr_body_decode(body, len, cte, &der, &dlen, &err) == 0 &&
             (csr = pki_csr_parse(der, dlen, "CSR", &err)) != NULL && subject != NULL &&
             (*subject = pki_csr_subject(der, dlen, "CSR", &err)) == NULL) {
        pki_csr_free(csr);
        csr = NULL;
    }
    free(der);
    if (csr == NULL)
        est_fail(r, &err, 400);
    return csr;
}

void est_h_simpleenroll(struct est_req *r)
{
    struct tw_err err;
    char user[PKI_NAME_MAX + 1], token[PKI_TOKEN_TEXT_MAX];
    const char *auth =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "Authorization");
    /* With --approval manual a request without credentials waits for an operator (RFC 7030
     * §4.2.3); one with credentials is still a token enrollment, refused when they are bad. */
    if (auth == NULL && r->srv->opts->approval_manual) {
        est_approval_enroll(r);
        return;
    }
    if (est_basic_auth_parse(auth, user, sizeof(user), token, sizeof(token), &err) != 0) {
        est_fail(r, &err, 401);
        return;
    }
    struct pki_csr *csr = read_csr(r, NULL);
    if (csr != NULL)
        est_group_enroll(r, user, token, csr); /* answered after its group's commit */
    OPENSSL_cleanse(token, sizeof(token));
}

void est_h_simplereenroll(struct est_req *r)
{
    struct tw_err err;
    long verr = 0;
    X509 *peer = est_peer_cert(r, &verr);
    if (peer == NULL) {
        tw_err_set(&err, TW_ERR_POLICY,
                   "re-enrollment needs the current certificate as the TLS "
                   "client certificate (RFC 7030 3.3.2)");
        est_fail(r, &err, 403);
        return;
    }
    if (verr != X509_V_OK) {
        tw_err_set(&err, TW_ERR_POLICY, "client certificate refused: %s",
                   X509_verify_cert_error_string(verr));
        est_fail(r, &err, 403);
        return;
    }
    X509_NAME *subject = NULL;
    struct pki_csr *csr = read_csr(r, &subject);
    if (csr != NULL)
        est_group_reenroll(r, peer, subject, csr); /* answered after its group's commit */
}
