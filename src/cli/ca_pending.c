/* `twoway ca pending`, `ca approve`, `ca reject`: the operator's side of EST enrollment with
 * manual approval (`ca serve --approval manual`, RFC 7030 §4.2.3). Deciding needs no CA key:
 * the server issues the certificate when the client asks again. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"
#include "util/clock.h"

#define ID_SHOWN 12 /* hex digits of an id in listings: enough to be unique in practice */

/* ------------------------------------------------------------------------------ ca pending */

static const char pending_usage[] =
    "usage: twoway ca pending [--dir D] [--all] [--json]\n"
    "\n"
    "List the enrollment requests waiting for approval (`ca serve --approval manual`): id\n"
    "prefix, age, client address, subject and SANs as requested. Decide with\n"
    "`twoway ca approve ID` or `twoway ca reject ID`; any unique prefix of the id will do.\n"
    "\n"
    "  --all     also approved and rejected requests, with their state\n"
    "  --json    one JSON array of objects (whole ids, times as unix seconds)\n";

struct pending_args {
    const char *dir;
    bool all, json;
};

static const struct flag pending_flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = offsetof(struct pending_args, dir)},
    {.name = "all", .kind = FLAG_BOOL, .off = offsetof(struct pending_args, all)},
    {.name = "json", .kind = FLAG_BOOL, .off = offsetof(struct pending_args, json)},
    {.kind = FLAG_END},
};

static const struct flag_set pending_set = {
    .cmd = "ca pending", .usage = pending_usage, .flags = pending_flags, .nargs = 0};

struct list_out {
    json_t *array; /* --json */
    int all;
    size_t rows;
    int64_t now;
};

static void age_text(int64_t secs, char *out, size_t cap)
{
    if (secs < 120)
        snprintf(out, cap, "%llds", (long long)(secs < 0 ? 0 : secs));
    else if (secs < 7200)
        snprintf(out, cap, "%lldm", (long long)(secs / 60));
    else if (secs < 2 * 86400)
        snprintf(out, cap, "%lldh", (long long)(secs / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(secs / 86400));
}

static int list_row(const struct store_pending *p, void *ctx)
{
    struct list_out *out = ctx;
    out->rows++;
    if (out->array != NULL) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id", p->id, "name",
                              p->name, "subject", p->subject, "sans", p->sans, "profile",
                              p->profile, "peer", p->peer, "created_at",
                              (json_int_t)p->created_at, "state", p->state);
        if (o != NULL && p->decided_at != 0)
            json_object_set_new(o, "decided_at", json_integer((json_int_t)p->decided_at));
        if (o != NULL && p->serial[0] != '\0')
            json_object_set_new(o, "serial", json_string(p->serial));
        if (o != NULL && p->reason[0] != '\0')
            json_object_set_new(o, "reason", json_string(p->reason));
        return o == NULL || json_array_append_new(out->array, o) != 0;
    }
    char age[32];
    age_text(out->now - p->created_at, age, sizeof(age));
    if (out->all)
        printf("%-*.*s  %-6s %-9s %-8s %-15s %-24s %s\n", ID_SHOWN, ID_SHOWN, p->id, age,
               p->state, p->profile, p->peer, p->subject, p->sans[0] ? p->sans : "-");
    else
        printf("%-*.*s  %-6s %-8s %-15s %-24s %s\n", ID_SHOWN, ID_SHOWN, p->id, age, p->profile,
               p->peer, p->subject, p->sans[0] ? p->sans : "-");
    return 0;
}

int cli_ca_pending(int argc, char **argv)
{
    struct pending_args a;
    memset(&a, 0, sizeof(a));
    int rc = flags_parse(&pending_set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, "pending", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct list_out out = {a.json ? json_array() : NULL, a.all, 0, (int64_t)time(NULL)};
    if (!a.json)
        printf("%-*s  %-6s %s%-8s %-15s %-24s %s\n", ID_SHOWN, "ID", "AGE",
               a.all ? "STATE     " : "", "PROFILE", "ADDRESS", "SUBJECT", "SANS");
    rc = store_pending_list(pki_ca_store(ca), a.all ? NULL : "pending", list_row, &out, &err);
    if (rc == 0 && a.json) {
        rc = json_dumpf(out.array, stdout, JSON_INDENT(2)) == 0 ? 0 : -1;
        fputc('\n', stdout);
        if (rc != 0)
            tw_err_set(&err, TW_ERR_IO, "writing the listing failed");
    }
    json_decref(out.array);
    pki_ca_free(ca);
    fflush(stdout);
    return rc == 0 ? 0 : cli_fail(&err);
}

/* ------------------------------------------------------------------ ca approve / ca reject */

static const char approve_usage[] =
    "usage: twoway ca approve ID [--dir D] [--days N]\n"
    "\n"
    "Approve a waiting enrollment request (see `twoway ca pending`; ID is any unique prefix of\n"
    "its id). The client gets its certificate the next time it sends the request: CN and SANs\n"
    "as requested, the request's profile, the CSR's public key.\n"
    "\n"
    "  --days N     certificate validity: days or a duration (default: the profile's)\n";

static const char reject_usage[] =
    "usage: twoway ca reject ID [--dir D] [--reason TEXT]\n"
    "\n"
    "Reject a waiting enrollment request (see `twoway ca pending`; ID is any unique prefix of\n"
    "its id). The client gets 403 with the reason the next time it sends the request.\n"
    "\n"
    "  --reason TEXT   told to the client and kept in the audit trail (one line)\n";

struct decide_args {
    const char *dir, *reason;
    int64_t lifetime;
};

static const struct flag approve_flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = offsetof(struct decide_args, dir)},
    {.name = "days",
     .kind = FLAG_CALL,
     .off = offsetof(struct decide_args, lifetime),
     .call = ca_flag_validity},
    {.kind = FLAG_END},
};

static const struct flag reject_flags[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = offsetof(struct decide_args, dir)},
    {.name = "reason", .kind = FLAG_STRING, .off = offsetof(struct decide_args, reason)},
    {.kind = FLAG_END},
};

static const struct flag_set approve_set = {.cmd = "ca approve",
                                            .usage = approve_usage,
                                            .flags = approve_flags,
                                            .nargs = 1,
                                            .nargs_error = "expected one request ID"};

static const struct flag_set reject_set = {.cmd = "ca reject",
                                           .usage = reject_usage,
                                           .flags = reject_flags,
                                           .nargs = 1,
                                           .nargs_error = "expected one request ID"};

struct decision {
    const struct store_pending *p;
    int approve;
    const struct decide_args *a;
};

/* The decision and its audit row, all or nothing. */
static int decide_txn(struct store *s, void *ctx, struct tw_err *err)
{
    const struct decision *d = ctx;
    const char *reason = d->a->reason != NULL ? d->a->reason : "";
    TW_GUARD(store_pending_decide(s, d->p->id, d->approve, d->a->lifetime, reason, 0, err));
    char result[STORE_REASON_MAX + 64];
    if (d->approve)
        snprintf(result, sizeof(result), "ok: request %.16s", d->p->id);
    else
        snprintf(result, sizeof(result), "ok: request %.16s%s%s", d->p->id,
                 reason[0] ? ": " : "", reason);
    return store_audit_add(s, d->approve ? "approve" : "reject", d->p->subject, NULL, result,
                           err);
}

static int reason_ok(const char *reason)
{
    if (reason == NULL)
        return 1;
    if (strlen(reason) >= STORE_REASON_MAX - 1)
        return 0;
    for (const unsigned char *c = (const unsigned char *)reason; *c != '\0'; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

static int decide(const struct flag_set *set, int approve, int argc, char **argv)
{
    struct decide_args a;
    memset(&a, 0, sizeof(a));
    int rc = flags_parse(set, &a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (!reason_ok(a.reason))
        return cli_usage_error(set->cmd, "--reason: one line of at most %d characters",
                               STORE_REASON_MAX - 2);
    const char *id = argv[1];
    struct tw_err err;
    tw_err_clear(&err);
    struct pki_ca *ca = NULL;
    if (ca_open(cli_data_dir(a.dir), NULL, approve ? "approve" : "reject", 0, &ca, &err) != 0)
        return cli_fail(&err);
    struct store *s = pki_ca_store(ca);
    struct store_pending p;
    rc = store_pending_find(s, id, &p, &err);
    if (rc == 0 && strcmp(p.state, "pending") != 0)
        rc = tw_err_set(&err, TW_ERR_EXISTS, "enrollment request %.16s was already %s", p.id,
                        p.state);
    struct decision d = {&p, approve, &a};
    if (rc == 0)
        rc = store_transaction(s, decide_txn, &d, &err);
    if (rc == 0) {
        printf("%s enrollment request %s\n", approve ? "Approved" : "Rejected", p.id);
        printf("subject: %s\nsans: %s\nprofile: %s\nfrom: %s\n", p.subject,
               p.sans[0] ? p.sans : "-", p.profile, p.peer);
        if (approve)
            printf("The client gets its certificate the next time it sends the request.\n");
        fflush(stdout);
    }
    pki_ca_free(ca);
    if (rc == 0)
        return 0;
    return err.code == TW_ERR_USAGE ? cli_usage_error(set->cmd, "%s", err.msg) : cli_fail(&err);
}

int cli_ca_approve(int argc, char **argv)
{
    return decide(&approve_set, 1, argc, argv);
}

int cli_ca_reject(int argc, char **argv)
{
    return decide(&reject_set, 0, argc, argv);
}
