/* `twoway ca migrate`: copy an inventory into another store (SQLite to PostgreSQL, or back),
 * losslessly, reporting success only once counts and checksums of both sides agree. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/ca_common.h"
#include "cli/cli.h"
#include "cli/flags.h"

static const char usage[] =
    "usage: twoway ca migrate --from URI --to URI\n"
    "\n"
    "Copy every certificate, enrollment token, audit row, enrollment request (waiting or\n"
    "decided) and the CRL counter from one store to another, in one transaction on the target\n"
    "that commits only when the row counts and a SHA-256 per table agree on both sides. The\n"
    "target must be empty (a new database); the source is only read. Stop `ca serve` and other\n"
    "writers first.\n"
    "\n"
    "  --from URI   sqlite:PATH or a path (e.g. DIR/ca.db), or postgres://...\n"
    "  --to URI     postgres://USER@HOST:PORT/DB (or postgresql://), or sqlite:PATH\n"
    "\n"
    "Then point the CA at the new store: `store = URI` in DIR/ca/ca.conf, or --store URI,\n"
    "or TWOWAY_STORE=URI.\n"
    "\n"
    "Example:\n"
    "  twoway ca migrate --from sqlite:/srv/ca/ca.db --to postgres://twoway@db1/twoway\n";

static const char cmd[] = "ca migrate";

static int is_postgres(const char *uri)
{
    return strncmp(uri, "postgres://", 11) == 0 || strncmp(uri, "postgresql://", 13) == 0;
}

/* A source that is an SQLite file must exist: opening it would create an empty one. */
static int source_exists(const char *uri)
{
    if (is_postgres(uri))
        return 1;
    const char *path = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
    return access(path, F_OK) == 0;
}

struct migrate_args {
    const char *from, *to;
};

#define AT(field) offsetof(struct migrate_args, field)

static const struct flag flags[] = {
    {.name = "from", .kind = FLAG_STRING, .off = AT(from)},
    {.name = "to", .kind = FLAG_STRING, .off = AT(to)},
    {.kind = FLAG_END},
};

static const struct flag_set flag_set = {.cmd = cmd, .usage = usage, .flags = flags};

static int parse(int argc, char **argv, struct migrate_args *a)
{
    int rc = flags_parse(&flag_set, a, argc, argv, NULL);
    if (rc != FLAGS_GO_ON)
        return rc;
    if (a->from == NULL || a->to == NULL)
        return cli_usage_error(cmd, "both --from URI and --to URI are needed");
    if (strcmp(a->from, a->to) == 0)
        return cli_usage_error(cmd, "--from and --to are the same store");
    return FLAGS_GO_ON;
}

static void report(const char *from, const char *to, const struct store_copy_report *rep)
{
    printf("copied %s -> %s\n", from, to);
    for (int i = 0; i < STORE_COPY_TABLES; i++)
        printf("  %-16s %8" PRId64 " rows  sha256 %s\n", rep->tables[i].table, rep->tables[i].rows,
               rep->tables[i].sha256);
    printf("verified: row counts and checksums match on both sides\n");
}

int cli_ca_migrate(int argc, char **argv)
{
    struct migrate_args a = {0};
    int rc = parse(argc, argv, &a);
    if (rc != FLAGS_GO_ON)
        return rc;
    const char *from = a.from, *to = a.to;
    struct tw_err err;
    if (!source_exists(from)) {
        tw_err_set(&err, TW_ERR_NOTFOUND, "ca migrate: no inventory at %s", from);
        return cli_fail(&err);
    }
    struct store *src = NULL, *dst = NULL;
    struct store_copy_report rep;
    rc = store_open(from, &src, &err) == 0 && store_open(to, &dst, &err) == 0 &&
                 store_copy(src, dst, &rep, &err) == 0
             ? 0
             : -1;
    if (rc == 0)
        report(store_where(src), store_where(dst), &rep);
    store_free(src);
    store_free(dst);
    return rc == 0 ? 0 : cli_fail(&err);
}
