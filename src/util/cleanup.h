/* Scope-bound cleanup for OpenSSL and libc types: `TW_AUTO(X509) *cert = NULL;`
 * frees cert when it leaves scope. Hand ownership out with TW_TAKE(cert).
 * Use either these or one `out:` label in a function, never both. */
#ifndef TW_UTIL_CLEANUP_H
#define TW_UTIL_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TW_AUTO(type) __attribute__((cleanup(tw_cleanup_##type))) type

/* Returns the pointer and leaves NULL behind, so the cleanup becomes a no-op. */
#define TW_TAKE(p)                                                                                 \
    ({                                                                                             \
        __typeof__(p) tw_taken_ = (p);                                                             \
        (p) = NULL;                                                                                \
        tw_taken_;                                                                                 \
    })

#define TW_DEFINE_CLEANUP(type, freefn)                                                            \
    static inline void tw_cleanup_##type(type **p)                                                 \
    {                                                                                              \
        if (*p != NULL)                                                                            \
            freefn(*p);                                                                            \
    }

typedef STACK_OF(X509) X509_STACK;
typedef char charp;

static inline void tw_x509_stack_free(X509_STACK *sk)
{
    sk_X509_pop_free(sk, X509_free);
}

static inline void tw_fclose(FILE *f)
{
    fclose(f);
}

TW_DEFINE_CLEANUP(X509, X509_free)
TW_DEFINE_CLEANUP(X509_REQ, X509_REQ_free)
TW_DEFINE_CLEANUP(X509_CRL, X509_CRL_free)
TW_DEFINE_CLEANUP(X509_NAME, X509_NAME_free)
TW_DEFINE_CLEANUP(X509_EXTENSION, X509_EXTENSION_free)
TW_DEFINE_CLEANUP(X509_STORE, X509_STORE_free)
TW_DEFINE_CLEANUP(X509_STORE_CTX, X509_STORE_CTX_free)
TW_DEFINE_CLEANUP(X509_REVOKED, X509_REVOKED_free)
TW_DEFINE_CLEANUP(X509_STACK, tw_x509_stack_free)
TW_DEFINE_CLEANUP(GENERAL_NAMES, GENERAL_NAMES_free)
TW_DEFINE_CLEANUP(EVP_PKEY, EVP_PKEY_free)
TW_DEFINE_CLEANUP(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
TW_DEFINE_CLEANUP(EVP_MD_CTX, EVP_MD_CTX_free)
TW_DEFINE_CLEANUP(BIO, BIO_free_all)
TW_DEFINE_CLEANUP(BIGNUM, BN_free)
TW_DEFINE_CLEANUP(ASN1_INTEGER, ASN1_INTEGER_free)
TW_DEFINE_CLEANUP(ASN1_TIME, ASN1_TIME_free)
TW_DEFINE_CLEANUP(ASN1_OCTET_STRING, ASN1_OCTET_STRING_free)
TW_DEFINE_CLEANUP(PKCS12, PKCS12_free)
TW_DEFINE_CLEANUP(OCSP_REQUEST, OCSP_REQUEST_free)
TW_DEFINE_CLEANUP(OCSP_RESPONSE, OCSP_RESPONSE_free)
TW_DEFINE_CLEANUP(OCSP_BASICRESP, OCSP_BASICRESP_free)
TW_DEFINE_CLEANUP(OCSP_CERTID, OCSP_CERTID_free)
TW_DEFINE_CLEANUP(FILE, tw_fclose)
TW_DEFINE_CLEANUP(charp, free)

#endif
