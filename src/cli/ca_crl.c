/* `twoway ca crl`: regenerate and write the CRL. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "util/clock.h"

static const char usage[] =
    "usage: twoway ca crl [--dir D] [--out F] [--days N] [--passphrase-file F]\n"
    "\n"
    "Write a new CRL (v2, a CRL number that only grows, every revoked certificate with its\n"
    "reason, signed by the intermediate) to D/ca/crl.pem and D/ca/crl.der.\n"
    "\n"
    "  --out F              also write it to F (DER when F ends in .der, else PEM)\n"
    "  --days N             nextUpdate N days from now (default 7)\n"
    "  --passphrase-file F  the CA passphrase, if the CA keys are encrypted\n"
    "\n"
    "Examples:\n"
    "  twoway ca crl\n"
    "  twoway ca crl --days 1 --out /var/www/pki/ca.crl.der\n";

static const char cmd[] = "ca crl";

int cli_ca_crl(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},  {"out", required_argument, NULL, 'o'},
        {"days", required_argument, NULL, 'D'}, {"passphrase-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *out = NULL, *passfile = NULL;
    long days = 0;
    int c;
    struct tw_err err;
    tw_err_clear(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'D':
            if (ca_parse_int("--days", optarg, 1, 3650, &days, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
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
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(dir), passfile, "crl", 1, &ca, &err) != 0)
        return cli_fail(&err);
    int64_t number = 0, next = 0;
    size_t count = 0;
    int rc = pki_ca_crl_write(ca, (int)days, out, &number, &count, &next, &err);
    if (rc == 0) {
        char t[32];
        printf("crl: %s/ca/crl.pem (number %lld, %zu revoked, next update %s)\n", pki_ca_dir(ca),
               (long long)number, count, clock_iso8601((time_t)next, t, sizeof(t)));
        if (out != NULL)
            printf("crl: %s\n", out);
    }
    pki_ca_free(ca);
    return rc == 0 ? 0 : cli_fail(&err);
}
