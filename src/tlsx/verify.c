/* Peer checks at full and resumed handshakes. OpenSSL verifies the chain, validity and CRLs of
 * a full handshake (or a chain the ctx verified before comes from verify_cache.c); the callback
 * here adds EKU clientAuth, the expired-CRL policy and the allow-policy. A resumed session never
 * re-runs verification, so its peer is checked here against the CRLs and policy of the ctx it
 * resumes at (the current generation). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include "tlsx/internal.h"
#include "tlsx/sesscache_internal.h"
#include "tlsx/verify_cache_internal.h"

#define MAX_CA_DEPTH 8

static void serial_text(X509 *cert, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(out, cap, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
}

static int fail(struct tlsx_peer_result *res, enum tlsx_reason r, const char *fmt, ...)
    TW_PRINTF(3, 4);
static int fail(struct tlsx_peer_result *res, enum tlsx_reason r, const char *fmt, ...)
{
    res->reason = r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
    va_end(ap);
    return -1;
}

/* The CA that issued cur: one the session carries (its chain from the full handshake), or one
 * of client-ca; *in_cas says which. NULL when neither. */
static X509 *issuer_of(X509 *cur, STACK_OF(X509) *carried, STACK_OF(X509) *cas, bool *in_cas)
{
    *in_cas = false;
    for (int i = 0; i < sk_X509_num(carried); i++)
        if (X509_check_issued(sk_X509_value(carried, i), cur) == X509_V_OK)
            return sk_X509_value(carried, i);
    *in_cas = true;
    for (int i = 0; i < sk_X509_num(cas); i++)
        if (X509_check_issued(sk_X509_value(cas, i), cur) == X509_V_OK)
            return sk_X509_value(cas, i);
    return NULL;
}

static int check_validity(X509 *cert, int64_t now, struct tlsx_peer_result *res);

/* Revocation of cert and, when cas is known, of the CAs above it up to a root or the end of
 * client-ca: through the CAs the session carries (carried, may be NULL) and client-ca, each
 * still valid at now. cas NULL: leaf only. require_ca: the walk must reach a CA of cas, as
 * chain verification would have to. */
static int check_revocation(X509 *cert, STACK_OF(X509) *carried, STACK_OF(X509) *cas,
                            bool require_ca, const struct tlsx_crl_set *crls, int64_t now,
                            struct tlsx_peer_result *res)
{
    char serial[64], issuer[160];
    X509 *cur = cert;
    bool reached = false; /* a CA of cas is on the walk */
    for (int depth = 0; cur != NULL && depth < MAX_CA_DEPTH; depth++) {
        bool root = X509_check_issued(cur, cur) == X509_V_OK, in_cas = false;
        X509 *up = cas != NULL && !root ? issuer_of(cur, carried, cas, &in_cas) : NULL;
        int r = tlsx_crl_set_check(crls, cur, up);
        if (r != 0) {
            serial_text(cur, serial, sizeof(serial));
            X509_NAME_oneline(X509_get_issuer_name(cur), issuer, sizeof(issuer));
            if (r < 0)
                return fail(res, TLSX_R_OTHER, "the CRL of %s does not verify with that CA",
                            issuer);
            return fail(res, TLSX_R_REVOKED, "%s serial %s is revoked by the CRL of %s",
                        depth == 0 ? "certificate" : "issuing CA", serial, issuer);
        }
        if (depth > 0 && check_validity(cur, now, res) != 0) {
            char what[sizeof(res->detail)];
            snprintf(what, sizeof(what), "%s", res->detail);
            return fail(res, res->reason, "issuing CA: %s", what);
        }
        if (cas == NULL || root)
            break;
        if (up == NULL && require_ca && !reached) {
            X509_NAME_oneline(X509_get_issuer_name(cur), issuer, sizeof(issuer));
            return fail(res, TLSX_R_UNKNOWN_CA, "issuer %s is not in client-ca", issuer);
        }
        reached = reached || in_cas;
        cur = up == cur ? NULL : up;
    }
    return 0;
}

static int check_validity(X509 *cert, int64_t now, struct tlsx_peer_result *res)
{
    time_t t = (time_t)now;
    if (X509_cmp_time(X509_get0_notAfter(cert), &t) < 0)
        return fail(res, TLSX_R_EXPIRED, "certificate expired");
    if (X509_cmp_time(X509_get0_notBefore(cert), &t) > 0)
        return fail(res, TLSX_R_NOT_YET_VALID, "certificate not valid yet");
    return 0;
}

/* The allow-policy; *idp is built on demand (and kept for the caller). */
static int check_policy(X509 *cert, const struct tlsx_policy *policy, struct tlsx_identity **idp,
                        struct tlsx_peer_result *res)
{
    if (tlsx_policy_count(policy) == 0) {
        res->matched_rule = "";
        return 0;
    }
    if (*idp == NULL) {
        struct tw_err e;
        *idp = tlsx_identity_new(cert, &e);
        if (*idp == NULL)
            return fail(res, TLSX_R_OTHER, "%s", e.msg);
    }
    if (tlsx_policy_check(policy, *idp, &res->matched_rule))
        return 0;
    char rules[100];
    tlsx_policy_render(policy, rules, sizeof(rules));
    return fail(res, TLSX_R_POLICY, "%s matches none of: %s", (*idp)->subject, rules);
}

/* What the verify callback checks at depth 0 once the chain is fine: EKU clientAuth and the
 * allow-policy (the identity it builds is kept on ssl for tlsx_peer_check). */
static int leaf_checks(X509_STORE_CTX *x, SSL *ssl, const struct tlsx_server_state *st, X509 *leaf)
{
    /* Purpose sslclient accepts a certificate without any EKU; twoway requires clientAuth. */
    if (!(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
        !(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT)) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_INVALID_PURPOSE);
        return 0;
    }
    struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, true);
    struct tlsx_peer_result res = {0};
    struct tlsx_identity *id = note != NULL ? note->identity : NULL;
    int rc = check_policy(leaf, st->policy, &id, &res);
    if (note != NULL) {
        note->identity = id; /* kept: tlsx_peer_check hands it out without rebuilding it */
    } else {
        tlsx_identity_free(id);
    }
    if (rc != 0) {
        tlsx_ssl_note_verdict(ssl, res.reason, res.detail);
        /* OpenSSL turns this into a handshake_failure alert; there is no access_denied path. */
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

/* In-handshake verification callback of server ctxs. */
int tlsx_server_verify_cb(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    if (st == NULL)
        return ok;
    if (!ok) {
        if (X509_STORE_CTX_get_error(x) == X509_V_ERR_CRL_HAS_EXPIRED &&
            st->crl_expired == TLSX_CRL_EXPIRED_WARN) {
            struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, true);
            if (note != NULL)
                note->crl_expired_ignored = true;
            X509_STORE_CTX_set_error(x, X509_V_OK);
            return 1;
        }
        return 0;
    }
    if (X509_STORE_CTX_get_error_depth(x) != 0)
        return 1;
    return leaf_checks(x, ssl, st, X509_STORE_CTX_get_current_cert(x));
}

/* For a cached chain: what X509_verify_cert would find about revocation with the ctx's CRLs,
 * by serial lookups of the certificates it checks (the leaf; every one with CRL_CHECK_ALL).
 * 1: nothing revoked and the CRLs usable; 0: let X509_verify_cert decide and report. */
static int cached_revocation_ok(X509_STORE_CTX *x, SSL *ssl, const struct tlsx_server_state *st,
                                STACK_OF(X509) *chain, int64_t now)
{
    unsigned long flags = X509_VERIFY_PARAM_get_flags(X509_STORE_CTX_get0_param(x));
    if (!(flags & X509_V_FLAG_CRL_CHECK))
        return 1;
    int last = (flags & X509_V_FLAG_CRL_CHECK_ALL) ? sk_X509_num(chain) - 1 : 0;
    for (int i = 0; i <= last; i++) {
        X509 *cert = sk_X509_value(chain, i);
        const X509_NAME *issuer = X509_get_issuer_name(cert);
        if (!tlsx_crl_set_has_issuer(st->crls, issuer) ||
            tlsx_crl_set_cert_is_revoked(st->crls, cert))
            return 0;
        if (tlsx_crl_set_issuer_expired(st->crls, issuer, now)) {
            if (st->crl_expired != TLSX_CRL_EXPIRED_WARN)
                return 0;
            struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, true);
            if (note != NULL)
                note->crl_expired_ignored = true;
        }
    }
    return 1;
}

/* A hit: the chain as X509_verify_cert built it before, the per-connection checks, and the
 * state OpenSSL leaves behind (error, verified chain) so SSL_get_verify_result and
 * SSL_get0_verified_chain read the same as after a full verification. 1 verified, 0 refused,
 * -1 not cached (or no longer usable): verify in full. */
static int verify_cached(X509_STORE_CTX *x, SSL *ssl, const struct tlsx_server_state *st,
                         struct tlsx_vcache *cache, const unsigned char *key,
                         STACK_OF(X509) *presented)
{
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(x);
    int64_t now = (X509_VERIFY_PARAM_get_flags(param) & X509_V_FLAG_USE_CHECK_TIME)
                      ? (int64_t)X509_VERIFY_PARAM_get_time(param)
                      : (int64_t)time(NULL);
    STACK_OF(X509) *chain = NULL;
    if (!tlsx_vcache_get(cache, key, presented, now, &chain))
        return -1;
    if (!cached_revocation_ok(x, ssl, st, chain, now)) {
        sk_X509_pop_free(chain, X509_free);
        return -1;
    }
    X509_STORE_CTX_set0_verified_chain(x, chain); /* owned by x from here */
    X509_STORE_CTX_set_error(x, X509_V_OK);
    X509_STORE_CTX_set_error_depth(x, 0);
    X509_STORE_CTX_set_current_cert(x, sk_X509_value(chain, 0));
    /* The verify callback's depth-0 call (EKU, allow-policy); twoway's acts at no other. */
    X509_STORE_CTX_verify_cb cb = X509_STORE_CTX_get_verify_cb(x);
    return cb == NULL || cb(1, x) ? 1 : 0;
}

/* Certificate-verify callback of server ctxs (issue 6): a chain this ctx verified before is
 * not built and signature-checked again; see verify_cache.c for what is and is not skipped.
 * Only a successful X509_verify_cert is stored. */
int tlsx_server_cert_verify(X509_STORE_CTX *x, void *arg)
{
    struct tlsx_vcache *cache = arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    const struct tlsx_server_state *st =
        ssl != NULL ? tlsx_server_state_get(SSL_get_SSL_CTX(ssl)) : NULL;
    STACK_OF(X509) *presented = X509_STORE_CTX_get0_untrusted(x);
    unsigned char key[TLSX_VCACHE_KEY_LEN];
    bool keyed = false;
    if (cache != NULL && st != NULL && presented != NULL &&
        sk_X509_value(presented, 0) == X509_STORE_CTX_get0_cert(x)) {
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(x);
        struct tlsx_vcache_gen gen = {
            .store = X509_STORE_CTX_get0_store(x),
            .crls = st->crls,
            .client_cas = st->client_cas,
            .flags = X509_VERIFY_PARAM_get_flags(param),
            .depth = X509_VERIFY_PARAM_get_depth(param),
        };
        keyed = tlsx_vcache_key(cache, &gen, presented, key) == 0;
    }
    if (keyed) {
        int rc = verify_cached(x, ssl, st, cache, key, presented);
        if (rc >= 0)
            return rc;
    }
    int ok = X509_verify_cert(x) > 0;
    if (ok && keyed && X509_STORE_CTX_get_error(x) == X509_V_OK)
        (void)tlsx_vcache_put(cache, key, presented, X509_STORE_CTX_get0_chain(x));
    return ok;
}

int tlsx_resume_allowed(SSL *ssl, const SSL_SESSION *sess)
{
    const struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    if (st == NULL)
        return 1;
    X509 *peer = SSL_SESSION_get0_peer((SSL_SESSION *)sess);
    if (peer == NULL)
        return st->client_auth != TLSX_CLIENT_AUTH_REQUIRE;
    /* Perf (issue 6): the peer was decoded with the session; these checks only compare names
     * and serials. The policy check builds an identity only when rules exist; a cache keyed
     * by the certificate's SHA-256 and the policy generation would avoid even that. */
    /* A full handshake now would fail without a fresh CRL for the issuer; so must this. */
    int64_t now = (int64_t)time(NULL);
    const X509_NAME *issuer = X509_get_issuer_name(peer);
    if (tlsx_crl_set_count(st->crls) > 0 &&
        (!tlsx_crl_set_has_issuer(st->crls, issuer) ||
         (st->crl_expired == TLSX_CRL_EXPIRED_REJECT &&
          tlsx_crl_set_issuer_expired(st->crls, issuer, now))))
        return 0;
    /* The CAs between the peer and client-ca, kept with the session (sesschain.c). */
    STACK_OF(X509) *carried = NULL;
    if (tlsx_sess_carried_cas(ssl, sess, &carried) != 0)
        return 0;
    struct tlsx_peer_result res = {0};
    struct tlsx_identity *id = NULL;
    int ok = check_validity(peer, now, &res) == 0 &&
             check_revocation(peer, carried, st->client_cas, true, st->crls, now, &res) == 0 &&
             check_policy(peer, st->policy, &id, &res) == 0;
    tlsx_identity_free(id);
    sk_X509_pop_free(carried, X509_free);
    return ok;
}

static int check_all(X509 *peer, STACK_OF(X509) *chain, STACK_OF(X509) *cas, bool require_ca,
                     const struct tlsx_peer_rules *rules, struct tlsx_identity **idp,
                     struct tlsx_peer_result *res, struct tw_err *err)
{
    int64_t now = rules->now != 0 ? rules->now : (int64_t)time(NULL);
    if (check_validity(peer, now, res) != 0 ||
        check_revocation(peer, chain, cas, require_ca, rules->crls, now, res) != 0)
        return tw_err_set(err, TW_ERR_VERIFY, "%s", res->detail);
    if (check_policy(peer, rules->policy, idp, res) != 0)
        return tw_err_set(err, res->reason == TLSX_R_POLICY ? TW_ERR_POLICY : TW_ERR_VERIFY,
                          "%s", res->detail);
    return 0;
}

int tlsx_peer_check(SSL *ssl, const struct tlsx_peer_rules *rules, struct tlsx_peer_result *res,
                    struct tlsx_identity **id_out, struct tw_err *err)
{
    memset(res, 0, sizeof(*res));
    res->resumed = SSL_session_reused(ssl) == 1;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL) {
        fail(res, TLSX_R_NO_CERT, "the client sent no certificate");
        return tw_err_set(err, TW_ERR_VERIFY, "%s", res->detail);
    }
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        fail(res, tlsx_reason_from_verify(v), "%s", X509_verify_cert_error_string(v));
        return tw_err_set(err, TW_ERR_VERIFY, "%s", res->detail);
    }
    const struct tlsx_server_state *st = tlsx_server_state_get(SSL_get_SSL_CTX(ssl));
    struct tlsx_ssl_note *note = tlsx_ssl_note_get(ssl, false);
    struct tlsx_identity *id = NULL;
    if (note != NULL) {
        id = note->identity;
        note->identity = NULL;
    }
    /* A full handshake's chain is the one OpenSSL just verified; a resumed session's is the
     * one it carries, and must still reach a CA of this ctx. */
    STACK_OF(X509) *carried = NULL;
    if (res->resumed && tlsx_sess_carried_cas(ssl, SSL_get_session(ssl), &carried) != 0) {
        fail(res, TLSX_R_OTHER, "the session's certificate chain is unreadable");
        tlsx_identity_free(id);
        return tw_err_set(err, TW_ERR_VERIFY, "%s", res->detail);
    }
    STACK_OF(X509) *chain = res->resumed ? carried : SSL_get0_verified_chain(ssl);
    int rc = check_all(peer, chain, st != NULL ? st->client_cas : NULL,
                       res->resumed && st != NULL, rules, &id, res, err);
    sk_X509_pop_free(carried, X509_free);
    if (rc == 0 && id_out != NULL && id == NULL)
        id = tlsx_identity_new(peer, err), rc = id != NULL ? 0 : -1;
    if (rc != 0 && res->reason == TLSX_R_OK)
        res->reason = TLSX_R_OTHER;
    if (rc == 0 && id_out != NULL)
        *id_out = id, id = NULL;
    tlsx_identity_free(id);
    return rc;
}

int tlsx_peer_check_identity(X509 *cert, const struct tlsx_identity *id,
                             const struct tlsx_peer_rules *rules, struct tlsx_peer_result *res,
                             struct tw_err *err)
{
    memset(res, 0, sizeof(*res));
    if (cert == NULL) {
        fail(res, TLSX_R_NO_CERT, "no certificate");
        return tw_err_set(err, TW_ERR_VERIFY, "%s", res->detail);
    }
    struct tlsx_identity *own = (struct tlsx_identity *)id;
    int rc = check_all(cert, NULL, NULL, false, rules, &own, res, err);
    if (own != id)
        tlsx_identity_free(own);
    return rc;
}
