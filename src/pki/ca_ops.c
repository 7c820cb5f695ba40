/* What a CA does once it exists: issue (inventory row first), revoke, and write the CRL. Each
 * success is audited in the same transaction as the change it records; each failure is
 * audited afterwards, best effort. */
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define ISSUE_ATTEMPTS 3 /* a 128-bit serial collision is astronomically rare; retry anyway */

static void audit_failure(struct pki_ca *ca, const char *action, const char *subject,
                          const char *serial, const struct tw_err *failure)
{
    struct tw_err ignored; /* the caller reports the original failure */
    if (failure != NULL &&
        store_audit_add(ca->store, action, subject, serial, failure->msg, &ignored) != 0)
        tw_err_clear(&ignored);
}

struct put_ctx {
    const struct store_cert *row;
};

static int put_and_audit(struct store *s, void *ctx, struct tw_err *err)
{
    const struct store_cert *row = ((struct put_ctx *)ctx)->row;
    TW_GUARD(store_cert_put(s, row, err));
    return store_audit_add(s, "issue", row->subject, row->serial, "ok", err);
}

static int issue_once(struct pki_ca *ca, const struct pki_cert_request *req, X509 **out,
                      struct tw_err *err)
{
    time_t now = time(NULL);
    TW_AUTO(X509) *cert = pki_cert_make(ca->signer, req, now, err);
    if (cert == NULL)
        return -1;
    struct store_cert row;
    TW_GUARD(pki_cert_to_row(cert, req->cn, req->profile, (int64_t)now, &row, err));
    struct put_ctx ctx = {&row};
    int rc = store_transaction(ca->store, put_and_audit, &ctx, err);
    store_cert_clear(&row);
    TW_GUARD(rc);
    *out = TW_TAKE(cert);
    return 0;
}

int pki_ca_issue(struct pki_ca *ca, const struct pki_cert_request *req, X509 **out,
                 struct tw_err *err)
{
    struct tw_err local;
    tw_err_clear(&local);
    struct pki_cert_request r = *req;
    r.base_url = pki_ca_base_url(ca);
    int rc = -1;
    if (ca->signer == NULL)
        tw_err_set(&local, TW_ERR_INTERNAL, "the CA is locked (pki_ca_unlock first)");
    else
        for (int i = 0; i < ISSUE_ATTEMPTS && rc != 0; i++) {
            rc = issue_once(ca, &r, out, &local);
            if (rc != 0 && local.code != TW_ERR_EXISTS)
                break;
        }
    if (rc != 0) {
        char subject[STORE_SUBJECT_MAX];
        snprintf(subject, sizeof(subject), "CN=%s", req->cn != NULL ? req->cn : "");
        audit_failure(ca, "issue", subject, NULL, &local);
        if (err != NULL)
            *err = local;
    }
    return rc;
}

struct revoke_ctx {
    const struct store_cert *row;
    int reason;
    int64_t when;
};

static int revoke_and_audit(struct store *s, void *ctx, struct tw_err *err)
{
    const struct revoke_ctx *rc = ctx;
    TW_GUARD(store_cert_revoke(s, rc->row->serial, rc->reason, rc->when, err));
    char result[64];
    snprintf(result, sizeof(result), "ok: %s", pki_reason_name(rc->reason));
    return store_audit_add(s, "revoke", rc->row->subject, rc->row->serial, result, err);
}

int pki_ca_revoke(struct pki_ca *ca, const char *serial, int reason, int64_t when,
                  struct tw_err *err)
{
    struct tw_err local;
    tw_err_clear(&local);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    int rc = -1;
    if (reason < 0 || reason >= PKI_REASON_COUNT || strcmp(pki_reason_name(reason), "unknown") == 0)
        tw_err_set(&local, TW_ERR_USAGE, "unknown revocation reason %d", reason);
    else if (store_cert_get(ca->store, serial, &row, &local) != 0)
        ; /* TW_ERR_NOTFOUND from the store names the serial */
    else if (strcmp(row.profile, "root") == 0 || strcmp(row.profile, "intermediate") == 0)
        tw_err_set(&local, TW_ERR_PKI,
                   "%s is the %s CA certificate; 'ca revoke' only revokes certificates the "
                   "intermediate issued",
                   row.serial, row.profile);
    else if (row.status == STORE_REVOKED)
        tw_err_set(&local, TW_ERR_EXISTS, "certificate %s (%s) is already revoked (%s)", row.serial,
                   row.name, pki_reason_name(row.revoke_reason));
    else {
        struct revoke_ctx ctx = {&row, reason, when};
        rc = store_transaction(ca->store, revoke_and_audit, &ctx, &local);
    }
    if (rc != 0) {
        audit_failure(ca, "revoke", row.subject[0] ? row.subject : NULL, serial, &local);
        if (err != NULL)
            *err = local;
    }
    store_cert_clear(&row);
    return rc;
}

/* Revoked entries gathered from the inventory; serials are copied out of the row. */
struct entries {
    struct pki_crl_entry *items;
    char (*serials)[STORE_SERIAL_MAX];
    size_t count, cap;
    int failed;
};

static int collect(const struct store_cert *c, void *ctx)
{
    struct entries *e = ctx;
    if (e->count == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        void *items = realloc(e->items, cap * sizeof(*e->items));
        if (items != NULL)
            e->items = items;
        void *serials = realloc(e->serials, cap * sizeof(*e->serials));
        if (serials != NULL)
            e->serials = serials;
        if (items == NULL || serials == NULL)
            return (e->failed = 1);
        e->cap = cap;
    }
    snprintf(e->serials[e->count], STORE_SERIAL_MAX, "%s", c->serial);
    e->items[e->count].revoked_at = c->revoked_at;
    e->items[e->count].reason = c->revoke_reason < 0 ? 0 : c->revoke_reason;
    e->count++;
    return 0;
}

/* The number and the revoked list in ONE transaction, number first: taking it locks the
 * counter until the list is read, so with several servers on one database exactly one builds
 * at a time and a higher number never lists fewer revocations. */
struct crl_snapshot {
    const char *issuer;
    struct entries *e;
    int64_t *number;
};

static int crl_snapshot_take(struct store *s, void *ctx, struct tw_err *err)
{
    struct crl_snapshot *snap = ctx;
    TW_GUARD(store_crl_number_next(s, snap->number, err));
    return store_revoked_list(s, snap->issuer, collect, snap->e, err);
}

static X509_CRL *build_crl(struct pki_ca *ca, int days, int64_t *number, size_t *count,
                           int64_t *next_update, struct tw_err *err)
{
    char issuer[STORE_SUBJECT_MAX];
    TW_GUARD_PTR(
        pki_name_to_text(X509_get_subject_name(ca->intermediate), issuer, sizeof(issuer), err));
    struct entries e = {0};
    X509_CRL *crl = NULL;
    struct crl_snapshot snap = {issuer, &e, number};
    if (store_transaction(ca->store, crl_snapshot_take, &snap, err) == 0 && !e.failed) {
        for (size_t i = 0; i < e.count; i++)
            e.items[i].serial_hex = e.serials[i];
        time_t now = time(NULL);
        crl = pki_crl_make(ca->signer, e.items, e.count, *number, now, (int64_t)days * 86400, err);
        *count = e.count;
        *next_update = (int64_t)now + (int64_t)days * 86400;
    } else if (e.failed) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory listing revoked certificates");
    }
    free(e.items);
    free(e.serials);
    return crl;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int encode_crl(X509_CRL *crl, int der, unsigned char **out, size_t *len, struct tw_err *err)
{
    if (der) {
        unsigned char *buf = NULL;
        int n = i2d_X509_CRL(crl, &buf);
        TW_ENSURE_OSSL(n > 0, err, TW_ERR_PKI, "cannot encode the CRL");
        *out = buf;
        *len = (size_t)n;
        return 0;
    }
    TW_AUTO(BIO) *bio = BIO_new(BIO_s_mem());
    TW_ENSURE_OSSL(bio != NULL && PEM_write_bio_X509_CRL(bio, crl) == 1, err, TW_ERR_PKI,
                   "cannot encode the CRL");
    char *mem;
    long n = BIO_get_mem_data(bio, &mem);
    *out = OPENSSL_memdup(mem, (size_t)n);
    TW_ENSURE(*out != NULL, err, TW_ERR_INTERNAL, "out of memory");
    *len = (size_t)n;
    return 0;
}

static int write_crl(const char *path, X509_CRL *crl, int der, struct tw_err *err)
{
    unsigned char *data = NULL;
    size_t len = 0;
    TW_GUARD(encode_crl(crl, der, &data, &len, err));
    int rc = fs_write_atomic(path, data, len, 0644, err);
    OPENSSL_free(data);
    return rc;
}

/* The CRL number of the CRL file at path; 0 when absent or unreadable. */
static int64_t file_crl_number(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (fs_read_file(path, 16u * 1024 * 1024, &data, &len, NULL) != 0)
        return 0;
    const unsigned char *p = (const unsigned char *)data;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    free(data);
    ASN1_INTEGER *n = crl != NULL ? X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL) : NULL;
    int64_t v = 0;
    if (n == NULL || ASN1_INTEGER_get_int64(&v, n) != 1)
        v = 0;
    ASN1_INTEGER_free(n);
    X509_CRL_free(crl);
    ERR_clear_error();
    return v;
}

/* Several processes (servers, `ca revoke`) on one CA directory finish their CRLs in any
 * order: under a lock, a CRL never replaces one with a higher number, so the files always
 * hold the newest. */
static int crl_write_files_locked(const char *cadir, X509_CRL *crl, const char *extra_out,
                                  struct tw_err *err);

int crl_write_files(const char *cadir, X509_CRL *crl, const char *extra_out, struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD(fs_path_join(path, sizeof(path), cadir, ".crl.lock", err));
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot open %s", path);
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return tw_err_sys(err, TW_ERR_IO, "cannot lock %s", path);
    }
    int rc = crl_write_files_locked(cadir, crl, extra_out, err);
    close(fd); /* releases the lock */
    return rc;
}

static int crl_write_files_locked(const char *cadir, X509_CRL *crl, const char *extra_out,
                                  struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD(fs_path_join(path, sizeof(path), cadir, PKI_FILE_CRL_DER, err));
    ASN1_INTEGER *mine = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
    int64_t number = 0;
    if (mine == NULL || ASN1_INTEGER_get_int64(&number, mine) != 1)
        number = 0;
    ASN1_INTEGER_free(mine);
    if (number > 0 && file_crl_number(path) > number) {
        if (extra_out != NULL)
            TW_GUARD(write_crl(extra_out, crl, ends_with(extra_out, ".der"), err));
        return 0; /* a newer CRL is already published */
    }
    TW_GUARD(fs_path_join(path, sizeof(path), cadir, PKI_FILE_CRL_PEM, err));
    TW_GUARD(write_crl(path, crl, 0, err));
    TW_GUARD(fs_path_join(path, sizeof(path), cadir, PKI_FILE_CRL_DER, err));
    TW_GUARD(write_crl(path, crl, 1, err));
    if (extra_out != NULL)
        TW_GUARD(write_crl(extra_out, crl, ends_with(extra_out, ".der"), err));
    return 0;
}

int pki_ca_crl_write(struct pki_ca *ca, int days, const char *extra_out, int64_t *number,
                     size_t *entries, int64_t *next_update, struct tw_err *err)
{
    struct tw_err local;
    tw_err_clear(&local);
    int64_t num = 0, next = 0;
    size_t count = 0;
    int rc = -1;
    if (days <= 0)
        days = ca->conf.crl_days;
    if (ca->signer == NULL) {
        tw_err_set(&local, TW_ERR_INTERNAL, "the CA is locked (pki_ca_unlock first)");
    } else if (days > 3650) {
        tw_err_set(&local, TW_ERR_USAGE, "--days for a CRL must be at most 3650");
    } else {
        X509_CRL *crl = build_crl(ca, days, &num, &count, &next, &local);
        if (crl != NULL)
            rc = crl_write_files(ca->cadir, crl, extra_out, &local);
        X509_CRL_free(crl);
    }
    char serial[32];
    snprintf(serial, sizeof(serial), "crl-%lld", (long long)num);
    char result[TW_ERR_MSG_MAX];
    snprintf(result, sizeof(result), "%s", rc == 0 ? "ok" : local.msg);
    struct tw_err aerr;
    if (store_audit_add(ca->store, "crl", NULL, num > 0 ? serial : NULL, result, &aerr) != 0 &&
        rc == 0) {
        local = aerr;
        rc = -1;
    }
    if (rc != 0) {
        if (err != NULL)
            *err = local;
        return -1;
    }
    if (number != NULL)
        *number = num;
    if (entries != NULL)
        *entries = count;
    if (next_update != NULL)
        *next_update = next;
    return 0;
}
