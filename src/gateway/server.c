/* The server: start-up, the main thread's loop (signals, reloads, file watching, metrics),
 * and shutdown. Reload builds a new generation off to the side; only a complete one is
 * swapped in, so a broken config or file leaves the old generation serving. */
#include "gateway/internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/revocation.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/priv.h"

/* Watched files are polled this often; a change is acted on once two polls in a row see the
 * same state, so a file caught half-written (which might even parse, minus its last allow
 * rules) is not loaded. A change takes effect within about two intervals. */
#define WATCH_INTERVAL_MS 250
#define STOP_POLL_MS 20

static void reopen_access_log(struct gw_server *srv);

struct gw_svc_slot *gw_server_slot(struct gw_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->nslots; i++)
        if (strcmp(srv->slots[i].name, name) == 0)
            return &srv->slots[i];
    if (srv->nslots >= GW_MAX_SERVICES)
        return NULL;
    struct gw_svc_slot *s = &srv->slots[srv->nslots++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    atomic_init(&s->active, 0);
    return s;
}

/* crls_only: only CRLs changed (fetched or fed), so the new generation is derived from the
 * current one without re-reading the configuration, certificate or key files; should that
 * fail, the full build runs instead. */
static void reload(struct gw_server *srv, const char *why, bool crls_only)
{
    struct tw_err err;
    tw_err_clear(&err);
    log_info("reload (%s): building a new %s generation", why,
             crls_only ? "revocation" : "configuration");
    gw_notify_reloading();
    double t0 = clock_wall_now();
    struct gw_gen *gen = crls_only ? gw_gen_derive(srv, srv->gen, &err) : NULL;
    if (crls_only && gen == NULL) {
        log_warnx("reload: applying the CRLs alone failed (%s); rebuilding everything", err.msg);
        tw_err_clear(&err);
    }
    if (gen == NULL)
        gen = gw_gen_build(srv, &err);
    log_debug("trace gen-built in %.3f ms at %.6f", (clock_wall_now() - t0) * 1000,
              clock_wall_now());
    if (gen != NULL && gw_gen_probe_listens(srv->gen, gen, &err) != 0) {
        gw_gen_unref(gen);
        gen = NULL;
    }
    if (gen == NULL) {
        srv->reloads_failed++;
        /* Remember the files as they are now, so a broken file is not retried every second;
         * the next change to any of them triggers a new attempt. */
        (void)gw_gen_files_changed(srv->gen, true);
        log_warnx("reload failed, still serving generation %llu: %s",
                  (unsigned long long)srv->gen->id, err.msg);
        gw_notify_ready(srv);
        return;
    }
    char what[64];
    if (gw_config_needs_restart(srv->gen->cfg, gen->cfg, what, sizeof(what)))
        log_warnx("reload: %s changed: restart to apply", what);
    for (size_t i = 0; i < gen->nlistens; i++)
        if (gw_gen_listen_index(srv->gen, gen->listens[i].cfg->addr.text) < 0)
            log_info("reload: now listening on %s", gen->listens[i].cfg->addr.text);
    for (size_t i = 0; i < srv->gen->nlistens; i++)
        if (gw_gen_listen_index(gen, srv->gen->listens[i].cfg->addr.text) < 0)
            log_info("reload: no longer listening on %s", srv->gen->listens[i].cfg->addr.text);
    for (size_t i = 0; i < srv->nworkers; i++)
        gw_worker_post_gen(&srv->workers[i], gen);
    struct gw_gen *old = srv->gen;
    srv->gen = gen;
    gw_gen_unref(old);
    srv->reloads_ok++;
    log_info("reload: generation %llu serving", (unsigned long long)gen->id);
    gw_notify_ready(srv);
}

void gw_server_reload(struct gw_server *srv, const char *why)
{
    if (!srv->stopping && srv->gen != NULL)
        reload(srv, why, false);
}

void gw_server_reload_crls(struct gw_server *srv, const char *why)
{
    if (!srv->stopping && srv->gen != NULL)
        reload(srv, why, true);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    struct gw_server *srv = arg;
    if (srv->stopping)
        return;
    reload(srv, "SIGHUP", false);
    reopen_access_log(srv);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_server *srv = arg;
    if (srv->stopping)
        return;
    uint64_t sig = gw_gen_watch_signature(srv->gen);
    bool settled = sig == srv->watch_sig;
    srv->watch_sig = sig;
    if (!settled)
        return;
    const char *changed = gw_gen_files_changed(srv->gen, false);
    if (changed != NULL) {
        char why[320];
        snprintf(why, sizeof(why), "%s changed", changed);
        reload(srv, why, false);
    }
}

static void on_stop_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_server *srv = arg;
    for (size_t i = 0; i < srv->nworkers; i++)
        if (!atomic_load(&srv->workers[i].done))
            return;
    event_base_loopbreak(srv->base);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct gw_server *srv = arg;
    if (srv->stopping)
        return;
    srv->stopping = true;
    gw_notify_stopping();
    int64_t drain_ms = srv->gen->cfg->global.drain_timeout * 1000;
    log_info("%s: no longer accepting; draining open connections for up to %llds",
             sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)(drain_ms / 1000));
    for (size_t i = 0; i < srv->nworkers; i++) {
        srv->workers[i].drain_deadline_ms = gw_now_ms() + drain_ms;
        gw_worker_post_stop(&srv->workers[i]);
    }
    struct timeval tv = {0, STOP_POLL_MS * 1000};
    event_add(srv->stop_timer, &tv);
}

static int open_access_log(struct gw_server *srv, struct tw_err *err)
{
    const char *path = srv->gen->cfg->global.access_log;
    if (path == NULL)
        return 0;
    if (strcmp(path, "-") == 0) {
        atomic_store(&srv->access, stdout);
        return 0;
    }
    FILE *fp = fopen(path, "ae");
    if (fp == NULL)
        return tw_err_sys(err, TW_ERR_IO, "access-log %s: cannot open", path);
    atomic_store(&srv->access, fp);
    srv->access_owned = true;
    return 0;
}

static void on_close_old_access(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_server *srv = arg;
    if (srv->old_access != NULL)
        fclose(srv->old_access);
    srv->old_access = NULL;
}

/* SIGHUP after log rotation (the file was renamed away): open the path again. Workers may
 * still hold the old FILE for the few microseconds of one line, so it is closed a little
 * later, not at once. */
static void reopen_access_log(struct gw_server *srv)
{
    const char *path = srv->gen->cfg->global.access_log;
    if (path == NULL || strcmp(path, "-") == 0 || !srv->access_owned)
        return;
    FILE *fp = fopen(path, "ae");
    if (fp == NULL) {
        log_warn("access-log %s: cannot reopen, still writing to the old file", path);
        return;
    }
    if (srv->old_access != NULL)
        fclose(srv->old_access);
    srv->old_access = atomic_exchange(&srv->access, fp);
    struct timeval tv = {2, 0};
    event_add(srv->access_close_timer, &tv);
}

static int add_signal(struct gw_server *srv, struct event **ev, int sig, event_callback_fn cb,
                      struct tw_err *err)
{
    *ev = evsignal_new(srv->base, sig, cb, srv);
    TW_ENSURE(*ev != NULL && event_add(*ev, NULL) == 0, err, TW_ERR_INTERNAL,
              "cannot watch signal %d", sig);
    return 0;
}

static int setup_main(struct gw_server *srv, struct tw_err *err)
{
    TW_GUARD(add_signal(srv, &srv->sig_hup, SIGHUP, on_hup, err));
    TW_GUARD(add_signal(srv, &srv->sig_term, SIGTERM, on_term, err));
    TW_GUARD(add_signal(srv, &srv->sig_int, SIGINT, on_term, err));
    srv->watch_timer = event_new(srv->base, -1, EV_PERSIST, on_watch, srv);
    srv->stop_timer = event_new(srv->base, -1, EV_PERSIST, on_stop_poll, srv);
    srv->access_close_timer = evtimer_new(srv->base, on_close_old_access, srv);
    TW_ENSURE(srv->watch_timer != NULL && srv->stop_timer != NULL &&
                  srv->access_close_timer != NULL,
              err, TW_ERR_INTERNAL, "event_new failed");
    struct timeval tv = {WATCH_INTERVAL_MS / 1000, (WATCH_INTERVAL_MS % 1000) * 1000};
    TW_ENSURE(event_add(srv->watch_timer, &tv) == 0, err, TW_ERR_INTERNAL, "event_add failed");
    return 0;
}

static int start_workers(struct gw_server *srv, struct tw_err *err)
{
    for (size_t i = 0; i < (size_t)srv->gen->workers; i++) {
        struct gw_worker *w = &srv->workers[i];
        srv->nworkers = i + 1;
        TW_GUARD(gw_worker_init(w, srv, i, err));
        w->gen = gw_gen_ref(srv->gen);
        TW_GUARD(gw_worker_listen(w, srv->gen, err));
    }
    /* Every listener is bound and every key read: from here on, the configured user. */
    TW_GUARD(priv_drop(srv->gen->cfg->global.user, err));
    /* Workers inherit this mask: signals are handled by the main thread's loop only. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = 0;
    for (size_t i = 0; i < srv->nworkers && rc == 0; i++)
        rc = gw_worker_start(&srv->workers[i], err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void say_ready(const struct gw_server *srv)
{
    char line[1024];
    size_t o = 0;
    const struct gw_gen *gen = srv->gen;
    for (size_t i = 0; i < gen->nlistens && o < sizeof(line); i++)
        o += (size_t)snprintf(line + o, sizeof(line) - o, "%s%s", i > 0 ? ", " : "",
                              gen->listens[i].cfg->addr.text);
    fprintf(stderr, "twoway %s: ready, listening on %s (%zu worker%s)\n",
            srv->src.name != NULL ? srv->src.name : "gateway", line, srv->nworkers,
            srv->nworkers == 1 ? "" : "s");
    fflush(stderr);
}

static void server_free(struct gw_server *srv)
{
    for (size_t i = 0; i < srv->nworkers; i++)
        gw_worker_post_stop(&srv->workers[i]);
    for (size_t i = 0; i < srv->nworkers; i++)
        gw_worker_join(&srv->workers[i]);
    for (size_t i = 0; i < srv->nworkers; i++)
        gw_worker_cleanup(&srv->workers[i]);
    gw_metrics_stop(srv);
    gw_revoc_free(srv->revoc);
    struct event *evs[] = {srv->sig_hup,     srv->sig_term,   srv->sig_int,
                           srv->watch_timer, srv->stop_timer, srv->access_close_timer,
                           srv->notify_timer};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    if (srv->base != NULL)
        event_base_free(srv->base);
    gw_gen_unref(srv->gen);
    tlsx_ticket_keys_free(srv->tickets);
    FILE *access = atomic_load(&srv->access);
    if (srv->access_owned)
        fclose(access);
    else if (access != NULL)
        fflush(access);
    if (srv->old_access != NULL)
        fclose(srv->old_access);
    free(srv);
}

/* Each connection takes two descriptors (client, backend): raise the soft limit towards the
 * hard one so max-connections is reachable without a ulimit in the service manager. */
static void raise_fd_limit(const struct gw_gen *gen)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)gen->cfg->global.max_connections * 2 + 256;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-files limit to %llu", (unsigned long long)want);
    }
}

int gateway_run(const struct gw_source *src, struct tw_err *err)
{
    struct gw_server *srv = calloc(1, sizeof(*srv));
    TW_ENSURE(srv != NULL, err, TW_ERR_INTERNAL, "out of memory");
    srv->src = *src;
    atomic_init(&srv->active, 0);
    signal(SIGPIPE, SIG_IGN);
    int rc = -1;
    srv->base = event_base_new();
    if (srv->base == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "event_base_new failed");
        goto out;
    }
    if (gw_revoc_start(srv, err) != 0) /* first fetch of CRL URLs, before the first build */
        goto out;
    srv->gen = gw_gen_build(srv, err);
    if (srv->gen == NULL)
        goto out;
    log_init(stderr, srv->gen->cfg->global.log_level);
    if (priv_check(srv->gen->cfg->global.user, srv->src.allow_root, err) != 0)
        goto out;
    raise_fd_limit(srv->gen);
    if (open_access_log(srv, err) != 0 || setup_main(srv, err) != 0)
        goto out;
    if (srv->gen->cfg->global.has_metrics &&
        gw_metrics_start(srv, &srv->gen->cfg->global.metrics, err) != 0)
        goto out;
    if (gw_gen_probe_listens(NULL, srv->gen, err) != 0 || start_workers(srv, err) != 0 ||
        gw_notify_start(srv, err) != 0)
        goto out;
    say_ready(srv);
    gw_notify_ready(srv);
    event_base_dispatch(srv->base);
    log_info("stopped");
    rc = 0;
out:
    server_free(srv);
    return rc;
}
