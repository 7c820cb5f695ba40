/* The revocation feed's URL handling (crl_feed.c): the feed a twoway CA advertises is the CRL
 * URL's scheme, host and port with the advertised path; anything but a plain absolute path is
 * refused; gw_feed_new refuses a non-https URL with TW_ERR_CONFIG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/revocation.h"

static void test_url_from_crl_url(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(gw_feed_url_for("https://127.0.0.1:8443/crl", "/revocations", out,
                                     sizeof(out)),
                     0);
    assert_string_equal(out, "https://127.0.0.1:8443/revocations");
    assert_int_equal(gw_feed_url_for("https://ca.example/pki/crl?x=1#f", "/feed", out,
                                     sizeof(out)),
                     0);
    assert_string_equal(out, "https://ca.example/feed");
    assert_int_equal(gw_feed_url_for("https://[::1]:9/crl", "/revocations", out, sizeof(out)),
                     0);
    assert_string_equal(out, "https://[::1]:9/revocations");
}

static void test_bad_paths_refused(void **state)
{
    (void)state;
    char out[256];
    const char *bad[] = {NULL, "", "revocations", "//evil.example/x", "/a?b", "/a#b", "/a b",
                         "/a\\b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(gw_feed_url_for("https://127.0.0.1:8443/crl", bad[i], out, sizeof(out)),
                         -1);
    }
    assert_int_equal(gw_feed_url_for("not a url", "/revocations", out, sizeof(out)), -1);
    assert_int_equal(gw_feed_url_for("https://127.0.0.1:8443/crl", "/revocations", out, 8), -1);
}

static void test_feed_new_refuses_plain_http(void **state)
{
    (void)state;
    struct tw_err err;
    memset(&err, 0, sizeof(err));
    struct gw_feed *f = gw_feed_new(NULL, NULL, "http://127.0.0.1:1/revocations", "ca.pem", NULL,
                                    NULL, &err);
    assert_null(f);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "only https://"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_from_crl_url),
        cmocka_unit_test(test_bad_paths_refused),
        cmocka_unit_test(test_feed_new_refuses_plain_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
