/* `twoway ca revoke`: record a revocation, then regenerate the CRL. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/ca_common.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: twoway ca revoke SERIAL|NAME [--dir D] [--reason R] [--passphrase-file F]\n"
    "\n"
    "Revoke a certificate (by hex serial, or the newest issued to NAME) and regenerate the\n"
    "CRL in D/ca/crl.pem and D/ca/crl.der.\n"
    "\n"
    "  --reason R           RFC 5280 reason: unspecified (default), keyCompromise,\n"
    "                       cACompromise, affiliationChanged, superseded,\n"
    "                       cessationOfOperation, certificateHold, removeFromCRL,\n"
    "                       privilegeWithdrawn, aACompromise\n"
    "  --passphrase-file F  the CA passphrase, if the CA keys are encrypted\n"
    "\n"
    "Examples:\n"
    "  twoway ca revoke alice --reason keyCompromise\n"
    "  twoway ca revoke 5F0A9C0D1E2F30415263748596A7B8C3 --reason superseded\n";

static const char cmd[] = "ca revoke";

int cli_ca_revoke(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"reason", required_argument, NULL, 'r'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *passfile = NULL;
    int reason = 0, c;
    struct tw_err err;
    tw_err_clear(&err);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'r':
            if (pki_reason_parse(optarg, &reason, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            return ca_bad_option(cmd, c, optopt, argv, optind);
        }
    }
    if (argc - optind != 1)
        return cli_usage_error(cmd, "expected one SERIAL or NAME");
    const char *what = argv[optind];
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(dir), passfile, "revoke", 1, &ca, &err) != 0)
        return cli_fail(&err);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    int rc = pki_ca_find(ca, what, &row, &err);
    if (rc != 0) {
        struct tw_err ignored;
        if (pki_ca_audit(ca, "revoke", NULL, what, &err, &ignored) != 0)
            tw_err_clear(&ignored);
    }
    if (rc == 0)
        rc = pki_ca_revoke(ca, row.serial, reason, (int64_t)time(NULL), &err);
    int64_t number = 0;
    if (rc == 0 && pki_ca_crl_write(ca, 0, NULL, &number, NULL, NULL, &err) != 0) {
        /* The revocation is recorded; only the published list lags behind. */
        char msg[TW_ERR_MSG_MAX];
        snprintf(msg, sizeof(msg), "%s", err.msg);
        tw_err_set(&err, err.code,
                   "revoked %s, but writing the CRL failed: %s; run 'twoway ca crl' once fixed",
                   row.serial, msg);
        rc = -1;
    } else if (rc == 0) {
        printf("Revoked %s (%s): %s\n", row.serial, row.name, pki_reason_name(reason));
        printf("crl: %s/ca/crl.pem (number %lld)\n", pki_ca_dir(ca), (long long)number);
    }
    store_cert_clear(&row);
    pki_ca_free(ca);
    return rc == 0 ? 0 : cli_fail(&err);
}
