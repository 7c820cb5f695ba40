/* Deep checks for `twoway gateway --check`: the files a configuration names exist, parse, and
 * fit together, so a bad deployment is caught before the gateway starts or reloads. Reads
 * with OpenSSL directly (no SSL_CTX is kept). */
#include "gateway/config_priv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "keystore/keystore.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* Encrypted keys would prompt: refuse instead (the gateway runs unattended). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

int cfg_cert_dns_names(const char *path, char ***names, size_t *n, char *why, size_t cap)
{
    *names = NULL;
    *n = 0;
    TW_AUTO(BIO) *bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        ERR_clear_error();
        snprintf(why, cap, "cannot open it");
        return -1;
    }
    TW_AUTO(X509) *cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    ERR_clear_error();
    if (cert == NULL) {
        snprintf(why, cap, "no PEM certificate in it");
        return -1;
    }
    TW_AUTO(GENERAL_NAMES) *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    ERR_clear_error();
    int count = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
    for (int i = 0; i < count && *n < GW_CONFIG_SERVER_NAMES_MAX; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || len > 253 || memchr(d, '\0', (size_t)len) != NULL)
            continue;
        char *name = strndup((const char *)d, (size_t)len);
        char **grown = name != NULL ? realloc(*names, (*n + 1) * sizeof(*grown)) : NULL;
        if (grown == NULL) {
            free(name);
            snprintf(why, cap, "out of memory");
            return -1;
        }
        for (char *p = name; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        *names = grown;
        grown[(*n)++] = name;
    }
    return 0;
}

/* Messages read "twoway.conf: [service web] cert = "server.crt": why", or for flags
 * "--cert "server.crt": why". */
struct ctx {
    const struct gw_config *cfg;
    const char *svc; /* NULL for [global] */
    struct tw_err *err;
};

static int problem(const struct ctx *c, enum tw_errc code, const char *key, const char *value,
                   const char *why)
{
    char q[80];
    size_t used = strlen(key) + strlen(why) + (c->svc != NULL ? strlen(c->svc) : 0) +
                  (c->cfg->path != NULL ? 110 : 0);
    cfg_quote(value, q, cfg_quote_room(used));
    if (c->cfg->path == NULL) /* built from flags: name the flag */
        return tw_err_set(c->err, code, "--%s \"%s\": %s", key, q, why);
    size_t plen = strlen(c->cfg->path);
    const char *src = plen > 90 ? c->cfg->path + plen - 90 : c->cfg->path;
    if (c->svc != NULL)
        return tw_err_set(c->err, code, "%s: [service %s] %s = \"%s\": %s", src, c->svc, key, q,
                          why);
    return tw_err_set(c->err, code, "%s: [global] %s = \"%s\": %s", src, key, q, why);
}

static int open_file(const struct ctx *c, const char *key, const char *path, BIO **out)
{
    *out = BIO_new_file(path, "rb");
    if (*out != NULL)
        return 0;
    ERR_clear_error();
    char why[160];
    snprintf(why, sizeof(why), "cannot read the file: %s",
             fs_exists(path) ? "permission denied" : "no such file");
    return problem(c, TW_ERR_IO, key, path, why);
}

/* Every certificate in a PEM file; at least one. */
static int load_certs(const struct ctx *c, const char *key, const char *path, STACK_OF(X509) * *out)
{
    TW_AUTO(BIO) *bio = NULL;
    TW_GUARD(open_file(c, key, path, &bio));
    TW_AUTO(X509_STACK) *certs = sk_X509_new_null();
    TW_ENSURE(certs != NULL, c->err, TW_ERR_INTERNAL, "out of memory");
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            return tw_err_set(c->err, TW_ERR_INTERNAL, "out of memory");
        }
    }
    ERR_clear_error();
    if (sk_X509_num(certs) == 0)
        return problem(c, TW_ERR_CONFIG, key, path, "no PEM certificate in the file");
    *out = TW_TAKE(certs);
    return 0;
}

/* A certificate that is expired or not yet valid fails every handshake: say so now. */
static int check_validity(const struct ctx *c, const char *key, const char *path, X509 *cert)
{
    char why[200], when[32] = "?", subject[96];
    struct tm tm;
    const ASN1_TIME *t = NULL;
    const char *what = NULL;
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        t = X509_get0_notAfter(cert), what = "expired";
    else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        t = X509_get0_notBefore(cert), what = "is not valid before";
    if (t == NULL)
        return 0;
    if (ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof(subject));
    snprintf(why, sizeof(why), "certificate %s %s %s", subject, what, when);
    ERR_clear_error();
    return problem(c, TW_ERR_CONFIG, key, path, why);
}

/* fs_check_key_perms decides; the message is ours, short enough to survive long paths. */
static int check_perms(const struct ctx *c, const char *key, const char *path)
{
    struct tw_err perm;
    struct stat st;
    char why[160];
    if (fs_check_key_perms(path, &perm) == 0)
        return 0;
    if (stat(path, &st) != 0)
        return problem(c, TW_ERR_IO, key, path, "cannot read the file: no such file");
    snprintf(why, sizeof(why), "private key readable by group or others (mode %04o): chmod 600",
             (unsigned)(st.st_mode & 07777));
    return problem(c, perm.code, key, path, why);
}

/* A file that names a key in a token or TPM (a reference line, a TSS2 blob). */
static bool names_hardware(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    struct tw_err ignored;
    if (fs_read_file(path, FS_READ_LIMIT_DEFAULT, &data, &len, &ignored) != 0)
        return false;
    bool hw = keystore_text_is_hw(data, len);
    OPENSSL_cleanse(data, len);
    free(data);
    return hw;
}

/* The key through keystore/: the token or TPM is asked, so a wrong PIN or an absent token
 * shows up here rather than at the first handshake. */
static EVP_PKEY *load_hardware(const struct ctx *c, const char *key_name, const char *path)
{
    struct tw_err kerr;
    tw_err_clear(&kerr);
    EVP_PKEY *pkey = keystore_load(path, &kerr);
    if (pkey == NULL)
        problem(c, kerr.code, key_name, path, kerr.msg);
    return pkey;
}

static int check_key(const struct ctx *c, const char *key_name, const char *path, X509 *cert)
{
    TW_AUTO(EVP_PKEY) *pkey = NULL;
    if (keystore_is_ref(path)) {
        if ((pkey = load_hardware(c, key_name, path)) == NULL)
            return -1;
    } else {
        TW_GUARD(check_perms(c, key_name, path));
        TW_AUTO(BIO) *bio = NULL;
        TW_GUARD(open_file(c, key_name, path, &bio));
        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        ERR_clear_error();
        if (pkey == NULL && names_hardware(path) &&
            (pkey = load_hardware(c, key_name, path)) == NULL)
            return -1;
    }
    if (pkey == NULL)
        return problem(c, TW_ERR_CONFIG, key_name, path,
                       "no unencrypted PEM private key in the file");
    if (X509_check_private_key(cert, pkey) != 1) {
        ERR_clear_error();
        return problem(c, TW_ERR_CONFIG, key_name, path, "does not match the certificate");
    }
    return 0;
}

/* A certificate + key pair: cert parses, key is private and matches it. */
static int check_pair(const struct ctx *c, const char *cert_key, const char *cert_path,
                      const char *key_key, const char *key_path)
{
    TW_AUTO(X509_STACK) *certs = NULL;
    TW_GUARD(load_certs(c, cert_key, cert_path, &certs));
    TW_GUARD(check_validity(c, cert_key, cert_path, sk_X509_value(certs, 0)));
    return check_key(c, key_key, key_path, sk_X509_value(certs, 0));
}

/* A CRL file (PEM with one or more CRLs, or one DER CRL) whose CRLs are each signed by one of
 * the client CAs. */
static int check_crl_file(const struct ctx *c, const char *path, STACK_OF(X509) * cas)
{
    TW_AUTO(BIO) *bio = NULL;
    TW_GUARD(open_file(c, "crl", path, &bio));
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    TW_ENSURE(crls != NULL, c->err, TW_ERR_INTERNAL, "out of memory");
    X509_CRL *crl;
    while ((crl = PEM_read_bio_X509_CRL(bio, NULL, no_passphrase, NULL)) != NULL)
        if (!sk_X509_CRL_push(crls, crl))
            X509_CRL_free(crl);
    ERR_clear_error();
    if (sk_X509_CRL_num(crls) == 0 && BIO_reset(bio) == 0 &&
        (crl = d2i_X509_CRL_bio(bio, NULL)) != NULL && !sk_X509_CRL_push(crls, crl))
        X509_CRL_free(crl);
    ERR_clear_error();
    int rc = 0;
    if (sk_X509_CRL_num(crls) == 0)
        rc = problem(c, TW_ERR_CONFIG, "crl", path, "no CRL (PEM or DER) in the file");
    /* As tlsx_crl_set_verify: a CRL from a CA of client-ca must be signed by it; one from a CA
     * outside it (the clients' intermediate under a root-only client-ca) is checked when
     * clients present that CA. */
    for (int i = 0; rc == 0 && i < sk_X509_CRL_num(crls); i++) {
        X509_CRL *cur = sk_X509_CRL_value(crls, i);
        bool named = false, signed_ok = false;
        for (int j = 0; !signed_ok && j < sk_X509_num(cas); j++) {
            X509 *ca = sk_X509_value(cas, j);
            EVP_PKEY *pub = X509_get0_pubkey(ca);
            if (X509_NAME_cmp(X509_CRL_get_issuer(cur), X509_get_subject_name(ca)) != 0)
                continue;
            named = true;
            signed_ok = pub != NULL && X509_CRL_verify(cur, pub) == 1;
        }
        ERR_clear_error();
        if (named && !signed_ok)
            rc = problem(c, TW_ERR_CONFIG, "crl", path,
                         "a CRL in it is not signed by any CA in client-ca");
    }
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return rc;
}

/* Ask OpenSSL whether it knows the cipher, suite and group names, and whether the TLS 1.2
 * ciphers fit the certificate's key (the files were checked before). */
static int check_tls_lists(const struct ctx *c, const struct gw_service *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    TW_ENSURE(ctx != NULL, c->err, TW_ERR_INTERNAL, "cannot create an SSL_CTX");
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase); /* never a prompt on the terminal */
    int rc = 0;
    if (s->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, s->ciphers) != 1)
        rc = problem(c, TW_ERR_CONFIG, "ciphers", s->ciphers, "OpenSSL knows none of these");
    else if (s->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, s->ciphersuites) != 1)
        rc = problem(c, TW_ERR_CONFIG, "ciphersuites", s->ciphersuites,
                     "not a valid TLS 1.3 cipher suite list");
    else if (s->groups != NULL && SSL_CTX_set1_groups_list(ctx, s->groups) != 1)
        rc = problem(c, TW_ERR_CONFIG, "groups", s->groups, "not a valid group list");
    else if (s->ciphers != NULL && SSL_CTX_use_certificate_chain_file(ctx, s->cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, s->key, SSL_FILETYPE_PEM) == 1) {
        char why[200];
        if (tlsx_ctx_ciphers_fit_key(ctx, s->tls_min, why, sizeof(why)) != 0)
            rc = problem(c, TW_ERR_CONFIG, "ciphers", s->ciphers, why);
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

static int check_service_files(const struct ctx *c, const struct gw_service *s)
{
    TW_GUARD(check_pair(c, "cert", s->cert, "key", s->key));
    TW_AUTO(X509_STACK) *cas = NULL;
    TW_GUARD(load_certs(c, "client-ca", s->client_ca, &cas));
    for (int i = 0; i < sk_X509_num(cas); i++)
        TW_GUARD(check_validity(c, "client-ca", s->client_ca, sk_X509_value(cas, i)));
    for (size_t i = 0; i < s->n_crl; i++)
        if (!s->crl_is_url[i])
            TW_GUARD(check_crl_file(c, s->crl[i], cas));
    if (s->crl_ca != NULL) {
        TW_AUTO(X509_STACK) *crl_cas = NULL;
        TW_GUARD(load_certs(c, "crl-ca", s->crl_ca, &crl_cas));
    }
    if (s->backend_cert != NULL)
        TW_GUARD(check_pair(c, "backend-cert", s->backend_cert, "backend-key", s->backend_key));
    if (s->backend_ca != NULL) {
        TW_AUTO(X509_STACK) *bcas = NULL;
        TW_GUARD(load_certs(c, "backend-ca", s->backend_ca, &bcas));
    }
    return check_tls_lists(c, s);
}

static int check_ticket_file(const struct ctx *c, const char *path)
{
    struct stat st;
    TW_GUARD(check_perms(c, "ticket-key-file", path));
    if (stat(path, &st) != 0)
        return problem(c, TW_ERR_IO, "ticket-key-file", path, "cannot stat the file");
    if (st.st_size == 0 || st.st_size % TLSX_TICKET_KEY_LEN != 0)
        return problem(c, TW_ERR_CONFIG, "ticket-key-file", path,
                       "size must be a non-zero multiple of 80 bytes");
    return 0;
}

int gw_config_apply_keystore(const struct gw_config *cfg, struct tw_err *err)
{
    TW_GUARD(keystore_set_pin_file(cfg->global.pin_file, err));
    return keystore_set_module(cfg->global.pkcs11_module, err);
}

int gw_config_check(const struct gw_config *cfg, struct tw_err *err)
{
    struct ctx c = {.cfg = cfg, .err = err};
    TW_GUARD(gw_config_apply_keystore(cfg, err));
    if (cfg->global.ticket_key_file != NULL)
        TW_GUARD(check_ticket_file(&c, cfg->global.ticket_key_file));
    for (size_t i = 0; i < cfg->n_services; i++) {
        c.svc = cfg->services[i].name;
        TW_GUARD(check_service_files(&c, &cfg->services[i]));
    }
    return 0;
}
