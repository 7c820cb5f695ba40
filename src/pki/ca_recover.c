/* Finishing an interrupted `ca init`. The one crash window that leaves something later
 * commands take for a CA is between init's rename of the temp dir to D/ca and the commit of
 * its transaction: D/ca is complete, but the inventory has none of its rows and the CRL counter
 * never counted the first CRL. pki_ca_open repairs exactly that state, from the files alone,
 * and refuses anything else (docs/internals/ca.md, "Crash points of ca init"). */
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/log.h"

/* What init recorded, in its order: name suffix (after the CA name) and profile. */
static const struct {
    const char *suffix;
    enum pki_profile profile;
    const char *key;
} parts[] = {
    {"Root", PKI_PROFILE_ROOT, PKI_FILE_ROOT_KEY},
    {"Intermediate", PKI_PROFILE_INTERMEDIATE, PKI_FILE_INT_KEY},
    {"OCSP Signer", PKI_PROFILE_OCSP, PKI_FILE_OCSP_KEY},
};

struct recovery {
    struct pki_ca *ca;
    X509 *certs[3];
    char root_serial[STORE_SERIAL_MAX];
    int64_t crl_number; /* of the CRL init wrote into D/ca */
    int64_t made_at;    /* its thisUpdate: the time init ran */
    int raced;          /* another process recovered first */
};

static int count_one(const struct store_cert *c, void *ctx)
{
    (void)c;
    (*(int *)ctx)++;
    return 1; /* one is enough */
}

/* *found: 1 when the root's row is in the inventory, 0 when not. */
static int root_recorded(struct store *s, const char *serial, int *found, struct tw_err *err)
{
    struct store_cert row;
    struct tw_err local;
    memset(&row, 0, sizeof(row));
    *found = store_cert_get(s, serial, &row, &local) == 0;
    store_cert_clear(&row);
    if (!*found && local.code != TW_ERR_NOTFOUND) {
        if (err != NULL)
            *err = local;
        return -1;
    }
    return 0;
}

/* The reason first: paths may be long and the message is cut at TW_ERR_MSG_MAX. */
static int refuse(const struct recovery *rec, const char *why, struct tw_err *err)
{
    return tw_err_set(err, TW_ERR_PKI,
                      "%s cannot be recovered as an interrupted 'ca init': %s (the inventory %s "
                      "has no row for its root %s)",
                      rec->ca->cadir, why, store_where(rec->ca->store), rec->root_serial);
}

/* The inventory in use must be the one init used: rows of a CA are never written into a
 * store chosen only for this command (--store / $TWOWAY_STORE naming another inventory). */
static int same_store_as_init(const struct recovery *rec, struct tw_err *err)
{
    const char *env = getenv("TWOWAY_STORE");
    if (env == NULL || env[0] == '\0' || strcmp(env, rec->ca->conf.store) == 0)
        return 0;
    return refuse(rec, "it is not the store 'ca init' recorded in ca.conf", err);
}

/* The CRL init wrote: signed by the intermediate, with a number. Its number is what the
 * counter must reach, its thisUpdate the time the CA was made. */
static int read_first_crl(struct recovery *rec, struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD(ca_path(rec->ca, PKI_FILE_CRL_DER, path, err));
    if (!fs_exists(path))
        return refuse(rec, "ca/crl.der is missing", err);
    TW_AUTO(charp) *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, FS_READ_LIMIT_DEFAULT, &data, &len, err));
    const unsigned char *p = (const unsigned char *)data;
    TW_AUTO(X509_CRL) *crl = d2i_X509_CRL(NULL, &p, (long)len);
    TW_AUTO(ASN1_INTEGER) *number =
        crl != NULL ? X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL) : NULL;
    int ok = crl != NULL && X509_CRL_verify(crl, X509_get0_pubkey(rec->ca->intermediate)) == 1 &&
             number != NULL && ASN1_INTEGER_get_int64(&rec->crl_number, number) == 1 &&
             rec->crl_number > 0 &&
             pki_time_to_unix(X509_CRL_get0_lastUpdate(crl), &rec->made_at, NULL) == 0;
    ERR_clear_error();
    if (!ok)
        return refuse(rec, "ca/crl.der is not a numbered CRL signed by the intermediate", err);
    return 0;
}

/* The files must be the complete CA init makes: pki_ca_open already checked the chain; here
 * the root signs itself, root.key exists, and each key that is not encrypted is the one of its
 * certificate (encrypted keys are checked when the passphrase unlocks them). */
static int files_complete(const struct recovery *rec, struct tw_err *err)
{
    struct pki_ca *ca = rec->ca;
    int self_signed = X509_verify(ca->root, X509_get0_pubkey(ca->root)) == 1;
    ERR_clear_error();
    if (!self_signed)
        return refuse(rec, "ca/root.crt is not self-signed", err);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char path[PATH_MAX];
        TW_GUARD(ca_path(ca, parts[i].key, path, err));
        if (!fs_exists(path))
            return refuse(rec, "a CA key file is missing", err);
        if (ca->conf.encrypted)
            continue;
        struct tw_err kerr;
        TW_AUTO(EVP_PKEY) *key = pki_key_load(path, NULL, &kerr);
        int match = key != NULL && X509_check_private_key(rec->certs[i], key) == 1;
        ERR_clear_error();
        if (!match)
            return refuse(rec, "a CA key file is unreadable or does not match its certificate",
                          err);
    }
    return 0;
}

/* One transaction: the counter first (its lock orders concurrent recoveries), then, if no
 * other process got here first and the inventory is still empty, the three rows and the
 * audit row. */
static int recover_txn(struct store *s, void *ctx, struct tw_err *err)
{
    struct recovery *rec = ctx;
    TW_GUARD(store_crl_number_raise(s, rec->crl_number, err));
    int found = 0;
    TW_GUARD(root_recorded(s, rec->root_serial, &found, err));
    if (found) {
        rec->raced = 1;
        return tw_err_set(err, TW_ERR_EXISTS, "already recovered by another process");
    }
    int rows = 0;
    TW_GUARD(store_cert_list(s, NULL, count_one, &rows, err));
    if (rows != 0)
        return refuse(rec, "it holds other certificates (another CA's inventory?)", err);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        char cn[PKI_NAME_MAX + 1];
        snprintf(cn, sizeof(cn), "%s %s", rec->ca->conf.name, parts[i].suffix);
        struct store_cert row;
        TW_GUARD(pki_cert_to_row(rec->certs[i], cn, parts[i].profile, rec->made_at, &row, err));
        int rc = store_cert_put(s, &row, err);
        store_cert_clear(&row);
        TW_GUARD(rc);
    }
    char subject[STORE_SUBJECT_MAX];
    TW_GUARD(pki_name_to_text(X509_get_subject_name(rec->ca->root), subject, sizeof(subject), err));
    TW_GUARD(store_audit_add(s, "init", subject, rec->root_serial, "recovered", err));
    ca_fault_point("recover-before-commit");
    return 0;
}

int ca_recover_init(struct pki_ca *ca, struct tw_err *err)
{
    struct recovery rec = {.ca = ca, .certs = {ca->root, ca->intermediate, ca->ocsp}};
    TW_GUARD(pki_cert_serial_hex(ca->root, rec.root_serial, sizeof(rec.root_serial), err));
    int found = 0;
    TW_GUARD(root_recorded(ca->store, rec.root_serial, &found, err));
    if (found)
        return 0; /* the usual case: one lookup */
    TW_GUARD(same_store_as_init(&rec, err));
    TW_GUARD(files_complete(&rec, err));
    TW_GUARD(read_first_crl(&rec, err));
    if (store_transaction(ca->store, recover_txn, &rec, err) != 0) {
        if (!rec.raced)
            return -1;
        tw_err_clear(err);
        return 0;
    }
    log_warnx("%s: finished an interrupted 'ca init': recorded its root, intermediate and OCSP "
              "signer in %s; the next CRL is numbered above %lld",
              ca->dir, store_where(ca->store), (long long)rec.crl_number);
    return 0;
}
