/* The PKCS#11 side: load the module (dlopen of the path the URI or the environment names),
 * find the token by label, open a session, log in once, find the private key and read its
 * public half. A refused PIN is reported and never tried again: tokens lock the user PIN
 * after a few failures, and a retry loop would do exactly that. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "keystore/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define P11_SLOTS_MAX 64
#define P11_PIN_MAX 256
#define P11_ATTR_MAX 1024 /* EC point, EC params, RSA modulus */

#define RV(name, words) \
    case name: return words " (" #name ")"

const char *p11_rv_text(CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return "ok";
    RV(CKR_PIN_INCORRECT, "wrong PIN");
    RV(CKR_PIN_LOCKED, "the PIN is locked");
    RV(CKR_PIN_EXPIRED, "the PIN has expired");
    RV(CKR_TOKEN_NOT_PRESENT, "the token is not present");
    RV(CKR_TOKEN_NOT_RECOGNIZED, "the token is not recognised");
    RV(CKR_DEVICE_REMOVED, "the token was removed");
    RV(CKR_DEVICE_ERROR, "the token reports a device error");
    RV(CKR_DEVICE_MEMORY, "the token is out of memory");
    RV(CKR_KEY_HANDLE_INVALID, "the key handle is no longer valid");
    RV(CKR_OBJECT_HANDLE_INVALID, "the key object is no longer valid");
    RV(CKR_SESSION_HANDLE_INVALID, "the session is no longer valid");
    RV(CKR_SESSION_CLOSED, "the session was closed");
    RV(CKR_USER_NOT_LOGGED_IN, "the session is not logged in");
    RV(CKR_CRYPTOKI_NOT_INITIALIZED, "the module is not initialised");
    RV(CKR_KEY_TYPE_INCONSISTENT, "the key type does not fit the mechanism");
    RV(CKR_MECHANISM_INVALID, "the token does not support the mechanism");
    RV(CKR_TEMPLATE_INCONSISTENT, "the template is inconsistent");
    RV(CKR_ATTRIBUTE_VALUE_INVALID, "an attribute value is invalid");
    RV(CKR_FUNCTION_FAILED, "the function failed");
    RV(CKR_GENERAL_ERROR, "general error");
    default: return "PKCS#11 error";
    }
}

#undef RV

static CK_FUNCTION_LIST *module_load(const char *path, struct tw_err *err)
{
    TW_ENSURE_PTR(path[0] != '\0', err, TW_ERR_CONFIG,
                  "no PKCS#11 module: add module-path=/path/to/module.so to the pkcs11: URI, "
                  "give --pkcs11-module (pkcs11-module = in a config) or set "
                  "TWOWAY_PKCS11_MODULE");
    /* Never dlclose: the module keeps state (C_Initialize) for the life of the process, and
     * dlopen of the same path returns the same handle. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *why = dlerror();
        tw_err_set(err, TW_ERR_CONFIG, "cannot load PKCS#11 module %s: %s", path,
                   why != NULL ? why : "unknown error");
        return NULL;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    TW_ENSURE_PTR(get != NULL, err, TW_ERR_CONFIG,
                  "%s is not a PKCS#11 module (no C_GetFunctionList)", path);
    CK_FUNCTION_LIST *fn = NULL;
    CK_RV rv = get(&fn);
    TW_ENSURE_PTR(rv == CKR_OK && fn != NULL, err, TW_ERR_CONFIG,
                  "%s: C_GetFunctionList failed (0x%lx)", path, (unsigned long)rv);
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    rv = fn->C_Initialize(&args);
    TW_ENSURE_PTR(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED, err, TW_ERR_CONFIG,
                  "%s: C_Initialize failed: %s (0x%lx)", path, p11_rv_text(rv),
                  (unsigned long)rv);
    return fn;
}

/* Token labels are 32 bytes padded with spaces (PKCS#11 §3.2, CK_TOKEN_INFO). */
static int label_eq(const unsigned char *padded, size_t cap, const char *want)
{
    size_t n = cap;
    while (n > 0 && padded[n - 1] == ' ')
        n--;
    return strlen(want) == n && memcmp(padded, want, n) == 0;
}

static int find_slot(CK_FUNCTION_LIST *fn, const char *token, CK_SLOT_ID *slot,
                     struct tw_err *err)
{
    CK_SLOT_ID slots[P11_SLOTS_MAX];
    CK_ULONG n = P11_SLOTS_MAX;
    CK_RV rv = fn->C_GetSlotList(CK_TRUE, slots, &n);
    TW_ENSURE(rv == CKR_OK, err, TW_ERR_CONFIG, "PKCS#11: cannot list slots: %s",
              p11_rv_text(rv));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (fn->C_GetTokenInfo(slots[i], &info) != CKR_OK)
            continue;
        if (label_eq(info.label, sizeof(info.label), token)) {
            *slot = slots[i];
            return 0;
        }
    }
    return tw_err_set(err, TW_ERR_CONFIG, "PKCS#11: no token labelled '%s' is present (%lu %s)",
                      token, (unsigned long)n, n == 1 ? "token present" : "tokens present");
}

static int read_pin(const struct p11_uri *u, char *pin, size_t cap, size_t *len,
                    struct tw_err *err)
{
    const char *path = u->pin_file[0] != '\0' ? u->pin_file : getenv("TWOWAY_PKCS11_PIN_FILE");
    TW_ENSURE(path != NULL && path[0] != '\0', err, TW_ERR_CONFIG,
              "token '%s' needs a PIN: add pin-source=file:/path to the pkcs11: URI, give "
              "--pin-file (pin-file = in a config) or set TWOWAY_PKCS11_PIN_FILE",
              u->token);
    TW_GUARD(fs_check_key_perms(path, err));
    char *data = NULL;
    size_t n = 0;
    TW_GUARD(fs_read_file(path, P11_PIN_MAX, &data, &n, err));
    size_t l = strcspn(data, "\r\n");
    int ok = l > 0 && l < cap;
    if (ok) {
        memcpy(pin, data, l);
        *len = l;
    }
    OPENSSL_cleanse(data, n);
    free(data);
    TW_ENSURE(ok, err, TW_ERR_CONFIG, "%s: the PIN file's first line is empty or too long", path);
    return 0;
}

static int login(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h, const struct p11_uri *u,
                 struct tw_err *err)
{
    char pin[P11_PIN_MAX];
    size_t len = 0;
    TW_GUARD(read_pin(u, pin, sizeof(pin), &len, err));
    CK_RV rv = fn->C_Login(h, CKU_USER, (CK_UTF8CHAR *)pin, len);
    OPENSSL_cleanse(pin, sizeof(pin));
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        return 0;
    if (rv == CKR_PIN_INCORRECT)
        return tw_err_set(err, TW_ERR_CONFIG,
                          "token '%s': wrong PIN (not retried: the token locks the PIN after a "
                          "few failures)",
                          u->token);
    return tw_err_set(err, TW_ERR_CONFIG, "token '%s': login failed: %s", u->token,
                      p11_rv_text(rv));
}

/* The first object of class cls matching the URI's label and id (CK_INVALID_HANDLE: none);
 * *count says whether there were one or more (at most 2 are counted). */
static CK_OBJECT_HANDLE find_match(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h,
                                   const struct p11_uri *u, CK_OBJECT_CLASS cls, CK_ULONG *count)
{
    CK_ATTRIBUTE tmpl[3] = {{CKA_CLASS, &cls, sizeof(cls)}};
    CK_ULONG n = 1;
    if (u->object[0] != '\0')
        tmpl[n++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)u->object, strlen(u->object)};
    if (u->id_len > 0)
        tmpl[n++] = (CK_ATTRIBUTE){CKA_ID, (void *)u->id, u->id_len};
    CK_OBJECT_HANDLE found[2];
    *count = 0;
    if (fn->C_FindObjectsInit(h, tmpl, n) != CKR_OK)
        return CK_INVALID_HANDLE;
    CK_RV rv = fn->C_FindObjects(h, found, 2, count);
    fn->C_FindObjectsFinal(h);
    return rv == CKR_OK && *count >= 1 ? found[0] : CK_INVALID_HANDLE;
}

static CK_OBJECT_HANDLE find_object(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h,
                                    const struct p11_uri *u, CK_OBJECT_CLASS cls)
{
    CK_ULONG count;
    return find_match(fn, h, u, cls, &count);
}

static int get_attr(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
                    CK_ATTRIBUTE_TYPE t, void *buf, size_t cap, size_t *len)
{
    CK_ATTRIBUTE a = {t, buf, cap};
    if (fn->C_GetAttributeValue(h, o, &a, 1) != CKR_OK || a.ulValueLen == (CK_ULONG)-1)
        return -1;
    *len = a.ulValueLen;
    return 0;
}

/* CKA_EC_PARAMS is the DER of the curve OID; CKA_EC_POINT a DER OCTET STRING around the
 * point (PKCS#11 §2.3.3). The public key is rebuilt as a default-provider key. */
static EVP_PKEY *ec_public(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE pubo,
                           struct tw_err *err)
{
    unsigned char params[P11_ATTR_MAX], point[P11_ATTR_MAX];
    size_t plen = 0, qlen = 0;
    TW_ENSURE_PTR(get_attr(fn, h, pubo, CKA_EC_PARAMS, params, sizeof(params), &plen) == 0 &&
                      get_attr(fn, h, pubo, CKA_EC_POINT, point, sizeof(point), &qlen) == 0,
                  err, TW_ERR_CONFIG, "PKCS#11: cannot read the EC public key");
    const unsigned char *p = params;
    ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)plen);
    int nid = oid != NULL ? OBJ_obj2nid(oid) : NID_undef;
    ASN1_OBJECT_free(oid);
    const char *group = OBJ_nid2sn(nid);
    p = point;
    ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)qlen);
    TW_ENSURE_PTR(nid != NID_undef && os != NULL, err, TW_ERR_CONFIG,
                  "PKCS#11: the EC public key is malformed");
    OSSL_PARAM ps[] = {
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)ASN1_STRING_get0_data(os),
                                (size_t)ASN1_STRING_length(os)),
        OSSL_PARAM_END,
    };
    EVP_PKEY *pub = NULL;
    TW_AUTO(EVP_PKEY_CTX) *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", "provider=default");
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, ps) != 1)
        tw_err_ossl(err, TW_ERR_CONFIG, "PKCS#11: the EC public key is not usable");
    ASN1_OCTET_STRING_free(os);
    return pub;
}

static EVP_PKEY *rsa_public(CK_FUNCTION_LIST *fn, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o,
                            struct tw_err *err)
{
    unsigned char n[P11_ATTR_MAX], e[16];
    size_t nlen = 0, elen = 0;
    TW_ENSURE_PTR(get_attr(fn, h, o, CKA_MODULUS, n, sizeof(n), &nlen) == 0 &&
                      get_attr(fn, h, o, CKA_PUBLIC_EXPONENT, e, sizeof(e), &elen) == 0,
                  err, TW_ERR_CONFIG, "PKCS#11: cannot read the RSA public key");
    TW_AUTO(BIGNUM) *bn = BN_bin2bn(n, (int)nlen, NULL);
    TW_AUTO(BIGNUM) *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *ps = NULL;
    EVP_PKEY *pub = NULL;
    if (bn != NULL && be != NULL && bld != NULL &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        ps = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", "provider=default");
    if (ps == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pub, EVP_PKEY_PUBLIC_KEY, ps) != 1)
        tw_err_ossl(err, TW_ERR_CONFIG, "PKCS#11: the RSA public key is not usable");
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(ps);
    OSSL_PARAM_BLD_free(bld);
    return pub;
}

static const char *key_name(const struct p11_uri *u)
{
    return u->object[0] != '\0' ? u->object : "(by id)";
}

static int find_key(struct p11_session *s, const struct p11_uri *u, EVP_PKEY **pub,
                    struct tw_err *err)
{
    CK_FUNCTION_LIST *fn = s->fn;
    s->priv = find_object(fn, s->handle, u, CKO_PRIVATE_KEY);
    TW_ENSURE(s->priv != CK_INVALID_HANDLE, err, TW_ERR_CONFIG,
              "token '%s' holds no private key '%s'", u->token, key_name(u));
    size_t len = 0;
    TW_ENSURE(get_attr(fn, s->handle, s->priv, CKA_KEY_TYPE, &s->type, sizeof(s->type), &len) ==
                  0,
              err, TW_ERR_CONFIG, "PKCS#11: cannot read the type of key '%s'", key_name(u));
    if (s->type == CKK_RSA) {
        *pub = rsa_public(fn, s->handle, s->priv, err);
    } else if (s->type == CKK_EC) {
        CK_OBJECT_HANDLE po = find_object(fn, s->handle, u, CKO_PUBLIC_KEY);
        TW_ENSURE(po != CK_INVALID_HANDLE, err, TW_ERR_CONFIG,
                  "token '%s' holds no public key '%s' next to the private key", u->token,
                  key_name(u));
        *pub = ec_public(fn, s->handle, po, err);
    } else {
        return tw_err_set(err, TW_ERR_CONFIG,
                          "key '%s' in token '%s' is neither EC nor RSA (type 0x%lx)",
                          key_name(u), u->token, (unsigned long)s->type);
    }
    return *pub != NULL ? 0 : -1;
}

struct p11_session *p11_session_open_bare(const struct p11_uri *u, struct tw_err *err)
{
    const char *module = u->module[0] != '\0' ? u->module : getenv("TWOWAY_PKCS11_MODULE");
    CK_FUNCTION_LIST *fn = module_load(module != NULL ? module : "", err);
    if (fn == NULL)
        return NULL;
    CK_SLOT_ID slot = 0;
    TW_GUARD_PTR(find_slot(fn, u->token, &slot, err));
    struct p11_session *s = OPENSSL_zalloc(sizeof(*s));
    TW_ENSURE_PTR(s != NULL, err, TW_ERR_INTERNAL, "out of memory");
    s->fn = fn;
    s->uri = *u;
    snprintf(s->module, sizeof(s->module), "%s", module != NULL ? module : "");
    s->handle = CK_INVALID_HANDLE;
    snprintf(s->token, sizeof(s->token), "%s", u->token);
    snprintf(s->object, sizeof(s->object), "%s", key_name(u));
    s->lock = CRYPTO_THREAD_lock_new();
    CK_RV rv = fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                 &s->handle);
    if (s->lock == NULL || rv != CKR_OK) {
        tw_err_set(err, TW_ERR_CONFIG, "token '%s': cannot open a session: %s", u->token,
                   p11_rv_text(rv));
        p11_session_close(s);
        return NULL;
    }
    if (login(fn, s->handle, u, err) != 0) {
        p11_session_close(s);
        return NULL;
    }
    return s;
}

struct p11_session *p11_session_open(const struct p11_uri *u, EVP_PKEY **pub,
                                     struct tw_err *err)
{
    struct p11_session *s = p11_session_open_bare(u, err);
    if (s != NULL && find_key(s, u, pub, err) != 0) {
        p11_session_close(s);
        return NULL;
    }
    return s;
}

void p11_session_close(struct p11_session *s)
{
    if (s == NULL)
        return;
    if (s->handle != CK_INVALID_HANDLE)
        s->fn->C_CloseSession(s->handle);
    CRYPTO_THREAD_lock_free(s->lock);
    OPENSSL_free(s);
}

/* What a token that was pulled out (or restarted) answers with. */
static int token_gone(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_ERROR ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* Find the token's slot; when the token is not listed, finalise and initialise the module once
 * and look again: some modules (SoftHSM) read their token list only in C_Initialize, so a
 * token that comes back stays invisible until then. Every session of the module ends with
 * C_Finalize; the other keys of the module reopen theirs on their next signature. */
static int find_slot_again(struct p11_session *s, CK_SLOT_ID *slot, struct tw_err *err)
{
    if (find_slot(s->fn, s->uri.token, slot, err) == 0)
        return 0;
    /* Modules built on OpenSSL (SoftHSM) leave errors of their own in the queue. */
    ERR_set_mark();
    (void)s->fn->C_Finalize(NULL);
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    CK_RV rv = s->fn->C_Initialize(&args);
    ERR_pop_to_mark();
    TW_ENSURE(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED, err, TW_ERR_TLS,
              "%s: C_Initialize failed: %s", s->module, p11_rv_text(rv));
    tw_err_clear(err);
    return find_slot(s->fn, s->uri.token, slot, err);
}

/* Find the token and key again, in a new session, logged in once. At most one attempt per
 * second, so handshakes while the token is out do not hammer the module; a refused PIN marks
 * the session dead (never retried). Caller holds the lock. */
static int reopen(struct p11_session *s, struct tw_err *err)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    TW_ENSURE(!s->dead, err, TW_ERR_CONFIG,
              "token '%s': the PIN was refused; not tried again (fix it and reload)", s->token);
    TW_ENSURE(now.tv_sec != s->last_reopen, err, TW_ERR_TLS,
              "token '%s': signing with '%s' failed: %s", s->token, s->object,
              p11_rv_text(s->last_rv));
    s->last_reopen = now.tv_sec;
    if (s->handle != CK_INVALID_HANDLE)
        (void)s->fn->C_CloseSession(s->handle);
    s->handle = CK_INVALID_HANDLE;
    CK_SLOT_ID slot = 0;
    if (find_slot_again(s, &slot, err) != 0)
        return tw_err_set(err, TW_ERR_TLS, "token '%s': signing with '%s' failed: %s",
                          s->token, s->object, p11_rv_text(s->last_rv));
    CK_RV rv = s->fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                    &s->handle);
    TW_ENSURE(rv == CKR_OK, err, TW_ERR_TLS, "token '%s': cannot open a session: %s", s->token,
              p11_rv_text(rv));
    if (login(s->fn, s->handle, &s->uri, err) != 0) {
        s->dead = strstr(err->msg, "wrong PIN") != NULL;
        return -1;
    }
    s->priv = find_object(s->fn, s->handle, &s->uri, CKO_PRIVATE_KEY);
    TW_ENSURE(s->priv != CK_INVALID_HANDLE, err, TW_ERR_TLS,
              "token '%s' is back but holds no private key '%s'", s->token, s->object);
    return 0;
}

static CK_RV sign_once(struct p11_session *s, CK_MECHANISM *mech, const unsigned char *in,
                       size_t inlen, unsigned char *out, CK_ULONG *n)
{
    if (s->handle == CK_INVALID_HANDLE)
        return CKR_SESSION_HANDLE_INVALID;
    CK_RV rv = s->fn->C_SignInit(s->handle, mech, s->priv);
    if (rv == CKR_OK)
        rv = s->fn->C_Sign(s->handle, (CK_BYTE *)in, inlen, out, n);
    return rv;
}

int p11_session_sign(struct p11_session *s, CK_MECHANISM *mech, const unsigned char *in,
                     size_t inlen, unsigned char *out, size_t *outlen, struct tw_err *err)
{
    TW_ENSURE(CRYPTO_THREAD_write_lock(s->lock), err, TW_ERR_INTERNAL, "lock failed");
    CK_ULONG n = *outlen;
    CK_RV rv = sign_once(s, mech, in, inlen, out, &n);
    int rc = 0;
    if (rv != CKR_OK)
        s->last_rv = rv;
    if (token_gone(rv)) {
        /* The token went away and may be back: one new session, then one more try. */
        rc = reopen(s, err);
        n = *outlen;
        if (rc == 0)
            rv = sign_once(s, mech, in, inlen, out, &n);
        if (rv != CKR_OK)
            s->last_rv = rv;
    }
    CRYPTO_THREAD_unlock(s->lock);
    if (rc != 0)
        return -1;
    TW_ENSURE(rv == CKR_OK, err, TW_ERR_TLS, "token '%s': signing with '%s' failed: %s",
              s->token, s->object, p11_rv_text(rv));
    *outlen = n;
    return 0;
}

int p11_destroy(const struct p11_uri *u, struct tw_err *err)
{
    struct p11_session *s = p11_session_open_bare(u, err);
    if (s == NULL)
        return -1;
    CK_ULONG count = 0, pcount = 0;
    /* Exactly one of each, or nothing is destroyed: never guess which key a URI meant. */
    CK_OBJECT_HANDLE priv = find_match(s->fn, s->handle, u, CKO_PRIVATE_KEY, &count);
    CK_OBJECT_HANDLE pub = find_match(s->fn, s->handle, u, CKO_PUBLIC_KEY, &pcount);
    CK_RV rv = CKR_OK;
    int rc = 0;
    if (pcount > 1)
        pub = CK_INVALID_HANDLE;
    if (count != 1)
        rc = tw_err_set(err, TW_ERR_CONFIG, "token '%s': %s private key '%s': not destroyed",
                        u->token, count == 0 ? "no" : "more than one", key_name(u));
    else if ((rv = s->fn->C_DestroyObject(s->handle, priv)) != CKR_OK)
        rc = tw_err_set(err, TW_ERR_CONFIG, "token '%s': cannot destroy key '%s': %s", u->token,
                        key_name(u), p11_rv_text(rv));
    /* The public key object made with it (absent for keys imported without one). */
    else if (pub != CK_INVALID_HANDLE && (rv = s->fn->C_DestroyObject(s->handle, pub)) != CKR_OK)
        rc = tw_err_set(err, TW_ERR_CONFIG,
                        "token '%s': destroyed key '%s' but not its public key object: %s",
                        u->token, key_name(u), p11_rv_text(rv));
    p11_session_close(s);
    return rc;
}
