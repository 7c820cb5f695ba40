/* A certificate's identity as twoway logs, forwards and matches it. Every field comes from an
 * OpenSSL getter; nothing here parses ASN.1 by hand. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tlsx/internal.h"
#include "util/buf.h"

int64_t tlsx_asn1_time_unix(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

static int list_push(struct tlsx_strlist *l, const unsigned char *s, size_t len, const char *what,
                     struct tw_err *err)
{
    /* An embedded NUL would let "good.example\0.evil" match as "good.example". */
    TW_ENSURE(memchr(s, '\0', len) == NULL, err, TW_ERR_VERIFY,
              "certificate %s contains a NUL byte", what);
    char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
    TW_ENSURE(v != NULL, err, TW_ERR_INTERNAL, "out of memory");
    l->v = v;
    char *copy = malloc(len + 1);
    TW_ENSURE(copy != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(copy, s, len);
    copy[len] = '\0';
    l->v[l->n++] = copy;
    return 0;
}

static void list_free(struct tlsx_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Every entry of nid in name, as UTF-8. */
static int name_entries(const X509_NAME *name, int nid, struct tlsx_strlist *out, const char *what,
                        struct tw_err *err)
{
    for (int i = -1; (i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0;) {
        const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
        unsigned char *utf8 = NULL;
        int len = ASN1_STRING_to_UTF8(&utf8, s);
        TW_ENSURE(len >= 0, err, TW_ERR_VERIFY, "certificate %s is not a valid string", what);
        int rc = list_push(out, utf8, (size_t)len, what, err);
        OPENSSL_free(utf8);
        TW_GUARD(rc);
    }
    return 0;
}

static int sans(X509 *cert, struct tlsx_identity *id, struct tw_err *err)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL)
        return 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        struct tlsx_strlist *l = gn->type == GEN_DNS     ? &id->dns
                                 : gn->type == GEN_EMAIL ? &id->email
                                 : gn->type == GEN_URI   ? &id->uri
                                                         : NULL;
        if (l == NULL)
            continue;
        /* dNSName, rfc822Name and URI are all IA5String. */
        const ASN1_IA5STRING *s = gn->d.ia5;
        rc = list_push(l, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s), "subjectAltName",
                       err);
    }
    GENERAL_NAMES_free(names);
    return rc;
}

static char *dn_string(const X509_NAME *name)
{
    /* RFC 2253 order and escaping, but UTF-8 kept as UTF-8 rather than \XX escapes. */
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return NULL;
    char *out = NULL;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        out = malloc((size_t)n + 1);
        if (out != NULL) {
            if (n > 0)
                memcpy(out, p, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(bio);
    return out;
}

static int serial_hex(X509 *cert, struct tlsx_identity *id, struct tw_err *err)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    TW_ENSURE(bn != NULL, err, TW_ERR_VERIFY, "certificate serial number is invalid");
    char *hex = BN_bn2hex(bn); /* upper-case, "-" prefix when negative */
    BN_free(bn);
    TW_ENSURE(hex != NULL, err, TW_ERR_INTERNAL, "out of memory");
    size_t len = strlen(hex);
    int fits = len < sizeof(id->serial_hex);
    if (fits)
        memcpy(id->serial_hex, hex, len + 1);
    OPENSSL_free(hex);
    TW_ENSURE(fits, err, TW_ERR_VERIFY,
              "certificate serial number is longer than 20 bytes (RFC 5280 4.1.2.2)");
    return 0;
}

static int fill(X509 *cert, struct tlsx_identity *id, struct tw_err *err)
{
    const X509_NAME *subject = X509_get_subject_name(cert);
    id->subject = dn_string(subject);
    id->issuer = dn_string(X509_get_issuer_name(cert));
    TW_ENSURE(id->subject != NULL && id->issuer != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_GUARD(name_entries(subject, NID_commonName, &id->cns, "CN", err));
    TW_GUARD(name_entries(subject, NID_organizationName, &id->o, "O", err));
    TW_GUARD(name_entries(subject, NID_organizationalUnitName, &id->ou, "OU", err));
    id->cn = id->cns.n > 0 ? id->cns.v[0] : NULL;
    TW_GUARD(sans(cert, id, err));
    TW_GUARD(serial_hex(cert, id, err));

    int len = i2d_X509(cert, &id->der);
    TW_ENSURE(len > 0, err, TW_ERR_VERIFY, "certificate cannot be encoded");
    id->der_len = (size_t)len;
    unsigned int mdlen = 0;
    TW_ENSURE(EVP_Digest(id->der, id->der_len, id->sha256, &mdlen, EVP_sha256(), NULL) == 1, err,
              TW_ERR_INTERNAL, "SHA-256 failed");
    tw_hex_encode(id->sha256, sizeof(id->sha256), id->sha256_hex);
    id->not_before = tlsx_asn1_time_unix(X509_get0_notBefore(cert));
    id->not_after = tlsx_asn1_time_unix(X509_get0_notAfter(cert));
    return 0;
}

struct tlsx_identity *tlsx_identity_new(X509 *cert, struct tw_err *err)
{
    TW_ENSURE_PTR(cert != NULL, err, TW_ERR_VERIFY, "no certificate");
    struct tlsx_identity *id = calloc(1, sizeof(*id));
    TW_ENSURE_PTR(id != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (fill(cert, id, err) != 0) {
        tlsx_identity_free(id);
        return NULL;
    }
    return id;
}

void tlsx_identity_free(struct tlsx_identity *id)
{
    if (id == NULL)
        return;
    free(id->subject);
    free(id->issuer);
    list_free(&id->cns);
    list_free(&id->o);
    list_free(&id->ou);
    list_free(&id->dns);
    list_free(&id->email);
    list_free(&id->uri);
    OPENSSL_free(id->der);
    free(id);
}
