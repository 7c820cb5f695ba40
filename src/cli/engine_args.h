/* Arguments shared by the commands that run the gateway engine (gateway, tunnel): either
 * --config FILE or per-key flags, plus --check [CONFIG] and --help. */
#ifndef TW_CLI_ENGINE_ARGS_H
#define TW_CLI_ENGINE_ARGS_H

#include <stdbool.h>
#include <stdio.h>

struct engine_args {
    const char *config;
    const char *check_path;
    bool check;
    bool allow_root;         /* --allow-root: serve as root with no user to switch to */
    void (*list)(FILE *out); /* the config flags for --list-flags (set by the caller) */
    int nrest;               /* rest[0] is the command name, then the config flags */
    char **rest;             /* caller-provided, argc + 1 entries */
};

/* Split --config, --check, --allow-root, --list-flags and --help from the config flags, which go to
 * rest. flags_hint names the typical flags for the error when nothing is given. Returns -1 to go
 * on, else the exit code (0 after --help, 2 on a usage error). */
int engine_args_parse(const char *cmd, const char *flags_hint, void (*usage)(FILE *), int argc,
                      char **argv, struct engine_args *o);

#endif
