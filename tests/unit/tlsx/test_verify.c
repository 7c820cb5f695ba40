/* More handshake outcomes: protocol mismatch, not TLS, optional client certificates, expired
 * CRLs at resumption, a chain the client did not complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "tlsx/testpki.h"

static struct tp_cert root, inter, server, alice;
static const char *root_path, *both_path;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    struct tp_opts ca = {.ca = 1, .to = 86400 * 10};
    root = tp_make("V Root", NULL, &ca);
    inter = tp_make("V Issuing", &root, &ca);
    server = tp_make("server", &root, &(struct tp_opts){.eku = "serverAuth"});
    alice = tp_make("alice", &inter, &(struct tp_opts){.eku = "clientAuth"});
    root_path = tp_write_cert("root.pem", root.cert);
    X509 *both[] = {root.cert, inter.cert, NULL};
    both_path = tp_write_certs("both.pem", both);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_free(&root);
    tp_free(&inter);
    tp_free(&server);
    tp_free(&alice);
    tp_dir_cleanup();
    return 0;
}

static SSL_CTX *sctx_with(const char *client_ca, struct tlsx_server_opts *extra)
{
    struct tlsx_server_opts o;
    if (extra != NULL)
        o = *extra;
    else
        tlsx_server_opts_init(&o);
    o.cert = server.cert;
    o.key = server.key;
    o.client_ca_file = client_ca;
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    if (ctx == NULL)
        fail_msg("server ctx: %s", err.msg);
    return ctx;
}

static SSL_CTX *cctx_with(const struct tp_cert *c, bool send_chain, int min, int max)
{
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = root_path;
    o.min_version = min;
    o.max_version = max;
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, inter.cert);
    if (c != NULL) {
        o.cert = c->cert;
        o.key = c->key;
        o.chain = send_chain ? chain : NULL;
    }
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, &err);
    sk_X509_free(chain);
    if (ctx == NULL)
        fail_msg("client ctx: %s", err.msg);
    return ctx;
}

static void protocol_mismatch(void **state)
{
    (void)state;
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.min_version = TLS1_3_VERSION;
    SSL_CTX *s = sctx_with(both_path, &o);
    SSL_CTX *c = cctx_with(&alice, true, 0, TLS1_2_VERSION);
    assert_int_equal(tp_handshake(s, c, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(tp_server_reason, TLSX_R_PROTOCOL);
    assert_int_equal(tp_client_alert, SSL_AD_PROTOCOL_VERSION);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
}

static void client_hears_why(void **state)
{
    (void)state;
    SSL_CTX *s = sctx_with(both_path, NULL);
    SSL_CTX *anon = cctx_with(NULL, false, 0, TLS1_3_VERSION);
    SSL *c = NULL;
    assert_int_equal(tp_handshake(s, anon, NULL, NULL, NULL, &c), 0);
    char detail[100];
    assert_int_equal(tlsx_handshake_reason(c, detail, sizeof(detail)), TLSX_R_NO_CERT);
    assert_string_equal(detail, "peer sent alert: certificate required");
    SSL_free(c);
    SSL_CTX_free(anon);
    SSL_CTX_free(s);
}

static void not_tls(void **state)
{
    (void)state;
    SSL_CTX *sctx = sctx_with(both_path, NULL);
    SSL *s = SSL_new(sctx);
    BIO *sb = NULL, *cb = NULL;
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
    SSL_set_bio(s, sb, sb);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(BIO_write(cb, req, (int)strlen(req)), (int)strlen(req));
    ERR_clear_error();
    assert_true(SSL_accept(s) <= 0);
    char detail[100];
    assert_int_equal(tlsx_handshake_reason(s, detail, sizeof(detail)), TLSX_R_NOT_TLS);
    ERR_clear_error();
    SSL_free(s);
    BIO_free(cb);
    SSL_CTX_free(sctx);
}

static void optional_client_cert(void **state)
{
    (void)state;
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.client_auth = TLSX_CLIENT_AUTH_OPTIONAL;
    SSL_CTX *sctx = sctx_with(both_path, &o);
    SSL_CTX *anon = cctx_with(NULL, false, 0, 0);
    SSL *s = NULL;
    assert_int_equal(tp_handshake(sctx, anon, NULL, NULL, &s, NULL), 1);
    struct tlsx_peer_rules rules = {0};
    struct tlsx_peer_result res;
    struct tw_err err;
    assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), -1);
    assert_int_equal(res.reason, TLSX_R_NO_CERT);
    assert_int_equal(err.code, TW_ERR_VERIFY);
    SSL_free(s);
    SSL_CTX *c = cctx_with(&alice, true, 0, 0);
    s = NULL;
    assert_int_equal(tp_handshake(sctx, c, NULL, NULL, &s, NULL), 1);
    assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), 0);
    SSL_free(s);
    SSL_CTX_free(c);
    SSL_CTX_free(anon);
    SSL_CTX_free(sctx);
}

static struct tlsx_crl_set *crl_set(long next_update)
{
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    X509_CRL *crl = tp_crl(&inter, NULL, 0, next_update);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    assert_int_equal(tlsx_crl_set_add_mem(set, der, (size_t)len, "crl", &err), 0);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    return set;
}

static void resumption_follows_crl_freshness(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
    struct tlsx_crl_set *fresh = crl_set(3600), *stale = crl_set(-10);
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.ticket_keys = keys;
    o.crls = fresh;
    SSL_CTX *gen1 = sctx_with(both_path, &o);
    SSL_CTX *c = cctx_with(&alice, true, 0, TLS1_3_VERSION);
    SSL *cl = NULL;
    assert_int_equal(tp_handshake(gen1, c, NULL, NULL, NULL, &cl), 1);
    SSL_SESSION *sess = SSL_get1_session(cl);
    SSL_free(cl);

    o.crls = stale;
    SSL_CTX *reject = sctx_with(both_path, &o);
    SSL *s = NULL;
    assert_int_equal(tp_handshake(reject, c, sess, NULL, &s, NULL), 0);
    assert_int_equal(SSL_session_reused(s), 0);
    assert_int_equal(tp_server_reason, TLSX_R_CRL_EXPIRED);
    SSL_free(s);

    o.crl_expired = TLSX_CRL_EXPIRED_WARN;
    SSL_CTX *warn = sctx_with(both_path, &o);
    s = NULL;
    assert_int_equal(tp_handshake(warn, c, sess, NULL, &s, NULL), 1);
    assert_int_equal(SSL_session_reused(s), 1);
    SSL_free(s);

    SSL_SESSION_free(sess);
    SSL_CTX_free(gen1);
    SSL_CTX_free(reject);
    SSL_CTX_free(warn);
    SSL_CTX_free(c);
    tlsx_crl_set_free(fresh);
    tlsx_crl_set_free(stale);
    tlsx_ticket_keys_free(keys);
}

static void intermediate_only_in_client_ca_or_sent(void **state)
{
    (void)state;
    /* client-ca = root only: the client must send the intermediate. */
    SSL_CTX *s = sctx_with(root_path, NULL);
    SSL_CTX *with = cctx_with(&alice, true, 0, 0);
    SSL_CTX *without = cctx_with(&alice, false, 0, 0);
    assert_int_equal(tp_handshake(s, with, NULL, NULL, NULL, NULL), 1);
    assert_int_equal(tp_handshake(s, without, NULL, NULL, NULL, NULL), 0);
    assert_true(tp_server_reason == TLSX_R_UNKNOWN_CA ||
                tp_server_reason == TLSX_R_MISSING_INTERMEDIATE);
    SSL_CTX_free(s);
    /* client-ca = the issuing CA alone: a partial chain is trusted. */
    const char *inter_path = tp_write_cert("inter.pem", inter.cert);
    s = sctx_with(inter_path, NULL);
    assert_int_equal(tp_handshake(s, without, NULL, NULL, NULL, NULL), 1);
    SSL_CTX_free(s);
    SSL_CTX_free(with);
    SSL_CTX_free(without);
}

static void ticket_keys_rotate(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(10, &err);
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.ticket_keys = keys;
    SSL_CTX *s = sctx_with(both_path, &o);
    SSL_CTX *c = cctx_with(&alice, true, 0, TLS1_2_VERSION);
    SSL *cl = NULL;
    assert_int_equal(tp_handshake(s, c, NULL, NULL, NULL, &cl), 1);
    SSL_SESSION *sess = SSL_get1_session(cl);
    SSL_free(cl);
    int64_t now = (int64_t)time(NULL);
    /* One rotation: the previous key still decrypts. */
    tlsx_ticket_keys_tick(keys, now + 11);
    SSL *sv = NULL;
    assert_int_equal(tp_handshake(s, c, sess, NULL, &sv, NULL), 1);
    assert_int_equal(SSL_session_reused(sv), 1);
    SSL_free(sv);
    /* Two rotations: that key is gone, a full handshake happens. */
    tlsx_ticket_keys_tick(keys, now + 22);
    sv = NULL;
    assert_int_equal(tp_handshake(s, c, sess, NULL, &sv, NULL), 1);
    assert_int_equal(SSL_session_reused(sv), 0);
    SSL_free(sv);
    SSL_SESSION_free(sess);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    tlsx_ticket_keys_free(keys);
}

static void crl_required_for_the_issuer(void **state)
{
    (void)state;
    /* CRLs are configured, but none from alice's issuer: fail closed. */
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    X509_CRL *crl = tp_crl(&root, NULL, 0, 3600);
    assert_int_equal(tlsx_crl_set_add_file(set, tp_write_crl("root.crl", crl, 0), &err), 0);
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.crls = set;
    SSL_CTX *s = sctx_with(both_path, &o);
    SSL_CTX *c = cctx_with(&alice, true, 0, 0);
    assert_int_equal(tp_handshake(s, c, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(tp_server_reason, TLSX_R_CRL_MISSING);
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    X509_CRL_free(crl);
    tlsx_crl_set_free(set);
}

static void bare_certificate_check(void **state)
{
    (void)state;
    struct tw_err err;
    long serial = tp_serial(&alice);
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    X509_CRL *crl = tp_crl(&inter, &serial, 1, 3600);
    assert_int_equal(tlsx_crl_set_add_file(set, tp_write_crl("inter.crl", crl, 1), &err), 0);
    struct tlsx_policy *p = tlsx_policy_new(&err);
    assert_int_equal(tlsx_policy_add(p, "cn:alice", &err), 0);
    struct tlsx_peer_rules rules = {.policy = p};
    struct tlsx_peer_result res;
    assert_int_equal(tlsx_peer_check_identity(alice.cert, NULL, &rules, &res, &err), 0);
    assert_string_equal(res.matched_rule, "cn:alice");
    rules.crls = set;
    assert_int_equal(tlsx_peer_check_identity(alice.cert, NULL, &rules, &res, &err), -1);
    assert_int_equal(res.reason, TLSX_R_REVOKED);
    assert_int_equal(err.code, TW_ERR_VERIFY);
    assert_non_null(strstr(res.detail, "is revoked"));
    rules.crls = NULL;
    rules.now = (int64_t)time(NULL) + 86400 * 2;
    assert_int_equal(tlsx_peer_check_identity(alice.cert, NULL, &rules, &res, &err), -1);
    assert_int_equal(res.reason, TLSX_R_EXPIRED);
    rules.now = 0;
    assert_int_equal(tlsx_peer_check_identity(server.cert, NULL, &rules, &res, &err), -1);
    assert_int_equal(res.reason, TLSX_R_POLICY);
    assert_int_equal(err.code, TW_ERR_POLICY);
    assert_int_equal(tlsx_peer_check_identity(NULL, NULL, &rules, &res, &err), -1);
    assert_int_equal(res.reason, TLSX_R_NO_CERT);
    X509_CRL_free(crl);
    tlsx_crl_set_free(set);
    tlsx_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(protocol_mismatch),
        cmocka_unit_test(client_hears_why),
        cmocka_unit_test(not_tls),
        cmocka_unit_test(optional_client_cert),
        cmocka_unit_test(resumption_follows_crl_freshness),
        cmocka_unit_test(intermediate_only_in_client_ca_or_sent),
        cmocka_unit_test(ticket_keys_rotate),
        cmocka_unit_test(crl_required_for_the_issuer),
        cmocka_unit_test(bare_certificate_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
