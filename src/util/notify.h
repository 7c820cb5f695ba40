/* Service-manager notifications: systemd's sd_notify datagram protocol, spoken directly (a
 * few lines, no libsystemd). Every call does nothing when $NOTIFY_SOCKET is unset, so a
 * daemon started by hand or by another supervisor behaves exactly as before.
 *
 * The messages the daemons send (sd_notify(3)):
 *   READY=1                         listening; the unit becomes "active"
 *   RELOADING=1 + MONOTONIC_USEC=   a reload started (Type=notify-reload wants the clock)
 *   STOPPING=1                      SIGTERM: draining
 *   STATUS=...                      one line for `systemctl status`
 *   WATCHDOG=1                      still alive, every WATCHDOG_USEC / 2 */
#ifndef TW_UTIL_NOTIFY_H
#define TW_UTIL_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define NOTIFY_MSG_MAX 1024 /* one datagram; longer STATUS lines are cut */

/* True when $NOTIFY_SOCKET names a socket to notify. */
bool notify_enabled(void);

/* Send one datagram built from fmt ("READY=1\nSTATUS=..."), newline-separated assignments.
 * 0 when sent or when notifications are off; -1 (errno set) when the socket cannot be
 * reached: callers log it and carry on, the service manager is not a reason to stop. */
int notify_send(const char *fmt, ...) TW_PRINTF(1, 2);

/* "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now>", sent before a reload begins. */
int notify_reloading(void);

/* The watchdog period in microseconds from $WATCHDOG_USEC (when $WATCHDOG_PID is unset or
 * names this process), else 0: no watchdog. Keep-alives go out at half of it. */
uint64_t notify_watchdog_usec(void);

#endif
