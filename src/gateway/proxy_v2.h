/* TCP mode identity forwarding: the PROXY protocol v2 header (haproxy's proxy-protocol.txt,
 * section 2.2) written to the backend before any client byte.
 *
 * Layout: 12-byte signature, version 2 / command PROXY, AF_INET or AF_INET6 over STREAM with
 * the client's and the gateway's (local) address and port, then TLVs:
 *   PP2_TYPE_AUTHORITY (0x02)  the SNI host name, when known
 *   PP2_TYPE_SSL (0x20)        client flags, verify result, and sub-TLVs
 *       PP2_SUBTYPE_SSL_VERSION (0x21)  "TLSv1.3"
 *       PP2_SUBTYPE_SSL_CN      (0x22)  client certificate subject CN
 *       PP2_SUBTYPE_SSL_CIPHER  (0x23)  "TLS_AES_256_GCM_SHA384"
 *       PP2_SUBTYPE_SSL_SIG_ALG (0x24)  client certificate signature algorithm ("RSA-SHA256")
 *       PP2_SUBTYPE_SSL_KEY_ALG (0x25)  client certificate key algorithm and size ("RSA2048",
 *                                       "EC256", "ED25519")
 *   0x28                       the client certificate, DER, when asked (the gateway's
 *                              documented TLV for it; receivers ignore unknown types)
 * Every TLV length and the total header length must fit in 16 bits: a field that would not is
 * refused, never truncated. Pure logic: OpenSSL getters only, no sockets. */
#ifndef TW_GATEWAY_PROXY_V2_H
#define TW_GATEWAY_PROXY_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/buf.h"
#include "util/err.h"

/* Wire constants (proxy-protocol.txt §2.2). */
#define GW_PP2_SIGNATURE "\r\n\r\n\0\r\nQUIT\n"
#define GW_PP2_SIGNATURE_LEN 12
#define GW_PP2_VERSION_PROXY 0x21 /* version 2, command PROXY */
#define GW_PP2_AF_UNSPEC 0x00
#define GW_PP2_TCP4 0x11
#define GW_PP2_TCP6 0x21

#define GW_PP2_TYPE_AUTHORITY 0x02
#define GW_PP2_TYPE_SSL 0x20
#define GW_PP2_SUBTYPE_SSL_VERSION 0x21
#define GW_PP2_SUBTYPE_SSL_CN 0x22
#define GW_PP2_SUBTYPE_SSL_CIPHER 0x23
#define GW_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define GW_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define GW_PP2_TYPE_CLIENT_CERT 0x28

#define GW_PP2_CLIENT_SSL 0x01
#define GW_PP2_CLIENT_CERT_CONN 0x02
#define GW_PP2_CLIENT_CERT_SESS 0x04

/* Longest header this builder produces: 16 fixed bytes + 65535 bytes of addresses and TLVs. */
#define GW_PP2_MAX_LEN (16 + 65535)

/* The TLS facts to send. Strings may be NULL (their sub-TLV is left out). Borrowed. */
struct gw_pp2_ssl {
    bool has_cert;        /* the client presented a certificate (on this session) */
    bool resumed;         /* the session was resumed: CERT_SESS without CERT_CONN */
    uint32_t verify;      /* 0 = the certificate verified (X509_V_OK); else the X509_V_ERR */
    const char *version;  /* SSL_get_version */
    const char *cn;       /* subject CN of the client certificate */
    const char *cipher;   /* SSL_CIPHER_get_name */
    const char *sig_alg;  /* OBJ_nid2sn of the certificate's signature algorithm */
    const char *key_alg;  /* "RSA2048" ... */
    const uint8_t *cert_der; /* the client certificate, DER; NULL: no 0x28 TLV */
    size_t cert_der_len;
};

/* Client flags byte for ssl: CLIENT_SSL always; with a certificate, CERT_SESS, plus CERT_CONN
 * when it was presented on this connection (not resumed). */
uint8_t gw_proxy_v2_client_flags(const struct gw_pp2_ssl *ssl);

/* Append a complete PROXY v2 header to out.
 * src: the client's address (peer), dst: the gateway's local address the client connected to.
 * Both AF_INET, or both AF_INET6; when one is AF_INET and the other AF_INET6 the IPv4 one is
 * written as an IPv4-mapped IPv6 address. Any other family (or NULL) gives AF_UNSPEC with no
 * addresses (the command stays PROXY so the TLVs are still read).
 * authority: SNI host name or NULL. ssl: NULL for no PP2_TYPE_SSL TLV.
 * TW_ERR_CONFIG when a field (or the whole) would exceed 65535 bytes, naming the field;
 * TW_ERR_IO when out's limit would be exceeded. On failure nothing is appended. */
int gw_proxy_v2_build(struct tw_buf *out, const struct sockaddr *src, const struct sockaddr *dst,
                      const char *authority, const struct gw_pp2_ssl *ssl,
                      struct tw_err *err) TW_MUST_CHECK;

/* Strings describing a client certificate, for gw_pp2_ssl: subject CN as UTF-8 ("" when none;
 * control bytes replaced by '?'), signature algorithm short name ("ecdsa-with-SHA256"), and key
 * algorithm with its size. Each buffer gets a NUL-terminated string, truncated to its cap. */
void gw_proxy_v2_cert_strings(X509 *cert, char *cn, size_t cn_cap, char *sig_alg,
                              size_t sig_cap, char *key_alg, size_t key_cap);

/* Storage for the strings gw_proxy_v2_ssl_from points a gw_pp2_ssl at. */
#define GW_PP2_STR_MAX 256
struct gw_pp2_strings {
    char cn[GW_PP2_STR_MAX];
    char sig_alg[GW_PP2_STR_MAX];
    char key_alg[GW_PP2_STR_MAX];
    uint8_t *der; /* the certificate's DER when asked; release with OPENSSL_free */
};

/* Convenience for the core: fill *out from an established server-side SSL: version, cipher,
 * resumed, verify result, the peer certificate's strings (stored in *strs, which must outlive
 * *out) and, when with_cert, its DER (strs->der). 0 ok, -1 with TW_ERR_INTERNAL when encoding
 * fails (strs->der is then NULL). */
int gw_proxy_v2_ssl_from(SSL *ssl, bool with_cert, struct gw_pp2_ssl *out,
                         struct gw_pp2_strings *strs, struct tw_err *err) TW_MUST_CHECK;

#endif
