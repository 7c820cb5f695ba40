/* `twoway ca revoke`: record a revocation, then regenerate the CRL. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"

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
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "\n"
    "Examples:\n"
    "  twoway ca revoke alice --reason keyCompromise\n"
    "  twoway ca revoke 5F0A9C0D1E2F30415263748596A7B8C3 --reason superseded\n";

static const char cmd[] = "ca revoke";

struct revoke_args {
    struct flags_ca ca;
    int reason; /* RFC 5280 CRLReason */
};

static int reason_flag(void *reason, const char *value, struct tw_err *err)
{
    return pki_reason_parse(value, reason, err);
}

#define AT(field) offsetof(struct revoke_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(ca), .group = flags_ca_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "reason", .kind = FLAG_CALL, .off = AT(reason), .call = reason_flag},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = cmd, .usage = usage, .flags = flags, .nargs = 1, .nargs_error = ca_one_cert_error};

int cli_ca_revoke(int argc, char **argv)
{
    struct revoke_args a = {0};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    const char *what = argv[1];
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.ca.dir), a.ca.passfile, "revoke", 1, &ca, &err) != 0)
        return cli_fail(&err);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    rc = pki_ca_find(ca, what, &row, &err);
    if (rc != 0) {
        struct tw_err ignored;
        if (pki_ca_audit(ca, "revoke", NULL, what, &err, &ignored) != 0)
            tw_err_clear(&ignored);
    }
    if (rc == 0)
        rc = pki_ca_revoke(ca, row.serial, a.reason, (int64_t)time(NULL), &err);
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
        printf("Revoked %s (%s): %s\n", row.serial, row.name, pki_reason_name(a.reason));
        printf("crl: %s/ca/crl.pem (number %lld)\n", pki_ca_dir(ca), (long long)number);
    }
    store_cert_clear(&row);
    pki_ca_free(ca);
    return rc == 0 ? 0 : cli_fail(&err);
}
