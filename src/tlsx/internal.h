/* Private to src/tlsx/: per-SSL_CTX and per-SSL state kept in OpenSSL ex_data, and the glue
 * between the files (verify callback, ticket callbacks, SNI switch). */
#ifndef TW_TLSX_INTERNAL_H
#define TW_TLSX_INTERNAL_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "tlsx/tlsx.h"

/* Limits for outside input. */
#define TLSX_MAX_CRLS 4096        /* CRLs in one set */
#define TLSX_MAX_CERTS 1024       /* certificates in one PEM bundle */
#define TLSX_MAX_RULES 4096       /* allow rules in one policy */
#define TLSX_MAX_RULE_LEN 1024    /* characters in one allow rule */
#define TLSX_MAX_SNI_NAMES 4096   /* names in one SNI table */
#define TLSX_MAX_HOSTNAME 253     /* RFC 1035 */

/* What a server SSL_CTX built by tlsx_server_ctx_new knows beyond OpenSSL's own settings.
 * Immutable after build; freed with the ctx (ex_data free callback). */
struct tlsx_server_state {
    struct tlsx_crl_set *crls;        /* referenced, may be NULL */
    struct tlsx_policy *policy;       /* referenced, may be NULL */
    struct tlsx_ticket_keys *tickets; /* referenced, may be NULL */
    STACK_OF(X509) *client_cas;       /* owned, may be NULL (client_auth NONE) */
    enum tlsx_crl_expired crl_expired;
    enum tlsx_client_auth client_auth;
};

/* The state of a tlsx server ctx, or NULL for a ctx built elsewhere. */
struct tlsx_server_state *tlsx_server_state_get(const SSL_CTX *ctx);
/* Attach st to ctx (ownership passes to ctx). */
int tlsx_server_state_attach(SSL_CTX *ctx, struct tlsx_server_state *st, struct tw_err *err);
void tlsx_server_state_free(struct tlsx_server_state *st);

/* Per-connection notes: our own verdict (policy, revocation on resume) and alerts seen. */
struct tlsx_ssl_note {
    enum tlsx_reason verdict; /* TLSX_R_OK unless tlsx refused the peer */
    char detail[160];
    int alert_received; /* -1 if none */
    int alert_sent;
    bool crl_expired_ignored;
    struct tlsx_identity *identity; /* built by the in-handshake policy check; owned */
};

/* The note of ssl; created on first use when create is true (NULL on allocation failure). */
struct tlsx_ssl_note *tlsx_ssl_note_get(const SSL *ssl, bool create);

/* Record a refusal on ssl (best effort). */
void tlsx_ssl_note_verdict(SSL *ssl, enum tlsx_reason r, const char *detail);

/* Server verify callback (verify.c): EKU clientAuth, expired-CRL policy, in-handshake policy. */
int tlsx_server_verify_cb(int ok, X509_STORE_CTX *x);

/* Install session ticket callbacks (tickets.c): key callback + decrypt hook that re-checks
 * a resumed session's peer (verify.c: tlsx_resume_allowed). */
int tlsx_tickets_install(SSL_CTX *ctx, struct tw_err *err);
/* Stateful session store (sesscache.c), kept by in-memory ticket keys: one process's ctxs
 * resume from it across reloads. */
struct tlsx_sess_store;
struct tlsx_capool;
struct tlsx_sess_store *tlsx_sess_store_new(void);
void tlsx_sess_store_free(struct tlsx_sess_store *s);
/* The store of in-memory keys; NULL for keys from a file (stateless tickets, shared). */
struct tlsx_sess_store *tlsx_ticket_keys_store(const struct tlsx_ticket_keys *k);
/* The pool of sent CAs (capool.c) of k, for both kinds of keys; NULL when k is NULL. */
struct tlsx_capool *tlsx_ticket_keys_pool(const struct tlsx_ticket_keys *k);
/* Rotations of k so far: a stored session lives while the key of its epoch would still
 * decrypt a ticket (this epoch or the one before). */
uint64_t tlsx_ticket_keys_epoch(struct tlsx_ticket_keys *k);
/* Cache mode, SSL_OP_NO_TICKET and the store callbacks on ctx. */
int tlsx_sess_store_install(SSL_CTX *ctx, struct tw_err *err);

/* Rotation period of random keys (seconds); file keys report the default period. */
int64_t tlsx_ticket_keys_period(const struct tlsx_ticket_keys *k);

/* 1 if the session's peer may resume at the ctx of ssl (current CRLs, policy, CA, validity);
 * records the verdict on ssl when not. */
int tlsx_resume_allowed(SSL *ssl, const SSL_SESSION *sess);

/* Shared by server and client ctx builders (ctx_common.c). */
int tlsx_ctx_set_versions(SSL_CTX *ctx, int min, int max, struct tw_err *err);
int tlsx_ctx_set_ciphers(SSL_CTX *ctx, const char *ciphers, const char *suites,
                         const char *groups, struct tw_err *err);
int tlsx_ctx_use_cert(SSL_CTX *ctx, const char *what, const char *cert_file, const char *key_file,
                      X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key, struct tw_err *err);

/* 1 if the CRL from issuer in set is past its nextUpdate at now; 0 otherwise (none, fresh). */
int tlsx_crl_set_issuer_expired(const struct tlsx_crl_set *set, const X509_NAME *issuer,
                                int64_t now);

/* Revocation of cert by the CRL of its issuer in set, the issuer's certificate being issuer
 * (NULL when unknown): 1 revoked, 0 not (or no CRL for it), -1 the CRL was never checked
 * against a CA and does not verify with issuer. A successful check is remembered. */
int tlsx_crl_set_check(const struct tlsx_crl_set *set, X509 *cert, X509 *issuer);

/* ASN1_TIME to unix seconds; 0 on failure. */
int64_t tlsx_asn1_time_unix(const ASN1_TIME *t);

#endif
