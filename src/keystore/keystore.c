/* Dispatch on what a key reference names, and the file backend: PEM files as twoway always
 * read them, plus the two kinds of key file that only point at hardware (a reference line,
 * a TSS2 key blob). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include "keystore/internal.h"
#include "util/fs.h"

#define KEYSTORE_FILE_MAX (64u * 1024)

#define TSS2_PEM "-----BEGIN TSS2 PRIVATE KEY-----"

bool keystore_is_ref(const char *text)
{
    return text != NULL && (strncmp(text, "pkcs11:", 7) == 0 || strncmp(text, "tpm2:", 5) == 0);
}

/* Providers keystore loaded, unloaded at exit so nothing of them outlives OpenSSL's cleanup
 * (OpenSSL registered its own atexit handler first, so ours runs before it). */
#define KEPT_MAX 4
static OSSL_PROVIDER *kept[KEPT_MAX];
static size_t kept_count;

static void release_providers(void)
{
    while (kept_count > 0)
        OSSL_PROVIDER_unload(kept[--kept_count]);
}

int keystore_provider_load(const char *name)
{
    OSSL_PROVIDER *p = OSSL_PROVIDER_load(NULL, name);
    if (p == NULL)
        return 0;
    if (kept_count == 0 && atexit(release_providers) != 0) {
        OSSL_PROVIDER_unload(p);
        return 0;
    }
    if (kept_count == KEPT_MAX) {
        OSSL_PROVIDER_unload(p);
        return 0;
    }
    kept[kept_count++] = p;
    return 1;
}

/* Per thread: a gateway worker's handshake fails on the thread whose signature failed. */
static _Thread_local char last_failure[256];

void keystore_note_failure(const char *msg)
{
    snprintf(last_failure, sizeof(last_failure), "%s", msg != NULL ? msg : "");
}

bool keystore_take_failure(char *buf, size_t cap)
{
    if (last_failure[0] == '\0')
        return false;
    if (cap > 0)
        snprintf(buf, cap, "%s", last_failure);
    last_failure[0] = '\0';
    return true;
}

static CRYPTO_ONCE prefer_once = CRYPTO_ONCE_STATIC_INIT;
static int prefer_ok;

static void prefer(void)
{
    prefer_ok = EVP_set_default_properties(NULL, "?provider=default") == 1;
}

int keystore_prefer_default(struct tw_err *err)
{
    TW_ENSURE_OSSL(CRYPTO_THREAD_run_once(&prefer_once, prefer) && prefer_ok, err,
                   TW_ERR_INTERNAL, "cannot set OpenSSL's default properties");
    return 0;
}

static EVP_PKEY *load_pkcs11(const char *uri, struct tw_err *err)
{
    struct p11_uri u;
    TW_GUARD_PTR(p11_uri_parse(uri, &u, err));
    TW_GUARD_PTR(p11_provider_load(err));
    EVP_PKEY *pub = NULL;
    struct p11_session *s = p11_session_open(&u, &pub, err);
    return s != NULL ? p11_key_wrap(s, pub, err) : NULL;
}

/* A TPM key (taken) wrapped so that it always signs in the TPM (see p11_key_wrap_inner):
 * kept loaded when it is a persistent handle, else (blob, its TSS2 PEM text) flushed now and
 * loaded from the blob again for each signature. */
static EVP_PKEY *wrap_tpm2(EVP_PKEY *key, const char *blob, size_t blob_len, struct tw_err *err)
{
    if (key == NULL)
        return NULL;
    if (p11_provider_load(err) != 0) {
        EVP_PKEY_free(key);
        return NULL;
    }
    if (blob != NULL)
        return p11_key_wrap_blob(key, "?provider=tpm2", blob, blob_len, err);
    return p11_key_wrap_inner(key, "?provider=tpm2", err);
}

static EVP_PKEY *load_ref(const char *ref, struct tw_err *err)
{
    if (strncmp(ref, "pkcs11:", 7) == 0)
        return load_pkcs11(ref, err);
    return wrap_tpm2(tpm2_load_ref(ref + 5, err), NULL, 0, err);
}

/* One line naming a reference: the line, without its end, into ref. */
static int ref_line(const char *text, size_t len, char *ref, size_t cap)
{
    size_t n = 0;
    while (n < len && text[n] != '\n' && text[n] != '\r' && text[n] != '\0')
        n++;
    if (n >= cap)
        return 0;
    memcpy(ref, text, n);
    ref[n] = '\0';
    return keystore_is_ref(ref);
}

bool keystore_text_is_hw(const char *text, size_t len)
{
    char ref[KEYSTORE_REF_MAX];
    return ref_line(text, len, ref, sizeof(ref)) ||
           memmem(text, len, TSS2_PEM, strlen(TSS2_PEM)) != NULL;
}

/* No passphrase prompts: a daemon cannot answer them. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

EVP_PKEY *keystore_load_text(const char *text, size_t len, const char *label,
                             struct tw_err *err)
{
    char ref[KEYSTORE_REF_MAX];
    if (ref_line(text, len, ref, sizeof(ref)))
        return load_ref(ref, err);
    if (memmem(text, len, TSS2_PEM, strlen(TSS2_PEM)) != NULL)
        return wrap_tpm2(tpm2_load_pem(text, len, label, err), text, len, err);
    TW_ENSURE_PTR(memmem(text, len, "ENCRYPTED", 9) == NULL, err, TW_ERR_CONFIG,
                  "%s: the private key is encrypted; twoway needs an unencrypted key "
                  "protected by file permissions (0600), or a key in a token or TPM",
                  label);
    TW_ENSURE_PTR(len <= KEYSTORE_FILE_MAX, err, TW_ERR_CONFIG, "%s: too large", label);
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "%s: out of memory", label);
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (key == NULL)
        tw_err_ossl(err, TW_ERR_CONFIG, "%s: no usable PEM private key", label);
    return key;
}

EVP_PKEY *keystore_load(const char *ref, struct tw_err *err)
{
    if (keystore_is_ref(ref))
        return load_ref(ref, err);
    TW_GUARD_PTR(fs_check_key_perms(ref, err));
    char *data = NULL;
    size_t len = 0;
    TW_GUARD_PTR(fs_read_file(ref, KEYSTORE_FILE_MAX, &data, &len, err));
    EVP_PKEY *key = keystore_load_text(data, len, ref, err);
    OPENSSL_cleanse(data, len);
    free(data);
    return key;
}

bool keystore_key_is_hardware(const EVP_PKEY *key)
{
    const OSSL_PROVIDER *p = EVP_PKEY_get0_provider(key);
    const char *name = p != NULL ? OSSL_PROVIDER_get0_name(p) : NULL;
    return name != NULL && (strcmp(name, P11_PROV_NAME) == 0 || strcmp(name, "tpm2") == 0);
}

EVP_PKEY *keystore_public(EVP_PKEY *key, struct tw_err *err)
{
    if (!keystore_key_is_hardware(key)) {
        EVP_PKEY_up_ref(key);
        return key;
    }
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pub = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, EVP_PKEY_get0_type_name(key),
                                                   "provider=default");
    if (ctx == NULL || EVP_PKEY_todata(key, EVP_PKEY_PUBLIC_KEY, &params) != 1 ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params) != 1)
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot read the public half of a hardware key");
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    return pub;
}

EVP_PKEY *keystore_generate(const char *store, const char *label,
                            const struct keystore_keyspec *spec, char **file, size_t *file_len,
                            struct tw_err *err)
{
    *file = NULL;
    *file_len = 0;
    int ec = strcmp(spec->alg, "EC") == 0;
    TW_ENSURE_PTR(ec ? spec->group != NULL &&
                           (strcmp(spec->group, "P-256") == 0 || strcmp(spec->group, "P-384") == 0)
                     : strcmp(spec->alg, "RSA") == 0 && (spec->bits == 2048 || spec->bits == 3072),
                  err, TW_ERR_USAGE,
                  "keys made in a token or TPM are ec:P-256, ec:P-384, rsa:2048 or rsa:3072");
    if (strncmp(store, "tpm2:", 5) == 0) {
        EVP_PKEY *key = tpm2_generate(spec, file, file_len, err); /* sets *file first */
        key = wrap_tpm2(key, *file, *file_len, err);
        if (key == NULL) {
            keystore_file_free(*file, *file_len);
            *file = NULL;
            *file_len = 0;
        }
        return key;
    }
    TW_ENSURE_PTR(strncmp(store, "pkcs11:", 7) == 0, err, TW_ERR_USAGE,
                  "--key-store must be a pkcs11: URI or tpm2: (got '%s')", store);
    struct p11_uri u;
    TW_GUARD_PTR(p11_uri_parse(store, &u, err));
    char uri[KEYSTORE_REF_MAX];
    TW_GUARD_PTR(p11_generate(&u, store, label, spec, uri, sizeof(uri), err));
    EVP_PKEY *key = load_pkcs11(uri, err);
    if (key == NULL)
        return NULL;
    size_t n = strlen(uri);
    *file = OPENSSL_malloc(n + 2);
    if (*file == NULL) {
        EVP_PKEY_free(key);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    memcpy(*file, uri, n);
    (*file)[n] = '\n';
    (*file)[n + 1] = '\0';
    *file_len = n + 1;
    return key;
}

void keystore_file_free(char *file, size_t len)
{
    if (file != NULL)
        OPENSSL_clear_free(file, len);
}

int keystore_destroy(const char *old_text, size_t len, char *what, size_t what_cap, char *left,
                     size_t left_cap, struct tw_err *err)
{
    char ref[KEYSTORE_REF_MAX];
    what[0] = left[0] = '\0';
    if (!ref_line(old_text, len, ref, sizeof(ref)))
        return 0; /* a PEM or TSS2 blob file: the swap removed the only copy */
    if (strncmp(ref, "tpm2:", 5) == 0) {
        snprintf(left, left_cap, "%s", ref);
        return 0;
    }
    struct p11_uri u;
    TW_GUARD(p11_uri_parse(ref, &u, err));
    TW_GUARD(p11_destroy(&u, err));
    snprintf(what, what_cap, "key '%s' in token '%s'", u.object[0] != '\0' ? u.object : "(by id)",
             u.token);
    return 0;
}

/* What key_file (a path or a reference) names: its reference into ref ("" when it holds
 * none), and *blob true for a TSS2 key blob. */
static int key_file_ref(const char *key_file, char *ref, size_t cap, bool *blob,
                        struct tw_err *err)
{
    ref[0] = '\0';
    *blob = false;
    if (keystore_is_ref(key_file)) {
        TW_ENSURE(strlen(key_file) < cap, err, TW_ERR_CONFIG, "key reference too long");
        snprintf(ref, cap, "%s", key_file);
        return 0;
    }
    char *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(key_file, KEYSTORE_FILE_MAX, &data, &len, err));
    if (!ref_line(data, len, ref, cap)) {
        ref[0] = '\0';
        *blob = memmem(data, len, TSS2_PEM, strlen(TSS2_PEM)) != NULL;
    }
    OPENSSL_cleanse(data, len);
    free(data);
    return 0;
}

void keystore_describe(const char *key_file, char *buf, size_t cap)
{
    char ref[KEYSTORE_REF_MAX];
    bool blob;
    struct tw_err err;
    struct p11_uri u;
    buf[0] = '\0';
    if (key_file_ref(key_file, ref, sizeof(ref), &blob, &err) != 0)
        return;
    if (blob)
        snprintf(buf, cap, "in the TPM (a TSS2 key blob only that TPM can load)");
    else if (strncmp(ref, "tpm2:handle:", 12) == 0)
        snprintf(buf, cap, "in the TPM at persistent handle %s", ref + 12);
    else if (strncmp(ref, "pkcs11:", 7) == 0 && p11_uri_parse(ref, &u, &err) == 0)
        snprintf(buf, cap, "in PKCS#11 token '%s' (object '%s')", u.token,
                 u.object[0] != '\0' ? u.object : "(by id)");
    else if (ref[0] != '\0')
        snprintf(buf, cap, "in hardware (%s)", strncmp(ref, "tpm2:", 5) == 0 ? "TPM" : "PKCS#11");
}

int keystore_store_of(const char *key_file, char *store, size_t cap, struct tw_err *err)
{
    char ref[KEYSTORE_REF_MAX];
    bool blob;
    store[0] = '\0';
    TW_GUARD(key_file_ref(key_file, ref, sizeof(ref), &blob, err));
    TW_ENSURE(strlen(ref) < cap, err, TW_ERR_CONFIG, "key reference too long");
    snprintf(store, cap, "%s", blob || strncmp(ref, "tpm2:", 5) == 0 ? "tpm2:" : ref);
    return 0;
}
