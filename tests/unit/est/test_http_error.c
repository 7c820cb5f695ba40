/* A failed EST request in words (http_error.c): each kind of failure has its code and says
 * what a user needs, and a proxy is named without its credentials. The proxy's refusals of a
 * tunnel need a real CONNECT and are tested in tests/integration/test_est_proxy.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "est/internal.h"

struct fixture {
    CURL *curl;
    struct est_url u;
    struct est_xfer x;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct tw_err err;
    if (f == NULL || est_url_parse("https://ca.example.com:8443", &f->u, &err) != 0)
        return -1;
    f->curl = curl_easy_init();
    f->x.u = &f->u;
    f->x.alert_received = -1;
    f->x.verify_result = X509_V_OK;
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    *state = f;
    return f->curl != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    curl_easy_cleanup(f->curl);
    free(f);
    return 0;
}

static struct tw_err explain(struct fixture *f, CURLcode rc, const char *curl_msg)
{
    struct tw_err err;
    tw_err_clear(&err);
    f->x.rc = rc;
    snprintf(f->x.curl_msg, sizeof(f->x.curl_msg), "%s", curl_msg);
    est_http_explain(f->curl, &f->x, &err);
    return err;
}

static void setup_error_is_passed_on(void **state)
{
    struct fixture *f = *state;
    f->x.setup_failed = -1;
    tw_err_set(&f->x.setup_err, TW_ERR_CONFIG, "ca.pem: no certificate");
    struct tw_err err = explain(f, CURLE_SSL_CERTPROBLEM, "error signaled by ssl ctx callback");
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_string_equal(err.msg, "ca.pem: no certificate");
}

static void too_large(void **state)
{
    struct fixture *f = *state;
    f->x.too_large = 1;
    struct tw_err err = explain(f, CURLE_WRITE_ERROR, "Failure writing output");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "https://ca.example.com:8443: answer larger than 4194304"));
    f->x.too_large = 0;
    err = explain(f, CURLE_FILESIZE_EXCEEDED, "Maximum file size exceeded");
    assert_non_null(strstr(err.msg, "answer larger than"));
    f->x.headers_too_large = 1;
    err = explain(f, CURLE_WRITE_ERROR, "");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "headers larger than 16384"));
}

static void connection_failures(void **state)
{
    struct fixture *f = *state;
    struct tw_err err = explain(f, CURLE_COULDNT_CONNECT, "Failed to connect to ca port 8443");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_string_equal(err.msg,
                        "cannot connect to https://ca.example.com:8443: Failed to connect to ca "
                        "port 8443");
    err = explain(f, CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: ca.example.com");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot resolve https://ca.example.com:8443"));
    err = explain(f, CURLE_OPERATION_TIMEDOUT, "");
    assert_int_equal(err.code, TW_ERR_IO);
    /* libcurl's own words when it left the buffer empty. */
    assert_non_null(strstr(err.msg, "did not answer in time: Timeout was reached"));
    err = explain(f, CURLE_GOT_NOTHING, "Empty reply from server");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_string_equal(err.msg, "https://ca.example.com:8443: Empty reply from server");
}

static void proxy_is_named_without_credentials(void **state)
{
    struct fixture *f = *state;
    setenv("HTTPS_PROXY", "http://svc:S3cret%40pw@proxy.corp.example:3128", 1);
    struct tw_err err = explain(f, CURLE_COULDNT_CONNECT, "Failed to connect to proxy port 3128");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "proxy: http://proxy.corp.example:3128/ from HTTPS_PROXY"));
    assert_null(strstr(err.msg, "S3cret"));
    assert_null(strstr(err.msg, "svc"));
    /* The lower-case name wins, as in libcurl. */
    setenv("https_proxy", "proxy2.corp.example:8080", 1);
    err = explain(f, CURLE_COULDNT_RESOLVE_PROXY, "Could not resolve proxy: proxy2.corp.example");
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot resolve the proxy (http://proxy2.corp.example:8080/ "
                                    "from https_proxy)"));
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
}

static void tls_failures_in_plain_words(void **state)
{
    struct fixture *f = *state;
    f->x.verify_result = X509_V_ERR_CERT_HAS_EXPIRED;
    struct tw_err err = explain(f, CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem");
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(err.msg, "TLS handshake with https://ca.example.com:8443 failed: "));
    assert_non_null(strstr(err.msg, tlsx_reason_text(TLSX_R_EXPIRED)));
    f->x.verify_result = X509_V_OK;
    /* TLS 1.3: the server's refusal of our certificate comes with the first read. */
    f->x.alert_received = SSL_AD_UNKNOWN_CA;
    err = explain(f, CURLE_RECV_ERROR, "OpenSSL SSL_read: tlsv1 alert unknown ca");
    assert_int_equal(err.code, TW_ERR_TLS);
    assert_non_null(strstr(err.msg, "the server sent alert: unknown CA"));
    f->x.alert_received = -1;
    f->x.why = TLSX_R_NOT_TLS;
    snprintf(f->x.why_detail, sizeof(f->x.why_detail), "wrong version number");
    err = explain(f, CURLE_SSL_CONNECT_ERROR, "OpenSSL: wrong version number");
    assert_int_equal(err.code, TW_ERR_TLS);
    assert_non_null(strstr(err.msg, tlsx_reason_text(TLSX_R_NOT_TLS)));
    assert_non_null(strstr(err.msg, "(wrong version number)"));
    f->x.why = TLSX_R_OK;
    err = explain(f, CURLE_SSL_CONNECT_ERROR, "OpenSSL SSL_connect: Connection reset by peer");
    assert_int_equal(err.code, TW_ERR_TLS);
    assert_non_null(strstr(err.msg, "(OpenSSL SSL_connect: Connection reset by peer)"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(setup_error_is_passed_on, setup, teardown),
        cmocka_unit_test_setup_teardown(too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(proxy_is_named_without_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_failures_in_plain_words, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
