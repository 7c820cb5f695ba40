/* ALPN on the client side (RFC 7301): the service's protocols, in its preference order, and
 * the TLS rules HTTP/2 adds (RFC 9113 §9.2). The callback belongs to each service's SSL_CTX,
 * so after SNI has switched the context it is the chosen service's list that answers. */
#include "gateway/internal.h"

#include <string.h>

#include <openssl/ssl.h>

static const struct {
    const char *wire; /* length-prefixed, as ALPN carries it */
    size_t len;
} protos[] = {
    [GW_ALPN_H2] = {"\x02h2", 3},
    [GW_ALPN_HTTP11] = {"\x08http/1.1", 9},
};

/* RFC 9113 §9.2.2: HTTP/2 over TLS 1.2 needs an ephemeral key exchange and an AEAD cipher;
 * TLS 1.3 suites all qualify. The cipher is already chosen when ALPN is decided. */
static bool h2_cipher_ok(SSL *ssl)
{
    if (SSL_version(ssl) >= TLS1_3_VERSION)
        return true;
    const SSL_CIPHER *c = SSL_get_pending_cipher(ssl);
    if (c == NULL)
        return false;
    int kx = SSL_CIPHER_get_kx_nid(c);
    return SSL_CIPHER_is_aead(c) && (kx == NID_kx_ecdhe || kx == NID_kx_dhe);
}

static int select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                     const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct gw_svc *s = arg;
    for (size_t i = 0; i < s->cfg->n_alpn; i++) {
        enum gw_alpn a = s->cfg->alpn[i];
        if (a == GW_ALPN_H2 && !h2_cipher_ok(ssl))
            continue;
        /* Walk the client's list through its length prefixes (OpenSSL checked the
         * extension's framing: each entry fits in inlen). */
        for (unsigned int off = 0; off < inlen;) {
            unsigned int n = in[off];
            if (n + 1 > inlen - off)
                break;
            if (n + 1 == protos[a].len && memcmp(in + off, protos[a].wire, n + 1) == 0) {
                *out = in + off + 1;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
            off += n + 1;
        }
    }
    /* RFC 7301 §3.2: no protocol in common is a fatal no_application_protocol alert. */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void gw_alpn_install(struct gw_svc *s)
{
    if (s->cfg->n_alpn > 0)
        SSL_CTX_set_alpn_select_cb(s->ctx, select_cb, s);
}

bool gw_alpn_is_h2(SSL *ssl)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && memcmp(p, "h2", 2) == 0;
}
