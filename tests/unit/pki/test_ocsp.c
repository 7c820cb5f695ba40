/* The OCSP responder core: answers verify against the CA chain, carry the live status, echo the
 * nonce, and stay right when the signer's prepared state (issuer CertIDs per digest, signing
 * context) is reused across requests. */
#include "pki_test_util.h"

#include <openssl/ocsp.h>
#include <time.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    tmpdir_make(dir, sizeof(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tmpdir_remove(dir);
    return 0;
}

struct responder {
    struct pki_ca *ca;
    struct pki_signer *signer;
    X509 *alice, *bob;
};

static X509 *issue(struct pki_ca *ca, const char *name)
{
    struct tw_err err;
    EVP_PKEY *k = pki_key_generate(PKI_KEY_EC_P256, &err);
    assert_non_null(k);
    struct pki_cert_request req = {
        .profile = PKI_PROFILE_CLIENT, .cn = name, .pubkey = k, .lifetime = 86400};
    X509 *cert = NULL;
    if (pki_ca_issue(ca, &req, &cert, &err) != 0)
        fail_msg("issue %s: %s", name, err.msg);
    EVP_PKEY_free(k);
    return cert;
}

static void responder_make(struct responder *r, enum pki_key_type type)
{
    struct pki_ca_options opt = {.dir = dir, .name = "Ocsp CA", .key_type = type};
    struct pki_ca_created made;
    struct tw_err err;
    if (pki_ca_init(&opt, &made, &err) != 0)
        fail_msg("init: %s", err.msg);
    assert_int_equal(pki_ca_open(dir, &r->ca, &err), 0);
    assert_int_equal(pki_ca_unlock(r->ca, NULL, &err), 0);
    r->signer = pki_ca_ocsp_signer(r->ca, NULL, &err);
    assert_non_null(r->signer);
    r->alice = issue(r->ca, "alice");
    r->bob = issue(r->ca, "bob");
}

static void responder_free(struct responder *r)
{
    X509_free(r->alice);
    X509_free(r->bob);
    pki_signer_free(r->signer);
    pki_ca_free(r->ca);
}

/* DER of a request for id (taken), with a nonce. */
static unsigned char *request(OCSP_CERTID *id, size_t *len)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    assert_non_null(OCSP_request_add0_id(req, id));
    assert_int_equal(OCSP_request_add1_nonce(req, NULL, -1), 1);
    unsigned char *der = NULL;
    int n = i2d_OCSP_REQUEST(req, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    OCSP_REQUEST_free(req);
    return der;
}

/* Ask about cert (issued by issuer) under md; return the OCSPResponseStatus, and when it is
 * successful check the answer as a client would and return the certificate's status. */
static int ask(struct responder *r, const EVP_MD *md, X509 *cert, X509 *issuer, int *cert_status,
               struct tw_err *err)
{
    size_t len = 0;
    OCSP_CERTID *id = OCSP_cert_to_id(md, cert, issuer);
    assert_non_null(id);
    OCSP_CERTID *copy = OCSP_CERTID_dup(id);
    unsigned char *req = request(id, &len);
    const unsigned char *p = req;
    OCSP_REQUEST *parsed = d2i_OCSP_REQUEST(NULL, &p, (long)len);
    unsigned char *der = NULL;
    size_t dlen = 0;
    int status = -1;
    assert_int_equal(
        pki_ocsp_respond(r->ca, r->signer, req, len, time(NULL), 600, &der, &dlen, &status, err),
        0);
    const unsigned char *q = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &q, (long)dlen);
    assert_non_null(resp);
    assert_int_equal(OCSP_response_status(resp), status);
    if (status == OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
        assert_non_null(bs);
        X509_STORE *store = X509_STORE_new();
        X509_STORE_add_cert(store, pki_ca_root_cert(r->ca));
        STACK_OF(X509) *chain = sk_X509_new_null();
        sk_X509_push(chain, pki_ca_intermediate_cert(r->ca));
        assert_int_equal(OCSP_basic_verify(bs, chain, store, 0), 1);
        assert_int_equal(OCSP_check_nonce(parsed, bs), 1);
        /* the delegated signer's certificate is in the answer, and names the responder */
        const STACK_OF(X509) *certs = OCSP_resp_get0_certs(bs);
        assert_int_equal(sk_X509_num(certs), 1);
        assert_int_equal(X509_cmp(sk_X509_value(certs, 0), pki_ca_ocsp_cert(r->ca)), 0);
        const ASN1_OCTET_STRING *key_id = NULL;
        const X509_NAME *name = NULL;
        assert_int_equal(OCSP_resp_get0_id(bs, &key_id, &name), 1);
        assert_null(key_id);
        assert_int_equal(X509_NAME_cmp(name, X509_get_subject_name(pki_ca_ocsp_cert(r->ca))), 0);
        int reason = 0;
        ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
        assert_int_equal(
            OCSP_resp_find_status(bs, copy, cert_status, &reason, &rev, &thisupd, &nextupd), 1);
        assert_int_equal(OCSP_check_validity(thisupd, nextupd, 5, -1), 1);
        sk_X509_free(chain);
        X509_STORE_free(store);
        OCSP_BASICRESP_free(bs);
    }
    OCSP_RESPONSE_free(resp);
    OPENSSL_free(der);
    OCSP_REQUEST_free(parsed);
    OPENSSL_free(req);
    OCSP_CERTID_free(copy);
    return status;
}

static void serial_of(X509 *cert, char out[STORE_SERIAL_MAX])
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = BN_bn2hex(bn);
    const char *d = hex;
    while (d[0] == '0' && d[1] != '\0')
        d++;
    snprintf(out, STORE_SERIAL_MAX, "%s", d);
    OPENSSL_free(hex);
    BN_free(bn);
}

/* The same signer answers many requests: each one verifies, and a revocation shows at once. */
static void answers_repeat_and_follow_revocation(enum pki_key_type type)
{
    struct responder r;
    responder_make(&r, type);
    struct tw_err err;
    X509 *in = pki_ca_intermediate_cert(r.ca);
    for (int i = 0; i < 3; i++) {
        int st = -1;
        assert_int_equal(ask(&r, EVP_sha1(), r.alice, in, &st, &err), 0);
        assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
        assert_int_equal(ask(&r, EVP_sha256(), r.bob, in, &st, &err), 0);
        assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
    }
    char serial[STORE_SERIAL_MAX];
    serial_of(r.bob, serial);
    assert_int_equal(pki_ca_revoke(r.ca, serial, 1, (int64_t)time(NULL), &err), 0);
    int st = -1;
    assert_int_equal(ask(&r, EVP_sha256(), r.bob, in, &st, &err), 0);
    assert_int_equal(st, V_OCSP_CERTSTATUS_REVOKED);
    assert_int_equal(ask(&r, EVP_sha1(), r.bob, in, &st, &err), 0);
    assert_int_equal(st, V_OCSP_CERTSTATUS_REVOKED);
    assert_int_equal(ask(&r, EVP_sha1(), r.alice, in, &st, &err), 0);
    assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
    /* a third digest is answered too (SHA-384: not cached before) */
    assert_int_equal(ask(&r, EVP_sha384(), r.alice, in, &st, &err), 0);
    assert_int_equal(st, V_OCSP_CERTSTATUS_GOOD);
    responder_free(&r);
}

static void p256_responder(void **state)
{
    (void)state;
    answers_repeat_and_follow_revocation(PKI_KEY_EC_P256);
}

static void p384_responder(void **state)
{
    (void)state;
    answers_repeat_and_follow_revocation(PKI_KEY_EC_P384);
}

static void ed25519_responder(void **state)
{
    (void)state;
    answers_repeat_and_follow_revocation(PKI_KEY_ED25519);
}

static void rsa_responder(void **state)
{
    (void)state;
    answers_repeat_and_follow_revocation(PKI_KEY_RSA2048);
}

/* Not in the inventory, under the right issuer: unknown. */
static void unknown_serial(void **state)
{
    (void)state;
    struct responder r;
    responder_make(&r, PKI_KEY_EC_P256);
    X509 *in = pki_ca_intermediate_cert(r.ca);
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    ASN1_INTEGER_set_int64(serial, 0x7e57);
    OCSP_CERTID *id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(in),
                                       X509_get0_pubkey_bitstr(in), serial);
    size_t len = 0;
    unsigned char *req = request(id, &len);
    unsigned char *der = NULL;
    size_t dlen = 0;
    int status = -1;
    struct tw_err err;
    assert_int_equal(
        pki_ocsp_respond(r.ca, r.signer, req, len, time(NULL), 0, &der, &dlen, &status, &err), 0);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_SUCCESSFUL);
    const unsigned char *q = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &q, (long)dlen);
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    assert_non_null(bs);
    assert_int_equal(OCSP_single_get0_status(OCSP_resp_get0(bs, 0), NULL, NULL, NULL, NULL),
                     V_OCSP_CERTSTATUS_UNKNOWN);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    OPENSSL_free(der);
    OPENSSL_free(req);
    ASN1_INTEGER_free(serial);
    responder_free(&r);
}

/* Another issuer (the root, same digest as a cached one): unauthorized, TW_ERR_POLICY. */
static void other_issuer_unauthorized(void **state)
{
    (void)state;
    struct responder r;
    responder_make(&r, PKI_KEY_EC_P256);
    struct tw_err err;
    int st = -1;
    assert_int_equal(ask(&r, EVP_sha1(), r.alice, pki_ca_intermediate_cert(r.ca), &st, &err), 0);
    assert_int_equal(
        ask(&r, EVP_sha1(), pki_ca_intermediate_cert(r.ca), pki_ca_root_cert(r.ca), &st, &err),
        OCSP_RESPONSE_STATUS_UNAUTHORIZED);
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_int_equal(ask(&r, EVP_sha256(), r.alice, pki_ca_root_cert(r.ca), &st, &err),
                     OCSP_RESPONSE_STATUS_UNAUTHORIZED);
    assert_int_equal(err.code, TW_ERR_POLICY);
    responder_free(&r);
}

/* Not DER: malformedRequest, TW_ERR_PKI; still an encoded answer. */
static void malformed_request(void **state)
{
    (void)state;
    struct responder r;
    responder_make(&r, PKI_KEY_EC_P256);
    static const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01};
    unsigned char *der = NULL;
    size_t dlen = 0;
    int status = -1;
    struct tw_err err;
    assert_int_equal(pki_ocsp_respond(r.ca, r.signer, junk, sizeof(junk), time(NULL), 0, &der,
                                      &dlen, &status, &err),
                     0);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
    assert_int_equal(err.code, TW_ERR_PKI);
    assert_true(dlen > 0);
    OPENSSL_free(der);
    responder_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(p256_responder, setup, teardown),
        cmocka_unit_test_setup_teardown(p384_responder, setup, teardown),
        cmocka_unit_test_setup_teardown(ed25519_responder, setup, teardown),
        cmocka_unit_test_setup_teardown(rsa_responder, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_serial, setup, teardown),
        cmocka_unit_test_setup_teardown(other_issuer_unauthorized, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
