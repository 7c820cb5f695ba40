/* CRL sets: PEM and DER files, lookups, newest CRL per issuer, signature checks, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "tlsx/internal.h"
#include "tlsx/testpki.h"

static struct tp_cert ca, other, leaf1, leaf2;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    ca = tp_make("CRL CA", NULL, &(struct tp_opts){.ca = 1});
    other = tp_make("Other CA", NULL, &(struct tp_opts){.ca = 1});
    leaf1 = tp_make("one", &ca, &(struct tp_opts){.eku = "clientAuth"});
    leaf2 = tp_make("two", &ca, &(struct tp_opts){.eku = "clientAuth"});
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_free(&ca);
    tp_free(&other);
    tp_free(&leaf1);
    tp_free(&leaf2);
    tp_dir_cleanup();
    return 0;
}

static void pem_and_der_files_and_lookup(void **state)
{
    (void)state;
    long s1 = tp_serial(&leaf1);
    X509_CRL *crl = tp_crl(&ca, &s1, 1, 3600);
    X509_CRL *ocrl = tp_crl(&other, NULL, 0, 600);
    const char *pem = tp_write_crl("ca.crl.pem", crl, 0);
    const char *der = tp_write_crl("other.crl.der", ocrl, 1);
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    assert_int_equal(tlsx_crl_set_count(set), 0);
    assert_int_equal(tlsx_crl_set_add_file(set, pem, &err), 0);
    assert_int_equal(tlsx_crl_set_add_file(set, der, &err), 0);
    assert_int_equal(tlsx_crl_set_count(set), 2);
    assert_int_equal(tlsx_crl_set_cert_is_revoked(set, leaf1.cert), 1);
    assert_int_equal(tlsx_crl_set_cert_is_revoked(set, leaf2.cert), 0);
    assert_int_equal(tlsx_crl_set_is_revoked(set, X509_get_issuer_name(leaf1.cert),
                                             X509_get0_serialNumber(leaf1.cert)),
                     1);
    /* Same serial, other issuer: not revoked. */
    assert_int_equal(tlsx_crl_set_is_revoked(set, X509_get_subject_name(other.cert),
                                             X509_get0_serialNumber(leaf1.cert)),
                     0);
    assert_int_equal(tlsx_crl_set_is_revoked(NULL, X509_get_issuer_name(leaf1.cert),
                                             X509_get0_serialNumber(leaf1.cert)),
                     0);
    assert_int_equal(tlsx_crl_set_has_issuer(set, X509_get_subject_name(other.cert)), 1);
    int64_t now = (int64_t)time(NULL);
    int64_t next = tlsx_crl_set_next_update(set);
    assert_true(next > now + 500 && next <= now + 600);
    assert_int_equal(tlsx_crl_set_expired(set, now), 0);
    assert_int_equal(tlsx_crl_set_expired(set, now + 1000), 1);
    assert_int_equal(tlsx_crl_set_expired(set, now + 5000), 2);

    /* A CA of the same name with another key did not sign it: refused. */
    struct tp_cert impostor = tp_make("Other CA", NULL, &(struct tp_opts){.ca = 1});
    STACK_OF(X509) *cas = sk_X509_new_null();
    sk_X509_push(cas, ca.cert);
    sk_X509_push(cas, impostor.cert);
    assert_int_equal(tlsx_crl_set_verify(set, cas, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "Other CA"));
    sk_X509_free(cas);
    tp_free(&impostor);
    cas = sk_X509_new_null();
    sk_X509_push(cas, ca.cert);
    assert_int_equal(tlsx_crl_set_verify(set, cas, &err), 0); /* Other CA: not in cas, kept */
    sk_X509_push(cas, other.cert);
    assert_int_equal(tlsx_crl_set_verify(set, cas, &err), 0);
    sk_X509_free(cas);

    assert_int_equal(tlsx_crl_set_up_ref(set), 1);
    tlsx_crl_set_free(set);
    assert_int_equal(tlsx_crl_set_count(set), 2); /* still referenced once */
    tlsx_crl_set_free(set);
    tlsx_crl_set_free(NULL);
    X509_CRL_free(crl);
    X509_CRL_free(ocrl);
}

static void newest_crl_per_issuer_wins(void **state)
{
    (void)state;
    long s1 = tp_serial(&leaf1), s2 = tp_serial(&leaf2);
    X509_CRL *older = tp_crl(&ca, &s1, 1, -10); /* lastUpdate an hour earlier */
    X509_CRL *newer = tp_crl(&ca, &s2, 1, 3600);
    const char *a = tp_write_crl("older.pem", older, 0);
    const char *b = tp_write_crl("newer.pem", newer, 0);
    struct tw_err err;
    for (int order = 0; order < 2; order++) {
        struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
        assert_int_equal(tlsx_crl_set_add_file(set, order ? a : b, &err), 0);
        assert_int_equal(tlsx_crl_set_add_file(set, order ? b : a, &err), 0);
        assert_int_equal(tlsx_crl_set_count(set), 1);
        assert_int_equal(tlsx_crl_set_cert_is_revoked(set, leaf1.cert), 0);
        assert_int_equal(tlsx_crl_set_cert_is_revoked(set, leaf2.cert), 1);
        tlsx_crl_set_free(set);
    }
    X509_CRL_free(older);
    X509_CRL_free(newer);
}

static void bad_input_errors(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    assert_int_equal(tlsx_crl_set_add_file(set, tp_path("missing.crl"), &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    const char *junk = "not a crl at all\n";
    assert_int_equal(tlsx_crl_set_add_mem(set, junk, strlen(junk), "junk", &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "junk: no CRL found"));
    const char *broken = "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n";
    assert_int_equal(tlsx_crl_set_add_mem(set, broken, strlen(broken), "broken", &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    const unsigned char der[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    assert_int_equal(tlsx_crl_set_add_mem(set, der, sizeof(der), "der", &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "der: malformed DER CRL"));
    assert_int_equal(tlsx_crl_set_add_mem(set, der, 0, "empty", &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    /* A certificate is not a CRL. */
    const char *cert = tp_write_cert("cert.pem", ca.cert);
    assert_int_equal(tlsx_crl_set_add_file(set, cert, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    /* Trailing garbage after DER. */
    long s1 = tp_serial(&leaf1);
    X509_CRL *crl = tp_crl(&ca, &s1, 1, 3600);
    unsigned char buf[4096];
    unsigned char *p = buf;
    int len = i2d_X509_CRL(crl, &p);
    buf[len] = 0;
    assert_int_equal(tlsx_crl_set_add_mem(set, buf, (size_t)len + 1, "trailing", &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_int_equal(tlsx_crl_set_add_mem(set, buf, (size_t)len, "ok", &err), 0);
    assert_int_equal(tlsx_crl_set_count(set), 1);
    X509_CRL_free(crl);
    tlsx_crl_set_free(set);
}

/* A CRL from a CA not in client-ca (the intermediate clients present under a root-only
 * client-ca) is kept, and judged when its CA is known: a listed serial is revoked whoever
 * signed the list; "not revoked" counts only once the CA's key verified the CRL. */
static void crl_of_a_ca_outside_client_ca(void **state)
{
    (void)state;
    struct tw_err err;
    long s1 = tp_serial(&leaf1);
    X509_CRL *crl = tp_crl(&ca, &s1, 1, 3600);
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    assert_int_equal(tlsx_crl_set_add_file(set, tp_write_crl("ca.crl", crl, 0), &err), 0);
    STACK_OF(X509) *cas = sk_X509_new_null();
    sk_X509_push(cas, other.cert);
    assert_int_equal(tlsx_crl_set_verify(set, cas, &err), 0);
    sk_X509_free(cas);

    struct tp_cert impostor = tp_make("CRL CA", NULL, &(struct tp_opts){.ca = 1});
    assert_int_equal(tlsx_crl_set_check(set, leaf1.cert, impostor.cert), 1);
    assert_int_equal(tlsx_crl_set_check(set, leaf2.cert, impostor.cert), -1);
    assert_int_equal(tlsx_crl_set_check(set, leaf2.cert, NULL), 0);
    assert_int_equal(tlsx_crl_set_check(set, leaf2.cert, ca.cert), 0);
    assert_int_equal(tlsx_crl_set_check(set, leaf1.cert, ca.cert), 1);
    assert_int_equal(tlsx_crl_set_check(set, other.cert, ca.cert), 0); /* no CRL of its issuer */
    tp_free(&impostor);

    /* Fetched again: a CRL from outside client-ca must keep the issuer of the one held. */
    X509_CRL *ocrl = tp_crl(&other, NULL, 0, 3600);
    struct tlsx_crl_set *again = tlsx_crl_set_new(&err);
    assert_int_equal(tlsx_crl_set_add_file(again, tp_write_crl("again.crl", crl, 0), &err), 0);
    struct tlsx_crl_set *swapped = tlsx_crl_set_new(&err);
    assert_int_equal(tlsx_crl_set_add_file(swapped, tp_write_crl("swap.crl", ocrl, 0), &err), 0);
    STACK_OF(X509) *none = sk_X509_new_null();
    assert_int_equal(tlsx_crl_set_same_outside(again, set, none, &err), 0);
    assert_int_equal(tlsx_crl_set_same_outside(swapped, NULL, none, &err), 0); /* first fetch */
    assert_int_equal(tlsx_crl_set_same_outside(swapped, set, none, &err), -1);
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "Other CA"));
    sk_X509_push(none, other.cert); /* a CA of client-ca: tlsx_crl_set_verify's business */
    assert_int_equal(tlsx_crl_set_same_outside(swapped, set, none, &err), 0);
    sk_X509_free(none);
    tlsx_crl_set_free(again);
    tlsx_crl_set_free(swapped);
    X509_CRL_free(ocrl);
    tlsx_crl_set_free(set);
    X509_CRL_free(crl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crl_of_a_ca_outside_client_ca),
        cmocka_unit_test(pem_and_der_files_and_lookup),
        cmocka_unit_test(newest_crl_per_issuer_wins),
        cmocka_unit_test(bad_input_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
