/* The gateway and the tunnel tell a service manager (systemd, Type=notify) what they are
 * doing: ready once every listener is up, reloading around a reload with the clock systemd
 * asks for, stopping on SIGTERM, a status line with the generation and open connections, and
 * watchdog keep-alives. All of it is silent without $NOTIFY_SOCKET (util/notify.h). */
#include "gateway/internal.h"

#include "util/log.h"
#include "util/notify.h"

/* Without a watchdog the status line is refreshed this often. */
#define STATUS_INTERVAL_USEC (10ULL * 1000 * 1000)

static void warn_unreachable(int rc)
{
    static bool warned;
    if (rc != 0 && !warned) {
        warned = true;
        log_warn("cannot notify the service manager at $NOTIFY_SOCKET");
    }
}

static void send_state(const struct gw_server *srv, const char *state)
{
    warn_unreachable(notify_send(
        "%sSTATUS=generation %llu serving, %d connection%s open, %llu reload%s (%llu failed)",
        state, (unsigned long long)srv->gen->id, atomic_load(&srv->active),
        atomic_load(&srv->active) == 1 ? "" : "s", (unsigned long long)srv->reloads_ok,
        srv->reloads_ok == 1 ? "" : "s", (unsigned long long)srv->reloads_failed));
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_server *srv = arg;
    send_state(srv, srv->watchdog ? "WATCHDOG=1\n" : "");
}

int gw_notify_start(struct gw_server *srv, struct tw_err *err)
{
    if (!notify_enabled())
        return 0;
    uint64_t wd = notify_watchdog_usec();
    srv->watchdog = wd > 0;
    uint64_t every = wd > 0 ? wd / 2 : STATUS_INTERVAL_USEC;
    srv->notify_timer = event_new(srv->base, -1, EV_PERSIST, on_tick, srv);
    struct timeval tv = {(time_t)(every / 1000000), (suseconds_t)(every % 1000000)};
    TW_ENSURE(srv->notify_timer != NULL && event_add(srv->notify_timer, &tv) == 0, err,
              TW_ERR_INTERNAL, "cannot start the service-manager status timer");
    return 0;
}

void gw_notify_ready(const struct gw_server *srv)
{
    send_state(srv, "READY=1\n");
}

void gw_notify_reloading(void)
{
    warn_unreachable(notify_reloading());
}

void gw_notify_stopping(void)
{
    warn_unreachable(notify_send("STOPPING=1\nSTATUS=draining open connections"));
}
