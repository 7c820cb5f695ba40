/* The HTTP/2 session of one client connection (see h2.h): nghttp2 does the framing, HPACK,
 * flow control and the protocol's validity rules (RFC 9113 §8.1.1 malformed requests,
 * §8.2.2 connection-specific fields); this file feeds it the client's bytes, writes what it
 * queues, and applies the gateway's limits:
 *   - SETTINGS: MAX_CONCURRENT_STREAMS (h2-max-concurrent-streams; more are refused),
 *     INITIAL_WINDOW_SIZE (h2-initial-window), MAX_HEADER_LIST_SIZE (max-header-bytes; a
 *     bigger list gets 431 from the stream code whatever the client does with the setting);
 *   - windows are opened only as request bytes reach the backend (no automatic
 *     WINDOW_UPDATE), so a slow backend never makes the gateway buffer without bound;
 *   - h2-max-streams requests per connection, then a graceful GOAWAY;
 *   - rapid reset (CVE-2023-44487): h2-max-resets client resets per second, as a token
 *     bucket of that size; CONTINUATION flood (CVE-2024-28182): at most 8 CONTINUATION frames
 *     per header block; SETTINGS/PING floods: at most 1000 queued acknowledgements, and none
 *     are written while the client's output is over buffer-size (so a client that does not
 *     read gets cut off); a SETTINGS frame of more than 32 entries is refused. */
#include "gateway/h2.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "util/buf.h"
#include "util/log.h"

/* The connection's receive window: request bodies of all streams together. */
#define CONN_WINDOW_MAX (16 * 1024 * 1024)

static struct gw_h2 *conn_h2(struct gw_conn *c)
{
    return c->h2;
}

/* Close once what is queued for the client has been written (GW_FLUSH_LIMIT_MS at most). */
static void close_after_flush(struct gw_h2 *h, const char *why)
{
    struct gw_conn *c = h->c;
    c->state = GW_CONN_FLUSH;
    c->close_reason = why;
    c->flush_target = c->client;
    bufferevent_disable(c->client, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(c->client)) == 0) {
        gw_conn_close(c, why);
        return;
    }
    bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
    c->deadline_ms = gw_now_ms() + GW_FLUSH_LIMIT_MS;
    gw_conn_arm_timer(c);
}

void gw_h2_pump(struct gw_h2 *h)
{
    struct gw_conn *c = h->c;
    if (h->in_send || c->state != GW_CONN_RELAY)
        return;
    h->in_send = true;
    struct evbuffer *out = bufferevent_get_output(c->client);
    while (h->fatal == NULL && evbuffer_get_length(out) < c->svc->buffer_high) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->sess, &data);
        if (n < 0) {
            h->fatal = nghttp2_strerror((int)n);
            break;
        }
        if (n == 0)
            break;
        if (evbuffer_add(out, data, (size_t)n) != 0) {
            h->fatal = "out of memory";
            break;
        }
        c->bytes_out += (uint64_t)n;
    }
    h->in_send = false;
    gw_h2_up_pump(h); /* window updates and resets for the backend, if it speaks h2 */
    if (h->fatal != NULL) {
        snprintf(c->detail, sizeof(c->detail), "http/2: %s", h->fatal);
        close_after_flush(h, "http/2 error");
        return;
    }
    /* After a GOAWAY (ours or the client's) and the last stream: nothing more to do. */
    if (!nghttp2_session_want_read(h->sess) && !nghttp2_session_want_write(h->sess))
        close_after_flush(h, h->goaway ? "goaway" : "client goaway");
}

/* ---- nghttp2 callbacks ---------------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    struct gw_h2 *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct gw_h2_stream *s = gw_h2_stream_new(h, frame->hd.stream_id);
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM for this one only */
    nghttp2_session_set_stream_user_data(sess, frame->hd.stream_id, s);
    h->requests++;
    /* The per-connection budget: this stream is served, later ones go to a new connection
     * (RFC 9113 §6.8: streams above last_stream_id are not processed). */
    if (h->requests >= h->c->svc->cfg->h2.max_streams && !h->goaway) {
        h->goaway = true;
        (void)nghttp2_submit_goaway(sess, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                    NGHTTP2_NO_ERROR, NULL, 0);
    }
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gw_h2_stream *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s != NULL)
        gw_h2_stream_header(s, name, nlen, value, vlen,
                            frame->headers.cat != NGHTTP2_HCAT_REQUEST);
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    struct gw_h2_stream *s = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        gw_h2_stream_head_done(s, end);
    else if (end)
        gw_h2_stream_end(s);
    return 0;
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    struct gw_h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s != NULL)
        gw_h2_stream_data(s, data, len);
    else
        (void)nghttp2_session_consume_connection(sess, len);
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *ud)
{
    (void)ud;
    struct gw_h2_stream *s = nghttp2_session_get_stream_user_data(sess, id);
    if (s != NULL)
        gw_h2_stream_closed(s, error_code);
    return 0;
}

/* ---- client bufferevent --------------------------------------------------------------------- */

static void client_read(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    struct gw_h2 *h = conn_h2(c);
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->state != GW_CONN_RELAY) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    c->last_io_ms = gw_now_ms();
    size_t n;
    while (h->fatal == NULL && (n = evbuffer_get_contiguous_space(in)) > 0) {
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)n);
        ssize_t got = p != NULL ? nghttp2_session_mem_recv(h->sess, p, n) : NGHTTP2_ERR_NOMEM;
        if (got < 0) {
            h->fatal = nghttp2_strerror((int)got);
            h->flood = got == NGHTTP2_ERR_FLOODED || got == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
            break;
        }
        evbuffer_drain(in, (size_t)got);
        c->bytes_in += (uint64_t)got;
    }
    if (h->fatal != NULL) {
        /* RFC 9113 §5.4.1: a connection error is announced with GOAWAY before the close
         * (nghttp2 may have queued one already; then this adds nothing). Floods get
         * ENHANCE_YOUR_CALM, everything else PROTOCOL_ERROR. */
        const char *why = h->fatal;
        h->fatal = NULL;
        (void)nghttp2_session_terminate_session(h->sess, h->flood ? NGHTTP2_ENHANCE_YOUR_CALM
                                                                  : NGHTTP2_PROTOCOL_ERROR);
        gw_h2_pump(h);
        if (c->state == GW_CONN_RELAY) {
            snprintf(c->detail, sizeof(c->detail), "http/2: %s", why);
            close_after_flush(h, "http/2 error");
        }
        return;
    }
    gw_h2_pump(h);
}

static void client_write(struct bufferevent *bev, void *arg)
{
    struct gw_conn *c = arg;
    if (c->state == GW_CONN_FLUSH) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            gw_conn_close(c, c->close_reason);
        return;
    }
    gw_h2_pump(conn_h2(c));
}

static void client_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    (void)events;
    struct gw_conn *c = arg;
    ERR_clear_error();
    while (bufferevent_get_openssl_error(c->client) != 0)
        ;
    gw_conn_close(c, "client closed");
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static int make_session(struct gw_h2 *h, struct tw_err *err)
{
    const struct gw_service *cfg = h->c->svc->cfg;
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->h2.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->h2.initial_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->limits.max_header_bytes},
    };
    const struct gw_h2_setup setup = {
        .server = true,
        .begin_headers = on_begin_headers,
        .header = on_header,
        .frame_recv = on_frame_recv,
        .data_chunk = on_data_chunk,
        .stream_close = on_stream_close,
        .settings = iv,
        .n_settings = sizeof(iv) / sizeof(iv[0]),
        .max_resets = cfg->h2.max_resets,
    };
    TW_GUARD(gw_h2_session_new(&h->sess, &setup, h, err));
    uint64_t conn_window = (uint64_t)cfg->h2.initial_window * 4;
    if (conn_window > CONN_WINDOW_MAX)
        conn_window = CONN_WINDOW_MAX;
    TW_ENSURE(nghttp2_session_set_local_window_size(h->sess, NGHTTP2_FLAG_NONE, 0,
                                                    (int32_t)conn_window) == 0,
              err, TW_ERR_INTERNAL, "http/2 connection window failed");
    return 0;
}

int gw_h2_start(struct gw_conn *c, struct tw_err *err)
{
    struct gw_h2 *h = calloc(1, sizeof(*h));
    TW_ENSURE(h != NULL, err, TW_ERR_INTERNAL, "out of memory");
    h->c = c;
    c->h2 = h;
    struct tw_buf lines;
    tw_buf_init(&lines, GW_HTTP_MAX_INJECT);
    if (gw_relay_identity_lines(c, &lines, err) != 0) {
        tw_buf_free(&lines);
        return -1;
    }
    h->inject = (char *)lines.data; /* handed over */
    h->inject_len = lines.len;
    gw_relay_host_rule(c, &h->hosts, &h->n_hosts);
    TW_GUARD(make_session(h, err));
    c->state = GW_CONN_RELAY;
    c->last_io_ms = gw_now_ms();
    bufferevent_setcb(c->client, client_read, client_write, client_event, c);
    bufferevent_setwatermark(c->client, EV_READ, 0, c->svc->buffer_high);
    bufferevent_setwatermark(c->client, EV_WRITE, c->svc->buffer_low, 0);
    bufferevent_enable(c->client, EV_READ | EV_WRITE);
    gw_conn_arm_timer(c);
    /* The client's preface may already be waiting. */
    if (evbuffer_get_length(bufferevent_get_input(c->client)) > 0)
        client_read(c->client, c);
    else
        gw_h2_pump(h);
    return 0;
}

void gw_h2_free(struct gw_h2 *h)
{
    if (h == NULL)
        return;
    while (h->streams != NULL)
        gw_h2_stream_free(h->streams);
    gw_h2_up_free(h->up);
    nghttp2_session_del(h->sess);
    free(h->inject);
    free(h);
}

void gw_h2_goaway(struct gw_conn *c, bool cut, const char *why)
{
    struct gw_h2 *h = c->h2;
    if (c->state != GW_CONN_RELAY)
        return;
    if (!h->goaway) {
        /* RFC 9113 §6.8: streams up to the last one begun are still answered (drain); a cut
         * ends them with the connection. The debug data says why, for the client's logs. */
        h->goaway = true;
        (void)nghttp2_submit_goaway(h->sess, NGHTTP2_FLAG_NONE,
                                    nghttp2_session_get_last_proc_stream_id(h->sess),
                                    NGHTTP2_NO_ERROR, (const uint8_t *)why, strlen(why));
    }
    if (!cut) {
        gw_h2_pump(h);
        return;
    }
    /* Write the GOAWAY (and only what is queued before it), then close. */
    struct evbuffer *out = bufferevent_get_output(c->client);
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(h->sess, &data)) > 0 &&
           evbuffer_get_length(out) < c->svc->buffer_high)
        (void)evbuffer_add(out, data, (size_t)n);
    close_after_flush(h, why);
}

uint64_t gw_h2_requests(const struct gw_h2 *h)
{
    return h->requests;
}
