/* RFC 7512 URIs as keystore reads them: attributes, percent-decoding, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "keystore/internal.h"

static void parses_path_and_query_attributes(void **state)
{
    (void)state;
    struct p11_uri u;
    struct tw_err err;
    assert_int_equal(
        p11_uri_parse("pkcs11:token=my%20token;object=gw-key;id=%01%02%ff;type=private"
                      "?pin-source=file:/etc/pin&module-path=/usr/lib/softhsm/libsofthsm2.so",
                      &u, &err),
        0);
    assert_string_equal(u.token, "my token");
    assert_string_equal(u.object, "gw-key");
    assert_int_equal(u.id_len, 3);
    assert_memory_equal(u.id, "\x01\x02\xff", 3);
    assert_string_equal(u.pin_file, "/etc/pin");
    assert_string_equal(u.module, "/usr/lib/softhsm/libsofthsm2.so");
    assert_true(u.want_private);
    /* Narrowing attributes are accepted; a bare path is a pin-source too. */
    assert_int_equal(p11_uri_parse("pkcs11:token=t;manufacturer=SoftHSM?pin-source=/p", &u, &err),
                     0);
    assert_string_equal(u.pin_file, "/p");
}

static void refuses_with_reasons(void **state)
{
    (void)state;
    static const struct {
        const char *uri, *msg;
    } bad[] = {
        {"pkcs12:token=t", "is not a pkcs11: URI"},
        {"pkcs11:object=k", "names no token"},
        {"pkcs11:token=t;object=k?pin-value=1234", "pin-value is refused"},
        {"pkcs11:token=t;type=public", "does not name a private key"},
        {"pkcs11:token=t;colour=blue", "unknown attribute 'colour'"},
        {"pkcs11:token=t;object", "is not attribute=value"},
        {"pkcs11:token=t;object=a%2", "truncated %-escape"},
        {"pkcs11:token=t;object=a%zz", "bad %-escape"},
        {"pkcs11:token=a%00b", "holds a NUL byte"},
        {"pkcs11:token=t?pin-source=relative/pin", "pin-source must be file:/absolute/path"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct p11_uri u;
        struct tw_err err;
        tw_err_clear(&err);
        assert_int_equal(p11_uri_parse(bad[i].uri, &u, &err), -1);
        assert_int_equal(err.code, TW_ERR_CONFIG);
        if (strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("%s: got '%s', want '%s'", bad[i].uri, err.msg, bad[i].msg);
    }
}

static void refuses_overlong_values(void **state)
{
    (void)state;
    char uri[KEYSTORE_REF_MAX + 16];
    char label[P11_LABEL_MAX + 2];
    memset(label, 'a', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    snprintf(uri, sizeof(uri), "pkcs11:token=%s", label);
    struct p11_uri u;
    struct tw_err err;
    assert_int_equal(p11_uri_parse(uri, &u, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "'token' is longer than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_path_and_query_attributes),
        cmocka_unit_test(refuses_with_reasons),
        cmocka_unit_test(refuses_overlong_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
