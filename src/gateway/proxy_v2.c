/* PROXY protocol v2 header builder (haproxy proxy-protocol.txt §2.2). See proxy_v2.h. */
#include "gateway/proxy_v2.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>

#define U16_MAX 65535u

uint8_t gw_proxy_v2_client_flags(const struct gw_pp2_ssl *ssl)
{
    /* PP2_CLIENT_CERT_CONN: a certificate was presented on this connection;
     * PP2_CLIENT_CERT_SESS: one was presented in the session this connection belongs to. */
    uint8_t flags = GW_PP2_CLIENT_SSL;
    if (ssl->has_cert) {
        flags |= GW_PP2_CLIENT_CERT_SESS;
        if (!ssl->resumed)
            flags |= GW_PP2_CLIENT_CERT_CONN;
    }
    return flags;
}

static int put_u8(struct tw_buf *b, uint8_t v, struct tw_err *err)
{
    return tw_buf_append(b, &v, 1, err);
}

static int put_u16(struct tw_buf *b, size_t v, struct tw_err *err)
{
    uint8_t be[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return tw_buf_append(b, be, 2, err);
}

static int put_tlv(struct tw_buf *b, uint8_t type, const void *v, size_t len, const char *what,
                   struct tw_err *err)
{
    TW_ENSURE(len <= U16_MAX, err, TW_ERR_CONFIG,
              "PROXY v2 %s of %zu bytes does not fit a TLV (at most %u)", what, len, U16_MAX);
    TW_GUARD(put_u8(b, type, err));
    TW_GUARD(put_u16(b, len, err));
    return tw_buf_append(b, v, len, err);
}

static int put_str_tlv(struct tw_buf *b, uint8_t type, const char *s, const char *what,
                       struct tw_err *err)
{
    if (s == NULL)
        return 0;
    return put_tlv(b, type, s, strlen(s), what, err);
}

/* Address block and family byte. Mixed families: the IPv4 side becomes IPv4-mapped IPv6. */
static void to_v6(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &s6->sin6_addr, 16);
        *port = s6->sin6_port;
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memset(addr, 0, 10);
        addr[10] = addr[11] = 0xff;
        memcpy(addr + 12, &s4->sin_addr, 4);
        *port = s4->sin_port;
    }
}

static bool is_inet(const struct sockaddr *sa)
{
    return sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

static int put_addresses(struct tw_buf *b, const struct sockaddr *src, const struct sockaddr *dst,
                         uint8_t *family, struct tw_err *err)
{
    if (!is_inet(src) || !is_inet(dst)) {
        *family = GW_PP2_AF_UNSPEC;
        return 0;
    }
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src;
        const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
        *family = GW_PP2_TCP4;
        TW_GUARD(tw_buf_append(b, &s->sin_addr, 4, err));
        TW_GUARD(tw_buf_append(b, &d->sin_addr, 4, err));
        TW_GUARD(tw_buf_append(b, &s->sin_port, 2, err)); /* already network order */
        return tw_buf_append(b, &d->sin_port, 2, err);
    }
    uint8_t sa[16], da[16];
    uint16_t sp, dp;
    to_v6(src, sa, &sp);
    to_v6(dst, da, &dp);
    *family = GW_PP2_TCP6;
    TW_GUARD(tw_buf_append(b, sa, 16, err));
    TW_GUARD(tw_buf_append(b, da, 16, err));
    TW_GUARD(tw_buf_append(b, &sp, 2, err));
    return tw_buf_append(b, &dp, 2, err);
}

/* PP2_TYPE_SSL: client flags (1 byte), verify (4 bytes, network order), then sub-TLVs. */
static int put_ssl(struct tw_buf *b, const struct gw_pp2_ssl *ssl, struct tw_err *err)
{
    struct tw_buf v;
    tw_buf_init(&v, GW_PP2_MAX_LEN);
    uint8_t verify[4] = {(uint8_t)(ssl->verify >> 24), (uint8_t)(ssl->verify >> 16),
                         (uint8_t)(ssl->verify >> 8), (uint8_t)ssl->verify};
    int rc = -1;
    if (put_u8(&v, gw_proxy_v2_client_flags(ssl), err) == 0 &&
        tw_buf_append(&v, verify, 4, err) == 0 &&
        put_str_tlv(&v, GW_PP2_SUBTYPE_SSL_VERSION, ssl->version, "TLS version", err) == 0 &&
        put_str_tlv(&v, GW_PP2_SUBTYPE_SSL_CN, ssl->cn, "client CN", err) == 0 &&
        put_str_tlv(&v, GW_PP2_SUBTYPE_SSL_CIPHER, ssl->cipher, "cipher name", err) == 0 &&
        put_str_tlv(&v, GW_PP2_SUBTYPE_SSL_SIG_ALG, ssl->sig_alg, "signature algorithm", err) ==
            0 &&
        put_str_tlv(&v, GW_PP2_SUBTYPE_SSL_KEY_ALG, ssl->key_alg, "key algorithm", err) == 0)
        rc = put_tlv(b, GW_PP2_TYPE_SSL, v.data, v.len, "SSL TLV", err);
    tw_buf_free(&v);
    return rc;
}

static int build_body(struct tw_buf *body, const struct sockaddr *src, const struct sockaddr *dst,
                      const char *authority, const struct gw_pp2_ssl *ssl, uint8_t *family,
                      struct tw_err *err)
{
    TW_GUARD(put_addresses(body, src, dst, family, err));
    TW_GUARD(put_str_tlv(body, GW_PP2_TYPE_AUTHORITY, authority, "authority (SNI)", err));
    if (ssl == NULL)
        return 0;
    TW_GUARD(put_ssl(body, ssl, err));
    if (ssl->cert_der != NULL)
        TW_GUARD(put_tlv(body, GW_PP2_TYPE_CLIENT_CERT, ssl->cert_der, ssl->cert_der_len,
                         "client certificate", err));
    return 0;
}

int gw_proxy_v2_build(struct tw_buf *out, const struct sockaddr *src, const struct sockaddr *dst,
                      const char *authority, const struct gw_pp2_ssl *ssl, struct tw_err *err)
{
    /* Built aside, so that a refusal leaves out untouched. The body limit is one byte over
     * what the length field can say, so an overflow is reported as such, not as "limit". */
    struct tw_buf body;
    tw_buf_init(&body, U16_MAX + 3 + U16_MAX);
    uint8_t family = GW_PP2_AF_UNSPEC;
    int rc = build_body(&body, src, dst, authority, ssl, &family, err);
    if (rc == 0 && body.len > U16_MAX)
        rc = tw_err_set(err, TW_ERR_CONFIG,
                        "PROXY v2 header of %zu bytes does not fit (at most %u after the "
                        "fixed part)",
                        body.len, U16_MAX);
    if (rc == 0) {
        uint8_t fixed[16];
        memcpy(fixed, GW_PP2_SIGNATURE, GW_PP2_SIGNATURE_LEN);
        fixed[12] = GW_PP2_VERSION_PROXY;
        fixed[13] = family;
        fixed[14] = (uint8_t)(body.len >> 8);
        fixed[15] = (uint8_t)body.len;
        size_t before = out->len;
        rc = tw_buf_append(out, fixed, sizeof(fixed), err);
        if (rc == 0 && body.len > 0)
            rc = tw_buf_append(out, body.data, body.len, err);
        if (rc != 0)
            out->len = before;
    }
    tw_buf_free(&body);
    return rc;
}

/* Copy s into out (cap bytes), replacing control bytes so a receiver logging it stays sane. */
static void copy_clean(char *out, size_t cap, const unsigned char *s, size_t n)
{
    if (cap == 0)
        return;
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    out[i] = '\0';
}

static void cert_cn(X509 *cert, char *cn, size_t cap)
{
    copy_clean(cn, cap, (const unsigned char *)"", 0);
    const X509_NAME *name = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0)
        return;
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0)
        return;
    copy_clean(cn, cap, utf8, (size_t)n);
    OPENSSL_free(utf8);
}

/* "RSA2048", "EC256", "ED25519", else the key type's short name with its size. */
static void key_alg(X509 *cert, char *out, size_t cap)
{
    const EVP_PKEY *pk = X509_get0_pubkey(cert);
    if (pk == NULL) {
        snprintf(out, cap, "unknown");
        return;
    }
    int id = EVP_PKEY_get_base_id(pk);
    int bits = EVP_PKEY_get_bits(pk);
    if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS)
        snprintf(out, cap, "%s%d", id == EVP_PKEY_RSA ? "RSA" : "RSA-PSS", bits);
    else if (id == EVP_PKEY_EC)
        snprintf(out, cap, "EC%d", bits);
    else if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448)
        snprintf(out, cap, "%s", id == EVP_PKEY_ED25519 ? "ED25519" : "ED448");
    else
        snprintf(out, cap, "%s%d", id != NID_undef ? OBJ_nid2sn(id) : "unknown", bits);
}

void gw_proxy_v2_cert_strings(X509 *cert, char *cn, size_t cn_cap, char *sig_alg,
                              size_t sig_cap, char *key_alg_out, size_t key_cap)
{
    cert_cn(cert, cn, cn_cap);
    int nid = X509_get_signature_nid(cert);
    snprintf(sig_alg, sig_cap, "%s", nid != NID_undef ? OBJ_nid2sn(nid) : "unknown");
    key_alg(cert, key_alg_out, key_cap);
}

int gw_proxy_v2_ssl_from(SSL *ssl, bool with_cert, struct gw_pp2_ssl *out,
                         struct gw_pp2_strings *strs, struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    memset(strs, 0, sizeof(*strs));
    out->version = SSL_get_version(ssl);
    const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
    out->cipher = cipher != NULL ? SSL_CIPHER_get_name(cipher) : NULL;
    out->resumed = SSL_session_reused(ssl) == 1;
    out->verify = (uint32_t)SSL_get_verify_result(ssl);
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL)
        return 0;
    out->has_cert = true;
    gw_proxy_v2_cert_strings(peer, strs->cn, sizeof(strs->cn), strs->sig_alg,
                             sizeof(strs->sig_alg), strs->key_alg, sizeof(strs->key_alg));
    out->cn = strs->cn;
    out->sig_alg = strs->sig_alg;
    out->key_alg = strs->key_alg;
    if (!with_cert)
        return 0;
    int n = i2d_X509(peer, &strs->der);
    if (n <= 0) {
        strs->der = NULL;
        return tw_err_ossl(err, TW_ERR_INTERNAL, "cannot encode the client certificate");
    }
    out->cert_der = strs->der;
    out->cert_der_len = (size_t)n;
    return 0;
}
