/* The CA side of EST on a real CA in a temp dir: tokens (hash only, single use also across
 * processes, every refusal's error code), re-enrollment checks, OCSP answers, PKCS#7 and CSR
 * building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ocsp.h>

#include "est/est.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    struct pki_ca *ca;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tw-est-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    struct tw_err err;
    struct pki_ca_options opt = {.dir = f->dir, .key_type = PKI_KEY_EC_P256};
    struct pki_ca_created created;
    assert_int_equal(pki_ca_init(&opt, &created, &err), 0);
    assert_int_equal(pki_ca_open(f->dir, &f->ca, &err), 0);
    assert_int_equal(pki_ca_unlock(f->ca, NULL, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    pki_ca_free(f->ca);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) /* checksrc:allow (test cleanup) */
        return -1;
    free(f);
    return 0;
}

static void make_token(struct fixture *f, const char *name, enum pki_profile p, const char *sans,
                       char token[PKI_TOKEN_TEXT_MAX])
{
    struct tw_err err;
    struct pki_sans list;
    memset(&list, 0, sizeof(list));
    if (sans != NULL)
        assert_int_equal(pki_sans_parse(&list, sans, &err), 0);
    struct pki_token_spec spec = {.name = name, .profile = p, .sans = &list, .ttl = 3600};
    assert_int_equal(pki_ca_token_create(f->ca, &spec, token, NULL, &err), 0);
}

static struct pki_csr *make_csr(EVP_PKEY *key, const char *cn, const char *sans, X509 *from)
{
    struct tw_err err;
    struct pki_sans list;
    memset(&list, 0, sizeof(list));
    if (sans != NULL)
        assert_int_equal(pki_sans_parse(&list, sans, &err), 0);
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_csr_make(key, cn, &list, from, &der, &len, &err), 0);
    struct pki_csr *csr = pki_csr_parse(der, len, "csr", &err);
    assert_non_null(csr);
    OPENSSL_free(der);
    return csr;
}

static X509 *enroll(struct fixture *f, const char *name, const char *token, const char *sans,
                    int label, struct tw_err *err)
{
    struct tw_err e2;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_EC_P256, &e2);
    struct pki_csr *csr = make_csr(key, name, sans, NULL);
    X509 *cert = NULL;
    if (pki_ca_enroll_token(f->ca, name, token, csr, label, &cert, err) != 0)
        cert = NULL;
    pki_csr_free(csr);
    EVP_PKEY_free(key);
    return cert;
}

static void token_is_hashed_and_single_use(void **state)
{
    struct fixture *f = *state;
    char token[PKI_TOKEN_TEXT_MAX], hash[65];
    make_token(f, "alice", PKI_PROFILE_CLIENT, "email:a@example.com", token);
    assert_int_equal(strlen(token), 2 * PKI_TOKEN_BYTES);
    struct tw_err err;
    assert_int_equal(pki_token_hash(token, strlen(token), hash, &err), 0);
    struct store_token row;
    assert_int_equal(store_token_get(pki_ca_store(f->ca), hash, &row, &err), 0);
    assert_string_equal(row.name, "alice");
    assert_int_equal(row.used_at, 0);
    X509 *cert = enroll(f, "alice", token, "email:a@example.com", -1, &err);
    assert_non_null(cert);
    assert_int_equal(store_token_get(pki_ca_store(f->ca), hash, &row, &err), 0);
    assert_true(row.used_at > 0);
    char serial[STORE_SERIAL_MAX];
    assert_int_equal(pki_cert_serial_hex(cert, serial, sizeof(serial), &err), 0);
    assert_string_equal(row.serial, serial);
    X509_free(cert);
    assert_null(enroll(f, "alice", token, NULL, -1, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "already used"));
}

static void token_refusals_have_their_codes(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    char token[PKI_TOKEN_TEXT_MAX];
    make_token(f, "bob", PKI_PROFILE_CLIENT, "dns:bob.example.com", token);
    assert_null(enroll(f, "mallory", token, NULL, -1, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_null(enroll(f, "bob", "0000", NULL, -1, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_null(enroll(f, "bob", token, NULL, PKI_PROFILE_SERVER, &err));
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_null(enroll(f, "bob", token, "dns:other.example.com", -1, &err));
    assert_int_equal(err.code, TW_ERR_POLICY);
    /* None of these spent it. */
    X509 *cert = enroll(f, "bob", token, "dns:bob.example.com", PKI_PROFILE_CLIENT, &err);
    assert_non_null(cert);
    X509_free(cert);
    /* An expired token. */
    struct store_token t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(pki_token_hash("expired", 7, t.hash, &err), 0);
    snprintf(t.name, sizeof(t.name), "bob");
    snprintf(t.profile, sizeof(t.profile), "client");
    t.expires_at = 1;
    assert_int_equal(store_token_put(pki_ca_store(f->ca), &t, &err), 0);
    assert_int_equal(store_token_put(pki_ca_store(f->ca), &t, &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_null(enroll(f, "bob", "expired", NULL, -1, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "expired"));
    struct pki_token_spec bad = {.name = "x", .profile = PKI_PROFILE_ROOT, .ttl = 1};
    assert_int_equal(pki_ca_token_create(f->ca, &bad, token, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    bad.profile = PKI_PROFILE_CLIENT;
    bad.ttl = 0;
    assert_int_equal(pki_ca_token_create(f->ca, &bad, token, NULL, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

/* Several processes race for one token on one database: exactly one wins. */
static void token_use_is_atomic_across_processes(void **state)
{
    struct fixture *f = *state;
    char token[PKI_TOKEN_TEXT_MAX], hash[65], db[128];
    make_token(f, "carol", PKI_PROFILE_CLIENT, NULL, token);
    struct tw_err err;
    assert_int_equal(pki_token_hash(token, strlen(token), hash, &err), 0);
    snprintf(db, sizeof(db), "%s/ca.db", f->dir);
    enum { N = 6 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct store *s = NULL;
            int won =
                store_open(db, &s, &err) == 0 && store_token_use(s, hash, time(NULL), &err) == 0;
            store_free(s);
            _exit(won ? 0 : 1);
        }
    }
    int winners = 0;
    for (int i = 0; i < N; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        winners += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    assert_int_equal(winners, 1);
    assert_int_equal(store_token_use(pki_ca_store(f->ca), hash, time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_EXISTS);
    assert_int_equal(store_token_use(pki_ca_store(f->ca), "00", time(NULL), &err), -1);
    assert_int_equal(err.code, TW_ERR_NOTFOUND);
}

static X509 *issue(struct fixture *f, const char *name, EVP_PKEY *key, const char *sans)
{
    struct tw_err err;
    struct pki_sans list;
    memset(&list, 0, sizeof(list));
    if (sans != NULL)
        assert_int_equal(pki_sans_parse(&list, sans, &err), 0);
    struct pki_cert_request req = {
        .profile = PKI_PROFILE_CLIENT, .cn = name, .sans = &list, .pubkey = key, .lifetime = 3600};
    X509 *cert = NULL;
    assert_int_equal(pki_ca_issue(f->ca, &req, &cert, &err), 0);
    return cert;
}

static int reenroll(struct fixture *f, X509 *current, EVP_PKEY *key, const char *cn,
                    const char *sans, X509 **out, struct tw_err *err)
{
    struct pki_csr *csr = make_csr(key, cn, sans, NULL);
    X509_NAME *subject = X509_NAME_new();
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    int rc = pki_ca_reenroll(f->ca, current, csr, subject, -1, out, err);
    X509_NAME_free(subject);
    pki_csr_free(csr);
    return rc;
}

static void reenroll_checks(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    EVP_PKEY *key = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *cur = issue(f, "dave", key, "dns:dave.example.com");
    X509 *next = NULL;
    assert_int_equal(reenroll(f, cur, key, "eve", "dns:dave.example.com", &next, &err), -1);
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_int_equal(reenroll(f, cur, key, "dave", NULL, &next, &err), -1);
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_int_equal(reenroll(f, cur, key, "dave", "dns:dave.example.com", &next, &err), 0);
    assert_true(ASN1_INTEGER_cmp(X509_get0_serialNumber(cur), X509_get0_serialNumber(next)) != 0);
    /* The same request built from the certificate (as `twoway renew` does it). */
    struct pki_csr *csr = make_csr(key, NULL, NULL, cur);
    X509 *again = NULL;
    assert_int_equal(pki_ca_reenroll(f->ca, cur, csr, X509_get_subject_name(cur), -1, &again, &err),
                     0);
    X509_free(again);
    assert_int_equal(pki_ca_reenroll(f->ca, cur, csr, X509_get_subject_name(cur),
                                     PKI_PROFILE_SERVER, &again, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_POLICY);
    char serial[STORE_SERIAL_MAX];
    assert_int_equal(pki_cert_serial_hex(cur, serial, sizeof(serial), &err), 0);
    assert_int_equal(pki_ca_revoke(f->ca, serial, 1, time(NULL), &err), 0);
    assert_int_equal(pki_ca_reenroll(f->ca, cur, csr, X509_get_subject_name(cur), -1, &again, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_non_null(strstr(err.msg, "revoked"));
    pki_csr_free(csr);
    X509_free(next);
    X509_free(cur);
    EVP_PKEY_free(key);
}

static OCSP_BASICRESP *ask(struct fixture *f, struct pki_signer *signer, X509 *issuer,
                           ASN1_INTEGER *serial, int *status)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
                                       X509_get0_pubkey_bitstr(issuer), serial);
    assert_non_null(OCSP_request_add0_id(req, id));
    assert_int_equal(OCSP_request_add1_nonce(req, NULL, -1), 1);
    unsigned char *der = NULL;
    int len = i2d_OCSP_REQUEST(req, &der);
    unsigned char *out = NULL;
    size_t olen = 0;
    struct tw_err err;
    assert_int_equal(pki_ocsp_respond(f->ca, signer, der, (size_t)len, time(NULL), 60, &out, &olen,
                                      status, &err),
                     0);
    const unsigned char *p = out;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)olen);
    assert_non_null(resp);
    assert_int_equal(OCSP_response_status(resp), *status);
    OCSP_BASICRESP *bs = OCSP_response_get1_basic(resp);
    if (bs != NULL)
        assert_int_equal(OCSP_check_nonce(req, bs), 1);
    OCSP_RESPONSE_free(resp);
    OPENSSL_free(out);
    OPENSSL_free(der);
    OCSP_REQUEST_free(req);
    return bs;
}

static int single_status(OCSP_BASICRESP *bs, int *reason)
{
    OCSP_SINGLERESP *one = OCSP_resp_get0(bs, 0);
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    int st = OCSP_single_get0_status(one, reason, &rev, &thisupd, &nextupd);
    assert_non_null(thisupd);
    assert_non_null(nextupd);
    return st;
}

static void ocsp_answers(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    struct pki_signer *signer = pki_ca_ocsp_signer(f->ca, NULL, &err);
    assert_non_null(signer);
    EVP_PKEY *key = pki_key_generate(PKI_KEY_EC_P256, &err);
    X509 *cert = issue(f, "frank", key, NULL);
    X509 *inter = pki_ca_intermediate_cert(f->ca);
    int status = -1, reason = -1;
    ASN1_INTEGER *sn = X509_get_serialNumber(cert);
    OCSP_BASICRESP *bs = ask(f, signer, inter, sn, &status);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_SUCCESSFUL);
    assert_int_equal(single_status(bs, &reason), V_OCSP_CERTSTATUS_GOOD);
    /* Signed by the OCSP signer, which chains to the CA. */
    STACK_OF(X509) *chain = pki_ca_chain(f->ca, &err);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, pki_ca_root_cert(f->ca));
    assert_int_equal(OCSP_basic_verify(bs, chain, store, 0), 1);
    OCSP_BASICRESP_free(bs);
    char serial[STORE_SERIAL_MAX];
    assert_int_equal(pki_cert_serial_hex(cert, serial, sizeof(serial), &err), 0);
    assert_int_equal(pki_ca_revoke(f->ca, serial, 5, time(NULL), &err), 0);
    bs = ask(f, signer, inter, sn, &status);
    assert_int_equal(single_status(bs, &reason), V_OCSP_CERTSTATUS_REVOKED);
    assert_int_equal(reason, 5);
    OCSP_BASICRESP_free(bs);
    ASN1_INTEGER *unknown = ASN1_INTEGER_new();
    ASN1_INTEGER_set(unknown, 12345);
    bs = ask(f, signer, inter, unknown, &status);
    assert_int_equal(single_status(bs, &reason), V_OCSP_CERTSTATUS_UNKNOWN);
    OCSP_BASICRESP_free(bs);
    bs = ask(f, signer, pki_ca_root_cert(f->ca), unknown, &status);
    assert_null(bs);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_UNAUTHORIZED);
    unsigned char *out = NULL;
    size_t olen = 0;
    assert_int_equal(
        pki_ocsp_respond(f->ca, signer, "junk", 4, time(NULL), 60, &out, &olen, &status, &err), 0);
    assert_int_equal(status, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
    assert_int_equal(err.code, TW_ERR_PKI);
    OPENSSL_free(out);
    struct pki_ocsp_query q;
    assert_int_equal(pki_ocsp_request_parse("junk", 4, &q, &err), -1);
    assert_int_equal(err.code, TW_ERR_PKI);
    ASN1_INTEGER_free(unknown);
    X509_STORE_free(store);
    sk_X509_pop_free(chain, X509_free);
    X509_free(cert);
    EVP_PKEY_free(key);
    pki_signer_free(signer);
}

static void p7_round_trip(void **state)
{
    struct fixture *f = *state;
    struct tw_err err;
    STACK_OF(X509) *chain = pki_ca_chain(f->ca, &err);
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_p7_certs_only(chain, &der, &len, &err), 0);
    STACK_OF(X509) *back = pki_p7_certs_parse(der, len, "p7", &err);
    assert_non_null(back);
    assert_int_equal(sk_X509_num(back), 2);
    assert_int_equal(X509_cmp(sk_X509_value(back, 0), pki_ca_intermediate_cert(f->ca)), 0);
    assert_null(pki_p7_certs_parse(der, len / 2, "p7", &err));
    assert_int_equal(err.code, TW_ERR_PKI);
    sk_X509_pop_free(back, X509_free);
    sk_X509_pop_free(chain, X509_free);
    OPENSSL_free(der);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(token_is_hashed_and_single_use, setup, teardown),
        cmocka_unit_test_setup_teardown(token_refusals_have_their_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(token_use_is_atomic_across_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(reenroll_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(ocsp_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(p7_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
