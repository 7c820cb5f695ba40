/* `twoway ca show`: one certificate from the inventory, by serial or newest by name. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"

static const char usage[] =
    "usage: twoway ca show SERIAL|NAME [--dir D] [--pem | --json]\n"
    "\n"
    "Show one certificate of the inventory: by hex serial, or the newest issued to NAME.\n"
    "\n"
    "  --pem     print only the certificate PEM\n"
    "  --json    print the JSON object that 'ca list --json' prints\n"
    "\n"
    "Examples:\n"
    "  twoway ca show alice\n"
    "  twoway ca show 5F0A9C0D1E2F30415263748596A7B8C3 --json\n"
    "  twoway ca show alice --pem | openssl x509 -noout -text\n";

static const char cmd[] = "ca show";

int cli_ca_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"pem", no_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int pem = 0, json = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'p':
            pem = 1;
            break;
        case 'j':
            json = 1;
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
    if (pem && json)
        return cli_usage_error(cmd, "--pem and --json exclude each other");
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(dir), NULL, "show", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    int rc = pki_ca_find(ca, argv[optind], &row, &err);
    pki_ca_free(ca);
    if (rc != 0)
        return cli_fail(&err);
    if (pem) {
        fputs(row.pem != NULL ? row.pem : "", stdout);
    } else if (json) {
        json_t *obj = ca_row_json(&row);
        json_dumpf(obj, stdout, JSON_INDENT(2));
        printf("\n");
        json_decref(obj);
    } else {
        ca_row_print(&row);
    }
    store_cert_clear(&row);
    return 0;
}
