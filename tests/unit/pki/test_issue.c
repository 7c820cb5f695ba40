#include "pki_test_util.h"

#include <openssl/bn.h>
#include <openssl/x509v3.h>

static int verify_chain(struct test_ca *ca, X509 *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    sk_X509_push(untrusted, ca->intermediate);
    X509_STORE_add_cert(store, ca->root);
    X509_STORE_CTX_init(ctx, store, leaf, untrusted);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(ctx), X509_V_FLAG_X509_STRICT);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        print_error("verify: %s\n", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

/* The URI of the AIA access method nid in c ("" when absent), in a static buffer. */
static const char *aia_uri(X509 *c, int nid)
{
    static char uri[256];
    uri[0] = '\0';
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(c, NID_info_access, NULL, NULL);
    for (int i = 0; aia != NULL && i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
        ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
        if (OBJ_obj2nid(ad->method) == nid && ad->location->type == GEN_URI)
            snprintf(uri, sizeof(uri), "%.*s", ad->location->d.uniformResourceIdentifier->length,
                     (const char *)ad->location->d.uniformResourceIdentifier->data);
    }
    AUTHORITY_INFO_ACCESS_free(aia);
    return uri;
}

static void chain_of_each_key_type_verifies(void **state)
{
    (void)state;
    static const enum pki_key_type types[] = {PKI_KEY_EC_P256, PKI_KEY_EC_P384, PKI_KEY_ED25519,
                                              PKI_KEY_RSA2048};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct test_ca ca;
        test_ca_make(&ca, types[i]);
        struct tw_err err;
        EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
        struct pki_sans sans = {0};
        assert_int_equal(pki_sans_parse(&sans, "dns:www.example.test,ip:127.0.0.1", &err), 0);
        X509 *server =
            test_make(ca.signer, PKI_PROFILE_SERVER, "www.example.test", k, 86400, &sans);
        X509 *client = test_make(ca.signer, PKI_PROFILE_CLIENT, "alice", k, 86400, NULL);
        assert_int_equal(verify_chain(&ca, server, X509_PURPOSE_SSL_SERVER), 1);
        assert_int_equal(verify_chain(&ca, client, X509_PURPOSE_SSL_CLIENT), 1);
        /* the profiles do not overlap */
        assert_int_not_equal(verify_chain(&ca, client, X509_PURPOSE_SSL_SERVER), 1);
        assert_int_not_equal(verify_chain(&ca, server, X509_PURPOSE_SSL_CLIENT), 1);
        X509_free(server);
        X509_free(client);
        EVP_PKEY_free(k);
        test_ca_free(&ca);
    }
}

static void extensions_serial_and_times(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_RSA2048, &err);
    struct pki_sans sans = {0};
    assert_int_equal(pki_sans_parse(&sans, "dns:s.example", &err), 0);
    struct pki_cert_request req = {.profile = PKI_PROFILE_SERVER,
                                   .cn = "s.example",
                                   .sans = &sans,
                                   .pubkey = k,
                                   .lifetime = 90L * 86400,
                                   .base_url = "https://ca.example:8443"};
    time_t now = time(NULL);
    X509 *c = pki_cert_make(ca.signer, &req, now, &err);
    assert_non_null(c);
    /* serial: positive, at most 128 bits, non-zero */
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    assert_false(BN_is_negative(bn));
    assert_false(BN_is_zero(bn));
    assert_true(BN_num_bits(bn) <= 127);
    BN_free(bn);
    int64_t nb, na;
    assert_int_equal(pki_time_to_unix(X509_get0_notBefore(c), &nb, &err), 0);
    assert_int_equal(pki_time_to_unix(X509_get0_notAfter(c), &na, &err), 0);
    assert_int_equal(nb, (int64_t)now - PKI_BACKDATE_SECS);
    assert_int_equal(na, (int64_t)now + 90L * 86400);
    uint32_t ku = X509_get_key_usage(c);
    assert_true(ku & KU_DIGITAL_SIGNATURE);
    assert_true(ku & KU_KEY_ENCIPHERMENT); /* RSA server key */
    assert_true(X509_get_extended_key_usage(c) & XKU_SSL_SERVER);
    assert_non_null(X509_get0_subject_key_id(c));
    assert_non_null(X509_get0_authority_key_id(c));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(c),
                                           X509_get0_subject_key_id(ca.intermediate)),
                     0);
    assert_true(X509_get_ext_by_NID(c, NID_crl_distribution_points, -1) >= 0);
    assert_true(X509_get_ext_by_NID(c, NID_info_access, -1) >= 0);
    assert_string_equal(aia_uri(c, NID_ad_OCSP), "https://ca.example:8443/ocsp");
    assert_string_equal(aia_uri(c, NID_ad_ca_issuers), "https://ca.example:8443/ca.crt");
    assert_int_equal(X509_check_ca(c), 0);
    assert_int_equal(X509_check_ca(ca.intermediate), 1);
    assert_int_equal(X509_get_pathlen(ca.intermediate), 0);

    struct store_cert row;
    assert_int_equal(pki_cert_to_row(c, "s.example", PKI_PROFILE_SERVER, now, &row, &err), 0);
    assert_string_equal(row.subject, "CN=s.example");
    assert_string_equal(row.issuer, "CN=T Intermediate");
    assert_string_equal(row.sans, "dns:s.example");
    assert_string_equal(row.profile, "server");
    assert_int_equal(strlen(row.sha256), 64);
    assert_true(row.serial[0] != '0');
    assert_non_null(strstr(row.pem, "BEGIN CERTIFICATE"));
    store_cert_clear(&row);
    X509_free(c);
    EVP_PKEY_free(k);
    test_ca_free(&ca);
}

static void ocsp_signer_profile(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *c = test_make(ca.signer, PKI_PROFILE_OCSP, "T OCSP", k, 86400, NULL);
    assert_true(X509_get_extended_key_usage(c) & XKU_OCSP_SIGN);
    assert_true(X509_get_ext_by_NID(c, NID_id_pkix_OCSP_noCheck, -1) >= 0);
    assert_true(X509_get_ext_by_NID(c, NID_crl_distribution_points, -1) < 0);
    X509_free(c);
    EVP_PKEY_free(k);
    test_ca_free(&ca);
}

static void not_after_capped_at_issuer(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *c = test_make(ca.signer, PKI_PROFILE_CLIENT, "long", k, 50L * 365 * 86400, NULL);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(c), X509_get0_notAfter(ca.intermediate)),
                     0);
    X509_free(c);
    EVP_PKEY_free(k);
    test_ca_free(&ca);
}

static void bad_requests(void **state)
{
    (void)state;
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    struct pki_sans email = {0};
    assert_int_equal(pki_sans_parse(&email, "email:a@b.c", &err), 0);
    struct pki_cert_request reqs[] = {
        {.profile = PKI_PROFILE_SERVER, .cn = "nosan", .pubkey = k, .lifetime = 60},
        {.profile = PKI_PROFILE_SERVER, .cn = "s", .pubkey = k, .lifetime = 60, .sans = &email},
        {.profile = PKI_PROFILE_CLIENT, .cn = "zero", .pubkey = k, .lifetime = 0},
        {.profile = PKI_PROFILE_CLIENT, .cn = "", .pubkey = k, .lifetime = 60},
        {.profile = PKI_PROFILE_CLIENT, .cn = "nokey", .pubkey = NULL, .lifetime = 60},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        assert_null(pki_cert_make(ca.signer, &reqs[i], time(NULL), &err));
        assert_int_equal(err.code, TW_ERR_PKI);
    }
    /* an expired issuer issues nothing */
    struct pki_cert_request ok = {
        .profile = PKI_PROFILE_CLIENT, .cn = "late", .pubkey = k, .lifetime = 60};
    assert_null(pki_cert_make(ca.signer, &ok, time(NULL) + 400L * 86400, &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "expired"));
    /* a signer whose key is not the certificate's */
    assert_null(pki_signer_new(k, ca.intermediate, &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    EVP_PKEY_free(k);
    test_ca_free(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_of_each_key_type_verifies),
        cmocka_unit_test(extensions_serial_and_times),
        cmocka_unit_test(ocsp_signer_profile),
        cmocka_unit_test(not_after_capped_at_issuer),
        cmocka_unit_test(bad_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
