/* The command-line interface: one file per command, each a handler taking (argc, argv) with
 * argv[0] the command's own name, returning the process exit code (0 ok, 1 failed, 2 usage). */
#ifndef TW_CLI_H
#define TW_CLI_H

#include <stdio.h>

#include "util/err.h"

typedef int (*cli_handler)(int argc, char **argv);

/* One row of a command table: name, handler, one-line summary for `--help`. */
struct cli_command {
    const char *name;
    cli_handler run;
    const char *summary;
};

/* Dispatch argv[1] through table (argv[0] is the parent command). Prints the table on
 * `--help`, `help` or an unknown name. */
int cli_dispatch(const char *prog, const struct cli_command *table, int argc, char **argv);

/* Print "twoway: <msg>" to stderr and return the exit code for err. */
int cli_fail(const struct tw_err *err);

/* Print a usage error "twoway <cmd>: <msg>" plus a hint to use --help; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) TW_PRINTF(2, 3);

/* Data directory from --dir, else $TWOWAY_DIR, else ./twoway-data. */
const char *cli_data_dir(const char *flag_value);

/* Handlers */
int cli_bench(int argc, char **argv);
int cli_ca(int argc, char **argv);
int cli_ca_init(int argc, char **argv);
int cli_ca_issue(int argc, char **argv);
int cli_ca_list(int argc, char **argv);
int cli_ca_show(int argc, char **argv);
int cli_ca_revoke(int argc, char **argv);
int cli_ca_crl(int argc, char **argv);
int cli_ca_export(int argc, char **argv);
int cli_ca_serve(int argc, char **argv);
int cli_ca_token(int argc, char **argv);
int cli_ca_migrate(int argc, char **argv);
int cli_ca_pending(int argc, char **argv);
int cli_ca_approve(int argc, char **argv);
int cli_ca_reject(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_doctor(int argc, char **argv);
int cli_gateway(int argc, char **argv);
int cli_tunnel(int argc, char **argv);
int cli_enroll(int argc, char **argv);
int cli_renew(int argc, char **argv);
int cli_version(int argc, char **argv);

#endif
