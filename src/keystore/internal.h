/* Private to keystore/: the PKCS#11 token layer, the in-process OpenSSL provider that makes a
 * token key an EVP_PKEY, and the TPM 2.0 route through Debian's tpm2-openssl provider. */
#ifndef TW_KEYSTORE_INTERNAL_H
#define TW_KEYSTORE_INTERNAL_H

#include <p11-kit/pkcs11.h>

#include <openssl/core.h>
#include <openssl/crypto.h>

#include "keystore/keystore.h"

#define P11_LABEL_MAX 128 /* token and object labels, after percent-decoding */
#define P11_ID_MAX 64     /* CKA_ID bytes */
#define P11_PROV_NAME "twoway-hwkeys"

/* An RFC 7512 URI, decoded. Only the attributes twoway uses; others are refused by name. */
struct p11_uri {
    char token[P11_LABEL_MAX + 1];
    char object[P11_LABEL_MAX + 1];
    unsigned char id[P11_ID_MAX];
    size_t id_len;
    char module[KEYSTORE_REF_MAX];
    char pin_file[KEYSTORE_REF_MAX];
    int want_private; /* type=private or no type */
};

int p11_uri_parse(const char *uri, struct p11_uri *out, struct tw_err *err) TW_MUST_CHECK;

/* Fill the PIN file and module the URI leaves out from keystore_set_pin_file/_module (done by
 * p11_uri_parse); TW_ERR_CONFIG when the URI names a different one. */
int p11_uri_apply_defaults(struct p11_uri *u, struct tw_err *err) TW_MUST_CHECK;

/* A session on one token, logged in, with the private key object a URI names. Owned by the
 * provider key (struct p11_key); signatures on one session are serialised by lock. */
struct p11_session {
    struct p11_uri uri; /* to find the token and key again after a removal (no PIN kept) */
    int dead;           /* the PIN was refused on a re-login: never tried again */
    long last_reopen;   /* monotonic second of the last reopen attempt */
    CK_RV last_rv;      /* what the token last answered a signature with, for the log */
    char module[KEYSTORE_REF_MAX]; /* the module's path, to re-initialise it */
    CK_FUNCTION_LIST *fn;
    CK_SESSION_HANDLE handle;
    CK_OBJECT_HANDLE priv;
    CK_KEY_TYPE type; /* CKK_EC or CKK_RSA */
    CRYPTO_RWLOCK *lock;
    char token[P11_LABEL_MAX + 1];
    char object[P11_LABEL_MAX + 1];
};

/* Open a session on the token u names, log in once with its PIN, find the private key and
 * build its public half (*pub, a default-provider key). */
struct p11_session *p11_session_open(const struct p11_uri *u, EVP_PKEY **pub,
                                     struct tw_err *err);
void p11_session_close(struct p11_session *s);

/* A logged-in session on the token u names, no key looked up yet. */
struct p11_session *p11_session_open_bare(const struct p11_uri *u, struct tw_err *err);

/* C_Sign with mechanism mech (and its parameter) over in; out holds the raw signature. */
/* Plain words for a PKCS#11 return value. */
const char *p11_rv_text(CK_RV rv);

int p11_session_sign(struct p11_session *s, CK_MECHANISM *mech, const unsigned char *in,
                     size_t inlen, unsigned char *out, size_t *outlen, struct tw_err *err);

/* Destroy the private key u names and the public key object with the same label and id; the
 * URI must match exactly one private key. */
int p11_destroy(const struct p11_uri *u, struct tw_err *err) TW_MUST_CHECK;

/* Generate a key pair in the token u names; *uri_out gets the new key's URI (type=private). */
int p11_generate(const struct p11_uri *u, const char *store_uri, const char *label,
                 const struct keystore_keyspec *spec, char *uri_out, size_t cap,
                 struct tw_err *err) TW_MUST_CHECK;

/* The provider's key: the public half the provider answers questions with, and what signs:
 * a PKCS#11 session, or an inner key of another provider (a TPM key of tpm2-openssl) that
 * signs with the property query inner_props: kept loaded (inner, a persistent TPM handle,
 * which takes no transient slot) or loaded from its TSS2 blob for each signature and flushed
 * right after (blob): a TPM has only a few transient object slots (swtpm: three), and a CA
 * holds three keys. */
struct p11_key {
    struct p11_session *session;
    EVP_PKEY *inner;
    const char *inner_props;
    char *blob;
    size_t blob_len;
    EVP_PKEY *pub;
    int refs;
    CRYPTO_RWLOCK *refs_lock;
};

/* Register and load the twoway-hwkeys provider in the default library context (once). */
int p11_provider_load(struct tw_err *err) TW_MUST_CHECK;

/* Wrap an open session as an EVP_PKEY of the provider; takes session and pub. */
EVP_PKEY *p11_key_wrap(struct p11_session *session, EVP_PKEY *pub, struct tw_err *err);

/* Wrap a key of another provider (taken) so that signing always stays in it: OpenSSL would
 * otherwise move a TPM key's public half to the default provider's signature code and fail
 * with "missing private key". props selects the inner key's provider ("provider=tpm2"). */
EVP_PKEY *p11_key_wrap_inner(EVP_PKEY *inner, const char *props, struct tw_err *err);

/* The same for a key loaded from TSS2 PEM text: blob (copied) is kept and inner (taken) is
 * freed, which flushes it from the TPM, once its public half is read. */
EVP_PKEY *p11_key_wrap_blob(EVP_PKEY *inner, const char *props, const char *blob,
                            size_t blob_len, struct tw_err *err);

/* True when k signs through another provider's key (kept loaded or loaded per signature). */
static inline int p11_key_has_inner(const struct p11_key *k)
{
    return k->inner != NULL || k->blob != NULL;
}

/* The provider's tables, defined in p11_keymgmt.c and p11_sig.c. */
extern const OSSL_DISPATCH p11_keymgmt_ec[], p11_keymgmt_rsa[];
extern const OSSL_DISPATCH p11_sig_ecdsa[], p11_sig_rsa[];
struct p11_key *p11_key_ref(struct p11_key *k);
void p11_key_unref(struct p11_key *k);

/* The TPM route: load a tpm2:handle:... reference or TSS2 PEM text; generate in the TPM. */
EVP_PKEY *tpm2_load_ref(const char *ref, struct tw_err *err);
EVP_PKEY *tpm2_load_pem(const char *pem, size_t len, const char *label, struct tw_err *err);
EVP_PKEY *tpm2_generate(const struct keystore_keyspec *spec, char **pem, size_t *len,
                        struct tw_err *err);

/* The key of another provider k signs with now: k->inner (a new reference), or k->blob loaded
 * into the TPM under a process-wide lock (one TPM key loaded at a time, and ESYS contexts are
 * not thread-safe). NULL when the TPM cannot load it, with the reason noted for
 * keystore_take_failure. Every non-NULL result goes back through tpm2_inner_put, which frees
 * it (flushing a blob's transient object) and releases the lock. */
EVP_PKEY *tpm2_inner_get(struct p11_key *k);

/* EVP_PKEY_free of a tpm2-openssl key (its flush) taking turns with the signatures above. */
void tpm2_key_free(EVP_PKEY *key);
void tpm2_inner_put(struct p11_key *k, EVP_PKEY *inner);

/* Remember msg as this thread's last signing failure (keystore_take_failure). */
void keystore_note_failure(const char *msg);

/* OSSL_PROVIDER_load into the default library context, kept until exit; 1 on success. Only
 * called under CRYPTO_THREAD_run_once. */
int keystore_provider_load(const char *name);

/* Prefer the default provider for every fetch that does not ask for another: once a token or
 * TPM provider is loaded, its EC and RSA key management must not serve ordinary keys. */
int keystore_prefer_default(struct tw_err *err) TW_MUST_CHECK;

#endif
