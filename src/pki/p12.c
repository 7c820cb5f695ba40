/* PKCS#12 bundles for browsers, phones, Java, Windows and macOS. */
#include <openssl/err.h>
#include <openssl/pkcs12.h>

#include "pki/pki.h"
#include "util/cleanup.h"

#define P12_ITER 10000       /* modern: PBKDF2 iterations for key and certificate bags */
#define P12_LEGACY_ITER 2048 /* legacy: what old importers expect */

int pki_p12_make(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, const char *name,
                 const struct pki_secret *pass, int legacy, unsigned char **der, size_t *len,
                 struct tw_err *err)
{
    TW_ENSURE(pass != NULL && pass->len > 0, err, TW_ERR_PKI,
              "a PKCS#12 file needs a non-empty password");
    TW_ENSURE(pki_key_matches_cert(key, cert), err, TW_ERR_PKI,
              "the private key does not belong to the certificate");
    /* Modern: AES-256-CBC with PBKDF2/HMAC-SHA256 and a SHA-256 MAC. Legacy: 3DES with the
     * PKCS#12 KDF and a SHA-1 MAC, the newest that macOS < 15, Windows < 10 1709 and Java 8
     * read. No MAC is made by PKCS12_create (mac_iter -1) so its digest can be chosen. */
    int nid = legacy ? NID_pbe_WithSHA1And3_Key_TripleDES_CBC : NID_aes_256_cbc;
    int iter = legacy ? P12_LEGACY_ITER : P12_ITER;
    TW_AUTO(PKCS12) *p12 = PKCS12_create(pass->data, name, key, cert, chain, nid, nid, iter, -1, 0);
    TW_ENSURE_OSSL(p12 != NULL, err, TW_ERR_PKI, "cannot build the PKCS#12 file");
    TW_GUARD_OSSL(PKCS12_set_mac(p12, pass->data, (int)pass->len, NULL, 0, iter,
                                 legacy ? EVP_sha1() : EVP_sha256()),
                  err, TW_ERR_PKI, "cannot add the PKCS#12 MAC");
    unsigned char *out = NULL;
    int n = i2d_PKCS12(p12, &out);
    TW_ENSURE_OSSL(n > 0, err, TW_ERR_PKI, "cannot encode the PKCS#12 file");
    *der = out;
    *len = (size_t)n;
    return 0;
}
