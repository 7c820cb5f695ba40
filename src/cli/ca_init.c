/* `twoway ca init`: create the CA (root, intermediate, OCSP signer) and its inventory. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "pki/pki.h"

static const char usage[] =
    "usage: twoway ca init [--dir D] [--name NAME] [--key TYPE] [--root-days N] [--int-days N]\n"
    "                      [--base-url URL] [--passphrase-file F]\n"
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

int cli_ca_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"key", required_argument, NULL, 'k'},
        {"root-days", required_argument, NULL, 'R'},
        {"int-days", required_argument, NULL, 'I'},
        {"base-url", required_argument, NULL, 'u'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct pki_ca_options opt = {.key_type = PKI_KEY_EC_P256};
    const char *dir = NULL, *passfile = NULL;
    struct tw_err err;
    tw_err_clear(&err);
    long days;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'n':
            opt.name = optarg;
            break;
        case 'k':
            if (pki_key_type_parse(optarg, &opt.key_type, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            break;
        case 'R':
        case 'I':
            if (ca_parse_int(c == 'R' ? "--root-days" : "--int-days", optarg, 1, 36500, &days,
                             &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            *(c == 'R' ? &opt.root_days : &opt.int_days) = (int)days;
            break;
        case 'u':
            opt.base_url = optarg;
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return ca_bad_option(cmd, c, optopt, argv, optind);
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    opt.dir = cli_data_dir(dir);

    struct pki_secret pass;
    int have = 0;
    struct pki_ca_created made;
    int rc = ca_passphrase(passfile, &pass, &have, &err);
    if (rc == 0) {
        opt.passphrase = have ? &pass : NULL;
        rc = pki_ca_init(&opt, &made, &err);
    }
    pki_secret_wipe(&pass);
    if (rc != 0)
        return cli_fail(&err);
    return finish(&opt, &made);
}
