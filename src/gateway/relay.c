/* The relay: bytes both ways between the client (TLS) and the backend, with bounded buffers.
 * When one side's output holds buffer-size bytes, the other side is no longer read until the
 * output drains below a quarter of it: a slow reader never makes the gateway buffer without
 * limit. In HTTP mode the client -> backend stream goes through the request processor
 * (http.h), which strips spoofable identity headers and injects the verified ones. */
#include "gateway/internal.h"

#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "gateway/forward.h"
#include "gateway/proxy_v2.h"
#include "util/buf.h"
#include "util/log.h"

static void half_close_backend(struct gw_conn *c);

static void enter_flush(struct gw_conn *c, struct bufferevent *target, const char *why)
{
    c->state = GW_CONN_FLUSH;
    c->flush_target = target;
    c->close_reason = why;
    bufferevent_disable(c->client, EV_READ);
    if (c->backend != NULL)
        bufferevent_disable(c->backend, EV_READ);
    if (target == NULL || evbuffer_get_length(bufferevent_get_output(target)) == 0) {
        gw_conn_close(c, why);
        return;
    }
    bufferevent_setwatermark(target, EV_WRITE, 0, 0);
    bufferevent_enable(target, EV_WRITE);
    c->deadline_ms = gw_now_ms() + GW_FLUSH_LIMIT_MS;
    gw_conn_arm_timer(c);
}

/* The access log's close reason for a canned response (a static string: the connection keeps
 * only a pointer). */
static const char *http_close_reason(int status)
{
    static const struct {
        int status;
        const char *why;
    } reasons[] = {{400, "http 400"}, {403, "http 403"}, {421, "http 421"}, {431, "http 431"},
                   {500, "http 500"}, {502, "http 502"}, {503, "http 503"}, {504, "http 504"}};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].why;
    return "http error";
}

void gw_conn_send_status(struct gw_conn *c, int status)
{
    size_t len;
    const char *resp = gw_http_error_response(status, &len);
    c->http_status = status;
    if (c->backend != NULL) {
        bufferevent_free(c->backend);
        c->backend = NULL;
    }
    bufferevent_write(c->client, resp, len);
    enter_flush(c, c->client, http_close_reason(status));
}

/* Backpressure: stop reading src while dst's output is over the limit. */
static void limit(struct gw_conn *c, struct bufferevent *src, struct bufferevent *dst, bool *paused)
{
    if (evbuffer_get_length(bufferevent_get_output(dst)) >= c->svc->buffer_high) {
        bufferevent_disable(src, EV_READ);
        *paused = true;
    }
}

static void client_read(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state == GW_CONN_FLUSH) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (c->state != GW_CONN_RELAY || c->tunnel_pending)
        return; /* held (bounded by the read watermark) until the backend is ready */
    c->last_io_ms = gw_now_ms();
    struct evbuffer *out = bufferevent_get_output(c->backend);
    size_t before = evbuffer_get_length(in);
    if (c->http != NULL && !c->tunnel) {
        size_t out_before = evbuffer_get_length(out);
        enum gw_http_result r = gw_http_process(c->http, in, out);
        c->bytes_in += before - evbuffer_get_length(in);
        if (evbuffer_get_length(out) > out_before) {
            bool was_waiting = c->awaiting_ms != 0;
            c->awaiting_ms = c->last_io_ms;
            if (!was_waiting)
                gw_conn_arm_timer(c); /* the backend-timeout may be sooner than idle */
        }
        if (r == GW_HTTP_REJECT) {
            snprintf(c->detail, sizeof(c->detail), "%s", gw_http_reason(c->http));
            gw_conn_send_status(c, gw_http_status(c->http));
            return;
        }
        if (r == GW_HTTP_TUNNEL)
            c->tunnel_pending = true; /* the rest waits for the backend's 101 */
    } else {
        evbuffer_add_buffer(out, in);
        c->bytes_in += before;
    }
    limit(c, c->client, c->backend, &c->paused_client);
}

/* HTTP Upgrade: tunnel only once the backend said 101; otherwise relay its answer, then
 * close, and never forward the client's unfiltered bytes. */
static int check_upgrade(struct gw_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    size_t n = len < 13 ? len : 13;
    int ok = gw_http_upgrade_accepted(evbuffer_pullup(in, (ssize_t)n), n);
    if (ok < 0)
        return -1;
    c->tunnel_pending = false;
    if (ok == 1) {
        c->tunnel = true;
        return 1;
    }
    c->tunnel_pending = true; /* stays: client bytes are never forwarded */
    bufferevent_disable(c->client, EV_READ);
    return 0;
}

static void backend_read(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state != GW_CONN_RELAY) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    c->last_io_ms = gw_now_ms();
    c->backend_replied = true;
    c->awaiting_ms = 0;
    bool became_tunnel = false;
    if (c->tunnel_pending && !c->tunnel) {
        int r = check_upgrade(c, in);
        if (r < 0)
            return;
        became_tunnel = r == 1;
    }
    size_t n = evbuffer_get_length(in);
    evbuffer_add_buffer(bufferevent_get_output(c->client), in);
    c->bytes_out += n;
    limit(c, c->backend, c->client, &c->paused_backend);
    if (became_tunnel)
        client_read(c->client, c);
}

static void client_write(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    if (c->state == GW_CONN_FLUSH) {
        if (bev == c->flush_target && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            gw_conn_close(c, c->close_reason);
        return;
    }
    if (c->paused_backend && c->backend != NULL) {
        c->paused_backend = false;
        bufferevent_enable(c->backend, EV_READ);
    }
}

static void backend_write(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    if (c->state == GW_CONN_FLUSH) {
        if (bev == c->flush_target && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            gw_conn_close(c, c->close_reason);
        return;
    }
    if (c->client_eof && !c->backend_shut) {
        half_close_backend(c);
        return;
    }
    if (c->paused_client && !c->client_eof) {
        c->paused_client = false;
        bufferevent_enable(c->client, EV_READ);
    }
}

/* The client finished sending (TLS close_notify or TCP FIN) but may still read: pass the
 * half-close on to a plain backend once everything buffered for it has been written, and
 * keep relaying its answer until it closes (the idle timeout bounds the wait). */
static void half_close_backend(struct gw_conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->backend);
    if (evbuffer_get_length(out) > 0) {
        bufferevent_setwatermark(c->backend, EV_WRITE, 0, 0);
        return;
    }
    c->backend_shut = true;
    if (c->svc->backend_ctx == NULL) {
        (void)shutdown(bufferevent_getfd(c->backend), SHUT_WR);
        return;
    }
    /* TLS backend (and `twoway tunnel`'s target): RFC 8446 §6.1 lets a TLS 1.3 party send
     * close_notify and keep reading, so the half-close is passed on as one. In TLS 1.2 a
     * close_notify ends the whole connection: there the idle timeout bounds the wait. */
    SSL *ssl = bufferevent_openssl_get_ssl(c->backend);
    if (ssl != NULL && SSL_version(ssl) == TLS1_3_VERSION)
        (void)SSL_shutdown(ssl);
    ERR_clear_error();
}

static void client_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct gw_conn *c = arg;
    ERR_clear_error();
    while (bufferevent_get_openssl_error(c->client) != 0)
        ;
    if (c->state != GW_CONN_RELAY || c->backend == NULL) {
        gw_conn_close(c, "client closed");
        return;
    }
    if ((events & BEV_EVENT_EOF) && !(events & BEV_EVENT_ERROR) && !c->tunnel_pending) {
        c->client_eof = true;
        bufferevent_disable(c->client, EV_READ);
        half_close_backend(c);
        return;
    }
    enter_flush(c, c->backend, "client closed");
}

/* A TLS backend (`twoway tunnel`'s target) that refused us with an alert. A TLS 1.3 server
 * checks the client certificate after the client's side of the handshake is over (RFC 8446
 * §4.4.2.4), so its refusal arrives once relaying started and would otherwise read as a plain
 * close: the alert is the only place the reason is. true when one came before any answer. */
static bool backend_refused(struct gw_conn *c)
{
    SSL *ssl = c->svc->backend_ctx != NULL && !c->backend_replied
                   ? bufferevent_openssl_get_ssl(c->backend)
                   : NULL;
    int alert = ssl != NULL ? tlsx_ssl_alert_received(ssl) : -1;
    if (alert < 0)
        return false;
    enum tlsx_reason r = tlsx_reason_from_alert(alert);
    c->reason = (int)(r == TLSX_R_OK ? TLSX_R_OTHER : r);
    c->verdict = "deny";
    snprintf(c->detail, sizeof(c->detail), "backend %s refused us: alert %s (%s)",
             c->svc->cfg->backend.text, SSL_alert_desc_string_long(alert),
             tlsx_reason_text((enum tlsx_reason)c->reason));
    log_warnx("client %s: %s", c->peer_text, c->detail);
    return true;
}

static void backend_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct gw_conn *c = arg;
    ERR_clear_error();
    if (c->svc->backend_ctx != NULL)
        while (bufferevent_get_openssl_error(c->backend) != 0)
            ;
    if (c->state != GW_CONN_RELAY) {
        gw_conn_close(c, "backend closed");
        return;
    }
    bool refused = backend_refused(c);
    if ((events & BEV_EVENT_ERROR) || refused)
        gw_stat_add(&c->w->stats.backend_errors, 1);
    if (c->http != NULL && !c->backend_replied && c->awaiting_ms > 0) {
        gw_conn_backend_failed(c, 502, "backend closed without a response");
        return;
    }
    enter_flush(c, c->client, "backend closed");
}

void gw_relay_attach_client(struct gw_conn *c)
{
    bufferevent_setcb(c->client, client_read, client_write, client_event, c);
    bufferevent_setwatermark(c->client, EV_READ, 0, c->svc->buffer_high);
    bufferevent_setwatermark(c->client, EV_WRITE, c->svc->buffer_low, 0);
}

int gw_relay_proxy_v2(struct gw_conn *c, struct tw_buf *out, struct tw_err *err)
{
    struct gw_pp2_ssl pp;
    struct gw_pp2_strings strs;
    memset(&strs, 0, sizeof(strs));
    TW_GUARD(gw_proxy_v2_ssl_from(c->ssl, c->svc->cfg->proxy_v2_cert, &pp, &strs, err));
    struct sockaddr_storage local;
    socklen_t llen = sizeof(local);
    memset(&local, 0, sizeof(local));
    int fd = c->fd >= 0 ? c->fd : bufferevent_getfd(c->client);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0)
        local.ss_family = AF_UNSPEC;
    int rc = gw_proxy_v2_build(out, (struct sockaddr *)&c->peer, (struct sockaddr *)&local,
                               gw_conn_sni(c), &pp, err);
    OPENSSL_free(strs.der);
    return rc;
}

static int write_proxy_v2(struct gw_conn *c, struct tw_err *err)
{
    struct tw_buf buf;
    tw_buf_init(&buf, GW_PP2_MAX_LEN);
    int rc = gw_relay_proxy_v2(c, &buf, err);
    if (rc == 0)
        bufferevent_write(c->backend, buf.data, buf.len);
    tw_buf_free(&buf);
    return rc;
}

int gw_relay_identity_lines(struct gw_conn *c, struct tw_buf *out, struct tw_err *err)
{
    if (c->svc->fwd_flags == 0)
        return 0;
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    return gw_forward_headers(out, peer, SSL_get_peer_cert_chain(c->ssl), c->svc->fwd_flags, err);
}

void gw_relay_host_rule(const struct gw_conn *c, const char *const **hosts, size_t *n_hosts)
{
    /* Where several services share a listener, Host must name the service the SNI chose: a
     * connection authorised for one service must not be reused for another (421). A service
     * alone on its listener has nothing to be confused with, and checking there would break
     * clients that reach it through `twoway tunnel` or an IP address (Host: 127.0.0.1:7000),
     * as nginx and HAProxy also serve any Host on a single server. */
    *hosts = NULL;
    *n_hosts = 0;
    if (c->listen->nsvcs > 1) {
        *hosts = (const char *const *)c->svc->cfg->server_name;
        *n_hosts = c->svc->cfg->n_server_name;
    }
}

static int make_http(struct gw_conn *c, struct tw_err *err)
{
    const struct gw_service *cfg = c->svc->cfg;
    struct tw_buf hdr;
    tw_buf_init(&hdr, GW_HTTP_MAX_INJECT);
    if (gw_relay_identity_lines(c, &hdr, err) != 0) {
        tw_buf_free(&hdr);
        return -1;
    }
    struct gw_http_params p = {
        .inject = (const char *)hdr.data,
        .inject_len = hdr.len,
        .max_header_bytes = cfg->limits.max_header_bytes,
        .max_headers = cfg->limits.max_headers,
    };
    gw_relay_host_rule(c, &p.hosts, &p.n_hosts);
    c->http = gw_http_new(&p, err);
    tw_buf_free(&hdr);
    return c->http != NULL ? 0 : -1;
}

int gw_relay_start(struct gw_conn *c, struct tw_err *err)
{
    c->state = GW_CONN_RELAY;
    c->last_io_ms = gw_now_ms();
    bufferevent_setcb(c->backend, backend_read, backend_write, backend_event, c);
    bufferevent_setwatermark(c->backend, EV_READ, 0, c->svc->buffer_high);
    bufferevent_setwatermark(c->backend, EV_WRITE, c->svc->buffer_low, 0);
    bufferevent_enable(c->backend, EV_READ | EV_WRITE);
    if (c->svc->cfg->forward == GW_FORWARD_PROXY_V2)
        TW_GUARD(write_proxy_v2(c, err));
    if (c->svc->cfg->mode == GW_MODE_HTTP)
        TW_GUARD(make_http(c, err));
    gw_conn_arm_timer(c);
    if (evbuffer_get_length(bufferevent_get_input(c->client)) > 0)
        client_read(c->client, c);
    return 0;
}
