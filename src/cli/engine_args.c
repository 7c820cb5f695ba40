#include "cli/engine_args.h"

#include <string.h>

#include "cli/cli.h"
#include "cli/flags.h"

static const char *const own_flags[] = {"--config", "--check", "--allow-root", "--help"};

int engine_args_parse(const char *cmd, const char *flags_hint, void (*usage)(FILE *), int argc,
                      char **argv, struct engine_args *o)
{
    o->rest[o->nrest++] = argv[0];
    if (argc == 2 && strcmp(argv[1], FLAGS_LIST) == 0) {
        for (size_t i = 0; i < sizeof(own_flags) / sizeof(own_flags[0]); i++)
            printf("%s\n", own_flags[i]);
        o->list(stdout);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "--config needs a file");
            o->config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            o->config = a + 9;
        } else if (strcmp(a, "--check") == 0) {
            o->check = true;
            if (i + 1 < argc && argv[i + 1][0] != '-')
                o->check_path = argv[++i];
        } else if (strcmp(a, "--allow-root") == 0) {
            o->allow_root = true;
        } else if (strncmp(a, "--check=", 8) == 0) {
            o->check = true;
            o->check_path = a + 8;
        } else {
            o->rest[o->nrest++] = argv[i];
        }
    }
    if ((o->config != NULL || o->check_path != NULL) && o->nrest > 1)
        return cli_usage_error(cmd, "use either a config file or flags, not both ('%s')",
                               o->rest[1]);
    if (o->config != NULL && o->check_path != NULL)
        return cli_usage_error(cmd, "--check takes the config file itself");
    if (o->config == NULL && o->check_path == NULL && o->nrest <= 1)
        return cli_usage_error(cmd, "give --config FILE or %s flags", flags_hint);
    return -1;
}
