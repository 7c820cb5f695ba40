#include "pki_test_util.h"

static void parse_valid_lists(void **state)
{
    (void)state;
    struct pki_sans s = {0};
    struct tw_err err;
    assert_int_equal(pki_sans_parse(&s,
                                    "dns:a.example.com,ip:10.0.0.1,ip:::1,email:x@y.z,"
                                    "uri:spiffe://t/x,DNS:*.w.example",
                                    &err),
                     0);
    assert_int_equal(s.count, 6);
    assert_int_equal(s.items[2].type, PKI_SAN_IP);
    assert_string_equal(s.items[2].value, "::1");
    assert_string_equal(s.items[4].value, "spiffe://t/x");
    /* duplicates collapse, IPs compare in canonical form */
    assert_int_equal(pki_sans_parse(&s, "dns:A.example.com,ip:0:0:0:0:0:0:0:1", &err), 0);
    assert_int_equal(s.count, 6);
    char out[STORE_SANS_MAX];
    assert_int_equal(pki_sans_format(&s, out, sizeof(out), &err), 0);
    assert_string_equal(out, "dns:a.example.com,ip:10.0.0.1,ip:::1,email:x@y.z,uri:spiffe://t/x,"
                             "dns:*.w.example");
    char tiny[8];
    assert_int_equal(pki_sans_format(&s, tiny, sizeof(tiny), &err), -1);
    assert_int_equal(err.code, TW_ERR_INTERNAL);
}

static void reject_invalid_values(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "dns:",          "dns:-a.example",  "dns:a..b",     "dns:a_b.example", "dns:a.*.example",
        "ip:300.1.1.1",  "ip:localhost",    "email:nobody", "email:@x",        "email:a@b@c",
        "uri:no-scheme", "uri:has space:x", "foo:bar",      "noseparator",     ",",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct pki_sans s = {0};
        struct tw_err err;
        if (pki_sans_parse(&s, bad[i], &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, TW_ERR_USAGE);
    }
}

static void limit_on_count(void **state)
{
    (void)state;
    struct pki_sans s = {0};
    struct tw_err err;
    char v[32];
    for (int i = 0; i < PKI_SANS_MAX; i++) {
        snprintf(v, sizeof(v), "h%d.example", i);
        assert_int_equal(pki_sans_add(&s, PKI_SAN_DNS, v, &err), 0);
    }
    assert_int_equal(pki_sans_add(&s, PKI_SAN_DNS, "one-more.example", &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    char longv[PKI_SAN_VALUE_MAX + 10];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    struct pki_sans t = {0};
    assert_int_equal(pki_sans_add(&t, PKI_SAN_URI, longv, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
}

static void names(void **state)
{
    (void)state;
    struct tw_err err;
    assert_int_equal(pki_name_check("alice", &err), 0);
    assert_int_equal(pki_name_check("Alice Smith@example.com", &err), 0);
    static const char *const bad[] = {
        "",    ".hidden", "-flag",
        "a/b", "a\nb",    "012345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pki_name_check(bad[i], &err), -1);
        assert_int_equal(err.code, TW_ERR_USAGE);
    }
}

static void profiles(void **state)
{
    (void)state;
    struct tw_err err;
    enum pki_profile p;
    assert_int_equal(pki_profile_parse("server", &p, &err), 0);
    assert_int_equal(p, PKI_PROFILE_SERVER);
    assert_string_equal(pki_profile_name(PKI_PROFILE_OCSP), "ocsp");
    assert_int_equal(pki_profile_parse("admin", &p, &err), 0);
    assert_int_equal(p, PKI_PROFILE_ADMIN);
    assert_int_equal(pki_profile_parse("superuser", &p, &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    assert_int_equal(pki_profile_default_days(PKI_PROFILE_CLIENT), 30);
    assert_int_equal(pki_profile_default_days(PKI_PROFILE_SERVER), 90);
    assert_true(pki_profile_allows_san(PKI_PROFILE_CLIENT, PKI_SAN_EMAIL));
    assert_true(pki_profile_allows_san(PKI_PROFILE_SERVER, PKI_SAN_IP));
    assert_false(pki_profile_allows_san(PKI_PROFILE_SERVER, PKI_SAN_EMAIL));
    assert_false(pki_profile_allows_san(PKI_PROFILE_ROOT, PKI_SAN_DNS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_valid_lists), cmocka_unit_test(reject_invalid_values),
        cmocka_unit_test(limit_on_count),    cmocka_unit_test(names),
        cmocka_unit_test(profiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
