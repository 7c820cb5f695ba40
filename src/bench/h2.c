/* twoway bench --h2 --streams N: HTTP/2 requests over mTLS. With --hold N: N HTTP/2
 * connections, each with one request answered, then kept idle for --hold-time while the
 * server's resident memory is sampled (kB per idle HTTP/2 connection).
 * Otherwise: `--conns` connections are set up
 * first (full mutual handshakes, ALPN h2, outside the measurement); then each keeps N GET
 * requests in flight, a new one submitted as each ends, until --count requests were started or
 * --duration passed. A request succeeds on a 2xx status with a clean end of stream; its latency
 * runs from submission to that end. The server's CPU time is sampled when the connections are
 * up and when the last request ended: cpu_us_per_conn then means per request. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>

#include "bench/internal.h"
#include "tlsx/tlsx.h"

#define OUT_HIGH (256 * 1024) /* bytes queued towards the server before nghttp2 waits */

struct h2b;

struct req {
    struct req *prev, *next;
    int64_t t;
    int status;
};

struct h2c {
    struct h2b *hb;
    struct req *reqs; /* in flight, freed with the connection if never ended */
    struct bufferevent *bev;
    nghttp2_session *sess;
    int inflight;
    bool up, dead;
    bool goaway; /* the server sent GOAWAY: no new streams here; reopen once idle */
};

struct h2b {
    struct bench *b;
    struct h2c *c;
    int n, ready, alive;
    int64_t launched;
    char authority[300];
};

static bool want_more(const struct h2b *hb)
{
    const struct bench *b = hb->b;
    return b->measuring && !b->stopping && (b->o->count == 0 || hb->launched < b->o->count);
}

static int total_inflight(const struct h2b *hb)
{
    int n = 0;
    for (int i = 0; i < hb->n; i++)
        n += hb->c[i].inflight;
    return n;
}

static void sample(struct bench *b, struct bench_proc_sample *out)
{
    struct tw_err err;
    if (b->o->pid > 0 && bench_proc_sample(b->o->pid, out, &err) != 0)
        out->ok = false;
}

static void finish(struct h2b *hb)
{
    struct bench *b = hb->b;
    if (b->o->mode == BENCH_MODE_HOLD && b->t_end == 0 && !b->stopping) {
        /* Every connection answered its request: hold them all idle, then measure. */
        b->t_end = bench_now_us();
        b->res->elapsed_us = b->t_end - b->t0;
        b->res->held = hb->alive;
        int64_t ms = b->o->hold_ms > 0 ? b->o->hold_ms : 1000;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        event_add(b->stop_ev, &tv);
        return;
    }
    if (b->t0 != 0 && b->t_end == 0) {
        b->t_end = bench_now_us();
        b->res->elapsed_us = b->t_end - b->t0;
        b->res->client_cpu_us = bench_self_cpu_us() - b->cpu0;
        sample(b, &b->res->after);
    }
    event_base_loopbreak(b->base);
}

static void unlink_req(struct h2c *c, struct req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    free(r);
}

static void submit(struct h2c *c)
{
    struct h2b *hb = c->hb;
    const struct bench_opts *o = hb->b->o;
    while (c->up && !c->dead && !c->goaway && c->inflight < o->h2_streams && want_more(hb)) {
        struct req *r = calloc(1, sizeof(*r));
        if (r == NULL)
            return;
        r->t = bench_now_us();
        r->next = c->reqs;
        if (c->reqs != NULL)
            c->reqs->prev = r;
        c->reqs = r;
        const char *path = o->path != NULL ? o->path : "/";
        nghttp2_nv nv[] = {
            {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":authority", (uint8_t *)hb->authority, 10, strlen(hb->authority),
             NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE},
        };
        if (nghttp2_submit_request(c->sess, NULL, nv, 4, NULL, r) < 0) {
            unlink_req(c, r);
            return;
        }
        c->inflight++;
        hb->launched++;
        hb->b->res->started++;
    }
}

static void pump(struct h2c *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    while (!c->dead && evbuffer_get_length(out) < OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->sess, &data);
        if (n <= 0 || evbuffer_add(out, data, (size_t)n) != 0)
            break;
    }
}

static void conn_lost(struct h2c *c, const char *code, const char *detail)
{
    struct h2b *hb = c->hb;
    if (c->dead)
        return;
    c->dead = true;
    hb->alive--;
    if (c->inflight > 0 || !c->up) {
        /* bench_fail_note counts one; the other requests lost with the connection too */
        hb->b->res->failed += c->inflight > 1 ? c->inflight - 1 : 0;
        bench_fail_note(hb->b->res, code, detail);
    }
    c->inflight = 0;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (hb->alive == 0 || (hb->b->stopping && total_inflight(hb) == 0))
        finish(hb);
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    struct req *r = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (r != NULL && nlen == 7 && memcmp(name, ":status", 7) == 0 && vlen == 3)
        r->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    return 0;
}

static int on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                   size_t len, void *ud)
{
    (void)sess, (void)flags, (void)id, (void)data;
    struct h2c *c = ud;
    c->hb->b->res->bytes_down += len;
    return 0;
}

static int on_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud)
{
    struct h2c *c = ud;
    struct h2b *hb = c->hb;
    struct req *r = nghttp2_session_get_stream_user_data(sess, id);
    if (r == NULL)
        return 0;
    c->inflight--;
    if (code == NGHTTP2_REFUSED_STREAM) {
        /* Not processed (RFC 9113 §8.7): sent again on the next connection. */
        hb->launched--;
        hb->b->res->started--;
    } else if (code == NGHTTP2_NO_ERROR && r->status >= 200 && r->status < 300) {
        hb->b->res->ok++;
        (void)bench_samples_add(&hb->b->lat, bench_now_us() - r->t);
    } else {
        char detail[64];
        snprintf(detail, sizeof(detail), "status %d, stream error %s", r->status,
                 nghttp2_http2_strerror(code));
        bench_fail_note(hb->b->res, code != NGHTTP2_NO_ERROR ? "reset" : "http-status", detail);
    }
    unlink_req(c, r);
    submit(c);
    if (!want_more(hb) && total_inflight(hb) == 0)
        finish(hb);
    return 0;
}

static int on_frame(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)sess;
    struct h2c *c = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true; /* e.g. nginx after http2_max_requests: clients reconnect */
    return 0;
}

static int open_conn(struct h2c *c, struct tw_err *err);

/* After a GOAWAY, once the last stream ended: a new connection in this one's place. */
static void reopen(struct h2c *c)
{
    struct h2b *hb = c->hb;
    bufferevent_free(c->bev);
    nghttp2_session_del(c->sess);
    c->bev = NULL;
    c->sess = NULL;
    c->up = c->goaway = false;
    struct tw_err err;
    if (open_conn(c, &err) != 0) {
        c->dead = true;
        hb->alive--;
        bench_fail_note(hb->b->res, "connect", err.msg);
        if (hb->alive == 0)
            finish(hb);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct h2c *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    while (!c->dead && (n = evbuffer_get_contiguous_space(in)) > 0) {
        ssize_t got = nghttp2_session_mem_recv(c->sess, evbuffer_pullup(in, (ev_ssize_t)n), n);
        if (got < 0) {
            conn_lost(c, "protocol", nghttp2_strerror((int)got));
            return;
        }
        evbuffer_drain(in, (size_t)got);
    }
    if (c->goaway && c->inflight == 0 && !c->dead && want_more(c->hb)) {
        reopen(c);
        return;
    }
    pump(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct h2c *c = arg;
    if (!c->dead && c->sess != NULL)
        pump(c);
}

static void begin(struct h2b *hb)
{
    struct bench *b = hb->b;
    if (b->o->mode != BENCH_MODE_HOLD) /* HOLD: sampled before the first connection */
        sample(b, &b->res->before);
    b->cpu0 = bench_self_cpu_us();
    b->t0 = bench_now_us();
    b->measuring = true;
    if (b->o->duration_ms > 0 && b->o->mode != BENCH_MODE_HOLD) {
        struct timeval tv = {(time_t)(b->o->duration_ms / 1000),
                             (suseconds_t)(b->o->duration_ms % 1000) * 1000};
        event_add(b->stop_ev, &tv);
    }
    for (int i = 0; i < hb->n; i++) {
        submit(&hb->c[i]);
        if (!hb->c[i].dead)
            pump(&hb->c[i]);
    }
}

static int make_session(struct h2c *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    int rc = nghttp2_session_client_new(&c->sess, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    if (rc != 0 || nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 2) != 0)
        return -1;
    return 0;
}

static void on_event(struct bufferevent *bev, short events, void *arg)
{
    struct h2c *c = arg;
    struct h2b *hb = c->hb;
    if (events & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        const unsigned char *p = NULL;
        unsigned int n = 0;
        SSL_get0_alpn_selected(ssl, &p, &n);
        if (n != 2 || memcmp(p, "h2", 2) != 0) {
            conn_lost(c, "no-h2", "the server did not choose h2 by ALPN");
            return;
        }
        if (make_session(c) != 0) {
            conn_lost(c, "setup", "out of memory");
            return;
        }
        c->up = true;
        hb->b->res->full++;
        hb->b->res->tls_version = SSL_version(ssl);
        snprintf(hb->b->res->cipher, sizeof(hb->b->res->cipher), "%s", SSL_get_cipher_name(ssl));
        if (hb->b->measuring) { /* a replacement after GOAWAY */
            submit(c);
            pump(c);
            return;
        }
        pump(c);
        if (++hb->ready == hb->alive)
            begin(hb);
        return;
    }
    unsigned long e;
    char detail[160] = "the server closed the connection";
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        ERR_error_string_n(e, detail, sizeof(detail));
    bool was_up = c->up;
    if (c->goaway && c->inflight == 0 && !c->dead && want_more(hb)) {
        reopen(c); /* the server closed after its GOAWAY, as it may */
        return;
    }
    conn_lost(c, was_up ? "closed" : "connect", detail);
    if (!was_up && !hb->b->measuring && hb->ready == hb->alive && hb->alive > 0)
        begin(hb);
}

static int open_conn(struct h2c *c, struct tw_err *err)
{
    struct bench *b = c->hb->b;
    SSL *ssl = SSL_new(b->ctx);
    const char *name = b->o->server_name ? b->o->server_name : b->o->host;
    TW_ENSURE(ssl != NULL, err, TW_ERR_TLS, "cannot create a TLS connection");
    if (tlsx_client_ssl_setup(ssl, name, err) != 0 ||
        SSL_set_alpn_protos(ssl, (const unsigned char *)"\x02h2", 3) != 0) {
        SSL_free(ssl);
        return -1;
    }
    c->bev = bufferevent_openssl_socket_new(b->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    TW_ENSURE(c->bev != NULL, err, TW_ERR_INTERNAL, "out of memory");
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_HIGH / 4, 0);
    TW_ENSURE(bufferevent_socket_connect(c->bev, b->ai->ai_addr, (int)b->ai->ai_addrlen) == 0,
              err, TW_ERR_IO, "cannot connect to %s:%s", b->o->host, b->o->port);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct h2b *hb = arg;
    if (hb->b->o->mode == BENCH_MODE_HOLD) { /* the hold time is over */
        sample(hb->b, &hb->b->res->after);
        hb->b->stopping = true;
        event_base_loopbreak(hb->b->base);
        return;
    }
    hb->b->stopping = true;
    hb->b->res->hit_time_limit = true;
    if (total_inflight(hb) == 0)
        finish(hb);
}

static void on_hard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct h2b *hb = arg;
    hb->b->stopping = true;
    hb->b->res->hit_time_limit = true;
    finish(hb);
}

int bench_h2_run(struct bench *b, struct tw_err *err)
{
    const struct bench_opts *o = b->o;
    struct h2b hb = {.b = b, .n = o->mode == BENCH_MODE_HOLD ? o->hold : o->conns};
    if (o->mode == BENCH_MODE_HOLD)
        sample(b, &b->res->before);
    int rc = -1;
    snprintf(hb.authority, sizeof(hb.authority), "%s:%s",
             o->server_name ? o->server_name : o->host, o->port);
    hb.c = calloc((size_t)hb.n, sizeof(*hb.c));
    b->stop_ev = evtimer_new(b->base, on_stop, &hb);
    b->hard_ev = evtimer_new(b->base, on_hard, &hb);
    if (hb.c == NULL || b->stop_ev == NULL || b->hard_ev == NULL) {
        tw_err_set(err, TW_ERR_INTERNAL, "out of memory");
        goto out;
    }
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    int64_t hard = o->duration_ms > 0 ? o->duration_ms + timeout + 5000
                                      : (int64_t)BENCH_MAX_DURATION_S * 1000;
    struct timeval tv = {(time_t)(hard / 1000), (suseconds_t)(hard % 1000) * 1000};
    event_add(b->hard_ev, &tv);
    for (int i = 0; i < hb.n; i++) {
        hb.c[i].hb = &hb;
        if (open_conn(&hb.c[i], err) != 0)
            goto out;
        hb.alive++;
    }
    if (event_base_dispatch(b->base) < 0) {
        tw_err_set(err, TW_ERR_INTERNAL, "event loop failed");
        goto out;
    }
    finish(&hb);
    b->res->gave_up = b->res->ok == 0;
    rc = 0;
out:
    for (int i = 0; hb.c != NULL && i < hb.n; i++) {
        if (hb.c[i].bev != NULL)
            bufferevent_free(hb.c[i].bev);
        nghttp2_session_del(hb.c[i].sess);
        while (hb.c[i].reqs != NULL)
            unlink_req(&hb.c[i], hb.c[i].reqs);
    }
    free(hb.c);
    return rc;
}
