/* `twoway ca export`: a PEM bundle or PKCS#12 of an issued certificate, for browsers, Java,
 * Windows, macOS and phones. The CA keeps no end-entity keys; the key comes from --key. */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "util/buf.h"
#include "util/cleanup.h"
#include "util/fs.h"

static const char usage[] =
    "usage: twoway ca export SERIAL|NAME (--pem | --p12) [--dir D] [--key FILE] [--out FILE]\n"
    "                        [--force] [--p12-legacy] [--p12-pass-file F]\n"
    "\n"
    "Export a certificate of the inventory (by hex serial, or the newest issued to NAME).\n"
    "\n"
    "  --pem               key (with --key), certificate, intermediate, root; default\n"
    "                      --out ./NAME.pem, '--out -' for stdout\n"
    "  --p12               PKCS#12 with key, certificate and chain; default --out ./NAME.p12\n"
    "  --key FILE          the certificate's private key (for --p12 default ./NAME.key)\n"
    "  --p12-legacy        3DES/SHA-1 PKCS#12 for old macOS, Windows and Java\n"
    "  --p12-pass-file F   PKCS#12 password on F's first line (or $TWOWAY_P12_PASS_FILE)\n"
    "  --force             overwrite an existing output file\n"
    "\n"
    "Examples:\n"
    "  twoway ca export alice --pem --out - | openssl x509 -noout -subject\n"
    "  twoway ca export alice --p12 --key alice.key --p12-pass-file pass.txt\n"
    "  twoway ca export alice --p12 --p12-legacy --p12-pass-file pass.txt\n";

static const char cmd[] = "ca export";

struct export_args {
    struct flags_p12 p12;
    const char *dir, *key, *out, *what;
    bool pem, force;
};

#define AT(field) offsetof(struct export_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(p12), .group = flags_p12_group},
    {.name = "dir", .kind = FLAG_STRING, .off = AT(dir)},
    {.name = "key", .kind = FLAG_STRING, .off = AT(key)},
    {.name = "out", .kind = FLAG_STRING, .off = AT(out)},
    {.name = "pem", .kind = FLAG_BOOL, .off = AT(pem)},
    {.name = "force", .kind = FLAG_BOOL, .off = AT(force)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = cmd, .usage = usage, .flags = flags, .nargs = 1, .nargs_error = ca_one_cert_error};

static int parse(int argc, char **argv, struct export_args *a)
{
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    a->what = argv[1];
    if (a->pem == a->p12.p12)
        return cli_usage_error(cmd, "choose one of --pem or --p12");
    if (a->pem && (a->p12.legacy || a->p12.pass_file != NULL))
        return cli_usage_error(cmd, "--p12-legacy and --p12-pass-file go with --p12");
    if ((rc = flags_p12_check(cmd, &a->p12)) != FLAGS_GO_ON)
        return rc;
    if (a->p12.p12 && a->out != NULL && strcmp(a->out, "-") == 0)
        return cli_usage_error(cmd, "a PKCS#12 file is binary; give --out FILE");
    return FLAGS_GO_ON;
}

static EVP_PKEY *load_key(const char *path, X509 *cert, const char *serial, struct tw_err *err)
{
    EVP_PKEY *key = pki_key_load(path, NULL, err);
    if (key != NULL && !pki_key_matches_cert(key, cert)) {
        EVP_PKEY_free(key);
        tw_err_set(err, TW_ERR_PKI, "%s is not the key of certificate %s", path, serial);
        return NULL;
    }
    return key;
}

static int append_pem(struct tw_buf *b, X509 *cert, struct tw_err *err)
{
    size_t len = 0;
    TW_AUTO(charp) *pem = pki_cert_to_pem(cert, &len, err);
    return pem != NULL ? tw_buf_append(b, pem, len, err) : -1;
}

static int make_pem(struct pki_ca *ca, EVP_PKEY *key, X509 *cert, struct tw_buf *b,
                    struct tw_err *err)
{
    if (key != NULL) {
        char *pem = NULL;
        size_t len = 0;
        TW_GUARD(pki_key_to_pem(key, NULL, &pem, &len, err));
        int rc = tw_buf_append(b, pem, len, err);
        pki_pem_free(pem, len);
        TW_GUARD(rc);
    }
    TW_GUARD(append_pem(b, cert, err));
    TW_GUARD(append_pem(b, pki_ca_intermediate_cert(ca), err));
    return append_pem(b, pki_ca_root_cert(ca), err);
}

static int make_p12(struct pki_ca *ca, const struct export_args *a, EVP_PKEY *key, X509 *cert,
                    const char *name, struct tw_buf *b, struct tw_err *err)
{
    struct pki_secret pass;
    TW_GUARD(ca_p12_password(a->p12.pass_file, &pass, err));
    TW_AUTO(X509_STACK) *chain = pki_ca_chain(ca, err);
    unsigned char *der = NULL;
    size_t len = 0;
    int rc = chain != NULL
                 ? pki_p12_make(key, cert, chain, name, &pass, a->p12.legacy, &der, &len, err)
                 : -1;
    pki_secret_wipe(&pass);
    if (rc == 0)
        rc = tw_buf_append(b, der, len, err);
    if (der != NULL)
        OPENSSL_clear_free(der, len);
    return rc;
}

static int export(struct pki_ca *ca, const struct export_args *a, const struct store_cert *row,
                  char *out, struct tw_err *err)
{
    TW_AUTO(X509) *cert = pki_cert_from_pem(row->pem, strlen(row->pem), row->serial, err);
    if (cert == NULL)
        return -1;
    char keypath[PATH_MAX];
    const char *kp = a->key;
    if (kp == NULL && a->p12.p12) {
        snprintf(keypath, sizeof(keypath), "%s.key", row->name);
        kp = keypath;
    }
    TW_AUTO(EVP_PKEY) *key = NULL;
    if (kp != NULL && (key = load_key(kp, cert, row->serial, err)) == NULL)
        return -1;
    if (a->out != NULL)
        snprintf(out, PATH_MAX, "%s", a->out);
    else
        snprintf(out, PATH_MAX, "%s.%s", row->name, a->pem ? "pem" : "p12");
    struct tw_buf b;
    tw_buf_init(&b, 4u * 1024 * 1024);
    int rc =
        a->pem ? make_pem(ca, key, cert, &b, err) : make_p12(ca, a, key, cert, row->name, &b, err);
    if (rc == 0 && strcmp(out, "-") == 0)
        rc = fwrite(b.data, 1, b.len, stdout) == b.len ? 0 : tw_err_sys(err, TW_ERR_IO, "stdout");
    else if (rc == 0)
        rc = ca_write_output(out, b.data, b.len, key != NULL ? 0600 : 0644, a->force, err);
    tw_buf_free(&b);
    return rc;
}

int cli_ca_export(int argc, char **argv)
{
    struct export_args a;
    memset(&a, 0, sizeof(a));
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "export", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    char out[PATH_MAX] = "";
    rc = pki_ca_find(ca, a.what, &row, &err);
    if (rc == 0)
        rc = export(ca, &a, &row, out, &err);
    char result[TW_ERR_MSG_MAX];
    snprintf(result, sizeof(result), "ok: %s %.200s",
             a.pem          ? "pem"
             : a.p12.legacy ? "p12-legacy"
                            : "p12",
             out);
    struct tw_err aerr;
    if (store_audit_add(pki_ca_store(ca), "export", row.subject[0] ? row.subject : NULL,
                        row.serial[0] ? row.serial : a.what, rc == 0 ? result : err.msg,
                        &aerr) != 0 &&
        rc == 0) {
        err = aerr;
        rc = -1;
    }
    store_cert_clear(&row);
    pki_ca_free(ca);
    if (rc != 0)
        return cli_fail(&err);
    if (strcmp(out, "-") != 0)
        printf("exported: %s\n", out);
    return 0;
}
