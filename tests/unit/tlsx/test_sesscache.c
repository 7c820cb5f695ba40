/* The session store (sesscache.c) and what sessions keep (issue 6): resumption many times in a
 * row at both versions, the peer re-checked at each one, and one decoded intermediate shared
 * by every connection instead of a copy each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tlsx/internal.h"
#include "tlsx/sesscache_internal.h"
#include "tlsx/testpki.h"

#define ROUNDS 5

static struct tp_cert root, inter, server, alice, bob, root2;
static const char *client_ca_path, *server_cert_path, *server_key_path, *root_path;
static const char *root_only_path, *inter_only_path, *two_roots_path;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    struct tp_opts ca = {.ca = 1, .to = 86400 * 10};
    root = tp_make("S Root", NULL, &ca);
    inter = tp_make("S Issuing CA", &root, &ca);
    server = tp_make("server", &root, &(struct tp_opts){.eku = "serverAuth"});
    alice = tp_make("alice", &inter, &(struct tp_opts){.eku = "clientAuth"});
    bob = tp_make("bob", &inter, &(struct tp_opts){.eku = "clientAuth"});
    root2 = tp_make("S Other Root", NULL, &ca);
    X509 *cas[] = {root.cert, inter.cert, NULL};
    client_ca_path = tp_write_certs("client-ca.pem", cas);
    root_only_path = tp_write_cert("root-only.pem", root.cert);
    inter_only_path = tp_write_cert("inter-only.pem", inter.cert);
    X509 *roots[] = {root2.cert, root.cert, NULL};
    two_roots_path = tp_write_certs("two-roots.pem", roots);
    server_cert_path = tp_write_cert("server.pem", server.cert);
    server_key_path = tp_write_key("server.key", server.key, 0600);
    root_path = tp_write_cert("root.pem", root.cert);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tp_free(&root);
    tp_free(&inter);
    tp_free(&server);
    tp_free(&alice);
    tp_free(&bob);
    tp_free(&root2);
    tp_dir_cleanup();
    return 0;
}

static SSL_CTX *layout_ctx(const char *cas, struct tlsx_ticket_keys *keys,
                           struct tlsx_crl_set *crls)
{
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = "store";
    o.cert_file = server_cert_path;
    o.key_file = server_key_path;
    o.client_ca_file = cas;
    o.ticket_keys = keys;
    o.crls = crls;
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    if (ctx == NULL)
        fail_msg("server ctx: %s", err.msg);
    return ctx;
}

static SSL_CTX *server_ctx(struct tlsx_ticket_keys *keys, struct tlsx_crl_set *crls)
{
    return layout_ctx(client_ca_path, keys, crls);
}

/* A client presenting c, with the intermediate as its chain when send_inter. */
static SSL_CTX *client_ctx_sending(const struct tp_cert *c, int max_version, int send_inter)
{
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = root_path;
    o.max_version = max_version;
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (send_inter)
        sk_X509_push(chain, inter.cert);
    o.cert = c->cert;
    o.key = c->key;
    o.chain = chain;
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, &err);
    sk_X509_free(chain);
    if (ctx == NULL)
        fail_msg("client ctx: %s", err.msg);
    return ctx;
}

static SSL_CTX *client_ctx(const struct tp_cert *c, int max_version)
{
    return client_ctx_sending(c, max_version, 1);
}

static struct tlsx_crl_set *crls_revoking(const long *serials, size_t n)
{
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    X509_CRL *crl = tp_crl(&inter, serials, n, 3600);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    assert_int_equal(tlsx_crl_set_add_mem(set, der, (size_t)len, "test", &err), 0);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    return set;
}

/* The intermediate the server's session keeps for the client of s. */
static X509 *kept_intermediate(SSL *s)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s);
    assert_non_null(chain);
    assert_int_equal(sk_X509_num(chain), 1);
    X509 *x = sk_X509_value(chain, 0);
    assert_int_equal(X509_cmp(x, inter.cert), 0); /* what the client sent, byte for byte */
    return x;
}

/* Full handshakes of two clients share one intermediate object (the ctx's client-ca copy);
 * resumed ones too. */
static void sessions_share_the_intermediate(void **state)
{
    (void)state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        struct tw_err err;
        struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
        SSL_CTX *sctx = server_ctx(keys, NULL);
        SSL_CTX *ca = client_ctx(&alice, versions[v]), *cb = client_ctx(&bob, versions[v]);
        SSL *sa = NULL, *sb = NULL, *ca_ssl = NULL, *sr = NULL;
        assert_int_equal(tp_handshake(sctx, ca, NULL, NULL, &sa, &ca_ssl), 1);
        assert_int_equal(tp_handshake(sctx, cb, NULL, NULL, &sb, NULL), 1);
        X509 *shared = kept_intermediate(sa);
        assert_ptr_equal(kept_intermediate(sb), shared);
        assert_ptr_not_equal(shared, inter.cert); /* the server's own decoded copy */

        /* Resumed: the same object, and the peer check still sees a full chain. */
        SSL_SESSION *sess = SSL_get1_session(ca_ssl);
        assert_int_equal(tp_handshake(sctx, ca, sess, NULL, &sr, NULL), 1);
        assert_int_equal(SSL_session_reused(sr), 1);
        assert_ptr_equal(kept_intermediate(sr), shared);
        struct tlsx_peer_rules rules = {0};
        struct tlsx_peer_result res;
        struct tlsx_identity *id = NULL;
        assert_int_equal(tlsx_peer_check(sr, &rules, &res, &id, &err), 0);
        assert_string_equal(id->cn, "alice");
        tlsx_identity_free(id);

        SSL_SESSION_free(sess);
        SSL_free(sa);
        SSL_free(sb);
        SSL_free(sr);
        SSL_free(ca_ssl);
        SSL_CTX_free(ca);
        SSL_CTX_free(cb);
        SSL_CTX_free(sctx);
        tlsx_ticket_keys_free(keys);
    }
}

/* Resume ROUNDS times from the first session, then ROUNDS times from the newest one (a
 * client that keeps the latest ticket); every one resumes. (An OpenSSL client offers a TLS 1.3
 * session object once: each connection gets a copy, as twoway bench does.) */
static void resumes_many_times_in_a_row(void **state)
{
    (void)state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        struct tw_err err;
        struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
        SSL_CTX *sctx = server_ctx(keys, NULL);
        SSL_CTX *cctx = client_ctx(&alice, versions[v]);
        SSL *c = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, NULL, &c), 1);
        SSL_SESSION *first = SSL_get1_session(c);
        SSL_free(c);
        for (int i = 0; i < ROUNDS; i++) {
            SSL *s = NULL;
            SSL_SESSION *copy = SSL_SESSION_dup(first);
            assert_int_equal(tp_handshake(sctx, cctx, copy, NULL, &s, NULL), 1);
            SSL_SESSION_free(copy);
            assert_int_equal(SSL_session_reused(s), 1);
            SSL_free(s);
        }
        SSL_SESSION *latest = SSL_SESSION_dup(first);
        for (int i = 0; i < ROUNDS; i++) {
            SSL *s = NULL;
            c = NULL;
            assert_int_equal(tp_handshake(sctx, cctx, latest, NULL, &s, &c), 1);
            assert_int_equal(SSL_session_reused(s), 1);
            SSL_SESSION_free(latest);
            latest = SSL_get1_session(c);
            assert_int_equal(SSL_SESSION_is_resumable(latest), 1);
            SSL_free(s);
            SSL_free(c);
        }
        SSL_SESSION_free(latest);
        SSL_SESSION_free(first);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        tlsx_ticket_keys_free(keys);
    }
}

/* After several resumptions, a reload whose CRL revokes the client: the stored session is
 * refused (full handshake, which fails as revoked), at both versions; another client of the
 * same CA still resumes. */
static void resumed_session_refused_after_revocation(void **state)
{
    (void)state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        struct tw_err err;
        struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
        struct tlsx_crl_set *none = crls_revoking(NULL, 0);
        long serial = tp_serial(&alice);
        struct tlsx_crl_set *revoking = crls_revoking(&serial, 1);
        SSL_CTX *gen1 = server_ctx(keys, none);
        SSL_CTX *ca = client_ctx(&alice, versions[v]), *cb = client_ctx(&bob, versions[v]);
        SSL *c = NULL;
        assert_int_equal(tp_handshake(gen1, ca, NULL, NULL, NULL, &c), 1);
        SSL_SESSION *sa = SSL_get1_session(c);
        SSL_free(c);
        c = NULL;
        assert_int_equal(tp_handshake(gen1, cb, NULL, NULL, NULL, &c), 1);
        SSL_SESSION *sb = SSL_get1_session(c);
        SSL_free(c);
        for (int i = 0; i < ROUNDS; i++) {
            SSL *s = NULL;
            SSL_SESSION *copy = SSL_SESSION_dup(sa);
            assert_int_equal(tp_handshake(gen1, ca, copy, NULL, &s, NULL), 1);
            SSL_SESSION_free(copy);
            assert_int_equal(SSL_session_reused(s), 1);
            SSL_free(s);
        }

        SSL_CTX *gen2 = server_ctx(keys, revoking); /* same keys: the store survives */
        for (int i = 0; i < 2; i++) {
            SSL *s = NULL;
            SSL_SESSION *copy = SSL_SESSION_dup(sa);
            assert_int_equal(tp_handshake(gen2, ca, copy, NULL, &s, NULL), 0);
            SSL_SESSION_free(copy);
            assert_int_equal(SSL_session_reused(s), 0);
            assert_int_equal(tp_server_reason, TLSX_R_REVOKED);
            SSL_free(s);
        }
        SSL *s = NULL;
        assert_int_equal(tp_handshake(gen2, cb, sb, NULL, &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 1);
        SSL_free(s);

        SSL_SESSION_free(sa);
        SSL_SESSION_free(sb);
        SSL_CTX_free(gen1);
        SSL_CTX_free(gen2);
        SSL_CTX_free(ca);
        SSL_CTX_free(cb);
        tlsx_crl_set_free(none);
        tlsx_crl_set_free(revoking);
        tlsx_ticket_keys_free(keys);
    }
}

/* Drive both ends of a handshake over a BIO pair until the server finished; the client then
 * reads the server's first byte (and a TLS 1.3 ticket with it). 1 on success. */
static int handshake_pair(SSL *s, SSL *c)
{
    int sdone = 0, cdone = 0;
    for (int i = 0; i < 100 && !sdone; i++) {
        if (!cdone) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
                return 0;
        }
        int r = SSL_do_handshake(s);
        if (r == 1)
            sdone = 1;
        else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
            return 0;
    }
    char byte = 's', got = 0;
    return sdone && SSL_write(s, &byte, 1) == 1 && SSL_read(c, &got, 1) == 1 && got == 's';
}

/* A record the server cannot decrypt ends the connection with a fatal alert, and OpenSSL marks
 * that connection's session unresumable. The store keeps its own copy: the client resumes. */
static void session_survives_a_fatal_alert_on_its_connection(void **state)
{
    (void)state;
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        struct tw_err err;
        struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
        SSL_CTX *sctx = server_ctx(keys, NULL);
        SSL_CTX *cctx = client_ctx(&alice, versions[v]);
        SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
        BIO *sb = NULL, *cb = NULL;
        assert_int_equal(BIO_new_bio_pair(&sb, 0, &cb, 0), 1);
        SSL_set_bio(s, sb, sb);
        SSL_set_bio(c, cb, cb);
        SSL_set_accept_state(s);
        SSL_set_connect_state(c);
        assert_int_equal(handshake_pair(s, c), 1);
        /* A copy: the client's own session object is marked when c is freed below. */
        SSL_SESSION *sess = SSL_SESSION_dup(SSL_get0_session(c));
        assert_int_equal(SSL_SESSION_is_resumable(sess), 1);

        static const unsigned char garbage[] = {
            0x17, 0x03, 0x03, 0x00, 0x20, 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x',
            'x',  'x',  'x',  'x',  'x',  'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x',
            'x',  'x',  'x',  'x',  'x',  'x', 'x', 'x', 'x', 'x', 'x'};
        assert_int_equal(BIO_write(cb, garbage, (int)sizeof(garbage)), (int)sizeof(garbage));
        char buf[8];
        int r = SSL_read(s, buf, sizeof(buf));
        assert_true(r <= 0);
        assert_int_equal(SSL_get_error(s, r), SSL_ERROR_SSL);
        assert_int_equal(SSL_SESSION_is_resumable(SSL_get_session(s)), 0);
        ERR_clear_error();
        SSL_free(s);
        SSL_free(c);

        SSL *s2 = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, sess, NULL, &s2, NULL), 1);
        assert_int_equal(SSL_session_reused(s2), 1);
        SSL_free(s2);
        SSL_SESSION_free(sess);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        tlsx_ticket_keys_free(keys);
    }
}

/* client-ca holding only the root: the intermediate the clients send is in no ctx's list, and
 * sessions still share one decoded copy of it (the CA pool), with the store and with tickets;
 * a ticket resumption takes it from the pool, not from a new decode. */
static void root_only_sessions_share_the_intermediate(void **state)
{
    (void)state;
    struct tw_err err;
    const char *path = tp_path("root-only-tickets.key");
    assert_int_equal(tlsx_ticket_key_file_write(path, &err), 0);
    for (int mode = 0; mode < 2; mode++) {
        struct tlsx_ticket_keys *keys =
            mode ? tlsx_ticket_keys_new_file(path, &err) : tlsx_ticket_keys_new(0, &err);
        SSL_CTX *sctx = layout_ctx(root_only_path, keys, NULL);
        SSL_CTX *ca = client_ctx(&alice, TLS1_3_VERSION), *cb = client_ctx(&bob, TLS1_3_VERSION);
        SSL *sa = NULL, *sb = NULL, *c = NULL, *sr = NULL;
        assert_int_equal(tp_handshake(sctx, ca, NULL, NULL, &sa, &c), 1);
        assert_int_equal(tp_handshake(sctx, cb, NULL, NULL, &sb, NULL), 1);
        X509 *shared = kept_intermediate(sa);
        assert_ptr_equal(kept_intermediate(sb), shared);
        assert_ptr_not_equal(shared, inter.cert);
        /* The live connections' verified chains too, not only the sessions. */
        assert_ptr_equal(sk_X509_value(SSL_get0_verified_chain(sa), 1), shared);
        assert_ptr_equal(sk_X509_value(SSL_get0_verified_chain(sb), 1), shared);
        SSL_SESSION *sess = SSL_get1_session(c);
        assert_int_equal(tp_handshake(sctx, ca, sess, NULL, &sr, NULL), 1);
        assert_int_equal(SSL_session_reused(sr), 1);
        STACK_OF(X509) *carried = NULL;
        assert_int_equal(tlsx_sess_carried_cas(sr, SSL_get_session(sr), &carried), 0);
        assert_int_equal(sk_X509_num(carried), 1);
        assert_ptr_equal(sk_X509_value(carried, 0), shared);
        sk_X509_pop_free(carried, X509_free);
        SSL_SESSION_free(sess);
        SSL_free(sa);
        SSL_free(sb);
        SSL_free(sr);
        SSL_free(c);
        SSL_CTX_free(ca);
        SSL_CTX_free(cb);
        SSL_CTX_free(sctx);
        tlsx_ticket_keys_free(keys);
    }
}

/* Keys from a file (stateless tickets): the live session shares the intermediate too. */
static void tickets_share_the_intermediate(void **state)
{
    (void)state;
    struct tw_err err;
    const char *path = tp_path("tickets.key");
    assert_int_equal(tlsx_ticket_key_file_write(path, &err), 0);
    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new_file(path, &err);
    assert_non_null(keys);
    SSL_CTX *sctx = server_ctx(keys, NULL);
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    X509 *seen = NULL;
    for (int v = 0; v < 2; v++) {
        SSL_CTX *cctx = client_ctx(&alice, versions[v]);
        SSL *s = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, &s, NULL), 1);
        X509 *x = kept_intermediate(s);
        if (seen != NULL)
            assert_ptr_equal(x, seen);
        seen = x;
        SSL_free(s);
        SSL_CTX_free(cctx);
    }
    SSL_CTX_free(sctx);
    tlsx_ticket_keys_free(keys);
}

/* The trust layouts users have: client-ca with only the root (the client sends its
 * intermediate), the whole chain, the intermediate alone with a client sending only its leaf,
 * two roots. In each, with the session store and with tickets, at both versions: the session
 * resumes, the peer check passes on the resumed connection, and once the intermediate's CRL
 * revokes the client (a CRL from a CA outside client-ca in the root-only layouts) the
 * session is refused and the full handshake fails as revoked. */
static void resumes_in_every_trust_layout(void **state)
{
    (void)state;
    struct layout {
        const char *name, **cas;
        int send_inter;
    } layouts[] = {
        {"root only", &root_only_path, 1},
        {"whole chain", &client_ca_path, 1},
        {"intermediate, leaf only", &inter_only_path, 0},
        {"two roots", &two_roots_path, 1},
    };
    struct tw_err err;
    const char *key_path = tp_path("layout-tickets.key");
    assert_int_equal(tlsx_ticket_key_file_write(key_path, &err), 0);
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    long serial = tp_serial(&alice);
    for (size_t l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
        for (int mode = 0; mode < 2; mode++) {
            for (int v = 0; v < 2; v++) {
                print_message("%s, %s, TLS 1.%d\n", layouts[l].name,
                              mode ? "tickets" : "store", v + 2);
                struct tlsx_ticket_keys *keys = mode ? tlsx_ticket_keys_new_file(key_path, &err)
                                                     : tlsx_ticket_keys_new(0, &err);
                struct tlsx_crl_set *none = crls_revoking(NULL, 0);
                struct tlsx_crl_set *revoking = crls_revoking(&serial, 1);
                SSL_CTX *gen1 = layout_ctx(*layouts[l].cas, keys, none);
                SSL_CTX *cctx = client_ctx_sending(&alice, versions[v], layouts[l].send_inter);
                SSL *c = NULL, *s = NULL;
                assert_int_equal(tp_handshake(gen1, cctx, NULL, NULL, NULL, &c), 1);
                SSL_SESSION *sess = SSL_get1_session(c);
                SSL_free(c);
                for (int i = 0; i < 2; i++) {
                    SSL_SESSION *copy = SSL_SESSION_dup(sess);
                    assert_int_equal(tp_handshake(gen1, cctx, copy, NULL, &s, NULL), 1);
                    SSL_SESSION_free(copy);
                    assert_int_equal(SSL_session_reused(s), 1);
                    struct tlsx_peer_rules rules = {.crls = none};
                    struct tlsx_peer_result res;
                    assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), 0);
                    assert_true(res.resumed);
                    SSL_free(s);
                }
                SSL_CTX *gen2 = layout_ctx(*layouts[l].cas, keys, revoking);
                assert_int_equal(tp_handshake(gen2, cctx, sess, NULL, &s, NULL), 0);
                assert_int_equal(SSL_session_reused(s), 0);
                assert_int_equal(tp_server_reason, TLSX_R_REVOKED);
                SSL_free(s);
                SSL_SESSION_free(sess);
                SSL_CTX_free(gen1);
                SSL_CTX_free(gen2);
                SSL_CTX_free(cctx);
                tlsx_crl_set_free(none);
                tlsx_crl_set_free(revoking);
                tlsx_ticket_keys_free(keys);
            }
        }
    }
}

/* More live sessions than fit one set of the store, fewer than it holds: every one of them
 * resumes (a direct-mapped table lost one whenever two ids met in a slot). */
static void no_session_lost_to_a_collision(void **state)
{
    (void)state;
    enum { N = 64 };
    struct tw_err err;
    struct tlsx_ticket_keys *keys = tlsx_ticket_keys_new(0, &err);
    SSL_CTX *sctx = server_ctx(keys, NULL);
    SSL_CTX *cctx = client_ctx(&alice, TLS1_2_VERSION);
    SSL_SESSION *sess[N];
    for (int i = 0; i < N; i++) {
        SSL *c = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, NULL, &c), 1);
        sess[i] = SSL_get1_session(c);
        SSL_free(c);
    }
    for (int i = 0; i < N; i++) {
        SSL *s = NULL;
        assert_int_equal(tp_handshake(sctx, cctx, sess[i], NULL, &s, NULL), 1);
        assert_int_equal(SSL_session_reused(s), 1);
        SSL_free(s);
        SSL_SESSION_free(sess[i]);
    }
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    tlsx_ticket_keys_free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sessions_share_the_intermediate),
        cmocka_unit_test(resumes_many_times_in_a_row),
        cmocka_unit_test(resumed_session_refused_after_revocation),
        cmocka_unit_test(session_survives_a_fatal_alert_on_its_connection),
        cmocka_unit_test(tickets_share_the_intermediate),
        cmocka_unit_test(root_only_sessions_share_the_intermediate),
        cmocka_unit_test(resumes_in_every_trust_layout),
        cmocka_unit_test(no_session_lost_to_a_collision),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
