/* Revocation from the network: CRLs fetched from `crl = https://...` URLs and OCSP checks of
 * client certificates (docs/internals/revocation.md). Private to src/gateway/.
 *
 * Threads: every fetch (CRL and OCSP) runs on the server's main event loop with libevent's
 * HTTP client; nothing here blocks a worker. The CRL store is main-thread only: a generation
 * build (also main thread) reads the last good CRL of each URL from it, and a newly fetched
 * CRL triggers the same reload as a changed CRL file. OCSP answers are published to workers
 * as immutable refcounted snapshots through one atomic slot per worker; a worker that finds
 * no usable answer pushes a request onto a lock-free stack and pokes an eventfd. */
#ifndef TW_GATEWAY_REVOCATION_H
#define TW_GATEWAY_REVOCATION_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>

#include "gateway/internal.h"
#include "util/buf.h"
#include "util/err.h"

/* Limits. */
#define GW_FETCH_BODY_MAX (8u * 1024 * 1024) /* bytes of a fetched CRL */
#define GW_FETCH_OCSP_MAX (64u * 1024)       /* bytes of an OCSP response */
#define GW_FETCH_TIMEOUT_SECS 10             /* connect + request + response */
#define GW_FETCH_HEADERS_MAX 16384           /* bytes of response headers */
#define GW_OCSP_CACHE_MAX 4096               /* cached OCSP answers (oldest dropped) */
#define GW_FEED_TIMEOUT_SECS 75   /* a feed request: ca serve holds it at most 55 s */
#define GW_FEED_BACKOFF_MAX 30    /* seconds between feed reconnects, at most */

/* ------------------------------------------------------------------------------------------ */
/* One HTTP(S) request on an event loop (crl_fetch_http.c)                                     */
/* ------------------------------------------------------------------------------------------ */

struct gw_fetcher; /* owns every request in flight; frees them at the end */

struct gw_fetch_req {
    const char *url;     /* http:// or https:// */
    const char *ca_file; /* https: PEM bundle the server's chain must verify against */
    bool post;           /* POST body (else GET) */
    const void *body;
    size_t len;
    const char *content_type;      /* of the POST body */
    const char *if_none_match;     /* ETag of what we hold, or NULL */
    const char *if_modified_since; /* Last-Modified of what we hold, or NULL */
    size_t max_body;
    int timeout_secs; /* the whole exchange; 0: GW_FETCH_TIMEOUT_SECS */
};

struct gw_fetch_res {
    int status;      /* HTTP status; 0 when the request failed (error says why) */
    char error[200]; /* "" on a completed exchange */
    const unsigned char *body;
    size_t len;
    const char *etag;          /* NULL when absent */
    const char *last_modified; /* NULL when absent */
    int64_t max_age;           /* Cache-Control max-age seconds, -1 when absent */
    const char *feed;          /* Twoway-Revocation-Feed: the CA's feed path, or NULL */
    const char *crl_number;    /* Twoway-Crl-Number of a feed answer, or NULL */
};

typedef void (*gw_fetch_cb)(const struct gw_fetch_res *res, void *arg);

struct gw_fetcher *gw_fetcher_new(struct event_base *base, struct tw_err *err);
/* Cancels what is in flight (callbacks are not called) and frees everything. */
void gw_fetcher_free(struct gw_fetcher *f);
/* Start a request; cb is called exactly once (from the loop, never from here) unless the
 * fetcher is freed first. TW_ERR_CONFIG for a bad URL, TW_ERR_IO / TW_ERR_CONFIG when the
 * CA file cannot be used. */
int gw_fetch_start(struct gw_fetcher *f, const struct gw_fetch_req *req, gw_fetch_cb cb, void *arg,
                   struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* A revocation feed: GET URL?since=N held by a twoway CA until news (crl_feed.c)              */
/* ------------------------------------------------------------------------------------------ */

struct gw_feed;

/* A signed CRL the feed delivered (res->status 200): 0 when it was taken (verified), -1 when
 * refused (the feed then backs off as after a failure). */
typedef int (*gw_feed_news_cb)(const struct gw_fetch_res *res, void *arg);

/* Follow url (https://…/revocations) with ca_file verifying the CA server: one request always
 * held open, re-made at once after each answer, after 1, 2, 4 … GW_FEED_BACKOFF_MAX seconds
 * after failures. news is called for each new CRL. NULL on a bad URL or out of memory. */
struct gw_feed *gw_feed_new(struct event_base *base, struct gw_fetcher *f, const char *url,
                            const char *ca_file, gw_feed_news_cb news, void *arg,
                            struct tw_err *err);
/* Only when gw_feed_busy is false (or the fetcher is freed first). NULL is a no-op. */
void gw_feed_free(struct gw_feed *feed);
bool gw_feed_up(const struct gw_feed *feed);   /* the last exchange succeeded */
bool gw_feed_busy(const struct gw_feed *feed); /* a request is in flight */
const char *gw_feed_url(const struct gw_feed *feed);
/* The feed URL a twoway CA advertises for crl_url (path from Twoway-Revocation-Feed), into
 * out. -1 when the path is not a plain absolute path. */
int gw_feed_url_for(const char *crl_url, const char *path, char *out, size_t cap);
/* What the metrics show of a feed. */
struct gw_feed_stats {
    bool up;
    uint64_t news, held_over, failed; /* CRLs delivered, holds ended without news, failures */
    double lag;                       /* seconds from the last CRL's thisUpdate to its news; -1 */
};
void gw_feed_stats(const struct gw_feed *feed, struct gw_feed_stats *out);

/* ------------------------------------------------------------------------------------------ */
/* The server's revocation state (crl_fetch.c)                                                */
/* ------------------------------------------------------------------------------------------ */

struct gw_revoc;
struct gw_ocsp; /* ocsp_check.c */

/* Create srv->revoc and fetch every CRL URL of the configuration once, running the main
 * loop until each answered (bounded by GW_FETCH_TIMEOUT_SECS). Called before the first
 * generation is built. -1 with err when the config does not load or a first fetch failed. */
int gw_revoc_start(struct gw_server *srv, struct tw_err *err) TW_MUST_CHECK;

/* After the workers are joined, before the event base is freed. NULL is a no-op. */
void gw_revoc_free(struct gw_revoc *r);

/* Generation build: add the last good CRL fetched from service c's crl[i] (a URL) to set,
 * and keep polling that URL every crl-refresh. TW_ERR_CONFIG when nothing was fetched yet
 * (a fetch is started; its success triggers a reload). */
int gw_revoc_crl_add(struct gw_server *srv, const struct gw_service *c, size_t i,
                     struct tlsx_crl_set *set, struct tw_err *err) TW_MUST_CHECK;

/* Prometheus text: CRL fetches, CRL expiry per service, OCSP cache and checks. */
int gw_revoc_metrics(struct tw_buf *b, const struct gw_server *srv,
                     struct tw_err *err) TW_MUST_CHECK;

/* server.c: the reload a changed watched file triggers (no-op while stopping). */
void gw_server_reload(struct gw_server *srv, const char *why);
/* server.c: the reload a new fetched or fed CRL triggers: only the CRL sets and the SSL_CTXs
 * holding them are built again (gw_gen_derive), the rest of the generation is kept. */
void gw_server_reload_crls(struct gw_server *srv, const char *why);

/* The OCSP part, for crl_fetch.c. */
struct gw_ocsp *gw_ocsp_new(struct gw_server *srv, struct gw_fetcher *f, struct tw_err *err);
void gw_ocsp_free(struct gw_ocsp *o);
int gw_ocsp_metrics(struct tw_buf *b, const struct gw_ocsp *o, struct tw_err *err) TW_MUST_CHECK;
struct gw_ocsp *gw_revoc_ocsp(const struct gw_revoc *r);

/* ------------------------------------------------------------------------------------------ */
/* OCSP state shared by ocsp_check.c (workers) and ocsp_check_fetch.c (main thread)            */
/* ------------------------------------------------------------------------------------------ */

#define GW_OCSP_KEY_LEN 32 /* SHA-256 of the DER OCSP CertID (issuer name + key hash, serial) */

enum gw_ocsp_result { GW_OCSP_GOOD, GW_OCSP_REVOKED, GW_OCSP_UNKNOWN, GW_OCSP_NONE, GW_OCSP_NRES };

/* One answer as the workers see it. */
struct gw_ocsp_ans {
    unsigned char key[GW_OCSP_KEY_LEN];
    enum gw_ocsp_result status;
    int64_t valid_until; /* unix seconds: nextUpdate (or fetch + crl-refresh without one) */
    int64_t revoked_at;
    int reason;  /* CRL reason code of a revocation, -1 none */
    bool failed; /* the last attempt to get an answer failed (or cannot be made) */
};

/* Immutable once published; sorted by key. Refcounted (main thread and each worker). */
struct gw_ocsp_snap {
    atomic_int refs;
    size_t n;
    struct gw_ocsp_ans v[];
};

/* A worker's request for an answer it did not have (lock-free stack node). */
struct gw_ocsp_want {
    struct gw_ocsp_want *next;
    unsigned char key[GW_OCSP_KEY_LEN];
    X509 *cert, *issuer; /* referenced */
    char service[64];
};

struct gw_ocsp_entry; /* main thread only (ocsp_check_fetch.c) */

struct gw_ocsp {
    struct gw_server *srv;
    struct gw_fetcher *fetcher;
    _Atomic(struct gw_ocsp_snap *) slot[GW_MAX_WORKERS]; /* main -> worker i */
    struct gw_ocsp_snap *cur[GW_MAX_WORKERS];            /* worker i's own reference */
    atomic_bool wake[GW_MAX_WORKERS];                    /* a snapshot to act on */
    _Atomic(struct gw_ocsp_want *) wants;                /* workers -> main */
    int wake_fd;                                         /* eventfd: a want was pushed */
    struct event *wake_ev;
    struct gw_ocsp_entry *entries;
    size_t nentries;
    atomic_uint_fast64_t checks[GW_OCSP_NRES]; /* gate outcomes, by answer */
    uint64_t fetch_ok, fetch_failed;           /* main thread */
};

void gw_ocsp_snap_unref(struct gw_ocsp_snap *s);
/* Main thread: hand snap (one reference taken per worker) to every worker's slot. */
void gw_ocsp_publish(struct gw_ocsp *o, struct gw_ocsp_snap *snap);
/* Main thread: handle the wants workers pushed (ocsp_check_fetch.c). */
void gw_ocsp_take_wants(struct gw_ocsp *o);
void gw_ocsp_entries_free(struct gw_ocsp *o);
/* The cache key of cert as issued by issuer. -1 when OpenSSL cannot build the CertID. */
int gw_ocsp_key(X509 *cert, X509 *issuer, unsigned char key[GW_OCSP_KEY_LEN]);

/* ------------------------------------------------------------------------------------------ */
/* OCSP in the connection path (ocsp_check.c)                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Worker thread, after the peer check passed and before the backend connect: for a service
 * with ocsp = on, the cached OCSP answer for c's client certificate decides. Returns 0 to go
 * on (good; or no answer with ocsp-fail = open); -1 when c was refused and closed (revoked,
 * unknown, or the responder failed with ocsp-fail = closed); 1 when c now waits for an answer
 * being fetched (ocsp-fail = closed): gw_ocsp_worker_wake admits or refuses it once the
 * answer comes, and the handshake timeout bounds the wait. Lock-free. */
int gw_ocsp_gate(struct gw_conn *c);

/* Worker thread, on its notify event: when new OCSP answers were published, admit or refuse
 * the connections waiting for one, and close live connections whose answer is now revoked. */
void gw_ocsp_worker_wake(struct gw_worker *w);

#endif
