#include "pki_test_util.h"

#include <openssl/pkcs12.h>

static void modern_and_legacy_parse_back(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *c = test_make(ca.signer, PKI_PROFILE_CLIENT, "alice", k, 86400, NULL);
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, ca.intermediate);
    sk_X509_push(chain, ca.root);
    struct pki_secret pass;
    assert_int_equal(pki_secret_set(&pass, "s3cret", &err), 0);
    for (int legacy = 0; legacy <= 1; legacy++) {
        unsigned char *der = NULL;
        size_t len = 0;
        assert_int_equal(pki_p12_make(k, c, chain, "alice", &pass, legacy, &der, &len, &err), 0);
        const unsigned char *p = der;
        PKCS12 *p12 = d2i_PKCS12(NULL, &p, (long)len);
        assert_non_null(p12);
        assert_int_equal(PKCS12_verify_mac(p12, "s3cret", -1), 1);
        assert_int_equal(PKCS12_verify_mac(p12, "wrong", -1), 0);
        EVP_PKEY *pk = NULL;
        X509 *pc = NULL;
        STACK_OF(X509) *pcas = NULL;
        assert_int_equal(PKCS12_parse(p12, "s3cret", &pk, &pc, &pcas), 1);
        assert_int_equal(EVP_PKEY_eq(pk, k), 1);
        assert_int_equal(X509_cmp(pc, c), 0);
        assert_int_equal(sk_X509_num(pcas), 2);
        EVP_PKEY_free(pk);
        X509_free(pc);
        sk_X509_pop_free(pcas, X509_free);
        PKCS12_free(p12);
        OPENSSL_free(der);
    }
    unsigned char *der = NULL;
    size_t len = 0;
    struct pki_secret empty = {.len = 0};
    assert_int_equal(pki_p12_make(k, c, chain, "alice", &empty, 0, &der, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_int_equal(pki_p12_make(ca.int_key, c, chain, "alice", &pass, 0, &der, &len, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    pki_secret_wipe(&pass);
    sk_X509_free(chain);
    X509_free(c);
    EVP_PKEY_free(k);
    test_ca_free(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(modern_and_legacy_parse_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
