/* Settings shared by server and client contexts: protocol versions, ciphers, groups, and the
 * local certificate + key (checked to match). */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "tlsx/internal.h"
#include "util/cleanup.h"

/* TLS 1.2: forward secrecy and AEAD only (ECDHE + AES-GCM / ChaCha20-Poly1305). TLS 1.3
 * suites are all AEAD; OpenSSL's default order is kept. */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define DEFAULT_GROUPS "X25519:P-256:P-384"

static const char *version_name(int v)
{
    return v == TLS1_3_VERSION ? "1.3" : "1.2";
}

int tlsx_ctx_set_versions(SSL_CTX *ctx, int min, int max, struct tw_err *err)
{
    TW_ENSURE((min == 0 || min == TLS1_2_VERSION || min == TLS1_3_VERSION) &&
                  (max == 0 || max == TLS1_2_VERSION || max == TLS1_3_VERSION),
              err, TW_ERR_CONFIG, "TLS version must be 1.2 or 1.3");
    int lo = min != 0 ? min : TLS1_2_VERSION;
    int hi = max != 0 ? max : TLS1_3_VERSION;
    TW_ENSURE(lo <= hi, err, TW_ERR_CONFIG, "minimum TLS version %s is above maximum %s",
              version_name(lo), version_name(hi));
    TW_GUARD_OSSL(SSL_CTX_set_min_proto_version(ctx, lo), err, TW_ERR_CONFIG,
                  "cannot set minimum TLS version");
    TW_GUARD_OSSL(SSL_CTX_set_max_proto_version(ctx, hi), err, TW_ERR_CONFIG,
                  "cannot set maximum TLS version");
    return 0;
}

int tlsx_ctx_set_ciphers(SSL_CTX *ctx, const char *ciphers, const char *suites,
                         const char *groups, struct tw_err *err)
{
    const char *c = ciphers != NULL ? ciphers : DEFAULT_CIPHERS;
    TW_GUARD_OSSL(SSL_CTX_set_cipher_list(ctx, c), err, TW_ERR_CONFIG,
                  "ciphers '%s': no usable TLS 1.2 cipher", c);
    if (suites != NULL)
        TW_GUARD_OSSL(SSL_CTX_set_ciphersuites(ctx, suites), err, TW_ERR_CONFIG,
                      "ciphersuites '%s': not a valid TLS 1.3 suite list", suites);
    const char *g = groups != NULL ? groups : DEFAULT_GROUPS;
    TW_GUARD_OSSL((int)SSL_CTX_set1_groups_list(ctx, g), err, TW_ERR_CONFIG,
                  "groups '%s': not a valid group list", g);
    return 0;
}

/* The TLS 1.2 authentication a key can give: a suite is chosen only if the server's
 * certificate can sign for it (RFC 5246 §7.4.2; Ed25519 certificates use the ECDSA suites,
 * RFC 8422 §5.1.1). NID_undef: a key type we do not judge. */
static int auth_nid_for(EVP_PKEY *key, const char **kind)
{
    static const struct {
        const char *type, *kind;
        int nid;
    } map[] = {{"RSA", "RSA", NID_auth_rsa},         {"RSA-PSS", "RSA", NID_auth_rsa},
               {"EC", "ECDSA", NID_auth_ecdsa},      {"ED25519", "ECDSA", NID_auth_ecdsa},
               {"ED448", "ECDSA", NID_auth_ecdsa},   {"DSA", "DSA", NID_auth_dss}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (EVP_PKEY_is_a(key, map[i].type)) {
            *kind = map[i].kind;
            return map[i].nid;
        }
    return NID_undef;
}

int tlsx_ctx_ciphers_fit_key(SSL_CTX *ctx, int min, char *why, size_t cap)
{
    EVP_PKEY *key = SSL_CTX_get0_privatekey(ctx);
    const char *kind = NULL;
    int want = key != NULL ? auth_nid_for(key, &kind) : NID_undef;
    if ((min != 0 && min != TLS1_2_VERSION) || want == NID_undef)
        return 0;
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(list); i++)
        if (SSL_CIPHER_get_auth_nid(sk_SSL_CIPHER_value(list, i)) == want)
            return 0;
    snprintf(why, cap,
             "no TLS 1.2 suite in the list fits the %s certificate, so no TLS 1.2 client could "
             "connect (name *-%s-* suites, or set tls-min = 1.3)",
             kind, kind);
    return -1;
}

int tlsx_ctx_use_cert(SSL_CTX *ctx, const char *what, const char *cert_file, const char *key_file,
                      X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key, struct tw_err *err)
{
    TW_AUTO(X509) *own_cert = NULL;
    TW_AUTO(X509_STACK) *own_chain = NULL;
    TW_AUTO(EVP_PKEY) *own_key = NULL;
    if (cert_file != NULL) {
        TW_GUARD(tlsx_cert_chain_load(cert_file, &own_cert, &own_chain, err));
        cert = own_cert;
        chain = own_chain;
    }
    if (key_file != NULL) {
        TW_GUARD(tlsx_key_load(key_file, &own_key, err));
        key = own_key;
    }
    TW_ENSURE(cert != NULL, err, TW_ERR_CONFIG, "%s: no certificate configured", what);
    TW_ENSURE(key != NULL, err, TW_ERR_CONFIG, "%s: no private key configured", what);
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        return tw_err_set(err, TW_ERR_CONFIG, "%s: key %s does not match certificate %s", what,
                          key_file != NULL ? key_file : "(memory)",
                          cert_file != NULL ? cert_file : "(memory)");
    }
    TW_GUARD_OSSL(SSL_CTX_use_cert_and_key(ctx, cert, key, chain, 1), err, TW_ERR_CONFIG,
                  "%s: certificate or key not usable", what);
    return 0;
}
