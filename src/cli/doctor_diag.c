/* The diagnosis table: each row matches a set of facts and says, in plain words, what went
 * wrong and how to fix it. Rows are tried in order; every match is reported, the first fatal
 * one is the headline. Rows marked fallback only apply when no fatal row matched. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "cli/doctor.h"

typedef bool (*match_fn)(const struct doctor_facts *f);
typedef void (*explain_fn)(const struct doctor_facts *f, struct doctor_finding *out);

struct row {
    const char *code;
    bool fatal;
    bool fallback;
    match_fn match;
    explain_fn explain;
    const char *unless; /* skipped when this code was already reported */
};

/* Findings quote certificate names of any length: cut them to fit rather than fail. */
TW_PRINTF(3, 4)
static void put(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

#define SAY(out, ...) put((out)->problem, sizeof((out)->problem), __VA_ARGS__)
#define FIX(out, ...) put((out)->fix, sizeof((out)->fix), __VA_ARGS__)

/* ---- helpers over the facts --------------------------------------------------------------- */

static const struct tlsx_probe *P(const struct doctor_facts *f)
{
    return f->online ? f->probe : NULL;
}

static bool tcp_ok(const struct doctor_facts *f)
{
    return P(f) != NULL && P(f)->tcp_ok;
}

static bool refused_by_server(const struct doctor_facts *f)
{
    return tcp_ok(f) && P(f)->server_hello && !P(f)->accepted;
}

static bool alert_is(const struct doctor_facts *f, int alert)
{
    return P(f) != NULL && P(f)->alert_received == alert;
}

static bool cert_sent(const struct doctor_facts *f)
{
    return P(f) != NULL && P(f)->client_cert_sent;
}

static bool ca_listed(const struct tlsx_probe *p, const char *name)
{
    for (size_t i = 0; i < p->nca_names; i++)
        if (strcmp(p->ca_names[i], name) == 0)
            return true;
    return false;
}

/* The CA names of a CertificateRequest, joined for a sentence. */
static const char *ca_list_text(const struct tlsx_probe *p, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < p->nca_names && used + 1 < cap; i++) {
        int n = snprintf(buf + used, cap - used, "%s%s", i > 0 ? "; " : "", p->ca_names[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (p->nca_names == 0)
        snprintf(buf, cap, "(the server named no CA)");
    return buf;
}

/* Did any certificate we sent name (as subject or issuer) a CA the server listed? */
static bool sent_chain_listed(const struct doctor_facts *f)
{
    const struct tlsx_probe *p = P(f);
    if (p->nca_names == 0 || f->mine == NULL)
        return true;
    if (ca_listed(p, f->mine->leaf.issuer))
        return true;
    for (size_t i = 0; i + 1 < p->client_certs_sent && i < f->mine->nchain; i++)
        if (ca_listed(p, f->mine->chain[i].issuer) || ca_listed(p, f->mine->chain[i].subject))
            return true;
    return false;
}

static const char *server_leaf_sans(const struct tlsx_probe *p)
{
    return p->nserver_chain > 0 && p->server_chain[0].sans[0] != '\0' ? p->server_chain[0].sans
                                                                      : "no names at all";
}

static bool chain_err_in(const struct doctor_facts *f, const long *errs, size_t n)
{
    if (!tcp_ok(f) || !P(f)->server_cert_seen)
        return false;
    for (size_t i = 0; i < n; i++)
        if (P(f)->chain_err == errs[i])
            return true;
    return false;
}

/* The first certificate of the server's chain outside its validity window, or NULL. */
static const struct tlsx_cert_info *server_out_of_date(const struct doctor_facts *f, bool expired)
{
    if (!tcp_ok(f))
        return NULL;
    for (size_t i = 0; i < P(f)->nserver_chain; i++) {
        const struct tlsx_cert_info *c = &P(f)->server_chain[i];
        if (expired ? c->not_after < f->now : c->not_before > f->now)
            return c;
    }
    return NULL;
}

/* ---- rows: reaching the server ----------------------------------------------------------- */

static bool m_not_listening(const struct doctor_facts *f)
{
    return f->online && !f->probe->tcp_ok && f->probe->connect_errno == ECONNREFUSED;
}

static void e_not_listening(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "nothing is listening on %s (connection refused)", f->probe->address);
    FIX(o, "start the server, or check the host and port (%s)", f->target);
}

static bool m_unreachable(const struct doctor_facts *f)
{
    return f->online && !f->probe->tcp_ok && f->probe->connect_errno != ECONNREFUSED;
}

static void e_unreachable(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "cannot reach %s: %s", f->probe->address, strerror(f->probe->connect_errno));
    FIX(o, "check the host, the port and any firewall in between");
}

static bool m_not_tls(const struct doctor_facts *f)
{
    return tcp_ok(f) && f->probe->reason == TLSX_R_NOT_TLS;
}

static void e_not_tls(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "%s accepted the connection but does not speak TLS (%s)", f->probe->address,
        f->probe->detail);
    FIX(o, "check the port: this looks like a plaintext service; point doctor at the TLS port "
           "(the gateway's listen address)");
}

static bool m_protocol(const struct doctor_facts *f)
{
    return tcp_ok(f) && f->probe->reason == TLSX_R_PROTOCOL;
}

static void e_protocol(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o,
        "the server and this client have no TLS version in common (%s); twoway speaks "
        "TLS 1.2 and 1.3",
        f->probe->detail);
    FIX(o, "enable TLS 1.2 or 1.3 on the server (gateway: tls-min / tls-max), or change "
           "--tls-min / --tls-max");
}

static bool m_cipher(const struct doctor_facts *f)
{
    return tcp_ok(f) &&
           (f->probe->reason == TLSX_R_CIPHER || alert_is(f, SSL_AD_INSUFFICIENT_SECURITY));
}

static void e_cipher(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o,
        "the server and this client have no cipher suite, key exchange group or signature "
        "algorithm in common (%s)",
        f->probe->detail);
    FIX(o, "allow an ECDHE suite with AES-GCM or ChaCha20-Poly1305 on the server (gateway: "
           "ciphers, ciphersuites, groups), or change --ciphers");
}

/* ---- rows: our own certificate ----------------------------------------------------------- */

static bool m_key_mismatch(const struct doctor_facts *f)
{
    return f->mine != NULL && f->mine->key_checked && !f->mine->key_match;
}

static void e_key_mismatch(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "the private key %s does not belong to the certificate %s%s", f->key_file, f->cert_file,
        f->online ? " (the probe ran without a client certificate)" : "");
    FIX(o, "use the key that was created together with this certificate (twoway ca issue "
           "writes NAME.key next to NAME.crt)");
}

static bool m_mine_expired(const struct doctor_facts *f)
{
    return f->mine != NULL && f->mine->validity == TLSX_R_EXPIRED;
}

static void e_mine_expired(const struct doctor_facts *f, struct doctor_finding *o)
{
    char t[32];
    bool leaf = strcmp(f->mine->validity_subject, f->mine->leaf.subject) == 0;
    SAY(o, "%s %s expired on %s", leaf ? "your certificate" : "the CA certificate",
        f->mine->validity_subject, doctor_time(f->mine->validity_time, t, sizeof(t)));
    FIX(o, leaf ? "renew it (twoway renew), or issue a new one (twoway ca issue client NAME)"
                : "the CA must be renewed and your certificate reissued under it");
}

static bool m_mine_not_yet(const struct doctor_facts *f)
{
    return f->mine != NULL && f->mine->validity == TLSX_R_NOT_YET_VALID;
}

static void e_mine_not_yet(const struct doctor_facts *f, struct doctor_finding *o)
{
    char t[32];
    SAY(o, "the certificate %s is not valid until %s", f->mine->validity_subject,
        doctor_time(f->mine->validity_time, t, sizeof(t)));
    FIX(o, "check the clock of this machine and of the CA; or wait until then");
}

static bool m_mine_eku(const struct doctor_facts *f)
{
    return f->mine != NULL && !f->mine->eku_ok;
}

static void e_mine_eku(const struct doctor_facts *f, struct doctor_finding *o)
{
    bool client = f->mine->role == TLSX_ROLE_CLIENT;
    const struct tlsx_cert_info *l = &f->mine->leaf;
    SAY(o, "the certificate %s lacks the extended key usage %s (it has: %s)", l->subject,
        client ? "clientAuth" : "serverAuth",
        !l->has_eku     ? "no extended key usage at all"
        : l->eku_client ? "clientAuth"
        : l->eku_server ? "serverAuth"
                        : "neither clientAuth nor serverAuth");
    FIX(o, client ? "issue a client certificate: twoway ca issue client NAME"
                  : "issue a server certificate: twoway ca issue server NAME");
}

/* Online: the server refused us, lists the CAs it accepts, and the intermediate between our
 * leaf and one of them is in --ca but was not sent. */
static bool m_mine_missing_int_online(const struct doctor_facts *f)
{
    if (!refused_by_server(f) || !cert_sent(f) || f->mine == NULL || sent_chain_listed(f))
        return false;
    return f->mine->missing_intermediate && (ca_listed(P(f), f->mine->intermediate_issuer) ||
                                             ca_listed(P(f), f->mine->intermediate_subject));
}

static void e_mine_missing_int_online(const struct doctor_facts *f, struct doctor_finding *o)
{
    char cas[400];
    SAY(o,
        "you sent only your own certificate; its issuer %s is an intermediate CA the "
        "server does not have (it accepts: %s)",
        f->mine->intermediate_subject, ca_list_text(P(f), cas, sizeof(cas)));
    FIX(o, "send the chain: use a --cert file holding your certificate then the intermediate "
           "(twoway ca issue writes NAME.chain.pem)");
}

static bool m_mine_not_listed(const struct doctor_facts *f)
{
    return refused_by_server(f) && cert_sent(f) && !sent_chain_listed(f);
}

static void e_mine_not_listed(const struct doctor_facts *f, struct doctor_finding *o)
{
    char cas[400];
    SAY(o,
        "your certificate was issued by %s, a CA the server does not accept (it accepts: "
        "%s)",
        f->mine->leaf.issuer, ca_list_text(P(f), cas, sizeof(cas)));
    FIX(o, "use a certificate from one of those CAs, or ask the server's operator to add your "
           "CA to its client-ca");
}

static bool m_mine_missing_int_offline(const struct doctor_facts *f)
{
    return !f->online && f->mine != NULL && f->mine->missing_intermediate;
}

static void e_mine_missing_int_offline(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o,
        "the file holds only the certificate, not its intermediate CA %s: it verified only "
        "because --ca has it; peers that trust just the root will refuse it",
        f->mine->intermediate_subject);
    FIX(o, "use a file with the certificate then the intermediate (NAME.chain.pem)");
}

static bool offline_chain_err(const struct doctor_facts *f, bool issuer_missing)
{
    if (f->online || f->mine == NULL || !f->mine->chain_checked || f->mine->chain_err == X509_V_OK)
        return false;
    bool missing = f->mine->chain_err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
                   f->mine->chain_err == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT;
    return missing == issuer_missing;
}

static bool m_mine_issuer_unknown(const struct doctor_facts *f)
{
    return offline_chain_err(f, true);
}

static void e_mine_issuer_unknown(const struct doctor_facts *f, struct doctor_finding *o)
{
    if (f->mine->nchain > 0) {
        const char *top = f->mine->chain[f->mine->nchain - 1].issuer;
        SAY(o,
            "the chain in the file ends at %s, which is not in %s: the certificate comes "
            "from a CA that --ca does not trust",
            top, f->ca_file);
        FIX(o, "pass the CA that issued it with --ca (the CA's chain.pem or root.crt)");
        return;
    }
    const char *top = f->mine->leaf.issuer;
    SAY(o,
        "the chain does not reach a CA in %s: the issuer %s is neither in the certificate "
        "file nor in --ca",
        f->ca_file, top);
    FIX(o,
        "if %s is an intermediate CA, append it to the certificate file (NAME.chain.pem); "
        "otherwise the certificate comes from a CA that %s does not hold",
        top, f->ca_file);
}

static bool m_mine_chain(const struct doctor_facts *f)
{
    return offline_chain_err(f, false);
}

static void e_mine_chain(const struct doctor_facts *f, struct doctor_finding *o)
{
    enum tlsx_reason r = tlsx_reason_from_verify(f->mine->chain_err);
    SAY(o, "%s: %s (%s, at %s)", r == TLSX_R_REVOKED ? "revoked" : "the chain does not verify",
        tlsx_reason_text(r), X509_verify_cert_error_string(f->mine->chain_err),
        f->mine->chain_err_subject[0] != '\0' ? f->mine->chain_err_subject : "the chain");
    FIX(o, r == TLSX_R_REVOKED ? "get a new certificate (twoway ca issue client NAME, or "
                                 "twoway enroll)"
                               : "check that --ca holds the CA that issued this certificate");
}

/* ---- rows: the server's verdict on us ----------------------------------------------------- */

static bool m_no_cert(const struct doctor_facts *f)
{
    const struct tlsx_probe *p = P(f);
    return p != NULL && p->server_hello && p->cert_requested && !p->client_cert_sent;
}

static void e_no_cert(const struct doctor_facts *f, struct doctor_finding *o)
{
    const struct tlsx_probe *p = P(f);
    char cas[400];
    if (f->cert_file == NULL)
        SAY(o, "the server asks for a client certificate and none was sent%s",
            p->accepted ? " (it let the connection through, but it is not two-way TLS)" : "");
    else if (f->key_unusable)
        SAY(o, "no client certificate was sent: the key does not match the certificate");
    else
        SAY(o, "your certificate was not sent: its key type matches none of the signature "
               "algorithms the server accepts");
    FIX(o, "pass --cert FILE --key FILE with a certificate from: %s",
        ca_list_text(p, cas, sizeof(cas)));
}

static bool m_revoked(const struct doctor_facts *f)
{
    return alert_is(f, SSL_AD_CERTIFICATE_REVOKED);
}

static void e_revoked(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "the server says your certificate %s is revoked (%s)",
        f->mine != NULL ? f->mine->leaf.subject : "", tlsx_reason_text(TLSX_R_REVOKED));
    FIX(o, "get a new certificate (twoway ca issue client NAME, or twoway enroll)");
}

static bool m_server_says_expired(const struct doctor_facts *f)
{
    return alert_is(f, SSL_AD_CERTIFICATE_EXPIRED);
}

static void e_server_says_expired(const struct doctor_facts *f, struct doctor_finding *o)
{
    (void)f;
    SAY(o, "the server says your certificate has expired (or is not valid yet by its clock)");
    FIX(o, "renew it (twoway renew); if it looks valid here, compare the two machines' clocks");
}

static bool m_server_says_eku(const struct doctor_facts *f)
{
    return alert_is(f, SSL_AD_UNSUPPORTED_CERTIFICATE);
}

static void e_server_says_eku(const struct doctor_facts *f, struct doctor_finding *o)
{
    (void)f;
    SAY(o, "the server refused your certificate's usage: it needs extended key usage "
           "clientAuth");
    FIX(o, "issue a client certificate: twoway ca issue client NAME");
}

static bool m_policy(const struct doctor_facts *f)
{
    return cert_sent(f) && (alert_is(f, SSL_AD_ACCESS_DENIED) ||
                            (alert_is(f, SSL_AD_HANDSHAKE_FAILURE) && P(f)->server_hello));
}

/* Worded as the gateway logs it (tlsx_reason_text), so both sides of the story match. The
 * twoway gateway refuses a policy denial with handshake_failure: OpenSSL's alert for an
 * application verification failure. */
static void e_policy(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "the server rejected your certificate %s by policy: %s",
        f->mine != NULL ? f->mine->leaf.subject : "", tlsx_reason_text(TLSX_R_POLICY));
    FIX(o, "ask the server's operator to allow it (gateway: allow = cn:NAME, dns:, uri:, ...), "
           "or use a certificate the policy names");
}

static bool m_server_unknown_ca(const struct doctor_facts *f)
{
    return cert_sent(f) && alert_is(f, SSL_AD_UNKNOWN_CA);
}

static void e_server_unknown_ca(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "the server could not chain your certificate (issuer %s) to a CA it trusts",
        f->mine != NULL ? f->mine->leaf.issuer : "?");
    FIX(o, "send the intermediate too (use NAME.chain.pem as --cert), or ask the operator to "
           "add your CA to client-ca");
}

static bool m_bad_signature(const struct doctor_facts *f)
{
    return alert_is(f, SSL_AD_DECRYPT_ERROR) || alert_is(f, SSL_AD_BAD_CERTIFICATE);
}

static void e_bad_signature(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o, "the server rejected the certificate or the signature made with your key (%s)",
        f->probe->detail);
    FIX(o, "check that the key matches the certificate and that the certificate file is intact");
}

/* ---- rows: the server's certificate ------------------------------------------------------ */

static bool m_server_expired(const struct doctor_facts *f)
{
    return server_out_of_date(f, true) != NULL;
}

static void e_server_expired(const struct doctor_facts *f, struct doctor_finding *o)
{
    char t[32];
    const struct tlsx_cert_info *c = server_out_of_date(f, true);
    SAY(o, "the server's certificate %s expired on %s", c->subject,
        doctor_time(c->not_after, t, sizeof(t)));
    FIX(o, "the server's operator must renew it (twoway ca issue server NAME) and reload");
}

static bool m_server_not_yet(const struct doctor_facts *f)
{
    return server_out_of_date(f, false) != NULL;
}

static void e_server_not_yet(const struct doctor_facts *f, struct doctor_finding *o)
{
    char t[32];
    const struct tlsx_cert_info *c = server_out_of_date(f, false);
    SAY(o, "the server's certificate %s is not valid until %s", c->subject,
        doctor_time(c->not_before, t, sizeof(t)));
    FIX(o, "check the clocks of this machine, the server and the CA");
}

static bool m_server_eku(const struct doctor_facts *f)
{
    static const long errs[] = {X509_V_ERR_INVALID_PURPOSE};
    if (chain_err_in(f, errs, 1))
        return true;
    return tcp_ok(f) && f->probe->nserver_chain > 0 && f->probe->server_chain[0].has_eku &&
           !f->probe->server_chain[0].eku_server;
}

static void e_server_eku(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o,
        "the server's certificate %s is not for TLS servers: its extended key usage lacks "
        "serverAuth",
        f->probe->server_chain[0].subject);
    FIX(o, "reissue it as a server certificate: twoway ca issue server NAME");
}

static const long issuer_missing_errs[] = {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                                           X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
                                           X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE};

static bool m_server_missing_int(const struct doctor_facts *f)
{
    return chain_err_in(f, issuer_missing_errs, 3) && f->probe->nserver_chain == 1 &&
           !f->probe->server_chain[0].self_signed;
}

static void e_server_missing_int(const struct doctor_facts *f, struct doctor_finding *o)
{
    const char *issuer = f->probe->server_chain[0].issuer;
    SAY(o,
        "the server sent only its own certificate, and its issuer %s is not in %s: the "
        "intermediate CA certificate is missing from the server's chain",
        issuer, f->ca_file != NULL ? f->ca_file : "the system trust store");
    FIX(o,
        "configure the server to send its chain (gateway: cert = a file with the "
        "certificate then the intermediate, e.g. NAME.chain.pem); if you trust %s "
        "directly, add it to --ca",
        issuer);
}

static bool m_server_untrusted(const struct doctor_facts *f)
{
    return tcp_ok(f) && f->probe->server_cert_seen && f->probe->chain_err != X509_V_OK &&
           !m_server_eku(f) && !m_server_expired(f) && !m_server_not_yet(f);
}

static void e_server_untrusted(const struct doctor_facts *f, struct doctor_finding *o)
{
    const struct tlsx_probe *p = f->probe;
    const char *top = p->nserver_chain > 0 ? p->server_chain[p->nserver_chain - 1].issuer : "?";
    SAY(o,
        "the server's certificate chain is not trusted: %s (top issuer %s, checked against "
        "%s)",
        X509_verify_cert_error_string(p->chain_err), top,
        f->ca_file != NULL ? f->ca_file : "the system trust store");
    FIX(o, "pass the CA that issued the server's certificate with --ca (e.g. the CA's "
           "chain.pem); if you did, this server is not the one you meant to reach");
}

static bool m_server_name(const struct doctor_facts *f)
{
    return tcp_ok(f) && f->probe->server_cert_seen && f->probe->name_err != X509_V_OK;
}

static void e_server_name(const struct doctor_facts *f, struct doctor_finding *o)
{
    SAY(o,
        "the server's certificate is not for %s (it names %s; the subject CN is never "
        "used)",
        f->probe->server_name, server_leaf_sans(f->probe));
    FIX(o,
        "connect with a name it holds (--server-name NAME), or reissue the server "
        "certificate with --san dns:%s",
        f->probe->server_name);
}

/* ---- rows: the outcome -------------------------------------------------------------------- */

static bool m_not_mutual(const struct doctor_facts *f)
{
    return P(f) != NULL && P(f)->handshake_done && P(f)->accepted && !P(f)->cert_requested;
}

static void e_not_mutual(const struct doctor_facts *f, struct doctor_finding *o)
{
    (void)f;
    SAY(o, "the server never asked for a client certificate: this is one-way TLS");
    FIX(o, "enable client certificate authentication on the server (twoway gateway always "
           "requires it: check the port)");
}

static bool m_closed_after(const struct doctor_facts *f)
{
    return P(f) != NULL && P(f)->accepted && P(f)->server_closed;
}

static void e_closed_after(const struct doctor_facts *f, struct doctor_finding *o)
{
    (void)f;
    SAY(o, "the handshake succeeded, then the server closed the connection without an alert");
    FIX(o, "TLS is fine; look at the service behind the server (a gateway closes when its "
           "backend is down)");
}

static bool m_timeout(const struct doctor_facts *f)
{
    return tcp_ok(f) && P(f)->timed_out && P(f)->server_hello && !P(f)->handshake_done;
}

static void e_timeout(const struct doctor_facts *f, struct doctor_finding *o)
{
    (void)f;
    SAY(o, "the server stopped answering in the middle of the handshake");
    FIX(o, "look at the server's log; raise --timeout if it is just slow");
}

static bool m_other(const struct doctor_facts *f)
{
    return tcp_ok(f) && !P(f)->accepted;
}

static void e_other(const struct doctor_facts *f, struct doctor_finding *o)
{
    const struct tlsx_probe *p = f->probe;
    SAY(o, "the handshake failed: %s%s%s", tlsx_reason_text(p->reason),
        p->detail[0] != '\0' ? " - " : "", p->detail);
    FIX(o, "look at the server's log for its side of the story");
}

static const struct row rows[] = {
    {"not-listening", true, false, m_not_listening, e_not_listening, NULL},
    {"unreachable", true, false, m_unreachable, e_unreachable, NULL},
    {"not-tls", true, false, m_not_tls, e_not_tls, NULL},
    {"protocol", true, false, m_protocol, e_protocol, NULL},
    {"cipher", true, false, m_cipher, e_cipher, NULL},
    {"key-mismatch", true, false, m_key_mismatch, e_key_mismatch, NULL},
    {"expired", true, false, m_mine_expired, e_mine_expired, NULL},
    {"not-yet-valid", true, false, m_mine_not_yet, e_mine_not_yet, NULL},
    {"wrong-eku", true, false, m_mine_eku, e_mine_eku, NULL},
    {"missing-intermediate", true, false, m_mine_missing_int_online, e_mine_missing_int_online,
     NULL},
    {"ca-not-listed", true, false, m_mine_not_listed, e_mine_not_listed, "missing-intermediate"},
    {"missing-intermediate", false, false, m_mine_missing_int_offline, e_mine_missing_int_offline,
     NULL},
    {"issuer-unknown", true, false, m_mine_issuer_unknown, e_mine_issuer_unknown, NULL},
    {"chain", true, false, m_mine_chain, e_mine_chain, NULL},
    {"no-client-cert", true, false, m_no_cert, e_no_cert, NULL},
    {"revoked", true, false, m_revoked, e_revoked, NULL},
    {"expired", true, false, m_server_says_expired, e_server_says_expired, NULL},
    {"wrong-eku", true, false, m_server_says_eku, e_server_says_eku, NULL},
    {"policy", true, false, m_policy, e_policy, NULL},
    {"unknown-ca", true, false, m_server_unknown_ca, e_server_unknown_ca, "ca-not-listed"},
    {"bad-signature", true, false, m_bad_signature, e_bad_signature, NULL},
    {"server-expired", true, false, m_server_expired, e_server_expired, NULL},
    {"server-not-yet-valid", true, false, m_server_not_yet, e_server_not_yet, NULL},
    {"server-wrong-eku", true, false, m_server_eku, e_server_eku, NULL},
    {"server-missing-intermediate", true, false, m_server_missing_int, e_server_missing_int, NULL},
    {"server-untrusted", true, false, m_server_untrusted, e_server_untrusted,
     "server-missing-intermediate"},
    {"server-name-mismatch", true, false, m_server_name, e_server_name, NULL},
    {"not-mutual", true, false, m_not_mutual, e_not_mutual, NULL},
    {"closed-after-handshake", false, false, m_closed_after, e_closed_after, NULL},
    {"timeout", true, true, m_timeout, e_timeout, NULL},
    {"tls-error", true, true, m_other, e_other, NULL},
};

static bool reported(const struct doctor_diagnosis *d, const char *code)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->f[i].code, code) == 0)
            return true;
    return false;
}

void doctor_diagnose(const struct doctor_facts *f, struct doctor_diagnosis *d)
{
    memset(d, 0, sizeof(*d));
    bool fatal = false;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]) && d->n < DOCTOR_MAX_FINDINGS; i++) {
        const struct row *r = &rows[i];
        if ((r->fallback && fatal) || !r->match(f))
            continue;
        /* One finding per code; a more precise finding silences a vaguer one. */
        if (reported(d, r->code) || (r->unless != NULL && reported(d, r->unless)) ||
            (strcmp(r->code, "unknown-ca") == 0 && reported(d, "missing-intermediate")))
            continue;
        struct doctor_finding *o = &d->f[d->n++];
        o->code = r->code;
        o->fatal = r->fatal;
        r->explain(f, o);
        fatal |= r->fatal;
    }
    d->ok = !fatal;
}
