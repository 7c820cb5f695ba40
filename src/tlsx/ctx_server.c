/* The server SSL_CTX: the gateway's and EST server's side of the two-way handshake. Secure
 * defaults are set here once; options can only narrow them. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tlsx/internal.h"
#include "tlsx/verify_cache_internal.h"
#include "util/cleanup.h"

#define DEFAULT_VERIFY_DEPTH 8
#define MAX_TICKETS 10

void tlsx_server_opts_init(struct tlsx_server_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->num_tickets = 1;
}

/* Load client-ca into the verify store and the CertificateRequest's CA names. */
static int client_cas(SSL_CTX *ctx, const struct tlsx_server_opts *o, struct tlsx_server_state *st,
                      const char *what, struct tw_err *err)
{
    TW_ENSURE(o->client_ca_file != NULL, err, TW_ERR_CONFIG,
              "%s: client-ca is required to verify client certificates", what);
    TW_GUARD(tlsx_certs_load(o->client_ca_file, &st->client_cas, err));
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    TW_ENSURE_OSSL(names != NULL, err, TW_ERR_INTERNAL, "out of memory");
    for (int i = 0; i < sk_X509_num(st->client_cas); i++) {
        X509 *ca = sk_X509_value(st->client_cas, i);
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        if (X509_STORE_add_cert(store, ca) != 1 || name == NULL || !sk_X509_NAME_push(names, name)) {
            X509_NAME_free(name);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            return tw_err_ossl(err, TW_ERR_CONFIG, "%s: cannot use CA from %s", what,
                               o->client_ca_file);
        }
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
    return 0;
}

/* 1 when every CA in cas chains up to a self-signed root within cas. */
static int chains_complete(STACK_OF(X509) *cas)
{
    for (int i = 0; i < sk_X509_num(cas); i++) {
        X509 *ca = sk_X509_value(cas, i);
        int found = X509_check_issued(ca, ca) == X509_V_OK;
        for (int j = 0; j < sk_X509_num(cas) && !found; j++)
            found = j != i && X509_check_issued(sk_X509_value(cas, j), ca) == X509_V_OK;
        if (!found)
            return 0;
    }
    return 1;
}

/* CRL_CHECK for the leaf when any CRL is configured; CRL_CHECK_ALL when every CA in
 * client-ca has one (otherwise the CAs without a CRL would make every chain fail) and every
 * chain ends at a root in client-ca (an intermediate trusted on its own has no issuer to
 * check its own revocation with). */
static int revocation(SSL_CTX *ctx, const struct tlsx_server_opts *o, struct tlsx_server_state *st,
                      struct tw_err *err)
{
    if (tlsx_crl_set_count(o->crls) == 0)
        return 0;
    TW_GUARD(tlsx_crl_set_verify(o->crls, st->client_cas, err));
    TW_GUARD(tlsx_crl_set_to_store(o->crls, SSL_CTX_get_cert_store(ctx), err));
    unsigned long flags = X509_V_FLAG_CRL_CHECK;
    int all = chains_complete(st->client_cas);
    for (int i = 0; i < sk_X509_num(st->client_cas) && all; i++)
        all = tlsx_crl_set_has_issuer(o->crls, X509_get_subject_name(sk_X509_value(st->client_cas, i)));
    if (all)
        flags |= X509_V_FLAG_CRL_CHECK_ALL;
    TW_GUARD_OSSL(X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), flags), err,
                  TW_ERR_INTERNAL, "cannot enable CRL checks");
    tlsx_crl_set_up_ref(o->crls);
    st->crls = o->crls;
    return 0;
}

static int verification(SSL_CTX *ctx, const struct tlsx_server_opts *o,
                        struct tlsx_server_state *st, const char *what, struct tw_err *err)
{
    if (o->client_auth == TLSX_CLIENT_AUTH_NONE) {
        TW_ENSURE(tlsx_policy_count(o->policy) == 0 && tlsx_crl_set_count(o->crls) == 0, err,
                  TW_ERR_CONFIG, "%s: allow rules and CRLs need client certificates", what);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    TW_ENSURE(o->verify_depth >= 0 && o->verify_depth <= 100, err, TW_ERR_CONFIG,
              "%s: verify depth %d out of range", what, o->verify_depth);
    TW_GUARD(client_cas(ctx, o, st, what, err));
    int mode = SSL_VERIFY_PEER;
    if (o->client_auth == TLSX_CLIENT_AUTH_REQUIRE)
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, tlsx_server_verify_cb);
    /* Perf (issue 6): chains verified before skip chain building and signatures. */
    TW_GUARD(tlsx_vcache_install(ctx, err));
    SSL_CTX_set_verify_depth(ctx, o->verify_depth > 0 ? o->verify_depth : DEFAULT_VERIFY_DEPTH);
    TW_GUARD_OSSL(SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT), err, TW_ERR_INTERNAL,
                  "cannot set purpose sslclient");
    /* An intermediate given without its root is a trust anchor on its own. Only then: with
     * partial chains OpenSSL stops at the first trusted CA, and CRL_CHECK_ALL could not check
     * that CA against its issuer's CRL. */
    if (!chains_complete(st->client_cas))
        TW_GUARD_OSSL(X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx),
                                                  X509_V_FLAG_PARTIAL_CHAIN),
                      err, TW_ERR_INTERNAL, "cannot set verify flags");
    TW_GUARD(revocation(ctx, o, st, err));
    if (o->policy != NULL) {
        tlsx_policy_up_ref(o->policy);
        st->policy = o->policy;
    }
    return 0;
}

/* Session id context: explicit, or a digest of what the ctx accepts, so identical instances
 * (same name, certificate, client CAs) resume each other's sessions and services do not. */
static int session_id_context(SSL_CTX *ctx, const struct tlsx_server_opts *o,
                              const struct tlsx_server_state *st, const char *what,
                              struct tw_err *err)
{
    unsigned char sid[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (o->session_id_context != NULL) {
        len = (unsigned int)strlen(o->session_id_context);
        TW_ENSURE(len > 0 && len <= SSL_MAX_SID_CTX_LENGTH, err, TW_ERR_CONFIG,
                  "%s: session id context must be 1..%d bytes", what, SSL_MAX_SID_CTX_LENGTH);
        memcpy(sid, o->session_id_context, len);
    } else {
        TW_AUTO(EVP_MD_CTX) *md = EVP_MD_CTX_new();
        TW_ENSURE_OSSL(md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1, err,
                       TW_ERR_INTERNAL, "SHA-256 unavailable");
        EVP_DigestUpdate(md, what, strlen(what) + 1);
        X509 *cert = SSL_CTX_get0_certificate(ctx);
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;
        if (cert != NULL && X509_digest(cert, EVP_sha256(), digest, &dlen) == 1)
            EVP_DigestUpdate(md, digest, dlen);
        for (int i = 0; i < sk_X509_num(st->client_cas); i++)
            if (X509_digest(sk_X509_value(st->client_cas, i), EVP_sha256(), digest, &dlen) == 1)
                EVP_DigestUpdate(md, digest, dlen);
        TW_GUARD_OSSL(EVP_DigestFinal_ex(md, sid, &len), err, TW_ERR_INTERNAL, "SHA-256 failed");
    }
    TW_GUARD_OSSL(SSL_CTX_set_session_id_context(ctx, sid, len), err, TW_ERR_INTERNAL,
                  "cannot set the session id context");
    return 0;
}

/* Resumption: in-memory keys give a bounded session store shared by a process's ctxs
 * (sesscache.c); keys from a file give stateless tickets. */
static int sessions(SSL_CTX *ctx, const struct tlsx_server_opts *o, struct tlsx_server_state *st,
                    const char *what, struct tw_err *err)
{
    TW_GUARD(session_id_context(ctx, o, st, what, err));
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (o->ticket_keys == NULL) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(ctx, 0);
        return 0;
    }
    TW_ENSURE(o->num_tickets >= 0 && o->num_tickets <= MAX_TICKETS, err, TW_ERR_CONFIG,
              "%s: num-tickets must be 0..%d", what, MAX_TICKETS);
    TW_ENSURE(o->session_timeout >= 0, err, TW_ERR_CONFIG, "%s: negative session timeout", what);
    tlsx_ticket_keys_up_ref(o->ticket_keys);
    st->tickets = o->ticket_keys;
    /* Perf (issue 6): one process (in-memory keys) resumes from a session store, which
     * needs no session encode/decode per handshake; keys from a file keep stateless tickets
     * so several instances resume each other's sessions. */
    if (tlsx_ticket_keys_store(o->ticket_keys) != NULL)
        TW_GUARD(tlsx_sess_store_install(ctx, err));
    else
        TW_GUARD(tlsx_tickets_install(ctx, err));
    /* Perf (issue 6): each TLS 1.3 ticket costs a session encode; one is enough for a client
     * that reconnects serially. */
    SSL_CTX_set_num_tickets(ctx, (size_t)o->num_tickets);
    int64_t timeout =
        o->session_timeout > 0 ? o->session_timeout : tlsx_ticket_keys_period(o->ticket_keys);
    SSL_CTX_set_timeout(ctx, (long)timeout);
    return 0;
}

static int build(SSL_CTX *ctx, const struct tlsx_server_opts *o, struct tw_err *err)
{
    const char *what = o->name != NULL ? o->name : "server";
    struct tlsx_server_state *st = calloc(1, sizeof(*st));
    TW_ENSURE(st != NULL, err, TW_ERR_INTERNAL, "out of memory");
    st->crl_expired = o->crl_expired;
    st->client_auth = o->client_auth;
    TW_GUARD(tlsx_server_state_attach(ctx, st, err)); /* freed with ctx from here on */

    TW_GUARD(tlsx_ctx_set_versions(ctx, o->min_version, o->max_version, err));
    TW_GUARD(tlsx_ctx_set_ciphers(ctx, o->ciphers, o->ciphersuites, o->groups, err));
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* A `ciphers` list naming DHE suites needs DH parameters, or OpenSSL silently skips those
     * suites. Automatic parameters are well-known groups sized to the certificate key's
     * strength; the default list has no DHE suite, so this changes nothing unless asked for. */
    TW_GUARD_OSSL((int)SSL_CTX_set_dh_auto(ctx, 1), err, TW_ERR_INTERNAL,
                  "cannot enable DH parameters");
    TW_GUARD(tlsx_ctx_use_cert(ctx, what, o->cert_file, o->key_file, o->cert_file ? NULL : o->cert,
                               o->cert_file ? NULL : o->chain, o->key_file ? NULL : o->key, err));
    char why[200];
    TW_ENSURE(tlsx_ctx_ciphers_fit_key(ctx, o->min_version, why, sizeof(why)) == 0, err,
              TW_ERR_CONFIG, "%s: ciphers '%.100s': %s", what,
              o->ciphers != NULL ? o->ciphers : "(default)", why);
    TW_GUARD(verification(ctx, o, st, what, err));
    TW_GUARD(sessions(ctx, o, st, what, err));
    return 0;
}

SSL_CTX *tlsx_server_ctx_new(const struct tlsx_server_opts *opts, struct tw_err *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot create a TLS context");
        return NULL;
    }
    if (build(ctx, opts, err) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}
