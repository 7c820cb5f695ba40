/* HTTP/2 on the client side (RFC 9113), with nghttp2: one session per connection that chose
 * "h2" by ALPN; each request stream becomes one HTTP/1.1 exchange with the backend. Private
 * to src/gateway/.
 *
 *   h2_setup.c    the nghttp2 session set-up both sides share (options, first SETTINGS).
 *   h2_session.c  the nghttp2 session over the client's TLS bufferevent: settings and limits,
 *                 frames in and out, the stream table, GOAWAY.
 *   h2_stream.c   one stream: its request checked and kept as a header list (identity
 *                 headers stripped and injected, :authority vs SNI, limits), the response
 *                 fed back to the client through flow control, the access-log line.
 *   h2_h1.c       backend-protocol = http1: the stream as one HTTP/1.1 exchange on a backend
 *                 connection of its own (the response read by http_resp.h).
 *   h2_upstream.c backend-protocol = h2: one HTTP/2 backend connection per client connection,
 *                 each client stream one backend stream (gRPC: trailers, streaming both ways,
 *                 flow control end to end, RST_STREAM both ways).
 *
 * Reentrancy rule: nothing is freed inside an nghttp2 callback except through nghttp2's own
 * stream close; the connection is closed only after nghttp2_session_mem_recv/mem_send
 * returned (h->fatal records why). */
#ifndef TW_GATEWAY_H2_H
#define TW_GATEWAY_H2_H

#include <nghttp2/nghttp2.h>

#include "gateway/internal.h"

struct gw_h2_stream;
struct gw_h2_up;

/* A header list with its own storage: names and values copied, nv pointing into buf. */
struct gw_nvlist {
    char *buf;
    size_t used, cap;
    nghttp2_nv *nv;
    size_t n, cap_n;
};
int gw_nvlist_add(struct gw_nvlist *l, const char *name, size_t nlen, const char *value,
                  size_t vlen) TW_MUST_CHECK;
void gw_nvlist_clear(struct gw_nvlist *l);
void gw_nvlist_free(struct gw_nvlist *l);

struct gw_h2 {
    struct gw_conn *c;
    nghttp2_session *sess;
    struct gw_h2_stream *streams; /* open streams (intrusive list) */
    size_t nstreams;
    uint64_t requests; /* streams that began a request */
    char *inject;      /* identity header lines, "Name: value\r\n" each */
    size_t inject_len;
    struct gw_h2_up *up;        /* backend-protocol = h2: the backend connection, or NULL */
    const char *const *hosts; /* the :authority check (see gw_http_params.hosts) */
    size_t n_hosts;
    bool goaway;        /* GOAWAY submitted: close once the last stream is done */
    const char *fatal;  /* close the connection after the current nghttp2 call */
    bool flood;         /* fatal was a flood (GOAWAY ENHANCE_YOUR_CALM) */
    bool in_send;       /* guards against re-entering the send pump */
};

/* One request stream. Streams are recycled through a per-worker list of spares (h2_stream.c):
 * everything before the kept storage at the end is zeroed for each request, the storage is
 * kept, emptied, so that a request allocates nothing of its own in the common case. */
struct gw_h2_stream {
    struct gw_h2_stream *prev, *next;
    struct gw_h2 *h;
    int32_t id;
    /* request: the pseudo-header fields and Host point into s->pseudo (NULL: absent) */
    const char *method, *path, *authority, *host;
    bool te_trailers; /* the client sent "te: trailers" (passed on to an h2 backend) */
    size_t hdr_bytes, n_hdrs;
    int refuse; /* answer this status instead of forwarding */
    const char *detail;
    bool ended;        /* the client's END_STREAM arrived */
    size_t unconsumed; /* request bytes not yet acknowledged to the client's window */
    /* backend (h2_h1.c) */
    struct bufferevent *bev;
    bool chunked, connected, paused;
    bool reused;   /* the backend connection came from the pool */
    bool bodyless; /* the request had no body: safe to send again on a fresh connection */
    bool direct;   /* a pooled plaintext connection, read through s->rd (h2_h1.c) */
    struct gw_http_resp *resp; /* the reader in use (s->resp_mem), or NULL */
    /* backend (h2_upstream.c) */
    int32_t up_id;  /* the open backend stream, 0 when none */
    int32_t up_sid; /* the backend stream ever used (window accounting after its close) */
    size_t up_owed; /* response bytes received from the backend, not yet consumed */
    bool up_deferred;
    bool up_wait; /* backend-protocol = auto: waiting for the backend's ALPN choice */
    /* both */
    bool submitted, resp_end, deferred;
    int status;
    uint64_t bytes_in, bytes_out;
    int64_t started_ms;
    /* Kept storage (C11 anonymous struct, last): emptied, not freed, between requests. */
    struct {
        struct gw_nvlist pseudo;  /* :method, :path, :authority and Host, as received */
        struct gw_nvlist fields;  /* regular fields kept for the backend, in order */
        struct evbuffer *cookie;  /* crumbs joined (RFC 9113 §8.2.3) */
        struct gw_nvlist trailers;
        struct evbuffer *req_body; /* h2 backend: request bytes waiting for its window */
        struct gw_nvlist up_head;  /* the backend's response head as it arrives */
        struct event *timer;       /* see gw_h2_stream_timer */
        struct evbuffer *body;     /* response bytes waiting for the client's window */
        struct gw_nvlist rtrail;
        struct gw_http_resp *resp_mem; /* h2_h1.c's response reader, NULL until first used */
        struct event *rd;              /* h2_h1.c's direct reads, NULL until first used */
    };
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

/* h2_stream.c: used by the backend sides. */
const struct gw_svc *gw_h2_stream_svc(const struct gw_h2_stream *s);
/* The stream's timer, set to call cb with s (the backend side that arms it); an earlier
 * setting of another side is disarmed. NULL when out of memory. */
struct event *gw_h2_stream_timer(struct gw_h2_stream *s, event_callback_fn cb);
/* Answer with a status of the gateway's own (or reset the stream when the response has
 * begun). */
void gw_h2_stream_error(struct gw_h2_stream *s, int status, const char *why);
/* Submit the response head (nv[0] is :status); end: no body follows. -1 when nghttp2 refused. */
int gw_h2_stream_respond(struct gw_h2_stream *s, int status, const nghttp2_nv *nv, size_t n,
                         bool end);
/* More response bytes / the response is complete (trailers, if any, are in s->rtrail). */
int gw_h2_stream_body(struct gw_h2_stream *s, const uint8_t *data, size_t len);
void gw_h2_stream_done(struct gw_h2_stream *s);

/* h2_h1.c */
int gw_h2_h1_start(struct gw_h2_stream *s, const char *authority, struct tw_err *err)
    TW_MUST_CHECK;
void gw_h2_h1_data(struct gw_h2_stream *s, const uint8_t *data, size_t len);
void gw_h2_h1_end(struct gw_h2_stream *s);
void gw_h2_h1_stop(struct gw_h2_stream *s);
/* Response bytes left the stream's buffer: resume backend reads below the low mark. */
void gw_h2_h1_drained(struct gw_h2_stream *s);
/* backend-protocol = auto chose HTTP/1.1 while s waited: start it with its waiting request
 * bytes. */
int gw_h2_h1_adopt(struct gw_h2_stream *s, struct tw_err *err) TW_MUST_CHECK;
/* Keep an idle HTTP/1.1 backend connection for the next stream (or close it when full). */
void gw_h2_h1_pool_add(struct gw_h2 *h, struct bufferevent *bev);

/* h2_upstream.c */
/* Whether s's request goes to the backend over HTTP/2 (backend-protocol = h2, or auto where the
 * backend is known or hoped to choose h2). */
bool gw_h2_up_wanted(const struct gw_svc *svc);
int gw_h2_up_start(struct gw_h2_stream *s, const char *authority, struct tw_err *err)
    TW_MUST_CHECK;
void gw_h2_up_data(struct gw_h2_stream *s, const uint8_t *data, size_t len);
void gw_h2_up_end(struct gw_h2_stream *s);
/* The client stream is going away: reset its backend stream. */
void gw_h2_up_stop(struct gw_h2_stream *s);
/* n response bytes reached the client's window: open the backend's by as much. */
void gw_h2_up_consumed(struct gw_h2_stream *s, size_t n);
void gw_h2_up_pump(struct gw_h2 *h);
void gw_h2_up_free(struct gw_h2_up *up);

/* h2_setup.c: what differs between the client-facing session and the backend one. */
#define GW_H2_MAX_SETTINGS 8
struct gw_h2_setup {
    bool server;
    nghttp2_on_begin_headers_callback begin_headers; /* NULL: none */
    nghttp2_on_header_callback header;
    nghttp2_on_frame_recv_callback frame_recv;
    nghttp2_on_data_chunk_recv_callback data_chunk;
    nghttp2_on_stream_close_callback stream_close;
    const nghttp2_settings_entry *settings; /* the first SETTINGS frame (at most 8 entries) */
    size_t n_settings;
    uint32_t max_resets; /* server: client resets per second (rapid reset) */
};
/* A new nghttp2 session with the gateway's common options and its first SETTINGS frame queued
 * (setup's entries plus SETTINGS_NO_RFC7540_PRIORITIES); *out is NULL on failure. */
int gw_h2_session_new(nghttp2_session **out, const struct gw_h2_setup *setup, void *ud,
                      struct tw_err *err) TW_MUST_CHECK;

/* h2_session.c: used by streams. */
/* Write what nghttp2 has queued to the client (bounded by the client's output buffer). */
void gw_h2_pump(struct gw_h2 *h);

#endif
