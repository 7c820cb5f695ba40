/* Worker threads: one event_base each, SO_REUSEPORT listeners of their own, the connections
 * they accepted. The main thread talks to a worker only through an atomic generation slot,
 * an atomic stop flag and an eventfd poke: no locks on the data path. */
#include "gateway/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "gateway/http_pool.h"
#include "gateway/revocation.h"
#include "util/clock.h"
#include "util/log.h"

#define ACCEPT_PAUSE_MS 100

static void relisten(struct gw_worker *w, const struct gw_gen *old, const struct gw_gen *gen);

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)lev;
    struct gw_lctx *lc = arg;
    struct gw_worker *w = lc->w;
    if (w->draining) {
        close(fd);
        return;
    }
    gw_conn_accept(w, &w->gen->listens[lc->idx], fd, sa, (socklen_t)salen);
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_worker *w = arg;
    if (w->draining)
        return;
    for (size_t i = 0; i < w->nlev; i++)
        if (w->lev[i] != NULL)
            evconnlistener_enable(w->lev[i]);
}

/* EMFILE, ENFILE, ENOBUFS: stop accepting for a moment instead of spinning. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    struct gw_lctx *lc = arg;
    struct gw_worker *w = lc->w;
    log_warn("worker %zu: accept on %s failed", w->id, w->gen->listens[lc->idx].cfg->addr.text);
    for (size_t i = 0; i < w->nlev; i++)
        if (w->lev[i] != NULL)
            evconnlistener_disable(w->lev[i]);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    event_add(w->pause_ev, &tv);
}

/* Whether crls revoke c's certificate or, after a full handshake, one of the CAs its chain
 * was verified through (the self-signed root excepted). Lookups by issuer + serial of
 * certificates the session already holds: nothing is decoded again. */
static bool conn_revoked(const struct gw_conn *c, const struct tlsx_crl_set *crls)
{
    if (tlsx_crl_set_is_revoked(crls, X509_get_issuer_name(c->peer_cert),
                                X509_get0_serialNumber(c->peer_cert)))
        return true;
    STACK_OF(X509) *chain = c->ssl != NULL ? SSL_get0_verified_chain(c->ssl) : NULL;
    for (int i = 1; chain != NULL && i < sk_X509_num(chain) - 1; i++) {
        X509 *ca = sk_X509_value(chain, i);
        if (tlsx_crl_set_is_revoked(crls, X509_get_issuer_name(ca), X509_get0_serialNumber(ca)))
            return true;
    }
    return false;
}

/* After a swap: close live connections whose certificate the new CRLs revoke or the new
 * policy no longer allows. */
static void sweep(struct gw_worker *w)
{
    size_t cut = 0;
    struct gw_conn *next;
    for (struct gw_conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->svc == NULL || c->peer_cert == NULL || c->state == GW_CONN_HANDSHAKE ||
            c->state == GW_CONN_LINGER)
            continue;
        const struct gw_svc *s = gw_gen_find_svc(w->gen, c->svc->cfg->name);
        if (s == NULL)
            continue;
        if (conn_revoked(c, s->crls)) {
            cut++;
            gw_stat_add(&w->stats.revoked_closed, 1);
            c->reason = TLSX_R_REVOKED;
            c->verdict = "deny";
            snprintf(c->detail, sizeof(c->detail), "certificate revoked by a reloaded CRL");
            if (c->h2 != NULL && c->state == GW_CONN_RELAY)
                gw_h2_goaway(c, true, "revoked"); /* GOAWAY first, then the close */
            else
                gw_conn_close(c, "revoked");
        } else if (c->id != NULL && !tlsx_policy_check(s->policy, c->id, NULL)) {
            c->reason = TLSX_R_POLICY;
            c->verdict = "deny";
            snprintf(c->detail, sizeof(c->detail), "no longer allowed by the reloaded policy");
            if (c->h2 != NULL && c->state == GW_CONN_RELAY)
                gw_h2_goaway(c, true, "policy");
            else
                gw_conn_close(c, "policy");
        }
    }
    log_debug("trace worker-swept worker %zu generation %llu cut %zu at %.6f", w->id,
              (unsigned long long)w->gen->id, cut, clock_wall_now());
}

/* An HTTP keep-alive connection between requests, with nothing in flight for a moment, can
 * be closed at once while draining: the client opens a new connection elsewhere. */
#define DRAIN_TICK_MS 250
#define DRAIN_QUIET_MS 500

static bool quiet_keepalive(const struct gw_conn *c, int64_t now)
{
    return c->state == GW_CONN_RELAY && c->http != NULL && !c->tunnel && !c->tunnel_pending &&
           gw_http_idle(c->http) && c->awaiting_ms == 0 && now - c->last_io_ms >= DRAIN_QUIET_MS &&
           evbuffer_get_length(bufferevent_get_output(c->client)) == 0 &&
           evbuffer_get_length(bufferevent_get_output(c->backend)) == 0;
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_worker *w = arg;
    int64_t now = gw_now_ms();
    if (now >= w->drain_deadline_ms) {
        if (w->nconns > 0)
            log_warnx("worker %zu: drain timeout, closing %zu connection(s)", w->id, w->nconns);
        while (w->conns != NULL)
            gw_conn_close(w->conns, "drain timeout");
        event_base_loopbreak(w->base);
        return;
    }
    struct gw_conn *next;
    for (struct gw_conn *c = w->conns; c != NULL; c = next) {
        next = c->next;
        if (c->h2 != NULL)
            gw_h2_goaway(c, false, "draining"); /* once; closes after its last stream */
        else if (quiet_keepalive(c, now))
            gw_conn_close(c, "draining: idle keep-alive");
    }
    /* gw_conn_close breaks the loop once the last connection is gone. */
}

static void begin_drain(struct gw_worker *w)
{
    w->draining = true;
    gw_pool_flush(w);
    for (size_t i = 0; i < w->nlev; i++) {
        if (w->lev[i] != NULL)
            evconnlistener_free(w->lev[i]);
        w->lev[i] = NULL;
    }
    w->nlev = 0;
    if (w->nconns == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    struct timeval tv = {0, DRAIN_TICK_MS * 1000};
    event_add(w->drain_ev, &tv);
    on_drain_tick(-1, 0, w);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct gw_worker *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("worker %zu: notify read", w->id);
    struct gw_gen *gen = atomic_exchange(&w->pending, NULL);
    if (gen != NULL) {
        struct gw_gen *old = w->gen;
        w->gen = gen;
        if (!w->draining)
            relisten(w, old, gen);
        gw_pool_flush(w); /* the old generation's services: their pooled connections go */
        gw_gen_unref(old);
        sweep(w);
    }
    gw_ocsp_worker_wake(w); /* new OCSP answers: admit waiting clients, cut revoked ones */
    if (atomic_load(&w->stop) && !w->draining)
        begin_drain(w);
}

int gw_worker_init(struct gw_worker *w, struct gw_server *srv, size_t id, struct tw_err *err)
{
    w->srv = srv;
    w->id = id;
    w->notify_fd = -1;
    atomic_init(&w->pending, NULL);
    atomic_init(&w->stop, 0);
    atomic_init(&w->done, 0);
    w->base = event_base_new();
    TW_ENSURE(w->base != NULL, err, TW_ERR_INTERNAL, "worker %zu: event_base_new failed", id);
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "worker %zu: eventfd", id);
    w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
    w->pause_ev = evtimer_new(w->base, on_resume_accept, w);
    w->drain_ev = event_new(w->base, -1, EV_PERSIST, on_drain_tick, w);
    TW_ENSURE(w->notify_ev != NULL && w->pause_ev != NULL && w->drain_ev != NULL, err,
              TW_ERR_INTERNAL, "worker %zu: event_new failed", id);
    TW_ENSURE(event_add(w->notify_ev, NULL) == 0, err, TW_ERR_INTERNAL,
              "worker %zu: event_add failed", id);
    return 0;
}

static struct evconnlistener *bind_one(struct gw_worker *w, const struct gw_addr *a, size_t i)
{
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT;
    if (a->ss.ss_family == AF_INET6)
        flags |= LEV_OPT_BIND_IPV6ONLY;
    w->lctx[i].w = w;
    w->lctx[i].idx = i;
    errno = 0;
    struct evconnlistener *lev = evconnlistener_new_bind(
        w->base, on_accept, &w->lctx[i], flags, 1024, (const struct sockaddr *)&a->ss, (int)a->len);
    if (lev != NULL)
        evconnlistener_set_error_cb(lev, on_accept_error);
    return lev;
}

int gw_worker_listen(struct gw_worker *w, const struct gw_gen *gen, struct tw_err *err)
{
    for (size_t i = 0; i < gen->nlistens; i++) {
        const struct gw_addr *a = &gen->listens[i].cfg->addr;
        w->lev[i] = bind_one(w, a, i);
        if (w->lev[i] == NULL)
            return tw_err_sys(err, TW_ERR_IO, "cannot listen on %s", a->text);
        w->nlev = i + 1;
    }
    return 0;
}

/* After a swap: keep the listeners of addresses both generations have (no connection is
 * dropped), open the new ones, close the ones gone. Listener i serves gen->listens[i]. */
static void relisten(struct gw_worker *w, const struct gw_gen *old, const struct gw_gen *gen)
{
    struct evconnlistener *next[GW_MAX_LISTENS] = {NULL};
    for (size_t i = 0; i < gen->nlistens; i++) {
        int j = gw_gen_listen_index(old, gen->listens[i].cfg->addr.text);
        if (j >= 0 && (size_t)j < w->nlev) {
            next[i] = w->lev[j];
            w->lev[j] = NULL;
        }
    }
    for (size_t j = 0; j < w->nlev; j++)
        if (w->lev[j] != NULL)
            evconnlistener_free(w->lev[j]);
    for (size_t i = 0; i < gen->nlistens; i++) {
        const struct gw_addr *a = &gen->listens[i].cfg->addr;
        w->lctx[i].w = w;
        w->lctx[i].idx = i;
        if (next[i] != NULL)
            evconnlistener_set_cb(next[i], on_accept, &w->lctx[i]);
        else if ((next[i] = bind_one(w, a, i)) == NULL)
            log_warn("worker %zu: cannot listen on %s", w->id, a->text);
        w->lev[i] = next[i];
    }
    w->nlev = gen->nlistens;
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    event_base_dispatch(w->base);
    atomic_store(&w->done, 1);
    return NULL;
}

int gw_worker_start(struct gw_worker *w, struct tw_err *err)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        errno = rc;
        return tw_err_sys(err, TW_ERR_INTERNAL, "worker %zu: cannot start thread", w->id);
    }
    w->started = true;
    return 0;
}

static void poke(struct gw_worker *w)
{
    uint64_t one = 1;
    if (w->notify_fd < 0)
        return;
    if (write(w->notify_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("worker %zu: notify", w->id);
}

void gw_worker_post_gen(struct gw_worker *w, struct gw_gen *gen)
{
    struct gw_gen *old = atomic_exchange(&w->pending, gw_gen_ref(gen));
    gw_gen_unref(old);
    poke(w);
}

void gw_worker_post_stop(struct gw_worker *w)
{
    atomic_store(&w->stop, 1);
    poke(w);
}

void gw_worker_join(struct gw_worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
}

void gw_worker_cleanup(struct gw_worker *w)
{
    while (w->conns != NULL)
        gw_conn_close(w->conns, "shutdown");
    gw_pool_flush(w);
    gw_h2_spares_free(w);
    for (size_t i = 0; i < w->nlev; i++)
        if (w->lev[i] != NULL)
            evconnlistener_free(w->lev[i]);
    w->nlev = 0;
    if (w->notify_ev != NULL)
        event_free(w->notify_ev);
    if (w->pause_ev != NULL)
        event_free(w->pause_ev);
    if (w->drain_ev != NULL)
        event_free(w->drain_ev);
    if (w->notify_fd >= 0)
        close(w->notify_fd);
    if (w->base != NULL)
        event_base_free(w->base);
    gw_gen_unref(atomic_exchange(&w->pending, NULL));
    gw_gen_unref(w->gen);
    memset(w, 0, sizeof(*w));
    w->notify_fd = -1;
}
