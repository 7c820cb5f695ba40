/* One HTTP(S) request at a time per fetch, on the main event loop, with libevent's HTTP client
 * over a bufferevent_openssl: the server's chain is verified against a given CA bundle and its
 * name (or IP address) against the URL's host, the body is bounded, every wait is bounded.
 * Used for CRL URLs and OCSP responders. A fetch is freed only from the fetcher's reap event,
 * after libevent has returned from the request callback (freeing a connection inside its own
 * callback is not allowed). */
#include "gateway/revocation.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>

#include "util/log.h"

struct fetch {
    struct fetch *next;
    struct gw_fetcher *f;
    struct event *start_ev;
    struct evhttp_connection *evcon;
    struct bufferevent *bev;
    SSL *ssl; /* owned by bev */
    struct evhttp_request *req;
    gw_fetch_cb cb;
    void *arg;
    char *target; /* path + query */
    char *host_header;
    bool post;
    bool done;
    int req_error; /* enum evhttp_request_error + 1, 0 when none */
    size_t max_body;
};

struct gw_fetcher {
    struct event_base *base;
    struct fetch *list;
    struct event *reap;
};

static void fetch_free(struct fetch *x)
{
    if (x->evcon != NULL)
        evhttp_connection_free(x->evcon); /* frees bev, ssl and queued requests */
    else if (x->bev != NULL)
        bufferevent_free(x->bev);
    else if (x->ssl != NULL)
        SSL_free(x->ssl);
    if (x->req != NULL)
        evhttp_request_free(x->req); /* never handed to a connection */
    if (x->start_ev != NULL)
        event_free(x->start_ev);
    free(x->target);
    free(x->host_header);
    free(x);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gw_fetcher *f = arg;
    for (struct fetch **p = &f->list; *p != NULL;) {
        struct fetch *x = *p;
        if (!x->done) {
            p = &x->next;
            continue;
        }
        *p = x->next;
        fetch_free(x);
    }
}

struct gw_fetcher *gw_fetcher_new(struct event_base *base, struct tw_err *err)
{
    struct gw_fetcher *f = calloc(1, sizeof(*f));
    TW_ENSURE_PTR(f != NULL, err, TW_ERR_INTERNAL, "out of memory");
    f->base = base;
    f->reap = event_new(base, -1, 0, on_reap, f);
    if (f->reap == NULL) {
        free(f);
        tw_err_set(err, TW_ERR_INTERNAL, "event_new failed");
        return NULL;
    }
    return f;
}

void gw_fetcher_free(struct gw_fetcher *f)
{
    if (f == NULL)
        return;
    while (f->list != NULL) {
        struct fetch *x = f->list;
        f->list = x->next;
        fetch_free(x);
    }
    event_free(f->reap);
    free(f);
}

static const char *request_error_text(int e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timed out";
    case EVREQ_HTTP_EOF:
        return "connection closed before a complete response";
    case EVREQ_HTTP_INVALID_HEADER:
        return "malformed response headers";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "response too large";
    default:
        return "request failed";
    }
}

/* The best words for a failed exchange: certificate verification, TLS, then libevent's. */
static void describe_failure(struct fetch *x, char *out, size_t cap)
{
    long vr = x->ssl != NULL ? SSL_get_verify_result(x->ssl) : X509_V_OK;
    if (vr != X509_V_OK) {
        snprintf(out, cap, "server certificate not trusted: %s", X509_verify_cert_error_string(vr));
        return;
    }
    unsigned long e = x->bev != NULL && x->ssl != NULL ? bufferevent_get_openssl_error(x->bev) : 0;
    if (e != 0) {
        const char *r = ERR_reason_error_string(e);
        snprintf(out, cap, "TLS failed: %s", r != NULL ? r : "error");
        return;
    }
    if (x->req_error == EVREQ_HTTP_DATA_TOO_LONG + 1) {
        snprintf(out, cap, "response larger than %zu bytes", x->max_body);
        return;
    }
    snprintf(out, cap, "%s",
             x->req_error > 0 ? request_error_text(x->req_error - 1) : "cannot connect");
}

static int64_t parse_max_age(const char *cc)
{
    for (const char *p = cc; p != NULL && *p != '\0'; p++) {
        if (strncasecmp(p, "max-age=", 8) != 0 || (p != cc && p[-1] != ' ' && p[-1] != ','))
            continue;
        char *end = NULL;
        long long v = strtoll(p + 8, &end, 10);
        if (end != p + 8 && v >= 0)
            return (int64_t)v;
    }
    return -1;
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct fetch *x = arg;
    x->req_error = (int)e + 1;
}

static void on_done(struct evhttp_request *req, void *arg)
{
    struct fetch *x = arg;
    if (x->done)
        return;
    x->done = true;
    struct gw_fetch_res res;
    memset(&res, 0, sizeof(res));
    res.max_age = -1;
    unsigned char *body = NULL;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    if (code <= 0) {
        describe_failure(x, res.error, sizeof(res.error));
    } else {
        res.status = code;
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        res.etag = evhttp_find_header(h, "ETag");
        res.last_modified = evhttp_find_header(h, "Last-Modified");
        res.max_age = parse_max_age(evhttp_find_header(h, "Cache-Control"));
        res.feed = evhttp_find_header(h, "Twoway-Revocation-Feed");
        res.crl_number = evhttp_find_header(h, "Twoway-Crl-Number");
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        res.len = evbuffer_get_length(in);
        if (res.len > x->max_body) {
            res.status = 0;
            snprintf(res.error, sizeof(res.error), "response larger than %zu bytes", x->max_body);
        } else if (res.len > 0) {
            body = evbuffer_pullup(in, -1);
            res.body = body;
        }
    }
    x->cb(&res, x->arg);
    event_active(x->f->reap, EV_TIMEOUT, 1);
}

static void on_start(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fetch *x = arg;
    struct evhttp_request *req = x->req;
    x->req = NULL; /* the connection owns it from here, whatever happens */
    if (evhttp_make_request(x->evcon, req, x->post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, x->target) !=
            0 &&
        !x->done)
        on_done(NULL, x);
}

static int split_url(const char *url, struct evhttp_uri **uri, const char **host, int *port,
                     bool *tls, struct tw_err *err)
{
    *uri = evhttp_uri_parse(url);
    TW_ENSURE(*uri != NULL, err, TW_ERR_CONFIG, "%s: not a URL", url);
    const char *scheme = evhttp_uri_get_scheme(*uri);
    *host = evhttp_uri_get_host(*uri);
    TW_ENSURE(scheme != NULL &&
                  (strcasecmp(scheme, "https") == 0 || strcasecmp(scheme, "http") == 0),
              err, TW_ERR_CONFIG, "%s: only http:// and https:// URLs can be fetched", url);
    TW_ENSURE(*host != NULL && **host != '\0', err, TW_ERR_CONFIG, "%s: no host", url);
    *tls = strcasecmp(scheme, "https") == 0;
    *port = evhttp_uri_get_port(*uri);
    if (*port <= 0)
        *port = *tls ? 443 : 80;
    return 0;
}

static int setup_tls(struct fetch *x, const struct gw_fetch_req *r, const char *host,
                     struct tw_err *err)
{
    struct tlsx_client_opts o;
    tlsx_client_opts_init(&o);
    o.ca_file = r->ca_file;
    SSL_CTX *ctx = tlsx_client_ctx_new(&o, err);
    if (ctx == NULL)
        return -1;
    x->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    TW_ENSURE_OSSL(x->ssl != NULL, err, TW_ERR_INTERNAL, "%s: SSL_new failed", r->url);
    TW_GUARD(tlsx_client_ssl_setup(x->ssl, host, err));
    x->bev = bufferevent_openssl_socket_new(x->f->base, -1, x->ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    TW_ENSURE(x->bev != NULL, err, TW_ERR_INTERNAL, "%s: bufferevent failed", r->url);
    bufferevent_openssl_set_allow_dirty_shutdown(x->bev, 1);
    return 0;
}

static int setup(struct fetch *x, const struct gw_fetch_req *r, struct tw_err *err)
{
    struct evhttp_uri *uri = NULL;
    const char *host = NULL;
    int port = 0;
    bool tls = false;
    int rc = -1;
    if (split_url(r->url, &uri, &host, &port, &tls, err) != 0)
        goto out;
    /* libevent keeps IPv6 literals bracketed; the resolver and the name check want them bare. */
    char bare[256];
    size_t hl = strlen(host);
    if (hl >= sizeof(bare)) {
        tw_err_set(err, TW_ERR_CONFIG, "%s: host name too long", r->url);
        goto out;
    }
    memcpy(bare, host, hl + 1);
    if (hl > 2 && bare[0] == '[' && bare[hl - 1] == ']') {
        memmove(bare, bare + 1, hl - 2);
        bare[hl - 2] = '\0';
    }
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    size_t tcap = strlen(path != NULL ? path : "") + strlen(query != NULL ? query : "") + 3;
    x->target = malloc(tcap);
    x->host_header = malloc(hl + 8);
    if (x->target == NULL || x->host_header == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        goto out;
    }
    snprintf(x->target, tcap, "%s%s%s", path != NULL && *path != '\0' ? path : "/",
             query != NULL ? "?" : "", query != NULL ? query : "");
    snprintf(x->host_header, hl + 8, "%s", host);
    if (port != (tls ? 443 : 80))
        snprintf(x->host_header, hl + 8, "%s:%d", host, port);
    if (tls) {
        if (setup_tls(x, r, bare, err) != 0)
            goto out;
    } else {
        x->bev =
            bufferevent_socket_new(x->f->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (x->bev == NULL) {
            tw_err_set(err, TW_ERR_INTERNAL, "%s: bufferevent failed", r->url);
            goto out;
        }
    }
    /* NULL dns base: the name is resolved with getaddrinfo on the main thread (never on a
     * worker); IP literals need no lookup at all. */
    x->evcon = evhttp_connection_base_bufferevent_new(x->f->base, NULL, x->bev, bare,
                                                      (unsigned short)port);
    if (x->evcon == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "%s: evhttp connection failed", r->url);
        goto out;
    }
    rc = 0;
out:
    if (uri != NULL)
        evhttp_uri_free(uri);
    return rc;
}

static int make_request(struct fetch *x, const struct gw_fetch_req *r, struct tw_err *err)
{
    evhttp_connection_set_timeout(x->evcon,
                                  r->timeout_secs > 0 ? r->timeout_secs : GW_FETCH_TIMEOUT_SECS);
    evhttp_connection_set_retries(x->evcon, 0);
    evhttp_connection_set_max_body_size(x->evcon, (ev_ssize_t)r->max_body);
    evhttp_connection_set_max_headers_size(x->evcon, GW_FETCH_HEADERS_MAX);
    x->req = evhttp_request_new(on_done, x);
    TW_ENSURE(x->req != NULL, err, TW_ERR_INTERNAL, "out of memory");
    evhttp_request_set_error_cb(x->req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(x->req);
    int rc = evhttp_add_header(h, "Host", x->host_header) |
             evhttp_add_header(h, "Connection", "close") |
             evhttp_add_header(h, "User-Agent", "twoway-gateway");
    if (r->if_none_match != NULL)
        rc |= evhttp_add_header(h, "If-None-Match", r->if_none_match);
    if (r->if_modified_since != NULL)
        rc |= evhttp_add_header(h, "If-Modified-Since", r->if_modified_since);
    if (r->post) {
        rc |= evhttp_add_header(h, "Content-Type", r->content_type);
        rc |= evbuffer_add(evhttp_request_get_output_buffer(x->req), r->body, r->len);
    }
    TW_ENSURE(rc == 0, err, TW_ERR_INTERNAL, "%s: cannot build the request", r->url);
    return 0;
}

int gw_fetch_start(struct gw_fetcher *f, const struct gw_fetch_req *r, gw_fetch_cb cb, void *arg,
                   struct tw_err *err)
{
    struct fetch *x = calloc(1, sizeof(*x));
    TW_ENSURE(x != NULL, err, TW_ERR_INTERNAL, "out of memory");
    x->f = f;
    x->cb = cb;
    x->arg = arg;
    x->post = r->post;
    x->max_body = r->max_body;
    /* Started from the loop, so the callback never runs inside this call. */
    x->start_ev = event_new(f->base, -1, 0, on_start, x);
    if (x->start_ev == NULL || setup(x, r, err) != 0 || make_request(x, r, err) != 0) {
        if (x->start_ev == NULL)
            tw_err_set(err, TW_ERR_INTERNAL, "event_new failed");
        ERR_clear_error();
        fetch_free(x);
        return -1;
    }
    x->next = f->list;
    f->list = x;
    event_active(x->start_ev, EV_TIMEOUT, 1);
    return 0;
}
