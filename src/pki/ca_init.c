/* `ca init`: make root, intermediate and OCSP signer in a temporary directory, record them in
 * the inventory, and rename the directory into place as the very last step. A crash at any
 * point leaves either no `ca/` at all or a complete one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "pki/internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define DAY_SECS 86400

struct init {
    const struct pki_ca_options *opt;
    char name[PKI_CA_NAME_MAX + 1];
    char tmp[PATH_MAX];
    char final[PATH_MAX];
    EVP_PKEY *keys[3]; /* root, intermediate, ocsp */
    X509 *certs[3];
    int renamed;
    time_t now;
};

enum { ROOT, INTERMEDIATE, OCSP };

static const struct {
    enum pki_profile profile;
    const char *suffix;
    const char *crt;
    const char *key;
} parts[] = {
    [ROOT] = {PKI_PROFILE_ROOT, "Root", PKI_FILE_ROOT_CRT, PKI_FILE_ROOT_KEY},
    [INTERMEDIATE] = {PKI_PROFILE_INTERMEDIATE, "Intermediate", PKI_FILE_INT_CRT, PKI_FILE_INT_KEY},
    [OCSP] = {PKI_PROFILE_OCSP, "OCSP Signer", PKI_FILE_OCSP_CRT, PKI_FILE_OCSP_KEY},
};

static int validate(const struct pki_ca_options *opt, struct init *in, struct tw_err *err)
{
    const char *name = opt->name != NULL ? opt->name : "twoway CA";
    TW_ENSURE(name[0] != '\0' && strlen(name) <= PKI_CA_NAME_MAX, err, TW_ERR_USAGE,
              "--name must be 1 to %d characters", PKI_CA_NAME_MAX);
    for (const char *p = name; *p != '\0'; p++)
        TW_ENSURE((unsigned char)*p >= 0x20 && *p != 0x7f, err, TW_ERR_USAGE,
                  "--name must not contain control characters");
    snprintf(in->name, sizeof(in->name), "%s", name);
    if (opt->base_url != NULL)
        TW_GUARD(conf_check_base_url(opt->base_url, err));
    TW_ENSURE(opt->passphrase == NULL || opt->passphrase->len >= PKI_CA_PASSPHRASE_MIN, err,
              TW_ERR_USAGE, "the CA passphrase must have at least %d characters",
              PKI_CA_PASSPHRASE_MIN);
    TW_ENSURE(opt->passphrase == NULL || opt->key_store == NULL, err, TW_ERR_USAGE,
              "--passphrase-file and --key-store exclude each other: keys in a token or TPM "
              "are protected by it, not by a passphrase");
    TW_ENSURE(opt->root_days <= 36500 && opt->int_days <= 36500, err, TW_ERR_USAGE,
              "--root-days and --int-days must be at most 36500");
    return 0;
}

static int write_in(const struct init *in, const char *file, const void *data, size_t len,
                    mode_t mode, struct tw_err *err)
{
    char path[PATH_MAX];
    TW_GUARD(fs_path_join(path, sizeof(path), in->tmp, file, err));
    return fs_write_new(path, data, len, mode, err);
}

static int write_key(const struct init *in, int i, struct tw_err *err)
{
    char *pem = NULL;
    size_t len = 0;
    TW_GUARD(pki_key_to_pem(in->keys[i], in->opt->passphrase, &pem, &len, err));
    int rc = write_in(in, parts[i].key, pem, len, 0600, err);
    pki_pem_free(pem, len);
    return rc;
}

/* A key made in the token or TPM: the key file written is its reference (or TSS2 blob). */
static int make_key_in_store(struct init *in, int i, const char *cn, struct tw_err *err)
{
    char *file = NULL;
    size_t len = 0;
    in->keys[i] = pki_key_generate_in(in->opt->key_store, cn, in->opt->key_type, &file, &len, err);
    if (in->keys[i] == NULL)
        return -1;
    int rc = write_in(in, parts[i].key, file, len, 0600, err);
    pki_pem_free(file, len);
    return rc;
}

static int make_part(struct init *in, int i, struct tw_err *err)
{
    char cn[PKI_NAME_MAX + 1];
    snprintf(cn, sizeof(cn), "%s %s", in->name, parts[i].suffix);
    if (in->opt->key_store != NULL)
        TW_GUARD(make_key_in_store(in, i, cn, err));
    else if ((in->keys[i] = pki_key_generate(in->opt->key_type, err)) == NULL)
        return -1;
    int issuer = i == ROOT ? ROOT : i == INTERMEDIATE ? ROOT : INTERMEDIATE;
    struct pki_signer *signer =
        pki_signer_new(in->keys[issuer], i == ROOT ? NULL : in->certs[issuer], err);
    if (signer == NULL)
        return -1;
    int days = i == ROOT ? (in->opt->root_days > 0 ? in->opt->root_days : 3650)
                         : (in->opt->int_days > 0 ? in->opt->int_days : 1825);
    struct pki_cert_request req = {
        .profile = parts[i].profile,
        .cn = cn,
        .pubkey = in->keys[i],
        .lifetime = (int64_t)days * DAY_SECS,
    };
    in->certs[i] = pki_cert_make(signer, &req, in->now, err);
    pki_signer_free(signer);
    if (in->certs[i] == NULL)
        return -1;
    if (in->opt->key_store == NULL)
        TW_GUARD(write_key(in, i, err));
    size_t len = 0;
    TW_AUTO(charp) *pem = pki_cert_to_pem(in->certs[i], &len, err);
    return pem != NULL ? write_in(in, parts[i].crt, pem, len, 0644, err) : -1;
}

static int build(struct init *in, struct tw_err *err)
{
    for (int i = ROOT; i <= OCSP; i++)
        TW_GUARD(make_part(in, i, err));
    /* chain.pem: intermediate then root, what servers use to verify client certificates. */
    size_t ilen = 0, rlen = 0;
    TW_AUTO(charp) *ipem = pki_cert_to_pem(in->certs[INTERMEDIATE], &ilen, err);
    TW_AUTO(charp) *rpem = pki_cert_to_pem(in->certs[ROOT], &rlen, err);
    TW_ENSURE(ipem != NULL && rpem != NULL, err, TW_ERR_INTERNAL, "out of memory");
    TW_AUTO(charp) *chain = malloc(ilen + rlen);
    TW_ENSURE(chain != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(chain, ipem, ilen);
    memcpy(chain + ilen, rpem, rlen);
    TW_GUARD(write_in(in, PKI_FILE_CHAIN, chain, ilen + rlen, 0644, err));
    struct pki_ca_conf conf = {.encrypted = in->opt->passphrase != NULL,
                               .crl_days = PKI_CRL_DAYS_DEFAULT};
    snprintf(conf.name, sizeof(conf.name), "%s", in->name);
    snprintf(conf.key, sizeof(conf.key), "%s", pki_key_type_name(in->opt->key_type));
    if (in->opt->base_url != NULL)
        snprintf(conf.base_url, sizeof(conf.base_url), "%s", in->opt->base_url);
    /* A store chosen at init ($TWOWAY_STORE / --store) is where the inventory lives from now
     * on: recorded so later commands find it without the flag. */
    const char *store = getenv("TWOWAY_STORE");
    if (store != NULL)
        snprintf(conf.store, sizeof(conf.store), "%s", store);
    char path[PATH_MAX];
    TW_GUARD(fs_path_join(path, sizeof(path), in->tmp, PKI_FILE_CONF, err));
    return conf_write(path, &conf, err);
}

/* Test-only crash injection: TWOWAY_FAULT_INIT=POINT kills the process with SIGKILL at that
 * point, as a power loss or `kill -9` would (no cleanup, no rollback by this process). The
 * points are the crash windows docs/internals/ca.md describes: "built" (all files in the temp
 * dir, no transaction yet), "before-rename" (rows written, not committed), "before-commit" (the
 * temp dir renamed to D/ca, the transaction not committed), and "recover-before-commit" (the
 * repair of that last state, rows written, not committed). */
void ca_fault_point(const char *point)
{
    const char *want = getenv("TWOWAY_FAULT_INIT");
    if (want != NULL && strcmp(want, point) == 0)
        raise(SIGKILL);
}

static int rename_noreplace(const char *from, const char *to, struct tw_err *err)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return tw_err_set(err, TW_ERR_EXISTS,
                          "%s already exists; refusing to overwrite an "
                          "existing CA",
                          to);
    if (errno != EINVAL && errno != ENOSYS)
        return tw_err_sys(err, TW_ERR_IO, "cannot rename %s to %s", from, to);
    /* File systems without RENAME_NOREPLACE: a plain rename, after a fresh check. */
    TW_ENSURE(!fs_exists(to), err, TW_ERR_EXISTS,
              "%s already exists; refusing to overwrite an existing CA", to);
    if (rename(from, to) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot rename %s to %s", from, to);
    return 0;
}

/* Make the rename durable before the commit: were the commit durable and the rename not
 * (power loss), the inventory would hold a CA whose directory is back to `.ca-init.*`. */
static int fsync_dir(const char *dir, struct tw_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot open %s", dir);
    int rc = fsync(fd);
    close(fd);
    if (rc != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot sync %s", dir);
    return 0;
}

/* Inside one store transaction: rows, the first CRL, then the rename that makes it real. */
static int commit(struct store *s, void *ctx, struct tw_err *err)
{
    struct init *in = ctx;
    for (int i = ROOT; i <= OCSP; i++) {
        struct store_cert row;
        char cn[PKI_NAME_MAX + 1];
        snprintf(cn, sizeof(cn), "%s %s", in->name, parts[i].suffix);
        TW_GUARD(pki_cert_to_row(in->certs[i], cn, parts[i].profile, (int64_t)in->now, &row, err));
        int rc = store_cert_put(s, &row, err);
        store_cert_clear(&row);
        TW_GUARD(rc);
    }
    int64_t number = 0;
    TW_GUARD(store_crl_number_next(s, &number, err));
    struct pki_signer *signer =
        pki_signer_new(in->keys[INTERMEDIATE], in->certs[INTERMEDIATE], err);
    if (signer == NULL)
        return -1;
    X509_CRL *crl = pki_crl_make(signer, NULL, 0, number, in->now,
                                 (int64_t)PKI_CRL_DAYS_DEFAULT * DAY_SECS, err);
    pki_signer_free(signer);
    if (crl == NULL)
        return -1;
    int rc = crl_write_files(in->tmp, crl, NULL, err);
    X509_CRL_free(crl);
    TW_GUARD(rc);
    /* The success row commits with the CA rows, so an "ok" in the audit means a real CA. */
    char subject[STORE_SUBJECT_MAX], serial[STORE_SERIAL_MAX];
    TW_GUARD(
        pki_name_to_text(X509_get_subject_name(in->certs[ROOT]), subject, sizeof(subject), err));
    TW_GUARD(pki_cert_serial_hex(in->certs[ROOT], serial, sizeof(serial), err));
    TW_GUARD(store_audit_add(s, "init", subject, serial, "ok", err));
    ca_fault_point("before-rename");
    TW_GUARD(rename_noreplace(in->tmp, in->final, err));
    in->renamed = 1;
    TW_GUARD(fsync_dir(in->opt->dir, err));
    ca_fault_point("before-commit");
    return 0;
}

static void remove_flat_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        char file[PATH_MAX];
        if (snprintf(file, sizeof(file), "%s/%s", path, ent->d_name) < (int)sizeof(file))
            unlink(file);
    }
    closedir(d);
    rmdir(path);
}

static int count_one(const struct store_cert *c, void *ctx)
{
    (void)c;
    (*(int *)ctx)++;
    return 1; /* one is enough */
}

static int run(struct init *in, struct store **store, struct tw_err *err)
{
    const char *dir = in->opt->dir;
    TW_GUARD(fs_mkdir_private(dir, err));
    TW_GUARD(fs_path_join(in->final, sizeof(in->final), dir, PKI_DIR_CA, err));
    char db[PKI_STORE_URI_MAX];
    int default_store = 1;
    TW_GUARD(pki_store_uri(dir, NULL, db, sizeof(db), &default_store, err));
    if (fs_exists(in->final)) {
        if ((!default_store || fs_exists(db)) && store_open(db, store, NULL) != 0)
            *store = NULL;
        return tw_err_set(err, TW_ERR_EXISTS,
                          "%s already exists; refusing to overwrite an existing CA", in->final);
    }
    /* Opened first so that a failure from here on is recorded in the audit trail. */
    TW_GUARD(store_open(db, store, err));
    /* A shared store (PostgreSQL) may already hold another CA's inventory: never mix two. */
    int rows = 0;
    TW_GUARD(store_cert_list(*store, NULL, count_one, &rows, err));
    TW_ENSURE(rows == 0, err, TW_ERR_EXISTS,
              "the inventory %s already holds certificates of a CA; give this CA its own "
              "(empty) store",
              store_where(*store));
    TW_ENSURE(snprintf(in->tmp, sizeof(in->tmp), "%s/%sXXXXXX", dir, PKI_DIR_INIT_PREFIX) <
                  (int)sizeof(in->tmp),
              err, TW_ERR_USAGE, "path too long: %s", dir);
    if (mkdtemp(in->tmp) == NULL) {
        in->tmp[0] = '\0';
        return tw_err_sys(err, TW_ERR_IO, "cannot create a directory in %s", dir);
    }
    TW_GUARD(build(in, err));
    ca_fault_point("built");
    if (store_transaction(*store, commit, in, err) != 0) {
        /* The rows were rolled back: put the directory back out of sight as well. */
        if (in->renamed && rename(in->final, in->tmp) == 0)
            in->renamed = 0;
        return -1;
    }
    return 0;
}

int pki_ca_init(const struct pki_ca_options *opt, struct pki_ca_created *out, struct tw_err *err)
{
    struct init in;
    memset(&in, 0, sizeof(in));
    in.opt = opt;
    in.now = time(NULL);
    TW_GUARD(validate(opt, &in, err));
    struct store *store = NULL;
    struct tw_err local;
    tw_err_clear(&local);
    int rc = run(&in, &store, &local);
    if (rc == 0)
        rc = pki_cert_fingerprint(in.certs[ROOT], out->root_sha256, out->root_sha256_colon, &local);
    if (rc != 0 && !in.renamed && in.tmp[0] != '\0')
        remove_flat_dir(in.tmp);
    if (rc != 0 && store != NULL) {
        char subject[STORE_SUBJECT_MAX] = "";
        if (in.certs[ROOT] == NULL || pki_name_to_text(X509_get_subject_name(in.certs[ROOT]),
                                                       subject, sizeof(subject), NULL) != 0)
            subject[0] = '\0';
        struct tw_err ignored; /* the failure being recorded is the one to report */
        if (store_audit_add(store, "init", subject[0] ? subject : NULL, NULL, local.msg,
                            &ignored) != 0)
            tw_err_clear(&ignored);
    }
    store_free(store);
    for (int i = ROOT; i <= OCSP; i++) {
        EVP_PKEY_free(in.keys[i]);
        X509_free(in.certs[i]);
    }
    if (rc != 0 && err != NULL)
        *err = local;
    return rc;
}
