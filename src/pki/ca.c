/* Opening the CA on disk: settings, certificates, inventory; detecting a missing or
 * half-written CA; unlocking the signing key; finding certificates; the audit trail. */
#include <ctype.h>
#include <dirent.h>
#include <string.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

int ca_path(const struct pki_ca *ca, const char *name, char *out, struct tw_err *err)
{
    return fs_path_join(out, PATH_MAX, ca->cadir, name, err);
}

/* A `.ca-init.*` directory without `ca/` means an init was interrupted. */
static int find_leftover(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *ent;
    while (!found && (ent = readdir(d)) != NULL) {
        if (strncmp(ent->d_name, PKI_DIR_INIT_PREFIX, strlen(PKI_DIR_INIT_PREFIX)) == 0) {
            snprintf(out, cap, "%s/%s", dir, ent->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

static int check_present(const char *dir, const char *cadir, struct tw_err *err)
{
    if (!fs_exists(cadir)) {
        char leftover[PATH_MAX];
        if (find_leftover(dir, leftover, sizeof(leftover)))
            return tw_err_set(err, TW_ERR_PKI,
                              "%s: half-written CA (%s left by an interrupted 'ca init'); "
                              "remove it and run 'twoway ca init' again",
                              dir, leftover);
        return tw_err_set(err, TW_ERR_NOTFOUND, "no CA in %s (run 'twoway ca init --dir %s')", dir,
                          dir);
    }
    static const char *const needed[] = {PKI_FILE_CONF,    PKI_FILE_ROOT_CRT, PKI_FILE_INT_CRT,
                                         PKI_FILE_INT_KEY, PKI_FILE_OCSP_CRT, PKI_FILE_OCSP_KEY,
                                         PKI_FILE_CHAIN};
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        char path[PATH_MAX];
        TW_GUARD(fs_path_join(path, sizeof(path), cadir, needed[i], err));
        TW_ENSURE(fs_exists(path), err, TW_ERR_PKI, "%s is incomplete: %s is missing", cadir, path);
    }
    return 0;
}

static int load_certs(struct pki_ca *ca, struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD(ca_path(ca, PKI_FILE_ROOT_CRT, path, err));
    if ((ca->root = pki_cert_load(path, err)) == NULL)
        return -1;
    TW_GUARD(ca_path(ca, PKI_FILE_INT_CRT, path, err));
    if ((ca->intermediate = pki_cert_load(path, err)) == NULL)
        return -1;
    TW_GUARD(ca_path(ca, PKI_FILE_OCSP_CRT, path, err));
    if ((ca->ocsp = pki_cert_load(path, err)) == NULL)
        return -1;
    /* The files must form the chain init made: a swapped file is caught here, not later. */
    int ok = X509_verify(ca->intermediate, X509_get0_pubkey(ca->root)) == 1 &&
             X509_verify(ca->ocsp, X509_get0_pubkey(ca->intermediate)) == 1;
    ERR_clear_error();
    TW_ENSURE(ok, err, TW_ERR_PKI,
              "%s: the certificates do not chain (intermediate not signed "
              "by root, or OCSP signer not signed by intermediate)",
              ca->cadir);
    return 0;
}

/* The inventory as chosen by pki_store_uri; the default file must already exist. */
static int open_store(struct pki_ca *ca, struct tw_err *err)
{
    char uri[PKI_STORE_URI_MAX];
    int default_store = 1;
    TW_GUARD(pki_store_uri(ca->dir, ca->conf.store, uri, sizeof(uri), &default_store, err));
    TW_ENSURE(!default_store || fs_exists(uri), err, TW_ERR_PKI,
              "the inventory %s is missing (the CA in %s cannot be used without it)", uri,
              ca->cadir);
    return store_open(uri, &ca->store, err);
}

int pki_ca_open(const char *dir, struct pki_ca **out, struct tw_err *err)
{
    struct pki_ca *ca = OPENSSL_zalloc(sizeof(*ca));
    TW_ENSURE(ca != NULL, err, TW_ERR_INTERNAL, "out of memory");
    char conf[PATH_MAX];
    int rc = -1;
    if (snprintf(ca->dir, sizeof(ca->dir), "%s", dir) >= (int)sizeof(ca->dir) ||
        fs_path_join(ca->cadir, sizeof(ca->cadir), dir, PKI_DIR_CA, err) != 0)
        tw_err_set(err, TW_ERR_USAGE, "path too long: %s", dir);
    else if (check_present(dir, ca->cadir, err) == 0 &&
             ca_path(ca, PKI_FILE_CONF, conf, err) == 0 && conf_read(conf, &ca->conf, err) == 0 &&
             load_certs(ca, err) == 0)
        rc = open_store(ca, err);
    if (rc == 0)
        rc = ca_recover_init(ca, err);
    if (rc != 0) {
        pki_ca_free(ca);
        return -1;
    }
    *out = ca;
    return 0;
}

void pki_ca_free(struct pki_ca *ca)
{
    if (ca == NULL)
        return;
    pki_signer_free(ca->signer);
    store_free(ca->store);
    X509_free(ca->root);
    X509_free(ca->intermediate);
    X509_free(ca->ocsp);
    OPENSSL_free(ca);
}

static struct pki_signer *load_signer(struct pki_ca *ca, const char *key_file, X509 *cert,
                                      const struct pki_secret *pass, struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD_PTR(ca_path(ca, key_file, path, err));
    TW_ENSURE_PTR(!ca->conf.encrypted || pass != NULL, err, TW_ERR_PKI,
                  "%s is encrypted: pass --passphrase-file F or set TWOWAY_PASSPHRASE_FILE", path);
    TW_AUTO(EVP_PKEY) *key = pki_key_load(path, pass, err);
    if (key == NULL)
        return NULL;
    return pki_signer_new(key, cert, err);
}

int pki_ca_unlock(struct pki_ca *ca, const struct pki_secret *pass, struct tw_err *err)
{
    if (ca->signer != NULL)
        return 0;
    ca->signer = load_signer(ca, PKI_FILE_INT_KEY, ca->intermediate, pass, err);
    return ca->signer != NULL ? 0 : -1;
}

struct pki_signer *pki_ca_ocsp_signer(struct pki_ca *ca, const struct pki_secret *pass,
                                      struct tw_err *err)
{
    return load_signer(ca, PKI_FILE_OCSP_KEY, ca->ocsp, pass, err);
}

struct store *pki_ca_store(struct pki_ca *ca)
{
    return ca->store;
}
const char *pki_ca_dir(const struct pki_ca *ca)
{
    return ca->dir;
}
X509 *pki_ca_root_cert(const struct pki_ca *ca)
{
    return ca->root;
}
X509 *pki_ca_intermediate_cert(const struct pki_ca *ca)
{
    return ca->intermediate;
}
X509 *pki_ca_ocsp_cert(const struct pki_ca *ca)
{
    return ca->ocsp;
}
int pki_ca_crl_days(const struct pki_ca *ca)
{
    return ca->conf.crl_days;
}

const char *pki_ca_base_url(const struct pki_ca *ca)
{
    return ca->conf.base_url[0] != '\0' ? ca->conf.base_url : NULL;
}

const char *pki_ca_http_listen(const struct pki_ca *ca)
{
    return ca->conf.http_listen[0] != '\0' ? ca->conf.http_listen : NULL;
}

STACK_OF(X509) * pki_ca_chain(const struct pki_ca *ca, struct tw_err *err)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (chain == NULL || sk_X509_push(chain, ca->intermediate) <= 0 ||
        (X509_up_ref(ca->intermediate), sk_X509_push(chain, ca->root) <= 0)) {
        sk_X509_pop_free(chain, X509_free);
        return (tw_err_set(err, TW_ERR_INTERNAL, "out of memory"), NULL);
    }
    X509_up_ref(ca->root);
    return chain;
}

/* "5f:0a:..." or "5F0A..." to the store's spelling; 0 when text is not a serial. */
static int normalize_serial(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ':')
            continue;
        if (!isxdigit((unsigned char)*p) || n + 1 >= cap)
            return 0;
        out[n++] = (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
    return n > 0;
}

int pki_ca_find(struct pki_ca *ca, const char *serial_or_name, struct store_cert *out,
                struct tw_err *err)
{
    char serial[STORE_SERIAL_MAX];
    if (normalize_serial(serial_or_name, serial, sizeof(serial))) {
        if (store_cert_get(ca->store, serial, out, err) == 0)
            return 0;
        if (err != NULL && err->code != TW_ERR_NOTFOUND)
            return -1;
    }
    if (store_cert_newest(ca->store, serial_or_name, out, err) == 0)
        return 0;
    if (err != NULL && err->code != TW_ERR_NOTFOUND)
        return -1;
    return tw_err_set(err, TW_ERR_NOTFOUND, "no certificate with serial or name '%s' in %s/%s",
                      serial_or_name, ca->dir, PKI_FILE_DB);
}

int pki_ca_audit(struct pki_ca *ca, const char *action, const char *subject, const char *serial,
                 const struct tw_err *failure, struct tw_err *err)
{
    const char *result = failure == NULL || failure->code == TW_OK ? "ok" : failure->msg;
    return store_audit_add(ca->store, action, subject, serial, result, err);
}
