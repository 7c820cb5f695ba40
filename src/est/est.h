/* est: the CA as a network service and the client side that uses it.
 *
 * Server (`twoway ca serve`): HTTPS on libevent (evhttp over bufferevent_openssl) serving
 * EST (RFC 7030) under /.well-known/est/[client|server/], the CRL at /crl, an OCSP responder
 * (RFC 6960) at /ocsp, and /healthz. Single-threaded: every request sees the inventory as it is
 * at that moment, so a `twoway ca revoke` from another process shows in the next answer.
 *
 * Client (`twoway enroll`, `twoway renew`): blocking HTTPS requests through libcurl (so
 * HTTPS_PROXY / NO_PROXY and CONNECT proxies work) with twoway's own TLS set-up, the
 * bootstrap of trust by root fingerprint, and the EST operations. */
#ifndef TW_EST_H
#define TW_EST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki/pki.h"
#include "tlsx/tlsx.h"
#include "util/err.h"

/* Limits on outside input. */
#define EST_BODY_MAX (128u * 1024)          /* bytes of a request body (base64 CSR, OCSP) */
#define EST_HEADERS_MAX 8192                /* bytes of request headers */
#define EST_TIMEOUT_SECS 15                 /* idle seconds before a connection is dropped */
#define EST_RESPONSE_MAX (4u * 1024 * 1024) /* bytes of a response the client accepts */
#define EST_RATE_DEFAULT 20.0               /* requests per second per client address */
#define EST_BURST_DEFAULT 40.0              /* requests a client may send at once */
#define EST_RETRY_AFTER_DEFAULT 60          /* seconds a client waits before asking again */
#define EST_PENDING_MAX_DEFAULT 1000        /* enrollment requests waiting for approval */

/* ------------------------------------------------------------------------------------------ */
/* Server                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* A request handed to an extension of the HTTPS listener (the console). Opaque; read it with the
 * est_req_* accessors below and answer it exactly once with est_req_reply. */
struct est_req;

/* Paths under prefix ("/api/v1/") on the HTTPS listener go to run(arg, r), any method evhttp
 * accepts (GET, HEAD, POST); never on the plain HTTP listener. */
struct est_ext {
    const char *prefix;
    void (*run)(void *arg, struct est_req *r);
    void *arg;
};

#define EST_EXT_MAX 4 /* extensions one server takes */

struct est_server_opts {
    struct pki_ca *ca;                 /* unlocked (signs certificates and CRLs); borrowed */
    struct pki_signer *ocsp_signer;    /* the OCSP signing certificate and key; borrowed */
    const char *listen;                /* "127.0.0.1:8443", "[::1]:8443", "0.0.0.0:8443"; port 0:
                                        * any free port (the readiness line names it) */
    const char *http_listen;           /* NULL: none; else a second, plaintext listener for
                                        * what relying parties fetch (RFC 5280 §4.2.1.13, RFC
                                        * 6960 appendix A): /crl, /ocsp, /ca.crt, /chain.pem */
    const struct pki_sans *extra_sans; /* more SANs for the server certificate; may be NULL */
    double rate;                       /* requests/second per client address; <= 0: default */
    double burst;                      /* <= 0: default */
    FILE *access_log;                  /* one JSON line per request; NULL: none */
    int64_t ocsp_validity;             /* seconds thisUpdate..nextUpdate; <= 0: PKI_OCSP_VALIDITY */
    int approval_manual; /* 1: a simpleenroll without credentials waits for `ca approve`
                          * (202 + Retry-After, RFC 7030 §4.2.3); 0: a token is required */
    long retry_after;    /* Retry-After seconds of a 202; <= 0: EST_RETRY_AFTER_DEFAULT */
    long max_pending;    /* requests that may wait at once; <= 0: EST_PENDING_MAX_DEFAULT */
    const char *user;    /* once listening, switch to this user (util/priv.h); NULL: stay */
    const struct est_ext *exts; /* NULL or up to EST_EXT_MAX extensions, ended by a NULL prefix */
};

/* Make sure the server's own TLS certificate exists in DIR/serve/ (server.crt with the
 * intermediate, server.key 0600): issued by the CA on first start with SANs host (unless a
 * wildcard address), localhost, 127.0.0.1, ::1 and extra; reused afterwards; reissued when a
 * third of its life is left, when a SAN is missing, when the CA changed, or when the files do
 * not match. Paths of both files into cert_path/key_path (PATH_MAX); *issued (may be NULL) is
 * 1 when a new certificate was just made. `ca serve` also calls it every minute, so a server
 * running for months renews its own certificate. */
int est_server_cert_ensure(struct pki_ca *ca, const char *host, const struct pki_sans *extra,
                           char *cert_path, char *key_path, int *issued,
                           struct tw_err *err) TW_MUST_CHECK;

/* Check a listen address: HOST:PORT, [IPV6]:PORT, :PORT. TW_ERR_USAGE naming it and what
 * ("--listen", "ca.conf http-listen") otherwise. */
int est_listen_check(const char *what, const char *listen, struct tw_err *err) TW_MUST_CHECK;

/* Serve until SIGINT or SIGTERM (exit status 0 then). Prints the readiness line
 * "twoway ca serve: ready, listening on https://HOST:PORT" to stderr once accepting, after
 * "twoway ca serve: plain HTTP on http://HOST:PORT (CRL, OCSP, CA certificates only)" when
 * opts->http_listen is set.
 * TW_ERR_USAGE for a bad listen address, TW_ERR_IO when it cannot bind. */
int est_server_run(const struct est_server_opts *opts, struct tw_err *err) TW_MUST_CHECK;

/* An extension's view of its request. */
const char *est_req_method(const struct est_req *r); /* "GET", "HEAD", "POST" */
const char *est_req_path(const struct est_req *r);   /* as sent, not percent-decoded */
const char *est_req_query(const struct est_req *r);  /* after '?', or NULL */
const char *est_req_header(const struct est_req *r, const char *name); /* NULL when absent */
/* The body (NUL-terminated copy, free()); at most EST_BODY_MAX bytes. NULL: out of memory. */
unsigned char *est_req_body(struct est_req *r, size_t *len);
/* The verified client certificate of the connection (borrowed), or NULL: none sent, or it did
 * not verify against the CA (*verify_error, may be NULL, says why). */
X509 *est_req_client_cert(struct est_req *r, long *verify_error);
/* Answer: status, Content-Type, body, NULL-terminated name/value header pairs (may be NULL);
 * detail (may be NULL) goes to the access log line. */
void est_req_reply(struct est_req *r, int status, const char *content_type, const void *body,
                   size_t len, const char *const *headers, const char *detail);

/* ------------------------------------------------------------------------------------------ */
/* Wire helpers (shared with the fuzzers)                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Decode base64 ignoring every CR, LF, space and tab anywhere (RFC 7030 bodies come with any
 * line breaks). *out (free()) gets the bytes. TW_ERR_PKI naming what for a bad character,
 * bad padding or a length that is not a whole number of quanta. */
int est_b64_decode(const void *in, size_t len, const char *what, unsigned char **out,
                   size_t *out_len, struct tw_err *err) TW_MUST_CHECK;

/* Base64 on one line, no line breaks and no newline at the end (RFC 8951 §3,
 * RFC 4648 §3.1).
 * NUL-terminated, free(). */
char *est_b64_encode(const void *in, size_t len, size_t *out_len, struct tw_err *err);

/* The DER PKCS#10 of an EST request body: base64 (any line breaks) unless
 * Content-Transfer-Encoding (cte, may be NULL) says "binary" or the body is PEM, in which
 * case it is passed through. At most PKI_CSR_MAX bytes come out. *der (free()). */
int est_csr_body_decode(const void *body, size_t len, const char *cte, unsigned char **der,
                        size_t *der_len, struct tw_err *err) TW_MUST_CHECK;

/* Split an "Authorization: Basic ..." value into user and password (each NUL-terminated in
 * the caller's buffers, wiped by the caller). TW_ERR_VERIFY when absent or malformed. */
int est_basic_auth_parse(const char *header, char *user, size_t user_cap, char *pass,
                         size_t pass_cap, struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Client                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* A server URL: https://HOST[:PORT][/PATH]. The EST base is PATH when it contains
 * "/.well-known/est" (e.g. ".../.well-known/est/client" for a profile), else
 * "/.well-known/est". */
struct est_url {
    char host[256]; /* as written; "[::1]" for IPv6 */
    char port[8];
    char est_base[512]; /* "/.well-known/est" or the given path to it */
    char origin[320];   /* "https://host:port" for messages */
};

/* Parse url. TW_ERR_USAGE naming it when it is not https://HOST[:PORT][/PATH]. */
int est_url_parse(const char *url, struct est_url *out, struct tw_err *err) TW_MUST_CHECK;

/* Bounds on talking to a server: the answer's size (EST_RESPONSE_MAX above), its headers,
 * and time. A transfer that moves no byte for EST_CLIENT_STALL_SECS is given up. */
#define EST_CLIENT_HEADERS_MAX (16u * 1024) /* bytes of response headers */
#define EST_CLIENT_CONNECT_SECS 30          /* TCP, proxy tunnel and TLS handshake */
#define EST_CLIENT_STALL_SECS 30            /* no progress at all */
#define EST_CLIENT_TOTAL_SECS 300           /* a whole request */

struct est_response {
    int status;
    char content_type[128];
    char transfer_encoding[32]; /* Content-Transfer-Encoding */
    char www_authenticate[128];
    long retry_after; /* seconds; -1 when absent */
    unsigned char *body;
    size_t len;
};

void est_response_clear(struct est_response *r);

/* One request: METHOD u->est_base/op. */
struct est_http_req {
    const char *method;       /* "GET" or "POST" */
    const char *op;           /* "cacerts", "simpleenroll", ... */
    const char *content_type; /* of body; NULL without one */
    const void *body;
    size_t len;
    const char *user, *pass; /* HTTP Basic credentials (RFC 7030 §3.2.3); NULL: none */
};

/* One request on a fresh HTTPS connection to u, through the proxy the environment names
 * (https_proxy / HTTPS_PROXY, all_proxy, unless no_proxy / NO_PROXY lists the host), at most
 * EST_RESPONSE_MAX bytes back. tls sets the connection up as tlsx_client_ctx_setup does (its
 * CAs are the only ones trusted); the server's name is checked against u->host unless
 * skip_name_check. *peer_chain (may be NULL) receives the server's certificate chain as sent.
 * Any HTTP status is a success here (resp->status). Errors: TW_ERR_IO (resolve, connect,
 * proxy, timeout, too large), TW_ERR_TLS / TW_ERR_VERIFY (handshake, in plain words). */
int est_http_request(const struct tlsx_client_opts *tls, const struct est_url *u,
                     int skip_name_check, const struct est_http_req *req,
                     struct est_response *resp, STACK_OF(X509) * *peer_chain,
                     struct tw_err *err) TW_MUST_CHECK;

/* The certificates of a certs-only PKCS#7 answer body: base64 with any whitespace (as
 * RFC 7030 sends it) or, leniently, raw DER unless cte (Content-Transfer-Encoding, may be "")
 * says base64. label names the operation in errors (TW_ERR_PKI). */
STACK_OF(X509) * est_certs_body_parse(const unsigned char *body, size_t len, const char *cte,
                                      const char *label, struct tw_err *err);

/* Trust bootstrap (RFC 7030 §4.1.1) by root fingerprint: fetch /cacerts over a TLS connection
 * that is not yet trusted, accept it only if it holds a self-signed certificate whose SHA-256
 * (hex, any case, colons allowed) is fingerprint, then verify the server's TLS chain and name
 * against that root. *root gets the root, *cacerts every certificate /cacerts returned.
 * TW_ERR_VERIFY when the fingerprint or the chain does not match. */
int est_client_bootstrap(const struct est_url *u, const char *fingerprint, X509 **root,
                         STACK_OF(X509) * *cacerts, struct tw_err *err) TW_MUST_CHECK;

/* GET cacerts over a connection set up (and verified) as tls says. */
STACK_OF(X509) * est_client_cacerts(const struct tlsx_client_opts *tls, const struct est_url *u,
                                    struct tw_err *err);

/* POST simpleenroll (token: user = name, pass = token) or simplereenroll (user NULL: tls
 * carries the client certificate) with a DER CSR; *cert gets the issued certificate. Non-200
 * answers fail with the server's plain reason: TW_ERR_VERIFY for 401, TW_ERR_POLICY for 403,
 * TW_ERR_PKI for 400, TW_ERR_IO otherwise; *retry_after (may be NULL) gets Retry-After for a
 * 202 or 503. */
int est_client_enroll(const struct tlsx_client_opts *tls, const struct est_url *u, int reenroll,
                      const char *user,
                      const char *pass, const unsigned char *csr, size_t csr_len, X509 **cert,
                      long *retry_after, struct tw_err *err) TW_MUST_CHECK;

#endif
