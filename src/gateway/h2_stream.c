/* One HTTP/2 request stream (see h2.h): the request as nghttp2 validated it becomes one
 * HTTP/1.1 request to the backend, with the same rules as an HTTP/1.1 client's request:
 *   - identity: the client's copies of the identity headers are dropped
 *     (gw_http_name_stripped) and the connection's verified identity lines are added;
 *   - :authority (or Host) must name the SNI-selected service where the listener is shared
 *     (gw_http_host_allowed), else 421 (RFC 9110 §15.5.20), as for HTTP/1.1;
 *   - max-header-bytes / max-headers over the decoded header list: 431;
 *   - CONNECT: 400; anything nghttp2 finds malformed: RST_STREAM PROTOCOL_ERROR.
 * Translation (RFC 9113 §8.3.1): request line from :method and :path, Host from :authority,
 * cookie crumbs joined with "; " (§8.2.3), TE dropped; a body of unknown length is sent
 * chunked (request trailers then become chunked trailers). The response (http_resp.h) goes
 * back through nghttp2's flow control: backend reads stop while buffer-size bytes wait for
 * the client's window, and request bytes open the client's window only once they were
 * written towards the backend. */
#include "gateway/h2.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "gateway/http_resp.h"
#include "util/log.h"

struct gw_h2_stream {
    struct gw_h2_stream *prev, *next;
    struct gw_h2 *h;
    int32_t id;
    /* request */
    char *method, *path, *authority, *host;
    struct evbuffer *fields;   /* "name: value\r\n" lines for the backend */
    struct evbuffer *cookie;   /* crumbs joined */
    struct evbuffer *trailers; /* request trailer lines */
    size_t hdr_bytes, n_hdrs;
    int refuse; /* answer this status instead of forwarding */
    const char *detail;
    bool chunked, ended, forwarded;
    size_t unconsumed; /* request bytes not yet acknowledged to the client's window */
    /* backend */
    struct bufferevent *bev;
    struct event *timer;
    bool connected;
    struct gw_http_resp *resp;
    struct evbuffer *body; /* response bytes waiting for the client's window */
    char *rtrail;          /* response trailers: names and values, NUL-separated */
    nghttp2_nv *rtrail_nv;
    size_t rtrail_n;
    bool submitted, resp_end, deferred, paused;
    int status;
    uint64_t bytes_in, bytes_out;
    int64_t started_ms, deadline_ms;
};

static const struct gw_svc *svc_of(const struct gw_h2_stream *s)
{
    return s->h->c->svc;
}

static char *dup_span(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

struct gw_h2_stream *gw_h2_stream_new(struct gw_h2 *h, int32_t id)
{
    struct gw_h2_stream *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->h = h;
    s->id = id;
    s->detail = "";
    s->started_ms = gw_now_ms();
    s->fields = evbuffer_new();
    s->cookie = evbuffer_new();
    s->trailers = evbuffer_new();
    s->body = evbuffer_new();
    if (s->fields == NULL || s->cookie == NULL || s->trailers == NULL || s->body == NULL) {
        evbuffer_free(s->fields), evbuffer_free(s->cookie);
        evbuffer_free(s->trailers), evbuffer_free(s->body);
        free(s);
        return NULL;
    }
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    h->nstreams++;
    return s;
}

void gw_h2_stream_free(struct gw_h2_stream *s)
{
    struct gw_h2 *h = s->h;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    h->nstreams--;
    if (h->sess != NULL)
        (void)nghttp2_session_set_stream_user_data(h->sess, s->id, NULL);
    if (s->bev != NULL)
        bufferevent_free(s->bev);
    if (s->timer != NULL)
        event_free(s->timer);
    gw_http_resp_free(s->resp);
    evbuffer_free(s->fields);
    evbuffer_free(s->cookie);
    evbuffer_free(s->trailers);
    evbuffer_free(s->body);
    free(s->method), free(s->path), free(s->authority), free(s->host);
    free(s->rtrail), free(s->rtrail_nv);
    free(s);
}

/* ---- request headers ------------------------------------------------------------------------ */

static void refuse(struct gw_h2_stream *s, int status, const char *why)
{
    if (s->refuse == 0) {
        s->refuse = status;
        s->detail = why;
    }
}

static bool name_is(const uint8_t *n, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(n, want, len) == 0;
}

static void pseudo(struct gw_h2_stream *s, const uint8_t *n, size_t nlen, const uint8_t *v,
                   size_t vlen)
{
    char **slot = name_is(n, nlen, ":method")      ? &s->method
                  : name_is(n, nlen, ":path")      ? &s->path
                  : name_is(n, nlen, ":authority") ? &s->authority
                                                   : NULL;
    if (slot == NULL)
        return; /* :scheme: the backend is reached by its own scheme */
    free(*slot);
    if ((*slot = dup_span(v, vlen)) == NULL)
        refuse(s, 500, "out of memory");
}

void gw_h2_stream_header(struct gw_h2_stream *s, const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen, bool trailer)
{
    const struct gw_service *cfg = svc_of(s)->cfg;
    /* RFC 9113 §6.5.2: the size of a field is its name, its value and 32 bytes. */
    s->hdr_bytes += nlen + vlen + 32;
    s->n_hdrs++;
    if (s->hdr_bytes > cfg->limits.max_header_bytes + 32 * (size_t)cfg->limits.max_headers)
        refuse(s, 431, "header list too large");
    if (s->n_hdrs > cfg->limits.max_headers + 4) /* the pseudo-header fields besides */
        refuse(s, 431, "too many header fields");
    if (s->refuse != 0)
        return; /* keep nothing more of a refused request */
    if (nlen > 0 && name[0] == ':') {
        if (!trailer)
            pseudo(s, name, nlen, value, vlen);
        return;
    }
    if (gw_http_name_stripped(NULL, 0, (const char *)name, nlen) || name_is(name, nlen, "te"))
        return;
    struct evbuffer *to = trailer ? s->trailers : s->fields;
    if (trailer && (name_is(name, nlen, "content-length") || name_is(name, nlen, "host") ||
                    name_is(name, nlen, "trailer")))
        return;
    if (!trailer && name_is(name, nlen, "host")) {
        free(s->host);
        if ((s->host = dup_span(value, vlen)) == NULL)
            refuse(s, 500, "out of memory");
        return;
    }
    if (!trailer && name_is(name, nlen, "cookie")) {
        if ((evbuffer_get_length(s->cookie) > 0 && evbuffer_add(s->cookie, "; ", 2) != 0) ||
            evbuffer_add(s->cookie, value, vlen) != 0)
            refuse(s, 500, "out of memory");
        return;
    }
    /* nghttp2 has checked the name is a lower-case token and the value holds no CR, LF or
     * NUL (RFC 9113 §8.2.1), so the line cannot be split or smuggled. */
    if (evbuffer_add(to, name, nlen) != 0 || evbuffer_add(to, ": ", 2) != 0 ||
        evbuffer_add(to, value, vlen) != 0 || evbuffer_add(to, "\r\n", 2) != 0)
        refuse(s, 500, "out of memory");
}

/* ---- responses made here -------------------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 400:
        return "400 Bad Request\n";
    case 421:
        return "421 Misdirected Request\n";
    case 431:
        return "431 Request Header Fields Too Large\n";
    case 502:
        return "502 Bad Gateway\n";
    case 504:
        return "504 Gateway Timeout\n";
    default:
        return "500 Internal Server Error\n";
    }
}

static ssize_t read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud);

static void submit_error(struct gw_h2_stream *s, int status, const char *why)
{
    struct gw_h2 *h = s->h;
    if (s->submitted) {
        /* Too late for a status: the response has begun. RFC 9113 §8.1: reset the stream. */
        s->detail = why;
        (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
        return;
    }
    const char *text = status_text(status);
    char code[4], clen[24];
    snprintf(code, sizeof(code), "%d", status);
    snprintf(clen, sizeof(clen), "%zu", strlen(text));
    evbuffer_drain(s->body, evbuffer_get_length(s->body));
    (void)evbuffer_add(s->body, text, strlen(text));
    s->resp_end = true;
    s->status = status;
    s->detail = why;
    s->submitted = true;
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, strlen(code), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    if (nghttp2_submit_response(h->sess, s->id, nv, 3, &prd) != 0)
        (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
}

/* ---- the response, from the backend to nghttp2 ---------------------------------------------- */

static ssize_t read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)ud;
    struct gw_h2_stream *s = src->ptr;
    size_t n = evbuffer_get_length(s->body);
    if (n > len)
        n = len;
    if (n > 0 && evbuffer_remove(s->body, buf, n) != (int)n)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->bytes_out += n;
    if (s->paused && s->bev != NULL &&
        evbuffer_get_length(s->body) <= svc_of(s)->buffer_low) {
        s->paused = false;
        bufferevent_enable(s->bev, EV_READ);
    }
    if (s->resp_end && evbuffer_get_length(s->body) == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (s->rtrail_n > 0 && nghttp2_submit_trailer(sess, id, s->rtrail_nv, s->rtrail_n) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return (ssize_t)n;
    }
    if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void wake(struct gw_h2_stream *s)
{
    if (s->deferred) {
        s->deferred = false;
        (void)nghttp2_session_resume_data(s->h->sess, s->id);
    }
}

static int on_resp_head(void *arg, int status, const struct gw_hdr *f, size_t n)
{
    struct gw_h2_stream *s = arg;
    nghttp2_nv *nv = calloc(n + 1, sizeof(*nv));
    if (nv == NULL)
        return -1;
    char code[4];
    snprintf(code, sizeof(code), "%d", status);
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, strlen(code),
                         NGHTTP2_NV_FLAG_NONE};
    for (size_t i = 0; i < n; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)f[i].name, (uint8_t *)f[i].value, f[i].name_len,
                                 f[i].value_len, NGHTTP2_NV_FLAG_NONE};
    s->status = status;
    s->submitted = true;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_body};
    int rc = nghttp2_submit_response(s->h->sess, s->id, nv, n + 1, &prd);
    free(nv);
    return rc == 0 ? 0 : -1;
}

static int on_resp_body(void *arg, const uint8_t *data, size_t len)
{
    struct gw_h2_stream *s = arg;
    if (evbuffer_add(s->body, data, len) != 0)
        return -1;
    if (evbuffer_get_length(s->body) >= svc_of(s)->buffer_high && s->bev != NULL) {
        s->paused = true;
        bufferevent_disable(s->bev, EV_READ);
    }
    wake(s);
    return 0;
}

static int on_resp_trailers(void *arg, const struct gw_hdr *f, size_t n)
{
    struct gw_h2_stream *s = arg;
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += f[i].name_len + f[i].value_len + 2;
    s->rtrail = malloc(total);
    s->rtrail_nv = calloc(n, sizeof(*s->rtrail_nv));
    if (s->rtrail == NULL || s->rtrail_nv == NULL)
        return -1;
    char *p = s->rtrail;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, f[i].name, f[i].name_len);
        memcpy(p + f[i].name_len + 1, f[i].value, f[i].value_len);
        s->rtrail_nv[i] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)p + f[i].name_len + 1,
                                       f[i].name_len, f[i].value_len, NGHTTP2_NV_FLAG_NONE};
        p += f[i].name_len + f[i].value_len + 2;
    }
    s->rtrail_n = n;
    return 0;
}

static int on_resp_end(void *arg)
{
    struct gw_h2_stream *s = arg;
    s->resp_end = true;
    wake(s);
    return 0;
}

static const struct gw_http_resp_cb resp_cb = {
    .head = on_resp_head,
    .body = on_resp_body,
    .trailers = on_resp_trailers,
    .end = on_resp_end,
};

/* ---- the backend connection ----------------------------------------------------------------- */

static void drop_backend(struct gw_h2_stream *s)
{
    if (s->bev != NULL) {
        bufferevent_free(s->bev);
        s->bev = NULL;
    }
    if (s->timer != NULL)
        evtimer_del(s->timer);
}

/* After a backend callback: the response is complete, or the backend failed. Ends with the
 * pump, which may close the stream (and the connection): s is not used afterwards. */
static void backend_settle(struct gw_h2_stream *s, int status, const char *why)
{
    struct gw_h2 *h = s->h;
    if (why != NULL) {
        gw_stat_add(&h->c->w->stats.backend_errors, 1);
        log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, why);
        drop_backend(s);
        submit_error(s, status, why);
    } else if (s->resp != NULL && gw_http_resp_done(s->resp)) {
        drop_backend(s); /* one exchange per backend connection */
    }
    gw_h2_pump(h);
}

static void backend_read(struct bufferevent *bev, void *arg)
{
    struct gw_h2_stream *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    s->h->c->last_io_ms = gw_now_ms();
    if (s->timer != NULL)
        evtimer_del(s->timer); /* the backend answered: the backend-timeout is over */
    size_t n;
    while ((n = evbuffer_get_contiguous_space(in)) > 0) {
        const unsigned char *p = evbuffer_pullup(in, (ev_ssize_t)n);
        int rc = p != NULL ? gw_http_resp_feed(s->resp, p, n) : -1;
        evbuffer_drain(in, n);
        if (rc != 0) {
            backend_settle(s, 502, gw_http_resp_reason(s->resp));
            return;
        }
        if (gw_http_resp_done(s->resp))
            break;
    }
    backend_settle(s, 0, NULL);
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

static void backend_event(struct bufferevent *bev, short events, void *arg)
{
    struct gw_h2_stream *s = arg;
    if (events & BEV_EVENT_CONNECTED) {
        s->connected = true;
        if (svc_of(s)->backend_ctx != NULL)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        s->deadline_ms = gw_now_ms() + svc_of(s)->backend_ms;
        struct timeval tv = {(time_t)(svc_of(s)->backend_ms / 1000),
                             (suseconds_t)(svc_of(s)->backend_ms % 1000) * 1000};
        evtimer_add(s->timer, &tv);
        return;
    }
    ERR_clear_error();
    if (svc_of(s)->backend_ctx != NULL)
        while (bufferevent_get_openssl_error(bev) != 0)
            ;
    char why[192];
    if (!s->connected) {
        snprintf(why, sizeof(why), "backend %s: %s", svc_of(s)->cfg->backend.text,
                 (events & BEV_EVENT_ERROR) && EVUTIL_SOCKET_ERROR() != 0
                     ? strerror(EVUTIL_SOCKET_ERROR())
                     : "closed the connection");
        backend_settle(s, 502, why);
        return;
    }
    if (gw_http_resp_eof(s->resp) != 0) {
        backend_settle(s, 502,
                       gw_http_resp_started(s->resp) ? "backend response cut short"
                                                     : "backend closed without a response");
        return;
    }
    backend_settle(s, 0, NULL);
}

static void on_stream_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_h2_stream *s = arg;
    char why[192];
    if (!s->connected)
        snprintf(why, sizeof(why), "backend %s: no connection within %llds",
                 svc_of(s)->cfg->backend.text, (long long)(svc_of(s)->connect_ms / 1000));
    else
        snprintf(why, sizeof(why), "backend %s: no response within %llds",
                 svc_of(s)->cfg->backend.text, (long long)(svc_of(s)->backend_ms / 1000));
    backend_settle(s, 504, why);
}

/* The HTTP/1.1 request head (RFC 9113 §8.3.1 in reverse). */
static int write_head(struct gw_h2_stream *s, const char *authority, bool end,
                      struct evbuffer *out)
{
    struct gw_h2 *h = s->h;
    bool has_cl = false;
    struct evbuffer_ptr found = evbuffer_search(s->fields, "content-length: ", 16, NULL);
    has_cl = found.pos == 0;
    if (!has_cl) {
        found = evbuffer_search(s->fields, "\r\ncontent-length: ", 18, NULL);
        has_cl = found.pos >= 0;
    }
    s->chunked = !end && !has_cl;
    size_t cookie = evbuffer_get_length(s->cookie);
    if (evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nhost: %s\r\n", s->method, s->path,
                            authority) < 0 ||
        evbuffer_add_buffer(out, s->fields) != 0 ||
        (cookie > 0 && (evbuffer_add(out, "cookie: ", 8) != 0 ||
                        evbuffer_add_buffer(out, s->cookie) != 0 ||
                        evbuffer_add(out, "\r\n", 2) != 0)) ||
        (h->inject_len > 0 && evbuffer_add(out, h->inject, h->inject_len) != 0) ||
        (s->chunked && evbuffer_add(out, "transfer-encoding: chunked\r\n", 28) != 0) ||
        evbuffer_add(out, "\r\n", 2) != 0)
        return -1;
    return 0;
}

static int start_backend(struct gw_h2_stream *s, const char *authority, bool end,
                         struct tw_err *err)
{
    struct gw_conn *c = s->h->c;
    const struct gw_svc *svc = c->svc;
    s->resp = gw_http_resp_new(&resp_cb, s, strcmp(s->method, "HEAD") == 0, err);
    if (s->resp == NULL)
        return -1;
    s->timer = evtimer_new(c->w->base, on_stream_timer, s);
    s->bev = gw_conn_backend_new(c, err);
    if (s->timer == NULL || s->bev == NULL)
        return tw_err_set(err, TW_ERR_INTERNAL, "backend connection: %s",
                          s->bev == NULL ? err->msg : "out of memory");
    bufferevent_setcb(s->bev, backend_read, backend_write, backend_event, s);
    bufferevent_setwatermark(s->bev, EV_READ, 0, svc->buffer_high);
    bufferevent_setwatermark(s->bev, EV_WRITE, svc->buffer_low, 0);
    if (write_head(s, authority, end, bufferevent_get_output(s->bev)) != 0)
        return tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
    if (bufferevent_socket_connect(s->bev, (const struct sockaddr *)&svc->backend_addr,
                                   (int)svc->backend_len) != 0)
        return tw_err_set(err, TW_ERR_IO, "backend %s: %s", svc->cfg->backend.text,
                          strerror(EVUTIL_SOCKET_ERROR()));
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    struct timeval tv = {(time_t)(svc->connect_ms / 1000),
                         (suseconds_t)(svc->connect_ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
    s->forwarded = true;
    return 0;
}

void gw_h2_stream_head_done(struct gw_h2_stream *s, bool end)
{
    struct gw_h2 *h = s->h;
    s->ended = end;
    if (s->refuse == 0 && s->method != NULL && strcmp(s->method, "CONNECT") == 0)
        refuse(s, 400, "CONNECT is not allowed");
    const char *authority = s->authority != NULL ? s->authority : s->host;
    if (s->refuse == 0 && (authority == NULL || authority[0] == '\0'))
        refuse(s, 400, "missing :authority");
    if (s->refuse == 0 && h->n_hosts > 0 &&
        !gw_http_host_allowed(h->hosts, h->n_hosts, authority, strlen(authority)))
        refuse(s, 421, ":authority does not match the service");
    if (s->refuse == 0 && (s->method == NULL || s->path == NULL))
        refuse(s, 400, "missing :method or :path");
    if (s->refuse != 0) {
        submit_error(s, s->refuse, s->detail);
        return;
    }
    struct tw_err err;
    if (start_backend(s, authority, end, &err) != 0) {
        ERR_clear_error();
        gw_stat_add(&h->c->w->stats.backend_errors, 1);
        drop_backend(s);
        submit_error(s, 502, "backend connection failed");
        log_warnx("client %s stream %d: %s", h->c->peer_text, (int)s->id, err.msg);
    }
}

void gw_h2_stream_data(struct gw_h2_stream *s, const uint8_t *data, size_t len)
{
    nghttp2_session *sess = s->h->sess;
    s->bytes_in += len;
    if (s->bev == NULL) { /* refused or failed: the bytes go nowhere */
        (void)nghttp2_session_consume(sess, s->id, len);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if ((s->chunked && evbuffer_add_printf(out, "%zx\r\n", len) < 0) ||
        evbuffer_add(out, data, len) != 0 || (s->chunked && evbuffer_add(out, "\r\n", 2) != 0)) {
        (void)nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* The client may send more only once this reached the backend's socket buffer. */
    if (evbuffer_get_length(out) < svc_of(s)->buffer_high)
        (void)nghttp2_session_consume(sess, s->id, len);
    else
        s->unconsumed += len;
}

void gw_h2_stream_end(struct gw_h2_stream *s)
{
    s->ended = true;
    if (s->bev == NULL || !s->chunked)
        return;
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (evbuffer_add(out, "0\r\n", 3) != 0 || evbuffer_add_buffer(out, s->trailers) != 0 ||
        evbuffer_add(out, "\r\n", 2) != 0)
        (void)nghttp2_submit_rst_stream(s->h->sess, NGHTTP2_FLAG_NONE, s->id,
                                        NGHTTP2_INTERNAL_ERROR);
}

void gw_h2_stream_closed(struct gw_h2_stream *s, uint32_t error_code)
{
    struct gw_req_log r = {
        .stream = s->id,
        .method = s->method,
        .path = s->path,
        .authority = s->authority != NULL ? s->authority : s->host,
        .status = s->submitted ? s->status : 0,
        .detail = s->detail,
        .reset = error_code,
        .bytes_in = s->bytes_in,
        .bytes_out = s->bytes_out,
        .started_ms = s->started_ms,
    };
    gw_access_log_request(s->h->c, &r);
    gw_h2_stream_free(s);
}
