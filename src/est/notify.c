/* `ca serve` under a service manager: READY=1 with the address once listening, STOPPING=1 on
 * SIGINT/SIGTERM, and WATCHDOG=1 keep-alives when systemd asks for them. Silent without
 * $NOTIFY_SOCKET (util/notify.h). */
#include "est/internal.h"

#include <event2/event.h>

#include "util/log.h"
#include "util/notify.h"

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (notify_send("WATCHDOG=1") != 0)
        log_warn("ca serve: cannot reach the service manager at $NOTIFY_SOCKET");
}

int est_notify_ready(struct est_server *srv, const char *url, struct event **watchdog,
                     struct tw_err *err)
{
    *watchdog = NULL;
    if (notify_send("READY=1\nSTATUS=serving EST, CRL and OCSP on %s", url) != 0)
        log_warn("ca serve: cannot reach the service manager at $NOTIFY_SOCKET");
    uint64_t usec = notify_watchdog_usec();
    if (usec == 0 || !notify_enabled())
        return 0;
    *watchdog = event_new(srv->base, -1, EV_PERSIST, on_watchdog, srv);
    struct timeval tv = {(time_t)(usec / 2 / 1000000), (suseconds_t)(usec / 2 % 1000000)};
    TW_ENSURE(*watchdog != NULL && event_add(*watchdog, &tv) == 0, err, TW_ERR_INTERNAL,
              "cannot start the watchdog timer");
    return 0;
}
