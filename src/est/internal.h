/* Private to src/est: the server's state, one request's context, the route table, the CRL
 * cache and the per-address rate limiter. */
#ifndef TW_EST_INTERNAL_H
#define TW_EST_INTERNAL_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>

#include "est/est.h"
#include "util/linger.h"
#include "util/buf.h"

#define EST_PREFIX "/.well-known/est/"
#define EST_SERVE_DIR "serve"
#define EST_SERVE_NAME "twoway-ca-serve" /* inventory name of the server's own certificate */
#define EST_RATE_SLOTS 1024              /* client addresses tracked by the rate limiter */
#define EST_CRL_CHECK_SECS 60     /* how often the CRL and the server certificate are checked */
#define EST_ADDR_MAX 64           /* bytes of a client address as text */
#define EST_LINGER_MAX 512        /* refused handshakes closing at once; beyond, closed at once */
#define EST_STORE_RETRY_AFTER "5" /* Retry-After seconds while the inventory is down */
#define EST_COALESCE_MAX 16384    /* answers up to one TLS record are sent as one write */
#define EST_FEED_HOLD_SECS 55     /* a revocation feed request without news is held this long */
#define EST_FEED_WAITERS_MAX 10000 /* feed requests held at once; beyond, 503 + Retry-After */
#define EST_FEED_WATCH_RETRY_SECS 5 /* between attempts to re-open a lost LISTEN connection */

/* ------------------------------------------------------------------ rate limiter (ratelimit.c) */

/* A token bucket per client address in a fixed table; the least recently seen address gives
 * up its slot when the table is full, so memory stays bounded whatever the traffic. */
struct est_bucket {
    char addr[EST_ADDR_MAX];
    double tokens;
    double last; /* monotonic seconds */
};

struct est_ratelimit {
    double rate, burst;
    struct est_bucket slots[EST_RATE_SLOTS];
};

void est_ratelimit_init(struct est_ratelimit *rl, double rate, double burst);

/* 1 when addr may make one more request at monotonic time now (and takes a token), else 0
 * with *retry_after set to the whole seconds until it may. */
int est_ratelimit_take(struct est_ratelimit *rl, const char *addr, double now, long *retry_after);

/* ------------------------------------------------------------------ CRL cache (crlcache.c) */

/* ca/crl.der as served: re-read whenever the file changes (revocations by `ca revoke` in
 * another process rewrite it), regenerated when a third of its validity is left. */
struct est_crl_cache {
    char path[PATH_MAX];
    unsigned char *der;
    size_t len;
    char etag[40]; /* "\"<32 hex of SHA-256>\"" */
    int64_t this_update;
    int64_t next_update; /* 0 when the CRL has none */
    int64_t mtime_ns;    /* identity of the file read: mtime, size, inode */
    int64_t size;
    uint64_t ino;
    int64_t entries;   /* revoked certificates the CRL lists */
    int64_t number;    /* its CRL number (RFC 5280 §5.2.3); 0 when it has none */
    time_t checked_at; /* last comparison with the inventory (issue 7) */
};

/* Make sure the cache holds the current file (re-read when changed; regenerated through ca
 * when missing or near nextUpdate). */
int est_crl_refresh(struct est_crl_cache *c, struct pki_ca *ca, time_t now,
                    struct tw_err *err) TW_MUST_CHECK;
void est_crl_cache_free(struct est_crl_cache *c);

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7) into out (at least 32 bytes). */
char *est_http_date(int64_t t, char *out, size_t cap);
/* 1 when an If-None-Match header (may be NULL) names etag: RFC 9110 §13.1.2, a list of
 * entity tags or "*". */
int est_etag_matches(const char *header, const char *etag);
/* Parse an HTTP date; -1 when it is not one. */
int64_t est_http_date_parse(const char *text);

/* ------------------------------------------------------------------ CA files (h_cafiles.c) */

/* What relying parties fetch to build a path: the issuing intermediate as DER (the AIA
 * caIssuers target, RFC 5280 §4.2.2.1) and intermediate + root as PEM. Made once at start,
 * like the /cacerts answer. */
struct est_ca_files {
    unsigned char *ca_der;
    size_t ca_der_len;
    char *chain_pem;
    size_t chain_pem_len;
    char etag[40]; /* of the intermediate: "\"<32 hex of SHA-256>\"" */
};

int est_ca_files_build(struct est_ca_files *f, struct pki_ca *ca, struct tw_err *err) TW_MUST_CHECK;
void est_ca_files_free(struct est_ca_files *f);

/* ------------------------------------------------------------------ revocation feed (feed.c) */

struct est_feed_waiter;

/* Requests to /revocations held until the CRL changes, and the inotify(7) watch on ca/. */
struct est_feed {
    int fd; /* inotify; -1 or 0 when not started */
    struct event *ev;
    struct est_feed_waiter *waiters;
    size_t n;
    struct store_watch *watch; /* PostgreSQL: revocations by other instances; else NULL */
    struct event *watch_ev;
    struct event *watch_retry; /* re-open a lost watch connection */
};

/* ------------------------------------------------------------------ group commit (group.c) */
#define EST_GROUP_MAX 64 /* enrollments committed together at most */
struct est_job;
/* Enrollments waiting for the flush event: one transaction, one commit, then the answers. */
struct est_group {
    struct event *flush;
    struct est_job *jobs[EST_GROUP_MAX];
    size_t n;
    unsigned long long groups, jobs_run; /* logged at stop: the mean group size */
};
/* ------------------------------------------------------------------ server (server.c, tls.c) */

struct est_server {
    const struct est_server_opts *opts;
    char host[256]; /* listen host as written, for the server certificate's SANs */
    struct event_base *base;
    struct tw_linger_set lingers; /* handshakes refused with an alert, closing (est/tls.c) */
    struct evhttp *http;  /* HTTPS: everything */
    struct evhttp *plain; /* plain HTTP (--http-listen): what relying parties fetch; or NULL */
    SSL_CTX *ctx;
    struct est_ratelimit *rl;
    struct est_crl_cache crl;
    struct est_feed feed;
    struct est_group group;
    unsigned char *cacerts_b64; /* the /cacerts answer, made once */
    size_t cacerts_len;
    struct est_ca_files ca_files;
};

/* Tell a service manager the server is ready at url (notify.c); with $WATCHDOG_USEC, also
 * start keep-alives on srv->base into *watchdog (event_free it). No-op without
 * $NOTIFY_SOCKET. */
int est_notify_ready(struct est_server *srv, const char *url, struct event **watchdog,
                     struct tw_err *err) TW_MUST_CHECK;

/* One request being answered: what the access log says about it. */
struct est_req {
    struct est_server *srv;
    struct evhttp_request *req;
    const char *path; /* the URI path as sent (not percent-decoded) */
    const char *tail; /* path after the route's prefix (GET /ocsp/...) */
    int label;        /* EST profile label (enum pki_profile) or -1 */
    int plain;        /* arrived on the plain HTTP listener */
    char peer[EST_ADDR_MAX];
    char client[STORE_SUBJECT_MAX]; /* subject of the TLS client certificate, if any */
    char detail[TW_ERR_MSG_MAX];    /* why it was refused, or what was issued */
    int status;
    size_t bytes;
    struct timespec start;
};

typedef void (*est_handler)(struct est_req *r);

/* The server SSL_CTX: client certificates optional, verified against the CA when sent; a
 * failed verification does not end the handshake but is recorded for est_peer_cert. */
SSL_CTX *est_server_ctx_new(struct pki_ca *ca, const char *cert_path, const char *key_path,
                            struct tw_err *err);

/* Give ssl's socket a lingering close (util/linger.h) when this server ends the handshake
 * with a fatal alert, so the client reads the alert instead of a reset. Call once after
 * SSL_new, before the bufferevent takes ssl. */
void est_tls_linger_on_alert(SSL *ssl, struct est_server *srv);

/* The client certificate of r's connection, or NULL (none sent). *verify_error gets the
 * X509_V_ERR_* of its verification against the CA (X509_V_OK when it verified). Borrowed. */
X509 *est_peer_cert(struct est_req *r, long *verify_error);

/* Route the request (route table in routes.c): est_dispatch on the HTTPS listener, every
 * route; est_dispatch_plain on the plain HTTP one, only the routes marked for it. */
void est_dispatch(struct evhttp_request *req, void *arg);
void est_dispatch_plain(struct evhttp_request *req, void *arg);

/* The extension whose prefix path starts with (ext.c), or NULL. */
const struct est_ext *est_ext_lookup(const struct est_server_opts *opts, const char *path);

/* Send a response and write the access log line. headers: NULL or NULL-terminated
 * name/value pairs. */
void est_reply(struct est_req *r, int status, const char *content_type, const void *body,
               size_t len, const char *const *headers);

/* A short text/plain answer (reason + "\n") with the reason also kept for the access log. */
void est_reply_text(struct est_req *r, int status, const char *reason);

/* The request body (bounded by evhttp's max body size), copied out; *len 0 when empty. */
unsigned char *est_body(struct est_req *r, size_t *len);

/* Handlers (h_est.c, h_status.c). */
void est_h_cacerts(struct est_req *r);
void est_h_simpleenroll(struct est_req *r);

/* Answer a failure: the status for err->code (auth_status for TW_ERR_VERIFY), the reason in
 * the body; 503 with Retry-After when the inventory is down, 500 without details. */
void est_fail(struct est_req *r, const struct tw_err *err, int auth_status);

/* Answer 200 with cert as a base64 certs-only PKCS#7. */
void est_send_cert(struct est_req *r, X509 *cert);

/* simpleenroll without credentials under --approval manual (approval.c): 202 + Retry-After
 * while the request waits, the certificate once approved, 403 once rejected. */
void est_approval_enroll(struct est_req *r);
void est_h_simplereenroll(struct est_req *r);
void est_h_csrattrs(struct est_req *r);
void est_h_crl(struct est_req *r);
void est_h_ocsp(struct est_req *r);
void est_h_healthz(struct est_req *r);
void est_h_ca_crt(struct est_req *r);
void est_h_chain_pem(struct est_req *r);

/* OCSP while the inventory is down (ocspcache.c, issue 7): remember the statuses of a
 * successful answer; answer a request from them or the served CRL, or tryLater. */
void est_ocsp_remember(const unsigned char *der, size_t len);
int est_ocsp_fallback(struct est_server *srv, const unsigned char *req, size_t len, time_t now,
                      unsigned char **der, size_t *dlen, int *status) TW_MUST_CHECK;

/* The revocation feed (feed.c). start: watch the CRL's directory (after est_crl_refresh set
 * srv->crl.path, with srv->base made). wake: re-read the CRL and answer every held request
 * it is news to. stop: forget the held requests (before evhttp_free frees them). */
int est_feed_start(struct est_server *srv, struct tw_err *err) TW_MUST_CHECK;
void est_feed_wake(struct est_server *srv);
void est_feed_stop(struct est_server *srv);
void est_h_revocations(struct est_req *r);

/* Group commit (group.c). start: make the flush event (after srv->base). enroll/reenroll:
 * queue a checked request (csr and subject taken, peer up-referenced) into the current group;
 * it is answered after the group's commit. flush: run, commit and answer the current group
 * now. stop: drop queued jobs unanswered (nothing was begun for them). */
int est_group_start(struct est_server *srv, struct tw_err *err) TW_MUST_CHECK;
void est_group_enroll(struct est_req *r, const char *user, const char *token, struct pki_csr *csr);
void est_group_reenroll(struct est_req *r, X509 *peer, X509_NAME *subject, struct pki_csr *csr);
void est_group_flush(struct est_server *srv);
void est_group_stop(struct est_server *srv);
/* Make the cached /cacerts answer (intermediate, root). */
int est_cacerts_build(struct est_server *srv, struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------ client (http_client.c) */

/* One request's state, shared by libcurl's callbacks and the error wording (http_error.c). */
struct est_xfer {
    const struct tlsx_client_opts *tls;
    const struct est_url *u;
    int skip_name;  /* no name check (the bootstrap checks the chain afterwards) */
    int want_chain; /* keep the certificate chain the server sent */
    int rc;         /* CURLcode of the transfer */
    char curl_msg[256]; /* libcurl's error text (CURLOPT_ERRORBUFFER, CURL_ERROR_SIZE) */
    struct tw_buf body; /* bounded by EST_RESPONSE_MAX */
    size_t header_bytes;
    int too_large, headers_too_large;
    int alert_received;             /* the last fatal one, SSL_AD_*; -1: none */
    long verify_result;             /* at the alert we sent: why we refused the server */
    enum tlsx_reason why;           /* from OpenSSL's error queue when the handshake failed */
    char why_detail[160];
    STACK_OF(X509) *chain;
    int setup_failed; /* -1: setup_err says why twoway's TLS set-up failed */
    struct tw_err setup_err;
};

/* Fill err for a failed transfer on curl (a CURL *): resolve, connect, proxy, timeout, size,
 * and TLS failures in tlsx's plain words. */
void est_http_explain(void *curl, const struct est_xfer *x, struct tw_err *err);

#endif
