/* `twoway ca list`: the inventory, filtered by status, expiry, name and profile. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "util/clock.h"

static const char usage[] =
    "usage: twoway ca list [--dir D] [--status valid|revoked|expired] [--expiring DURATION]\n"
    "                      [--name GLOB] [--profile P] [--json]\n"
    "\n"
    "List the certificates in the inventory, oldest first, including the CA's own root,\n"
    "intermediate and ocsp certificates.\n"
    "\n"
    "  --status S          valid, revoked or expired\n"
    "  --expiring D        valid certificates expiring within D (30d, 12h, 2w)\n"
    "  --name GLOB         names matching a shell glob ('web-*')\n"
    "  --profile P         root, intermediate, ocsp, client or server\n"
    "  --json              one JSON array of objects\n"
    "\n"
    "Examples:\n"
    "  twoway ca list\n"
    "  twoway ca list --expiring 30d --profile client\n"
    "  twoway ca list --status revoked --json\n";

static const char cmd[] = "ca list";

struct list_out {
    json_t *array; /* --json */
    size_t count;
};

static int print_row(const struct store_cert *c, void *ctx)
{
    struct list_out *out = ctx;
    out->count++;
    if (out->array != NULL)
        return json_array_append_new(out->array, ca_row_json(c)) != 0;
    char t[32];
    printf("%-34s %-8s %-13s %-21s %s\n", c->serial, ca_status_name(c->status), c->profile,
           clock_iso8601((time_t)c->not_after, t, sizeof(t)), c->name);
    return 0;
}

static int parse_status(const char *text, int *out)
{
    static const char *const names[] = {"valid", "revoked", "expired"};
    static const int values[] = {STORE_VALID, STORE_REVOKED, STORE_EXPIRED};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0)
            return (*out = values[i], 0);
    return -1;
}

int cli_ca_list(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},      {"status", required_argument, NULL, 's'},
        {"expiring", required_argument, NULL, 'e'}, {"name", required_argument, NULL, 'n'},
        {"profile", required_argument, NULL, 'p'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct store_filter f = {.status = -1};
    const char *dir = NULL;
    int json = 0, c;
    struct tw_err err;
    tw_err_clear(&err);
    enum pki_profile profile;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'n':
            f.name_glob = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 's':
            if (parse_status(optarg, &f.status) != 0)
                return cli_usage_error(cmd, "--status '%s': use valid, revoked or expired", optarg);
            break;
        case 'e':
            if (clock_duration_parse(optarg, &f.expiring_within, &err) != 0 ||
                f.expiring_within <= 0)
                return cli_usage_error(cmd, "--expiring '%s': expected a duration like 30d",
                                       optarg);
            break;
        case 'p':
            if (pki_profile_parse(optarg, &profile, &err) != 0)
                return cli_usage_error(cmd, "%s", err.msg);
            f.profile = optarg;
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
    if (ca_open(cli_data_dir(dir), NULL, "list", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct list_out out = {json ? json_array() : NULL, 0};
    if (!json)
        printf("%-34s %-8s %-13s %-21s %s\n", "SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "NAME");
    int rc = store_cert_list(pki_ca_store(ca), &f, print_row, &out, &err);
    pki_ca_free(ca);
    if (rc == 0 && json) {
        rc = json_dumpf(out.array, stdout, JSON_INDENT(2)) == 0 ? 0 : -1;
        printf("\n");
    }
    json_decref(out.array);
    return rc == 0 ? 0 : cli_fail(&err);
}
