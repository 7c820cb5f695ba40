/* tlsx: "TLS extras" shared by the gateway, tunnel, doctor, EST server and bench.
 * SSL_CTX builders (server, client), session tickets, SNI selection, revocation (CRL sets),
 * peer identity, allow-policy, per-handshake and resumed-session peer checks, and OpenSSL
 * failures in plain words. Depends only on util and OpenSSL: no sockets, no event loop.
 *
 * Threading: every object here is immutable once built (CRL sets, policies, SSL_CTXs), except
 * ticket keys, which rotate under their own lock. Several worker threads may share them.
 * Ownership: _new/_free pairs, _free(NULL) is a no-op. Refcounted objects say so. */
#ifndef TW_TLSX_H
#define TW_TLSX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "util/err.h"

/* ------------------------------------------------------------------------------------------ */
/* Plain-language reasons (ossl_err.c)                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Why a handshake or verification failed, as the gateway log, doctor and CLI say it. */
enum tlsx_reason {
    TLSX_R_OK = 0,
    TLSX_R_NO_CERT,              /* "no-certificate": the peer sent no certificate */
    TLSX_R_EXPIRED,              /* "expired" */
    TLSX_R_NOT_YET_VALID,        /* "not-yet-valid" */
    TLSX_R_UNKNOWN_CA,           /* "unknown-ca": chain does not lead to a trusted CA */
    TLSX_R_MISSING_INTERMEDIATE, /* "missing-intermediate": issuer not sent nor trusted */
    TLSX_R_REVOKED,              /* "revoked" */
    TLSX_R_WRONG_EKU,            /* "wrong-eku": no clientAuth (or serverAuth) usage */
    TLSX_R_POLICY,               /* "policy": chain fine, allow-policy denied it */
    TLSX_R_PROTOCOL,             /* "protocol": no common TLS version */
    TLSX_R_CIPHER,               /* "cipher": no common cipher / group / signature alg */
    TLSX_R_KEY_MISMATCH,         /* "key-mismatch": private key does not match certificate */
    TLSX_R_NAME_MISMATCH,        /* "name-mismatch": server name not in certificate SANs */
    TLSX_R_BAD_SIGNATURE,        /* "bad-signature": certificate or CRL signature invalid */
    TLSX_R_CRL_MISSING,          /* "crl-missing": revocation required but no CRL for issuer */
    TLSX_R_CRL_EXPIRED,          /* "crl-expired": CRL past nextUpdate and policy is reject */
    TLSX_R_NOT_TLS,              /* "not-tls": the peer does not speak TLS */
    TLSX_R_CLOSED,               /* "closed": the peer closed during the handshake */
    TLSX_R_OTHER,                /* "tls-error": anything else; see the detail text */
};

/* Short stable code for logs/metrics/JSON ("expired"). Never NULL. */
const char *tlsx_reason_code(enum tlsx_reason r);

/* One plain sentence for humans ("the certificate has expired"). Never NULL. */
const char *tlsx_reason_text(enum tlsx_reason r);

/* Map an X509_V_ERR_* verify result to a reason (X509_V_OK -> TLSX_R_OK). */
enum tlsx_reason tlsx_reason_from_verify(long x509_err);

/* Map a TLS alert description (SSL_AD_*, e.g. received by a client) to a reason. */
enum tlsx_reason tlsx_reason_from_alert(int alert);

/* After SSL_do_handshake/SSL_accept/SSL_connect failed on ssl: the best reason from, in order,
 * our own policy/revocation verdict recorded on ssl, the verify result, alerts seen (needs
 * tlsx_ssl_watch_alerts), and the thread's OpenSSL error queue (which it peeks, not drains).
 * detail (may be NULL) receives a one-line technical detail, e.g. the OpenSSL reason string. */
enum tlsx_reason tlsx_handshake_reason(SSL *ssl, char *detail, size_t detail_cap);

/* Describe and DRAIN the thread's OpenSSL error queue in words into out ("" if empty).
 * Returns out. */
char *tlsx_ossl_describe(char *out, size_t cap);

/* Record the last TLS alert sent and received on ssl (installs an info callback; call once
 * after SSL_new). Lets tlsx_handshake_reason and doctor report e.g. a TLS 1.3 server's
 * post-handshake "certificate required" alert. */
int tlsx_ssl_watch_alerts(SSL *ssl, struct tw_err *err) TW_MUST_CHECK;

/* Last alert received/sent on ssl (SSL_AD_* value) or -1 if none / not watched. */
int tlsx_ssl_alert_received(const SSL *ssl);
int tlsx_ssl_alert_sent(const SSL *ssl);

/* ------------------------------------------------------------------------------------------ */
/* Loading certificates and keys                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Read a PEM file holding a leaf certificate followed by its chain. *leaf gets the first
 * certificate, *chain (may be NULL if unwanted) the rest (possibly empty, never NULL on
 * success). TW_ERR_IO naming the path when unreadable, TW_ERR_CONFIG when no certificate. */
int tlsx_cert_chain_load(const char *path, X509 **leaf, STACK_OF(X509) **chain,
                         struct tw_err *err) TW_MUST_CHECK;

/* Read every certificate of a PEM bundle (e.g. client-ca). TW_ERR_CONFIG when it holds none. */
int tlsx_certs_load(const char *path, STACK_OF(X509) **out, struct tw_err *err) TW_MUST_CHECK;

/* Load a private key: a PEM file after fs_check_key_perms (group/world readable is refused
 * with TW_ERR_IO), or a key in a token or TPM (a pkcs11: or tpm2: reference, or a key file
 * naming one; see keystore_load). An encrypted PEM key is refused (TW_ERR_CONFIG): no
 * passphrase prompts. */
int tlsx_key_load(const char *path, EVP_PKEY **out, struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Revocation: CRL sets (revocation.c)                                                        */
/* ------------------------------------------------------------------------------------------ */

/* An immutable-once-built set of CRLs. Refcounted: a gateway generation and the SSL_CTXs
 * built from it hold references. */
struct tlsx_crl_set;

enum tlsx_crl_expired {
    TLSX_CRL_EXPIRED_REJECT = 0, /* default: a CRL past nextUpdate fails verification */
    TLSX_CRL_EXPIRED_WARN,       /* keep using it; tlsx_crl_set_expired() reports it */
};

/* Empty set, refcount 1. NULL only on allocation failure (err filled). */
struct tlsx_crl_set *tlsx_crl_set_new(struct tw_err *err);

/* Add every CRL from a file: PEM (one or more CRLs) or DER (one CRL), detected by content.
 * TW_ERR_IO when unreadable; TW_ERR_CONFIG naming the path when nothing parses. Only while
 * building, before the set is shared. */
int tlsx_crl_set_add_file(struct tlsx_crl_set *set, const char *path,
                          struct tw_err *err) TW_MUST_CHECK;

/* Same from memory (e.g. a CRL fetched over HTTPS); source names it in errors. */
int tlsx_crl_set_add_mem(struct tlsx_crl_set *set, const void *data, size_t len,
                         const char *source, struct tw_err *err) TW_MUST_CHECK;

/* Check every CRL in the set whose issuer is named by a certificate in cas is signed by it.
 * TW_ERR_CONFIG naming the CRL's issuer otherwise. A CRL from a CA not in cas (the
 * intermediate clients present when cas holds only their root) is kept, and checked against
 * that CA once it is known (OpenSSL at full handshakes, tlsx_crl_set_check at resumption).
 * tlsx_server_ctx_new calls it against client-ca; callers may call it earlier for --check. */
int tlsx_crl_set_verify(const struct tlsx_crl_set *set, STACK_OF(X509) *cas,
                        struct tw_err *err) TW_MUST_CHECK;

/* For a CRL fetched again from the same place: every CRL in set whose issuer is not a CA in
 * cas (so not checkable by tlsx_crl_set_verify) must have an issuer held already has, so a
 * source that starts serving another CA's CRL is refused rather than replacing the one held.
 * held NULL (first fetch): 0. TW_ERR_VERIFY naming the issuer otherwise. */
int tlsx_crl_set_same_outside(const struct tlsx_crl_set *set, const struct tlsx_crl_set *held,
                              STACK_OF(X509) *cas, struct tw_err *err) TW_MUST_CHECK;

int tlsx_crl_set_up_ref(struct tlsx_crl_set *set);
void tlsx_crl_set_free(struct tlsx_crl_set *set);

/* Number of CRLs in the set. */
size_t tlsx_crl_set_count(const struct tlsx_crl_set *set);

/* 1 if some CRL in set from issuer lists serial as revoked, else 0 (also when set is NULL).
 * No chain verification and no decoding: cheap enough for resumed sessions and for sweeping
 * live connections after a reload. */
int tlsx_crl_set_is_revoked(const struct tlsx_crl_set *set, const X509_NAME *issuer,
                            const ASN1_INTEGER *serial);

/* Same, for a certificate (its issuer name and serial). */
int tlsx_crl_set_cert_is_revoked(const struct tlsx_crl_set *set, X509 *cert);

/* 1 if a CRL from issuer is present. */
int tlsx_crl_set_has_issuer(const struct tlsx_crl_set *set, const X509_NAME *issuer);

/* Earliest nextUpdate over the set (unix seconds), 0 if none has one / set empty. */
int64_t tlsx_crl_set_next_update(const struct tlsx_crl_set *set);

/* Number of CRLs whose nextUpdate is before now (unix seconds). */
size_t tlsx_crl_set_expired(const struct tlsx_crl_set *set, int64_t now);

/* Add the set's CRLs to store. Internal to tlsx_server_ctx_new, public for doctor --offline. */
int tlsx_crl_set_to_store(const struct tlsx_crl_set *set, X509_STORE *store,
                          struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Identity (identity.c)                                                                      */
/* ------------------------------------------------------------------------------------------ */

struct tlsx_strlist {
    size_t n;
    char **v; /* n NUL-terminated UTF-8 strings */
};

/* Everything the gateway logs, forwards and matches about a certificate. Read-only. */
struct tlsx_identity {
    char *subject;               /* RFC 2253 DN, e.g. "CN=alice,O=Example" */
    char *issuer;                /* RFC 2253 DN */
    const char *cn;              /* first CN or NULL (points into cns) */
    struct tlsx_strlist cns;     /* every CN in the subject */
    struct tlsx_strlist o;       /* every O */
    struct tlsx_strlist ou;      /* every OU */
    struct tlsx_strlist dns;     /* SAN dNSName */
    struct tlsx_strlist email;   /* SAN rfc822Name */
    struct tlsx_strlist uri;     /* SAN URI (SPIFFE IDs) */
    char serial_hex[2 * 20 + 3]; /* upper-case hex, no colons, "-" prefix if negative */
    char sha256_hex[65];         /* lower-case hex of SHA-256 over the DER */
    unsigned char sha256[32];
    int64_t not_before; /* unix seconds */
    int64_t not_after;
    unsigned char *der; /* the certificate's DER encoding */
    size_t der_len;
};

/* Build from a certificate (not retained). TW_ERR_VERIFY on an undecodable field. */
struct tlsx_identity *tlsx_identity_new(X509 *cert, struct tw_err *err);
void tlsx_identity_free(struct tlsx_identity *id);

/* ------------------------------------------------------------------------------------------ */
/* Allow-policy (policy.c)                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Typed allow rules: cn:, ou:, o:, dns:, email:, uri:, serial:, sha256:. Values are exact or
 * `*` globs (fnmatch). dns: and email: compare case-insensitively, serial: and sha256: as hex
 * ignoring case and colons. Any match allows; an empty policy allows every certificate that
 * verified against client-ca. dns: never falls back to the CN. Immutable once built;
 * refcounted so SSL_CTXs and generations can share it. */
struct tlsx_policy;

struct tlsx_policy *tlsx_policy_new(struct tw_err *err);

/* Parse and append one rule ("cn:alice", "uri:spiffe://example.org/web-*"). Errors are
 * TW_ERR_CONFIG with a message like "allow rule 'xx:foo': unknown type 'xx'; use cn:, ou:, o:,
 * dns:, email:, uri:, serial:, sha256:". Only while building. */
int tlsx_policy_add(struct tlsx_policy *p, const char *rule, struct tw_err *err) TW_MUST_CHECK;

int tlsx_policy_up_ref(struct tlsx_policy *p);
void tlsx_policy_free(struct tlsx_policy *p);

/* Number of rules. */
size_t tlsx_policy_count(const struct tlsx_policy *p);

/* 1 if id is allowed (NULL or empty policy: 1), 0 if denied. *matched_rule (may be NULL) is
 * set to the text of the first matching rule, "" for an empty policy, NULL when denied. */
int tlsx_policy_check(const struct tlsx_policy *p, const struct tlsx_identity *id,
                      const char **matched_rule);

/* Render the rule set for a denial log line: "cn:alice, dns:*.example.com" ("(any)" when
 * empty), truncated with "..." to fit cap. Returns out. */
char *tlsx_policy_render(const struct tlsx_policy *p, char *out, size_t cap);

/* ------------------------------------------------------------------------------------------ */
/* Session ticket keys (tickets.c)                                                            */
/* ------------------------------------------------------------------------------------------ */

/* Keys for stateless session tickets (TLS 1.2 and 1.3), shared by every server SSL_CTX of a
 * process and across reload generations, so sessions survive a reload. Refcounted,
 * thread-safe. Random keys rotate in memory every `period` seconds: the current key encrypts,
 * the previous one still decrypts (a ticket lives at most two periods). A key file instead
 * holds one or more 80-byte keys (16 name + 32 HMAC + 32 AES): the first encrypts, all
 * decrypt; several instances sharing the file resume each other's sessions. */
struct tlsx_ticket_keys;

#define TLSX_TICKET_KEY_LEN 80
#define TLSX_TICKET_PERIOD_DEFAULT 3600

/* Random in-memory keys rotating every period seconds (0: default). */
struct tlsx_ticket_keys *tlsx_ticket_keys_new(int64_t period, struct tw_err *err);

/* Keys from a file (refused when group/world-readable, or its size is not a non-zero multiple
 * of 80 bytes: TW_ERR_CONFIG). No in-memory rotation: rotate by rewriting the file and
 * loading it again. */
struct tlsx_ticket_keys *tlsx_ticket_keys_new_file(const char *path, struct tw_err *err);

/* Write a fresh random 80-byte key file, mode 0600 (atomic). For `twoway gateway` tooling
 * and tests. */
int tlsx_ticket_key_file_write(const char *path, struct tw_err *err) TW_MUST_CHECK;

/* Rotate now if period elapsed (random keys only; called by the ticket callback too). */
void tlsx_ticket_keys_tick(struct tlsx_ticket_keys *k, int64_t now);

int tlsx_ticket_keys_up_ref(struct tlsx_ticket_keys *k);
void tlsx_ticket_keys_free(struct tlsx_ticket_keys *k);

/* ------------------------------------------------------------------------------------------ */
/* Server SSL_CTX (ctx_server.c, sni.c)                                                       */
/* ------------------------------------------------------------------------------------------ */

enum tlsx_client_auth {
    TLSX_CLIENT_AUTH_REQUIRE = 0, /* default: a verified client certificate is mandatory */
    TLSX_CLIENT_AUTH_OPTIONAL,    /* verified if sent (EST: token first, mTLS to re-enroll) */
    TLSX_CLIENT_AUTH_NONE,        /* never asked for (plain HTTPS, e.g. the CRL endpoint) */
};

struct tlsx_server_opts {
    const char *name; /* service name, used in error messages; may be NULL */

    /* Server certificate: either files (PEM, leaf then chain; key 0600) ... */
    const char *cert_file;
    const char *key_file;
    /* ... or objects (borrowed; the ctx takes its own references). Files win if set. */
    X509 *cert;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;

    /* Trusted client CAs (PEM bundle). Loaded into the verify store, and their subject names
     * are sent in the CertificateRequest. Required unless client_auth is NONE. */
    const char *client_ca_file;
    enum tlsx_client_auth client_auth;
    int verify_depth; /* 0: default 8 */

    /* Revocation (borrowed, referenced). Leaf CRL check when non-empty (a client whose issuer
     * has no CRL is then refused: crl-missing); every CA checked too when a CRL is present for
     * each CA in client_ca_file and each chains to a root in it. Every CRL must be signed by a
     * CA in client_ca_file. */
    struct tlsx_crl_set *crls;
    enum tlsx_crl_expired crl_expired;

    /* Allow-policy checked inside the handshake, so a denied client gets an alert
     * (borrowed, referenced). NULL: allow any verified certificate. */
    struct tlsx_policy *policy;

    /* Protocol: TLS1_2_VERSION or TLS1_3_VERSION; 0 = defaults (min 1.2, max 1.3). */
    int min_version;
    int max_version;
    const char *ciphers;      /* TLS <= 1.2 cipher list; NULL: ECDHE + AEAD only */
    const char *ciphersuites; /* TLS 1.3; NULL: OpenSSL's AEAD defaults */
    const char *groups;       /* NULL: X25519:P-256:P-384 */

    /* Resumption. ticket_keys NULL: none (full handshakes only). Keys from a file: stateless
     * tickets (instances sharing the file resume each other's sessions). In-memory keys:
     * stateful resumption from a bounded session store kept with the keys (SSL_OP_NO_TICKET;
     * no session encode/decode per handshake; every ctx holding the keys shares it, across
     * reloads). After an SNI switch the service ctx's keys are used; one key set for every
     * ctx of a process is the intended use (session id contexts keep services apart). */
    struct tlsx_ticket_keys *ticket_keys;
    int num_tickets; /* TLS 1.3 tickets per handshake; tlsx_server_opts_init sets 1 */
    int64_t session_timeout; /* seconds; 0: the ticket key period */
    /* Session id context: sessions resume only at a ctx with the same one. NULL: derived from
     * name + certificate + client CAs, so identical instances match and services differ. */
    const char *session_id_context;
};

/* Fill opts with the secure defaults (zeroes, num_tickets = 1). */
void tlsx_server_opts_init(struct tlsx_server_opts *opts);

/* Build a server SSL_CTX: certificate + chain, key (perms checked, must match the
 * certificate: TW_ERR_CONFIG "key does not match certificate"), client CAs, verification
 * (SSL_VERIFY_PEER | FAIL_IF_NO_PEER_CERT, purpose sslclient, leaf EKU clientAuth required),
 * CRLs, in-handshake policy, TLS 1.2+, no renegotiation, no compression, server cipher
 * preference, tickets, session id context. Resumed sessions are re-checked against this
 * ctx's CRLs and policy before OpenSSL accepts them (else a full handshake happens).
 * Errors: TW_ERR_IO (files), TW_ERR_CONFIG (bad values, each naming the option/file). */
SSL_CTX *tlsx_server_ctx_new(const struct tlsx_server_opts *opts, struct tw_err *err);

/* Whether a server ctx holding its ciphers, certificate and key can serve TLS 1.2 clients:
 * when TLS 1.2 is enabled (min 0 or TLS1_2_VERSION), some enabled TLS 1.2 suite must be one
 * the key can sign for (an ECDSA key cannot serve ECDHE-RSA or DHE-RSA suites). 0 when it can
 * (or TLS 1.2 is off, or the key type is not judged); -1 with why in plain words otherwise.
 * tlsx_server_ctx_new refuses such a ctx; the gateway's --check calls it before. */
int tlsx_ctx_ciphers_fit_key(SSL_CTX *ctx, int min, char *why, size_t cap);

/* SNI: several server ctxs behind one listener. The table maps names (exact, case-insensitive,
 * or "*.example.com" matching one label) to ctxs. Install it on the listener's ctx; a
 * ClientHello's server_name switches the connection to the matching ctx (with its verify
 * settings, CAs, CRLs and policy) before any session is resumed. Unknown or absent name: the
 * default ctx, or a handshake failure (unrecognized_name) when strict. The table holds
 * references to its ctxs; the listener ctx does NOT own the table (no cycle): keep the table
 * alive as long as listener_ctx accepts connections (e.g. free both with the generation).
 * Immutable once installed. Cipher lists are the listener ctx's (OpenSSL copies them at
 * SSL_new); verify settings, CAs, CRLs, policy, versions and tickets are the service's. */
struct tlsx_sni_table;

struct tlsx_sni_table *tlsx_sni_table_new(struct tw_err *err);
/* ctx is referenced. TW_ERR_CONFIG on a duplicate name. */
int tlsx_sni_table_add(struct tlsx_sni_table *t, const char *name, SSL_CTX *ctx,
                       struct tw_err *err) TW_MUST_CHECK;
/* Used when no name matches (NULL: keep the listener ctx). strict: reject unknown names. */
int tlsx_sni_table_set_default(struct tlsx_sni_table *t, SSL_CTX *ctx, bool strict,
                               struct tw_err *err) TW_MUST_CHECK;
/* Install on listener_ctx (client-hello callback). */
int tlsx_sni_table_install(struct tlsx_sni_table *t, SSL_CTX *listener_ctx,
                           struct tw_err *err) TW_MUST_CHECK;
/* The ctx for name (NULL name: default), or NULL. Not referenced. For HTTP Host checks. */
SSL_CTX *tlsx_sni_table_lookup(const struct tlsx_sni_table *t, const char *name);
void tlsx_sni_table_free(struct tlsx_sni_table *t);

/* ------------------------------------------------------------------------------------------ */
/* Client SSL_CTX (ctx_client.c)                                                              */
/* ------------------------------------------------------------------------------------------ */

struct tlsx_client_opts {
    const char *ca_file; /* trusted server CAs (PEM); NULL: the system default paths */
    /* Optional client certificate: files (key 0600) or objects (borrowed, referenced). */
    const char *cert_file;
    const char *key_file;
    X509 *cert;
    STACK_OF(X509) *chain;
    EVP_PKEY *key;
    int min_version; /* as for the server; 0 = 1.2 .. 1.3 */
    int max_version;
    const char *ciphers;
    const char *ciphersuites;
    const char *groups;
    /* Complete the handshake even when the server chain or name fails (doctor: it reports
     * SSL_get_verify_result itself). Never use it to move data. */
    bool insecure_skip_verify;
    /* Purpose checked on the server's leaf: serverAuth EKU (default) unless this is set. */
    bool insecure_any_purpose;
};

void tlsx_client_opts_init(struct tlsx_client_opts *opts);

/* Build a client ctx: CA store, optional client certificate (key must match), TLS 1.2+,
 * SSL_VERIFY_PEER, purpose sslserver, session cache in client mode (the caller keeps
 * SSL_get1_session / SSL_set_session to resume; note that an SSL freed without SSL_shutdown
 * marks its session not resumable, and TLS 1.3 tickets arrive only with the first read).
 * TW_ERR_IO / TW_ERR_CONFIG. */
SSL_CTX *tlsx_client_ctx_new(const struct tlsx_client_opts *opts, struct tw_err *err);

/* The same set-up on a client ctx made elsewhere (libcurl's, from its SSL_CTX callback). The
 * certificates of opts->ca_file are added to ctx's current store: give ctx an empty store
 * first so nothing else is trusted. */
int tlsx_client_ctx_setup(SSL_CTX *ctx, const struct tlsx_client_opts *opts,
                          struct tw_err *err) TW_MUST_CHECK;

/* Per connection, before SSL_connect: SNI (for a DNS name) and the name check against the
 * server certificate's SANs: dNSName for a name, iPAddress for an IPv4/IPv6 literal; never the
 * subject CN; no partial wildcards. server_name NULL: no name check (insecure; doctor only). */
int tlsx_client_ssl_setup(SSL *ssl, const char *server_name, struct tw_err *err) TW_MUST_CHECK;

/* The same name check for every connection of ctx (SSL_new copies it), without SNI: for a
 * ctx whose SSL objects are made elsewhere (libcurl sends the SNI itself). */
int tlsx_client_ctx_expect_name(SSL_CTX *ctx, const char *server_name,
                                struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Peer checks (verify.c)                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* The rules of the current configuration generation, passed explicitly. */
struct tlsx_peer_rules {
    const struct tlsx_crl_set *crls;  /* may be NULL: no revocation check */
    const struct tlsx_policy *policy; /* may be NULL: allow any verified certificate */
    int64_t now;                      /* unix seconds for validity; 0: time(NULL) */
};

struct tlsx_peer_result {
    enum tlsx_reason reason;  /* TLSX_R_OK when allowed */
    bool resumed;             /* SSL_session_reused */
    const char *matched_rule; /* policy rule that allowed it ("" for empty policy), or NULL */
    char detail[160];         /* plain words, e.g. "serial 0A1B revoked by CN=Issuing CA" */
};

/* After a completed server handshake (full or resumed): the client certificate is present,
 * (on resumption) still within validity and issued by a CA of this connection's ctx, not
 * revoked by rules->crls (leaf, and its CAs when their CRLs are present), and allowed by
 * rules->policy. A full handshake was already verified by OpenSSL. Returns 0 when allowed,
 * -1 with res->reason/detail and err (TW_ERR_VERIFY or TW_ERR_POLICY) when not. *id_out (may
 * be NULL) receives the peer identity on success; the caller frees it. */
int tlsx_peer_check(SSL *ssl, const struct tlsx_peer_rules *rules, struct tlsx_peer_result *res,
                    struct tlsx_identity **id_out, struct tw_err *err) TW_MUST_CHECK;

/* The same check for a bare certificate (e.g. sweeping live connections after a CRL reload,
 * or an EST re-enrollment): validity, revocation of cert by rules->crls, policy on id (id
 * may be NULL: built internally). Returns 0 allowed, -1 with res/err. */
int tlsx_peer_check_identity(X509 *cert, const struct tlsx_identity *id,
                             const struct tlsx_peer_rules *rules, struct tlsx_peer_result *res,
                             struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* doctor probe (issue 5): probe_cert.c, probe.c                                              */
/* ------------------------------------------------------------------------------------------ */

#define TLSX_PROBE_MAX_CHAIN 10    /* certificates recorded per chain */
#define TLSX_PROBE_MAX_CA_NAMES 32 /* CA names recorded from a CertificateRequest */
#define TLSX_PROBE_MAX_SIGALGS 32  /* signature algorithms recorded */
#define TLSX_PROBE_NAME_MAX 256    /* bytes of one distinguished name (RFC 2253, truncated) */

/* One certificate as doctor shows it. Plain data, no OpenSSL objects. */
struct tlsx_cert_info {
    char subject[TLSX_PROBE_NAME_MAX];
    char issuer[TLSX_PROBE_NAME_MAX];
    char sans[512]; /* "dns:a, ip:127.0.0.1, email:x, uri:y" or "" (truncated with "...") */
    char serial_hex[44];
    int64_t not_before, not_after; /* unix seconds */
    bool self_signed;              /* self-issued with a valid self-signature */
    bool is_ca;
    bool has_eku, eku_server, eku_client;
};

/* Fill out from cert (never fails: unreadable fields come out empty). */
void tlsx_cert_info_fill(X509 *cert, struct tlsx_cert_info *out);

/* Which use a certificate is checked for. AUTO: client when it has EKU clientAuth (or no
 * serverAuth), else server. */
enum tlsx_cert_role { TLSX_ROLE_AUTO = 0, TLSX_ROLE_CLIENT, TLSX_ROLE_SERVER };

struct tlsx_file_check_opts {
    const char *cert_file; /* PEM: leaf then chain (required) */
    const char *key_file;  /* may be NULL: key match not checked */
    const char *ca_file;   /* may be NULL: chain not checked */
    const char *crl_file;  /* may be NULL: revocation not checked */
    enum tlsx_cert_role role;
    int64_t now; /* unix seconds; 0: time(NULL) */
};

/* Facts about a certificate file, for doctor's diagnosis table. */
struct tlsx_file_check {
    struct tlsx_cert_info leaf;
    struct tlsx_cert_info chain[TLSX_PROBE_MAX_CHAIN]; /* what the file holds after the leaf */
    size_t nchain;
    enum tlsx_cert_role role; /* resolved */
    bool key_checked, key_match;
    bool eku_ok; /* explicit EKU for the role (twoway requires clientAuth / serverAuth) */
    /* Validity of the leaf and of every certificate of its chain (file, then --ca). */
    enum tlsx_reason validity; /* OK, EXPIRED or NOT_YET_VALID */
    char validity_subject[TLSX_PROBE_NAME_MAX]; /* the certificate at fault */
    int64_t validity_time;                      /* its notAfter / notBefore */
    /* Chain (with ca_file): the X509_V_ERR_* of the first problem, where it was found. */
    bool chain_checked;
    long chain_err;
    char chain_err_subject[TLSX_PROBE_NAME_MAX];
    /* The chain verified only because ca_file supplied an intermediate the file lacks. */
    bool missing_intermediate;
    char intermediate_subject[TLSX_PROBE_NAME_MAX];
    char intermediate_issuer[TLSX_PROBE_NAME_MAX];
    /* The verified path above the leaf (file chain and ca_file), leaf excluded. */
    struct tlsx_cert_info path[TLSX_PROBE_MAX_CHAIN];
    size_t npath;
};

/* Check a certificate file offline: load (TW_ERR_IO / TW_ERR_CONFIG naming the file when it
 * cannot be read), key match, EKU for the role, validity, chain to ca_file (partial chains
 * accepted, as the gateway does), revocation by crl_file. Problems found are facts in *out,
 * not errors: returns 0 unless a file could not be read. */
int tlsx_file_check(const struct tlsx_file_check_opts *opts, struct tlsx_file_check *out,
                    struct tw_err *err) TW_MUST_CHECK;

/* The steps of a probe, reported as they happen. */
enum tlsx_probe_step {
    TLSX_STEP_TCP,            /* TCP connected (or failed: tcp_ok false) */
    TLSX_STEP_CLIENT_HELLO,   /* ClientHello sent */
    TLSX_STEP_SERVER_HELLO,   /* ServerHello processed: version, cipher */
    TLSX_STEP_SERVER_CERT,    /* server chain received and checked */
    TLSX_STEP_CERT_REQUEST,   /* the server asked for a client certificate: CA names, sigalgs */
    TLSX_STEP_CLIENT_CERT,    /* our Certificate message went out (client_cert_sent) */
    TLSX_STEP_ALERT,          /* an alert was received or sent (last_alert_*) */
    TLSX_STEP_HANDSHAKE_DONE, /* our side of the handshake completed */
    TLSX_STEP_VERDICT,        /* the server's verdict after the handshake (or the failure) */
};

struct tlsx_probe;

typedef void (*tlsx_probe_cb)(enum tlsx_probe_step step, const struct tlsx_probe *p, void *arg);

struct tlsx_probe_opts {
    const char *host;        /* name or IP literal (no brackets) */
    const char *port;        /* decimal */
    const char *server_name; /* checked on the server certificate (SANs only) + SNI; NULL: host */
    const char *ca_file;     /* NULL: system trust store */
    const char *cert_file;   /* client certificate (+ chain, sent as the file holds it) */
    const char *key_file;    /* must match cert_file (check with tlsx_file_check first) */
    int min_version, max_version; /* 0: TLS 1.2 .. 1.3 */
    const char *ciphers;          /* TLS 1.2 list; NULL: tlsx default */
    int64_t timeout_ms;           /* connect and each handshake read; 0: 10 s */
    int64_t verdict_ms;           /* wait for a post-handshake alert; 0: 1 s */
    tlsx_probe_cb on_step;        /* may be NULL */
    void *arg;
};

struct tlsx_probe {
    char address[80]; /* the address connected to, "127.0.0.1:8443" */
    bool tcp_ok;
    int connect_errno; /* when !tcp_ok */
    bool timed_out;    /* a read or the connect ran into timeout_ms */
    bool hello_sent, server_hello;
    char version[16]; /* "TLSv1.3" */
    char cipher[64];
    /* The server's chain as sent, and our checks of it (the probe completes the handshake
     * whatever they say, so the rest can be shown). */
    struct tlsx_cert_info server_chain[TLSX_PROBE_MAX_CHAIN];
    size_t nserver_chain;
    bool server_cert_seen;
    char server_name[TLSX_PROBE_NAME_MAX]; /* the name checked */
    long chain_err;        /* first X509_V_ERR_* other than a name mismatch; X509_V_OK */
    int chain_err_depth;
    long name_err;         /* X509_V_ERR_HOSTNAME/IP_ADDRESS_MISMATCH or X509_V_OK */
    /* CertificateRequest. */
    bool cert_requested;
    char ca_names[TLSX_PROBE_MAX_CA_NAMES][TLSX_PROBE_NAME_MAX];
    size_t nca_names, nca_names_total;
    char sigalgs[TLSX_PROBE_MAX_SIGALGS][32];
    size_t nsigalgs;
    /* Our Certificate message. */
    bool client_cert_msg;   /* a Certificate message was sent */
    bool client_cert_sent;  /* ... and it was not empty */
    size_t client_certs_sent;
    struct tlsx_cert_info client_cert;
    /* Alerts (SSL_AD_*, -1 if none) and when they came. */
    int alert_received, alert_sent;
    bool alert_after_handshake; /* the received one came after our side finished */
    bool alert_last_sent;       /* the latest TLSX_STEP_ALERT was one we sent */
    /* Outcome. */
    bool handshake_done;
    bool accepted;      /* handshake done and no rejection within verdict_ms */
    bool server_closed; /* close_notify or EOF right after the handshake */
    bool got_data;      /* the server sent application data */
    enum tlsx_reason reason; /* why it failed (TLSX_R_OK when accepted) */
    char detail[256];        /* technical detail: OpenSSL's words, alert name, errno text */
    int64_t elapsed_ms;
};

/* Connect to host:port and run a two-way handshake, recording each step (blocking socket,
 * every wait bounded by timeout_ms). The handshake is completed even when the server's chain
 * or name fails, so every step can be shown; nothing but the handshake is ever sent. Returns
 * 0 when the probe ran (whatever its outcome, in *out), -1 with err when it could not start
 * (unreadable file: TW_ERR_IO / TW_ERR_CONFIG, unresolvable host: TW_ERR_USAGE). */
int tlsx_probe_run(const struct tlsx_probe_opts *opts, struct tlsx_probe *out,
                   struct tw_err *err) TW_MUST_CHECK;

/* A TLS alert's name in words ("certificate required"), including the TLS 1.3 alerts
 * OpenSSL 3.0's SSL_alert_desc_string_long calls "unknown". Never NULL. */
const char *tlsx_alert_name(int alert);

/* "ecdsa_secp256r1_sha256" for a TLS SignatureScheme code; "0x0403" style when unknown. */
const char *tlsx_sigalg_name(unsigned code, char *buf, size_t cap);

#endif
