/* Key pairs: generation, PKCS#8 PEM (optionally encrypted), loading with a passphrase. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include "pki/internal.h"
#include "keystore/keystore.h"
#include "pki/pki.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* scrypt cost for encrypted keys: N = 2^14, r = 8, p = 1 (16 MiB, under OpenSSL's 32 MiB
 * default memory cap for decoding; well under a second). */
#define SCRYPT_N 16384
#define SCRYPT_R 8
#define SCRYPT_P 1
#define KEY_FILE_MAX (64u * 1024)

static const struct {
    const char *name;
    const char *alg;
    const char *group; /* EC curve */
    size_t bits;       /* RSA modulus */
} key_types[] = {
    [PKI_KEY_EC_P256] = {"ec:P-256", "EC", "P-256", 0},
    [PKI_KEY_EC_P384] = {"ec:P-384", "EC", "P-384", 0},
    [PKI_KEY_ED25519] = {"ed25519", "ED25519", NULL, 0},
    [PKI_KEY_RSA2048] = {"rsa:2048", "RSA", NULL, 2048},
    [PKI_KEY_RSA3072] = {"rsa:3072", "RSA", NULL, 3072},
    [PKI_KEY_RSA4096] = {"rsa:4096", "RSA", NULL, 4096},
};
#define KEY_TYPE_COUNT (sizeof(key_types) / sizeof(key_types[0]))

int pki_key_type_parse(const char *text, enum pki_key_type *out, struct tw_err *err)
{
    for (size_t i = 0; i < KEY_TYPE_COUNT; i++) {
        if (strcasecmp(text, key_types[i].name) == 0) {
            *out = (enum pki_key_type)i;
            return 0;
        }
    }
    return tw_err_set(err, TW_ERR_USAGE,
                      "unknown key type '%s' (use ec:P-256, ec:P-384, ed25519, rsa:2048, "
                      "rsa:3072 or rsa:4096)",
                      text);
}

const char *pki_key_type_name(enum pki_key_type t)
{
    return (size_t)t < KEY_TYPE_COUNT ? key_types[t].name : "unknown";
}

EVP_PKEY *pki_key_generate(enum pki_key_type t, struct tw_err *err)
{
    TW_ENSURE_PTR((size_t)t < KEY_TYPE_COUNT, err, TW_ERR_INTERNAL, "bad key type %d", (int)t);
    EVP_PKEY *key;
    if (key_types[t].group != NULL)
        key = EVP_PKEY_Q_keygen(NULL, NULL, key_types[t].alg, key_types[t].group);
    else if (key_types[t].bits != 0)
        key = EVP_PKEY_Q_keygen(NULL, NULL, key_types[t].alg, key_types[t].bits);
    else
        key = EVP_PKEY_Q_keygen(NULL, NULL, key_types[t].alg);
    if (key == NULL)
        tw_err_ossl(err, TW_ERR_PKI, "cannot generate a %s key", key_types[t].name);
    return key;
}

EVP_PKEY *pki_key_generate_in(const char *store, const char *label, enum pki_key_type t,
                              char **file, size_t *len, struct tw_err *err)
{
    TW_ENSURE_PTR((size_t)t < KEY_TYPE_COUNT, err, TW_ERR_INTERNAL, "bad key type %d", (int)t);
    struct keystore_keyspec spec = {key_types[t].alg, key_types[t].group, key_types[t].bits};
    return keystore_generate(store, label, &spec, file, len, err);
}

static int bio_take(BIO *bio, char **pem, size_t *len, struct tw_err *err)
{
    char *mem;
    long n = BIO_get_mem_data(bio, &mem);
    TW_ENSURE(n > 0, err, TW_ERR_INTERNAL, "empty PEM output");
    char *copy = OPENSSL_malloc((size_t)n + 1);
    TW_ENSURE(copy != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(copy, mem, (size_t)n);
    copy[n] = '\0';
    OPENSSL_cleanse(mem, (size_t)n);
    *pem = copy;
    *len = (size_t)n;
    return 0;
}

static int write_encrypted(BIO *bio, EVP_PKEY *key, const struct pki_secret *pass,
                           struct tw_err *err)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    TW_ENSURE_OSSL(p8 != NULL, err, TW_ERR_PKI, "cannot encode the private key");
    X509_ALGOR *pbe =
        PKCS5_pbe2_set_scrypt(EVP_aes_256_cbc(), NULL, 0, NULL, SCRYPT_N, SCRYPT_R, SCRYPT_P);
    X509_SIG *sig = NULL;
    if (pbe != NULL) {
        sig = PKCS8_set0_pbe(pass->data, (int)pass->len, p8, pbe);
        if (sig == NULL)
            X509_ALGOR_free(pbe); /* set0 took it only on success */
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    TW_ENSURE_OSSL(sig != NULL, err, TW_ERR_PKI, "cannot encrypt the private key");
    int ok = PEM_write_bio_PKCS8(bio, sig);
    X509_SIG_free(sig);
    TW_GUARD_OSSL(ok, err, TW_ERR_PKI, "cannot write the encrypted private key");
    return 0;
}

int pki_key_to_pem(EVP_PKEY *key, const struct pki_secret *pass, char **pem, size_t *len,
                   struct tw_err *err)
{
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_secmem());
    TW_ENSURE_OSSL(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    if (pass != NULL) {
        TW_GUARD(write_encrypted(bio, key, pass, err));
    } else {
        TW_GUARD_OSSL(PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), err,
                      TW_ERR_PKI, "cannot encode the private key");
    }
    return bio_take(bio, pem, len, err);
}

void pki_pem_free(char *pem, size_t len)
{
    keystore_file_free(pem, len);
}

/* Never let OpenSSL prompt on the terminal: without a passphrase the callback fails. */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const struct pki_secret *pass = u;
    if (pass == NULL || pass->len == 0 || pass->len > (size_t)size)
        return -1;
    memcpy(buf, pass->data, pass->len);
    return (int)pass->len;
}

static int pem_is_encrypted(const char *pem, size_t len)
{
    static const char *const markers[] = {"ENCRYPTED PRIVATE KEY", "Proc-Type: 4,ENCRYPTED"};
    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
        if (memmem(pem, len, markers[i], strlen(markers[i])) != NULL)
            return 1;
    return 0;
}

EVP_PKEY *pki_key_from_pem(const char *pem, size_t len, const struct pki_secret *pass,
                           const char *label, struct tw_err *err)
{
    int encrypted = pem_is_encrypted(pem, len);
    if (!encrypted && keystore_text_is_hw(pem, len))
        return keystore_load_text(pem, len, label, err);
    TW_ENSURE_PTR(!encrypted || pass != NULL, err, TW_ERR_PKI,
                  "%s is encrypted: pass --passphrase-file F or set TWOWAY_PASSPHRASE_FILE", label);
    TW_ENSURE_PTR(len <= INT_MAX, err, TW_ERR_PKI, "%s: too large", label);
    TW_AUTO(BIO) *bio = BIO_new_mem_buf(pem, (int)len);
    TW_ENSURE_PTR(bio != NULL, err, TW_ERR_INTERNAL, "out of memory");
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, pass_cb, (void *)pass);
    if (key == NULL) {
        ERR_clear_error();
        if (encrypted)
            tw_err_set(err, TW_ERR_PKI, "wrong passphrase for %s", label);
        else
            tw_err_set(err, TW_ERR_PKI, "%s: not a PEM private key", label);
    }
    return key;
}

EVP_PKEY *pki_key_load(const char *path, const struct pki_secret *pass, struct tw_err *err)
{
    TW_GUARD_PTR(fs_check_key_perms(path, err));
    char *data = NULL;
    size_t len = 0;
    TW_GUARD_PTR(fs_read_file(path, KEY_FILE_MAX, &data, &len, err));
    EVP_PKEY *key = pki_key_from_pem(data, len, pass, path, err);
    OPENSSL_cleanse(data, len);
    free(data);
    return key;
}

const int key_ec_curve_nids[KEY_EC_CURVES] = {NID_X9_62_prime256v1, NID_secp384r1,
                                              NID_secp521r1};

static int ec_group_ok(EVP_PKEY *key, char *group, size_t cap)
{
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, cap, NULL) != 1)
        return 0;
    int nid = OBJ_sn2nid(group); /* "prime256v1", "secp384r1" */
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group); /* "P-256" */
    for (size_t i = 0; i < KEY_EC_CURVES; i++)
        if (nid != NID_undef && nid == key_ec_curve_nids[i])
            return 1;
    return 0;
}

int pki_key_check_public(EVP_PKEY *key, const char *label, struct tw_err *err)
{
    TW_ENSURE(key != NULL, err, TW_ERR_PKI, "%s: no public key", label);
    char group[64] = "";
    int bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_is_a(key, "RSA")) {
        TW_ENSURE(bits >= 2048 && bits <= 16384, err, TW_ERR_PKI,
                  "%s: RSA key of %d bits (need 2048 to 16384)", label, bits);
    } else if (EVP_PKEY_is_a(key, "EC")) {
        TW_ENSURE(ec_group_ok(key, group, sizeof(group)), err, TW_ERR_PKI,
                  "%s: EC curve '%s' not accepted (use P-256, P-384 or P-521)", label, group);
    } else if (!EVP_PKEY_is_a(key, "ED25519")) {
        ERR_clear_error();
        return tw_err_set(err, TW_ERR_PKI,
                          "%s: %s keys are not accepted (use RSA, EC P-256/P-384/P-521 or "
                          "Ed25519)",
                          label,
                          EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "unknown");
    }
    /* A point off the curve or a malformed modulus is refused before it is ever signed. The
     * accepted curves have cofactor 1, where the partial validation of NIST SP 800-56A
     * §5.6.2.3.4 (on the curve, not at infinity) is already full: the full check's extra
     * order test, a scalar multiplication, was the largest single cost of parsing a CSR. */
    TW_AUTO(EVP_PKEY_CTX) *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    TW_ENSURE_OSSL(ctx != NULL, err, TW_ERR_INTERNAL, "out of memory");
    int ec = EVP_PKEY_is_a(key, "EC");
    TW_GUARD_OSSL(ec ? EVP_PKEY_public_check_quick(ctx) : EVP_PKEY_public_check(ctx), err,
                  TW_ERR_PKI, "%s: invalid public key", label);
    return 0;
}

int pki_key_matches_cert(EVP_PKEY *key, X509 *cert)
{
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    int ok = pub != NULL && EVP_PKEY_eq(pub, key) == 1;
    ERR_clear_error();
    return ok;
}
