/* CSR intake: a PKCS#10 request from outside is parsed, its signature verified (proof that the
 * requester holds the private key), and only its public key and SANs are kept. Nothing else of
 * it reaches a certificate: extensions are never copied. */
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pki/internal.h"
#include "util/cleanup.h"

struct pki_csr {
    X509_REQ *req; /* kept for its SubjectPublicKeyInfo */
    EVP_PKEY *pubkey;
    struct pki_sans sans;
};

static const char pem_marker[] = "-----BEGIN ";

static X509_REQ *decode(const void *data, size_t len, const char *label, struct tw_err *err)
{
    X509_REQ *req = NULL;
    if (len >= sizeof(pem_marker) - 1 && memmem(data, len, pem_marker, sizeof(pem_marker) - 1)) {
        TW_AUTO(BIO) *bio = BIO_new_mem_buf(data, (int)len);
        TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
        req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    } else {
        const unsigned char *p = data;
        req = d2i_X509_REQ(NULL, &p, (long)len);
        /* DER must be exactly one request: trailing bytes mean a different or damaged file. */
        if (req != NULL && p != (const unsigned char *)data + len) {
            X509_REQ_free(req);
            return (tw_err_set(err, TW_ERR_PKI, "%s: trailing data after the CSR", label), NULL);
        }
    }
    if (req == NULL)
        tw_err_ossl(err, TW_ERR_PKI, "%s: not a PKCS#10 CSR (PEM or DER)", label);
    return req;
}

/* The SANs the requester asked for, from the extensionRequest attribute. */
static int collect_sans(X509_REQ *req, struct pki_csr *csr, const char *label, struct tw_err *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    if (exts == NULL) {
        ERR_clear_error();
        return 0;
    }
    int rc = 0, seen = 0;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts) && rc == 0; i++) {
        X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
            continue;
        if (seen++) {
            rc = tw_err_set(err, TW_ERR_PKI, "%s: more than one subjectAltName", label);
            break;
        }
        GENERAL_NAMES *names = X509V3_EXT_d2i(ext);
        if (names == NULL) {
            rc = tw_err_ossl(err, TW_ERR_PKI, "%s: malformed subjectAltName", label);
            break;
        }
        rc = sans_from_general_names(names, ~0u, label, &csr->sans, err);
        GENERAL_NAMES_free(names);
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    return rc;
}

struct pki_csr *pki_csr_parse(const void *data, size_t len, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(len > 0, err, TW_ERR_PKI, "%s: empty CSR", label);
    TW_ENSURE_PTR(len <= PKI_CSR_MAX, err, TW_ERR_PKI, "%s: CSR larger than %u bytes", label,
                  PKI_CSR_MAX);
    TW_AUTO(X509_REQ) *req = decode(data, len, label, err);
    if (req == NULL)
        return NULL;
    EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
    TW_ENSURE_PTR(pub != NULL, err, TW_ERR_PKI, "%s: CSR has no usable public key", label);
    ERR_clear_error();
    if (X509_REQ_verify(req, pub) != 1) {
        tw_err_set(err, TW_ERR_PKI, "%s: CSR signature does not verify (no proof of possession)",
                   label);
        ERR_clear_error();
        return NULL;
    }
    TW_GUARD_PTR(pki_key_check_public(pub, label, err));
    struct pki_csr *csr = OPENSSL_zalloc(sizeof(*csr));
    TW_ENSURE_PTR(csr != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (collect_sans(req, csr, label, err) != 0) {
        OPENSSL_free(csr);
        return NULL;
    }
    EVP_PKEY_up_ref(pub);
    csr->pubkey = pub;
    csr->req = TW_TAKE(req);
    return csr;
}

void pki_csr_free(struct pki_csr *csr)
{
    if (csr == NULL)
        return;
    EVP_PKEY_free(csr->pubkey);
    X509_REQ_free(csr->req);
    OPENSSL_free(csr);
}

EVP_PKEY *pki_csr_pubkey(const struct pki_csr *csr)
{
    return csr->pubkey;
}

const X509_PUBKEY *pki_csr_spki(const struct pki_csr *csr)
{
    return X509_REQ_get_X509_PUBKEY(csr->req);
}

int pki_csr_take_sans(const struct pki_csr *csr, enum pki_profile p, struct pki_sans *sans,
                      struct tw_err *err)
{
    for (size_t i = 0; i < csr->sans.count; i++) {
        const struct pki_san *san = &csr->sans.items[i];
        TW_ENSURE(pki_profile_allows_san(p, san->type), err, TW_ERR_PKI,
                  "CSR SAN %s:%s is not allowed in a %s certificate", pki_san_type_name(san->type),
                  san->value, pki_profile_name(p));
        TW_GUARD(pki_sans_add(sans, san->type, san->value, err));
    }
    return 0;
}
