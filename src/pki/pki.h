/* The certificate authority: keys, profiles, certificate issuance, CSR intake, CRLs, PKCS#12,
 * and the CA on disk (root + intermediate + OCSP signer) with its inventory.
 *
 * Every use of a CA private key goes through struct pki_signer. Nothing here touches sockets;
 * the inventory is reached only through store/store.h. */
#ifndef TW_PKI_H
#define TW_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>

#include "store/store.h"
#include "util/err.h"

/* Limits on outside input. */
#define PKI_CSR_MAX (64u * 1024)   /* bytes of CSR (PEM or DER) accepted */
#define PKI_SECRET_MAX 1024        /* bytes of a passphrase or PKCS#12 password */
#define PKI_NAME_MAX 64            /* characters of a certificate NAME (RFC 5280 ub-common-name) */
#define PKI_SANS_MAX 32            /* subjectAltName entries per certificate */
#define PKI_SAN_VALUE_MAX 256      /* bytes of one SAN value */
#define PKI_URL_MAX 512            /* bytes of the CA's base URL */
#define PKI_BACKDATE_SECS (5 * 60) /* notBefore is this far in the past, for clock skew */
#define PKI_CA_PASSPHRASE_MIN 8    /* shortest passphrase `ca init` accepts */

/* ---------------------------------------------------------------- secrets */

/* A passphrase or password held in a fixed buffer so it can be wiped. */
struct pki_secret {
    char data[PKI_SECRET_MAX];
    size_t len;
};

/* Read the first line of path (trailing "\n" or "\r\n" dropped) into out. Fails with TW_ERR_IO
 * when unreadable or larger than PKI_SECRET_MAX, TW_ERR_PKI when the line is empty. The file
 * buffer is wiped before it is freed. */
int pki_secret_read_file(const char *path, struct pki_secret *out,
                         struct tw_err *err) TW_MUST_CHECK;

/* Set out from a NUL-terminated string (tests, env). TW_ERR_PKI if empty or too long. */
int pki_secret_set(struct pki_secret *out, const char *text, struct tw_err *err) TW_MUST_CHECK;

/* Wipe with OPENSSL_cleanse. Accepts NULL. */
void pki_secret_wipe(struct pki_secret *s);

/* ---------------------------------------------------------------- keys */

enum pki_key_type {
    PKI_KEY_EC_P256,
    PKI_KEY_EC_P384,
    PKI_KEY_ED25519,
    PKI_KEY_RSA2048,
    PKI_KEY_RSA3072,
    PKI_KEY_RSA4096,
};

/* Parse "ec:P-256|ec:P-384|ed25519|rsa:2048|rsa:3072|rsa:4096". TW_ERR_USAGE otherwise. */
int pki_key_type_parse(const char *text, enum pki_key_type *out, struct tw_err *err) TW_MUST_CHECK;

/* The canonical spelling of t, as pki_key_type_parse accepts it. */
const char *pki_key_type_name(enum pki_key_type t);

/* Generate a fresh private key. NULL with TW_ERR_PKI on failure. */
EVP_PKEY *pki_key_generate(enum pki_key_type t, struct tw_err *err);

/* Generate a key of type t inside store (a pkcs11: URI naming a token, or "tpm2:"), labelled
 * label in a token. *file is what to write as the key file (free with pki_pem_free); see
 * keystore_generate. TW_ERR_USAGE for a type the store cannot make (Ed25519, RSA 4096). */
EVP_PKEY *pki_key_generate_in(const char *store, const char *label, enum pki_key_type t,
                              char **file, size_t *len, struct tw_err *err);

/* Encode key as PKCS#8 PEM into a new buffer (*pem, *len; release with pki_pem_free). When pass
 * is non-NULL the key is encrypted with AES-256-CBC, key derived with scrypt. */
int pki_key_to_pem(EVP_PKEY *key, const struct pki_secret *pass, char **pem, size_t *len,
                   struct tw_err *err) TW_MUST_CHECK;

/* Wipe and free a buffer that may hold key material. Accepts NULL. */
void pki_pem_free(char *pem, size_t len);

/* Decode a private key PEM; label names its source in messages. An encrypted key with pass ==
 * NULL fails with TW_ERR_PKI "<label> is encrypted: ..."; a wrong pass with TW_ERR_PKI
 * "wrong passphrase for <label>"; anything unparsable with TW_ERR_PKI. */
EVP_PKEY *pki_key_from_pem(const char *pem, size_t len, const struct pki_secret *pass,
                           const char *label, struct tw_err *err);

/* Read a private key file: refused (TW_ERR_IO) when group/world can access it, then as
 * pki_key_from_pem with the path as label. */
EVP_PKEY *pki_key_load(const char *path, const struct pki_secret *pass, struct tw_err *err);

/* Accept a subject public key for issuance: RSA >= 2048 bits, EC P-256/P-384/P-521, Ed25519.
 * Anything else fails with TW_ERR_PKI naming label and the key. */
int pki_key_check_public(EVP_PKEY *key, const char *label, struct tw_err *err) TW_MUST_CHECK;

/* Whether private key and certificate belong together (1) or not (0). */
int pki_key_matches_cert(EVP_PKEY *key, X509 *cert);

/* ---------------------------------------------------------------- names and SANs */

/* A certificate NAME (CN, file base name): 1..PKI_NAME_MAX printable characters, no '/', not
 * starting with '.' or '-'. TW_ERR_USAGE naming the problem otherwise. */
int pki_name_check(const char *name, struct tw_err *err) TW_MUST_CHECK;

enum pki_san_type { PKI_SAN_DNS, PKI_SAN_IP, PKI_SAN_EMAIL, PKI_SAN_URI };

struct pki_san {
    enum pki_san_type type;
    char value[PKI_SAN_VALUE_MAX]; /* IPs in canonical text form */
};

struct pki_sans {
    struct pki_san items[PKI_SANS_MAX];
    size_t count;
};

/* Add one SAN after validating it (hostname syntax, inet_pton, "@" in email, scheme in URI).
 * Duplicates are ignored. TW_ERR_USAGE naming the value when invalid or when full. */
int pki_sans_add(struct pki_sans *sans, enum pki_san_type type, const char *value,
                 struct tw_err *err) TW_MUST_CHECK;

/* Add every entry of "dns:a.example,ip:10.0.0.1,email:x@y,uri:spiffe://t/x". */
int pki_sans_parse(struct pki_sans *sans, const char *list, struct tw_err *err) TW_MUST_CHECK;

/* Format as "dns:a,ip:1.2.3.4" (the store's spelling) into out. TW_ERR_INTERNAL if too long. */
int pki_sans_format(const struct pki_sans *sans, char *out, size_t cap,
                    struct tw_err *err) TW_MUST_CHECK;

/* "dns", "ip", "email", "uri". */
const char *pki_san_type_name(enum pki_san_type t);

/* ---------------------------------------------------------------- profiles */

enum pki_profile {
    PKI_PROFILE_ROOT,
    PKI_PROFILE_INTERMEDIATE,
    PKI_PROFILE_OCSP,
    PKI_PROFILE_CLIENT,
    PKI_PROFILE_SERVER,
    PKI_PROFILE_ADMIN, /* a console administrator: a client certificate only `ca issue admin`
                        * makes (never a token, an approval or a re-enrollment) */
};

/* Parse "root|intermediate|ocsp|client|server|admin". TW_ERR_USAGE otherwise. */
int pki_profile_parse(const char *name, enum pki_profile *out, struct tw_err *err) TW_MUST_CHECK;

const char *pki_profile_name(enum pki_profile p);

/* Default validity in days (client 30, admin 30, server 90, ocsp/intermediate 1825, root 3650). */
int pki_profile_default_days(enum pki_profile p);

/* 1 when a certificate of profile p may carry a SAN of type t. */
int pki_profile_allows_san(enum pki_profile p, enum pki_san_type t);

/* ---------------------------------------------------------------- CSR intake */

struct pki_csr;

/* Parse a PKCS#10 request (PEM or DER, at most PKI_CSR_MAX bytes), verify its signature (proof
 * of possession), check its key with pki_key_check_public and collect its SANs. Nothing else
 * of the CSR is kept. label (usually the file name) starts every error message. Fails with
 * TW_ERR_PKI. */
struct pki_csr *pki_csr_parse(const void *data, size_t len, const char *label, struct tw_err *err);

/* Release. Accepts NULL. */
void pki_csr_free(struct pki_csr *csr);

/* The requester's public key (borrowed; lives as long as csr). */
EVP_PKEY *pki_csr_pubkey(const struct pki_csr *csr);

/* The same key as the CSR encoded it (its SubjectPublicKeyInfo; borrowed, lives as long as
 * csr): for pki_cert_request.spki. */
const X509_PUBKEY *pki_csr_spki(const struct pki_csr *csr);

/* Merge the CSR's SANs into sans. A SAN kind profile p does not allow fails with TW_ERR_PKI
 * naming it (never silently dropped). */
int pki_csr_take_sans(const struct pki_csr *csr, enum pki_profile p, struct pki_sans *sans,
                      struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- signer */

/* A CA private key and its certificate: the one way anything gets signed. */
struct pki_signer;

/* Wrap key (and cert, NULL while making a self-signed root). Both are up-referenced; the
 * caller keeps its own references. Fails with TW_ERR_PKI when key does not match cert. */
struct pki_signer *pki_signer_new(EVP_PKEY *key, X509 *cert, struct tw_err *err);

/* Wipe and free. Accepts NULL. */
void pki_signer_free(struct pki_signer *s);

/* The signer's certificate (borrowed), NULL for a self-signing signer. */
X509 *pki_signer_cert(const struct pki_signer *s);

/* Sign cert: SHA-384 for P-384 keys, none for Ed25519, SHA-256 otherwise. */
int pki_signer_sign_cert(struct pki_signer *s, X509 *cert, struct tw_err *err) TW_MUST_CHECK;

/* Sign a CRL the same way. */
int pki_signer_sign_crl(struct pki_signer *s, X509_CRL *crl, struct tw_err *err) TW_MUST_CHECK;

/* Sign an OCSP basic response, including certs (may be NULL) with the signer's cert. */
int pki_signer_sign_ocsp(struct pki_signer *s, OCSP_BASICRESP *resp, STACK_OF(X509) * certs,
                         struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- certificates */

/* What to put in a certificate; the profile decides the extensions. */
struct pki_cert_request {
    enum pki_profile profile;
    const char *cn;              /* subject CN */
    const struct pki_sans *sans; /* NULL or empty: none (server requires at least one) */
    EVP_PKEY *pubkey;            /* subject key (only its public part is used) */
    const X509_PUBKEY *spki;     /* NULL, or pubkey as a CSR encoded it: copied as is */
    int64_t lifetime;            /* seconds from now; capped at the issuer's notAfter */
    const char *base_url;        /* NULL: no CRL DP / OCSP AIA; else URL/crl and URL/ocsp */
};

/* Build and sign a certificate: random 128-bit positive serial, notBefore now -
 * PKI_BACKDATE_SECS, notAfter min(now + lifetime, issuer's notAfter), SKI, AKI, the profile's
 * extensions. TW_ERR_PKI on a bad request (e.g. server without SAN, lifetime <= 0). */
X509 *pki_cert_make(struct pki_signer *signer, const struct pki_cert_request *req, time_t now,
                    struct tw_err *err);

/* Serial as upper-case hex without leading zeros (the store's spelling). */
int pki_cert_serial_hex(const X509 *cert, char *out, size_t cap, struct tw_err *err) TW_MUST_CHECK;

/* SHA-256 of the DER: lower-case hex into hex (65 bytes) and, if colon != NULL, upper-case
 * colon-separated into colon (96 bytes). */
int pki_cert_fingerprint(const X509 *cert, char hex[65], char *colon,
                         struct tw_err *err) TW_MUST_CHECK;

/* PEM of cert in a new NUL-terminated buffer (free()). */
char *pki_cert_to_pem(const X509 *cert, size_t *len, struct tw_err *err);

/* Parse the first certificate of a PEM buffer; label names it in errors (TW_ERR_PKI). */
X509 *pki_cert_from_pem(const char *pem, size_t len, const char *label, struct tw_err *err);

/* Read a PEM certificate file (TW_ERR_IO when unreadable, TW_ERR_PKI when not a cert). */
X509 *pki_cert_load(const char *path, struct tw_err *err);

/* ASN1_TIME to unix seconds. */
int pki_time_to_unix(const ASN1_TIME *t, int64_t *out, struct tw_err *err) TW_MUST_CHECK;

/* Distinguished name as the inventory spells it (RFC 2253, e.g. "CN=alice"). */
int pki_name_to_text(const X509_NAME *name, char *out, size_t cap,
                     struct tw_err *err) TW_MUST_CHECK;

/* Fill an inventory row from cert. The row owns a copy of the PEM (store_cert_clear). */
int pki_cert_to_row(const X509 *cert, const char *name, enum pki_profile p, int64_t issued_at,
                    struct store_cert *row, struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- revocation */

#define PKI_REASON_COUNT 11 /* RFC 5280 CRLReason codes 0..10, 7 unused */

/* Parse an RFC 5280 reason name, case-insensitive ("keyCompromise"). TW_ERR_USAGE otherwise. */
int pki_reason_parse(const char *name, int *code, struct tw_err *err) TW_MUST_CHECK;

/* Name of a reason code, "unknown" for others. */
const char *pki_reason_name(int code);

struct pki_crl_entry {
    const char *serial_hex;
    int64_t revoked_at;
    int reason; /* 0 (unspecified): no reasonCode extension, as RFC 5280 §5.3.1 recommends */
};

/* Build and sign a v2 CRL: issuer = signer's cert, CRL number, AKI, thisUpdate now, nextUpdate
 * now + next_update seconds, one entry per revoked certificate with its reason. */
X509_CRL *pki_crl_make(struct pki_signer *signer, const struct pki_crl_entry *entries, size_t n,
                       int64_t number, time_t now, int64_t next_update, struct tw_err *err);

/* ---------------------------------------------------------------- PKCS#12 */

/* Build a PKCS#12 (DER into *der, *len; free with OPENSSL_free) holding key, cert and chain
 * (may be NULL), friendly name name. Default: AES-256-CBC + PBKDF2/HMAC-SHA256, SHA-256 MAC.
 * legacy: 3DES (pbeWithSHA1And3-KeyTripleDES-CBC) + SHA-1 MAC for old macOS/Windows/Java.
 * An empty password fails with TW_ERR_PKI. */
int pki_p12_make(EVP_PKEY *key, X509 *cert, STACK_OF(X509) * chain, const char *name,
                 const struct pki_secret *pass, int legacy, unsigned char **der, size_t *len,
                 struct tw_err *err) TW_MUST_CHECK;

/* ---------------------------------------------------------------- the CA on disk */

struct pki_ca_options {
    const char *dir;                     /* data dir; created 0700 when missing */
    const char *name;                    /* NULL: "twoway CA" */
    enum pki_key_type key_type;          /* for root, intermediate and OCSP signer */
    int root_days;                       /* <= 0: 3650 */
    int int_days;                        /* <= 0: 1825 */
    const char *base_url;                /* NULL: none */
    const struct pki_secret *passphrase; /* NULL: keys not encrypted */
    const char *key_store;               /* NULL: key files; else a pkcs11: URI or "tpm2:"
                                          * where the three keys are made (non-extractable) */
};

struct pki_ca_created {
    char root_sha256[65];       /* lower-case hex */
    char root_sha256_colon[96]; /* "AB:CD:..." */
};

/* Create the CA in opt->dir: built in dir/.ca-init.XXXXXX, recorded in the inventory
 * (dir/ca.db) and renamed to dir/ca as the last step, so no half-written CA is ever at dir/ca.
 * TW_ERR_EXISTS when dir/ca exists; TW_ERR_USAGE for a bad name/URL/short passphrase. Adds an
 * "init" audit row (also on failure once the store is open). */
int pki_ca_init(const struct pki_ca_options *opt, struct pki_ca_created *out,
                struct tw_err *err) TW_MUST_CHECK;

struct pki_ca;

/* Open the CA in dir: settings, certificates, inventory; no private key yet. TW_ERR_NOTFOUND
 * when there is no CA, TW_ERR_PKI when it is half-written or its files are inconsistent. */
int pki_ca_open(const char *dir, struct pki_ca **out, struct tw_err *err) TW_MUST_CHECK;

/* Close. Accepts NULL. */
void pki_ca_free(struct pki_ca *ca);

/* Load the intermediate's key so the CA can sign. pass may be NULL for an unencrypted CA.
 * TW_ERR_PKI for a missing or wrong passphrase. */
int pki_ca_unlock(struct pki_ca *ca, const struct pki_secret *pass,
                  struct tw_err *err) TW_MUST_CHECK;

/* A signer for OCSP responses (the OCSP signing certificate and key); caller frees. */
struct pki_signer *pki_ca_ocsp_signer(struct pki_ca *ca, const struct pki_secret *pass,
                                      struct tw_err *err);

/* Borrowed views. */
struct store *pki_ca_store(struct pki_ca *ca);
const char *pki_ca_dir(const struct pki_ca *ca);
X509 *pki_ca_root_cert(const struct pki_ca *ca);
X509 *pki_ca_intermediate_cert(const struct pki_ca *ca);
X509 *pki_ca_ocsp_cert(const struct pki_ca *ca);
const char *pki_ca_base_url(const struct pki_ca *ca); /* NULL when not set */
/* ca.conf "http-listen = ADDR:PORT": where `ca serve` answers plain HTTP; NULL when not set. */
const char *pki_ca_http_listen(const struct pki_ca *ca);
int pki_ca_crl_days(const struct pki_ca *ca);

/* Issue a certificate signed by the intermediate (pki_ca_unlock first): build it, then commit
 * its inventory row; only then is it handed out (*out). base_url comes from the CA settings. */
int pki_ca_issue(struct pki_ca *ca, const struct pki_cert_request *req, X509 **out,
                 struct tw_err *err) TW_MUST_CHECK;

/* Find by serial (hex, colons allowed) or else the newest certificate issued to that name.
 * TW_ERR_NOTFOUND naming what was asked for. */
int pki_ca_find(struct pki_ca *ca, const char *serial_or_name, struct store_cert *out,
                struct tw_err *err) TW_MUST_CHECK;

/* Record a revocation. TW_ERR_NOTFOUND, TW_ERR_EXISTS when already revoked, TW_ERR_PKI for
 * the root or intermediate. */
int pki_ca_revoke(struct pki_ca *ca, const char *serial, int reason, int64_t when,
                  struct tw_err *err) TW_MUST_CHECK;

/* Build a CRL from the inventory (next CRL number, nextUpdate in days) and write dir/ca/crl.pem
 * and dir/ca/crl.der atomically, plus extra_out when non-NULL (DER if it ends in ".der").
 * Needs pki_ca_unlock. Reports the number, entry count and nextUpdate when non-NULL. */
int pki_ca_crl_write(struct pki_ca *ca, int days, const char *extra_out, int64_t *number,
                     size_t *entries, int64_t *next_update, struct tw_err *err) TW_MUST_CHECK;

/* Append an audit row: result "ok" when failure is NULL or TW_OK, else its message. Errors of
 * the audit itself go to err (the caller decides whether they matter). */
int pki_ca_audit(struct pki_ca *ca, const char *action, const char *subject, const char *serial,
                 const struct tw_err *failure, struct tw_err *err) TW_MUST_CHECK;

/* The chain a relying party needs after a leaf: intermediate then root (new stack, up-refs). */
STACK_OF(X509) * pki_ca_chain(const struct pki_ca *ca, struct tw_err *err);

/* ---------------------------------------------------------------- EST, OCSP, tokens (issue 4) */

#define PKI_TOKEN_BYTES 20    /* 160 random bits per enrollment token */
#define PKI_TOKEN_TEXT_MAX 64 /* bytes of a token as typed (hex of PKI_TOKEN_BYTES + NUL) */
#define PKI_OCSP_REQUEST_MAX (16u * 1024) /* bytes of one OCSP request */
#define PKI_OCSP_IDS_MAX 16               /* certificates asked about in one OCSP request */
#define PKI_OCSP_VALIDITY 3600            /* seconds from thisUpdate to nextUpdate */

/* A fresh token: PKI_TOKEN_BYTES random bytes as lower-case hex into out. */
int pki_token_generate(char out[PKI_TOKEN_TEXT_MAX], struct tw_err *err) TW_MUST_CHECK;

/* SHA-256 of the token text (len bytes), lower-case hex: the only form that is stored. */
int pki_token_hash(const char *token, size_t len, char hex[65], struct tw_err *err) TW_MUST_CHECK;

struct pki_token_spec {
    const char *name;            /* NAME the token may enroll (pki_name_check) */
    enum pki_profile profile;    /* client or server */
    const struct pki_sans *sans; /* SANs the CSR may ask for; NULL: none */
    int64_t ttl;                 /* seconds the token stays usable (> 0) */
    int64_t lifetime;            /* validity of the certificate; 0: profile default */
};

/* Create and store a token (only its hash is kept) and audit it ("token"). The token text goes
 * to token (wipe it after use); *expires_at (may be NULL) gets its expiry. TW_ERR_USAGE for a
 * bad name/profile/ttl. */
int pki_ca_token_create(struct pki_ca *ca, const struct pki_token_spec *spec,
                        char token[PKI_TOKEN_TEXT_MAX], int64_t *expires_at,
                        struct tw_err *err) TW_MUST_CHECK;

/* First enrollment (RFC 7030 §4.2.1) paid with a token, for name. In one store transaction:
 * the token is marked used (single use even across processes), the certificate is issued
 * (CN=name, the token's profile and SANs; the CSR's SANs must be among the token's; server
 * certificates also carry name as a SAN), its row and an "enroll" audit row are committed; only
 * then is *out set. label: the profile named in the URL, or -1. Errors: TW_ERR_VERIFY for any
 * token problem (unknown, other name, used, expired: the caller answers 401), TW_ERR_POLICY for
 * a refused request (403), TW_ERR_PKI for a bad CSR (400), others for server faults. Failures
 * are audited. */
int pki_ca_enroll_token(struct pki_ca *ca, const char *name, const char *token,
                        const struct pki_csr *csr, int label, X509 **out,
                        struct tw_err *err) TW_MUST_CHECK;

/* Re-enrollment (RFC 7030 §4.2.2) with the current certificate, which the TLS layer verified:
 * it must be the very certificate the inventory holds for its serial (same SHA-256), valid
 * (not revoked, not expired) and of profile client or server; the CSR's subject (csr_subject)
 * and SANs must equal the certificate's. The new certificate has the same name, profile, SANs
 * and validity period, and is committed with a "reenroll" audit row before *out is set.
 * TW_ERR_POLICY for every refusal (403) with a plain reason; TW_ERR_PKI for a bad CSR. */
int pki_ca_reenroll(struct pki_ca *ca, X509 *current, const struct pki_csr *csr,
                    const X509_NAME *csr_subject, int label, X509 **out,
                    struct tw_err *err) TW_MUST_CHECK;

/* The subject of a PKCS#10 request (PEM or DER; as pki_csr_parse reads it), new object. */
X509_NAME *pki_csr_subject(const void *data, size_t len, const char *label, struct tw_err *err);

/* Build a PKCS#10 request signed by key: subject CN=cn, SANs as an extensionRequest (sans may
 * be NULL), or with subject/sans copied from a certificate when from is non-NULL (re-enroll).
 * DER into *der (OPENSSL_free). */
int pki_csr_make(EVP_PKEY *key, const char *cn, const struct pki_sans *sans, X509 *from,
                 unsigned char **der, size_t *len, struct tw_err *err) TW_MUST_CHECK;

/* RFC 7030 §4.5.2 CSR attributes for an enrollment into profile (a pki_profile, or -1 when
 * the request names none), as DER CsrAttrs into *der (OPENSSL_free): challengePassword when
 * challenge_password, the key types and EC curves pki_key_check_public accepts, SHA-256
 * signature algorithms, and for PKI_PROFILE_SERVER an extensionRequest for a subjectAltName. */
int pki_csrattrs_der(int profile, int challenge_password, unsigned char **der, size_t *len,
                     struct tw_err *err) TW_MUST_CHECK;

/* A degenerate ("certs-only") PKCS#7 SignedData holding certs, DER into *der (OPENSSL_free). */
int pki_p7_certs_only(STACK_OF(X509) * certs, unsigned char **der, size_t *len,
                      struct tw_err *err) TW_MUST_CHECK;

/* The certificates of a certs-only PKCS#7 (DER). TW_ERR_PKI naming label when it is not one,
 * or holds none. */
STACK_OF(X509) *
    pki_p7_certs_parse(const void *der, size_t len, const char *label, struct tw_err *err);

/* One certificate asked about in an OCSP request. */
struct pki_ocsp_id {
    int md_nid;                    /* hash of issuerNameHash / issuerKeyHash */
    char serial[STORE_SERIAL_MAX]; /* upper-case hex, no leading zeros */
};

struct pki_ocsp_query {
    struct pki_ocsp_id ids[PKI_OCSP_IDS_MAX];
    size_t count;
    int has_nonce;
};

/* Parse a DER OCSPRequest (RFC 6960 §4.1) with the limits above. TW_ERR_PKI when malformed,
 * empty, or asking about more than PKI_OCSP_IDS_MAX certificates. */
int pki_ocsp_request_parse(const void *der, size_t len, struct pki_ocsp_query *out,
                           struct tw_err *err) TW_MUST_CHECK;

/* Answer a DER OCSP request for certificates the intermediate issued, from the inventory, as
 * it is right now. The answer is always an OCSPResponse in *der (OPENSSL_free): malformedRequest
 * for an unparsable request, unauthorized when it asks about an issuer other than the
 * intermediate, internalError when the inventory fails; else a BasicOCSPResponse signed by
 * signer (the OCSP signing certificate, included) with, per certificate, good / revoked (time,
 * reason) / unknown (not in the inventory), thisUpdate now, nextUpdate now + validity seconds,
 * and the request's nonce echoed. *status (may be NULL) gets the OCSPResponseStatus. Returns -1
 * only when no response at all can be encoded. */
int pki_ocsp_respond(struct pki_ca *ca, struct pki_signer *signer, const void *req, size_t len,
                     time_t now, int64_t validity, unsigned char **der, size_t *der_len,
                     int *status, struct tw_err *err) TW_MUST_CHECK;

#endif
