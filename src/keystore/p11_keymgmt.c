/* The twoway-hwkeys provider, built into the binary (OSSL_PROVIDER_add_builtin): key
 * management for EC and RSA keys whose private half stays in a PKCS#11 token or a TPM. Every question
 * about the key (size, curve, public point, encoding) is answered by its public half, a plain
 * default-provider key; only signing (p11_sig.c) goes to the token. The provider has no key
 * generation or decoders: token keys enter through EVP_PKEY_fromdata with a pointer parameter
 * only keystore/ passes; any other import makes a public-only key, for comparisons. */
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "keystore/internal.h"

#define PARAM_KEY "twoway-p11-key" /* octet string holding a struct p11_key pointer */

struct p11_key *p11_key_ref(struct p11_key *k)
{
    int n;
    CRYPTO_atomic_add(&k->refs, 1, &n, k->refs_lock);
    return k;
}

void p11_key_unref(struct p11_key *k)
{
    int n = 0;
    if (k == NULL || !CRYPTO_atomic_add(&k->refs, -1, &n, k->refs_lock) || n > 0)
        return;
    p11_session_close(k->session);
    EVP_PKEY_free(k->inner);
    OPENSSL_free(k->blob);
    EVP_PKEY_free(k->pub);
    CRYPTO_THREAD_lock_free(k->refs_lock);
    OPENSSL_free(k);
}

static struct p11_key *key_alloc(void)
{
    struct p11_key *k = OPENSSL_zalloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    k->refs = 1;
    k->refs_lock = CRYPTO_THREAD_lock_new();
    if (k->refs_lock == NULL) {
        OPENSSL_free(k);
        return NULL;
    }
    return k;
}

static void *km_new(void *provctx)
{
    (void)provctx;
    return key_alloc();
}

static void km_free(void *kd)
{
    p11_key_unref(kd);
}

static void *km_dup(const void *kd, int selection)
{
    (void)selection;
    return p11_key_ref((struct p11_key *)kd);
}

static int km_has(const void *kd, int selection)
{
    const struct p11_key *k = kd;
    if (k == NULL || k->pub == NULL)
        return 0;
    return (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) == 0 || k->session != NULL ||
           p11_key_has_inner(k);
}

static int km_match(const void *a, const void *b, int selection)
{
    (void)selection;
    const struct p11_key *ka = a, *kb = b;
    return ka->pub != NULL && kb->pub != NULL && EVP_PKEY_eq(ka->pub, kb->pub) == 1;
}

/* A plain public key imported to compare with a token key (EVP_PKEY_eq between a
 * certificate and its key does this): kept as a default-provider key, no session. */
static int import_public(struct p11_key *k, const char *alg, const OSSL_PARAM params[])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, "provider=default");
    int ok = ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
             EVP_PKEY_fromdata(ctx, &k->pub, EVP_PKEY_PUBLIC_KEY, (OSSL_PARAM *)params) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Takes session and public key from the holder keystore passed, or a plain public key. */
static int import(void *kd, const char *alg, const OSSL_PARAM params[])
{
    struct p11_key *k = kd;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, PARAM_KEY);
    struct p11_key *holder = NULL;
    if (k->pub != NULL)
        return 0;
    if (p == NULL)
        return import_public(k, alg, params);
    if (p->data_type != OSSL_PARAM_OCTET_STRING || p->data_size != sizeof(holder))
        return 0;
    memcpy(&holder, p->data, sizeof(holder));
    if (holder == NULL || (holder->session == NULL && !p11_key_has_inner(holder)))
        return 0;
    k->session = holder->session;
    k->inner = holder->inner;
    k->inner_props = holder->inner_props;
    k->blob = holder->blob;
    k->blob_len = holder->blob_len;
    k->pub = holder->pub;
    holder->session = NULL;
    holder->inner = NULL;
    holder->blob = NULL;
    holder->pub = NULL;
    return 1;
}

static int ec_import(void *kd, int selection, const OSSL_PARAM params[])
{
    (void)selection;
    return import(kd, "EC", params);
}

static int rsa_import(void *kd, int selection, const OSSL_PARAM params[])
{
    (void)selection;
    return import(kd, "RSA", params);
}

static const OSSL_PARAM *km_import_types(int selection)
{
    (void)selection;
    static const OSSL_PARAM types[] = {OSSL_PARAM_octet_string(PARAM_KEY, NULL, 0),
                                       OSSL_PARAM_END};
    return types;
}

/* Export the public half, and only when the private half is not asked for: OpenSSL exports
 * a key with "everything" selected to move it to another provider's signature code, and a
 * public-only copy there would fail with "missing private key" instead of signing here. */
static int km_export(void *kd, int selection, OSSL_CALLBACK *cb, void *cbarg)
{
    struct p11_key *k = kd;
    if (k->pub == NULL || (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0 ||
        (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0)
        return 0;
    OSSL_PARAM *params = NULL;
    if (EVP_PKEY_todata(k->pub, EVP_PKEY_PUBLIC_KEY, &params) != 1)
        return 0;
    int ok = cb(params, cbarg);
    OSSL_PARAM_free(params);
    return ok;
}

static const OSSL_PARAM *default_gettable(const char *alg)
{
    EVP_KEYMGMT *km = EVP_KEYMGMT_fetch(NULL, alg, "provider=default");
    const OSSL_PARAM *t = km != NULL ? EVP_KEYMGMT_gettable_params(km) : NULL;
    EVP_KEYMGMT_free(km); /* the table is static in the default provider */
    return t;
}

static int km_get_params(void *kd, OSSL_PARAM params[])
{
    struct p11_key *k = kd;
    return k->pub != NULL && EVP_PKEY_get_params(k->pub, params) == 1;
}

static const OSSL_PARAM *ec_gettable(void *provctx)
{
    (void)provctx;
    return default_gettable("EC");
}

static const OSSL_PARAM *rsa_gettable(void *provctx)
{
    (void)provctx;
    return default_gettable("RSA");
}

/* What km_export hands out: the public half only. */
static const OSSL_PARAM *ec_export_types(int selection)
{
    (void)selection;
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, NULL, 0),
        OSSL_PARAM_END,
    };
    return t;
}

static const OSSL_PARAM *rsa_export_types(int selection)
{
    (void)selection;
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, NULL, 0),
        OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, NULL, 0),
        OSSL_PARAM_END,
    };
    return t;
}

static const char *ec_op_name(int op)
{
    return op == OSSL_OP_SIGNATURE ? "ECDSA" : NULL;
}

static const char *rsa_op_name(int op)
{
    return op == OSSL_OP_SIGNATURE ? "RSA" : NULL;
}

#define KM_COMMON                                                                                 \
    {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new},                                              \
        {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free},                                        \
        {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))km_dup},                                          \
        {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has},                                          \
        {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match},                                      \
        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_import_types},                        \
        {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))km_export},                                    \
        {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params}

const OSSL_DISPATCH p11_keymgmt_ec[] = {
    KM_COMMON,
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))ec_gettable},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))ec_export_types},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))ec_import},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))ec_op_name},
    {0, NULL},
};

const OSSL_DISPATCH p11_keymgmt_rsa[] = {
    KM_COMMON,
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))rsa_gettable},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))rsa_export_types},
    {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))rsa_import},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))rsa_op_name},
    {0, NULL},
};

/* ------------------------------------------------------------------ the provider itself */

#define PROPS "provider=" P11_PROV_NAME

static const OSSL_ALGORITHM keymgmts[] = {
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", PROPS, p11_keymgmt_ec, "twoway hardware EC key"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", PROPS, p11_keymgmt_rsa, "twoway hardware RSA key"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM signatures[] = {
    {"ECDSA", PROPS, p11_sig_ecdsa, "ECDSA in a token or TPM"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", PROPS, p11_sig_rsa, "RSA in a token or TPM"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *query(void *provctx, int op, int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    return op == OSSL_OP_KEYMGMT ? keymgmts : op == OSSL_OP_SIGNATURE ? signatures : NULL;
}

static const OSSL_DISPATCH prov_fns[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))query},
    {0, NULL},
};

static int prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    (void)handle, (void)in;
    *out = prov_fns;
    *provctx = NULL;
    return 1;
}

static CRYPTO_ONCE load_once = CRYPTO_ONCE_STATIC_INIT;
static int load_ok;

static void load_provider(void)
{
    /* Loading any provider explicitly stops OpenSSL from loading the default one on demand:
     * load it first so ordinary keys and digests keep working. */
    load_ok = keystore_provider_load("default") &&
              OSSL_PROVIDER_add_builtin(NULL, P11_PROV_NAME, prov_init) == 1 &&
              keystore_provider_load(P11_PROV_NAME);
}

int p11_provider_load(struct tw_err *err)
{
    TW_ENSURE_OSSL(CRYPTO_THREAD_run_once(&load_once, load_provider) && load_ok, err,
                   TW_ERR_INTERNAL, "cannot load twoway's hardware key provider");
    return keystore_prefer_default(err);
}

/* holder (taken) as a key of this provider, through EVP_PKEY_fromdata and km_import. */
static EVP_PKEY *wrap(struct p11_key *holder, const char *what, struct tw_err *err)
{
    const char *alg = EVP_PKEY_is_a(holder->pub, "EC") ? "EC" : "RSA";
    OSSL_PARAM params[] = {OSSL_PARAM_octet_string(PARAM_KEY, &holder, sizeof(holder)),
                           OSSL_PARAM_END};
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, PROPS);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
        tw_err_ossl(err, TW_ERR_INTERNAL, "cannot make an OpenSSL key of %s", what);
    EVP_PKEY_CTX_free(ctx);
    p11_key_unref(holder); /* frees what import did not take */
    return key;
}

EVP_PKEY *p11_key_wrap(struct p11_session *session, EVP_PKEY *pub, struct tw_err *err)
{
    struct p11_key *holder = key_alloc();
    if (holder == NULL) {
        p11_session_close(session);
        EVP_PKEY_free(pub);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    holder->session = session;
    holder->pub = pub;
    return wrap(holder, "a token key", err);
}

/* A holder for inner's public half (read now); inner itself is left to the caller. */
static struct p11_key *inner_holder(EVP_PKEY *inner, const char *props, struct tw_err *err)
{
    struct p11_key *holder = key_alloc();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, EVP_PKEY_is_a(inner, "EC") ? "EC" : "RSA",
                                                   "provider=default");
    EVP_PKEY *pub = NULL;
    if (holder == NULL || ctx == NULL || EVP_PKEY_todata(inner, EVP_PKEY_PUBLIC_KEY, &params) != 1 ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        tw_err_ossl(err, TW_ERR_CONFIG, "cannot read the public half of the key");
        p11_key_unref(holder);
        holder = NULL;
    }
    OSSL_PARAM_free(params);
    EVP_PKEY_CTX_free(ctx);
    if (holder != NULL) {
        holder->inner_props = props;
        holder->pub = pub;
    }
    return holder;
}

EVP_PKEY *p11_key_wrap_inner(EVP_PKEY *inner, const char *props, struct tw_err *err)
{
    struct p11_key *holder = inner_holder(inner, props, err);
    if (holder == NULL) {
        EVP_PKEY_free(inner);
        return NULL;
    }
    holder->inner = inner;
    return wrap(holder, "a TPM key", err);
}

EVP_PKEY *p11_key_wrap_blob(EVP_PKEY *inner, const char *props, const char *blob,
                            size_t blob_len, struct tw_err *err)
{
    struct p11_key *holder = inner_holder(inner, props, err);
    tpm2_key_free(inner); /* flushes its transient object: loaded again to sign */
    if (holder == NULL)
        return NULL;
    holder->blob = OPENSSL_memdup(blob, blob_len);
    if (holder->blob == NULL) {
        p11_key_unref(holder);
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        return NULL;
    }
    holder->blob_len = blob_len;
    return wrap(holder, "a TPM key", err);
}
