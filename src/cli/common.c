#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void print_table(FILE *fp, const char *prog, const struct cli_command *table)
{
    fprintf(fp, "usage: %s COMMAND [options]   (%s COMMAND --help for details)\n\n", prog, prog);
    for (const struct cli_command *c = table; c->name != NULL; c++)
        fprintf(fp, "  %-10s %s\n", c->name, c->summary);
}

int cli_dispatch(const char *prog, const struct cli_command *table, int argc, char **argv)
{
    if (argc < 2) {
        print_table(stderr, prog, table);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_table(stdout, prog, table);
        return 0;
    }
    if (strcmp(name, "--list-flags") == 0) { /* shell completion: the sub-commands */
        for (const struct cli_command *c = table; c->name != NULL; c++)
            printf("%s\n", c->name);
        return 0;
    }
    for (const struct cli_command *c = table; c->name != NULL; c++)
        if (strcmp(name, c->name) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n\n", prog, name);
    print_table(stderr, prog, table);
    return 2;
}

int cli_fail(const struct tw_err *err)
{
    fprintf(stderr, "twoway: %s\n", err->msg[0] != '\0' ? err->msg : "failed");
    int code = tw_err_exit_code(err);
    return code != 0 ? code : 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "twoway %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'twoway %s --help')\n", cmd);
    return 2;
}

const char *cli_data_dir(const char *flag_value)
{
    if (flag_value != NULL)
        return flag_value;
    const char *env = getenv("TWOWAY_DIR");
    if (env != NULL && env[0] != '\0')
        return env;
    return "./twoway-data";
}
