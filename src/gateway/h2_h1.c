/* backend-protocol = http1 for an HTTP/2 client: each stream is one HTTP/1.1 exchange on a
 * backend connection (RFC 9113 §8.3.1 in reverse). A connection whose exchange ended cleanly
 * with keep-alive goes to the worker's pool (http_pool.h) for the next stream of any client; a
 * pooled connection that the backend closed before answering is replaced once by a fresh one
 * when the request had no body (nothing can have been processed twice). The request head: the
 * request line from :method and :path, Host from :authority, the kept fields, the joined
 * cookie, the identity lines, and a body of unknown length sent chunked (request trailers then
 * become chunked trailers). The
 * response is read by http_resp.h. Backend reads stop while buffer-size response bytes wait
 * for the client's window; request bytes open the client's window only once they were
 * written towards the backend. */
#include "gateway/h2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "gateway/http_pool.h"
#include "gateway/http_resp.h"
#include "util/log.h"

static int connect_fresh(struct gw_h2_stream *s, struct tw_err *err);
static void arm(struct gw_h2_stream *s, int64_t ms);
static void backend_readable(evutil_socket_t fd, short what, void *arg);
static void backend_event(struct bufferevent *bev, short events, void *arg);

/* ---- direct reads ---------------------------------------------------------------------------- */

/* A pooled plaintext connection is read with one recv(2) into the stack, fed straight to the
 * response reader, instead of through its bufferevent: libevent precedes every read with an
 * ioctl(FIONREAD) and reads into an evbuffer chain allocated for it. The bufferevent still
 * writes and owns the socket. Its read interest is dropped only after s->rd's was added, and
 * taken back before s->rd's is removed, so the socket's epoll registration never changes. */
#define DIRECT_READ_BYTES 16384

static int direct_on(struct gw_h2_stream *s)
{
    evutil_socket_t fd = bufferevent_getfd(s->bev);
    struct event_base *base = s->h->c->w->base;
    if (s->rd == NULL)
        s->rd = event_new(base, fd, EV_READ | EV_PERSIST, backend_readable, s);
    else if (event_assign(s->rd, base, fd, EV_READ | EV_PERSIST, backend_readable, s) != 0)
        return -1;
    if (s->rd == NULL || event_add(s->rd, NULL) != 0)
        return -1;
    s->direct = true;
    bufferevent_disable(s->bev, EV_READ);
    return 0;
}

/* Reading goes back to the bufferevent (for the pool, or before it is freed). */
static void direct_off(struct gw_h2_stream *s)
{
    if (!s->direct)
        return;
    s->direct = false;
    bufferevent_enable(s->bev, EV_READ);
    event_del(s->rd);
}

static void reads_pause(struct gw_h2_stream *s, bool pause)
{
    s->paused = pause;
    if (s->direct)
        (void)(pause ? event_del(s->rd) : event_add(s->rd, NULL));
    else
        (void)(pause ? bufferevent_disable(s->bev, EV_READ) : bufferevent_enable(s->bev, EV_READ));
}

static void drop_bev(struct gw_h2_stream *s)
{
    if (s->bev == NULL)
        return;
    direct_off(s);
    bufferevent_free(s->bev);
    s->bev = NULL;
}

/* Response heads of up to this many fields are listed on the stack. */
#define HEAD_ON_STACK 32

static int on_resp_head(void *arg, int status, const struct gw_hdr *f, size_t n)
{
    struct gw_h2_stream *s = arg;
    nghttp2_nv local[HEAD_ON_STACK + 1];
    nghttp2_nv *nv = n < HEAD_ON_STACK ? local : calloc(n + 1, sizeof(*nv));
    if (nv == NULL)
        return -1;
    /* http_resp.h: a final status has three digits (100-999). */
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10)};
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < n; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                                 f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    int rc = gw_h2_stream_respond(s, status, nv, n + 1, false);
    if (nv != local)
        free(nv);
    return rc;
}

static int on_resp_body(void *arg, const uint8_t *data, size_t len)
{
    struct gw_h2_stream *s = arg;
    TW_GUARD(gw_h2_stream_body(s, data, len));
    if (evbuffer_get_length(s->body) >= gw_h2_stream_svc(s)->buffer_high && s->bev != NULL)
        reads_pause(s, true);
    return 0;
}

static int on_resp_trailers(void *arg, const struct gw_hdr *f, size_t n)
{
    struct gw_h2_stream *s = arg;
    for (size_t i = 0; i < n; i++)
        TW_GUARD(gw_nvlist_add(&s->rtrail, f[i].name, f[i].name_len, f[i].value,
                               f[i].value_len));
    return 0;
}

static int on_resp_end(void *arg)
{
    gw_h2_stream_done(arg);
    return 0;
}

static const struct gw_http_resp_cb resp_cb = {
    .head = on_resp_head,
    .body = on_resp_body,
    .trailers = on_resp_trailers,
    .end = on_resp_end,
};

void gw_h2_h1_stop(struct gw_h2_stream *s)
{
    drop_bev(s);
    if (s->timer != NULL && s->up_id == 0)
        evtimer_del(s->timer);
    s->resp = NULL; /* the reader stays with the stream (s->resp_mem) */
}

void gw_h2_h1_drained(struct gw_h2_stream *s)
{
    if (s->paused && s->bev != NULL &&
        evbuffer_get_length(s->body) <= gw_h2_stream_svc(s)->buffer_low)
        reads_pause(s, false);
}

/* ---- the pool ---------------------------------------------------------------------------- */

void gw_h2_h1_pool_add(struct gw_h2 *h, struct bufferevent *bev)
{
    if (h->c->state != GW_CONN_RELAY) {
        bufferevent_free(bev);
        return;
    }
    gw_pool_put(h->c->w, h->c->svc, bev);
}

/* The exchange ended: keep the connection for the next stream when HTTP/1.1 allows it and
 * nothing of this exchange is left on it. */
static void park(struct gw_h2_stream *s)
{
    struct bufferevent *bev = s->bev;
    direct_off(s);
    s->bev = NULL;
    if (gw_http_resp_keep_alive(s->resp) && s->ended &&
        evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
        evbuffer_get_length(bufferevent_get_input(bev)) == 0)
        gw_h2_h1_pool_add(s->h, bev);
    else
        bufferevent_free(bev);
}

/* After a backend callback: the response is complete, or the backend failed. Ends with the
 * pump, which may close the stream (and the connection): s is not used afterwards. */
static void settle(struct gw_h2_stream *s, int status, const char *why)
{
    struct gw_h2 *h = s->h;
    if (why != NULL) {
        gw_stat_add(&h->c->w->stats.backend_errors, 1);
        log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, why);
        gw_h2_h1_stop(s);
        gw_h2_stream_error(s, status, why);
    } else if (s->resp != NULL && gw_http_resp_done(s->resp) && s->bev != NULL) {
        if (s->timer != NULL)
            evtimer_del(s->timer);
        park(s);
    }
    gw_h2_pump(h);
}

static void answered(struct gw_h2_stream *s)
{
    s->h->c->last_io_ms = gw_now_ms();
    if (s->timer != NULL)
        evtimer_del(s->timer); /* the backend answered: the backend-timeout is over */
}

static void backend_read(struct bufferevent *bev, void *arg)
{
    struct gw_h2_stream *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    answered(s);
    size_t n;
    while ((n = evbuffer_get_contiguous_space(in)) > 0) {
        const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
        int rc = p != NULL ? gw_http_resp_feed(s->resp, p, n) : -1;
        evbuffer_drain(in, n);
        if (rc != 0) {
            settle(s, 502, gw_http_resp_reason(s->resp));
            return;
        }
        if (gw_http_resp_done(s->resp))
            break;
    }
    settle(s, 0, NULL);
}

/* Direct reads (see direct_on): what the bufferevent's read and event callbacks would see. */
static void backend_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct gw_h2_stream *s = arg;
    unsigned char buf[DIRECT_READ_BYTES];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        backend_event(s->bev, (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR) | BEV_EVENT_READING, s);
        return;
    }
    answered(s);
    if (gw_http_resp_feed(s->resp, buf, (size_t)n) != 0) {
        settle(s, 502, gw_http_resp_reason(s->resp));
        return;
    }
    settle(s, 0, NULL);
}

/* Request bytes left for the backend: open the client's window for what was written. */
static void backend_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct gw_h2_stream *s = arg;
    if (s->unconsumed == 0)
        return;
    (void)nghttp2_session_consume(s->h->sess, s->id, s->unconsumed);
    s->unconsumed = 0;
    gw_h2_pump(s->h);
}

static void arm(struct gw_h2_stream *s, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void backend_event(struct bufferevent *bev, short events, void *arg)
{
    struct gw_h2_stream *s = arg;
    const struct gw_svc *svc = gw_h2_stream_svc(s);
    if (events & BEV_EVENT_CONNECTED) {
        s->connected = true;
        if (svc->backend_ctx != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        arm(s, svc->backend_ms);
        return;
    }
    ERR_clear_error();
    if (svc->backend_ctx != NULL)
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
    char why[192];
    if (!s->connected) {
        snprintf(why, sizeof(why), "backend %s: %s", svc->cfg->backend.text,
                 (events & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0
                     ? strerror(EVUTIL_SOCKET_ERROR())
                     : "closed the connection");
        settle(s, 502, why);
        return;
    }
    if (s->reused && s->bodyless && !gw_http_resp_started(s->resp)) {
        /* The pooled connection was closed by the backend meanwhile: once more, fresh. */
        struct tw_err err;
        drop_bev(s);
        s->reused = false;
        if (connect_fresh(s, &err) != 0) {
            settle(s, 502, err.msg);
            return;
        }
        return;
    }
    if (gw_http_resp_eof(s->resp) != 0) {
        settle(s, 502,
               gw_http_resp_started(s->resp) ? "backend response cut short"
                                             : "backend closed without a response");
        return;
    }
    settle(s, 0, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_h2_stream *s = arg;
    const struct gw_svc *svc = gw_h2_stream_svc(s);
    char why[192];
    snprintf(why, sizeof(why), "backend %s: no %s within %llds", svc->cfg->backend.text,
             s->connected ? "response" : "connection",
             (long long)((s->connected ? svc->backend_ms : svc->connect_ms) / 1000));
    settle(s, 504, why);
}

static int write_head(struct gw_h2_stream *s, struct evbuffer *out)
{
    const char *authority = s->authority != NULL ? s->authority : s->host;
    struct gw_h2 *h = s->h;
    bool has_cl = false;
    for (size_t i = 0; i < s->fields.n; i++)
        has_cl = has_cl || strcmp((const char *)s->fields.nv[i].name, "content-length") == 0;
    /* auto: a request that waited for the ALPN choice may have ended with its body waiting. */
    s->chunked = !has_cl && (!s->ended || evbuffer_get_length(s->req_body) > 0 ||
                             s->trailers.n > 0); /* trailers need the chunked coding */
    /* The request line and Host as one piece: evbuffer_add_printf costs more than the rest of
     * the head. */
    size_t ml = strlen(s->method), pl = strlen(s->path), al = strlen(authority);
    size_t len = ml + 1 + pl + sizeof(" HTTP/1.1\r\nhost: ") - 1 + al + 2;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1 || v.iov_len < len)
        return -1;
    char *p = v.iov_base;
    memcpy(p, s->method, ml), p += ml, *p++ = ' ';
    memcpy(p, s->path, pl), p += pl;
    memcpy(p, " HTTP/1.1\r\nhost: ", sizeof(" HTTP/1.1\r\nhost: ") - 1);
    p += sizeof(" HTTP/1.1\r\nhost: ") - 1;
    memcpy(p, authority, al), p += al;
    memcpy(p, "\r\n", 2);
    v.iov_len = len;
    TW_GUARD(evbuffer_commit_space(out, &v, 1));
    for (size_t i = 0; i < s->fields.n; i++) {
        const nghttp2_nv *nv = &s->fields.nv[i];
        if (evbuffer_add(out, nv->name, nv->namelen) != 0 || evbuffer_add(out, ": ", 2) != 0 ||
            evbuffer_add(out, nv->value, nv->valuelen) != 0 || evbuffer_add(out, "\r\n", 2) != 0)
            return -1;
    }
    size_t cookie = evbuffer_get_length(s->cookie);
    if (cookie > 0 && (evbuffer_add(out, "cookie: ", 8) != 0 ||
                       evbuffer_add(out, evbuffer_pullup(s->cookie, -1), cookie) != 0 ||
                       evbuffer_add(out, "\r\n", 2) != 0))
        return -1;
    if ((h->inject_len > 0 && evbuffer_add(out, h->inject, h->inject_len) != 0) ||
        (s->chunked && evbuffer_add(out, "transfer-encoding: chunked\r\n", 28) != 0) ||
        evbuffer_add(out, "\r\n", 2) != 0)
        return -1;
    return 0;
}

/* Write what the output holds straight to the socket. A socket bufferevent keeps the start of
 * its output frozen (only its own write callback drains it), so it is thawed around the write,
 * as that callback does. */
static void write_now(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evbuffer_unfreeze(out, 1);
    (void)evbuffer_write(out, bufferevent_getfd(bev));
    evbuffer_freeze(out, 1);
}

static void attach(struct gw_h2_stream *s)
{
    const struct gw_svc *svc = gw_h2_stream_svc(s);
    bufferevent_setcb(s->bev, backend_read, backend_write, backend_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, svc->buffer_high);
    bufferevent_setwatermark(s->bev, EV_WRITE, svc->buffer_low, 0);
}

static int connect_fresh(struct gw_h2_stream *s, struct tw_err *err)
{
    struct gw_conn *c = s->h->c;
    const struct gw_svc *svc = c->svc;
    s->connected = false;
    s->bev = gw_conn_backend_new(c, err);
    if (s->bev == NULL)
        return -1;
    attach(s);
    if (write_head(s, bufferevent_get_output(s->bev)) != 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&svc->backend_addr,
                                   (int)svc->backend_len) != 0)
        return tw_err_set(err, TW_ERR_IO, "backend %s: %s", svc->cfg->backend.text,
                          strerror(EVUTIL_SOCKET_ERROR()));
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    arm(s, svc->connect_ms);
    return 0;
}

int gw_h2_h1_start(struct gw_h2_stream *s, const char *authority, struct tw_err *err)
{
    (void)authority; /* write_head reads it from the stream (a retry writes the head again) */
    struct gw_h2 *h = s->h;
    bool head = strcmp(s->method, "HEAD") == 0;
    if (s->resp_mem != NULL)
        gw_http_resp_reset(s->resp_mem, &resp_cb, s, head);
    else if ((s->resp_mem = gw_http_resp_new(&resp_cb, s, head, err)) == NULL)
        return -1;
    s->resp = s->resp_mem;
    if (gw_h2_stream_timer(s, on_timer) == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    s->bodyless = s->ended && evbuffer_get_length(s->req_body) == 0 && s->trailers.n == 0;
    s->bev = gw_pool_take(h->c->w, h->c->svc);
    if (s->bev == NULL)
        return connect_fresh(s, err);
    s->reused = true;
    s->connected = true;
    attach(s);
    bool plain = h->c->svc->backend_ctx == NULL;
    if (plain && direct_on(s) != 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    /* A bodyless request on a plaintext connection is written at once, which nearly always
     * takes it whole: no write interest is registered and removed around it (two epoll_ctl
     * calls per request, the largest share of the gateway's time on this path). What the
     * socket did not take, or an error, goes the ordinary way through the write event. */
    bool write_direct = s->bodyless && plain;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (write_direct)
        bufferevent_disable(s->bev, EV_WRITE);
    if (write_head(s, out) != 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    if (write_direct)
        write_now(s->bev);
    short want = (short)((s->direct ? 0 : EV_READ) |
                         (write_direct && evbuffer_get_length(out) == 0 ? 0 : EV_WRITE));
    if (want != 0)
        bufferevent_enable(s->bev, want);
    arm(s, gw_h2_stream_svc(s)->backend_ms);
    return 0;
}

void gw_h2_h1_data(struct gw_h2_stream *s, const uint8_t *data, size_t len)
{
    nghttp2_session *sess = s->h->sess;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if ((s->chunked && evbuffer_add_printf(out, "%zx\r\n", len) < 0) ||
        evbuffer_add(out, data, len) != 0 || (s->chunked && evbuffer_add(out, "\r\n", 2) != 0)) {
        (void)nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* The client may send more only once this reached the backend's socket buffer. */
    if (evbuffer_get_length(out) < gw_h2_stream_svc(s)->buffer_high)
        (void)nghttp2_session_consume(sess, s->id, len);
    else
        s->unconsumed += len;
}

void gw_h2_h1_end(struct gw_h2_stream *s)
{
    if (!s->chunked)
        return;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    int rc = evbuffer_add(out, "0\r\n", 3);
    for (size_t i = 0; rc == 0 && i < s->trailers.n; i++) {
        const nghttp2_nv *nv = &s->trailers.nv[i];
        rc = evbuffer_add_printf(out, "%s: %s\r\n", nv->name, nv->value) < 0 ? -1 : 0;
    }
    if (rc != 0 || evbuffer_add(out, "\r\n", 2) != 0)
        (void)nghttp2_submit_rst_stream(s->h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
}

int gw_h2_h1_adopt(struct gw_h2_stream *s, struct tw_err *err)
{
    /* The timer was the HTTP/2 side's: gw_h2_h1_start sets and arms it for its own. */
    TW_GUARD(gw_h2_h1_start(s, NULL, err));
    size_t n;
    while (s->bev != NULL && (n = evbuffer_get_contiguous_space(s->req_body)) > 0) {
        gw_h2_h1_data(s, evbuffer_pullup(s->req_body, (ev_ssize_t)n), n);
        evbuffer_drain(s->req_body, n);
    }
    if (s->ended && s->bev != NULL)
        gw_h2_h1_end(s);
    return 0;
}
