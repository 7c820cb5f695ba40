/* The `user` key ([global]): a login name, kept as given; anything else is TW_ERR_CONFIG
 * naming file:line, the key and why. Whether the user exists is checked at start (util/priv). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/config.h"

#define SVC                                                                                        \
    "[service web]\n"                                                                              \
    "listen = 127.0.0.1:8443\n"                                                                    \
    "backend = 127.0.0.1:8080\n"                                                                   \
    "cert = s.crt\n"                                                                               \
    "key = s.key\n"                                                                                \
    "client-ca = ca.pem\n"

static void test_user_kept(void **state)
{
    (void)state;
    static const char text[] = "[global]\nuser = twoway\n" SVC;
    struct tw_err err = {0};
    struct gw_config *cfg = gw_config_load_buffer("t.conf", text, strlen(text), &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->global.user, "twoway");
    gw_config_free(cfg);

    struct gw_config *none = gw_config_load_buffer("t.conf", SVC, strlen(SVC), &err);
    assert_non_null(none);
    assert_null(none->global.user);
    gw_config_free(none);
}

static void test_user_flag(void **state)
{
    (void)state;
    char *argv[] = {"gateway", "--listen", "127.0.0.1:8443", "--backend", "127.0.0.1:8080",
                    "--cert",  "s.crt",    "--key",          "s.key",     "--client-ca",
                    "ca.pem",  "--user",   "svc_tw-1.a",     NULL};
    struct tw_err err = {0};
    struct gw_config *cfg = gw_config_from_args(13, argv, &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    assert_string_equal(cfg->global.user, "svc_tw-1.a");
    gw_config_free(cfg);
}

static void test_bad_user_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "1abc", "-x", "a b", "x/y", "abcdefghijklmnopqrstuvwxyz0123456", "r\xc3\xa9mi"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "[global]\nuser = %s\n" SVC, bad[i]);
        struct tw_err err = {0};
        struct gw_config *cfg = gw_config_load_buffer("t.conf", text, strlen(text), &err);
        if (cfg != NULL)
            fail_msg("user = %s was accepted", bad[i]);
        assert_int_equal(err.code, TW_ERR_CONFIG);
        if (strstr(err.msg, "t.conf:2: [global] user") == NULL ||
            strstr(err.msg, "expected a user name") == NULL)
            fail_msg("user = %s: %s", bad[i], err.msg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_kept),
        cmocka_unit_test(test_user_flag),
        cmocka_unit_test(test_bad_user_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
