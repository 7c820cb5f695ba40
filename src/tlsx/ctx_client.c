/* The client SSL_CTX: tunnel, doctor, bench, enroll/renew and the gateway's backend TLS. The
 * server is verified by chain and name (SANs only, never the subject CN). */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "tlsx/internal.h"

void tlsx_client_opts_init(struct tlsx_client_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
}

int tlsx_client_ctx_setup(SSL_CTX *ctx, const struct tlsx_client_opts *o, struct tw_err *err)
{
    TW_GUARD(tlsx_ctx_set_versions(ctx, o->min_version, o->max_version, err));
    TW_GUARD(tlsx_ctx_set_ciphers(ctx, o->ciphers, o->ciphersuites, o->groups, err));
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    if (o->ca_file != NULL) {
        STACK_OF(X509) *cas = NULL;
        TW_GUARD(tlsx_certs_load(o->ca_file, &cas, err));
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        int ok = 1;
        for (int i = 0; ok && i < sk_X509_num(cas); i++)
            ok = X509_STORE_add_cert(store, sk_X509_value(cas, i)) == 1;
        sk_X509_pop_free(cas, X509_free);
        TW_ENSURE_OSSL(ok, err, TW_ERR_CONFIG, "%s: cannot use CA certificate", o->ca_file);
        /* As on the server: a trusted intermediate is an anchor on its own. */
        X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
    } else {
        TW_GUARD_OSSL(SSL_CTX_set_default_verify_paths(ctx), err, TW_ERR_CONFIG,
                      "cannot load the system CA certificates");
    }
    int has_files = o->cert_file != NULL || o->key_file != NULL;
    if (has_files || o->cert != NULL || o->key != NULL)
        TW_GUARD(tlsx_ctx_use_cert(ctx, "client certificate", o->cert_file, o->key_file,
                                   o->cert_file ? NULL : o->cert, o->cert_file ? NULL : o->chain,
                                   o->key_file ? NULL : o->key, err));
    SSL_CTX_set_verify(ctx, o->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (!o->insecure_any_purpose)
        TW_GUARD_OSSL(SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER), err, TW_ERR_INTERNAL,
                      "cannot set purpose sslserver");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    return 0;
}

SSL_CTX *tlsx_client_ctx_new(const struct tlsx_client_opts *opts, struct tw_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot create a TLS context");
        return NULL;
    }
    if (tlsx_client_ctx_setup(ctx, opts, err) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The name check on param; *dns is true for a DNS name (which goes out as SNI too), false for
 * an address; name (cap bytes) gets the name without the brackets of "[::1]". */
static int expect_name(X509_VERIFY_PARAM *param, const char *server_name, char *name,
                       size_t cap, bool *dns, struct tw_err *err)
{
    size_t len = strlen(server_name);
    TW_ENSURE(len > 0 && len < cap, err, TW_ERR_USAGE, "server name '%s' is invalid",
              server_name);
    /* "[::1]" as written in URLs names the address ::1. */
    if (server_name[0] == '[' && server_name[len - 1] == ']') {
        memcpy(name, server_name + 1, len - 2);
        name[len - 2] = '\0';
    } else {
        memcpy(name, server_name, len + 1);
    }
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT |
                                               X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    unsigned char addr[16];
    *dns = !(inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1);
    if (!*dns) {
        TW_GUARD_OSSL(X509_VERIFY_PARAM_set1_ip_asc(param, name), err, TW_ERR_USAGE,
                      "server address '%s' is invalid", name);
        return 0;
    }
    TW_GUARD_OSSL(X509_VERIFY_PARAM_set1_host(param, name, 0), err, TW_ERR_USAGE,
                  "server name '%s' is invalid", name);
    return 0;
}

int tlsx_client_ssl_setup(SSL *ssl, const char *server_name, struct tw_err *err)
{
    if (server_name == NULL)
        return 0;
    char name[TLSX_MAX_HOSTNAME + 3];
    bool dns = false;
    TW_GUARD(expect_name(SSL_get0_param(ssl), server_name, name, sizeof(name), &dns, err));
    /* RFC 6066 §3: literal addresses are not sent as SNI. */
    if (dns)
        TW_GUARD_OSSL((int)SSL_set_tlsext_host_name(ssl, name), err, TW_ERR_USAGE,
                      "server name '%s' cannot be sent as SNI", name);
    return 0;
}

int tlsx_client_ctx_expect_name(SSL_CTX *ctx, const char *server_name, struct tw_err *err)
{
    char name[TLSX_MAX_HOSTNAME + 3];
    bool dns = false;
    return expect_name(SSL_CTX_get0_param(ctx), server_name, name, sizeof(name), &dns, err);
}
