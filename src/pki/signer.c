/* The signer: the only code that uses a CA private key. Keeps the key next to the certificate
 * it belongs to and picks the digest the key type calls for. */
#include <openssl/err.h>

#include "pki/pki.h"

struct pki_signer {
    EVP_PKEY *key;
    X509 *cert; /* NULL while making a self-signed root */
};

struct pki_signer *pki_signer_new(EVP_PKEY *key, X509 *cert, struct tw_err *err)
{
    TW_ENSURE_PTR(key != NULL, err, TW_ERR_INTERNAL, "signer without a key");
    TW_ENSURE_PTR(cert == NULL || pki_key_matches_cert(key, cert), err, TW_ERR_PKI,
                  "the CA key does not belong to the CA certificate");
    struct pki_signer *s = OPENSSL_zalloc(sizeof(*s));
    TW_ENSURE_PTR(s != NULL, err, TW_ERR_INTERNAL, "out of memory");
    EVP_PKEY_up_ref(key);
    s->key = key;
    if (cert != NULL) {
        X509_up_ref(cert);
        s->cert = cert;
    }
    return s;
}

void pki_signer_free(struct pki_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->key); /* the EVP_PKEY wipes its own secret material */
    X509_free(s->cert);
    OPENSSL_clear_free(s, sizeof(*s));
}

X509 *pki_signer_cert(const struct pki_signer *s)
{
    return s->cert;
}

/* Ed25519 signs the message itself (no separate digest); P-384 pairs with SHA-384. */
static const EVP_MD *digest_for(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        return NULL;
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) >= 384)
        return EVP_sha384();
    return EVP_sha256();
}

int pki_signer_sign_cert(struct pki_signer *s, X509 *cert, struct tw_err *err)
{
    TW_ENSURE_OSSL(X509_sign(cert, s->key, digest_for(s->key)) > 0, err, TW_ERR_PKI,
                   "cannot sign the certificate");
    return 0;
}

int pki_signer_sign_crl(struct pki_signer *s, X509_CRL *crl, struct tw_err *err)
{
    TW_ENSURE_OSSL(X509_CRL_sign(crl, s->key, digest_for(s->key)) > 0, err, TW_ERR_PKI,
                   "cannot sign the CRL");
    return 0;
}

int pki_signer_sign_ocsp(struct pki_signer *s, OCSP_BASICRESP *resp, STACK_OF(X509) * certs,
                         struct tw_err *err)
{
    TW_ENSURE(s->cert != NULL, err, TW_ERR_INTERNAL, "OCSP signer without a certificate");
    TW_GUARD_OSSL(OCSP_basic_sign(resp, s->cert, s->key, digest_for(s->key), certs, 0), err,
                  TW_ERR_PKI, "cannot sign the OCSP response");
    return 0;
}
