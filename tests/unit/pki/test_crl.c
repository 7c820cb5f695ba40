#include "pki_test_util.h"

#include <openssl/x509v3.h>

static void reasons_round_trip(void **state)
{
    (void)state;
    static const char *const names[] = {
        "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
        "superseded",    "cessationOfOperation", "certificateHold", NULL,
        "removeFromCRL", "privilegeWithdrawn",   "aACompromise"};
    struct tw_err err;
    for (int i = 0; i < PKI_REASON_COUNT; i++) {
        if (names[i] == NULL)
            continue;
        int code = -1;
        assert_int_equal(pki_reason_parse(names[i], &code, &err), 0);
        assert_int_equal(code, i);
        assert_string_equal(pki_reason_name(i), names[i]);
    }
    int code;
    assert_int_equal(pki_reason_parse("KEYCOMPROMISE", &code, &err), 0);
    assert_int_equal(code, 1);
    assert_int_equal(pki_reason_parse("lostIt", &code, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_string_equal(pki_reason_name(7), "unknown");
}

static int entry_reason(X509_REVOKED *r)
{
    ASN1_ENUMERATED *e = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL, NULL);
    if (e == NULL)
        return -1;
    int v = (int)ASN1_ENUMERATED_get(e);
    ASN1_ENUMERATED_free(e);
    return v;
}

static void crl_contents(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P384);
    struct tw_err err;
    struct pki_crl_entry entries[] = {{"0A1B", 1700000000, 0},
                                      {"FF00FF00FF00FF00FF00FF00FF00FF00", 1700000100, 1},
                                      {"77", 1700000200, 6}};
    time_t now = time(NULL);
    X509_CRL *crl = pki_crl_make(ca.signer, entries, 3, 42, now, 86400, &err);
    assert_non_null(crl);
    assert_int_equal(X509_CRL_get_version(crl), X509_CRL_VERSION_2);
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca.intermediate)), 1);
    assert_int_equal(
        X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca.intermediate)), 0);
    ASN1_INTEGER *num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    assert_non_null(num);
    assert_int_equal(ASN1_INTEGER_get(num), 42);
    ASN1_INTEGER_free(num);
    AUTHORITY_KEYID *aki = X509_CRL_get_ext_d2i(crl, NID_authority_key_identifier, NULL, NULL);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki->keyid, X509_get0_subject_key_id(ca.intermediate)),
                     0);
    AUTHORITY_KEYID_free(aki);
    int64_t next;
    assert_int_equal(pki_time_to_unix(X509_CRL_get0_nextUpdate(crl), &next, &err), 0);
    assert_int_equal(next, (int64_t)now + 86400);
    STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
    assert_int_equal(sk_X509_REVOKED_num(revs), 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
        long serial = ASN1_INTEGER_get(X509_REVOKED_get0_serialNumber(r));
        if (serial == 0x0A1B) /* unspecified: no reasonCode at all */
            assert_int_equal(entry_reason(r), -1), seen++;
        else if (serial == 0x77)
            assert_int_equal(entry_reason(r), 6), seen++;
        else
            assert_int_equal(entry_reason(r), 1), seen++;
    }
    assert_int_equal(seen, 3);
    X509_CRL_free(crl);
    test_ca_free(&ca);
}

static void crl_errors(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    struct pki_crl_entry bad[] = {{"not-hex", 1, 0}};
    assert_null(pki_crl_make(ca.signer, bad, 1, 1, time(NULL), 60, &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    struct pki_crl_entry reason7[] = {{"01", 1, 7}};
    assert_null(pki_crl_make(ca.signer, reason7, 1, 1, time(NULL), 60, &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_null(pki_crl_make(ca.signer, NULL, 0, 0, time(NULL), 60, &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    struct pki_signer *self = pki_signer_new(ca.root_key, NULL, &err);
    assert_null(pki_crl_make(self, NULL, 0, 1, time(NULL), 60, &err));
    assert_int_equal(err.code, TW_ERR_INTERNAL);
    pki_signer_free(self);
    test_ca_free(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reasons_round_trip),
        cmocka_unit_test(crl_contents),
        cmocka_unit_test(crl_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
