/* One interface for "a private key", wherever it lives: a PEM file, a key in a PKCS#11 token
 * (RFC 7512 `pkcs11:` URI) or a key in a TPM 2.0 (`tpm2:handle:0x81000001`, or a TSS2 PEM
 * key file). Callers get an EVP_PKEY that signs where the key lives; nothing outside this
 * module knows about PKCS#11 or TPMs. */
#ifndef TW_KEYSTORE_KEYSTORE_H
#define TW_KEYSTORE_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "util/err.h"

#define KEYSTORE_REF_MAX 1024 /* longest key reference (URI) accepted */

/* The PIN file (--pin-file, `pin-file =`) and PKCS#11 module (--pkcs11-module,
 * `pkcs11-module =`) for every pkcs11: URI that does not name its own `pin-source=` /
 * `module-path=`; a URI naming a different one is refused ("... disagree"). They win over
 * $TWOWAY_PKCS11_PIN_FILE / $TWOWAY_PKCS11_MODULE. NULL or "" clears. The PIN file must exist
 * and not be readable by group or others (like a key file); the module must exist. */
int keystore_set_pin_file(const char *path, struct tw_err *err) TW_MUST_CHECK;
int keystore_set_module(const char *path, struct tw_err *err) TW_MUST_CHECK;

/* True when text is a key reference (starts with "pkcs11:" or "tpm2:") rather than a path. */
bool keystore_is_ref(const char *text);

/* The private key ref names: a pkcs11: URI, a tpm2: reference, or the path of a key file.
 * A key file holds an unencrypted PEM private key, a TSS2 PEM key (a TPM key blob), or one
 * line naming a reference (what `--key-store` leaves next to a certificate). Key files must
 * not be readable by group or others. The PIN of a token comes from the URI's
 * `pin-source=file:PATH`, else keystore_set_pin_file's, else $TWOWAY_PKCS11_PIN_FILE; it is tried once, never again after
 * a refusal (tokens lock after a few wrong PINs). The PKCS#11 module is the URI's
 * `module-path=`, else keystore_set_module's, else $TWOWAY_PKCS11_MODULE. Errors: TW_ERR_IO for unreadable files,
 * TW_ERR_CONFIG for a malformed reference, a module that does not load, a token or key not
 * found, a wrong or locked PIN; an encrypted PEM file fails with "... is encrypted". */
EVP_PKEY *keystore_load(const char *ref, struct tw_err *err);

/* True when the text of a key file names hardware (a reference line or a TSS2 PEM key). */
bool keystore_text_is_hw(const char *text, size_t len);

/* keystore_load for the text of a key file already read; label names it in errors. */
EVP_PKEY *keystore_load_text(const char *text, size_t len, const char *label,
                             struct tw_err *err);

/* What to make: alg "EC" with group "P-256" or "P-384", or alg "RSA" with bits 2048 or 3072. */
struct keystore_keyspec {
    const char *alg;
    const char *group;
    size_t bits;
};

/* Make a non-extractable key inside the store named by store: a pkcs11: URI naming a token
 * (the key gets the object label `label` and a fresh CKA_ID; CKA_SENSITIVE true,
 * CKA_EXTRACTABLE false), or "tpm2:" (a key under the TPM's storage hierarchy). On success
 * *file holds what to write as the key file (0600): the key's pkcs11: URI on one line, or the
 * TSS2 PEM blob that only this TPM can load; free it with keystore_file_free. TW_ERR_USAGE for
 * a key type the store cannot make, else as keystore_load. */
EVP_PKEY *keystore_generate(const char *store, const char *label,
                            const struct keystore_keyspec *spec, char **file, size_t *file_len,
                            struct tw_err *err);

/* The store the key named by key_file (a path or a reference) lives in, for making its
 * successor there (renew --rekey): its pkcs11: URI, "tpm2:", or "" for a plain key file. */
int keystore_store_of(const char *key_file, char *store, size_t cap,
                      struct tw_err *err) TW_MUST_CHECK;

/* After `renew --rekey` swapped in a new key file: destroy the previous key where it lives,
 * so that no retired private key stays usable in the token. old_text is the previous key
 * file's text (or reference). A pkcs11: reference: its private key object and the public key
 * object beside it are destroyed (C_DestroyObject; the reference must match exactly one
 * private key); *what names it ("key 'bob 1' in token 'twoway'"). A TSS2 blob or a PEM key:
 * nothing to do, the file the swap replaced was the only copy; *what is "". A tpm2:handle:
 * reference: left in place (*what is "" and *left names it): evicting a persistent handle
 * needs the owner hierarchy's authorization, which twoway does not hold. */
int keystore_destroy(const char *old_text, size_t len, char *what, size_t what_cap, char *left,
                     size_t left_cap, struct tw_err *err) TW_MUST_CHECK;

/* Where the key named by key_file (a path or a reference) lives, in words for people, into
 * buf: "in PKCS#11 token 'T' (object 'O')", "in the TPM (a TSS2 key blob only that TPM can
 * load)", "in the TPM at persistent handle 0x81000001", or "" for a key in a file (also when
 * the file cannot be read: the load reports that). */
void keystore_describe(const char *key_file, char *buf, size_t cap);

/* Free what keystore_generate returned in *file. Accepts NULL. */
void keystore_file_free(char *file, size_t len);

/* True when key signs in a token or TPM (its private half never was in this process). */
bool keystore_key_is_hardware(const EVP_PKEY *key);

/* The public half of key as a plain (default provider) key, for encoding into CSRs and
 * certificates. Returns a new reference; NULL with err on failure. */
EVP_PKEY *keystore_public(EVP_PKEY *key, struct tw_err *err);

/* Why the last signature in a token or TPM failed on this thread, in the token's words
 * ("token 'gw': signing with 'k' failed: the token is not present (CKR_TOKEN_NOT_PRESENT)"),
 * once: true and buf filled when there is one (then forgotten). libssl reports such a failure
 * only as "EVP lib"; the gateway logs this instead. */
bool keystore_take_failure(char *buf, size_t cap);

#endif
