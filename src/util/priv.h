/* Running as root only as long as needed: a daemon started as root binds its listeners and
 * reads its keys, then becomes an unprivileged user before it serves anyone (the OpenBSD
 * daemons' order: privileged set-up first, then no way back). */
#ifndef TW_UTIL_PRIV_H
#define TW_UTIL_PRIV_H

#include <stdbool.h>

#include "util/err.h"

/* Set to 1 in the environment: the same as --allow-root (the test suite runs as root). */
#define PRIV_ALLOW_ROOT_ENV "TWOWAY_ALLOW_ROOT"

/* Before start-up: refuse to serve as root with no user to become. 0 when the process is not
 * root, when user is set, or when allow_root (or $TWOWAY_ALLOW_ROOT=1); else TW_ERR_USAGE
 * saying what to do. Also TW_ERR_USAGE when user is set and the process is neither root nor
 * that user already (it could not switch). */
int priv_check(const char *user, bool allow_root, struct tw_err *err) TW_MUST_CHECK;

/* Become user for good: its primary group, its supplementary groups (initgroups), then its
 * uid (setgid before setuid, as only root may change groups). A no-op when user is NULL or
 * the process already runs as that user. Fails (TW_ERR_USAGE for an unknown user, TW_ERR_IO
 * for a refused call) rather than carry on half-dropped; also fails if root could be
 * regained afterwards. */
int priv_drop(const char *user, struct tw_err *err) TW_MUST_CHECK;

#endif
