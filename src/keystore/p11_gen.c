/* Key generation inside a PKCS#11 token: C_GenerateKeyPair with the private half sensitive
 * and not extractable (PKCS#11 §4.9: CKA_SENSITIVE true, CKA_EXTRACTABLE false), so the key
 * can sign but never be read out, by twoway or anyone else. */
#include <stdio.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/rand.h>

#include "keystore/internal.h"

#define GEN_ID_LEN 16 /* random CKA_ID tying the private and public objects together */

static int curve_der(const char *group, unsigned char *der, size_t cap, size_t *len,
                     struct tw_err *err)
{
    int nid = strcmp(group, "P-256") == 0   ? NID_X9_62_prime256v1
              : strcmp(group, "P-384") == 0 ? NID_secp384r1
                                            : NID_undef;
    TW_ENSURE(nid != NID_undef, err, TW_ERR_USAGE, "no curve %s in a token", group);
    const ASN1_OBJECT *oid = OBJ_nid2obj(nid);
    int n = i2d_ASN1_OBJECT(oid, NULL);
    TW_ENSURE(n > 0 && (size_t)n <= cap, err, TW_ERR_INTERNAL, "cannot encode the curve");
    unsigned char *p = der;
    i2d_ASN1_OBJECT(oid, &p);
    *len = (size_t)n;
    return 0;
}

/* RFC 7512 §2.3: everything but unreserved characters is percent-encoded. */
static void pct_append(char *out, size_t cap, const unsigned char *v, size_t n)
{
    size_t o = strlen(out);
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = v[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* Path attributes of the store URI that name a key: a new key gets its own. */
static int names_key(const char *attr, size_t n)
{
    static const char *const drop[] = {"object=", "id=", "type="};
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
        if (n >= strlen(drop[i]) && strncmp(attr, drop[i], strlen(drop[i])) == 0)
            return 1;
    return 0;
}

/* The new key's URI: the store URI's path attributes but those naming a key, then object, id
 * and type, then the store URI's query (pin-source, module-path). */
static int key_uri(const char *store_uri, const char *label, const unsigned char *id,
                   char *out, size_t cap, struct tw_err *err)
{
    const char *q = strchr(store_uri, '?');
    const char *end = q != NULL ? q : store_uri + strlen(store_uri);
    TW_ENSURE(cap > 7, err, TW_ERR_INTERNAL, "URI buffer too small");
    snprintf(out, cap, "pkcs11:");
    for (const char *p = store_uri + 7; p < end;) {
        size_t n = strcspn(p, ";?");
        if (p + n > end)
            n = (size_t)(end - p);
        if (n > 0 && !names_key(p, n)) {
            size_t o = strlen(out);
            snprintf(out + o, cap - o, "%s%.*s", out[o - 1] == ':' ? "" : ";", (int)n, p);
        }
        p += n + (p + n < end ? 1 : 0);
    }
    size_t o = strlen(out);
    snprintf(out + o, cap - o, ";object=");
    pct_append(out, cap, (const unsigned char *)label, strlen(label));
    o = strlen(out);
    snprintf(out + o, cap - o, ";id=");
    for (size_t i = 0; i < GEN_ID_LEN; i++) {
        o = strlen(out);
        snprintf(out + o, cap - o, "%%%02X", id[i]);
    }
    o = strlen(out);
    int n = snprintf(out + o, cap - o, ";type=private%s", q != NULL ? q : "");
    TW_ENSURE(n > 0 && (size_t)n < cap - o, err, TW_ERR_CONFIG, "pkcs11 URI too long");
    return 0;
}

int p11_generate(const struct p11_uri *u, const char *store_uri, const char *label,
                 const struct keystore_keyspec *spec, char *uri_out, size_t cap,
                 struct tw_err *err)
{
    TW_ENSURE(label != NULL && label[0] != '\0' && strlen(label) <= P11_LABEL_MAX, err,
              TW_ERR_USAGE, "a token key needs a label of 1 to %d characters", P11_LABEL_MAX);
    struct p11_uri want = *u;
    snprintf(want.object, sizeof(want.object), "%s", label);
    want.id_len = 0;
    /* A session on the token, logged in; that a key with this label exists is an error. */
    EVP_PKEY *old = NULL;
    struct tw_err probe = {0};
    struct p11_session *s = p11_session_open(&want, &old, &probe);
    EVP_PKEY_free(old);
    if (s != NULL) {
        p11_session_close(s);
        return tw_err_set(err, TW_ERR_EXISTS, "token '%s' already holds a key '%s'", u->token,
                          label);
    }
    if (strstr(probe.msg, "holds no private key") == NULL) {
        *err = probe;
        return -1;
    }
    s = p11_session_open_bare(&want, err);
    if (s == NULL)
        return -1;

    unsigned char id[GEN_ID_LEN], curve[64];
    size_t curve_len = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = spec->bits;
    static const unsigned char f4[] = {0x01, 0x00, 0x01};
    int is_ec = strcmp(spec->alg, "EC") == 0;
    int rc = -1;
    if (RAND_bytes(id, sizeof(id)) != 1) {
        tw_err_ossl(err, TW_ERR_INTERNAL, "no randomness for the key id");
        goto out;
    }
    if (is_ec && curve_der(spec->group, curve, sizeof(curve), &curve_len, err) != 0)
        goto out;
    CK_ATTRIBUTE pub[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &no, sizeof(no)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, id, sizeof(id)},
        is_ec ? (CK_ATTRIBUTE){CKA_EC_PARAMS, curve, curve_len}
              : (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, (void *)f4, sizeof(f4)},
    };
    CK_ATTRIBUTE priv[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},     {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_SIGN, &yes, sizeof(yes)},      {CKA_DECRYPT, &no, sizeof(no)},
        {CKA_UNWRAP, &no, sizeof(no)},      {CKA_DERIVE, &no, sizeof(no)},
        {CKA_LABEL, (void *)label, strlen(label)}, {CKA_ID, id, sizeof(id)},
    };
    CK_MECHANISM mech = {is_ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE hpub, hpriv;
    CK_RV rv = s->fn->C_GenerateKeyPair(s->handle, &mech, pub, is_ec ? 6 : 7, priv,
                                        sizeof(priv) / sizeof(priv[0]), &hpub, &hpriv);
    if (rv != CKR_OK) {
        tw_err_set(err, TW_ERR_CONFIG, "token '%s' cannot make a %s key: %s", u->token,
                   is_ec ? spec->group : "RSA", p11_rv_text(rv));
        goto out;
    }
    rc = key_uri(store_uri, label, id, uri_out, cap, err);
out:
    p11_session_close(s);
    return rc;
}
