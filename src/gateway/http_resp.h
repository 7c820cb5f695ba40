/* HTTP/1.1 response reader: what a backend answers, turned into a version-neutral response
 * (status, header list, body bytes, trailers) for a front end that is not HTTP/1.1 (the
 * HTTP/2 codec, h2_*.c). Private to src/gateway/.
 *
 * It parses with http-parser and calls back with:
 *   head:     the final status (1xx interim responses are skipped; 101 is refused because the
 *             request never asked to switch protocols) and its fields, names lower-cased
 *             (RFC 9113 §8.2.1) and the connection-specific ones removed (§8.2.2: Connection
 *             and what it lists, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE).
 *   body:     bytes of the body as they arrive, de-chunked.
 *   trailers: the trailer section of a chunked body (same filter; framing fields dropped).
 *   end:      the response is complete (at the framing's end, or at EOF for a body delimited
 *             by the connection's close).
 * A callback returning -1 stops the reader (the feed returns -1 with reason "stopped").
 * Pure logic: no sockets. */
#ifndef TW_GATEWAY_HTTP_RESP_H
#define TW_GATEWAY_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* A header field: name lower-case; both point into the reader's storage, valid during the
 * callback only. */
struct gw_hdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct gw_http_resp_cb {
    int (*head)(void *arg, int status, const struct gw_hdr *h, size_t n);
    int (*body)(void *arg, const uint8_t *data, size_t len);
    int (*trailers)(void *arg, const struct gw_hdr *h, size_t n);
    int (*end)(void *arg);
};

/* Limits of one response head (and of its trailer section). */
#define GW_HTTP_RESP_MAX_BYTES 65536
#define GW_HTTP_RESP_MAX_FIELDS 200

struct gw_http_resp;

/* A reader for the response to one request. head_request: the request was HEAD (no body
 * follows whatever the fields say, RFC 9110 §9.3.2). cb is copied. NULL with
 * TW_ERR_INTERNAL on allocation failure. */
struct gw_http_resp *gw_http_resp_new(const struct gw_http_resp_cb *cb, void *arg,
                                      bool head_request, struct tw_err *err);
void gw_http_resp_free(struct gw_http_resp *r);
/* Make r a reader for a new response, as gw_http_resp_new would, keeping its storage (the
 * next request on a stream or connection allocates nothing). */
void gw_http_resp_reset(struct gw_http_resp *r, const struct gw_http_resp_cb *cb, void *arg,
                        bool head_request);

/* Feed backend bytes. 0: consumed (callbacks made). -1: malformed, too large, or a callback
 * stopped it; gw_http_resp_reason says which. Bytes after the end of the response are
 * ignored (and the connection is then not kept, see gw_http_resp_keep_alive). */
int gw_http_resp_feed(struct gw_http_resp *r, const void *data, size_t len) TW_MUST_CHECK;

/* The backend closed the connection. 0 when that completed the response (end was called) or
 * it had already ended; -1 when the response was cut short. */
int gw_http_resp_eof(struct gw_http_resp *r) TW_MUST_CHECK;

/* 1 once the head callback ran / once end ran. */
bool gw_http_resp_started(const struct gw_http_resp *r);
bool gw_http_resp_done(const struct gw_http_resp *r);

/* After the end: whether the backend connection can carry another request: the backend keeps
 * it open (HTTP/1.1 without "Connection: close", RFC 9112 §9.3) and nothing was fed after the
 * response (bytes nobody asked for would be taken for the next request's answer). */
bool gw_http_resp_keep_alive(const struct gw_http_resp *r);

/* After -1: a short reason for the log ("malformed response", "response head too large",
 * "unexpected 101 response", "response cut short"). */
const char *gw_http_resp_reason(const struct gw_http_resp *r);

#endif
