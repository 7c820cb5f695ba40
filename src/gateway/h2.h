/* HTTP/2 on the client side (RFC 9113), with nghttp2: one session per connection that chose
 * "h2" by ALPN; each request stream becomes one HTTP/1.1 exchange with the backend. Private
 * to src/gateway/.
 *
 *   h2_session.c  the nghttp2 session over the client's TLS bufferevent: settings and limits,
 *                 frames in and out, the stream table, GOAWAY.
 *   h2_stream.c   one stream: its request checked and rebuilt for the backend (identity
 *                 headers stripped and injected, :authority vs SNI, limits), the backend
 *                 exchange, the response (http_resp.h) fed back through flow control.
 *
 * Reentrancy rule: nothing is freed inside an nghttp2 callback except through nghttp2's own
 * stream close; the connection is closed only after nghttp2_session_mem_recv/mem_send
 * returned (h->fatal records why). */
#ifndef TW_GATEWAY_H2_H
#define TW_GATEWAY_H2_H

#include <nghttp2/nghttp2.h>

#include "gateway/internal.h"

struct gw_h2_stream;

struct gw_h2 {
    struct gw_conn *c;
    nghttp2_session *sess;
    struct gw_h2_stream *streams; /* open streams (intrusive list) */
    size_t nstreams;
    uint64_t requests; /* streams that began a request */
    char *inject;      /* identity header lines, "Name: value\r\n" each */
    size_t inject_len;
    const char *const *hosts; /* the :authority check (see gw_http_params.hosts) */
    size_t n_hosts;
    bool goaway;        /* GOAWAY submitted: close once the last stream is done */
    const char *fatal;  /* close the connection after the current nghttp2 call */
    bool flood;         /* fatal was a flood (GOAWAY ENHANCE_YOUR_CALM) */
    bool in_send;       /* guards against re-entering the send pump */
};

/* h2_stream.c: called from the session's nghttp2 callbacks. */
struct gw_h2_stream *gw_h2_stream_new(struct gw_h2 *h, int32_t id);
/* A request header (pseudo or regular) as nghttp2 validated it (RFC 9113 §8.2.1, §8.3.1). */
void gw_h2_stream_header(struct gw_h2_stream *s, const uint8_t *name, size_t nlen,
                         const uint8_t *value, size_t vlen, bool trailer);
/* The request head is complete (end: no body follows): answer or start the backend. */
void gw_h2_stream_head_done(struct gw_h2_stream *s, bool end);
void gw_h2_stream_data(struct gw_h2_stream *s, const uint8_t *data, size_t len);
/* The request ended (END_STREAM on DATA or on a trailer section). */
void gw_h2_stream_end(struct gw_h2_stream *s);
/* nghttp2 closed the stream: log it and release everything (also on RST_STREAM). */
void gw_h2_stream_closed(struct gw_h2_stream *s, uint32_t error_code);
/* The client connection is going away: release without logging a response. */
void gw_h2_stream_free(struct gw_h2_stream *s);

/* h2_session.c: used by streams. */
/* Write what nghttp2 has queued to the client (bounded by the client's output buffer). */
void gw_h2_pump(struct gw_h2 *h);

#endif
