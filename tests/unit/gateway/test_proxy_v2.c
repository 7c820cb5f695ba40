/* PROXY v2 header: exact layout, address families, SSL TLVs, bounds, and facts from a real
 * (in-memory) mTLS handshake, full and resumed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "gateway/proxy_v2.h"

/* ---- a tiny parser over tw_cursor, mirroring what a backend does --------------------------- */

struct parsed {
    uint8_t ver_cmd, family;
    size_t len;
    uint8_t addr[36];
    size_t addr_len;
    uint8_t ssl_client;
    uint32_t verify;
    char sub[0x30][512]; /* sub-TLV strings by subtype */
    char authority[256];
    const uint8_t *cert;
    size_t cert_len;
    int have_ssl;
};

static void parse(const struct tw_buf *b, struct parsed *p)
{
    memset(p, 0, sizeof(*p));
    struct tw_cursor c;
    tw_cursor_init(&c, b->data, b->len);
    const uint8_t *sig;
    uint16_t len;
    assert_int_equal(tw_cursor_bytes(&c, 12, &sig), 0);
    assert_memory_equal(sig, GW_PP2_SIGNATURE, 12);
    assert_int_equal(tw_cursor_u8(&c, &p->ver_cmd), 0);
    assert_int_equal(tw_cursor_u8(&c, &p->family), 0);
    assert_int_equal(tw_cursor_u16be(&c, &len), 0);
    p->len = len;
    assert_int_equal(tw_cursor_remaining(&c), len);
    p->addr_len = p->family == GW_PP2_TCP4 ? 12 : p->family == GW_PP2_TCP6 ? 36 : 0;
    const uint8_t *a;
    assert_int_equal(tw_cursor_bytes(&c, p->addr_len, &a), 0);
    memcpy(p->addr, a, p->addr_len);
    while (tw_cursor_remaining(&c) > 0) {
        uint8_t type;
        uint16_t n;
        const uint8_t *v;
        assert_int_equal(tw_cursor_u8(&c, &type), 0);
        assert_int_equal(tw_cursor_u16be(&c, &n), 0);
        assert_int_equal(tw_cursor_bytes(&c, n, &v), 0);
        if (type == GW_PP2_TYPE_AUTHORITY) {
            memcpy(p->authority, v, n);
        } else if (type == GW_PP2_TYPE_CLIENT_CERT) {
            p->cert = v;
            p->cert_len = n;
        } else if (type == GW_PP2_TYPE_SSL) {
            struct tw_cursor s;
            tw_cursor_init(&s, v, n);
            p->have_ssl = 1;
            assert_int_equal(tw_cursor_u8(&s, &p->ssl_client), 0);
            assert_int_equal(tw_cursor_u32be(&s, &p->verify), 0);
            while (tw_cursor_remaining(&s) > 0) {
                uint8_t st;
                uint16_t sn;
                const uint8_t *sv;
                assert_int_equal(tw_cursor_u8(&s, &st), 0);
                assert_int_equal(tw_cursor_u16be(&s, &sn), 0);
                assert_int_equal(tw_cursor_bytes(&s, sn, &sv), 0);
                assert_true(st < 0x30 && sn < 512);
                memcpy(p->sub[st], sv, sn);
            }
        } else {
            fail_msg("unexpected TLV 0x%02x", type);
        }
    }
}

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    inet_pton(AF_INET6, ip, &s.sin6_addr);
    return s;
}

static void test_tcp4_with_ssl_tlvs(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("192.0.2.1", 50000), dst = v4("198.51.100.2", 8443);
    static const uint8_t der[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    struct gw_pp2_ssl ssl = {.has_cert = true, .verify = 0, .version = "TLSv1.3",
                             .cn = "alice", .cipher = "TLS_AES_128_GCM_SHA256",
                             .sig_alg = "ecdsa-with-SHA256", .key_alg = "EC256",
                             .cert_der = der, .cert_der_len = sizeof(der)};
    struct tw_buf b;
    struct tw_err err;
    tw_buf_init(&b, GW_PP2_MAX_LEN);
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                                       "api.example.com", &ssl, &err),
                     0);
    struct parsed p;
    parse(&b, &p);
    assert_int_equal(p.ver_cmd, 0x21);
    assert_int_equal(p.family, 0x11);
    static const uint8_t want_addr[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xc3, 0x50, 0x20, 0xfb};
    assert_memory_equal(p.addr, want_addr, 12);
    assert_string_equal(p.authority, "api.example.com");
    assert_true(p.have_ssl);
    assert_int_equal(p.ssl_client, GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_CONN |
                                       GW_PP2_CLIENT_CERT_SESS);
    assert_int_equal(p.verify, 0);
    assert_string_equal(p.sub[GW_PP2_SUBTYPE_SSL_VERSION], "TLSv1.3");
    assert_string_equal(p.sub[GW_PP2_SUBTYPE_SSL_CN], "alice");
    assert_string_equal(p.sub[GW_PP2_SUBTYPE_SSL_CIPHER], "TLS_AES_128_GCM_SHA256");
    assert_string_equal(p.sub[GW_PP2_SUBTYPE_SSL_SIG_ALG], "ecdsa-with-SHA256");
    assert_string_equal(p.sub[GW_PP2_SUBTYPE_SSL_KEY_ALG], "EC256");
    assert_int_equal(p.cert_len, sizeof(der));
    assert_memory_equal(p.cert, der, sizeof(der));
    tw_buf_free(&b);
}

static void test_families(void **state)
{
    (void)state;
    struct sockaddr_in6 s6 = v6("2001:db8::1", 1234), d6 = v6("2001:db8::2", 443);
    struct sockaddr_in d4 = v4("10.0.0.1", 443);
    struct tw_buf b;
    struct tw_err err;
    struct parsed p;
    uint8_t want[16];

    tw_buf_init(&b, GW_PP2_MAX_LEN);
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&s6, (struct sockaddr *)&d6, NULL,
                                       NULL, &err),
                     0);
    parse(&b, &p);
    assert_int_equal(p.family, GW_PP2_TCP6);
    assert_int_equal(p.len, 36);
    inet_pton(AF_INET6, "2001:db8::1", want);
    assert_memory_equal(p.addr, want, 16);
    assert_int_equal(p.addr[32] << 8 | p.addr[33], 1234);
    assert_false(p.have_ssl);
    tw_buf_free(&b);

    /* Mixed: the IPv4 side is written IPv4-mapped. */
    tw_buf_init(&b, GW_PP2_MAX_LEN);
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&s6, (struct sockaddr *)&d4, NULL,
                                       NULL, &err),
                     0);
    parse(&b, &p);
    assert_int_equal(p.family, GW_PP2_TCP6);
    inet_pton(AF_INET6, "::ffff:10.0.0.1", want);
    assert_memory_equal(p.addr + 16, want, 16);
    assert_int_equal(p.addr[34] << 8 | p.addr[35], 443);
    tw_buf_free(&b);

    /* Unknown family: AF_UNSPEC, no addresses, still PROXY. */
    struct sockaddr un = {.sa_family = AF_UNIX};
    tw_buf_init(&b, GW_PP2_MAX_LEN);
    assert_int_equal(gw_proxy_v2_build(&b, &un, (struct sockaddr *)&d4, NULL, NULL, &err), 0);
    parse(&b, &p);
    assert_int_equal(p.family, GW_PP2_AF_UNSPEC);
    assert_int_equal(p.ver_cmd, GW_PP2_VERSION_PROXY);
    assert_int_equal(p.len, 0);
    assert_int_equal(b.len, 16);
    tw_buf_free(&b);
}

static void test_client_flags(void **state)
{
    (void)state;
    struct gw_pp2_ssl s = {0};
    assert_int_equal(gw_proxy_v2_client_flags(&s), GW_PP2_CLIENT_SSL);
    s.has_cert = true;
    assert_int_equal(gw_proxy_v2_client_flags(&s),
                     GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_CONN | GW_PP2_CLIENT_CERT_SESS);
    s.resumed = true;
    assert_int_equal(gw_proxy_v2_client_flags(&s), GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_SESS);
}

static void test_bounds(void **state)
{
    (void)state;
    struct sockaddr_in src = v4("127.0.0.1", 1), dst = v4("127.0.0.1", 2);
    size_t big = 70000;
    uint8_t *blob = calloc(1, big + 1);
    memset(blob, 'a', big);
    struct tw_buf b;
    struct tw_err err;
    tw_buf_init(&b, GW_PP2_MAX_LEN);
    assert_int_equal(tw_buf_append(&b, "x", 1, &err), 0);

    struct gw_pp2_ssl ssl = {.has_cert = true, .cert_der = blob, .cert_der_len = big};
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL,
                                       &ssl, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "client certificate"));
    assert_int_equal(b.len, 1); /* nothing appended */

    blob[65536] = '\0'; /* a 65536-byte CN */
    struct gw_pp2_ssl ssl2 = {.cn = (const char *)blob};
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL,
                                       &ssl2, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_int_equal(b.len, 1);

    /* Each TLV fits, the whole does not. */
    struct gw_pp2_ssl ssl3 = {.cert_der = blob, .cert_der_len = 60000};
    blob[10000] = '\0';
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst,
                                       (const char *)blob, &ssl3, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "header"));
    assert_int_equal(b.len, 1);

    /* The largest that fits does. */
    tw_buf_free(&b);
    tw_buf_init(&b, GW_PP2_MAX_LEN + 1);
    assert_int_equal(tw_buf_append(&b, "x", 1, &err), 0);
    struct gw_pp2_ssl ssl4 = {.cert_der = blob, .cert_der_len = 65535 - 12 - 8 - 3};
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL,
                                       &ssl4, &err),
                     0);
    assert_int_equal(b.len, 1 + 16 + 65535);
    tw_buf_free(&b);

    /* out's own limit: TW_ERR_IO, nothing appended. */
    tw_buf_init(&b, 20);
    assert_int_equal(gw_proxy_v2_build(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst, NULL,
                                       NULL, &err),
                     -1);
    assert_int_equal(err.code, TW_ERR_IO);
    assert_int_equal(b.len, 0);
    tw_buf_free(&b);
    free(blob);
}

/* ---- certificates and a real handshake ------------------------------------------------------ */

static X509 *self_signed(EVP_PKEY *key, const char *cn)
{
    X509 *c = X509_new();
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
    X509_gmtime_adj(X509_getm_notBefore(c), -60);
    X509_gmtime_adj(X509_getm_notAfter(c), 3600);
    if (cn != NULL)
        X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
                                   (const unsigned char *)cn, -1, -1, 0);
    else
        X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "O", MBSTRING_UTF8,
                                   (const unsigned char *)"no cn", -1, -1, 0);
    X509_set_issuer_name(c, X509_get_subject_name(c));
    X509_set_pubkey(c, key);
    assert_true(X509_sign(c, key, EVP_sha256()) > 0);
    return c;
}

static void test_cert_strings(void **state)
{
    (void)state;
    char cn[64], sig[64], alg[64];
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    X509 *c = self_signed(ec, "alice\x01x");
    gw_proxy_v2_cert_strings(c, cn, sizeof(cn), sig, sizeof(sig), alg, sizeof(alg));
    assert_string_equal(cn, "alice?x");
    assert_string_equal(sig, "ecdsa-with-SHA256");
    assert_string_equal(alg, "EC256");
    X509_free(c);
    c = self_signed(ec, NULL);
    gw_proxy_v2_cert_strings(c, cn, sizeof(cn), sig, sizeof(sig), alg, sizeof(alg));
    assert_string_equal(cn, "");
    X509_free(c);
    c = self_signed(ec, "a-long-common-name");
    gw_proxy_v2_cert_strings(c, cn, 5, sig, sizeof(sig), alg, sizeof(alg));
    assert_string_equal(cn, "a-lo");
    X509_free(c);
    EVP_PKEY_free(ec);

    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    c = self_signed(rsa, "bob");
    gw_proxy_v2_cert_strings(c, cn, sizeof(cn), sig, sizeof(sig), alg, sizeof(alg));
    assert_string_equal(sig, "RSA-SHA256");
    assert_string_equal(alg, "RSA2048");
    X509_free(c);
    EVP_PKEY_free(rsa);

    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    c = X509_new();
    X509_set_version(c, 2);
    X509_set_pubkey(c, ed);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(c), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"ed", -1, -1, 0);
    X509_set_issuer_name(c, X509_get_subject_name(c));
    X509_gmtime_adj(X509_getm_notBefore(c), 0);
    X509_gmtime_adj(X509_getm_notAfter(c), 60);
    assert_true(X509_sign(c, ed, NULL) > 0);
    gw_proxy_v2_cert_strings(c, cn, sizeof(cn), sig, sizeof(sig), alg, sizeof(alg));
    assert_string_equal(alg, "ED25519");
    assert_string_equal(sig, "ED25519");
    X509_free(c);
    EVP_PKEY_free(ed);
}

static int pump(SSL *client, SSL *server)
{
    for (int i = 0; i < 100; i++) {
        int c = SSL_do_handshake(client);
        int s = SSL_do_handshake(server);
        if (c == 1 && s == 1)
            return 0;
    }
    return -1;
}

static void handshake(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *sess, SSL **c_out, SSL **s_out)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    BIO *cb, *sb;
    assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
    SSL_set_bio(c, cb, cb);
    SSL_set_bio(s, sb, sb);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    if (sess != NULL)
        SSL_set_session(c, sess);
    assert_int_equal(pump(c, s), 0);
    *c_out = c;
    *s_out = s;
}

static int accept_any(int ok, X509_STORE_CTX *ctx)
{
    (void)ok;
    (void)ctx;
    return 1; /* self-signed test peers; verification itself is tlsx's business */
}

static void test_ssl_from_real_handshake(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *scert = self_signed(key, "server"), *ccert = self_signed(key, "client-alice");
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(sctx, scert);
    SSL_CTX_use_PrivateKey(sctx, key);
    SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
    SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"t", 1);
    SSL_CTX_use_certificate(cctx, ccert);
    SSL_CTX_use_PrivateKey(cctx, key);
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION); /* resumable without ticket reads */

    SSL *c, *s;
    handshake(cctx, sctx, NULL, &c, &s);
    struct gw_pp2_ssl info;
    struct gw_pp2_strings strs;
    struct tw_err err;
    assert_int_equal(gw_proxy_v2_ssl_from(s, true, &info, &strs, &err), 0);
    assert_string_equal(info.version, "TLSv1.2");
    assert_non_null(info.cipher);
    assert_true(info.has_cert);
    assert_false(info.resumed);
    assert_string_equal(info.cn, "client-alice");
    assert_string_equal(info.key_alg, "EC256");
    unsigned char *der = NULL;
    int der_len = i2d_X509(ccert, &der);
    assert_int_equal(info.cert_der_len, der_len);
    assert_memory_equal(info.cert_der, der, (size_t)der_len);
    OPENSSL_free(der);
    OPENSSL_free(strs.der);

    SSL_SESSION *sess = SSL_get1_session(c);
    /* A session is resumable only after a clean close. */
    SSL_shutdown(c);
    SSL_shutdown(s);
    SSL_free(c);
    SSL_free(s);
    handshake(cctx, sctx, sess, &c, &s);
    assert_int_equal(gw_proxy_v2_ssl_from(s, false, &info, &strs, &err), 0);
    assert_true(info.resumed);
    assert_true(info.has_cert);
    assert_null(info.cert_der);
    assert_int_equal(gw_proxy_v2_client_flags(&info),
                     GW_PP2_CLIENT_SSL | GW_PP2_CLIENT_CERT_SESS);
    SSL_SESSION_free(sess);
    SSL_free(c);
    SSL_free(s);

    /* No client certificate at all. */
    SSL_CTX_set_verify(sctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX *bare = SSL_CTX_new(TLS_client_method());
    handshake(bare, sctx, NULL, &c, &s);
    assert_int_equal(gw_proxy_v2_ssl_from(s, true, &info, &strs, &err), 0);
    assert_false(info.has_cert);
    assert_null(info.cn);
    assert_null(strs.der);
    assert_int_equal(gw_proxy_v2_client_flags(&info), GW_PP2_CLIENT_SSL);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(bare);

    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    X509_free(scert);
    X509_free(ccert);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp4_with_ssl_tlvs),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_client_flags),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_cert_strings),
        cmocka_unit_test(test_ssl_from_real_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
