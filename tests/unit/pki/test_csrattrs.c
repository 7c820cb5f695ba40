/* CSR attributes (RFC 7030 §4.5.2): decoded back with OpenSSL, item by item, for each profile
 * and with or without challengePassword; and every announced key type is one the CA accepts. */
#include "pki_test_util.h"

#include <openssl/asn1.h>
#include <openssl/ec.h>
#include <openssl/x509.h>

/* The attributes as a SEQUENCE OF ANY; NULL when they do not decode exactly. */
static ASN1_SEQUENCE_ANY *decode(int profile, int challenge)
{
    struct tw_err err;
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_csrattrs_der(profile, challenge, &der, &len, &err), 0);
    const unsigned char *p = der;
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    assert_non_null(seq);
    assert_ptr_equal(p, der + len);
    OPENSSL_free(der);
    return seq;
}

static int oid_at(ASN1_SEQUENCE_ANY *seq, int i)
{
    ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);
    return ASN1_TYPE_get(t) == V_ASN1_OBJECT ? OBJ_obj2nid(t->value.object) : NID_undef;
}

/* The attribute at i, decoded as an X509_ATTRIBUTE (NULL when it is an OID). */
static X509_ATTRIBUTE *attr_at(ASN1_SEQUENCE_ANY *seq, int i)
{
    ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);
    if (ASN1_TYPE_get(t) != V_ASN1_SEQUENCE)
        return NULL;
    const unsigned char *p = t->value.sequence->data;
    return d2i_X509_ATTRIBUTE(NULL, &p, t->value.sequence->length);
}

/* The attribute at i, which must be of type nid with count values. */
static X509_ATTRIBUTE *attr_of(ASN1_SEQUENCE_ANY *seq, int i, int nid, int count)
{
    X509_ATTRIBUTE *attr = attr_at(seq, i);
    assert_non_null(attr);
    assert_int_equal(OBJ_obj2nid(X509_ATTRIBUTE_get0_object(attr)), nid);
    assert_int_equal(X509_ATTRIBUTE_count(attr), count);
    return attr;
}

static void free_seq(ASN1_SEQUENCE_ANY *seq)
{
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

static void client_with_challenge(void **state)
{
    (void)state;
    ASN1_SEQUENCE_ANY *seq = decode(PKI_PROFILE_CLIENT, 1);
    assert_int_equal(sk_ASN1_TYPE_num(seq), 6);
    assert_int_equal(oid_at(seq, 0), NID_pkcs9_challengePassword);
    X509_ATTRIBUTE *ec = attr_of(seq, 1, NID_X9_62_id_ecPublicKey, 3);
    /* Every curve announced is one the CA takes: a key on it passes pki_key_check_public. */
    for (int i = 0; i < 3; i++) {
        ASN1_OBJECT *curve = X509_ATTRIBUTE_get0_data(ec, i, V_ASN1_OBJECT, NULL);
        assert_non_null(curve);
        EVP_PKEY *key = EVP_EC_gen(OBJ_nid2sn(OBJ_obj2nid(curve)));
        assert_non_null(key);
        struct tw_err err;
        assert_int_equal(pki_key_check_public(key, "t", &err), 0);
        EVP_PKEY_free(key);
    }
    X509_ATTRIBUTE_free(ec);
    assert_int_equal(oid_at(seq, 2), NID_rsaEncryption);
    assert_int_equal(oid_at(seq, 3), NID_ED25519);
    assert_int_equal(oid_at(seq, 4), NID_ecdsa_with_SHA256);
    assert_int_equal(oid_at(seq, 5), NID_sha256WithRSAEncryption);
    free_seq(seq);
}

static void server_asks_for_a_san_and_no_challenge_without_tokens(void **state)
{
    (void)state;
    ASN1_SEQUENCE_ANY *seq = decode(PKI_PROFILE_SERVER, 0);
    assert_int_equal(sk_ASN1_TYPE_num(seq), 6);
    assert_int_not_equal(oid_at(seq, 0), NID_pkcs9_challengePassword);
    X509_ATTRIBUTE *ext = attr_of(seq, 5, NID_ext_req, 1);
    ASN1_OBJECT *want = X509_ATTRIBUTE_get0_data(ext, 0, V_ASN1_OBJECT, NULL);
    assert_int_equal(OBJ_obj2nid(want), NID_subject_alt_name);
    X509_ATTRIBUTE_free(ext);
    free_seq(seq);
    /* No label: no SAN request (the token decides the profile). */
    seq = decode(-1, 1);
    assert_int_equal(sk_ASN1_TYPE_num(seq), 6);
    for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++)
        assert_int_not_equal(oid_at(seq, i), NID_ext_req);
    free_seq(seq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(client_with_challenge),
        cmocka_unit_test(server_asks_for_a_san_and_no_challenge_without_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
