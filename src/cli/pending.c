/* Commands whose implementation has not landed yet. Each moves to its own file when it does. */
#include "cli/cli.h"

static int pending(const char *name)
{
    fprintf(stderr, "twoway %s: not implemented yet\n", name);
    return 1;
}

int cli_ca_list(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return pending("ca list");
}

int cli_ca_show(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return pending("ca show");
}

int cli_ca_revoke(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return pending("ca revoke");
}

int cli_ca_crl(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return pending("ca crl");
}

int cli_ca_export(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return pending("ca export");
}
