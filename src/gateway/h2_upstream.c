/* backend-protocol = h2 (or auto): one HTTP/2 connection to the backend per client
 * connection, made when the first stream needs it (prior-knowledge h2c on a plaintext
 * backend, ALPN "h2" on a tls:// one); each client stream becomes one backend stream. What gRPC needs end to end:
 *   - the request's fields, identity lines and "te: trailers" go through as a header list,
 *     and the request's trailers after its body;
 *   - response trailers (grpc-status) and trailers-only responses come back as sent;
 *   - streaming both ways with flow control end to end: a client's request bytes open its
 *     window only once the backend's window took them, and the backend's response bytes open
 *     the backend's window only once they left for the client (nothing is buffered beyond the
 *     two windows);
 *   - a reset crosses both ways (a cancelled call cancels the backend stream; a backend reset
 *     resets the client's stream with the same code).
 * If the backend connection fails, its streams get 502 (or a reset, once their response has
 * begun); the next stream opens a new connection.
 * backend-protocol = auto on a tls:// backend offers "h2,http/1.1" by ALPN and holds the streams
 * (their request bytes wait in req_body, inside the client's window) until the handshake says
 * which one the backend chose: h2 submits them here, http/1.1 hands each to h2_h1.c. The choice
 * is remembered for the service, so that while the backend keeps choosing http/1.1 the later
 * client connections go straight to HTTP/1.1. */
#include "gateway/h2.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "util/log.h"

struct gw_h2_up {
    struct gw_h2 *h;
    struct bufferevent *bev;
    nghttp2_session *sess;
    bool connected;
    bool in_send;
    bool probing; /* auto: the streams wait for the ALPN choice */
    const char *fatal;
};

enum { GW_UP_ALPN_UNKNOWN = 0, GW_UP_ALPN_H2 = 1, GW_UP_ALPN_HTTP11 = 2 };

static int submit(struct gw_h2_stream *s, struct tw_err *err);
static void on_timer(evutil_socket_t fd, short what, void *arg);

static struct gw_h2_stream *stream_of(nghttp2_session *sess, int32_t id)
{
    return nghttp2_session_get_stream_user_data(sess, id);
}

/* ---- nghttp2 client-session callbacks ------------------------------------------------------- */

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct gw_h2_stream *s = stream_of(sess, frame->hd.stream_id);
    if (s == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gw_nvlist *to = frame->headers.cat == NGHTTP2_HCAT_HEADERS && s->submitted
                               ? &s->rtrail
                               : &s->up_head;
    if (gw_nvlist_add(to, (const char *)name, nlen, (const char *)value, vlen) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    struct gw_h2_stream *s = stream_of(sess, frame->hd.stream_id);
    if (s == NULL || (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA))
        return 0;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && !s->submitted) {
        /* nghttp2 validated the head: :status comes first. 1xx is interim: skipped. */
        struct gw_nvlist *l = &s->up_head;
        int status = 0;
        for (size_t i = 0; l->n > 0 && i < l->nv[0].valuelen && i < 3; i++)
            status = status * 10 + (l->nv[0].value[i] - '0'); /* nghttp2 checked: 3 digits */
        if (status >= 100 && status < 200) {
            gw_nvlist_clear(l);
            return 0;
        }
        if (s->timer != NULL)
            evtimer_del(s->timer);
        if (gw_h2_stream_respond(s, status, l->nv, l->n, end) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
    }
    if (end)
        gw_h2_stream_done(s);
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct gw_h2_stream *s = stream_of(sess, id);
    if (s == NULL) {
        (void)nghttp2_session_consume(sess, id, len);
        return 0;
    }
    s->up_owed += len;
    if (gw_h2_stream_body(s, data, len) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *ud)
{
    (void)ud;
    struct gw_h2_stream *s = stream_of(sess, id);
    if (s == NULL)
        return 0;
    s->up_id = 0;
    if (error_code == NGHTTP2_NO_ERROR && s->resp_end)
        return 0;
    if (!s->submitted) {
        gw_h2_stream_error(s, 502,
                           error_code == NGHTTP2_REFUSED_STREAM ? "backend refused the stream"
                                                                : "backend reset the stream");
        return 0;
    }
    /* The response had begun: pass the backend's reset on, code and all. */
    s->detail = "backend reset the stream";
    (void)nghttp2_submit_rst_stream(s->h->sess, NGHTTP2_FLAG_NONE, s->id,
                                    error_code != NGHTTP2_NO_ERROR ? error_code
                                                                   : NGHTTP2_INTERNAL_ERROR);
    return 0;
}

/* The request body, from the stream's buffer into the backend's window. */
static ssize_t read_request(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src;
    (void)ud;
    struct gw_h2_stream *s = stream_of(sess, id);
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = evbuffer_get_length(s->req_body);
    if (n > len)
        n = len;
    if (n > 0 && evbuffer_remove(s->req_body, buf, n) != (int)n)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (n > 0)
        (void)nghttp2_session_consume(s->h->sess, s->id, n);
    if (s->ended && evbuffer_get_length(s->req_body) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        /* The client's trailers end the backend stream in a HEADERS frame of their own. */
        if (s->trailers.n > 0 &&
            nghttp2_submit_trailer(sess, id, s->trailers.nv, s->trailers.n) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return (ssize_t)n;
    }
    if (n == 0) {
        s->up_deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* ---- the backend connection ----------------------------------------------------------------- */

/* Every stream on this connection fails (502 or reset); the connection is freed. */
static void retire(struct gw_h2_up *up, const char *why)
{
    struct gw_h2 *h = up->h;
    bool any = false;
    for (struct gw_h2_stream *s = h->streams; s != NULL; s = s->next) {
        if (s->up_id == 0 && !s->up_wait)
            continue;
        any = true;
        s->up_id = 0;
        s->up_wait = false;
        gw_h2_stream_error(s, 502, why);
    }
    if (any) {
        gw_stat_add(&h->c->w->stats.backend_errors, 1);
        log_warnx("client %s: %s", h->c->peer_text, why);
    }
    h->up = NULL;
    gw_h2_up_free(up);
}

void gw_h2_up_pump(struct gw_h2 *h)
{
    struct gw_h2_up *up = h->up;
    if (up == NULL || up->in_send || up->probing) /* auto: not a byte before the choice */
        return;
    up->in_send = true;
    struct evbuffer *out = bufferevent_get_output(up->bev);
    while (up->fatal == NULL && evbuffer_get_length(out) < h->c->svc->buffer_high) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(up->sess, &data);
        if (n < 0)
            up->fatal = nghttp2_strerror((int)n);
        else if (n == 0 || evbuffer_add(out, data, (size_t)n) != 0)
            break;
    }
    up->in_send = false;
    if (up->fatal != NULL)
        retire(up, up->fatal);
    else if (!nghttp2_session_want_read(up->sess) && !nghttp2_session_want_write(up->sess))
        retire(up, "backend ended the http/2 connection");
}

static void up_read(struct bufferevent *bev, void *arg)
{
    struct gw_h2_up *up = arg;
    struct gw_h2 *h = up->h;
    struct evbuffer *in = bufferevent_get_input(bev);
    h->c->last_io_ms = gw_now_ms();
    size_t n;
    while (up->fatal == NULL && (n = evbuffer_get_contiguous_space(in)) > 0) {
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        ssize_t got = p != NULL ? nghttp2_session_mem_recv(up->sess, p, n) : NGHTTP2_ERR_NOMEM;
        if (got < 0) {
            up->fatal = nghttp2_strerror((int)got);
            break;
        }
        evbuffer_drain(in, (size_t)got);
    }
    if (up->fatal != NULL) {
        char why[160];
        snprintf(why, sizeof(why), "backend http/2: %s", up->fatal);
        retire(up, why);
    } else {
        gw_h2_up_pump(h);
    }
    gw_h2_pump(h); /* responses and resets for the client */
}

static void up_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct gw_h2_up *up = arg;
    gw_h2_up_pump(up->h);
}

/* backend-protocol = auto: the handshake says what the backend chose; the waiting streams go
 * that way. */
static void decided(struct gw_h2_up *up, bool h2)
{
    struct gw_h2 *h = up->h;
    struct gw_svc *svc = (struct gw_svc *)h->c->svc; /* the shared verdict is atomic */
    atomic_store(&svc->backend_alpn, h2 ? GW_UP_ALPN_H2 : GW_UP_ALPN_HTTP11);
    up->probing = false;
    if (!h2) {
        /* A TLS connection that speaks HTTP/1.1 already: the first waiting stream's. */
        gw_h2_h1_pool_add(h, up->bev);
        up->bev = NULL;
        h->up = NULL;
        gw_h2_up_free(up);
    }
    for (struct gw_h2_stream *s = h->streams; s != NULL; s = s->next) {
        if (!s->up_wait)
            continue;
        s->up_wait = false;
        struct tw_err err;
        if (h2 ? submit(s, &err) != 0 : gw_h2_h1_adopt(s, &err) != 0) {
            ERR_clear_error();
            gw_stat_add(&h->c->w->stats.backend_errors, 1);
            log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, err.msg);
            gw_h2_h1_stop(s);
            gw_h2_stream_error(s, 502, "backend connection failed");
        }
    }
    if (h2)
        gw_h2_up_pump(h);
    gw_h2_pump(h);
}

static void up_event(struct bufferevent *bev, short events, void *arg)
{
    struct gw_h2_up *up = arg;
    struct gw_h2 *h = up->h;
    const struct gw_svc *svc = h->c->svc;
    if (events & BEV_EVENT_CONNECTED) {
        up->connected = true;
        SSL *ssl = svc->backend_ctx != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;
        if (ssl != NULL) {
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
            if (up->probing) {
                decided(up, gw_alpn_is_h2(ssl));
                return;
            }
            if (!gw_alpn_is_h2(ssl)) {
                retire(up, "backend did not agree to h2 by ALPN");
                gw_h2_pump(h);
                return;
            }
        }
        gw_h2_up_pump(h);
        return;
    }
    ERR_clear_error();
    if (svc->backend_ctx != NULL)
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
    char why[192];
    snprintf(why, sizeof(why), "backend %s: %s", svc->cfg->backend.text,
             (events & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0
                 ? strerror(EVUTIL_SOCKET_ERROR())
                 : "closed the connection");
    retire(up, why);
    gw_h2_pump(h);
}

static int make_session(struct gw_h2_up *up, struct tw_err *err)
{
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, up->h->c->svc->cfg->h2.initial_window},
    };
    const struct gw_h2_setup setup = {
        .header = on_header,
        .frame_recv = on_frame_recv,
        .data_chunk = on_data_chunk,
        .stream_close = on_stream_close,
        .settings = iv,
        .n_settings = sizeof(iv) / sizeof(iv[0]),
    };
    return gw_h2_session_new(&up->sess, &setup, up, err);
}

static struct gw_h2_up *up_new(struct gw_h2 *h, struct tw_err *err)
{
    struct gw_conn *c = h->c;
    const struct gw_svc *svc = c->svc;
    struct gw_h2_up *up = calloc(1, sizeof(*up));
    TW_ENSURE_PTR(up != NULL, err, TW_ERR_INTERNAL, "out of memory");
    up->h = h;
    up->bev = gw_conn_backend_new(c, err);
    if (up->bev == NULL || make_session(up, err) != 0) {
        gw_h2_up_free(up);
        return NULL;
    }
    SSL *ssl = svc->backend_ctx != NULL ? bufferevent_openssl_get_ssl(up->bev) : NULL;
    up->probing = ssl != NULL && svc->cfg->backend_protocol == GW_BACKEND_PROTO_AUTO;
    static const unsigned char h2[] = "\x02h2", both[] = "\x02h2\x08http/1.1";
    if (ssl != NULL && SSL_set_alpn_protos(ssl, up->probing ? both : h2,
                                           up->probing ? sizeof(both) - 1 : sizeof(h2) - 1) !=
                           0) {
        gw_h2_up_free(up);
        TW_ENSURE_PTR(false, err, TW_ERR_TLS, "backend ALPN setup failed");
    }
    bufferevent_setcb(up->bev, up_read, up_write, up_event, up);
    bufferevent_setwatermark(up->bev, EV_READ, 0, svc->buffer_high);
    bufferevent_setwatermark(up->bev, EV_WRITE, svc->buffer_low, 0);
    if (bufferevent_socket_connect(up->bev, (const struct sockaddr *)&svc->backend_addr,
                                   (int)svc->backend_len) != 0) {
        tw_err_set(err, TW_ERR_IO, "backend %s: %s", svc->cfg->backend.text,
                   strerror(EVUTIL_SOCKET_ERROR()));
        gw_h2_up_free(up);
        return NULL;
    }
    bufferevent_enable(up->bev, EV_READ | EV_WRITE);
    return up;
}

void gw_h2_up_free(struct gw_h2_up *up)
{
    if (up == NULL)
        return;
    if (up->bev != NULL)
        bufferevent_free(up->bev);
    nghttp2_session_del(up->sess);
    free(up);
}

/* ---- streams -------------------------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_h2_stream *s = arg;
    struct gw_h2 *h = s->h;
    const struct gw_svc *svc = gw_h2_stream_svc(s);
    char why[192];
    snprintf(why, sizeof(why), "backend %s: no response within %llds", svc->cfg->backend.text,
             (long long)(svc->backend_ms / 1000));
    gw_stat_add(&h->c->w->stats.backend_errors, 1);
    log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, why);
    gw_h2_up_stop(s);
    gw_h2_stream_error(s, 504, why);
    gw_h2_pump(h);
}

static int add(struct gw_nvlist *l, const char *name, const char *value)
{
    return gw_nvlist_add(l, name, strlen(name), value, strlen(value));
}

/* The identity lines (the gateway's own complete "Name: value\r\n" lines, gw_forward_headers)
 * added to an HTTP/2 header list, names lower-cased (RFC 9113 §8.2.1). Parsed for each request
 * rather than kept parsed: an idle connection holds the lines once. */
static int add_identity(struct gw_nvlist *l, const char *p, size_t len)
{
    const char *end = p + len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(end - p));
        char name[64];
        size_t nlen = colon != NULL ? (size_t)(colon - p) : 0;
        if (eol == NULL || colon == NULL || colon > eol || nlen >= sizeof(name))
            return -1;
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)tolower((unsigned char)p[i]);
        const char *v = colon + 1;
        while (v < eol && *v == ' ')
            v++;
        if (gw_nvlist_add(l, name, nlen, v, (size_t)(eol - v)) != 0)
            return -1;
        p = eol + 2;
    }
    return 0;
}

/* The request as a backend stream. */
static int submit(struct gw_h2_stream *s, struct tw_err *err)
{
    struct gw_h2 *h = s->h;
    const struct gw_svc *svc = h->c->svc;
    const char *authority = s->authority != NULL ? s->authority : s->host;
    /* The request as a header list: pseudo-header fields first (RFC 9113 §8.3). */
    struct gw_nvlist l = {0};
    int rc = add(&l, ":method", s->method) | add(&l, ":scheme", svc->backend_ctx ? "https" : "http") |
             add(&l, ":authority", authority) | add(&l, ":path", s->path);
    for (size_t i = 0; rc == 0 && i < s->fields.n; i++)
        rc = gw_nvlist_add(&l, (const char *)s->fields.nv[i].name, s->fields.nv[i].namelen,
                           (const char *)s->fields.nv[i].value, s->fields.nv[i].valuelen);
    if (rc == 0)
        rc = add_identity(&l, h->inject, h->inject_len);
    size_t cookie = evbuffer_get_length(s->cookie);
    if (rc == 0 && cookie > 0)
        rc = gw_nvlist_add(&l, "cookie", 6, (const char *)evbuffer_pullup(s->cookie, -1), cookie);
    if (rc == 0 && s->te_trailers)
        rc = add(&l, "te", "trailers");
    int32_t id = -1;
    if (rc == 0) {
        nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_request};
        bool body = !s->ended || evbuffer_get_length(s->req_body) > 0 || s->trailers.n > 0;
        id = nghttp2_submit_request(h->up->sess, NULL, l.nv, l.n, body ? &prd : NULL, s);
    }
    gw_nvlist_free(&l);
    if (id < 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "backend http/2 request: %s",
                          rc != 0 ? "out of memory or a malformed identity line" : nghttp2_strerror(id));
    s->up_id = id;
    s->up_sid = id;
    return 0;
}

static void arm(struct gw_h2_stream *s)
{
    const struct gw_svc *svc = gw_h2_stream_svc(s);
    struct event *timer = gw_h2_stream_timer(s, on_timer);
    if (timer != NULL) {
        struct timeval tv = {(time_t)(svc->backend_ms / 1000),
                             (suseconds_t)(svc->backend_ms % 1000) * 1000};
        evtimer_add(timer, &tv);
    }
}

bool gw_h2_up_wanted(const struct gw_svc *svc)
{
    switch (svc->cfg->backend_protocol) {
    case GW_BACKEND_PROTO_H2:
        return true;
    case GW_BACKEND_PROTO_AUTO: /* plaintext: no ALPN to ask, so HTTP/1.1 */
        return svc->backend_ctx != NULL && atomic_load(&svc->backend_alpn) != GW_UP_ALPN_HTTP11;
    default:
        return false;
    }
}

int gw_h2_up_start(struct gw_h2_stream *s, const char *authority, struct tw_err *err)
{
    (void)authority; /* submit reads it from the stream (auto may submit later) */
    struct gw_h2 *h = s->h;
    if (h->up != NULL && nghttp2_session_check_request_allowed(h->up->sess) == 0)
        retire(h->up, "backend ended the http/2 connection");
    if (h->up == NULL && (h->up = up_new(h, err)) == NULL)
        return -1;
    if (h->up->probing)
        s->up_wait = true;
    else
        TW_GUARD(submit(s, err));
    arm(s);
    return 0;
}

void gw_h2_up_data(struct gw_h2_stream *s, const uint8_t *data, size_t len)
{
    if (evbuffer_add(s->req_body, data, len) != 0) {
        (void)nghttp2_submit_rst_stream(s->h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (s->up_deferred && s->h->up != NULL) {
        s->up_deferred = false;
        (void)nghttp2_session_resume_data(s->h->up->sess, s->up_id);
    }
}

void gw_h2_up_end(struct gw_h2_stream *s)
{
    if (s->up_deferred && s->h->up != NULL) {
        s->up_deferred = false;
        (void)nghttp2_session_resume_data(s->h->up->sess, s->up_id);
    }
}

void gw_h2_up_stop(struct gw_h2_stream *s)
{
    struct gw_h2_up *up = s->h->up;
    if (up != NULL && s->up_owed > 0) /* never leave the backend's connection window short */
        (void)nghttp2_session_consume_connection(up->sess, s->up_owed);
    s->up_owed = 0;
    s->up_wait = false;
    if (s->up_id <= 0 || up == NULL)
        return;
    /* RFC 9113 §8.7: a request the client abandoned is cancelled at the backend too. */
    (void)nghttp2_session_set_stream_user_data(up->sess, s->up_id, NULL);
    (void)nghttp2_submit_rst_stream(up->sess, NGHTTP2_FLAG_NONE, s->up_id, NGHTTP2_CANCEL);
    s->up_id = 0;
}

void gw_h2_up_consumed(struct gw_h2_stream *s, size_t n)
{
    if (n > s->up_owed)
        n = s->up_owed;
    if (n == 0 || s->h->up == NULL)
        return;
    s->up_owed -= n;
    /* The connection's window always; the stream's too while it is open. */
    (void)nghttp2_session_consume(s->h->up->sess, s->up_sid, n);
}
