/* TLS for `ca serve`: its own certificate (issued by the CA it serves, kept in DIR/serve/), and
 * a server context where client certificates are optional. Enrollment authenticates with a
 * token, so a client without a certificate must get through the handshake; re-enrollment
 * needs a certificate that verified, which the handler checks (RFC 7030 §3.3.2) and refuses
 * with a plain 403 instead of a bare TLS alert. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "est/internal.h"
#include "tlsx/tlsx.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define SERVE_LIFETIME ((int64_t)90 * 86400)

static int verify_ex_index = -1;

static int is_wildcard(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ||
           strcmp(host, "[::]") == 0 || strcmp(host, "*") == 0;
}

/* host (brackets dropped), localhost, 127.0.0.1, ::1 and the extra SANs. */
static int wanted_sans(const char *host, const struct pki_sans *extra, struct pki_sans *out,
                       struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    char bare[256];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        snprintf(bare, sizeof(bare), "%.*s", (int)(n - 2), host + 1);
    else
        snprintf(bare, sizeof(bare), "%s", host);
    if (!is_wildcard(bare)) {
        unsigned char addr[16];
        int ip = inet_pton(AF_INET, bare, addr) == 1 || inet_pton(AF_INET6, bare, addr) == 1;
        TW_GUARD(pki_sans_add(out, ip ? PKI_SAN_IP : PKI_SAN_DNS, bare, err));
    }
    TW_GUARD(pki_sans_add(out, PKI_SAN_DNS, "localhost", err));
    TW_GUARD(pki_sans_add(out, PKI_SAN_IP, "127.0.0.1", err));
    TW_GUARD(pki_sans_add(out, PKI_SAN_IP, "::1", err));
    for (size_t i = 0; extra != NULL && i < extra->count; i++) {
        const struct pki_san *s = &extra->items[i];
        TW_ENSURE(s->type == PKI_SAN_DNS || s->type == PKI_SAN_IP, err, TW_ERR_USAGE,
                  "--san %s:%s: the server certificate takes dns: and ip: SANs only",
                  pki_san_type_name(s->type), s->value);
        TW_GUARD(pki_sans_add(out, s->type, s->value, err));
    }
    return 0;
}

static int has_san(X509 *cert, const struct pki_san *s)
{
    int ok =
        s->type == PKI_SAN_IP
            ? X509_check_ip_asc(cert, s->value, 0) == 1
            : X509_check_host(cert, s->value, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1;
    ERR_clear_error();
    return ok;
}

/* 1 when the files hold a usable certificate for sans; 0 means issue a new one. */
static int reusable(struct pki_ca *ca, const char *cert_path, const char *key_path,
                    const struct pki_sans *sans)
{
    if (!fs_exists(cert_path) || !fs_exists(key_path))
        return 0;
    struct tw_err ignored;
    TW_AUTO(X509) *cert = NULL;
    TW_AUTO(EVP_PKEY) *key = NULL;
    if (tlsx_cert_chain_load(cert_path, &cert, NULL, &ignored) != 0 ||
        tlsx_key_load(key_path, &key, &ignored) != 0)
        return 0;
    int64_t nb = 0, na = 0, now = (int64_t)time(NULL);
    int ok = pki_key_matches_cert(key, cert) &&
             X509_verify(cert, X509_get0_pubkey(pki_ca_intermediate_cert(ca))) == 1 &&
             pki_time_to_unix(X509_get0_notBefore(cert), &nb, &ignored) == 0 &&
             pki_time_to_unix(X509_get0_notAfter(cert), &na, &ignored) == 0 &&
             now < na - (na - nb) / 3;
    ERR_clear_error();
    for (size_t i = 0; ok && i < sans->count; i++)
        ok = has_san(cert, &sans->items[i]);
    return ok;
}

static int issue(struct pki_ca *ca, const struct pki_sans *sans, const char *cert_path,
                 const char *key_path, struct tw_err *err)
{
    TW_AUTO(EVP_PKEY) *key = pki_key_generate(PKI_KEY_EC_P256, err);
    if (key == NULL)
        return -1;
    struct pki_cert_request req = {.profile = PKI_PROFILE_SERVER,
                                   .cn = EST_SERVE_NAME,
                                   .sans = sans,
                                   .pubkey = key,
                                   .lifetime = SERVE_LIFETIME};
    TW_AUTO(X509) *cert = NULL;
    TW_GUARD(pki_ca_issue(ca, &req, &cert, err));
    char *kpem = NULL;
    size_t klen = 0;
    TW_GUARD(pki_key_to_pem(key, NULL, &kpem, &klen, err));
    /* Key first: a crash between the two writes leaves a pair that does not match, which the
     * next start detects (reusable) and replaces. */
    int rc = fs_write_atomic(key_path, kpem, klen, 0600, err);
    pki_pem_free(kpem, klen);
    TW_GUARD(rc);
    size_t clen = 0, ilen = 0;
    TW_AUTO(charp) *cpem = pki_cert_to_pem(cert, &clen, err);
    TW_AUTO(charp) *ipem = pki_cert_to_pem(pki_ca_intermediate_cert(ca), &ilen, err);
    TW_ENSURE(cpem != NULL && ipem != NULL, err, TW_ERR_INTERNAL, "cannot encode certificates");
    TW_AUTO(charp) *both = malloc(clen + ilen);
    TW_ENSURE(both != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(both, cpem, clen);
    memcpy(both + clen, ipem, ilen);
    return fs_write_atomic(cert_path, both, clen + ilen, 0644, err);
}

int est_server_cert_ensure(struct pki_ca *ca, const char *host, const struct pki_sans *extra,
                           char *cert_path, char *key_path, int *issued, struct tw_err *err)
{
    if (issued != NULL)
        *issued = 0;
    char dir[PATH_MAX];
    TW_GUARD(fs_path_join(dir, sizeof(dir), pki_ca_dir(ca), EST_SERVE_DIR, err));
    TW_GUARD(fs_mkdir_private(dir, err));
    TW_GUARD(fs_path_join(cert_path, PATH_MAX, dir, "server.crt", err));
    TW_GUARD(fs_path_join(key_path, PATH_MAX, dir, "server.key", err));
    struct pki_sans sans;
    TW_GUARD(wanted_sans(host, extra, &sans, err));
    if (reusable(ca, cert_path, key_path, &sans))
        return 0;
    TW_GUARD(issue(ca, &sans, cert_path, key_path, err));
    if (issued != NULL)
        *issued = 1;
    return 0;
}

/* Record the first verification failure and carry on: the handler decides what it means. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl != NULL && SSL_get_ex_data(ssl, verify_ex_index) == NULL) {
        intptr_t code = X509_STORE_CTX_get_error(x);
        SSL_set_ex_data(ssl, verify_ex_index, (void *)(code != 0 ? code : -1));
    }
    return 1;
}

SSL_CTX *est_server_ctx_new(struct pki_ca *ca, const char *cert_path, const char *key_path,
                            struct tw_err *err)
{
    if (verify_ex_index < 0)
        verify_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    TW_ENSURE_PTR(verify_ex_index >= 0, err, TW_ERR_INTERNAL, "no SSL ex_data index");
    char chain[PATH_MAX];
    TW_GUARD_PTR(fs_path_join(chain, sizeof(chain), pki_ca_dir(ca), "ca/chain.pem", err));
    struct tlsx_server_opts o;
    tlsx_server_opts_init(&o);
    o.name = "ca serve";
    o.cert_file = cert_path;
    o.key_file = key_path;
    o.client_ca_file = chain;
    o.client_auth = TLSX_CLIENT_AUTH_OPTIONAL;
    SSL_CTX *ctx = tlsx_server_ctx_new(&o, err);
    if (ctx == NULL)
        return NULL;
    /* Any purpose at the TLS layer: a server certificate may renew itself too. The handler
     * requires a client or server certificate from this CA's inventory. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_ANY) != 1) {
        SSL_CTX_free(ctx);
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot relax the TLS client purpose");
        return NULL;
    }
    return ctx;
}

/* OpenSSL calls this once a fatal alert is written to the socket. evhttp answers the failed
 * handshake by freeing the connection, whose bufferevent closes the descriptor it finds in
 * the SSL's socket BIO: with the client's next bytes still unread, that close would send a
 * RST. So the socket leaves the TLS layer here (the BIO forgets the descriptor and the free
 * closes nothing) for a lingering close; evhttp's own shutdown(SHUT_WR) on it is harmless.
 * Only during the handshake, when no request exists that evhttp could still answer. The
 * integration test's raw client would see a reset again if a libevent release closed the
 * descriptor another way. */
static void linger_info_cb(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_ALERT) || !(where & SSL_CB_WRITE) || (ret >> 8) != SSL3_AL_FATAL ||
        SSL_is_init_finished(ssl))
        return;
    struct est_server *srv = SSL_get_app_data(ssl);
    BIO *bio = SSL_get_wbio(ssl);
    int fd = SSL_get_wfd(ssl);
    if (srv == NULL || bio == NULL || fd < 0 || bio != SSL_get_rbio(ssl))
        return;
    if (tw_linger_start(&srv->lingers, srv->base, fd, NULL, NULL) != NULL)
        (void)BIO_set_fd(bio, -1, BIO_NOCLOSE);
}

void est_tls_linger_on_alert(SSL *ssl, struct est_server *srv)
{
    SSL_set_app_data(ssl, srv);
    SSL_set_info_callback(ssl, linger_info_cb);
}

X509 *est_peer_cert(struct est_req *r, long *verify_error)
{
    *verify_error = X509_V_ERR_UNSPECIFIED;
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509 *peer = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
    if (peer == NULL)
        return NULL;
    intptr_t recorded = (intptr_t)SSL_get_ex_data(ssl, verify_ex_index);
    if (recorded != 0)
        *verify_error = recorded > 0 ? (long)recorded : X509_V_ERR_UNSPECIFIED;
    else
        *verify_error = SSL_get_verify_result(ssl);
    return peer;
}
