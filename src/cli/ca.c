#include "cli/cli.h"

static const struct cli_command ca_commands[] = {
    {"init", cli_ca_init, "create a CA: root, intermediate, OCSP signer, inventory"},
    {"issue", cli_ca_issue, "issue a client or server certificate (key made here, or --csr)"},
    {"list", cli_ca_list, "list issued certificates, filtered by status, expiry, name"},
    {"show", cli_ca_show, "show one certificate by serial or name"},
    {"revoke", cli_ca_revoke, "revoke a certificate and regenerate the CRL"},
    {"crl", cli_ca_crl, "write the current CRL"},
    {"export", cli_ca_export, "export a certificate as PEM bundle or PKCS#12"},
    {"token", cli_ca_token, "one-time enrollment token for a name (for twoway enroll)"},
    {"serve", cli_ca_serve, "HTTPS: EST enrollment, CRL distribution, OCSP responder"},
    {NULL, NULL, NULL},
};

int cli_ca(int argc, char **argv)
{
    return cli_dispatch("twoway ca", ca_commands, argc, argv);
}
