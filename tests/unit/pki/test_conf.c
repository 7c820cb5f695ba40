/* ca/ca.conf round trip and its error paths (white-box: pki/internal.h). */
#include "pki_test_util.h"

#include "pki/internal.h"
#include "util/fs.h"

static void round_trip_and_errors(void **state)
{
    (void)state;
    char dir[64], path[128];
    tmpdir_make(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/ca.conf", dir);
    struct tw_err err;
    struct pki_ca_conf conf = {.name = "Unit CA",
                               .key = "ed25519",
                               .base_url = "https://ca.example:8443",
                               .encrypted = 1,
                               .crl_days = 3};
    assert_int_equal(conf_write(path, &conf, &err), 0);
    struct pki_ca_conf back;
    assert_int_equal(conf_read(path, &back, &err), 0);
    assert_string_equal(back.name, "Unit CA");
    assert_string_equal(back.key, "ed25519");
    assert_string_equal(back.base_url, "https://ca.example:8443");
    assert_int_equal(back.encrypted, 1);
    assert_int_equal(back.crl_days, 3);
    assert_string_equal(back.http_listen, "");

    static const char with_http[] = "[ca]\nname = x\nhttp-listen = [::1]:8080\n";
    assert_int_equal(fs_write_atomic(path, with_http, strlen(with_http), 0600, &err), 0);
    assert_int_equal(conf_read(path, &back, &err), 0);
    assert_string_equal(back.http_listen, "[::1]:8080");
    assert_int_equal(conf_write(path, &back, &err), 0);
    memset(&back, 0, sizeof(back));
    assert_int_equal(conf_read(path, &back, &err), 0);
    assert_string_equal(back.http_listen, "[::1]:8080");

    static const char *const bad[] = {
        "[ca]\nname = x\ncolour = blue\n",
        "[ca]\nname = x\ncrl-days = 0\n",
        "[ca]\nname = x\nencrypted = maybe\n",
        "[ca]\nname = x\nbase-url = ftp://x\n",
        "[ca]\nname = x\nhttp-listen =\n",
        "[other]\nname = x\n",
        "[ca]\nkey = ed25519\n",
        "[ca\nname = x\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(fs_write_atomic(path, bad[i], strlen(bad[i]), 0600, &err), 0);
        if (conf_read(path, &back, &err) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(err.code, TW_ERR_CONFIG);
        assert_non_null(strstr(err.msg, path));
    }
    snprintf(path, sizeof(path), "%s/missing.conf", dir);
    assert_int_equal(conf_read(path, &back, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    tmpdir_remove(dir);
}

static void base_urls(void **state)
{
    (void)state;
    struct tw_err err;
    assert_int_equal(conf_check_base_url("http://127.0.0.1:8080", &err), 0);
    assert_int_equal(conf_check_base_url("https://[::1]:8443/pki", &err), 0);
    static const char *const bad[] = {"ca.example",  "https://",    "https:///x", "https://a/",
                                      "https://a,b", "https://a b", "https://a;b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(conf_check_base_url(bad[i], &err), -1);
        assert_int_equal(err.code, TW_ERR_USAGE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_and_errors),
        cmocka_unit_test(base_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
