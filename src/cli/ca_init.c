/* `twoway ca init`: create the CA (root, intermediate, OCSP signer) and its inventory. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "pki/pki.h"

static const char usage[] =
    "usage: twoway ca init [--dir D] [--name NAME] [--key TYPE] [--root-days N] [--int-days N]\n"
    "                      [--base-url URL] [--passphrase-file F | --key-store STORE]\n"
    "\n"
    "Create a CA in the data dir (--dir, else $TWOWAY_DIR, else ./twoway-data): a root CA, an\n"
    "intermediate CA that signs everything else, an OCSP signing certificate, ca/chain.pem\n"
    "(intermediate then root: what servers use to verify clients), a first CRL and the\n"
    "inventory ca.db. Refuses to overwrite an existing CA. Prints the root's SHA-256\n"
    "fingerprint.\n"
    "\n"
    "  --dir D              data dir\n"
    "  --name NAME          CA name (default \"twoway CA\")\n"
    "  --key TYPE           ec:P-256 (default), ec:P-384, ed25519, rsa:2048, rsa:3072, rsa:4096\n"
    "  --root-days N        root validity in days (default 3650)\n"
    "  --int-days N         intermediate and OCSP signer validity in days (default 1825)\n"
    "  --base-url URL       where `twoway ca serve` runs: issued certificates then point to\n"
    "                       URL/crl (CRL distribution point) and URL/ocsp (OCSP)\n"
    "  --passphrase-file F  encrypt the CA keys with the passphrase on F's first line\n"
    "                       (also $TWOWAY_PASSPHRASE_FILE; at least 8 characters)\n"
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "  --key-store STORE    make the three keys inside a PKCS#11 token (a pkcs11: URI naming\n"
    "                       the token, e.g. 'pkcs11:token=ca?pin-source=file:/etc/pin&\n"
    "                       module-path=/usr/lib/softhsm/libsofthsm2.so') or the TPM (tpm2:);\n"
    "                       they never leave it; ca/*.key then name them\n"
    "\n"
    "Examples:\n"
    "  twoway ca init\n"
    "  twoway ca init --dir /srv/pki --name \"Example Corp\" --key ec:P-384 \\\n"
    "                 --base-url https://ca.example.com:8443\n"
    "  twoway ca init --passphrase-file ~/.twoway-pass\n";

static const char cmd[] = "ca init";

static int finish(const struct pki_ca_options *opt, const struct pki_ca_created *made)
{
    static const char *const files[][2] = {{"root", "root.crt"},
                                           {"intermediate", "intermediate.crt"},
                                           {"ocsp", "ocsp.crt"},
                                           {"chain", "chain.pem"},
                                           {"crl", "crl.pem"}};
    printf("Created CA \"%s\" in %s\n", opt->name != NULL ? opt->name : "twoway CA", opt->dir);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        printf("%s: %s/ca/%s\n", files[i][0], opt->dir, files[i][1]);
    printf("SHA256 fingerprint: %s\n", made->root_sha256_colon);
    printf("SHA256: %s\n", made->root_sha256);
    return 0;
}

struct init_args {
    struct flags_ca ca;
    struct pki_ca_options opt;
    struct ca_key_flag key;
};

#define AT(field) offsetof(struct init_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(ca), .group = flags_ca_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "name", .kind = FLAG_STRING, .off = AT(opt.name)},
    {.name = "key", .kind = FLAG_CALL, .off = AT(key), .call = ca_flag_key},
    {.name = "root-days", .kind = FLAG_INT, .off = AT(opt.root_days), .min = 1, .max = 36500},
    {.name = "int-days", .kind = FLAG_INT, .off = AT(opt.int_days), .min = 1, .max = 36500},
    {.name = "base-url", .kind = FLAG_STRING, .off = AT(opt.base_url)},
    {.name = "key-store", .kind = FLAG_STRING, .off = AT(opt.key_store)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

int cli_ca_init(int argc, char **argv)
{
    struct init_args a = {.key = {.type = PKI_KEY_EC_P256}};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    a.opt.key_type = a.key.type;
    a.opt.dir = cli_data_dir(a.ca.dir);
    struct tw_err err;
    tw_err_clear(&err);

    struct pki_secret pass;
    int have = 0;
    struct pki_ca_created made;
    rc = ca_passphrase(a.ca.passfile, &pass, &have, &err);
    if (rc == 0) {
        a.opt.passphrase = have ? &pass : NULL;
        rc = pki_ca_init(&a.opt, &made, &err);
    }
    pki_secret_wipe(&pass);
    if (rc != 0)
        return cli_fail(&err);
    return finish(&a.opt, &made);
}
