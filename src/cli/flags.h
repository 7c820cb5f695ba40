/* Table-driven command-line flags for the twoway commands (private to src/cli).
 *
 * A command describes its flags once, as a static table of {name, kind, field offset} rows,
 * and flags_parse walks argv against it: `--name value` and `--name=value`, a unique prefix of
 * a name (`--pass` for `--passphrase-file`), `-h`/`--help`, `--` to end the flags, and
 * positional arguments anywhere in between, as GNU getopt_long did for these commands. Every
 * problem is one usage error, "twoway CMD: ..." on stderr and exit 2:
 *   unknown option --bogus          option --dir needs a value
 *   option --force takes no value   --days 'x': expected a whole number from 1 to 3650
 * Rules between flags (required, exclusive) stay with the command, after the parse. */
#ifndef TW_CLI_FLAGS_H
#define TW_CLI_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum flag_kind {
    FLAG_END,      /* ends a table */
    FLAG_BOOL,     /* bool, set to true; takes no value */
    FLAG_STRING,   /* const char *, the value (given twice: the last one wins) */
    FLAG_INT,      /* int, a whole number in [min, max] */
    FLAG_DURATION, /* int64_t seconds ("90s", "15m", "12h", "7d", bare: seconds), in [min, max] */
    FLAG_CHOICE,   /* int, the value of the choice whose name is given */
    FLAG_CALL,     /* call(field, value): once per occurrence, so it also makes repeatable
                    * flags (--san adds to a list) and values with their own syntax */
    FLAG_GROUP,    /* the rows of group, their offsets relative to this row's field */
    FLAG_HELP,     /* print the usage and stop (built in as --help and -h) */
};

struct flag_choice {
    const char *name;
    int value;
};

/* 0, or -1 with err holding the whole message, printed as is ("--rate 'x': expected a
 * positive number"). */
typedef int (*flag_call_fn)(void *field, const char *value, struct tw_err *err);

struct flag {
    const char *name; /* long name, without "--" */
    enum flag_kind kind;
    size_t off;                        /* offsetof the field in the struct given to flags_parse */
    char short_name;                   /* -c, or 0 */
    long long min, max;                /* FLAG_INT, FLAG_DURATION (max 0: no limit) */
    const char *bad;                   /* the error after "--name 'value': "; FLAG_INT puts
                                        * " MIN to MAX" after it. NULL: a default per kind */
    const struct flag_choice *choices; /* FLAG_CHOICE, ended by a NULL name */
    flag_call_fn call;                 /* FLAG_CALL */
    const struct flag *group;          /* FLAG_GROUP */
};

struct flag_set {
    const char *cmd;          /* "ca issue": messages read "twoway ca issue: ..." */
    const char *usage;        /* printed to stdout for --help or -h */
    const struct flag *flags; /* ended by a FLAG_END row */
    int nargs;                /* positional arguments: exactly this many, or FLAGS_ANY_ARGS */
    const char *nargs_error;  /* the usage error for another count ("expected one NAME");
                               * NULL: "unexpected argument 'X'" */
};

#define FLAGS_ANY_ARGS (-1)

/* `twoway CMD --list-flags`, alone: print every long flag of CMD, one per line, and exit 0.
 * Shell completion reads it, and the test that holds the man pages to the program. */
#define FLAGS_LIST "--list-flags"

/* flags_parse's "carry on": anything else is the exit code to return now. */
#define FLAGS_GO_ON (-1)

/* Parse argv[1..argc) against set into the struct at target. Positional arguments are moved,
 * in order, to argv[1..*nargs] (nargs may be NULL when set->nargs fixes the count). Returns
 * FLAGS_GO_ON, or the exit code: 0 after printing the usage for --help, 2 after a usage
 * error. */
int flags_parse(const struct flag_set *set, void *target, int argc, char **argv, int *nargs);

/* Split a "HOST:PORT" or "[V6]:PORT" argument (port 1-65535) into host and port.
 * FLAGS_GO_ON, or 2 after the usage error naming text. */
int flags_host_port(const char *cmd, const char *text, char *host, size_t host_cap, char *port,
                    size_t port_cap);

/* Shared groups, written once for the commands that take them (FLAG_GROUP rows). */

/* --dir D, --passphrase-file F: where the CA lives and how its keys unlock. */
struct flags_ca {
    const char *dir, *passfile;
};
extern const struct flag flags_ca_group[];

/* --cert F, --key F, --ca F: the client side of an mTLS connection. */
struct flags_tls {
    const char *cert, *key, *ca;
};
extern const struct flag flags_tls_group[];

/* --pin-file F, --pkcs11-module M: how keys in a PKCS#11 token unlock (keystore_set_pin_file,
 * keystore_set_module); no field of its own (a FLAG_GROUP row at any offset). */
extern const struct flag flags_hw_group[];

/* --p12, --p12-legacy, --p12-pass-file F: also write a PKCS#12 file. */
struct flags_p12 {
    bool p12, legacy;
    const char *pass_file;
};
extern const struct flag flags_p12_group[];

/* The rules of the --p12 flags: the other two need --p12, and --p12 a password from
 * --p12-pass-file or $TWOWAY_P12_PASS_FILE. FLAGS_GO_ON, or 2 after the usage error. */
int flags_p12_check(const char *cmd, const struct flags_p12 *p);

#endif
