/* Signatures of the twoway-hwkeys provider. A key wrapping another provider's key (a TPM
 * key) signs through that provider, asked for by property so OpenSSL cannot pick another.
 * A token key: the message is hashed here (OpenSSL's digests), the hash is signed by the
 * token. ECDSA uses CKM_ECDSA and turns the token's r || s into the
 * DER ECDSA-Sig-Value X.509 and TLS expect (RFC 3279 §2.2.3); RSA uses
 * CKM_RSA_PKCS over a DigestInfo (RFC 8017 §9.2) or CKM_RSA_PKCS_PSS (RFC 8017 §9.1, what
 * TLS 1.3 requires of RSA keys, RFC 8446 §4.2.3). */
#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "keystore/internal.h"

#define SIG_MAX 1024             /* RSA 8192 bits; ECDSA P-521 */
#define MSG_MAX (64u << 20)      /* largest message an inner key signs (a big CRL) */

struct sigctx {
    struct p11_key *key;
    EVP_MD_CTX *md;
    unsigned char *msg; /* an inner key's message, signed whole at the end: TPM contexts */
    size_t msglen, msgcap; /* cannot be duplicated, and OpenSSL duplicates before final */
    char mdname[64];
    int pad;     /* RSA_PKCS1_PADDING or RSA_PKCS1_PSS_PADDING */
    int saltlen; /* RSA_PSS_SALTLEN_DIGEST, _MAX, _AUTO or a length */
    char mgf1[64];
    int is_ec;
};

static void *sig_newctx(void *provctx, const char *propq, int is_ec)
{
    (void)provctx, (void)propq;
    struct sigctx *c = OPENSSL_zalloc(sizeof(*c));
    if (c != NULL) {
        c->is_ec = is_ec;
        c->pad = RSA_PKCS1_PADDING;
        c->saltlen = RSA_PSS_SALTLEN_MAX;
    }
    return c;
}

static void *ec_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 1);
}

static void *rsa_newctx(void *provctx, const char *propq)
{
    return sig_newctx(provctx, propq, 0);
}

static void sig_freectx(void *vc)
{
    struct sigctx *c = vc;
    if (c == NULL)
        return;
    EVP_MD_CTX_free(c->md);
    OPENSSL_clear_free(c->msg, c->msgcap);
    p11_key_unref(c->key);
    OPENSSL_free(c);
}

static void *sig_dupctx(void *vc)
{
    const struct sigctx *c = vc;
    struct sigctx *d = OPENSSL_memdup(c, sizeof(*c));
    if (d == NULL)
        return NULL;
    d->md = NULL;
    d->msg = NULL;
    d->msgcap = 0;
    if (d->key != NULL)
        p11_key_ref(d->key);
    if (c->msg != NULL && (d->msg = OPENSSL_memdup(c->msg, c->msgcap)) == NULL) {
        sig_freectx(d);
        return NULL;
    }
    d->msgcap = c->msg != NULL ? c->msgcap : 0;
    if (c->md != NULL && ((d->md = EVP_MD_CTX_new()) == NULL ||
                          EVP_MD_CTX_copy_ex(d->md, c->md) != 1)) {
        sig_freectx(d);
        return NULL;
    }
    return d;
}

static int set_md(struct sigctx *c, const char *mdname)
{
    if (mdname == NULL || mdname[0] == '\0')
        mdname = c->mdname[0] != '\0' ? c->mdname : "SHA256";
    EVP_MD *md = EVP_MD_fetch(NULL, mdname, "provider=default");
    if (md == NULL)
        return 0;
    snprintf(c->mdname, sizeof(c->mdname), "%s", EVP_MD_get0_name(md));
    EVP_MD_free(md);
    return 1;
}

static int sig_set_ctx_params(void *vc, const OSSL_PARAM params[]);

static int sig_init(void *vc, void *provkey, const OSSL_PARAM params[])
{
    struct sigctx *c = vc;
    if (provkey != NULL) {
        p11_key_unref(c->key);
        c->key = p11_key_ref(provkey);
    }
    return c->key != NULL && sig_set_ctx_params(c, params);
}

/* RSA padding and PSS salt length, as this context has them, on the inner key's context. */
static int inner_padding(const struct sigctx *c, EVP_PKEY_CTX *pctx)
{
    if (c->is_ec)
        return 1;
    int pad = c->pad, saltlen = c->saltlen;
    OSSL_PARAM p[] = {OSSL_PARAM_int(OSSL_SIGNATURE_PARAM_PAD_MODE, &pad), OSSL_PARAM_END,
                      OSSL_PARAM_END};
    if (pad == RSA_PKCS1_PSS_PADDING)
        p[1] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &saltlen);
    return pctx != NULL && EVP_PKEY_CTX_set_params(pctx, p) == 1;
}

/* Keep an inner key's message (bounded: certificates, CRLs, TLS transcripts). */
static int msg_append(struct sigctx *c, const unsigned char *data, size_t len)
{
    if (len > MSG_MAX - c->msglen)
        return 0;
    if (c->msglen + len > c->msgcap) {
        size_t cap = c->msgcap == 0 ? 4096 : c->msgcap;
        while (cap < c->msglen + len)
            cap *= 2;
        unsigned char *m = OPENSSL_clear_realloc(c->msg, c->msgcap, cap);
        if (m == NULL)
            return 0;
        c->msg = m;
        c->msgcap = cap;
    }
    memcpy(c->msg + c->msglen, data, len);
    c->msglen += len;
    return 1;
}

/* The whole message signed by the inner key's own provider, with this context's settings. */
static int inner_sign(struct sigctx *c, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    EVP_PKEY *inner = tpm2_inner_get(c->key);
    if (inner == NULL)
        return 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    *siglen = sigsize;
    int ok = md != NULL &&
             EVP_DigestSignInit_ex(md, &pctx, c->mdname, NULL, c->key->inner_props, inner,
                                   NULL) == 1 &&
             inner_padding(c, pctx) &&
             EVP_DigestSign(md, sig, siglen, c->msg != NULL ? c->msg : (unsigned char *)"",
                            c->msglen) == 1;
    EVP_MD_CTX_free(md);
    tpm2_inner_put(c->key, inner);
    return ok;
}

static int digest_sign_init(void *vc, const char *mdname, void *provkey,
                            const OSSL_PARAM params[])
{
    struct sigctx *c = vc;
    if (!sig_init(c, provkey, params) || !set_md(c, mdname))
        return 0;
    c->msglen = 0;
    if (p11_key_has_inner(c->key))
        return 1;
    EVP_MD *md = EVP_MD_fetch(NULL, c->mdname, "provider=default");
    if (c->md == NULL)
        c->md = EVP_MD_CTX_new();
    int ok = md != NULL && c->md != NULL && EVP_DigestInit_ex2(c->md, md, NULL) == 1;
    EVP_MD_free(md);
    return ok;
}

static int digest_sign_update(void *vc, const unsigned char *data, size_t len)
{
    struct sigctx *c = vc;
    if (p11_key_has_inner(c->key))
        return msg_append(c, data, len);
    return c->md != NULL && EVP_DigestUpdate(c->md, data, len) == 1;
}

/* r || s, each half the length, into a DER ECDSA-Sig-Value. */
static int ecdsa_der(const unsigned char *raw, size_t len, unsigned char *out, size_t *outlen,
                     size_t cap)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    int n = i2d_ECDSA_SIG(sig, NULL);
    int ok = n > 0 && (size_t)n <= cap;
    if (ok) {
        unsigned char *p = out;
        i2d_ECDSA_SIG(sig, &p);
        *outlen = (size_t)n;
    }
    ECDSA_SIG_free(sig);
    return ok;
}

/* RFC 8017 §9.2 note 1: the DER DigestInfo prefixes, hash appended. */
static const struct {
    const char *md;
    size_t len;
    unsigned char der[19];
} digest_info[] = {
    {"SHA1", 15, {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
                  0x04, 0x14}},
    {"SHA2-256", 19, {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                      0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}},
    {"SHA2-384", 19, {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                      0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30}},
    {"SHA2-512", 19, {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                      0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40}},
};

static CK_MECHANISM_TYPE pss_hash(const char *md, CK_RSA_PKCS_MGF_TYPE *mgf)
{
    if (strcmp(md, "SHA2-384") == 0) {
        *mgf = CKG_MGF1_SHA384;
        return CKM_SHA384;
    }
    if (strcmp(md, "SHA2-512") == 0) {
        *mgf = CKG_MGF1_SHA512;
        return CKM_SHA512;
    }
    *mgf = CKG_MGF1_SHA256;
    return CKM_SHA256;
}

/* Sign a hash of c->mdname with the token. */
static int sign_hash(struct sigctx *c, const unsigned char *h, size_t hlen, unsigned char *sig,
                     size_t *siglen, size_t sigsize)
{
    struct tw_err err = {0};
    unsigned char raw[SIG_MAX];
    size_t rawlen = sizeof(raw);
    struct p11_session *s = c->key->session;
    if (c->is_ec) {
        CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};
        if (p11_session_sign(s, &mech, h, hlen, raw, &rawlen, &err) != 0)
            goto fail;
        return ecdsa_der(raw, rawlen, sig, siglen, sigsize);
    }
    size_t modlen = (size_t)EVP_PKEY_get_size(c->key->pub);
    if (sigsize < modlen || modlen > sizeof(raw))
        return 0;
    rawlen = modlen;
    if (c->pad == RSA_PKCS1_PSS_PADDING) {
        CK_RSA_PKCS_PSS_PARAMS pss;
        pss.hashAlg = pss_hash(c->mdname, &pss.mgf);
        if (c->mgf1[0] != '\0')
            (void)pss_hash(c->mgf1, &pss.mgf);
        pss.sLen = c->saltlen >= 0                         ? (CK_ULONG)c->saltlen
                   : c->saltlen == RSA_PSS_SALTLEN_DIGEST ? hlen
                                                          : modlen - hlen - 2;
        CK_MECHANISM mech = {CKM_RSA_PKCS_PSS, &pss, sizeof(pss)};
        if (p11_session_sign(s, &mech, h, hlen, sig, &rawlen, &err) != 0)
            goto fail;
        *siglen = rawlen;
        return 1;
    }
    for (size_t i = 0; i < sizeof(digest_info) / sizeof(digest_info[0]); i++) {
        if (strcmp(c->mdname, digest_info[i].md) != 0)
            continue;
        unsigned char di[19 + EVP_MAX_MD_SIZE];
        memcpy(di, digest_info[i].der, digest_info[i].len);
        memcpy(di + digest_info[i].len, h, hlen);
        CK_MECHANISM mech = {CKM_RSA_PKCS, NULL, 0};
        if (p11_session_sign(s, &mech, di, digest_info[i].len + hlen, sig, &rawlen, &err) != 0)
            goto fail;
        *siglen = rawlen;
        return 1;
    }
    ERR_raise_data(ERR_LIB_PROV, ERR_R_UNSUPPORTED, "no PKCS#1 v1.5 with %s", c->mdname);
    return 0;
fail:
    /* The reason reaches the caller through OpenSSL's error queue, which libssl and twoway
     * turn into the handshake's logged reason. */
    ERR_raise_data(ERR_LIB_PROV, ERR_R_OPERATION_FAIL, "%s", err.msg);
    keystore_note_failure(err.msg);
    return 0;
}

static size_t max_sig(const struct sigctx *c)
{
    return (size_t)EVP_PKEY_get_size(c->key->pub);
}

static int digest_sign_final(void *vc, unsigned char *sig, size_t *siglen, size_t sigsize)
{
    struct sigctx *c = vc;
    if (sig == NULL) {
        *siglen = max_sig(c);
        return 1;
    }
    if (p11_key_has_inner(c->key))
        return inner_sign(c, sig, siglen, sigsize);
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    if (c->md == NULL || EVP_DigestFinal_ex(c->md, h, &hlen) != 1)
        return 0;
    return sign_hash(c, h, hlen, sig, siglen, sigsize);
}

static int inner_sign_hash(struct sigctx *c, const unsigned char *h, size_t hlen,
                           unsigned char *sig, size_t *siglen, size_t sigsize)
{
    EVP_PKEY *inner = tpm2_inner_get(c->key);
    if (inner == NULL)
        return 0;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, inner, c->key->inner_props);
    EVP_MD *md = EVP_MD_fetch(NULL, c->mdname, "provider=default");
    *siglen = sigsize;
    int ok = pctx != NULL && md != NULL && EVP_PKEY_sign_init(pctx) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pctx, md) == 1 &&
             (c->is_ec || EVP_PKEY_CTX_set_rsa_padding(pctx, c->pad) == 1) &&
             EVP_PKEY_sign(pctx, sig, siglen, h, hlen) == 1;
    EVP_MD_free(md);
    EVP_PKEY_CTX_free(pctx);
    tpm2_inner_put(c->key, inner);
    return ok;
}

static int sig_sign(void *vc, unsigned char *sig, size_t *siglen, size_t sigsize,
                    const unsigned char *tbs, size_t tbslen)
{
    struct sigctx *c = vc;
    if (sig == NULL) {
        *siglen = max_sig(c);
        return 1;
    }
    if (c->mdname[0] == '\0' && !set_md(c, NULL))
        return 0;
    if (p11_key_has_inner(c->key))
        return inner_sign_hash(c, tbs, tbslen, sig, siglen, sigsize);
    return sign_hash(c, tbs, tbslen, sig, siglen, sigsize);
}

/* The AlgorithmIdentifier X.509 signing asks for; PSS parameters are not offered (twoway's
 * CA signs with PKCS#1 v1.5 or ECDSA). */
static int algorithm_id(const struct sigctx *c, OSSL_PARAM *p)
{
    static const struct {
        const char *md;
        int ec_nid, rsa_nid;
    } ids[] = {
        {"SHA2-256", NID_ecdsa_with_SHA256, NID_sha256WithRSAEncryption},
        {"SHA2-384", NID_ecdsa_with_SHA384, NID_sha384WithRSAEncryption},
        {"SHA2-512", NID_ecdsa_with_SHA512, NID_sha512WithRSAEncryption},
    };
    if (!c->is_ec && c->pad != RSA_PKCS1_PADDING)
        return 1;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (strcmp(c->mdname, ids[i].md) != 0)
            continue;
        X509_ALGOR *a = X509_ALGOR_new();
        unsigned char *der = NULL;
        int n = -1;
        if (a != NULL && X509_ALGOR_set0(a, OBJ_nid2obj(c->is_ec ? ids[i].ec_nid : ids[i].rsa_nid),
                                         c->is_ec ? V_ASN1_UNDEF : V_ASN1_NULL, NULL))
            n = i2d_X509_ALGOR(a, &der);
        X509_ALGOR_free(a);
        int ok = n > 0 && OSSL_PARAM_set_octet_string(p, der, (size_t)n);
        OPENSSL_free(der);
        return ok;
    }
    return 1;
}

static int sig_get_ctx_params(void *vc, OSSL_PARAM params[])
{
    struct sigctx *c = vc;
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
    if (p != NULL && !algorithm_id(c, p))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST);
    if (p != NULL && !OSSL_PARAM_set_utf8_string(p, c->mdname))
        return 0;
    return 1;
}

static const OSSL_PARAM *sig_gettable(void *vc, void *provctx)
{
    (void)vc, (void)provctx;
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    return t;
}

/* pad-mode and saltlen arrive as integers or as names, depending on the caller (OpenSSL's
 * ctrl translation sends names). */
static int set_pad(struct sigctx *c, const OSSL_PARAM *p)
{
    if (p->data_type == OSSL_PARAM_UTF8_STRING) {
        const char *s = p->data;
        c->pad = strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PSS) == 0 ? RSA_PKCS1_PSS_PADDING
                 : strcmp(s, OSSL_PKEY_RSA_PAD_MODE_PKCSV15) == 0 ? RSA_PKCS1_PADDING
                                                                  : -1;
        return c->pad > 0;
    }
    return OSSL_PARAM_get_int(p, &c->pad) &&
           (c->pad == RSA_PKCS1_PADDING || c->pad == RSA_PKCS1_PSS_PADDING);
}

static int set_saltlen(struct sigctx *c, const OSSL_PARAM *p)
{
    if (p->data_type != OSSL_PARAM_UTF8_STRING)
        return OSSL_PARAM_get_int(p, &c->saltlen);
    const char *s = p->data;
    if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST) == 0)
        c->saltlen = RSA_PSS_SALTLEN_DIGEST;
    else if (strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX) == 0 ||
             strcmp(s, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO) == 0)
        c->saltlen = RSA_PSS_SALTLEN_MAX;
    else
        c->saltlen = (int)strtol(s, NULL, 10);
    return 1;
}

static int sig_set_ctx_params(void *vc, const OSSL_PARAM params[])
{
    struct sigctx *c = vc;
    const OSSL_PARAM *p;
    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL) {
        const char *md = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &md) || !set_md(c, md))
            return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL &&
        !set_pad(c, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL &&
        !set_saltlen(c, p))
        return 0;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *md = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &md))
            return 0;
        EVP_MD *m = EVP_MD_fetch(NULL, md, "provider=default");
        if (m == NULL)
            return 0;
        snprintf(c->mgf1, sizeof(c->mgf1), "%s", EVP_MD_get0_name(m));
        EVP_MD_free(m);
    }
    return 1;
}

static const OSSL_PARAM *sig_settable(void *vc, void *provctx)
{
    (void)vc, (void)provctx;
    static const OSSL_PARAM t[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    return t;
}

#define SIG_COMMON                                                                                \
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},                                   \
        {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},                                 \
        {OSSL_FUNC_SIGNATURE_SIGN_INIT, (void (*)(void))sig_init},                                \
        {OSSL_FUNC_SIGNATURE_SIGN, (void (*)(void))sig_sign},                                     \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))digest_sign_init},                 \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, (void (*)(void))digest_sign_update},             \
        {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, (void (*)(void))digest_sign_final},               \
        {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, (void (*)(void))sig_get_ctx_params},                 \
        {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, (void (*)(void))sig_gettable},                  \
        {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params},                 \
        {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable}

const OSSL_DISPATCH p11_sig_ecdsa[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))ec_newctx},
    SIG_COMMON,
    {0, NULL},
};

const OSSL_DISPATCH p11_sig_rsa[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))rsa_newctx},
    SIG_COMMON,
    {0, NULL},
};
