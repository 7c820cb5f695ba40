/* Connection lifecycle: accept -> TLS handshake (timeout) -> peer check against the
 * connection's generation (chain, validity, EKU, CRLs, policy; resumed sessions too) -> only
 * then the backend connect -> relay (relay.c) -> close. A connection is freed in exactly one
 * place, gw_conn_close, which every path ends in; callers return right after it. */
#include "gateway/internal.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "gateway/revocation.h"
#include "util/buf.h"
#include "util/log.h"

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_handshake_event(struct bufferevent *bev, short events, void *arg);

int64_t gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Count c against its service's max-connections. -1 when over the limit. */
static int take_slot(struct gw_conn *c, struct gw_svc *s)
{
    int n = atomic_fetch_add_explicit(&s->slot->active, 1, memory_order_relaxed) + 1;
    c->counted_svc = s->slot;
    if (s->cfg->max_connections > 0 && (uint32_t)n > s->cfg->max_connections)
        return -1;
    return 0;
}

static void refuse(struct gw_conn *c, const char *what)
{
    gw_stat_add(&c->w->stats.handshakes[GW_R_LIMIT], 1);
    c->reason = GW_R_LIMIT;
    c->verdict = "refused";
    snprintf(c->detail, sizeof(c->detail), "%s reached", what);
    gw_conn_close(c, "max-connections");
}

/* `twoway tunnel` (issue 5): a plaintext listener; the backend is the mTLS target, so the
 * connection goes straight to connecting it. */
static void accept_plaintext(struct gw_conn *c, const struct gw_listen *l)
{
    c->client = bufferevent_socket_new(c->w->base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(c->w->base, on_timer, c);
    if (c->client == NULL || c->timer == NULL) {
        gw_conn_close(c, "bufferevent failed");
        return;
    }
    c->fd = -1; /* owned by the bufferevent now */
    bufferevent_setwatermark(c->client, EV_READ, 0, l->svcs[0]->buffer_high);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    c->svc = l->svcs[0];
    c->reason = TLSX_R_OK;
    c->verdict = "allow";
    gw_conn_connect_backend(c);
}

void gw_conn_accept(struct gw_worker *w, const struct gw_listen *l, int fd,
                    const struct sockaddr *sa, socklen_t salen)
{
    struct gw_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    struct gw_server *srv = w->srv;
    c->w = w;
    c->gen = gw_gen_ref(w->gen);
    c->listen = l;
    c->fd = fd;
    c->state = GW_CONN_HANDSHAKE;
    c->reason = -1;
    c->verdict = "error";
    c->started_ms = c->last_io_ms = gw_now_ms();
    if (salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, salen);
        c->peer_len = salen;
    }
    gw_addr_text(sa, salen, c->peer_text, sizeof(c->peer_text));
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atomic_fetch_add_explicit(&w->stats.active, 1, memory_order_relaxed);
    gw_stat_add(&w->stats.connections, 1);
    int total = atomic_fetch_add_explicit(&srv->active, 1, memory_order_relaxed) + 1;
    uint32_t max = c->gen->cfg->global.max_connections;
    if (max > 0 && (uint32_t)total > max) {
        refuse(c, "global max-connections");
        return;
    }
    if (l->nsvcs == 1 && take_slot(c, l->svcs[0]) != 0) {
        refuse(c, "service max-connections");
        return;
    }
    int one = 1;
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (l->ctx == NULL) {
        accept_plaintext(c, l);
        return;
    }
    struct tw_err err;
    SSL *ssl = SSL_new(l->ctx);
    if (ssl == NULL || tlsx_ssl_watch_alerts(ssl, &err) != 0) {
        SSL_free(ssl);
        ERR_clear_error();
        gw_conn_close(c, "SSL_new failed");
        return;
    }
    /* The connection owns the SSL and the socket, not the bufferevent: the fast relay
     * (relay_fast.c) frees the bufferevent after the handshake and keeps both. */
    c->ssl = ssl;
    c->client = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
    if (c->client == NULL) {
        gw_conn_close(c, "bufferevent failed");
        return;
    }
    /* Idle connections keep no TLS record buffers (memory per idle connection). */
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    bufferevent_openssl_set_allow_dirty_shutdown(c->client, 1);
    bufferevent_setwatermark(c->client, EV_READ, 0, l->svcs[0]->buffer_high);
    bufferevent_setcb(c->client, NULL, NULL, on_handshake_event, c);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    c->timer = evtimer_new(w->base, on_timer, c);
    if (c->timer == NULL) {
        gw_conn_close(c, "timer failed");
        return;
    }
    c->deadline_ms = c->started_ms + l->svcs[0]->handshake_ms;
    gw_conn_arm_timer(c);
}

/* libevent's OpenSSL bufferevent drains the thread's error queue into its own list; put the
 * errors back so tlsx_handshake_reason can read them. */
static void reraise_bev_errors(struct bufferevent *bev)
{
    unsigned long e;
    while ((e = bufferevent_get_openssl_error(bev)) != 0) {
        ERR_new();
        ERR_set_error(ERR_GET_LIB(e), ERR_GET_REASON(e), NULL);
    }
}

static bool is_verdict(int reason)
{
    switch (reason) {
    case TLSX_R_NO_CERT:
    case TLSX_R_EXPIRED:
    case TLSX_R_NOT_YET_VALID:
    case TLSX_R_UNKNOWN_CA:
    case TLSX_R_MISSING_INTERMEDIATE:
    case TLSX_R_REVOKED:
    case TLSX_R_WRONG_EKU:
    case TLSX_R_POLICY:
    case TLSX_R_BAD_SIGNATURE:
    case TLSX_R_CRL_MISSING:
    case TLSX_R_CRL_EXPIRED:
        return true;
    default:
        return false;
    }
}

static void handshake_failed(struct gw_conn *c, short events)
{
    reraise_bev_errors(c->client);
    char detail[160];
    enum tlsx_reason r = tlsx_handshake_reason(c->ssl, detail, sizeof(detail));
    ERR_clear_error();
    if (r == TLSX_R_OK || r == TLSX_R_OTHER) {
        if ((events & BEV_EVENT_EOF) && !(events & BEV_EVENT_ERROR))
            r = TLSX_R_CLOSED;
        else if (r == TLSX_R_OK)
            r = TLSX_R_OTHER;
    }
    c->reason = (int)r;
    c->verdict = is_verdict(r) ? "deny" : "error";
    snprintf(c->detail, sizeof(c->detail), "%s", detail);
    gw_stat_add(&c->w->stats.handshakes[r], 1);
    /* A bare connect-and-close (TCP health checks, port scans) is only worth a debug line. */
    if (r == TLSX_R_CLOSED)
        log_debug("handshake from %s: closed before completing it", c->peer_text);
    else
        log_info("handshake from %s refused: %s%s%s", c->peer_text, tlsx_reason_text(r),
                 detail[0] != '\0' ? " - " : "", detail);
    gw_conn_close(c, "handshake failed");
}

static void handshake_done(struct gw_conn *c)
{
    c->resumed = SSL_session_reused(c->ssl) == 1;
    c->svc = gw_listen_svc_for_ctx(c->listen, SSL_get_SSL_CTX(c->ssl));
    if (c->counted_svc == NULL && take_slot(c, c->svc) != 0) {
        refuse(c, "service max-connections");
        return;
    }
    struct tlsx_peer_rules rules = {.crls = c->svc->crls, .policy = c->svc->policy};
    struct tlsx_peer_result res;
    struct tw_err err;
    if (tlsx_peer_check(c->ssl, &rules, &res, &c->id, &err) != 0) {
        ERR_clear_error();
        c->reason = (int)res.reason;
        c->verdict = "deny";
        snprintf(c->detail, sizeof(c->detail), "%s", res.detail);
        gw_stat_add(
            &c->w->stats.handshakes[(int)res.reason < GW_R_COUNT ? (int)res.reason : TLSX_R_OTHER],
            1);
        log_info("client %s refused%s: %s%s%s", c->peer_text, c->resumed ? " (resumed)" : "",
                 tlsx_reason_text(res.reason), res.detail[0] != '\0' ? " - " : "", res.detail);
        gw_conn_close(c, "peer check failed");
        return;
    }
    /* Memory per idle connection (issue 6): nothing reads the identity's DER copy after the
     * check (forwarded headers and PROXY v2 encode the peer certificate themselves). */
    if (c->id != NULL) {
        OPENSSL_free(c->id->der);
        c->id->der = NULL;
        c->id->der_len = 0;
    }
    /* ocsp = on: < 0 refused and closed; > 0 waiting for an answer (gw_ocsp_worker_wake
     * admits or closes it later). */
    if (gw_ocsp_gate(c) != 0)
        return;
    gw_conn_admit(c);
}

const char *gw_conn_sni(const struct gw_conn *c)
{
    /* svc is set once the handshake finished; the SSL keeps the name until it is freed. */
    if (c->ssl == NULL || c->svc == NULL)
        return NULL;
    return SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name);
}

void gw_conn_admit(struct gw_conn *c)
{
    gw_stat_add(&c->w->stats.handshakes[TLSX_R_OK], 1);
    if (c->resumed)
        gw_stat_add(&c->w->stats.resumed, 1);
    c->reason = TLSX_R_OK;
    c->verdict = "allow";
    /* Kept by the SSL session for the connection's life: the revocation sweep reads its
     * issuer and serial without copying or decoding anything. */
    c->peer_cert = SSL_get0_peer_certificate(c->ssl);
    /* RFC 9113 §3.2: ALPN "h2" means HTTP/2 from the first byte; each stream gets its own
     * backend exchange (h2_session.c) instead of the connection's one relay. */
    if (c->svc->cfg->mode == GW_MODE_HTTP && gw_alpn_is_h2(c->ssl)) {
        struct tw_err err;
        if (gw_h2_start(c, &err) != 0) {
            snprintf(c->detail, sizeof(c->detail), "%.180s", err.msg);
            gw_conn_close(c, "http/2 setup failed");
        }
        return;
    }
    gw_conn_connect_backend(c);
}

static void on_handshake_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct gw_conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        handshake_done(c);
        return;
    }
    handshake_failed(c, events);
}

/* Why a backend connect failed, in words. */
static void backend_error_text(struct gw_conn *c, short events, char *out, size_t cap)
{
    SSL *bssl = c->svc->backend_ctx != NULL ? bufferevent_openssl_get_ssl(c->backend) : NULL;
    if (bssl != NULL) {
        long v = SSL_get_verify_result(bssl);
        if (v != X509_V_OK) {
            snprintf(out, cap, "backend certificate rejected: %s",
                     X509_verify_cert_error_string(v));
            return;
        }
        unsigned long e = bufferevent_get_openssl_error(c->backend);
        if (e != 0) {
            /* A refused or reset connect surfaces as a system error inside OpenSSL's queue. */
            const char *why =
                ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
            while (bufferevent_get_openssl_error(c->backend) != 0)
                ;
            if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                snprintf(out, cap,
                         "backend %s closed the connection during the TLS handshake "
                         "(is it a TLS server?)",
                         c->svc->cfg->backend.text);
                return;
            }
            if (why != NULL) {
                snprintf(out, cap, "backend %s: TLS failed: %s", c->svc->cfg->backend.text, why);
                return;
            }
        }
    }
    int e = EVUTIL_SOCKET_ERROR();
    if ((events & BEV_EVENT_ERROR) && e != 0)
        snprintf(out, cap, "backend %s: %s", c->svc->cfg->backend.text, strerror(e));
    else
        snprintf(out, cap, "backend %s closed the connection%s", c->svc->cfg->backend.text,
                 bssl != NULL ? " before TLS was set up (is it listening?)" : "");
}

/* Backend unreachable / timed out: 502 / 504 in HTTP mode, else just close. */
void gw_conn_backend_failed(struct gw_conn *c, int status, const char *why)
{
    gw_stat_add(&c->w->stats.backend_errors, 1);
    c->verdict = "error";
    c->reason = GW_R_BACKEND;
    tw_str_copy(c->detail, sizeof(c->detail), why);
    log_warnx("client %s: %s", c->peer_text, why);
    if (c->svc->cfg->mode == GW_MODE_HTTP && !c->backend_replied) {
        gw_conn_send_status(c, status);
        return;
    }
    gw_conn_close(c, "backend error");
}

static void on_backend_connect_event(struct bufferevent *bev, short events, void *arg)
{
    struct gw_conn *c = arg;
    if (events & BEV_EVENT_CONNECTED) {
        if (c->svc->backend_ctx != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        struct tw_err err;
        if (gw_relay_start(c, &err) != 0) {
            tw_str_copy(c->detail, sizeof(c->detail), err.msg);
            gw_conn_close(c, "relay setup failed");
        }
        return;
    }
    char why[192];
    backend_error_text(c, events, why, sizeof(why));
    ERR_clear_error();
    gw_conn_backend_failed(c, 502, why);
}

struct bufferevent *gw_conn_backend_new(struct gw_conn *c, struct tw_err *err)
{
    struct gw_svc *s = c->svc;
    struct event_base *base = c->w->base;
    if (s->backend_ctx == NULL)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    SSL *ssl = SSL_new(s->backend_ctx);
    if (ssl == NULL) {
        tw_err_ossl(err, TW_ERR_TLS, "backend SSL_new");
        return NULL;
    }
    if (tlsx_client_ssl_setup(ssl, s->backend_host, err) != 0 ||
        tlsx_ssl_watch_alerts(ssl, err) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        tw_err_set(err, TW_ERR_INTERNAL, "backend bufferevent failed");
        return NULL;
    }
    /* Dirty shutdowns are allowed once connected (on_backend_connect_event): before that,
     * libevent would report a refused connect as a plain EOF and its errno would be lost. */
    return bev;
}

void gw_conn_connect_backend(struct gw_conn *c)
{
    struct gw_svc *s = c->svc;
    c->state = GW_CONN_CONNECTING;
    c->deadline_ms = gw_now_ms() + s->connect_ms;
    gw_relay_attach_client(c);
    gw_conn_arm_timer(c);
    struct tw_err err;
    tw_err_clear(&err);
    if (gw_fast_eligible(c)) {
        if (gw_fast_connect(c, &err) != 0)
            gw_conn_backend_failed(c, 502, err.msg);
        return;
    }
    c->backend = gw_conn_backend_new(c, &err);
    if (c->backend == NULL) {
        ERR_clear_error();
        gw_conn_backend_failed(c, 502, err.msg);
        return;
    }
    if (bufferevent_socket_connect(c->backend, (struct sockaddr *)&s->backend_addr,
                                   (int)s->backend_len) != 0) {
        char why[192];
        snprintf(why, sizeof(why), "backend %s: %s", s->cfg->backend.text,
                 strerror(EVUTIL_SOCKET_ERROR()));
        ERR_clear_error();
        gw_conn_backend_failed(c, 502, why);
        return;
    }
    bufferevent_setcb(c->backend, NULL, NULL, on_backend_connect_event, c);
}

void gw_conn_arm_timer(struct gw_conn *c)
{
    int64_t now = gw_now_ms();
    int64_t at = c->deadline_ms;
    if (c->state == GW_CONN_RELAY) {
        at = c->last_io_ms + c->svc->idle_ms;
        if (c->svc->lifetime_ms > 0 && c->started_ms + c->svc->lifetime_ms < at)
            at = c->started_ms + c->svc->lifetime_ms;
        if (c->awaiting_ms > 0 && c->awaiting_ms + c->svc->backend_ms < at)
            at = c->awaiting_ms + c->svc->backend_ms;
        int64_t quiet = gw_fast_quiet_at(c);
        if (quiet < at)
            at = quiet;
    }
    int64_t left = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 + 1000};
    evtimer_add(c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_conn *c = arg;
    int64_t now = gw_now_ms();
    switch (c->state) {
    case GW_CONN_HANDSHAKE:
        c->reason = GW_R_TIMEOUT;
        c->verdict = "error";
        snprintf(c->detail, sizeof(c->detail), "no complete handshake within %llds",
                 (long long)(c->listen->svcs[0]->handshake_ms / 1000));
        gw_stat_add(&c->w->stats.handshakes[GW_R_TIMEOUT], 1);
        log_info("handshake from %s timed out", c->peer_text);
        gw_conn_close(c, "handshake timeout");
        return;
    case GW_CONN_CONNECTING: {
        char why[192];
        snprintf(why, sizeof(why), "backend %s: no connection within %llds",
                 c->svc->cfg->backend.text, (long long)(c->svc->connect_ms / 1000));
        gw_conn_backend_failed(c, 504, why);
        return;
    }
    case GW_CONN_FLUSH:
        gw_conn_close(c, c->close_reason != NULL ? c->close_reason : "flush timeout");
        return;
    case GW_CONN_LINGER: /* its timer is freed on entry; the linger keeps time */
        return;
    case GW_CONN_RELAY:
        break;
    }
    gw_fast_tick(c, now);
    if (c->svc->lifetime_ms > 0 && now >= c->started_ms + c->svc->lifetime_ms) {
        gw_conn_close(c, "max lifetime");
        return;
    }
    if (c->awaiting_ms > 0 && now >= c->awaiting_ms + c->svc->backend_ms) {
        char why[192];
        snprintf(why, sizeof(why), "backend %s: no response within %llds",
                 c->svc->cfg->backend.text, (long long)(c->svc->backend_ms / 1000));
        gw_conn_backend_failed(c, 504, why);
        return;
    }
    if (now >= c->last_io_ms + c->svc->idle_ms) {
        gw_conn_close(c, "idle timeout");
        return;
    }
    gw_conn_arm_timer(c);
}

static void send_close_notify(struct gw_conn *c)
{
    if (c->ssl == NULL || c->state < GW_CONN_RELAY || !SSL_is_init_finished(c->ssl))
        return;
    if (c->client != NULL ? evbuffer_get_length(bufferevent_get_output(c->client)) != 0
                          : gw_fast_client_pending(c))
        return;
    if (!(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
        (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

/* Whether c ends with a lingering close: a TLS client refused before it was admitted, whose
 * alert may be in flight behind bytes the client is still sending (its Finished, its first
 * request); or an admitted client we close after writing our last words to it (an HTTP/2
 * GOAWAY ending the connection's stream budget, a canned HTTP answer) while it may still be
 * sending new streams or requests. Not a max-connections refusal (nothing was sent; lingering
 * would only hold the slot longer), nor a client that closed first, nor a close for another
 * reason (reason -1: drain timeout, shutdown). */
static bool wants_linger(const struct gw_conn *c)
{
    if (c->ssl == NULL || c->fd < 0)
        return false;
    if (c->state == GW_CONN_FLUSH)
        return c->flush_target == c->client && !c->client_eof;
    return c->state == GW_CONN_HANDSHAKE && c->reason >= 0 && c->reason != TLSX_R_OK &&
           c->reason != TLSX_R_CLOSED && c->reason != GW_R_LIMIT;
}

/* Everything but the socket, the counts and the list entry. */
static void release(struct gw_conn *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    c->timer = NULL;
    gw_fast_free(c);
    if (c->backend != NULL)
        bufferevent_free(c->backend);
    c->backend = NULL;
    if (c->client != NULL)
        bufferevent_free(c->client); /* TLS: neither the SSL nor the socket (not CLOSE_ON_FREE) */
    c->client = NULL;
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->peer_cert = NULL;
    ERR_clear_error();
    gw_h2_free(c->h2);
    c->h2 = NULL;
    gw_http_free(c->http);
    c->http = NULL;
    tlsx_identity_free(c->id);
    c->id = NULL;
}

static void conn_free(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    gw_stat_add(&w->stats.bytes_in, c->bytes_in);
    gw_stat_add(&w->stats.bytes_out, c->bytes_out);
    atomic_fetch_sub_explicit(&w->stats.active, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->srv->active, 1, memory_order_relaxed);
    if (c->counted_svc != NULL)
        atomic_fetch_sub_explicit(&c->counted_svc->active, 1, memory_order_relaxed);
    tw_linger_abort(c->linger);
    if (c->fd >= 0)
        close(c->fd);
    gw_gen_unref(c->gen);
    free(c);
    if (w->draining && w->nconns == 0)
        event_base_loopbreak(w->base);
}

static void on_lingered(void *arg)
{
    struct gw_conn *c = arg;
    c->linger = NULL; /* it closed the socket and freed itself */
    conn_free(c);
}

void gw_conn_close(struct gw_conn *c, const char *why)
{
    if (c->state == GW_CONN_LINGER) {
        conn_free(c); /* logged already; the linger ends now */
        return;
    }
    send_close_notify(c);
    /* OpenSSL evicts the session of an SSL freed without a sent close_notify; an admitted
     * connection's session stays resumable (re-checked at every resumption anyway). */
    if (c->ssl != NULL && c->peer_cert != NULL && c->reason == TLSX_R_OK)
        SSL_set_shutdown(c->ssl, SSL_get_shutdown(c->ssl) | SSL_SENT_SHUTDOWN);
    gw_access_log(c, why);
    bool linger = wants_linger(c);
    release(c);
    /* OpenSSL wrote the alert to the socket when it failed the handshake: what lingering
     * adds is that no RST overtakes it (util/linger.h). */
    if (linger) {
        c->linger = tw_linger_start(&c->w->lingers, c->w->base, c->fd, on_lingered, c);
        if (c->linger != NULL) {
            c->fd = -1;
            c->state = GW_CONN_LINGER;
            return;
        }
    }
    conn_free(c);
}
