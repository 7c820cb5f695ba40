/* The OCSP outage table (ocspcache.c): statuses remembered from signed answers (responder named
 * by name or by key, with or without the signer's certificate, several certificates per
 * answer), answered again when the inventory is down with a fresh signature and the request's
 * nonce; nothing remembered from a truncated, garbage or unsuccessful answer (every prefix of a
 * real one is tried), and a remembered answer past its nextUpdate is not used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "est/internal.h"

struct fixture {
    EVP_PKEY *key;
    X509 *cert; /* self-signed: the issuer the CertIDs name and the OCSP signer at once */
    struct pki_signer *signer;
    struct est_server_opts opts;
    struct est_server srv;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct tw_err err;
    f->key = pki_key_generate(PKI_KEY_EC_P256, &err);
    assert_non_null(f->key);
    f->cert = X509_new();
    X509_NAME *name = X509_get_subject_name(f->cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"Test OCSP", -1, -1,
                               0);
    X509_set_issuer_name(f->cert, name);
    ASN1_INTEGER_set(X509_get_serialNumber(f->cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(f->cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(f->cert), 3600);
    X509_set_pubkey(f->cert, f->key);
    assert_true(X509_sign(f->cert, f->key, EVP_sha256()) > 0);
    f->signer = pki_signer_new(f->key, f->cert, &err);
    assert_non_null(f->signer);
    f->opts.ocsp_signer = f->signer;
    f->srv.opts = &f->opts;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pki_signer_free(f->signer);
    X509_free(f->cert);
    EVP_PKEY_free(f->key);
    free(f);
    return 0;
}

static OCSP_CERTID *cid(struct fixture *f, long serial)
{
    ASN1_INTEGER *n = ASN1_INTEGER_new();
    ASN1_INTEGER_set(n, serial);
    OCSP_CERTID *id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(f->cert),
                                       X509_get0_pubkey_bitstr(f->cert), n);
    ASN1_INTEGER_free(n);
    assert_non_null(id);
    return id;
}

/* A signed successful answer, DER (OPENSSL_free): serials[i] gets statuses[i] (revoked ones
 * with reason keyCompromise at revoked_at), thisUpdate now, nextUpdate now + validity. */
static unsigned char *answer(struct fixture *f, const long *serials, const int *statuses, size_t n,
                             long validity, unsigned long flags, int *len)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    ASN1_TIME *now = X509_gmtime_adj(NULL, 0);
    ASN1_TIME *next = X509_gmtime_adj(NULL, validity);
    ASN1_TIME *rev = X509_gmtime_adj(NULL, -600);
    for (size_t i = 0; i < n; i++) {
        OCSP_CERTID *id = cid(f, serials[i]);
        int revoked = statuses[i] == V_OCSP_CERTSTATUS_REVOKED;
        assert_non_null(OCSP_basic_add1_status(bs, id, statuses[i],
                                               revoked ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : -1,
                                               revoked ? rev : NULL, now, next));
        OCSP_CERTID_free(id);
    }
    assert_int_equal(OCSP_basic_sign(bs, f->cert, f->key, EVP_sha256(), NULL, flags), 1);
    OCSP_RESPONSE *resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    unsigned char *der = NULL;
    *len = i2d_OCSP_RESPONSE(resp, &der);
    assert_true(*len > 0);
    OCSP_RESPONSE_free(resp);
    OCSP_BASICRESP_free(bs);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    ASN1_TIME_free(rev);
    return der;
}

/* Ask the outage path about serials (with a nonce); returns the decoded answer and its
 * status. */
static OCSP_RESPONSE *ask(struct fixture *f, const long *serials, size_t n, int *status,
                          OCSP_REQUEST **req_out)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    for (size_t i = 0; i < n; i++)
        assert_non_null(OCSP_request_add0_id(req, cid(f, serials[i])));
    assert_int_equal(OCSP_request_add1_nonce(req, NULL, 16), 1);
    unsigned char *rder = NULL;
    int rlen = i2d_OCSP_REQUEST(req, &rder);
    assert_true(rlen > 0);
    unsigned char *der = NULL;
    size_t dlen = 0;
    assert_int_equal(
        est_ocsp_fallback(&f->srv, rder, (size_t)rlen, time(NULL), &der, &dlen, status), 0);
    OPENSSL_free(rder);
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)dlen);
    assert_non_null(resp);
    assert_int_equal(OCSP_response_status(resp), *status);
    OPENSSL_free(der);
    *req_out = req;
    return resp;
}

static int status_in(struct fixture *f, OCSP_BASICRESP *bs, long serial, int *reason)
{
    OCSP_CERTID *id = cid(f, serial);
    int st = -1;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    int ok = OCSP_resp_find_status(bs, id, &st, reason, &rev, &thisupd, &nextupd);
    OCSP_CERTID_free(id);
    assert_int_equal(ok, 1);
    assert_non_null(thisupd);
    assert_non_null(nextupd);
    return st;
}

static void remembered_statuses_are_answered_signed_with_the_nonce(void **state)
{
    struct fixture *f = *state;
    /* By name with the signer's certificate (what `ca serve` sends), then by key without it. */
    const unsigned long flags[] = {0, OCSP_RESPID_KEY | OCSP_NOCERTS};
    for (size_t k = 0; k < 2; k++) {
        long serials[] = {1000 + 10 * (long)k, 1001 + 10 * (long)k, 1002 + 10 * (long)k};
        int statuses[] = {V_OCSP_CERTSTATUS_GOOD, V_OCSP_CERTSTATUS_REVOKED,
                          V_OCSP_CERTSTATUS_GOOD};
        int len = 0;
        unsigned char *der = answer(f, serials, statuses, 3, 3600, flags[k], &len);
        est_ocsp_remember(der, (size_t)len);
        OPENSSL_free(der);
        int status = -1;
        OCSP_REQUEST *req = NULL;
        OCSP_RESPONSE *resp = ask(f, serials, 3, &status, &req);
        assert_int_equal(status, OCSP_RESPONSE_STATUS_SUCCESSFUL);
        OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
        assert_non_null(bs);
        assert_int_equal(OCSP_check_nonce(req, bs), 1);
        STACK_OF(X509) *trusted = sk_X509_new_null();
        sk_X509_push(trusted, f->cert);
        assert_int_equal(OCSP_basic_verify(bs, trusted, NULL, OCSP_TRUSTOTHER | OCSP_NOVERIFY), 1);
        sk_X509_free(trusted);
        int reason = -2;
        assert_int_equal(status_in(f, bs, serials[0], &reason), V_OCSP_CERTSTATUS_GOOD);
        assert_int_equal(status_in(f, bs, serials[1], &reason), V_OCSP_CERTSTATUS_REVOKED);
        assert_int_equal(reason, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
        assert_int_equal(status_in(f, bs, serials[2], &reason), V_OCSP_CERTSTATUS_GOOD);
        OCSP_BASICRESP_free(bs);
        OCSP_RESPONSE_free(resp);
        OCSP_REQUEST_free(req);
    }
}

static void try_later(struct fixture *f, long serial)
{
    int status = -1;
    OCSP_REQUEST *req = NULL;
    OCSP_RESPONSE *resp = ask(f, &serial, 1, &status, &req);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_TRYLATER);
    OCSP_RESPONSE_free(resp);
    OCSP_REQUEST_free(req);
}

static void nothing_is_remembered_from_a_broken_answer(void **state)
{
    struct fixture *f = *state;
    long serial = 2000;
    int good = V_OCSP_CERTSTATUS_GOOD, len = 0;
    unsigned char *der = answer(f, &serial, &good, 1, 3600, 0, &len);
    /* Every proper prefix, and the answer with one byte flipped in its outer headers. */
    for (int n = 0; n < len; n++)
        est_ocsp_remember(der, (size_t)n);
    for (int i = 0; i < 24 && i < len; i++) {
        der[i] ^= 0x5a;
        est_ocsp_remember(der, (size_t)len);
        der[i] ^= 0x5a;
    }
    static const unsigned char garbage[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x0a};
    est_ocsp_remember(garbage, sizeof(garbage));
    est_ocsp_remember((const unsigned char *)"", 0);
    /* An unsuccessful answer carries no statuses. */
    OCSP_RESPONSE *later = OCSP_response_create(OCSP_RESPONSE_STATUS_TRYLATER, NULL);
    unsigned char *lder = NULL;
    int llen = i2d_OCSP_RESPONSE(later, &lder);
    est_ocsp_remember(lder, (size_t)llen);
    OPENSSL_free(lder);
    OCSP_RESPONSE_free(later);
    ERR_clear_error();
    try_later(f, serial);
    /* The intact answer is remembered. */
    est_ocsp_remember(der, (size_t)len);
    OPENSSL_free(der);
    int status = -1;
    OCSP_REQUEST *req = NULL;
    OCSP_RESPONSE *resp = ask(f, &serial, 1, &status, &req);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_SUCCESSFUL);
    OCSP_RESPONSE_free(resp);
    OCSP_REQUEST_free(req);
}

static void an_answer_past_its_next_update_is_not_used(void **state)
{
    struct fixture *f = *state;
    long serial = 3000;
    int good = V_OCSP_CERTSTATUS_GOOD, len = 0;
    unsigned char *der = answer(f, &serial, &good, 1, -60, 0, &len);
    est_ocsp_remember(der, (size_t)len);
    OPENSSL_free(der);
    try_later(f, serial);
    /* Not remembered at all: tryLater too, even when others are. */
    long mixed[] = {3001, 1000};
    int status = -1;
    OCSP_REQUEST *req = NULL;
    OCSP_RESPONSE *resp = ask(f, mixed, 2, &status, &req);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_TRYLATER);
    OCSP_RESPONSE_free(resp);
    OCSP_REQUEST_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(remembered_statuses_are_answered_signed_with_the_nonce,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_is_remembered_from_a_broken_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_answer_past_its_next_update_is_not_used, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
