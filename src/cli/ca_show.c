/* `twoway ca show`: one certificate from the inventory, by serial or newest by name. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"

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

struct show_args {
    const char *dir;
    bool pem, json;
};

#define AT(field) offsetof(struct show_args, field)

static const struct flag flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = AT(dir)},
    {.name = "pem", .kind = FLAG_BOOL, .off = AT(pem)},
    {.name = "json", .kind = FLAG_BOOL, .off = AT(json)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {
    .cmd = cmd, .usage = usage, .flags = flags, .nargs = 1, .nargs_error = ca_one_cert_error};

int cli_ca_show(int argc, char **argv)
{
    struct show_args a = {0};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (a.pem && a.json)
        return cli_usage_error(cmd, "--pem and --json exclude each other");
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "show", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct store_cert row;
    memset(&row, 0, sizeof(row));
    rc = pki_ca_find(ca, argv[1], &row, &err);
    pki_ca_free(ca);
    if (rc != 0)
        return cli_fail(&err);
    if (a.pem) {
        fputs(row.pem != NULL ? row.pem : "", stdout);
    } else if (a.json) {
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
