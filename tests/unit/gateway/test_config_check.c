/* gw_config_check against real files (a throwaway PKI made with OpenSSL in a temp dir), and
 * server names taken from certificates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "gateway/config.h"

static char dir[64];

static char *path_of(const char *name)
{
    static char bufs[8][256];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

static void write_text(const char *name, const char *text, mode_t mode)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path_of(name), mode), 0);
}

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by issuer/ikey (self-signed when issuer is NULL). */
static long not_after = 3600;

static X509 *new_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, const char *san,
                      int serial)
{
    X509 *c = X509_new();
    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
    X509_gmtime_adj(X509_getm_notBefore(c), -60);
    X509_gmtime_adj(X509_getm_notAfter(c), not_after);
    X509_NAME *name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509_set_pubkey(c, key);
    if (issuer == NULL)
        add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
    if (san != NULL)
        add_ext(c, issuer != NULL ? issuer : c, NID_subject_alt_name, san);
    assert_true(X509_sign(c, ikey != NULL ? ikey : key, EVP_sha256()) > 0);
    return c;
}

static void write_cert(const char *name, X509 *cert)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, cert), 1);
    fclose(f);
}

static void write_key(const char *name, EVP_PKEY *key, mode_t mode)
{
    FILE *f = fopen(path_of(name), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_int_equal(chmod(path_of(name), mode), 0);
}

static void write_crl(const char *name, X509 *ca, EVP_PKEY *cakey, bool der)
{
    X509_CRL *crl = X509_CRL_new();
    assert_non_null(crl);
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
    ASN1_TIME *t = ASN1_TIME_adj(NULL, time(NULL), 0, 0);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_adj(t, time(NULL), 1, 0);
    X509_CRL_set1_nextUpdate(crl, t);
    ASN1_TIME_free(t);
    assert_true(X509_CRL_sign(crl, cakey, EVP_sha256()) > 0);
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    assert_int_equal(der ? i2d_X509_CRL_fp(f, crl) : PEM_write_X509_CRL(f, crl), 1);
    fclose(f);
    X509_CRL_free(crl);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/twoway-check-XXXXXX");
    assert_non_null(mkdtemp(dir));
    EVP_PKEY *cak = new_key(), *otherk = new_key(), *webk = new_key(), *apik = new_key();
    EVP_PKEY *gwk = new_key();
    X509 *ca = new_cert("Clients CA", cak, NULL, NULL, NULL, 1);
    /* Named as the CA of client-ca, another key: its CRL is not that CA's. */
    X509 *other = new_cert("Clients CA", otherk, NULL, NULL, NULL, 2);
    X509 *web = new_cert("web", webk, ca, cak, "DNS:Web.example.com,DNS:www.example.com", 3);
    X509 *api = new_cert("api", apik, ca, cak, "DNS:api.example.com,IP:127.0.0.1", 4);
    X509 *noname = new_cert("noname", apik, ca, cak, NULL, 5);
    X509 *gw = new_cert("gateway", gwk, ca, cak, NULL, 6);
    not_after = -30;
    X509 *old = new_cert("web", webk, ca, cak, "DNS:web.example.com", 7);
    not_after = 3600;
    write_cert("expired.crt", old);
    X509_free(old);
    write_cert("ca.pem", ca);
    write_cert("web.crt", web);
    write_cert("api.crt", api);
    write_cert("noname.crt", noname);
    write_cert("gw.crt", gw);
    write_key("web.key", webk, 0600);
    write_key("api.key", apik, 0600);
    write_key("gw.key", gwk, 0600);
    write_key("open.key", webk, 0644);
    write_crl("ca.crl", ca, cak, false);
    write_crl("ca.der", ca, cak, true);
    write_crl("other.crl", other, otherk, false);
    write_text("garbage.pem", "not a certificate\n", 0644);
    write_text("tickets.key", "short", 0600);
    X509 *certs[] = {ca, other, web, api, noname, gw};
    for (size_t i = 0; i < sizeof(certs) / sizeof(certs[0]); i++)
        X509_free(certs[i]);
    EVP_PKEY *keys[] = {cak, otherk, webk, apik, gwk};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        EVP_PKEY_free(keys[i]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const names[] = {"ca.pem",      "web.crt",     "api.crt",    "noname.crt",
                                        "gw.crt",      "web.key",     "api.key",    "gw.key",
                                        "open.key",    "ca.crl",      "ca.der",     "other.crl",
                                        "garbage.pem", "tickets.key", "expired.crt"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(path_of(names[i]));
    rmdir(dir);
    return 0;
}

/* A one-service config using the temp files, with extra lines appended. */
static const char *key_file = "web.key";

static struct gw_config *load_with(const char *extra, struct tw_err *err)
{
    char text[4096];
    snprintf(text, sizeof(text),
             "[service web]\nlisten = 127.0.0.1:8443\nbackend = tls://127.0.0.1:9443\n"
             "cert = %s\nkey = %s\nclient-ca = %s\n%s",
             path_of("web.crt"), path_of(key_file), path_of("ca.pem"), extra);
    return gw_config_load_buffer("t.conf", text, strlen(text), err);
}

static void check_case(const char *extra, enum tw_errc code, const char *where, const char *why)
{
    struct tw_err err = {0};
    struct gw_config *cfg = load_with(extra, &err);
    if (cfg == NULL)
        fail_msg("load failed: %s", err.msg);
    int rc = gw_config_check(cfg, &err);
    gw_config_free(cfg);
    if (code == TW_OK) {
        if (rc != 0)
            fail_msg("check failed: %s", err.msg);
        return;
    }
    assert_int_equal(rc, -1);
    if (err.code != code || strstr(err.msg, where) == NULL || strstr(err.msg, why) == NULL)
        fail_msg("got [%s] \"%s\", want \"%s ... %s\"", tw_errc_name(err.code), err.msg, where,
                 why);
}

static void test_check_ok(void **state)
{
    (void)state;
    char extra[1024];
    snprintf(extra, sizeof(extra),
             "crl = %s\ncrl = %s\ncrl = https://ca.example/crl\nbackend-cert = %s\n"
             "backend-key = %s\nbackend-ca = %s\nciphers = ECDHE+AESGCM\n"
             "ciphersuites = TLS_AES_256_GCM_SHA384\ngroups = X25519:P-256\n",
             path_of("ca.crl"), path_of("ca.der"), path_of("gw.crt"), path_of("gw.key"),
             path_of("ca.pem"));
    check_case(extra, TW_OK, NULL, NULL);
}

static void test_check_failures(void **state)
{
    (void)state;
    char extra[512];

    key_file = "open.key";
    check_case("", TW_ERR_IO, "t.conf: [service web] key", "chmod 600");
    key_file = "api.key";
    check_case("", TW_ERR_CONFIG, "t.conf: [service web] key", "does not match the certificate");
    key_file = "web.key";

    snprintf(extra, sizeof(extra), "crl = %s\n", path_of("other.crl"));
    check_case(extra, TW_ERR_CONFIG, "[service web] crl", "not signed by any CA in client-ca");
    snprintf(extra, sizeof(extra), "crl = %s\n", path_of("garbage.pem"));
    check_case(extra, TW_ERR_CONFIG, "[service web] crl", "no CRL");
    snprintf(extra, sizeof(extra), "crl = %s\n", path_of("missing.crl"));
    check_case(extra, TW_ERR_IO, "[service web] crl", "no such file");
    snprintf(extra, sizeof(extra), "crl-ca = %s\n", path_of("garbage.pem"));
    check_case(extra, TW_ERR_CONFIG, "[service web] crl-ca", "no PEM certificate");
    snprintf(extra, sizeof(extra), "backend-ca = %s\n", path_of("garbage.pem"));
    check_case(extra, TW_ERR_CONFIG, "[service web] backend-ca", "no PEM certificate");
    snprintf(extra, sizeof(extra), "backend-cert = %s\nbackend-key = %s\n", path_of("gw.crt"),
             path_of("web.key"));
    check_case(extra, TW_ERR_CONFIG, "[service web] backend-key", "does not match");
    check_case("ciphers = NOTACIPHER\n", TW_ERR_CONFIG, "[service web] ciphers", "none");
    check_case("ciphersuites = TLS_FAKE\n", TW_ERR_CONFIG, "[service web] ciphersuites",
               "cipher suite");
    check_case("groups = P-1\n", TW_ERR_CONFIG, "[service web] groups", "group");

    struct tw_err err = {0};
    char text[2048];
    struct gw_config *cfg;

    snprintf(text, sizeof(text),
             "[global]\nticket-key-file = %s\n[service web]\nlisten = 127.0.0.1:8443\n"
             "backend = 127.0.0.1:1\ncert = %s\nkey = %s\nclient-ca = %s\n",
             path_of("tickets.key"), path_of("web.crt"), path_of("web.key"), path_of("ca.pem"));
    cfg = gw_config_load_buffer("t.conf", text, strlen(text), &err);
    assert_non_null(cfg);
    assert_int_equal(gw_config_check(cfg, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[global] ticket-key-file"));
    assert_non_null(strstr(err.msg, "multiple of 80"));
    gw_config_free(cfg);
}

static void test_check_missing_files(void **state)
{
    (void)state;
    struct tw_err err = {0};
    char expired[2048];
    snprintf(expired, sizeof(expired),
             "[service web]\nlisten = 127.0.0.1:8443\nbackend = 127.0.0.1:1\ncert = %s\n"
             "key = %s\nclient-ca = %s\n",
             path_of("expired.crt"), path_of("web.key"), path_of("ca.pem"));
    struct gw_config *old = gw_config_load_buffer("t.conf", expired, strlen(expired), &err);
    assert_non_null(old);
    assert_int_equal(gw_config_check(old, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[service web] cert"));
    assert_non_null(strstr(err.msg, "certificate /CN=web expired 20"));
    gw_config_free(old);

    const char text[] = "[service web]\nlisten = 127.0.0.1:8443\nbackend = 127.0.0.1:1\n"
                        "cert = /nonexistent/web.crt\nkey = k\nclient-ca = ca\n";
    struct gw_config *cfg = gw_config_load_buffer("t.conf", text, strlen(text), &err);
    assert_non_null(cfg);
    assert_int_equal(gw_config_check(cfg, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "t.conf: [service web] cert = \"/nonexistent/web.crt\""));
    gw_config_free(cfg);

    char bad_ca[512];
    snprintf(bad_ca, sizeof(bad_ca), "client-ca = %s\n", path_of("garbage.pem"));
    char full[2048];
    snprintf(full, sizeof(full),
             "[service web]\nlisten = 127.0.0.1:8443\nbackend = 127.0.0.1:1\ncert = %s\n"
             "key = %s\n%s",
             path_of("web.crt"), path_of("web.key"), bad_ca);
    cfg = gw_config_load_buffer("t.conf", full, strlen(full), &err);
    assert_non_null(cfg);
    assert_int_equal(gw_config_check(cfg, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "[service web] client-ca"));
    gw_config_free(cfg);
}

static void test_names_from_certificates(void **state)
{
    (void)state;
    struct tw_err err = {0};
    char text[2048];
    snprintf(text, sizeof(text),
             "[service web]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:1\ncert = %s\n"
             "key = k\nclient-ca = ca\n"
             "[service api]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:2\ncert = %s\n"
             "key = k\nclient-ca = ca\n",
             path_of("web.crt"), path_of("api.crt"));
    struct gw_config *cfg = gw_config_load_buffer("t.conf", text, strlen(text), &err);
    if (cfg == NULL)
        fail_msg("%s", err.msg);
    const struct gw_service *w = &cfg->services[0], *a = &cfg->services[1];
    assert_true(w->server_name_from_cert);
    assert_int_equal(w->n_server_name, 2);
    assert_string_equal(w->server_name[0], "web.example.com");
    assert_string_equal(w->server_name[1], "www.example.com");
    assert_int_equal(a->n_server_name, 1); /* the IP SAN is not an SNI name */
    assert_string_equal(a->server_name[0], "api.example.com");
    assert_int_equal(cfg->n_listeners, 1);
    char buf[8192] = {0};
    FILE *out = fmemopen(buf, sizeof(buf) - 1, "w");
    gw_config_explain(cfg, out);
    fclose(out);
    assert_non_null(strstr(buf, "names (cert)    web.example.com, www.example.com"));
    assert_non_null(strstr(buf, "0.0.0.0:8443 is shared by SNI: web (default) api"));
    gw_config_free(cfg);

    /* Same certificate twice on one listener: the names collide. */
    snprintf(text, sizeof(text),
             "[service web]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:1\ncert = %s\n"
             "key = k\nclient-ca = ca\n"
             "[service web2]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:2\ncert = %s\n"
             "key = k\nclient-ca = ca\n",
             path_of("web.crt"), path_of("web.crt"));
    assert_null(gw_config_load_buffer("t.conf", text, strlen(text), &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "t.conf:7: [service web2]"));
    assert_non_null(strstr(err.msg, "web.example.com is also answered by service web"));

    /* A certificate without DNS names cannot share a listener without server-name. */
    snprintf(text, sizeof(text),
             "[service web]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:1\ncert = %s\n"
             "key = k\nclient-ca = ca\n"
             "[service other]\nlisten = 0.0.0.0:8443\nbackend = 127.0.0.1:2\ncert = %s\n"
             "key = k\nclient-ca = ca\n",
             path_of("web.crt"), path_of("noname.crt"));
    assert_null(gw_config_load_buffer("t.conf", text, strlen(text), &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "t.conf:7: [service other]"));
    assert_non_null(strstr(err.msg, "needs server-name"));
    assert_non_null(strstr(err.msg, "no DNS names"));
}

static void test_check_flags_name_the_flag(void **state)
{
    (void)state;
    char *argv[] = {"gateway",           "--listen",    "127.0.0.1:8443",   "--backend",
                    "127.0.0.1:1",       "--cert",      path_of("web.crt"), "--key",
                    path_of("open.key"), "--client-ca", path_of("ca.pem")};
    struct tw_err err = {0};
    struct gw_config *cfg = gw_config_from_args(sizeof(argv) / sizeof(argv[0]), argv, &err);
    assert_non_null(cfg);
    assert_int_equal(gw_config_check(cfg, &err), -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_non_null(strstr(err.msg, "--key \""));
    assert_non_null(strstr(err.msg, "chmod 600"));
    gw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_ok),
        cmocka_unit_test(test_check_failures),
        cmocka_unit_test(test_check_missing_files),
        cmocka_unit_test(test_names_from_certificates),
        cmocka_unit_test(test_check_flags_name_the_flag),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
