/* twoway tunnel configuration: [tunnel NAME] sections into gateway services (plaintext
 * listener, tls:// backend with the client certificate), [global] defaults, flags, and every
 * class of error with its code and a message naming file:line, section and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/config_priv.h"
#include "gateway/tunnel.h"

#define TUN(name, listen)                                                                          \
    "[tunnel " name "]\n"                                                                          \
    "listen = " listen "\n"                                                                        \
    "target = api.example.com:8443\n"                                                              \
    "cert = a.pem\n"                                                                               \
    "key = a.key\n"                                                                                \
    "ca = ca.pem\n"

static struct gw_config *load(const char *text, struct tw_err *err)
{
    tw_err_clear(err);
    return gw_tunnel_config_load_buffer("t.conf", text, strlen(text), err);
}

static void test_one_tunnel(void **state)
{
    (void)state;
    struct tw_err err;
    struct gw_config *cfg = load("; a comment\n\n[global]\nworkers = 2\nidle-timeout = 1m\n"
                                 "max-connections = 50\n\n[service web]\nlisten = x\n\n" TUN(
                                     "api", "127.0.0.1:8080 ; local") "server-name = api\n",
                                 &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_services, 1);
    assert_int_equal(cfg->n_listeners, 1);
    const struct gw_service *s = &cfg->services[0];
    assert_string_equal(s->name, "api");
    assert_true(s->plaintext_listen);
    assert_int_equal(s->mode, GW_MODE_TCP);
    assert_int_equal(s->forward, GW_FORWARD_NONE);
    assert_int_equal(s->backend.kind, GW_BACKEND_TLS);
    assert_string_equal(s->backend.host, "api.example.com");
    assert_int_equal(s->backend.port, 8443);
    assert_string_equal(s->backend_cert, "a.pem");
    assert_string_equal(s->backend_key, "a.key");
    assert_string_equal(s->backend_ca, "ca.pem");
    assert_string_equal(s->backend_server_name, "api");
    assert_string_equal(s->listen[0].text, "127.0.0.1:8080");
    assert_int_equal(s->timeouts.idle, 60);
    assert_null(s->cert);
    assert_int_equal(cfg->global.workers, 2);
    assert_int_equal(cfg->global.max_connections, 50);
    assert_int_equal(s->max_connections, 0);
    gw_config_free(cfg);
}

static void test_two_tunnels_and_overrides(void **state)
{
    (void)state;
    struct tw_err err;
    struct gw_config *cfg = load("[global]\nidle-timeout = 60\n" TUN("a", "127.0.0.1:1")
                                     TUN("b", "[::1]:2") "idle-timeout = 5\nmax-connections = 3\n"
                                                         "tls-min = 1.3\n",
                                 &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_services, 2);
    assert_int_equal(cfg->services[0].timeouts.idle, 60);
    assert_int_equal(cfg->services[1].timeouts.idle, 5);
    assert_int_equal(cfg->services[1].max_connections, 3);
    assert_int_equal(cfg->services[1].tls_min, TLS1_3_VERSION);
    assert_string_equal(cfg->listeners[1].addr.text, "[::1]:2");
    assert_int_equal(cfg->listeners[1].services[0], 1);
    gw_config_free(cfg);
}

static void test_flags(void **state)
{
    (void)state;
    char *argv[] = {"tunnel",
                    "--listen",
                    "127.0.0.1:9",
                    "--target=h.example:443",
                    "--cert",
                    "c.pem",
                    "--key",
                    "k.pem",
                    "--ca",
                    "ca.pem",
                    "--workers",
                    "1",
                    "--max-connections",
                    "7",
                    "--access-log",
                    "off",
                    NULL};
    struct gw_source src = {.argc = 16, .argv = argv};
    struct tw_err err;
    tw_err_clear(&err);
    struct gw_config *cfg = gw_tunnel_config_load(&src, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->services[0].name, "default");
    assert_string_equal(cfg->services[0].backend.host, "h.example");
    assert_int_equal(cfg->services[0].max_connections, 7);
    assert_int_equal(cfg->global.workers, 1);
    assert_null(cfg->global.access_log);
    /* The flags are copied, not edited: a reload reads them again. */
    assert_string_equal(argv[3], "--target=h.example:443");
    gw_config_free(cfg);
}

struct error_case {
    const char *text;
    enum tw_errc code;
    const char *want; /* substring of the message */
};

static const struct error_case cases[] = {
    {"", TW_ERR_CONFIG, "t.conf: no [tunnel NAME] section"},
    {"[service web]\nlisten = 1\n", TW_ERR_CONFIG, "no [tunnel NAME] section"},
    {"[tunnel a]\nlisten = 127.0.0.1:1\n", TW_ERR_CONFIG,
     "t.conf:1: [tunnel a]: target is required"},
    {TUN("a", "127.0.0.1:99999"), TW_ERR_CONFIG,
     "t.conf:2: [tunnel a] listen = \"127.0.0.1:99999\": port must be 1-65535"},
    {TUN("a", "localhost:80"), TW_ERR_CONFIG, "t.conf:2: [tunnel a] listen"},
    {"[tunnel a]\ntarget = unix:/x\n", TW_ERR_CONFIG, "t.conf:2: [tunnel a] target = \"unix:/x\""},
    {"[tunnel a]\ntarget = http://x:1\n", TW_ERR_CONFIG, "the target is HOST:PORT"},
    {"[tunnel a]\ntarget = x\n", TW_ERR_CONFIG, "[tunnel a] target"},
    {"[tunnel a]\nbogus = 1\n", TW_ERR_CONFIG, "t.conf:2: [tunnel a] bogus = \"1\": unknown key"},
    {"[tunnel a]\nallow = cn:x\n", TW_ERR_CONFIG, "[tunnel a] allow"},
    {"[tunnel a]\nca = x\nca = y\n", TW_ERR_CONFIG, "t.conf:3: [tunnel a] ca = \"y\": set twice"},
    {"[tunnel a]\nserver-name = *.example.com\n", TW_ERR_CONFIG, "not a wildcard"},
    {"[tunnel a]\nserver-name = bad_name!\n", TW_ERR_CONFIG, "[tunnel a] server-name"},
    /* Found by fuzzing: an empty server-name was checked one byte past its end. */
    {"[tunnel a]\nserver-name =\n", TW_ERR_CONFIG,
     "t.conf:2: [tunnel a] server-name = \"\": empty value"},
    {"[tunnel a]\nserver-name = \t \n", TW_ERR_CONFIG, "[tunnel a] server-name = \"\": empty value"},
    {"[global]\nidle-timeout =\n", TW_ERR_CONFIG, "[global] idle-timeout = \"\": empty value"},
    {"[tunnel a]\nidle-timeout = forever\n", TW_ERR_CONFIG, "[tunnel a] idle-timeout"},
    {"[global]\nworkers = many\n" TUN("a", "127.0.0.1:1"), TW_ERR_CONFIG,
     "t.conf:2: [global] workers"},
    {"[global]\nnot-a-key = 1\n", TW_ERR_CONFIG, "[global] not-a-key"},
    {"[global]\nlisten = 127.0.0.1:1\n", TW_ERR_CONFIG, "[global] listen"},
    {TUN("a", "127.0.0.1:1") TUN("a", "127.0.0.1:2"), TW_ERR_CONFIG,
     "[tunnel a] is already defined at line 1"},
    {TUN("a", "127.0.0.1:1") TUN("b", "127.0.0.1:1"), TW_ERR_CONFIG,
     "[tunnel b]: listen 127.0.0.1:1 is already used by [tunnel a]"},
    {"[tunnel bad/name]\n", TW_ERR_CONFIG, "a tunnel name is"},
    {"[tunnel]\n", TW_ERR_CONFIG, "a tunnel name is"},
    {"[tunnels x]\n", TW_ERR_CONFIG, "unknown section [tunnels x]"},
    {"[tunnel a\n", TW_ERR_CONFIG, "t.conf:1: a section header is [NAME]"},
    {"listen = 1\n", TW_ERR_CONFIG, "t.conf:1: 'listen' is outside any section"},
    {"[tunnel a]\nno equals sign\n", TW_ERR_CONFIG, "t.conf:2: expected 'key = value'"},
    {"[tunnel a]\n = v\n", TW_ERR_CONFIG, "a key name is missing"},
    {TUN("a", "127.0.0.1:1") "tls-min = 1.3\ntls-max = 1.2\n", TW_ERR_CONFIG,
     "tls-min is above tls-max"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tw_err err;
        struct gw_config *cfg = load(cases[i].text, &err);
        if (cfg != NULL || err.code != cases[i].code || strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: got %s '%s', want '%s'", i, cfg ? "a config" : "error", err.msg,
                     cases[i].want);
    }
}

static void test_binary_and_size_limits(void **state)
{
    (void)state;
    struct tw_err err;
    tw_err_clear(&err);
    assert_null(gw_tunnel_config_load_buffer("t.conf", "[tunnel a]\0", 11, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "NUL byte"));
    size_t big = GW_CONFIG_LINE_MAX + 10;
    char *line = malloc(big + 1);
    assert_non_null(line);
    memset(line, 'a', big);
    line[big] = '\0';
    assert_null(gw_tunnel_config_load_buffer("t.conf", line, big, &err));
    assert_non_null(strstr(err.msg, "t.conf:1: line longer than"));
    free(line);
}

static void test_flag_errors(void **state)
{
    (void)state;
    struct {
        char *argv[6];
        int argc;
        const char *want;
    } cases2[] = {
        {{"tunnel", "--listen"}, 2, "--listen needs a value"},
        {{"tunnel", "listen"}, 2, "unexpected argument 'listen'"},
        {{"tunnel", "--nope", "x"}, 3, "--nope \"x\": unknown flag"},
        {{"tunnel", "--listen", "127.0.0.1:1"}, 3, "--target is required"},
        {{"tunnel", "--listen", "1", "--listen", "2"}, 5, "--listen \"2\": set twice"},
        {{"tunnel", "--server-name="}, 2, "--server-name \"\": empty value"},
        {{"tunnel", "--server-name", ""}, 3, "--server-name \"\": empty value"},
    };
    for (size_t i = 0; i < sizeof(cases2) / sizeof(cases2[0]); i++) {
        struct gw_source src = {.argc = cases2[i].argc, .argv = cases2[i].argv};
        struct tw_err err;
        tw_err_clear(&err);
        struct gw_config *cfg = gw_tunnel_config_load(&src, &err);
        if (cfg != NULL || err.code != TW_ERR_USAGE || strstr(err.msg, cases2[i].want) == NULL)
            fail_msg("flag case %zu: got '%s', want '%s'", i, err.msg, cases2[i].want);
    }
}

/* The value checks themselves stay within the string, whatever its length. */
static void test_server_name_check_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *want; /* NULL: accepted */
    } names[] = {
        {"", "empty server name"},
        {"*", "a wildcard is only allowed as the whole first label"},
        {"*.", "host name must be 1-253 characters"},
        {"a", NULL},
        {"*.a", NULL},
        {"*.*.a", "only one leading '*.' wildcard"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char why[200] = "";
        int rc = cfg_check_server_name(names[i].name, why, sizeof(why));
        if (names[i].want == NULL ? rc != 0 : rc == 0 || strstr(why, names[i].want) == NULL)
            fail_msg("'%s': got %d '%s', want '%s'", names[i].name, rc, why,
                     names[i].want ? names[i].want : "accepted");
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct gw_source src = {.config_path = "/nonexistent/twoway.conf"};
    struct tw_err err;
    tw_err_clear(&err);
    assert_null(gw_tunnel_config_load(&src, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/twoway.conf"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_tunnel),
        cmocka_unit_test(test_two_tunnels_and_overrides),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_binary_and_size_limits),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_server_name_check_bounds),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
