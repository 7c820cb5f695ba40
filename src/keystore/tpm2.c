/* TPM 2.0 keys through Debian's tpm2-openssl provider ("tpm2"): a persistent handle
 * (tpm2:handle:0x81000001) is opened as an OSSL_STORE URI, a TSS2 PEM key file (a key blob
 * wrapped by the TPM's storage key, useless on any other TPM) is decoded by the provider, and
 * new keys are made by the provider's key generation under the owner hierarchy. The TPM is
 * reached through the TCTI in $TPM2OPENSSL_TCTI (e.g. "device:/dev/tpmrm0", or
 * "swtpm:host=127.0.0.1,port=2321" for the simulator). */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include "keystore/internal.h"
#include "util/cleanup.h"

#define TPM2_PROPS "?provider=tpm2"

static CRYPTO_ONCE load_once = CRYPTO_ONCE_STATIC_INIT;
static int load_ok;

static void load_provider(void)
{
    load_ok = keystore_provider_load("default") && keystore_provider_load("tpm2");
}

static int provider_load(struct tw_err *err)
{
    if (!CRYPTO_THREAD_run_once(&load_once, load_provider) || !load_ok)
        return tw_err_ossl(err, TW_ERR_CONFIG,
                           "cannot load the tpm2 OpenSSL provider (Debian package tpm2-openssl) "
                           "or reach the TPM (TCTI from $TPM2OPENSSL_TCTI)");
    return keystore_prefer_default(err);
}

/* Blob loads, the signatures they serve and the flushes after them take turns, process-wide:
 * the transient slots are few, and tpm2-openssl's one ESYS context serves every thread. */
static CRYPTO_ONCE lock_once = CRYPTO_ONCE_STATIC_INIT;
static CRYPTO_RWLOCK *blob_lock;

static void lock_new(void)
{
    blob_lock = CRYPTO_THREAD_lock_new();
}

static int tpm_lock(void)
{
    return CRYPTO_THREAD_run_once(&lock_once, lock_new) && blob_lock != NULL &&
           CRYPTO_THREAD_write_lock(blob_lock);
}

EVP_PKEY *tpm2_load_ref(const char *ref, struct tw_err *err)
{
    TW_ENSURE_PTR(strncmp(ref, "handle:", 7) == 0, err, TW_ERR_CONFIG,
                  "tpm2:%s: use tpm2:handle:0x81XXXXXX, or the path of a TSS2 key file", ref);
    TW_GUARD_PTR(provider_load(err));
    OSSL_STORE_CTX *st = OSSL_STORE_open_ex(ref, NULL, TPM2_PROPS, NULL, NULL, NULL, NULL, NULL);
    if (st == NULL) {
        tw_err_ossl(err, TW_ERR_CONFIG, "tpm2:%s: cannot open the TPM object", ref);
        return NULL;
    }
    EVP_PKEY *key = NULL;
    while (key == NULL && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);
        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            key = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(st);
    if (key == NULL)
        tw_err_ossl(err, TW_ERR_CONFIG, "tpm2:%s: no private key at this handle", ref);
    return key;
}

/* tpm2_load_pem with the lock held. */
static EVP_PKEY *load_pem(const char *pem, size_t len, const char *label, struct tw_err *err)
{
    TW_GUARD_PTR(provider_load(err));
    TW_AUTO(BIO) *bio = BIO_new_mem_buf(pem, (int)len);
    TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    EVP_PKEY *key = PEM_read_bio_PrivateKey_ex(bio, NULL, NULL, NULL, NULL, TPM2_PROPS);
    if (key == NULL)
        tw_err_ossl(err, TW_ERR_CONFIG, "%s: this TPM cannot load the TSS2 key", label);
    return key;
}

EVP_PKEY *tpm2_load_pem(const char *pem, size_t len, const char *label, struct tw_err *err)
{
    TW_ENSURE_PTR(tpm_lock(), err, TW_ERR_INTERNAL, "cannot take the TPM lock");
    EVP_PKEY *key = load_pem(pem, len, label, err);
    CRYPTO_THREAD_unlock(blob_lock);
    return key;
}

void tpm2_key_free(EVP_PKEY *key)
{
    if (key == NULL || !tpm_lock()) {
        EVP_PKEY_free(key); /* no lock (out of memory): flush anyway */
        return;
    }
    EVP_PKEY_free(key);
    CRYPTO_THREAD_unlock(blob_lock);
}

EVP_PKEY *tpm2_generate(const struct keystore_keyspec *spec, char **pem, size_t *len,
                        struct tw_err *err)
{
    int is_ec = strcmp(spec->alg, "EC") == 0;
    TW_GUARD_PTR(provider_load(err));
    EVP_PKEY *key = NULL;
    TW_AUTO(EVP_PKEY_CTX) *ctx = EVP_PKEY_CTX_new_from_name(NULL, spec->alg, "provider=tpm2");
    size_t bits = spec->bits;
    OSSL_PARAM params[] = {OSSL_PARAM_END, OSSL_PARAM_END};
    params[0] = is_ec ? OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                         (char *)spec->group, 0)
                      : OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_RSA_BITS, &bits);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, params) != 1 ||
        EVP_PKEY_generate(ctx, &key) != 1) {
        tw_err_ossl(err, TW_ERR_CONFIG, "the TPM cannot make a %s key", is_ec ? spec->group : "RSA");
        return NULL;
    }
    /* The provider encodes its keys as TSS2 PEM: the blob only this TPM can load again. */
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n = 0;
    if (bio == NULL || PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(bio, &data)) <= 0 || (*pem = OPENSSL_malloc((size_t)n + 1)) == NULL) {
        tw_err_ossl(err, TW_ERR_CONFIG, "cannot encode the TPM key as TSS2 PEM");
        EVP_PKEY_free(key);
        return NULL;
    }
    memcpy(*pem, data, (size_t)n);
    (*pem)[n] = '\0';
    *len = (size_t)n;
    return key;
}


EVP_PKEY *tpm2_inner_get(struct p11_key *k)
{
    if (k->blob == NULL) {
        EVP_PKEY_up_ref(k->inner);
        return k->inner;
    }
    if (!tpm_lock()) {
        keystore_note_failure("TPM key: cannot take the TPM lock");
        return NULL;
    }
    struct tw_err err = {0};
    EVP_PKEY *inner = load_pem(k->blob, k->blob_len, "TPM key", &err);
    if (inner == NULL) {
        CRYPTO_THREAD_unlock(blob_lock);
        keystore_note_failure(err.msg);
    }
    return inner;
}

void tpm2_inner_put(struct p11_key *k, EVP_PKEY *inner)
{
    EVP_PKEY_free(inner); /* a blob's object: flushed from the TPM */
    if (k->blob != NULL)
        CRYPTO_THREAD_unlock(blob_lock);
}
