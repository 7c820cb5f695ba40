/* Where a token's PIN and module come from when the pkcs11: URI does not say: the process-wide
 * values a command's --pin-file / --pkcs11-module or the gateway's `pin-file =` /
 * `pkcs11-module =` set. A URI that names a different file or module than the flag is refused
 * rather than one silently winning: the user said two things, and a PIN sent to the wrong token
 * counts against its retry limit. */
#include <stdio.h>
#include <string.h>

#include "keystore/internal.h"
#include "util/fs.h"

static char pin_file[KEYSTORE_REF_MAX];
static char module[KEYSTORE_REF_MAX];

static int set_path(char *dst, const char *path, const char *what, struct tw_err *err)
{
    if (path == NULL || path[0] == '\0') {
        dst[0] = '\0';
        return 0;
    }
    TW_ENSURE(strlen(path) < KEYSTORE_REF_MAX, err, TW_ERR_USAGE, "%s is longer than %d bytes",
              what, KEYSTORE_REF_MAX - 1);
    snprintf(dst, KEYSTORE_REF_MAX, "%s", path);
    return 0;
}

int keystore_set_pin_file(const char *path, struct tw_err *err)
{
    if (path != NULL && path[0] != '\0')
        TW_GUARD(fs_check_key_perms(path, err));
    return set_path(pin_file, path, "the PIN file's path", err);
}

int keystore_set_module(const char *path, struct tw_err *err)
{
    if (path != NULL && path[0] != '\0')
        TW_ENSURE(fs_exists(path), err, TW_ERR_CONFIG, "PKCS#11 module %s: no such file", path);
    return set_path(module, path, "the PKCS#11 module's path", err);
}

/* Fill what the URI left out; refuse a URI value that contradicts the flag. */
static int merge(char *uri_val, const char *dflt, const char *uri_attr, const char *flag,
                 const char *token, struct tw_err *err)
{
    if (dflt[0] == '\0')
        return 0;
    if (uri_val[0] == '\0') {
        snprintf(uri_val, KEYSTORE_REF_MAX, "%s", dflt);
        return 0;
    }
    TW_ENSURE(strcmp(uri_val, dflt) == 0, err, TW_ERR_CONFIG,
              "token '%s': the URI's %s=%s and %s %s disagree; give one of them", token,
              uri_attr, uri_val, flag, dflt);
    return 0;
}

int p11_uri_apply_defaults(struct p11_uri *u, struct tw_err *err)
{
    TW_GUARD(merge(u->pin_file, pin_file, "pin-source", "--pin-file", u->token, err));
    return merge(u->module, module, "module-path", "--pkcs11-module", u->token, err);
}
