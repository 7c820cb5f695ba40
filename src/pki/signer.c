/* The signer: the only code that uses a CA private key. Keeps the key next to the certificate
 * it belongs to and picks the digest the key type calls for.
 *
 * OCSP signs one response per request, so the signer prepares once what does not change
 * between them: a signing context set up for the key (copied per signature instead of set up
 * again) and, for the responder, the CertID hashes of the issuer it answers for. The prepared
 * context is only read after pki_signer_new (each signature works on its own copy) and the
 * CertID table is filled under a lock, so sharing a signer between threads is no less safe
 * than before. `ca serve` is single-threaded anyway. */
#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"

#define ISSUER_IDS_MAX 4 /* digests cached: SHA-1 and SHA-256 in practice */

struct pki_signer {
    EVP_PKEY *key;
    X509 *cert;           /* NULL while making a self-signed root */
    EVP_MD_CTX *prepared; /* EVP_DigestSignInit done; NULL when that failed (set up per use) */
    CRYPTO_RWLOCK *lock;  /* guards the fields below */
    X509 *issuer;         /* the certificate issuer_ids belong to (up-referenced) */
    OCSP_CERTID *issuer_ids[ISSUER_IDS_MAX];
    int issuer_id_nids[ISSUER_IDS_MAX];
    size_t issuer_id_count;
};

/* Ed25519 signs the message itself (no separate digest); P-384 pairs with SHA-384. */
static const EVP_MD *digest_for(EVP_PKEY *key)
{
    if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
        return NULL;
    if (EVP_PKEY_is_a(key, "EC") && EVP_PKEY_get_bits(key) >= 384)
        return EVP_sha384();
    return EVP_sha256();
}

/* A fresh DigestSign context for key. */
static EVP_MD_CTX *sign_ctx_new(EVP_PKEY *key)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const EVP_MD *md = digest_for(key);
    if (ctx == NULL || EVP_DigestSignInit_ex(ctx, NULL, md != NULL ? EVP_MD_get0_name(md) : NULL,
                                             NULL, NULL, key, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct pki_signer *pki_signer_new(EVP_PKEY *key, X509 *cert, struct tw_err *err)
{
    TW_ENSURE_PTR(key != NULL, err, TW_ERR_INTERNAL, "signer without a key");
    TW_ENSURE_PTR(cert == NULL || pki_key_matches_cert(key, cert), err, TW_ERR_PKI,
                  "the CA key does not belong to the CA certificate");
    struct pki_signer *s = OPENSSL_zalloc(sizeof(*s));
    TW_ENSURE_PTR(s != NULL, err, TW_ERR_INTERNAL, "out of memory");
    s->lock = CRYPTO_THREAD_lock_new();
    if (s->lock == NULL) {
        OPENSSL_free(s);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    EVP_PKEY_up_ref(key);
    s->key = key;
    if (cert != NULL) {
        X509_up_ref(cert);
        s->cert = cert;
    }
    /* Only an optimisation: without it each signature sets its context up from scratch. */
    s->prepared = sign_ctx_new(key);
    ERR_clear_error();
    return s;
}

void pki_signer_free(struct pki_signer *s)
{
    if (s == NULL)
        return;
    EVP_MD_CTX_free(s->prepared);
    EVP_PKEY_free(s->key); /* the EVP_PKEY wipes its own secret material */
    X509_free(s->cert);
    for (size_t i = 0; i < s->issuer_id_count; i++)
        OCSP_CERTID_free(s->issuer_ids[i]);
    X509_free(s->issuer);
    CRYPTO_THREAD_lock_free(s->lock);
    OPENSSL_clear_free(s, sizeof(*s));
}

X509 *pki_signer_cert(const struct pki_signer *s)
{
    return s->cert;
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

/* A DigestSign context for one signature: a copy of the prepared one (the copy has its own
 * digest state and draws its own ECDSA nonce), else one set up from scratch. */
static EVP_MD_CTX *sign_ctx_for_one(struct pki_signer *s)
{
    if (s->prepared != NULL) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (ctx != NULL && EVP_MD_CTX_copy_ex(ctx, s->prepared) == 1)
            return ctx;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
    }
    return sign_ctx_new(s->key);
}

int pki_signer_sign_ocsp(struct pki_signer *s, OCSP_BASICRESP *resp, STACK_OF(X509) * certs,
                         struct tw_err *err)
{
    TW_ENSURE(s->cert != NULL, err, TW_ERR_INTERNAL, "OCSP signer without a certificate");
    TW_AUTO(EVP_MD_CTX) *ctx = sign_ctx_for_one(s);
    TW_ENSURE_OSSL(ctx != NULL, err, TW_ERR_PKI, "cannot set up OCSP signing");
    /* Flags 0: responderID by name, the signer's certificate included (RFC 6960 §4.2.2.2: a
     * delegated responder's certificate must reach the client). */
    TW_GUARD_OSSL(OCSP_basic_sign_ctx(resp, s->cert, ctx, certs, 0), err, TW_ERR_PKI,
                  "cannot sign the OCSP response");
    return 0;
}

/* Look md_nid up in the table; NULL when absent. Caller holds the lock. */
static const OCSP_CERTID *cached_id(const struct pki_signer *s, X509 *issuer, int md_nid)
{
    if (s->issuer != issuer)
        return NULL;
    for (size_t i = 0; i < s->issuer_id_count; i++)
        if (s->issuer_id_nids[i] == md_nid)
            return s->issuer_ids[i];
    return NULL;
}

/* Remember id (taking it) for issuer; 0 when there is no room, the caller keeps id then. */
static int remember_id(struct pki_signer *s, X509 *issuer, int md_nid, OCSP_CERTID *id)
{
    if (s->issuer != issuer) {
        if (s->issuer != NULL)
            return 0; /* one issuer per signer: the CA it answers for */
        X509_up_ref(issuer);
        s->issuer = issuer;
    }
    if (s->issuer_id_count == ISSUER_IDS_MAX)
        return 0;
    s->issuer_ids[s->issuer_id_count] = id;
    s->issuer_id_nids[s->issuer_id_count] = md_nid;
    s->issuer_id_count++;
    return 1;
}

int signer_ocsp_issued_by(struct pki_signer *s, X509 *issuer, const OCSP_CERTID *cid, int md_nid)
{
    if (!CRYPTO_THREAD_read_lock(s->lock))
        return 0;
    const OCSP_CERTID *want = cached_id(s, issuer, md_nid);
    int ok = want != NULL && OCSP_id_issuer_cmp(want, cid) == 0;
    CRYPTO_THREAD_unlock(s->lock);
    if (want != NULL)
        return ok;

    const EVP_MD *md = EVP_get_digestbynid(md_nid);
    OCSP_CERTID *id = md != NULL ? OCSP_cert_to_id(md, NULL, issuer) : NULL;
    ok = id != NULL && OCSP_id_issuer_cmp(id, cid) == 0;
    ERR_clear_error();
    if (id == NULL)
        return 0;
    int kept = 0;
    if (CRYPTO_THREAD_write_lock(s->lock)) {
        kept = cached_id(s, issuer, md_nid) == NULL && remember_id(s, issuer, md_nid, id);
        CRYPTO_THREAD_unlock(s->lock);
    }
    if (!kept)
        OCSP_CERTID_free(id);
    return ok;
}
