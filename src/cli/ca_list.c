/* `twoway ca list`: the inventory, filtered by status, expiry, name and profile. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
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

struct list_args {
    const char *dir;
    struct store_filter f;
    bool json;
};

static const struct flag_choice statuses[] = {
    {"valid", STORE_VALID},
    {"revoked", STORE_REVOKED},
    {"expired", STORE_EXPIRED},
    {NULL, 0},
};

/* The filter keeps the name; the check makes an unknown profile a usage error. */
static int profile_flag(void *profile, const char *value, struct tw_err *err)
{
    enum pki_profile p;
    TW_GUARD(pki_profile_parse(value, &p, err));
    *(const char **)profile = value;
    return 0;
}

#define AT(field) offsetof(struct list_args, field)

static const struct flag flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = AT(dir)},
    {.name = "status", .kind = FLAG_CHOICE, .off = AT(f.status), .choices = statuses},
    {.name = "expiring",
     .kind = FLAG_DURATION,
     .off = AT(f.expiring_within),
     .min = 1,
     .bad = "expected a duration like 30d"},
    {.name = "name", .kind = FLAG_STRING, .off = AT(f.name_glob)},
    {.name = "profile", .kind = FLAG_CALL, .off = AT(f.profile), .call = profile_flag},
    {.name = "json", .kind = FLAG_BOOL, .off = AT(json)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

int cli_ca_list(int argc, char **argv)
{
    struct list_args a = {.f = {.status = -1}};
    int rc = flags_parse(&flag_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "list", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct list_out out = {a.json ? json_array() : NULL, 0};
    if (!a.json)
        printf("%-34s %-8s %-13s %-21s %s\n", "SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "NAME");
    rc = store_cert_list(pki_ca_store(ca), &a.f, print_row, &out, &err);
    pki_ca_free(ca);
    if (rc == 0 && a.json) {
        rc = json_dumpf(out.array, stdout, JSON_INDENT(2)) == 0 ? 0 : -1;
        printf("\n");
    }
    json_decref(out.array);
    return rc == 0 ? 0 : cli_fail(&err);
}
