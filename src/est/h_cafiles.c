/* The CA certificates over HTTP(S), for relying parties that build the path themselves:
 * GET /ca.crt is the issuing intermediate as DER (the target of the caIssuers URL in every
 * issued certificate, RFC 5280 §4.2.2.1: "application/pkix-cert", RFC 2585 §4.1), and
 * GET /chain.pem is intermediate then root as PEM (RFC 8555 §9.1's media type). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>

#include "est/internal.h"
#include "util/cleanup.h"

/* The CA does not change while `ca serve` runs; a day in caches is plenty. */
static const char ca_cache_control[] = "public, max-age=86400";

static int chain_pem(struct est_ca_files *f, struct pki_ca *ca, struct tw_err *err)
{
    TW_AUTO(X509_STACK) *chain = pki_ca_chain(ca, err);
    if (chain == NULL)
        return -1;
    for (int i = 0; i < sk_X509_num(chain); i++) {
        size_t len = 0;
        TW_AUTO(charp) *pem = pki_cert_to_pem(sk_X509_value(chain, i), &len, err);
        if (pem == NULL)
            return -1;
        char *grown = realloc(f->chain_pem, f->chain_pem_len + len + 1);
        TW_ENSURE(grown != NULL, err, TW_ERR_INTERNAL, "out of memory");
        memcpy(grown + f->chain_pem_len, pem, len);
        f->chain_pem = grown;
        f->chain_pem_len += len;
        f->chain_pem[f->chain_pem_len] = '\0';
    }
    return 0;
}

int est_ca_files_build(struct est_ca_files *f, struct pki_ca *ca, struct tw_err *err)
{
    X509 *issuing = pki_ca_intermediate_cert(ca);
    unsigned char *der = NULL;
    int len = i2d_X509(issuing, &der);
    TW_ENSURE_OSSL(len > 0, err, TW_ERR_INTERNAL, "cannot encode the intermediate certificate");
    f->ca_der = der;
    f->ca_der_len = (size_t)len;
    char hex[65];
    TW_GUARD(pki_cert_fingerprint(issuing, hex, NULL, err));
    snprintf(f->etag, sizeof(f->etag), "\"%.32s\"", hex);
    return chain_pem(f, ca, err);
}

void est_ca_files_free(struct est_ca_files *f)
{
    OPENSSL_free(f->ca_der);
    free(f->chain_pem);
    memset(f, 0, sizeof(*f));
}

static void send_ca_file(struct est_req *r, const char *type, const void *body, size_t len)
{
    const struct est_ca_files *f = &r->srv->ca_files;
    const char *const headers[] = {"ETag", f->etag, "Cache-Control", ca_cache_control, NULL};
    const char *inm =
        evhttp_find_header(evhttp_request_get_input_headers(r->req), "If-None-Match");
    if (est_etag_matches(inm, f->etag))
        est_reply(r, 304, NULL, NULL, 0, headers);
    else
        est_reply(r, 200, type, body, len, headers);
}

void est_h_ca_crt(struct est_req *r)
{
    const struct est_ca_files *f = &r->srv->ca_files;
    send_ca_file(r, "application/pkix-cert", f->ca_der, f->ca_der_len);
}

void est_h_chain_pem(struct est_req *r)
{
    const struct est_ca_files *f = &r->srv->ca_files;
    send_ca_file(r, "application/pem-certificate-chain", f->chain_pem, f->chain_pem_len);
}
