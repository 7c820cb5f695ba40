/* Flag groups that several commands share (see flags.h). */
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/flags.h"
#include "keystore/keystore.h"

const struct flag flags_ca_group[] = {
    {.name = "dir", .kind = FLAG_STRING, .off = offsetof(struct flags_ca, dir)},
    {.name = "passphrase-file", .kind = FLAG_STRING, .off = offsetof(struct flags_ca, passfile)},
    {.kind = FLAG_END},
};

const struct flag flags_tls_group[] = {
    {.name = "cert", .kind = FLAG_STRING, .off = offsetof(struct flags_tls, cert)},
    {.name = "key", .kind = FLAG_STRING, .off = offsetof(struct flags_tls, key)},
    {.name = "ca", .kind = FLAG_STRING, .off = offsetof(struct flags_tls, ca)},
    {.kind = FLAG_END},
};

/* The field is unused: the values are the key store's process-wide defaults. */
static int set_pin_file(void *field, const char *value, struct tw_err *err)
{
    (void)field;
    return keystore_set_pin_file(value, err);
}

static int set_module(void *field, const char *value, struct tw_err *err)
{
    (void)field;
    return keystore_set_module(value, err);
}

const struct flag flags_hw_group[] = {
    {.name = "pin-file", .kind = FLAG_CALL, .call = set_pin_file},
    {.name = "pkcs11-module", .kind = FLAG_CALL, .call = set_module},
    {.kind = FLAG_END},
};

const struct flag flags_p12_group[] = {
    {.name = "p12", .kind = FLAG_BOOL, .off = offsetof(struct flags_p12, p12)},
    {.name = "p12-legacy", .kind = FLAG_BOOL, .off = offsetof(struct flags_p12, legacy)},
    {.name = "p12-pass-file", .kind = FLAG_STRING, .off = offsetof(struct flags_p12, pass_file)},
    {.kind = FLAG_END},
};

int flags_p12_check(const char *cmd, const struct flags_p12 *p)
{
    if ((p->legacy || p->pass_file != NULL) && !p->p12)
        return cli_usage_error(cmd, "--p12-legacy and --p12-pass-file need --p12");
    const char *env = getenv("TWOWAY_P12_PASS_FILE");
    if (p->p12 && p->pass_file == NULL && (env == NULL || env[0] == '\0'))
        return cli_usage_error(cmd, "--p12 needs a password: --p12-pass-file F or "
                                    "TWOWAY_P12_PASS_FILE");
    return FLAGS_GO_ON;
}
