/* The cache of verified client chains: the LRU itself (keys, generations, validity window,
 * bound), and real in-memory handshakes showing that a hit admits exactly whom a full
 * verification admits, keeps the revocation lookup and the proof of key possession, and that
 * nothing but success is stored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "tlsx/internal.h"
#include "tlsx/testpki.h"
#include "tlsx/verify_cache_internal.h"

static struct tp_cert root, inter, other_root, server, alice, bob, expired, stranger, noeku;
static const char *client_ca_path, *server_cert_path, *server_key_path, *root_path;

static int setup(void **state)
{
    (void)state;
    tp_dir_init();
    struct tp_opts ca = {.ca = 1, .to = 86400 * 10};
    root = tp_make("Test Root", NULL, &ca);
    inter = tp_make("Test Issuing CA", &root, &ca);
    other_root = tp_make("Test Root", NULL, &ca); /* same name, other key */
    server =
        tp_make("server", &root, &(struct tp_opts){.eku = "serverAuth", .sans = "DNS:localhost"});
    alice = tp_make("alice", &inter, &(struct tp_opts){.eku = "clientAuth"});
    bob = tp_make("bob", &inter, &(struct tp_opts){.eku = "clientAuth"});
    expired = tp_make("expired", &inter,
                      &(struct tp_opts){.eku = "clientAuth", .from = -7200, .to = -60});
    stranger = tp_make("alice", &other_root, &(struct tp_opts){.eku = "clientAuth"});
    noeku = tp_make("noeku", &inter, NULL);
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
    struct tp_cert *all[] = {&root, &inter,   &other_root, &server, &alice,
                             &bob,  &expired, &stranger,   &noeku};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        tp_free(all[i]);
    tp_dir_cleanup();
    return 0;
}

static SSL_CTX *server_ctx_cas(const char *cas, struct tlsx_crl_set *crls,
                               struct tlsx_policy *policy, enum tlsx_crl_expired crl_expired)
{
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = "vcache";
    o.cert_file = server_cert_path;
    o.key_file = server_key_path;
    o.client_ca_file = cas;
    o.crls = crls;
    o.policy = policy;
    o.crl_expired = crl_expired;
    struct tw_err err = {0};
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, &err);
    if (ctx == NULL)
        fail_msg("server ctx: %s", err.msg);
    return ctx;
}

static SSL_CTX *server_ctx(struct tlsx_crl_set *crls, struct tlsx_policy *policy,
                           enum tlsx_crl_expired crl_expired)
{
    return server_ctx_cas(client_ca_path, crls, policy, crl_expired);
}

/* A client presenting cert with key (which may not be the certificate's), chain = [ca] or
 * nothing. Built by hand: tlsx_client_ctx_new would refuse a key that does not match. */
static SSL_CTX *client_ctx(X509 *cert, EVP_PKEY *key, X509 *ca, int version)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(c, version);
    SSL_CTX_set_max_proto_version(c, version);
    assert_int_equal(SSL_CTX_use_certificate(c, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(c, key), 1);
    if (ca != NULL)
        assert_int_equal(SSL_CTX_add1_chain_cert(c, ca), 1);
    return c;
}

static SSL *connect_as(SSL_CTX *sctx, const struct tp_cert *who, X509 *ca, int version)
{
    SSL_CTX *cctx = client_ctx(who->cert, who->key, ca, version);
    SSL *s = NULL;
    int ok = tp_handshake(sctx, cctx, NULL, NULL, &s, NULL);
    SSL_CTX_free(cctx);
    if (!ok) {
        SSL_free(s);
        return NULL;
    }
    return s;
}

static int admitted(SSL_CTX *sctx, const struct tp_cert *who, X509 *ca, int version)
{
    SSL *s = connect_as(sctx, who, ca, version);
    SSL_free(s);
    return s != NULL;
}

static struct tlsx_vcache_stats stats_of(SSL_CTX *ctx)
{
    struct tlsx_vcache_stats st;
    struct tlsx_vcache *c = tlsx_vcache_of(ctx);
    assert_non_null(c);
    tlsx_vcache_stats(c, &st);
    return st;
}

static struct tlsx_crl_set *crl_set(const struct tp_cert *issuer, const long *serials, size_t n,
                                    long next_update)
{
    struct tw_err err;
    struct tlsx_crl_set *set = tlsx_crl_set_new(&err);
    assert_non_null(set);
    X509_CRL *crl = tp_crl(issuer, serials, n, next_update);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    assert_int_equal(tlsx_crl_set_add_mem(set, der, (size_t)len, "test", &err), 0);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    return set;
}

static void second_handshake_hits_and_reads_the_same(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL, NULL, TLSX_CRL_EXPIRED_REJECT);
    SSL *first = connect_as(sctx, &alice, inter.cert, TLS1_3_VERSION);
    assert_non_null(first);
    struct tlsx_vcache_stats st = stats_of(sctx);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.stored, 1);
    int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
    for (int v = 0; v < 2; v++) {
        SSL *again = connect_as(sctx, &alice, inter.cert, versions[v]);
        assert_non_null(again);
        assert_int_equal(stats_of(sctx).hits, (uint64_t)v + 1);
        /* What the gateway reads afterwards is what a full verification leaves. */
        assert_int_equal(SSL_get_verify_result(again), X509_V_OK);
        STACK_OF(X509) *a = SSL_get0_verified_chain(first), *b = SSL_get0_verified_chain(again);
        assert_int_equal(sk_X509_num(a), 3);
        assert_int_equal(sk_X509_num(b), 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(X509_cmp(sk_X509_value(a, i), sk_X509_value(b, i)), 0);
        assert_int_equal(X509_cmp(sk_X509_value(b, 2), root.cert), 0);
        struct tlsx_peer_rules rules = {0};
        struct tlsx_peer_result res;
        struct tlsx_identity *id = NULL;
        struct tw_err err;
        assert_int_equal(tlsx_peer_check(again, &rules, &res, &id, &err), 0);
        assert_string_equal(id->cn, "alice");
        tlsx_identity_free(id);
        SSL_free(again);
    }
    assert_int_equal(stats_of(sctx).stored, 1);
    SSL_free(first);
    SSL_CTX_free(sctx);
}

static void other_chains_miss(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    assert_true(admitted(sctx, &bob, inter.cert, TLS1_3_VERSION));
    /* The same leaf without its intermediate is another presented chain. */
    assert_true(admitted(sctx, &alice, NULL, TLS1_3_VERSION));
    struct tlsx_vcache_stats st = stats_of(sctx);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.entries, 3);
    SSL_CTX_free(sctx);
}

static void failures_are_not_stored(void **state)
{
    (void)state;
    struct tw_err err;
    struct tlsx_policy *p = tlsx_policy_new(&err);
    assert_int_equal(tlsx_policy_add(p, "cn:alice", &err), 0);
    SSL_CTX *sctx = server_ctx(NULL, p, TLSX_CRL_EXPIRED_REJECT);
    for (int round = 0; round < 2; round++) {
        assert_false(admitted(sctx, &bob, inter.cert, TLS1_3_VERSION)); /* policy */
        assert_int_equal(tp_server_reason, TLSX_R_POLICY);
        assert_false(admitted(sctx, &expired, inter.cert, TLS1_3_VERSION));
        assert_int_equal(tp_server_reason, TLSX_R_EXPIRED);
        assert_false(admitted(sctx, &stranger, other_root.cert, TLS1_2_VERSION));
        assert_false(admitted(sctx, &stranger, NULL, TLS1_3_VERSION));
        assert_false(admitted(sctx, &noeku, inter.cert, TLS1_3_VERSION));
        assert_int_equal(tp_server_reason, TLSX_R_WRONG_EKU);
    }
    struct tlsx_vcache_stats st = stats_of(sctx);
    assert_int_equal(st.stored, 0);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.hits, 0);
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    assert_int_equal(stats_of(sctx).hits, 1);
    SSL_CTX_free(sctx);
    tlsx_policy_free(p);
}

/* alice's public key with bob's private scalar: matches alice's certificate as far as a key
 * check goes, but cannot produce alice's signatures. */
static EVP_PKEY *impostor_key(void)
{
    unsigned char pub[133];
    size_t publen = 0;
    BIGNUM *priv = NULL;
    assert_int_equal(EVP_PKEY_get_octet_string_param(alice.key, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                                     sizeof(pub), &publen),
                     1);
    assert_int_equal(EVP_PKEY_get_bn_param(bob.key, OSSL_PKEY_PARAM_PRIV_KEY, &priv), 1);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    assert_non_null(bld);
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    assert_int_equal(EVP_PKEY_fromdata_init(pctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(pctx, &key, EVP_PKEY_KEYPAIR, params), 1);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    return key;
}

static void cached_chain_with_wrong_key_refused(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(NULL, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    EVP_PKEY *fake = impostor_key();
    int versions[] = {TLS1_3_VERSION, TLS1_2_VERSION};
    for (int v = 0; v < 2; v++) {
        uint64_t hits = stats_of(sctx).hits;
        SSL_CTX *cctx = client_ctx(alice.cert, fake, inter.cert, versions[v]);
        assert_int_equal(tp_handshake(sctx, cctx, NULL, NULL, NULL, NULL), 0);
        SSL_CTX_free(cctx);
        /* The chain came from the cache; libssl refused the CertificateVerify regardless. */
        assert_int_equal(stats_of(sctx).hits, hits + 1);
        assert_int_not_equal(tp_server_reason, TLSX_R_OK);
    }
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_2_VERSION));
    EVP_PKEY_free(fake);
    SSL_CTX_free(sctx);
}

/* The CRL set of a ctx never changes once built (a reload builds new ctxs, with new caches);
 * this test breaks that rule on purpose to show a hit still consults the set. */
/* client-ca holding only the root, the client sending its intermediate (with the
 * intermediate's CRL, from a CA outside client-ca): the second handshake hits, and a hit
 * still finds the client revoked by a newer CRL. */
static void root_only_layout_hits(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        int version = v ? TLS1_3_VERSION : TLS1_2_VERSION;
        struct tlsx_crl_set *crls = crl_set(&inter, NULL, 0, 3600);
        SSL_CTX *sctx = server_ctx_cas(root_path, crls, NULL, TLSX_CRL_EXPIRED_REJECT);
        assert_true(admitted(sctx, &alice, inter.cert, version));
        assert_true(admitted(sctx, &alice, inter.cert, version));
        assert_true(admitted(sctx, &bob, inter.cert, version));
        assert_int_equal(stats_of(sctx).hits, 1);
        assert_int_equal(stats_of(sctx).stored, 2);
        assert_false(admitted(sctx, &alice, NULL, version)); /* no intermediate: unknown CA */
        long serial = tp_serial(&alice);
        struct tlsx_crl_set *revoking = crl_set(&inter, &serial, 1, 3600);
        SSL_CTX *gen2 = server_ctx_cas(root_path, revoking, NULL, TLSX_CRL_EXPIRED_REJECT);
        assert_true(admitted(gen2, &bob, inter.cert, version));
        assert_true(admitted(gen2, &bob, inter.cert, version));
        assert_int_equal(stats_of(gen2).hits, 1);
        assert_false(admitted(gen2, &alice, inter.cert, version));
        SSL_CTX_free(gen2);
        SSL_CTX_free(sctx);
        tlsx_crl_set_free(revoking);
        tlsx_crl_set_free(crls);
    }
}

static void hit_still_looks_up_revocation(void **state)
{
    (void)state;
    struct tlsx_crl_set *crls = crl_set(&inter, NULL, 0, 3600);
    SSL_CTX *sctx = server_ctx(crls, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    assert_true(admitted(sctx, &alice, inter.cert, TLS1_3_VERSION));
    assert_int_equal(stats_of(sctx).hits, 1);
    assert_int_equal(stats_of(sctx).stored, 1);
    long serial = tp_serial(&alice);
    X509_CRL *crl = tp_crl(&inter, &serial, 1, 3600);
    unsigned char *der = NULL;
    int len = i2d_X509_CRL(crl, &der);
    struct tw_err err;
    assert_int_equal(tlsx_crl_set_add_mem(crls, der, (size_t)len, "newer", &err), 0);
    OPENSSL_free(der);
    X509_CRL_free(crl);
    /* The hit is not used: the chain goes through X509_verify_cert again (stored anew, as
     * the ctx's own store still holds the old CRL) and the post-handshake check refuses. */
    SSL *s = connect_as(sctx, &alice, inter.cert, TLS1_3_VERSION);
    assert_non_null(s);
    assert_int_equal(stats_of(sctx).stored, 2);
    struct tlsx_peer_rules rules = {.crls = crls};
    struct tlsx_peer_result res;
    assert_int_equal(tlsx_peer_check(s, &rules, &res, NULL, &err), -1);
    assert_int_equal(res.reason, TLSX_R_REVOKED);
    SSL_free(s);
    SSL_CTX_free(sctx);
    tlsx_crl_set_free(crls);
}

static void expired_crl_policy_on_hit(void **state)
{
    (void)state;
    struct tlsx_crl_set *crls = crl_set(&inter, NULL, 0, -10);
    SSL_CTX *warn = server_ctx(crls, NULL, TLSX_CRL_EXPIRED_WARN);
    for (int i = 0; i < 2; i++) {
        SSL *s = connect_as(warn, &alice, inter.cert, TLS1_3_VERSION);
        assert_non_null(s);
        struct tlsx_ssl_note *note = tlsx_ssl_note_get(s, false);
        assert_non_null(note);
        assert_true(note->crl_expired_ignored);
        SSL_free(s);
    }
    assert_int_equal(stats_of(warn).hits, 1);
    SSL_CTX *reject = server_ctx(crls, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_false(admitted(reject, &alice, inter.cert, TLS1_3_VERSION));
    assert_int_equal(tp_server_reason, TLSX_R_CRL_EXPIRED);
    assert_int_equal(stats_of(reject).stored, 0);
    SSL_CTX_free(warn);
    SSL_CTX_free(reject);
    tlsx_crl_set_free(crls);
}

static void reload_starts_empty(void **state)
{
    (void)state;
    SSL_CTX *old = server_ctx(NULL, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_true(admitted(old, &alice, inter.cert, TLS1_3_VERSION));
    SSL_CTX *fresh = server_ctx(NULL, NULL, TLSX_CRL_EXPIRED_REJECT);
    assert_true(admitted(fresh, &alice, inter.cert, TLS1_3_VERSION));
    assert_int_equal(stats_of(fresh).hits, 0);
    assert_int_equal(stats_of(fresh).stored, 1);
    SSL_CTX_free(old);
    SSL_CTX_free(fresh);
}

/* ---- the LRU itself ---- */

static STACK_OF(X509) *stack_of(X509 *a, X509 *b, X509 *c)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    X509 *all[] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (all[i] != NULL)
            sk_X509_push(sk, all[i]);
    return sk;
}

static const struct tlsx_vcache_gen gen1 = {
    .store = (void *)0x1000, .crls = (void *)0x2000, .client_cas = (void *)0x3000, .depth = 8};

static void key_covers_generation_and_chain(void **state)
{
    (void)state;
    struct tlsx_vcache *c = tlsx_vcache_new(0);
    STACK_OF(X509) *presented = stack_of(alice.cert, inter.cert, NULL);
    STACK_OF(X509) *verified = stack_of(alice.cert, inter.cert, root.cert);
    unsigned char k1[TLSX_VCACHE_KEY_LEN], k2[TLSX_VCACHE_KEY_LEN];
    assert_int_equal(tlsx_vcache_key(c, &gen1, presented, k1), 0);
    assert_int_equal(tlsx_vcache_put(c, k1, presented, verified), 0);
    int64_t now = (int64_t)time(NULL);
    STACK_OF(X509) *chain = NULL;
    assert_int_equal(tlsx_vcache_get(c, k1, presented, now, &chain), 1);
    assert_ptr_equal(sk_X509_value(chain, 0), alice.cert); /* the presented objects */
    assert_ptr_equal(sk_X509_value(chain, 1), inter.cert);
    assert_ptr_equal(sk_X509_value(chain, 2), root.cert); /* the store's, referenced */
    sk_X509_pop_free(chain, X509_free);

    struct tlsx_vcache_gen g[4] = {gen1, gen1, gen1, gen1};
    g[0].crls = (void *)0x2001;  /* new CRL set */
    g[1].store = (void *)0x1001; /* new trust store */
    g[2].client_cas = NULL;
    g[3].flags = X509_V_FLAG_CRL_CHECK;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tlsx_vcache_key(c, &g[i], presented, k2), 0);
        assert_memory_not_equal(k1, k2, sizeof(k1));
        assert_int_equal(tlsx_vcache_get(c, k2, presented, now, &chain), 0);
        assert_null(chain);
    }
    STACK_OF(X509) *swapped = stack_of(inter.cert, alice.cert, NULL);
    assert_int_equal(tlsx_vcache_key(c, &gen1, swapped, k2), 0);
    assert_memory_not_equal(k1, k2, sizeof(k1));
    STACK_OF(X509) *empty = sk_X509_new_null();
    assert_int_equal(tlsx_vcache_key(c, &gen1, empty, k2), -1);
    struct tlsx_vcache_stats st;
    tlsx_vcache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 4);
    sk_X509_free(empty);
    sk_X509_free(swapped);
    sk_X509_free(presented);
    sk_X509_free(verified);
    tlsx_vcache_free(c);
}

static void entry_outside_validity_dropped(void **state)
{
    (void)state;
    struct tlsx_vcache *c = tlsx_vcache_new(0);
    STACK_OF(X509) *presented = stack_of(alice.cert, inter.cert, NULL);
    STACK_OF(X509) *verified = stack_of(alice.cert, inter.cert, root.cert);
    unsigned char key[TLSX_VCACHE_KEY_LEN];
    assert_int_equal(tlsx_vcache_key(c, &gen1, presented, key), 0);
    /* alice expires first (one day), the CAs later (ten): the window ends with alice. */
    int64_t alice_end = tlsx_asn1_time_unix(X509_get0_notAfter(alice.cert));
    int64_t latest_start = tlsx_asn1_time_unix(X509_get0_notBefore(alice.cert));
    int64_t probes[] = {alice_end + 1, latest_start - 1};
    STACK_OF(X509) *chain = NULL;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(tlsx_vcache_put(c, key, presented, verified), 0);
        assert_int_equal(tlsx_vcache_get(c, key, presented, alice_end, &chain), 1);
        sk_X509_pop_free(chain, X509_free);
        assert_int_equal(tlsx_vcache_get(c, key, presented, probes[i], &chain), 0);
        assert_null(chain);
        /* Dropped, not just skipped. */
        assert_int_equal(tlsx_vcache_get(c, key, presented, alice_end, &chain), 0);
    }
    struct tlsx_vcache_stats st;
    tlsx_vcache_stats(c, &st);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.entries, 0);
    sk_X509_free(presented);
    sk_X509_free(verified);
    tlsx_vcache_free(c);
}

static void bounded_least_recently_used_goes(void **state)
{
    (void)state;
    struct tlsx_vcache *c = tlsx_vcache_new(2);
    STACK_OF(X509) *presented = stack_of(alice.cert, inter.cert, NULL);
    STACK_OF(X509) *verified = stack_of(alice.cert, inter.cert, root.cert);
    unsigned char k[4][TLSX_VCACHE_KEY_LEN];
    for (int i = 0; i < 4; i++)
        memset(k[i], 0x11 * (i + 1), sizeof(k[i]));
    /* Same bucket for 0 and 2 on purpose (low bytes equal): chains within a bucket. */
    k[2][0] = k[0][0], k[2][1] = k[0][1], k[2][2] = k[0][2], k[2][3] = k[0][3];
    int64_t now = (int64_t)time(NULL);
    STACK_OF(X509) *chain = NULL;
    assert_int_equal(tlsx_vcache_put(c, k[0], presented, verified), 0);
    assert_int_equal(tlsx_vcache_put(c, k[1], presented, verified), 0);
    assert_int_equal(tlsx_vcache_get(c, k[0], presented, now, &chain), 1); /* 0 now newest */
    sk_X509_pop_free(chain, X509_free);
    assert_int_equal(tlsx_vcache_put(c, k[2], presented, verified), 0); /* evicts 1 */
    assert_int_equal(tlsx_vcache_get(c, k[1], presented, now, &chain), 0);
    assert_int_equal(tlsx_vcache_put(c, k[3], presented, verified), 0); /* evicts 0 */
    assert_int_equal(tlsx_vcache_get(c, k[0], presented, now, &chain), 0);
    for (int i = 2; i < 4; i++) {
        assert_int_equal(tlsx_vcache_get(c, k[i], presented, now, &chain), 1);
        sk_X509_pop_free(chain, X509_free);
    }
    /* Storing a key again replaces its entry. */
    assert_int_equal(tlsx_vcache_put(c, k[3], presented, verified), 0);
    struct tlsx_vcache_stats st;
    tlsx_vcache_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.evicted, 2);
    /* A chain longer than the limit is not stored. */
    STACK_OF(X509) *longer = sk_X509_new_null();
    for (int i = 0; i <= TLSX_VCACHE_MAX_CHAIN; i++)
        sk_X509_push(longer, inter.cert);
    assert_int_equal(tlsx_vcache_put(c, k[0], presented, longer), -1);
    assert_int_equal(tlsx_vcache_key(c, &gen1, longer, k[0]), -1);
    sk_X509_free(longer);
    sk_X509_free(presented);
    sk_X509_free(verified);
    tlsx_vcache_free(c);
    tlsx_vcache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_handshake_hits_and_reads_the_same),
        cmocka_unit_test(other_chains_miss),
        cmocka_unit_test(failures_are_not_stored),
        cmocka_unit_test(cached_chain_with_wrong_key_refused),
        cmocka_unit_test(hit_still_looks_up_revocation),
        cmocka_unit_test(root_only_layout_hits),
        cmocka_unit_test(expired_crl_policy_on_hit),
        cmocka_unit_test(reload_starts_empty),
        cmocka_unit_test(key_covers_generation_and_chain),
        cmocka_unit_test(entry_outside_validity_dropped),
        cmocka_unit_test(bounded_least_recently_used_goes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
