/* Gateway internals: generations, workers, connections, metrics. Private to src/gateway/.
 *
 * Threads: the main thread owns the server (signals, reloads, file watching, metrics HTTP);
 * each worker thread owns its event_base, its listeners and its connections. The only state
 * they share is the refcounted generation (handed to workers through an atomic slot), the
 * per-worker counters (atomics, written by their worker only), the max-connections counts
 * (atomics) and the log sink. */
#ifndef TW_GATEWAY_INTERNAL_H
#define TW_GATEWAY_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "tlsx/tlsx.h"
#include "util/err.h"
#include "util/linger.h"

#define GW_MAX_WORKERS 64
#define GW_MAX_SERVICES 64
#define GW_MAX_LISTENS 64
#define GW_MAX_WATCH 256
/* Bytes buffered towards one side before the other side stops being read (backpressure),
 * when buffer-size is not set; reading resumes below a quarter of it. */
#define GW_RELAY_HIGH (256u * 1024)
/* How long a closing connection may take to write out what is buffered for the other side. */
#define GW_FLUSH_LIMIT_MS 5000

/* ------------------------------------------------------------------------------------------ */
/* Generations (gen.c)                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Per service name, lives as long as the server (survives reloads): live connection count
 * for max-connections per service. */
struct gw_svc_slot {
    char name[64];
    atomic_int active;
};

/* One service of a generation: its config plus what was built from it. Immutable once
 * built. */
struct gw_svc {
    const struct gw_service *cfg; /* points into the generation's config */
    size_t index;
    struct sockaddr_storage backend_addr; /* resolved when the generation was built */
    socklen_t backend_len;
    const char *backend_host; /* TLS backends: the name checked on its certificate */
    SSL_CTX *ctx;             /* server ctx */
    SSL_CTX *backend_ctx;     /* TLS backends: client ctx with the gateway's client cert */
    struct tlsx_crl_set *crls;
    struct tlsx_policy *policy;
    unsigned fwd_flags; /* GW_FWD_* of forward.h (http mode) */
    int64_t handshake_ms, idle_ms, connect_ms, backend_ms, lifetime_ms;
    size_t buffer_high, buffer_low;
    struct gw_svc_slot *slot;
    X509 *server_cert;    /* borrowed from ctx: expiry metric */
    STACK_OF(X509) * cas; /* client CAs: expiry metric (owned) */
    /* backend-protocol = auto: what the backend last chose by ALPN (0 unknown, 1 h2,
     * 2 http/1.1), shared by the workers; learned again with each generation. */
    _Atomic int backend_alpn;
};

/* ALPN (alpn.c): install s's protocol list on its server ctx (nothing when it offers none);
 * whether a finished handshake chose "h2". */
void gw_alpn_install(struct gw_svc *s);
bool gw_alpn_is_h2(SSL *ssl);

/* A listen address and the services behind it (services[0] answers unknown SNI). */
struct gw_listen {
    const struct gw_listener *cfg;
    SSL_CTX *ctx; /* the listener ctx: the first service's; SNI switches to the others */
    struct tlsx_sni_table *sni;
    struct gw_svc *svcs[GW_MAX_SERVICES];
    size_t nsvcs;
};

/* A watched file and what it looked like when the generation was built. */
struct gw_watch {
    char *path;
    struct stat st;
    bool exists;
};

/* Everything a reload replaces. Refcounted: the server, each worker and each connection hold
 * references; freed by whichever thread drops the last. */
struct gw_gen {
    atomic_int refs;
    uint64_t id;
    struct gw_config *cfg; /* owned, or shared with the generations derived from it */
    atomic_int *cfg_refs;  /* generations sharing cfg; NULL: this one alone */
    struct gw_svc *svcs;
    size_t nsvcs;
    struct gw_listen *listens;
    size_t nlistens;
    struct gw_watch *watch; /* main thread only: refreshed after a failed reload */
    size_t nwatch;
    int workers; /* resolved count */
    struct tlsx_ticket_keys *tickets;
};

struct gw_server;

/* Build a generation from the server's config source (re-reading every file). NULL with err on
 * any failure; nothing is half-applied. */
struct gw_gen *gw_gen_build(struct gw_server *srv, struct tw_err *err);
/* A generation that differs from old only in its CRLs (a fetched or fed CRL changed): old's
 * configuration, certificates, keys, policy and backends are kept, the CRL sets are built
 * again (the same way as gw_gen_build) and with them each service's SSL_CTX, whose verify
 * store holds them. The configuration, certificate and key files are not read (client-ca and
 * CRL files are, as in any build). NULL with err on failure (the caller falls back to
 * gw_gen_build). */
struct gw_gen *gw_gen_derive(struct gw_server *srv, struct gw_gen *old, struct tw_err *err);
struct gw_gen *gw_gen_ref(struct gw_gen *gen);
void gw_gen_unref(struct gw_gen *gen);
/* The first watched file that changed since gen was built or last refreshed (mtime, ctime,
 * size, inode, existence), or NULL. refresh: remember the current state (main thread only). */
const char *gw_gen_files_changed(struct gw_gen *gen, bool refresh);
/* A hash of the watched files' current state (stat now), to tell when they stopped changing. */
uint64_t gw_gen_watch_signature(const struct gw_gen *gen);
/* The service named name, or NULL. */
struct gw_svc *gw_gen_find_svc(const struct gw_gen *gen, const char *name);
/* The service of conn's negotiated ctx among the listen's services (the first as fallback). */
struct gw_svc *gw_listen_svc_for_ctx(const struct gw_listen *l, const SSL_CTX *ctx);
/* Index of the listen address text in gen's listens, -1 when absent (or gen NULL). */
int gw_gen_listen_index(const struct gw_gen *gen, const char *text);
/* Check that every address gen listens on and old does not (old NULL: every address) is free
 * (TW_ERR_IO naming it otherwise). Workers then open those and close the ones gen no longer
 * has. */
int gw_gen_probe_listens(const struct gw_gen *old, const struct gw_gen *gen,
                         struct tw_err *err) TW_MUST_CHECK;

/* ------------------------------------------------------------------------------------------ */
/* Counters (metrics.c)                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* Handshake results: tlsx reasons, plus reasons of our own. */
enum {
    GW_R_TIMEOUT = TLSX_R_OTHER + 1, /* handshake did not finish in time */
    GW_R_LIMIT,                      /* refused: max-connections */
    GW_R_COUNT,
    GW_R_BACKEND = GW_R_COUNT, /* access log only: the backend failed (not a handshake) */
};

const char *gw_reason_code(int reason);

/* Written by one worker, read by the metrics thread: relaxed atomics, no locks. */
struct gw_stats {
    atomic_uint_fast64_t handshakes[GW_R_COUNT];
    atomic_uint_fast64_t resumed;
    atomic_uint_fast64_t bytes_in;  /* client -> backend */
    atomic_uint_fast64_t bytes_out; /* backend -> client */
    atomic_uint_fast64_t backend_errors;
    atomic_uint_fast64_t connections;
    atomic_uint_fast64_t revoked_closed;
    atomic_int active;
};

static inline void gw_stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Start the metrics listener on srv's main event_base. */
int gw_metrics_start(struct gw_server *srv, const struct gw_addr *addr,
                     struct tw_err *err) TW_MUST_CHECK;
void gw_metrics_stop(struct gw_server *srv);

/* ------------------------------------------------------------------------------------------ */
/* Workers (worker.c)                                                                         */
/* ------------------------------------------------------------------------------------------ */

struct gw_conn;
struct gw_fast;
struct gw_h2;
struct gw_h2_stream;
struct tw_buf;

struct gw_worker {
    struct gw_server *srv;
    size_t id;
    pthread_t thread;
    bool started;
    struct event_base *base;
    int notify_fd; /* eventfd: the main thread pokes it after setting pending/stop */
    struct event *notify_ev;
    struct evconnlistener *lev[GW_MAX_LISTENS];
    struct gw_lctx {
        struct gw_worker *w;
        size_t idx;
    } lctx[GW_MAX_LISTENS];
    size_t nlev;
    struct event *pause_ev; /* accept paused after EMFILE and the like */
    bool draining;
    atomic_int done;                  /* set when the thread's loop has ended */
    struct gw_gen *gen;               /* this worker's reference to the current generation */
    _Atomic(struct gw_gen *) pending; /* a new generation handed over by the main thread */
    atomic_int stop;                  /* 1: stop accepting, drain */
    int64_t drain_deadline_ms;
    struct event *drain_ev;
    struct gw_conn *conns; /* live connections (intrusive list), lingering ones included */
    size_t nconns;
    struct tw_linger_set lingers; /* refused TLS connections being closed (util/linger.h) */
    struct gw_pool_ent *pool;     /* idle backend connections (http_pool.h), newest first */
    size_t pool_len;              /* entries in pool, all services together */
    struct gw_pool_ent *pool_spare; /* unused entries kept with their timers for reuse */
    struct gw_h2_stream *h2_spare;  /* HTTP/2 streams kept for reuse (h2_stream.c) */
    size_t h2_spare_len;
    struct gw_stats stats;
};

int gw_worker_init(struct gw_worker *w, struct gw_server *srv, size_t id,
                   struct tw_err *err) TW_MUST_CHECK;
/* Open this worker's SO_REUSEPORT listeners for every listen address of gen. */
int gw_worker_listen(struct gw_worker *w, const struct gw_gen *gen,
                     struct tw_err *err) TW_MUST_CHECK;
int gw_worker_start(struct gw_worker *w, struct tw_err *err) TW_MUST_CHECK;
/* From the main thread: hand over a new generation (takes a reference of its own). */
void gw_worker_post_gen(struct gw_worker *w, struct gw_gen *gen);
/* From the main thread: stop accepting and drain until deadline, then exit the thread. */
void gw_worker_post_stop(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);
void gw_worker_cleanup(struct gw_worker *w);

/* ------------------------------------------------------------------------------------------ */
/* Connections (conn.c, relay.c)                                                              */
/* ------------------------------------------------------------------------------------------ */

enum gw_conn_state {
    GW_CONN_HANDSHAKE,
    GW_CONN_CONNECTING,
    GW_CONN_RELAY,
    GW_CONN_FLUSH, /* one side is gone; writing what is left to the other */
    GW_CONN_LINGER, /* refused: logged and torn down, the socket closing (util/linger.h) */
};

struct gw_conn {
    struct gw_conn *prev, *next;
    struct gw_worker *w;
    struct gw_gen *gen; /* reference held for the connection's life */
    const struct gw_listen *listen;
    struct gw_svc *svc; /* set after the handshake */
    enum gw_conn_state state;
    int fd;                      /* TLS clients: the socket, owned here (not by the bufferevent) */
    struct bufferevent *client;  /* until the fast relay takes over, or for the whole life */
    struct bufferevent *backend; /* bufferevent relay only */
    struct gw_fast *fast;        /* fast relay (relay_fast.c): plaintext TCP backends */
    SSL *ssl;                    /* owned here */
    struct tw_linger *linger;    /* LINGER: owns the socket until the peer has our alert */
    struct bufferevent *flush_target; /* FLUSH: the side whose output is being written out */
    struct event *timer;
    int64_t started_ms, last_io_ms, deadline_ms;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[64];
    bool resumed;
    struct gw_svc_slot *counted_svc; /* counted against this service's max-connections */
    int reason;                      /* gw / tlsx reason of the outcome */
    const char *verdict;             /* "allow", "deny", "error" */
    char detail[192];
    const char *close_reason; /* FLUSH: why, a static string */
    struct tlsx_identity *id;
    X509 *peer_cert; /* the verified client certificate, owned by the SSL session */
    uint64_t bytes_in, bytes_out;
    struct gw_http *http; /* mode http: the request processor for client -> backend */
    struct gw_h2 *h2;     /* mode http, ALPN h2: the HTTP/2 session (h2_session.c) */
    bool tunnel;          /* http: WebSocket upgrade forwarded; raw bytes both ways */
    bool tunnel_pending;  /* http: waiting for the backend's 101 before client bytes */
    bool paused_client;   /* client reads stopped: backend output over the limit */
    bool paused_backend;  /* backend reads stopped: client output over the limit */
    bool client_eof;      /* the client finished sending; answers still flow back */
    bool backend_shut;    /* that half-close was passed on to the backend */
    int64_t awaiting_ms;  /* http: a request went out and no response byte came yet */
    bool backend_replied; /* any byte from the backend */
    int http_status;      /* canned response sent by the gateway, 0 if none */
    /* ocsp = on (ocsp_check.c): the OCSP cache key of the client certificate, and whether
     * the connection waits (handshake done, backend not connected yet) for an answer. */
    unsigned char ocsp_key[32];
    bool ocsp_keyed;
    bool ocsp_wait;
};

/* Accept fd from listener l of worker w. Always consumes fd. */
void gw_conn_accept(struct gw_worker *w, const struct gw_listen *l, int fd,
                    const struct sockaddr *sa, socklen_t salen);
/* The SNI host name of a finished handshake (read from the SSL, not copied), or NULL. */
const char *gw_conn_sni(const struct gw_conn *c);
/* Close: log the access line and free everything. Only place a connection is freed. A TLS
 * connection refused before it was admitted (its handshake failed, timed out or its peer
 * check refused it) is not freed at once: it lingers (state LINGER, util/linger.h) so the
 * client reads the alert, still counted against max-connections, and is freed when that
 * ends. Closing a lingering connection (drain timeout, shutdown) ends the linger at once. */
void gw_conn_close(struct gw_conn *c, const char *why);
/* Every check passed (OCSP may have made the connection wait): count it, connect the
 * backend. */
void gw_conn_admit(struct gw_conn *c);
/* Handshake and peer check passed: connect to the backend. */
void gw_conn_connect_backend(struct gw_conn *c);
/* The backend could not be reached or did not answer: a canned HTTP status (502/504) in
 * HTTP mode when nothing was relayed yet, else close. */
void gw_conn_backend_failed(struct gw_conn *c, int status, const char *why);
/* HTTP: send the canned response for status to the client, then close once it is written. */
void gw_conn_send_status(struct gw_conn *c, int status);
/* Install the relay callbacks on the client (client bytes wait until the backend is up). */
void gw_relay_attach_client(struct gw_conn *c);
/* Backend connected: start relaying (writes the PROXY v2 header first when asked). */
int gw_relay_start(struct gw_conn *c, struct tw_err *err) TW_MUST_CHECK;
/* HTTP mode: the identity header lines for c's client certificate ("Name: value\r\n" each,
 * as the service's forward asks; nothing for forward = none) appended to out. */
int gw_relay_identity_lines(struct gw_conn *c, struct tw_buf *out, struct tw_err *err) TW_MUST_CHECK;
/* HTTP mode: the names Host / :authority must match on c (none: any). */
void gw_relay_host_rule(const struct gw_conn *c, const char *const **hosts, size_t *n_hosts);
/* A new, unconnected bufferevent towards c's backend (TLS set up for tls:// backends). */
struct bufferevent *gw_conn_backend_new(struct gw_conn *c, struct tw_err *err);

/* HTTP/2 (h2_session.c): take over c's client connection after the handshake chose "h2". On
 * -1 the caller closes c. */
int gw_h2_start(struct gw_conn *c, struct tw_err *err) TW_MUST_CHECK;
void gw_h2_free(struct gw_h2 *h);
uint64_t gw_h2_requests(const struct gw_h2 *h);
/* Free the HTTP/2 streams w keeps for reuse (before its event base goes). */
void gw_h2_spares_free(struct gw_worker *w);
/* Send GOAWAY. Drain (cut false): streams begun are still answered, then the connection
 * closes. Cut: close right after the GOAWAY is written; why is a static string (the access
 * log's close reason, and the GOAWAY's debug data). */
void gw_h2_goaway(struct gw_conn *c, bool cut, const char *why);

/* One request of an HTTP/2 connection, for its access-log line (accesslog.c). */
struct gw_req_log {
    int32_t stream;
    const char *method, *path, *authority; /* NULL when the client did not send them */
    int status;                            /* answered status, 0 when none was */
    const char *detail;                    /* why it was refused or cut, "" otherwise */
    uint32_t reset;                        /* RST_STREAM error code, 0 for none */
    uint64_t bytes_in, bytes_out;          /* request / response body bytes */
    int64_t started_ms;
};
void gw_access_log_request(const struct gw_conn *c, const struct gw_req_log *r);

/* The PROXY v2 header for c into out (forward = proxy-v2). */
int gw_relay_proxy_v2(struct gw_conn *c, struct tw_buf *out, struct tw_err *err) TW_MUST_CHECK;

/* Fast relay (relay_fast.c). Taken by `mode = tcp` services with a TLS client and a
 * plaintext (host:port or unix:) backend; TLS backends, the tunnel's plaintext listener and
 * HTTP mode keep the bufferevent relay. */
bool gw_fast_eligible(const struct gw_conn *c);
/* Connect the backend without a bufferevent; relaying starts once it is connected (the
 * handshake bufferevent is then freed). -1 with err when the connect could not start. */
int gw_fast_connect(struct gw_conn *c, struct tw_err *err) TW_MUST_CHECK;
/* Whether bytes for the client are still waiting for SSL_write. */
bool gw_fast_client_pending(const struct gw_conn *c);
/* When the timer must look at the connection to release its TLS record buffers (INT64_MAX:
 * never), and the look itself. */
int64_t gw_fast_quiet_at(const struct gw_conn *c);
void gw_fast_tick(struct gw_conn *c, int64_t now);
/* Close the backend socket, free the buffers and events (from gw_conn_close only). */
void gw_fast_free(struct gw_conn *c);
/* The fast relay's TLS write BIO on socket fd (relay_bio.c): records collect and leave in one
 * send per chunk. gw_outbio_send: 1 all sent, 0 the socket is full, -1 failed (errno). */
BIO *gw_outbio_new(int fd);
int gw_outbio_send(BIO *b);
bool gw_outbio_pending(BIO *b);
/* Reschedule the connection's single timer for its current state. */
void gw_conn_arm_timer(struct gw_conn *c);
int64_t gw_now_ms(void);

/* Format a socket address as "1.2.3.4:5" / "[::1]:5" / "unix:/path". */
char *gw_addr_text(const struct sockaddr *sa, socklen_t len, char *out, size_t cap);

/* Write one JSON access-log line for c, closed because of why (accesslog.c). */
void gw_access_log(const struct gw_conn *c, const char *why);

/* ------------------------------------------------------------------------------------------ */
/* Server (server.c)                                                                          */
/* ------------------------------------------------------------------------------------------ */

struct gw_server {
    struct gw_source src;
    struct event_base *base;
    struct gw_gen *gen; /* the main thread's reference: the current generation */
    uint64_t next_gen_id;
    struct gw_worker workers[GW_MAX_WORKERS];
    size_t nworkers;
    struct event *sig_hup, *sig_term, *sig_int, *watch_timer, *stop_timer;
    struct evhttp *metrics;
    _Atomic(FILE *) access; /* JSON lines, or NULL; swapped by a SIGHUP reopen */
    bool access_owned;
    FILE *old_access; /* the file before the last reopen, closed shortly after */
    struct event *access_close_timer;
    struct gw_svc_slot slots[GW_MAX_SERVICES];
    size_t nslots;
    atomic_int active; /* all live connections, for the global max-connections */
    struct tlsx_ticket_keys *tickets;
    uint64_t reloads_ok, reloads_failed;
    uint64_t watch_sig; /* gw_gen_watch_signature at the previous poll */
    bool stopping;
    struct gw_revoc *revoc;     /* CRL URLs and OCSP (crl_fetch.c, ocsp_check*.c) */
    struct event *notify_timer; /* status (and watchdog) updates to systemd; notify.c */
    bool watchdog;              /* $WATCHDOG_USEC set: the timer also sends WATCHDOG=1 */
};

/* Service-manager notifications (notify.c), no-ops without $NOTIFY_SOCKET: start the
 * status/watchdog timer on srv->base; READY=1 with a status line; RELOADING=1 with the
 * monotonic clock before a reload (READY=1 follows, whatever the outcome); STOPPING=1. */
int gw_notify_start(struct gw_server *srv, struct tw_err *err) TW_MUST_CHECK;
void gw_notify_ready(const struct gw_server *srv);
void gw_notify_reloading(void);
void gw_notify_stopping(void);

/* The slot for service name (created on first use; main thread only). */
struct gw_svc_slot *gw_server_slot(struct gw_server *srv, const char *name);

#endif
