/* RFC 9440 Client-Cert / Client-Cert-Chain values, and the header lines for every mode. */
#include "gateway/forward.h"

#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Append ":<base64 of cert's DER>:" (RFC 9440 §2.2: an sf-binary Item, RFC 8941 §3.3.5). */
static int append_sf_binary(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0)
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot encode the client certificate");
    /* EVP_EncodeBlock writes 4 bytes per 3 (padded, no newlines) plus a NUL. */
    size_t b64_cap = 4 * (((size_t)der_len + 2) / 3) + 1;
    unsigned char *b64 = malloc(b64_cap);
    if (b64 == NULL) {
        OPENSSL_free(der);
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    }
    int n = EVP_EncodeBlock(b64, der, der_len);
    OPENSSL_free(der);
    int rc = -1;
    if (n > 0 && tw_buf_append(out, ":", 1, err) == 0 &&
        tw_buf_append(out, b64, (size_t)n, err) == 0 && tw_buf_append(out, ":", 1, err) == 0)
        rc = 0;
    else if (n <= 0)
        tw_err_set(err, TW_ERR_INTERNAL, "cannot base64-encode the client certificate");
    free(b64);
    return rc;
}

int gw_forward_rfc9440_cert(struct tw_buf *out, X509 *cert, struct tw_err *err)
{
    TW_ENSURE(cert != NULL, err, TW_ERR_INTERNAL, "no client certificate to forward");
    return append_sf_binary(out, cert, err);
}

int gw_forward_rfc9440_chain(struct tw_buf *out, X509 *leaf, STACK_OF(X509) *chain,
                             struct tw_err *err)
{
    /* RFC 9440 §2.3: an sf-list of sf-binary, in the order the client sent them. */
    int written = 0;
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if (leaf != NULL && X509_cmp(c, leaf) == 0)
            continue;
        if (written > 0)
            TW_GUARD(tw_buf_append(out, ", ", 2, err));
        TW_GUARD(append_sf_binary(out, c, err));
        written++;
    }
    return 0;
}

static int chain_has_other(X509 *leaf, STACK_OF(X509) *chain)
{
    for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
        if (X509_cmp(sk_X509_value(chain, i), leaf) != 0)
            return 1;
    return 0;
}

static int line(struct tw_buf *out, const char *name, struct tw_err *err)
{
    return tw_buf_appendf(out, err, "%s: ", name);
}

int gw_forward_headers(struct tw_buf *out, X509 *cert, STACK_OF(X509) *chain, unsigned flags,
                       struct tw_err *err)
{
    TW_ENSURE(cert != NULL, err, TW_ERR_INTERNAL, "no client certificate to forward");
    if (flags & GW_FWD_CLIENT_CERT) {
        TW_GUARD(line(out, "Client-Cert", err));
        TW_GUARD(gw_forward_rfc9440_cert(out, cert, err));
        TW_GUARD(tw_buf_append(out, "\r\n", 2, err));
    }
    if ((flags & GW_FWD_CLIENT_CERT_CHAIN) && chain_has_other(cert, chain)) {
        TW_GUARD(line(out, "Client-Cert-Chain", err));
        TW_GUARD(gw_forward_rfc9440_chain(out, cert, chain, err));
        TW_GUARD(tw_buf_append(out, "\r\n", 2, err));
    }
    if (flags & GW_FWD_XFCC) {
        TW_GUARD(line(out, "X-Forwarded-Client-Cert", err));
        TW_GUARD(gw_forward_xfcc(out, cert, err));
        TW_GUARD(tw_buf_append(out, "\r\n", 2, err));
    }
    return 0;
}
