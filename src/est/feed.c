/* The revocation feed: GET /revocations?since=N, where N is the CRL number the caller holds.
 * A CRL with a larger number is answered at once (the whole signed DER CRL: a gateway never
 * has to trust an unsigned delta); otherwise the request is held, bounded by
 * EST_FEED_HOLD_SECS, and answered the moment ca/crl.der is replaced. Every writer of the CRL
 * (`ca revoke` in another process, this server's own refresh, a wake from another instance on
 * the shared inventory) renames a new file into ca/, which inotify(7) reports, so an idle
 * gateway costs the CA one open socket and no polling. On a PostgreSQL inventory shared by
 * several instances (each with its own CA directory), a revocation made through any of them
 * is announced with NOTIFY at commit; the others hear it on a LISTEN connection and write a
 * CRL of their own, which wakes their feeds the same way. A held request whose client goes away
 * is forgotten through the connection's close callback, before evhttp frees it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "est/internal.h"
#include "util/clock.h"
#include "util/log.h"

struct est_feed_waiter {
    struct est_feed_waiter *next;
    struct est_server *srv;
    struct est_req r; /* the request as dispatched, for the answer and its log line */
    struct evhttp_connection *conn;
    struct event *timeout;
    int64_t since;
};

static void unlink_waiter(struct est_feed *f, struct est_feed_waiter *w)
{
    for (struct est_feed_waiter **p = &f->waiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            f->n--;
            break;
        }
    }
    if (w->conn != NULL)
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
    event_free(w->timeout);
    free(w);
}

/* The CRL held by the cache with its number, or 204 with the number when there is no news
 * (the hold ran out). */
static void answer(struct est_req *r, int news)
{
    const struct est_crl_cache *c = &r->srv->crl;
    char number[24];
    snprintf(number, sizeof(number), "%" PRId64, c->number);
    const char *const headers[] = {"Twoway-Crl-Number", number, "Cache-Control", "no-store",
                                   NULL};
    if (news)
        est_reply(r, 200, "application/pkix-crl", c->der, c->len, headers);
    else
        est_reply(r, 204, NULL, NULL, 0, headers);
}

static void on_hold_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct est_feed_waiter *w = arg;
    struct est_req r = w->r;
    unlink_waiter(&w->srv->feed, w);
    answer(&r, 0);
}

static void on_client_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct est_feed_waiter *w = arg;
    w->conn = NULL; /* being freed by evhttp */
    unlink_waiter(&w->srv->feed, w);
}

void est_feed_wake(struct est_server *srv)
{
    struct tw_err err;
    double woke = clock_wall_now();
    if (est_crl_refresh(&srv->crl, srv->opts->ca, time(NULL), &err) != 0) {
        log_warnx("ca serve: revocation feed: cannot read the CRL: %s", err.msg);
        if (srv->crl.der == NULL)
            return;
    }
    double read = clock_wall_now();
    struct est_feed *f = &srv->feed;
    size_t answered = 0;
    for (struct est_feed_waiter **p = &f->waiters; *p != NULL;) {
        struct est_feed_waiter *w = *p;
        if (w->since >= srv->crl.number) {
            p = &w->next;
            continue;
        }
        struct est_req r = w->r;
        unlink_waiter(f, w); /* *p now holds the next one */
        answer(&r, 1);
        answered++;
    }
    /* One line per revocation, with the times bench/revoke_latency lines up with the
     * gateways' trace lines (docs/performance.md). */
    if (answered > 0)
        log_info("ca serve: revocation feed: CRL number %lld sent to %zu held request(s) "
                 "(woken at %.6f, CRL read in %.3f ms, answers queued in %.3f ms)",
                 (long long)srv->crl.number, answered, woke, (read - woke) * 1000,
                 (clock_wall_now() - read) * 1000);
}

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct est_server *srv = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int crl = 0;
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            if (ev->len > 0 && strcmp(ev->name, "crl.der") == 0)
                crl = 1;
            off += (ssize_t)sizeof(*ev) + ev->len;
        }
    }
    if (crl)
        est_feed_wake(srv);
}

static void watch_open(struct est_server *srv);

static void watch_close(struct est_feed *f)
{
    if (f->watch_ev != NULL)
        event_free(f->watch_ev);
    f->watch_ev = NULL;
    store_watch_free(f->watch);
    f->watch = NULL;
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct est_server *srv = arg;
    struct est_feed *f = &srv->feed;
    int heard = store_watch_drain(f->watch);
    if (heard < 0) {
        log_warnx("ca serve: lost the inventory connection that hears other instances' "
                  "revocations; reconnecting in %ds",
                  EST_FEED_WATCH_RETRY_SECS);
        watch_close(f);
        struct timeval tv = {EST_FEED_WATCH_RETRY_SECS, 0};
        evtimer_add(f->watch_retry, &tv);
        return;
    }
    if (heard) {
        srv->crl.checked_at = 0; /* compare with the inventory now: a CRL of our own if behind */
        est_feed_wake(srv);
    }
}

static void on_watch_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_open(arg);
    struct est_server *srv = arg;
    if (srv->feed.watch != NULL) {
        srv->crl.checked_at = 0; /* what was announced while deaf */
        est_feed_wake(srv);
    }
}

static void watch_open(struct est_server *srv)
{
    struct est_feed *f = &srv->feed;
    struct tw_err err;
    f->watch = store_watch_revocations(pki_ca_store(srv->opts->ca), &err);
    if (f->watch == NULL) {
        if (err.code != TW_ERR_USAGE) { /* SQLite: nothing to hear */
            log_warnx("ca serve: %s; retrying in %ds", err.msg, EST_FEED_WATCH_RETRY_SECS);
            struct timeval tv = {EST_FEED_WATCH_RETRY_SECS, 0};
            evtimer_add(f->watch_retry, &tv);
        }
        return;
    }
    f->watch_ev =
        event_new(srv->base, store_watch_fd(f->watch), EV_READ | EV_PERSIST, on_watch, srv);
    if (f->watch_ev == NULL || event_add(f->watch_ev, NULL) != 0) {
        log_warnx("ca serve: cannot watch the inventory for revocations");
        watch_close(f);
    }
}

int est_feed_start(struct est_server *srv, struct tw_err *err)
{
    struct est_feed *f = &srv->feed;
    char *slash = strrchr(srv->crl.path, '/');
    TW_ENSURE(slash != NULL, err, TW_ERR_INTERNAL, "CRL path %s has no directory", srv->crl.path);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - srv->crl.path), srv->crl.path);
    f->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (f->fd < 0)
        return tw_err_sys(err, TW_ERR_IO, "inotify_init1 failed");
    /* The CRL is replaced by rename (IN_MOVED_TO); IN_CLOSE_WRITE covers a copy in place. */
    if (inotify_add_watch(f->fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot watch %s for new CRLs", dir);
    f->ev = event_new(srv->base, f->fd, EV_READ | EV_PERSIST, on_inotify, srv);
    TW_ENSURE(f->ev != NULL && event_add(f->ev, NULL) == 0, err, TW_ERR_INTERNAL,
              "cannot watch the CRL file");
    f->watch_retry = evtimer_new(srv->base, on_watch_retry, srv);
    TW_ENSURE(f->watch_retry != NULL, err, TW_ERR_INTERNAL, "event_new failed");
    watch_open(srv);
    return 0;
}

void est_feed_stop(struct est_server *srv)
{
    struct est_feed *f = &srv->feed;
    while (f->waiters != NULL)
        unlink_waiter(f, f->waiters); /* evhttp_free frees the requests themselves */
    if (f->ev != NULL)
        event_free(f->ev);
    f->ev = NULL;
    watch_close(f);
    if (f->watch_retry != NULL)
        event_free(f->watch_retry);
    f->watch_retry = NULL;
    if (f->fd > 0)
        close(f->fd);
    f->fd = -1;
}

static int parse_since(struct est_req *r, int64_t *since)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(r->req));
    struct evkeyvalq q; /* evhttp_parse_query_str initialises it */
    if (query == NULL || evhttp_parse_query_str(query, &q) != 0)
        return -1;
    const char *v = evhttp_find_header(&q, "since");
    char *end = NULL;
    errno = 0;
    long long n = v != NULL ? strtoll(v, &end, 10) : -1;
    int ok = v != NULL && *v != '\0' && end != NULL && *end == '\0' && errno == 0 && n >= 0;
    evhttp_clear_headers(&q);
    *since = (int64_t)n;
    return ok ? 0 : -1;
}

void est_h_revocations(struct est_req *r)
{
    struct est_server *srv = r->srv;
    int64_t since = 0;
    if (parse_since(r, &since) != 0) {
        est_reply_text(r, 400, "revocations: give ?since=N, the CRL number held (0: none)");
        return;
    }
    struct tw_err err;
    if (est_crl_refresh(&srv->crl, srv->opts->ca, time(NULL), &err) != 0 && srv->crl.der == NULL) {
        log_warnx("ca serve: no CRL to serve: %s", err.msg);
        est_reply_text(r, 503, "the CRL is not available right now");
        return;
    }
    if (srv->crl.number > since) {
        answer(r, 1);
        return;
    }
    struct est_feed *f = &srv->feed;
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    struct est_feed_waiter *w = f->n < EST_FEED_WAITERS_MAX ? calloc(1, sizeof(*w)) : NULL;
    if (w == NULL || conn == NULL) {
        free(w);
        evhttp_add_header(evhttp_request_get_output_headers(r->req), "Retry-After", "5");
        est_reply_text(r, 503, "too many revocation feed clients waiting; retry later");
        return;
    }
    w->srv = srv;
    w->r = *r;
    w->since = since;
    w->conn = conn;
    w->timeout = evtimer_new(srv->base, on_hold_over, w);
    struct timeval hold = {EST_FEED_HOLD_SECS, 0};
    if (w->timeout == NULL || evtimer_add(w->timeout, &hold) != 0) {
        if (w->timeout != NULL)
            event_free(w->timeout);
        free(w);
        est_reply_text(r, 500, "cannot hold the request");
        return;
    }
    /* Held longer than the idle timeout evhttp applies to the connection. */
    evhttp_connection_set_timeout(conn, EST_FEED_HOLD_SECS + EST_TIMEOUT_SECS);
    evhttp_connection_set_closecb(conn, on_client_gone, w);
    w->next = f->waiters;
    f->waiters = w;
    f->n++;
}
