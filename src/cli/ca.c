#include <stdlib.h>
#include <string.h>

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
    {"pending", cli_ca_pending, "list enrollment requests waiting for approval"},
    {"approve", cli_ca_approve, "approve a waiting enrollment request"},
    {"reject", cli_ca_reject, "reject a waiting enrollment request"},
    {"migrate", cli_ca_migrate, "copy an inventory to another store (e.g. SQLite to PostgreSQL)"},
    {NULL, NULL, NULL},
};

/* `--store URI` (or --store=URI) anywhere on a `twoway ca` command line chooses the inventory
 * for that command: it is taken out here and set as $TWOWAY_STORE, which the CA reads before
 * "store =" in ca.conf (so the flag wins over both). Returns 2 for a --store without URI. */
static int take_store_flag(int *argc, char **argv)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *uri = NULL;
        if (strcmp(argv[i], "--store") == 0) {
            if (i + 1 >= *argc || argv[i + 1][0] == '\0')
                return cli_usage_error("twoway ca", "--store needs a URI (sqlite:PATH, a path, "
                                                    "or postgres://...)");
            uri = argv[++i];
        } else if (strncmp(argv[i], "--store=", 8) == 0) {
            uri = argv[i] + 8;
            if (uri[0] == '\0')
                return cli_usage_error("twoway ca", "--store needs a URI");
        }
        if (uri != NULL)
            setenv("TWOWAY_STORE", uri, 1);
        else
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int cli_ca(int argc, char **argv)
{
    int rc = take_store_flag(&argc, argv);
    if (rc != 0)
        return rc;
    return cli_dispatch("twoway ca", ca_commands, argc, argv);
}
