/* `twoway ca serve`: one event_base, one evhttp whose connections are TLS bufferevents
 * (evhttp_set_bevcb), a timer that keeps the CRL fresh, and SIGINT/SIGTERM for a clean stop.
 * Single-threaded on purpose: signing is fast, SQLite serialises writers anyway, and the
 * inventory is read fresh for every request. Enrollments are committed in groups (group.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "est/internal.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/priv.h"

struct listen_addr {
    char host[256]; /* as written, brackets kept for IPv6 */
    char bind[256]; /* without brackets */
    unsigned port;
};

static int parse_listen(const char *what, const char *text, struct listen_addr *out,
                        struct tw_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *colon = strrchr(text, ':');
    TW_ENSURE(colon != NULL && colon[1] != '\0', err, TW_ERR_USAGE,
              "%s '%s': expected HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)", what, text);
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    TW_ENSURE(end != NULL && *end == '\0' && port >= 0 && port <= 65535, err, TW_ERR_USAGE,
              "%s '%s': port must be 0..65535", what, text);
    size_t hlen = (size_t)(colon - text);
    TW_ENSURE(hlen < sizeof(out->host), err, TW_ERR_USAGE, "%s '%s': host too long", what, text);
    memcpy(out->host, text, hlen);
    out->host[hlen] = '\0';
    if (hlen == 0)
        snprintf(out->host, sizeof(out->host), "0.0.0.0");
    size_t n = strlen(out->host);
    if (n >= 2 && out->host[0] == '[' && out->host[n - 1] == ']')
        snprintf(out->bind, sizeof(out->bind), "%.*s", (int)(n - 2), out->host + 1);
    else
        snprintf(out->bind, sizeof(out->bind), "%s", out->host);
    TW_ENSURE(strchr(out->bind, ':') == NULL || out->host[0] == '[', err, TW_ERR_USAGE,
              "%s '%s': write IPv6 addresses in brackets ([::1]:8443)", what, text);
    out->port = (unsigned)port;
    return 0;
}

static struct bufferevent *make_bev(struct event_base *base, void *arg)
{
    struct est_server *srv = arg;
    SSL *ssl = SSL_new(srv->ctx);
    if (ssl == NULL)
        return NULL;
    est_tls_linger_on_alert(ssl, srv);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

int est_listen_check(const char *what, const char *listen, struct tw_err *err)
{
    struct listen_addr la;
    return parse_listen(what, listen, &la, err);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct est_server *srv = arg;
    log_info("ca serve: signal %d, stopping", (int)sig);
    (void)notify_send("STOPPING=1");
    event_base_loopbreak(srv->base);
}

/* The server's own certificate: reissued when due; new connections get the new context,
 * open ones keep theirs (each SSL holds a reference to its SSL_CTX). */
static void refresh_server_cert(struct est_server *srv)
{
    char cert[PATH_MAX], key[PATH_MAX];
    int issued = 0;
    struct tw_err err;
    if (est_server_cert_ensure(srv->opts->ca, srv->host, srv->opts->extra_sans, cert, key, &issued,
                               &err) != 0) {
        log_warnx("ca serve: cannot renew the server certificate: %s", err.msg);
        return;
    }
    if (!issued)
        return;
    SSL_CTX *ctx = est_server_ctx_new(srv->opts->ca, cert, key, &err);
    if (ctx == NULL) {
        log_warnx("ca serve: new server certificate unusable: %s", err.msg);
        return;
    }
    SSL_CTX_free(srv->ctx);
    srv->ctx = ctx;
    log_info("ca serve: server certificate renewed");
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct est_server *srv = arg;
    struct tw_err err;
    if (est_crl_refresh(&srv->crl, srv->opts->ca, time(NULL), &err) != 0)
        log_warnx("ca serve: CRL refresh failed: %s", err.msg);
    refresh_server_cert(srv);
}

static int bound_port(struct evhttp_bound_socket *bs, unsigned *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    *port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                     : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* One evhttp on la into *slot (freed by teardown): TLS when tls, every request routed by
 * est_dispatch; else plain HTTP, routed by est_dispatch_plain (revocation status and the CA
 * certificates only). */
static int setup_http(struct est_server *srv, struct evhttp **slot, const struct listen_addr *la,
                      int tls, unsigned *port, struct tw_err *err)
{
    struct evhttp *http = *slot = evhttp_new(srv->base);
    TW_ENSURE(http != NULL, err, TW_ERR_INTERNAL, "evhttp_new failed");
    if (tls)
        evhttp_set_bevcb(http, make_bev, srv);
    evhttp_set_gencb(http, tls ? est_dispatch : est_dispatch_plain, srv);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(http, EST_HEADERS_MAX);
    evhttp_set_max_body_size(http, EST_BODY_MAX);
    evhttp_set_timeout(http, EST_TIMEOUT_SECS);
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(http, la->bind, (ev_uint16_t)la->port);
    if (bs == NULL)
        return tw_err_sys(err, TW_ERR_IO, "cannot listen on %s:%u", la->host, la->port);
    if (bound_port(bs, port) != 0)
        return tw_err_sys(err, TW_ERR_IO, "cannot read the port of %s", la->host);
    /* Answers leave at once, not after the client's delayed ACK (Nagle's algorithm held the
     * second TLS record of every keep-alive answer for ~40 ms). Accepted sockets inherit the
     * option from the listener (Linux, the BSDs), so this costs nothing per connection. */
    int one = 1;
    if (setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) !=
        0)
        return tw_err_sys(err, TW_ERR_IO, "cannot set TCP_NODELAY on %s:%u", la->host, la->port);
    return 0;
}

static void teardown(struct est_server *srv, struct event **evs, size_t n)
{
    est_feed_stop(srv);
    est_group_stop(srv);
    for (size_t i = 0; i < n; i++)
        if (evs[i] != NULL)
            event_free(evs[i]);
    if (srv->http != NULL)
        evhttp_free(srv->http);
    if (srv->plain != NULL)
        evhttp_free(srv->plain);
    tw_linger_abort_all(&srv->lingers);
    if (srv->base != NULL)
        event_base_free(srv->base);
    SSL_CTX_free(srv->ctx);
    est_crl_cache_free(&srv->crl);
    free(srv->cacerts_b64);
    est_ca_files_free(&srv->ca_files);
    free(srv->rl);
}

/* evhttp stops reading while it answers and starts again after, and writes in between: with
 * a changelist, epoll hears only the net change per loop turn (one call per answer instead of
 * four). The changelist's known limit, file descriptors shared through dup(), does not apply:
 * every socket here is accepted by evhttp and owned by one bufferevent. */
static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static int serve(struct est_server *srv, const struct listen_addr *la,
                 const struct listen_addr *plain, struct event **evs, struct tw_err *err)
{
    char cert[PATH_MAX], key[PATH_MAX];
    snprintf(srv->host, sizeof(srv->host), "%s", la->host);
    TW_GUARD(est_server_cert_ensure(srv->opts->ca, srv->host, srv->opts->extra_sans, cert, key,
                                    NULL, err));
    if ((srv->ctx = est_server_ctx_new(srv->opts->ca, cert, key, err)) == NULL)
        return -1;
    TW_GUARD(est_cacerts_build(srv, err));
    TW_GUARD(est_ca_files_build(&srv->ca_files, srv->opts->ca, err));
    TW_GUARD(est_crl_refresh(&srv->crl, srv->opts->ca, time(NULL), err));
    srv->base = new_base();
    TW_ENSURE(srv->base != NULL, err, TW_ERR_INTERNAL, "event_base_new failed");
    unsigned port = 0, plain_port = 0;
    TW_GUARD(est_feed_start(srv, err));
    TW_GUARD(est_group_start(srv, err));
    TW_GUARD(setup_http(srv, &srv->http, la, 1, &port, err));
    if (plain != NULL)
        TW_GUARD(setup_http(srv, &srv->plain, plain, 0, &plain_port, err));
    TW_GUARD(priv_drop(srv->opts->user, err)); /* bound, keys read: no root from here on */
    evs[0] = evsignal_new(srv->base, SIGINT, on_signal, srv);
    evs[1] = evsignal_new(srv->base, SIGTERM, on_signal, srv);
    evs[2] = event_new(srv->base, -1, EV_PERSIST, on_timer, srv);
    struct timeval tick = {EST_CRL_CHECK_SECS, 0};
    TW_ENSURE(evs[0] != NULL && evs[1] != NULL && evs[2] != NULL && event_add(evs[0], NULL) == 0 &&
                  event_add(evs[1], NULL) == 0 && event_add(evs[2], &tick) == 0,
              err, TW_ERR_INTERNAL, "cannot install signal handlers");
    if (plain != NULL)
        fprintf(stderr,
                "twoway ca serve: plain HTTP on http://%s:%u (CRL, OCSP, CA certificates only)\n",
                plain->host, plain_port);
    char url[300];
    snprintf(url, sizeof(url), "https://%s:%u", la->host, port);
    TW_GUARD(est_notify_ready(srv, url, &evs[3], err));
    fprintf(stderr, "twoway ca serve: ready, listening on %s\n", url);
    fflush(stderr);
    event_base_dispatch(srv->base);
    return 0;
}

int est_server_run(const struct est_server_opts *opts, struct tw_err *err)
{
    struct listen_addr la, plain;
    TW_GUARD(parse_listen("--listen", opts->listen != NULL ? opts->listen : "127.0.0.1:8443", &la,
                          err));
    if (opts->http_listen != NULL)
        TW_GUARD(parse_listen("--http-listen", opts->http_listen, &plain, err));
    signal(SIGPIPE, SIG_IGN);
    struct est_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.opts = opts;
    srv.lingers.max = EST_LINGER_MAX;
    srv.rl = malloc(sizeof(*srv.rl));
    TW_ENSURE(srv.rl != NULL, err, TW_ERR_INTERNAL, "out of memory");
    est_ratelimit_init(srv.rl, opts->rate, opts->burst);
    struct event *evs[4] = {NULL, NULL, NULL, NULL};
    int rc = serve(&srv, &la, opts->http_listen != NULL ? &plain : NULL, evs, err);
    teardown(&srv, evs, 4);
    return rc;
}
