/* EST wire objects (RFC 7030): certs-only PKCS#7 for responses, and PKCS#10 requests as
 * `twoway enroll` and `twoway renew` make them. The requester's own key signs its CSR; no CA
 * key is involved here. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "keystore/keystore.h"
#include "pki/internal.h"
#include "util/cleanup.h"

TW_DEFINE_CLEANUP(PKCS7, PKCS7_free)

int pki_p7_certs_only(STACK_OF(X509) * certs, unsigned char **der, size_t *len, struct tw_err *err)
{
    TW_AUTO(PKCS7) *p7 = PKCS7_new();
    TW_ENSURE_OSSL(p7 != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD_OSSL(PKCS7_set_type(p7, NID_pkcs7_signed), err, TW_ERR_PKI, "cannot build the PKCS#7");
    TW_GUARD_OSSL(PKCS7_content_new(p7, NID_pkcs7_data), err, TW_ERR_PKI,
                  "cannot build the PKCS#7");
    for (int i = 0; i < sk_X509_num(certs); i++)
        TW_GUARD_OSSL(PKCS7_add_certificate(p7, sk_X509_value(certs, i)), err, TW_ERR_PKI,
                      "cannot add a certificate to the PKCS#7");
    unsigned char *buf = NULL;
    int n = i2d_PKCS7(p7, &buf);
    TW_ENSURE_OSSL(n > 0, err, TW_ERR_PKI, "cannot encode the PKCS#7");
    *der = buf;
    *len = (size_t)n;
    return 0;
}

STACK_OF(X509) *
    pki_p7_certs_parse(const void *der, size_t len, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(len > 0 && len < (64u << 20), err, TW_ERR_PKI, "%s: empty or oversized PKCS#7",
                  label);
    const unsigned char *p = der;
    TW_AUTO(PKCS7) *p7 = d2i_PKCS7(NULL, &p, (long)len);
    if (p7 == NULL) {
        tw_err_ossl(err, TW_ERR_PKI, "%s: not a PKCS#7 structure", label);
        return NULL;
    }
    TW_ENSURE_PTR(PKCS7_type_is_signed(p7) && p7->d.sign != NULL, err, TW_ERR_PKI,
                  "%s: PKCS#7 is not SignedData (certs-only)", label);
    STACK_OF(X509) *in = p7->d.sign->cert;
    TW_ENSURE_PTR(sk_X509_num(in) > 0, err, TW_ERR_PKI, "%s: PKCS#7 holds no certificate", label);
    TW_AUTO(X509_STACK) *out = sk_X509_new_null();
    TW_ENSURE_PTR(out != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < sk_X509_num(in); i++) {
        X509 *c = sk_X509_value(in, i);
        TW_ENSURE_PTR(sk_X509_push(out, c) > 0, err, TW_ERR_INTERNAL, "out of memory");
        X509_up_ref(c);
    }
    return TW_TAKE(out);
}

X509_NAME *pki_csr_subject(const void *data, size_t len, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(len > 0 && len <= PKI_CSR_MAX, err, TW_ERR_PKI, "%s: empty or oversized CSR",
                  label);
    TW_AUTO(X509_REQ) *req = NULL;
    static const char marker[] = "-----BEGIN ";
    if (memmem(data, len, marker, sizeof(marker) - 1) != NULL) {
        TW_AUTO(BIO) *bio = BIO_new_mem_buf(data, (int)len);
        TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
        req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    } else {
        const unsigned char *p = data;
        req = d2i_X509_REQ(NULL, &p, (long)len);
    }
    if (req == NULL) {
        tw_err_ossl(err, TW_ERR_PKI, "%s: not a PKCS#10 CSR", label);
        return NULL;
    }
    X509_NAME *name = X509_NAME_dup(X509_REQ_get_subject_name(req));
    TW_ENSURE_PTR(name != NULL, err, TW_ERR_INTERNAL, "out of memory");
    return name;
}

/* Ed25519 signs without a separate digest; P-384 pairs with SHA-384, as the CA signs. */
static const EVP_MD *csr_digest(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        return NULL;
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) >= 384)
        return EVP_sha384();
    return EVP_sha256();
}

static int csr_names(X509_REQ *req, const char *cn, const struct pki_sans *sans, X509 *from,
                     struct tw_err *err)
{
    if (from != NULL) {
        TW_GUARD_OSSL(X509_REQ_set_subject_name(req, X509_get_subject_name(from)), err, TW_ERR_PKI,
                      "cannot set the CSR subject");
    } else {
        X509_NAME *name = X509_REQ_get_subject_name(req);
        TW_GUARD_OSSL(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                                 (const unsigned char *)cn, -1, -1, 0),
                      err, TW_ERR_PKI, "cannot set the CSR subject CN=%s", cn);
    }
    struct pki_sans copy;
    memset(&copy, 0, sizeof(copy));
    if (from != NULL)
        TW_GUARD(sans_from_cert(from, &copy, err));
    else if (sans != NULL)
        copy = *sans;
    if (copy.count == 0)
        return 0;
    TW_AUTO(GENERAL_NAMES) *names = sans_to_general_names(&copy, err);
    if (names == NULL)
        return -1;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, names);
    int ok = exts != NULL && ext != NULL && sk_X509_EXTENSION_push(exts, ext) > 0;
    if (!ok)
        X509_EXTENSION_free(ext);
    ok = ok && X509_REQ_add_extensions(req, exts) == 1;
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    TW_ENSURE_OSSL(ok, err, TW_ERR_PKI, "cannot add SANs to the CSR");
    return 0;
}

int pki_csr_make(EVP_PKEY *key, const char *cn, const struct pki_sans *sans, X509 *from,
                 unsigned char **der, size_t *len, struct tw_err *err)
{
    TW_ENSURE(from != NULL || (cn != NULL && cn[0] != '\0'), err, TW_ERR_USAGE,
              "a CSR needs a subject");
    TW_AUTO(X509_REQ) *req = X509_REQ_new();
    TW_ENSURE_OSSL(req != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD_OSSL(X509_REQ_set_version(req, X509_REQ_VERSION_1), err, TW_ERR_PKI,
                  "cannot build the CSR");
    TW_AUTO(EVP_PKEY) *pub = keystore_public(key, err); /* a token key encodes as its public half */
    TW_ENSURE(pub != NULL, err, TW_ERR_PKI, "cannot build the CSR: %s", err->msg);
    TW_GUARD_OSSL(X509_REQ_set_pubkey(req, pub), err, TW_ERR_PKI, "cannot build the CSR");
    TW_GUARD(csr_names(req, cn, sans, from, err));
    TW_ENSURE_OSSL(X509_REQ_sign(req, key, csr_digest(key)) > 0, err, TW_ERR_PKI,
                   "cannot sign the CSR");
    unsigned char *buf = NULL;
    int n = i2d_X509_REQ(req, &buf);
    TW_ENSURE_OSSL(n > 0, err, TW_ERR_PKI, "cannot encode the CSR");
    *der = buf;
    *len = (size_t)n;
    return 0;
}
