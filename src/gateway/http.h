/* HTTP mode: a streaming HTTP/1.x request-stream processor, one per client connection.
 *
 * The core feeds it every byte read from the (TLS-terminated) client; it parses requests with
 * http-parser and appends to an output evbuffer (normally the backend's bufferevent output)
 * what the backend should see:
 *   - each request head rebuilt from what was parsed: the request line, then every client
 *     header except the identity headers (Client-Cert, Client-Cert-Chain,
 *     X-Forwarded-Client-Cert, in any case, plus the extra names in params->strip), then the
 *     connection's identity header lines (params->inject), then the blank line. Every request
 *     of a keep-alive or pipelined connection gets them, so a client can never spoof an
 *     identity and never reach the backend without one.
 *   - bodies streamed as they arrive (never buffered whole): Content-Length bodies byte for
 *     byte; chunked bodies re-framed exactly as parsed (chunk sizes, data, trailers with the
 *     same header filter), so the backend frames the message the way the gateway did.
 *   - `Expect: 100-continue` is passed through; the backend answers it.
 * Request smuggling defences (beyond what http-parser rejects itself), each a 400: both
 * Content-Length and Transfer-Encoding; a repeated Content-Length; a Transfer-Encoding that does
 * not end in "chunked", or in an HTTP/1.0 request; framing fields that disagree with how
 * http-parser framed the message; obs-fold (continuation lines); a bare CR; header names that
 * are not tokens; control characters in values; a missing (HTTP/1.1, or whenever the Host check
 * is on) or repeated Host; CONNECT; HTTP versions other than 1.0 and 1.1; a Connection header
 * naming an identity header (a hop-by-hop trick to make a later proxy drop it). An Upgrade to
 * anything but WebSocket is not rejected: its Upgrade header is removed, so the backend cannot
 * switch protocols behind the gateway's back. Trailers lose identity and framing fields.
 *
 * Pure logic: no sockets, no event loop; only evbuffers. Not thread-safe (one per connection,
 * used by the connection's worker thread). */
#ifndef TW_GATEWAY_HTTP_H
#define TW_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct evbuffer;

/* Default limits (named so tests and the config can refer to them). */
/* request line + header block of one request -> 431 (http-parser itself stops at 80 KiB) */
#define GW_HTTP_MAX_HEADER_BYTES 32768
#define GW_HTTP_MAX_HEADERS 100        /* header fields in one request (trailers too) -> 431 */
#define GW_HTTP_MAX_INJECT 65536       /* identity header lines injected per request */

enum gw_http_result {
    GW_HTTP_OK = 0, /* input consumed, output appended (maybe nothing yet): keep reading */
    GW_HTTP_TUNNEL, /* an Upgrade (WebSocket) request was forwarded; see gw_http_process */
    GW_HTTP_REJECT, /* send gw_http_error_response(gw_http_status(h)) and close */
};

struct gw_http_params {
    /* Names the SNI-selected service answers to (the Host check). A request whose Host (port
     * stripped, case-insensitive; also the authority of an absolute-form target) is not one of
     * them gets 421. An entry "*.example.com" matches exactly one label in front of
     * example.com. n_hosts == 0 disables the check. Borrowed: must outlive the processor. */
    const char *const *hosts;
    size_t n_hosts;
    /* Extra header names to remove from requests, beside the built-in identity headers.
     * Case-insensitive. Borrowed: must outlive the processor. */
    const char *const *strip;
    size_t n_strip;
    /* Header lines added to every request, each "Name: value\r\n" (as built by
     * gw_forward_headers in forward.h). Copied by gw_http_new. NULL/0: none. */
    const char *inject;
    size_t inject_len;
    /* Limits; 0 means the defaults above. */
    size_t max_header_bytes;
    size_t max_headers;
};

struct gw_http;

/* A processor for one connection, in its initial state. NULL with TW_ERR_CONFIG when
 * inject_len exceeds GW_HTTP_MAX_INJECT or inject is not made of complete CRLF-terminated
 * lines, TW_ERR_INTERNAL on allocation failure. */
struct gw_http *gw_http_new(const struct gw_http_params *params, struct tw_err *err);

/* Release. NULL is a no-op. */
void gw_http_free(struct gw_http *h);

/* Process len bytes from the client; append what the backend should see to out.
 * OK:     all len bytes consumed (*used == len). Bytes that cannot be acted on yet (part of a
 *         request head) are held inside, bounded by the header limit.
 * TUNNEL: a WebSocket Upgrade request (head and body, if any) has been appended to out; the
 *         first *used bytes were HTTP, the rest (len - *used) are the first bytes of the tunnel
 *         and have NOT been consumed. From now on the connection is a raw tunnel both ways
 *         and the processor must not be fed again (it returns REJECT with 500 if it is).
 *         SECURITY: the core must not forward tunnel bytes to the backend until the backend's
 *         response starts with 101 (gw_http_upgrade_accepted); if it answers anything else,
 *         relay that response and close, otherwise a client could send unfiltered requests.
 * REJECT: nothing more may be sent to the backend for this connection; answer the client with
 *         gw_http_error_response(gw_http_status(h)) and close. Output appended before the
 *         failing request (earlier pipelined requests) may already be in out.
 * A request after one with "Connection: close" (or HTTP/1.0 without keep-alive) is discarded:
 * the backend closes after answering the last one. Returns REJECT/500 if out cannot grow. */
enum gw_http_result gw_http_feed(struct gw_http *h, const void *data, size_t len,
                                 struct evbuffer *out, size_t *used);

/* Same, reading from an evbuffer (e.g. the client bufferevent's input): drains the bytes it
 * consumed. After TUNNEL, what is left in `in` is the first bytes of the tunnel. */
enum gw_http_result gw_http_process(struct gw_http *h, struct evbuffer *in, struct evbuffer *out);

/* After REJECT: the HTTP status for the client (400, 421, 431 or 500). 0 before. */
int gw_http_status(const struct gw_http *h);

/* After REJECT: a short reason for the access log ("header block too large",
 * "Host does not match the service", "Content-Length with Transfer-Encoding", ...). "" before. */
const char *gw_http_reason(const struct gw_http *h);

/* Number of request heads forwarded so far (for the access log). */
uint64_t gw_http_requests(const struct gw_http *h);

/* 1 when the processor is between requests (no head or body partly received): a good moment
 * for the core to close an idle keep-alive connection or finish a graceful drain. */
int gw_http_idle(const struct gw_http *h);

/* The complete canned response for status (400, 403, 421, 431, 500, 502, 503, 504; anything
 * else gives 500): status line, Content-Type: text/plain, Content-Length,
 * Connection: close, and a one-line text body. Static storage; *len gets its length. */
const char *gw_http_error_response(int status, size_t *len);

/* After TUNNEL: look at the first bytes the backend sent back. 1 when they begin with an
 * "HTTP/1.1 101" status line (the upgrade was accepted: tunnel both ways), 0 when they are
 * anything else (refused: relay the response, then close), -1 when fewer than 13 bytes have
 * arrived yet (wait for more). */
int gw_http_upgrade_accepted(const void *data, size_t len);

/* The Host check on its own (also used by the processor): 1 when host (a Host header value
 * or an absolute-form authority: "name", "name:port", "[v6]" or "[v6]:port"; a trailing dot is
 * ignored) names one of hosts, compared case-insensitively, "*.example.com" matching exactly
 * one label in front. 0 when it does not, or when it is malformed (bad port, empty name). */
int gw_http_host_allowed(const char *const *hosts, size_t n_hosts, const char *host, size_t len);

/* The version-neutral field rule (HTTP/1.1 and HTTP/2 requests alike): true when a request
 * field called name (len bytes, any case) must not reach the backend from the client: the
 * identity headers (Client-Cert, Client-Cert-Chain, X-Forwarded-Client-Cert) and the extra
 * names in strip. */
bool gw_http_name_stripped(const char *const *strip, size_t n_strip, const char *name, size_t len);

/* Is name (len bytes, any case) longer than "Transfer-Encoding" but starting with it? Such a
 * field is refused: http-parser 2.9 (Node.js, many C servers) takes it for Transfer-Encoding,
 * so a backend would frame the request differently from the gateway. */
bool gw_http_name_mimics_te(const char *name, size_t len);

#endif
