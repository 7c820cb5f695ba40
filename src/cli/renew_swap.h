/* Replacing a certificate (and key) on disk so that a crash at any point leaves a usable pair
 * (private to `twoway renew`). */
#ifndef TW_CLI_RENEW_SWAP_H
#define TW_CLI_RENEW_SWAP_H

#include <stddef.h>

#include "util/err.h"

/* Install new_cert (PEM) at cert_path and, when new_key is non-NULL, new_key (PEM, 0600) at
 * key_path. Order, and why:
 *   1. write KEY.new and CERT.new (temp file, fsync, rename: each is whole or absent);
 *   2. with a new key, keep the current key as KEY.old (a whole copy, fsynced);
 *   3. rename KEY.new over KEY, then CERT.new over CERT (each rename is atomic);
 *   4. remove KEY.old.
 * A crash before 3 leaves the old pair in place. A crash between the two renames of 3 leaves
 * the new key next to the old certificate; renew_swap_recover() (run first by every `twoway
 * renew`) finishes the swap from CERT.new, or puts KEY.old back. Without a new key the swap is
 * one rename. */
int renew_swap(const char *cert_path, const char *key_path, const char *new_cert, size_t cert_len,
               const char *new_key, size_t key_len, struct tw_err *err) TW_MUST_CHECK;

/* Finish or undo an interrupted renew_swap. *note (may be NULL) is set to a short description
 * of what was done, or "" when nothing was left over. */
int renew_swap_recover(const char *cert_path, const char *key_path, const char **note,
                       struct tw_err *err) TW_MUST_CHECK;

#endif
