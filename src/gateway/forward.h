/* Identity forwarding in HTTP mode: the header lines that tell the backend who the client is,
 * computed once per connection from the verified client certificate and handed to the HTTP
 * processor (gw_http_params.inject), which adds them to every request.
 *
 *   rfc9440: Client-Cert: :<base64 DER>:                      (RFC 9440 §2.2, sf-binary)
 *            Client-Cert-Chain: :<b64 DER>:, :<b64 DER>:      (§2.3, when asked; the
 *            intermediates the client sent, leaf excluded, in the order sent)
 *   xfcc:    X-Forwarded-Client-Cert: Hash=<sha256 hex>;Subject="<RFC 2253 DN>";
 *            URI=<uri>;...;DNS=<dns>;...;Cert="<url-encoded PEM>"   (Envoy's format)
 *
 * Every value is printable ASCII with no CR/LF: base64, hex, URL-encoding and RFC 2253
 * escaping guarantee it; a SAN that holds control or non-ASCII bytes is left out rather than
 * forwarded half-escaped. Pure logic: OpenSSL getters and encoders only. */
#ifndef TW_GATEWAY_FORWARD_H
#define TW_GATEWAY_FORWARD_H

#include <openssl/x509.h>

#include "util/buf.h"
#include "util/err.h"

/* What to forward; combine with |. */
#define GW_FWD_CLIENT_CERT 0x1u       /* RFC 9440 Client-Cert */
#define GW_FWD_CLIENT_CERT_CHAIN 0x2u /* RFC 9440 Client-Cert-Chain (needs chain) */
#define GW_FWD_XFCC 0x4u              /* Envoy-style X-Forwarded-Client-Cert */

/* Append the header lines selected by flags, each "Name: value\r\n", to out.
 * cert: the client's verified leaf certificate (required).
 * chain: what the client sent after its leaf (SSL_get_peer_cert_chain on the server side may
 *   or may not include the leaf: a certificate equal to cert is skipped). NULL or empty: no
 *   Client-Cert-Chain line is written (e.g. on a resumed session, where OpenSSL keeps only
 *   the leaf).
 * TW_ERR_INTERNAL when encoding fails, TW_ERR_IO when out's limit would be exceeded; out may
 * then hold a partial line and should be discarded. */
int gw_forward_headers(struct tw_buf *out, X509 *cert, STACK_OF(X509) *chain, unsigned flags,
                       struct tw_err *err) TW_MUST_CHECK;

/* The single values, without the header name and CRLF (appended to out; used by
 * gw_forward_headers and tests). */

/* ":<base64 of cert's DER>:" */
int gw_forward_rfc9440_cert(struct tw_buf *out, X509 *cert, struct tw_err *err) TW_MUST_CHECK;

/* ":<b64>:, :<b64>:" for every certificate of chain not equal to leaf; appends nothing when
 * there is none. */
int gw_forward_rfc9440_chain(struct tw_buf *out, X509 *leaf, STACK_OF(X509) *chain,
                             struct tw_err *err) TW_MUST_CHECK;

/* Hash=...;Subject="...";URI=...;DNS=...;Cert="..." (URI and DNS once per SAN, quoted only
 * when they hold , ; = or a space; '"' and '\' inside a quoted value are backslash-escaped). */
int gw_forward_xfcc(struct tw_buf *out, X509 *cert, struct tw_err *err) TW_MUST_CHECK;

#endif
