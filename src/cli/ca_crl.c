/* `twoway ca crl`: regenerate and write the CRL. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
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
    "  --pin-file F         PIN of keys in a PKCS#11 token (0600 file, first line), for\n"
    "                       pkcs11: references without pin-source=\n"
    "  --pkcs11-module M    the PKCS#11 module (.so) when the reference names none\n"
    "\n"
    "Examples:\n"
    "  twoway ca crl\n"
    "  twoway ca crl --days 1 --out /var/www/pki/ca.crl.der\n";

static const char cmd[] = "ca crl";

struct crl_args {
    struct flags_ca ca;
    const char *out;
    int days;
};

#define AT(field) offsetof(struct crl_args, field)

static const struct flag flags[] = {
    {.kind = FLAG_GROUP, .off = AT(ca), .group = flags_ca_group},
    {.kind = FLAG_GROUP, .off = 0, .group = flags_hw_group},
    {.name = "out", .kind = FLAG_STRING, .off = AT(out)},
    {.name = "days", .kind = FLAG_INT, .off = AT(days), .min = 1, .max = 3650},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

int cli_ca_crl(int argc, char **argv)
{
    struct crl_args a = {0};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.ca.dir), a.ca.passfile, "crl", 1, &ca, &err) != 0)
        return cli_fail(&err);
    int64_t number = 0, next = 0;
    size_t count = 0;
    rc = pki_ca_crl_write(ca, a.days, a.out, &number, &count, &next, &err);
    if (rc == 0) {
        char t[32];
        printf("crl: %s/ca/crl.pem (number %lld, %zu revoked, next update %s)\n", pki_ca_dir(ca),
               (long long)number, count, clock_iso8601((time_t)next, t, sizeof(t)));
        if (a.out != NULL)
            printf("crl: %s\n", a.out);
    }
    pki_ca_free(ca);
    return rc == 0 ? 0 : cli_fail(&err);
}
