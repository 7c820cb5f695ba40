/* Crash-safe replacement of a certificate and key for `twoway renew` (see renew_swap.h). */
#include "cli/renew_swap.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki/pki.h"
#include "tlsx/tlsx.h"
#include "util/cleanup.h"
#include "util/fs.h"

static int side_path(char out[PATH_MAX], const char *path, const char *suffix, struct tw_err *err)
{
    TW_ENSURE(snprintf(out, PATH_MAX, "%s%s", path, suffix) < PATH_MAX, err, TW_ERR_USAGE,
              "path too long: %s", path);
    return 0;
}

static int rename_over(const char *from, const char *to, struct tw_err *err)
{
    if (rename(from, to) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot rename %s to %s", from, to);
    return 0;
}

/* Copy path to copy (whole or absent), keeping the mode given. */
static int keep_copy(const char *path, const char *copy, mode_t mode, struct tw_err *err)
{
    char *data = NULL;
    size_t len = 0;
    TW_GUARD(fs_read_file(path, 1u << 20, &data, &len, err));
    int rc = fs_write_atomic(copy, data, len, mode, err);
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

int renew_swap(const char *cert_path, const char *key_path, const char *new_cert, size_t cert_len,
               const char *new_key, size_t key_len, struct tw_err *err)
{
    char cert_new[PATH_MAX], key_new[PATH_MAX], key_old[PATH_MAX];
    TW_GUARD(side_path(cert_new, cert_path, ".new", err));
    TW_GUARD(side_path(key_new, key_path, ".new", err));
    TW_GUARD(side_path(key_old, key_path, ".old", err));
    TW_GUARD(fs_write_atomic(cert_new, new_cert, cert_len, 0644, err));
    if (new_key == NULL)
        return rename_over(cert_new, cert_path, err);
    TW_GUARD(fs_write_atomic(key_new, new_key, key_len, 0600, err));
    TW_GUARD(keep_copy(key_path, key_old, 0600, err));
    TW_GUARD(rename_over(key_new, key_path, err));
    TW_GUARD(rename_over(cert_new, cert_path, err));
    if (unlink(key_old) != 0 && errno != ENOENT)
        return tw_err_sys(err, TW_ERR_IO, "cannot remove %s", key_old);
    return 0;
}

/* 1 when the key file and certificate file belong together. */
static int pair_matches(const char *cert_path, const char *key_path)
{
    struct tw_err ignored;
    TW_AUTO(X509) *cert = NULL;
    TW_AUTO(EVP_PKEY) *key = NULL;
    if (tlsx_cert_chain_load(cert_path, &cert, NULL, &ignored) != 0 ||
        (key = pki_key_load(key_path, NULL, &ignored)) == NULL)
        return 0;
    return pki_key_matches_cert(key, cert);
}

int renew_swap_recover(const char *cert_path, const char *key_path, const char **note,
                       struct tw_err *err)
{
    char cert_new[PATH_MAX], key_new[PATH_MAX], key_old[PATH_MAX];
    TW_GUARD(side_path(cert_new, cert_path, ".new", err));
    TW_GUARD(side_path(key_new, key_path, ".new", err));
    TW_GUARD(side_path(key_old, key_path, ".old", err));
    const char *what = "";
    if (!pair_matches(cert_path, key_path)) {
        if (fs_exists(cert_new) && pair_matches(cert_new, key_path)) {
            TW_GUARD(rename_over(cert_new, cert_path, err));
            what = "finished an interrupted renewal (new certificate installed)";
        } else if (fs_exists(key_old) && pair_matches(cert_path, key_old)) {
            TW_GUARD(rename_over(key_old, key_path, err));
            what = "undid an interrupted renewal (previous key restored)";
        }
    }
    /* Leftovers of a swap that never reached its renames. */
    if (fs_exists(key_new) && unlink(key_new) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot remove %s", key_new);
    if (fs_exists(cert_new) && unlink(cert_new) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot remove %s", cert_new);
    if (fs_exists(key_old) && pair_matches(cert_path, key_path) && unlink(key_old) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot remove %s", key_old);
    if (note != NULL)
        *note = what;
    return 0;
}
