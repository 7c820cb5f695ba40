/* Gateway configuration: a full round trip, defaults and inheritance, flags equal to the same
 * INI, and every class of error naming file:line and key with TW_ERR_CONFIG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/config.h"

#define BASE                                                                                       \
    "[service web]\n"                                                                              \
    "listen = 0.0.0.0:8443\n"                                                                      \
    "backend = 127.0.0.1:8080\n"                                                                   \
    "cert = s.crt\n"                                                                               \
    "key = s.key\n"                                                                                \
    "client-ca = ca.pem\n"
/* BASE is 6 lines: a key appended to it sits on line 7. */

static struct gw_config *load(const char *text, struct tw_err *err)
{
    return gw_config_load_buffer("t.conf", text, strlen(text), err);
}

static const char full[] = "; every key\n"
                           "[global]\n"
                           "workers = 4\n"
                           "metrics = 127.0.0.1:9100\n"
                           "access-log = /var/log/twoway.json\n"
                           "log-level = debug\n"
                           "max-connections = 500\n"
                           "ticket-key-file = tickets.key\n"
                           "ticket-rotate = 2h\n"
                           "drain-timeout = 45s\n"
                           "idle-timeout = 2m          ; a default for every service\n"
                           "tls-min = 1.3\n"
                           "crl-refresh = 10m\n"
                           "\n"
                           "[service web]\n"
                           "    listen = 0.0.0.0:8443\n"
                           "    listen = [::]:8443\n"
                           "    backend = tls://api.internal:443\n"
                           "    mode = http\n"
                           "    cert = web.crt\n"
                           "    key = web.key\n"
                           "    client-ca = clients.pem\n"
                           "    crl = ca.crl\n"
                           "    crl = https://ca.example.com/crl\n"
                           "    crl-ca = ca-server.pem\n"
                           "    crl-expired = warn\n"
                           "    ocsp = on\n"
                           "    ocsp-fail = open\n"
                           "    allow = cn:alice\n"
                           "    allow = uri:spiffe://example.org/*\n"
                           "    allow = serial:0A:1B\n"
                           "    allow = sha256:ab:cd*\n"
                           "    forward = xfcc\n"
                           "    server-name = API.example.com\n"
                           "    server-name = *.api.example.com\n"
                           "    backend-cert = gw.crt\n"
                           "    backend-key = gw.key\n"
                           "    backend-ca = backend-ca.pem\n"
                           "    backend-server-name = api.internal.example\n"
                           "    tls-max = 1.3\n"
                           "    ciphers = ECDHE+AESGCM\n"
                           "    ciphersuites = TLS_AES_128_GCM_SHA256\n"
                           "    groups = X25519:P-256\n"
                           "    max-connections = 100\n"
                           "    handshake-timeout = 3s\n"
                           "    backend-connect-timeout = 2s\n"
                           "    backend-timeout = 1m\n"
                           "    max-lifetime = 1h\n"
                           "    max-header-bytes = 32k\n"
                           "    max-headers = 50\n"
                           "    buffer-size = 128k\n"
                           "\n"
                           "[service db]\n"
                           "listen = 127.0.0.1:5433\n"
                           "backend = unix:/run/pg.sock\n"
                           "mode = tcp\n"
                           "forward = proxy-v2\n"
                           "proxy-v2-cert = on\n"
                           "cert = db.crt\n"
                           "key = db.key\n"
                           "client-ca = clients.pem\n"
                           "idle-timeout = 1h\n"
                           "\n"
                           "[tunnel later]\n"
                           "anything = is skipped\n";

static void test_full_round_trip(void **state)
{
    (void)state;
    struct tw_err err = {0};
    struct gw_config *cfg = load(full, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, "t.conf");
    const struct gw_global *g = &cfg->global;
    assert_int_equal(g->workers, 4);
    assert_true(g->has_metrics);
    assert_string_equal(g->metrics.text, "127.0.0.1:9100");
    assert_string_equal(g->access_log, "/var/log/twoway.json");
    assert_int_equal(g->log_level, LOG_LVL_DEBUG);
    assert_int_equal(g->max_connections, 500);
    assert_string_equal(g->ticket_key_file, "tickets.key");
    assert_int_equal(g->ticket_rotate, 7200);
    assert_int_equal(g->drain_timeout, 45);

    assert_int_equal(cfg->n_services, 2);
    const struct gw_service *w = &cfg->services[0];
    assert_string_equal(w->name, "web");
    assert_int_equal(w->line, 15);
    assert_int_equal(w->n_listen, 2);
    assert_string_equal(w->listen[0].text, "0.0.0.0:8443");
    assert_string_equal(w->listen[1].text, "[::]:8443");
    assert_int_equal(w->listen[1].ss.ss_family, AF_INET6);
    assert_int_equal(w->backend.kind, GW_BACKEND_TLS);
    assert_string_equal(w->backend.host, "api.internal");
    assert_int_equal(w->backend.port, 443);
    assert_string_equal(w->backend.text, "tls://api.internal:443");
    assert_int_equal(w->mode, GW_MODE_HTTP);
    assert_string_equal(w->cert, "web.crt");
    assert_string_equal(w->key, "web.key");
    assert_string_equal(w->client_ca, "clients.pem");
    assert_int_equal(w->n_crl, 2);
    assert_false(w->crl_is_url[0]);
    assert_true(w->crl_is_url[1]);
    assert_int_equal(w->crl_refresh, 600); /* inherited */
    assert_string_equal(w->crl_ca, "ca-server.pem");
    assert_int_equal(w->crl_expired, TLSX_CRL_EXPIRED_WARN);
    assert_true(w->ocsp);
    assert_int_equal(w->ocsp_fail, GW_OCSP_FAIL_OPEN);
    assert_int_equal(w->n_allow, 4);
    assert_string_equal(w->allow[1], "uri:spiffe://example.org/*");
    assert_int_equal(w->forward, GW_FORWARD_XFCC);
    assert_int_equal(w->n_server_name, 2);
    assert_string_equal(w->server_name[0], "api.example.com"); /* lower-cased */
    assert_false(w->server_name_from_cert);
    assert_string_equal(w->backend_cert, "gw.crt");
    assert_string_equal(w->backend_key, "gw.key");
    assert_string_equal(w->backend_ca, "backend-ca.pem");
    assert_string_equal(w->backend_server_name, "api.internal.example");
    assert_false(w->insecure_skip_backend_verify);
    assert_int_equal(w->tls_min, TLS1_3_VERSION); /* inherited */
    assert_int_equal(w->tls_max, TLS1_3_VERSION);
    assert_string_equal(w->ciphers, "ECDHE+AESGCM");
    assert_string_equal(w->ciphersuites, "TLS_AES_128_GCM_SHA256");
    assert_string_equal(w->groups, "X25519:P-256");
    assert_int_equal(w->max_connections, 100);
    assert_int_equal(w->timeouts.handshake, 3);
    assert_int_equal(w->timeouts.idle, 120); /* inherited */
    assert_int_equal(w->timeouts.backend_connect, 2);
    assert_int_equal(w->timeouts.backend, 60);
    assert_int_equal(w->timeouts.max_lifetime, 3600);
    assert_int_equal(w->limits.max_header_bytes, 32768);
    assert_int_equal(w->limits.max_headers, 50);
    assert_int_equal(w->limits.buffer_size, 131072);

    const struct gw_service *d = &cfg->services[1];
    assert_int_equal(d->mode, GW_MODE_TCP);
    assert_int_equal(d->backend.kind, GW_BACKEND_UNIX);
    assert_string_equal(d->backend.path, "/run/pg.sock");
    assert_int_equal(d->forward, GW_FORWARD_PROXY_V2);
    assert_true(d->proxy_v2_cert);
    assert_int_equal(d->timeouts.idle, 3600); /* own value beats [global] */
    assert_int_equal(d->max_connections, 0);  /* [global] max-connections is not inherited */
    assert_int_equal(d->tls_min, TLS1_3_VERSION);

    assert_int_equal(cfg->n_listeners, 3);
    assert_string_equal(cfg->listeners[2].addr.text, "127.0.0.1:5433");
    assert_int_equal(cfg->listeners[2].mode, GW_MODE_TCP);
    assert_int_equal(cfg->listeners[2].n_services, 1);
    assert_int_equal(cfg->listeners[2].services[0], 1);

    char buf[8192] = {0};
    FILE *out = fmemopen(buf, sizeof(buf) - 1, "w");
    gw_config_explain(cfg, out);
    fclose(out);
    assert_non_null(strstr(buf, "0.0.0.0:8443 -> tls://api.internal:443"));
    assert_non_null(strstr(buf, "cn:alice, uri:spiffe://example.org/*, serial:0A:1B"));
    assert_non_null(strstr(buf, "xfcc"));
    assert_non_null(strstr(buf, "127.0.0.1:5433 -> unix:/run/pg.sock (tcp mode"));
    gw_config_free(cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct tw_err err = {0};
    struct gw_config *cfg = load(BASE, &err);
    assert_non_null(cfg);
    const struct gw_global *g = &cfg->global;
    assert_int_equal(g->workers, 0);
    assert_false(g->has_metrics);
    assert_string_equal(g->access_log, "-");
    assert_int_equal(g->log_level, LOG_LVL_INFO);
    assert_int_equal(g->max_connections, 10000);
    assert_null(g->ticket_key_file);
    assert_int_equal(g->ticket_rotate, 3600);
    assert_int_equal(g->drain_timeout, 30);
    const struct gw_service *s = &cfg->services[0];
    assert_int_equal(s->mode, GW_MODE_HTTP);
    assert_int_equal(s->forward, GW_FORWARD_RFC9440);
    assert_int_equal(s->backend.kind, GW_BACKEND_TCP);
    assert_int_equal(s->n_crl, 0);
    assert_int_equal(s->crl_refresh, 300);
    assert_int_equal(s->crl_expired, TLSX_CRL_EXPIRED_REJECT);
    assert_false(s->ocsp);
    assert_int_equal(s->ocsp_fail, GW_OCSP_FAIL_CLOSED);
    assert_int_equal(s->n_allow, 0);
    assert_int_equal(s->tls_min, TLS1_2_VERSION);
    assert_int_equal(s->tls_max, TLS1_3_VERSION);
    assert_null(s->ciphers);
    assert_int_equal(s->timeouts.handshake, 10);
    assert_int_equal(s->timeouts.idle, 300);
    assert_int_equal(s->timeouts.backend_connect, 5);
    assert_int_equal(s->timeouts.backend, 60);
    assert_int_equal(s->timeouts.max_lifetime, 0);
    assert_int_equal(s->limits.max_header_bytes, 16384);
    assert_int_equal(s->limits.max_headers, 100);
    assert_int_equal(s->limits.buffer_size, 65536);
    assert_int_equal(s->n_server_name, 0); /* s.crt does not exist: names unknown */
    gw_config_free(cfg);

    /* tcp mode forwards nothing by default */
    cfg = load(BASE "mode = tcp\n", &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->services[0].forward, GW_FORWARD_NONE);
    gw_config_free(cfg);
}

static void test_global_backend_tls_defaults_dropped_for_plain_backend(void **state)
{
    (void)state;
    struct tw_err err = {0};
    struct gw_config *cfg = load("[global]\nbackend-ca = b.pem\n" BASE, &err);
    assert_non_null(cfg);
    assert_null(cfg->services[0].backend_ca);
    gw_config_free(cfg);
}

static void test_sni_shared_listener(void **state)
{
    (void)state;
    struct tw_err err = {0};
    struct gw_config *cfg = load(BASE "server-name = web.example.com\n"
                                      "[service api]\n"
                                      "listen = 0.0.0.0:8443\n"
                                      "backend = 127.0.0.1:9090\n"
                                      "cert = a.crt\nkey = a.key\nclient-ca = ca.pem\n"
                                      "server-name = api.example.com\n",
                                 &err);
    assert_non_null(cfg);
    assert_int_equal(cfg->n_listeners, 1);
    assert_int_equal(cfg->listeners[0].n_services, 2);
    assert_int_equal(cfg->listeners[0].services[0], 0);
    assert_int_equal(cfg->listeners[0].services[1], 1);
    gw_config_free(cfg);
}

static void test_bom_crlf_and_comments(void **state)
{
    (void)state;
    struct tw_err err = {0};
    const char text[] = "\xEF\xBB\xBF# comment\r\n[service web]\r\nlisten = 0.0.0.0:8443 ; c\r\n"
                        "backend = 127.0.0.1:8080\r\ncert = s.crt\r\nkey = s.key\r\n"
                        "client-ca = ca.pem\r\n;" /* a long comment does not count */
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                        "\n";
    struct gw_config *cfg = load(text, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->services[0].listen[0].text, "0.0.0.0:8443");
    gw_config_free(cfg);
}

static void assert_str_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* Flags and INI go through the same table: the results must be identical. */
static void assert_same(const struct gw_config *a, const struct gw_config *b)
{
    assert_int_equal(a->global.workers, b->global.workers);
    assert_int_equal(a->global.has_metrics, b->global.has_metrics);
    assert_string_equal(a->global.metrics.text, b->global.metrics.text);
    assert_str_or_null(a->global.access_log, b->global.access_log);
    assert_null(a->global.access_log);
    assert_int_equal(a->global.max_connections, b->global.max_connections);
    assert_int_equal(a->global.drain_timeout, b->global.drain_timeout);
    assert_int_equal(a->n_services, 1);
    assert_int_equal(b->n_services, 1);
    const struct gw_service *x = &a->services[0], *y = &b->services[0];
    assert_string_equal(x->name, y->name);
    assert_int_equal(x->n_listen, y->n_listen);
    for (size_t i = 0; i < x->n_listen; i++)
        assert_memory_equal(&x->listen[i], &y->listen[i], sizeof(x->listen[i]));
    assert_string_equal(x->backend.text, y->backend.text);
    assert_int_equal(x->mode, y->mode);
    assert_string_equal(x->cert, y->cert);
    assert_string_equal(x->key, y->key);
    assert_string_equal(x->client_ca, y->client_ca);
    assert_int_equal(x->n_crl, y->n_crl);
    for (size_t i = 0; i < x->n_crl; i++)
        assert_string_equal(x->crl[i], y->crl[i]);
    assert_int_equal(x->n_allow, y->n_allow);
    for (size_t i = 0; i < x->n_allow; i++)
        assert_string_equal(x->allow[i], y->allow[i]);
    assert_int_equal(x->forward, y->forward);
    assert_int_equal(x->forward_chain, y->forward_chain);
    assert_int_equal(x->ocsp, y->ocsp);
    assert_int_equal(x->insecure_skip_backend_verify, y->insecure_skip_backend_verify);
    assert_int_equal(x->tls_min, y->tls_min);
    assert_memory_equal(&x->timeouts, &y->timeouts, sizeof(x->timeouts));
    assert_memory_equal(&x->limits, &y->limits, sizeof(x->limits));
    assert_int_equal(x->max_connections, y->max_connections);
}

static void test_flags_equal_ini(void **state)
{
    (void)state;
    struct tw_err err = {0};
    const char ini[] = "[global]\nworkers = 2\nmetrics = 127.0.0.1:9100\naccess-log = off\n"
                       "max-connections = 77\ndrain-timeout = 5s\n"
                       "[service default]\nlisten = 127.0.0.1:8443\nlisten = [::1]:8443\n"
                       "backend = unix:/tmp/b.sock\ncert = s.crt\nkey = s.key\n"
                       "client-ca = ca.pem\ncrl = a.crl\ncrl = http://ca/crl\nallow = cn:a\n"
                       "allow = dns:*.example.com\nforward-chain = on\nocsp = on\n"
                       "tls-min = 1.3\nidle-timeout = 1m\nmax-headers = 20\n";
    char *argv[] = {"gateway",
                    "--workers",
                    "2",
                    "--metrics=127.0.0.1:9100",
                    "--access-log",
                    "off",
                    "--max-connections",
                    "77",
                    "--drain-timeout",
                    "5s",
                    "--listen",
                    "127.0.0.1:8443",
                    "--listen",
                    "[::1]:8443",
                    "--backend",
                    "unix:/tmp/b.sock",
                    "--cert",
                    "s.crt",
                    "--key",
                    "s.key",
                    "--client-ca",
                    "ca.pem",
                    "--crl",
                    "a.crl",
                    "--crl",
                    "http://ca/crl",
                    "--allow",
                    "cn:a",
                    "--allow",
                    "dns:*.example.com",
                    "--forward-chain",
                    "--ocsp",
                    "on",
                    "--tls-min=1.3",
                    "--idle-timeout",
                    "1m",
                    "--max-headers",
                    "20"};
    struct gw_config *a = load(ini, &err);
    assert_non_null(a);
    struct gw_config *b = gw_config_from_args(sizeof(argv) / sizeof(argv[0]), argv, &err);
    if (b == NULL)
        fail_msg("%s", err.msg);
    assert_null(b->path);
    assert_int_equal(b->services[0].line, 0);
    assert_same(a, b);
    gw_config_free(a);
    gw_config_free(b);
}

static void test_flag_errors(void **state)
{
    (void)state;
    static const struct {
        int argc;
        char *argv[6];
        const char *want;
    } cases[] = {
        {3,
         {"gw", "--listen", "0.0.0.0:99999"},
         "--listen \"0.0.0.0:99999\": port must be 1-65535"},
        {2, {"gw", "--lisen=x"}, "--lisen: unknown flag (did you mean --listen?)"},
        {2, {"gw", "--cert"}, "--cert needs a value"},
        {2, {"gw", "stray"}, "unexpected argument \"stray\""},
        {5, {"gw", "--cert", "a", "--cert", "b"}, "--cert: given twice"},
        {1, {"gw"}, "--listen is required"},
        {3, {"gw", "--workers", "many"}, "--workers \"many\": expected auto or a number"},
        {3, {"gw", "--mode", "udp"}, "--mode \"udp\": expected http or tcp"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tw_err err = {0};
        struct gw_config *cfg = gw_config_from_args(cases[i].argc, (char **)cases[i].argv, &err);
        assert_null(cfg);
        assert_int_equal(err.code, TW_ERR_USAGE);
        if (strstr(err.msg, cases[i].want) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, cases[i].want);
    }
    assert_true(gw_config_is_flag("--listen"));
    assert_true(gw_config_is_flag("--allow=cn:x"));
    assert_false(gw_config_is_flag("--check"));
    assert_false(gw_config_is_flag("listen"));
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/twoway-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, BASE, strlen(BASE)), (ssize_t)strlen(BASE));
    close(fd);
    struct tw_err err = {0};
    struct gw_config *cfg = gw_config_load_file(path, &err);
    assert_non_null(cfg);
    assert_string_equal(cfg->path, path);
    gw_config_free(cfg);
    unlink(path);
    assert_null(gw_config_load_file(path, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    assert_null(gw_config_load_file("/proc/self/status/x", &err));
    assert_int_equal(err.code, TW_ERR_IO);
}

static void test_needs_restart(void **state)
{
    (void)state;
    struct tw_err err = {0};
    struct gw_config *a = load(BASE, &err), *b = load("[global]\nworkers=3\n" BASE, &err);
    struct gw_config *c = load(BASE "idle-timeout = 9s\n", &err);
    char what[32];
    assert_int_equal(gw_config_needs_restart(a, b, what, sizeof(what)), 1);
    assert_string_equal(what, "workers");
    assert_int_equal(gw_config_needs_restart(a, c, what, sizeof(what)), 0);
    static const char *const globals[][2] = {{"metrics = 127.0.0.1:9100", "metrics"},
                                             {"access-log = off", "access-log"},
                                             {"log-level = debug", "log-level"},
                                             {"ticket-rotate = 2h", "ticket-rotate"}};
    for (size_t i = 0; i < 4; i++) {
        char text[512];
        snprintf(text, sizeof(text), "[global]\n%s\n" BASE, globals[i][0]);
        struct gw_config *d = load(text, &err);
        assert_non_null(d);
        assert_int_equal(gw_config_needs_restart(a, d, what, sizeof(what)), 1);
        assert_string_equal(what, globals[i][1]);
        gw_config_free(d);
    }
    gw_config_free(a);
    gw_config_free(b);
    gw_config_free(c);
}

static void test_usage_lists_every_key(void **state)
{
    (void)state;
    char buf[16384] = {0};
    FILE *out = fmemopen(buf, sizeof(buf) - 1, "w");
    gw_config_usage(out);
    fclose(out);
    assert_non_null(strstr(buf, "--listen ADDR:PORT"));
    assert_non_null(strstr(buf, "--insecure-skip-backend-verify"));
    assert_non_null(strstr(buf, "--crl-refresh"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_round_trip),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_global_backend_tls_defaults_dropped_for_plain_backend),
        cmocka_unit_test(test_sni_shared_listener),
        cmocka_unit_test(test_bom_crlf_and_comments),
        cmocka_unit_test(test_flags_equal_ini),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_needs_restart),
        cmocka_unit_test(test_usage_lists_every_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
