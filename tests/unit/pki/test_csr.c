#include "pki_test_util.h"

#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* A CSR made the way a client would: subject, SAN extension request, signed by key. */
static X509_REQ *make_req(EVP_PKEY *key, const char *san)
{
    X509_REQ *req = X509_REQ_new();
    X509_REQ_set_version(req, X509_REQ_VERSION_1);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"requested-cn", -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    if (san != NULL)
        sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san));
    /* an extension that must never be copied: CA:TRUE */
    sk_X509_EXTENSION_push(
        exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE"));
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    const EVP_MD *md = EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256();
    assert_true(X509_REQ_sign(req, key, md) > 0);
    return req;
}

static char *to_pem(X509_REQ *req, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, req);
    char *mem;
    long n = BIO_get_mem_data(b, &mem);
    char *out = malloc((size_t)n);
    memcpy(out, mem, (size_t)n);
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

static void pem_and_der_accepted(void **state)
{
    (void)state;
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509_REQ *req = make_req(k, "DNS:bob.example,email:bob@example.com");
    size_t len;
    char *pem = to_pem(req, &len);
    struct pki_csr *csr = pki_csr_parse(pem, len, "bob.csr", &err);
    assert_non_null(csr);
    assert_int_equal(EVP_PKEY_eq(pki_csr_pubkey(csr), k), 1);
    struct pki_sans sans = {0};
    assert_int_equal(pki_csr_take_sans(csr, PKI_PROFILE_CLIENT, &sans, &err), 0);
    assert_int_equal(sans.count, 2);
    struct pki_sans srv = {0};
    assert_int_equal(pki_csr_take_sans(csr, PKI_PROFILE_SERVER, &srv, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "email:bob@example.com"));
    pki_csr_free(csr);
    free(pem);

    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    csr = pki_csr_parse(der, (size_t)n, "bob.der", &err);
    assert_non_null(csr);
    pki_csr_free(csr);
    /* DER followed by junk is not one CSR */
    unsigned char *longer = malloc((size_t)n + 3);
    memcpy(longer, der, (size_t)n);
    memcpy(longer + n, "xyz", 3);
    assert_null(pki_csr_parse(longer, (size_t)n + 3, "junk.der", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    free(longer);
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
}

static void bad_signature_is_no_proof_of_possession(void **state)
{
    (void)state;
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_ED25519, &err);
    EVP_PKEY *other = pki_key_generate(PKI_KEY_ED25519, &err);
    X509_REQ *req = make_req(k, NULL);
    X509_REQ_set_pubkey(req, other); /* signature made by k, key claims to be other */
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_null(pki_csr_parse(der, (size_t)n, "csr.pem", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_string_equal(err.msg, "csr.pem: CSR signature does not verify (no proof of possession)");
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void garbage_size_and_weak_keys(void **state)
{
    (void)state;
    struct tw_err err;
    assert_null(pki_csr_parse("hello", 5, "x.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "x.csr"));
    assert_null(pki_csr_parse("", 0, "empty.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    static const char pemjunk[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                                  "-----END CERTIFICATE REQUEST-----\n";
    assert_null(pki_csr_parse(pemjunk, sizeof(pemjunk) - 1, "j.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    char *big = calloc(1, PKI_CSR_MAX + 1);
    assert_null(pki_csr_parse(big, PKI_CSR_MAX + 1, "big.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "larger than"));
    free(big);
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    X509_REQ *req = make_req(weak, NULL);
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_null(pki_csr_parse(der, (size_t)n, "weak.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "1024"));
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(weak);
}

static void unsupported_san_kind(void **state)
{
    (void)state;
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509_REQ *req = make_req(k, "RID:1.2.3.4");
    unsigned char *der = NULL;
    int n = i2d_X509_REQ(req, &der);
    assert_null(pki_csr_parse(der, (size_t)n, "rid.csr", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_non_null(strstr(err.msg, "rid.csr"));
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(k);
}

static int spki_der(X509 *cert, unsigned char **out)
{
    return i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), out);
}

/* A certificate made from the CSR's SubjectPublicKeyInfo (copied, never re-encoded) carries
 * exactly the key X509_set_pubkey would have put there, parameters included, and verifies. */
static void spki_copied_from_the_csr_is_the_key(void **state)
{
    (void)state;
    static const enum pki_key_type types[] = {PKI_KEY_EC_P256, PKI_KEY_EC_P384, PKI_KEY_ED25519,
                                              PKI_KEY_RSA2048};
    struct test_ca ca;
    test_ca_make(&ca, PKI_KEY_EC_P256);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct tw_err err;
        EVP_PKEY *k = pki_key_generate(types[i], &err);
        assert_non_null(k);
        X509_REQ *req = make_req(k, NULL);
        unsigned char *der = NULL;
        int n = i2d_X509_REQ(req, &der);
        struct pki_csr *csr = pki_csr_parse(der, (size_t)n, "k.der", &err);
        assert_non_null(csr);
        struct pki_cert_request r = {.profile = PKI_PROFILE_CLIENT,
                                     .cn = "spki",
                                     .pubkey = pki_csr_pubkey(csr),
                                     .spki = pki_csr_spki(csr),
                                     .lifetime = 86400};
        X509 *copied = pki_cert_make(ca.signer, &r, time(NULL), &err);
        assert_non_null(copied);
        r.spki = NULL;
        X509 *encoded = pki_cert_make(ca.signer, &r, time(NULL), &err);
        assert_non_null(encoded);
        unsigned char *a = NULL, *b = NULL;
        int alen = spki_der(copied, &a), blen = spki_der(encoded, &b);
        assert_true(alen > 0);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, (size_t)alen);
        /* Parsed back, as any relying party would: the key of the CSR, the CA's signature. */
        unsigned char *cder = NULL;
        int clen = i2d_X509(copied, &cder);
        const unsigned char *p = cder;
        X509 *back = d2i_X509(NULL, &p, clen);
        assert_non_null(back);
        assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(back), k), 1);
        assert_int_equal(X509_verify(back, X509_get0_pubkey(ca.intermediate)), 1);
        X509_free(back);
        OPENSSL_free(cder);
        OPENSSL_free(a);
        OPENSSL_free(b);
        X509_free(copied);
        X509_free(encoded);
        pki_csr_free(csr);
        OPENSSL_free(der);
        X509_REQ_free(req);
        EVP_PKEY_free(k);
    }
    test_ca_free(&ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pem_and_der_accepted),
        cmocka_unit_test(spki_copied_from_the_csr_is_the_key),
        cmocka_unit_test(bad_signature_is_no_proof_of_possession),
        cmocka_unit_test(garbage_size_and_weak_keys),
        cmocka_unit_test(unsupported_san_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
