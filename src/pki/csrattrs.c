/* CSR attributes (RFC 7030 §4.5.2, with the ASN.1 of RFC 8951 §4): what a CSR for this CA
 * should look like, told to EST clients before they make one.
 *
 *   CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
 *   AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
 *
 * Built as a SEQUENCE OF ANY (ASN1_SEQUENCE_ANY): OIDs as ASN1_TYPE objects, attributes as
 * X509_ATTRIBUTEs encoded by OpenSSL. The key types and curves are those pki_key_check_public
 * accepts, so a client that follows them is never refused for its key. */
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "pki/internal.h"
#include "util/cleanup.h"

static void sequence_any_free(ASN1_SEQUENCE_ANY *seq)
{
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}
TW_DEFINE_CLEANUP(ASN1_SEQUENCE_ANY, sequence_any_free)
TW_DEFINE_CLEANUP(X509_ATTRIBUTE, X509_ATTRIBUTE_free)
TW_DEFINE_CLEANUP(ASN1_TYPE, ASN1_TYPE_free)

static int push(ASN1_SEQUENCE_ANY *seq, ASN1_TYPE *item, struct tw_err *err)
{
    if (sk_ASN1_TYPE_push(seq, item) <= 0) {
        ASN1_TYPE_free(item);
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    }
    return 0;
}

static int push_oid(ASN1_SEQUENCE_ANY *seq, int nid, struct tw_err *err)
{
    TW_AUTO(ASN1_TYPE) *t = ASN1_TYPE_new();
    TW_ENSURE_OSSL(t != NULL && ASN1_TYPE_set1(t, V_ASN1_OBJECT, OBJ_nid2obj(nid)) == 1, err,
                   TW_ERR_INTERNAL, "cannot encode OID %s", OBJ_nid2sn(nid));
    return push(seq, TW_TAKE(t), err);
}

/* Attribute { type, SET OF OBJECT IDENTIFIER values }. */
static int push_attr(ASN1_SEQUENCE_ANY *seq, int type, const int *values, size_t n,
                     struct tw_err *err)
{
    TW_AUTO(X509_ATTRIBUTE) *attr = X509_ATTRIBUTE_create_by_NID(
        NULL, type, V_ASN1_OBJECT, OBJ_nid2obj(values[0]), -1);
    TW_ENSURE_OSSL(attr != NULL, err, TW_ERR_INTERNAL, "cannot make attribute %s",
                   OBJ_nid2sn(type));
    for (size_t i = 1; i < n; i++)
        TW_GUARD_OSSL(X509_ATTRIBUTE_set1_data(attr, V_ASN1_OBJECT, OBJ_nid2obj(values[i]), -1),
                      err, TW_ERR_INTERNAL, "cannot add %s to attribute %s",
                      OBJ_nid2sn(values[i]), OBJ_nid2sn(type));
    unsigned char *der = NULL;
    int len = i2d_X509_ATTRIBUTE(attr, &der);
    TW_ENSURE_OSSL(len > 0, err, TW_ERR_INTERNAL, "cannot encode attribute %s", OBJ_nid2sn(type));
    /* An ANY of type SEQUENCE carries its whole encoding, tag and length included. */
    ASN1_STRING *s = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    TW_AUTO(ASN1_TYPE) *t = ASN1_TYPE_new();
    if (s == NULL || t == NULL) {
        OPENSSL_free(der);
        ASN1_STRING_free(s);
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    }
    ASN1_STRING_set0(s, der, len);
    ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
    return push(seq, TW_TAKE(t), err);
}

int pki_csrattrs_der(int profile, int challenge_password, unsigned char **der, size_t *len,
                     struct tw_err *err)
{
    TW_AUTO(ASN1_SEQUENCE_ANY) *seq = sk_ASN1_TYPE_new_null();
    TW_ENSURE(seq != NULL, err, TW_ERR_INTERNAL, "out of memory");
    /* RFC 7030 §3.5: the server takes a challengePassword (its tokens go in HTTP Basic). */
    if (challenge_password)
        TW_GUARD(push_oid(seq, NID_pkcs9_challengePassword, err));
    /* Key types, the preferred first: EC on the accepted curves, RSA, Ed25519. */
    TW_GUARD(push_attr(seq, NID_X9_62_id_ecPublicKey, key_ec_curve_nids, KEY_EC_CURVES, err));
    TW_GUARD(push_oid(seq, NID_rsaEncryption, err));
    TW_GUARD(push_oid(seq, NID_ED25519, err));
    /* How to sign the CSR: SHA-256 with EC or RSA (Ed25519 is its own algorithm, above). */
    TW_GUARD(push_oid(seq, NID_ecdsa_with_SHA256, err));
    TW_GUARD(push_oid(seq, NID_sha256WithRSAEncryption, err));
    /* A server certificate needs a SAN: ask for one in the extensionRequest. */
    if (profile == PKI_PROFILE_SERVER) {
        static const int san[] = {NID_subject_alt_name};
        TW_GUARD(push_attr(seq, NID_ext_req, san, 1, err));
    }
    unsigned char *out = NULL;
    int n = i2d_ASN1_SEQUENCE_ANY(seq, &out);
    TW_ENSURE_OSSL(n > 0, err, TW_ERR_INTERNAL, "cannot encode the CSR attributes");
    *der = out;
    *len = (size_t)n;
    return 0;
}
