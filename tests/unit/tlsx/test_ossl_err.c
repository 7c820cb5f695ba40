/* Plain-language reasons: mappings from verify results, alerts and the error queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tlsx/tlsx.h"

static void every_reason_has_code_and_text(void **state)
{
    (void)state;
    for (int r = TLSX_R_OK; r <= TLSX_R_OTHER; r++) {
        assert_non_null(tlsx_reason_code((enum tlsx_reason)r));
        assert_true(strlen(tlsx_reason_text((enum tlsx_reason)r)) > 10);
    }
    assert_string_equal(tlsx_reason_code(TLSX_R_WRONG_EKU), "wrong-eku");
    assert_string_equal(tlsx_reason_code((enum tlsx_reason)999), "tls-error");
    assert_string_equal(tlsx_reason_text((enum tlsx_reason) - 1), "the TLS handshake failed");
}

static void verify_results_map(void **state)
{
    (void)state;
    assert_int_equal(tlsx_reason_from_verify(X509_V_OK), TLSX_R_OK);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_CERT_HAS_EXPIRED), TLSX_R_EXPIRED);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_CERT_NOT_YET_VALID), TLSX_R_NOT_YET_VALID);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                     TLSX_R_UNKNOWN_CA);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT),
                     TLSX_R_MISSING_INTERMEDIATE);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_CERT_REVOKED), TLSX_R_REVOKED);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_INVALID_PURPOSE), TLSX_R_WRONG_EKU);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_APPLICATION_VERIFICATION), TLSX_R_POLICY);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_UNABLE_TO_GET_CRL), TLSX_R_CRL_MISSING);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_CRL_HAS_EXPIRED), TLSX_R_CRL_EXPIRED);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_HOSTNAME_MISMATCH), TLSX_R_NAME_MISMATCH);
    assert_int_equal(tlsx_reason_from_verify(X509_V_ERR_OUT_OF_MEM), TLSX_R_OTHER);
}

static void alerts_map(void **state)
{
    (void)state;
    assert_int_equal(tlsx_reason_from_alert(SSL_AD_CERTIFICATE_REQUIRED), TLSX_R_NO_CERT);
    assert_int_equal(tlsx_reason_from_alert(SSL_AD_CERTIFICATE_REVOKED), TLSX_R_REVOKED);
    assert_int_equal(tlsx_reason_from_alert(SSL_AD_UNKNOWN_CA), TLSX_R_UNKNOWN_CA);
    assert_int_equal(tlsx_reason_from_alert(SSL_AD_PROTOCOL_VERSION), TLSX_R_PROTOCOL);
    assert_int_equal(tlsx_reason_from_alert(SSL_AD_HANDSHAKE_FAILURE), TLSX_R_OTHER);
}

static void error_queue_in_words(void **state)
{
    (void)state;
    char out[200];
    ERR_clear_error();
    assert_string_equal(tlsx_ossl_describe(out, sizeof(out)), "");
    assert_int_equal(tlsx_handshake_reason(NULL, out, sizeof(out)), TLSX_R_CLOSED);

    ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
    assert_int_equal(tlsx_handshake_reason(NULL, out, sizeof(out)), TLSX_R_CIPHER);
    assert_string_equal(out, "no shared cipher");
    /* tlsx_handshake_reason peeks; describe drains. */
    ERR_raise(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
    assert_string_equal(tlsx_ossl_describe(out, sizeof(out)),
                        "no shared cipher; wrong version number");
    assert_int_equal(ERR_peek_error(), 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_HTTP_REQUEST);
    assert_int_equal(tlsx_handshake_reason(NULL, NULL, 0), TLSX_R_NOT_TLS);
    ERR_clear_error();
    ERR_raise(ERR_LIB_SSL, SSL_AD_REASON_OFFSET + SSL_AD_CERTIFICATE_EXPIRED);
    assert_int_equal(tlsx_handshake_reason(NULL, out, sizeof(out)), TLSX_R_EXPIRED);
    ERR_clear_error();
    /* Truncation keeps a terminated string. */
    ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
    assert_string_equal(tlsx_ossl_describe(out, 6), "no sh");
}

int main(void)
{
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_reason_has_code_and_text),
        cmocka_unit_test(verify_results_map),
        cmocka_unit_test(alerts_map),
        cmocka_unit_test(error_queue_in_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
