/* Real TLS handshakes in memory between tlsx server and client contexts: who gets in, who is
 * refused and why, at full and resumed handshakes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tlsx/testpki.h"

static struct tp_cert root, inter, other_root, server, alice, bob, carol, noeku, srvonly, expired,
    stranger;
static const char *client_ca_path, *server_cert_path, *server_key_path, *root_path;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    struct tp_opts ca = {.ca = 1, .to = 86400 * 10};
    root = tp_make("Test Root", NULL, &ca);
    inter = tp_make("Test Issuing CA", &root, &ca);
    other_root = tp_make("Other Root", NULL, &ca);
    server = tp_make("server", &root,
                     &(struct tp_opts){.eku = "serverAuth", .sans = "DNS:localhost,IP:127.0.0.1"});
    struct tp_opts cl = {.eku = "clientAuth",
                         .o = "Example",
                         .ou = "payments",
                         .sans = "DNS:alice.example,URI:spiffe://example.org/alice"};
    alice = tp_make("alice", &inter, &cl);
    bob = tp_make("bob", &inter, &(struct tp_opts){.eku = "clientAuth"});
    carol = tp_make("carol", &inter, &(struct tp_opts){.eku = "clientAuth"});
    noeku = tp_make("noeku", &inter, NULL);
    srvonly = tp_make("srvonly", &inter, &(struct tp_opts){.eku = "serverAuth"});
    expired = tp_make("expired", &inter,
                      &(struct tp_opts){.eku = "clientAuth", .from = -7200, .to = -60});
    stranger = tp_make("stranger", &other_root, &(struct tp_opts){.eku = "clientAuth"});
    X509 *cas[] = {root.cert, inter.cert, NULL};
    client_ca_path = tp_write_certs("client-ca.pem", cas);
    server_cert_path = tp_write_cert("server.pem", server.cert);
    server_key_path = tp_write_key("server.key", server.key, 0600);
    root_path = tp_write_cert("root.pem", root.cert);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct tp_cert *all[] = {&root,  &inter, &other_root, &server,  &alice,   &bob,
                             &carol, &noeku, &srvonly,    &expired, &stranger};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        tp_free(all[i]);
    tp_dir_cleanup();
    return 0;
}

struct sopts {
    struct tlsx_crl_set *crls;
    struct tlsx_policy *policy;
    struct tlsx_ticket_keys *keys;
    enum tlsx_crl_expired crl_expired;
    const char *name;
};

static SSL_CTX *server_ctx(const struct sopts *so)
{
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = so != NULL && so->name != NULL ? so->name : "test";
    o.cert_file = server_cert_path;
    o.key_file = server_key_path;
    o.client_ca_file = client_ca_path;
    if (so != NULL) {
        o.crls = so->crls;
        o.policy = so->policy;
        o.ticket_keys = so->keys;
        o.crl_expired = so->crl_expired;
    }
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    if (ctx == NULL)
        fail_msg("server ctx: %s", err.msg);
    return ctx;
}

/* A client presenting c (with the intermediate as chain), or no certificate when c is NULL. */
static SSL_CTX *client_ctx(const struct tp_cert *c, int max_version)
{
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = root_path;
    o.max_version = max_version;
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, inter.cert);
    if (c != NULL) {
        o.cert = c->cert;
        o.key = c->key;
        o.chain = chain;
    }
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, &err);
    sk_X509_free(chain);
    if (ctx == NULL)
        fail_msg("client ctx: %s", err.msg);
    return ctx;
}

/* Handshake as client c at version v against sctx; returns 1 on success. */
static int connect_as(SSL_CTX *sctx, const struct tp_cert *c, int v)
{
    SSL_CTX *cctx = client_ctx(c, v);
    int ok = tp_handshake(sctx, cctx, NULL, NULL, NULL, NULL);
    SSL_CTX_free(cctx);
    return ok;
}

static void valid_client_accepted_tls12_and_tls13(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL);
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int i = 0; i < 2; i++) {
        SSL_CTX *cctx = client_ctx(&alice, versions[i]);
        SSL *s = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, &s, NULL), 1);
        assert_int_equal(SSL_version(s), versions[i]);
        struct tlsx_peer_rules rules = {0};
        struct tlsx_peer_result res;
        struct tlsx_identity *id = NULL;
        struct tw_err err;
        assert_int_equal(tlsx_peer_check(s, &rules, &res, &id, &err), 0);
        assert_int_equal(res.reason, TLSX_R_OK);
        assert_false(res.resumed);
        assert_string_equal(id->cn, "alice");
        assert_string_equal(res.matched_rule, "");
        tlsx_identity_free(id);
        SSL_free(s);
        SSL_CTX_free(cctx);
    }
    SSL_CTX_free(sctx);
}

static void refusals_have_plain_reasons(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL);
    struct {
        const struct tp_cert *client;
        int version;
        enum tlsx_reason reason;
        int alert; /* what the client hears; -1: not checked */
    } cases[] = {
        {NULL, TLS1_3_VERSION, TLSX_R_NO_CERT, SSL_AD_CERTIFICATE_REQUIRED},
        {NULL, TLS1_2_VERSION, TLSX_R_NO_CERT, SSL_AD_HANDSHAKE_FAILURE},
        {&stranger, TLS1_3_VERSION, TLSX_R_UNKNOWN_CA, SSL_AD_UNKNOWN_CA},
        {&srvonly, TLS1_3_VERSION, TLSX_R_WRONG_EKU, SSL_AD_UNSUPPORTED_CERTIFICATE},
        {&noeku, TLS1_2_VERSION, TLSX_R_WRONG_EKU, SSL_AD_UNSUPPORTED_CERTIFICATE},
        {&expired, TLS1_3_VERSION, TLSX_R_EXPIRED, SSL_AD_CERTIFICATE_EXPIRED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(connect_as(sctx, cases[i].client, cases[i].version), 0);
        if (tp_server_reason != cases[i].reason)
            fail_msg("case %zu: reason %s (%s), expected %s", i, tlsx_reason_code(tp_server_reason),
                     tp_server_detail, tlsx_reason_code(cases[i].reason));
        assert_int_equal(tp_client_alert, cases[i].alert);
        assert_int_equal(tlsx_reason_from_alert(tp_client_alert) == cases[i].reason ||
                             cases[i].alert == SSL_AD_HANDSHAKE_FAILURE,
                         1);
    }
    SSL_CTX_free(sctx);
}

static struct tlsx_crl_set *crls_revoking(const struct tp_cert *issuer, const long *serials,
                                          size_t n, long next_update)
{
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    X509_CRL *crl = tp_crl(issuer, serials, n, next_update);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    assert_int_equal(tlsx_crl_set_add_mem(set, der, (size_t)len, "test", &err), 0);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    return set;
}

static void revoked_client_rejected(void **state)
{
    (void)state;
    long serial = tp_serial(&carol);
    struct tlsx_crl_set *crls = crls_revoking(&inter, &serial, 1, 3600);
    SSL_CTX *sctx = server_ctx(&(struct sopts){.crls = crls});
    assert_int_equal(connect_as(sctx, &carol, TLS1_3_VERSION), 0);
    assert_int_equal(tp_server_reason, TLSX_R_REVOKED);
    assert_int_equal(tp_client_alert, SSL_AD_CERTIFICATE_REVOKED);
    assert_int_equal(connect_as(sctx, &alice, TLS1_2_VERSION), 1);
    SSL_CTX_free(sctx);
    tlsx_crl_set_free(crls);
}

static void revoked_intermediate_rejected_with_crls_for_all_cas(void **state)
{
    (void)state;
    long serial = tp_serial(&inter);
    struct tlsx_crl_set *crls = crls_revoking(&inter, NULL, 0, 3600);
    X509_CRL *root_crl = tp_crl(&root, &serial, 1, 3600);
    const char *path = tp_write_crl("root.crl", root_crl, 0);
    struct tw_err err;
    assert_int_equal(tlsx_crl_set_add_file(crls, path, &err), 0);
    SSL_CTX *sctx = server_ctx(&(struct sopts){.crls = crls});
    assert_int_equal(connect_as(sctx, &alice, TLS1_3_VERSION), 0);
    if (tp_server_reason != TLSX_R_REVOKED)
        fail_msg("reason %s: %s", tlsx_reason_code(tp_server_reason), tp_server_detail);
    SSL_CTX_free(sctx);
    tlsx_crl_set_free(crls);
    X509_CRL_free(root_crl);
}

static void expired_crl_policy(void **state)
{
    (void)state;
    struct tlsx_crl_set *crls = crls_revoking(&inter, NULL, 0, -10);
    SSL_CTX *reject = server_ctx(&(struct sopts){.crls = crls});
    assert_int_equal(connect_as(reject, &alice, TLS1_3_VERSION), 0);
    assert_int_equal(tp_server_reason, TLSX_R_CRL_EXPIRED);
    SSL_CTX *warn = server_ctx(&(struct sopts){.crls = crls, .crl_expired = TLSX_CRL_EXPIRED_WARN});
    assert_int_equal(connect_as(warn, &alice, TLS1_3_VERSION), 1);
    assert_int_equal(tlsx_crl_set_expired(crls, (int64_t)time(NULL)), 1);
    SSL_CTX_free(reject);
    SSL_CTX_free(warn);
    tlsx_crl_set_free(crls);
}

static struct tlsx_policy *policy_of(const char *rule)
{
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    assert_int_equal(tlsx_policy_add(p, rule, &err), 0);
    return p;
}

static void policy_denial_in_handshake(void **state)
{
    (void)state;
    struct tlsx_policy *p = policy_of("uri:spiffe://example.org/*");
    SSL_CTX *sctx = server_ctx(&(struct sopts){.policy = p});
    assert_int_equal(connect_as(sctx, &bob, TLS1_3_VERSION), 0);
    assert_int_equal(tp_server_reason, TLSX_R_POLICY);
    assert_non_null(strstr(tp_server_detail, "uri:spiffe://example.org/*"));
    assert_non_null(strstr(tp_server_detail, "CN=bob"));
    assert_int_equal(tp_client_alert, SSL_AD_HANDSHAKE_FAILURE);

    SSL_CTX *cctx = client_ctx(&alice, TLS1_2_VERSION);
    SSL *s = NULL;
    assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, &s, NULL), 1);
    struct tlsx_peer_rules rules = {.policy = p};
    struct tlsx_peer_result res;
    struct tlsx_identity *id = NULL;
    struct tw_err err;
    assert_int_equal(tlsx_peer_check(s, &rules, &res, &id, &err), 0);
    assert_string_equal(res.matched_rule, "uri:spiffe://example.org/*");
    assert_string_equal(id->uri.v[0], "spiffe://example.org/alice");
    tlsx_identity_free(id);
    /* The same connection under a newer generation whose policy no longer allows alice. */
    struct tlsx_policy *newer = policy_of("cn:bob");
    rules.policy = newer;
    assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), -1);
    assert_int_equal(res.reason, TLSX_R_POLICY);
    assert_int_equal(err.code, TW_ERR_POLICY);
    SSL_free(s);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    tlsx_policy_free(p);
    tlsx_policy_free(newer);
}

/* Full handshake on sctx as alice, returning the client's session for resumption. */
static SSL_SESSION *session_from(SSL_CTX *sctx, SSL_CTX *cctx)
{
    SSL *c = NULL;
    assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, NULL, &c), 1);
    SSL_SESSION *sess = SSL_get1_session(c);
    assert_non_null(sess);
    assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
    SSL_free(c);
    return sess;
}

static void resumed_session_rechecked_against_current_crls(void **state)
{
    (void)state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        struct tw_err err;
        struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
        struct tlsx_crl_set *none = crls_revoking(&inter, NULL, 0, 3600);
        long serial = tp_serial(&alice);
        struct tlsx_crl_set *revoking = crls_revoking(&inter, &serial, 1, 3600);
        SSL_CTX *gen1 = server_ctx(&(struct sopts){.crls = none, .keys = keys});
        SSL_CTX *cctx = client_ctx(&alice, versions[v]);
        SSL_SESSION *sess = session_from(gen1, cctx);

        /* Same generation: resumes. The gateway's explicit check with the newer CRL set
         * catches it even so. */
        SSL *s = NULL;
        assert_int_equal(tp_handshake(gen1, cctx, sess, NULL, &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 1);
        struct tlsx_peer_rules rules = {.crls = none};
        struct tlsx_peer_result res;
        assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), 0);
        assert_true(res.resumed);
        rules.crls = revoking;
        assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), -1);
        assert_int_equal(res.reason, TLSX_R_REVOKED);
        assert_true(res.resumed);
        SSL_free(s);

        /* A new generation with the CRL revoking alice: no resumption, full handshake refused. */
        SSL_CTX *gen2 = server_ctx(&(struct sopts){.crls = revoking, .keys = keys});
        s = NULL;
        assert_int_equal(tp_handshake(gen2, cctx, sess, NULL, &s, NULL), 0);
        assert_int_equal(SSL_session_reused(s), 0);
        assert_int_equal(tp_server_reason, TLSX_R_REVOKED);
        SSL_free(s);

        /* ... and one whose policy no longer allows her. */
        struct tlsx_policy *p = policy_of("cn:bob");
        SSL_CTX *gen3 = server_ctx(&(struct sopts){.crls = none, .keys = keys, .policy = p});
        assert_int_equal(tp_handshake(gen3, cctx, sess, NULL, NULL, NULL), 0);
        assert_int_equal(tp_server_reason, TLSX_R_POLICY);

        SSL_SESSION_free(sess);
        SSL_CTX_free(gen1);
        SSL_CTX_free(gen2);
        SSL_CTX_free(gen3);
        SSL_CTX_free(cctx);
        tlsx_policy_free(p);
        tlsx_crl_set_free(none);
        tlsx_crl_set_free(revoking);
        tlsx_ticket_keys_free(keys);
    }
}

static void ticket_key_file_shared_between_instances(void **state)
{
    (void)state;
    struct tw_err err;
    const char *path = tp_path("tickets.key");
    assert_int_equal(tlsx_ticket_key_file_write(path, &err), 0);
    struct tlsx_ticket_keys *ka = tlsx_ticket_keys_new_file(path, &err);
    struct tlsx_ticket_keys *kb = tlsx_ticket_keys_new_file(path, &err);
    assert_non_null(ka);
    assert_non_null(kb);
    struct tlsx_ticket_keys *kc = tlsx_ticket_keys_new(0, &err);
    SSL_CTX *a = server_ctx(&(struct sopts){.keys = ka});
    SSL_CTX *b = server_ctx(&(struct sopts){.keys = kb});
    SSL_CTX *c = server_ctx(&(struct sopts){.keys = kc});
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        SSL_CTX *cctx = client_ctx(&alice, versions[v]);
        SSL_SESSION *sess = session_from(a, cctx);
        SSL *s = NULL;
        assert_int_equal(tp_handshake(b, cctx, sess, NULL, &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 1);
        SSL_free(s);
        /* An instance with other keys cannot decrypt the ticket: full handshake. */
        s = NULL;
        assert_int_equal(tp_handshake(c, cctx, sess, NULL, &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 0);
        SSL_free(s);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
    }
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(c);
    tlsx_ticket_keys_free(ka);
    tlsx_ticket_keys_free(kb);
    tlsx_ticket_keys_free(kc);
}

static void sni_selects_service(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_policy *pa = policy_of("cn:alice");
    struct tlsx_policy *pb = policy_of("cn:bob");
    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
    SSL_CTX *a = server_ctx(&(struct sopts){.policy = pa, .keys = keys, .name = "a"});
    SSL_CTX *b = server_ctx(&(struct sopts){.policy = pb, .keys = keys, .name = "b"});
    struct tlsx_sni_table *t = tlsx_sni_table_new(&err);
    assert_int_equal(tlsx_sni_table_add(t, "a.example", a, &err), 0);
    assert_int_equal(tlsx_sni_table_add(t, "*.b.example", b, &err), 0);
    assert_int_equal(tlsx_sni_table_install(t, a, &err), 0);
    assert_ptr_equal(tlsx_sni_table_lookup(t, "A.EXAMPLE"), a);
    assert_ptr_equal(tlsx_sni_table_lookup(t, "x.b.example"), b);
    assert_null(tlsx_sni_table_lookup(t, "x.y.b.example"));

    SSL_CTX *cb = client_ctx(&bob, TLS1_3_VERSION);
    SSL *s = NULL;
    assert_int_equal(tp_handshake(a, cb, NULL, "api.b.example", &s, NULL), 1);
    assert_ptr_equal(SSL_get_SSL_CTX(s), b);
    SSL_free(s);
    assert_int_equal(tp_handshake(a, cb, NULL, "a.example", NULL, NULL), 0);
    assert_int_equal(tp_server_reason, TLSX_R_POLICY);

    /* A session of service a does not resume at service b (different session id context),
     * whatever the version. */
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        SSL_CTX *ca = client_ctx(&alice, versions[v]);
        SSL *c = NULL;
        assert_int_equal(tp_handshake(a, ca, NULL, "a.example", NULL, &c), 1);
        SSL_SESSION *sess = SSL_get1_session(c);
        SSL_free(c);
        s = NULL;
        assert_int_equal(tp_handshake(a, ca, sess, "a.example", &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 1);
        SSL_free(s);
        s = NULL;
        assert_int_equal(tp_handshake(a, ca, sess, "x.b.example", &s, NULL), 0);
        assert_int_equal(SSL_session_reused(s), 0);
        assert_int_equal(tp_server_reason, TLSX_R_POLICY); /* full handshake at b: cn:bob only */
        SSL_free(s);
        SSL_SESSION_free(sess);
        SSL_CTX_free(ca);
    }

    /* Strict: an unknown name is refused. */
    assert_int_equal(tlsx_sni_table_set_default(t, NULL, true, &err), 0);
    assert_int_equal(tp_handshake(a, cb, NULL, "unknown.example", NULL, NULL), 0);
    assert_int_equal(tp_client_alert, SSL_AD_UNRECOGNIZED_NAME);

    SSL_CTX_free(cb);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    tlsx_sni_table_free(t);
    tlsx_policy_free(pa);
    tlsx_policy_free(pb);
    tlsx_ticket_keys_free(keys);
}

static void client_checks_server_name(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL);
    const char *good[] = {"localhost", "127.0.0.1", "LOCALHOST"};
    for (size_t i = 0; i < 3; i++) {
        tp_verify_name = good[i];
        assert_int_equal(connect_as(sctx, &alice, TLS1_3_VERSION), 1);
    }
    const char *bad[] = {"server", "example.com", "127.0.0.2", "::1"};
    for (size_t i = 0; i < 4; i++) {
        tp_verify_name = bad[i];
        assert_int_equal(connect_as(sctx, &alice, TLS1_3_VERSION), 0);
    }
    tp_verify_name = NULL;
    SSL_CTX_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_client_accepted_tls12_and_tls13),
        cmocka_unit_test(refusals_have_plain_reasons),
        cmocka_unit_test(revoked_client_rejected),
        cmocka_unit_test(revoked_intermediate_rejected_with_crls_for_all_cas),
        cmocka_unit_test(expired_crl_policy),
        cmocka_unit_test(policy_denial_in_handshake),
        cmocka_unit_test(resumed_session_rechecked_against_current_crls),
        cmocka_unit_test(ticket_key_file_shared_between_instances),
        cmocka_unit_test(sni_selects_service),
        cmocka_unit_test(client_checks_server_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
