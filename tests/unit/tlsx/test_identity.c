/* Identity: every field from a known certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "tlsx/testpki.h"

static void fields_from_certificate(void **state)
{
    (void)state;
    struct tp_cert ca = tp_make("Identity CA", NULL, &(struct tp_opts){.ca = 1, .o = "Example"});
    struct tp_cert c =
        tp_make("Zoë", &ca,
                &(struct tp_opts){.eku = "clientAuth",
                                  .o = "Example, Inc.",
                                  .ou = "dev",
                                  .serial = 0xBEEF,
                                  .sans = "DNS:a.example,DNS:b.example,email:z@example.com,"
                                          "URI:spiffe://example.org/z,IP:10.0.0.1"});
    struct tw_err err;
    struct tlsx_identity *id = tlsx_identity_new(c.cert, &err);
    assert_non_null(id);
    assert_string_equal(id->subject, "CN=Zoë,OU=dev,O=Example\\, Inc.");
    assert_string_equal(id->issuer, "CN=Identity CA,O=Example");
    assert_string_equal(id->cn, "Zoë");
    assert_int_equal(id->o.n, 1);
    assert_string_equal(id->o.v[0], "Example, Inc.");
    assert_string_equal(id->ou.v[0], "dev");
    assert_int_equal(id->dns.n, 2);
    assert_string_equal(id->dns.v[1], "b.example");
    assert_string_equal(id->email.v[0], "z@example.com");
    assert_string_equal(id->uri.v[0], "spiffe://example.org/z");
    assert_string_equal(id->serial_hex, "BEEF");
    unsigned char md[32];
    unsigned int n = 0;
    X509_digest(c.cert, EVP_sha256(), md, &n);
    assert_memory_equal(id->sha256, md, 32);
    assert_int_equal(strlen(id->sha256_hex), 64);
    assert_int_equal(id->sha256_hex[0], "0123456789abcdef"[md[0] >> 4]);
    unsigned char *der = NULL;
    int len = i2d_X509(c.cert, &der);
    assert_int_equal(id->der_len, (size_t)len);
    assert_memory_equal(id->der, der, (size_t)len);
    OPENSSL_free(der);
    time_t now = time(NULL);
    assert_true(id->not_before <= now && id->not_before > now - 4000);
    assert_true(id->not_after > now + 80000);
    tlsx_identity_free(id);
    tlsx_identity_free(NULL);
    tp_free(&c);
    tp_free(&ca);
}

static void no_subject_fields_gives_empty_lists(void **state)
{
    (void)state;
    struct tp_cert c = tp_make("only", NULL, NULL);
    /* Drop the subject entirely. */
    X509_NAME *empty = X509_NAME_new();
    X509_set_subject_name(c.cert, empty);
    X509_NAME_free(empty);
    struct tw_err err;
    struct tlsx_identity *id = tlsx_identity_new(c.cert, &err);
    assert_non_null(id);
    assert_null(id->cn);
    assert_int_equal(id->cns.n, 0);
    assert_int_equal(id->dns.n, 0);
    assert_string_equal(id->subject, "");
    tlsx_identity_free(id);
    tp_free(&c);
}

static void nul_in_san_refused(void **state)
{
    (void)state;
    struct tp_cert c = tp_make("evil", NULL, NULL);
    GENERAL_NAMES *names = GENERAL_NAMES_new();
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_IA5STRING *s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, "good.example\0.evil", 18);
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    sk_GENERAL_NAME_push(names, gn);
    X509_add1_ext_i2d(c.cert, NID_subject_alt_name, names, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(names);
    struct tw_err err;
    assert_null(tlsx_identity_new(c.cert, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "NUL"));
    assert_null(tlsx_identity_new(NULL, &err));
    assert_int_equal(err.code, TW_ERR_VERIFY);
    tp_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields_from_certificate),
        cmocka_unit_test(no_subject_fields_gives_empty_lists),
        cmocka_unit_test(nul_in_san_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
