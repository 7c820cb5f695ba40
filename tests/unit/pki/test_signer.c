/* The signer: the one door to a CA key, for certificates, CRLs and OCSP responses. */
#include "pki_test_util.h"

#include <openssl/ocsp.h>

static void ocsp_response_verifies(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *ok = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *responder = test_make(ca.signer, PKI_PROFILE_OCSP, "T OCSP", ok, 86400, NULL);
    X509 *leaf = test_make(ca.signer, PKI_PROFILE_CLIENT, "alice", ok, 86400, NULL);
    struct pki_signer *signer = pki_signer_new(ok, responder, &err);
    assert_non_null(signer);

    OCSP_BASICRESP *resp = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, ca.intermediate);
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    assert_non_null(OCSP_basic_add1_status(resp, id, V_OCSP_CERTSTATUS_GOOD, 0, NULL, now, NULL));
    assert_int_equal(pki_signer_sign_ocsp(signer, resp, NULL, &err), 0);

    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.root);
    STACK_OF(X509) *certs = sk_X509_new_null();
    sk_X509_push(certs, ca.intermediate);
    assert_int_equal(OCSP_basic_verify(resp, certs, store, 0), 1);

    /* a self-signing signer (no certificate) cannot sign OCSP */
    struct pki_signer *self = pki_signer_new(ok, NULL, &err);
    assert_int_equal(pki_signer_sign_ocsp(self, resp, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    assert_null(pki_signer_cert(self));
    assert_ptr_equal(pki_signer_cert(signer), responder);

    pki_signer_free(self);
    pki_signer_free(NULL);
    sk_X509_free(certs);
    X509_STORE_free(store);
    ASN1_TIME_free(now);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(resp);
    pki_signer_free(signer);
    X509_free(leaf);
    X509_free(responder);
    EVP_PKEY_free(ok);
    test_ca_free(&ca);
}

/* Every OCSP signature starts from the same prepared context: each must still draw its own
 * ECDSA nonce (same content, different signature) and verify. */
static void ocsp_signatures_are_fresh(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *ok = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *responder = test_make(ca.signer, PKI_PROFILE_OCSP, "T OCSP", ok, 86400, NULL);
    struct pki_signer *signer = pki_signer_new(ok, responder, &err);
    assert_non_null(signer);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca.root);
    STACK_OF(X509) *certs = sk_X509_new_null();
    sk_X509_push(certs, ca.intermediate);
    X509 *leaf = test_make(ca.signer, PKI_PROFILE_CLIENT, "alice", ok, 86400, NULL);
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, ca.intermediate);
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    OCSP_BASICRESP *resp[2];
    for (int i = 0; i < 2; i++) {
        resp[i] = OCSP_BASICRESP_new();
        assert_non_null(
            OCSP_basic_add1_status(resp[i], id, V_OCSP_CERTSTATUS_GOOD, 0, NULL, now, NULL));
        assert_int_equal(pki_signer_sign_ocsp(signer, resp[i], NULL, &err), 0);
        assert_int_equal(OCSP_basic_verify(resp[i], certs, store, 0), 1);
    }
    const ASN1_OCTET_STRING *a = OCSP_resp_get0_signature(resp[0]);
    const ASN1_OCTET_STRING *b = OCSP_resp_get0_signature(resp[1]);
    assert_int_not_equal(ASN1_STRING_cmp(a, b), 0);
    OCSP_BASICRESP_free(resp[0]);
    OCSP_BASICRESP_free(resp[1]);
    ASN1_TIME_free(now);
    OCSP_CERTID_free(id);
    X509_free(leaf);
    sk_X509_free(certs);
    X509_STORE_free(store);
    pki_signer_free(signer);
    X509_free(responder);
    EVP_PKEY_free(ok);
    test_ca_free(&ca);
}

static void signer_needs_a_key(void **state)
{
    (void)state;
    struct tw_err err;
    assert_null(pki_signer_new(NULL, NULL, &err));
    assert_int_equal(err.code, TW_ERR_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ocsp_response_verifies),
        cmocka_unit_test(ocsp_signatures_are_fresh),
        cmocka_unit_test(signer_needs_a_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
