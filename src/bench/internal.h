/* Private to src/bench: the connection slots, the event loop state and the tallies. */
#ifndef TW_BENCH_INTERNAL_H
#define TW_BENCH_INTERNAL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netdb.h>
#include <openssl/ssl.h>

#include "bench/bench.h"

#define BENCH_IO_BUF (64 * 1024)     /* bytes per SSL_read / SSL_write */
#define BENCH_DRAIN_MAX (256 * 1024) /* read after our close_notify before closing anyway */

enum slot_state {
    ST_IDLE = 0,
    ST_CONNECT,   /* TCP connect in progress */
    ST_HANDSHAKE, /* SSL_connect */
    ST_TICKET,    /* --resume, TLS 1.3: reading until the server's session ticket arrives */
    ST_DATA,      /* request/echo, download or upload: wleft / rleft bytes to go */
    ST_SHUTDOWN,  /* sending close_notify */
    ST_DRAIN,     /* reading until the server closes (its verdict, TLS 1.3 tickets) */
    ST_HELD,      /* HOLD: established, idle */
};

struct bench;

struct slot {
    struct bench *b;
    enum slot_state st;
    int fd;
    SSL *ssl;
    SSL_SESSION *sess; /* --resume: the newest resumable session of this slot */
    struct event ev;
    bool ev_added;
    bool priming;                  /* the --resume warm-up connection of this slot */
    bool counted;                  /* part of the measured phase */
    bool got_session;              /* a new session (TLS 1.3: ticket) arrived on this connection */
    bool offered;                  /* --resume: this connection offered a session */
    int64_t t_start, t_hs, t_done; /* connect, handshake done, data phase done */
    uint64_t wleft, rleft;
    int wpending; /* length of an SSL_write to retry (OpenSSL wants the same arguments) */
    uint64_t up, down;
    uint64_t drained; /* bytes read after our close_notify */
};

/* Latencies (µs) of successful connections. */
struct bench_samples {
    int64_t *v;
    size_t n, cap;
};

struct bench {
    const struct bench_opts *o;
    struct bench_result *res;
    struct event_base *base;
    SSL_CTX *ctx;
    struct addrinfo *ai;
    struct slot *slots;
    int nslots;
    struct event *stop_ev, *hard_ev;
    bool stopping; /* no new connections */
    bool measuring;
    int active; /* connections open (HELD ones included) */
    int priming_left;
    int64_t launched; /* measured connections started */
    int64_t t0, t_end;
    int64_t cpu0;
    struct bench_samples lat, hs;
    unsigned char *buf;
};

/* stats.c */
int64_t bench_now_us(void);
int64_t bench_self_cpu_us(void);
int bench_samples_add(struct bench_samples *s, int64_t v);
void bench_samples_free(struct bench_samples *s);
/* Percentile q (0..100) of the samples (sorted in place on first use); 0 when empty. */
int64_t bench_samples_pct(struct bench_samples *s, double q);
int64_t bench_samples_mean(const struct bench_samples *s);
/* Tally one failure under code; detail (may be NULL) becomes first_error if none yet. */
void bench_fail_note(struct bench_result *r, const char *code, const char *detail);
/* The latency figures of r from the samples of whole operations (lat) and handshakes (hs). */
void bench_latency_summarise(struct bench_result *r, struct bench_samples *lat,
                             struct bench_samples *hs);

/* report.c: r's latency_ms object and its failures by kind, as set into j. */
void bench_json_latency_errors(json_t *j, const struct bench_result *r);

/* h2.c: --h2: the connections, their streams and the measurement, on b's base. */
int bench_h2_run(struct bench *b, struct tw_err *err) TW_MUST_CHECK;

/* loop.c: start the slots, run the loop, tear down. */
int bench_loop_run(struct bench *b, struct tw_err *err) TW_MUST_CHECK;

/* conn.c */
/* A failed TLS call (SSL_get_error's sslerr) in tlsx's words: the tally code ("unknown-ca",
 * "revoked", "closed", ...) with detail filled. */
const char *bench_tls_failure(SSL *ssl, int sslerr, char *detail, size_t cap);
/* SSL_CTX_sess_set_new_cb: keeps the newest resumable session in the connection's slot. */
int bench_new_session(SSL *ssl, SSL_SESSION *sess);
void bench_slot_launch(struct slot *s);
void bench_slot_drive(struct slot *s);
void bench_slot_abort(struct slot *s);
/* A connection of s ended: account for it (ok or failed with code/detail), free it. */
void bench_slot_end(struct slot *s, bool ok, const char *code, const char *detail);
/* loop.c: what the loop does after a slot's connection ended. */
void bench_after_end(struct slot *s, bool failed);

#endif
