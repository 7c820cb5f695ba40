/* `twoway ca issue`: issue a client or server certificate. Everything is checked first; the
 * inventory row is committed before any file is written or anything printed. */
#include <arpa/inet.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "pki/pki.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/fs.h"

static const char usage[] =
    "usage: twoway ca issue client NAME | server NAME | admin NAME [--dir D] [--san LIST] [--days N]\n"
    "                       [--key TYPE | --csr FILE] [--out DIR] [--force]\n"
    "                       [--p12 [--p12-legacy] [--p12-pass-file F]] [--passphrase-file F]\n"
    "\n"
    "Issue a certificate signed by the CA's intermediate and write NAME.crt, NAME.key (0600,\n"
    "not with --csr), NAME.chain.pem (certificate then intermediate) and with --p12 NAME.p12.\n"
    "client: EKU clientAuth, CN=NAME. server: EKU serverAuth, NAME added as a DNS or IP SAN.\n"
    "admin: a client certificate with the admin profile, for `ca serve --console-admin-allow`;\n"
    "EST tokens, approvals and re-enrollment never produce one.\n"
    "\n"
    "  --san LIST           dns:NAME,ip:ADDR,email:ADDR,uri:URI (repeatable)\n"
    "  --days N             validity: days, or a duration like 12h (default client 30, server 90)\n"
    "  --key TYPE           key to generate: ec:P-256 (default), ec:P-384, ed25519, rsa:2048,\n"
    "                       rsa:3072, rsa:4096\n"
    "  --csr FILE           use this PKCS#10 CSR's public key (PEM or DER) instead\n"
    "  --out DIR            where to write the files (default .)\n"
    "  --force              overwrite existing files\n"
    "  --p12                also write NAME.p12 (AES-256, PBKDF2)\n"
    "  --p12-legacy         PKCS#12 with 3DES/SHA-1 for old macOS, Windows and Java\n"
    "  --p12-pass-file F    PKCS#12 password on F's first line (or $TWOWAY_P12_PASS_FILE)\n"
    "  --passphrase-file F  the CA passphrase, if the CA keys are encrypted\n"
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "\n"
    "Examples:\n"
    "  twoway ca issue client alice\n"
    "  twoway ca issue client alice --san email:alice@example.com --days 7\n"
    "  twoway ca issue server localhost --san ip:127.0.0.1,ip:::1 --out tls\n"
    "  twoway ca issue client bob --csr bob.csr\n"
    "  twoway ca issue client carol --p12 --p12-pass-file pass.txt --p12-legacy\n"
    "  twoway ca issue admin ops --p12 --p12-pass-file pass.txt   # import into the browser\n";

static const char cmd[] = "ca issue";

struct issue_args {
    struct flags_ca ca;
    struct flags_p12 p12;
    const char *csr, *out;
    enum pki_profile profile;
    const char *name;
    struct ca_key_flag key;
    bool force;
    int64_t lifetime;
    struct pki_sans extra; /* --san, before NAME is merged in */
};

#define AT(field) offsetof(struct issue_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(ca), .group = flags_ca_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.kind = FLAG_GROUP, .off = AT(p12), .group = flags_p12_group},
    {.name = "san", .kind = FLAG_CALL, .off = AT(extra), .call = ca_flag_sans},
    {.name = "days", .kind = FLAG_CALL, .off = AT(lifetime), .call = ca_flag_validity},
    {.name = "key", .kind = FLAG_CALL, .off = AT(key), .call = ca_flag_key},
    {.name = "csr", .kind = FLAG_STRING, .off = AT(csr)},
    {.name = "out", .kind = FLAG_STRING, .off = AT(out)},
    {.name = "force", .kind = FLAG_BOOL, .off = AT(force)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd,
                                         .usage = usage,
                                         .flags = flags,
                                         .nargs = 2,
                                         .nargs_error = "expected 'client NAME', 'server NAME' or 'admin NAME'"};

static int parse(int argc, char **argv, struct issue_args *a)
{
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    const char *kind = argv[1];
    struct tw_err err;
    if (pki_profile_parse(kind, &a->profile, &err) != 0 ||
        (a->profile != PKI_PROFILE_CLIENT && a->profile != PKI_PROFILE_SERVER &&
         a->profile != PKI_PROFILE_ADMIN))
        return cli_usage_error(cmd, "unknown profile '%s' (use client, server or admin)", kind);
    a->name = argv[2];
    if (pki_name_check(a->name, &err) != 0)
        return cli_usage_error(cmd, "%s", err.msg);
    if (a->key.given && a->csr != NULL)
        return cli_usage_error(cmd, "--key and --csr exclude each other");
    if (a->p12.p12 && a->csr != NULL)
        return cli_usage_error(cmd, "--p12 needs the private key, which stays with the owner of "
                                    "--csr");
    if ((rc = flags_p12_check(cmd, &a->p12)) != FLAGS_GO_ON)
        return rc;
    if (a->lifetime == 0)
        a->lifetime = (int64_t)pki_profile_default_days(a->profile) * 86400;
    return FLAGS_GO_ON;
}

/* Server: NAME first, as an IP SAN when it is an address, else a DNS SAN. */
static int build_sans(const struct issue_args *a, const struct pki_csr *csr, struct pki_sans *sans,
                      struct tw_err *err)
{
    memset(sans, 0, sizeof(*sans));
    if (a->profile == PKI_PROFILE_SERVER) {
        unsigned char addr[16];
        int ip = inet_pton(AF_INET, a->name, addr) == 1 || inet_pton(AF_INET6, a->name, addr) == 1;
        if (pki_sans_add(sans, ip ? PKI_SAN_IP : PKI_SAN_DNS, a->name, err) != 0)
            return tw_err_set(err, TW_ERR_USAGE,
                              "server NAME '%s' must be a DNS name or an IP address", a->name);
    }
    for (size_t i = 0; i < a->extra.count; i++) {
        const struct pki_san *s = &a->extra.items[i];
        TW_ENSURE(pki_profile_allows_san(a->profile, s->type), err, TW_ERR_USAGE,
                  "--san %s:%s is not allowed in a %s certificate", pki_san_type_name(s->type),
                  s->value, pki_profile_name(a->profile));
        TW_GUARD(pki_sans_add(sans, s->type, s->value, err));
    }
    if (csr != NULL)
        TW_GUARD(pki_csr_take_sans(csr, a->profile, sans, err));
    return 0;
}

static struct pki_csr *load_csr(const char *path, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    if (fs_read_file(path, PKI_CSR_MAX, &data, &len, err) != 0)
        return NULL;
    struct pki_csr *csr = pki_csr_parse(data, len, path, err);
    free(data);
    return csr;
}

struct outputs {
    char crt[PATH_MAX], key[PATH_MAX], chain[PATH_MAX], p12[PATH_MAX];
};

static int plan_outputs(const struct issue_args *a, struct outputs *o, struct tw_err *err)
{
    const char *dir = a->out != NULL ? a->out : ".";
    TW_GUARD(fs_mkdir_private(dir, err));
    const struct {
        char *path;
        const char *ext;
        int wanted;
    } files[] = {{o->key, ".key", a->csr == NULL},
                 {o->crt, ".crt", 1},
                 {o->chain, ".chain.pem", 1},
                 {o->p12, ".p12", a->p12.p12}};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        files[i].path[0] = '\0';
        if (!files[i].wanted)
            continue;
        TW_ENSURE(snprintf(files[i].path, PATH_MAX, "%s/%s%s", dir, a->name, files[i].ext) <
                      PATH_MAX,
                  err, TW_ERR_USAGE, "path too long: %s", dir);
        TW_ENSURE(a->force || !fs_exists(files[i].path), err, TW_ERR_EXISTS,
                  "%s already exists (use --force to overwrite it)", files[i].path);
    }
    return 0;
}

struct material {
    EVP_PKEY *key; /* NULL with --csr */
    X509 *cert;
    struct pki_secret p12_pass;
};

static int write_outputs(struct pki_ca *ca, const struct issue_args *a, const struct outputs *o,
                         struct material *m, struct tw_err *err)
{
    if (m->key != NULL) {
        char *pem = NULL;
        size_t len = 0;
        TW_GUARD(pki_key_to_pem(m->key, NULL, &pem, &len, err));
        int rc = ca_write_output(o->key, pem, len, 0600, a->force, err);
        pki_pem_free(pem, len);
        TW_GUARD(rc);
    }
    size_t clen = 0, ilen = 0;
    TW_AUTO(charp) *cert = pki_cert_to_pem(m->cert, &clen, err);
    TW_AUTO(charp) *inter = pki_cert_to_pem(pki_ca_intermediate_cert(ca), &ilen, err);
    TW_ENSURE(cert != NULL && inter != NULL, err, TW_ERR_INTERNAL, "cannot encode certificates");
    TW_GUARD(ca_write_output(o->crt, cert, clen, 0644, a->force, err));
    TW_AUTO(charp) *chain = malloc(clen + ilen);
    TW_ENSURE(chain != NULL, err, TW_ERR_INTERNAL, "out of memory");
    memcpy(chain, cert, clen);
    memcpy(chain + clen, inter, ilen);
    TW_GUARD(ca_write_output(o->chain, chain, clen + ilen, 0644, a->force, err));
    if (!a->p12.p12)
        return 0;
    TW_AUTO(X509_STACK) *ca_certs = pki_ca_chain(ca, err);
    TW_ENSURE(ca_certs != NULL, err, TW_ERR_INTERNAL, "out of memory");
    unsigned char *der = NULL;
    size_t dlen = 0;
    TW_GUARD(pki_p12_make(m->key, m->cert, ca_certs, a->name, &m->p12_pass, a->p12.legacy, &der,
                          &dlen, err));
    int rc = ca_write_output(o->p12, der, dlen, 0600, a->force, err);
    OPENSSL_clear_free(der, dlen);
    return rc;
}

static void print_result(const struct issue_args *a, const struct outputs *o, X509 *cert)
{
    char serial[STORE_SERIAL_MAX] = "?", sha[65] = "?", when[32] = "?";
    int64_t na = 0;
    if (pki_cert_serial_hex(cert, serial, sizeof(serial), NULL) != 0 ||
        pki_cert_fingerprint(cert, sha, NULL, NULL) != 0 ||
        pki_time_to_unix(X509_get0_notAfter(cert), &na, NULL) != 0)
        fprintf(stderr, "twoway: warning: cannot describe the certificate\n");
    printf("Issued %s certificate for %s\n", pki_profile_name(a->profile), a->name);
    printf("serial: %s\n", serial);
    printf("not_after: %s\n", clock_iso8601((time_t)na, when, sizeof(when)));
    printf("sha256: %s\n", sha);
    printf("cert: %s\n", o->crt);
    if (o->key[0] != '\0')
        printf("key: %s\n", o->key);
    printf("chain: %s\n", o->chain);
    if (o->p12[0] != '\0')
        printf("p12: %s\n", o->p12);
}

/* Everything that can be checked before the CA commits to a certificate. */
static int prepare(const struct issue_args *a, struct pki_csr **csr, struct pki_sans *sans,
                   struct outputs *o, struct material *m, struct tw_err *err)
{
    if (a->p12.p12) {
        int rc = ca_p12_password(a->p12.pass_file, &m->p12_pass, err);
        if (rc == 1)
            return tw_err_set(err, TW_ERR_USAGE,
                              "--p12 needs a password: --p12-pass-file F or "
                              "TWOWAY_P12_PASS_FILE");
        TW_GUARD(rc);
    }
    if (a->csr != NULL && (*csr = load_csr(a->csr, err)) == NULL)
        return -1;
    TW_GUARD(build_sans(a, *csr, sans, err));
    TW_GUARD(plan_outputs(a, o, err));
    if (*csr == NULL && (m->key = pki_key_generate(a->key.type, err)) == NULL)
        return -1;
    return 0;
}

static int run(const struct issue_args *a, struct material *m, struct tw_err *err)
{
    struct pki_ca *ca = NULL;
    TW_GUARD(ca_open(cli_data_dir(a->ca.dir), a->ca.passfile, "issue", 1, &ca, err));
    struct pki_csr *csr = NULL;
    struct pki_sans sans;
    struct outputs o;
    memset(&o, 0, sizeof(o));
    char subject[STORE_SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "CN=%s", a->name);
    int rc = prepare(a, &csr, &sans, &o, m, err);
    if (rc != 0 && err->code != TW_ERR_USAGE) {
        struct tw_err ignored;
        if (pki_ca_audit(ca, "issue", subject, NULL, err, &ignored) != 0)
            tw_err_clear(&ignored);
    }
    if (rc == 0) {
        struct pki_cert_request req = {.profile = a->profile,
                                       .cn = a->name,
                                       .sans = &sans,
                                       .pubkey = m->key != NULL ? m->key : pki_csr_pubkey(csr),
                                       .lifetime = a->lifetime};
        rc = pki_ca_issue(ca, &req, &m->cert, err);
    }
    if (rc == 0 && write_outputs(ca, a, &o, m, err) != 0) {
        char serial[STORE_SERIAL_MAX] = "?";
        if (pki_cert_serial_hex(m->cert, serial, sizeof(serial), NULL) != 0)
            serial[0] = '?';
        struct tw_err ignored;
        if (pki_ca_audit(ca, "issue", subject, serial, err, &ignored) != 0)
            tw_err_clear(&ignored);
        char msg[TW_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        tw_err_set(err, err->code,
                   "certificate %s was issued and recorded, but %s; revoke it with 'twoway ca "
                   "revoke %s' if it cannot be used",
                   serial, msg, serial);
        rc = -1;
    }
    if (rc == 0)
        print_result(a, &o, m->cert);
    pki_csr_free(csr);
    pki_ca_free(ca);
    return rc;
}

int cli_ca_issue(int argc, char **argv)
{
    struct issue_args a;
    memset(&a, 0, sizeof(a));
    a.key.type = PKI_KEY_EC_P256;
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct material m;
    memset(&m, 0, sizeof(m));
    struct tw_err err;
    tw_err_clear(&err);
    rc = run(&a, &m, &err);
    pki_secret_wipe(&m.p12_pass);
    EVP_PKEY_free(m.key);
    X509_free(m.cert);
    if (rc != 0)
        return err.code == TW_ERR_USAGE ? cli_usage_error(cmd, "%s", err.msg) : cli_fail(&err);
    return 0;
}
