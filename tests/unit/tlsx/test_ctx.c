/* Context builders: every configuration failure names what is wrong, with its error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tlsx/testpki.h"

static struct tp_cert ca, server, other;
static const char *cert_path, *key_path, *ca_path, *other_key_path;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    ca = tp_make("Ctx CA", NULL, &(struct tp_opts){.ca = 1});
    other = tp_make("Other CA", NULL, &(struct tp_opts){.ca = 1});
    server = tp_make("server", &ca, &(struct tp_opts){.eku = "serverAuth"});
    X509 *chain[] = {server.cert, ca.cert, NULL};
    cert_path = tp_write_certs("server.pem", chain);
    key_path = tp_write_key("server.key", server.key, 0600);
    other_key_path = tp_write_key("other.key", other.key, 0600);
    ca_path = tp_write_cert("ca.pem", ca.cert);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_free(&ca);
    tp_free(&server);
    tp_free(&other);
    tp_dir_cleanup();
    return 0;
}

static struct tlsx_server_opts base(void)
{
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.cert_file = cert_path;
    o.key_file = key_path;
    o.client_ca_file = ca_path;
    return o;
}

/* Build with o; expect failure with code and a message containing text. */
static void expect_fail(const struct tlsx_server_opts *o, enum tw_errc code, const char *text)
{
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(o, &err);
    if (ctx != NULL) {
        SSL_CTX_free(ctx);
        fail_msg("expected failure '%s'", text);
    }
    if (err.code != code || strstr(err.msg, text) == NULL)
        fail_msg("got %s '%s', expected %s '%s'", tw_errc_name(err.code), err.msg,
                 tw_errc_name(code), text);
}

static void server_ctx_builds_with_defaults(void **state)
{
    (void)state;
    struct tlsx_server_opts o = base();
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    uint64_t opts = SSL_CTX_get_options(ctx);
    assert_true(opts & SSL_OP_NO_RENEGOTIATION);
    assert_true(opts & SSL_OP_NO_COMPRESSION);
    assert_true(opts & SSL_OP_CIPHER_SERVER_PREFERENCE);
    assert_true(opts & SSL_OP_NO_TICKET); /* no ticket keys given */
    assert_int_equal(sk_X509_NAME_num(SSL_CTX_get_client_CA_list(ctx)), 1);
    /* Only ECDHE + AEAD for TLS 1.2. */
    STACK_OF(SSL_CIPHER) *ciphers = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(ciphers, i);
        if (SSL_CIPHER_get_kx_nid(c) == NID_kx_any) /* TLS 1.3 suites */
            continue;
        assert_int_equal(SSL_CIPHER_get_kx_nid(c), NID_kx_ecdhe);
        assert_int_equal(SSL_CIPHER_is_aead(c), 1);
    }
    SSL_CTX_free(ctx);

    o.client_auth = TLSX_CLIENT_AUTH_OPTIONAL;
    ctx = tlsx_server_ctx_new(&o, &err);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    SSL_CTX_free(ctx);
    o.client_auth = TLSX_CLIENT_AUTH_NONE;
    o.client_ca_file = NULL;
    ctx = tlsx_server_ctx_new(&o, &err);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
    SSL_CTX_free(ctx);
    /* Objects instead of files. */
    o = base();
    o.cert_file = o.key_file = NULL;
    o.cert = server.cert;
    o.key = server.key;
    ctx = tlsx_server_ctx_new(&o, &err);
    assert_non_null(ctx);
    SSL_CTX_free(ctx);
}

static void server_ctx_errors(void **state)
{
    (void)state;
    struct tlsx_server_opts o = base();
    o.key_file = other_key_path;
    expect_fail(&o, TW_ERR_CONFIG, "does not match certificate");

    o = base();
    o.key_file = tp_write_key("loose.key", server.key, 0644);
    expect_fail(&o, TW_ERR_IO, "loose.key");

    o = base();
    o.cert_file = tp_path("missing.pem");
    expect_fail(&o, TW_ERR_IO, "missing.pem");

    o = base();
    o.cert_file = key_path; /* a key is not a certificate */
    expect_fail(&o, TW_ERR_CONFIG, "no PEM certificate");

    o = base();
    o.cert_file = tp_path("broken.pem");
    FILE *f = fopen(o.cert_file, "w");
    fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    expect_fail(&o, TW_ERR_CONFIG, "broken.pem: malformed certificate");

    o = base();
    o.key_file = tp_write_cert("cert-as-key.pem", server.cert);
    chmod(o.key_file, 0600);
    expect_fail(&o, TW_ERR_CONFIG, "no usable PEM private key");

    o = base();
    o.client_ca_file = NULL;
    expect_fail(&o, TW_ERR_CONFIG, "client-ca is required");

    o = base();
    o.client_ca_file = tp_path("nope.pem");
    expect_fail(&o, TW_ERR_IO, "nope.pem");

    o = base();
    o.min_version = TLS1_3_VERSION;
    o.max_version = TLS1_2_VERSION;
    expect_fail(&o, TW_ERR_CONFIG, "minimum TLS version 1.3 is above maximum 1.2");

    o = base();
    o.min_version = TLS1_1_VERSION;
    expect_fail(&o, TW_ERR_CONFIG, "TLS version must be 1.2 or 1.3");

    o = base();
    o.ciphers = "NOPE-CIPHER";
    expect_fail(&o, TW_ERR_CONFIG, "ciphers 'NOPE-CIPHER'");

    o = base();
    o.ciphersuites = "TLS_NOPE";
    expect_fail(&o, TW_ERR_CONFIG, "ciphersuites 'TLS_NOPE'");

    o = base();
    o.groups = "nogroup";
    expect_fail(&o, TW_ERR_CONFIG, "groups 'nogroup'");

    /* The test key is ECDSA: a TLS 1.2 list of RSA-only suites could never be chosen. */
    o = base();
    o.ciphers = "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    expect_fail(&o, TW_ERR_CONFIG,
                "ciphers 'DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256': no TLS 1.2 "
                "suite in the list fits the ECDSA certificate");
    o.min_version = TLS1_3_VERSION; /* the TLS 1.2 list is never used */
    struct tw_err ok_err;
    SSL_CTX *tls13 = tlsx_server_ctx_new(&o, &ok_err);
    assert_non_null(tls13);
    SSL_CTX_free(tls13);

    struct tw_err err;
    struct tlsx_crl_set *crls = tlsx_crl_set_new(&err);
    /* Signed by a CA named as one in client-ca, with another key. */
    struct tp_cert impostor = tp_make("Ctx CA", NULL, &(struct tp_opts){.ca = 1});
    X509_CRL *crl = tp_crl(&impostor, NULL, 0, 3600);
    tp_free(&impostor);
    assert_int_equal(tlsx_crl_set_add_file(crls, tp_write_crl("other.crl", crl, 0), &err), 0);
    o = base();
    o.crls = crls;
    expect_fail(&o, TW_ERR_CONFIG, "not signed by any CA in client-ca");
    o.client_auth = TLSX_CLIENT_AUTH_NONE;
    expect_fail(&o, TW_ERR_CONFIG, "need client certificates");
    tlsx_crl_set_free(crls);
    X509_CRL_free(crl);

    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
    o = base();
    o.ticket_keys = keys;
    o.num_tickets = 11;
    expect_fail(&o, TW_ERR_CONFIG, "num-tickets");
    o.num_tickets = 1;
    o.session_id_context = "this session id context is longer than 32 bytes";
    expect_fail(&o, TW_ERR_CONFIG, "session id context");
    tlsx_ticket_keys_free(keys);
}

static void encrypted_key_refused(void **state)
{
    (void)state;
    const char *path = tp_path("enc.key");
    FILE *f = fopen(path, "w");
    PEM_write_PrivateKey(f, server.key, EVP_aes_128_cbc(), (unsigned char *)"pw", 2, NULL, NULL);
    fclose(f);
    chmod(path, 0600);
    EVP_PKEY *k = NULL;
    struct tw_err err;
    assert_int_equal(tlsx_key_load(path, &k, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "encrypted"));
}

static void ticket_key_file_errors(void **state)
{
    (void)state;
    struct tw_err err;
    const char *path = tp_path("short.key");
    FILE *f = fopen(path, "w");
    fputs("too short", f);
    fclose(f);
    chmod(path, 0600);
    assert_null(tlsx_ticket_keys_new_file(path, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "multiple of 80"));
    chmod(path, 0644);
    assert_null(tlsx_ticket_keys_new_file(path, &err));
    assert_int_equal(err.code, TW_ERR_IO);
    assert_null(tlsx_ticket_keys_new(-1, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    /* Two keys: both decrypt, the first encrypts. */
    const char *two = tp_path("two.key");
    unsigned char bytes[160];
    RAND_bytes(bytes, sizeof(bytes));
    f = fopen(two, "w");
    fwrite(bytes, 1, sizeof(bytes), f);
    fclose(f);
    chmod(two, 0600);
    struct tlsx_ticket_keys *k = tlsx_ticket_keys_new_file(two, &err);
    assert_non_null(k);
    tlsx_ticket_keys_tick(k, 1L << 40); /* file keys never rotate by themselves */
    tlsx_ticket_keys_free(k);
    k = tlsx_ticket_keys_new(10, &err);
    tlsx_ticket_keys_tick(k, (int64_t)time(NULL) + 11);
    tlsx_ticket_keys_free(k);
}

static void client_ctx_and_name_setup(void **state)
{
    (void)state;
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = ca_path;
    o.cert_file = cert_path;
    o.key_file = other_key_path;
    struct tw_err err;
    assert_null(tlsx_client_ctx_new(&o, &err));
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "does not match"));
    o.key_file = key_path;
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, &err);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
    SSL *ssl = SSL_new(ctx);
    assert_int_equal(tlsx_client_ssl_setup(ssl, "api.example.com", &err), 0);
    assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "api.example.com");
    SSL_free(ssl);
    ssl = SSL_new(ctx);
    assert_int_equal(tlsx_client_ssl_setup(ssl, "[::1]", &err), 0);
    assert_null(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)); /* no SNI for addresses */
    assert_int_equal(tlsx_client_ssl_setup(ssl, "", &err), -1);
    assert_int_equal(err.code, TW_ERR_USAGE);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    o.ca_file = tp_path("none.pem");
    assert_null(tlsx_client_ctx_new(&o, &err));
    assert_int_equal(err.code, TW_ERR_IO);
}

static void sni_table_errors(void **state)
{
    (void)state;
    struct tlsx_server_opts o = base();
    struct tw_err err;
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    struct tlsx_sni_table *t = tlsx_sni_table_new(&err);
    assert_int_equal(tlsx_sni_table_add(t, "a.example", ctx, &err), 0);
    assert_int_equal(tlsx_sni_table_add(t, "A.example", ctx, &err), -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "used by two services"));
    const char *bad[] = {"", "a b", "*", "a.*.example", "*foo.example", "x/y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tlsx_sni_table_add(t, bad[i], ctx, &err), -1);
        assert_int_equal(err.code, TW_ERR_CONFIG);
    }
    assert_null(tlsx_sni_table_lookup(t, "b.example"));
    assert_int_equal(tlsx_sni_table_set_default(t, ctx, false, &err), 0);
    assert_ptr_equal(tlsx_sni_table_lookup(t, "b.example"), ctx);
    assert_ptr_equal(tlsx_sni_table_lookup(t, NULL), ctx);
    tlsx_sni_table_free(t);
    SSL_CTX_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(server_ctx_builds_with_defaults), cmocka_unit_test(server_ctx_errors),
        cmocka_unit_test(encrypted_key_refused),           cmocka_unit_test(ticket_key_file_errors),
        cmocka_unit_test(client_ctx_and_name_setup),       cmocka_unit_test(sni_table_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
